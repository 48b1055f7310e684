/**
 * Peer benchmark (a script, not a test): service-ca beside step-ca 0.19 with its durable badger
 * store, in one run on one machine, with one load driver for both, the peer harness's (undici,
 * distinct P-256 CSRs, one pre-minted one-time token per request, openssl checks of sampled
 * certificates). On a shared machine only the ratio between the two is stable, so every pair
 * runs them back to back: step-ca on a fresh badger store, then service-ca on a fresh database,
 * each measured at the same concurrency for the same time after the same warm-up.
 *
 *   npm run bench:peers -- [--harness DIR] [--pairs 5] [--concurrency 64] [--seconds 20]
 *                          [--warmup 3] [--db postgres|pglite|both] [--workers N]
 *                          [--pool-size N] [--group-commit ROWS,DELAY_MS,IN_FLIGHT] [--json FILE]
 *
 * --harness: the peer harness (step-ca 0.19 built from Debian's library, its start and stop
 * scripts, its load driver), set up beforehand; default PEERS_HARNESS. Its generated files go
 * to PEERBENCH_DIR as the harness decides.
 * service-ca runs as issuance.ts runs it (startBenchServer: its own process tree, a one-time-token
 * issuer, a fresh Postgres database from BENCH_DATABASE_URL with the server's settings, so
 * synchronous_commit on), except that it keeps its default logging level, a line per request,
 * written to the harness's log folder: what a deployment pays.
 * CPU ms per certificate is the server's tree and, on Postgres, the postmaster's tree (backends,
 * reaped ones included), so Postgres must run on this machine. The results, the driver's records
 * in full among them, go to --json FILE (default .bench/peers-<time>.json). The exit code is
 * non-zero when a run had errors, issued nothing, or a sampled certificate failed its checks.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { withPg } from '../setup/database.js';
import { createTestPki } from '../setup/pki.js';
import { benchIssuer, meanBatch, parseGroupCommit, pgUrl, startBenchServer } from './support.js';

const { values } = parseArgs({
  options: {
    harness: { type: 'string' },
    pairs: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '64' },
    seconds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    db: { type: 'string', default: 'postgres' },
    workers: { type: 'string' },
    'pool-size': { type: 'string' },
    'group-commit': { type: 'string' },
    json: { type: 'string' },
  },
});
const harnessDir = values.harness ?? process.env.PEERS_HARNESS;
if (!harnessDir) throw new Error('name the peer harness folder with --harness DIR or PEERS_HARNESS (docs/performance.md "Beside step-ca")');
const harness = resolve(harnessDir);
const pairs = Number(values.pairs);
const groupCommit = parseGroupCommit(values['group-commit']);
const dbs = (values.db === 'both' ? ['postgres', 'pglite'] : [values.db]) as ('postgres' | 'pglite')[];
if (!dbs.every((db) => db === 'postgres' || db === 'pglite')) throw new Error('--db is postgres, pglite or both');
if (!Number.isInteger(pairs) || pairs < 1) throw new Error('--pairs is a positive integer');
// One level per run: the driver appends one record per level, and a pair compares one each.
if (!/^\d+$/.test(values.concurrency!)) throw new Error('--concurrency is one number');
if (!existsSync(join(harness, 'env.sh'))) throw new Error(`no peer harness at ${harness} (--harness DIR or PEERS_HARNESS)`);

/** The names the service's bench policy grants (spiffe://example.org/ns/{ns}/sa/{sa} -> *.{ns}.svc). */
const SUBJECT = 'spiffe://example.org/ns/bench/sa/svc{i}';
const DNS = 'svc{i}.bench.svc';

/** One measured level, as the driver appends it to its JSONL (the fields used here). */
interface DriverRecord {
  label: string;
  certs: number;
  certs_per_s: number;
  errors: number;
  error_kinds: Record<string, number>;
  latency_ms: { p50: number; p90: number; p99: number; max: number };
  tokens?: { preminted: number; minted_inline: number };
  cpu: { server_cores?: number; server_cpu_ms_per_cert?: number; driver_cores: number; system_busy_pct: number; other_cores?: number };
  verify: { checked: number; ok: number; problems: unknown[] };
}

