/**
 * Subject public keys: which SubjectPublicKeyInfos (RFC 5280 §4.1.2.7) we certify, and a node
 * KeyObject to verify with. docs/api.md "Certificate profile": ECDSA P-256/P-384, RSA 2048-4096 with
 * an odd public exponent in [2^16+1, 2^256−1] (CA/Browser Forum Baseline Requirements 6.1.6),
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

const EC_PUBLIC_KEY = '2a8648ce3d0201';
const RSA_ENCRYPTION = '2a864886f70d010101';
const EC_CURVES: Record<string, { keyType: KeyType; coordinate: number }> = {
  '2a8648ce3d030107': { keyType: 'ecdsa-p256', coordinate: 32 },
  '2b81040022': { keyType: 'ecdsa-p384', coordinate: 48 },
};

/**
 * RSA public exponent bounds, CA/Browser Forum Baseline Requirements 6.1.6
 * (docs/api.md "Certificate profile"). The upper bound is not cosmetic: verifying with an exponent near a 3072-bit modulus
 * cost about 100 times a verification with 65537 (5.6 ms against 0.043 ms, node:crypto), on
 * every CSR check and on every handshake of every relying party.
 */
const MIN_RSA_EXPONENT = 2n ** 16n + 1n;
const MAX_RSA_EXPONENT = 2n ** 256n - 1n;

const refuse = (detail: string): never => {
  throw new CaError('badPublicKey', detail);
};

/**
 * The general path, for what the canonical forms do not cover (RSA keys, compressed points).
 * The key type is read from the DER, never from node's `asymmetricKeyDetails`: on an EC key
 * OpenSSL accepts but cannot describe (the point at infinity) that getter fails a CHECK in node
 * and aborts the process. The SPKI is copied into the certificate as it is, so it must be DER,
 * which OpenSSL does not insist on (it reads BER, and ignores octets after the value): one whole
 * TLV with minimal lengths throughout, and an RSA key, whose encoding is unique, exactly what
 * OpenSSL encodes for it. An EC point must be a compressed point of its curve's size.
 */
function readGeneral(spki: Buffer): { keyType: KeyType; key: KeyObject } {
  let algorithm: string;
  let parameters: Buffer;
  let bits: Buffer;
  try {
    const outer = readTlv(spki, 0);
    if (outer.tag !== 0x30 || outer.end !== spki.length) throw new RangeError('not one SEQUENCE');
    assertWellFormedDer(spki);
    const alg = readTlv(spki, outer.start);
    const id = readTlv(spki, alg.start);
    if (alg.tag !== 0x30 || id.tag !== 0x06) throw new RangeError('no algorithm');
    algorithm = spki.subarray(id.start, id.end).toString('hex');
    parameters = spki.subarray(id.end, alg.end);
    const bitString = readTlv(spki, alg.end);
    if (bitString.tag !== 0x03 || bitString.end !== outer.end || spki[bitString.start] !== 0) throw new RangeError('no key');
    bits = spki.subarray(bitString.start + 1, bitString.end);
  } catch {
    return refuse('the public key cannot be read as a DER SubjectPublicKeyInfo');
  }
  let keyType: KeyType;
  if (algorithm === EC_PUBLIC_KEY) {
    const curve = parameters[0] === 0x06 && parameters.length === 2 + parameters[1]! ? EC_CURVES[parameters.subarray(2).toString('hex')] : undefined;
    if (!curve) return refuse('an ECDSA key must be on the named curve P-256 or P-384');
    const compressed = (bits[0] === 2 || bits[0] === 3) && bits.length === 1 + curve.coordinate;
    if (!compressed) return refuse('the ECDSA public key is not a point of its curve');
    keyType = curve.keyType;
  } else if (algorithm === RSA_ENCRYPTION) {
    keyType = 'rsa';
  } else {
    return refuse('the key is not accepted (ECDSA P-256/P-384, RSA 2048-4096, Ed25519)');
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  } catch {
    return refuse(keyType === 'rsa' ? 'the RSA public key cannot be read' : 'the ECDSA public key is not a point of its curve');
  }
  if (keyType === 'rsa') {
    if (!key.export({ type: 'spki', format: 'der' }).equals(spki)) refuse('the RSA public key is not in DER (non-minimal integers or other BER)');
    const details = key.asymmetricKeyDetails;
    const size = details?.modulusLength ?? 0;
    const e = details?.publicExponent ?? 0n;
    if (size < 2048 || size > 4096) refuse(`an RSA key of ${size} bits is not accepted (2048 to 4096)`);
    if (e < MIN_RSA_EXPONENT || e > MAX_RSA_EXPONENT || e % 2n === 0n) refuse('the RSA public exponent must be odd and between 2^16+1 and 2^256-1');
  }
  return { keyType, key };
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
  return readGeneral(spki);
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
    return readGeneral(spki).keyType;
  } catch {
    return undefined;
  }
}
