/**
 * Per-identity issuance limits (limits.issuance): over the limit, 429 rateLimited with
 * Retry-After and no certificate; other identities are not affected; and on Postgres two
 * replicas share one count, because it lives in the database.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestApp, workload, type TestApp } from '../setup/app.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '../setup/database.js';
import { createTestPki } from '../setup/pki.js';
import { assertProblem } from '../setup/rejections.js';
import { createTestIssuer } from '../setup/tokens.js';

const LIMIT = 3;

async function issue(app: TestApp, sub: string): Promise<Response> {
  const [ns, sa] = sub.split('/ns/')[1]!.split('/sa/') as [string, string];
  const { csrPem } = await createKeyAndCsr('p256', { dns: [`${sa}.${ns}.svc`] });
  return app.issue(sub, { csr: csrPem });
}

describe('issuance rate limits', () => {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp | undefined;

  before(async () => {
    database = await createTestDatabase();
    const pki = await createTestPki('p256');
    const issuer = await createTestIssuer();
    const config = { limits: { issuance: { perIdentity: LIMIT, window: '1h' } } };
    a = await startTestApp({ database, pki, issuer, config });
    if (testDatabaseUrl) b = await startTestApp({ database, pki, issuer, config });
  });

  after(async () => {
    await b?.stop();
    await a?.stop();
    await database?.drop();
  });

  it('answers 429 rateLimited with Retry-After past the limit, writing no certificate', async () => {
    const sub = workload('shop', 'web');
    for (let i = 0; i < LIMIT; i++) assert.equal((await issue(a, sub)).status, 201);
    const res = await issue(a, sub);
    const retryAfter = Number(res.headers.get('Retry-After'));
    await assertProblem(res, 429, 'rateLimited');
    assert.ok(retryAfter >= 1 && retryAfter <= 3600, `Retry-After ${retryAfter}`);
    const listed = await fetch(`${a.api}/v1/certificates?identity=${encodeURIComponent(sub)}`, { headers: { Authorization: `Bearer ${await a.token('spiffe://example.org/admin')}` } });
    assert.equal(((await listed.json()) as { items: unknown[] }).items.length, LIMIT, 'the refused request issued nothing');
  });

  it('counts refused requests too: past the budget a refusal answers 429 and writes no audit row', async () => {
    const sub = workload('shop', 'refuser');
    const victim = (await (await issue(a, workload('shop', 'victim'))).json()) as { serial: string };
    // Refused issuances (a name outside the policy) count, like any issuance request.
    const { csrPem } = await createKeyAndCsr('p256', { dns: ['victim.shop.svc'] });
    await assertProblem(await a.issue(sub, { csr: csrPem }), 403, 'rejectedIdentifier');
    // So do refused revocations (another identity's certificate).
    const revoke = async () =>
      fetch(`${a.api}/v1/certificates/${victim.serial}/revoke`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await a.token(sub)}` },
        body: JSON.stringify({ reason: 'keyCompromise' }),
      });
    for (let i = 1; i < LIMIT; i++) await assertProblem(await revoke(), 403, 'forbidden');
    await assertProblem(await revoke(), 429, 'rateLimited');
    await assertProblem(await issue(a, sub), 429, 'rateLimited');
    const audit = await fetch(`${a.api}/v1/audit?actor=${encodeURIComponent(sub)}`, { headers: { Authorization: `Bearer ${await a.token('spiffe://example.org/admin')}` } });
    const rows = ((await audit.json()) as { items: { outcome: string }[] }).items.map((r) => r.outcome).sort();
    assert.deepEqual(rows, ['forbidden', 'forbidden', 'rejectedIdentifier'], 'one row per refusal inside the budget, none past it');
  });

  it('counts refused admin reads (listing, audit) of a workload the same way', async () => {
    const sub = workload('shop', 'snoop');
    const read = async (path: string) => fetch(`${a.api}${path}`, { headers: { Authorization: `Bearer ${await a.token(sub)}` } });
    await assertProblem(await read('/v1/certificates'), 403, 'forbidden');
    await assertProblem(await read('/v1/audit'), 403, 'forbidden');
    for (let i = 2; i < LIMIT; i++) await assertProblem(await read('/v1/certificates'), 403, 'forbidden');
    await assertProblem(await read('/v1/certificates'), 429, 'rateLimited');
    await assertProblem(await read('/v1/audit'), 429, 'rateLimited');
  });

  it('keeps other identities\' budgets apart', async () => {
    assert.equal((await issue(a, workload('shop', 'api'))).status, 201);
  });

  it('shares one count across replicas on one database', { skip: testDatabaseUrl ? false : 'needs Postgres (TEST_DATABASE_URL): PGlite runs one process' }, async () => {
    const sub = workload('pay', 'web');
    assert.equal((await issue(a, sub)).status, 201);
    assert.equal((await issue(b!, sub)).status, 201);
    assert.equal((await issue(a, sub)).status, 201);
    await assertProblem(await issue(b!, sub), 429, 'rateLimited');
    await assertProblem(await issue(a, sub), 429, 'rateLimited');
  });
});
