/**
 * Creating a CA: a self-signed root and an intermediate signed by it, written as PEM files with
 * private keys in PKCS#8 (mode 0600, optionally encrypted). Used by `service-ca init` and by the
 * development CA that `npm start` creates when there is no configuration; `init --intermediate`
 * makes only a new intermediate under an existing root (a rollover). Key generation happens
 * here because the signer module is the only one that handles CA key material.
 */
import { X509Certificate, createPrivateKey, createPublicKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { x509 } from '../x509/library.js';
import { CaError } from '../errors.js';
import { sha256Fingerprint } from './authority.js';

export type AuthorityKeyType = 'p256' | 'p384' | 'rsa' | 'ed25519';

export interface CreateAuthorityOptions {
  dir: string;
  keyType?: AuthorityKeyType;
  rootName?: string;
  intermediateName?: string;
  rootDays?: number;
  intermediateDays?: number;
  /** Encrypts root.key (AES-256-CBC, PBES2) when set. */
  rootPassphrase?: string | undefined;
  /** Encrypts intermediate.key when set. */
  intermediatePassphrase?: string | undefined;
  /** Where the root key goes; defaults to dir. Keep it offline in production. */
  rootKeyDir?: string | undefined;
  now?: Date;
}

export interface AuthorityPaths {
  rootCertificate: string;
  rootKey: string;
  intermediateCertificate: string;
  intermediateKey: string;
  chain: string;
  rootFingerprint: string;
}

type KeyParams = webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams | webcrypto.Algorithm;
type SignParams = webcrypto.EcdsaParams | webcrypto.Algorithm;

function algorithms(keyType: AuthorityKeyType): { gen: KeyParams; sign: SignParams } {
  switch (keyType) {
    case 'p256':
      return { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } as webcrypto.EcdsaParams };
    case 'p384':
      return { gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } as webcrypto.EcdsaParams };
    case 'rsa':
      return {
        gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 3072, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' },
        sign: { name: 'RSASSA-PKCS1-v1_5' },
      };
    case 'ed25519':
      return { gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } };
  }
}

const CURVES: Record<string, AuthorityKeyType> = { prime256v1: 'p256', secp384r1: 'p384' };

/** Which of the key types this module makes a key is; undefined for any other (RSA-PSS, P-521...). */
function keyTypeOf(key: KeyObject): AuthorityKeyType | undefined {
  if (key.asymmetricKeyType === 'rsa' || key.asymmetricKeyType === 'ed25519') return key.asymmetricKeyType;
  return key.asymmetricKeyType === 'ec' ? CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''] : undefined;
}

async function pkcs8Pem(key: webcrypto.CryptoKey, passphrase: string | undefined): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const keyObject = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  return (passphrase
    ? keyObject.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase })
    : keyObject.export({ type: 'pkcs8', format: 'pem' })) as string;
}

const serial = () => {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
};

const DAY = 86_400_000;
/** Backdating notBefore tolerates relying parties whose clocks run a little behind. */
const BACKDATE = 5 * 60_000;
const CA_USAGE = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature;
const DEFAULT_INTERMEDIATE_NAME = 'CN=service-ca Intermediate CA';

/** A CA that signs: its certificate, its private key and the algorithm that key signs with. */
interface SigningCa {
  certificate: x509.X509Certificate;
  key: webcrypto.CryptoKey;
  sign: SignParams;
}

/**
 * The one intermediate profile, for `init` and for a rollover alike: a new key of keyType and a
 * certificate signed by the root with basicConstraints cA and pathLenConstraint 0 (it signs end
 * entities only, RFC 5280 §4.2.1.9), keyUsage keyCertSign, cRLSign and digitalSignature, both
 * critical (§4.2.1.3), its own subjectKeyIdentifier (§4.2.1.2) and the root's as its
 * authorityKeyIdentifier (§4.2.1.1).
 */
