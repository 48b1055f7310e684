/**
 * CRL benchmark (a script, not a test): how long one full CRL takes to generate through the real
 * code path (createStore + createSigner + createCrlPublisher, publisher.sync()) for 100,000 and
 * 1,000,000 revoked, unexpired certificates, how large it is, and the process peak RSS; then how
 * fast the running service serves the cached CRL. Target: 1M entries in under 8 s with peak RSS
 * under 512 MiB.
 *
 *   npm run bench:crl -- [--db postgres|pglite|both] [--sizes 100000,1000000]
 *                             [--der-bytes 700] [--serve-seconds 5] [--concurrency 8,64]
 *                             [--driver wrk|node]
 *
 * Postgres comes from BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * each size gets a fresh database, created and dropped here. Rows are seeded in one
 * INSERT … SELECT generate_series (fake DER, random 20-octet serials). Each generation runs in a
 * child process of its own, so that its peak RSS is the generation's and nothing else's; the
 * service is also a child process, driven over loopback. openssl checks every CRL. Results:
 * a table on stdout and JSON under .bench/.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { sql, type SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { systemClock } from '../../src/clock.js';
import { createCrlPublisher } from '../../src/crl/publisher.js';
import { createSigner, type Signer } from '../../src/signer/signer.js';
import { openDatabase } from '../../src/store/database.js';
import { createStore, storeOn, type Store } from '../../src/store/store.js';
import { createPostgresDatabase, withPg } from '../setup/database.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { createTestIssuer } from '../setup/tokens.js';
import { freePort, percentile, pgUrl } from './support.js';
import { driveWrk, wrkAvailable } from './wrk.js';

const SELF = new URL(import.meta.url).pathname;
const ROOT = new URL('../../', import.meta.url).pathname;
const MiB = 1024 * 1024;

const { values } = parseArgs({
  options: {
    child: { type: 'string' },
    db: { type: 'string', default: 'postgres' },
    sizes: { type: 'string', default: '100000,1000000' },
    'der-bytes': { type: 'string', default: '700' },
    'serve-seconds': { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '8,64' },
    url: { type: 'string' },
    'data-dir': { type: 'string' },
    pki: { type: 'string' },
    n: { type: 'string' },
    'issuer-key-id': { type: 'string' },
    driver: { type: 'string' },
  },
});
/** The load generator for serving: wrk where installed (test/bench/wrk.ts), else node:http. */
const driver = values.driver ?? (wrkAvailable() ? 'wrk' : 'node');
if (driver !== 'wrk' && driver !== 'node') throw new Error('--driver is wrk or node');

// ---------- process memory ----------

