/**
 * Where an issuer's verification keys come from: a JWKS file, inline keys, a JWKS URL, or OIDC
 * discovery from the issuer (`{issuer}/.well-known/openid-configuration`, as Kubernetes serves
 * it). Remote sets are cached and refetched as auth/remote-key-set.ts says, so an identity
 * provider's key rotation needs no restart and its outage does not stop issuance at once. Only
 * keys named by configuration are ever used: header `jku`, `x5u`, `jwk` and `x5c` are never read.
 */
import { readFileSync, statSync } from 'node:fs';
import { createLocalJWKSet, type JSONWebKeySet } from 'jose';
import type { IssuerConfig } from '../config.js';
import { CaError } from '../errors.js';
import { backoffMs, fetchError, remoteKeySet, unavailable, type KeyResolver, type KeySetEvents, type KeySourceOptions } from './remote-key-set.js';

export type { KeyResolver, KeySetEvents, KeySourceOptions };

export const DEFAULT_KEY_SOURCE_OPTIONS: KeySourceOptions = { cooldownMs: 30_000, cacheMaxAgeMs: 10 * 60_000, staleMs: 24 * 3600_000, timeoutMs: 5_000 };

function readJwksFile(path: string): JSONWebKeySet {
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  if (!parsed || typeof parsed !== 'object' || !Array.isArray((parsed as JSONWebKeySet).keys)) {
    throw new CaError('serverInternal', `jwks file ${path} has no "keys" array`);
  }
  return parsed as JSONWebKeySet;
}

/** A JWKS file, re-read when it changes on disk (a mounted ConfigMap rotates this way). */
function fileKeys(path: string, options: KeySourceOptions): KeyResolver {
  let mtime = statSync(path).mtimeMs;
  let resolver = createLocalJWKSet(readJwksFile(path));
  let checkedAt = Date.now();
  return async (header, token) => {
    try {
      return await resolver(header, token);
    } catch (err) {
      const now = Date.now();
      if ((err as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY' || now - checkedAt < Math.min(options.cooldownMs, 5_000)) throw err;
      checkedAt = now;
      const m = statSync(path).mtimeMs;
      if (m === mtime) throw err;
      mtime = m;
      resolver = createLocalJWKSet(readJwksFile(path));
      return resolver(header, token);
    }
  };
}

/**
 * OIDC discovery: the issuer's metadata names its jwks_uri; its `issuer` must match exactly. One
 * discovery fetch is in flight at a time (concurrent tokens wait for it), and after a failure
 * the next is tried only after a backoff, whatever the number of tokens asking.
 */
function discoveredKeys(config: IssuerConfig, options: KeySourceOptions, events?: KeySetEvents): KeyResolver {
  const issuer = config.issuer;
  const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
  let resolver: KeyResolver | undefined;
  let pending: Promise<KeyResolver> | undefined;
  let failures = 0;
  let retryAt = 0;

  async function discover(): Promise<KeyResolver> {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(options.timeoutMs), redirect: 'error' });
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`HTTP ${res.status}`);
      }
      const meta = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
      if (meta.issuer !== issuer) throw new Error('discovery document names another issuer');
      if (typeof meta.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
      const jwksUri = new URL(meta.jwks_uri);
      if (jwksUri.protocol !== 'https:' && jwksUri.protocol !== 'http:') throw new Error('jwks_uri is not http(s)');
      failures = 0;
      resolver = remoteKeySet(config.name, jwksUri, options, events);
      return resolver;
    } catch (err) {
      failures++;
      const wait = backoffMs(failures, options.cooldownMs);
      retryAt = Date.now() + wait;
      events?.fetchFailed(config.name, { url, error: fetchError(err), failures, retryInSeconds: wait / 1000 });
      throw unavailable('the identity provider\'s discovery document could not be read', wait, err);
    }
  }

  return async (header, token) => {
    if (!resolver) {
      if (!pending) {
        const now = Date.now();
        if (now < retryAt) throw unavailable('the identity provider\'s keys are not available yet', retryAt - now);
        const current = discover();
        pending = current;
        current.then(
          () => pending === current && (pending = undefined),
          () => pending === current && (pending = undefined),
        );
      }
      await pending;
    }
    return resolver!(header, token);
  };
}

/** The key resolver for one configured issuer. */
export function keyResolverFor(issuer: IssuerConfig, defaults: KeySourceOptions = DEFAULT_KEY_SOURCE_OPTIONS, events?: KeySetEvents): KeyResolver {
  const options: KeySourceOptions = {
    ...defaults,
    cooldownMs: issuer.jwksCooldown * 1000,
    cacheMaxAgeMs: issuer.jwksCacheMaxAge * 1000,
    staleMs: issuer.jwksStaleTtl * 1000,
  };
  if (issuer.secret !== undefined) {
    const secret = new TextEncoder().encode(issuer.secret);
    return async () => secret;
  }
  const jwks = issuer.jwks!;
  if ('file' in jwks) return fileKeys(jwks.file, options);
  if ('keys' in jwks) return createLocalJWKSet({ keys: jwks.keys as JSONWebKeySet['keys'] });
  if ('url' in jwks) return remoteKeySet(issuer.name, new URL(jwks.url), options, events);
  return discoveredKeys(issuer, options, events);
}
