/**
 * ACME request authentication (RFC 8555 §6.2, §7.3.4): every POST is a flattened JWS whose
 * protected header names the algorithm, a nonce, the request URL and exactly one of `jwk` (a new
 * account, or a certificate's key in revokeCert) or `kid` (an account URL). This module checks
 * the form and the signature with jose; nonces and accounts are policy's (policy/acme/). No
 * unprotected header, no unencoded payload, no `crit`, no MAC algorithm, no private key members.
 */
import { calculateJwkThumbprint, flattenedVerify, importJWK, type FlattenedJWSInput, type JWK } from 'jose';
import { CaError } from '../errors.js';

/** The account key algorithms accepted, with the key each needs. */
export const ACME_ALGORITHMS = ['ES256', 'ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'] as const;
export type AcmeAlgorithm = (typeof ACME_ALGORITHMS)[number];

const CURVE_OF: Partial<Record<AcmeAlgorithm, string>> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521', EdDSA: 'Ed25519' };
const MIN_RSA_BITS = 2048;
const MAX_RSA_BITS = 8192;

export interface AcmeProtectedHeader {
  alg: AcmeAlgorithm;
  /** Empty in keyChange's inner JWS, which carries none. */
  nonce: string;
  url: string;
  jwk?: JWK;
  kid?: string;
}

export interface ParsedAcmeJws {
  header: AcmeProtectedHeader;
  jws: FlattenedJWSInput;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const B64URL = /^[A-Za-z0-9_-]*$/;

function decodeJson(part: string, what: string): unknown {
  if (!B64URL.test(part)) throw new CaError('malformed', `${what} is not base64url`);
  try {
    return JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw new CaError('malformed', `${what} is not base64url-encoded JSON`);
  }
}

/**
 * The public members of an account or certificate key in JWK form, checked: EC P-256/384/521,
 * RSA of at least 2048 bits, or Ed25519. A JWK holding private members is refused.
 */
export function publicJwk(value: unknown): JWK {
  if (!isRecord(value)) throw new CaError('malformed', 'jwk must be a JSON object');
  if ('d' in value || 'p' in value || 'k' in value) throw new CaError('badPublicKey', 'the jwk holds private key material: send the public key only');
  const text = (name: string) => {
    const v = value[name];
    if (typeof v !== 'string' || v.length === 0 || !B64URL.test(v)) throw new CaError('badPublicKey', `jwk.${name} must be a base64url string`);
    return v;
  };
  switch (value.kty) {
    case 'EC': {
      const crv = value.crv;
      if (crv !== 'P-256' && crv !== 'P-384' && crv !== 'P-521') throw new CaError('badPublicKey', 'an EC account key must be on P-256, P-384 or P-521');
      return { kty: 'EC', crv, x: text('x'), y: text('y') };
    }
    case 'RSA': {
      const n = text('n');
      const e = text('e');
      // The modulus's bit length, not its octets': leading zero octets add nothing.
      const modulus = Buffer.from(n, 'base64url');
      const bits = modulus.length > 0 ? BigInt(`0x${modulus.toString('hex')}`).toString(2).length : 0;
      if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) throw new CaError('badPublicKey', `an RSA account key must have ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`);
      // The public exponent: odd, 3 to 2^32 (no key generator makes larger ones; huge ones are a cost attack).
      const exponent = Buffer.from(e, 'base64url');
      const ev = exponent.length > 0 && exponent.length <= 5 ? BigInt(`0x${exponent.toString('hex')}`) : 0n;
      if (ev < 3n || ev > 2n ** 32n || ev % 2n === 0n) throw new CaError('badPublicKey', 'an RSA account key\'s exponent must be odd and between 3 and 2^32');
      return { kty: 'RSA', n, e };
    }
    case 'OKP':
      if (value.crv !== 'Ed25519') throw new CaError('badPublicKey', 'an OKP account key must be Ed25519');
      return { kty: 'OKP', crv: 'Ed25519', x: text('x') };
    default:
      throw new CaError('badPublicKey', 'jwk.kty must be EC, RSA or OKP');
  }
}

/** RFC 7638 thumbprint (SHA-256, base64url) of a public JWK. */
export const thumbprintOf = (jwk: JWK): Promise<string> => calculateJwkThumbprint(jwk, 'sha256');

/**
 * Checks the request's JWS form and protected header (RFC 8555 §6.2); the signature is checked
 * by verifyAcmeJws. `inner`: keyChange's inner JWS (§7.3.5), signed with the new key's `jwk`
 * and carrying no nonce.
 */
