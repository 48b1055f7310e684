/**
 * Small pieces every page uses: in-console links, the loading hook, the status line of a load,
 * the polite announcer (one aria-live region for the whole console) and the severity badge.
 */
import { html } from 'htm/preact';
import type { ComponentChildren, VNode } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { follow } from '../router';
import { problemText } from '../format';
import type { Severity } from '../types';

export function Link(props: { href: string; children: ComponentChildren; label?: string; title?: string; current?: boolean }): VNode {
  return html`<a href=${props.href} onClick=${follow} aria-label=${props.label} title=${props.title} aria-current=${props.current ? 'page' : undefined}>${props.children}</a>`;
}

/** An identity or URI that may wrap after each "/" (never inside a segment); <wbr> adds no text. */
export function Breakable(props: { text: string }): VNode {
  const parts = props.text.split('/');
  return html`${parts.map((p, i) => (i < parts.length - 1 ? html`${p}/<wbr />` : p))}`;
}

export type Loaded<T> =
  | { status: 'loading'; data?: undefined; error?: undefined; reload: () => void }
  | { status: 'ok'; data: T; error?: undefined; reload: () => void }
  | { status: 'error'; data?: undefined; error: unknown; reload: () => void };

/** Runs load() when a dependency changes (and on reload()); an answer for old dependencies is dropped. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [nonce, setNonce] = useState(0);
  const [state, setState] = useState<{ status: 'loading' } | { status: 'ok'; data: T } | { status: 'error'; error: unknown }>({ status: 'loading' });
  useEffect(() => {
    let live = true;
    setState({ status: 'loading' });
    load().then(
      (data) => live && setState({ status: 'ok', data }),
      (error: unknown) => live && setState({ status: 'error', error }),
    );
    return () => {
      live = false;
    };
  }, [...deps, nonce]);
  return { ...state, reload: () => setNonce((n) => n + 1) } as Loaded<T>;
}

/** "Loading …" while loading, the CA's problem as an alert on failure, else nothing. */
export function LoadStatus(props: { state: Loaded<unknown>; what: string }): VNode | null {
  if (props.state.status === 'loading') return html`<p class="muted">Loading ${props.what}…</p>`;
  if (props.state.status === 'error') return html`<p class="error" role="alert">Could not load ${props.what}: ${problemText(props.state.error)}</p>`;
  return null;
}

let setAnnouncement: ((text: string) => void) | undefined;

/** Says text through the console's polite live region (results counts, a revocation). */
export function announce(text: string): void {
  // Emptied first, so that the same words said twice are read twice.
  setAnnouncement?.('');
  setTimeout(() => setAnnouncement?.(text), 50);
}

export function Announcer(): VNode {
  const [text, setText] = useState('');
  useEffect(() => {
    setAnnouncement = setText;
    return () => {
      setAnnouncement = undefined;
    };
  }, []);
  return html`<div class="visually-hidden" role="status" aria-live="polite" aria-atomic="true" data-announcer>${text}</div>`;
}

const SEVERITY_TEXT: Record<Severity, string> = { none: 'OK', warning: 'Warning', critical: 'Critical' };

/**
 * Severity by text and shape as well as colour (WCAG 1.4.1): a circle with a tick for none, a
 * triangle with "!" for warning, an octagon with "×" for critical. The shape is decoration
 * (aria-hidden); the word is what a screen reader says.
 */
export function SeverityBadge(props: { severity: Severity }): VNode {
  const s = props.severity;
  const shape =
    s === 'critical'
      ? html`<path d="M5 1h6l4 4v6l-4 4H5l-4-4V5z" /><path class="mark" d="M5.5 5.5l5 5m0-5l-5 5" />`
      : s === 'warning'
        ? html`<path d="M8 1l7 13H1z" /><path class="mark" d="M8 5.5v4m0 2v1" />`
        : html`<circle cx="8" cy="8" r="7" /><path class="mark" d="M4.5 8.5l2.5 2.5 4.5-5" />`;
  return html`<span class="severity severity-${s}" data-severity=${s}
    ><svg class="severity-icon" viewBox="0 0 16 16" width="16" height="16" aria-hidden="true" focusable="false">${shape}</svg
    ><span class="severity-text">${SEVERITY_TEXT[s] ?? s}</span></span
  >`;
}
