/**
 * Revocation rules (docs/api.md "Service identity" and "Admin"): reasons are the RFC 5280 §5.3.1
 * names the contract lists (certificateHold and anything else: badRevocationReason); the owner
 * may revoke its own certificate except with caCompromise or privilegeWithdrawn; admins may
 * revoke any, and every valid certificate of an identity at once. Each revocation records its
 * time, reason and the acting identity. keyCompromise also revokes every certificate renewed
 * from the one named (docs/api.md "Certificate holder"), in the same transaction.
 */
import type { Principal } from '../auth/principal.js';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import { REVOCATION_REASONS, type RevocationReason } from '../model.js';
import type { Store } from '../store/store.js';
import { requireAdmin } from './admin.js';
import type { IssuanceLimiter } from './rate-limits.js';
import { auditingRefusals } from './refusals.js';
import { normalizeSerial } from './serials.js';
import { viewOf, type CertificateView } from './views.js';

const ADMIN_ONLY_REASONS: ReadonlySet<RevocationReason> = new Set(['caCompromise', 'privilegeWithdrawn']);

export function parseReason(reason: unknown): RevocationReason {
  if (typeof reason === 'string' && Object.prototype.hasOwnProperty.call(REVOCATION_REASONS, reason)) return reason as RevocationReason;
  throw new CaError('badRevocationReason', `reason must be one of ${Object.keys(REVOCATION_REASONS).join(', ')}`);
}

export interface RevokedView extends CertificateView {
  /** Its renewal lineage, revoked with it (keyCompromise); empty otherwise. */
  alsoRevoked: string[];
}

export interface Revoker {
  revoke(principal: Principal, serial: string, reason: unknown): Promise<RevokedView>;
  revokeIdentity(principal: Principal, identity: string, reason: unknown): Promise<string[]>;
}

/** The serial a refused revocation's audit row names, when the request held a plausible one. */
const auditedSerial = (serialText: unknown) => (typeof serialText === 'string' && /^[0-9a-f:]{1,64}$/i.test(serialText) ? serialText.toLowerCase() : null);

export function createRevoker(deps: { store: Store; clock: Clock; onRevoked: () => void; limiter?: IssuanceLimiter }): Revoker {
  const { store, clock } = deps;
  return {
    revoke: (principal, serialText, reasonText) =>
      auditingRefusals(deps, principal, { action: 'certificate.revoke', serial: auditedSerial(serialText) }, async () => {
        const serial = normalizeSerial(serialText);
        const reason = parseReason(reasonText);
        const record = await store.getCertificate(serial);
        if (!record) throw new CaError('notFound', 'no certificate has this serial');
        if (!principal.admin) {
          if (record.identity !== principal.identity) throw new CaError('forbidden', 'this certificate belongs to another identity');
          if (ADMIN_ONLY_REASONS.has(reason)) throw new CaError('forbidden', `only an admin may revoke with reason ${reason}`);
        }
        const revoked = await store.revoke(serial, { reason, actor: principal.identity, at: clock.now() });
        deps.onRevoked();
        return { ...viewOf(revoked.record, clock.now()), alsoRevoked: revoked.alsoRevoked };
      }),
    revokeIdentity: (principal, identity, reasonText) =>
      auditingRefusals(deps, principal, { action: 'identity.revoke', serial: null }, async () => {
        requireAdmin(principal);
        const reason = parseReason(reasonText);
        const serials = await store.revokeIdentity(identity, { reason, actor: principal.identity, at: clock.now() });
        if (serials.length > 0) deps.onRevoked();
        return serials;
      }),
  };
}
