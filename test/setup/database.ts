/**
 * A fresh database for one test file: a new Postgres database under TEST_DATABASE_URL's server
 * (dropped after), or a new PGlite folder (removed after) when TEST_DATABASE_URL is not set.
 * Also the tests' and benches' one way to run SQL straight on Postgres (withPg), through pg
 * like the service itself (src/store/database.ts says why not postgres.js).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface TestDatabase {
  /** Postgres URL, or undefined for PGlite under dataDir. */
  url: string | undefined;
  dataDir: string;
  kind: 'postgres' | 'pglite';
  drop(): Promise<void>;
}

export const testDatabaseUrl = process.env.TEST_DATABASE_URL;

/**
 * One connection to url for the length of work: connect, run, end. pg returns bigint and
 * count(*) as strings, timestamps as Date, bytea as Buffer.
 */
export async function withPg<T>(url: string, work: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connectPg(url);
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** A connected client to url, for a caller that holds it across other work; the caller ends it. */
export async function connectPg(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  // A connection lost while idle is an 'error' event (unhandled, it ends the process); the next
  // query on the client fails with it instead.
  client.on('error', () => {});
  await client.connect();
  return client;
}

/**
 * A new, empty database named prefix_<random hex> on serverUrl's server; drop() removes it,
 * closing whatever connections it still has.
 */
export async function createPostgresDatabase(serverUrl: string, prefix: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  // An identifier, which no statement takes as a parameter: quoted instead.
  const quoted = pg.escapeIdentifier(name);
  await withPg(serverUrl, (admin) => admin.query(`create database ${quoted}`));
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await withPg(serverUrl, (admin) => admin.query(`drop database if exists ${quoted} with (force)`));
    },
  };
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const dataDir = mkdtempSync(join(tmpdir(), 'service-ca-test-'));
  if (!testDatabaseUrl) {
    return { url: undefined, dataDir, kind: 'pglite', drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  const database = await createPostgresDatabase(testDatabaseUrl, 'service_ca_test');
  return {
    url: database.url,
    dataDir,
    kind: 'postgres',
    async drop() {
      try {
        await database.drop();
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}

/** A database the store tests open themselves: its DatabaseConfig part, and how to drop it. */
export interface StoreBackend {
  name: 'PGlite' | 'Postgres';
  open(): Promise<{ config: { url?: string | undefined; dataDir: string }; drop(): Promise<void> }>;
}

/**
 * The databases store tests run on: always a fresh PGlite folder, and a fresh Postgres database
 * as well when TEST_DATABASE_URL is set (the brief: store tests run on both).
 */
export function storeBackends(): StoreBackend[] {
  const backends: StoreBackend[] = [
    {
      name: 'PGlite',
      async open() {
        const dataDir = mkdtempSync(join(tmpdir(), 'service-ca-store-'));
        return { config: { dataDir }, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
      },
    },
  ];
  if (testDatabaseUrl) {
    backends.push({
      name: 'Postgres',
      async open() {
        const database = await createTestDatabase();
        return { config: { url: database.url, dataDir: database.dataDir }, drop: () => database.drop() };
      },
    });
  }
  return backends;
}
