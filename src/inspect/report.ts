/**
 * What `service-ca inspect` finds, and which findings are warnings. `--json` prints an
 * InspectReport as is; its shape is stable (fields may be added, none renamed or removed):
 *
 *   {
 *     "target": {"kind": "endpoint", "host", "port", "servername": string|null}
 *             | {"kind": "file", "file"},
 *     "tls": null | {"version", "cipher", "alpn": string|null, "alpnOffered": [..],
 *             "clientCertificate": "notRequested"|"requested"|"required",
 *             "handshakeError": string|null, "unreadable": string|null},
 *     "certificates": [{ "position", "source": "server"|"file"|"untrusted"|"aia"|"root",
 *             "onPath", "subject", "issuer", "sans": {"dns","ip","uri","email"},
 *             "key": {"type", "bits"}, "serial", "notBefore", "notAfter", "secondsLeft",
 *             "timeLeft", "fingerprint256", "isCa", "crlUrls", "caIssuersUrls",
 *             "validity": "valid"|"expired"|"notYetValid",
 *             "revocation": null | {"status": "good"|"revoked"|"unknown"|"noCrl", "url",
 *                             "detail", "revokedAt", "reason", "crl"},
 *             "renewal": null | {"status": "found"|"notFound"|"unreachable"|"notAsked", "source",
 *                             "start", "end", "revokedByCa", "detail"},
 *             "record": null | {"status": "found"|"failed"|"notAsked", "record", "detail"} }],
 *     "verification": {"status": "trusted"|"untrustedRoot"|"incomplete"|"badSignature"|"notCa"|"noRoot",
 *             "detail", "rootFile": string|null, "missingIssuer": string|null,
 *             "notCarried": [{"subject", "source", "url"}], "aiaErrors": [..]},
 *     "hostname": null | {"name", "kind": "dns"|"ip", "matched"},
 *     "warnings": [{"code", "message", "position": number|null}]
 *   }
 *
 * The leaf is position 0; renewal and record are set for the leaf only; revocation for every
 * certificate on the path but a trust anchor or a self-signed end. Exit status: 0 with no
 * warning, 1 with any.
 */
import type { RecordResult, RenewalResult } from './ca.js';
import type { CertificateFacts, CertificateSource } from './certificates.js';
import type { PathStatus } from './chain.js';
import type { CrlResult } from './revocation.js';
import type { ClientCertificateRequest } from './tls-probe.js';

export interface TlsFacts {
  version: string | null;
  cipher: string | null;
  alpn: string | null;
  alpnOffered: string[];
  clientCertificate: ClientCertificateRequest;
  handshakeError: string | null;
  unreadable: string | null;
}

export interface CertificateEntry extends CertificateFacts {
  position: number;
  source: CertificateSource;
  onPath: boolean;
  validity: 'valid' | 'expired' | 'notYetValid';
  revocation: CrlResult | null;
  renewal: RenewalResult | null;
  record: RecordResult | null;
}

export interface Verification {
  status: PathStatus;
  detail: string;
  rootFile: string | null;
  missingIssuer: string | null;
  notCarried: { subject: string; source: CertificateSource; url: string | undefined }[];
  aiaErrors: string[];
}

export type WarningCode =
  | 'handshakeFailed'
  | 'tlsVersion'
  | 'missingIntermediate'
  | 'untrusted'
  | 'unverified'
  | 'nameMismatch'
  | 'expired'
  | 'notYetValid'
  | 'revoked'
  | 'revocationUnknown'
  | 'pastRenewalWindow'
  | 'lateInLifetime'
  | 'caRecordUnavailable';

export interface Warning {
  code: WarningCode;
  message: string;
  position: number | null;
}

export type Target = { kind: 'endpoint'; host: string; port: number; servername: string | null } | { kind: 'file'; file: string };

export interface InspectReport {
  target: Target;
  tls: TlsFacts | null;
  certificates: CertificateEntry[];
  verification: Verification | null;
  hostname: { name: string; kind: 'dns' | 'ip'; matched: boolean } | null;
  warnings: Warning[];
}

/** Versions below TLS 1.2 (RFC 8996 deprecates TLS 1.0 and 1.1). */
const OLD_VERSIONS = new Set(['SSLv3', 'TLSv1', 'TLSv1.1']);

