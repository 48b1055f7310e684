/**
 * The storage authority: the only user of the database. Every write that must hold together
 * runs in one transaction; invariants (unique serials, one use per token id) are enforced by the
 * database itself, so they hold across replicas.
 */
import { lt, sql } from 'drizzle-orm';
import { rateCounters, usedTokens } from '../../db/schema.js';
import type { AuditEvent, AuditHead, ChainItem } from '../audit/chain.js';
import type { CertificateRecord, SubjectAltNames } from '../model.js';
import { crlStatus, generateCrl, latestCrl, type BuiltCrl, type CrlBuild, type CrlStatus, type StoredCrl } from './crls.js';
import { appendAudit, auditChain, auditHeadOf, listAudit, sealAudit, type AuditFilter, type SealResult, type StoredAuditEvent } from './audit.js';
import { issuanceConflicts, recordIssuances, type IssuanceAudit, type IssuanceOutcome, type PendingIssuance } from './issuances.js';
import { GROUP_COMMIT_DEFAULTS } from '../config.js';
import { createGroupCommit, type GroupCommitOptions } from './group-commit.js';
import { databaseError, openDatabase, type Database, type DatabaseConfig, type PoolStats } from './database.js';
import { listCertificates, type ListFilter } from './listing.js';
import { claimFleetAlertCheck, extendFleetAlertCheck, markFleetAlertsSent, pendingFleetAlerts, syncFleetAlerts, type FleetAlertChanges, type FleetAlertKind, type PendingFleetAlert } from './fleet-alerts.js';
import { countFleet, listFleet, recordPolls, sharedFleetCounts, type FleetCounts, type FleetQuery, type FleetRow, type Poll, type FleetRules, type StoredFleetCounts } from './fleet.js';
import { revokeIdentity, revokeOne, type Revocation, type RevokedCertificate } from './revocations.js';
import { CaError } from '../errors.js';
import { acmeAccountStore, type AcmeAccountStore } from './acme-accounts.js';
import { acmeOrderStore, type AcmeOrderStore } from './acme-orders.js';
import { asDate, fromRawRow, RAW_CERTIFICATE_COLUMNS, rawRows, type RawCertificateRow } from './rows.js';
import { listenForCrls, type CrlListenerHandlers, type CrlNotice, type Subscription } from './notifications.js';