async function makeIntermediate(root: SigningCa, o: { keyType: AuthorityKeyType; subject: string | x509.Name; notBefore: Date; notAfter: Date; publicKey?: webcrypto.CryptoKey | undefined }) {
  const keys: { publicKey: webcrypto.CryptoKey; privateKey?: webcrypto.CryptoKey } = o.publicKey
    ? { publicKey: o.publicKey }
    : ((await webcrypto.subtle.generateKey(algorithms(o.keyType).gen, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair);
  const rootKeyId = root.certificate.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: o.subject,
    issuer: root.certificate.subjectName,
    notBefore: o.notBefore,
    notAfter: o.notAfter,
    publicKey: keys.publicKey as unknown as CryptoKey,
    signingKey: root.key as unknown as CryptoKey,
    signingAlgorithm: root.sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(CA_USAGE, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as unknown as CryptoKey),
      rootKeyId ? new x509.AuthorityKeyIdentifierExtension(rootKeyId) : await x509.AuthorityKeyIdentifierExtension.create(root.certificate.publicKey),
    ],
  });
  return { certificate, privateKey: keys.privateKey };
}

/** Writes new files only: one that exists is refused before any is written, and 'wx' refuses one made meanwhile. */
function writeNewFiles(files: { path: string; content: string; mode: number }[]): void {
  const existing = files.map((f) => f.path).filter((p) => existsSync(p));
  if (existing.length > 0) throw new CaError('conflict', `refusing to overwrite an existing CA: ${existing.join(', ')}`);
  for (const f of files) writeFileSync(f.path, f.content, { mode: f.mode, flag: 'wx' });
}

const pemOf = (c: x509.X509Certificate) => c.toString('pem') + '\n';

export async function createAuthority(options: CreateAuthorityOptions): Promise<AuthorityPaths> {
  const keyType = options.keyType ?? 'p256';
  const now = options.now ?? new Date();
  const { gen, sign } = algorithms(keyType);
  const rootKeys = (await webcrypto.subtle.generateKey(gen, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(now.getTime() - BACKDATE);

  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: options.rootName ?? 'CN=service-ca Root CA',
    notBefore,
    notAfter: new Date(notBefore.getTime() + (options.rootDays ?? 3650) * DAY),
    keys: rootKeys as unknown as CryptoKeyPair,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(CA_USAGE, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey as unknown as CryptoKey),
    ],
  });
  const intermediate = await makeIntermediate({ certificate: root, key: rootKeys.privateKey, sign }, {
    keyType,
    subject: options.intermediateName ?? DEFAULT_INTERMEDIATE_NAME,
    notBefore,
    notAfter: new Date(notBefore.getTime() + (options.intermediateDays ?? 1825) * DAY),
  });

  mkdirSync(options.dir, { recursive: true });
  const rootKeyDir = options.rootKeyDir ?? options.dir;
  mkdirSync(rootKeyDir, { recursive: true, mode: 0o700 });
  const paths: AuthorityPaths = {
    rootCertificate: join(options.dir, 'root.pem'),
    rootKey: join(rootKeyDir, 'root.key'),
    intermediateCertificate: join(options.dir, 'intermediate.pem'),
    intermediateKey: join(options.dir, 'intermediate.key'),
    chain: join(options.dir, 'chain.pem'),
    rootFingerprint: sha256Fingerprint(Buffer.from(root.rawData)),
  };
  const rootPem = pemOf(root);
  const intPem = pemOf(intermediate.certificate);
  writeNewFiles([
    { path: paths.rootKey, content: await pkcs8Pem(rootKeys.privateKey, options.rootPassphrase), mode: 0o600 },
    // makeIntermediate made the key (no publicKey was given), so it has its private half.
    { path: paths.intermediateKey, content: await pkcs8Pem(intermediate.privateKey!, options.intermediatePassphrase), mode: 0o600 },
    { path: paths.rootCertificate, content: rootPem, mode: 0o644 },
    { path: paths.intermediateCertificate, content: intPem, mode: 0o644 },
    { path: paths.chain, content: intPem + rootPem, mode: 0o644 },
  ]);
  return paths;
}

