/**
 * The fleet (docs/api.md "Fleet"): every identity's state, computed by Postgres at one instant
 * from the certificates alone, so that any replica answers the same.
 *
 * Per identity (in byte order, collation "C": the same on every database):
 * - its newest certificate (by notBefore, then serial), one pass over certificates_fleet_idx,
 *   an index-only scan;
 * - where that one is not valid at `now` (revoked or expired), the newest that still is, one
 *   probe of the same index; the identity's state comes from the certificate found (valid: its
 *   renewal window decides; none valid: `revoked` when the newest is revoked, else `expired`);
 * - the renewal window is renewal-info's (policy/renewal.ts renewalWindow): start =
 *   notBefore + round(⅔·L), end = notBefore + round(⅚·L), in milliseconds, L = notAfter −
 *   notBefore, computed in double precision with the same operations as Math.round((L·2)/3)
 *   (floor(x + 0.5)); a test holds the two to the millisecond at both edges; a certificate of a
 *   retiring issuer with renewBy has its window closed by then, as renewal-info tells its holder;
 * - severity from the share of the lifetime used and the time left (FleetRules), its
 *   thresholds rounded to the millisecond like the window's, so that the default warning (⅚)
 *   begins at the very millisecond the window ends; a certificate whose window renewBy closed
 *   early is a warning from the window's end on.
 * - a revoked identity's severity is `none`: its certificate was ended on purpose and expires
 *   no more; an expired one is `critical` (no time left).
 * Order (needing attention first): severity, then state (expired, missedRenewal, revoked,
 * renewalDue, healthy), then the distance of notAfter from now (the soonest expiry, or for
 * expired identities the most recent), then the identity.
 * Only the page's rows get their last poll (a primary-key probe) and last refusal (one probe of
 * audit_events_refusals_idx).
 */
import { sql, type SQL } from 'drizzle-orm';
import type { Database, Db } from './database.js';
import { asDate, rawRows } from './rows.js';

export type FleetState = 'healthy' | 'renewalDue' | 'missedRenewal' | 'expired' | 'revoked';
export type FleetSeverity = 'none' | 'warning' | 'critical';

/** States in the order "needing attention first" ranks them (the rank is the position). */
export const FLEET_STATES: readonly FleetState[] = ['expired', 'missedRenewal', 'revoked', 'renewalDue', 'healthy'];
/** Severities, most severe first (the rank is the position). */
export const FLEET_SEVERITIES: readonly FleetSeverity[] = ['critical', 'warning', 'none'];

/**
 * How identities are judged: when a valid certificate's identity is `warning` or `critical`
 * (monitor.* in config.ts), and the renewBy of retiring issuers (ca.issuers[].renewBy).
 */
export interface FleetRules {
  /** Share of the lifetime used from which it is a warning (default ⅚: the window's end). */
  warningAt: number;
  /** Share of the lifetime used from which it is critical. */
  criticalAt: number;
  /** Time left (ms) under which it is critical. */
  criticalRemainingMs: number;
  /** Issuer key id → its renewBy: the windows of that issuer's certificates close by then. */
  renewBy: ReadonlyMap<string, Date>;
}

/** A place in the fleet's order: what a cursor holds (distance: milliseconds between notAfter and now, as decimal text). */
export interface FleetPosition {
  severityRank: number;
  stateRank: number;
  distance: string;
  identity: string;
}

export interface FleetQuery {
  now: Date;
  rules: FleetRules;
  state?: FleetState | undefined;
  severity?: FleetSeverity | undefined;
  identityPrefix?: string | undefined;
  after?: FleetPosition | undefined;
  limit: number;
}

export interface FleetRow extends FleetPosition {
  identity: string;
  state: FleetState;
  severity: FleetSeverity;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  revokedAt: Date | null;
  issuerKeyId: string;
  lastPoll: { at: Date; address: string | null } | null;
  lastRefusal: { at: Date; code: string } | null;
}

export interface FleetCounts {
  states: Record<FleetState, number>;
  severities: Record<FleetSeverity, number>;
}

