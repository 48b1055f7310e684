/**
 * One inspection, start to end: get the chain (a TLS handshake or a file), build and verify the
 * path, check each certificate's validity and CRL, ask the CA about the leaf, check the name,
 * and list the warnings. Time is read once, through the injected clock, after the handshake.
 */
import { isIP } from 'node:net';
import { caRecord, renewalInfo, type CaConnection } from './ca.js';
import { certOf, factsOf, isSelfSigned, validityAt, type Cert } from './certificates.js';
import { buildPath } from './chain.js';
import { warningsOf, type CertificateEntry, type InspectReport, type Target, type TlsFacts } from './report.js';
import { checkCrl, type CrlCache } from './revocation.js';
import type { ParsedTarget } from './target.js';
import { probe, type ProbeResult } from './tls-probe.js';

export interface InspectOptions {
  target: ParsedTarget;
  /** A file target's certificates, leaf first, as the caller read them. */
  fileCertificates?: Cert[];
  /** SNI and the name to check; default the endpoint's host (a file is checked only when given). */
  servername: string | undefined;
  alpn: string[];
  roots: Cert[];
  rootFile: string | undefined;
  untrusted: Cert[];
  ca: CaConnection;
  timeoutMs: number;
  /** See ProbeOptions.settleMs. */
  settleMs?: number;
  now: () => Date;
}

async function chainOf(o: InspectOptions): Promise<{ target: Target; tls: TlsFacts | null; certs: Cert[] }> {
  if (o.target.kind === 'file') return { target: { kind: 'file', file: o.target.file }, tls: null, certs: o.fileCertificates ?? [] };
  const { host, port } = o.target;
  const target: Target = { kind: 'endpoint', host, port, servername: o.servername ?? null };
  let p: ProbeResult;
  try {
    p = await probe({ host, port, servername: o.servername ?? host, alpn: o.alpn, timeoutMs: o.timeoutMs, ...(o.settleMs !== undefined ? { settleMs: o.settleMs } : {}) });
  } catch (err) {
    const error = `no connection: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    const tls: TlsFacts = { version: null, cipher: null, alpn: null, alpnOffered: o.alpn, clientCertificate: 'notRequested', handshakeError: error, unreadable: null };
    return { target, tls, certs: [] };
  }
  return {
    target,
    tls: {
      version: p.version ?? null,
      cipher: p.cipher ?? null,
      alpn: p.alpn ?? null,
      alpnOffered: o.alpn,
      clientCertificate: p.clientCertificate,
      handshakeError: p.handshakeError ?? null,
      unreadable: p.unreadable ?? null,
    },
    certs: p.certificates.map((der) => certOf(der, 'server')),
  };
}

function hostnameCheck(o: InspectOptions, leaf: Cert): InspectReport['hostname'] {
  const name = o.servername ?? (o.target.kind === 'endpoint' ? o.target.host : undefined);
  if (name === undefined) return null;
  if (isIP(name)) return { name, kind: 'ip', matched: leaf.node.checkIP(name) !== undefined };
  return { name, kind: 'dns', matched: leaf.node.checkHost(name) !== undefined };
}

export async function inspect(o: InspectOptions): Promise<InspectReport> {
  const { target, tls, certs } = await chainOf(o);
  const now = o.now();
  const [leaf, ...carried] = certs;
  if (!leaf) {
    const empty = { target, tls, certificates: [], verification: null, hostname: null };
    return { ...empty, warnings: warningsOf(empty, now) };
  }
  const built = await buildPath({ leaf, carried, untrusted: o.untrusted, roots: o.roots, timeoutMs: o.timeoutMs });
  const path = built.path;
  const anchor = built.status === 'trusted' ? path.length - 1 : -1;
  const offPath = carried.filter((c) => !path.some((p) => p.der.equals(c.der)));
  const cache: CrlCache = new Map();
  const certificates = await Promise.all(
    [...path, ...offPath].map(async (cert, position): Promise<CertificateEntry> => {
      const facts = factsOf(cert, now);
      const onPath = position < path.length;
      const checked = onPath && position !== anchor && !isSelfSigned(cert);
      const [revocation, renewal, record] = await Promise.all([
        checked ? checkCrl(cert, facts.crlUrls, path[position + 1], now, o.timeoutMs, cache) : null,
        position === 0 ? renewalInfo(facts.serial, [...facts.crlUrls, ...facts.caIssuersUrls], o.ca) : null,
        position === 0 ? caRecord(facts.serial, o.ca) : null,
      ]);
      return { position, source: cert.source, onPath, ...facts, validity: validityAt(cert, now), revocation, renewal, record };
    }),
  );
  const found = {
    target,
    tls,
    certificates,
    verification: {
      status: built.status,
      detail: built.detail,
      rootFile: o.rootFile ?? null,
      missingIssuer: built.missingIssuer ?? null,
      notCarried: built.notCarried,
      aiaErrors: built.aiaErrors,
    },
    hostname: hostnameCheck(o, leaf),
  };
  return { ...found, warnings: warningsOf(found, now) };
}
