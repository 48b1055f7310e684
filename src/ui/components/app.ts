/**
 * The console's shell: sign-in until a token is held, then a skip link, the navigation, the
 * page of the current route and the live region. After every navigation the page's heading
 * takes the focus, so that the keyboard and a screen reader start on the new page.
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useEffect, useLayoutEffect, useState } from 'preact/hooks';
import { relative } from '../format';
import { links, useRoute, type Route } from '../router';
import { onSessionChange, session, signOut } from '../session';
import { CertificatePage } from './certificate';
import { Announcer, announce, Link } from './common';
import { IdentityPage } from './identity';
import { OverviewPage } from './overview';
import { SearchPage } from './search';
import { SignInPage } from './sign-in';

function title(route: Route): string {
  switch (route.page) {
    case 'overview':
      return 'Fleet overview';
    case 'search':
      return route.q ? `Search: ${route.q}` : 'Search';
    case 'identity':
      return route.name;
    case 'certificate':
      return `Certificate ${route.serial}`;
    default:
      return 'Not found';
  }
}

function Page(props: { route: Route }): VNode {
  const r = props.route;
  switch (r.page) {
    case 'overview':
      return html`<${OverviewPage} />`;
    case 'search':
      return html`<${SearchPage} by=${r.by} q=${r.q} />`;
    case 'identity':
      return html`<${IdentityPage} key=${r.name} name=${r.name} />`;
    case 'certificate':
      return html`<${CertificatePage} key=${r.serial} serial=${r.serial} />`;
    default:
      return html`<div class="page"><h1 tabindex="-1">Not found</h1><p>The console has no page at <code>${r.path}</code>.</p>
        <p><${Link} href=${links.overview()}>Go to the fleet overview</${Link}></p></div>`;
  }
}

export function App(): VNode {
  const [, setTick] = useState(0);
  const { route, visit, keepFocus } = useRoute();
  const s = session();
  useEffect(() => onSessionChange(() => setTick((t) => t + 1)), []);
  useEffect(() => {
    document.title = `${s ? title(route) : 'Sign in'} · service-ca`;
  }, [route, s]);
  // A new page, or a new session: the heading takes the focus (not on the first load, where the
  // skip link must be the first Tab stop), as soon as it is in the DOM, before a key can land
  // elsewhere.
  useLayoutEffect(() => {
    if (visit > 0 && !keepFocus) document.querySelector<HTMLElement>('main h1')?.focus();
  }, [visit]);
  useLayoutEffect(() => {
    if (s) {
      document.querySelector<HTMLElement>('main h1')?.focus();
      announce('Signed in');
    }
  }, [s?.token]);

  if (!s) return html`<${SignInPage} /><${Announcer} />`;
  const here = route.page;
  return html`<a class="skip-link" href="#main">Skip to content</a>
    <header class="top">
      <p class="brand">service-ca <span>admin console</span></p>
      <nav aria-label="Console">
        <ul>
          <li><${Link} href=${links.overview()} current=${here === 'overview'}>Overview</${Link}></li>
          <li><${Link} href=${'/ui/search'} current=${here === 'search'}>Search</${Link}></li>
        </ul>
      </nav>
      <div class="who">
        <span>${s.subject ? html`Signed in as <code>${s.subject}</code>` : 'Signed in'}${s.expires ? `, token expires ${relative(s.expires)}` : ''}</span>
        <button type="button" onClick=${() => signOut('Signed out. The token is forgotten.')}>Sign out</button>
      </div>
    </header>
    <main id="main" tabindex="-1"><${Page} route=${route} /></main>
    <${Announcer} />`;
}
