/**
 * The storage authority: the only user of the database. Every write that must hold together
 * runs in one transaction; invariants (unique serials, one use per token id) are enforced by the
 * database itself, so they hold across replicas.
 */
import { lt, sql } from 'drizzle-orm';
import { usedTokens } from '../../db/schema.js';
import type { CertificateRecord, SubjectAltNames } from '../model.js';
import { crlStatus, generateCrl, latestCrl, type BuiltCrl, type CrlBuild, type CrlStatus, type StoredCrl } from './crls.js';
import { recordIssuance } from './issuances.js';
import { databaseError, openDatabase, type Database, type DatabaseConfig, type PoolStats } from './database.js';
import { listCertificates, type ListFilter } from './listing.js';
import { revokeIdentity, revokeOne, type Revocation } from './revocations.js';
import { fromRawRow, RAW_CERTIFICATE_COLUMNS, type RawCertificateRow } from './rows.js';

export type { BuiltCrl, CrlBuild, CrlStatus, ListFilter, PoolStats, Revocation, StoredCrl };

export interface NewCertificate {
  serial: string;
  issuerKeyId: string;
  identity: string;
  sans: SubjectAltNames;
  notBefore: Date;
  notAfter: Date;
  der: Uint8Array;
  fingerprint: string;
  tokenIssuer: string | null;
  tokenJti: string | null;
}

/** A one-time token id to consume in the same transaction as the issuance. */
export interface TokenUse {
  issuer: string;
  jti: string;
  expiresAt: Date;
}

export interface Store {
  readonly kind: 'postgres' | 'pglite';
  /**
   * Commits the certificate record, and the token id when given, in one transaction.
   * A token id already used: CaError unauthorized, and nothing is written.
   */
  recordIssuance(cert: NewCertificate, tokenUse?: TokenUse): Promise<void>;
  getCertificate(serial: string): Promise<CertificateRecord | undefined>;
  /** Revokes a valid certificate; CaError notFound or alreadyRevoked otherwise. */
  revoke(serial: string, revocation: Revocation): Promise<CertificateRecord>;
  /** Revokes every valid certificate of an identity in one transaction; their serials. */
  revokeIdentity(identity: string, revocation: Revocation): Promise<string[]>;
  listCertificates(filter: ListFilter, now: Date): Promise<CertificateRecord[]>;
  crlStatus(): Promise<CrlStatus>;
  latestCrl(): Promise<StoredCrl | undefined>;
  /** Builds and stores the next CRL under the generation lock; undefined if another replica holds it. */
  generateCrl(now: Date, build: (b: CrlBuild) => Promise<BuiltCrl>): Promise<StoredCrl | undefined>;
  /** Deletes used token ids whose token has expired; returns how many. */
  pruneUsedTokens(before: Date): Promise<number>;
  /** Answers when the database does. */
  ping(): Promise<void>;
  /** Connections of the pool: open, idle, and callers waiting for one (Postgres only). */
  poolStats(): PoolStats | undefined;
  close(): Promise<void>;
}

/** Runs a database call, turning connection failures into `unavailable`. */
async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw databaseError(err);
  }
}

export function storeOn(database: Database): Store {
  const { db } = database;
  return {
    kind: database.kind,
    recordIssuance: (cert, tokenUse) => guarded(() => recordIssuance(database, cert, tokenUse)),
    getCertificate: (serial) =>
      guarded(async () => {
        // On the renewal-info and renewal paths, as hot as issuance: one prepared statement.
        const rows = await database.hot<RawCertificateRow>('service_ca_get_certificate', `select ${RAW_CERTIFICATE_COLUMNS} from certificates where serial = $1`, [serial]);
        return rows[0] ? fromRawRow(rows[0]) : undefined;
      }),
    revoke: (serial, revocation) => guarded(() => revokeOne(database, serial, revocation)),
    revokeIdentity: (identity, revocation) => guarded(() => revokeIdentity(database, identity, revocation)),
    listCertificates: (filter, now) => guarded(() => listCertificates(db, filter, now)),
    crlStatus: () => guarded(() => crlStatus(db)),
    latestCrl: () => guarded(() => latestCrl(database)),
    generateCrl: (now, build) => guarded(() => generateCrl(database, now, build)),
    pruneUsedTokens: (before) =>
      guarded(async () => {
        const rows = await db.delete(usedTokens).where(lt(usedTokens.expiresAt, before)).returning({ jti: usedTokens.jti });
        return rows.length;
      }),
    ping: () =>
      guarded(async () => {
        await db.execute(sql`select 1`);
      }),
    poolStats: () => database.poolStats(),
    close: () => database.close(),
  };
}

export async function createStore(config: DatabaseConfig): Promise<Store> {
  return storeOn(await openDatabase(config));
}