/** The audit actions whose refusals say an identity could not get a certificate. */
const REFUSED_ACTIONS = sql.raw(`'certificate.issue', 'certificate.renew', 'certificate.renew.reuse'`);

const time = (d: Date) => sql`${d.toISOString()}::timestamptz`;

/**
 * The least string above every string that starts with prefix, in code point order (which is
 * byte order in UTF-8, collation "C"): the prefix with its last code point raised by one
 * (skipping the surrogates); undefined when there is none (a prefix of U+10FFFF only).
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const points = [...prefix];
  while (points.length > 0) {
    const last = points.pop()!.codePointAt(0)!;
    if (last < 0x10ffff) return points.join('') + String.fromCodePoint(last === 0xd7ff ? 0xe000 : last + 1);
  }
  return undefined;
}

function prefixFilter(prefix: string | undefined): SQL {
  if (!prefix) return sql`true`;
  const upper = prefixUpperBound(prefix);
  return sql`c.identity collate "C" >= ${prefix} collate "C" ${upper === undefined ? sql`` : sql`and c.identity collate "C" < ${upper} collate "C"`} and starts_with(c.identity, ${prefix})`;
}

/**
 * `judged`: one row per identity (identity, serial, not_before, not_after, revoked_at,
 * state_rank, severity_rank, distance), at `now`.
 */
export function judged(now: Date, rules: FleetRules, identityPrefix: string | undefined): SQL {
  const nowMs = now.getTime();
  // A retiring issuer's renewBy, in milliseconds, for each certificate (null for the others).
  const renewBy = rules.renewBy.size === 0
    ? sql`null::float8`
    : sql`case h.issuer_key_id ${sql.join([...rules.renewBy].map(([kid, at]) => sql`when ${kid} then ${at.getTime()}::float8`), sql` `)} end`;
  return sql`newest as (
      select distinct on (c.identity collate "C") c.identity, c.serial, c.not_before, c.not_after, c.revoked_at, c.issuer_key_id
      from certificates c
      where ${prefixFilter(identityPrefix)}
      order by c.identity collate "C", c.not_before desc nulls last, c.serial desc nulls last
    ), held as (
      select n.identity, coalesce(v.serial, n.serial) as serial, coalesce(v.not_before, n.not_before) as not_before,
        coalesce(v.not_after, n.not_after) as not_after, case when v.serial is null then n.revoked_at end as revoked_at,
        coalesce(v.issuer_key_id, n.issuer_key_id) as issuer_key_id
      from newest n left join lateral (
        select c.serial, c.not_before, c.not_after, c.issuer_key_id from certificates c
        where (n.revoked_at is not null or n.not_after <= ${time(now)})
          and c.identity collate "C" = n.identity collate "C" and c.revoked_at is null and c.not_after > ${time(now)}
        order by c.identity collate "C", c.not_before desc nulls last, c.serial desc nulls last
        limit 1
      ) v on true
    ), judged as (
      -- offset 0 keeps a subquery a step of its own: each time and rank is computed once per
      -- identity, not again wherever a later expression, the filters or the sort name it. Times
      -- are milliseconds in double precision, exact for the whole seconds of certificates and
      -- the milliseconds of now; the window's edges (opens, closes) are offsets from notBefore.
      select * from (
        select t.identity, t.serial, t.not_before, t.not_after, t.revoked_at, t.issuer_key_id,
          case when t.revoked_at is not null then 2
               when t.remaining <= 0 then 0
               when t.elapsed < t.opens then 4
               when t.elapsed < t.closes then 3
               else 1 end as state_rank,
          case when t.revoked_at is not null then 2
               when t.remaining < ${rules.criticalRemainingMs}::float8 or t.elapsed >= floor(t.life * ${rules.criticalAt}::float8 + 0.5) then 0
               when t.elapsed >= floor(t.life * ${rules.warningAt}::float8 + 0.5) or (t.renew_by is not null and t.elapsed >= t.closes) then 1
               else 2 end as severity_rank,
          abs(t.remaining)::bigint as distance
        from (
          -- A renewBy before the usual end closes the window there (not before notBefore), and
          -- the window keeps its width where it can: policy/renewal.ts renewalWindow.
          select w.*,
            case when w.renew_by is null then w.usual_opens else greatest(0, least(w.usual_opens, w.renew_by - (w.usual_closes - w.usual_opens))) end as opens,
            coalesce(w.renew_by, w.usual_closes) as closes
          from (
            select u.*, case when u.rb < u.nb + u.usual_closes then greatest(0, u.rb - u.nb) end as renew_by
            from (
              select e.*, ${nowMs}::float8 - e.nb as elapsed, e.na - e.nb as life, e.na - ${nowMs}::float8 as remaining,
                floor((e.na - e.nb) * 2 / 3 + 0.5) as usual_opens, floor((e.na - e.nb) * 5 / 6 + 0.5) as usual_closes
              from (select h.*, date_part('epoch', h.not_before) * 1000 as nb, date_part('epoch', h.not_after) * 1000 as na, ${renewBy} as rb from held h offset 0) e
            ) u
          ) w
        ) t
        offset 0
      ) j
    )`;
}

