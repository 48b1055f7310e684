/**
 * The audit hash chain, as pure functions shared by the sealer that writes it and the verifier
 * that walks it: hash(n) = SHA-256(hash(n−1) ‖ canonical(row n)), hash(0) = 32 zero octets.
 * The canonical form is JSON of the row's recorded fields in a fixed order, with the detail's
 * keys sorted, so that it reads the same from the row as it did when sealed.
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
  | 'audit.read';

export interface AuditEvent {
  /** Milliseconds matter: the canonical form carries the ISO time. */
  at: Date;
  /** The acting identity (the token's mapped identity). */
  actor: string;
  action: AuditAction;
  serial: string | null;
  /** `success`, or the error code of the refusal (API.md error codes). */
  outcome: string;
  detail: Record<string, unknown>;
}

export interface SealedAuditEvent extends AuditEvent {
  id: number;
  chainSeq: number;
  prevHash: Buffer;
  hash: Buffer;
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
  | { ok: true; rows: number; headSeq: number; headHash: string; unsealed: number }
  | { ok: false; rows: number; firstBadSeq: number; problem: string };

/**
 * Walks the sealed rows in chain order and reports the first one that was altered or removed,
 * then checks the head (rows removed from the end).
 */
export async function verifyChain(rows: AsyncIterable<SealedAuditEvent>, head: { seq: number; hash: Buffer }, unsealed: number): Promise<ChainVerdict> {
  let expectedSeq = 1;
  let prev: Buffer = GENESIS;
  let count = 0;
  for await (const row of rows) {
    if (row.chainSeq !== expectedSeq) {
      return { ok: false, rows: count, firstBadSeq: expectedSeq, problem: `row #${expectedSeq} is missing: removed (the next sealed row is #${row.chainSeq})` };
    }
    if (!row.prevHash.equals(prev)) {
      return {
        ok: false,
        rows: count,
        firstBadSeq: row.chainSeq - 1,
        problem: `row #${row.chainSeq} does not link to row #${row.chainSeq - 1}: row #${row.chainSeq - 1} was altered (and its hash rewritten) or replaced`,
      };
    }
    if (!chainHash(prev, row).equals(row.hash)) {
      return { ok: false, rows: count, firstBadSeq: row.chainSeq, problem: `row #${row.chainSeq} (id ${row.id}) was altered: its content no longer has its recorded hash` };
    }
    prev = row.hash;
    expectedSeq++;
    count++;
  }
  if (head.seq !== expectedSeq - 1 || !head.hash.equals(prev)) {
    return {
      ok: false,
      rows: count,
      firstBadSeq: expectedSeq,
      problem: head.seq > expectedSeq - 1 ? `rows #${expectedSeq} to #${head.seq} are missing: removed from the end of the chain` : `the chain head (#${head.seq}) does not match the last row (#${expectedSeq - 1})`,
    };
  }
  return { ok: true, rows: count, headSeq: head.seq, headHash: prev.toString('hex'), unsealed };
}
