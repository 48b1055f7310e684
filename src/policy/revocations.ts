/**
 * Revocation rules (API.md "Service identity" and "Admin"): reasons are the RFC 5280 §5.3.1
 * names the contract lists (certificateHold and anything else: badRevocationReason); the owner
 * may revoke its own certificate except with caCompromise or privilegeWithdrawn; admins may
 * revoke any, and every valid certificate of an identity at once. Each revocation records its
 * time, reason and the acting identity.
 */
import type { Principal } from '../auth/principal.js';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import { REVOCATION_REASONS, type RevocationReason } from '../model.js';
import type { Store } from '../store/store.js';
import { viewOf, type CertificateView } from './certificates.js';
import { auditRefusal } from './audit.js';
import { normalizeSerial } from './serials.js';

const ADMIN_ONLY_REASONS: ReadonlySet<RevocationReason> = new Set(['caCompromise', 'privilegeWithdrawn']);

export function parseReason(reason: unknown): RevocationReason {
  if (typeof reason === 'string' && Object.prototype.hasOwnProperty.call(REVOCATION_REASONS, reason)) return reason as RevocationReason;
  throw new CaError('badRevocationReason', `reason must be one of ${Object.keys(REVOCATION_REASONS).join(', ')}`);
}

export interface Revoker {
  revoke(principal: Principal, serial: string, reason: unknown): Promise<CertificateView>;
  revokeIdentity(principal: Principal, identity: string, reason: unknown): Promise<string[]>;
}

export function requireAdmin(principal: Principal): void {
  if (!principal.admin) throw new CaError('forbidden', 'this operation is for admins');
}

export function createRevoker(deps: { store: Store; clock: Clock; onRevoked: () => void }): Revoker {
  const { store, clock } = deps;
  const revoker: Revoker = {
    async revoke(principal, serialText, reasonText) {
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
      return viewOf(revoked, clock.now());
    },
    async revokeIdentity(principal, identity, reasonText) {
      requireAdmin(principal);
      const reason = parseReason(reasonText);
      const serials = await store.revokeIdentity(identity, { reason, actor: principal.identity, at: clock.now() });
      if (serials.length > 0) deps.onRevoked();
      return serials;
    },
  };
  // A refused revocation leaves an audit row too (the successful ones are written with the revocation).
  return {
    async revoke(principal, serialText, reasonText) {
      try {
        return await revoker.revoke(principal, serialText, reasonText);
      } catch (err) {
        await auditRefusal(store, clock, principal, 'certificate.revoke', typeof serialText === 'string' && /^[0-9a-f:]{1,64}$/i.test(serialText) ? serialText.toLowerCase() : null, err);
        throw err;
      }
    },
    async revokeIdentity(principal, identity, reasonText) {
      try {
        return await revoker.revokeIdentity(principal, identity, reasonText);
      } catch (err) {
        await auditRefusal(store, clock, principal, 'identity.revoke', null, err);
        throw err;
      }
    },
  };
}
