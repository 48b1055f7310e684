/**
 * The audit tables (db/schema.ts audit_events, audit_seals, audit_head): appending rows (in the
 * transaction of the action they record, where there is one), sealing them into the hash chain
 * under an advisory lock so that one replica seals at a time, reading pages for admins with each
 * row's place in the chain, and reading the chain seal by seal for `service-ca audit verify`.
 * No statement here updates or deletes an audit row or a seal: both are written once, and only
 * the one-row chain head is updated, once per seal.
 */
import { and, eq, gt, gte, lt, lte, sql, type SQL } from 'drizzle-orm';
import { auditEvents, auditHead, auditSeals } from '../../db/schema.js';
import { comparePositions, type AuditAction, type AuditEvent, type AuditHead, type AuditSeal, type ChainItem, type ChainPosition } from '../audit/chain.js';
import type { Database, Db } from './database.js';
import { asDate, rawRows } from './rows.js';

/** An audit row; the chain fields come from the seal that lists it, null until then. */
export interface StoredAuditEvent extends AuditEvent {
  id: number;
  chainSeq: number | null;
  prevHash: Buffer | null;
  hash: Buffer | null;
}

/** An unsealed row as the sealer links it: the event, its id and its position. */
export interface UnsealedAuditEvent extends AuditEvent {
  id: number;
  txid: number;
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

/** What one sealing did: rows sealed, and the head after it. */
export interface SealResult {
  sealed: number;
  seal: number;
  seq: number;
  hash: Buffer;
}

/** One row's place in the chain: its position and its hash over the previous one. */
export interface ChainLink {
  id: number;
  chainSeq: number;
  prevHash: Buffer;
  hash: Buffer;
}

/** Computes the chained hashes of rows in sealing order, from the head (src/audit/sealer.ts `link`). */
export type ChainLinker = (head: { seq: number; hash: Buffer }, rows: UnsealedAuditEvent[]) => Promise<ChainLink[]>;

const LOCK = sql`hashtext('service-ca:audit-seal')`;

export const auditValues = (e: AuditEvent) => ({ at: e.at, actor: e.actor, action: e.action, serial: e.serial, outcome: e.outcome, detail: e.detail });

export async function appendAudit(db: Db, events: AuditEvent[]): Promise<void> {
  if (events.length > 0) await db.insert(auditEvents).values(events.map(auditValues));
}

/** An audit row from raw SQL: bigints may come as strings (pg), bytea as Uint8Array (PGlite). */
interface RawEvent {
  id: string | number;
  at: unknown;
  actor: string;
  action: string;
  serial: string | null;
  outcome: string;
  detail: Record<string, unknown>;
}

const EVENT_COLUMNS = sql.raw('e.id, e.at, e.actor, e.action, e.serial, e.outcome, e.detail');

function eventOf(r: RawEvent): AuditEvent & { id: number } {
  return { id: Number(r.id), at: asDate(r.at), actor: r.actor, action: r.action as AuditAction, serial: r.serial, outcome: r.outcome, detail: r.detail };
}

const buffer = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b.buffer, b.byteOffset, b.byteLength));
const orNull = (n: string | number | null) => (n === null ? null : Number(n));

/**
 * A page of rows, newest first, each with its chain position and hashes taken from the seal
 * whose range holds it: the first seal whose `to` is at or after the row's position (one index
 * probe per row), where the row's place in `ids` gives chain position first_seq + place − 1 and
 * its 32 octets of `hashes`. A seal lists at most a sealing batch of rows, so the lookup stays
 * small; a row no seal lists (not sealed yet) has nulls.
 */
export async function listAudit(db: Db, f: AuditFilter): Promise<StoredAuditEvent[]> {
  const where: SQL[] = [];
  if (f.actor !== undefined) where.push(eq(auditEvents.actor, f.actor));
  if (f.action !== undefined) where.push(eq(auditEvents.action, f.action));
  if (f.serial !== undefined) where.push(eq(auditEvents.serial, f.serial));
  if (f.outcome !== undefined) where.push(eq(auditEvents.outcome, f.outcome));
  if (f.since !== undefined) where.push(gte(auditEvents.at, f.since));
  if (f.until !== undefined) where.push(lte(auditEvents.at, f.until));
  if (f.before !== undefined) where.push(lt(auditEvents.id, f.before));
  // Hand-written: drizzle's lateral join cannot name the outer row inside an ordered, limited
  // subquery the way this lookup needs.
  const rows = await rawRows<RawEvent & { chain_seq: string | number | null; prev_hash: Uint8Array | null; hash: Uint8Array | null }>(
    db,
    sql`select ${EVENT_COLUMNS}, s.first_seq + s.i - 1 as chain_seq,
          case when s.i = 1 then s.prev_hash else substring(s.hashes from (s.i - 2) * 32 + 1 for 32) end as prev_hash,
          substring(s.hashes from (s.i - 1) * 32 + 1 for 32) as hash
        from (select * from audit_events where ${where.length ? and(...where) : sql`true`} order by id desc limit ${f.limit}) e
        left join lateral (
          select first_seq, prev_hash, hashes, array_position(ids, e.id) as i from audit_seals
          where (to_txid, to_id) >= (e.txid, e.id) order by to_txid, to_id limit 1
        ) s on true
        order by e.id desc`,
  );
  return rows.map((r) => ({ ...eventOf(r), chainSeq: orNull(r.chain_seq), prevHash: buffer(r.prev_hash), hash: buffer(r.hash) }));
}