interface RawFleetRow {
  identity: string;
  serial: string;
  not_before: unknown;
  not_after: unknown;
  revoked_at: unknown;
  issuer_key_id: string;
  state_rank: number | string;
  severity_rank: number | string;
  distance: string;
  polled_at: unknown;
  address: string | null;
  refused_at: unknown;
  refusal: string | null;
}

/** The statement of one page (exported for the benchmark's EXPLAIN). */
export function fleetPageStatement(q: FleetQuery): SQL {
  const where: SQL[] = [sql`true`];
  if (q.state !== undefined) where.push(sql`state_rank = ${FLEET_STATES.indexOf(q.state)}::int`);
  if (q.severity !== undefined) where.push(sql`severity_rank = ${FLEET_SEVERITIES.indexOf(q.severity)}::int`);
  if (q.after) {
    const a = q.after;
    where.push(sql`(severity_rank, state_rank, distance, identity collate "C") > (${a.severityRank}::int, ${a.stateRank}::int, ${a.distance}::bigint, ${a.identity} collate "C")`);
  }
  return sql`with ${judged(q.now, q.rules, q.identityPrefix)}, page as (
        select * from judged where ${sql.join(where, sql` and `)}
        order by severity_rank, state_rank, distance, identity collate "C"
        limit ${q.limit}::int
      )
      select p.identity, p.serial, p.not_before, p.not_after, p.revoked_at, p.issuer_key_id, p.state_rank, p.severity_rank, p.distance::text as distance,
        poll.polled_at, poll.address, r.at as refused_at, r.outcome as refusal
      from page p
      left join renewal_info_polls poll on poll.serial = p.serial
      left join lateral (
        select a.at, a.outcome from audit_events a
        where a.actor = p.identity and a.outcome <> 'success' and a.action in (${REFUSED_ACTIONS})
        order by a.id desc limit 1
      ) r on true
      order by p.severity_rank, p.state_rank, p.distance, p.identity collate "C"`;
}

/** One page of the fleet, needing attention first: severity, state, nearest notAfter, identity. */
export async function listFleet(db: Db, q: FleetQuery): Promise<FleetRow[]> {
  const rows = await rawRows<RawFleetRow>(db, fleetPageStatement(q));
  return rows.map((r) => {
    const stateRank = Number(r.state_rank);
    const severityRank = Number(r.severity_rank);
    return {
      identity: r.identity,
      state: FLEET_STATES[stateRank]!,
      severity: FLEET_SEVERITIES[severityRank]!,
      serial: r.serial,
      notBefore: asDate(r.not_before),
      notAfter: asDate(r.not_after),
      revokedAt: r.revoked_at === null ? null : asDate(r.revoked_at),
      issuerKeyId: r.issuer_key_id,
      lastPoll: r.polled_at === null ? null : { at: asDate(r.polled_at), address: r.address },
      lastRefusal: r.refused_at === null || r.refusal === null ? null : { at: asDate(r.refused_at), code: r.refusal },
      severityRank,
      stateRank,
      distance: r.distance,
    };
  });
}

