/**
 * The audit hash chain, as pure functions shared by the sealer that writes it and the verifier
 * that walks it: hash(n) = SHA-256(hash(n−1) ‖ canonical(row n)), hash(0) = 32 zero octets.
 * The canonical form is JSON of the row's recorded fields in a fixed order, with the detail's
 * keys sorted, so that it reads the same from the row as it did when sealed.
 *
 * Rows are written once and never updated. Each sealing writes one seal (db/schema.ts
 * audit_seals): the rows of a range of positions (txid, id), their ids in chain order and their
 * chained hashes. The verifier checks every seal against the rows of its range: each listed row
 * present and unchanged, no row in the range that the seal does not list, each seal continuing
 * the one before, and the head naming the last seal.
 */
import { createHash } from 'node:crypto';

export type AuditAction =
  | 'certificate.issue'
  | 'certificate.renew'
  /** A renewal that presented an already renewed certificate with another key (refused). */
  | 'certificate.renew.reuse'
  | 'certificate.revoke'
  | 'identity.revoke'
  | 'certificates.list'
  | 'audit.read'
  /** An ACME external account binding made (POST /v1/acme/eab). */
  | 'acme.binding'
  /** An ACME account created, deactivated or given a new key. */
  | 'acme.account';

export interface AuditEvent {
  /** Milliseconds matter: the canonical form carries the ISO time. */
  at: Date;
  /** The acting identity (the token's mapped identity). */
  actor: string;
  action: AuditAction;
  serial: string | null;
  /** `success`, or the error code of the refusal (docs/api.md error codes). */
  outcome: string;
  detail: Record<string, unknown>;
}

/** A sealed row with its place in the chain (from its seal: chain position and stored hashes). */
export interface SealedAuditEvent extends AuditEvent {
  id: number;
  chainSeq: number;
  prevHash: Buffer;
  hash: Buffer;
}

/**
 * Where a row sits in sealing order: its inserting transaction's id, then its row id. A seal
 * covers the positions after `from` up to and including `to`.
 */
export interface ChainPosition {
  txid: number;
  id: number;
}

/** Before every row: transaction ids start at 3, rows converted from per-row hashes have 0 and 1. */
export const GENESIS_POSITION: ChainPosition = { txid: 0, id: 0 };

export function comparePositions(a: ChainPosition, b: ChainPosition): number {
  return a.txid - b.txid || a.id - b.id;
}

/** A seal as the verifier checks it: its listed rows and hashes are counted, not carried. */
export interface AuditSeal {
  seq: number;
  firstSeq: number;
  lastSeq: number;
  from: ChainPosition;
  to: ChainPosition;
  /** How many row ids the seal lists. */
  listed: number;
  /** Its hashes' length in octets (32 per listed row). */
  hashOctets: number;
  prevHash: Buffer;
  hash: Buffer;
}

/**
 * What the store reads for the verifier, in chain order: each seal, then one item per row it
 * lists (the row, or `missing`), with any row of its range it does not list (`unlisted`) where
 * its position falls. `after` is the chain position an unlisted row follows (0: before the first).
 */
export type ChainItem =
  | { kind: 'seal'; seal: AuditSeal }
  | { kind: 'row'; row: SealedAuditEvent }
  | { kind: 'missing'; id: number; chainSeq: number }
  | { kind: 'unlisted'; id: number; after: number };

/** audit_head: the last seal, its last row's chain position and hash, the position it covers to. */
export interface AuditHead {
  seal: number;
  seq: number;
  hash: Buffer;
  to: ChainPosition;
}

export const GENESIS = Buffer.alloc(32);

function sortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${sortedJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

export function canonical(e: AuditEvent): string {
  return sortedJson([e.at.toISOString(), e.actor, e.action, e.serial, e.outcome, e.detail]);
}

export function chainHash(prev: Buffer, e: AuditEvent): Buffer {
  return createHash('sha256').update(prev).update(canonical(e), 'utf8').digest();
}

export type ChainVerdict =
  | { ok: true; rows: number; seals: number; headSeq: number; headHash: string; unsealed: number }
  | { ok: false; rows: number; firstBadSeq: number; problem: string };

/** The first thing wrong with a seal's header, given where the chain stands before it. */
function sealProblem(s: AuditSeal, last: { seq: number; to: ChainPosition }, expectedSeq: number, prev: Buffer): { firstBadSeq: number; problem: string } | undefined {
  if (s.seq !== last.seq + 1) {
    return { firstBadSeq: expectedSeq, problem: `seal ${last.seq + 1} is missing (the next seal is ${s.seq}): rows from #${expectedSeq} on were removed with it` };
  }
  if (s.firstSeq !== expectedSeq) {
    return { firstBadSeq: Math.min(expectedSeq, s.firstSeq), problem: `seal ${s.seq} starts at row #${s.firstSeq}, not #${expectedSeq}: rows were removed or the seal was replaced` };
  }
  if (s.listed !== s.lastSeq - s.firstSeq + 1 || s.hashOctets !== 32 * s.listed) {
    return { firstBadSeq: s.firstSeq, problem: `seal ${s.seq} is malformed: it lists ${s.listed} rows and ${s.hashOctets / 32} hashes for rows #${s.firstSeq} to #${s.lastSeq}` };
  }
  if (comparePositions(s.from, last.to) !== 0) {
    return { firstBadSeq: s.firstSeq, problem: `seal ${s.seq} does not start where seal ${last.seq} ended: rows between them are outside the chain` };
  }
  if (!s.prevHash.equals(prev)) {
    return {
      firstBadSeq: expectedSeq - 1,
      problem: `row #${expectedSeq} does not link to row #${expectedSeq - 1}: row #${expectedSeq - 1} was altered (and its hash rewritten) or replaced`,
    };
  }
  return undefined;
}

/**
 * Walks the chain in order (ChainItem) and reports the first row altered, removed or inserted
 * after sealing, or seal removed or replaced, then checks the head: its seal must be the last
 * one read (seals removed from the end are truncation), with the same last row and hash.
 */
export async function verifyChain(items: AsyncIterable<ChainItem>, head: AuditHead, unsealed: number): Promise<ChainVerdict> {
  let expectedSeq = 1;
  let prev: Buffer = GENESIS;
  let count = 0;
  let last = { seq: 0, to: GENESIS_POSITION };
  const broken = (firstBadSeq: number, problem: string): ChainVerdict => ({ ok: false, rows: count, firstBadSeq, problem });
  for await (const item of items) {
    switch (item.kind) {
      case 'seal': {
        const bad = sealProblem(item.seal, last, expectedSeq, prev);
        if (bad) return broken(bad.firstBadSeq, bad.problem);
        last = { seq: item.seal.seq, to: item.seal.to };
        break;
      }
      case 'missing':
        return broken(item.chainSeq, `row #${item.chainSeq} (id ${item.id}) is missing: removed`);
      case 'unlisted':
        return broken(
          item.after + 1,
          `a row not in the chain (id ${item.id}) sits ${item.after === 0 ? 'before row #1' : `after row #${item.after}`}: inserted after sealing`,
        );
      case 'row': {
        const row = item.row;
        if (row.chainSeq !== expectedSeq) return broken(expectedSeq, `row #${expectedSeq} is missing: removed (the next sealed row is #${row.chainSeq})`);
        if (!row.prevHash.equals(prev)) {
          return broken(row.chainSeq - 1, `row #${row.chainSeq} does not link to row #${row.chainSeq - 1}: row #${row.chainSeq - 1} was altered (and its hash rewritten) or replaced`);
        }
        if (!chainHash(prev, row).equals(row.hash)) return broken(row.chainSeq, `row #${row.chainSeq} (id ${row.id}) was altered: its content no longer has its recorded hash`);
        prev = row.hash;
        expectedSeq++;
        count++;
      }
    }
  }
  if (head.seal > last.seq) {
    return broken(expectedSeq, `rows #${expectedSeq} to #${head.seq} are missing: removed from the end of the chain (seals ${last.seq + 1} to ${head.seal})`);
  }
  if (head.seal !== last.seq || head.seq !== expectedSeq - 1 || !head.hash.equals(prev) || comparePositions(head.to, last.to) !== 0) {
    return broken(expectedSeq, `the chain head (#${head.seq}, seal ${head.seal}) does not match the last row (#${expectedSeq - 1}, seal ${last.seq})`);
  }
  return { ok: true, rows: count, seals: last.seq, headSeq: head.seq, headHash: prev.toString('hex'), unsealed };
}
