/**
 * A throwaway SoftHSM2 token for the PKCS#11 tests (Debian's softhsm2 package): a fresh token
 * folder and configuration, a token initialised by softhsm2-util, and keys generated IN the token
 * (sensitive and non-extractable unless a test asks otherwise) through pkcs11js from this process.
 *
 * SoftHSM reads SOFTHSM2_CONF when the module is initialised, and the module's state is shared by
 * every user of the library in a process, so a test process has one token at a time. The token's
 * `admin` is this process's own handle on the module: a second user of the library beside the
 * code under test, which tests use to act on the token underneath it (read attributes, close
 * every session, change the PIN).
 */
import { spawnSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomBytes, X509Certificate, type JsonWebKey } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CaError } from '../../src/errors.js';
import { createAuthority, createIntermediate } from '../../src/signer/bootstrap.js';
import { CKA, CKC_X_509, CKF, CKK, CKM, CKO, CKR, CKU_USER } from '../../src/signer/pkcs11-constants.js';
import { loadBinding, type Attribute, type Cryptoki, type Handle } from '../../src/signer/pkcs11-binding.js';
import { x509 } from '../../src/x509/library.js';
import { removeAtExit } from './cleanup.js';

export const SOFTHSM_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** Why the SoftHSM tests cannot run here, or undefined when they can. */
export function softhsmMissing(): string | undefined {
  if (!existsSync(SOFTHSM_MODULE)) return `${SOFTHSM_MODULE} is absent (apt-get install softhsm2)`;
  if (spawnSync('softhsm2-util', ['--version']).status !== 0) return 'softhsm2-util is not installed (apt-get install softhsm2)';
  try {
    loadBinding();
  } catch (err) {
    return err instanceof CaError ? err.detail : String(err);
  }
  return undefined;
}

export const softhsmAvailable = (): boolean => softhsmMissing() === undefined;

/** What the tests do with the module beyond what src/signer needs. */
export interface AdminCryptoki extends Cryptoki {
  C_GenerateKeyPair(session: Handle, mechanism: { mechanism: number }, publicTemplate: Attribute[], privateTemplate: Attribute[]): { publicKey: Handle; privateKey: Handle };
  C_GenerateKey(session: Handle, mechanism: { mechanism: number }, template: Attribute[]): Handle;
  C_CreateObject(session: Handle, template: Attribute[]): Handle;
  C_DestroyObject(session: Handle, object: Handle): void;
  C_CloseAllSessions(slot: Handle): void;
  C_SetPIN(session: Handle, oldPin: string, newPin: string): void;
}

export type TokenKeyType = 'p256' | 'p384' | 'rsa' | 'ed25519';

export interface TokenKeySpec {
  label: string;
  type: TokenKeyType;
  /** Defaults: sensitive, not extractable, the public half as a public key object. */
  sensitive?: boolean;
  extractable?: boolean;
  /** 'certificate': the public key object is replaced by a certificate for the key (same CKA_ID). */
  publicHalf?: 'object' | 'certificate';
}

export interface TokenKeyFixture {
  label: string;
  type: TokenKeyType;
  id: Buffer;
  uri: string;
  /** Read from the public key object through a JWK, independently of src/signer. */
  publicKeyPem: string;
}

export interface SoftHsmToken {
  module: string;
  pin: string;
  soPin: string;
  label: string;
  dir: string;
  /** SOFTHSM2_CONF, for a child process that should see this token. */
  env: Record<string, string>;
  keys: Record<string, TokenKeyFixture>;
  /** The P-256 key's URI and public key. */
  keyUri: string;
  publicKeyPem: string;
  /** A generic secret for CKM_SHA256_HMAC, generated in the token. */
  secretUri: string;
  /** A generic secret imported with a value the test knows (sensitive, not extractable). */
  knownSecret: { uri: string; value: Buffer };
  /** A generic secret that may be extracted: to be refused. */
  extractableSecretUri: string;
  admin: { cryptoki: AdminCryptoki; slot: Handle; openSession(pin?: string): Handle };
  /** Replaces a key pair with a new one under the same label and CKA_ID (a key rotated on the token). */
  replaceKey(label: string): void;
  /**
   * Imports a P-256 key pair whose private scalar the test knows (made by node:crypto here),
   * sensitive and not extractable from then on: a test can look for that scalar in a process's
   * memory. (A key generated in the token is unknown to everyone, so its absence cannot be shown.)
   */
  importKnownKey(label: string): { uri: string; publicKeyPem: string; scalar: Buffer; privateKeyPem: string };
  /** Deletes the token with softhsm2-util while the module still has it open. */
  deleteToken(): void;
  cleanup(): void;
}

