/**
 * Recording issuances: certificate rows, their audit rows, and the one-time token ids they used,
 * for a whole batch of concurrent requests in ONE statement (data-modifying CTEs over the batch,
 * given as one JSON parameter), so a batch is one atomic implicit transaction and one round trip
 * (store/group-commit.ts gathers the batch). Each row succeeds or fails on its own inside it:
 * - its token id is inserted with ON CONFLICT DO NOTHING, and its certificate only where that
 *   insert returned the id: a token id used before writes nothing for that row alone;
 * - a renewal (docs/api.md "Certificate holder") reads its parent FOR SHARE, which must still be valid
 *   and unexpired at the row's time: a revocation committed first makes that row write nothing,
 *   and one that comes later waits for the batch's commit (its keyCompromise lineage then finds
 *   the child); the partial unique index on renewed_from (db/schema.ts) makes "a certificate
 *   renews once" hold whatever races: the second child's insert does nothing;
 * - its audit row is inserted only where its certificate was.
 * Two rows of one batch never share a token id or a renewed certificate (the group commit keeps
 * them apart), so the statement never has to choose between its own rows.
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

/** One issuance to record: the certificate, the token id it consumes (if any), its audit row. */
export interface PendingIssuance {
  cert: NewCertificate;
  tokenUse: TokenUse | undefined;
  audit: IssuanceAudit;
}

/** The batch statement ($1: a JSON array of rows, each with its index n); exported for the database-alone benchmark. */
export const RECORD_ISSUANCES = `with i as (
    select * from jsonb_to_recordset($1::jsonb) as x(
      n int, serial text, issuer_key_id text, identity text, sans jsonb, dns_names text[],
      not_before timestamptz, not_after timestamptz, der text, fingerprint text, token_issuer text,
      token_jti text, csr_digest text, renewed_from text, at timestamptz, actor text, action text,
      detail jsonb, use_issuer text, use_jti text, use_expires timestamptz)
  ), parent as (
    select c.serial from certificates c join i on c.serial = i.renewed_from
    where c.status = 'valid' and c.not_after > i.at
    for share of c
  ), eligible as (
    select * from i where renewed_from is null or renewed_from in (select serial from parent)
  ), used as (
    insert into used_tokens (issuer, jti, expires_at)
    select use_issuer, use_jti, use_expires from eligible where use_jti is not null
    on conflict do nothing
    returning issuer, jti
  ), cert as (
    insert into certificates (serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, der, fingerprint, token_issuer, token_jti, csr_digest, renewed_from)
    select serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, decode(der, 'base64'), fingerprint, token_issuer, token_jti, decode(csr_digest, 'base64'), renewed_from
    from eligible e
    where e.use_jti is null or exists (select 1 from used u where u.issuer = e.use_issuer and u.jti = e.use_jti)
    on conflict (renewed_from) where renewed_from is not null do nothing
    returning serial
  ), audited as (
    insert into audit_events (at, actor, action, serial, outcome, detail)
    select e.at, e.actor, e.action, e.serial, 'success', e.detail from eligible e join cert c on c.serial = e.serial
    order by e.n
  )
  select i.n, c.serial is not null as recorded, (i.renewed_from is null or p.serial is not null) as parent_valid, (i.use_jti is null or u.jti is not null) as token_fresh
  from i
  left join cert c on c.serial = i.serial
  left join parent p on p.serial = i.renewed_from
  left join used u on u.issuer = i.use_issuer and u.jti = i.use_jti`;

const base64 = (b: Uint8Array | null) => (b === null ? null : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64'));

/** A row of the batch statement's JSON parameter. */
function batchRow({ cert, tokenUse, audit }: PendingIssuance, n: number) {
  if (!tokenUse && cert.renewedFrom !== null) throw new Error('a renewal is recorded with the token id that asked for it');
  return {
    n,
    serial: cert.serial,
    issuer_key_id: cert.issuerKeyId,
    identity: cert.identity,
    sans: cert.sans,
    dns_names: cert.sans.dns.map((name) => name.toLowerCase()),
    not_before: cert.notBefore.toISOString(),
    not_after: cert.notAfter.toISOString(),
    der: base64(cert.der),
    fingerprint: cert.fingerprint,
    token_issuer: cert.tokenIssuer,
    token_jti: cert.tokenJti,
    csr_digest: base64(cert.csrDigest),
    renewed_from: cert.renewedFrom,
    at: audit.at.toISOString(),
    actor: audit.actor,
    action: audit.action,
    detail: audit.detail,
    use_issuer: tokenUse?.issuer ?? null,
    use_jti: tokenUse?.jti ?? null,
    use_expires: tokenUse?.expiresAt.toISOString() ?? null,
  };
}

/** The batch statement's JSON parameter (also what the database-alone benchmark binds). */
export const batchParameter = (batch: readonly PendingIssuance[]): string => JSON.stringify(batch.map(batchRow));

/** What must not share a batch with this issuance: its token id and the certificate it renews. */
export function issuanceConflicts({ cert, tokenUse }: PendingIssuance): string[] {
  const keys: string[] = [];
  if (tokenUse) keys.push(`t ${tokenUse.issuer}\n${tokenUse.jti}`);
  if (cert.renewedFrom !== null) keys.push(`r ${cert.renewedFrom}`);
  return keys;
}

/** Records a batch in one statement; one outcome per issuance, in order. */
export async function recordIssuances(database: Database, batch: readonly PendingIssuance[]): Promise<IssuanceOutcome[]> {
  const rows = await database.hot<{ n: number; recorded: boolean; parent_valid: boolean; token_fresh: boolean }>('service_ca_record_issuances', RECORD_ISSUANCES, [batchParameter(batch)], {
    // A generic plan made while the table was small read every valid certificate per batch (store/database.ts).
    customPlan: true,
  });
  const outcomes = new Array<IssuanceOutcome | undefined>(batch.length);
  for (const r of rows) {
    outcomes[r.n] = r.recorded ? 'recorded' : !r.parent_valid ? 'parentInvalid' : r.token_fresh ? 'parentRenewed' : 'tokenUsed';
  }
  if (outcomes.some((o) => o === undefined) || rows.length !== batch.length) throw new Error(`the issuance statement answered ${rows.length} rows for a batch of ${batch.length}`);
  return outcomes as IssuanceOutcome[];
}
