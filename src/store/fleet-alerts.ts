/**
 * The fleet's alerts (monitor.webhook; policy/fleet-alerts.ts decides and delivers): rows of
 * fleet_alerts opened when an identity enters `missedRenewal` state or `critical` severity and
 * resolved when it leaves, and the one-row claim (fleet_alert_checks) that lets one process of all
 * those on the database check at a time.
 *
 * Deliveries are marked with updates guarded on the column being null: a row is marked sent
 * once, by whichever process had its delivery answered with a 2xx first.
 */
import { sql } from 'drizzle-orm';
import type { Database, Db } from './database.js';
import { judged, type FleetRules } from './fleet.js';
import { asDate, rawRows } from './rows.js';

export type FleetAlertKind = 'missedRenewal' | 'critical';

/** One alert row waiting for a delivery: its firing (resolvedAt null) or its resolution. */
export interface PendingFleetAlert {
  identity: string;
  alert: FleetAlertKind;
  startedAt: Date;
  resolvedAt: Date | null;
}

export interface FleetAlertChanges {
  opened: number;
  resolved: number;
}

const seconds = (s: number) => sql`${s}::float8 * interval '1 second'`;

/**
 * Claims the check for `holder` until `leaseSeconds` from now (database time), when the last
 * claim has lapsed (or was left to lapse by its holder). True when claimed.
 */
export async function claimFleetAlertCheck(db: Db, holder: string, leaseSeconds: number): Promise<boolean> {
  const rows = await rawRows<{ id: number }>(
    db,
    sql`insert into fleet_alert_checks (id, claimed_until, holder) values (1, now() + ${seconds(leaseSeconds)}, ${holder})
        on conflict (id) do update set claimed_until = excluded.claimed_until, holder = excluded.holder
        where fleet_alert_checks.claimed_until <= now()
        returning id`,
  );
  return rows.length > 0;
}

/**
 * Moves holder's claim to `seconds` from now: longer before a delivery, shorter when done (the
 * next check's due time). False when holder no longer holds it (its claim lapsed and another
 * process took it).
 */
export async function extendFleetAlertCheck(db: Db, holder: string, leaseSeconds: number): Promise<boolean> {
  const rows = await rawRows<{ id: number }>(
    db,
    sql`update fleet_alert_checks set claimed_until = now() + ${seconds(leaseSeconds)} where id = 1 and holder = ${holder} returning id`,
  );
  return rows.length > 0;
}

/**
 * Compares the identities in `missedRenewal` state or `critical` severity at `now` with the open
 * alert rows, in one statement: opens a row (started at now) for each new one, resolves (at now)
 * the open rows of identities that left. At most one open row per identity and alert (the
 * partial unique index fleet_alerts_open_idx).
 */
export async function syncFleetAlerts(database: Database, now: Date, rules: FleetRules): Promise<FleetAlertChanges> {
  const at = sql`${now.toISOString()}::timestamptz`;
  const [row] = await database.transaction(
    (tx) =>
      rawRows<{ opened: number | string; resolved: number | string }>(
        tx,
        sql`with ${judged(now, rules, undefined)}, alerting as (
              select identity, 'missedRenewal'::text as alert from judged where state_rank = 1
              union all
              select identity, 'critical'::text as alert from judged where severity_rank = 0
            ), resolved as (
              update fleet_alerts a set resolved_at = ${at}
              where a.resolved_at is null
                and not exists (select 1 from alerting c where c.identity = a.identity and c.alert = a.alert)
              returning 1
            ), opened as (
              insert into fleet_alerts (identity, alert, started_at)
              select identity, alert, ${at} from alerting
              on conflict do nothing
              returning 1
            )
            select (select count(*) from opened) as opened, (select count(*) from resolved) as resolved`,
      ),
    undefined,
    { long: true },
  );
  return { opened: Number(row?.opened ?? 0), resolved: Number(row?.resolved ?? 0) };
}

/**
 * Rows waiting for a delivery, oldest first: open rows whose firing was not delivered, and
 * resolved rows whose firing was delivered and resolution was not (a row resolved before its
 * firing was ever delivered is never sent: nobody was told it began).
 */
export async function pendingFleetAlerts(db: Db, limit: number): Promise<PendingFleetAlert[]> {
  const rows = await rawRows<{ identity: string; alert: FleetAlertKind; started_at: unknown; resolved_at: unknown }>(
    db,
    sql`select identity, alert, started_at, resolved_at from fleet_alerts
        where (resolved_at is null and fired_sent_at is null)
           or (resolved_at is not null and fired_sent_at is not null and resolved_sent_at is null)
        order by started_at, identity, alert
        limit ${limit}::int`,
  );
  return rows.map((r) => ({ identity: r.identity, alert: r.alert, startedAt: asDate(r.started_at), resolvedAt: r.resolved_at === null ? null : asDate(r.resolved_at) }));
}

/**
 * Marks deliveries done (after a 2xx): the firing of open rows, the resolution of resolved ones,
 * each only if not marked yet. Returns the rows this call marked.
 */
export async function markFleetAlertsSent(db: Db, alerts: PendingFleetAlert[], sentAt: Date): Promise<number> {
  if (alerts.length === 0) return 0;
  const batch = JSON.stringify(alerts.map((a) => ({ identity: a.identity, alert: a.alert, started_at: a.startedAt.toISOString(), resolved: a.resolvedAt !== null })));
  const rows = await rawRows<{ identity: string }>(
    db,
    sql`update fleet_alerts a set
          fired_sent_at = case when x.resolved then a.fired_sent_at else ${sentAt.toISOString()}::timestamptz end,
          resolved_sent_at = case when x.resolved then ${sentAt.toISOString()}::timestamptz else a.resolved_sent_at end
        from jsonb_to_recordset(${batch}::jsonb) as x(identity text, alert text, started_at timestamptz, resolved boolean)
        where a.identity = x.identity and a.alert = x.alert and a.started_at = x.started_at
          and ((not x.resolved and a.fired_sent_at is null) or (x.resolved and a.resolved_at is not null and a.resolved_sent_at is null))
        returning a.identity`,
  );
  return rows.length;
}
