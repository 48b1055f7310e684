/**
 * One challenge's validation from the CA (docs/api.md "ACME"): by its type, at most ATTEMPTS
 * attempts, waiting between them (a client's responder that is a moment late still passes).
 * Each attempt has one deadline for all of it (lookups, connections, redirects, handshake,
 * answer): a responder that trickles its answer a byte at a time loses at the deadline, as one
 * that never answers does. The outcome is the ACME problem document of the last failure, or
 * `stopped` when the process is shutting down (nothing is recorded: the claim lapses).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { deadline } from '../../../deadline.js';
import { CaError } from '../../../errors.js';
import type { AcmeChallengeType, AcmeIdentifier } from '../../../store/store.js';
import { validateDns01 } from './dns-01.js';
import { validateHttp01 } from './http-01.js';
import type { NameResolver } from './resolve.js';
import { validateTlsAlpn01 } from './tls-alpn-01.js';

export const ATTEMPTS = 3;
const BACKOFF_MS = [500, 1500];

/** The longest a validation can take: every attempt at its deadline, and the waits between. */
export const longestValidationMs = (timeoutMs: number) => ATTEMPTS * timeoutMs + BACKOFF_MS.reduce((a, b) => a + b, 0);

export interface ValidationSettings {
  resolver: NameResolver;
  ports: { http01: number; tlsalpn01: number };
  timeoutMs: number;
}

export type ValidationOutcome = { valid: true } | { valid: false; error: CaError } | 'stopped';

function attempt(settings: ValidationSettings, type: AcmeChallengeType, identifier: AcmeIdentifier, keyAuthorization: string, token: string, mayFollow: (host: string) => boolean, signal: AbortSignal) {
  switch (type) {
    case 'http-01':
      return validateHttp01({ resolver: settings.resolver, port: settings.ports.http01, httpsPort: settings.ports.tlsalpn01, timeoutMs: settings.timeoutMs, mayFollow, signal }, identifier.value, token, keyAuthorization);
    case 'dns-01':
      return validateDns01(settings.resolver, identifier.value, keyAuthorization);
    case 'tls-alpn-01':
      return validateTlsAlpn01(settings.resolver, settings.ports.tlsalpn01, settings.timeoutMs, identifier.value, keyAuthorization, signal);
  }
}

/** Runs `work` until `signal` aborts; at the abort it fails with `onAbort()`, whatever `work` is doing (its sockets listen to the same signal). */
function until<T>(work: Promise<T>, signal: AbortSignal, onAbort: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(onAbort());
    if (signal.aborted) abort();
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

export async function validateChallenge(
  settings: ValidationSettings,
  challenge: { type: AcmeChallengeType; token: string },
  identifier: AcmeIdentifier,
  keyAuthorization: string,
  mayFollow: (host: string) => boolean,
  stop: AbortSignal,
): Promise<ValidationOutcome> {
  let last: CaError = new CaError('connection', 'not attempted');
  for (let i = 0; i < ATTEMPTS; i++) {
    try {
      if (i > 0) await sleep(BACKOFF_MS[i - 1] ?? 1500, undefined, { signal: stop });
      // Not AbortSignal.any() over AbortSignal.timeout(): see src/deadline.ts.
      const limit = deadline(settings.timeoutMs, stop);
      try {
        const work = attempt(settings, challenge.type, identifier, keyAuthorization, challenge.token, mayFollow, limit.signal);
        work.catch(() => {}); // settled by `until` below; a late rejection after the deadline is not unhandled
        await until(work, limit.signal, () => new CaError('connection', `validating ${identifier.value} took longer than ${settings.timeoutMs} ms`));
      } finally {
        limit.done();
      }
      return { valid: true };
    } catch (err) {
      if (stop.aborted) return 'stopped';
      last = err instanceof CaError ? err : new CaError('connection', `validation failed: ${(err as Error).message}`);
    }
  }
  return { valid: false, error: last };
}
