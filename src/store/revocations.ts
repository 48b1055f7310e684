/**
 * Revocation writes, guarded in SQL: `UPDATE … WHERE status = 'valid' RETURNING`, so revoking
 * twice changes nothing (zero rows: already revoked), and the CRL revision is bumped in the same
 * transaction (its row lock orders revocations by commit, see db/schema.ts crl_state).
 *
 * Every statement is set-based, whatever the count: the audit rows are written by
 * `INSERT … SELECT` from the rows the UPDATE returned (or from one array parameter), never as one
 * parameter list per row, which Postgres caps at 65,535 parameters (API.md "Admin": a bulk
 * revocation works at any size).
 */
import { sql } from 'drizzle-orm';
import { CaError } from '../errors.js';
import type { CertificateRecord, RevocationReason } from '../model.js';
import type { Database, Db } from './database.js';
import { fromRawRow, rawRows, RAW_CERTIFICATE_COLUMNS, type RawCertificateRow } from './rows.js';

export interface Revocation {
  reason: RevocationReason;
  actor: string;
  at: Date;
}

/** The certificate revoked, and those of its renewal lineage revoked with it (keyCompromise). */
export interface RevokedCertificate {
  record: CertificateRecord;
  alsoRevoked: string[];
}

const SET_REVOKED = (r: Revocation) =>
  sql`status = 'revoked', revoked_at = ${r.at.toISOString()}::timestamptz, revocation_reason = ${r.reason}, revoked_by = ${r.actor}`;

const bumpRevision = (tx: Db) => tx.execute(sql`update crl_state set revision = revision + 1 where id = 1`);

/** One audit row per serial, from one array parameter. */
async function auditRevoked(tx: Db, serials: string[], r: Revocation, detail: Record<string, unknown>): Promise<void> {
  if (serials.length === 0) return;
  await tx.execute(sql`insert into audit_events (at, actor, action, serial, outcome, detail)
    select ${r.at.toISOString()}::timestamptz, ${r.actor}, 'certificate.revoke', s, 'success', ${JSON.stringify(detail)}::jsonb
    from unnest(${`{${serials.join(',')}}`}::text[]) as s`);
}

/**
 * Revokes every still-valid certificate renewed from `serial`, directly or transitively. Repeated
 * until a pass finds none: each statement (READ COMMITTED) sees the renewals committed before it,
 * and a renewal that waited on a row this transaction revoked finds its parent revoked once we
 * commit (store/issuances.ts reads the parent FOR SHARE), so no valid descendant is left.
 */
async function revokeLineage(tx: Db, serial: string, r: Revocation): Promise<string[]> {
  const revoked: string[] = [];
  for (;;) {
    const rows = await rawRows<{ serial: string }>(
      tx,
      sql`with recursive lineage(serial) as (
            select serial from certificates where renewed_from = ${serial}
            union all
            select c.serial from certificates c join lineage l on c.renewed_from = l.serial
          )
          update certificates set ${SET_REVOKED(r)}
          where serial in (select serial from lineage) and status = 'valid'
          returning serial`,
    );
    if (rows.length === 0) return revoked.sort();
    revoked.push(...rows.map((row) => row.serial));
  }
}

export async function revokeOne(database: Database, serial: string, revocation: Revocation): Promise<RevokedCertificate> {
  return database.transaction(async (tx) => {
    const [row] = await rawRows<RawCertificateRow>(
      tx,
      sql`update certificates set ${SET_REVOKED(revocation)} where serial = ${serial} and status = 'valid' returning ${sql.raw(RAW_CERTIFICATE_COLUMNS)}`,
    );
    if (!row) {
      const [exists] = await rawRows<{ serial: string }>(tx, sql`select serial from certificates where serial = ${serial}`);
      throw exists ? new CaError('alreadyRevoked', 'this certificate is already revoked') : new CaError('notFound', 'no certificate has this serial');
    }
    // RFC 5280 §5.3.1 keyCompromise: the key may be someone else's now, and every renewal it signed was theirs to ask for.
    const alsoRevoked = revocation.reason === 'keyCompromise' ? await revokeLineage(tx, serial, revocation) : [];
    await bumpRevision(tx);
    await auditRevoked(tx, [serial], revocation, alsoRevoked.length > 0 ? { reason: revocation.reason, alsoRevoked: alsoRevoked.length } : { reason: revocation.reason });
    await auditRevoked(tx, alsoRevoked, revocation, { reason: revocation.reason, lineageOf: serial });
    return { record: fromRawRow(row), alsoRevoked };
  });
}

/**
 * Revokes every currently valid (unexpired, unrevoked) certificate of an identity in one
 * transaction: one UPDATE whose returned rows feed the audit inserts and the revision bump in the
 * same statement. Runs on the long-query pool: 100,000 rows take seconds, not the request pool's
 * query timeout.
 */
export async function revokeIdentity(database: Database, identity: string, r: Revocation): Promise<string[]> {
  return database.transaction(
    async (tx) => {
      const at = r.at.toISOString();
      const rows = await rawRows<{ serial: string }>(
        tx,
        sql`with revoked as (
              update certificates set ${SET_REVOKED(r)}
              where identity = ${identity} and status = 'valid' and not_after > ${at}::timestamptz
              returning serial
            ), audited as (
              insert into audit_events (at, actor, action, serial, outcome, detail)
              select ${at}::timestamptz, ${r.actor}, 'certificate.revoke', serial, 'success', ${JSON.stringify({ reason: r.reason, identity })}::jsonb from revoked
            ), summary as (
              insert into audit_events (at, actor, action, serial, outcome, detail)
              select ${at}::timestamptz, ${r.actor}, 'identity.revoke', null, 'success',
                     jsonb_build_object('identity', ${identity}::text, 'reason', ${r.reason}::text, 'revoked', (select count(*) from revoked))
            ), bumped as (
              update crl_state set revision = revision + 1 where id = 1 and exists (select 1 from revoked)
            )
            select serial from revoked order by serial`,
      );
      return rows.map((row) => row.serial);
    },
    undefined,
    { long: true },
  );
}
