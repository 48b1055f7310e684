/**
 * Recording an issuance: the certificate row, its audit row, and the token id it used when there
 * is one, in ONE statement (a data-modifying CTE), so it is one atomic implicit transaction and
 * one round trip: the token id is inserted with ON CONFLICT DO NOTHING, the certificate only
 * where that insert returned a row, and the audit row only where the certificate was inserted.
 * Zero rows written means the token id was used before.
 *
 * A renewal (API.md "Certificate holder") adds its parent to the same statement: the parent row
 * is read FOR SHARE and must still be valid and unexpired, so a revocation committed first makes
 * the renewal write nothing, and one that comes later waits for the renewal's commit (its
 * keyCompromise lineage then finds the child). The partial unique index on renewed_from
 * (db/schema.ts) makes "a certificate renews once" hold whatever races: the second child's
 * insert does nothing.
 */
import type { Database } from './database.js';
import type { AuditAction } from '../audit/chain.js';
import type { NewCertificate, TokenUse } from './store.js';

/** Who asked, for the audit row (its time is the certificate's creation, its serial the certificate's). */
export interface IssuanceAudit {
  actor: string;
  action: AuditAction;
  at: Date;
  detail: Record<string, unknown>;
}

/**
 * What recording came to: `recorded`, or why nothing was written: the token id was used before
 * (`tokenUsed`), the renewed certificate is no longer valid (`parentInvalid`), or it already has
 * a renewal (`parentRenewed`).
 */
export type IssuanceOutcome = 'recorded' | 'tokenUsed' | 'parentInvalid' | 'parentRenewed';

const CERTIFICATE_COLUMNS = 'serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, der, fingerprint, token_issuer, token_jti, csr_digest, renewed_from';
const CERTIFICATE_VALUES = '$1, $2, $3, $4::jsonb, $5::text[], $6::timestamptz, $7::timestamptz, $8::bytea, $9, $10, $11, $12::bytea, $13';

const AUDIT = `audited as (
    insert into audit_events (at, actor, action, serial, outcome, detail)
    select $14::timestamptz, $15, $16, serial, 'success', $17::jsonb from cert
  )`;
const INSERT = `with cert as (
    insert into certificates (${CERTIFICATE_COLUMNS}) values (${CERTIFICATE_VALUES}) returning serial
  ), ${AUDIT}
  select serial from cert`;
/** The issuance statement with a one-time token id ($1-$17 as INSERT, then $18-$20: the token's issuer, jti and expiry); exported for the database-alone benchmark. */
export const INSERT_WITH_TOKEN = `with used as (
    insert into used_tokens (issuer, jti, expires_at) values ($18, $19, $20::timestamptz)
    on conflict do nothing
    returning 1
  ), cert as (
    insert into certificates (${CERTIFICATE_COLUMNS})
    select ${CERTIFICATE_VALUES} where exists (select 1 from used)
    returning serial
  ), ${AUDIT}
  select serial from cert`;
/** A renewal: as INSERT_WITH_TOKEN, with $13 (renewed_from) the parent, valid at $14 and not renewed yet. */
const INSERT_RENEWAL = `with parent as (
    select serial from certificates
    where serial = $13 and status = 'valid' and not_after > $14::timestamptz
    for share
  ), used as (
    insert into used_tokens (issuer, jti, expires_at)
    select $18, $19, $20::timestamptz where exists (select 1 from parent)
    on conflict do nothing
    returning 1
  ), cert as (
    insert into certificates (${CERTIFICATE_COLUMNS})
    select ${CERTIFICATE_VALUES} where exists (select 1 from used)
    on conflict (renewed_from) where renewed_from is not null do nothing
    returning serial
  ), ${AUDIT}
  select (select serial from cert) as serial, exists (select 1 from parent) as parent_valid, exists (select 1 from used) as token_fresh`;

const bytes = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function certificateParams(cert: NewCertificate): unknown[] {
  return [
    cert.serial,
    cert.issuerKeyId,
    cert.identity,
    JSON.stringify(cert.sans),
    cert.sans.dns.map((n) => n.toLowerCase()),
    cert.notBefore.toISOString(),
    cert.notAfter.toISOString(),
    bytes(cert.der),
    cert.fingerprint,
    cert.tokenIssuer,
    cert.tokenJti,
    bytes(cert.csrDigest),
    cert.renewedFrom,
  ];
}

export async function recordIssuance(database: Database, cert: NewCertificate, tokenUse: TokenUse | undefined, audit: IssuanceAudit): Promise<IssuanceOutcome> {
  const params = [...certificateParams(cert), audit.at.toISOString(), audit.actor, audit.action, JSON.stringify(audit.detail)];
  if (!tokenUse) {
    if (cert.renewedFrom !== null) throw new Error('a renewal is recorded with the token id that asked for it');
    await database.hot('service_ca_insert_certificate', INSERT, params);
    return 'recorded';
  }
  const withToken = [...params, tokenUse.issuer, tokenUse.jti, tokenUse.expiresAt.toISOString()];
  if (cert.renewedFrom === null) {
    const rows = await database.hot<{ serial: string }>('service_ca_insert_certificate_with_token', INSERT_WITH_TOKEN, withToken);
    return rows.length === 0 ? 'tokenUsed' : 'recorded';
  }
  const [row] = await database.hot<{ serial: string | null; parent_valid: boolean; token_fresh: boolean }>('service_ca_insert_renewal', INSERT_RENEWAL, withToken);
  if (row?.serial) return 'recorded';
  if (!row?.parent_valid) return 'parentInvalid';
  return row.token_fresh ? 'parentRenewed' : 'tokenUsed';
}
