/**
 * The admin token, in memory only: a module variable of this page, never written to
 * localStorage, sessionStorage, a cookie or the URL. Reloading the page or closing the tab
 * forgets it; signing out drops it at once.
 */

export interface Session {
  token: string;
  /** The token's `sub` and `exp`, read (not verified) for display only: the CA checks the token. */
  subject: string | null;
  expires: Date | null;
}

let current: Session | null = null;
let signedOutReason: string | null = null;
const listeners = new Set<() => void>();

function claimsOf(token: string): { sub?: unknown; exp?: unknown } {
  try {
    const part = token.split('.')[1] ?? '';
    const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
    const claims: unknown = JSON.parse(json);
    return typeof claims === 'object' && claims !== null ? claims : {};
  } catch {
    return {};
  }
}

export function session(): Session | null {
  return current;
}

/** Why the last session ended when the console ended it (a refused token), for the sign-in page. */
export function lastSignOutReason(): string | null {
  return signedOutReason;
}

export function signIn(token: string): void {
  const claims = claimsOf(token);
  current = {
    token,
    subject: typeof claims.sub === 'string' ? claims.sub : null,
    expires: typeof claims.exp === 'number' ? new Date(claims.exp * 1000) : null,
  };
  signedOutReason = null;
  listeners.forEach((l) => l());
}

export function signOut(reason: string | null = null): void {
  current = null;
  signedOutReason = reason;
  listeners.forEach((l) => l());
}

export function onSessionChange(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
