/**
 * Opening the database: Postgres through node-postgres (pg) when a URL is configured, else
 * PGlite (Postgres compiled to WebAssembly) under the data directory. Both run the same
 * committed drizzle-kit migrations at start-up; on Postgres they run under an advisory lock so
 * that replicas starting together migrate once.
 *
 * Why pg and not postgres.js: postgres.js 3.4.9 crashes the process when the server terminates
 * its connections mid-query (an uncaught TypeError in nextWrite and unhandled rejections from
 * fetchArrayTypes; open upstream issues), which test/e2e/database-outage.test.ts reproduces.
 * pg reports such failures on the query and as pool 'error' events, which we handle.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/node-postgres';
import { migrate as migratePostgres } from 'drizzle-orm/node-postgres/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import pg from 'pg';
import * as schema from '../../db/schema.js';
import { CaError } from '../errors.js';
import { pglitePrepared } from './pglite-prepared.js';

export type Db = PgDatabase<PgQueryResultHKT, typeof schema>;

export type Isolation = 'read committed' | 'repeatable read' | 'serializable';

export interface Database {
  db: Db;
  kind: 'postgres' | 'pglite';
  /**
   * Runs work in one transaction. On Postgres a connection that failed inside it (a timeout,
   * a reset) is discarded rather than returned to the pool, where the next transaction would
   * queue behind a query still stuck on the wire.
   */
  transaction<T>(work: (tx: Db) => Promise<T>, isolation?: Isolation, options?: { long?: boolean }): Promise<T>;
  /**
   * One statement of the issuance hot path, in raw SQL with $n parameters: a named prepared
   * statement, parsed and planned once per connection on Postgres and once on PGlite
   * (store/pglite-prepared.ts). drizzle's query building and pg's unnamed statements were a tenth of an issuance's
   * CPU in the profile (docs/performance.md).
   */
  hot<T>(name: string, text: string, params: unknown[], options?: HotOptions): Promise<T[]>;
  /**
   * One read of the public listener (renewal-info), prepared like `hot`, on a small pool of its
   * own on Postgres (PUBLIC_POOL_SIZE connections): a flood of public requests waits for these
   * and never takes or waits for a connection of the request pool that issuance uses. PGlite
   * runs one statement at a time in any case.
   */
  publicRead<T>(name: string, text: string, params: unknown[]): Promise<T[]>;
  /** The request pool's connections (Postgres); undefined on PGlite, which has none. */
  poolStats(): PoolStats | undefined;
  /** The public reads' pool (Postgres); undefined on PGlite. */
  publicPoolStats(): PoolStats | undefined;
  close(): Promise<void>;
}

export interface HotOptions {
  /**
   * Plan the statement for its parameters and the tables as they are at each execution, never
   * with a cached generic plan (CUSTOM_PLANS). On Postgres every statement of the request pool
   * is planned so; on PGlite only those that ask.
   */
  customPlan?: boolean;
}

export interface PoolStats {
  /** Open connections. */
  total: number;
  idle: number;
  /** Callers waiting for a connection. */
  waiting: number;
}

export interface DatabaseConfig {
  /** postgres:// URL; absent: PGlite under dataDir. */
  url?: string | undefined;
  dataDir: string;
  /** Connections in the pool (Postgres only). */
  poolSize?: number;
  /** Reports connection errors that happen outside any request (Postgres only). */
  onPoolError?: (err: Error) => void;
}

export const MIGRATIONS_FOLDER = fileURLToPath(new URL('../../db/migrations', import.meta.url));

/**
 * Postgres SQLSTATEs and client errors that mean "the database is not answering now" (503, retry).
 * Not 08P01 (protocol_violation): the server answered, refusing the statement (a bind message
 * over 65,535 parameters is one); a retry would fail the same, so it is a 500 whose cause is logged.
 */
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT',
  '57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006',
]);

/** pg's own connection failures carry no code; they are known by their messages. */
const UNAVAILABLE_MESSAGES = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Cannot use a pool after calling end|PGlite is closed|PGlite is closing|closed database/i;

function errorCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && UNAVAILABLE_CODES.has(code)) return code;
    if (e instanceof Error && UNAVAILABLE_MESSAGES.test(e.message)) return 'CONNECTION';
  }
  return undefined;
}

/**
 * Postgres data exceptions that only a request's own values cause: a NUL character in text, a
 * time or number outside Postgres's range, text that is not a number. (Our own writes never
 * hold such values; a request's filters and identities can.)
 */
const BAD_VALUE_CODES = new Set(['22021', '22P05', '22008', '22007', '22009', '22003', '22P02']);

function badValue(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && BAD_VALUE_CODES.has(code)) return true;
  }
  return false;
}

/** A unique constraint refused the write (SQLSTATE 23505), however deep the driver wrapped it. */
export function isUniqueViolation(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === '23505') return true;
    if (e instanceof Error && /duplicate key value violates unique constraint/.test(e.message)) return true;
  }
  return false;
}

/**
 * Turns a driver error into the domain error: a connection failure becomes `unavailable`
 * (503 with Retry-After), a value the database cannot take becomes `malformed` (400);
 * anything else stays as it is, for the 500 path to log.
 */
export function databaseError(err: unknown): unknown {
  if (err instanceof CaError) return err;
  if (errorCode(err) !== undefined) return new CaError('unavailable', 'the database is not answering; retry shortly', { cause: err, retryAfter: 2 });
  if (badValue(err)) return new CaError('malformed', 'a value in the request is out of range or holds a character (NUL) the database cannot take', { cause: err });
  return err;
}

