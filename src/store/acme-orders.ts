/**
 * ACME orders, authorizations and challenges (RFC 8555 §7.1.3-7.1.5) as rows, so that any
 * replica answers for any of them. Transitions are updates guarded on the state they leave: one
 * process validates a challenge at a time (a claim that lapses if that process dies), an order is
 * finalized once (pending → processing only while every authorization is valid and unexpired).
 * An order's `ready` and an authorization's `expired` are read from the rows, never stored.
 */
import { and, eq, inArray, lt, sql } from 'drizzle-orm';
import { acmeAuthorizations, acmeChallenges, acmeOrderAuthorizations, acmeOrders } from '../../db/schema.js';
import type { Database } from './database.js';
import { rawRows } from './rows.js';

export type AcmeOrderStatus = 'pending' | 'ready' | 'processing' | 'valid' | 'invalid';
export type AcmeAuthorizationStatus = 'pending' | 'valid' | 'invalid' | 'deactivated' | 'expired' | 'revoked';
export type AcmeChallengeStatus = 'pending' | 'processing' | 'valid' | 'invalid';
export type AcmeChallengeType = 'http-01' | 'dns-01' | 'tls-alpn-01';

export interface AcmeIdentifier {
  type: 'dns' | 'ip';
  value: string;
}

export interface AcmeOrder {
  id: string;
  accountId: string;
  status: AcmeOrderStatus;
  identifiers: AcmeIdentifier[];
  notBefore: Date | null;
  notAfter: Date | null;
  expiresAt: Date;
  error: Record<string, unknown> | null;
  certificateSerial: string | null;
  createdAt: Date;
  /** While processing: until when the finalizing request holds it. */
  processingUntil: Date | null;
  authorizationIds: string[];
}

export interface AcmeChallenge {
  id: string;
  authorizationId: string;
  type: AcmeChallengeType;
  token: string;
  status: AcmeChallengeStatus;
  validatedAt: Date | null;
  error: Record<string, unknown> | null;
}

export interface AcmeAuthorization {
  id: string;
  accountId: string;
  identifier: AcmeIdentifier;
  wildcard: boolean;
  status: AcmeAuthorizationStatus;
  expiresAt: Date;
  challenges: AcmeChallenge[];
}

/** A new authorization of a new order: pending with its challenges, or valid at once (a policy's `acme.challenges: none`). */
export interface NewAcmeAuthorization {
  id: string;
  identifier: AcmeIdentifier;
  wildcard: boolean;
  status: 'pending' | 'valid';
  expiresAt: Date;
  challenges: { id: string; type: AcmeChallengeType; token: string }[];
}

export interface NewAcmeOrder {
  id: string;
  accountId: string;
  identifiers: AcmeIdentifier[];
  notBefore: Date | null;
  notAfter: Date | null;
  expiresAt: Date;
  createdAt: Date;
  /** Per identifier, in order: a valid authorization to reuse (its id), or a new one. */
  authorizations: (string | NewAcmeAuthorization)[];
}

const BAD_AUTHORIZATIONS = ['invalid', 'deactivated', 'revoked'];

function challengeOf(row: typeof acmeChallenges.$inferSelect): AcmeChallenge {
  return {
    id: row.id,
    authorizationId: row.authorizationId,
    type: row.type as AcmeChallengeType,
    token: row.token,
    // A claim is `processing` to the client whether or not it has lapsed: the client asks again.
    status: row.status as AcmeChallengeStatus,
    validatedAt: row.validatedAt,
    error: row.error ?? null,
  };
}

