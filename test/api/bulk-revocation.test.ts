/**
 * Revocation at any size (docs/api.md "Admin", issue 13 point 2): POST /v1/revocations for an identity
 * with 12,000 valid certificates answers 200 with every serial (before, its audit rows went into
 * one INSERT over Postgres's 65,535-parameter limit and the refusal came back as a 503), the
 * next CRL lists them all (read and verified by openssl), and a second request finds nothing left.
 * The 12,000 rows are copies of one real issuance's row made by SQL (issuing them through the API
 * takes minutes on this machine); the store tests do the same on PGlite.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { waitForCrl } from '../setup/crl-check.js';
import { testDatabaseUrl, withPg } from '../setup/database.js';
import { issueFor } from '../setup/revoking.js';

const IDENTITY = workload('bulk', 'api');
const COUNT = 12_000;

async function revokeIdentity(app: TestApp, identity: string): Promise<Response> {
  return fetch(`${app.api}/v1/revocations`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(ADMIN)}` },
    body: JSON.stringify({ identity, reason: 'keyCompromise' }),
  });
}

describe('bulk revocation of 12,000 certificates through the API', { skip: testDatabaseUrl ? false : 'needs TEST_DATABASE_URL (Postgres); the store tests cover PGlite' }, () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp();
  });
  after(() => app?.stop());

  it('revokes them all in one request, and the next CRL lists every one', async (t) => {
    const template = await issueFor(app, IDENTITY, ['api.bulk.svc'], '1h');
    const other = await issueFor(app, workload('bulk', 'other'), ['other.bulk.svc'], '1h');
    await withPg(app.database.url!, (client) =>
      client.query(
        `insert into certificates (serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, der, fingerprint)
         select '7f' || left(md5(n::text) || md5(n::text), 38), issuer_key_id, identity, sans, dns_names, not_before, not_after, der, md5(n::text) || md5(n::text)
         from certificates, generate_series(1, $2::int) as n where serial = $1`,
        [template.serial, COUNT - 1],
      ),
    );
    const started = Date.now();
    const res = await revokeIdentity(app, IDENTITY);
    const text = await res.text();
    assert.equal(res.status, 200, text.slice(0, 500));
    const revoked = (JSON.parse(text) as { revoked: string[] }).revoked;
    assert.equal(revoked.length, COUNT);
    assert.ok(revoked.includes(template.serial));
    const { crl, elapsedMs } = await waitForCrl(app.public, template.chain.join(''), (c) => c.entries.size >= COUNT, { timeoutMs: 30_000, since: started });
    assert.ok(crl.verified, crl.output);
    assert.equal(crl.entries.size, COUNT);
    for (const serial of revoked) assert.equal(crl.entries.get(serial)?.reason, 'Key Compromise', serial);
    assert.ok(!crl.entries.has(other.serial), 'another identity\'s certificate is not revoked');
    t.diagnostic(`${COUNT} revoked and in the CRL ${elapsedMs} ms after the request was sent`);
    const again = await revokeIdentity(app, IDENTITY);
    assert.equal(again.status, 200);
    assert.deepEqual(await again.json(), { revoked: [] });
  });
});
