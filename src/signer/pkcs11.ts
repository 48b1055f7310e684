/**
 * The CA key in a PKCS#11 token (an HSM, or SoftHSM in tests): the token signs, and the private
 * key never enters this process. A second implementation of the CA's key beside the PEM file: it
 * offers the same SignatureAlgorithm (name, AlgorithmIdentifier, synchronous sign) as a file key.
 *
 * What is refused at start-up, with a message that names the setting: a URI that does not name
 * exactly one private key (CKA_CLASS = CKO_PRIVATE_KEY and the URI's token, object and id), a key
 * that could leave the token (CKA_SENSITIVE false or CKA_EXTRACTABLE true), a key that may not
 * sign or wants its PIN for every signature, an unsupported key or mechanism, and a public half
 * that does not verify a probe signature of the key. Of a private or secret key only CKA_KEY_TYPE,
 * CKA_ID, CKA_LABEL and the flags are read, never CKA_VALUE or an RSA private exponent or prime.
 *
 * Signing is synchronous, as the CA's hot path is: one C_SignInit and C_Sign in the key's own
 * session. ECDSA hashes in process and gives the token the digest (CKM_ECDSA): 32 or 48 octets
 * cross to the token instead of the whole TBS (CKM_ECDSA_SHA256/384 only where CKM_ECDSA is
 * missing). The token's r||s becomes the DER Ecdsa-Sig-Value X.509 wants (RFC 3279 §2.2.3,
 * RFC 5758 §3.2).
 */
import { createHash, randomBytes, verify as nodeVerify, type KeyObject } from 'node:crypto';
import { CaError } from '../errors.js';
import { sequence, unsignedInteger } from '../x509/der.js';
import type { SignatureAlgorithm } from './algorithms.js';
import { CKA, CKF, CKK, CKM, CKO } from './pkcs11-constants.js';
import { publicHalf, spkiOf } from './pkcs11-public-key.js';
import type { Attribute, Cryptoki, Handle } from './pkcs11-binding.js';
import { attribute, findObjects, TokenConnection, ulong, type Connected } from './pkcs11-token.js';
import { describePkcs11Uri, parsePkcs11Uri, type Pkcs11ObjectType, type Pkcs11Uri } from './pkcs11-uri.js';
import { signatureIdentifier, type SignatureAlgorithmName } from './signature-identifiers.js';

/** The token's module (an absolute library path) and its user PIN, from the configuration. */
export interface TokenSettings {
  module: string;
  pin: string;
}

export interface TokenKey {
  /** The key's public half, from the token's public key object or certificate; the caller checks it against the CA certificate. */
  readonly publicKey: KeyObject;
  readonly algorithm: SignatureAlgorithm;
  /** Closes the key's session (the module is finalised with its last user). */
  close(): void;
}

export interface TokenSecret {
  /** HMAC-SHA-256 (CKM_SHA256_HMAC) of `data`, computed in the token: 32 octets. */
  hmac(data: Uint8Array): Buffer;
  close(): void;
}

function fail(detail: string): never {
  throw new CaError('serverInternal', detail);
}

/** The RFC 7512 attributes that select an object, as a C_FindObjectsInit template. */
function selectors(uri: Pkcs11Uri, objectClass: number): Attribute[] {
  return [
    { type: CKA.CLASS, value: objectClass },
    ...(uri.object !== undefined ? [{ type: CKA.LABEL, value: Buffer.from(uri.object, 'utf8') }] : []),
    ...(uri.id !== undefined ? [{ type: CKA.ID, value: uri.id }] : []),
  ];
}

