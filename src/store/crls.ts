/**
 * CRL storage, one series per issuer (docs/api.md "Several issuers"). Generation runs in one READ
 * COMMITTED transaction that first takes the issuer's advisory lock, so one replica generates an
 * issuer's CRL at a time and every later statement sees every CRL committed before: the number is
 * that issuer's previous one plus one, strictly increasing across restarts and replicas
 * (RFC 5280 §5.2.3). The revision is read before the entries, so the entries hold at
 * least the revocations it counts (a revocation committed in between only causes one more
 * generation at the next poll, never a missing entry).
 *
 * The same transaction notifies the channel every process listens on (store/notifications.ts):
 * Postgres delivers a NOTIFY at commit, and only if the transaction commits, so the others load
 * the new CRL at once and never hear of one that is not there.
 */
import { desc, eq, sql } from 'drizzle-orm';
import { crlState, crls } from '../../db/schema.js';
import type { RevocationReason } from '../model.js';
import { isUniqueViolation, type Database, type Db } from './database.js';
import { CRL_CHANNEL, crlNoticePayload } from './notifications.js';
import { asDate, rawRows } from './rows.js';

export interface StoredCrl {
  number: number;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: number;
  sourceRevision: number;
  der: Buffer;
  /**
   * Whether an earlier CRL has the same thisUpdate second: then its Last-Modified (an HTTP date,
   * whole seconds) cannot tell the two apart, and If-Modified-Since must not answer 304.
   */
  sharesSecond: boolean;
}

/**
 * Receives one revoked, unexpired certificate: its serial (canonical lower-case hex), its
 * revocation time in whole seconds since the epoch, and its reason. Called once per entry with
 * plain values, so that a million entries make no million objects.
 */
export type CrlEntryVisitor = (serialHex: string, revokedAtSeconds: number, reason: RevocationReason) => void;

export interface CrlStatus {
  /** Revocation transactions committed so far. */
  revision: number;
  latest: { number: number; sourceRevision: number; thisUpdate: Date } | undefined;
}

export interface CrlBuild {
  number: number;
  revision: number;
  /** Visits every revoked, unexpired certificate at the snapshot, in no particular order. */
  entries(visit: CrlEntryVisitor): Promise<void>;
}

export interface BuiltCrl {
  der: Buffer;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: number;
  issuerKeyId: string;
}

/** The generation lock of one issuer: issuers generate side by side, each one at a time. */
const lockOf = (issuerKeyId: string) => sql`hashtext(${`service-ca:crl-generation:${issuerKeyId}`})`;
/** CRLs kept in the table besides the newest (older ones are history nobody serves). */
const KEEP = 20;

export async function crlStatus(db: Db, issuerKeyId: string): Promise<CrlStatus> {
  const rows = await rawRows<{ revision: string | number; number: string | number | null; source_revision: string | number | null; this_update: unknown }>(
    db,
    sql`select s.revision, c.number, c.source_revision, c.this_update
        from ${crlState} s left join lateral (
          select number, source_revision, this_update from ${crls} where issuer_key_id = ${issuerKeyId} order by number desc limit 1
        ) c on true
        where s.id = 1`,
  );
  const r = rows[0];
  if (!r) return { revision: 0, latest: undefined };
  return {
    revision: Number(r.revision),
    latest: r.number === null ? undefined : { number: Number(r.number), sourceRevision: Number(r.source_revision), thisUpdate: asDate(r.this_update) },
  };
}

/**
 * The newest CRL of this intermediate, DER included (tens of MB at a million entries: read on
 * the long-query pool). Another intermediate's CRL (before a key rollover, or a replica with
 * other CA files on the same database) is never served: it would not verify.
 */
export async function latestCrl(database: Database, issuerKeyId: string): Promise<StoredCrl | undefined> {
  return database.transaction(
    async (tx) => {
      const [r] = await tx.select().from(crls).where(eq(crls.issuerKeyId, issuerKeyId)).orderBy(desc(crls.number)).limit(1);
      if (!r) return undefined;
      return {
        number: r.number,
        thisUpdate: r.thisUpdate,
        nextUpdate: r.nextUpdate,
        entries: r.entries,
        sourceRevision: r.sourceRevision,
        der: Buffer.from(r.der),
        sharesSecond: await sameSecondBefore(tx, issuerKeyId, r.number, r.thisUpdate),
      };
    },
    undefined,
    { long: true },
  );
}

