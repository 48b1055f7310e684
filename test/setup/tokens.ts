/**
 * A test identity provider: real keys (jose), a JWKS file, and tokens minted with any claim or
 * header a test needs, including the malformed ones.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeAtExit } from './cleanup.js';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export interface TestIssuer {
  issuer: string;
  audience: string;
  alg: string;
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  jwksPath: string;
  mint(claims?: JWTPayload & { sub?: string }, options?: MintOptions): Promise<string>;
}

export interface MintOptions {
  /** Seconds from now; default 300. */
  ttl?: number;
  iat?: number | null;
  exp?: number | null;
  nbf?: number;
  jti?: string | null;
  header?: Record<string, unknown>;
  key?: CryptoKey;
  alg?: string;
  iss?: string;
  aud?: string | string[];
}

export async function createTestIssuer(options: { alg?: 'ES256' | 'RS256' | 'EdDSA'; issuer?: string; audience?: string } = {}): Promise<TestIssuer> {
  const alg = options.alg ?? 'ES256';
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `k-${randomUUID().slice(0, 8)}`;
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-issuer-'));
  removeAtExit(dir);
  const jwksPath = join(dir, 'jwks.json');
  writeFileSync(jwksPath, JSON.stringify({ keys: [publicJwk] }));
  const issuer = options.issuer ?? 'https://issuer.test';
  const audience = options.audience ?? 'service-ca';
  return {
    issuer,
    audience,
    alg,
    kid,
    privateKey,
    publicJwk,
    jwksPath,
    async mint(claims = {}, o = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload: JWTPayload = { iss: o.iss ?? issuer, aud: o.aud ?? audience, ...claims };
      if (o.iat !== null) payload.iat = o.iat ?? now;
      if (o.exp !== null) payload.exp = o.exp ?? now + (o.ttl ?? 300);
      if (o.nbf !== undefined) payload.nbf = o.nbf;
      if (o.jti !== null) payload.jti = o.jti ?? randomUUID();
      return new SignJWT(payload)
        .setProtectedHeader({ alg: o.alg ?? alg, kid, typ: 'JWT', ...o.header })
        .sign(o.key ?? privateKey);
    },
  };
}

/**
 * The `auth.issuers[]` entry that trusts this test issuer under `name` (its JWKS file, its one
 * algorithm, tokens up to an hour), with `extra` keys (requireJti, …) over it.
 */
export function issuerConfig(issuer: TestIssuer, name = 'test', extra: Record<string, unknown> = {}) {
  return { name, issuer: issuer.issuer, audience: issuer.audience, jwks: { file: issuer.jwksPath }, algorithms: [issuer.alg], maxTokenAge: '1h', ...extra };
}
