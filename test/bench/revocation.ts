/**
 * Bulk revocation benchmark (a script, not a test): one `POST /v1/revocations` for an identity
 * with N valid certificates (default 100,000), through the running service (a child process with
 * its default workers, on a fresh Postgres database). Prints how long the request took, the
 * service's peak RSS (the largest process and the whole tree), and how long until the served CRL
 * lists every one of them (read and verified by openssl).
 *
 *   npm run bench:revocation -- [--count 100000] [--workers 2]
 *
 * Postgres only (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres): the
 * certificates are one real issuance through the API and N−1 copies of its row made by
 * INSERT … SELECT generate_series, which an embedded database held by the service cannot take
 * from outside. (test/store/store.test.ts revokes 12,000 on PGlite too.) The figures are also
 * written as JSON to .bench/revocation-<time>.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { opensslCrl } from '../setup/crl-check.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { withPg } from '../setup/database.js';
import { createTestPki } from '../setup/pki.js';
import { benchIssuer, processTree, startBenchServer } from './support.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '100000' }, workers: { type: 'string', default: '2' } } });
const count = Number(values.count);
const workers = Number(values.workers);
if (!Number.isInteger(count) || count < 1) throw new Error('--count is a positive integer');

const IDENTITY = 'spiffe://example.org/ns/bulk/sa/api';
const ADMIN = 'spiffe://example.org/admin';
const MiB = 1024;

/** The peak RSS (VmHWM, MiB) of each process of the tree. */
function peaks(root: number): number[] {
  return processTree(root).flatMap((pid) => {
    try {
      return [Math.round(Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / MiB)];
    } catch {
      return [];
    }
  });
}

const dir = mkdtempSync(join(tmpdir(), 'service-ca-bench-revocation-'));
const pki = await createTestPki('p256');
const issuer = await benchIssuer(dir);
const server = await startBenchServer({ db: 'postgres', dir, pki, issuer, workers });
try {
  const api = `http://127.0.0.1:${server.apiPort}`;
  const { csrPem } = await createKeyAndCsr('p256', { dns: ['api.bulk.svc'] });
  const res = await fetch(`${api}/v1/certificates`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${issuer.mint(IDENTITY, 300)}` },
    body: JSON.stringify({ csr: csrPem, ttl: '1h' }),
  });
  if (res.status !== 201) throw new Error(`the template issuance answered ${res.status}: ${await res.text()}`);
  const template = (await res.json()) as { serial: string; chain: string[] };
  const seeded = Date.now();
  await withPg(server.url!, (client) =>
    client.query(
      `insert into certificates (serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, der, fingerprint)
       select '7f' || left(md5(n::text) || md5(n::text), 38), issuer_key_id, identity, sans, dns_names, not_before, not_after, der, md5(n::text) || md5(n::text)
       from certificates, generate_series(1, $2::int) as n where serial = $1`,
      [template.serial, count - 1],
    ),
  );
  console.log(`seeded ${count} certificates of ${IDENTITY} in ${Date.now() - seeded} ms`);
  const before = peaks(server.pid);

  const started = performance.now();
  const revocation = await fetch(`${api}/v1/revocations`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${issuer.mint(ADMIN, 300)}` },
    body: JSON.stringify({ identity: IDENTITY, reason: 'keyCompromise' }),
  });
  const text = await revocation.text();
  const answeredMs = performance.now() - started;
  if (revocation.status !== 200) throw new Error(`POST /v1/revocations answered ${revocation.status}: ${text.slice(0, 300)}`);
  const revoked = (JSON.parse(text) as { revoked: string[] }).revoked.length;

  // Poll the served CRL until openssl reads every entry in it.
  let listedMs = NaN;
  let crlBytes = 0;
  let crlNumber: number | undefined;
  let lastEtag = '';
  for (const deadline = performance.now() + 120_000; performance.now() < deadline; ) {
    const crl = await fetch(`http://127.0.0.1:${server.publicPort}/v1/crl`, { headers: lastEtag ? { 'If-None-Match': lastEtag } : {} });
    const fetchedMs = performance.now() - started;
    const etag = crl.headers.get('etag') ?? '';
    const body = Buffer.from(await crl.arrayBuffer());
    if (crl.status === 200 && etag !== lastEtag) {
      lastEtag = etag;
      // Timed at the fetch: openssl's reading of a 100,000-entry CRL takes seconds of its own.
      const read = opensslCrl(body, template.chain.join(''));
      if (read.entries.size >= count) {
        if (!read.verified) throw new Error(`openssl did not verify the CRL: ${read.output}`);
        listedMs = fetchedMs;
        crlBytes = body.length;
        crlNumber = read.number;
        break;
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const after = peaks(server.pid);
  console.log(
    [
      `revoked ${revoked} of ${count} in one request (${workers} workers, Postgres)`,
      `  request answered after   ${Math.round(answeredMs)} ms (${text.length} bytes of JSON)`,
      `  CRL lists them all after ${Number.isNaN(listedMs) ? 'never within 120 s' : `${Math.round(listedMs)} ms`} (CRL ${crlNumber}, ${crlBytes} bytes, verified by openssl)`,
      `  service peak RSS         largest process ${Math.max(...after)} MiB (before the request ${Math.max(...before)} MiB), tree ${after.reduce((a, b) => a + b, 0)} MiB over ${after.length} processes`,
    ].join('\n'),
  );
  const root = new URL('../../', import.meta.url).pathname;
  mkdirSync(join(root, '.bench'), { recursive: true });
  writeFileSync(
    join(root, '.bench', `revocation-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
    JSON.stringify({ count, workers, revoked, answeredMs, listedMs, crlNumber, crlBytes, peakRssMiB: { before, after } }, null, 2),
  );
  if (revoked !== count || Number.isNaN(listedMs)) process.exitCode = 1;
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
