/**
 * Client-side routes under /ui (the server answers index.html for every path under /ui/ but
 * /ui/assets/), with the History API: links are real <a href> elements, so that Enter, a new tab
 * and the browser's back button all work.
 *
 *   /ui/                              fleet overview
 *   /ui/search?by=identity|serial|dns&q=…
 *   /ui/identity?name=<identity>      (a query parameter: identities hold slashes)
 *   /ui/certificates/<serial>
 */
import { useEffect, useState } from 'preact/hooks';

export type SearchKind = 'identity' | 'serial' | 'dns';

export type Route =
  | { page: 'overview' }
  | { page: 'search'; by: SearchKind; q: string }
  | { page: 'identity'; name: string }
  | { page: 'certificate'; serial: string }
  | { page: 'notFound'; path: string };

const BASE = '/ui';

export function parseRoute(pathname: string, search: string): Route {
  const params = new URLSearchParams(search);
  const path = pathname.replace(/\/+$/, '');
  if (path === BASE) return { page: 'overview' };
  if (path === `${BASE}/search`) {
    const by = params.get('by');
    return { page: 'search', by: by === 'serial' || by === 'dns' ? by : 'identity', q: params.get('q') ?? '' };
  }
  if (path === `${BASE}/identity` && params.get('name')) return { page: 'identity', name: params.get('name')! };
  const cert = /^\/ui\/certificates\/([0-9A-Fa-f:]{1,128})$/.exec(path);
  if (cert) return { page: 'certificate', serial: cert[1]!.toLowerCase() };
  return { page: 'notFound', path: pathname };
}

export const links = {
  overview: () => `${BASE}/`,
  search: (by: SearchKind, q: string) => `${BASE}/search?${new URLSearchParams({ by, q }).toString()}`,
  identity: (name: string) => `${BASE}/identity?${new URLSearchParams({ name }).toString()}`,
  certificate: (serial: string) => `${BASE}/certificates/${serial}`,
};

const listeners = new Set<(keepFocus: boolean) => void>();

/**
 * Goes to href inside the console. The page's heading then takes the focus (a keyboard or
 * screen-reader user starts at the new page), unless keepFocus: a search keeps it on its form.
 */
export function navigate(href: string, options: { replace?: boolean; keepFocus?: boolean } = {}): void {
  if (options.replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  listeners.forEach((l) => l(options.keepFocus ?? false));
}

window.addEventListener('popstate', () => listeners.forEach((l) => l(false)));

export function currentRoute(): Route {
  return parseRoute(location.pathname, location.search);
}

/** The current route, and a counter that changes with every navigation (to refocus the page). */
export function useRoute(): { route: Route; visit: number; keepFocus: boolean } {
  const [state, setState] = useState(() => ({ route: currentRoute(), visit: 0, keepFocus: false }));
  useEffect(() => {
    const update = (keepFocus: boolean) => setState((s) => ({ route: currentRoute(), visit: s.visit + 1, keepFocus }));
    listeners.add(update);
    return () => listeners.delete(update);
  }, []);
  return state;
}

/**
 * onClick for in-console links: a plain activation (click or Enter) navigates without a page
 * load; with a modifier key or another button the browser does what it always does.
 */
export function follow(e: MouseEvent): void {
  const a = e.currentTarget as HTMLAnchorElement;
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href')!);
}
