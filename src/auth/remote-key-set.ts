/**
 * A remote JWKS (a JWKS URL, or the `jwks_uri` OIDC discovery names), cached. jose's
 * createRemoteJWKSet is not used here because past its cacheMaxAge a failed refetch fails every
 * token (an identity provider's outage stops all issuance), and each request after a failure
 * fetches again. Here:
 * - one fetch is in flight at a time; every request that needs the set waits for that one;
 * - a set younger than `jwksCacheMaxAge` is used as is; an unknown `kid` refetches at most once
 *   per `jwksCooldown` (a key rotation needs no restart);
 * - past `jwksCacheMaxAge` the set is refetched; while that fails, the last good set is still
 *   used for `jwksStaleTtl` (reported through `events`: a log line and a metric), refetched in
 *   the background with backoff (1 s, doubling up to jwksCooldown), never once per request;
 * - with no set, or one older than jwksCacheMaxAge + jwksStaleTtl, tokens get 503 with
 *   Retry-After until a fetch succeeds (tried at most once per backoff step).
 */
import { createLocalJWKSet, errors as joseErrors, type CryptoKey, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters, type KeyObject } from 'jose';
import { CaError } from '../errors.js';

export type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey | KeyObject | Uint8Array>;

export interface KeySourceOptions {
  /** Least time between two refetches of a remote set on an unknown kid (ms); the longest backoff after failures. */
  cooldownMs: number;
  /** How long a fetched set is trusted before a refetch (ms). */
  cacheMaxAgeMs: number;
  /** How long past cacheMaxAgeMs the last good set is still used while refetches fail (ms). */
  staleMs: number;
  timeoutMs: number;
}

/** What an operator is told about an issuer's remote keys (a log line and a metric, wired in deps.ts). */
export interface KeySetEvents {
  /**
   * A fetch of the issuer's key set or discovery document failed. With `staleUntil`, the last
   * good set is still used until then; without, the issuer's tokens get 503 until a fetch succeeds.
   */
  fetchFailed(issuer: string, info: { url: string; error: string; failures: number; retryInSeconds: number; staleUntil?: Date }): void;
  /** Tokens are now verified with a set past jwksCacheMaxAge (stale), or with a fresh one again. */
  staleChanged(issuer: string, info: { stale: boolean; fetchedAt: Date; staleUntil?: Date }): void;
}

/** Wait after the n-th consecutive failed fetch: 1 s, doubling, at most the cool-down (and at least 1 s). */
export function backoffMs(failures: number, cooldownMs: number): number {
  return Math.min(1000 * 2 ** Math.min(failures - 1, 20), Math.max(1000, cooldownMs));
}

export function unavailable(detail: string, retryInMs: number, cause?: unknown): CaError {
  return new CaError('unavailable', detail, { cause, retryAfter: Math.max(1, Math.ceil(retryInMs / 1000)) });
}

/** The failure's text for the log: never the response body (the URL comes from configuration). */
export function fetchError(err: unknown): string {
  if (err instanceof Error && err.name === 'TimeoutError') return 'timed out';
  return err instanceof Error ? err.message : String(err);
}

async function fetchJwks(url: URL, timeoutMs: number): Promise<JSONWebKeySet> {
  // Redirects are not followed: the set comes from the URL configuration (or discovery) named.
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual', headers: { accept: 'application/json, application/jwk-set+json' } });
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  return (await res.json()) as JSONWebKeySet;
}

export function remoteKeySet(issuer: string, url: URL, options: KeySourceOptions, events?: KeySetEvents): KeyResolver {
  let local: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = 0;
  let failures = 0;
  let retryAt = 0;
  let pending: Promise<void> | undefined;
  let stale = false;
  const staleUntil = () => fetchedAt + options.cacheMaxAgeMs + options.staleMs;

  function reload(): Promise<void> {
    if (pending) return pending;
    const current = (async () => {
      try {
        // createLocalJWKSet refuses a document that is not a key set (JWKSInvalid).
        local = createLocalJWKSet(await fetchJwks(url, options.timeoutMs));
        fetchedAt = Date.now();
        failures = 0;
        retryAt = 0;
        if (stale) {
          stale = false;
          events?.staleChanged(issuer, { stale: false, fetchedAt: new Date(fetchedAt) });
        }
      } catch (err) {
        failures++;
        const wait = backoffMs(failures, options.cooldownMs);
        retryAt = Date.now() + wait;
        const usable = local !== undefined && staleUntil() > Date.now();
        events?.fetchFailed(issuer, { url: url.href, error: fetchError(err), failures, retryInSeconds: wait / 1000, ...(usable ? { staleUntil: new Date(staleUntil()) } : {}) });
        throw unavailable('the identity provider\'s keys could not be fetched', wait, err);
      }
    })();
    pending = current;
    current.then(
      () => pending === current && (pending = undefined),
      () => pending === current && (pending = undefined),
    );
    return current;
  }

  function markStale(): void {
    if (stale) return;
    stale = true;
    events?.staleChanged(issuer, { stale: true, fetchedAt: new Date(fetchedAt), staleUntil: new Date(staleUntil()) });
  }

  /** The set to verify with now, fetching or refetching it as the rules above say. */
  async function currentSet(): Promise<NonNullable<typeof local>> {
    const now = Date.now();
    if (local && now < fetchedAt + options.cacheMaxAgeMs) return local;
    if (local && now < staleUntil()) {
      if (failures === 0) {
        // The first refresh after the set aged out is waited for, as a first fetch would be.
        try {
          await reload();
          return local;
        } catch {
          // Fall through to the last good set.
        }
      } else if (!pending && now >= retryAt) {
        reload().catch(() => {});
      }
      markStale();
      return local;
    }
    if (!pending && now < retryAt) {
      throw unavailable('the identity provider\'s keys are not available (a fetch failed recently)', retryAt - now);
    }
    await reload();
    return local!;
  }

  return async (header, token) => {
    const set = await currentSet();
    try {
      return await set(header, token);
    } catch (err) {
      const now = Date.now();
      if (err instanceof joseErrors.JWKSNoMatchingKey && now >= fetchedAt + options.cooldownMs && (pending || now >= retryAt)) {
        await reload();
        return local!(header, token);
      }
      throw err;
    }
  };
}
