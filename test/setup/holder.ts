/**
 * Certificate holders for renewal tests (docs/api.md "Certificate holder"): a certificate issued by
 * the app together with its private key, and hand-built holder tokens with any header or claim
 * a test needs (jose, independent of the client's holderToken).
 */
import { X509Certificate, createPrivateKey, randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import type { Issuance, Problem } from '../../src/client/index.js';
import type { TestApp } from './app.js';
import { createKeyAndCsr, type ClientKeyType, type Names } from './csr.js';

export type Issued = Issuance;

export interface Holder {
  issued: Issued;
  keyPem: string;
  cert: X509Certificate;
}

export type { Problem };

/** Issues a certificate for names with an identity token for sub, or the token given (201 asserted by the caller's error). */
export async function issueHolder(app: TestApp, sub: string, names: Names, options: { keyType?: ClientKeyType; ttl?: string; token?: string } = {}): Promise<Holder> {
  const { keyPem, csrPem } = await createKeyAndCsr(options.keyType ?? 'p256', names);
  const res = await app.issue(sub, { csr: csrPem, ...(options.ttl ? { ttl: options.ttl } : {}) }, options.token ? { Authorization: `Bearer ${options.token}` } : {});
  const text = await res.text();
  if (res.status !== 201) throw new Error(`issuance for ${sub} answered ${res.status}: ${text}`);
  const issued = JSON.parse(text) as Issued;
  return { issued, keyPem, cert: new X509Certificate(issued.certificate) };
}

/** The JWS algorithm for a private key, the way a holder would choose it. */
export function algorithmFor(key: KeyObject): string {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'rsa') return 'RS256';
  return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'ES384' : 'ES256';
}

export interface HolderJwtOptions {
  /** Certificates for x5c (DER or PEM); default the holder's own certificate; null: no x5c header. */
  x5c?: (Buffer | string)[] | null;
  /** The signing key (PEM); default the holder's key. */
  keyPem?: string;
  aud?: string | null;
  iat?: number | null;
  exp?: number | null;
  jti?: string | null;
  header?: Record<string, unknown>;
  claims?: JWTPayload;
}

const der = (c: Buffer | string) => (typeof c === 'string' ? new X509Certificate(c).raw : c);

/** A holder token built by hand; by default exactly what docs/api.md asks for (2-minute lifetime). */
export async function holderJwt(holder: { certificate: string; keyPem: string }, o: HolderJwtOptions = {}): Promise<string> {
  const key = createPrivateKey(o.keyPem ?? holder.keyPem);
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = { ...o.claims };
  if (o.aud !== null) payload.aud = o.aud ?? 'service-ca:renew';
  if (o.iat !== null) payload.iat = o.iat ?? now;
  if (o.exp !== null) payload.exp = o.exp ?? now + 120;
  if (o.jti !== null) payload.jti = o.jti ?? randomUUID();
  const x5c = o.x5c === null ? {} : { x5c: (o.x5c ?? [holder.certificate]).map((c) => der(c).toString('base64')) };
  return new SignJWT(payload).setProtectedHeader({ alg: algorithmFor(key), ...x5c, ...o.header }).sign(key);
}

/** POST /v1/certificates/renew with a bearer token and a JSON body. */
export function postRenew(app: TestApp, token: string | undefined, body: unknown, base = app.api): Promise<Response> {
  return fetch(`${base}/v1/certificates/renew`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token !== undefined ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
}
