/**
 * The fleet view (docs/api.md "Fleet"): every identity's state and severity, for admins, and the
 * counts behind the gauges. The store computes them in SQL (store/fleet.ts); this module reads
 * the query, keeps the pages of one walk at one instant, and shapes the items with the renewal
 * window renewal-info answers (renewal.ts renewalWindow).
 *
 * A cursor holds the instant of its walk's first page and the last item's place in the order
 * (severity, state, distance of notAfter from that instant, identity): every page of a walk is
 * judged at the same instant, so the order does not shift under it as time passes, and pages
 * neither repeat nor skip an identity (one whose certificates change meanwhile may move).
 */
import type { Principal } from '../auth/principal.js';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import { FLEET_SEVERITIES, FLEET_STATES, type FleetCounts, type FleetPosition, type FleetRow, type FleetSeverity, type FleetState, type FleetRules, type Store } from '../store/store.js';
import { requireAdmin } from './admin.js';
import { createAuditLog } from './audit.js';
import { pageLimit, usedFilters } from './queries.js';
import type { IssuanceLimiter } from './rate-limits.js';
import { auditingRefusals } from './refusals.js';
import { renewalWindow, type RenewalWindow } from './renewal.js';
import { periodic } from './periodic.js';

export type { FleetCounts, FleetSeverity, FleetState, FleetRules };
export { FLEET_SEVERITIES, FLEET_STATES };

export interface FleetQueryText {
  state?: string | undefined;
  severity?: string | undefined;
  identityPrefix?: string | undefined;
  limit?: string | undefined;
  cursor?: string | undefined;
}

export interface FleetItem {
  identity: string;
  state: FleetState;
  severity: FleetSeverity;
  /** The certificate the state is about: the newest valid one, else the newest. */
  certificate: { serial: string; notBefore: Date; notAfter: Date; renewalInfo: RenewalWindow } | null;
  lastPoll: { at: Date; address: string | null } | null;
  lastRefusal: { at: Date; code: string } | null;
}

export interface FleetPage {
  items: FleetItem[];
  nextCursor: string | null;
}

export interface FleetService {
  list(principal: Principal, q: FleetQueryText): Promise<FleetPage>;
  summary(principal: Principal): Promise<FleetCounts>;
}

const malformed = (detail: string) => new CaError('malformed', detail);

/** Longest identity prefix, in characters (identities are at most what a token's claims build). */
export const MAX_IDENTITY_PREFIX = 1024;

interface Cursor extends FleetPosition {
  at: Date;
}

function encodeCursor(at: Date, p: FleetPosition): string {
  return Buffer.from(JSON.stringify([at.toISOString(), p.severityRank, p.stateRank, p.distance, p.identity])).toString('base64url');
}

function decodeCursor(text: string): Cursor {
  try {
    const parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8')) as unknown;
    if (!Array.isArray(parsed) || parsed.length !== 5) throw new Error('shape');
    const [t, severityRank, stateRank, distance, identity] = parsed as unknown[];
    const at = new Date(String(t));
    const rank = (v: unknown, count: number) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < count;
    if (
      typeof t !== 'string' ||
      !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(t) ||
      Number.isNaN(at.getTime()) ||
      !rank(severityRank, FLEET_SEVERITIES.length) ||
      !rank(stateRank, FLEET_STATES.length) ||
      typeof distance !== 'string' ||
      !/^\d{1,16}$/.test(distance) ||
      typeof identity !== 'string' ||
      identity.length === 0 ||
      identity.length > 16_384
    ) {
      throw new Error('values');
    }
    return { at, severityRank: severityRank as number, stateRank: stateRank as number, distance, identity };
  } catch {
    throw malformed('cursor is not one this service handed out');
  }
}

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw malformed(`${name} must be one of ${allowed.join(', ')}`);
  return value as T;
}

function itemOf(row: FleetRow, at: Date, renewBy: FleetRules['renewBy']): FleetItem {
  return {
    identity: row.identity,
    state: row.state,
    severity: row.severity,
    certificate: {
      serial: row.serial,
      notBefore: row.notBefore,
      notAfter: row.notAfter,
      renewalInfo: renewalWindow({ notBefore: row.notBefore, notAfter: row.notAfter, revokedAt: row.revokedAt }, at, renewBy.get(row.issuerKeyId)),
    },
    lastPoll: row.lastPoll,
    lastRefusal: row.lastRefusal,
  };
}

export function createFleet(deps: { store: Store; clock: Clock; rules: FleetRules; limiter?: IssuanceLimiter | undefined }): FleetService {
  const audit = createAuditLog(deps);
  // The fleet's reads and their refusals are audited as listings (an action of the audit trail);
  // a read's detail says `view: fleet`.
  const admin = (principal: Principal) => auditingRefusals(deps, principal, { action: 'certificates.list', serial: null }, async () => requireAdmin(principal));
  return {
    async list(principal, q) {
      await admin(principal);
      const limit = pageLimit(q.limit);
      const state = oneOf('state', q.state, FLEET_STATES);
      const severity = oneOf('severity', q.severity, FLEET_SEVERITIES);
      if (q.identityPrefix !== undefined && q.identityPrefix.length > MAX_IDENTITY_PREFIX) throw malformed(`identityPrefix is longer than ${MAX_IDENTITY_PREFIX} characters`);
      const cursor = q.cursor === undefined ? undefined : decodeCursor(q.cursor);
      const at = cursor?.at ?? deps.clock.now();
      const rows = await deps.store.listFleet({ now: at, rules: deps.rules, state, severity, identityPrefix: q.identityPrefix || undefined, after: cursor, limit: limit + 1 });
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      await audit.read(principal, 'certificates.list', { view: 'fleet', ...usedFilters(q) });
      return { items: items.map((r) => itemOf(r, at, deps.rules.renewBy)), nextCursor: rows.length > limit && last ? encodeCursor(at, last) : null };
    },
    async summary(principal) {
      await admin(principal);
      return deps.store.countFleet(deps.clock.now(), deps.rules);
    },
  };
}

/**
 * The gauges' counts, kept fresh on a timer: every `refreshSeconds` each process asks the store
 * for the shared counts (computed by one process of all those on the database, store/fleet.ts
 * sharedFleetCounts) and hands them to `report`.
 */
export function createFleetMonitor(deps: {
  store: Pick<Store, 'sharedFleetCounts'>;
  clock: Clock;
  rules: FleetRules;
  refreshSeconds: number;
  report: (counts: FleetCounts) => void;
  onError?: (err: unknown) => void;
}) {
  const tick = async (): Promise<void> => {
    try {
      const stored = await deps.store.sharedFleetCounts(deps.clock.now(), deps.rules, deps.refreshSeconds);
      if (stored) deps.report(stored.counts);
    } catch (err) {
      deps.onError?.(err);
    }
  };
  const loop = periodic(tick, deps.refreshSeconds * 1000);
  return {
    /** Refreshes now (tests; the timer does it every refreshSeconds). */
    refresh: loop.run,
    start: loop.start,
    stop: loop.stop,
  };
}

export type FleetMonitor = ReturnType<typeof createFleetMonitor>;