function statusKiB(pid: number | 'self', field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** Samples process.memoryUsage() every few ms and keeps the peaks of each field. */
function memorySampler() {
  const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
  const sample = () => {
    const m = process.memoryUsage();
    for (const k of Object.keys(peak) as (keyof typeof peak)[]) peak[k] = Math.max(peak[k], m[k]);
  };
  sample();
  const timer = setInterval(sample, 20);
  return {
    stop() {
      clearInterval(timer);
      sample();
      return Object.fromEntries(Object.entries(peak).map(([k, v]) => [k, Math.round(v / MiB)])) as Record<keyof typeof peak, number>;
    },
  };
}

// ---------- seeding ----------

/**
 * One INSERT … SELECT generate_series: N revoked certificates that expire in a day, with random
 * 20-octet serials in canonical form (first octet 01..7f, so positive and minimal; then 15 random
 * octets and the row number, so they are unique), the fake DER of derBytes octets, and all
 * seven reasons. A drizzle SQL with n, issuerKeyId and derBytes as parameters: PGlite runs it
 * through drizzle, Postgres through pg (seedPostgres).
 */
function seedSql(n: number, issuerKeyId: string, derBytes: number): SQL {
  return sql`insert into certificates
      (serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, status, revoked_at, revocation_reason, revoked_by, der, fingerprint)
    select
      lpad(to_hex(1 + floor(random() * 127)::int), 2, '0') || substr(md5(random()::text || i::text), 1, 30) || lpad(to_hex(i), 8, '0'),
      ${issuerKeyId},
      'spiffe://example.org/ns/bench/sa/w' || (i % 1000),
      '{"dns": [], "ip": [], "uri": [], "email": []}'::jsonb,
      '{}'::text[],
      now() - interval '1 hour',
      now() + interval '1 day',
      'revoked',
      now() - (i % 3600) * interval '1 second',
      (array['unspecified','keyCompromise','caCompromise','affiliationChanged','superseded','cessationOfOperation','privilegeWithdrawn'])[1 + i % 7],
      'spiffe://example.org/admin',
      decode(repeat('30', ${derBytes}::int), 'hex'),
      md5(i::text) || md5((i + 1)::text)
    from generate_series(1, ${n}::int) as i`;
}

function issuerKeyIdOf(pki: TestPki): string {
  const signer = createSigner({ ca: { certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate }, publicUrl: 'http://bench' }, systemClock);
  return Buffer.from(signer.authority.keyIdentifier).toString('hex');
}

/** Migrates through the real store, then seeds through pg; returns the seconds taken. */
async function seedPostgres(url: string, dataDir: string, n: number, issuerKeyId: string, derBytes: number): Promise<{ insertSeconds: number; vacuumSeconds: number; tableMiB: number }> {
  const store = await createStore({ url, dataDir });
  await store.close();
  const seed = new PgDialect().sqlToQuery(seedSql(n, issuerKeyId, derBytes));
  return withPg(url, async (client) => {
    const t0 = performance.now();
    await client.query(seed.sql, seed.params);
    const t1 = performance.now();
    // A live CA's rows are old and vacuumed; freshly inserted ones would pay for hint bits.
    await client.query('vacuum analyze certificates');
    const t2 = performance.now();
    // bigint: a string in pg.
    const { rows } = await client.query<{ bytes: string }>(`select pg_total_relation_size('certificates') as bytes`);
    return { insertSeconds: (t1 - t0) / 1000, vacuumSeconds: (t2 - t1) / 1000, tableMiB: Math.round(Number(rows[0]!.bytes) / MiB) };
  });
}

/** Child process: migrates and seeds a PGlite database in place (PGlite runs in-process). */
async function childSeedPglite(): Promise<void> {
  const database = await openDatabase({ dataDir: values['data-dir']! });
  try {
    const t0 = performance.now();
    await database.db.execute(seedSql(Number(values.n), values['issuer-key-id']!, Number(values['der-bytes'])));
    const t1 = performance.now();
    await database.db.execute(sql.raw('vacuum analyze certificates'));
    const t2 = performance.now();
    process.stdout.write(`${JSON.stringify({ insertSeconds: (t1 - t0) / 1000, vacuumSeconds: (t2 - t1) / 1000, tableMiB: NaN })}\n`);
  } finally {
    await database.close();
  }
}

// ---------- one measured generation (child process) ----------

interface Measurement {
  seconds: number;
  entries: number;
  bytes: number;
  number: number;
  derPath: string;
  baselineRssMiB: number;
  peakRssMiB: number;
  maxRssMiB: number;
  peaks: Record<string, number>;
  breakdown: { fetchSeconds: number; encodeSeconds: number; signSeconds: number; storeSeconds: number };
}

/**
 * The real publisher over a store and signer that only watch: time spent in the query (the
 * database and the transfer), parsing and appending entries (DER encoding), signing, and storing.
 */
async function childMeasure(): Promise<void> {
  const pki = JSON.parse(values.pki!) as TestPki;
  const baseStore = values.url ? await createStore({ url: values.url, dataDir: values['data-dir']! }) : storeOn(await openDatabase({ dataDir: values['data-dir']! }));
  const baseSigner = createSigner({ ca: { certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate }, publicUrl: 'http://bench' }, systemClock);
  const t = { fetch: 0, build: 0, sign: 0, total: 0 };
  const store: Store = {
    ...baseStore,
    async generateCrl(issuerKeyId, now, build) {
      const started = performance.now();
      try {
        return await baseStore.generateCrl(issuerKeyId, now, async (b) => {
          const buildStarted = performance.now();
          // The store queries, then visits each entry: time to the first visit is the query
          // (the database and the transfer), the rest of entries() is parsing and DER encoding.
          const watched = {
            ...b,
            async entries(visit: Parameters<typeof b.entries>[0]) {
              const t0 = performance.now();
              let first = true;
              await b.entries((serial, seconds, reason) => {
                if (first) {
                  first = false;
                  t.fetch += performance.now() - t0;
                }
                visit(serial, seconds, reason);
              });
              if (first) t.fetch += performance.now() - t0;
            },
          };
          try {
            return await build(watched);
          } finally {
            t.build += performance.now() - buildStarted;
          }
        });
      } finally {
        t.total += performance.now() - started;
      }
    },
  };
  const signer: Signer = {
    ...baseSigner,
    authority: baseSigner.authority,
    algorithm: baseSigner.algorithm,
    signCrl(header, entries) {
      const t0 = performance.now();
      try {
        return baseSigner.signCrl(header, entries);
      } finally {
        t.sign += performance.now() - t0;
      }
    },
  };
  const publisher = createCrlPublisher({ store, signer, clock: systemClock, logger: pino({ level: 'silent' }), settings: { validity: 86400, refresh: 3600, maxDelay: 5 } });
  const baselineRssMiB = Math.round(statusKiB('self', 'VmRSS') / 1024);
  const sampler = memorySampler();
  const t0 = performance.now();
  await publisher.sync();
  const seconds = (performance.now() - t0) / 1000;
  const peaks = sampler.stop();
  const crl = publisher.current();
  if (!crl) throw new Error('no CRL was generated');
  const derPath = join(values['data-dir']!, `crl-${crl.number}.der`);
  writeFileSync(derPath, crl.der);
  publisher.stop();
  await baseStore.close();
  const m: Measurement = {
    seconds,
    entries: crl.entries,
    bytes: crl.der.length,
    number: crl.number,
    derPath,
    baselineRssMiB,
    peakRssMiB: Math.round(statusKiB('self', 'VmHWM') / 1024),
    maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024),
    peaks,
    breakdown: {
      fetchSeconds: t.fetch / 1000,
      encodeSeconds: (t.build - t.fetch - t.sign) / 1000,
      signSeconds: t.sign / 1000,
      storeSeconds: (t.total - t.build) / 1000,
    },
  };
  process.stdout.write(`${JSON.stringify(m)}\n`);
}

