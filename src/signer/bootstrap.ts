/**
 * Creating a CA: a self-signed root and an intermediate signed by it, written as PEM files with
 * private keys in PKCS#8 (mode 0600, optionally encrypted). Used by `service-ca init` and by the
 * development CA that `npm start` creates when there is no configuration. Key generation happens
 * here because the signer module is the only one that handles CA key material.
 */
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { x509 } from '../x509/library.js';
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

function algorithms(keyType: AuthorityKeyType): { gen: webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams | webcrypto.Algorithm; sign: webcrypto.EcdsaParams | webcrypto.Algorithm } {
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

export async function createAuthority(options: CreateAuthorityOptions): Promise<AuthorityPaths> {
  const keyType = options.keyType ?? 'p256';
  const now = options.now ?? new Date();
  const { gen, sign } = algorithms(keyType);
  const usages: webcrypto.KeyUsage[] = ['sign', 'verify'];
  const rootKeys = (await webcrypto.subtle.generateKey(gen, true, usages)) as webcrypto.CryptoKeyPair;
  const intKeys = (await webcrypto.subtle.generateKey(gen, true, usages)) as webcrypto.CryptoKeyPair;
  const notBefore = new Date(now.getTime() - 5 * 60_000);
  const rootName = options.rootName ?? 'CN=service-ca Root CA';
  const caUsage = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature;

  const root = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: rootName,
    notBefore,
    notAfter: new Date(notBefore.getTime() + (options.rootDays ?? 3650) * DAY),
    keys: rootKeys as unknown as CryptoKeyPair,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(caUsage, true),
      await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey as unknown as CryptoKey),
    ],
  });
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: options.intermediateName ?? 'CN=service-ca Intermediate CA',
    issuer: root.subject,
    notBefore,
    notAfter: new Date(notBefore.getTime() + (options.intermediateDays ?? 1825) * DAY),
    publicKey: intKeys.publicKey as unknown as CryptoKey,
    signingKey: rootKeys.privateKey as unknown as CryptoKey,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(caUsage, true),
      await x509.SubjectKeyIdentifierExtension.create(intKeys.publicKey as unknown as CryptoKey),
      await x509.AuthorityKeyIdentifierExtension.create(rootKeys.publicKey as unknown as CryptoKey),
    ],
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
  const rootPem = root.toString('pem') + '\n';
  const intPem = intermediate.toString('pem') + '\n';
  // Never overwrite a CA: 'wx' fails when a file exists (and a new file gets exactly its mode).
  const existing = [paths.rootKey, paths.intermediateKey, paths.rootCertificate, paths.intermediateCertificate, paths.chain].filter((p) => existsSync(p));
  if (existing.length > 0) throw new Error(`refusing to overwrite an existing CA: ${existing.join(', ')}`);
  writeFileSync(paths.rootKey, await pkcs8Pem(rootKeys.privateKey, options.rootPassphrase), { mode: 0o600, flag: 'wx' });
  writeFileSync(paths.intermediateKey, await pkcs8Pem(intKeys.privateKey, options.intermediatePassphrase), { mode: 0o600, flag: 'wx' });
  writeFileSync(paths.rootCertificate, rootPem, { mode: 0o644, flag: 'wx' });
  writeFileSync(paths.intermediateCertificate, intPem, { mode: 0o644, flag: 'wx' });
  writeFileSync(paths.chain, intPem + rootPem, { mode: 0o644, flag: 'wx' });
  return paths;
}
