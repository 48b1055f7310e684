/**
 * The admin listing (docs/api.md "Admin"): filters, `limit` 1..1000 (default 100), and an opaque
 * cursor holding the last item's (notBefore, serial), so pages neither repeat nor skip rows.
 */
import type { Principal } from '../auth/principal.js';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import type { CertificateStatus } from '../model.js';
import type { Store } from '../store/store.js';
import { requireAdmin } from './admin.js';
import { createAuditLog } from './audit.js';
import { pageLimit, queryTime, usedFilters } from './queries.js';
import type { IssuanceLimiter } from './rate-limits.js';
import { auditingRefusals } from './refusals.js';
import { viewOf, type CertificateView } from './views.js';

export interface ListQuery {
  identity?: string | undefined;
  status?: string | undefined;
  dns?: string | undefined;
  expiresBefore?: string | undefined;
  limit?: string | undefined;
  cursor?: string | undefined;
}

export interface Page {
  items: CertificateView[];
  nextCursor: string | null;
}

const malformed = (detail: string) => new CaError('malformed', detail);
const STATUSES: ReadonlySet<string> = new Set(['valid', 'revoked', 'expired']);

function encodeCursor(notBefore: Date, serial: string): string {
  return Buffer.from(JSON.stringify([notBefore.toISOString(), serial])).toString('base64url');
}

function decodeCursor(cursor: string): { notBefore: Date; serial: string } {
  try {
    const [t, s] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [unknown, unknown];
    const notBefore = new Date(String(t));
    if (typeof t !== 'string' || !/^\d{4}-\d{2}-\d{2}T/.test(t) || Number.isNaN(notBefore.getTime()) || typeof s !== 'string' || !/^[0-9a-f]{2,40}$/.test(s)) throw new Error('bad');
    return { notBefore, serial: s };
  } catch {
    throw malformed('cursor is not one this service handed out');
  }
}

export function createLister(deps: { store: Store; clock: Clock; limiter?: IssuanceLimiter }) {
  const audit = createAuditLog(deps);
  return {
    async list(principal: Principal, q: ListQuery): Promise<Page> {
      await auditingRefusals(deps, principal, { action: 'certificates.list', serial: null }, async () => requireAdmin(principal));
      const limit = pageLimit(q.limit);
      if (q.status !== undefined && !STATUSES.has(q.status)) throw malformed('status must be valid, revoked or expired');
      const expiresBefore = queryTime('expiresBefore', q.expiresBefore);
      const now = deps.clock.now();
      const rows = await deps.store.listCertificates(
        {
          identity: q.identity,
          status: q.status as CertificateStatus | undefined,
          dns: q.dns,
          expiresBefore,
          after: q.cursor ? decodeCursor(q.cursor) : undefined,
          limit: limit + 1,
        },
        now,
      );
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      await audit.read(principal, 'certificates.list', usedFilters(q));
      return { items: items.map((r) => viewOf(r, now)), nextCursor: rows.length > limit && last ? encodeCursor(last.notBefore, last.serial) : null };
    },
  };
}

export type Lister = ReturnType<typeof createLister>;
