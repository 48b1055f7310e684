/**
 * Issuance benchmark (a script, not a test): the real server in its own process tree (so its CPU
 * and peak RSS are its own), driven over loopback by this process with pre-generated distinct
 * CSRs and a fresh one-time token (its own jti, so the server records it) for every request, at
 * fixed concurrencies for a fixed time. Then renewal-info lookups per second on the issued
 * serials. Prints a table and writes JSON (.bench/issuance-<time>.json) so runs can be compared.
 *
 *   npm run bench:issuance -- [--db pglite|postgres|both] [--concurrency 16,64] [--seconds 20]
 *                             [--csrs 2000] [--workers N] [--profile DIR]
 *
 * --workers sets server.workers (default: the server's own default); --profile writes a V8 CPU
 * profile of every server process into DIR (summarise with test/bench/profile-summary.ts).
 * Postgres comes from BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * a fresh database is created and dropped.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createKeyAndCsr } from '../../src/cli/keys.js';
import { createTestPki } from '../setup/pki.js';
import { benchIssuer, cpuPercent, drive, percentile, postgresCpuSeconds, startBenchServer, treeStats } from './support.js';

const { values } = parseArgs({
  options: {
    db: { type: 'string', default: 'both' },
    concurrency: { type: 'string', default: '16,64' },
    seconds: { type: 'string', default: '20' },
    csrs: { type: 'string', default: '2000' },
    workers: { type: 'string' },
    profile: { type: 'string' },
    'lookup-seconds': { type: 'string', default: '5' },
  },
});
const seconds = Number(values.seconds);
const concurrencies = values.concurrency!.split(',').map(Number);
/** Tokens minted per second of measured load: more than the server can possibly use. */
const TOKENS_PER_SECOND = 6000;

/** One row of the results: throughput, latency percentiles, errors, and who used the CPU. */
function measured(
  db: string,
  phase: string,
  concurrency: number,
  run: Awaited<ReturnType<typeof drive>>,
  before: { server: number; cpu0: number; self0: NodeJS.CpuUsage; pg0?: number | undefined },
) {
  const stats = treeStats(before.server);
  return {
    db,
    phase,
    concurrency,
    seconds: Number(run.elapsed.toFixed(1)),
    perSecond: Math.round(run.latencies.length / run.elapsed),
    p50ms: Number(percentile(run.latencies, 50).toFixed(1)),
    p99ms: Number(percentile(run.latencies, 99).toFixed(1)),
    p999ms: Number(percentile(run.latencies, 99.9).toFixed(1)),
    errors: run.errors,
    statuses: JSON.stringify(run.statuses),
    serverCpuPercent: Math.round(((stats.cpuSeconds - before.cpu0) / run.elapsed) * 100),
    postgresCpuPercent: before.pg0 === undefined ? null : Math.round(((postgresCpuSeconds() - before.pg0) / run.elapsed) * 100),
    loadGeneratorCpuPercent: cpuPercent(process.cpuUsage(before.self0), run.elapsed),
    serverProcesses: stats.processes,
    serverPeakRssMiB: stats.peakRssMiB,
    loadAverage: Number(loadavg()[0]!.toFixed(1)),
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

  for (const db of values.db === 'both' ? ['pglite', 'postgres'] : [values.db!]) {
    const server = await startBenchServer({
      db: db as 'postgres' | 'pglite',
      dir: mkdtempSync(join(work, `${db}-`)),
      pki,
      issuer,
      ...(values.workers ? { workers: Number(values.workers) } : {}),
      nodeArgs: values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [],
    });
    const { apiPort, publicPort } = server;
    const serials: string[] = [];
    try {
      for (const concurrency of concurrencies) {
        const tokens = Array.from({ length: seconds * TOKENS_PER_SECOND }, (_, i) => issuer.mint(`spiffe://example.org/ns/bench/sa/w${i % 1000}`, 3000));
        const cpu0 = treeStats(server.pid).cpuSeconds;
        const pg0 = postgresCpuSeconds();
        const self0 = process.cpuUsage();
        const run = await drive(
          apiPort,
          concurrency,
          seconds * 1000,
          (i) =>
            i < tokens.length
              ? { method: 'POST', path: '/v1/certificates', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens[i]}` }, body: bodies[i % bodies.length] }
              : undefined,
          (status, body) => {
            if (status === 201 && serials.length < 100_000) serials.push((JSON.parse(body) as { serial: string }).serial);
          },
        );
        const row = measured(db, 'issue', concurrency, run, { server: server.pid, cpu0, self0, pg0: db === 'postgres' ? pg0 : undefined });
        results.push(row);
        console.log(JSON.stringify(row));
      }
      // renewal-info on the public listener, for the serials just issued.
      const lookupConcurrency = Math.max(...concurrencies);
      const cpu0 = treeStats(server.pid).cpuSeconds;
      const self0 = process.cpuUsage();
      const run = await drive(
        publicPort,
        lookupConcurrency,
        Number(values['lookup-seconds']) * 1000,
        (i) => ({ method: 'GET', path: `/v1/certificates/${serials[i % serials.length]}/renewal-info`, headers: {} }),
        () => {},
      );
      const row = measured(db, 'renewal-info', lookupConcurrency, run, { server: server.pid, cpu0, self0 });
      results.push(row);
      console.log(JSON.stringify(row));
    } finally {
      await server.stop();
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
