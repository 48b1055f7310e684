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
import { spawn, type ChildProcess } from 'node:child_process';
import { createPrivateKey, randomBytes, randomUUID, sign } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { exportJWK, generateKeyPair } from 'jose';
import postgres from 'postgres';
import { stringify } from 'yaml';
import { createKeyAndCsr } from '../../src/cli/keys.js';
import { createTestPki } from '../setup/pki.js';

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
const pgUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
/** Tokens minted per second of measured load: more than the server can possibly use. */
const TOKENS_PER_SECOND = 6000;

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

/** The pid and every descendant: the server may fork workers. */
function processTree(root: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // the process ended meanwhile
    }
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) out.push(...(parents.get(out[i]!) ?? []));
  return out;
}

/** CPU seconds and the summed peak RSS of the server's process tree. */
function treeStats(root: number): { cpuSeconds: number; peakRssMiB: number; processes: number } {
  let ticks = 0;
  let hwmKiB = 0;
  const pids = processTree(root);
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks += Number(stat[11]) + Number(stat[12]);
      hwmKiB += Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // the process ended meanwhile
    }
  }
  return { cpuSeconds: ticks / 100, peakRssMiB: Math.round(hwmKiB / 1024), processes: pids.length };
}

/** CPU seconds of every Postgres backend (the database's share of the two cores). */
function postgresCpuSeconds(): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const raw = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (!raw.includes('(postgres)')) continue;
      const stat = raw.split(') ')[1]!.split(' ');
      ticks += Number(stat[11]) + Number(stat[12]);
    } catch {
      // the process ended meanwhile
    }
  }
  return ticks / 100;
}

const cpuPercent = (used: NodeJS.CpuUsage, seconds: number) => Math.round(((used.user + used.system) / 1e6 / seconds) * 100);

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

/**
 * An identity provider whose tokens are minted with node:crypto directly (ES256, JWS compact),
 * a few microseconds each, so that a minute of load can be pre-minted with one jti per request.
 */
async function benchIssuer(dir: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = 'bench';
  const jwksPath = join(dir, 'jwks.json');
  writeFileSync(jwksPath, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] }));
  const key = createPrivateKey({ key: await exportJWK(privateKey), format: 'jwk' });
  const issuer = 'https://idp.bench.example';
  const audience = 'service-ca';
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid, typ: 'JWT' })).toString('base64url');
  return {
    issuer,
    audience,
    jwksPath,
    mint(sub: string, ttl: number): string {
      const now = Math.floor(Date.now() / 1000);
      const payload = Buffer.from(JSON.stringify({ iss: issuer, aud: audience, sub, iat: now, exp: now + ttl, jti: randomUUID() })).toString('base64url');
      const input = `${header}.${payload}`;
      return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    },
  };
}

