/**
 * Issuance benchmark (a script, not a test): the real server in its own process tree (so its CPU
 * and peak RSS are its own), driven over loopback with pre-generated distinct CSRs and a fresh
 * one-time token (its own jti, so the server records it) for every request, at fixed
 * concurrencies for a fixed time, after a 3 s warm-up. Then renewal-info lookups per second on
 * issued serials. Prints a table and writes JSON (.bench/issuance-<time>.json) so runs can be
 * compared.
 *
 *   npm run bench:issuance -- [--db pglite|postgres|both] [--concurrency 16,64] [--seconds 20]
 *                             [--csrs 2000] [--workers N] [--pool-size N] [--group-commit ROWS,DELAY_MS,IN_FLIGHT] [--profile DIR]
 *                             [--driver wrk|node] [--pgbench-clients 8,16] [--pgbench-rows 1,32] [--pg-socket DIR]
 *                             [--key file|softhsm|both]
 *
 * --driver: the load generator; wrk (Debian's package, test/bench/wrk.ts) where installed, else
 * node:http in this process (support.ts drive), which takes far more of the two cores.
 * --workers sets server.workers, --pool-size database.poolSize and --group-commit
 * database.groupCommit (an empty field keeps its default) (default: the server's own
 * defaults); --profile writes a V8 CPU profile of every server process into DIR (summarise with
 * test/bench/profile-summary.ts).
 * --pgbench-clients: on Postgres, after the HTTP phases, the issuance statement alone from pgbench
 * (batches of each --pgbench-rows issuances per transaction, default 1,32) with that many connections (test/bench/pgbench.ts), the service idle beside it: what this
 * machine's Postgres can commit when nothing else needs the CPU ("" skips it).
 * --key: where the intermediate's key is: a PEM file (default), a P-256 key in a SoftHSM2 token
 * (Debian's softhsm2; ca.key a PKCS#11 URI, every signature made by the token), or both, one after
 * the other against the same database kind, so the rows compare the two.
 * Postgres comes from BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * a fresh database is created and dropped.
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createKeyAndCsr } from '../../src/cli/keys.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { createSoftHsmToken, issueTokenIntermediate, softhsmMissing } from '../setup/softhsm.js';
import { benchIssuer, drive, parseGroupCommit, percentile, postgresCpuSeconds, startBenchServer, treeStats } from './support.js';
import { drivePgbench, issuanceScript, pgbenchAvailable } from './pgbench.js';
import { driveWrk, wrkAvailable, type WrkRun } from './wrk.js';

const { values } = parseArgs({
  options: {
    db: { type: 'string', default: 'both' },
    concurrency: { type: 'string', default: '16,64' },
    seconds: { type: 'string', default: '20' },
    csrs: { type: 'string', default: '2000' },
    workers: { type: 'string' },
    profile: { type: 'string' },
    'lookup-seconds': { type: 'string', default: '5' },
    driver: { type: 'string' },
    'pool-size': { type: 'string' },
    'group-commit': { type: 'string' },
    'pgbench-clients': { type: 'string', default: '8,16' },
    'pgbench-rows': { type: 'string', default: '1,32' },
    'pg-socket': { type: 'string' },
    key: { type: 'string', default: 'file' },
  },
});
if (!['file', 'softhsm', 'both'].includes(values.key!)) throw new Error('--key is file, softhsm or both');
const keys = values.key === 'both' ? ['file', 'softhsm'] : [values.key!];
/** wrk where installed (a few percent of the CPU), else node:http (15-45% of it). */
const driver = values.driver ?? (wrkAvailable() ? 'wrk' : 'node');
if (driver !== 'wrk' && driver !== 'node') throw new Error('--driver is wrk or node');
const seconds = Number(values.seconds);
const concurrencies = values.concurrency!.split(',').map(Number);
/** Tokens minted per second of measured load: more than the server can possibly use. */
const TOKENS_PER_SECOND = 6000;

/** What the load generator saw: completed requests or transactions, latency, errors, and its own CPU. */
interface LoadRun {
  driver: 'node' | 'wrk' | 'pgbench';
  elapsed: number;
  completed: number;
  p50ms: number;
  p99ms: number;
  p999ms: number;
  errors: number;
  statuses: string;
  generatorCpuSeconds: number;
}

