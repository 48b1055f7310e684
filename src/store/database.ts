/**
 * Opening the database: Postgres through postgres.js when a URL is configured, else PGlite
 * (Postgres compiled to WebAssembly) under the data directory. Both run the same committed
 * drizzle-kit migrations at start-up; on Postgres they run under an advisory lock so that
 * replicas starting together migrate once.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import postgres from 'postgres';
import * as schema from '../../db/schema.js';
import { CaError } from '../errors.js';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface Database {
  db: Db;
  kind: 'postgres' | 'pglite';
  close(): Promise<void>;
}

export interface DatabaseConfig {
  /** postgres:// URL; absent: PGlite under dataDir. */
  url?: string | undefined;
  dataDir: string;
  /** Connections in the pool (Postgres only). */
  poolSize?: number;
}

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../db/migrations', import.meta.url));

/** Postgres SQLSTATEs and client errors that mean "the database is not answering now". */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
  '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006', '08P01',
]);

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return code;
    if (e instanceof Error && /PGlite is closed|closed database/i.test(e.message)) return 'PGLITE_CLOSED';
  }
  return undefined;
}

/**
 * Turns a driver error into the domain error: a connection failure becomes `unavailable`
 * (503 with Retry-After); anything else stays as it is, for the 500 path to log.
 */
export function databaseError(err: unknown): unknown {
  if (err instanceof CaError) return err;
  if (errorCode(err) !== undefined) return new CaError('unavailable', 'the database is not answering; retry shortly', { cause: err, retryAfter: 2 });
  return err;
}

async function openPostgres(url: string, poolSize: number): Promise<Database> {
  const migrator = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    await migrator`select pg_advisory_lock(hashtext('service-ca:migrate'))`;
    await migratePostgres(drizzlePostgres(migrator), { migrationsFolder: MIGRATIONS_FOLDER });
    await migrator`select pg_advisory_unlock(hashtext('service-ca:migrate'))`;
  } finally {
    await migrator.end({ timeout: 5 });
  }
  const client = postgres(url, {
    max: poolSize,
    onnotice: () => {},
    connect_timeout: 5,
    idle_timeout: 60,
    max_lifetime: 30 * 60,
    prepare: true,
  });
  const db = drizzlePostgres(client, { schema }) as unknown as Db;
  return { db, kind: 'postgres', close: () => client.end({ timeout: 5 }) };
}

async function openPglite(dataDir: string): Promise<Database> {
  const dir = join(dataDir, 'pgdata');
  mkdirSync(dir, { recursive: true });
  const client = await PGlite.create(dir);
  const drizzled = drizzlePglite(client, { schema });
  await migratePglite(drizzled, { migrationsFolder: MIGRATIONS_FOLDER });
  return { db: drizzled as unknown as Db, kind: 'pglite', close: () => client.close() };
}

export async function openDatabase(config: DatabaseConfig): Promise<Database> {
  return config.url ? openPostgres(config.url, config.poolSize ?? 16) : openPglite(config.dataDir);
}
