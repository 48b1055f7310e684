/**
 * A fresh database for one test file: a new Postgres database under TEST_DATABASE_URL's server
 * (dropped after), or a new PGlite folder (removed after) when TEST_DATABASE_URL is not set.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';

export interface TestDatabase {
  /** Postgres URL, or undefined for PGlite under dataDir. */
  url: string | undefined;
  dataDir: string;
  kind: 'postgres' | 'pglite';
  drop(): Promise<void>;
}

export const testDatabaseUrl = process.env.TEST_DATABASE_URL;

export async function createTestDatabase(): Promise<TestDatabase> {
  const dataDir = mkdtempSync(join(tmpdir(), 'service-ca-test-'));
  if (!testDatabaseUrl) {
    return { url: undefined, dataDir, kind: 'pglite', drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
  }
  const name = `service_ca_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(testDatabaseUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  await admin.end();
  const url = new URL(testDatabaseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    dataDir,
    kind: 'postgres',
    async drop() {
      const a = postgres(testDatabaseUrl!, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end();
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
  };
}
