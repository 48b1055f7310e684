/**
 * Subject public keys: which SubjectPublicKeyInfos (RFC 5280 §4.1.2.7) we certify, and a node
 * KeyObject to verify with. API.md: ECDSA P-256/P-384, RSA 2048-4096 (odd exponent ≥ 65537),
 * Ed25519; anything else is badPublicKey.
 *
 * Why a fast path by hand: OpenSSL 3 decodes a DER SPKI through its generic decoder framework,
 * about 220 µs per key here, and each read of `asymmetricKeyDetails` costs about as much again;
 * that was a third of the CPU of an issuance. The three common keys have exactly one DER
 * encoding each (RFC 5480 §2, RFC 8410 §4: an uncompressed point or a raw Ed25519 key behind a
 * fixed header), so an exact header match tells the key type, and the key is imported from its
 * coordinates as a JWK, which OpenSSL builds directly (about 90 µs) and still checks on the
 * curve. Every other SPKI (RSA, compressed points, other encodings) takes the general path.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { CaError } from '../errors.js';
import type { KeyType } from '../model.js';
import { assertWellFormedDer, readTlv } from './der.js';

interface CanonicalForm {
  keyType: KeyType;
  header: Buffer;
  length: number;
  jwk(spki: Buffer): JsonWebKey;
}

const b64u = (b: Buffer) => b.toString('base64url');

const CANONICAL: CanonicalForm[] = [
  {
    keyType: 'ecdsa-p256',
    // SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING { 00 04 x y } }
    header: Buffer.from('3059301306072a8648ce3d020106082a8648ce3d03010703420004', 'hex'),
    length: 91,
    jwk: (k) => ({ kty: 'EC', crv: 'P-256', x: b64u(k.subarray(27, 59)), y: b64u(k.subarray(59, 91)) }),
  },
  {
    keyType: 'ecdsa-p384',
    // SEQUENCE { SEQUENCE { id-ecPublicKey, secp384r1 }, BIT STRING { 00 04 x y } }
    header: Buffer.from('3076301006072a8648ce3d020106052b8104002203620004', 'hex'),
    length: 120,
    jwk: (k) => ({ kty: 'EC', crv: 'P-384', x: b64u(k.subarray(24, 72)), y: b64u(k.subarray(72, 120)) }),
  },
  {
    keyType: 'ed25519',
    // SEQUENCE { SEQUENCE { id-Ed25519 }, BIT STRING { 00 key } }
    header: Buffer.from('302a300506032b6570032100', 'hex'),
    length: 44,
    jwk: (k) => ({ kty: 'OKP', crv: 'Ed25519', x: b64u(k.subarray(12, 44)) }),
  },
];

function canonicalForm(spki: Buffer): CanonicalForm | undefined {
  for (const form of CANONICAL) {
    if (spki.length === form.length && spki.subarray(0, form.header.length).equals(form.header)) return form;
  }
  return undefined;
}

/** The key type of a node key, or badPublicKey saying why it is not one we certify. */
function keyTypeOfKeyObject(key: KeyObject): KeyType {
  const type = key.asymmetricKeyType;
  if (type === 'ed25519') return 'ed25519';
  const details = key.asymmetricKeyDetails;
  if (type === 'ec') {
    const curve = details?.namedCurve;
    if (curve === 'prime256v1') return 'ecdsa-p256';
    if (curve === 'secp384r1') return 'ecdsa-p384';
    throw new CaError('badPublicKey', `ECDSA curve ${curve ?? 'unknown'} is not accepted (P-256 or P-384)`);
  }
  if (type === 'rsa') {
    const bits = details?.modulusLength ?? 0;
    const e = details?.publicExponent ?? 0n;
    if (bits < 2048 || bits > 4096) throw new CaError('badPublicKey', `an RSA key of ${bits} bits is not accepted (2048 to 4096)`);
    if (e < 65537n || e % 2n === 0n) throw new CaError('badPublicKey', 'the RSA public exponent must be odd and at least 65537');
    return 'rsa';
  }
  throw new CaError('badPublicKey', `a ${type ?? 'unknown'} key is not accepted (ECDSA P-256/P-384, RSA 2048-4096, Ed25519)`);
}

/**
 * The general path. The SPKI is copied into the certificate as it is, so it must be DER, which
 * OpenSSL does not insist on (it reads BER, and ignores octets after the value): one whole TLV
 * with minimal lengths throughout is checked first, and an RSA key, whose encoding is unique,
 * must be exactly what OpenSSL encodes for it.
 */
function importDer(spki: Buffer): KeyObject {
  let key: KeyObject;
  try {
    if (readTlv(spki, 0).end !== spki.length) throw new RangeError('octets after the SubjectPublicKeyInfo');
    assertWellFormedDer(spki);
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    throw new CaError('badPublicKey', 'the public key cannot be read as a DER SubjectPublicKeyInfo');
  }
  if (key.asymmetricKeyType === 'rsa' && !key.export({ type: 'spki', format: 'der' }).equals(spki)) {
    throw new CaError('badPublicKey', 'the RSA public key is not in DER (non-minimal integers or other BER)');
  }
  return key;
}

/** A certifiable public key and its type; badPublicKey when it is unreadable or not accepted. */
export function readPublicKey(spkiBytes: Uint8Array): { keyType: KeyType; key: KeyObject } {
  const spki = Buffer.from(spkiBytes.buffer, spkiBytes.byteOffset, spkiBytes.byteLength);
  const form = canonicalForm(spki);
  if (form) {
    try {
      return { keyType: form.keyType, key: createPublicKey({ key: form.jwk(spki), format: 'jwk' }) };
    } catch {
      throw new CaError('badPublicKey', 'the public key is not a point on its curve');
    }
  }
  const key = importDer(spki);
  return { keyType: keyTypeOfKeyObject(key), key };
}

/**
 * The key type of an SPKI without importing a key where the encoding alone tells it (the
 * signer's pre-issuance lint, after readPublicKey has checked the same bytes); undefined when it
 * is not a key we certify.
 */
export function keyTypeOfSpki(spkiBytes: Uint8Array): KeyType | undefined {
  const spki = Buffer.from(spkiBytes.buffer, spkiBytes.byteOffset, spkiBytes.byteLength);
  const form = canonicalForm(spki);
  if (form) return form.keyType;
  try {
    return keyTypeOfKeyObject(importDer(spki));
  } catch {
    return undefined;
  }
}
