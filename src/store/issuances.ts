/**
 * Recording an issuance: the certificate row, its audit row, and the token id it used when there
 * is one, in ONE statement (a data-modifying CTE), so it is one atomic implicit transaction and
 * one round trip: the token id is inserted with ON CONFLICT DO NOTHING, the certificate only
 * where that insert returned a row, and the audit row only where the certificate was inserted.
 * Zero rows written means the token id was used before.
 */
import { CaError } from '../errors.js';
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

const CERTIFICATE_COLUMNS = 'serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, der, fingerprint, token_issuer, token_jti';
const CERTIFICATE_VALUES = '$1, $2, $3, $4::jsonb, $5::text[], $6::timestamptz, $7::timestamptz, $8::bytea, $9, $10, $11';

const AUDIT = `audited as (
    insert into audit_events (at, actor, action, serial, outcome, detail)
    select $12::timestamptz, $13, $14, serial, 'success', $15::jsonb from cert
  )`;
const INSERT = `with cert as (
    insert into certificates (${CERTIFICATE_COLUMNS}) values (${CERTIFICATE_VALUES}) returning serial
  ), ${AUDIT}
  select serial from cert`;
/** The issuance statement with a one-time token id ($1-$15 as INSERT, then $16-$18: the token's issuer, jti and expiry); exported for the database-alone benchmark. */
export const INSERT_WITH_TOKEN = `with used as (
    insert into used_tokens (issuer, jti, expires_at) values ($16, $17, $18::timestamptz)
    on conflict do nothing
    returning 1
  ), cert as (
    insert into certificates (${CERTIFICATE_COLUMNS})
    select ${CERTIFICATE_VALUES} where exists (select 1 from used)
    returning serial
  ), ${AUDIT}
  select serial from cert`;

function certificateParams(cert: NewCertificate): unknown[] {
  return [
    cert.serial,
    cert.issuerKeyId,
    cert.identity,
    JSON.stringify(cert.sans),
    cert.sans.dns.map((n) => n.toLowerCase()),
    cert.notBefore.toISOString(),
    cert.notAfter.toISOString(),
    Buffer.from(cert.der.buffer, cert.der.byteOffset, cert.der.byteLength),
    cert.fingerprint,
    cert.tokenIssuer,
    cert.tokenJti,
  ];
}

export async function recordIssuance(database: Database, cert: NewCertificate, tokenUse: TokenUse | undefined, audit: IssuanceAudit): Promise<void> {
  const params = [...certificateParams(cert), audit.at.toISOString(), audit.actor, audit.action, JSON.stringify(audit.detail)];
  if (!tokenUse) {
    await database.hot('service_ca_insert_certificate', INSERT, params);
    return;
  }
  const rows = await database.hot<{ serial: string }>('service_ca_insert_certificate_with_token', INSERT_WITH_TOKEN, [
    ...params,
    tokenUse.issuer,
    tokenUse.jti,
    tokenUse.expiresAt.toISOString(),
  ]);
  if (rows.length === 0) throw new CaError('unauthorized', 'this token has already been used (jti replay)');
}
