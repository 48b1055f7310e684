/**
 * Refused actions leave an audit row too (the successful ones are written with the action
 * itself): its outcome is the error code. What a refusal stores is bounded, since its detail can
 * echo the request (a 40,000-character name in an unsigned CSR): about 1 KiB of detail per row.
 */
import type { AuditAction } from '../audit/chain.js';
import type { Principal } from '../auth/principal.js';
import type { Clock } from '../clock.js';
import { isCaError } from '../errors.js';
import type { Store } from '../store/store.js';
import type { IssuanceLimiter } from './rate-limits.js';

/** Characters of a refusal's reason kept in its audit row. */
export const MAX_REFUSAL_REASON = 1000;

function bounded(text: string): string {
  return text.length <= MAX_REFUSAL_REASON ? text : `${text.slice(0, MAX_REFUSAL_REASON)}… (${text.length - MAX_REFUSAL_REASON} more characters not kept)`;
}

/**
 * Records a refused action. Best effort: when the database is what refused, there is nowhere to
 * write, and the refusal itself must still reach the caller. Rate-limited requests leave no row:
 * a flood would otherwise write one per request.
 */
export async function auditRefusal(store: Store, clock: Clock, principal: Principal, action: AuditAction, serial: string | null, err: unknown): Promise<void> {
  if (!isCaError(err) || err.kind === 'unavailable' || err.kind === 'rateLimited') return;
  await store
    .appendAudit([{ at: clock.now(), actor: principal.identity, action, serial, outcome: err.kind, detail: { issuer: principal.issuer, reason: bounded(err.detail) } }])
    .catch(() => {});
}

/**
 * Runs `work`; when it throws, audits the refusal (its action and serial may depend on the error)
 * and rethrows. The one wrapper every refusable action of policy goes through.
 *
 * With `limiter`, a refusal of a non-admin also counts against the identity's issuance budget
 * (limits.issuance), so that one token cannot write refusal rows without bound; past the budget
 * the answer is the limiter's 429, which leaves no row. (Issuance counts every request up front.)
 */
export async function auditingRefusals<T>(
  deps: { store: Store; clock: Clock; limiter?: IssuanceLimiter | undefined },
  principal: Principal,
  audit: { action: AuditAction | ((err: unknown) => AuditAction); serial: string | null },
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (deps.limiter && !principal.admin && isCaError(err) && err.kind !== 'unavailable' && err.kind !== 'rateLimited') {
      await deps.limiter.take(principal.identity);
    }
    const action = typeof audit.action === 'function' ? audit.action(err) : audit.action;
    await auditRefusal(deps.store, deps.clock, principal, action, audit.serial, err);
    throw err;
  }
}