/** Sends requests over `concurrency` keep-alive connections until the deadline. */
async function drive(
  port: number,
  concurrency: number,
  durationMs: number,
  next: (i: number) => { method: string; path: string; headers: Record<string, string>; body?: string } | undefined,
  onResponse: (status: number, body: string) => void,
): Promise<{ latencies: number[]; errors: number; statuses: Record<string, number>; elapsed: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let errors = 0;
  let n = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  const one = (r: NonNullable<ReturnType<typeof next>>) =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const req = http.request({ host: '127.0.0.1', port, method: r.method, path: r.path, headers: r.headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          statuses[status] = (statuses[status] ?? 0) + 1;
          if (status < 300) latencies.push(performance.now() - t0);
          else errors++;
          onResponse(status, Buffer.concat(chunks).toString('utf8'));
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        statuses.network = (statuses.network ?? 0) + 1;
        resolve();
      });
      req.end(r.body);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const r = next(n++);
        if (!r) {
          errors++;
          statuses.exhausted = (statuses.exhausted ?? 0) + 1;
          return;
        }
        await one(r);
      }
    }),
  );
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { latencies, errors, statuses, elapsed: (performance.now() - started) / 1000 };
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
    const dir = mkdtempSync(join(work, `${db}-`));
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
    const publicPort = await freePort();
    const config = {
      server: { host: '127.0.0.1', port: apiPort, tls: { mode: 'off' }, ...(values.workers ? { workers: Number(values.workers) } : {}) },
      public: { host: '127.0.0.1', port: publicPort },
      ...(url ? { database: { url } } : {}),
      dataDir: dir,
      ca: { certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate },
      auth: {
        issuers: [{ name: 'bench', issuer: issuer.issuer, audience: issuer.audience, jwks: { file: issuer.jwksPath }, algorithms: ['ES256'], maxTokenAge: '1h', requireJti: true }],
      },
      policies: [{ identity: 'spiffe://example.org/ns/{ns}/sa/{sa}', dns: ['*.{ns}.svc'] }],
      logging: { level: 'warn' },
    };
    writeFileSync(join(dir, 'config.yaml'), stringify(config));
    const nodeArgs = values.profile ? ['--cpu-prof', '--cpu-prof-dir', values.profile] : [];
    const server: ChildProcess = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/cli/index.ts', 'serve', '--config', join(dir, 'config.yaml')], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const serials: string[] = [];
    try {
      for (let i = 0; ; i++) {
        try {
          if ((await fetch(`http://127.0.0.1:${apiPort}/readyz`)).ok) break;
        } catch {
          // not up yet
        }
        if (i > 300) throw new Error('server did not start');
        await new Promise((r) => setTimeout(r, 100));
      }
      for (const concurrency of concurrencies) {
        const tokens = Array.from({ length: seconds * TOKENS_PER_SECOND }, (_, i) => issuer.mint(`spiffe://example.org/ns/bench/sa/w${i % 1000}`, 3000));
        const cpu0 = treeStats(server.pid!).cpuSeconds;
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
        const stats = treeStats(server.pid!);
        const row = {
          db,
          phase: 'issue',
          concurrency,
          seconds: Number(run.elapsed.toFixed(1)),
          perSecond: Math.round(run.latencies.length / run.elapsed),
          p50ms: Number(percentile(run.latencies, 50).toFixed(1)),
          p99ms: Number(percentile(run.latencies, 99).toFixed(1)),
          p999ms: Number(percentile(run.latencies, 99.9).toFixed(1)),
          errors: run.errors,
          statuses: JSON.stringify(run.statuses),
          serverCpuPercent: Math.round(((stats.cpuSeconds - cpu0) / run.elapsed) * 100),
          postgresCpuPercent: db === 'postgres' ? Math.round(((postgresCpuSeconds() - pg0) / run.elapsed) * 100) : null,
          loadGeneratorCpuPercent: cpuPercent(process.cpuUsage(self0), run.elapsed),
          serverProcesses: stats.processes,
          serverPeakRssMiB: stats.peakRssMiB,
          loadAverage: Number(loadavg()[0]!.toFixed(1)),
        };
        results.push(row);
        console.log(JSON.stringify(row));
      }
      // renewal-info on the public listener, for the serials just issued.
      const lookupConcurrency = Math.max(...concurrencies);
      const cpu0 = treeStats(server.pid!).cpuSeconds;
      const self0 = process.cpuUsage();
      const run = await drive(
        publicPort,
        lookupConcurrency,
        Number(values['lookup-seconds']) * 1000,
        (i) => ({ method: 'GET', path: `/v1/certificates/${serials[i % serials.length]}/renewal-info`, headers: {} }),
        () => {},
      );
      const stats = treeStats(server.pid!);
      const row = {
        db,
        phase: 'renewal-info',
        concurrency: lookupConcurrency,
        seconds: Number(run.elapsed.toFixed(1)),
        perSecond: Math.round(run.latencies.length / run.elapsed),
        p50ms: Number(percentile(run.latencies, 50).toFixed(1)),
        p99ms: Number(percentile(run.latencies, 99).toFixed(1)),
        p999ms: Number(percentile(run.latencies, 99.9).toFixed(1)),
        errors: run.errors,
        statuses: JSON.stringify(run.statuses),
        serverCpuPercent: Math.round(((stats.cpuSeconds - cpu0) / run.elapsed) * 100),
        postgresCpuPercent: null,
        loadGeneratorCpuPercent: cpuPercent(process.cpuUsage(self0), run.elapsed),
        serverProcesses: stats.processes,
        serverPeakRssMiB: stats.peakRssMiB,
        loadAverage: Number(loadavg()[0]!.toFixed(1)),
      };
      results.push(row);
      console.log(JSON.stringify(row));
    } finally {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
      if (dbName) {
        const admin = postgres(pgUrl, { max: 1, onnotice: () => {} });
        await admin.unsafe(`drop database if exists ${dbName} with (force)`);
        await admin.end();
      }
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
