/**
 * The storage authority: the only user of the database. Every write that must hold together
 * runs in one transaction; invariants (unique serials, one use per token id) are enforced by the
 * database itself, so they hold across replicas.
 */
import { lt, sql } from 'drizzle-orm';
import { rateCounters, usedTokens } from '../../db/schema.js';
import type { AuditEvent, SealedAuditEvent } from '../audit/chain.js';
import type { CertificateRecord, SubjectAltNames } from '../model.js';
import { crlStatus, generateCrl, latestCrl, type BuiltCrl, type CrlBuild, type CrlStatus, type StoredCrl } from './crls.js';
import { appendAudit, auditChain, auditHeadOf, listAudit, sealAudit, type AuditFilter, type StoredAuditEvent } from './audit.js';
import { recordIssuance, type IssuanceAudit } from './issuances.js';
import { databaseError, openDatabase, type Database, type DatabaseConfig, type PoolStats } from './database.js';
import { listCertificates, type ListFilter } from './listing.js';
import { revokeIdentity, revokeOne, type Revocation } from './revocations.js';
import { fromRawRow, RAW_CERTIFICATE_COLUMNS, type RawCertificateRow } from './rows.js';

export type { AuditFilter, BuiltCrl, CrlBuild, CrlStatus, IssuanceAudit, ListFilter, PoolStats, Revocation, StoredAuditEvent, StoredCrl };

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
   * Commits the certificate record, its audit row, and the token id when given, in one
   * transaction. A token id already used: CaError unauthorized, and nothing is written.
   */
  recordIssuance(cert: NewCertificate, tokenUse: TokenUse | undefined, audit: IssuanceAudit): Promise<void>;
  getCertificate(serial: string): Promise<CertificateRecord | undefined>;
  /** Revokes a valid certificate, with its audit row; CaError notFound or alreadyRevoked otherwise. */
  revoke(serial: string, revocation: Revocation): Promise<CertificateRecord>;
  /** Revokes every valid certificate of an identity in one transaction, with audit rows; their serials. */
  revokeIdentity(identity: string, revocation: Revocation): Promise<string[]>;
  listCertificates(filter: ListFilter, now: Date): Promise<CertificateRecord[]>;
  /** The revocation revision, and the newest CRL of the intermediate with this key id (hex). */
  crlStatus(issuerKeyId: string): Promise<CrlStatus>;
  latestCrl(issuerKeyId: string): Promise<StoredCrl | undefined>;
  /**
   * Builds and stores the intermediate's next CRL (its revoked, unexpired certificates) under the
   * generation lock; undefined if another replica holds it.
   */
  generateCrl(issuerKeyId: string, now: Date, build: (b: CrlBuild) => Promise<BuiltCrl>): Promise<StoredCrl | undefined>;
  /** Deletes used token ids whose token has expired; returns how many. */
  pruneUsedTokens(before: Date): Promise<number>;
  /** Counts one request against key in the window starting at windowStart; the count so far. */
  countRequest(key: string, windowStart: Date): Promise<number>;
  /** Deletes the counters of windows that started before `before`. */
  pruneRateCounters(before: Date): Promise<number>;
  /** Appends audit rows of actions that wrote nothing else (refusals, reads). */
  appendAudit(events: AuditEvent[]): Promise<void>;
  listAudit(filter: AuditFilter): Promise<StoredAuditEvent[]>;
  /** Links unsealed audit rows into the chain (see store/audit.ts); how many, and the new head. */
  sealAudit(max: number, link: Parameters<typeof sealAudit>[2]): Promise<{ sealed: number; seq: number; hash: Buffer }>;
  auditHead(): Promise<{ seq: number; hash: Buffer; unsealed: number }>;
  auditChain(): AsyncIterable<SealedAuditEvent>;
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
    recordIssuance: (cert, tokenUse, audit) => guarded(() => recordIssuance(database, cert, tokenUse, audit)),
    getCertificate: (serial) =>
      guarded(async () => {
        // On the renewal-info and renewal paths, as hot as issuance: one prepared statement.
        const rows = await database.hot<RawCertificateRow>('service_ca_get_certificate', `select ${RAW_CERTIFICATE_COLUMNS} from certificates where serial = $1`, [serial]);
        return rows[0] ? fromRawRow(rows[0]) : undefined;
      }),
    revoke: (serial, revocation) => guarded(() => revokeOne(database, serial, revocation)),
    revokeIdentity: (identity, revocation) => guarded(() => revokeIdentity(database, identity, revocation)),
    listCertificates: (filter, now) => guarded(() => listCertificates(db, filter, now)),
    crlStatus: (issuerKeyId) => guarded(() => crlStatus(db, issuerKeyId)),
    latestCrl: (issuerKeyId) => guarded(() => latestCrl(database, issuerKeyId)),
    generateCrl: (issuerKeyId, now, build) => guarded(() => generateCrl(database, issuerKeyId, now, build)),
    pruneUsedTokens: (before) =>
      guarded(async () => {
        const rows = await db.delete(usedTokens).where(lt(usedTokens.expiresAt, before)).returning({ jti: usedTokens.jti });
        return rows.length;
      }),
    ping: () =>
      guarded(async () => {
        await db.execute(sql`select 1`);
      }),
    countRequest: (key, windowStart) =>
      guarded(async () => {
        const [row] = await database.hot<{ count: number }>(
          'service_ca_count_request',
          `insert into rate_counters (key, window_start, count) values ($1, $2::timestamptz, 1)
           on conflict (key, window_start) do update set count = rate_counters.count + 1 returning count`,
          [key, windowStart.toISOString()],
        );
        return Number(row?.count ?? 0);
      }),
    pruneRateCounters: (before) =>
      guarded(async () => {
        const rows = await db.delete(rateCounters).where(lt(rateCounters.windowStart, before)).returning({ key: rateCounters.key });
        return rows.length;
      }),
    appendAudit: (events) => guarded(() => appendAudit(db, events)),
    listAudit: (filter) => guarded(() => listAudit(db, filter)),
    sealAudit: (max, link) => guarded(() => sealAudit(database, max, link)),
    auditHead: () => guarded(() => auditHeadOf(db)),
    auditChain: () => auditChain(db),
    poolStats: () => database.poolStats(),
    close: () => database.close(),
  };
}

export async function createStore(config: DatabaseConfig): Promise<Store> {
  return storeOn(await openDatabase(config));
}