interface Run {
  pair: number;
  peer: 'step-ca' | 'service-ca';
  /** service-ca's database; step-ca's store is always badger. */
  db: 'badger' | 'postgres' | 'pglite';
  exitCode: number;
  record: DriverRecord | undefined;
  /** service-ca: mean issuances per group-commit transaction (its /metrics), after the run. */
  meanBatch?: number | undefined;
}

/** The harness's own settings, read from its env.sh (which also installs the driver's dependencies). */
function harnessEnv() {
  const script = 'source "$1/env.sh" && ensure_driver >&2 && printf "%s\\n" "$DRIVER" "$PEERBENCH_DIR" "$PKI_DIR" "$STEPCA_PORT"';
  const r = spawnSync('bash', ['-c', script, 'env', harness], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error(`the peer harness's env.sh failed (${r.status})`);
  const [driver, dir, pki, port] = r.stdout.trim().split('\n');
  return { driver: driver!, dir: dir!, pki: pki!, stepcaUrl: `https://127.0.0.1:${port!}` };
}

const children = new Set<ChildProcess>();
/** This run's temporary folder: the issuer's private key, the service's data, the driver's JSONL. */
let work = '';
let interrupted = false;
const stopIfInterrupted = () => {
  if (interrupted) throw new Error('interrupted');
};

/** Runs a command to its end with the output on ours; resolves with its exit code. */
function run(command: string, args: string[]): Promise<number> {
  const child = spawn(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  children.add(child);
  return new Promise((done) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      done(code ?? (signal ? 128 : 1));
    }),
  );
}