async function readHead(db: Db): Promise<AuditHead> {
  const [head] = await db.select().from(auditHead).where(eq(auditHead.id, 1));
  if (!head) throw new Error('audit_head has no row: the migrations did not run');
  return { seal: head.seal, seq: head.seq, hash: Buffer.from(head.hash), to: { txid: head.toTxid, id: head.toId } };
}

/**
 * Seals the next rows after the head, up to max, into one new seal: under the sealing lock,
 * the rows after the head's position whose transaction id is below the oldest transaction still
 * running (pg_snapshot_xmin of this statement's snapshot). Every transaction below it has
 * finished, so no row can appear below it any more: the seal's range stays exactly what it lists.
 * A transaction still open holds sealing back at its id until it ends. `link` computes the
 * hashes; the seal and the head are written by one statement. Four statements whatever the
 * number of rows: the lock, the head, the rows, the seal with the head. 0 rows when another
 * replica is sealing or nothing is final yet.
 */
export async function sealAudit(database: Database, max: number, link: ChainLinker): Promise<SealResult> {
  return database.transaction(async (tx) => {
    const [lock] = await rawRows<{ locked: boolean }>(tx, sql`select pg_try_advisory_xact_lock(${LOCK}) as locked`);
    if (!lock?.locked) return { sealed: 0, seal: 0, seq: 0, hash: Buffer.alloc(0) };
    const head = await readHead(tx);
    const raw = await rawRows<RawEvent & { txid: string | number }>(
      tx,
      sql`select ${EVENT_COLUMNS}, e.txid from audit_events e
          where (e.txid, e.id) > (${head.to.txid}, ${head.to.id}) and e.txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
          order by e.txid, e.id limit ${max}`,
    );
    if (raw.length === 0) return { sealed: 0, seal: head.seal, seq: head.seq, hash: head.hash };
    const rows = raw.map((r) => ({ ...eventOf(r), txid: Number(r.txid) }));
    const linked = await link({ seq: head.seq, hash: head.hash }, rows);
    const lastRow = rows[rows.length - 1]!;
    const last = linked[linked.length - 1]!;
    const seal = head.seal + 1;
    // Hex and an array literal: the same parameters on both drivers.
    const hashes = Buffer.concat(linked.map((l) => l.hash)).toString('hex');
    await tx.execute(sql`with sealed as (
        insert into audit_seals (seq, first_seq, last_seq, from_txid, from_id, to_txid, to_id, ids, hashes, prev_hash, hash)
        values (${seal}, ${head.seq + 1}, ${last.chainSeq}, ${head.to.txid}, ${head.to.id}, ${lastRow.txid}, ${lastRow.id},
                ${`{${linked.map((l) => l.id).join(',')}}`}::bigint[], decode(${hashes}, 'hex'), decode(${head.hash.toString('hex')}, 'hex'), decode(${last.hash.toString('hex')}, 'hex'))
      )
      update audit_head set seal = ${seal}, seq = ${last.chainSeq}, hash = decode(${last.hash.toString('hex')}, 'hex'), to_txid = ${lastRow.txid}, to_id = ${lastRow.id}
      where id = 1`);
    return { sealed: linked.length, seal, seq: last.chainSeq, hash: last.hash };
  });
}

/** The head, and how many rows lie after its position (not sealed yet). */
export async function auditHeadOf(db: Db): Promise<AuditHead & { unsealed: number }> {
  const head = await readHead(db);
  const [pending] = await rawRows<{ n: string | number }>(db, sql`select count(*) as n from audit_events where (txid, id) > (${head.to.txid}, ${head.to.id})`);
  return { ...head, unsealed: Number(pending?.n ?? 0) };
}

type SealRow = typeof auditSeals.$inferSelect;

