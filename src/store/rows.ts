/** Mapping between database rows and the domain's records, shared by the store's files. */
import type { SQL } from 'drizzle-orm';
import { certificates } from '../../db/schema.js';
import type { CertificateRecord, RevocationReason } from '../model.js';
import type { Db } from './database.js';

export type CertificateRow = typeof certificates.$inferSelect;

export function toRecord(row: CertificateRow): CertificateRecord {
  return {
    serial: row.serial,
    identity: row.identity,
    sans: row.sans,
    notBefore: row.notBefore,
    notAfter: row.notAfter,
    revokedAt: row.revokedAt,
    revocationReason: row.revocationReason as RevocationReason | null,
    revokedBy: row.revokedBy,
    der: Buffer.from(row.der),
    fingerprint: row.fingerprint,
    tokenIssuer: row.tokenIssuer,
    tokenJti: row.tokenJti,
    createdAt: row.createdAt,
  };
}

/** Raw SQL rows from either driver (postgres.js returns an array, PGlite `{ rows }`). */
export async function rawRows<T>(db: Pick<Db, 'execute'>, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown;
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

export const asDate = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));
