/**
 * Revocation writes, guarded in SQL: `UPDATE … WHERE status = 'valid' RETURNING`, so revoking
 * twice changes nothing (zero rows: already revoked), and the CRL revision is bumped in the same
 * transaction (its row lock orders revocations by commit, see db/schema.ts crl_state).
 */
import { and, eq, gt, sql } from 'drizzle-orm';
import { certificates, crlState } from '../../db/schema.js';
import { CaError } from '../errors.js';
import type { CertificateRecord, RevocationReason } from '../model.js';
import { appendAudit } from './audit.js';
import type { Database } from './database.js';
import { toRecord } from './rows.js';

export interface Revocation {
  reason: RevocationReason;
  actor: string;
  at: Date;
}

const revokedValues = (r: Revocation) => ({ status: 'revoked', revokedAt: r.at, revocationReason: r.reason, revokedBy: r.actor });

export async function revokeOne(database: Database, serial: string, revocation: Revocation): Promise<CertificateRecord> {
  return database.transaction(async (tx) => {
    const rows = await tx
      .update(certificates)
      .set(revokedValues(revocation))
      .where(and(eq(certificates.serial, serial), eq(certificates.status, 'valid')))
      .returning();
    if (rows.length === 0) {
      const exists = await tx.select({ serial: certificates.serial }).from(certificates).where(eq(certificates.serial, serial)).limit(1);
      throw exists.length ? new CaError('alreadyRevoked', 'this certificate is already revoked') : new CaError('notFound', 'no certificate has this serial');
    }
    await tx.update(crlState).set({ revision: sql`${crlState.revision} + 1` }).where(eq(crlState.id, 1));
    await appendAudit(tx, [{ at: revocation.at, actor: revocation.actor, action: 'certificate.revoke', serial, outcome: 'success', detail: { reason: revocation.reason } }]);
    return toRecord(rows[0]!);
  });
}

/** Revokes every currently valid (unexpired, unrevoked) certificate of an identity in one transaction. */
export async function revokeIdentity(database: Database, identity: string, revocation: Revocation): Promise<string[]> {
  return database.transaction(async (tx) => {
    const rows = await tx
      .update(certificates)
      .set(revokedValues(revocation))
      .where(and(eq(certificates.identity, identity), eq(certificates.status, 'valid'), gt(certificates.notAfter, revocation.at)))
      .returning({ serial: certificates.serial });
    const serials = rows.map((r) => r.serial).sort();
    if (rows.length > 0) await tx.update(crlState).set({ revision: sql`${crlState.revision} + 1` }).where(eq(crlState.id, 1));
    await appendAudit(tx, [
      { at: revocation.at, actor: revocation.actor, action: 'identity.revoke', serial: null, outcome: 'success', detail: { identity, reason: revocation.reason, revoked: serials.length } },
      ...serials.map((serial) => ({ at: revocation.at, actor: revocation.actor, action: 'certificate.revoke' as const, serial, outcome: 'success', detail: { reason: revocation.reason, identity } })),
    ]);
    return serials;
  });
}
