/**
 * Recording an issuance: the certificate row, and the token id it used when there is one, in
 * ONE statement (a data-modifying CTE), so it is one atomic implicit transaction and one round
 * trip: the token id is inserted with ON CONFLICT DO NOTHING, and the certificate only where
 * that insert returned a row. Zero rows written means the token id was used before.
 */
import { sql } from 'drizzle-orm';
import { CaError } from '../errors.js';
import type { Db } from './database.js';
import { rawRows } from './rows.js';
import type { NewCertificate, TokenUse } from './store.js';

function certificateValues(cert: NewCertificate) {
  return sql`${cert.serial}, ${cert.issuerKeyId}, ${cert.identity}, ${JSON.stringify(cert.sans)}::jsonb,
    array(select jsonb_array_elements_text(${JSON.stringify(cert.sans.dns.map((n) => n.toLowerCase()))}::jsonb)),
    ${cert.notBefore.toISOString()}::timestamptz, ${cert.notAfter.toISOString()}::timestamptz, ${Buffer.from(cert.der)}::bytea,
    ${cert.fingerprint}, ${cert.tokenIssuer}, ${cert.tokenJti}`;
}

const COLUMNS = sql.raw(
  'serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, der, fingerprint, token_issuer, token_jti',
);

export async function recordIssuance(db: Db, cert: NewCertificate, tokenUse: TokenUse | undefined): Promise<void> {
  if (!tokenUse) {
    await db.execute(sql`insert into certificates (${COLUMNS}) values (${certificateValues(cert)})`);
    return;
  }
  const rows = await rawRows<{ serial: string }>(
    db,
    sql`with used as (
          insert into used_tokens (issuer, jti, expires_at)
          values (${tokenUse.issuer}, ${tokenUse.jti}, ${tokenUse.expiresAt.toISOString()}::timestamptz)
          on conflict do nothing
          returning 1
        )
        insert into certificates (${COLUMNS})
        select ${certificateValues(cert)} where exists (select 1 from used)
        returning serial`,
  );
  if (rows.length === 0) throw new CaError('unauthorized', 'this token has already been used (jti replay)');
}