/** An HTTP phase's run, from wrk or from node:http in this process (its CPU since self0). */
function httpRun(run: Awaited<ReturnType<typeof drive>> | WrkRun, self0: NodeJS.CpuUsage): LoadRun {
  if ('succeeded' in run) {
    return { driver: 'wrk', elapsed: run.elapsed, completed: run.succeeded, p50ms: run.p50ms, p99ms: run.p99ms, p999ms: run.p999ms, errors: run.failed, statuses: JSON.stringify(run.errors), generatorCpuSeconds: run.cpuSeconds };
  }
  const used = process.cpuUsage(self0);
  const p = (q: number) => percentile(run.latencies, q);
  return { driver: 'node', elapsed: run.elapsed, completed: run.latencies.length, p50ms: p(50), p99ms: p(99), p999ms: p(99.9), errors: run.errors, statuses: JSON.stringify(run.statuses), generatorCpuSeconds: (used.user + used.system) / 1e6 };
}

/** One row of the results: throughput, latency percentiles, errors, and who used the CPU. */
function measured(db: string, phase: string, concurrency: number, run: LoadRun, before: { server: number; cpu0: number; pg0?: number | undefined }, key = 'file') {
  const stats = treeStats(before.server);
  const percent = (cpuSeconds: number) => Math.round((cpuSeconds / run.elapsed) * 100);
  return {
    db,
    key,
    phase,
    driver: run.driver,
    concurrency,
    seconds: Number(run.elapsed.toFixed(1)),
    perSecond: Math.round(run.completed / run.elapsed),
    p50ms: Number(run.p50ms.toFixed(1)),
    p99ms: Number(run.p99ms.toFixed(1)),
    p999ms: Number(run.p999ms.toFixed(1)),
    errors: run.errors,
    statuses: run.statuses,
    serverCpuPercent: percent(stats.cpuSeconds - before.cpu0),
    postgresCpuPercent: before.pg0 === undefined ? null : percent(postgresCpuSeconds() - before.pg0),
    loadGeneratorCpuPercent: percent(run.generatorCpuSeconds),
    serverProcesses: stats.processes,
    serverPeakRssMiB: stats.peakRssMiB,
    loadAverage: Number(loadavg()[0]!.toFixed(1)),
  };
}

/** The issuance statement from pgbench, the service idle (its sealer sealing), at each --pgbench-clients. */
async function databaseAlone(url: string, serverPid: number, results: Record<string, unknown>[]) {
  const clients = values['pgbench-clients']!.split(',').filter(Boolean).map(Number);
  if (clients.length === 0) return;
  if (!pgbenchAvailable()) {
    console.log('pgbench is not installed: no database-alone rows');
    return;
  }
  for (const rows of values['pgbench-rows']!.split(',').filter(Boolean).map(Number)) {
    const script = await issuanceScript(url, rows);
    for (const c of clients) {
      const cpu0 = treeStats(serverPid).cpuSeconds;
      const pg0 = postgresCpuSeconds();
      const run = await drivePgbench(url, c, seconds, script);
      // Issuances, not transactions: each transaction records a batch of `rows`.
      const load: LoadRun = { driver: 'pgbench', elapsed: run.elapsed, completed: run.transactions * rows, p50ms: run.p50ms, p99ms: run.p99ms, p999ms: run.p999ms, errors: run.failed, statuses: '{}', generatorCpuSeconds: run.cpuSeconds };
      const row = measured('postgres', `database alone, batches of ${rows}`, c, load, { server: serverPid, cpu0, pg0 });
      results.push(row);
      console.log(JSON.stringify(row));
    }
  }
}

/**
 * The `ca` section for a key kind: the PEM files of `pki`, or a P-256 key made in a fresh SoftHSM2
 * token with an intermediate for it under a root of its own (the token's SOFTHSM2_CONF is set in
 * this process, so the server it starts sees the token).
 */