/** Runs this script as a child with the given arguments; returns its last JSON line. */
function runChild<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', SELF, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0) return reject(new Error(`child ${args[1]} exited with ${code}: ${out}`));
      try {
        resolve(JSON.parse(line) as T);
      } catch {
        reject(new Error(`child ${args[1]} printed no JSON: ${out}`));
      }
    });
  });
}

// ---------- independent checks of the CRL ----------

/** Counts revokedCertificates with a minimal DER walk (independent of src/x509/der.ts). */
function countEntries(der: Buffer): number {
  const tlv = (o: number) => {
    let len = der[o + 1]!;
    let p = o + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + der[p + i]!;
      p += n;
    }
    return { tag: der[o]!, start: p, end: p + len };
  };
  const tbs = tlv(tlv(0).start);
  let o = tbs.start;
  for (let i = 0; i < 5; i++) o = tlv(o).end; // version, signature, issuer, thisUpdate, nextUpdate
  const list = tlv(o);
  if (list.tag !== 0x30) return 0;
  let count = 0;
  for (let p = list.start; p < list.end; p = tlv(p).end) count++;
  return count;
}

function opensslVerify(derPath: string, chainPath: string): { ok: boolean; seconds: number; output: string } {
  const t0 = performance.now();
  const r = spawnSync('openssl', ['crl', '-inform', 'DER', '-in', derPath, '-noout', '-verify', '-CAfile', chainPath], { encoding: 'utf8' });
  return { ok: r.status === 0 && /verify OK/.test(r.stderr + r.stdout), seconds: (performance.now() - t0) / 1000, output: (r.stderr + r.stdout).trim() };
}

// ---------- serving the cached CRL ----------

interface ServeRun {
  requestsPerSecond: number;
  mibPerSecond: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  loadGeneratorCpuPercent: number;
}

interface ServeResult {
  startupSeconds: number;
  runs: ({ mode: 'full' | '304'; concurrency: number } & ServeRun)[];
  serverPeakRssMiB: number;
}

/**
 * GET /v1/crl over node:http with keep-alive for `seconds`, counting bytes as they arrive:
 * fetch() (undici) would be the bottleneck for bodies of tens of MiB on this machine, not the
 * server. The fallback where wrk is not installed.
 */
async function nodeLoad(base: string, headers: Record<string, string>, expected: number, concurrency: number, seconds: number): Promise<ServeRun> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, timeout: 4000 });
  const get = () =>
    new Promise<{ status: number; bytes: number }>((resolve, reject) => {
      http
        .get(`${base}/v1/crl`, { agent, headers }, (res) => {
          let bytes = 0;
          res.on('data', (d: Buffer) => (bytes += d.length));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
          res.on('error', reject);
        })
        .on('error', reject);
    });
  const latencies: number[] = [];
  let bytes = 0;
  let errors = 0;
  const self0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const r0 = performance.now();
        try {
          const res = await get();
          if (res.status === expected) {
            latencies.push(performance.now() - r0);
            bytes += res.bytes;
          } else errors++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  agent.destroy();
  latencies.sort((x, y) => x - y);
  const pct = (p: number) => Number(percentile(latencies, p).toFixed(1));
  const used = process.cpuUsage(self0);
  return { requestsPerSecond: Number((latencies.length / elapsed).toFixed(1)), mibPerSecond: Math.round(bytes / MiB / elapsed), p50ms: pct(50), p99ms: pct(99), errors, loadGeneratorCpuPercent: Math.round(((used.user + used.system) / 1e6 / elapsed) * 100) };
}

