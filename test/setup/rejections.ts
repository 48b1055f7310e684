/**
 * Checking refusals: a problem document has exactly the contract's shape (docs/api.md "Conventions"),
 * and a refused request wrote nothing, counted straight in the database.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { withPg, type TestDatabase } from './database.js';

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
}

/**
 * Asserts that res is the problem document for code with the given status: media type
 * application/problem+json, exactly the keys type, title, status, detail, never a certificate.
 */
export async function assertProblem(res: Response, status: number, code: string): Promise<ProblemBody> {
  const text = await res.text();
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${text}`);
  assert.equal(res.headers.get('content-type')?.split(';')[0]?.trim(), 'application/problem+json', text);
  const body = JSON.parse(text) as ProblemBody;
  assert.deepEqual(Object.keys(body).sort(), ['detail', 'status', 'title', 'type']);
  assert.equal(body.type, `urn:service-ca:error:${code}`, text);
  assert.equal(body.status, status);
  assert.ok(typeof body.title === 'string' && body.title.length > 0, 'title is a non-empty string');
  assert.ok(typeof body.detail === 'string' && body.detail.length > 0, 'detail is a non-empty string');
  assert.doesNotMatch(text, /BEGIN CERTIFICATE/);
  return body;
}

/**
 * Rows in table certificates, by a read-only query of the test's own database. PGlite is a
 * single-process database: stop the app that holds it before counting.
 */
export async function countCertificateRows(database: TestDatabase): Promise<number> {
  if (database.url) {
    const r = await withPg(database.url, (client) => client.query<{ n: number }>('select count(*)::int as n from certificates'));
    return r.rows[0]!.n;
  }
  const db = await PGlite.create(join(database.dataDir, 'pgdata'));
  try {
    const r = await db.query<{ n: number }>('select count(*)::int as n from certificates');
    return r.rows[0]!.n;
  } finally {
    await db.close();
  }
}

/** Issued certificates so far, read from the app's own /metrics (an independent count). */
export async function issuedCount(app: { public: string }): Promise<number> {
  const text = await (await fetch(`${app.public}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith('service_ca_issuances_total{') && l.includes('result="issued"'))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}
