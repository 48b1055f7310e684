/**
 * The audit trail's rules: which actions leave a row besides the ones written with the action
 * itself (refusals, admin reads), and the admin view GET /v1/audit with filters and an opaque
 * cursor (newest first, by row id, so pages neither repeat nor skip rows).
 */
import type { AuditAction } from '../audit/chain.js';
import type { Principal } from '../auth/principal.js';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import type { StoredAuditEvent, Store } from '../store/store.js';
import { requireAdmin } from './admin.js';
import type { IssuanceLimiter } from './rate-limits.js';
import { auditingRefusals } from './refusals.js';
import { pageLimit, queryTime, usedFilters } from './queries.js';
import { normalizeSerial } from './serials.js';

export const AUDIT_ACTIONS: readonly AuditAction[] = [
  'certificate.issue',
  'certificate.renew',
  'certificate.renew.reuse',
  'certificate.revoke',
  'identity.revoke',
  'certificates.list',
  'audit.read',
  'acme.binding',
  'acme.account',
];

export interface AuditQuery {
  actor?: string | undefined;
  action?: string | undefined;
  serial?: string | undefined;
  outcome?: string | undefined;
  since?: string | undefined;
  until?: string | undefined;
  limit?: string | undefined;
  cursor?: string | undefined;
}

/** An audit row as the store keeps it (chain fields null until sealed). */
export type AuditRecord = StoredAuditEvent;

export interface AuditPage {
  items: StoredAuditEvent[];
  nextCursor: string | null;
}

const malformed = (detail: string) => new CaError('malformed', detail);

function decodeCursor(cursor: string): number {
  const id = Number(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!Number.isSafeInteger(id) || id < 1) throw malformed('cursor is not one this service handed out');
  return id;
}

export function createAuditLog(deps: { store: Store; clock: Clock; limiter?: IssuanceLimiter }) {
  const { store, clock } = deps;
  return {
    /** Records an admin's read (the listing of certificates); best effort, like refusals. */
    async read(principal: Principal, action: AuditAction, detail: Record<string, unknown>): Promise<void> {
      await store.appendAudit([{ at: clock.now(), actor: principal.identity, action, serial: null, outcome: 'success', detail }]).catch(() => {});
    },

    async list(principal: Principal, q: AuditQuery): Promise<AuditPage> {
      await auditingRefusals(deps, principal, { action: 'audit.read', serial: null }, async () => requireAdmin(principal));
      const limit = pageLimit(q.limit);
      if (q.action !== undefined && !AUDIT_ACTIONS.includes(q.action as AuditAction)) throw malformed(`action must be one of ${AUDIT_ACTIONS.join(', ')}`);
      const rows = await store.listAudit({
        actor: q.actor,
        action: q.action as AuditAction | undefined,
        serial: q.serial === undefined ? undefined : normalizeSerial(q.serial),
        outcome: q.outcome,
        since: queryTime('since', q.since),
        until: queryTime('until', q.until),
        before: q.cursor === undefined ? undefined : decodeCursor(q.cursor),
        limit: limit + 1,
      });
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      await this.read(principal, 'audit.read', usedFilters(q));
      return { items, nextCursor: rows.length > limit && last ? Buffer.from(String(last.id)).toString('base64url') : null };
    },
  };
}

export type AuditLog = ReturnType<typeof createAuditLog>;
