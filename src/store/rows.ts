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
    csrDigest: row.csrDigest ? Buffer.from(row.csrDigest) : null,
    renewedFrom: row.renewedFrom,
    issuerKeyId: row.issuerKeyId,
    createdAt: row.createdAt,
  };
}

/** The certificate columns in raw SQL (the database's names), for statements outside drizzle. */
export const RAW_CERTIFICATE_COLUMNS =
  'serial, identity, sans, not_before, not_after, revoked_at, revocation_reason, revoked_by, der, fingerprint, token_issuer, token_jti, csr_digest, renewed_from, issuer_key_id, created_at';

export interface RawCertificateRow {
  serial: string;
  identity: string;
  sans: CertificateRecord['sans'];
  not_before: unknown;
  not_after: unknown;
  revoked_at: unknown;
  revocation_reason: string | null;
  revoked_by: string | null;
  der: Uint8Array;
  fingerprint: string;
  token_issuer: string | null;
  token_jti: string | null;
  csr_digest: Uint8Array | null;
  renewed_from: string | null;
  issuer_key_id: string;
  created_at: unknown;
}

export function fromRawRow(r: RawCertificateRow): CertificateRecord {
  return {
    serial: r.serial,
    identity: r.identity,
    sans: r.sans,
    notBefore: asDate(r.not_before),
    notAfter: asDate(r.not_after),
    revokedAt: r.revoked_at === null ? null : asDate(r.revoked_at),
    revocationReason: r.revocation_reason as RevocationReason | null,
    revokedBy: r.revoked_by,
    der: Buffer.from(r.der),
    fingerprint: r.fingerprint,
    tokenIssuer: r.token_issuer,
    tokenJti: r.token_jti,
    csrDigest: r.csr_digest ? Buffer.from(r.csr_digest) : null,
    renewedFrom: r.renewed_from,
    issuerKeyId: r.issuer_key_id,
    createdAt: asDate(r.created_at),
  };
}

/** Raw SQL rows from either driver (postgres.js returns an array, PGlite `{ rows }`). */
export async function rawRows<T>(db: Pick<Db, 'execute'>, query: SQL): Promise<T[]> {
  const result = (await db.execute(query)) as unknown;
  return (Array.isArray(result) ? result : (result as { rows: T[] }).rows) as T[];
}

export const asDate = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)));
