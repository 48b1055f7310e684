/**
 * Renewal lineage (docs/api.md "Certificate holder"): a certificate renews once; a retry with the same
 * new key gets the same certificate (200); another key is a reuse (401, audited as
 * certificate.renew.reuse, counted in service_ca_renewal_reuse_total); a renewal's lifetime is at
 * most its parent's; the record names its parent; keyCompromise revokes the whole lineage and
 * every serial of it is in the next CRL (read by openssl); a renewal racing the revocation of its
 * parent never leaves a valid child. Each of these failed on the code before renewal lineage
 * (issue 13, point 1).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { holderToken } from '../../src/client/index.js';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { createKeyAndCsr, type Names } from '../setup/csr.js';
import { waitForCrl } from '../setup/crl-check.js';
import { issueHolder, postRenew, type Holder, type Issued } from '../setup/holder.js';
import { assertProblem, issuedCount } from '../setup/rejections.js';

const SUB = workload('payments', 'api');
const NAMES: Names = { dns: ['api.payments.svc'], uri: [SUB] };

interface RecordJson {
  serial: string;
  status: string;
  renewedFrom: string | null;
  revocationReason: string | null;
}

async function asAdmin(app: TestApp, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`${app.api}${path}`, { ...init, headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(ADMIN)}`, ...init.headers } });
}

async function record(app: TestApp, serial: string): Promise<RecordJson> {
  const res = await asAdmin(app, `/v1/certificates/${serial}`);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as RecordJson;
}

/** Renews `holder` with a new key (or the given one); the raw answer and the key. */
async function renew(app: TestApp, holder: Holder, body: Record<string, unknown> = {}, key?: { keyPem: string; csrPem: string }) {
  const k = key ?? (await createKeyAndCsr('p256', NAMES));
  const res = await postRenew(app, await holderToken(holder.issued.certificate, holder.keyPem), { csr: k.csrPem, ...body });
  return { res, key: k };
}

async function renewed(app: TestApp, holder: Holder, body: Record<string, unknown> = {}): Promise<Holder> {
  const { res, key } = await renew(app, holder, body);
  const text = await res.text();
  assert.equal(res.status, 201, text);
  const issued = JSON.parse(text) as Issued;
  return { issued, keyPem: key.keyPem, cert: new X509Certificate(issued.certificate) };
}

const lifetimeMs = (i: Issued) => Date.parse(i.notAfter) - Date.parse(i.notBefore);

