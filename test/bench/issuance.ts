/**
 * Issuance benchmark: the real server in its own process (so its CPU and peak RSS are its own),
 * driven over loopback with pre-generated distinct CSRs and pre-minted tokens at fixed
 * concurrencies for a fixed time. Prints a table and writes JSON (.bench/issuance-<time>.json).
 *
 *   npm run bench:issuance -- [--db pglite|postgres|both] [--concurrency 16,64] [--seconds 20]
 *
 * Postgres comes from BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * a fresh database is created and dropped.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { stringify } from 'yaml';
import { createKeyAndCsr } from '../../src/cli/keys.js';
import { createTestPki } from '../setup/pki.js';
import { createTestIssuer } from '../setup/tokens.js';

const { values } = parseArgs({
  options: { db: { type: 'string', default: 'both' }, concurrency: { type: 'string', default: '16,64' }, seconds: { type: 'string', default: '20' }, csrs: { type: 'string', default: '2000' } },
});
const seconds = Number(values.seconds);
const concurrencies = values.concurrency!.split(',').map(Number);
const pgUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

function procStats(pid: number): { cpuSeconds: number; peakRssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(stat[11]) + Number(stat[12]);
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return { cpuSeconds: ticks / 100, peakRssMiB: Math.round(Number(hwm) / 1024) };
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

async function main() {
  const pki = await createTestPki('p256');
  const issuer = await createTestIssuer();
  console.log(`generating ${values.csrs} CSRs and tokens...`);
  const csrs = await Promise.all(Array.from({ length: Number(values.csrs) }, (_, i) => createKeyAndCsr('p256', { dns: [`w${i}.bench.svc`] }).then((r) => r.csrPem)));
  const tokens = await Promise.all(Array.from({ length: 1000 }, (_, i) => issuer.mint({ sub: `spiffe://example.org/ns/bench/sa/w${i}` }, { ttl: 3000 })));
  const bodies = csrs.map((csr) => JSON.stringify({ csr, ttl: '24h' }));
  const results: Record<string, unknown>[] = [];

  for (const db of values.db === 'both' ? ['pglite', 'postgres'] : [values.db!]) {
    const dir = mkdtempSync(join(tmpdir(), 'service-ca-bench-'));
    let dbName: string | undefined;
    let url: string | undefined;
    if (db === 'postgres') {
      dbName = `service_ca_bench_${randomBytes(4).toString('hex')}`;
      const admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
      await admin.unsafe(`create database ${dbName}`);
      await admin.end();
      const u = new URL(pgUrl);
      u.pathname = `/${dbName}`;
      url = u.toString();
    }
    const apiPort = await freePort();
    const config = {
      server: { host: '127.0.0.1', port: apiPort, tls: { mode: 'off' } },
      public: { host: '127.0.0.1', port: await freePort() },
      ...(url ? { database: { url } } : {}),
      dataDir: dir,
      ca: { certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate },
      auth: { issuers: [{ name: 'bench', issuer: issuer.issuer, audience: issuer.audience, jwks: { file: issuer.jwksPath }, algorithms: ['ES256'], maxTokenAge: '1h' }] },
      policies: [{ identity: 'spiffe://example.org/ns/{ns}/sa/{sa}', dns: ['*.{ns}.svc'] }],
      logging: { level: 'warn' },
    };
    writeFileSync(join(dir, 'config.yaml'), stringify(config));
    const server: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'serve', '--config', join(dir, 'config.yaml')], { stdio: ['ignore', 'ignore', 'inherit'] });
    try {
      const base = `http://127.0.0.1:${apiPort}`;
      for (let i = 0; ; i++) {
        try {
          if ((await fetch(`${base}/readyz`)).ok) break;
        } catch {
          // not up yet
        }
        if (i > 300) throw new Error('server did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const concurrency of concurrencies) {
        const latencies: number[] = [];
        let errors = 0;
        let n = 0;
        const cpu0 = procStats(server.pid!).cpuSeconds;
        const started = performance.now();
        const deadline = started + seconds * 1000;
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (performance.now() < deadline) {
              const i = n++;
              const t0 = performance.now();
              try {
                const res = await fetch(`${base}/v1/certificates`, {
                  method: 'POST',
                  headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens[i % tokens.length]}` },
                  body: bodies[i % bodies.length],
                });
                await res.arrayBuffer();
                if (res.status === 201) latencies.push(performance.now() - t0);
                else errors++;
              } catch {
                errors++;
              }
            }
          }),
        );
        const elapsed = (performance.now() - started) / 1000;
        const stats = procStats(server.pid!);
        latencies.sort((a, b) => a - b);
        const row = {
          db,
          concurrency,
          seconds: Number(elapsed.toFixed(1)),
          certificatesPerSecond: Math.round(latencies.length / elapsed),
          p50ms: Number(percentile(latencies, 50).toFixed(1)),
          p99ms: Number(percentile(latencies, 99).toFixed(1)),
          p999ms: Number(percentile(latencies, 99.9).toFixed(1)),
          errors,
          serverCpuPercent: Math.round(((stats.cpuSeconds - cpu0) / elapsed) * 100),
          serverPeakRssMiB: stats.peakRssMiB,
        };
        results.push(row);
        console.log(JSON.stringify(row));
      }
    } finally {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
      if (dbName) {
        const admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
        await admin.unsafe(`drop database if exists ${dbName} with (force)`);
        await admin.end();
      }
    }
  }
  console.table(results);
  mkdirSync('.bench', { recursive: true });
  const out = join('.bench', `issuance-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify({ kind: 'issuance', node: process.version, results }, null, 2));
  console.log(`results written to ${out}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
