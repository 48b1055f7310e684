/**
 * The storage authority: the only user of the database. Every write that must hold together
 * runs in one transaction; invariants (unique serials, one use per token id) are enforced by the
 * database itself, so they hold across replicas.
 */
import { eq, lt, sql } from 'drizzle-orm';
import { certificates, usedTokens } from '../../db/schema.js';
import { CaError } from '../errors.js';
import type { CertificateRecord, RevocationReason, SubjectAltNames } from '../model.js';
import { databaseError, openDatabase, type Database, type DatabaseConfig } from './database.js';

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
  /** Deletes used token ids whose token has expired; returns how many. */
  pruneUsedTokens(before: Date): Promise<number>;
  /** Answers when the database does. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

type Row = typeof certificates.$inferSelect;

function toRecord(row: Row): CertificateRecord {
  return {
    serial: row.serial,
    identity: row.identity,
    sans: row.sans,
    notBefore: row.notBefore,
    notAfter: row.notAfter,
    revokedAt: row.revokedAt,
    revocationReason: row.revocationReason as RevocationReason | null,
    revokedBy: row.revokedBy,
    der: Buffer.from(row.der),
    fingerprint: row.fingerprint,
    tokenIssuer: row.tokenIssuer,
    tokenJti: row.tokenJti,
    createdAt: row.createdAt,
  };
}

/** Runs a database call, turning connection failures into `unavailable`. */
async function guarded<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw databaseError(err);
  }
}

class TokenReplay extends Error {}

export function storeOn(database: Database): Store {
  const { db } = database;
  return {
    kind: database.kind,
    recordIssuance: (cert, tokenUse) =>
      guarded(async () => {
        try {
          await db.transaction(async (tx) => {
            if (tokenUse) {
              const used = await tx
                .insert(usedTokens)
                .values({ issuer: tokenUse.issuer, jti: tokenUse.jti, expiresAt: tokenUse.expiresAt })
                .onConflictDoNothing()
                .returning({ jti: usedTokens.jti });
              if (used.length === 0) throw new TokenReplay();
            }
            await tx.insert(certificates).values({
              ...cert,
              dnsNames: cert.sans.dns.map((n) => n.toLowerCase()),
              der: Buffer.from(cert.der),
            });
          });
        } catch (err) {
          if (err instanceof TokenReplay) throw new CaError('unauthorized', 'this token has already been used (jti replay)');
          throw err;
        }
      }),
    getCertificate: (serial) =>
      guarded(async () => {
        const rows = await db.select().from(certificates).where(eq(certificates.serial, serial)).limit(1);
        return rows[0] ? toRecord(rows[0]) : undefined;
      }),
    pruneUsedTokens: (before) =>
      guarded(async () => {
        const rows = await db.delete(usedTokens).where(lt(usedTokens.expiresAt, before)).returning({ jti: usedTokens.jti });
        return rows.length;
      }),
    ping: () =>
      guarded(async () => {
        await db.execute(sql`select 1`);
      }),
    close: () => database.close(),
  };
}

export async function createStore(config: DatabaseConfig): Promise<Store> {
  return storeOn(await openDatabase(config));
}
