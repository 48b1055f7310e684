/**
 * ACME accounts and what creates them (docs/api.md "ACME"): external account bindings, the
 * accounts bound through them, and used nonces. Every rule that must hold across replicas is a
 * guarded statement here: a binding creates one account (an update guarded on `account_id is
 * null` and its expiry, in the account's own transaction), one account per key (a unique index),
 * a nonce is used once (a primary key).
 */
import { and, eq, gt, isNull, lt } from 'drizzle-orm';
import { acmeAccounts, acmeBindings, acmeUsedNonces, usedTokens } from '../../db/schema.js';
import { isUniqueViolation, type Database } from './database.js';
import type { TokenUse } from './store.js';

export type AcmeAccountStatus = 'valid' | 'deactivated' | 'revoked';

export interface AcmeBinding {
  kid: string;
  identity: string;
  issuer: string | null;
  tokenSans: string[] | null;
  createdBy: string;
  createdAt: Date;
  expiresAt: Date;
}

export interface AcmeAccount {
  id: string;
  thumbprint: string;
  jwk: Record<string, unknown>;
  status: AcmeAccountStatus;
  contact: string[];
  identity: string;
  issuer: string | null;
  tokenSans: string[] | null;
  bindingKid: string;
  createdAt: Date;
}

export interface NewAcmeAccount {
  id: string;
  thumbprint: string;
  jwk: Record<string, unknown>;
  contact: string[];
  bindingKid: string;
  createdAt: Date;
}

/** What creating an account did: made it, found one with the same key, or found the binding unusable. */
export type AccountCreation = { created: AcmeAccount } | { existing: AcmeAccount } | { bindingUnusable: true };


function toAccount(row: typeof acmeAccounts.$inferSelect): AcmeAccount {
  return { ...row, status: row.status as AcmeAccountStatus, contact: row.contact, tokenSans: row.tokenSans ?? null };
}

export function acmeAccountStore(database: Database) {
  const { db } = database;
  const byThumbprint = async (thumbprint: string) => {
    const [row] = await db.select().from(acmeAccounts).where(eq(acmeAccounts.thumbprint, thumbprint));
    return row ? toAccount(row) : undefined;
  };
  return {
    /**
     * Records a binding, and the one-time token id that asked for it in the same transaction.
     * False (nothing written) when that token id was used before.
     */
    async createBinding(binding: AcmeBinding, tokenUse: TokenUse | undefined): Promise<boolean> {
      return database.transaction(async (tx) => {
        if (tokenUse) {
          const used = await tx
            .insert(usedTokens)
            .values({ issuer: tokenUse.issuer, jti: tokenUse.jti, expiresAt: tokenUse.expiresAt })
            .onConflictDoNothing()
            .returning({ jti: usedTokens.jti });
          if (used.length === 0) return false;
        }
        await tx.insert(acmeBindings).values(binding);
        return true;
      });
    },

    accountById: async (id: string) => {
      const [row] = await db.select().from(acmeAccounts).where(eq(acmeAccounts.id, id));
      return row ? toAccount(row) : undefined;
    },

    accountByThumbprint: byThumbprint,

    /**
     * Creates the account bound by `bindingKid`, claiming the binding (unused, unexpired at
     * `now`) in the same transaction; an account with the same key is returned as it is, and
     * the binding is then left unused.
     */
    async createAccount(account: NewAcmeAccount, now: Date): Promise<AccountCreation> {
      const existing = await byThumbprint(account.thumbprint);
      if (existing) return { existing };
      try {
        return await database.transaction(async (tx): Promise<AccountCreation> => {
          const [binding] = await tx
            .update(acmeBindings)
            .set({ accountId: account.id })
            .where(and(eq(acmeBindings.kid, account.bindingKid), isNull(acmeBindings.accountId), gt(acmeBindings.expiresAt, now)))
            .returning();
          if (!binding) return { bindingUnusable: true };
          const [row] = await tx
            .insert(acmeAccounts)
            .values({ ...account, status: 'valid', identity: binding.identity, issuer: binding.issuer, tokenSans: binding.tokenSans })
            .returning();
          return { created: toAccount(row!) };
        });
      } catch (err) {
        // The same key, registered by a concurrent request a moment ago: its account.
        if (!isUniqueViolation(err)) throw err;
        const raced = await byThumbprint(account.thumbprint);
        if (raced) return { existing: raced };
        throw err;
      }
    },

    /** Sets the contact of a valid account; undefined when it is not valid (any more). */
    async updateContact(id: string, contact: string[]): Promise<AcmeAccount | undefined> {
      const [row] = await db
        .update(acmeAccounts)
        .set({ contact })
        .where(and(eq(acmeAccounts.id, id), eq(acmeAccounts.status, 'valid')))
        .returning();
      return row ? toAccount(row) : undefined;
    },

    /** Deactivates a valid account (RFC 8555 §7.3.6); undefined when it was not valid. */
    async deactivateAccount(id: string): Promise<AcmeAccount | undefined> {
      const [row] = await db
        .update(acmeAccounts)
        .set({ status: 'deactivated' })
        .where(and(eq(acmeAccounts.id, id), eq(acmeAccounts.status, 'valid')))
        .returning();
      return row ? toAccount(row) : undefined;
    },

    /**
     * Replaces a valid account's key, guarded on its current thumbprint (RFC 8555 §7.3.5): the
     * account with the new key, `conflict` with the account that already holds that key, or
     * `gone` when the account is not valid or its key changed meanwhile.
     */
    async changeKey(id: string, oldThumbprint: string, next: { thumbprint: string; jwk: Record<string, unknown> }): Promise<{ changed: AcmeAccount } | { conflict: string } | { gone: true }> {
      const holder = await byThumbprint(next.thumbprint);
      if (holder) return { conflict: holder.id };
      try {
        const [row] = await db
          .update(acmeAccounts)
          .set({ thumbprint: next.thumbprint, jwk: next.jwk })
          .where(and(eq(acmeAccounts.id, id), eq(acmeAccounts.status, 'valid'), eq(acmeAccounts.thumbprint, oldThumbprint)))
          .returning();
        return row ? { changed: toAccount(row) } : { gone: true };
      } catch (err) {
        if (!isUniqueViolation(err)) throw err;
        const raced = await byThumbprint(next.thumbprint);
        return raced ? { conflict: raced.id } : { gone: true };
      }
    },

    /** Marks a nonce used; false when it was used before (RFC 8555 §6.5: badNonce). */
    async useNonce(nonce: Uint8Array, expiresAt: Date): Promise<boolean> {
      const rows = await db.insert(acmeUsedNonces).values({ nonce, expiresAt }).onConflictDoNothing().returning({ expiresAt: acmeUsedNonces.expiresAt });
      return rows.length > 0;
    },

    /** Deletes used nonces past their lifetime and bindings that can no longer be used. */
    async pruneAccounts(now: Date): Promise<void> {
      await db.delete(acmeUsedNonces).where(lt(acmeUsedNonces.expiresAt, now));
      await db.delete(acmeBindings).where(and(isNull(acmeBindings.accountId), lt(acmeBindings.expiresAt, now)));
    },
  };
}

export type AcmeAccountStore = ReturnType<typeof acmeAccountStore>;
