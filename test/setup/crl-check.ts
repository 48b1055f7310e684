/**
 * CRLs read back independently of the code that wrote them (src/signer/crl-profile.ts): fetched
 * over HTTP, verified and printed by the openssl command line, parsed again by @peculiar/x509,
 * and used by openssl verify and node:tls in real certificate checks. The text parsing here is
 * of openssl's own output, never of the CA's DER.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { x509 } from '../../src/x509/library.js';
import { openssl } from './openssl.js';

/** The contract's reason names and how openssl prints the reasonCode (RFC 5280 §5.3.1). */
export const OPENSSL_REASON = {
  unspecified: 'Unspecified',
  keyCompromise: 'Key Compromise',
  caCompromise: 'CA Compromise',
  affiliationChanged: 'Affiliation Changed',
  superseded: 'Superseded',
  cessationOfOperation: 'Cessation Of Operation',
  privilegeWithdrawn: 'Privilege Withdrawn',
} as const;
export type ReasonName = keyof typeof OPENSSL_REASON;
export const REASONS = Object.keys(OPENSSL_REASON) as ReasonName[];

/** RFC 5280 reason code numbers, as @peculiar/x509 reports them. */
export const REASON_CODE: Record<ReasonName, number> = {
  unspecified: 0,
  keyCompromise: 1,
  caCompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
};

export interface FetchedCrl {
  status: number;
  headers: Headers;
  /** The body as bytes (DER for /v1/crl, PEM text for /v1/crl.pem, empty for 304). */
  body: Buffer;
}