export interface CreateIntermediateOptions {
  /** Where the new files go: a new folder per rollover (./ca/2027), never the current one. */
  dir: string;
  /** PEM files of the existing root, read from where they are kept offline. */
  rootCertificate: string;
  rootKey: string;
  rootPassphrase?: string | undefined;
  /** The intermediate being replaced: the default name and key type, and it must be the root's. */
  currentCertificate?: string | undefined;
  /** Default: the current intermediate's type, else the root's. */
  keyType?: AuthorityKeyType | undefined;
  /** Default: the current intermediate's subject, else "CN=service-ca Intermediate CA". */
  intermediateName?: string | undefined;
  intermediateDays?: number | undefined;
  intermediatePassphrase?: string | undefined;
  /**
   * PEM file of the public key of a key made in an HSM (docs/hsm.md): the certificate is made for
   * it, and no key is made or written. Its type decides keyType.
   */
  publicKey?: string | undefined;
  now: Date;
}

export interface IntermediateRollover {
  dir: string;
  intermediateCertificate: string;
  /** The new key's file; undefined when the key is in an HSM (`publicKey`). */
  intermediateKey: string | undefined;
  /** The root alone: the new issuer's `chain`. */
  chain: string;
  subject: string;
  keyType: AuthorityKeyType;
  /** The new certificate's subjectKeyIdentifier, lowercase hex. */
  keyId: string;
  notBefore: Date;
  notAfter: Date;
  /** The notAfter the days asked for, when the root's own notAfter came first and replaced it. */
  cappedFrom: Date | undefined;
  rootFingerprint: string;
}

