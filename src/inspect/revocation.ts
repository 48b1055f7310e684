/**
 * Revocation status from the CRL a certificate names (RFC 5280 §4.2.1.13 distribution points,
 * §5 CRLs): fetched over http(s), its issuer must be the certificate's issuer (§6.3.3 b) and its
 * signature must verify with that issuer's key (§6.3.3 f), it must have been issued by now and
 * not be past its nextUpdate; then the serial is looked up (§5.1.2.6). Only full CRLs are read:
 * this CA publishes no delta or indirect CRLs, and a CRL carrying a delta or issuing-distribution-
 * point extension is read as a full one.
 */
import { pemBlocks } from '../x509/pem.js';
import { x509 } from '../x509/library.js';
import type { Cert } from './certificates.js';
import { download } from './download.js';

export type CrlStatus = 'good' | 'revoked' | 'unknown' | 'noCrl';

export interface CrlResult {
  status: CrlStatus;
  /** The distribution point the answer came from (the last one tried when none answered). */
  url: string | undefined;
  detail: string;
  revokedAt: string | undefined;
  reason: string | undefined;
  /** The CRL read, once its signature verified. */
  crl: { issuer: string; thisUpdate: string; nextUpdate: string | undefined } | undefined;
}

/** RFC 5280 §5.3.1 reason names, as docs/api.md spells them; an entry without a reasonCode is unspecified. */
const REASONS: Record<number, string> = {
  0: 'unspecified',
  1: 'keyCompromise',
  2: 'caCompromise',
  3: 'affiliationChanged',
  4: 'superseded',
  5: 'cessationOfOperation',
  6: 'certificateHold',
  8: 'removeFromCRL',
  9: 'privilegeWithdrawn',
  10: 'aACompromise',
};

/** How far a CRL's thisUpdate may be ahead of this machine's clock. */
const CLOCK_SKEW_MS = 5 * 60_000;

/** Downloads shared by the certificates of one inspection (a CA's CRL is fetched once). */
export type CrlCache = Map<string, Promise<Buffer>>;

function crlDer(bytes: Buffer): Buffer {
  if (!bytes.subarray(0, 64).toString('latin1').includes('-----BEGIN')) return bytes;
  // RFC 7468 §9 names the label X509 CRL; some tools write CRL.
  const text = bytes.toString('latin1');
  const blocks = [...pemBlocks(text, 'X509 CRL'), ...pemBlocks(text, 'CRL')];
  if (blocks.length === 0) throw new Error('no X509 CRL block in the PEM');
  return blocks[0]!;
}

const sameName = (a: x509.Name, b: x509.Name) => Buffer.from(a.toArrayBuffer()).equals(Buffer.from(b.toArrayBuffer())) || a.toString() === b.toString();

const unknown = (url: string | undefined, detail: string): CrlResult => ({ status: 'unknown', url, detail, revokedAt: undefined, reason: undefined, crl: undefined });

/** One distribution point: the status it gives, or why it gives none. */
async function checkOne(cert: Cert, issuer: Cert, url: string, now: Date, timeoutMs: number, cache: CrlCache): Promise<CrlResult> {
  let bytes = cache.get(url);
  if (!bytes) {
    bytes = download(url, timeoutMs);
    cache.set(url, bytes);
  }
  let body: Buffer;
  try {
    body = await bytes;
  } catch (err) {
    return unknown(url, `the CRL could not be fetched: ${(err as Error).message}`);
  }
  let crl: x509.X509Crl;
  try {
    crl = new x509.X509Crl(Buffer.from(crlDer(body)));
  } catch (err) {
    return unknown(url, `the CRL could not be read: ${(err as Error).message}`);
  }
  if (!sameName(crl.issuerName, issuer.parsed.subjectName)) return unknown(url, `the CRL's issuer is ${crl.issuer}, not ${issuer.parsed.subject}`);
  let verified = false;
  try {
    verified = await crl.verify({ publicKey: issuer.parsed });
  } catch {
    verified = false;
  }
  if (!verified) return unknown(url, `the CRL's signature does not verify with the key of ${issuer.parsed.subject}`);
  const read = { issuer: crl.issuer, thisUpdate: crl.thisUpdate.toISOString(), nextUpdate: crl.nextUpdate?.toISOString() };
  const entry = crl.findRevoked(cert.parsed);
  if (entry) {
    const reason = REASONS[entry.reason ?? 0] ?? `reason ${entry.reason}`;
    return { status: 'revoked', url, detail: `revoked at ${entry.revocationDate.toISOString()} (${reason}), says the CRL of ${read.thisUpdate}`, revokedAt: entry.revocationDate.toISOString(), reason, crl: read };
  }
  if (crl.thisUpdate.getTime() > now.getTime() + CLOCK_SKEW_MS) return { ...unknown(url, `the CRL was issued in the future (${read.thisUpdate})`), crl: read };
  if (crl.nextUpdate && crl.nextUpdate < now) return { ...unknown(url, `the CRL is stale: its nextUpdate ${read.nextUpdate} has passed`), crl: read };
  return { status: 'good', url, detail: `not in the CRL of ${read.thisUpdate} (signature verified)`, revokedAt: undefined, reason: undefined, crl: read };
}

/**
 * The certificate's status in its CRL. `issuer` is the certificate above it on the path; without
 * it the CRL's signature cannot be checked and the status is unknown.
 */
export async function checkCrl(cert: Cert, crlUrls: string[], issuer: Cert | undefined, now: Date, timeoutMs: number, cache: CrlCache): Promise<CrlResult> {
  if (crlUrls.length === 0) return { status: 'noCrl', url: undefined, detail: 'no CRL distribution point', revokedAt: undefined, reason: undefined, crl: undefined };
  if (!issuer) return unknown(crlUrls[0], "the issuer is not at hand to check the CRL's signature");
  let last: CrlResult | undefined;
  for (const url of crlUrls) {
    try {
      last = await checkOne(cert, issuer, url, now, timeoutMs, cache);
    } catch (err) {
      last = unknown(url, (err as Error).message);
    }
    if (last.status !== 'unknown') return last;
  }
  return last!;
}
