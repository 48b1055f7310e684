/**
 * The database alone: pgbench (PostgreSQL's own load generator, from the Postgres client
 * package) runs the service's issuance statement (src/store/issuances.ts RECORD_ISSUANCES, its
 * JSON parameter built in SQL from a real issuance's values, a batch of N rows per transaction,
 * each with its own serial, fingerprint and token id; prepared once per connection as the service does, though pgbench
 * binds two small numbers where the service binds ~1 KB, the DER among it). Needs pgbench 14 or
 * later (its summary lines). With the service
 * idle beside it (its audit sealer still sealing every second), this is what Postgres on this
 * machine can commit when nothing else needs the CPU: the ceiling for issuance through the
 * service, whatever the service does.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { RECORD_ISSUANCES } from '../../src/store/issuances.js';
import { percentile } from './support.js';
import { runTimed } from './timed-command.js';

export const pgbenchAvailable = (): boolean => spawnSync('pgbench', ['--version'], { stdio: 'ignore' }).error === undefined;

export interface PgbenchRun {
  transactions: number;
  failed: number;
  elapsed: number;
  p50ms: number;
  p99ms: number;
  p999ms: number;
  /** CPU seconds pgbench used (user + system). */
  cpuSeconds: number;
}

/**
 * Text as SQL that pgbench leaves alone: its variables are `:name`, and a literal may hold colons
 * (times, URLs), so every literal goes in as hex.
 */
const text = (value: string) => `convert_from(decode('${Buffer.from(value, 'utf8').toString('hex')}', 'hex'), 'UTF8')`;

/** The issuance statement for a batch of `rows` issuances as a pgbench script, values from one certificate and audit row of the database. */
export async function issuanceScript(url: string, rows: number): Promise<string> {
  // pg (not postgres.js): it reads a Unix socket directory from the URL's host parameter.
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const [cert] = (
      await client.query<{ issuer_key_id: string; identity: string; sans: string; dns_names: string; der: string; token_issuer: string }>(
        `select issuer_key_id, identity, sans::text as sans, dns_names::text as dns_names, encode(der, 'hex') as der, token_issuer
         from certificates where token_jti is not null limit 1`,
      )
    ).rows;
    const [audit] = (
      await client.query<{ actor: string; action: string; detail: string }>(
        `select actor, action, detail::text as detail from audit_events where action = 'certificate.issue' limit 1`,
      )
    ).rows;
    if (!cert || !audit) throw new Error('the database holds no issuance to take values from');
    // One row of RECORD_ISSUANCES' JSON parameter (see batchParameter), the g-th of the batch.
    const row = `jsonb_build_object(
      'n', g - 1, 'serial', lpad(to_hex(:serial::bigint + g), 40, '0'), 'issuer_key_id', ${text(cert.issuer_key_id)},
      'identity', ${text(cert.identity)}, 'sans', (${text(cert.sans)})::jsonb, 'dns_names', to_jsonb((${text(cert.dns_names)})::text[]),
      'not_before', now(), 'not_after', now() + interval '24 hours', 'der', encode(decode('${cert.der}', 'hex'), 'base64'),
      'fingerprint', md5(:serial::text || g) || md5(:jti::text || g), 'token_issuer', ${text(cert.token_issuer)},
      'token_jti', :jti::text || '-' || g, 'csr_digest', encode(sha256(convert_to(:serial::text || g, 'UTF8')), 'base64'),
      'renewed_from', null, 'at', now(), 'actor', ${text(audit.actor)}, 'action', ${text(audit.action)}, 'detail', (${text(audit.detail)})::jsonb,
      'use_issuer', ${text(cert.token_issuer)}, 'use_jti', :jti::text || '-' || g, 'use_expires', now() + interval '5 minutes')`;
    const statement = RECORD_ISSUANCES.replace('$1::jsonb', `(select jsonb_agg(${row}) from generate_series(1, ${rows}) g)`);
    // One line: pgbench reads a script's SQL up to the semicolon.
    return `\\set serial random(1, 4611686018427387903)\n\\set jti random(1, 9223372036854775806)\n${statement.replace(/\s+/g, ' ')};\n`;
  } finally {
    await client.end();
  }
}

/** pgbench with `clients` connections (two threads) for `seconds`, one transaction per statement. */
export async function drivePgbench(url: string, clients: number, seconds: number, script: string): Promise<PgbenchRun> {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-pgbench-'));
  try {
    const file = join(dir, 'issue.sql');
    writeFileSync(file, script);
    const command = `cd ${dir} && pgbench -n -M prepared -c ${clients} -j 2 -T ${seconds} -l --log-prefix=tx -f ${file} '${url}'`;
    const { code, out, cpuSeconds } = await runTimed(command);
    const processed = /number of transactions actually processed: (\d+)/.exec(out);
    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
    if (code !== 0 || !processed || !tps) throw new Error(`pgbench failed (exit ${code}):\n${out}`);
    const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
    // The per-transaction log: client, transaction, latency (µs), script, epoch, µs.
    const latencies: number[] = [];
    for (const log of readdirSync(dir).filter((f) => f.startsWith('tx.'))) {
      for (const line of readFileSync(join(dir, log), 'utf8').split('\n')) {
        const us = Number(line.split(' ')[2]);
        if (line && Number.isFinite(us)) latencies.push(us / 1000);
      }
    }
    latencies.sort((a, b) => a - b);
    const transactions = Number(processed[1]);
    return {
      transactions,
      failed,
      elapsed: transactions / Number(tps[1]),
      p50ms: percentile(latencies, 50),
      p99ms: percentile(latencies, 99),
      p999ms: percentile(latencies, 99.9),
      cpuSeconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
