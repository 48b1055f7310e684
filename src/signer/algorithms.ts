/**
 * Signature algorithms of the CA key (docs/api.md "Certificate profile": the algorithm follows the
 * intermediate's key) and the AlgorithmIdentifier DER each one writes (RFC 5758 §3.2 for ECDSA:
 * parameters absent; RFC 4055 §5 for RSA: NULL parameters; RFC 8410 §3 for Ed25519: absent).
 */
import { sign as nodeSign, type KeyObject } from 'node:crypto';
import { CaError } from '../errors.js';
import { nullValue, oid, sequence, type Der } from '../x509/der.js';

export interface SignatureAlgorithm {
  /** Name for logs and tests, e.g. "ecdsa-with-SHA256". */
  readonly name: string;
  /** DER AlgorithmIdentifier written in the certificate/CRL. */
  readonly identifier: Der;
  /** Signs the DER-encoded TBS structure, returning the signature value (DER for ECDSA). */
  sign(tbs: Uint8Array): Buffer;
}

/** Picks the signature algorithm for a CA private key; unsupported keys stop start-up. */
export function signatureAlgorithmFor(key: KeyObject): SignatureAlgorithm {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1' || curve === 'P-256') {
      return { name: 'ecdsa-with-SHA256', identifier: sequence(oid('1.2.840.10045.4.3.2')), sign: (tbs) => nodeSign('sha256', tbs, { key, dsaEncoding: 'der' }) };
    }
    if (curve === 'secp384r1' || curve === 'P-384') {
      return { name: 'ecdsa-with-SHA384', identifier: sequence(oid('1.2.840.10045.4.3.3')), sign: (tbs) => nodeSign('sha384', tbs, { key, dsaEncoding: 'der' }) };
    }
    throw new CaError('serverInternal', `CA key curve ${curve ?? 'unknown'} is not supported (P-256 or P-384)`);
  }
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new CaError('serverInternal', `CA RSA key of ${bits} bits is too small (2048 at least)`);
    return { name: 'sha256WithRSAEncryption', identifier: sequence(oid('1.2.840.113549.1.1.11'), nullValue()), sign: (tbs) => nodeSign('sha256', tbs, key) };
  }
  if (type === 'ed25519') {
    return { name: 'Ed25519', identifier: sequence(oid('1.3.101.112')), sign: (tbs) => nodeSign(null, tbs, key) };
  }
  throw new CaError('serverInternal', `CA key type ${type ?? 'unknown'} is not supported (ECDSA P-256/P-384, RSA, Ed25519)`);
}
