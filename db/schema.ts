/**
 * The database schema. drizzle-kit generates the committed migrations under db/migrations from
 * this file (`npm run db:generate`); a migration is never edited once committed.
 * Serials are lower-case hex text, DER is bytea, times are timestamptz.
 */
import { sql } from 'drizzle-orm';
import { bigint, boolean, check, customType, foreignKey, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';

const bytea = customType<{ data: Uint8Array; driverData: Uint8Array }>({
  dataType: () => 'bytea',
});

const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

export const certificates = pgTable(
  'certificates',
  {
    serial: text('serial').primaryKey(),
    /** Hex SHA-1 key identifier of the issuing intermediate. */
    issuerKeyId: text('issuer_key_id').notNull(),
    identity: text('identity').notNull(),
    sans: jsonb('sans').$type<{ dns: string[]; ip: string[]; uri: string[]; email: string[] }>().notNull(),
    dnsNames: text('dns_names').array().notNull(),
    notBefore: tstz('not_before').notNull(),
    notAfter: tstz('not_after').notNull(),
    status: text('status').notNull().default('valid'),
    revokedAt: tstz('revoked_at'),
    revocationReason: text('revocation_reason'),
    revokedBy: text('revoked_by'),
    der: bytea('der').notNull(),
    fingerprint: text('fingerprint').notNull().unique(),
    tokenIssuer: text('token_issuer'),
    tokenJti: text('token_jti'),
    /**
     * SHA-256 of the CSR's DER: a retry with the same one-time token and a byte-identical CSR
     * answers with this certificate (docs/api.md "Retries").
     */
    csrDigest: bytea('csr_digest'),
    /** The certificate this one renewed (docs/api.md "Certificate holder"); null for a token issuance. */
    renewedFrom: text('renewed_from'),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    foreignKey({ name: 'certificates_renewed_from_fk', columns: [t.renewedFrom], foreignColumns: [t.serial] }),
    // A certificate renews once: a second child of the same parent cannot be inserted, whatever races.
    uniqueIndex('certificates_renewed_from_idx').on(t.renewedFrom).where(sql`${t.renewedFrom} is not null`),
    index('certificates_token_idx').on(t.tokenIssuer, t.tokenJti).where(sql`${t.tokenJti} is not null`),
    index('certificates_identity_idx').on(t.identity, t.notBefore),
    index('certificates_not_after_idx').on(t.notAfter),
    index('certificates_status_not_after_idx').on(t.status, t.notAfter),
    index('certificates_listing_idx').on(t.notBefore.desc(), t.serial.desc()),
    index('certificates_dns_names_idx').using('gin', t.dnsNames),
    index('certificates_revoked_idx').on(t.serial).where(sql`${t.status} = 'revoked'`),
    // The fleet view (src/store/fleet.ts): each identity's newest certificate, read from this index
    // alone (an index-only scan: every column the query needs is a key here, the issuer for a
    // retiring issuer's renewBy included), identities in byte order ("C": the same order, and the
    // same identity-prefix ranges, whatever the database's default collation). Postgres takes
    // `(identity collate "C")` as the column with that collation.
    index('certificates_fleet_idx').on(sql`${t.identity} collate "C"`, t.notBefore.desc(), t.serial.desc(), t.notAfter, t.revokedAt, t.issuerKeyId),
    // certificates_crl_entries_idx (issuer_key_id, not_after) INCLUDE (serial, revoked_at, revocation_reason)
    // WHERE status = 'revoked' is created by migrations 0003 and 0005 (drizzle has no INCLUDE).
    check('certificates_status_check', sql`${t.status} in ('valid', 'revoked')`),
    check(
      'certificates_revocation_check',
      sql`(${t.status} = 'revoked') = (${t.revokedAt} is not null and ${t.revocationReason} is not null)`,
    ),
    check('certificates_validity_check', sql`${t.notBefore} < ${t.notAfter}`),
  ],
);

/** One-time token ids (`jti`), recorded in the transaction that uses them; kept until `exp`. */
export const usedTokens = pgTable(
  'used_tokens',
  {
    issuer: text('issuer').notNull(),
    jti: text('jti').notNull(),
    expiresAt: tstz('expires_at').notNull(),
    usedAt: tstz('used_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.issuer, t.jti] }), index('used_tokens_expires_at_idx').on(t.expiresAt)],
);

/**
 * One row, bumped by every revocation transaction (the row lock orders them by commit). A CRL
 * records the revision its snapshot saw, so any replica can tell whether a newer revocation
 * is missing from the newest CRL without trusting clocks.
 */
export const crlState = pgTable(
  'crl_state',
  {
    id: integer('id').primaryKey().default(1),
    revision: bigint('revision', { mode: 'number' }).notNull().default(0),
  },
  (t) => [check('crl_state_single_row', sql`${t.id} = 1`)],
);

/**
 * Every CRL published, each issuer's numbered on its own: an issuer's numbers strictly increase
 * (RFC 5280 §5.2.3), and a new issuer's CRLs start at 1.
 */
export const crls = pgTable(
  'crls',
  {
    number: bigint('number', { mode: 'number' }).notNull(),
    issuerKeyId: text('issuer_key_id').notNull(),
    thisUpdate: tstz('this_update').notNull(),
    nextUpdate: tstz('next_update').notNull(),
    entries: integer('entries').notNull(),
    sourceRevision: bigint('source_revision', { mode: 'number' }).notNull(),
    der: bytea('der').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: 'crls_pkey', columns: [t.issuerKeyId, t.number] }), check('crls_update_order', sql`${t.thisUpdate} < ${t.nextUpdate}`)],
);

/**
 * The audit trail: one row per issuance, revocation and admin action, appended in the
 * transaction of the action it records (or, for a refused action, right after), and never
 * updated. `txid` is the inserting transaction's 64-bit id, from the column default, so every
 * insert path gets it without naming it. A row's place in the chain is its position
 * (txid, id): the sealer (src/audit/sealer.ts, one replica at a time) seals rows in that order
 * once their transactions have all finished, into audit_seals.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    at: tstz('at').notNull(),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    serial: text('serial'),
    outcome: text('outcome').notNull(),
    detail: jsonb('detail').$type<Record<string, unknown>>().notNull(),
    txid: bigint('txid', { mode: 'number' }).notNull().default(sql`pg_current_xact_id()::text::bigint`),
  },
  (t) => [
    index('audit_events_actor_idx').on(t.actor, t.id),
    index('audit_events_serial_idx').on(t.serial).where(sql`${t.serial} is not null`),
    index('audit_events_position_idx').on(t.txid, t.id),
    // An identity's last refusal (the fleet view): refusals are few beside successes, so a probe
    // newest first by actor finds it at once.
    index('audit_events_refusals_idx').on(t.actor, t.id).where(sql`${t.outcome} <> 'success'`),
    // The certificate of an ACME order whose finalization lost track of it (a crash between the
    // issuance's commit and the order's update): recovered from its issuance's row.
    index('audit_events_acme_order_idx')
      .on(sql`(${t.detail} #>> '{acme,order}')`)
      .where(sql`(${t.detail} #>> '{acme,order}') is not null`),
  ],
);

/**
 * The hash chain, one row per sealing, written once: the rows at positions (from, to] of
 * audit_events, listed in chain order in `ids` (chain positions first_seq to last_seq, global
 * and contiguous across seals), and their chained hashes concatenated in `hashes` (32 octets
 * each): hash(n) = SHA-256(hash(n−1) ‖ canonical(row n)), where the first row's hash(n−1) is
 * prev_hash, the previous seal's `hash` (32 zero octets before the first seal).
 */
export const auditSeals = pgTable(
  'audit_seals',
  {
    seq: bigint('seq', { mode: 'number' }).primaryKey(),
    firstSeq: bigint('first_seq', { mode: 'number' }).notNull(),
    lastSeq: bigint('last_seq', { mode: 'number' }).notNull(),
    fromTxid: bigint('from_txid', { mode: 'number' }).notNull(),
    fromId: bigint('from_id', { mode: 'number' }).notNull(),
    toTxid: bigint('to_txid', { mode: 'number' }).notNull(),
    toId: bigint('to_id', { mode: 'number' }).notNull(),
    ids: bigint('ids', { mode: 'number' }).array().notNull(),
    hashes: bytea('hashes').notNull(),
    prevHash: bytea('prev_hash').notNull(),
    hash: bytea('hash').notNull(),
    sealedAt: tstz('sealed_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('audit_seals_to_idx').on(t.toTxid, t.toId),
    check(
      'audit_seals_shape',
      sql`${t.firstSeq} <= ${t.lastSeq} and ${t.lastSeq} - ${t.firstSeq} + 1 = cardinality(${t.ids}) and (${t.fromTxid}, ${t.fromId}) < (${t.toTxid}, ${t.toId})`,
    ),
  ],
);

/**
 * The head of the audit chain, updated once per seal: the last seal's number, its last row's
 * chain position and hash, and the position it covers to (genesis: 0, 0, 32 zero octets, (0, 0)).
 */
export const auditHead = pgTable(
  'audit_head',
  {
    id: integer('id').primaryKey().default(1),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    hash: bytea('hash').notNull(),
    seal: bigint('seal', { mode: 'number' }).notNull().default(0),
    toTxid: bigint('to_txid', { mode: 'number' }).notNull().default(0),
    toId: bigint('to_id', { mode: 'number' }).notNull().default(0),
  },
  (t) => [check('audit_head_single_row', sql`${t.id} = 1`)],
);

/**
 * Issuance counts per identity and fixed window (limits.issuance), shared by every replica:
 * one upsert per request (INSERT … ON CONFLICT DO UPDATE count = count + 1 RETURNING count).
 * Windows older than the current one are deleted by the pruning timer.
 */
export const rateCounters = pgTable(
  'rate_counters',
  {
    key: text('key').notNull(),
    windowStart: tstz('window_start').notNull(),
    count: integer('count').notNull(),
  },
  (t) => [primaryKey({ columns: [t.key, t.windowStart] }), index('rate_counters_window_idx').on(t.windowStart)],
);

/**
 * The last renewal-info poll of each certificate: when, and from which address the service saw
 * it come. Written in batches by every process (policy/renewal-info.ts), at most one row per
 * serial per batch, and never moved back in time: an older poll that another replica flushes
 * late leaves the row as it is. Only serials of certificates are written (the batch statement
 * joins certificates, store/fleet.ts); no foreign key, whose check would lock each certificate's
 * row (a write to the certificates table) at every batch: a 1000-row batch took 25 ms with it
 * and 17 ms without on the embedded database. Certificates are never deleted.
 */
export const renewalInfoPolls = pgTable('renewal_info_polls', {
  serial: text('serial').primaryKey(),
  polledAt: tstz('polled_at').notNull(),
  /** The client address the service saw (the peer of the connection); null when it had none. */
  address: text('address'),
});

/**
 * The fleet summary behind the gauges (src/metrics.ts), one row: the process that claims it
 * (an update guarded on computedAt) computes the counts for every replica and worker, once per
 * monitor.refresh; the others read them.
 */
export const fleetSummary = pgTable(
  'fleet_summary',
  {
    id: integer('id').primaryKey().default(1),
    computedAt: tstz('computed_at').notNull(),
    /** `{"states": {...}, "severities": {...}}` as GET /v1/fleet/summary answers; null until the first computation ends. */
    counts: jsonb('counts').$type<{ states: Record<string, number>; severities: Record<string, number> }>(),
  },
  (t) => [check('fleet_summary_single_row', sql`${t.id} = 1`)],
);

/**
 * The fleet's alerts (monitor.webhook, src/policy/fleet-alerts.ts): one row per time an identity
 * entered `missedRenewal` state or `critical` severity (`alert`), resolved when it left. At most
 * one open row per identity and alert (a partial unique index). The webhook's firing and resolved
 * notifications are marked sent only after a 2xx, with updates guarded on the column being null.
 */
export const fleetAlerts = pgTable(
  'fleet_alerts',
  {
    identity: text('identity').notNull(),
    /** `missedRenewal` or `critical`. */
    alert: text('alert').notNull(),
    startedAt: tstz('started_at').notNull(),
    resolvedAt: tstz('resolved_at'),
    firedSentAt: tstz('fired_sent_at'),
    resolvedSentAt: tstz('resolved_sent_at'),
  },
  (t) => [
    primaryKey({ columns: [t.identity, t.alert, t.startedAt] }),
    check('fleet_alerts_alert', sql`${t.alert} in ('missedRenewal', 'critical')`),
    uniqueIndex('fleet_alerts_open_idx').on(t.identity, t.alert).where(sql`${t.resolvedAt} is null`),
    index('fleet_alerts_pending_idx')
      .on(t.startedAt)
      .where(sql`(${t.resolvedAt} is null and ${t.firedSentAt} is null) or (${t.resolvedAt} is not null and ${t.firedSentAt} is not null and ${t.resolvedSentAt} is null)`),
  ],
);

/**
 * Who checks the fleet's alerts (one row): a process claims the check with an update guarded on
 * `claimedUntil` having passed, extends its claim before each delivery, and leaves it at the next
 * check's due time when done. A process that dies mid-check loses the claim when it lapses.
 */
export const fleetAlertChecks = pgTable(
  'fleet_alert_checks',
  {
    id: integer('id').primaryKey().default(1),
    claimedUntil: tstz('claimed_until').notNull(),
    /** The claiming check's random token: only it extends or releases the claim. */
    holder: text('holder').notNull(),
  },
  (t) => [check('fleet_alert_checks_single_row', sql`${t.id} = 1`)],
);

/**
 * ACME (docs/api.md "ACME"): external account bindings issued by POST /v1/acme/eab. A binding
 * names the identity an account created with it acts as; it creates one account, once, before
 * `expiresAt` (`accountId` is set, guarded on being null, in the transaction that creates the
 * account). Its HMAC key is not stored: it is derived from the kid by the signer
 * (src/signer/signer.ts, deriveSecret), so the database holds nothing that would let a reader bind an account.
 */
export const acmeBindings = pgTable(
  'acme_bindings',
  {
    kid: text('kid').primaryKey(),
    identity: text('identity').notNull(),
    /** The configured issuer whose token asked for it (a policy's `issuers`); null when an admin named the identity without one. */
    issuer: text('issuer'),
    /** The token's `sans` claim, when it had one: the account is limited to those names too. */
    tokenSans: jsonb('token_sans').$type<string[]>(),
    createdBy: text('created_by').notNull(),
    createdAt: tstz('created_at').notNull(),
    expiresAt: tstz('expires_at').notNull(),
    accountId: text('account_id'),
  },
  (t) => [index('acme_bindings_expires_idx').on(t.expiresAt)],
);

/** ACME accounts (RFC 8555 §7.1.2), each bound to one identity by its binding. */
export const acmeAccounts = pgTable(
  'acme_accounts',
  {
    id: text('id').primaryKey(),
    /** RFC 7638 thumbprint (SHA-256, base64url) of the account key: one account per key. */
    thumbprint: text('thumbprint').notNull(),
    /** The account's public key as a JWK. */
    jwk: jsonb('jwk').$type<Record<string, unknown>>().notNull(),
    status: text('status').notNull(),
    contact: jsonb('contact').$type<string[]>().notNull(),
    identity: text('identity').notNull(),
    issuer: text('issuer'),
    tokenSans: jsonb('token_sans').$type<string[]>(),
    bindingKid: text('binding_kid').notNull(),
    createdAt: tstz('created_at').notNull(),
  },
  (t) => [
    uniqueIndex('acme_accounts_thumbprint_idx').on(t.thumbprint),
    uniqueIndex('acme_accounts_binding_idx').on(t.bindingKid),
    check('acme_accounts_status', sql`${t.status} in ('valid', 'deactivated', 'revoked')`),
  ],
);

/**
 * ACME orders (RFC 8555 §7.1.3). `status` holds what cannot be derived: `processing`, `valid`,
 * `invalid`, or `pending` (ready or not is read from its authorizations).
 */
export const acmeOrders = pgTable(
  'acme_orders',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id')
      .notNull()
      .references(() => acmeAccounts.id, { onDelete: 'cascade' }),
    status: text('status').notNull(),
    /** `[{type, value}]` in the order asked. */
    identifiers: jsonb('identifiers').$type<{ type: string; value: string }[]>().notNull(),
    notBefore: tstz('not_before'),
    notAfter: tstz('not_after'),
    expiresAt: tstz('expires_at').notNull(),
    /** The problem document of a failed order. */
    error: jsonb('error').$type<Record<string, unknown>>(),
    certificateSerial: text('certificate_serial'),
    createdAt: tstz('created_at').notNull(),
    /**
     * While `processing`: the finalizing request's lease. Past it, a reader settles the order
     * from the audit trail (a certificate issued for it, or ready again).
     */
    processingUntil: tstz('processing_until'),
  },
  (t) => [
    index('acme_orders_account_idx').on(t.accountId, t.createdAt),
    index('acme_orders_expires_idx').on(t.expiresAt),
    check('acme_orders_status', sql`${t.status} in ('pending', 'processing', 'valid', 'invalid')`),
  ],
);

/** ACME authorizations (RFC 8555 §7.1.4): one identifier of one account. */
export const acmeAuthorizations = pgTable(
  'acme_authorizations',
  {
    id: text('id').primaryKey(),
    accountId: text('account_id')
      .notNull()
      .references(() => acmeAccounts.id, { onDelete: 'cascade' }),
    identifierType: text('identifier_type').notNull(),
    identifierValue: text('identifier_value').notNull(),
    wildcard: boolean('wildcard').notNull(),
    status: text('status').notNull(),
    expiresAt: tstz('expires_at').notNull(),
    createdAt: tstz('created_at').notNull(),
  },
  (t) => [
    index('acme_authorizations_reuse_idx').on(t.accountId, t.identifierType, t.identifierValue, t.expiresAt),
    index('acme_authorizations_expires_idx').on(t.expiresAt),
    check('acme_authorizations_status', sql`${t.status} in ('pending', 'valid', 'invalid', 'deactivated', 'revoked')`),
  ],
);

/** Which authorizations an order needs, in the order of its identifiers. */
export const acmeOrderAuthorizations = pgTable(
  'acme_order_authorizations',
  {
    orderId: text('order_id')
      .notNull()
      .references(() => acmeOrders.id, { onDelete: 'cascade' }),
    authorizationId: text('authorization_id')
      .notNull()
      .references(() => acmeAuthorizations.id, { onDelete: 'cascade' }),
    position: integer('position').notNull(),
  },
  (t) => [primaryKey({ columns: [t.orderId, t.authorizationId] }), index('acme_order_authorizations_authz_idx').on(t.authorizationId)],
);

/**
 * ACME challenges (RFC 8555 §7.1.5). A validation claims its challenge with an update guarded
 * on `status` (`pending`, or `processing` whose `processingUntil` passed: the process validating
 * it died), so that one process validates it at a time.
 */
export const acmeChallenges = pgTable(
  'acme_challenges',
  {
    id: text('id').primaryKey(),
    authorizationId: text('authorization_id')
      .notNull()
      .references(() => acmeAuthorizations.id, { onDelete: 'cascade' }),
    type: text('type').notNull(),
    token: text('token').notNull(),
    status: text('status').notNull(),
    validatedAt: tstz('validated_at'),
    processingUntil: tstz('processing_until'),
    error: jsonb('error').$type<Record<string, unknown>>(),
  },
  (t) => [
    index('acme_challenges_authz_idx').on(t.authorizationId),
    check('acme_challenges_status', sql`${t.status} in ('pending', 'processing', 'valid', 'invalid')`),
  ],
);

/**
 * ACME nonces already used (RFC 8555 §6.5): a nonce is minted without a write (it carries its
 * own time and a MAC, src/policy/acme/nonces.ts) and consumed by an insert that conflicts on a
 * second use, on every replica alike. Rows go once the nonce would be refused as too old anyway.
 */
export const acmeUsedNonces = pgTable(
  'acme_used_nonces',
  {
    nonce: bytea('nonce').primaryKey(),
    expiresAt: tstz('expires_at').notNull(),
  },
  (t) => [index('acme_used_nonces_expires_idx').on(t.expiresAt)],
);
