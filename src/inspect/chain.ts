/**
 * The certification path from a leaf to a trusted root, as a client builds it (the signature and
 * issuer parts of RFC 5280 §6.1): an issuer is found by name and key identifier (node's
 * checkIssued), must be a CA (§4.2.1.9) and must have signed the certificate below it (verify
 * with its public key). Candidates, in this order: the trusted roots, what the target carried
 * (the server's chain, the rest of the file), the --untrusted certificates, and, only when none
 * of those issues a certificate, what its AIA caIssuers URL serves (§4.2.2.1).
 *
 * Two faults are kept apart: a missing intermediate and an untrusted root. When no certificate
 * at hand issues the last one on the path, a leaf (not a CA) means a missing intermediate: a
 * server must send its intermediates. A CA certificate there, or a self-signed one, means the
 * path leads to a root that is not trusted here: servers rarely send their root, so the issuer of
 * the last intermediate is taken to be that root. (A longer chain whose server leaves out an upper
 * intermediate with no AIA URL reads the same way; AIA, tried first, usually tells them apart.)
 * An intermediate that was needed but not carried by the target is listed in `notCarried`.
 * Validity periods are checked by the report, for every certificate of the path.
 */
import { caIssuersUrlsOf, certificatesIn, isSelfSigned, type Cert, type CertificateSource } from './certificates.js';
import { download } from './download.js';

export type PathStatus = 'trusted' | 'untrustedRoot' | 'incomplete' | 'badSignature' | 'notCa' | 'noRoot';

export interface PathResult {
  status: PathStatus;
  detail: string;
  /** Leaf first, up to the trust anchor or as far as it went. */
  path: Cert[];
  /** Intermediates on the path that came from --untrusted or AIA, not from the target. */
  notCarried: { subject: string; source: CertificateSource; url: string | undefined }[];
  /** The issuer name no certificate at hand (AIA included) answers to, when the path stops short. */
  missingIssuer: string | undefined;
  /** AIA fetches that failed. */
  aiaErrors: string[];
}

export interface PathInput {
  leaf: Cert;
  /** What the target carried besides the leaf. */
  carried: Cert[];
  untrusted: Cert[];
  roots: Cert[];
  timeoutMs: number;
}

const MAX_DEPTH = 10;

const same = (a: Cert, b: Cert) => a.der.equals(b.der);

type IssuerSearch = { kind: 'found'; cert: Cert } | { kind: 'none' } | { kind: 'badSignature' | 'notCa'; cert: Cert };

/** The first candidate that names and signed `child` and is a CA; else why the name matches failed. */
function findIssuer(child: Cert, candidates: Cert[]): IssuerSearch {
  let failure: IssuerSearch = { kind: 'none' };
  for (const c of candidates) {
    if (!child.node.checkIssued(c.node)) continue;
    if (!child.node.verify(c.node.publicKey)) {
      if (failure.kind === 'none') failure = { kind: 'badSignature', cert: c };
      continue;
    }
    if (!c.node.ca) {
      failure = { kind: 'notCa', cert: c };
      continue;
    }
    return { kind: 'found', cert: c };
  }
  return failure;
}

/** The certificates the AIA caIssuers URLs of `cert` serve (DER or PEM), with the URL of each. */
async function fetchIssuers(cert: Cert, tried: Set<string>, timeoutMs: number, errors: string[]): Promise<{ cert: Cert; url: string }[]> {
  const found: { cert: Cert; url: string }[] = [];
  for (const url of caIssuersUrlsOf(cert)) {
    if (tried.has(url)) continue;
    tried.add(url);
    try {
      for (const c of certificatesIn(await download(url, timeoutMs), 'aia')) found.push({ cert: c, url });
    } catch (err) {
      errors.push(`AIA ${(err as Error).message}`);
    }
  }
  return found;
}

export async function buildPath(input: PathInput): Promise<PathResult> {
  const pool = [...input.carried, ...input.untrusted];
  const urls = new Map<Cert, string>();
  const tried = new Set<string>();
  const aiaErrors: string[] = [];
  const path = [input.leaf];
  const result = (status: PathStatus, detail: string, missingIssuer?: string): PathResult => ({
    status,
    detail,
    path,
    missingIssuer,
    notCarried: path.slice(1).filter((c) => c.source === 'untrusted' || c.source === 'aia').map((c) => ({ subject: c.parsed.subject, source: c.source, url: urls.get(c) })),
    aiaErrors,
  });
  for (;;) {
    const current = path[path.length - 1]!;
    if (input.roots.some((r) => same(r, current))) return result('trusted', `chains to the trusted root ${current.parsed.subject}`);
    if (path.length > MAX_DEPTH) return result('incomplete', `no trusted root within ${MAX_DEPTH} certificates`);
    const candidates = [...input.roots, ...pool.filter((c) => !path.some((p) => same(p, c)))];
    const issuer = findIssuer(current, candidates);
    if (issuer.kind === 'found') {
      path.push(issuer.cert);
      continue;
    }
    if (issuer.kind === 'badSignature') return result('badSignature', `the signature of ${current.parsed.subject} does not verify with the key of ${issuer.cert.parsed.subject}`);
    if (issuer.kind === 'notCa') return result('notCa', `${issuer.cert.parsed.subject} signed ${current.parsed.subject} but is not a CA`);
    if (isSelfSigned(current)) {
      if (input.roots.length === 0) return result('noRoot', `ends at the self-signed ${current.parsed.subject}; no root was given to trust`);
      return result('untrustedRoot', `ends at the self-signed ${current.parsed.subject}, which is not a trusted root`);
    }
    const fetched = await fetchIssuers(current, tried, input.timeoutMs, aiaErrors);
    if (fetched.length > 0) {
      for (const f of fetched) {
        urls.set(f.cert, f.url);
        pool.push(f.cert);
      }
      continue;
    }
    if (input.roots.length === 0) return result('noRoot', `no certificate at hand issues ${current.parsed.subject}; no root was given to trust`, current.node.ca ? undefined : current.parsed.issuer);
    if (current.node.ca) return result('untrustedRoot', `${current.parsed.subject} is issued by ${current.parsed.issuer}, which is not a trusted root`);
    return result('incomplete', `no certificate at hand issues ${current.parsed.subject} (its issuer: ${current.parsed.issuer})`, current.parsed.issuer);
  }
}