export type { CrlListenerHandlers, CrlNotice, Subscription };
export type { GroupCommitOptions };
export { FLEET_SEVERITIES, FLEET_STATES, type FleetPosition, type FleetSeverity, type FleetState } from './fleet.js';
export type { FleetAlertChanges, FleetAlertKind, PendingFleetAlert };
export type { FleetCounts, FleetQuery, FleetRow, Poll, FleetRules, StoredFleetCounts };
export type { AuditFilter, BuiltCrl, CrlBuild, CrlStatus, IssuanceAudit, IssuanceOutcome, ListFilter, PoolStats, Revocation, RevokedCertificate, StoredAuditEvent, StoredCrl };

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
  /** SHA-256 of the CSR's DER (for the idempotent retry); null where no CSR was sent. */
  csrDigest: Uint8Array | null;
  /** The certificate this one renews; its token use is then required. */
  renewedFrom: string | null;
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
   * transaction, and for a renewal only while its parent is valid and not renewed yet. Anything
   * but `recorded` wrote nothing (store/issuances.ts). The transaction may hold the issuances
   * of concurrent callers too (group commit, store/group-commit.ts); it resolves after the
   * commit, and a transaction that fails rejects every caller in it with `unavailable`.
   */
  recordIssuance(cert: NewCertificate, tokenUse: TokenUse | undefined, audit: IssuanceAudit): Promise<IssuanceOutcome>;
  getCertificate(serial: string): Promise<CertificateRecord | undefined>;
  /**
   * A certificate's validity and revocation time, for the public listener (renewal-info): on the
   * database's own small pool for public reads, never the request pool issuance uses.
   */
  getPublicTimes(serial: string): Promise<CertificateTimes | undefined>;
  /** The certificate issued with this one-time token id, if any. */
  issuedWithToken(issuer: string, jti: string): Promise<CertificateRecord | undefined>;
  /** The renewal of a certificate, if it has one (it can have at most one). */
  renewalOf(serial: string): Promise<CertificateRecord | undefined>;
  /**
   * Revokes a valid certificate, with its audit row, and with reason keyCompromise its whole
   * renewal lineage in the same transaction; CaError notFound or alreadyRevoked otherwise.
   */
  revoke(serial: string, revocation: Revocation): Promise<RevokedCertificate>;
  /** Revokes every valid certificate of an identity in one transaction, with audit rows; their serials. */
  revokeIdentity(identity: string, revocation: Revocation): Promise<string[]>;
  listCertificates(filter: ListFilter, now: Date): Promise<CertificateRecord[]>;
  /** A page of the fleet: every identity's state at query.now, needing attention first (store/fleet.ts). */
  listFleet(query: FleetQuery): Promise<FleetRow[]>;
  /** Identities by state and by severity at now. */
  countFleet(now: Date, rules: FleetRules): Promise<FleetCounts>;
  /**
   * The counts behind the gauges, computed once per refreshSeconds by whichever process on the
   * database claims it first, and read by all (undefined before the first computation ends).
   */
  sharedFleetCounts(now: Date, rules: FleetRules, refreshSeconds: number): Promise<StoredFleetCounts | undefined>;
  /** Claims the fleet alerts' check for holder (store/fleet-alerts.ts) when the last claim lapsed; true when claimed. */
  claimFleetAlertCheck(holder: string, leaseSeconds: number): Promise<boolean>;
  /** Moves holder's claim to leaseSeconds from now; false when another process holds it now. */
  extendFleetAlertCheck(holder: string, leaseSeconds: number): Promise<boolean>;
  /** Opens alert rows for identities now missedRenewal or critical, resolves those that left. */
  syncFleetAlerts(now: Date, rules: FleetRules): Promise<FleetAlertChanges>;
  /** Alert rows whose firing or resolution is still to be delivered, oldest first. */
  pendingFleetAlerts(limit: number): Promise<PendingFleetAlert[]>;
  /** Marks deliveries done, each only once; the rows this call marked. */
  markFleetAlertsSent(alerts: PendingFleetAlert[], sentAt: Date): Promise<number>;
  /** Writes renewal-info polls (one per serial), never moving a serial's last poll back in time; rows written. */
  recordPolls(polls: Poll[]): Promise<number>;
  /**
   * Unexpired certificates at `now` by issuer key id, and how many of them are revoked: an
   * issuer with none left has nothing more to publish and can be removed (`service-ca ca status`).
   */
  issuerCertificates(now: Date): Promise<IssuerCertificates[]>;
  /** The revocation revision, and the newest CRL of the intermediate with this key id (hex). */
  crlStatus(issuerKeyId: string): Promise<CrlStatus>;
  latestCrl(issuerKeyId: string): Promise<StoredCrl | undefined>;
  /**
   * Builds and stores the intermediate's next CRL (its revoked, unexpired certificates) under the
   * generation lock; undefined if another replica holds it.
   */
  generateCrl(issuerKeyId: string, now: Date, build: (b: CrlBuild) => Promise<BuiltCrl>): Promise<StoredCrl | undefined>;
  /**
   * Hears of every CRL any process stores, on a connection of its own (Postgres LISTEN/NOTIFY,
   * store/notifications.ts), until closed. Undefined on PGlite: one process, nobody to hear.
   */
  watchCrls(handlers: CrlListenerHandlers): Subscription | undefined;
  /** Deletes used token ids whose token has expired; returns how many. */
  pruneUsedTokens(before: Date): Promise<number>;
  /** Counts one request against key in the window starting at windowStart; the count so far. */
  countRequest(key: string, windowStart: Date): Promise<number>;
  /** Deletes the counters of windows that started before `before`. */
  pruneRateCounters(before: Date): Promise<number>;
  /** Appends audit rows of actions that wrote nothing else (refusals, reads). */
  appendAudit(events: AuditEvent[]): Promise<void>;
  listAudit(filter: AuditFilter): Promise<StoredAuditEvent[]>;
  /** Seals the next final audit rows into one new seal (see store/audit.ts); how many, and the new head. */
  sealAudit(max: number, link: Parameters<typeof sealAudit>[2]): Promise<SealResult>;
  /** The chain head, and how many rows lie after it (not sealed yet). */
  auditHead(): Promise<AuditHead & { unsealed: number }>;
  /** The chain for verifyChain, seals 1 to throughSeal (the head's seal, read first). */
  auditChain(throughSeal: number): AsyncIterable<ChainItem>;
  /** Answers when the database does. */
  ping(): Promise<void>;
  /** Connections of the pool: open, idle, and callers waiting for one (Postgres only). */
  poolStats(): PoolStats | undefined;
  /** Issuance batches committed by this process, and the issuances in them. */
  groupCommitStats(): { batches: number; items: number };
  /** The public reads' pool (Postgres only). */
  publicPoolStats(): PoolStats | undefined;
  /** ACME accounts, bindings, nonces, orders, authorizations and challenges (store/acme-*.ts). */
  readonly acme: AcmeStore;
  close(): Promise<void>;
}

