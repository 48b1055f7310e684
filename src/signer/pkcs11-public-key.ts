/**
 * The public half of a key in a token, as a node KeyObject: read from the public key object that
 * shares the private key's CKA_ID (or, without an id, its CKA_LABEL), or else from the X.509
 * certificate stored beside it. Only public objects are read here; the private key gives nothing
 * but its id, label and key type.
 */
import { createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { CaError } from '../errors.js';
import { bitString, oid, readTlv, sequence, TAG } from '../x509/der.js';
import { CKA, CKC_X_509, CKK, CKO } from './pkcs11-constants.js';
import type { Attribute, Cryptoki, Handle } from './pkcs11-binding.js';
import { attribute, findObjects } from './pkcs11-token.js';

function fail(detail: string): never {
  throw new CaError('serverInternal', detail);
}

/** CKA_EC_PARAMS of the supported curves: the namedCurve OID (RFC 5480 §2.1.1.1). */
const CURVES: Record<string, { oid: string; pointLength: number }> = {
  '06082a8648ce3d030107': { oid: '1.2.840.10045.3.1.7', pointLength: 65 }, // P-256
  '06052b81040022': { oid: '1.3.132.0.34', pointLength: 97 }, // P-384
};
/** Ed25519's CKA_EC_PARAMS: the RFC 8410 OID, or the PrintableString "edwards25519" (PKCS#11 v3.0). */
const ED25519_PARAMS = new Set(['06032b6570', `130c${Buffer.from('edwards25519').toString('hex')}`]);

/**
 * CKA_EC_POINT is a DER OCTET STRING holding the point (PKCS#11 v2.40 §2.3.3); some tokens return
 * the bare point. Either way the point is `length` octets.
 */
function ecPoint(value: Buffer, length: number): Buffer {
  if (value.length === length) return value;
  try {
    const tlv = readTlv(value, 0);
    if (value[0] === TAG.OCTET_STRING && tlv.end === value.length && tlv.end - tlv.start === length) return value.subarray(tlv.start, tlv.end);
  } catch {
    // Not DER: reported below.
  }
  return fail(`the public key's CKA_EC_POINT is neither a ${length}-octet point nor an OCTET STRING of one`);
}

const spkiKey = (der: Uint8Array): KeyObject => createPublicKey({ key: Buffer.from(der), format: 'der', type: 'spki' });

function required(c: Cryptoki, session: Handle, object: Handle, type: number, name: string): Buffer {
  return attribute(c, session, object, type) ?? fail(`the public key object has no ${name}`);
}

function fromPublicObject(c: Cryptoki, session: Handle, object: Handle, keyType: bigint): KeyObject {
  if (keyType === BigInt(CKK.RSA)) {
    const n = required(c, session, object, CKA.MODULUS, 'CKA_MODULUS');
    const e = required(c, session, object, CKA.PUBLIC_EXPONENT, 'CKA_PUBLIC_EXPONENT');
    return createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: e.toString('base64url') }, format: 'jwk' });
  }
  const params = required(c, session, object, CKA.EC_PARAMS, 'CKA_EC_PARAMS').toString('hex');
  const point = required(c, session, object, CKA.EC_POINT, 'CKA_EC_POINT');
  if (keyType === BigInt(CKK.EC)) {
    const curve = CURVES[params] ?? fail(`the key's curve (CKA_EC_PARAMS ${params}) is not supported (P-256 or P-384)`);
    const q = ecPoint(point, curve.pointLength);
    if (q[0] !== 0x04) fail('the public key\'s CKA_EC_POINT is not an uncompressed point');
    return spkiKey(sequence(sequence(oid('1.2.840.10045.2.1'), oid(curve.oid)), bitString(q)));
  }
  if (keyType === BigInt(CKK.EC_EDWARDS)) {
    if (!ED25519_PARAMS.has(params)) fail(`the key's Edwards curve (CKA_EC_PARAMS ${params}) is not supported (Ed25519)`);
    return spkiKey(sequence(sequence(oid('1.3.101.112')), bitString(ecPoint(point, 32))));
  }
  return fail(`the key type (CKA_KEY_TYPE 0x${keyType.toString(16)}) is not supported (ECDSA P-256/P-384, RSA, Ed25519)`);
}

/** The node key type each Cryptoki key type becomes, to refuse a certificate of another kind. */
const NODE_TYPE: Record<string, string> = { [CKK.RSA]: 'rsa', [CKK.EC]: 'ec', [CKK.EC_EDWARDS]: 'ed25519' };

/** Reads the public half of the private key `key` (of Cryptoki type `keyType`). */
export function publicHalf(c: Cryptoki, session: Handle, key: Handle, keyType: bigint): KeyObject {
  const id = attribute(c, session, key, CKA.ID);
  const label = attribute(c, session, key, CKA.LABEL);
  const link: Attribute | undefined = id && id.length > 0 ? { type: CKA.ID, value: id } : label && label.length > 0 ? { type: CKA.LABEL, value: label } : undefined;
  if (!link) fail('the private key has neither CKA_ID nor CKA_LABEL to find its public key by');
  const linkName = link.type === CKA.ID ? 'CKA_ID' : 'CKA_LABEL';

  const publics = findObjects(c, session, [{ type: CKA.CLASS, value: CKO.PUBLIC_KEY }, { type: CKA.KEY_TYPE, value: Number(keyType) }, link]);
  if (publics.length > 1) fail(`several public keys share the private key's ${linkName}`);
  if (publics.length === 1) return fromPublicObject(c, session, publics[0]!, keyType);

  const certificates = findObjects(c, session, [{ type: CKA.CLASS, value: CKO.CERTIFICATE }, { type: CKA.CERTIFICATE_TYPE, value: CKC_X_509 }, link]);
  if (certificates.length === 0) fail(`found neither a public key object nor a certificate with the private key's ${linkName} to read its public key from`);
  if (certificates.length > 1) fail(`several certificates share the private key's ${linkName}`);
  // A certificate's CKA_VALUE is the certificate itself: public data.
  const der = attribute(c, session, certificates[0]!, CKA.VALUE) ?? fail('the certificate object has no CKA_VALUE');
  let publicKey: KeyObject;
  try {
    publicKey = new X509Certificate(der).publicKey;
  } catch {
    return fail(`the certificate with the private key's ${linkName} does not parse`);
  }
  if (publicKey.asymmetricKeyType !== NODE_TYPE[String(keyType)]) fail(`the certificate with the private key's ${linkName} holds a key of another type`);
  return publicKey;
}

/** A key's SPKI DER: how a key found after a reconnect is compared with the one found at start-up. */
export const spkiOf = (key: KeyObject): Buffer => key.export({ format: 'der', type: 'spki' });
