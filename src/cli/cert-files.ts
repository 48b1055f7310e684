/**
 * The files a service reads: PREFIX.key (0600), PREFIX.pem (leaf), PREFIX.chain.pem
 * (intermediates). Each is replaced atomically; the key first, then the chain, then the leaf,
 * so a reader that keys off the leaf's change finds its key already in place.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Issuance } from '../client/index.js';
import { writeFileAtomic } from './files.js';
import type { Names } from './keys.js';

export interface CurrentCertificate {
  certificatePem: string;
  keyPem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export const paths = (prefix: string) => ({ key: `${prefix}.key`, cert: `${prefix}.pem`, chain: `${prefix}.chain.pem` });

function sortedNames(names: Names): string {
  const n = (v: string[] | undefined, f: (s: string) => string = (s) => s) => [...(v ?? [])].map(f).sort();
  return JSON.stringify({ dns: n(names.dns, (s) => s.toLowerCase()), ip: n(names.ip), uri: n(names.uri), email: n(names.email) });
}

/** The SANs of a certificate as Names (node's subjectAltName text). */
export function namesOf(cert: X509Certificate): Names {
  const out: Required<Names> = { dns: [], ip: [], uri: [], email: [] };
  for (const part of (cert.subjectAltName ?? '').split(', ')) {
    const i = part.indexOf(':');
    const kind = part.slice(0, i);
    const value = part.slice(i + 1);
    if (kind === 'DNS') out.dns.push(value);
    else if (kind === 'IP Address') out.ip.push(value);
    else if (kind === 'URI') out.uri.push(value);
    else if (kind === 'email') out.email.push(value);
  }
  return out;
}

const canonicalIp = (s: string) => (isIP(s) === 6 ? new URL(`http://[${s}]/`).hostname.slice(1, -1) : s);

/**
 * The current certificate when the files exist, parse, belong together, are valid now and are
 * for exactly the wanted names; otherwise undefined with the reason.
 */
export function readCurrent(prefix: string, wanted: Names, now: Date): { current?: CurrentCertificate; reason?: string } {
  const p = paths(prefix);
  let certificatePem: string;
  let keyPem: string;
  try {
    certificatePem = readFileSync(p.cert, 'utf8');
    keyPem = readFileSync(p.key, 'utf8');
    readFileSync(p.chain, 'utf8');
  } catch {
    return { reason: 'files missing' };
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certificatePem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return { reason: 'key does not match the certificate' };
  } catch {
    return { reason: 'files do not parse' };
  }
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now.getTime() >= notAfter.getTime()) return { reason: 'certificate expired' };
  const have = namesOf(cert);
  const norm = (n: Names) => sortedNames({ ...n, ip: (n.ip ?? []).map(canonicalIp) });
  if (norm(have) !== norm(wanted)) return { reason: 'certificate is for other names' };
  let serial = cert.serialNumber.toLowerCase();
  if (serial.length > 2 && serial.startsWith('00') && parseInt(serial[2]!, 16) >= 8) serial = serial.slice(2);
  return { current: { certificatePem, keyPem, serial, notBefore, notAfter } };
}

export function writeIssued(prefix: string, keyPem: string, issued: Issuance): CurrentCertificate {
  const p = paths(prefix);
  writeFileAtomic(p.key, keyPem, 0o600);
  writeFileAtomic(p.chain, issued.chain.join(''), 0o644);
  writeFileAtomic(p.cert, issued.certificate, 0o644);
  return { certificatePem: issued.certificate, keyPem, serial: issued.serial, notBefore: new Date(issued.notBefore), notAfter: new Date(issued.notAfter) };
}