export type AcmeStore = AcmeAccountStore & AcmeOrderStore;
export type { AcmeAccount, AcmeBinding } from './acme-accounts.js';
export type { AcmeAuthorization, AcmeChallenge, AcmeChallengeType, AcmeIdentifier, AcmeOrder, NewAcmeAuthorization } from './acme-orders.js';

/** Every method of `methods` with its database errors mapped as guarded() maps them. */
function allGuarded<T extends object>(methods: T): T {
  return Object.fromEntries(
    Object.entries(methods).map(([name, fn]) => [name, (...args: unknown[]) => guarded(() => (fn as (...a: unknown[]) => Promise<unknown>)(...args))]),
  ) as T;
}

export interface IssuerCertificates {
  issuerKeyId: string;
  unexpired: number;
  revoked: number;
}

/** What renewal-info needs of a certificate (docs/api.md "Renewal window"). */
export interface CertificateTimes {
  notBefore: Date;
  notAfter: Date;
  revokedAt: Date | null;
  /** Key id of the intermediate that signed it. */
  issuerKeyId: string;
}

/** Runs a database call, turning connection failures into `unavailable`. */
async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw databaseError(err);
  }
}

/** A batch that did not commit: every issuance in it is refused with 503 and nothing was written. */
function batchFailure(err: unknown): unknown {
  const mapped = databaseError(err);
  if (mapped instanceof CaError) return mapped;
  return new CaError('unavailable', 'the issuance could not be recorded; retry shortly', { cause: err, retryAfter: 1 });
}

/**
 * `listenUrl`: the Postgres URL for watchCrls' own connection (none: watchCrls is off);
 * `groupCommit`: how issuances are batched (GROUP_COMMIT_DEFAULTS otherwise).
 */
