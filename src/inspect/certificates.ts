/**
 * A certificate as the inspector reports it: read once by node:crypto (path building, host and
 * IP checks, key details) and once by @peculiar/x509 (names, extensions), and the files and
 * bytes certificates come from.
 */
import { X509Certificate } from 'node:crypto';
import { pemBlocks } from '../x509/pem.js';
import { x509 } from '../x509/library.js';

/** Where a certificate of the chain came from. */
export type CertificateSource = 'server' | 'file' | 'untrusted' | 'aia' | 'root';

export interface Cert {
  der: Buffer;
  node: X509Certificate;
  parsed: x509.X509Certificate;
  source: CertificateSource;
}

export interface SubjectAltNames {
  dns: string[];
  ip: string[];
  uri: string[];
  email: string[];
}

export interface CertificateFacts {
  subject: string;
  issuer: string;
  sans: SubjectAltNames;
  /** e.g. "ECDSA P-256", "RSA", "Ed25519", and its size in bits. */
  key: { type: string; bits: number | undefined };
  /** Lowercase hex of the serial's content octets without a leading 00 sign octet (docs/api.md "Conventions"). */
  serial: string;
  notBefore: string;
  notAfter: string;
  /** Seconds from now to notAfter, negative once expired. */
  secondsLeft: number;
  timeLeft: string;
  fingerprint256: string;
  isCa: boolean;
  crlUrls: string[];
  caIssuersUrls: string[];
}

export function certOf(der: Buffer, source: CertificateSource): Cert {
  return { der, node: new X509Certificate(der), parsed: new x509.X509Certificate(Buffer.from(der)), source };
}

/** Every certificate in a file's bytes: PEM blocks, or else one DER certificate. Throws when there is none. */
export function certificatesIn(bytes: Buffer, source: CertificateSource): Cert[] {
  const text = bytes.toString('latin1');
  if (text.includes('-----BEGIN')) {
    const blocks = pemBlocks(text, 'CERTIFICATE');
    if (blocks.length === 0) throw new Error('no CERTIFICATE block in the PEM');
    return blocks.map((b) => certOf(b, source));
  }
  return [certOf(bytes, source)];
}

export function serialHex(cert: Cert): string {
  const s = cert.parsed.serialNumber.toLowerCase();
  return s.length > 2 && s.startsWith('00') && parseInt(s.slice(2, 4), 16) >= 0x80 ? s.slice(2) : s;
}

const GENERAL_NAME = { dns: 'dns', ip: 'ip', url: 'uri', email: 'email' } as const;

export function sansOf(cert: Cert): SubjectAltNames {
  const sans: SubjectAltNames = { dns: [], ip: [], uri: [], email: [] };
  const ext = cert.parsed.getExtension(x509.SubjectAlternativeNameExtension);
  for (const name of ext?.names.items ?? []) {
    const key = GENERAL_NAME[name.type as keyof typeof GENERAL_NAME];
    if (key) sans[key].push(name.value);
  }
  return sans;
}

/** RFC 5280 §4.2.1.13: the URIs of the full names of the distribution points. */
export function crlUrlsOf(cert: Cert): string[] {
  const ext = cert.parsed.getExtension(x509.CRLDistributionPointsExtension);
  return (ext?.distributionPoints ?? []).flatMap((dp) => (dp.distributionPoint?.fullName ?? []).flatMap((n) => (n.uniformResourceIdentifier ? [n.uniformResourceIdentifier] : [])));
}

/** RFC 5280 §4.2.2.1: the caIssuers URIs of the Authority Information Access extension. */
export function caIssuersUrlsOf(cert: Cert): string[] {
  const ext = cert.parsed.getExtension(x509.AuthorityInfoAccessExtension);
  return (ext?.caIssuers ?? []).filter((n) => n.type === 'url').map((n) => n.value);
}

function keyOf(cert: Cert): { type: string; bits: number | undefined } {
  const key = cert.node.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' }[details.namedCurve ?? ''] ?? details.namedCurve ?? 'unknown curve';
      return { type: `ECDSA ${curve}`, bits: { 'P-256': 256, 'P-384': 384, 'P-521': 521 }[curve] };
    }
    case 'rsa':
    case 'rsa-pss':
      return { type: key.asymmetricKeyType === 'rsa' ? 'RSA' : 'RSA-PSS', bits: details.modulusLength };
    case 'ed25519':
      return { type: 'Ed25519', bits: 256 };
    case 'ed448':
      return { type: 'Ed448', bits: 456 };
    default:
      return { type: key.asymmetricKeyType ?? 'unknown', bits: undefined };
  }
}

/** "3d 4h", "5h 12m", "42m", "expired 2h 5m ago". */
export function formatDuration(seconds: number): string {
  const s = Math.abs(Math.round(seconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const text = d > 0 ? `${d}d ${h}h` : h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m` : `${s}s`;
  return seconds < 0 ? `expired ${text} ago` : text;
}

export function factsOf(cert: Cert, now: Date): CertificateFacts {
  const secondsLeft = Math.floor((cert.parsed.notAfter.getTime() - now.getTime()) / 1000);
  return {
    subject: cert.parsed.subject,
    issuer: cert.parsed.issuer,
    sans: sansOf(cert),
    key: keyOf(cert),
    serial: serialHex(cert),
    notBefore: cert.parsed.notBefore.toISOString(),
    notAfter: cert.parsed.notAfter.toISOString(),
    secondsLeft,
    timeLeft: formatDuration(secondsLeft),
    fingerprint256: cert.node.fingerprint256.replace(/:/g, '').toLowerCase(),
    isCa: cert.node.ca,
    crlUrls: crlUrlsOf(cert),
    caIssuersUrls: caIssuersUrlsOf(cert),
  };
}

/** Whether the certificate names itself as issuer and its signature verifies with its own key. */
export const isSelfSigned = (cert: Cert) => cert.node.checkIssued(cert.node) && cert.node.verify(cert.node.publicKey);

/** notBefore ≤ now ≤ notAfter (RFC 5280 §4.1.2.5), or which side it falls on. */
export function validityAt(cert: Cert, now: Date): 'valid' | 'expired' | 'notYetValid' {
  if (now < cert.parsed.notBefore) return 'notYetValid';
  return now > cert.parsed.notAfter ? 'expired' : 'valid';
}