/** The statement of the counts (exported for the benchmark's EXPLAIN). */
export function fleetCountStatement(now: Date, rules: FleetRules, identityPrefix?: string): SQL {
  return sql`with ${judged(now, rules, identityPrefix)} select state_rank, severity_rank, count(*) as n from judged group by 1, 2`;
}

/** Identities by state and by severity at `now` (every state and severity present, 0 included). */
export async function countFleet(db: Db, now: Date, rules: FleetRules, identityPrefix?: string): Promise<FleetCounts> {
  const rows = await rawRows<{ state_rank: number | string; severity_rank: number | string; n: number | string }>(db, fleetCountStatement(now, rules, identityPrefix));
  const counts: FleetCounts = {
    states: { healthy: 0, renewalDue: 0, missedRenewal: 0, expired: 0, revoked: 0 },
    severities: { none: 0, warning: 0, critical: 0 },
  };
  for (const r of rows) {
    counts.states[FLEET_STATES[Number(r.state_rank)]!] += Number(r.n);
    counts.severities[FLEET_SEVERITIES[Number(r.severity_rank)]!] += Number(r.n);
  }
  return counts;
}

/** One certificate's last renewal-info poll as a process saw it. */
export interface Poll {
  serial: string;
  at: Date;
  address: string | null;
}

/**
 * Writes a batch of polls, one row per serial, in one statement: a row moves only forward in
 * time (a replica flushing an older poll late changes nothing), and rows are written in serial
 * order, so that two replicas flushing overlapping batches lock them in the same order and never
 * deadlock. Serials no certificate has are skipped. Returns the rows written.
 */
export async function recordPolls(db: Db, polls: Poll[]): Promise<number> {
  if (polls.length === 0) return 0;
  const batch = JSON.stringify(polls.map((p) => ({ serial: p.serial, at: p.at.toISOString(), address: p.address })));
  const rows = await rawRows<{ serial: string }>(
    db,
    sql`insert into renewal_info_polls (serial, polled_at, address)
        select x.serial, x.at, x.address from jsonb_to_recordset(${batch}::jsonb) as x(serial text, at timestamptz, address text)
        join certificates c on c.serial = x.serial
        order by x.serial
        on conflict (serial) do update set polled_at = excluded.polled_at, address = excluded.address
        where renewal_info_polls.polled_at < excluded.polled_at
        returning serial`,
  );
  return rows.length;
}

/** The last counts stored for the gauges, and when they were computed. */
export interface StoredFleetCounts {
  counts: FleetCounts;
  computedAt: Date;
}

/**
 * The gauges' counts, shared by every process on the database: the caller that finds the stored
 * counts older than `refreshSeconds` (less a fifth, for timers that tick a little early) claims
 * the computation with a guarded upsert, computes them on the long-query pool and stores them;
 * every caller then gets the stored counts (undefined until a first computation has ended).
 */
export async function sharedFleetCounts(database: Database, now: Date, rules: FleetRules, refreshSeconds: number): Promise<StoredFleetCounts | undefined> {
  const { db } = database;
  const claimed = await rawRows<{ id: number }>(
    db,
    sql`insert into fleet_summary (id, computed_at) values (1, now())
        on conflict (id) do update set computed_at = now()
        where fleet_summary.computed_at <= now() - ${refreshSeconds * 0.8}::numeric * interval '1 second'
        returning id`,
  );
  if (claimed.length > 0) {
    const counts = await database.transaction((tx) => countFleet(tx, now, rules), undefined, { long: true });
    await db.execute(sql`update fleet_summary set counts = ${JSON.stringify(counts)}::jsonb where id = 1`);
  }
  const [row] = await rawRows<{ counts: FleetCounts | string | null; computed_at: unknown }>(db, sql`select counts, computed_at from fleet_summary where id = 1`);
  if (!row || row.counts === null) return undefined;
  const counts = typeof row.counts === 'string' ? (JSON.parse(row.counts) as FleetCounts) : row.counts;
  return { counts, computedAt: asDate(row.computed_at) };
}
