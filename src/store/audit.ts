/**
 * The audit table (db/schema.ts audit_events): appending rows (in the transaction of the action
 * they record, where there is one), sealing them into the hash chain under an advisory lock so
 * that one replica seals at a time, reading pages for admins, and reading the chain in order for
 * `service-ca audit verify`.
 */
import { and, desc, eq, gte, isNull, lt, lte, sql, type SQL } from 'drizzle-orm';
import { auditEvents, auditHead } from '../../db/schema.js';
import type { AuditAction, AuditEvent, SealedAuditEvent } from '../audit/chain.js';
import type { Database, Db } from './database.js';
import { asDate, rawRows } from './rows.js';

export interface StoredAuditEvent extends AuditEvent {
  id: number;
  chainSeq: number | null;
  prevHash: Buffer | null;
  hash: Buffer | null;
}

export interface AuditFilter {
  actor?: string | undefined;
  action?: AuditAction | undefined;
  serial?: string | undefined;
  outcome?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  /** Rows with a smaller id than this (the cursor: newest first). */
  before?: number | undefined;
  limit: number;
}

const LOCK = sql`hashtext('service-ca:audit-seal')`;

export const auditValues = (e: AuditEvent) => ({ at: e.at, actor: e.actor, action: e.action, serial: e.serial, outcome: e.outcome, detail: e.detail });

export async function appendAudit(db: Db, events: AuditEvent[]): Promise<void> {
  if (events.length > 0) await db.insert(auditEvents).values(events.map(auditValues));
}

type Row = typeof auditEvents.$inferSelect;

function fromRow(r: Row): StoredAuditEvent {
  return {
    id: r.id,
    at: asDate(r.at),
    actor: r.actor,
    action: r.action as AuditAction,
    serial: r.serial,
    outcome: r.outcome,
    detail: r.detail,
    chainSeq: r.chainSeq,
    prevHash: r.prevHash ? Buffer.from(r.prevHash) : null,
    hash: r.hash ? Buffer.from(r.hash) : null,
  };
}

export async function listAudit(db: Db, f: AuditFilter): Promise<StoredAuditEvent[]> {
  const where: SQL[] = [];
  if (f.actor !== undefined) where.push(eq(auditEvents.actor, f.actor));
  if (f.action !== undefined) where.push(eq(auditEvents.action, f.action));
  if (f.serial !== undefined) where.push(eq(auditEvents.serial, f.serial));
  if (f.outcome !== undefined) where.push(eq(auditEvents.outcome, f.outcome));
  if (f.since !== undefined) where.push(gte(auditEvents.at, f.since));
  if (f.until !== undefined) where.push(lte(auditEvents.at, f.until));
  if (f.before !== undefined) where.push(lt(auditEvents.id, f.before));
  const rows = await db
    .select()
    .from(auditEvents)
    .where(and(...where))
    .orderBy(desc(auditEvents.id))
    .limit(f.limit);
  return rows.map(fromRow);
}

/**
 * Seals the unsealed rows, oldest id first, up to max: under the sealing lock, reads the head,
 * lets `link` compute each row's hash from the previous one, and writes rows and head in one
 * transaction. 0 when another replica is sealing or nothing waits.
 */
export async function sealAudit(
  database: Database,
  max: number,
  link: (head: { seq: number; hash: Buffer }, rows: StoredAuditEvent[]) => { id: number; chainSeq: number; prevHash: Buffer; hash: Buffer }[],
): Promise<{ sealed: number; seq: number; hash: Buffer }> {
  return database.transaction(async (tx) => {
    const [lock] = await rawRows<{ locked: boolean }>(tx, sql`select pg_try_advisory_xact_lock(${LOCK}) as locked`);
    if (!lock?.locked) return { sealed: 0, seq: 0, hash: Buffer.alloc(0) };
    const [head] = await tx.select().from(auditHead).where(eq(auditHead.id, 1)).for('update');
    if (!head) throw new Error('audit_head has no row: the migrations did not run');
    const start = { seq: head.seq, hash: Buffer.from(head.hash) };
    const rows = (await tx.select().from(auditEvents).where(isNull(auditEvents.chainSeq)).orderBy(auditEvents.id).limit(max)).map(fromRow);
    if (rows.length === 0) return { sealed: 0, ...start };
    const linked = link(start, rows);
    // One statement for the batch, its rows as one JSON parameter (the same on both drivers).
    const batch = JSON.stringify(linked.map((l) => ({ id: l.id, seq: l.chainSeq, prev: l.prevHash.toString('hex'), hash: l.hash.toString('hex') })));
    await tx.execute(sql`update audit_events a set chain_seq = v.seq, prev_hash = decode(v.prev, 'hex'), hash = decode(v.hash, 'hex')
      from jsonb_to_recordset(${batch}::jsonb) as v(id bigint, seq bigint, prev text, hash text)
      where a.id = v.id`);
    const last = linked[linked.length - 1]!;
    await tx.update(auditHead).set({ seq: last.chainSeq, hash: last.hash }).where(eq(auditHead.id, 1));
    return { sealed: linked.length, seq: last.chainSeq, hash: last.hash };
  });
}

export async function auditHeadOf(db: Db): Promise<{ seq: number; hash: Buffer; unsealed: number }> {
  const [head] = await db.select().from(auditHead).where(eq(auditHead.id, 1));
  const [pending] = await rawRows<{ n: string | number }>(db, sql`select count(*) as n from audit_events where chain_seq is null`);
  return { seq: head?.seq ?? 0, hash: Buffer.from(head?.hash ?? Buffer.alloc(32)), unsealed: Number(pending?.n ?? 0) };
}

/** The sealed rows in chain order, a page at a time. */
export async function* auditChain(db: Db, pageSize = 5000): AsyncIterable<SealedAuditEvent> {
  let after = 0;
  for (;;) {
    const rows = await db.select().from(auditEvents).where(sql`${auditEvents.chainSeq} > ${after}`).orderBy(auditEvents.chainSeq).limit(pageSize);
    for (const r of rows) {
      const e = fromRow(r);
      yield { ...e, chainSeq: e.chainSeq!, prevHash: e.prevHash!, hash: e.hash! };
    }
    if (rows.length < pageSize) return;
    after = rows[rows.length - 1]!.chainSeq!;
  }
}