/** Checks what a URI asks beyond selecting the object: only what this back end can honour. */
function checkUri(uri: Pkcs11Uri, type: Pkcs11ObjectType, settings: TokenSettings): void {
  const vendor = [...uri.vendorPath.keys(), ...uri.vendorQuery.keys()];
  if (vendor.length > 0) fail(`the URI attribute ${vendor[0]} is not understood`);
  if (uri.type !== undefined && uri.type !== type) fail(`the URI names an object of type ${uri.type}; this needs type=${type}`);
  if (uri.object === undefined && uri.id === undefined) fail('the URI names no object: give object= (its CKA_LABEL) or id= (its CKA_ID)');
  if (uri.moduleName !== undefined) fail('module-name is not supported: the configured module path is used');
  if (uri.modulePath !== undefined && uri.modulePath !== settings.module) fail(`the URI's module-path ${uri.modulePath} is not the configured module ${settings.module}`);
  // The PIN comes from the configuration only, so that a URI is never a secret.
  if (uri.pinValue !== undefined || uri.pinSource !== undefined) fail('the URI carries a PIN (pin-value or pin-source): remove it, the configured PIN is used');
}

/** Finds the one object of `objectClass` the URI names and refuses one that could leave the token. */
function findKeyObject(c: Cryptoki, session: Handle, uri: Pkcs11Uri, objectClass: number, what: string): Handle {
  const found = findObjects(c, session, selectors(uri, objectClass));
  if (found.length === 0) fail(`no ${what} matches ${describePkcs11Uri(uri)}`);
  if (found.length > 1) fail(`several ${what}s match ${describePkcs11Uri(uri)}: name one by object= and id=`);
  const key = found[0]!;
  const flag = (type: number): boolean | undefined => {
    const value = attribute(c, session, key, type);
    return value === undefined || value.length === 0 ? undefined : value[0] !== 0;
  };
  if (flag(CKA.SENSITIVE) !== true) fail('the key must be non-extractable: CKA_SENSITIVE is not true');
  if (flag(CKA.EXTRACTABLE) !== false) fail('the key must be non-extractable: CKA_EXTRACTABLE is not false');
  if (flag(CKA.SIGN) !== true) fail(`the ${what} may not sign (CKA_SIGN is not true)`);
  if (flag(CKA.ALWAYS_AUTHENTICATE) === true) fail(`the ${what} wants the PIN for every signature (CKA_ALWAYS_AUTHENTICATE): not supported`);
  return key;
}

/** The mechanisms among `wanted` that the token's slot can sign with. */
function signingMechanisms(c: Cryptoki, slot: Handle, wanted: number[]): Set<number> {
  const offered = new Set(c.C_GetMechanismList(slot));
  return new Set(wanted.filter((m) => offered.has(m) && (c.C_GetMechanismInfo(slot, m).flags & CKF.SIGN) !== 0));
}

interface Scheme {
  name: SignatureAlgorithmName;
  mechanism: number;
  /** What the token is given: the digest for CKM_ECDSA, the message otherwise. */
  input(tbs: Uint8Array): Buffer;
  /** Octets of the token's signature. */
  length: number;
  /** Digest for node:crypto's verify of the probe signature (null for Ed25519). */
  hash: 'sha256' | 'sha384' | null;
}

const digest = (hash: 'sha256' | 'sha384') => (tbs: Uint8Array): Buffer => createHash(hash).update(tbs).digest();
const whole = (tbs: Uint8Array): Buffer => Buffer.from(tbs.buffer, tbs.byteOffset, tbs.byteLength);

