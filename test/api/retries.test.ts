/**
 * Retries after a lost answer (docs/api.md "Retries"), with a `requireJti: true` issuer: the same
 * token with a byte-identical CSR answers 200 with the certificate issued then (JSON or the PEM
 * chain), once or many times, concurrently too; the same token with another CSR is a replay
 * (401); nothing new is issued by any of them. Before this, the retry got 401 (issue 13, point 5).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { createKeyAndCsr, csrFor, type Names } from '../setup/csr.js';
import type { Issued } from '../setup/holder.js';
import { assertProblem, issuedCount } from '../setup/rejections.js';
import { createTestIssuer, issuerConfig } from '../setup/tokens.js';

const SUB = workload('payments', 'api');
const NAMES: Names = { dns: ['api.payments.svc'] };

function post(app: TestApp, token: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${app.api}/v1/certificates`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}`, ...headers },
    body: JSON.stringify(body),
  });
}

async function issued(res: Response, status: number): Promise<Issued> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  return JSON.parse(text) as Issued;
}

describe('idempotent retry of POST /v1/certificates (one-time tokens)', () => {
  let app: TestApp;
  before(async () => {
    const issuer = await createTestIssuer();
    app = await startTestApp({
      issuer,
      config: {
        auth: {
          issuers: [issuerConfig(issuer, 'test', { requireJti: true })],
          admins: { identities: [ADMIN] },
        },
      },
    });
  });
  after(() => app.stop());

  it('answers the same token with a byte-identical CSR with the certificate issued then (200), as JSON and as a PEM chain', async () => {
    const token = await app.token(SUB);
    const { csrPem } = await createKeyAndCsr('p256', NAMES);
    const first = await issued(await post(app, token, { csr: csrPem, ttl: '2h' }), 201);
    const count = await issuedCount(app);
    // The first answer was lost (a timeout, a proxy reset): the client sends the same request again.
    const retry = await post(app, token, { csr: csrPem, ttl: '2h' });
    assert.equal(retry.headers.get('location'), `/v1/certificates/${first.serial}`);
    const again = await issued(retry, 200);
    assert.deepEqual(again, first, 'the very answer of the first request');
    // The CSR is compared as DER: other PEM line breaks are the same request.
    const rewrapped = csrPem.replace(/\n(?!-)/g, '\r\n');
    assert.notEqual(rewrapped, csrPem);
    assert.equal((await issued(await post(app, token, { csr: rewrapped }), 200)).serial, first.serial);
    const pem = await post(app, token, { csr: csrPem }, { Accept: 'application/pem-certificate-chain' });
    assert.equal(pem.status, 200);
    assert.equal(pem.headers.get('content-type'), 'application/pem-certificate-chain');
    assert.equal(await pem.text(), first.certificate + first.chain.join(''));
    assert.equal(await issuedCount(app), count, 'no retry issued anything');
  });

  it('refuses the same token with another CSR as a replay (401), before and after the retry', async () => {
    const token = await app.token(SUB);
    const csr = await csrFor(NAMES);
    await issued(await post(app, token, { csr }), 201);
    const count = await issuedCount(app);
    await assertProblem(await post(app, token, { csr: await csrFor(NAMES) }), 401, 'unauthorized');
    // Same key, other names: another CSR.
    await assertProblem(await post(app, token, { csr: await csrFor({ dns: ['api.payments.svc', 'api.payments.svc.cluster.local'] }) }), 401, 'unauthorized');
    await issued(await post(app, token, { csr }), 200);
    assert.equal(await issuedCount(app), count);
  });

  it('issues once for six concurrent sends of one token and CSR, and answers every one with that certificate', async () => {
    const token = await app.token(SUB);
    const csr = await csrFor(NAMES);
    const count = await issuedCount(app);
    const answers = await Promise.all(Array.from({ length: 6 }, () => post(app, token, { csr })));
    assert.deepEqual(answers.map((r) => r.status).sort(), [200, 200, 200, 200, 200, 201]);
    const serials = new Set(await Promise.all(answers.map(async (r) => ((await r.json()) as Issued).serial)));
    assert.equal(serials.size, 1);
    assert.equal(await issuedCount(app), count + 1);
  });

  it('does not answer a retry with a certificate revoked since (401)', async () => {
    const token = await app.token(SUB);
    const csr = await csrFor(NAMES);
    const first = await issued(await post(app, token, { csr }), 201);
    const revoked = await fetch(`${app.api}/v1/certificates/${first.serial}/revoke`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(ADMIN)}` },
      body: JSON.stringify({ reason: 'keyCompromise' }),
    });
    assert.equal(revoked.status, 200);
    await assertProblem(await post(app, token, { csr }), 401, 'unauthorized');
  });
});
