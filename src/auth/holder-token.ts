/**
 * Certificate-holder tokens for `POST /v1/certificates/renew` (docs/api.md "Certificate holder"):
 * a JWT signed with the private key of a certificate this CA issued, carrying that certificate
 * (leaf only) in the JOSE header `x5c` (RFC 7515 §4.1.6), with `aud` = service-ca:renew, `iat`,
 * `exp` at most 5 minutes after `iat`, and a `jti`. This module checks the token against the
 * certificate's own key; whether the certificate is ours, current and unrevoked is decided by
 * policy against the database.
 */
import { X509Certificate, type KeyObject } from 'node:crypto';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import { MAX_TOKEN_LENGTH } from './authenticator.js';

export const RENEW_AUDIENCE = 'service-ca:renew';
export const MAX_HOLDER_TOKEN_LIFETIME = 300;

export interface HolderToken {
  /** The presented certificate, DER. */
  certificateDer: Buffer;
  jti: string;
  expiresAt: Date;
  claims: JWTPayload;
}

const unauthorized = (detail: string) => new CaError('unauthorized', detail);

/**
 * The JWS algorithms a certificate's key may sign with. Only ever called on a certificate this
 * CA signed (whose key the CA checked): node aborts the process when asked for the details of
 * some malformed EC keys that OpenSSL accepts, such as the point at infinity.
 */
function algorithmsFor(key: KeyObject): string[] {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return key.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? ['ES384'] : ['ES256'];
    case 'rsa':
      return ['RS256', 'PS256'];
    case 'ed25519':
      return ['EdDSA'];
    default:
      return [];
  }
}

/**
 * Verifies a renewal token: its x5c certificate must have been signed by one of `issuers` (the
 * configured intermediates; checked first, before anything reads the certificate's own key),
 * and the token by that certificate's key. Whether the certificate is still current is the
 * caller's question.
 */
export async function verifyHolderToken(token: string, clock: Clock, clockToleranceSeconds: number, issuers: readonly X509Certificate[]): Promise<HolderToken> {
  if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw unauthorized('the bearer token is empty or too long');
  let header;
  try {
    header = decodeProtectedHeader(token);
  } catch {
    throw unauthorized('the bearer token is not a JWT');
  }
  if (header.jku !== undefined || header.x5u !== undefined || header.jwk !== undefined) {
    throw unauthorized('a renewal token names its certificate in x5c only');
  }
  if (!Array.isArray(header.x5c) || header.x5c.length !== 1 || typeof header.x5c[0] !== 'string') {
    throw unauthorized('a renewal token carries exactly its certificate (leaf only) in x5c');
  }
  let cert: X509Certificate;
  let der: Buffer;
  try {
    der = Buffer.from(header.x5c[0], 'base64');
    cert = new X509Certificate(der);
  } catch {
    throw unauthorized('the x5c certificate does not parse');
  }
  let key: KeyObject;
  try {
    if (!issuers.some((issuer) => cert.checkIssued(issuer) && cert.verify(issuer.publicKey))) throw new Error('foreign');
    key = cert.publicKey;
  } catch {
    throw unauthorized('the x5c certificate was not issued by this CA');
  }
  const algorithms = algorithmsFor(key);
  let claims: JWTPayload;
  try {
    ({ payload: claims } = await jwtVerify(token, key, {
      audience: RENEW_AUDIENCE,
      algorithms,
      clockTolerance: clockToleranceSeconds,
      currentDate: clock.now(),
      requiredClaims: ['iat', 'exp', 'jti'],
      maxTokenAge: MAX_HOLDER_TOKEN_LIFETIME,
    }));
  } catch (err) {
    if (err instanceof joseErrors.JWTExpired) throw unauthorized('the renewal token has expired');
    if (err instanceof joseErrors.JWTClaimValidationFailed) throw unauthorized(`the renewal token's "${err.claim}" claim is not acceptable`);
    throw unauthorized('the renewal token is not signed by the x5c certificate\'s key');
  }
  if (claims.exp! - claims.iat! > MAX_HOLDER_TOKEN_LIFETIME) throw unauthorized('a renewal token may live at most 5 minutes (exp - iat)');
  if (typeof claims.jti !== 'string' || claims.jti.length === 0 || claims.jti.length > 256) throw unauthorized('the renewal token needs a jti');
  return { certificateDer: der, jti: claims.jti, expiresAt: new Date(claims.exp! * 1000), claims };
}
