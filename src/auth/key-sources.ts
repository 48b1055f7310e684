/**
 * Where an issuer's verification keys come from: a JWKS file, inline keys, a JWKS URL, or OIDC
 * discovery from the issuer (`{issuer}/.well-known/openid-configuration`, as Kubernetes serves
 * it). Remote sets are cached by jose and refetched on an unknown `kid`, at most once per
 * cool-down, so an identity provider's key rotation needs no restart. Only keys named by
 * configuration are ever used: header `jku`, `x5u`, `jwk` and `x5c` are never read.
 */
import { readFileSync, statSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, type JWSHeaderParameters, type FlattenedJWSInput, type JSONWebKeySet, type CryptoKey, type KeyObject } from 'jose';
import type { IssuerConfig } from '../config.js';
import { CaError } from '../errors.js';

export type KeyResolver = (header: JWSHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey | KeyObject | Uint8Array>;

export interface KeySourceOptions {
  /** Least time between two refetches of a remote set (ms). */
  cooldownMs: number;
  /** How long a fetched set is trusted before a refetch (ms). */
  cacheMaxAgeMs: number;
  timeoutMs: number;
}

export const DEFAULT_KEY_SOURCE_OPTIONS: KeySourceOptions = { cooldownMs: 30_000, cacheMaxAgeMs: 10 * 60_000, timeoutMs: 5_000 };

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

function remoteKeys(url: URL, options: KeySourceOptions): KeyResolver {
  return createRemoteJWKSet(url, {
    cooldownDuration: options.cooldownMs,
    cacheMaxAge: options.cacheMaxAgeMs,
    timeoutDuration: options.timeoutMs,
  });
}

/** OIDC discovery: the issuer's metadata names its jwks_uri; its `issuer` must match exactly. */
function discoveredKeys(issuer: string, options: KeySourceOptions): KeyResolver {
  let resolver: KeyResolver | undefined;
  let failedAt = 0;
  return async (header, token) => {
    if (!resolver) {
      if (Date.now() - failedAt < options.cooldownMs) {
        throw new CaError('unavailable', 'the identity provider\'s keys are not available yet', { retryAfter: Math.ceil(options.cooldownMs / 1000) });
      }
      const url = `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(options.timeoutMs), redirect: 'error' });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const meta = (await res.json()) as { issuer?: unknown; jwks_uri?: unknown };
        if (meta.issuer !== issuer) throw new Error('discovery document names another issuer');
        if (typeof meta.jwks_uri !== 'string') throw new Error('discovery document has no jwks_uri');
        const jwksUri = new URL(meta.jwks_uri);
        if (jwksUri.protocol !== 'https:' && jwksUri.protocol !== 'http:') throw new Error('jwks_uri is not http(s)');
        resolver = remoteKeys(jwksUri, options);
      } catch (err) {
        failedAt = Date.now();
        throw new CaError('unavailable', 'the identity provider\'s discovery document could not be read', { cause: err, retryAfter: Math.ceil(options.cooldownMs / 1000) });
      }
    }
    return resolver(header, token);
  };
}

/** The key resolver for one configured issuer. */
export function keyResolverFor(issuer: IssuerConfig, defaults: KeySourceOptions = DEFAULT_KEY_SOURCE_OPTIONS): KeyResolver {
  const options: KeySourceOptions = { ...defaults, cooldownMs: issuer.jwksCooldown * 1000, cacheMaxAgeMs: issuer.jwksCacheMaxAge * 1000 };
  if (issuer.secret !== undefined) {
    const secret = new TextEncoder().encode(issuer.secret);
    return async () => secret;
  }
  const jwks = issuer.jwks!;
  if ('file' in jwks) return fileKeys(jwks.file, options);
  if ('keys' in jwks) return createLocalJWKSet({ keys: jwks.keys as JSONWebKeySet['keys'] });
  if ('url' in jwks) return remoteKeys(new URL(jwks.url), options);
  return discoveredKeys(issuer.issuer, options);
}