async function caSection(key: string, work: string, pki: TestPki): Promise<{ ca: Record<string, unknown>; close(): void }> {
  if (key === 'file') return { ca: { certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate }, close() {} };
  const missing = softhsmMissing();
  if (missing) throw new Error(`--key softhsm: ${missing}`);
  const token = await createSoftHsmToken({ keys: [] });
  const known = token.importKnownKey('bench-p256');
  const ca = await issueTokenIntermediate(known.publicKeyPem);
  writeFileSync(join(work, 'token-intermediate.pem'), new X509Certificate(ca.intermediatePem).toString());
  writeFileSync(join(work, 'token-root.pem'), new X509Certificate(ca.rootPem).toString());
  return {
    ca: { certificate: join(work, 'token-intermediate.pem'), chain: join(work, 'token-root.pem'), key: known.uri, pkcs11: { module: token.module, pin: token.pin } },
    close: () => token.cleanup(),
  };
}

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'service-ca-bench-'));
  const pki = await createTestPki('p256');
  const issuer = await benchIssuer(work);
  console.log(`node ${process.version}, ${cpus().length} CPUs; generating ${values.csrs} distinct P-256 CSRs...`);
  const bodies: string[] = [];
  for (let i = 0; i < Number(values.csrs); i++) {
    const { csrPem } = await createKeyAndCsr('p256', { dns: [`w${i % 1000}.bench.svc`] });
    bodies.push(JSON.stringify({ csr: csrPem, ttl: '24h' }));
  }
  const results: Record<string, unknown>[] = [];

  for (const db of values.db === 'both' ? ['pglite', 'postgres'] : [values.db!]) for (const key of keys) {
    const section = await caSection(key, work, pki);
    const server = await startBenchServer({
      db: db as 'postgres' | 'pglite',
      dir: mkdtempSync(join(work, `${db}-`)),
      pki,
      issuer,
      ...(values.workers ? { workers: Number(values.workers) } : {}),
      ...(values['pool-size'] ? { poolSize: Number(values['pool-size']) } : {}),
      groupCommit: parseGroupCommit(values['group-commit']),
      postgresSocket: values['pg-socket'],
      nodeArgs: values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [],
      config: { ca: section.ca },
    });
    const { apiPort, publicPort } = server;
    const serials: string[] = [];
    try {
      const issueRequest = (token: string, i: number) => ({
        method: 'POST',
        path: '/v1/certificates',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: bodies[i % bodies.length],
      });
      const keepSerial = (status: number, body: string) => {
        if (status === 201 && serials.length < 100_000) serials.push((JSON.parse(body) as { serial: string }).serial);
      };
      // Warm-up (JIT, connections) over node:http, keeping the serials for renewal-info.
      const warmTokens = Array.from({ length: 20_000 }, (_, i) => issuer.mint(`spiffe://example.org/ns/bench/sa/w${i % 1000}`, 3000));
      await drive(apiPort, 16, 3000, (i) => (i < warmTokens.length ? issueRequest(warmTokens[i]!, i) : undefined), keepSerial);
      for (const concurrency of concurrencies) {
        const tokens = Array.from({ length: seconds * TOKENS_PER_SECOND }, (_, i) => issuer.mint(`spiffe://example.org/ns/bench/sa/w${i % 1000}`, 3000));
        const cpu0 = treeStats(server.pid).cpuSeconds;
        const pg0 = postgresCpuSeconds();
        const self0 = process.cpuUsage();
        const run =
          driver === 'wrk'
            ? await driveWrk(apiPort, concurrency, seconds * 1000, tokens.map((token, i) => ({ method: 'POST', path: '/v1/certificates', token, body: i % bodies.length })), bodies)
            : await drive(apiPort, concurrency, seconds * 1000, (i) => (i < tokens.length ? issueRequest(tokens[i]!, i) : undefined), keepSerial);
        const row = measured(db, 'issue', concurrency, httpRun(run, self0), { server: server.pid, cpu0, pg0: db === 'postgres' ? pg0 : undefined }, key);
        results.push(row);
        console.log(JSON.stringify(row));
      }
      // renewal-info on the public listener, for serials issued above.
      const lookupConcurrency = Math.max(...concurrencies);
      const lookupMs = Number(values['lookup-seconds']) * 1000;
      const lookupPath = (i: number) => `/v1/certificates/${serials[i % serials.length]}/renewal-info`;
      const cpu0 = treeStats(server.pid).cpuSeconds;
      const self0 = process.cpuUsage();
      const run =
        driver === 'wrk'
          ? await driveWrk(publicPort, lookupConcurrency, lookupMs, serials.map((_, i) => ({ method: 'GET', path: lookupPath(i) })))
          : await drive(publicPort, lookupConcurrency, lookupMs, (i) => ({ method: 'GET', path: lookupPath(i), headers: {} }), () => {});
      const row = measured(db, 'renewal-info', lookupConcurrency, httpRun(run, self0), { server: server.pid, cpu0 }, key);
      results.push(row);
      console.log(JSON.stringify(row));
      // The database alone once per database kind, whatever the key.
      if (server.url && key === keys[0]) await databaseAlone(server.url, server.pid, results);
    } finally {
      await server.stop();
      section.close();
    }
  }
  rmSync(work, { recursive: true, force: true });
  console.table(results.map(({ statuses: _s, ...r }) => r));
  mkdirSync('.bench', { recursive: true });
  const out = join('.bench', `issuance-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify({ kind: 'issuance', node: process.version, cpus: cpus().length, seconds, results }, null, 2));
  console.log(`results written to ${out}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