async function serve(pki: TestPki, url: string | undefined, dataDir: string, seconds: number, concurrencies: number[]): Promise<ServeResult> {
  const issuer = await createTestIssuer();
  const publicPort = await freePort();
  const config = {
    server: { host: '127.0.0.1', port: await freePort(), tls: { mode: 'off' } },
    public: { host: '127.0.0.1', port: publicPort },
    ...(url ? { database: { url } } : {}),
    dataDir,
    ca: { certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate },
    auth: { issuers: [{ name: 'bench', issuer: issuer.issuer, audience: issuer.audience, jwks: { file: issuer.jwksPath }, algorithms: ['ES256'] }] },
    logging: { level: 'warn' },
  };
  const configPath = join(dataDir, 'config.yaml');
  writeFileSync(configPath, stringify(config));
  const started = performance.now();
  const server = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'serve', '--config', configPath], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  const base = `http://127.0.0.1:${publicPort}`;
  try {
    for (let i = 0; ; i++) {
      try {
        const res = await fetch(`${base}/v1/crl`);
        await res.arrayBuffer();
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
      if (server.exitCode !== null) throw new Error(`the server exited with ${server.exitCode}`);
      if (i > 1200) throw new Error('the server did not serve a CRL within 120 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const startupSeconds = (performance.now() - started) / 1000;
    const first = await fetch(`${base}/v1/crl`);
    await first.arrayBuffer();
    const etag = first.headers.get('etag') ?? '';
    const runs: ServeResult['runs'] = [];
    for (const mode of ['full', '304'] as const) {
      const headers: Record<string, string> = mode === '304' ? { 'If-None-Match': etag } : {};
      for (const concurrency of concurrencies) {
        if (driver === 'wrk') {
          const run = await driveWrk(publicPort, concurrency, seconds * 1000, [{ method: 'GET', path: '/v1/crl', headers }]);
          runs.push({ mode, concurrency, requestsPerSecond: Number((run.succeeded / run.elapsed).toFixed(1)), mibPerSecond: Math.round(run.bytes / MiB / run.elapsed), p50ms: Number(run.p50ms.toFixed(1)), p99ms: Number(run.p99ms.toFixed(1)), errors: run.failed, loadGeneratorCpuPercent: Math.round((run.cpuSeconds / run.elapsed) * 100) });
        } else {
          runs.push({ mode, concurrency, ...(await nodeLoad(base, headers, mode === '304' ? 304 : 200, concurrency, seconds)) });
        }
      }
    }
    return { startupSeconds, runs, serverPeakRssMiB: Math.round(statusKiB(server.pid!, 'VmHWM') / 1024) };
  } finally {
    server.kill('SIGTERM');
    if (server.exitCode === null) await new Promise((r) => server.once('exit', r));
  }
}

// ---------- main ----------

interface Row {
  db: string;
  entries: number;
  seedSeconds: number;
  generateSeconds: number;
  fetchSeconds: number;
  encodeSeconds: number;
  signSeconds: number;
  storeSeconds: number;
  crlMiB: number;
  baselineRssMiB: number;
  peakRssMiB: number;
  maxRssMiB: number;
  opensslVerify: string;
  loadAverage: number;
  target: string;
}

async function main(): Promise<void> {
  const sizes = values.sizes!.split(',').map(Number);
  const derBytes = Number(values['der-bytes']);
  const dbs = values.db === 'both' ? ['postgres', 'pglite'] : [values.db!];
  const concurrencies = values.concurrency!.split(',').map(Number);
  const pki = await createTestPki('p256');
  const issuerKeyId = issuerKeyIdOf(pki);
  const chainPath = join(pki.dir, 'bench-chain.pem');
  writeFileSync(chainPath, readFileSync(pki.intermediateCertificate, 'utf8') + readFileSync(pki.rootCertificate, 'utf8'));
  console.log(`node ${process.version}, ${cpus().length} CPUs, intermediate ${pki.keyType}, fake DER ${derBytes} bytes`);
  const rows: Row[] = [];
  const details: Record<string, unknown>[] = [];

  for (const db of dbs) {
    for (const n of sizes) {
      const dataDir = mkdtempSync(join(tmpdir(), 'service-ca-bench-crl-'));
      const pg = db === 'postgres' ? await createPostgresDatabase(pgUrl, 'service_ca_bench_crl') : undefined;
      try {
        console.log(`[${db} ${n}] seeding...`);
        const seed = pg
          ? await seedPostgres(pg.url, dataDir, n, issuerKeyId, derBytes)
          : await runChild<{ insertSeconds: number; vacuumSeconds: number; tableMiB: number }>(['--child', 'seed-pglite', '--data-dir', dataDir, '--n', String(n), '--issuer-key-id', issuerKeyId, '--der-bytes', String(derBytes)]);
        // Other work on the machine skews the figures: record the 1-minute load average.
        const load = Number(loadavg()[0]!.toFixed(1));
        console.log(`[${db} ${n}] seeded in ${seed.insertSeconds.toFixed(1)} s (+ vacuum ${seed.vacuumSeconds.toFixed(1)} s); load average ${load}; generating...`);
        const m = await runChild<Measurement>(['--child', 'measure', '--data-dir', dataDir, '--pki', JSON.stringify(pki), ...(pg ? ['--url', pg.url] : [])]);
        const der = readFileSync(m.derPath);
        const counted = countEntries(der);
        const verify = opensslVerify(m.derPath, chainPath);
        if (counted !== n || m.entries !== n) throw new Error(`expected ${n} entries, the publisher reports ${m.entries} and the DER holds ${counted}`);
        console.log(`[${db} ${n}] ${m.seconds.toFixed(2)} s, ${(m.bytes / MiB).toFixed(1)} MiB, peak RSS ${m.peakRssMiB} MiB; openssl: ${verify.output} (${verify.seconds.toFixed(1)} s); serving...`);
        const served = await serve(pki, pg?.url, dataDir, Number(values['serve-seconds']), concurrencies);
        const meets = n < 1_000_000 ? '-' : m.seconds < 8 && m.peakRssMiB < 512 ? 'met' : `missed (${m.seconds >= 8 ? 'time' : ''}${m.seconds >= 8 && m.peakRssMiB >= 512 ? ', ' : ''}${m.peakRssMiB >= 512 ? 'memory' : ''})`;
        rows.push({
          db,
          entries: n,
          seedSeconds: Number((seed.insertSeconds + seed.vacuumSeconds).toFixed(1)),
          generateSeconds: Number(m.seconds.toFixed(2)),
          fetchSeconds: Number(m.breakdown.fetchSeconds.toFixed(2)),
          encodeSeconds: Number(m.breakdown.encodeSeconds.toFixed(2)),
          signSeconds: Number(m.breakdown.signSeconds.toFixed(2)),
          storeSeconds: Number(m.breakdown.storeSeconds.toFixed(2)),
          crlMiB: Number((m.bytes / MiB).toFixed(1)),
          baselineRssMiB: m.baselineRssMiB,
          peakRssMiB: m.peakRssMiB,
          maxRssMiB: m.maxRssMiB,
          opensslVerify: verify.ok ? 'OK' : `FAILED: ${verify.output}`,
          loadAverage: load,
          target: meets,
        });
        details.push({ db, entries: n, derBytes, seed, measurement: m, opensslVerify: verify, serving: served });
        for (const r of served.runs) console.log(`[${db} ${n}] serve ${r.mode} c=${r.concurrency}: ${r.requestsPerSecond} req/s, ${r.mibPerSecond} MiB/s, p50 ${r.p50ms} ms, p99 ${r.p99ms} ms, errors ${r.errors}, load generator (${driver}) CPU ${r.loadGeneratorCpuPercent}%`);
        console.log(`[${db} ${n}] server: first CRL served ${served.startupSeconds.toFixed(1)} s after spawn, peak RSS ${served.serverPeakRssMiB} MiB`);
      } finally {
        await pg?.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    }
  }
  console.table(rows);
  const servingRows = details.flatMap((d) => ((d.serving as ServeResult).runs).map((r) => ({ db: d.db, entries: d.entries, ...r })));
  console.table(servingRows);
  mkdirSync(join(ROOT, '.bench'), { recursive: true });
  const out = join(ROOT, '.bench', `crl-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify({ kind: 'crl', node: process.version, target: { entries: 1_000_000, seconds: 8, peakRssMiB: 512 }, rows, details }, null, 2));
  console.log(`results written to ${out}`);
  rmSync(pki.dir, { recursive: true, force: true });
}

const run = values.child === 'measure' ? childMeasure : values.child === 'seed-pglite' ? childSeedPglite : main;
run().then(
  // A child exits at once: a failed generation may leave pool timers that would keep it alive.
  () => values.child && process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