function schemeFor(publicKey: KeyObject, c: Cryptoki, slot: Handle): Scheme {
  const type = publicKey.asymmetricKeyType;
  const details = publicKey.asymmetricKeyDetails;
  if (type === 'ec') {
    const curve = details?.namedCurve;
    if (curve !== 'prime256v1' && curve !== 'secp384r1') fail(`the key's curve ${curve ?? 'unknown'} is not supported (P-256 or P-384)`);
    const p384 = curve === 'secp384r1';
    const [hash, hashed, size] = p384 ? (['sha384', CKM.ECDSA_SHA384, 48] as const) : (['sha256', CKM.ECDSA_SHA256, 32] as const);
    const can = signingMechanisms(c, slot, [CKM.ECDSA, hashed]);
    const name = p384 ? 'ecdsa-with-SHA384' : 'ecdsa-with-SHA256';
    if (can.has(CKM.ECDSA)) return { name, mechanism: CKM.ECDSA, input: digest(hash), length: 2 * size, hash };
    if (can.has(hashed)) return { name, mechanism: hashed, input: whole, length: 2 * size, hash };
    return fail(`the token signs with neither CKM_ECDSA nor CKM_ECDSA_${hash.toUpperCase()} for this ${p384 ? 'P-384' : 'P-256'} key`);
  }
  if (type === 'rsa') {
    const bits = details?.modulusLength ?? 0;
    if (bits < 2048) fail(`the RSA key of ${bits} bits is too small (2048 at least)`);
    if (!signingMechanisms(c, slot, [CKM.SHA256_RSA_PKCS]).has(CKM.SHA256_RSA_PKCS)) fail('the token does not sign with CKM_SHA256_RSA_PKCS');
    return { name: 'sha256WithRSAEncryption', mechanism: CKM.SHA256_RSA_PKCS, input: whole, length: Math.ceil(bits / 8), hash: 'sha256' };
  }
  if (type === 'ed25519') {
    if (!signingMechanisms(c, slot, [CKM.EDDSA]).has(CKM.EDDSA)) fail('the token does not sign with CKM_EDDSA');
    return { name: 'Ed25519', mechanism: CKM.EDDSA, input: whole, length: 64, hash: null };
  }
  return fail(`the key type ${type ?? 'unknown'} is not supported (ECDSA P-256/P-384, RSA, Ed25519)`);
}

/**
 * PKCS#11 gives an ECDSA signature as r||s, two halves of equal length, at most the group order's
 * (PKCS#11 v2.40 §2.3.1); X.509 wants SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3).
 */
export function ecdsaSignatureDer(raw: Uint8Array): Buffer {
  if (raw.length === 0 || raw.length % 2 !== 0) throw new CaError('serverInternal', `the token's ECDSA signature has ${raw.length} octets, not r||s`);
  const half = raw.length / 2;
  return Buffer.from(sequence(unsignedInteger(raw.subarray(0, half)), unsignedInteger(raw.subarray(half))));
}

/**
 * A start-up refusal names the setting the URI came from. The probe signature runs through the
 * recovering path, whose refusals say 'unavailable': at start-up they stop the start instead.
 */
function refusal(setting: string, err: unknown): unknown {
  return err instanceof CaError ? new CaError('serverInternal', `${setting}: ${err.detail}`, { cause: err }) : err;
}

interface FoundKey {
  key: Handle;
  publicKey: KeyObject;
}

/**
 * Opens the private key a PKCS#11 URI names (RFC 7512), e.g. `pkcs11:token=CA;object=issuing`,
 * in the module and with the PIN of `settings`. `where` is the issuer's place in the configuration
 * (`ca`, `ca.issuers.1`): start-up refusals begin with `<where>.key: `.
 */
export function openTokenKey(uri: string, settings: TokenSettings, where = 'ca'): TokenKey {
  const setting = `${where}.key`;
  let connection: TokenConnection<FoundKey> | undefined;
  try {
    const parsed = parsePkcs11Uri(uri);
    checkUri(parsed, 'private', settings);
    let expected: Buffer | undefined;
    connection = new TokenConnection<FoundKey>(settings.module, parsed, settings.pin, 'the CA key', (c, session) => {
      const key = findKeyObject(c, session, parsed, CKO.PRIVATE_KEY, 'private key');
      const keyType = ulong(attribute(c, session, key, CKA.KEY_TYPE) ?? fail('the private key has no CKA_KEY_TYPE'));
      const publicKey = publicHalf(c, session, key, keyType);
      // After a reconnect the URI could find another key (a replaced token): never sign with it.
      const spki = spkiOf(publicKey);
      if (expected && !spki.equals(expected)) fail('the key found on reconnecting is not the one opened at start-up');
      expected = spki;
      return { key, publicKey };
    });
    const { cryptoki, slot, found } = connection.connected;
    const scheme = schemeFor(found.publicKey, cryptoki, slot);
    const open = connection;
    const signRaw = (input: Buffer): Buffer => open.run(({ cryptoki: c, session, found: f }: Connected<FoundKey>) => {
      c.C_SignInit(session, { mechanism: scheme.mechanism }, f.key);
      return c.C_Sign(session, input, Buffer.alloc(scheme.length));
    });
    const sign = (tbs: Uint8Array): Buffer => {
      const raw = signRaw(scheme.input(tbs));
      if (scheme.name.startsWith('ecdsa')) {
        if (raw.length > scheme.length) throw new CaError('serverInternal', `the token's ECDSA signature has ${raw.length} octets, more than ${scheme.length}`);
        return ecdsaSignatureDer(raw);
      }
      return Buffer.from(raw);
    };
    const probe = randomBytes(32);
    const probeSignature = sign(probe);
    const verifyKey = scheme.name.startsWith('ecdsa') ? { key: found.publicKey, dsaEncoding: 'der' as const } : found.publicKey;
    if (!nodeVerify(scheme.hash, probe, verifyKey, probeSignature)) {
      fail('a signature of the key does not verify with the public key found beside it (a public key object or certificate of another key?)');
    }
    return {
      publicKey: found.publicKey,
      algorithm: { name: scheme.name, identifier: signatureIdentifier(scheme.name), sign },
      close: () => open.close(),
    };
  } catch (err) {
    connection?.close();
    throw refusal(setting, err);
  }
}

