/**
 * What the benchmark scripts share: the bench identity provider (tokens minted with node:crypto,
 * a jti each), a keep-alive load driver over node:http, and CPU/RSS readings of a process tree
 * from /proc.
 */
import { spawn } from 'node:child_process';
import { createPrivateKey, randomUUID, sign } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { stringify } from 'yaml';
import { createPostgresDatabase } from '../setup/database.js';
import type { TestPki } from '../setup/pki.js';

export const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });

/** The pid and every descendant: the server may fork workers. */
export function processTree(root: number): number[] {
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
export function treeStats(root: number): { cpuSeconds: number; peakRssMiB: number; processes: number } {
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

/**
 * CPU seconds of every Postgres process (the database's share of the two cores), with the
 * backends that have exited since (a load generator's connections): the postmaster reaps them,
 * so their time is in its children's fields.
 */
export function postgresCpuSeconds(): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const raw = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (!raw.includes('(postgres)')) continue;
      const stat = raw.split(') ')[1]!.split(' ');
      ticks += Number(stat[11]) + Number(stat[12]) + Number(stat[13]) + Number(stat[14]);
    } catch {
      // the process ended meanwhile
    }
  }
  return ticks / 100;
}

export const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? NaN;

/**
 * An identity provider whose tokens are minted with node:crypto directly (ES256, JWS compact),
 * a few microseconds each, so that a minute of load can be pre-minted with one jti per request.
 * privateJwk (with the kid the key set names) is for a load generator in another process that
 * mints its own tokens.
 */
export async function benchIssuer(dir: string) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = 'bench';
  const jwksPath = join(dir, 'jwks.json');
  writeFileSync(jwksPath, JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' }] }));
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'ES256' };
  const key = createPrivateKey({ key: privateJwk, format: 'jwk' });
  const issuer = 'https://idp.bench.example';
  const audience = 'service-ca';
  const header = Buffer.from(JSON.stringify({ alg: 'ES256', kid, typ: 'JWT' })).toString('base64url');
  return {
    issuer,
    audience,
    jwksPath,
    privateJwk,
    mint(sub: string, ttl: number): string {
      const now = Math.floor(Date.now() / 1000);
      const payload = Buffer.from(JSON.stringify({ iss: issuer, aud: audience, sub, iat: now, exp: now + ttl, jti: randomUUID() })).toString('base64url');
      const input = `${header}.${payload}`;
      return `${input}.${sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    },
  };
}

/** Sends requests over `concurrency` keep-alive connections until the deadline. */
export async function drive(
  port: number,
  concurrency: number,
  durationMs: number,
  next: (i: number) => { method: string; path: string; headers: Record<string, string>; body?: string } | undefined,
  onResponse: (status: number, body: string) => void,
): Promise<{ latencies: number[]; errors: number; statuses: Record<string, number>; elapsed: number }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, timeout: 4000 });
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

export type GroupCommitSetting = Partial<Record<'maxRows' | 'maxDelayMs' | 'maxInFlight', number>>;

/** `--group-commit maxRows,maxDelayMs,maxInFlight` (an empty field keeps the server's default). */
export function parseGroupCommit(text: string | undefined): GroupCommitSetting | undefined {
  if (text === undefined) return undefined;
  const fields = text.split(',');
  if (fields.length !== 3 || !fields.every((f) => f === '' || /^\d+$/.test(f))) throw new Error('--group-commit is maxRows,maxDelayMs,maxInFlight (numbers; an empty field keeps the default)');
  const keys = ['maxRows', 'maxDelayMs', 'maxInFlight'] as const;
  return Object.fromEntries(keys.flatMap((k, i) => (fields[i] === '' ? [] : [[k, Number(fields[i])]])));
}

/** The mean issuances per group-commit transaction so far, from the server's /metrics (every worker's). */
export async function meanBatch(apiPort: number): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${apiPort}/metrics`)).text();
  const total = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
  const batches = total('service_ca_issuance_batches_total');
  const items = total('service_ca_issuances_batched_total');
  return batches > 0 ? Math.round((items / batches) * 10) / 10 : undefined;
}