const CURVE_PARAMS: Record<'p256' | 'p384', { der: string; crv: string; size: number }> = {
  p256: { der: '06082a8648ce3d030107', crv: 'P-256', size: 32 },
  p384: { der: '06052b81040022', crv: 'P-384', size: 48 },
};

export const DEFAULT_KEYS: TokenKeySpec[] = [
  { label: 'ca-p256', type: 'p256' },
  { label: 'ca-p384', type: 'p384' },
  { label: 'ca-rsa', type: 'rsa' },
  { label: 'ca-ed25519', type: 'ed25519' },
];

let current: SoftHsmToken | undefined;

function run(command: string, args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync(command, args, { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${command} ${args[0]} failed: ${r.stderr || r.stdout}`);
  return r.stdout;
}

/** The key's public half as PEM, from the public key object's attributes through a JWK. */
function publicPem(c: AdminCryptoki, session: Handle, object: Handle, type: TokenKeyType): string {
  const get = (t: number) => c.C_GetAttributeValue(session, object, [{ type: t }])[0]!.value;
  const b64 = (b: Buffer) => b.toString('base64url');
  let jwk: JsonWebKey;
  if (type === 'rsa') {
    jwk = { kty: 'RSA', n: b64(get(CKA.MODULUS)), e: b64(get(CKA.PUBLIC_EXPONENT)) };
  } else {
    const point = get(CKA.EC_POINT).subarray(2); // OCTET STRING header: the points here are shorter than 128 octets
    if (type === 'ed25519') jwk = { kty: 'OKP', crv: 'Ed25519', x: b64(point) };
    else {
      const { crv, size } = CURVE_PARAMS[type];
      jwk = { kty: 'EC', crv, x: b64(point.subarray(1, 1 + size)), y: b64(point.subarray(1 + size)) };
    }
  }
  return createPublicKey({ key: jwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }) as string;
}

function generateKeyPair(c: AdminCryptoki, session: Handle, spec: TokenKeySpec, id: Buffer): { publicKey: Handle; privateKey: Handle } {
  const common: Attribute[] = [{ type: CKA.TOKEN, value: true }, { type: CKA.LABEL, value: spec.label }, { type: CKA.ID, value: id }];
  const privateTemplate: Attribute[] = [
    ...common,
    { type: CKA.PRIVATE, value: true },
    { type: CKA.SIGN, value: true },
    { type: CKA.SENSITIVE, value: spec.sensitive ?? true },
    { type: CKA.EXTRACTABLE, value: spec.extractable ?? false },
  ];
  const publicTemplate: Attribute[] = [...common, { type: CKA.VERIFY, value: true }];
  if (spec.type === 'rsa') {
    publicTemplate.push({ type: CKA.MODULUS_BITS, value: 2048 }, { type: CKA.PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) });
    return c.C_GenerateKeyPair(session, { mechanism: CKM.RSA_PKCS_KEY_PAIR_GEN }, publicTemplate, privateTemplate);
  }
  if (spec.type === 'ed25519') {
    publicTemplate.push({ type: CKA.EC_PARAMS, value: Buffer.from('06032b6570', 'hex') });
    return c.C_GenerateKeyPair(session, { mechanism: CKM.EC_EDWARDS_KEY_PAIR_GEN }, publicTemplate, privateTemplate);
  }
  publicTemplate.push({ type: CKA.EC_PARAMS, value: Buffer.from(CURVE_PARAMS[spec.type].der, 'hex') });
  return c.C_GenerateKeyPair(session, { mechanism: CKM.EC_KEY_PAIR_GEN }, publicTemplate, privateTemplate);
}

/**
 * Creates the token and its keys: DEFAULT_KEYS, then `keys`, each with a distinct CKA_ID, and the
 * generic secrets. Call cleanup() (after closing what was opened on the token).
 */
export async function createSoftHsmToken(options: { keys?: TokenKeySpec[] } = {}): Promise<SoftHsmToken> {
  if (current) throw new Error('one SoftHSM token per test process: clean up the previous one first');
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-softhsm-'));
  removeAtExit(dir);
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\n`);
  mkdirSync(join(dir, 'tokens'));
  const env = { SOFTHSM2_CONF: conf };
  const previousConf = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = conf;
  const label = `service-ca test ${randomBytes(3).toString('hex')}`;
  const pin = randomBytes(6).toString('hex');
  const soPin = randomBytes(6).toString('hex');
  run('softhsm2-util', ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin], { ...process.env, ...env });

  const cryptoki = new (loadBinding().PKCS11)() as AdminCryptoki;
  cryptoki.load(SOFTHSM_MODULE);
  initialise(cryptoki);
  const slot = cryptoki.C_GetSlotList(true).find((s) => cryptoki.C_GetTokenInfo(s).label.trimEnd() === label);
  if (!slot) throw new Error(`softhsm2-util made no token labelled ${label}`);
  const openSession = (userPin = pin): Handle => {
    initialise(cryptoki);
    const session = cryptoki.C_OpenSession(slot, CKF.SERIAL_SESSION | CKF.RW_SESSION);
    try {
      cryptoki.C_Login(session, CKU_USER, userPin);
    } catch (err) {
      if ((err as { code?: number }).code !== CKR.USER_ALREADY_LOGGED_IN) throw err;
    }
    return session;
  };
  const session = openSession();
  const uriOf = (object: string, id: Buffer, type: string) => `pkcs11:token=${encodeURIComponent(label)};object=${object};id=${[...id].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')};type=${type}`;

  const keys: Record<string, TokenKeyFixture> = {};
  const specs = [...DEFAULT_KEYS, ...(options.keys ?? [])];
  for (const [n, spec] of specs.entries()) {
    const id = Buffer.from([0x10 + n]);
    const pair = generateKeyPair(cryptoki, session, spec, id);
    const publicKeyPem = publicPem(cryptoki, session, pair.publicKey, spec.type);
    if (spec.publicHalf === 'certificate') {
      const { intermediateDer, subjectDer } = await issueTokenIntermediate(publicKeyPem, { subject: `CN=${spec.label}` });
      cryptoki.C_CreateObject(session, [
        { type: CKA.CLASS, value: CKO.CERTIFICATE }, { type: CKA.CERTIFICATE_TYPE, value: CKC_X_509 }, { type: CKA.TOKEN, value: true },
        { type: CKA.SUBJECT, value: subjectDer }, { type: CKA.LABEL, value: spec.label }, { type: CKA.ID, value: id }, { type: CKA.VALUE, value: intermediateDer },
      ]);
      cryptoki.C_DestroyObject(session, pair.publicKey);
    }
    keys[spec.label] = { label: spec.label, type: spec.type, id, uri: uriOf(spec.label, id, 'private'), publicKeyPem };
  }
  const secretId = Buffer.from([0x01]);
  cryptoki.C_GenerateKey(session, { mechanism: CKM.GENERIC_SECRET_KEY_GEN }, [
    { type: CKA.CLASS, value: CKO.SECRET_KEY }, { type: CKA.KEY_TYPE, value: CKK.GENERIC_SECRET }, { type: CKA.TOKEN, value: true },
    { type: CKA.PRIVATE, value: true }, { type: CKA.SIGN, value: true }, { type: CKA.VALUE_LEN, value: 32 },
    { type: CKA.SENSITIVE, value: true }, { type: CKA.EXTRACTABLE, value: false },
    { type: CKA.LABEL, value: 'ca-secret' }, { type: CKA.ID, value: secretId },
  ]);
  // A secret imported with a value the tests know, so its MACs can be checked with node:crypto
  // (sensitive and not extractable from then on, like a generated one), and an extractable one.
  const knownValue = randomBytes(32);
  const secretObject = (objectLabel: string, id: Buffer, value: Buffer, extractable: boolean) => cryptoki.C_CreateObject(session, [
    { type: CKA.CLASS, value: CKO.SECRET_KEY }, { type: CKA.KEY_TYPE, value: CKK.GENERIC_SECRET }, { type: CKA.TOKEN, value: true },
    { type: CKA.PRIVATE, value: true }, { type: CKA.SIGN, value: true }, { type: CKA.SENSITIVE, value: true }, { type: CKA.EXTRACTABLE, value: extractable },
    { type: CKA.LABEL, value: objectLabel }, { type: CKA.ID, value: id }, { type: CKA.VALUE, value },
  ]);
  secretObject('known-secret', Buffer.from([0x02]), knownValue, false);
  secretObject('extractable-secret', Buffer.from([0x03]), randomBytes(32), true);
  cryptoki.C_CloseSession(session);

  const imported: Record<string, Buffer> = {};
  const token: SoftHsmToken = {
    module: SOFTHSM_MODULE,
    pin,
    soPin,
    label,
    dir,
    env,
    keys,
    keyUri: keys['ca-p256']!.uri,
    publicKeyPem: keys['ca-p256']!.publicKeyPem,
    secretUri: uriOf('ca-secret', secretId, 'secret-key'),
    knownSecret: { uri: uriOf('known-secret', Buffer.from([0x02]), 'secret-key'), value: knownValue },
    extractableSecretUri: uriOf('extractable-secret', Buffer.from([0x03]), 'secret-key'),
    admin: { cryptoki, slot, openSession },
    replaceKey(keyLabel) {
      const fixture = keys[keyLabel]!;
      const rw = openSession();
      try {
        cryptoki.C_FindObjectsInit(rw, [{ type: CKA.LABEL, value: keyLabel }]);
        const objects = cryptoki.C_FindObjects(rw, 10);
        cryptoki.C_FindObjectsFinal(rw);
        for (const object of objects) cryptoki.C_DestroyObject(rw, object);
        generateKeyPair(cryptoki, rw, { label: keyLabel, type: fixture.type }, fixture.id);
      } finally {
        cryptoki.C_CloseSession(rw);
      }
    },
    importKnownKey(keyLabel) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const jwk = privateKey.export({ format: 'jwk' });
      const scalar = Buffer.from(jwk.d!, 'base64url');
      const point = Buffer.concat([Buffer.from([0x04]), Buffer.from(jwk.x!, 'base64url'), Buffer.from(jwk.y!, 'base64url')]);
      const id = Buffer.from([0x20 + Object.keys(imported).length]);
      imported[keyLabel] = id;
      const rw = openSession();
      try {
        const common: Attribute[] = [
          { type: CKA.TOKEN, value: true }, { type: CKA.KEY_TYPE, value: CKK.EC }, { type: CKA.LABEL, value: keyLabel }, { type: CKA.ID, value: id },
          { type: CKA.EC_PARAMS, value: Buffer.from(CURVE_PARAMS.p256.der, 'hex') },
        ];
        cryptoki.C_CreateObject(rw, [
          ...common, { type: CKA.CLASS, value: CKO.PRIVATE_KEY }, { type: CKA.PRIVATE, value: true }, { type: CKA.SIGN, value: true },
          { type: CKA.SENSITIVE, value: true }, { type: CKA.EXTRACTABLE, value: false }, { type: CKA.VALUE, value: scalar },
        ]);
        // CKA_EC_POINT is the DER OCTET STRING of the uncompressed point (65 octets: short form).
        cryptoki.C_CreateObject(rw, [...common, { type: CKA.CLASS, value: CKO.PUBLIC_KEY }, { type: CKA.VERIFY, value: true }, { type: CKA.EC_POINT, value: Buffer.concat([Buffer.from([0x04, point.length]), point]) }]);
      } finally {
        cryptoki.C_CloseSession(rw);
      }
      return {
        uri: uriOf(keyLabel, id, 'private'),
        publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }) as string,
        scalar,
        privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
      };
    },
    deleteToken: () => void run('softhsm2-util', ['--delete-token', '--token', label], { ...process.env, ...env }),
    cleanup() {
      try {
        cryptoki.C_Finalize();
      } catch {
        // Already finalised by the code under test, which may have initialised it last.
      }
      cryptoki.close();
      rmSync(dir, { recursive: true, force: true });
      if (previousConf === undefined) delete process.env.SOFTHSM2_CONF;
      else process.env.SOFTHSM2_CONF = previousConf;
      current = undefined;
    },
  };
  current = token;
  return token;
}

