/**
 * Fleet view benchmark (a script, not a test): GET /v1/fleet and GET /v1/fleet/summary through
 * the running service (a child process on a fresh Postgres database) over N certificates (default
 * 1,000,000) of N/5 identities, and the plans Postgres runs them with.
 *
 *   npm run bench:fleet -- [--count 1000000] [--runs 5] [--deep 50]
 *
 * Postgres only (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres). The
 * certificates are one real issuance through the API and copies of its row made by one
 * INSERT … SELECT over generate_series: five per identity, 24 hours each, each renewed 16 hours
 * after the one before, the newest of 80 % of the identities not yet due, 5 % inside their
 * renewal window, 5 % past it, 7 % expired (up to 30 days ago) and 3 % revoked; renewal-info
 * polls for half of the identities and 2,000 refusals in the audit trail. Then VACUUM ANALYZE
 * (what autovacuum does on its own), so that the index-only scans see an all-visible table.
 *
 * Prints, for each request: the fastest, median and slowest of --runs answers (ms); the first
 * page, filtered pages, a page of one namespace, pages --deep thousands of identities into a
 * cursor walk, the summary; then EXPLAIN (ANALYZE, BUFFERS) of the page and count statements
 * exactly as the store sends them, and the indexes they use. Figures go to .bench/fleet-<time>.json.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PgDialect } from 'drizzle-orm/pg-core';
import { MONITOR_DEFAULTS } from '../../src/config.js';
import { fleetCountStatement, fleetPageStatement } from '../../src/store/fleet.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { withPg } from '../setup/database.js';
import { createTestPki } from '../setup/pki.js';
import { benchIssuer, percentile, startBenchServer } from './support.js';

const { values } = parseArgs({ options: { count: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '5' }, deep: { type: 'string', default: '50' } } });
const count = Number(values.count);
const runs = Number(values.runs);
const deep = Number(values.deep);
if (!Number.isInteger(count) || count < 5 || count % 5 !== 0) throw new Error('--count is a positive multiple of 5');
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(deep) || deep < 1) throw new Error('--runs and --deep are positive integers');
const identities = count / 5;

const ADMIN = 'spiffe://example.org/admin';
const TEMPLATE = 'spiffe://example.org/ns/bench/sa/template';
const rules = { warningAt: MONITOR_DEFAULTS.warningAt, criticalAt: MONITOR_DEFAULTS.criticalAt, criticalRemainingMs: MONITOR_DEFAULTS.criticalRemaining * 1000, renewBy: new Map<string, Date>() };

/** Five certificates per identity; the bucket b = (i · 7919) mod 100 decides the newest one's age. */
const SEED = `
insert into certificates (serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, status, revoked_at, revocation_reason, der, fingerprint)
select s.serial, t.issuer_key_id, s.identity, t.sans, t.dns_names, s.nb, s.nb + interval '24 hours',
  case when s.revoked then 'revoked' else 'valid' end, case when s.revoked then s.nb + interval '1 hour' end,
  case when s.revoked then 'superseded' end, t.der, s.serial
from certificates t, (
  select md5(i::text || '/' || k::text) || lpad(to_hex(k), 8, '0') as serial,
    'spiffe://example.org/ns/ns' || (i % 500) || '/sa/sa' || i as identity,
    now() - (case when b < 80 then (i % 960) * interval '1 minute'
                  when b < 85 then interval '16 hours' + (i % 240) * interval '1 minute'
                  when b < 90 then interval '20 hours' + (i % 240) * interval '1 minute'
                  when b < 97 then interval '24 hours' + (i % 43200) * interval '1 minute'
                  else (i % 960) * interval '1 minute' end) - (4 - k) * interval '16 hours' as nb,
    (b >= 97 and k = 4) as revoked
  from generate_series(0, $2::int - 1) as i, generate_series(0, 4) as k, lateral (select (i * 7919) % 100 as b) bb
) s
where t.serial = $1`;

const POLLS = `
insert into renewal_info_polls (serial, polled_at, address)
select serial, now() - (row_number() over () % 3600) * interval '1 second', '10.0.' || (row_number() over () % 250) || '.' || (row_number() over () % 200)
from certificates where right(serial, 8) = '00000004' and ('x' || left(serial, 2))::bit(8)::int % 2 = 0`;

const REFUSALS = `
insert into audit_events (at, actor, action, serial, outcome, detail)
select now() - n * interval '1 second', 'spiffe://example.org/ns/ns' || (i % 500) || '/sa/sa' || i, 'certificate.renew', null, 'unauthorized', '{"reason": "bench"}'::jsonb
from generate_series(1, 2000) as n, lateral (select n * 37 % $1::int as i) ii`;

