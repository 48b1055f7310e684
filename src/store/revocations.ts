/**
 * Revocation writes, guarded in SQL: `UPDATE … WHERE status = 'valid' RETURNING`, so revoking
 * twice changes nothing (zero rows: already revoked), and the CRL revision is bumped in the same
 * transaction (its row lock orders revocations by commit, see db/schema.ts crl_state).
 *
 * Every statement is set-based, whatever the count: the audit rows are written by
 * `INSERT … SELECT` from the rows the UPDATE returned (or from one array parameter), never as one
 * parameter list per row, which Postgres caps at 65,535 parameters (docs/api.md "Admin": a bulk
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

/**
 * Takes the revocation lock first: the crl_state row, which every revocation transaction updates
 * anyway. Revocations then run one after another, so a lineage revocation (parent, then children)
 * and a bulk one (rows in the order its plan reads them) never wait on each other in a cycle.
 * Renewals do not take it: they wait only on the row of their parent.
 */
const lockRevocations = (tx: Db) => tx.execute(sql`select revision from crl_state where id = 1 for update`);

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
  const lineageOfRevoked = await database.transaction(async (tx) => {
    await lockRevocations(tx);
    const [row] = await rawRows<RawCertificateRow>(
      tx,
      sql`update certificates set ${SET_REVOKED(revocation)} where serial = ${serial} and status = 'valid' returning ${sql.raw(RAW_CERTIFICATE_COLUMNS)}`,
    );
    if (!row) {
      const [exists] = await rawRows<{ serial: string }>(tx, sql`select serial from certificates where serial = ${serial}`);
      if (!exists) throw new CaError('notFound', 'no certificate has this serial');
      // Revoked before (say superseded), and now its key is known to be compromised: the
      // certificate keeps its revocation (409), but what was renewed from it is revoked now.
      const alsoRevoked = revocation.reason === 'keyCompromise' ? await revokeLineage(tx, serial, revocation) : [];
      if (alsoRevoked.length > 0) {
        await bumpRevision(tx);
        await auditRevoked(tx, alsoRevoked, revocation, { reason: revocation.reason, lineageOf: serial });
      }
      return alsoRevoked;
    }
    // RFC 5280 §5.3.1 keyCompromise: the key may be someone else's now, and every renewal it signed was theirs to ask for.
    const alsoRevoked = revocation.reason === 'keyCompromise' ? await revokeLineage(tx, serial, revocation) : [];
    await bumpRevision(tx);
    await auditRevoked(tx, [serial], revocation, alsoRevoked.length > 0 ? { reason: revocation.reason, alsoRevoked: alsoRevoked.length } : { reason: revocation.reason });
    await auditRevoked(tx, alsoRevoked, revocation, { reason: revocation.reason, lineageOf: serial });
    return { record: fromRawRow(row), alsoRevoked };
  });
  if (Array.isArray(lineageOfRevoked)) {
    const also = lineageOfRevoked.length > 0 ? `; the ${lineageOfRevoked.length} certificates renewed from it were revoked now (keyCompromise)` : '';
    throw new CaError('alreadyRevoked', `this certificate is already revoked${also}`);
  }
  return lineageOfRevoked;
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
      await lockRevocations(tx);
      const at = r.at.toISOString();
      const revoked: string[] = [];
      // Repeated until a pass revokes nothing: a renewal that held its parent's row while the
      // UPDATE waited commits a child the UPDATE's snapshot cannot see; the next statement does
      // (READ COMMITTED), and renewals of rows revoked here fail once we commit.
      for (;;) {
        const rows = await rawRows<{ serial: string }>(
          tx,
          sql`with revoked as (
                update certificates set ${SET_REVOKED(r)}
                where identity = ${identity} and status = 'valid' and not_after > ${at}::timestamptz
                returning serial
              ), audited as (
                insert into audit_events (at, actor, action, serial, outcome, detail)
                select ${at}::timestamptz, ${r.actor}, 'certificate.revoke', serial, 'success', ${JSON.stringify({ reason: r.reason, identity })}::jsonb from revoked
              )
              select serial from revoked`,
        );
        if (rows.length === 0) break;
        for (const row of rows) revoked.push(row.serial);
      }
      if (revoked.length > 0) await bumpRevision(tx);
      await tx.execute(sql`insert into audit_events (at, actor, action, serial, outcome, detail)
        values (${at}::timestamptz, ${r.actor}, 'identity.revoke', null, 'success', ${JSON.stringify({ identity, reason: r.reason, revoked: revoked.length })}::jsonb)`);
      return revoked.sort();
    },
    undefined,
    { long: true },
  );
}