async function sameSecondBefore(tx: Db, issuerKeyId: string, number: number, thisUpdate: Date): Promise<boolean> {
  const [row] = await rawRows<{ shared: boolean }>(
    tx,
    sql`select exists(select 1 from ${crls} where issuer_key_id = ${issuerKeyId} and number < ${number}
          and date_trunc('second', this_update) = date_trunc('second', ${thisUpdate.toISOString()}::timestamptz)) as shared`,
  );
  return Boolean(row?.shared);
}

/**
 * Generates and stores the next CRL, unless another replica holds the generation lock
 * (then undefined: that replica's CRL will be picked up from the table).
 */
export async function generateCrl(database: Database, issuerKeyId: string, now: Date, build: (b: CrlBuild) => Promise<BuiltCrl>): Promise<StoredCrl | undefined> {
  return database.transaction(
    async (tx) => {
      const [lock] = await rawRows<{ locked: boolean }>(tx, sql`select pg_try_advisory_xact_lock(${lockOf(issuerKeyId)}) as locked`);
      if (!lock?.locked) return undefined;
      const [state] = await rawRows<{ revision: string | number; next: string | number }>(
        tx,
        sql`select (select revision from ${crlState} where id = 1) as revision, coalesce((select max(number) from ${crls} where issuer_key_id = ${issuerKeyId}), 0) + 1 as next`,
      );
      const number = Number(state!.next);
      const revision = Number(state!.revision);
      const built = await build({
        number,
        revision,
        async entries(visit) {
          // One unordered query (the heap is read in physical order, not by index order) whose
          // answer is one text value "serial seconds reason,…": a million entries as a million
          // row objects, or fetched in serial order, cost several seconds each.
          const [all] = await rawRows<{ entries: string | null }>(
            tx,
            sql`select string_agg(serial || ' ' || floor(extract(epoch from revoked_at))::bigint || ' ' || revocation_reason, ',') as entries
                from certificates
                where status = 'revoked' and not_after > ${now.toISOString()}::timestamptz and issuer_key_id = ${issuerKeyId}`,
          );
          const text = all?.entries ?? '';
          for (let start = 0; start < text.length; ) {
            let end = text.indexOf(',', start);
            if (end < 0) end = text.length;
            const a = text.indexOf(' ', start);
            const b = text.indexOf(' ', a + 1);
            visit(text.slice(start, a), Number(text.slice(a + 1, b)), text.slice(b + 1, end) as RevocationReason);
            start = end + 1;
          }
        },
      });
      if (built.issuerKeyId !== issuerKeyId) throw new Error('the CRL was built for another intermediate');
      await tx.insert(crls).values({
        number,
        issuerKeyId,
        thisUpdate: built.thisUpdate,
        nextUpdate: built.nextUpdate,
        entries: built.entries,
        sourceRevision: revision,
        der: built.der,
      });
      const sharesSecond = await sameSecondBefore(tx, issuerKeyId, number, built.thisUpdate);
      await tx.execute(sql`delete from ${crls} where issuer_key_id = ${issuerKeyId} and number < ${number - KEEP}`);
      await tx.execute(sql`select pg_notify(${CRL_CHANNEL}, ${crlNoticePayload({ issuerKeyId, number })})`);
      return { number, thisUpdate: built.thisUpdate, nextUpdate: built.nextUpdate, entries: built.entries, sourceRevision: revision, der: built.der, sharesSecond };
    },
    'read committed',
    { long: true },
  ).catch((err: unknown) => {
    // Defence in depth: should two generators ever race to the same number, the loser's
    // transaction wrote nothing and the winner's CRL is picked up at the next poll.
    if (isUniqueViolation(err)) return undefined;
    throw err;
  });
}