/** Rows at positions (from, to], in position order. */
async function rowsBetween(db: Db, from: ChainPosition, to: ChainPosition): Promise<(AuditEvent & ChainPosition)[]> {
  const raw = await rawRows<RawEvent & { txid: string | number }>(
    db,
    sql`select ${EVENT_COLUMNS}, e.txid from audit_events e
        where (e.txid, e.id) > (${from.txid}, ${from.id}) and (e.txid, e.id) <= (${to.txid}, ${to.id})
        order by e.txid, e.id`,
  );
  return raw.map((r) => ({ ...eventOf(r), txid: Number(r.txid) }));
}

/**
 * One seal's items in chain order: the seal, then per listed id the row or `missing`, with the
 * rows of its range it does not list (`unlisted`) placed by position among them. `rows` are the
 * rows of its range in position order.
 */
function* sealItems(s: SealRow, rows: (AuditEvent & ChainPosition)[]): Generator<ChainItem> {
  const hashes = Buffer.from(s.hashes);
  const seal: AuditSeal = {
    seq: s.seq,
    firstSeq: s.firstSeq,
    lastSeq: s.lastSeq,
    from: { txid: s.fromTxid, id: s.fromId },
    to: { txid: s.toTxid, id: s.toId },
    listed: s.ids.length,
    hashOctets: hashes.length,
    prevHash: Buffer.from(s.prevHash),
    hash: Buffer.from(s.hash),
  };
  yield { kind: 'seal', seal };
  const byId = new Map(rows.map((r) => [r.id, r]));
  const listed = new Set(s.ids);
  let next = 0;
  /** The unlisted rows before position `until` (all that are left when undefined). */
  function* unlistedBefore(until: ChainPosition | undefined, after: number): Generator<ChainItem> {
    for (; next < rows.length && (until === undefined || comparePositions(rows[next]!, until) < 0); next++) {
      if (!listed.has(rows[next]!.id)) yield { kind: 'unlisted', id: rows[next]!.id, after };
    }
  }
  for (const [i, id] of s.ids.entries()) {
    const chainSeq = s.firstSeq + i;
    const row = byId.get(id);
    if (!row) {
      yield { kind: 'missing', id, chainSeq };
      continue;
    }
    yield* unlistedBefore(row, chainSeq - 1);
    const prevHash = i === 0 ? seal.prevHash : hashes.subarray((i - 1) * 32, i * 32);
    yield { kind: 'row', row: { id, at: row.at, actor: row.actor, action: row.action, serial: row.serial, outcome: row.outcome, detail: row.detail, chainSeq, prevHash, hash: hashes.subarray(i * 32, i * 32 + 32) } };
  }
  yield* unlistedBefore(undefined, s.lastSeq);
}

/**
 * The chain for the verifier, seals 1 to throughSeal (the head's, read before: seals written
 * since are left for the next run), in ChainItem order: first any row at or before the genesis
 * position, which no seal can cover, then seal by seal. Seals are read 100 at a time and their
 * rows a batch of about pageRows listed rows at a time; rows and seals are never updated, so
 * pages read at different moments agree.
 */
export async function* auditChain(db: Db, throughSeal: number, pageRows = 5000): AsyncIterable<ChainItem> {
  const early = await rawRows<{ id: string | number }>(db, sql`select id from audit_events where (txid, id) <= (0, 0) order by txid, id limit 1`);
  for (const r of early) yield { kind: 'unlisted', id: Number(r.id), after: 0 };
  let after = 0;
  while (after < throughSeal) {
    const seals = await db
      .select()
      .from(auditSeals)
      .where(and(gt(auditSeals.seq, after), lte(auditSeals.seq, throughSeal)))
      .orderBy(auditSeals.seq)
      .limit(100);
    if (seals.length === 0) return;
    for (let start = 0; start < seals.length; ) {
      let end = start + 1;
      for (let listed = seals[start]!.ids.length; end < seals.length && listed + seals[end]!.ids.length <= pageRows; end++) listed += seals[end]!.ids.length;
      const group = seals.slice(start, end);
      const first = group[0]!;
      const last = group[group.length - 1]!;
      const rows = await rowsBetween(db, { txid: first.fromTxid, id: first.fromId }, { txid: last.toTxid, id: last.toId });
      for (const s of group) {
        const from = { txid: s.fromTxid, id: s.fromId };
        const to = { txid: s.toTxid, id: s.toId };
        yield* sealItems(s, rows.filter((r) => comparePositions(r, from) > 0 && comparePositions(r, to) <= 0));
      }
      start = end;
    }
    after = seals[seals.length - 1]!.seq;
  }
}