export const pgUrl = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

export interface BenchServer {
  pid: number;
  apiPort: number;
  publicPort: number;
  /** The fresh Postgres database's URL (undefined on PGlite). */
  url: string | undefined;
  /** SIGTERM, wait for the exit, drop the database. */
  stop(): Promise<void>;
}

/**
 * `serve` in a child process (so its CPU and memory are its own) on a fresh Postgres database
 * (created here, dropped by stop) or on PGlite under dir, plain HTTP, the bench issuer with
 * one-time tokens, and a policy granting `*.{ns}.svc`. Resolves once /readyz answers.
 */
export async function startBenchServer(o: {
  db: 'postgres' | 'pglite';
  dir: string;
  pki: TestPki;
  issuer: { issuer: string; audience: string; jwksPath: string };
  workers?: number;
  /** database.poolSize (Postgres). */
  poolSize?: number;
  /** database.groupCommit (any of its keys). */
  groupCommit?: GroupCommitSetting | undefined;
  /** The server reaches Postgres over its Unix socket in this directory rather than TCP. */
  postgresSocket?: string | undefined;
  nodeArgs?: string[];
  /**
   * Keep the server's own default logging level (a line per request) and write its stdout to
   * this file; without it the level is warn and stdout is discarded.
   */
  log?: string;
  config?: Record<string, unknown>;
}): Promise<BenchServer> {
  let database: { url: string; drop(): Promise<void> } | undefined;
  let url: string | undefined;
  if (o.db === 'postgres') {
    database = await createPostgresDatabase(pgUrl, 'service_ca_bench');
    const u = new URL(database.url);
    // pg and libpq (pgbench) read a socket directory from the host parameter.
    if (o.postgresSocket) u.searchParams.set('host', o.postgresSocket);
    url = u.toString();
  }
  const apiPort = await freePort();
  const publicPort = await freePort();
  const config = {
    server: { host: '127.0.0.1', port: apiPort, tls: { mode: 'off' }, ...(o.workers ? { workers: o.workers } : {}) },
    public: { host: '127.0.0.1', port: publicPort },
    ...(url || o.groupCommit ? { database: { ...(url ? { url } : {}), ...(o.poolSize ? { poolSize: o.poolSize } : {}), ...(o.groupCommit ? { groupCommit: o.groupCommit } : {}) } } : {}),
    dataDir: o.dir,
    ca: { certificate: o.pki.intermediateCertificate, key: o.pki.intermediateKey, chain: o.pki.rootCertificate },
    auth: {
      issuers: [{ name: 'bench', issuer: o.issuer.issuer, audience: o.issuer.audience, jwks: { file: o.issuer.jwksPath }, algorithms: ['ES256'], maxTokenAge: '1h', requireJti: true }],
      admins: { identities: ['spiffe://example.org/admin'] },
    },
    policies: [{ identity: 'spiffe://example.org/ns/{ns}/sa/{sa}', dns: ['*.{ns}.svc'] }],
    ...(o.log ? {} : { logging: { level: 'warn' } }),
    ...o.config,
  };
  writeFileSync(join(o.dir, 'config.yaml'), stringify(config));
  const stdout = o.log ? openSync(o.log, 'w') : 'ignore';
  const child = spawn(process.execPath, [...(o.nodeArgs ?? []), '--import', 'tsx', 'src/cli/index.ts', 'serve', '--config', join(o.dir, 'config.yaml')], {
    stdio: ['ignore', stdout, 'inherit'],
  });
  if (typeof stdout === 'number') closeSync(stdout);
  const exited = new Promise((r) => child.once('exit', r));
  const stop = async () => {
    child.kill('SIGTERM');
    await exited;
    await database?.drop();
  };
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${apiPort}/readyz`)).ok) break;
    } catch {
      // not up yet
    }
    if (i > 300) {
      await stop();
      throw new Error('server did not start');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { pid: child.pid!, apiPort, publicPort, url, stop };
}
