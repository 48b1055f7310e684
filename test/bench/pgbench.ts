/**
 * The database alone: pgbench (PostgreSQL's own load generator, from the Postgres client
 * package) runs the service's issuance statement (src/store/issuances.ts INSERT_WITH_TOKEN, its
 * text with the values written in: a real issuance's, and for each transaction its own serial,
 * fingerprint and token id; prepared once per connection as the service does, though pgbench
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
import { INSERT_WITH_TOKEN } from '../../src/store/issuances.js';
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

/** The issuance statement as a pgbench script, values from one certificate and audit row of the database. */
export async function issuanceScript(url: string): Promise<string> {
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
    // Parameter n of INSERT_WITH_TOKEN (see certificateParams and recordIssuance).
    const values: Record<number, string> = {
      1: `lpad(to_hex(:serial::bigint), 40, '0')`,
      2: text(cert.issuer_key_id),
      3: text(cert.identity),
      4: text(cert.sans),
      5: text(cert.dns_names),
      6: 'now()',
      7: `now() + interval '24 hours'`,
      8: `decode('${cert.der}', 'hex')`,
      9: `md5(:serial::text) || md5(:jti::text)`,
      10: text(cert.token_issuer),
      11: ':jti::text',
      12: `sha256(convert_to(:serial::text, 'UTF8'))`,
      13: 'null',
      14: 'now()',
      15: text(audit.actor),
      16: text(audit.action),
      17: text(audit.detail),
      18: text(cert.token_issuer),
      19: ':jti::text',
      20: `now() + interval '5 minutes'`,
    };
    const statement = INSERT_WITH_TOKEN.replace(/\$(\d+)/g, (_, n: string) => {
      const v = values[Number(n)];
      if (v === undefined) throw new Error(`no value for $${n}`);
      return `(${v})`;
    });
    // One line: pgbench reads a script's SQL up to the semicolon.
    return `\\set serial random(1, 9223372036854775806)\n\\set jti random(1, 9223372036854775806)\n${statement.replace(/\s+/g, ' ')};\n`;
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
