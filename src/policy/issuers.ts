/**
 * The issuers' state for an operator (docs/api.md "Several issuers"; `service-ca ca status`):
 * every configured intermediate, whether it is the active one, its validity and time left, the
 * certificates it issued that have not expired (those its CRL must keep covering), and the age of
 * the CRL this process serves for it. An issuer that is not active and has no unexpired
 * certificate left can be removed from the configuration. Admin only; every read is audited.
 */
import type { Principal } from '../auth/principal.js';
import type { Clock } from '../clock.js';
import type { PublishedCrl } from '../crl/publisher.js';
import type { Signers } from '../signer/signer.js';
import type { Store } from '../store/store.js';
import { requireAdmin } from './admin.js';
import { createAuditLog } from './audit.js';
import type { IssuanceLimiter } from './rate-limits.js';
import { auditingRefusals } from './refusals.js';

export interface IssuerStatus {
  keyId: string;
  subject: string;
  active: boolean;
  notBefore: Date;
  notAfter: Date;
  /** When holders of its certificates are told to have renewed (a retiring issuer's renewBy). */
  renewBy: Date | undefined;
  /** Its certificates that have not expired, revoked ones included, and how many are revoked. */
  certificates: { unexpired: number; revoked: number };
  /** The CRL served for it here, if any yet. */
  crl: { number: number; thisUpdate: Date; nextUpdate: Date; entries: number } | undefined;
  /** Not active, and nothing of it left unexpired: it can leave the configuration. */
  removable: boolean;
}

export interface IssuerStatusService {
  status(principal: Principal): Promise<IssuerStatus[]>;
}

export function createIssuerStatus(deps: {
  store: Store;
  clock: Clock;
  limiter?: IssuanceLimiter | undefined;
  signers: Pick<Signers, 'all'>;
  /** The CRL this process serves for an issuer. */
  crlOf: (keyId: string) => PublishedCrl | undefined;
}): IssuerStatusService {
  const audit = createAuditLog(deps);
  return {
    async status(principal) {
      await auditingRefusals(deps, principal, { action: 'certificates.list', serial: null }, async () => requireAdmin(principal));
      const now = deps.clock.now();
      const counts = new Map((await deps.store.issuerCertificates(now)).map((c) => [c.issuerKeyId, c]));
      // Audited like every admin read, as a listing with its view named (as the fleet's are).
      await audit.read(principal, 'certificates.list', { view: 'issuers' });
      return deps.signers.all.map((s) => {
        const c = counts.get(s.keyId);
        const crl = deps.crlOf(s.keyId);
        const certificates = { unexpired: c?.unexpired ?? 0, revoked: c?.revoked ?? 0 };
        return {
          keyId: s.keyId,
          subject: s.authority.subject,
          active: s.active,
          notBefore: s.authority.notBefore,
          notAfter: s.authority.notAfter,
          renewBy: s.renewBy,
          certificates,
          crl: crl && { number: crl.number, thisUpdate: crl.thisUpdate, nextUpdate: crl.nextUpdate, entries: crl.entries },
          removable: !s.active && certificates.unexpired === 0,
        };
      });
    },
  };
}