/** The harness's stop-all.sh: step-ca (and anything else it started), by its recorded pid. */
function stopHarness(): void {
  spawnSync('bash', [join(harness, 'stop-all.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
}

/**
 * The postmaster's pid: the parent of a backend of ours. Its tree (the driver's `P+`) is every
 * Postgres process, the exited backends included, which is what the database costs per request.
 */
async function postmasterPid(url: string): Promise<number> {
  // Read while connected: the backend exits with its connection.
  return withPg(url, async (c) => {
    const backend = (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    try {
      const stat = readFileSync(`/proc/${backend}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      throw new Error(`Postgres backend ${backend} is not a process on this machine: CPU per certificate must count the database, so run Postgres here`);
    }
  });
}

async function main() {
  const env = harnessEnv();
  const postmaster = dbs.includes('postgres') ? await postmasterPid(pgUrl) : undefined;
  work = mkdtempSync(join(tmpdir(), 'service-ca-peers-'));
  const jsonl = join(work, 'driver.jsonl');
  const level = ['-c', values.concurrency!, '-d', values.seconds!, '-w', values.warmup!, '--json', jsonl];
  const runs: Run[] = [];

  /** The driver against one target; its record is the last line it appended. */
  const measure = async (r: Omit<Run, 'exitCode' | 'record'>, args: string[]): Promise<Run> => {
    stopIfInterrupted();
    const before = existsSync(jsonl) ? readFileSync(jsonl, 'utf8').length : 0;
    const exitCode = await run(process.execPath, [join(env.driver, 'bench.mjs'), ...args, ...level]);
    const added = existsSync(jsonl) ? readFileSync(jsonl, 'utf8').slice(before).trim() : '';
    const result = { ...r, exitCode, record: added ? (JSON.parse(added.split('\n').at(-1)!) as DriverRecord) : undefined };
    runs.push(result);
    return result;
  };

  try {
    const pki = await createTestPki('p256');
    const issuer = await benchIssuer(work);
    const jwk = join(work, 'issuer.priv.jwk');
    writeFileSync(jwk, JSON.stringify(issuer.privateJwk), { mode: 0o600 });
    for (let pair = 1; pair <= pairs; pair++) {
      stopIfInterrupted();
      const pairRuns: Run[] = [];
      if ((await run('bash', [join(harness, 'stepca/start.sh'), 'badger'])) !== 0) throw new Error('step-ca did not start');
      const stepcaPid = readFileSync(join(env.dir, 'run/stepca.pid'), 'utf8').trim();
      const stepcaDir = `${env.dir}/stepca`;
      pairRuns.push(
        await measure({ pair, peer: 'step-ca', db: 'badger' }, [
          ...['-t', 'stepca', '--url', env.stepcaUrl, '--label', `step-ca+badger #${pair}`, '-o', `jwk=${stepcaDir}/provisioner.priv.jwk`],
          ...['--cacert', `${env.pki}/root.pem`, '--issuer', `${env.pki}/int.pem`, '--root', `${env.pki}/root.pem`, '--server-pid', stepcaPid],
        ]),
      );
      stopHarness();
      for (const db of dbs) {
        stopIfInterrupted();
        const server = await startBenchServer({
          db,
          dir: mkdtempSync(join(work, `${db}-${pair}-`)),
          pki,
          issuer,
          ...(values.workers ? { workers: Number(values.workers) } : {}),
          ...(values['pool-size'] ? { poolSize: Number(values['pool-size']) } : {}),
          groupCommit,
          log: join(env.dir, 'logs', `service-ca-${db}.log`),
        });
        try {
          const pids = `${server.pid}+${db === 'postgres' ? `,${postmaster}+` : ''}`;
          pairRuns.push(
            await measure({ pair, peer: 'service-ca', db }, [
              ...['-t', 'service-ca', '--url', `http://127.0.0.1:${server.apiPort}`, '--label', `service-ca+${db} #${pair}`],
              ...['-o', `jwk=${jwk}`, '-o', `iss=${issuer.issuer}`, '-o', `aud=${issuer.audience}`, '-o', `sub=${SUBJECT}`, '-o', `dns=${DNS}`],
              ...['--issuer', pki.intermediateCertificate, '--root', pki.rootCertificate, '--server-pid', pids],
            ]),
          );
          pairRuns.at(-1)!.meanBatch = await meanBatch(server.apiPort);
        } finally {
          await server.stop();
        }
      }
      console.log(`\npair ${pair} of ${pairs}:`);
      console.table(pairRuns.map(row));
    }
  } finally {
    stopHarness();
    rmSync(work, { recursive: true, force: true });
  }

  stopIfInterrupted();
  const summary = dbs.map((db) => summarize(runs, db));
  console.log('\nsummary (certs/s ratio = service-ca / step-ca in the same pair):');
  // One column per database, one row per figure: narrower than a row per database.
  const figures = Object.keys(summary[0]!).filter((k) => k !== 'db' && k !== 'ratios') as (keyof (typeof summary)[number])[];
  console.table(Object.fromEntries(figures.map((k) => [k, Object.fromEntries(summary.map((s) => [s.db, s[k]]))])));
  const out = values.json ?? join('.bench', `peers-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  mkdirSync(dirname(out), { recursive: true });
  const settings = { pairs, concurrency: Number(values.concurrency), seconds: Number(values.seconds), warmup: Number(values.warmup), db: values.db, workers: values.workers ?? null, poolSize: values['pool-size'] ?? null, groupCommit: groupCommit ?? null };
  writeFileSync(out, JSON.stringify({ kind: 'peers', node: process.version, cpus: cpus().length, settings, summary, runs }, null, 2));
  console.log(`results written to ${out}`);
  const failed = runs.filter(failedRun);
  if (failed.length > 0) {
    console.error(`${failed.length} run(s) had errors or failed checks: ${failed.map((r) => `${r.peer}+${r.db} #${r.pair}`).join(', ')}`);
    process.exitCode = 1;
  }
}

const name = (r: Run) => (r.peer === 'step-ca' ? 'step-ca 0.19 + badger' : `service-ca + ${r.db}`);

/** A run that issued nothing, answered an error, failed a certificate check, or whose driver failed. */
const failedRun = (r: Run) => r.exitCode !== 0 || !r.record || r.record.certs === 0 || r.record.errors > 0 || r.record.verify.ok < r.record.verify.checked;

function row(r: Run) {
  const x = r.record;
  return {
    peer: name(r),
    'certs/s': x?.certs_per_s ?? null,
    'p50 ms': x?.latency_ms.p50 ?? null,
    'p99 ms': x?.latency_ms.p99 ?? null,
    errors: x ? x.errors : 'no result',
    'CPU ms/cert': x?.cpu.server_cpu_ms_per_cert ?? null,
    verified: x ? `${x.verify.ok}/${x.verify.checked}` : '-',
    'other cores': x?.cpu.other_cores ?? null,
    'inline tokens': x?.tokens?.minted_inline ?? null,
    'mean batch': r.meanBatch ?? '-',
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
/** null for a figure no run produced (the driver writes a NaN percentile as null). */
const round = (x: number, digits = 2) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);

/** service-ca on db against the step-ca run of the same pair: the ratio per pair, its median, tails, errors, checks. */
function summarize(runs: Run[], db: 'postgres' | 'pglite') {
  const ours = runs.filter((r) => r.peer === 'service-ca' && r.db === db);
  const peers = runs.filter((r) => r.peer === 'step-ca');
  const ratios = ours.flatMap((r) => {
    const peer = peers.find((p) => p.pair === r.pair)?.record;
    return r.record && peer && peer.certs_per_s > 0 ? [Number((r.record.certs_per_s / peer.certs_per_s).toFixed(2))] : [];
  });
  const records = (rs: Run[]) => rs.flatMap((r) => (r.record ? [r.record] : []));
  const p99 = (rs: Run[]) => records(rs).flatMap((x) => (Number.isFinite(x.latency_ms.p99) ? [x.latency_ms.p99] : []));
  const cpu = (rs: Run[]) => records(rs).flatMap((x) => (x.cpu.server_cpu_ms_per_cert === undefined ? [] : [x.cpu.server_cpu_ms_per_cert]));
  const both = [...ours, ...peers];
  return {
    db,
    pairs: ratios.length,
    'ratio per pair': ratios.join(', '),
    ratios,
    'median ratio': round(median(ratios)),
    'service-ca p99 ms (median)': round(median(p99(ours)), 1),
    'service-ca p99 ms (max)': round(Math.max(...p99(ours)), 1),
    'step-ca p99 ms (median)': round(median(p99(peers)), 1),
    'step-ca p99 ms (max)': round(Math.max(...p99(peers)), 1),
    'service-ca CPU ms/cert (median)': round(median(cpu(ours)), 3),
    'step-ca CPU ms/cert (median)': round(median(cpu(peers)), 3),
    errors: records(both).reduce((n, x) => n + x.errors, 0),
    verified: `${records(both).reduce((n, x) => n + x.verify.ok, 0)}/${records(both).reduce((n, x) => n + x.verify.checked, 0)}`,
    'failed runs': both.filter(failedRun).length,
  };
}

/**
 * Interrupted: end the driver (or step-ca's start script) now; main then leaves by its own
 * cleanup path (the service's stop(), stop-all.sh), so nothing is stopped twice. step-ca itself
 * ignores a terminal's SIGINT (a background job of a script), hence stop-all.sh. The handler
 * stays for later signals: tsx's parent process relays the terminal's SIGINT a second time, and
 * with no handler left that one would end this process before its cleanup.
 */
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    interrupted = true;
    for (const child of children) child.kill('SIGTERM');
  });
}

main().catch((err: unknown) => {
  console.error(interrupted ? 'interrupted: step-ca and the service are stopped' : err);
  process.exitCode = interrupted ? 130 : 1;
});