function fail(detail: string): never {
  throw new CaError('malformed', detail);
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    return fail(`cannot read ${what} ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

function readCertificate(path: string, what: string): { node: X509Certificate; cert: x509.X509Certificate } {
  const text = readText(path, what);
  try {
    const node = new X509Certificate(text);
    return { node, cert: new x509.X509Certificate(new Uint8Array(node.raw)) };
  } catch {
    return fail(`${what} ${path} is not a PEM certificate`);
  }
}

/** The root's private key; no message quotes the file or the passphrase (node's errors can). */
function readRootKey(path: string, passphrase: string | undefined): KeyObject {
  const pem = readText(path, 'the root key');
  const encrypted = pem.includes('ENCRYPTED PRIVATE KEY') || pem.includes('Proc-Type: 4,ENCRYPTED');
  if (encrypted && !passphrase) fail(`the root key ${path} is encrypted and no passphrase was given`);
  try {
    return createPrivateKey(encrypted ? { key: pem, format: 'pem', passphrase: passphrase ?? '' } : { key: pem, format: 'pem' });
  } catch {
    return fail(encrypted ? `cannot decrypt the root key ${path} (wrong passphrase?)` : `the root key ${path} is not a readable PEM private key`);
  }
}

/** An HSM key's public half (PEM SubjectPublicKeyInfo), of a type an intermediate may have. */
function readPublicKey(path: string): { spki: Buffer; keyType: AuthorityKeyType } {
  const text = readText(path, 'the public key');
  let key: KeyObject;
  try {
    key = createPublicKey(text);
  } catch {
    return fail(`the public key ${path} is not a PEM public key`);
  }
  const keyType = keyTypeOf(key) ?? fail(`the public key ${path} is of a type an intermediate cannot have (p256, p384, rsa or ed25519)`);
  return { spki: key.export({ type: 'spki', format: 'der' }), keyType };
}

/**
 * The root as a signer, or a refusal: self-signed, a CA (basicConstraints cA, and keyCertSign
 * when keyUsage is present: RFC 5280 §4.2.1.9, §4.2.1.3), valid at `now`, and `key` its own.
 */
async function openRoot(o: CreateIntermediateOptions): Promise<SigningCa & { node: X509Certificate; keyType: AuthorityKeyType }> {
  const { node, cert } = readCertificate(o.rootCertificate, 'the root certificate');
  const name = `the root certificate ${o.rootCertificate}`;
  if (!node.checkIssued(node) || !node.verify(node.publicKey)) fail(`${name} is not self-signed (a root is)`);
  if (!cert.getExtension(x509.BasicConstraintsExtension)?.ca) fail(`${name} is not a CA certificate (basicConstraints cA is not true)`);
  const ku = cert.getExtension(x509.KeyUsagesExtension);
  if (ku && (ku.usages & x509.KeyUsageFlags.keyCertSign) === 0) fail(`${name} may not sign certificates (keyUsage lacks keyCertSign)`);
  if (cert.notAfter.getTime() <= o.now.getTime()) fail(`${name} expired at ${cert.notAfter.toISOString()}`);
  if (cert.notBefore.getTime() > o.now.getTime()) fail(`${name} is not valid before ${cert.notBefore.toISOString()}`);

  const key = readRootKey(o.rootKey, o.rootPassphrase);
  if (!node.checkPrivateKey(key)) fail(`the root key ${o.rootKey} does not match ${name}`);
  const keyType = keyTypeOf(key) ?? fail(`the root key ${o.rootKey} is of a type init cannot sign with (it signs with p256, p384, rsa and ed25519 keys)`);
  // WebCrypto signs for @peculiar/x509; the PKCS#8 copy made to import the key is wiped after.
  const der = key.export({ type: 'pkcs8', format: 'der' });
  try {
    const imported = await webcrypto.subtle.importKey('pkcs8', der, algorithms(keyType).gen, false, ['sign']);
    return { certificate: cert, key: imported, sign: algorithms(keyType).sign, node, keyType };
  } finally {
    der.fill(0);
  }
}

/**
 * A rollover: a new intermediate under an existing root, written as intermediate.pem,
 * intermediate.key (0600, encrypted when asked) and chain.pem (the root) into a new folder. Its
 * notBefore is not before the root's, and its notAfter is capped at the root's: a certificate
 * outliving its issuer would be unusable for its last stretch anyway.
 */
export async function createIntermediate(o: CreateIntermediateOptions): Promise<IntermediateRollover> {
  const root = await openRoot(o);
  const current = o.currentCertificate === undefined ? undefined : readCertificate(o.currentCertificate, 'the current intermediate');
  if (current && !(current.node.checkIssued(root.node) && current.node.verify(root.node.publicKey))) {
    fail(`the current intermediate ${o.currentCertificate} was not issued by the root certificate ${o.rootCertificate}`);
  }
  const external = o.publicKey === undefined ? undefined : readPublicKey(o.publicKey);
  const keyType = external?.keyType ?? o.keyType ?? (current && keyTypeOf(current.node.publicKey)) ?? root.keyType;
  // Whole seconds, as the certificate holds them (RFC 5280 §4.1.2.5), so what is printed is what was signed.
  const notBefore = new Date(Math.max(Math.floor((o.now.getTime() - BACKDATE) / 1000) * 1000, root.certificate.notBefore.getTime()));
  const asked = new Date(notBefore.getTime() + (o.intermediateDays ?? 1825) * DAY);
  const capped = asked.getTime() > root.certificate.notAfter.getTime();
  const intermediate = await makeIntermediate(root, {
    keyType,
    // The same name, byte for byte, as the intermediate it replaces: relying parties see no change.
    subject: o.intermediateName ?? current?.cert.subjectName ?? DEFAULT_INTERMEDIATE_NAME,
    notBefore,
    notAfter: capped ? root.certificate.notAfter : asked,
    publicKey: external && (await webcrypto.subtle.importKey('spki', external.spki, algorithms(keyType).gen, true, ['verify'])),
  });

  mkdirSync(o.dir, { recursive: true });
  const result: IntermediateRollover = {
    dir: o.dir,
    intermediateCertificate: join(o.dir, 'intermediate.pem'),
    intermediateKey: intermediate.privateKey ? join(o.dir, 'intermediate.key') : undefined,
    chain: join(o.dir, 'chain.pem'),
    subject: intermediate.certificate.subject,
    keyType,
    keyId: intermediate.certificate.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId.toLowerCase(),
    notBefore: intermediate.certificate.notBefore,
    notAfter: intermediate.certificate.notAfter,
    cappedFrom: capped ? asked : undefined,
    rootFingerprint: sha256Fingerprint(root.node.raw),
  };
  writeNewFiles([
    ...(intermediate.privateKey ? [{ path: join(o.dir, 'intermediate.key'), content: await pkcs8Pem(intermediate.privateKey, o.intermediatePassphrase), mode: 0o600 }] : []),
    { path: result.intermediateCertificate, content: pemOf(intermediate.certificate), mode: 0o644 },
    { path: result.chain, content: pemOf(root.certificate), mode: 0o644 },
  ]);
  return result;
}