/** C_Initialize, tolerating a module another user in this process initialised first. */
function initialise(c: Cryptoki): void {
  try {
    c.C_Initialize();
  } catch (err) {
    if ((err as { code?: number }).code !== CKR.CRYPTOKI_ALREADY_INITIALIZED) throw err;
  }
}

/**
 * An intermediate CA certificate for a key in the token, made the way an operator makes one
 * (`service-ca init --intermediate --public-key`, src/signer/bootstrap.ts createIntermediate)
 * under a fresh test root whose key is a software key: only the intermediate's key lives in the
 * token.
 */
export async function issueTokenIntermediate(publicKeyPem: string, options: { subject?: string; now?: Date } = {}): Promise<{ rootPem: string; intermediatePem: string; intermediateDer: Buffer; intermediate: X509Certificate; subjectDer: Buffer }> {
  const now = options.now ?? new Date();
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-token-ca-'));
  removeAtExit(dir);
  const root = await createAuthority({ dir: join(dir, 'root'), rootName: 'CN=service-ca test Root CA', now });
  const publicKey = join(dir, 'token-key.pem');
  writeFileSync(publicKey, publicKeyPem);
  const made = await createIntermediate({
    dir: join(dir, 'intermediate'),
    rootCertificate: root.rootCertificate,
    rootKey: root.rootKey,
    publicKey,
    intermediateName: options.subject ?? 'CN=service-ca test Intermediate CA (token key)',
    intermediateDays: 365,
    now,
  });
  const intermediate = new X509Certificate(readFileSync(made.intermediateCertificate));
  return {
    rootPem: readFileSync(root.rootCertificate, 'utf8'),
    intermediatePem: intermediate.toString(),
    intermediateDer: intermediate.raw,
    intermediate,
    subjectDer: Buffer.from(new x509.X509Certificate(new Uint8Array(intermediate.raw)).subjectName.toArrayBuffer()),
  };
}