export function acmeOrderStore(database: Database) {
  const { db } = database;

  async function getAuthorization(id: string, now: Date): Promise<AcmeAuthorization | undefined> {
    const [row] = await db.select().from(acmeAuthorizations).where(eq(acmeAuthorizations.id, id));
    if (!row) return undefined;
    const challenges = await db.select().from(acmeChallenges).where(eq(acmeChallenges.authorizationId, id)).orderBy(acmeChallenges.type);
    const expired = (row.status === 'pending' || row.status === 'valid') && row.expiresAt.getTime() <= now.getTime();
    return {
      id: row.id,
      accountId: row.accountId,
      identifier: { type: row.identifierType as AcmeIdentifier['type'], value: row.identifierValue },
      wildcard: row.wildcard,
      status: expired ? 'expired' : (row.status as AcmeAuthorizationStatus),
      expiresAt: row.expiresAt,
      challenges: challenges.map(challengeOf),
    };
  }

  return {
    /** Valid authorizations of the account for these identifiers that last past `until`, with their expiry (RFC 8555 §7.4: reuse). */
    async reusableAuthorizations(accountId: string, identifiers: AcmeIdentifier[], until: Date): Promise<Map<string, { id: string; expiresAt: Date }>> {
      if (identifiers.length === 0) return new Map();
      const rows = await db
        .select({ id: acmeAuthorizations.id, type: acmeAuthorizations.identifierType, value: acmeAuthorizations.identifierValue, wildcard: acmeAuthorizations.wildcard, expiresAt: acmeAuthorizations.expiresAt })
        .from(acmeAuthorizations)
        .where(
          and(
            eq(acmeAuthorizations.accountId, accountId),
            eq(acmeAuthorizations.status, 'valid'),
            inArray(acmeAuthorizations.identifierType, [...new Set(identifiers.map((i) => i.type))]),
            inArray(acmeAuthorizations.identifierValue, identifiers.map((i) => i.value.replace(/^\*\./, ''))),
            sql`${acmeAuthorizations.expiresAt} > ${until.toISOString()}::timestamptz`,
          ),
        );
      const found = new Map<string, { id: string; expiresAt: Date }>();
      for (const r of rows) {
        const key = `${r.type}:${r.wildcard ? '*.' : ''}${r.value}`;
        // The one that lasts longest, should the account hold several.
        if ((found.get(key)?.expiresAt.getTime() ?? 0) < r.expiresAt.getTime()) found.set(key, { id: r.id, expiresAt: r.expiresAt });
      }
      return found;
    },

    /** Writes an order with its new authorizations and challenges in one transaction. */
    async createOrder(order: NewAcmeOrder): Promise<void> {
      await database.transaction(async (tx) => {
        await tx.insert(acmeOrders).values({
          id: order.id,
          accountId: order.accountId,
          status: 'pending',
          identifiers: order.identifiers,
          notBefore: order.notBefore,
          notAfter: order.notAfter,
          expiresAt: order.expiresAt,
          createdAt: order.createdAt,
        });
        const fresh = order.authorizations.filter((a): a is NewAcmeAuthorization => typeof a !== 'string');
        if (fresh.length > 0) {
          await tx.insert(acmeAuthorizations).values(
            fresh.map((a) => ({
              id: a.id,
              accountId: order.accountId,
              identifierType: a.identifier.type,
              identifierValue: a.identifier.value,
              wildcard: a.wildcard,
              status: a.status,
              expiresAt: a.expiresAt,
              createdAt: order.createdAt,
            })),
          );
          const challenges = fresh.flatMap((a) => a.challenges.map((c) => ({ ...c, authorizationId: a.id, status: 'pending' })));
          if (challenges.length > 0) await tx.insert(acmeChallenges).values(challenges);
        }
        await tx.insert(acmeOrderAuthorizations).values(order.authorizations.map((a, position) => ({ orderId: order.id, authorizationId: typeof a === 'string' ? a : a.id, position })));
      });
    },

    /** An order with its status as of `now`: `ready` once every authorization is valid, `invalid` once one failed or it expired. */
    async getOrder(id: string, now: Date): Promise<AcmeOrder | undefined> {
      const [row] = await db.select().from(acmeOrders).where(eq(acmeOrders.id, id));
      if (!row) return undefined;
      const authz = await db
        .select({ id: acmeAuthorizations.id, status: acmeAuthorizations.status, expiresAt: acmeAuthorizations.expiresAt })
        .from(acmeOrderAuthorizations)
        .innerJoin(acmeAuthorizations, eq(acmeAuthorizations.id, acmeOrderAuthorizations.authorizationId))
        .where(eq(acmeOrderAuthorizations.orderId, id))
        .orderBy(acmeOrderAuthorizations.position);
      let status = row.status as AcmeOrderStatus;
      if (status === 'pending') {
        const t = now.getTime();
        // No authorization left (pruned under a long-lived order) is never ready.
        if (row.expiresAt.getTime() <= t || authz.length === 0 || authz.some((a) => BAD_AUTHORIZATIONS.includes(a.status) || a.expiresAt.getTime() <= t)) status = 'invalid';
        else if (authz.every((a) => a.status === 'valid')) status = 'ready';
      }
      return {
        id: row.id,
        accountId: row.accountId,
        status,
        identifiers: row.identifiers as AcmeIdentifier[],
        notBefore: row.notBefore,
        notAfter: row.notAfter,
        expiresAt: row.expiresAt,
        error: row.error ?? null,
        certificateSerial: row.certificateSerial,
        createdAt: row.createdAt,
        processingUntil: row.processingUntil,
        authorizationIds: authz.map((a) => a.id),
      };
    },

    getAuthorization,

    /** Ids of an account's orders that are neither invalid nor expired, newest first (RFC 8555 §7.1.2.1), at most 1,000. */
    async listOrders(accountId: string, now: Date): Promise<string[]> {
      const rows = await db
        .select({ id: acmeOrders.id })
        .from(acmeOrders)
        .where(
          and(
            eq(acmeOrders.accountId, accountId),
            sql`${acmeOrders.status} <> 'invalid'`,
            sql`${acmeOrders.expiresAt} > ${now.toISOString()}::timestamptz`,
            // Invalid as read (getOrder): an authorization failed, or a pending one expired.
            sql`not exists (
              select 1 from acme_order_authorizations oa join acme_authorizations a on a.id = oa.authorization_id
              where oa.order_id = ${acmeOrders.id}
                and (a.status in ('invalid', 'deactivated', 'revoked') or (${acmeOrders.status} = 'pending' and a.expires_at <= ${now.toISOString()}::timestamptz)))`,
          ),
        )
        .orderBy(sql`${acmeOrders.createdAt} desc`)
        .limit(1000);
      return rows.map((r) => r.id);
    },

    async getChallenge(id: string): Promise<AcmeChallenge | undefined> {
      const [row] = await db.select().from(acmeChallenges).where(eq(acmeChallenges.id, id));
      return row ? challengeOf(row) : undefined;
    },

    /**
     * Claims a challenge for validation until `leaseSeconds` from now: while its authorization is
     * pending and unexpired, no other challenge of it is being validated, and the challenge is
     * pending or its earlier claim lapsed. The claim (its end) is what settling presents;
     * undefined when another request claimed it or it is settled.
     */
    async claimChallenge(id: string, now: Date, leaseSeconds: number): Promise<Date | undefined> {
      const at = now.toISOString();
      const until = new Date(now.getTime() + leaseSeconds * 1000);
      const rows = await rawRows<{ id: string }>(
        db,
        sql`update acme_challenges c set status = 'processing', processing_until = ${until.toISOString()}::timestamptz
            from acme_authorizations a
            where c.id = ${id} and a.id = c.authorization_id and a.status = 'pending' and a.expires_at > ${at}::timestamptz
              and (c.status = 'pending' or (c.status = 'processing' and c.processing_until < ${at}::timestamptz))
              and not exists (
                select 1 from acme_challenges o
                where o.authorization_id = c.authorization_id and o.id <> c.id and o.status = 'processing' and o.processing_until >= ${at}::timestamptz)
            returning c.id`,
      );
      return rows.length > 0 ? until : undefined;
    },

    /** Challenges of the account being validated at `now` (claims not lapsed), over all replicas. */
    async validationsInFlight(accountId: string, now: Date): Promise<number> {
      const [row] = await rawRows<{ n: number }>(
        db,
        sql`select count(*)::int as n from acme_challenges c join acme_authorizations a on a.id = c.authorization_id
            where a.account_id = ${accountId} and a.status = 'pending' and c.status = 'processing' and c.processing_until >= ${now.toISOString()}::timestamptz`,
      );
      return Number(row?.n ?? 0);
    },

    /**
     * Settles a claimed challenge and its authorization in one transaction: valid (the
     * authorization then stays valid for `reuseSeconds`) or invalid with the problem document.
     * Only the holder of the claim settles (a claim that lapsed and was taken again belongs to
     * its new holder), and an authorization that expired meanwhile stays expired.
     */
    async settleChallenge(id: string, claim: Date, outcome: { valid: true } | { valid: false; error: Record<string, unknown> }, now: Date, reuseSeconds: number): Promise<void> {
      await database.transaction(async (tx) => {
        const [challenge] = await tx
          .update(acmeChallenges)
          .set({ status: outcome.valid ? 'valid' : 'invalid', validatedAt: now, processingUntil: null, error: outcome.valid ? null : outcome.error })
          .where(and(eq(acmeChallenges.id, id), eq(acmeChallenges.status, 'processing'), sql`${acmeChallenges.processingUntil} = ${claim.toISOString()}::timestamptz`))
          .returning({ authorizationId: acmeChallenges.authorizationId });
        if (!challenge) return;
        await tx
          .update(acmeAuthorizations)
          // Valid until the later of its order's expiry and the reuse time: an order can always be finalized.
          .set(outcome.valid ? { status: 'valid', expiresAt: sql`greatest(${acmeAuthorizations.expiresAt}, ${new Date(now.getTime() + reuseSeconds * 1000).toISOString()}::timestamptz)` } : { status: 'invalid' })
          .where(
            and(
              eq(acmeAuthorizations.id, challenge.authorizationId),
              eq(acmeAuthorizations.status, 'pending'),
              sql`${acmeAuthorizations.expiresAt} > ${now.toISOString()}::timestamptz`,
            ),
          );
      });
    },

    /** An account's orders that can still be finalized or are being finalized (pending, processing, unexpired). */
    async pendingOrders(accountId: string, now: Date): Promise<number> {
      const [row] = await rawRows<{ n: number }>(
        db,
        sql`select count(*)::int as n from acme_orders
            where account_id = ${accountId} and status in ('pending', 'processing') and expires_at > ${now.toISOString()}::timestamptz`,
      );
      return Number(row?.n ?? 0);
    },

    /** Deactivates a pending or valid authorization (RFC 8555 §7.5.2); false when it was neither. */
    async deactivateAuthorization(id: string): Promise<boolean> {
      const rows = await db
        .update(acmeAuthorizations)
        .set({ status: 'deactivated' })
        .where(and(eq(acmeAuthorizations.id, id), inArray(acmeAuthorizations.status, ['pending', 'valid'])))
        .returning({ id: acmeAuthorizations.id });
      return rows.length > 0;
    },

    /**
     * Moves a ready order to `processing` (pending, unexpired, at least one authorization and
     * every one valid and unexpired at `now`) for a lease of `leaseSeconds`; false when it is not
     * ready, or another finalization took it.
     */
    async beginFinalize(id: string, now: Date, leaseSeconds: number): Promise<boolean> {
      const at = now.toISOString();
      const rows = await rawRows<{ id: string }>(
        db,
        sql`update acme_orders o set status = 'processing', processing_until = ${at}::timestamptz + ${leaseSeconds}::float8 * interval '1 second'
            where o.id = ${id} and o.status = 'pending' and o.expires_at > ${at}::timestamptz
              and exists (select 1 from acme_order_authorizations oa where oa.order_id = o.id)
              and not exists (
                select 1 from acme_order_authorizations oa join acme_authorizations a on a.id = oa.authorization_id
                where oa.order_id = o.id and not (a.status = 'valid' and a.expires_at > ${at}::timestamptz))
            returning o.id`,
      );
      return rows.length > 0;
    },

    /** Ends a finalization: valid with its certificate, invalid with a problem document, or back to pending (nothing was issued). */
    async endFinalize(id: string, outcome: { serial: string } | { error: Record<string, unknown> } | { retry: true }): Promise<void> {
      const set = 'serial' in outcome ? { status: 'valid', certificateSerial: outcome.serial } : 'error' in outcome ? { status: 'invalid', error: outcome.error } : { status: 'pending' };
      await db
        .update(acmeOrders)
        .set({ ...set, processingUntil: null })
        .where(and(eq(acmeOrders.id, id), eq(acmeOrders.status, 'processing')));
    },

    /**
     * Settles a `processing` order whose finalization lost track of it (its lease passed, or its
     * outcome is unknown): valid with the certificate an issuance recorded for it (the issuance's
     * audit row names the order and commits with the certificate), else back to pending, since
     * nothing was issued. With `lapsedOnly`, only once the lease has passed.
     */
    async settleFinalize(id: string, now: Date, lapsedOnly: boolean): Promise<void> {
      await database.transaction(async (tx) => {
        const at = now.toISOString();
        const [order] = await rawRows<{ id: string }>(
          tx,
          sql`select id from acme_orders where id = ${id} and status = 'processing'
                and (${!lapsedOnly} or processing_until < ${at}::timestamptz) for update`,
        );
        if (!order) return;
        const [issued] = await rawRows<{ serial: string }>(
          tx,
          sql`select serial from audit_events
              where (detail #>> '{acme,order}') = ${id} and outcome = 'success' and serial is not null
              order by id limit 1`,
        );
        await tx
          .update(acmeOrders)
          .set(issued ? { status: 'valid', certificateSerial: issued.serial, processingUntil: null } : { status: 'pending', processingUntil: null })
          .where(eq(acmeOrders.id, id));
      });
    },

    /** Deletes orders and authorizations a week past their expiry (their certificates stay). */
    async pruneOrders(now: Date): Promise<void> {
      const horizon = new Date(now.getTime() - 7 * 86_400_000);
      await db.delete(acmeOrders).where(lt(acmeOrders.expiresAt, horizon));
      await db.delete(acmeAuthorizations).where(lt(acmeAuthorizations.expiresAt, horizon));
    },
  };
}

export type AcmeOrderStore = ReturnType<typeof acmeOrderStore>;