const UNTRUSTED: Partial<Record<PathStatus, true>> = { untrustedRoot: true, badSignature: true, notCa: true };

/** Every warning the findings call for, in a fixed order: connection, chain, then each certificate. */
export function warningsOf(r: Omit<InspectReport, 'warnings'>, now: Date): Warning[] {
  const out: Warning[] = [];
  const add = (code: WarningCode, message: string, position: number | null = null) => out.push({ code, message, position });
  if (r.tls) {
    if (r.tls.version && OLD_VERSIONS.has(r.tls.version)) add('tlsVersion', `the server negotiated ${r.tls.version}, below TLS 1.2`);
    if (r.tls.handshakeError && r.tls.clientCertificate !== 'required') add('handshakeFailed', `the handshake failed: ${r.tls.handshakeError}`);
    if (r.certificates.length === 0 && !r.tls.handshakeError) add('handshakeFailed', `the server sent no certificate${r.tls.unreadable ? ` (${r.tls.unreadable})` : ''}`);
  }
  const v = r.verification;
  if (v) {
    if (v.missingIssuer !== null) {
      const where = r.target.kind === 'endpoint' ? 'sent by the server' : 'in the file';
      const tried = v.aiaErrors.length ? v.aiaErrors.join('; ') : 'no AIA URL served it';
      add('missingIntermediate', `missing intermediate: the issuer ${v.missingIssuer} is not ${where} nor in --untrusted (${tried})`);
    }
    if (r.target.kind === 'endpoint') {
      for (const m of v.notCarried) add('missingIntermediate', `the server does not send the intermediate ${m.subject}; it was found ${m.source === 'aia' ? `at its AIA URL ${m.url}` : 'in --untrusted'}`);
    }
    if (UNTRUSTED[v.status]) add('untrusted', `not trusted: ${v.detail}`);
    if (v.status === 'noRoot') add('unverified', 'not verified: no root given (--ca, SERVICE_CA_ROOT or a context saved by bootstrap)');
  }
  if (r.hostname && !r.hostname.matched) add('nameMismatch', `the certificate is not valid for ${r.hostname.kind === 'ip' ? 'the IP address' : 'the name'} ${r.hostname.name}`);
  for (const c of r.certificates) {
    if (!c.onPath && c.position !== 0) continue;
    const what = c.position === 0 ? 'the leaf' : `certificate ${c.position} (${c.subject})`;
    if (c.validity === 'expired') add('expired', `${what} expired at ${c.notAfter}`, c.position);
    if (c.validity === 'notYetValid') add('notYetValid', `${what} is not valid before ${c.notBefore}`, c.position);
    if (c.revocation?.status === 'revoked') add('revoked', `${what} is revoked: ${c.revocation.detail}`, c.position);
    if (c.revocation?.status === 'unknown') add('revocationUnknown', `${what}: revocation status unknown: ${c.revocation.detail}`, c.position);
    if (c.record?.status === 'found' && c.record.record?.status === 'revoked' && c.revocation?.status !== 'revoked') {
      add('revoked', `${what} is revoked: the CA's record says so (${c.record.record.revokedAt}, ${c.record.record.revocationReason})`, c.position);
    }
    if (c.record?.status === 'failed') add('caRecordUnavailable', c.record.detail, c.position);
    if (c.position === 0 && c.validity === 'valid') renewalWarning(c, now, add);
  }
  return out;
}

/** Past the CA's renewal window; or, without one, in the last third of the lifetime (where this CA's window opens). */
function renewalWarning(leaf: CertificateEntry, now: Date, add: (code: WarningCode, message: string, position: number | null) => void): void {
  const r = leaf.renewal;
  if (r?.status === 'found' && r.end) {
    if (r.revokedByCa) add('pastRenewalWindow', `the CA asks for renewal at once: ${r.detail}`, 0);
    else if (now.getTime() > Date.parse(r.end)) add('pastRenewalWindow', `past its renewal window, which ended at ${r.end}`, 0);
    return;
  }
  const from = Date.parse(leaf.notBefore);
  const lifetime = Date.parse(leaf.notAfter) - from;
  const lastThird = from + (lifetime * 2) / 3;
  if (now.getTime() >= lastThird) add('lateInLifetime', `in the last third of its lifetime since ${new Date(lastThird).toISOString()} (no renewal-info: ${r?.detail ?? 'not asked'})`, 0);
}