export function parseAcmeJws(body: unknown, options: { inner?: boolean } = {}): ParsedAcmeJws {
  if (!isRecord(body)) throw new CaError('malformed', 'the body must be a flattened JWS (a JSON object)');
  if ('signatures' in body) throw new CaError('malformed', 'a JWS with several signatures is not accepted: use the flattened form');
  if ('header' in body) throw new CaError('malformed', 'a JWS unprotected header is not accepted');
  const { protected: prot, payload, signature } = body;
  if (typeof prot !== 'string' || typeof payload !== 'string' || typeof signature !== 'string') {
    throw new CaError('malformed', 'the JWS needs "protected", "payload" and "signature" strings');
  }
  if (!B64URL.test(payload) || !B64URL.test(signature)) throw new CaError('malformed', 'the JWS payload and signature must be base64url');
  const header = decodeJson(prot, 'the protected header');
  if (!isRecord(header)) throw new CaError('malformed', 'the protected header must be a JSON object');
  if (header.alg === 'none' || typeof header.alg !== 'string' || /^HS/.test(header.alg)) {
    throw new CaError('badSignatureAlgorithm', `alg must be one of ${ACME_ALGORITHMS.join(', ')}`);
  }
  if (!(ACME_ALGORITHMS as readonly string[]).includes(header.alg)) throw new CaError('badSignatureAlgorithm', `alg must be one of ${ACME_ALGORITHMS.join(', ')}`);
  if ('b64' in header || 'crit' in header) throw new CaError('malformed', 'the protected header must not carry "b64" or "crit"');
  if (options.inner) {
    if ('nonce' in header) throw new CaError('malformed', 'the inner JWS of a key change must not carry a nonce');
    if (!('jwk' in header)) throw new CaError('malformed', 'the inner JWS of a key change must carry the new key as "jwk"');
  } else if (typeof header.nonce !== 'string' || header.nonce.length === 0) throw new CaError('badNonce', 'the protected header has no nonce');
  if (typeof header.url !== 'string' || header.url.length === 0) throw new CaError('unauthorized', 'the protected header has no url');
  const hasJwk = 'jwk' in header;
  const hasKid = 'kid' in header;
  if (hasJwk === hasKid) throw new CaError('malformed', 'the protected header must carry exactly one of "jwk" and "kid"');
  if (hasKid && typeof header.kid !== 'string') throw new CaError('malformed', 'kid must be an account URL');
  return {
    header: {
      alg: header.alg as AcmeAlgorithm,
      nonce: typeof header.nonce === 'string' ? header.nonce : '',
      url: header.url,
      ...(hasJwk ? { jwk: publicJwk(header.jwk) } : { kid: header.kid as string }),
    },
    jws: { protected: prot, payload, signature },
  };
}

/** Checks that `alg` suits the key (ES256 on P-256, EdDSA on Ed25519, RS256/PS256 on RSA). */
function checkAlgorithmFits(alg: AcmeAlgorithm, jwk: JWK): void {
  const curve = CURVE_OF[alg];
  const fits = curve ? jwk.crv === curve : jwk.kty === 'RSA';
  if (!fits) throw new CaError('badSignatureAlgorithm', `alg ${alg} does not suit this ${jwk.kty} key${jwk.crv ? ` (${jwk.crv})` : ''}`);
}

/** Verifies the signature with `jwk` (the header's own, or the account's); returns the payload bytes. */
export async function verifyAcmeJws(parsed: ParsedAcmeJws, jwk: JWK): Promise<Uint8Array> {
  checkAlgorithmFits(parsed.header.alg, jwk);
  let key;
  try {
    key = await importJWK(jwk, parsed.header.alg);
  } catch {
    throw new CaError('badPublicKey', 'the key cannot be used with this algorithm');
  }
  try {
    const { payload } = await flattenedVerify(parsed.jws, key, { algorithms: [parsed.header.alg] });
    return payload;
  } catch {
    throw new CaError('malformed', 'the JWS signature does not verify');
  }
}

/** The payload as JSON: an object, or undefined for POST-as-GET (an empty payload). */
export function jsonPayload(payload: Uint8Array): Record<string, unknown> | undefined {
  if (payload.length === 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(payload).toString('utf8'));
  } catch {
    throw new CaError('malformed', 'the JWS payload is not JSON');
  }
  if (!isRecord(value)) throw new CaError('malformed', 'the JWS payload must be a JSON object');
  return value;
}

const EAB_ALGORITHMS = ['HS256', 'HS384', 'HS512'];

/**
 * Checks an external account binding (RFC 8555 §7.3.4): a flattened JWS with an HMAC algorithm,
 * the binding's `kid`, the newAccount URL, and the account key as payload, MACed with the
 * binding's key. Returns the kid; `macKeyOf` gives the key for a kid.
 */
export async function verifyExternalAccountBinding(value: unknown, expect: { url: string; accountJwk: JWK }, macKeyOf: (kid: string) => Uint8Array): Promise<string> {
  if (!isRecord(value)) throw new CaError('malformed', 'externalAccountBinding must be a flattened JWS');
  const { protected: prot, payload, signature } = value;
  if (typeof prot !== 'string' || typeof payload !== 'string' || typeof signature !== 'string' || 'header' in value) {
    throw new CaError('malformed', 'externalAccountBinding needs "protected", "payload" and "signature" strings and no unprotected header');
  }
  const header = decodeJson(prot, 'the binding\'s protected header');
  if (!isRecord(header)) throw new CaError('malformed', 'the binding\'s protected header must be a JSON object');
  if (typeof header.alg !== 'string' || !EAB_ALGORITHMS.includes(header.alg)) throw new CaError('badSignatureAlgorithm', `the binding's alg must be one of ${EAB_ALGORITHMS.join(', ')}`);
  if ('nonce' in header) throw new CaError('malformed', 'the binding\'s protected header must not carry a nonce');
  if (typeof header.kid !== 'string' || header.kid.length === 0 || header.kid.length > 128) throw new CaError('malformed', 'the binding needs the kid it was given');
  if (header.url !== expect.url) throw new CaError('unauthorized', 'the binding\'s url is not this newAccount URL');
  const bound = publicJwk(decodeJson(payload, 'the binding\'s payload'));
  if ((await thumbprintOf(bound)) !== (await thumbprintOf(expect.accountJwk))) throw new CaError('unauthorized', 'the binding is for another account key');
  try {
    await flattenedVerify({ protected: prot, payload, signature }, macKeyOf(header.kid), { algorithms: [header.alg] });
  } catch {
    throw new CaError('unauthorized', 'the external account binding does not verify: wrong kid or HMAC key');
  }
  return header.kid;
}
