/**
 * Signing in: the admin pastes a token (see docs/api.md "Getting an admin token"); the console
 * checks it with one admin call and keeps it in memory only (session.ts).
 */
import { html } from 'htm/preact';
import type { VNode } from 'preact';
import { useLayoutEffect, useRef, useState } from 'preact/hooks';
import { ApiError, verifyAdminToken } from '../api';
import { lastSignOutReason, signIn } from '../session';

export function SignInPage(): VNode {
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const reason = lastSignOutReason();
  const input = useRef<HTMLInputElement>(null);
  // The one field of the page takes the focus when it opens, and again after a refusal.
  useLayoutEffect(() => {
    input.current?.focus();
  }, [error]);

  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim().replace(/^bearer\s+/i, '');
    if (!t) {
      setError('Paste an admin token first.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await verifyAdminToken(t);
      setToken('');
      signIn(t);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) setError(`The CA refused this token: ${err.message}`);
      else if (err instanceof ApiError && err.status === 403) setError('This token is valid, but its identity is not an admin (auth.admins).');
      else setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return html`<main id="main" class="sign-in" tabindex="-1">
    <h1 tabindex="-1">service-ca admin console</h1>
    ${reason ? html`<p class="notice" role="alert">${reason}</p>` : null}
    <form onSubmit=${submit} aria-labelledby="sign-in-heading" novalidate>
      <h2 id="sign-in-heading">Sign in</h2>
      <div class="field">
        <label for="token">Admin token</label>
        <input
          id="token"
          ref=${input}
          type="password"
          autocomplete="off"
          spellcheck=${false}
          aria-describedby="token-help${error ? ' token-error' : ''}"
          aria-invalid=${error ? 'true' : undefined}
          value=${token}
          onInput=${(e: Event) => setToken((e.currentTarget as HTMLInputElement).value)}
        />
      </div>
      <p id="token-help" class="help">
        A JWT whose identity is listed under <code>auth.admins</code>. The console keeps it in this page's memory only: it is
        never stored, and reloading the page or signing out forgets it.
      </p>
      ${error ? html`<p id="token-error" class="error" role="alert">${error}</p>` : null}
      <button type="submit" disabled=${busy}>${busy ? 'Checking…' : 'Sign in'}</button>
    </form>
  </main>`;
}
