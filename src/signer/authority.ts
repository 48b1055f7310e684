/**
 * Loading the issuing CA: the intermediate certificate, its private key and the chain above it.
 * Start-up is refused, with a message naming the key, when the key does not match the
 * certificate, the certificate may not sign certificates and CRLs (RFC 5280 §4.2.1.3, §4.2.1.9),
 * it is not valid now, or the chain does not verify.
 */
import { createHash, createPrivateKey, createPublicKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { x509 } from '../x509/library.js';
import { CaError } from '../errors.js';
import { readTlv } from '../x509/der.js';
import { keyIdentifierOf } from './leaf-profile.js';
import { pemBlocks, toPem } from '../x509/pem.js';

export interface AuthorityFiles {
  certificate: string;
  key: string;
  keyPassphrase?: string | undefined;
  chain?: string | undefined;
  /** Where these keys are in the configuration, for messages: `ca` (the default) or `ca.issuers.N`. */
  where?: string | undefined;
}

/** The public facts about the CA that anyone may see. */
export interface AuthorityCertificates {
  /** The intermediate, DER. */
  intermediateDer: Buffer;
  /** Certificates above the intermediate, nearest first; the last is the root. */
  chainDer: Buffer[];
  /** The root (self-signed) certificate, DER. */
  rootDer: Buffer;
  subjectDer: Buffer;
  /** The intermediate's subject as text (RFC 4514 style, "CN=…, O=…"). */
  subject: string;
  keyIdentifier: Uint8Array;
  /** The issuer key id: lowercase hex of keyIdentifier (the intermediate's SubjectKeyIdentifier). */
  keyId: string;
  spki: Buffer;
  notBefore: Date;
  notAfter: Date;
}

export interface LoadedAuthority extends AuthorityCertificates {
  key: KeyObject;
}

/** Whether a certificate past its notAfter is refused (the default) or loaded. */
export interface LoadOptions {
  allowExpired?: boolean;
}

function fail(detail: string): never {
  throw new CaError('serverInternal', detail);
}

function readText(path: string, key: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    return fail(`${key}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** The subject Name of a certificate, DER as written (Certificate → TBS → 6th field with a version). */
export function subjectNameDer(certDer: Uint8Array): Buffer {
  const cert = readTlv(certDer, 0);
  const tbs = readTlv(certDer, cert.start);
  let p = tbs.start;
  const first = readTlv(certDer, p);
  if (first.tag === 0xa0) p = first.end; // explicit version
  for (let i = 0; i < 4; i++) p = readTlv(certDer, p).end; // serial, signature, issuer, validity
  const subject = readTlv(certDer, p);
  return Buffer.from(certDer.subarray(p, subject.end));
}

/** A PEM private key file (PKCS#8, optionally encrypted). */
export function loadPrivateKey(files: AuthorityFiles): KeyObject {
  const w = files.where ?? 'ca';
  const pem = readText(files.key, `${w}.key`);
  const encrypted = pem.includes('ENCRYPTED PRIVATE KEY') || pem.includes('Proc-Type: 4,ENCRYPTED');
  if (encrypted && !files.keyPassphrase) fail(`${w}.key: the key is encrypted and ${w}.keyPassphrase is not set`);
  try {
    return createPrivateKey(encrypted ? { key: pem, format: 'pem', passphrase: files.keyPassphrase ?? '' } : { key: pem, format: 'pem' });
  } catch {
    // The node error can quote input; keep it out of the message.
    return fail(encrypted ? `${w}.key: cannot decrypt the key (wrong ${w}.keyPassphrase?)` : `${w}.key: not a readable PEM private key (PKCS#8 expected)`);
  }
}

/** Refuses a key whose public half is not the certificate's (`key` is private or public). */
export function assertKeyMatches(authority: AuthorityCertificates, key: KeyObject, where = 'ca'): void {
  const spki = key.type === 'private' ? createPublicKey(key).export({ type: 'spki', format: 'der' }) : key.export({ type: 'spki', format: 'der' });
  if (!spki.equals(authority.spki)) fail(`${where}.key: the private key does not match ${where}.certificate`);
}

/** Reads and checks the CA files, key included; `now` decides validity. */
export function loadAuthority(files: AuthorityFiles, now: Date, options: LoadOptions = {}): LoadedAuthority {
  const authority = loadCertificates(files, now, options);
  const key = loadPrivateKey(files);
  assertKeyMatches(authority, key, files.where);
  return { ...authority, key };
}

/** Reads and checks an issuer's certificate and the chain above it (the key is checked apart). */
export function loadCertificates(files: Omit<AuthorityFiles, 'key' | 'keyPassphrase'>, now: Date, options: LoadOptions = {}): AuthorityCertificates {
  const w = files.where ?? 'ca';
  const certs = pemBlocks(readText(files.certificate, `${w}.certificate`), 'CERTIFICATE');
  const intermediateDer = certs[0] ?? fail(`${w}.certificate: no PEM certificate in ${files.certificate}`);
  const chainDer = [...certs.slice(1), ...(files.chain ? pemBlocks(readText(files.chain, `${w}.chain`), 'CERTIFICATE') : [])];
  if (files.chain && chainDer.length === certs.length - 1) fail(`${w}.chain: no PEM certificate in ${files.chain}`);

  let cert: X509Certificate;
  try {
    cert = new X509Certificate(intermediateDer);
  } catch {
    return fail(`${w}.certificate: not a valid X.509 certificate`);
  }

  const parsed = new x509.X509Certificate(new Uint8Array(intermediateDer));
  const bc = parsed.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) fail(`${w}.certificate: not a CA certificate (basicConstraints cA is not true)`);
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  const needed = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
  if (!ku || (ku.usages & needed) !== needed) fail(`${w}.certificate: keyUsage must allow keyCertSign and cRLSign`);

  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() <= now.getTime() && !options.allowExpired) fail(`${w}.certificate: expired at ${notAfter.toISOString()}`);
  if (notBefore.getTime() > now.getTime()) fail(`${w}.certificate: not valid before ${notBefore.toISOString()}`);

  // Each certificate must be signed by the next; the last must be self-signed (the root).
  const all = [intermediateDer, ...chainDer].map((d) => new X509Certificate(d));
  for (let i = 0; i < all.length - 1; i++) {
    if (!all[i]!.checkIssued(all[i + 1]!) || !all[i]!.verify(all[i + 1]!.publicKey)) {
      fail(`${w}.chain: certificate ${i + 1} of the chain did not issue ${i === 0 ? `${w}.certificate` : `chain certificate ${i}`}`);
    }
  }
  const top = all[all.length - 1]!;
  if (!top.checkIssued(top) || !top.verify(top.publicKey)) fail(`${w}.chain: must end with the self-signed root certificate`);

  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  const ski = parsed.getExtension(x509.SubjectKeyIdentifierExtension);
  const keyIdentifier = ski ? Buffer.from(ski.keyId, 'hex') : keyIdentifierOf(spki);
  return {
    intermediateDer,
    chainDer,
    rootDer: chainDer[chainDer.length - 1] ?? intermediateDer,
    subjectDer: subjectNameDer(intermediateDer),
    subject: parsed.subject,
    keyIdentifier,
    keyId: Buffer.from(keyIdentifier).toString('hex'),
    spki,
    notBefore,
    notAfter,
  };
}

export function sha256Fingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

export function certificatePem(der: Uint8Array): string {
  return toPem(der, 'CERTIFICATE');
}