export async function fetchCrl(base: string, path: '/v1/crl' | '/v1/crl.pem' = '/v1/crl', headers: Record<string, string> = {}): Promise<FetchedCrl> {
  const res = await fetch(`${base}${path}`, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** The DER inside a PEM "X509 CRL" block. */
export function crlPemToDer(pem: string): Buffer {
  const m = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/.exec(pem);
  if (!m) throw new Error(`no X509 CRL block in ${pem.slice(0, 80)}`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

export interface OpensslCrlEntry {
  /** Lower-case hex, as the API writes serials. */
  serial: string;
  revocationDate: Date;
  /** The reasonCode as openssl prints it, or null when the entry has no extension at all. */
  reason: string | null;
  /** The raw "CRL entry extensions" text, or null when there is none. */
  extensionsText: string | null;
}

export interface OpensslCrl {
  /** `openssl crl -verify` said "verify OK" and exited 0. */
  verified: boolean;
  output: string;
  text: string;
  version: number;
  signatureAlgorithm: string;
  issuer: string;
  lastUpdate: Date;
  nextUpdate: Date;
  /** Upper-case hex with colons, as openssl prints key identifiers. */
  authorityKeyId: string | undefined;
  number: number | undefined;
  entries: Map<string, OpensslCrlEntry>;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** "Nov  8 20:39:51 2026 GMT" (openssl's ASN1_TIME_print) */
export function parseOpensslTime(text: string): Date {
  const m = /^(\w{3})\s+(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) (\d{4}) GMT$/.exec(text.trim());
  if (!m || !MONTHS.includes(m[1]!)) throw new Error(`not an openssl time: ${text}`);
  return new Date(Date.UTC(Number(m[6]), MONTHS.indexOf(m[1]!), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])));
}

/** Parses the output of `openssl crl -text` for OpenSSL 3. */
export function parseOpensslCrlText(text: string): Omit<OpensslCrl, 'verified' | 'output'> {
  const field = (re: RegExp) => re.exec(text)?.[1]?.trim();
  const entries = new Map<string, OpensslCrlEntry>();
  const revokedAt = text.indexOf('\nRevoked Certificates:\n');
  if (revokedAt >= 0) {
    // The list ends where the outer signature algorithm starts (four spaces of indent).
    const end = text.indexOf('\n    Signature Algorithm:', revokedAt);
    const list = text.slice(revokedAt, end < 0 ? undefined : end);
    for (const block of list.split(/\n {4}Serial Number: /).slice(1)) {
      const lines = block.split('\n');
      const serial = lines[0]!.trim().toLowerCase();
      const date = /Revocation Date: (.+)/.exec(block)?.[1];
      if (!date) throw new Error(`no revocation date for ${serial}`);
      const extAt = block.indexOf('CRL entry extensions:');
      const extensionsText = extAt >= 0 ? block.slice(extAt) : null;
      const reason = extensionsText ? (/X509v3 CRL Reason Code:\s*\n\s*(.+)/.exec(extensionsText)?.[1]?.trim() ?? null) : null;
      if (entries.has(serial)) throw new Error(`serial ${serial} is listed twice`);
      entries.set(serial, { serial, revocationDate: parseOpensslTime(date), reason, extensionsText });
    }
  }
  const version = Number(field(/Version (\d+)/));
  const number = field(/X509v3 CRL Number:\s*\n\s*(\d+)/);
  return {
    text,
    version,
    signatureAlgorithm: field(/Signature Algorithm: (.+)/) ?? '',
    issuer: field(/Issuer: (.+)/) ?? '',
    lastUpdate: parseOpensslTime(field(/Last Update: (.+)/) ?? ''),
    nextUpdate: parseOpensslTime(field(/Next Update: (.+)/) ?? ''),
    authorityKeyId: field(/X509v3 Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/),
    number: number === undefined ? undefined : Number(number),
    entries,
  };
}

/** `openssl crl -inform DER -CAfile chain.pem -verify -noout -text` */
export function opensslCrl(der: Uint8Array, chainPem: string): OpensslCrl {
  const r = openssl(['crl', '-inform', 'DER', '-in', { file: 'crl.der', content: Buffer.from(der) }, '-CAfile', { file: 'chain.pem', content: chainPem }, '-verify', '-noout', '-text']);
  if (!r.stdout.includes('Certificate Revocation List')) throw new Error(`openssl could not read the CRL (${r.status}): ${r.stderr}`);
  const parsed = parseOpensslCrlText(r.stdout);
  return { ...parsed, verified: r.status === 0 && /verify OK/.test(r.stderr + r.stdout), output: r.stderr };
}

/** The CRL as @peculiar/x509 reads it: entries by lower-case serial, with reason codes. */
export function peculiarEntries(der: Uint8Array): Map<string, { revocationDate: Date; reason: number | undefined; extensions: number }> {
  const crl = new x509.X509Crl(Buffer.from(der));
  return new Map(
    crl.entries.map((e) => [e.serialNumber.toLowerCase().replace(/^(00)+(?=[0-9a-f]{2})/, ''), { revocationDate: e.revocationDate, reason: e.reason, extensions: e.extensions.length }]),
  );
}

/** Verifies the CRL's signature with @peculiar/x509 (WebCrypto) against the intermediate. */
export async function peculiarVerify(der: Uint8Array, intermediatePem: string): Promise<boolean> {
  return new x509.X509Crl(Buffer.from(der)).verify({ publicKey: new x509.X509Certificate(intermediatePem) });
}

/**
 * `openssl verify -crl_check -CRLfile crl.pem -CAfile root -untrusted chain leaf`: ok, or the
 * error openssl reports (e.g. "certificate revoked").
 */
export function verifyWithCrl(leafPem: string, rootPem: string, chainPem: string, crlPem: string): { ok: boolean; output: string } {
  const r = openssl([
    'verify', '-crl_check',
    '-CRLfile', { file: 'crl.pem', content: crlPem },
    '-CAfile', { file: 'root.pem', content: rootPem },
    '-untrusted', { file: 'chain.pem', content: chainPem },
    { file: 'leaf.pem', content: leafPem },
  ]);
  return { ok: r.status === 0 && /: OK\s*$/.test(r.stdout), output: r.stdout + r.stderr };
}

/**
 * An empty CRL for the root, made by `openssl ca -gencrl` with the throwaway root key. Test
 * scaffolding only: node:tls checks revocation along the whole chain (CRL_CHECK_ALL), so the
 * intermediate needs its issuer's CRL before the CA's own CRL can be put to work.
 */
export function rootCrlPem(rootKeyPath: string, rootCertificatePath: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-rootcrl-'));
  try {
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'crlnumber'), '01\n');
    writeFileSync(join(dir, 'ca.cnf'), `[ca]\ndefault_ca = root\n[root]\ndatabase = ${join(dir, 'index.txt')}\ncrlnumber = ${join(dir, 'crlnumber')}\ndefault_md = sha256\ndefault_crl_days = 1\n`);
    return execFileSync('openssl', ['ca', '-gencrl', '-config', join(dir, 'ca.cnf'), '-keyfile', rootKeyPath, '-cert', rootCertificatePath], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The subject key identifier of a certificate, as openssl prints it. */
export function subjectKeyId(certPem: string): string | undefined {
  const r = openssl(['x509', '-noout', '-ext', 'subjectKeyIdentifier', '-in', { file: 'c.pem', content: certPem }]);
  return /X509v3 Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(r.stdout)?.[1];
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls GET {base}/v1/crl until `accept` holds for the CRL openssl reads (verification included),
 * or timeoutMs passes; returns the CRL, its DER and when it was seen (ms since `since`).
 */
export async function waitForCrl(
  base: string,
  chainPem: string,
  accept: (crl: OpensslCrl) => boolean,
  options: { timeoutMs?: number; intervalMs?: number; since?: number } = {},
): Promise<{ crl: OpensslCrl; der: Buffer; elapsedMs: number }> {
  const since = options.since ?? Date.now();
  const deadline = since + (options.timeoutMs ?? 10_000);
  let lastDigest = '';
  let last: OpensslCrl | undefined;
  let lastDer: Buffer = Buffer.alloc(0);
  for (;;) {
    const res = await fetchCrl(base);
    if (res.status === 200) {
      const digest = sha256(res.body);
      if (digest !== lastDigest) {
        last = opensslCrl(res.body, chainPem);
        lastDigest = digest;
        lastDer = res.body;
      }
      if (last && accept(last)) return { crl: last, der: lastDer, elapsedMs: Date.now() - since };
    }
    if (Date.now() > deadline) {
      throw new Error(`no CRL at ${base} met the condition within ${Date.now() - since} ms; last: number ${last?.number}, ${last?.entries.size} entries, status ${res.status}`);
    }
    await sleep(options.intervalMs ?? 100);
  }
}

export type CrlPath = '/v1/crl' | '/v1/crl.pem';

/**
 * Reads CRL answers (DER from /v1/crl, PEM from /v1/crl.pem) with openssl, once per distinct
 * CRL: `byDigest` is keyed by the SHA-256 of the DER, so both routes' answers of one CRL meet.
 */
export function crlReader(chainPem: string) {
  const byDigest = new Map<string, OpensslCrl>();
  return {
    byDigest,
    read(path: CrlPath, body: Buffer): { digest: string; crl: OpensslCrl } {
      const der = path === '/v1/crl' ? body : crlPemToDer(body.toString('utf8'));
      const digest = sha256(der);
      let crl = byDigest.get(digest);
      if (!crl) {
        crl = opensslCrl(der, chainPem);
        byDigest.set(digest, crl);
      }
      return { digest, crl };
    },
  };
}

/** One CRL a replica served: when, its number, and its digest (one per distinct CRL). */
export interface CrlObservation<N extends string = string> {
  replica: N;
  /** When the request was sent and when the answer arrived (ms since the epoch). */
  started: number;
  at: number;
  number: number;
  digest: string;
  path: CrlPath;
  /** The answer's ETag header. */
  etag: string | null;
  /** Which of the replica's watching clients saw it (0, 1, …). */
  client: number;
}

export interface WatchOptions {
  /** The routes each client fetches in turn (default: /v1/crl only). */
  paths?: CrlPath[];
  /** Clients per replica, each its own loop (default 1). */
  clients?: number;
  /**
   * A new connection per request (Connection: close), so that under node:cluster consecutive
   * requests of one client reach different workers (default: keep-alive).
   */
  newConnections?: boolean;
}

/**
 * Polls each replica's CRL routes until stopped, recording which CRL number each served and
 * when; openssl reads each distinct CRL once. A failed fetch fails the watch, except for a replica
 * with `alive`, which is polled on while alive (a replica being killed) and left once it is not.
 */
export function watchCrls<N extends string>(replicas: { name: N; url: string; alive?: () => boolean }[], chainPem: string, intervalMs: number, options: WatchOptions = {}) {
  const observations: CrlObservation<N>[] = [];
  const reader = crlReader(chainPem);
  const paths = options.paths ?? ['/v1/crl'];
  const headers: Record<string, string> = options.newConnections ? { Connection: 'close' } : {};
  let running = true;
  const loops = replicas.flatMap((r) =>
    Array.from({ length: options.clients ?? 1 }, async (_, client) => {
      for (let i = 0; running; i++) {
        const path = paths[i % paths.length]!;
        const started = Date.now();
        let res: FetchedCrl;
        try {
          res = await fetchCrl(r.url, path, headers);
        } catch (err) {
          if (!r.alive) throw err;
          if (!r.alive()) return;
          await new Promise((resolve) => setTimeout(resolve, intervalMs));
          continue;
        }
        const at = Date.now();
        if (res.status === 200) {
          const { digest, crl } = reader.read(path, res.body);
          observations.push({ replica: r.name, started, at, number: crl.number!, digest, path, etag: res.headers.get('etag'), client });
        }
        await new Promise((resolve) => setTimeout(resolve, intervalMs));
      }
    }),
  );
  return {
    observations,
    byDigest: reader.byDigest,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/**
 * Where a watch saw a CRL number go back: a client whose next answer was older than its last,
 * and (instance-wide) an answer older than one the same replica had given before the request was
 * sent (docs/api.md "CRLs": an instance never answers with a CRL older than one it has served).
 */
export function crlRegressions<N extends string>(observations: CrlObservation<N>[]): string[] {
  const found: string[] = [];
  const byReplica = new Map<N, CrlObservation<N>[]>();
  for (const o of observations) {
    const list = byReplica.get(o.replica);
    if (list) list.push(o);
    else byReplica.set(o.replica, [o]);
  }
  for (const [replica, seen] of byReplica) {
    const last = new Map<number, CrlObservation<N>>();
    for (const o of [...seen].sort((x, y) => x.started - y.started)) {
      const prev = last.get(o.client);
      if (prev && o.number < prev.number) found.push(`${replica} client ${o.client}: CRL ${prev.number} (${prev.path}), then CRL ${o.number} (${o.path}) ${o.started - prev.at} ms later`);
      last.set(o.client, o);
    }
    const ended = [...seen].sort((x, y) => x.at - y.at);
    let i = 0;
    let newest: CrlObservation<N> | undefined;
    for (const o of [...seen].sort((x, y) => x.started - y.started)) {
      for (; i < ended.length && ended[i]!.at < o.started; i++) if (!newest || ended[i]!.number > newest.number) newest = ended[i];
      if (newest && o.number < newest.number) {
        found.push(`${replica}: ${o.path} answered CRL ${o.number} to a request sent ${o.started - newest.at} ms after it had answered CRL ${newest.number} (${newest.path})`);
      }
    }
  }
  return found;
}

/** One answer to a client that revalidates with the newest ETag it holds (followCrls). */
export interface FollowedAnswer<N extends string = string> {
  replica: N;
  path: CrlPath;
  started: number;
  at: number;
  /** The If-None-Match sent, and the CRL number it stands for. */
  sentEtag: string | undefined;
  sentNumber: number;
  status: number;
  etag: string | null;
  /** The CRL number in a 200's body. */
  number: number | undefined;
}

/**
 * A client that goes round the replicas and both routes, always sending If-None-Match with the
 * newest ETag it holds for that route, and keeping what a 200 brings. docs/api.md "CRLs": a 304, or a
 * CRL at least that new; never an older one.
 */
export function followCrls<N extends string>(replicas: { name: N; url: string }[], chainPem: string, intervalMs: number) {
  const answers: FollowedAnswer<N>[] = [];
  const reader = crlReader(chainPem);
  const held = new Map<CrlPath, { etag: string; number: number }>();
  let running = true;
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const replica = replicas[i % replicas.length]!;
      const path: CrlPath = Math.floor(i / replicas.length) % 2 ? '/v1/crl.pem' : '/v1/crl';
      const mine = held.get(path);
      const started = Date.now();
      const res = await fetchCrl(replica.url, path, { Connection: 'close', ...(mine ? { 'If-None-Match': mine.etag } : {}) });
      const answer: FollowedAnswer<N> = {
        replica: replica.name,
        path,
        started,
        at: Date.now(),
        sentEtag: mine?.etag,
        sentNumber: mine?.number ?? 0,
        status: res.status,
        etag: res.headers.get('etag'),
        number: undefined,
      };
      if (res.status === 200) {
        answer.number = reader.read(path, res.body).crl.number!;
        if (answer.number >= (mine?.number ?? 0) && answer.etag) held.set(path, { etag: answer.etag, number: answer.number });
      }
      answers.push(answer);
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  })();
  return {
    answers,
    byDigest: reader.byDigest,
    async stop() {
      running = false;
      await loop;
    },
  };
}
