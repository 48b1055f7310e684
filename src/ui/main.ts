/**
 * The admin console (docs/api.md "Admin console"), served by the CA at /ui.
 *
 * Built with Preact and htm: a 4 kB virtual DOM with hooks, maintained by the Preact team and
 * used widely, and htm's tagged templates, which need no JSX transform, so the Vite build needs
 * no framework plugin and this folder type-checks with plain tsc. lit would put each view in a
 * shadow root (labels and aria references do not cross it); solid-js needs its compiler plugin.
 */
import { html } from 'htm/preact';
import { render } from 'preact';
import { App } from './components/app';
import './styles.css';

render(html`<${App} />`, document.getElementById('app')!);