const dir = mkdtempSync(join(tmpdir(), 'service-ca-bench-fleet-'));
const pki = await createTestPki('p256');
const issuer = await benchIssuer(dir);
// One process, and gauges refreshed hourly: nothing of the service's own competes with the timed requests.
const server = await startBenchServer({ db: 'postgres', dir, pki, issuer, workers: 1, config: { monitor: { refresh: '1h' } } });
const figures: Record<string, unknown> = { count, identities, runs };
try {
  const api = `http://127.0.0.1:${server.apiPort}`;
  const { csrPem } = await createKeyAndCsr('p256', { dns: ['template.bench.svc'] });
  const res = await fetch(`${api}/v1/certificates`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${issuer.mint(TEMPLATE, 300)}` },
    body: JSON.stringify({ csr: csrPem, ttl: '24h' }),
  });
  if (res.status !== 201) throw new Error(`the template issuance answered ${res.status}: ${await res.text()}`);
  const template = (await res.json()) as { serial: string };

  const seeded = performance.now();
  await withPg(server.url!, async (client) => {
    await client.query(SEED, [template.serial, identities]);
    await client.query(POLLS);
    await client.query(REFUSALS, [identities]);
    await client.query('vacuum analyze certificates');
    await client.query('vacuum analyze renewal_info_polls');
    await client.query('vacuum analyze audit_events');
  });
  figures.seedMs = Math.round(performance.now() - seeded);
  console.log(`seeded ${count} certificates of ${identities} identities (and the template's) in ${figures.seedMs} ms, vacuumed and analyzed`);

  const token = issuer.mint(ADMIN, 3600);
  const get = async (path: string): Promise<{ ms: number; body: { items?: unknown[]; nextCursor?: string | null } }> => {
    const t0 = performance.now();
    const r = await fetch(`${api}${path}`, { headers: { Authorization: `Bearer ${token}` } });
    const text = await r.text();
    const ms = performance.now() - t0;
    if (r.status !== 200) throw new Error(`${path} answered ${r.status}: ${text.slice(0, 300)}`);
    return { ms, body: JSON.parse(text) as { items?: unknown[]; nextCursor?: string | null } };
  };
  const timed = async (name: string, path: string) => {
    const times: number[] = [];
    let items: number | undefined;
    for (let i = 0; i < runs; i++) {
      const { ms, body } = await get(path);
      times.push(ms);
      items = body.items?.length;
    }
    times.sort((a, b) => a - b);
    const row = { min: Math.round(times[0]!), median: Math.round(percentile(times, 50)), max: Math.round(times[times.length - 1]!), items };
    figures[name] = row;
    console.log(`  ${name.padEnd(34)} ${String(row.min).padStart(6)} ${String(row.median).padStart(6)} ${String(row.max).padStart(6)} ms${items === undefined ? '' : `  (${items} items)`}`);
  };
  console.log(`\nrequest (${runs} runs each)                 fastest median slowest`);
  await timed('first page (100)', '/v1/fleet');
  await timed('first page (1000)', '/v1/fleet?limit=1000');
  await timed('state=missedRenewal', '/v1/fleet?state=missedRenewal');
  await timed('severity=critical&limit=1000', '/v1/fleet?severity=critical&limit=1000');
  await timed('identityPrefix (one namespace)', `/v1/fleet?${new URLSearchParams({ identityPrefix: 'spiffe://example.org/ns/ns7/' })}`);
  await timed('summary', '/v1/fleet/summary');

  // A cursor walk of pages of 1000: the page --deep thousands in (each page judged at the walk's instant).
  let cursor: string | null | undefined;
  const walk: number[] = [];
  for (let page = 1; page <= deep; page++) {
    const { ms, body } = await get(`/v1/fleet?limit=1000${cursor ? `&cursor=${cursor}` : ''}`);
    walk.push(ms);
    cursor = body.nextCursor;
    if (!cursor) break;
  }
  figures.walk = { pages: walk.length, firstMs: Math.round(walk[0]!), lastMs: Math.round(walk[walk.length - 1]!), medianMs: Math.round(percentile([...walk].sort((a, b) => a - b), 50)) };
  console.log(`  cursor walk, ${walk.length} pages of 1000: page 1 ${Math.round(walk[0]!)} ms, page ${walk.length} ${Math.round(walk[walk.length - 1]!)} ms, median ${Math.round(percentile([...walk].sort((a, b) => a - b), 50))} ms`);
  await timed(`page ${walk.length + 1} of that walk`, `/v1/fleet?limit=1000&cursor=${cursor}`);

  const dialect = new PgDialect();
  const now = new Date();
  const plans: Record<string, string> = {};
  await withPg(server.url!, async (client) => {
    // Every certificate here is the template's issuer's: as retiring, its renewBy is in every row's judgement.
    const { rows: [kid] } = await client.query<{ issuer_key_id: string }>('select issuer_key_id from certificates where serial = $1', [template.serial]);
    const retiring = { ...rules, renewBy: new Map([[kid!.issuer_key_id, now]]) };
    for (const [name, statement] of [
      ['page', fleetPageStatement({ now, rules, limit: 101 })],
      ['page, its issuer retiring', fleetPageStatement({ now, rules: retiring, limit: 101 })],
      ['page, state=missedRenewal', fleetPageStatement({ now, rules, state: 'missedRenewal', limit: 101 })],
      ['page, one namespace', fleetPageStatement({ now, rules, identityPrefix: 'spiffe://example.org/ns/ns7/', limit: 101 })],
      ['counts', fleetCountStatement(now, rules)],
    ] as const) {
      const q = dialect.sqlToQuery(statement);
      const { rows } = await client.query<{ 'QUERY PLAN': string }>(`explain (analyze, buffers) ${q.sql}`, q.params);
      plans[name] = rows.map((r) => r['QUERY PLAN']).join('\n');
    }
  });
  for (const [name, plan] of Object.entries(plans)) {
    const used = [...new Set([...plan.matchAll(/(?:Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)/g)].map((m) => m[1]))];
    const seq = [...new Set([...plan.matchAll(/Seq Scan on (\w+)/g)].map((m) => m[1]))];
    console.log(`\nEXPLAIN (ANALYZE, BUFFERS) ${name}: indexes ${used.join(', ') || 'none'}${seq.length ? `; sequential scans of ${seq.join(', ')}` : ''}\n${plan}`);
  }
  figures.plans = plans;
  const root = new URL('../../', import.meta.url).pathname;
  mkdirSync(join(root, '.bench'), { recursive: true });
  writeFileSync(join(root, '.bench', `fleet-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify(figures, null, 2));
} finally {
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
