/** The human-readable form of an inspection report (the JSON form is the report itself). */
import type { CertificateEntry, InspectReport } from './report.js';

const ROLE = (c: CertificateEntry, last: boolean) => (c.position === 0 ? 'leaf' : !c.onPath ? 'not on the path' : last && c.isCa && c.subject === c.issuer ? 'root' : 'intermediate');

const SOURCE: Record<CertificateEntry['source'], string> = {
  server: 'sent by the server',
  file: 'from the file',
  untrusted: 'from --untrusted',
  aia: 'fetched from its AIA URL',
  root: 'from the trusted roots',
};

const CLIENT_CERTIFICATE = {
  notRequested: 'not requested',
  requested: 'requested (optional: the server accepted the handshake without one)',
  required: 'required (the server refused the handshake without one)',
} as const;

function sanText(c: CertificateEntry): string {
  const all = [...c.sans.dns.map((n) => `DNS:${n}`), ...c.sans.ip.map((n) => `IP:${n}`), ...c.sans.uri.map((n) => `URI:${n}`), ...c.sans.email.map((n) => `email:${n}`)];
  return all.length ? all.join(', ') : '(none)';
}

function certificateLines(c: CertificateEntry, last: boolean): string[] {
  const lines = [
    `Certificate ${c.position} (${ROLE(c, last)}, ${SOURCE[c.source]})`,
    `  subject      ${c.subject || '(empty)'}`,
    `  issuer       ${c.issuer}`,
    `  SANs         ${sanText(c)}`,
    `  key          ${c.key.type}${c.key.bits ? ` (${c.key.bits} bits)` : ''}`,
    `  serial       ${c.serial}`,
    `  validity     ${c.notBefore} to ${c.notAfter} (${c.validity === 'notYetValid' ? 'not yet valid' : c.validity === 'expired' ? c.timeLeft : `${c.timeLeft} left`})`,
    `  sha-256      ${c.fingerprint256}`,
  ];
  if (c.revocation) lines.push(`  revocation   ${c.revocation.status}: ${c.revocation.detail}${c.revocation.url ? ` [${c.revocation.url}]` : ''}`);
  if (c.renewal) lines.push(`  renewal      ${c.renewal.status === 'found' ? `${c.renewal.detail} (from ${c.renewal.source})` : c.renewal.detail}`);
  if (c.record && c.record.status !== 'notAsked') {
    const r = c.record.record;
    lines.push(`  CA record    ${r ? `${r.status}, identity ${r.identity}${r.revokedAt ? `, revoked at ${r.revokedAt} (${r.revocationReason})` : ''}` : c.record.detail}`);
  }
  return lines;
}

export function renderText(r: InspectReport): string {
  const out: string[] = [];
  if (r.target.kind === 'endpoint') out.push(`Endpoint     ${r.target.host}:${r.target.port}${r.target.servername ? ` (server name ${r.target.servername})` : ''}`);
  else out.push(`File         ${r.target.file}`);
  if (r.tls) {
    const t = r.tls;
    out.push(`TLS          ${t.version ?? 'unknown version'}, ${t.cipher ?? 'unknown cipher'}`);
    out.push(`ALPN         ${t.alpn ?? 'none selected'} (offered: ${t.alpnOffered.length ? t.alpnOffered.join(', ') : 'none'})`);
    out.push(`Client cert  ${CLIENT_CERTIFICATE[t.clientCertificate]}`);
    if (t.handshakeError) out.push(`Handshake    ended: ${t.handshakeError}`);
    if (t.unreadable) out.push(`Handshake    ${t.unreadable}`);
  }
  for (const c of r.certificates) out.push('', ...certificateLines(c, c.position === r.certificates.filter((x) => x.onPath).length - 1));
  if (r.verification) {
    out.push('', `Verification ${r.verification.status}: ${r.verification.detail}${r.verification.rootFile ? ` (roots from ${r.verification.rootFile})` : ''}`);
  }
  if (r.hostname) out.push(`Name         ${r.hostname.name}: ${r.hostname.matched ? 'matches the leaf' : 'does not match the leaf'}`);
  out.push('');
  if (r.warnings.length === 0) out.push('No warnings.');
  else out.push(`Warnings (${r.warnings.length}):`, ...r.warnings.map((w) => `  ${w.code}: ${w.message}`));
  return out.join('\n');
}