/**
 * Every execution of a prepared statement planned for its own parameters and the tables as they
 * are now. Postgres switches a named statement to one generic plan after five executions when
 * that plan looks no dearer, and keeps it: the issuance statement's generic plan, made while
 * `certificates` was small, looked up a renewal's parent by reading every valid certificate
 * (certificates_status_not_after_idx) into a hash for each batch, a cost that grows with the
 * table; measured, Postgres spent 0.47 ms of CPU per issuance with it and 0.13 ms without
 * (docs/performance.md). The statement is still parsed once per connection. On Postgres set for
 * the whole request pool (issuance, admin reads: their planning is cheap beside a batch); the
 * public pool keeps generic plans for its one-row lookups. PGlite has one session for all of
 * them, where custom plans for everything cost renewal-info 40% of its rate, so there only the
 * statements that ask (HotOptions.customPlan) are planned so, the setting set and reset around
 * them in the same call.
 */
const CUSTOM_PLANS = '-c plan_cache_mode=force_custom_plan';

/**
 * The URL with a setting added to its `options` (the server settings a connection starts
 * with, libpq's and pg's `options` parameter), after any the URL already names: set before the
 * first query, with no round trip of its own. A connection string that is not a URL is left as
 * it is (its statements then keep Postgres's own plan choice).
 */
function withStartupOption(url: string, option: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return url;
  }
  const present = parsed.searchParams.get('options');
  parsed.searchParams.set('options', present ? `${present} ${option}` : option);
  return parsed.toString();
}

/** Longest wait for a connection, and for any one query's answer, before answering 503. */
const CONNECT_TIMEOUT_MS = 3000;
const QUERY_TIMEOUT_MS = 5000;
/** Background work that reads or writes a whole CRL (a million entries) gets longer. */
const LONG_QUERY_TIMEOUT_MS = 120_000;
/** Connections of the public reads' own pool (Database.publicRead). */
const PUBLIC_POOL_SIZE = 2;

async function openPostgres(config: DatabaseConfig): Promise<Database> {
  const migrator = new pg.Client({ connectionString: config.url, connectionTimeoutMillis: 10_000 });
  migrator.on('error', () => {});
  await migrator.connect();
  try {
    await migrator.query(`select pg_advisory_lock(hashtext('service-ca:migrate'))`);
    await migratePostgres(drizzlePostgres(migrator), { migrationsFolder: MIGRATIONS_FOLDER });
    await migrator.query(`select pg_advisory_unlock(hashtext('service-ca:migrate'))`);
  } finally {
    await migrator.end().catch(() => {});
  }
  const newPool = (max: number, queryTimeout: number, customPlans = false) => {
    const p = new pg.Pool({
      connectionString: customPlans ? withStartupOption(config.url!, CUSTOM_PLANS) : config.url,
      max,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      query_timeout: queryTimeout,
      idleTimeoutMillis: 60_000,
      maxLifetimeSeconds: 30 * 60,
      keepAlive: true,
    });
    // A connection that the server or the network drops is reported as an 'error' event: on
    // the pool while idle, on the client while checked out (pg-pool removes its listener then).
    // Without listeners node would treat either as an uncaught exception and end the process.
    // The query in flight, if any, fails on its own; the next query opens a new connection.
    p.on('error', (err) => config.onPoolError?.(err));
    p.on('connect', (client) => client.on('error', (err) => config.onPoolError?.(err)));
    return p;
  };
  const pool = newPool(config.poolSize ?? 8, QUERY_TIMEOUT_MS, true);
  const longPool = newPool(2, LONG_QUERY_TIMEOUT_MS);
  const publicPool = newPool(PUBLIC_POOL_SIZE, QUERY_TIMEOUT_MS);
  const db = drizzlePostgres(pool, { schema }) as unknown as Db;
  return {
    db,
    kind: 'postgres',
    async transaction(work, isolation, options) {
      const client = await (options?.long ? longPool : pool).connect();
      try {
        await client.query(isolation ? `begin isolation level ${isolation}` : 'begin');
        const result = await work(drizzlePostgres(client, { schema }) as unknown as Db);
        await client.query('commit');
        client.release();
        return result;
      } catch (err) {
        const broken = errorCode(err) !== undefined;
        if (!broken) await client.query('rollback').catch(() => {});
        // release(err) destroys the connection; a healthy one after a rollback goes back.
        client.release(broken ? (err as Error) : undefined);
        throw err;
      }
    },
    async hot<T>(name: string, text: string, params: unknown[]) {
      return (await pool.query({ name, text, values: params })).rows as T[];
    },
    async publicRead<T>(name: string, text: string, params: unknown[]) {
      return (await publicPool.query({ name, text, values: params })).rows as T[];
    },
    poolStats: () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount }),
    publicPoolStats: () => ({ total: publicPool.totalCount, idle: publicPool.idleCount, waiting: publicPool.waitingCount }),
    close: async () => {
      await Promise.all([pool.end(), longPool.end(), publicPool.end()]);
    },
  };
}

async function openPglite(dataDir: string): Promise<Database> {
  const dir = join(dataDir, 'pgdata');
  mkdirSync(dir, { recursive: true });
  const client = await PGlite.create(dir);
  const drizzled = drizzlePglite(client, { schema });
  await migratePglite(drizzled, { migrationsFolder: MIGRATIONS_FOLDER });
  const db = drizzled as unknown as Db;
  const hot = pglitePrepared(client);
  return {
    db,
    kind: 'pglite',
    transaction: (work, isolation) => db.transaction((tx) => work(tx as unknown as Db), isolation ? { isolationLevel: isolation } : undefined),
    hot,
    publicRead: hot,
    poolStats: () => undefined,
    publicPoolStats: () => undefined,
    close: () => client.close(),
  };
}

export async function openDatabase(config: DatabaseConfig): Promise<Database> {
  return config.url ? openPostgres(config) : openPglite(config.dataDir);
}
