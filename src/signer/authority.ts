/**
 * Loading the issuing CA: the intermediate certificate, its private key and the chain above it.
 * Start-up is refused, with a message naming the key, when the key does not match the
 * certificate, the certificate may not sign certificates and CRLs (RFC 5280 §4.2.1.3, §4.2.1.9),
 * it is not valid now, or the chain does not verify.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
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
  keyIdentifier: Uint8Array;
  spki: Buffer;
  notBefore: Date;
  notAfter: Date;
}

export interface LoadedAuthority extends AuthorityCertificates {
  key: KeyObject;
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

function loadPrivateKey(files: AuthorityFiles): KeyObject {
  const pem = readText(files.key, 'ca.key');
  const encrypted = pem.includes('ENCRYPTED PRIVATE KEY') || pem.includes('Proc-Type: 4,ENCRYPTED');
  if (encrypted && !files.keyPassphrase) fail('ca.key: the key is encrypted and ca.keyPassphrase is not set');
  try {
    return createPrivateKey(encrypted ? { key: pem, format: 'pem', passphrase: files.keyPassphrase ?? '' } : { key: pem, format: 'pem' });
  } catch {
    // The node error can quote input; keep it out of the message.
    return fail(encrypted ? 'ca.key: cannot decrypt the key (wrong ca.keyPassphrase?)' : 'ca.key: not a readable PEM private key (PKCS#8 expected)');
  }
}

/** Reads and checks the CA files; `now` decides validity. */
export function loadAuthority(files: AuthorityFiles, now: Date): LoadedAuthority {
  const certs = pemBlocks(readText(files.certificate, 'ca.certificate'), 'CERTIFICATE');
  const intermediateDer = certs[0] ?? fail(`ca.certificate: no PEM certificate in ${files.certificate}`);
  const chainDer = [...certs.slice(1), ...(files.chain ? pemBlocks(readText(files.chain, 'ca.chain'), 'CERTIFICATE') : [])];
  if (files.chain && chainDer.length === certs.length - 1) fail(`ca.chain: no PEM certificate in ${files.chain}`);

  let cert: X509Certificate;
  try {
    cert = new X509Certificate(intermediateDer);
  } catch {
    return fail('ca.certificate: not a valid X.509 certificate');
  }
  const key = loadPrivateKey(files);
  if (!cert.checkPrivateKey(key)) fail('ca.key: the private key does not match ca.certificate');

  const parsed = new x509.X509Certificate(new Uint8Array(intermediateDer));
  const bc = parsed.getExtension(x509.BasicConstraintsExtension);
  if (!bc?.ca) fail('ca.certificate: not a CA certificate (basicConstraints cA is not true)');
  const ku = parsed.getExtension(x509.KeyUsagesExtension);
  const needed = x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
  if (!ku || (ku.usages & needed) !== needed) fail('ca.certificate: keyUsage must allow keyCertSign and cRLSign');

  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (notAfter.getTime() <= now.getTime()) fail(`ca.certificate: expired at ${notAfter.toISOString()}`);
  if (notBefore.getTime() > now.getTime()) fail(`ca.certificate: not valid before ${notBefore.toISOString()}`);

  // Each certificate must be signed by the next; the last must be self-signed (the root).
  const all = [intermediateDer, ...chainDer].map((d) => new X509Certificate(d));
  for (let i = 0; i < all.length - 1; i++) {
    if (!all[i]!.checkIssued(all[i + 1]!) || !all[i]!.verify(all[i + 1]!.publicKey)) {
      fail(`ca.chain: certificate ${i + 1} of the chain did not issue ${i === 0 ? 'ca.certificate' : `chain certificate ${i}`}`);
    }
  }
  const top = all[all.length - 1]!;
  if (!top.checkIssued(top) || !top.verify(top.publicKey)) fail('ca.chain: must end with the self-signed root certificate');

  const spki = cert.publicKey.export({ type: 'spki', format: 'der' });
  const ski = parsed.getExtension(x509.SubjectKeyIdentifierExtension);
  return {
    key,
    intermediateDer,
    chainDer,
    rootDer: chainDer[chainDer.length - 1] ?? intermediateDer,
    subjectDer: subjectNameDer(intermediateDer),
    keyIdentifier: ski ? Buffer.from(ski.keyId, 'hex') : keyIdentifierOf(spki),
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