const HMAC_LENGTH = 32;
const HMAC_PROBE = Buffer.from('service-ca token secret check');

interface FoundSecret {
  key: Handle;
}

function tokenHmac(c: Cryptoki, session: Handle, key: Handle, data: Uint8Array): Buffer {
  c.C_SignInit(session, { mechanism: CKM.SHA256_HMAC }, key);
  // The binding hands C_Sign a NULL pointer for empty data, which tokens refuse (CKR_ARGUMENTS_BAD);
  // a multi-part operation with no part is the MAC of the empty string.
  if (data.length === 0) return Buffer.from(c.C_SignFinal(session, Buffer.alloc(HMAC_LENGTH)));
  return Buffer.from(c.C_Sign(session, whole(data), Buffer.alloc(HMAC_LENGTH)));
}

/**
 * Opens the generic secret a PKCS#11 URI names, for HMAC-SHA-256 in the token: secrets are
 * derived from it without any key leaving the token. Refused like a private key when it could
 * leave the token, is not CKK_GENERIC_SECRET, or the token lacks CKM_SHA256_HMAC.
 */
export function openTokenSecret(uri: string, settings: TokenSettings, setting = 'ca.pkcs11.secret'): TokenSecret {
  let connection: TokenConnection<FoundSecret> | undefined;
  try {
    const parsed = parsePkcs11Uri(uri);
    checkUri(parsed, 'secret-key', settings);
    // The secret itself cannot be compared after a reconnect; its MAC of a fixed probe can.
    let expected: Buffer | undefined;
    connection = new TokenConnection<FoundSecret>(settings.module, parsed, settings.pin, 'the derivation secret', (c, session, slot) => {
      const key = findKeyObject(c, session, parsed, CKO.SECRET_KEY, 'secret key');
      const keyType = ulong(attribute(c, session, key, CKA.KEY_TYPE) ?? fail('the secret key has no CKA_KEY_TYPE'));
      if (keyType !== BigInt(CKK.GENERIC_SECRET)) fail(`the secret key is not a generic secret (CKA_KEY_TYPE 0x${keyType.toString(16)}, not CKK_GENERIC_SECRET)`);
      if (!signingMechanisms(c, slot, [CKM.SHA256_HMAC]).has(CKM.SHA256_HMAC)) fail('the token does not sign with CKM_SHA256_HMAC');
      const check = tokenHmac(c, session, key, HMAC_PROBE);
      if (expected && !check.equals(expected)) fail('the secret found on reconnecting is not the one opened at start-up');
      expected = check;
      return { key };
    });
    const open = connection;
    return {
      hmac(data) {
        const mac = open.run(({ cryptoki, session, found }) => tokenHmac(cryptoki, session, found.key, data));
        if (mac.length !== HMAC_LENGTH) throw new CaError('serverInternal', `the token's HMAC-SHA-256 has ${mac.length} octets`);
        return mac;
      },
      close: () => open.close(),
    };
  } catch (err) {
    connection?.close();
    throw refusal(setting, err);
  }
}