async function reuseCount(app: TestApp): Promise<number> {
  const text = await (await fetch(`${app.public}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('service_ca_renewal_reuse_total '));
  assert.ok(line, 'the metric is exposed');
  return Number(line.split(' ')[1]);
}

describe('renewal lineage', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp();
  });
  after(() => app.stop());

  it('renews once: the retry with the same key gets the same certificate (200), another key is a reuse (401, audited, counted)', async () => {
    const a = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
    const first = await renew(app, a);
    const firstText = await first.res.text();
    assert.equal(first.res.status, 201, firstText);
    const b = JSON.parse(firstText) as Issued;
    assert.equal((await record(app, b.serial)).renewedFrom, a.issued.serial, 'the record names its parent');
    assert.equal((await record(app, a.issued.serial)).renewedFrom, null, 'an issuance with an identity token has no parent');

    const countBefore = await issuedCount(app);
    const reusesBefore = await reuseCount(app);
    // The answer was lost: the agent retries with the same key and CSR (and a fresh holder token).
    const retry = await renew(app, a, {}, first.key);
    const retryText = await retry.res.text();
    assert.equal(retry.res.status, 200, retryText);
    const again = JSON.parse(retryText) as Issued;
    assert.equal(again.serial, b.serial);
    assert.equal(again.certificate, b.certificate);
    assert.equal(retry.res.headers.get('location'), `/v1/certificates/${b.serial}`);

    // Someone else with A's key renews it again: refused, and the operator can see it.
    const fork = await renew(app, a);
    const problem = await assertProblem(fork.res, 401, 'unauthorized');
    assert.match(problem.detail, /already been renewed/);
    assert.equal(await issuedCount(app), countBefore, 'neither the retry nor the reuse issued anything');
    assert.equal(await reuseCount(app), reusesBefore + 1);
    const audit = (await (await asAdmin(app, `/v1/audit?serial=${a.issued.serial}&action=certificate.renew.reuse`)).json()) as { items: { outcome: string; actor: string }[] };
    assert.deepEqual(audit.items.map((r) => [r.outcome, r.actor]), [['unauthorized', SUB]]);
  });

  it('gives a renewal at most its parent\'s lifetime, whatever ttl it asks for', async () => {
    const a = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
    const b = await renewed(app, a, { ttl: '24h' });
    assert.equal(lifetimeMs(b.issued), 3600_000, `asked for 24 h, got ${b.issued.notBefore} .. ${b.issued.notAfter}`);
    assert.equal(new Date(b.cert.validTo).getTime() - new Date(b.cert.validFrom).getTime(), 3600_000, 'the certificate itself says so');
    const c = await renewed(app, b, { ttl: '20m' });
    assert.equal(lifetimeMs(c.issued), 1200_000, 'a shorter ttl is honoured');
    const d = await renewed(app, c);
    assert.equal(lifetimeMs(d.issued), 1200_000, 'and from then on is the cap');
  });

  it('keyCompromise revokes every certificate renewed from the one named, and the next CRL lists them all', async () => {
    const a = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
    const b = await renewed(app, a);
    const c = await renewed(app, b);
    const unrelated = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
    const res = await asAdmin(app, `/v1/certificates/${a.issued.serial}/revoke`, { method: 'POST', body: JSON.stringify({ reason: 'keyCompromise' }) });
    const text = await res.text();
    assert.equal(res.status, 200, text);
    const answer = JSON.parse(text) as RecordJson & { alsoRevoked: string[] };
    assert.equal(answer.status, 'revoked');
    assert.deepEqual(answer.alsoRevoked, [b.issued.serial, c.issued.serial].sort());
    for (const s of [b.issued.serial, c.issued.serial]) {
      const r = await record(app, s);
      assert.equal(r.status, 'revoked');
      assert.equal(r.revocationReason, 'keyCompromise');
    }
    assert.equal((await record(app, unrelated.issued.serial)).status, 'valid');
    // The lineage's holders can no longer renew.
    await assertProblem((await renew(app, c)).res, 401, 'unauthorized');
    const chain = a.issued.chain.join('');
    const { crl } = await waitForCrl(app.public, chain, (x) => [a, b, c].every((h) => x.entries.has(h.issued.serial)));
    assert.ok(crl.verified, crl.output);
    assert.equal(crl.entries.get(c.issued.serial)?.reason, 'Key Compromise');
    assert.ok(!crl.entries.has(unrelated.issued.serial));
  });

  it('another reason revokes the certificate alone', async () => {
    const a = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
    const b = await renewed(app, a);
    const res = await asAdmin(app, `/v1/certificates/${a.issued.serial}/revoke`, { method: 'POST', body: JSON.stringify({ reason: 'superseded' }) });
    assert.equal(res.status, 200);
    assert.deepEqual(((await res.json()) as { alsoRevoked: string[] }).alsoRevoked, []);
    assert.equal((await record(app, b.issued.serial)).status, 'valid');
  });

  it('never leaves a valid child when a renewal races the keyCompromise revocation of its parent', async () => {
    for (let round = 0; round < 8; round++) {
      const a = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
      const token = await holderToken(a.issued.certificate, a.keyPem);
      const key = await createKeyAndCsr('p256', NAMES);
      const [renewal, revocation] = await Promise.all([
        postRenew(app, token, { csr: key.csrPem }),
        asAdmin(app, `/v1/certificates/${a.issued.serial}/revoke`, { method: 'POST', body: JSON.stringify({ reason: 'keyCompromise' }) }),
      ]);
      assert.equal(revocation.status, 200, await revocation.clone().text());
      const alsoRevoked = ((await revocation.json()) as { alsoRevoked: string[] }).alsoRevoked;
      if (renewal.status === 201) {
        const child = (await renewal.json()) as Issued;
        assert.deepEqual(alsoRevoked, [child.serial], `round ${round}: the renewal committed first, so the revocation took it along`);
        assert.equal((await record(app, child.serial)).status, 'revoked');
      } else {
        await assertProblem(renewal, 401, 'unauthorized');
        assert.deepEqual(alsoRevoked, []);
      }
    }
  });

  it('opens the renewal-info window of a lineage revoked with its parent', async () => {
    const a = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
    const b = await renewed(app, a);
    await asAdmin(app, `/v1/certificates/${a.issued.serial}/revoke`, { method: 'POST', body: JSON.stringify({ reason: 'keyCompromise' }) });
    const info = (await (await fetch(`${app.public}/v1/certificates/${b.issued.serial}/renewal-info`)).json()) as { suggestedWindow: { start: string; end: string } };
    assert.ok(Date.parse(info.suggestedWindow.end) <= Date.now() + 1000, `the child's window is open now: ${JSON.stringify(info)}`);
  });
});