export function storeOn(database: Database, listenUrl?: string, groupCommit: GroupCommitOptions = GROUP_COMMIT_DEFAULTS): Store {
  const { db } = database;
  // PGlite runs one statement at a time: a second batch in flight would only wait for the first.
  const batching = database.kind === 'pglite' ? { ...groupCommit, maxInFlight: 1 } : groupCommit;
  const issuances = createGroupCommit<PendingIssuance, IssuanceOutcome>(
    batching,
    (batch) =>
      recordIssuances(database, batch).catch((err: unknown) => {
        throw batchFailure(err);
      }),
    issuanceConflicts,
  );
  return {
    kind: database.kind,
    acme: allGuarded({ ...acmeAccountStore(database), ...acmeOrderStore(database) }),
    recordIssuance: (cert, tokenUse, audit) => issuances.submit({ cert, tokenUse, audit }),
    getCertificate: (serial) =>
      guarded(async () => {
        // On the renewal-info and renewal paths, as hot as issuance: one prepared statement.
        const rows = await database.hot<RawCertificateRow>('service_ca_get_certificate', `select ${RAW_CERTIFICATE_COLUMNS} from certificates where serial = $1`, [serial]);
        return rows[0] ? fromRawRow(rows[0]) : undefined;
      }),
    issuedWithToken: (issuer, jti) =>
      guarded(async () => {
        const rows = await database.hot<RawCertificateRow>(
          'service_ca_certificate_by_token',
          `select ${RAW_CERTIFICATE_COLUMNS} from certificates where token_issuer = $1 and token_jti = $2 limit 1`,
          [issuer, jti],
        );
        return rows[0] ? fromRawRow(rows[0]) : undefined;
      }),
    renewalOf: (serial) =>
      guarded(async () => {
        const rows = await database.hot<RawCertificateRow>('service_ca_renewal_of', `select ${RAW_CERTIFICATE_COLUMNS} from certificates where renewed_from = $1`, [serial]);
        return rows[0] ? fromRawRow(rows[0]) : undefined;
      }),
    getPublicTimes: (serial) =>
      guarded(async () => {
        const rows = await database.publicRead<{ not_before: unknown; not_after: unknown; revoked_at: unknown; issuer_key_id: string }>(
          'service_ca_get_public_times',
          'select not_before, not_after, revoked_at, issuer_key_id from certificates where serial = $1',
          [serial],
        );
        const r = rows[0];
        return r
          ? { notBefore: asDate(r.not_before), notAfter: asDate(r.not_after), revokedAt: r.revoked_at === null ? null : asDate(r.revoked_at), issuerKeyId: r.issuer_key_id }
          : undefined;
      }),
    revoke: (serial, revocation) => guarded(() => revokeOne(database, serial, revocation)),
    revokeIdentity: (identity, revocation) => guarded(() => revokeIdentity(database, identity, revocation)),
    listCertificates: (filter, now) => guarded(() => listCertificates(db, filter, now)),
    listFleet: (query) => guarded(() => listFleet(db, query)),
    countFleet: (now, rules) => guarded(() => countFleet(db, now, rules)),
    sharedFleetCounts: (now, rules, refreshSeconds) => guarded(() => sharedFleetCounts(database, now, rules, refreshSeconds)),
    recordPolls: (polls) => guarded(() => recordPolls(db, polls)),
    claimFleetAlertCheck: (holder, leaseSeconds) => guarded(() => claimFleetAlertCheck(db, holder, leaseSeconds)),
    extendFleetAlertCheck: (holder, leaseSeconds) => guarded(() => extendFleetAlertCheck(db, holder, leaseSeconds)),
    syncFleetAlerts: (now, rules) => guarded(() => syncFleetAlerts(database, now, rules)),
    pendingFleetAlerts: (limit) => guarded(() => pendingFleetAlerts(db, limit)),
    markFleetAlertsSent: (alerts, sentAt) => guarded(() => markFleetAlertsSent(db, alerts, sentAt)),
    issuerCertificates: (now) =>
      guarded(async () => {
        // An admin's occasional question: a scan of the unexpired rows (certificates_status_not_after_idx).
        const rows = await rawRows<{ issuer_key_id: string; unexpired: string | number; revoked: string | number }>(
          db,
          sql`select issuer_key_id, count(*) as unexpired, count(*) filter (where status = 'revoked') as revoked
              from certificates where not_after > ${now.toISOString()}::timestamptz group by issuer_key_id`,
        );
        return rows.map((r) => ({ issuerKeyId: r.issuer_key_id, unexpired: Number(r.unexpired), revoked: Number(r.revoked) }));
      }),
    crlStatus: (issuerKeyId) => guarded(() => crlStatus(db, issuerKeyId)),
    latestCrl: (issuerKeyId) => guarded(() => latestCrl(database, issuerKeyId)),
    generateCrl: (issuerKeyId, now, build) => guarded(() => generateCrl(database, issuerKeyId, now, build)),
    watchCrls: (handlers) => (database.kind === 'postgres' && listenUrl ? listenForCrls(listenUrl, handlers) : undefined),
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
    auditChain: (throughSeal) => auditChain(db, throughSeal),
    poolStats: () => database.poolStats(),
    groupCommitStats: () => issuances.stats(),
    publicPoolStats: () => database.publicPoolStats(),
    close: async () => {
      await issuances.drain();
      await database.close();
    },
  };
}

export async function createStore(config: DatabaseConfig & { groupCommit?: GroupCommitOptions | undefined }): Promise<Store> {
  return storeOn(await openDatabase(config), config.url, config.groupCommit);
}
