/**
 * ACME (RFC 8555) lifetimes and limits through the real app: an order's notBefore/notAfter
 * honoured to the second or refused at newOrder (never shortened), the window still honoured when
 * finalize comes later, pending orders and authorizations expiring after acme.orderLifetime,
 * acme.authorizationReuse, and finalize counted against limits.issuance like a REST issuance.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { defaultPolicies, TRUST_DOMAIN, workload } from '../setup/app.js';
import { assertAcmeProblem, expectStatus, keyAuthorization, pemBlocks, startAcmeFixture, type AcmeAccount, type AcmeFixture } from '../setup/acme-client.js';
import { csrFor } from '../setup/csr.js';
import { getRecord } from '../setup/revoking.js';

const API = workload('payments', 'api');
/** Matched by the challenge-free policy below (and by the default one). */
const FREE = workload('free', 'one');
const POLICIES = [
  ...defaultPolicies(),
  { identity: `spiffe://${TRUST_DOMAIN}/ns/free/sa/{sa}`, dns: ['{sa}.free.test', 'www.{sa}.free.test'], ip: ['10.1.0.0/16'], maxTtl: '48h', acme: { challenges: 'none' } },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lastSegment = (url: string) => url.slice(url.lastIndexOf('/') + 1);
const seconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

describe('ACME orders with a window', () => {
  let f: AcmeFixture;
  before(async () => {
    f = await startAcmeFixture({ config: { policies: POLICIES } });
  });
  after(() => f?.stop());

  describe('notBefore and notAfter', () => {
    let account: AcmeAccount;
    before(async () => {
      account = await f.account(FREE);
    });

    it('the certificate has exactly the window asked for', async () => {
      const notBefore = seconds(Date.now() + 60_000);
      const notAfter = new Date(notBefore.getTime() + 6 * 3600_000);
      const created = expectStatus(await f.client.newOrder(account, ['one.free.test'], { notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() }), 201);
      assert.equal(created.notBefore, notBefore.toISOString().replace('.000Z', 'Z'));
      assert.equal(created.notAfter, notAfter.toISOString().replace('.000Z', 'Z'));
      const done = expectStatus(await f.client.finalize(account, created.finalize, await csrFor({ dns: ['one.free.test'] })), 200);
      const cert = new X509Certificate(pemBlocks((await f.client.postAsGet(account, done.certificate)).text)[0]!);
      assert.equal(new Date(cert.validFrom).getTime(), notBefore.getTime(), `validFrom ${cert.validFrom}`);
      assert.equal(new Date(cert.validTo).getTime(), notAfter.getTime(), `validTo ${cert.validTo}`);
      const record = await getRecord(f.app, lastSegment(done.certificate));
      assert.equal(Date.parse(record.notAfter), notAfter.getTime());
    });

    it('notAfter alone ends the certificate then; fractions of a second are dropped', async () => {
      const notAfter = new Date(Date.now() + 2 * 3600_000 + 123);
      const created = expectStatus(await f.client.newOrder(account, ['one.free.test'], { notAfter: notAfter.toISOString() }), 201);
      const done = expectStatus(await f.client.finalize(account, created.finalize, await csrFor({ dns: ['one.free.test'] })), 200);
      const cert = new X509Certificate(pemBlocks((await f.client.postAsGet(account, done.certificate)).text)[0]!);
      assert.equal(new Date(cert.validTo).getTime(), seconds(notAfter.getTime()).getTime());
    });

    it('notAfter alone may take the whole cap (the backdate gives way); without a window the lifetime is issuance.defaultTtl', async () => {
      const notAfter = seconds(Date.now() + 48 * 3600_000);
      const created = expectStatus(await f.client.newOrder(account, ['one.free.test'], { notAfter: notAfter.toISOString() }), 201, 'notAfter = now + 48 h');
      const done = expectStatus(await f.client.finalize(account, created.finalize, await csrFor({ dns: ['one.free.test'] })), 200);
      const cert = new X509Certificate(pemBlocks((await f.client.postAsGet(account, done.certificate)).text)[0]!);
      assert.equal(new Date(cert.validTo).getTime(), notAfter.getTime());
      assert.ok(Date.parse(cert.validTo) - Date.parse(cert.validFrom) <= 48 * 3600_000, `${cert.validFrom} to ${cert.validTo} is within the cap`);
      const t0 = Date.now();
      const plain = expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
      assert.equal(plain.notBefore, undefined);
      assert.equal(plain.notAfter, undefined);
      const issued = expectStatus(await f.client.finalize(account, plain.finalize, await csrFor({ dns: ['one.free.test'] })), 200);
      const leaf = new X509Certificate(pemBlocks((await f.client.postAsGet(account, issued.certificate)).text)[0]!);
      assert.equal(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom), 24 * 3600_000, `${leaf.validFrom} to ${leaf.validTo}: a lifetime of a day`);
      assert.ok(Math.abs(Date.parse(leaf.validFrom) - (t0 - 60_000)) < 5000, `validFrom ${leaf.validFrom} is issuance.backdate (60 s) ago`);
    });

    it('a window longer than the policy\'s maxTtl, ending in the past or starting long ago is 400 malformed at newOrder', async () => {
      const now = Date.now();
      const at = (ms: number) => new Date(ms).toISOString();
      const cases: [string, Record<string, string>][] = [
        ['48 h and a minute', { notBefore: at(now + 60_000), notAfter: at(now + 60_000 + 48 * 3600_000 + 60_000) }],
        ['49 h from now', { notAfter: at(now + 49 * 3600_000) }],
        ['ending in the past', { notAfter: at(now - 60_000) }],
        ['ending before it starts', { notBefore: at(now + 7200_000), notAfter: at(now + 3600_000) }],
        ['starting a day ago', { notBefore: at(now - 86_400_000), notAfter: at(now + 3600_000) }],
        ['past the intermediate', { notBefore: at(now + 60_000), notAfter: '2999-01-01T00:00:00Z' }],
      ];
      for (const [what, window] of cases) assertAcmeProblem(await f.client.newOrder(account, ['one.free.test'], window), 400, 'malformed', what);
      expectStatus(await f.client.newOrder(account, ['one.free.test'], { notBefore: at(now + 60_000), notAfter: at(now + 60_000 + 48 * 3600_000) }), 201, 'exactly 48 h');
    });
  });
});

describe('ACME lifetimes: orderLifetime, authorizationReuse and a window asked for before a late finalize', () => {
  let f: AcmeFixture;
  before(async () => {
    f = await startAcmeFixture({ config: { policies: POLICIES, issuance: { backdate: '1s' } }, acme: { orderLifetime: '6s', authorizationReuse: 0 } });
  });
  after(() => f?.stop());

  it('a window accepted at newOrder is still honoured by a finalize that comes after the backdate has passed', async () => {
    const account = await f.account(FREE);
    const notBefore = seconds(Date.now());
    const notAfter = new Date(notBefore.getTime() + 3600_000);
    const created = await f.client.newOrder(account, ['one.free.test'], { notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString() });
    const body = expectStatus(created, 201);
    assert.equal(body.status, 'ready');
    // A client proving a name takes its time (dns-01 waits for propagation): here, past issuance.backdate (1 s).
    await sleep(2300);
    const done = await f.client.finalize(account, body.finalize, await csrFor({ dns: ['one.free.test'] }));
    assert.equal(done.status, 200, `finalize ${Date.now() - notBefore.getTime()} ms after notBefore: ${done.text}`);
    const cert = new X509Certificate(pemBlocks((await f.client.postAsGet(account, done.body.certificate)).text)[0]!);
    assert.equal(new Date(cert.validFrom).getTime(), notBefore.getTime());
    assert.equal(new Date(cert.validTo).getTime(), notAfter.getTime());
  });

  it('with authorizationReuse 0 every order has authorizations of its own', async () => {
    const account = await f.account(FREE);
    const first = expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
    const second = expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
    assert.notEqual(first.authorizations[0], second.authorizations[0]);
  });

  it('with authorizationReuse 0 an authorization validated by http-01 still serves its own order', async () => {
    const account = await f.account(API);
    const created = await f.client.newOrder(account, ['api.payments.svc']);
    const body = expectStatus(created, 201);
    const authz = expectStatus(await f.client.postAsGet(account, body.authorizations[0]), 200);
    const challenge = authz.challenges.find((ch: { type: string }) => ch.type === 'http-01');
    f.dns.setA('api.payments.svc', '127.0.0.1');
    f.http.set(challenge.token, keyAuthorization(challenge.token, account.key));
    expectStatus(await f.client.respond(account, challenge.url), 200);
    assert.equal(expectStatus(await f.client.poll(account, body.authorizations[0], ['valid', 'invalid', 'expired']), 200).status, 'valid');
    const ready = expectStatus(await f.client.postAsGet(account, created.location!), 200);
    assert.equal(ready.status, 'ready');
    assert.equal(expectStatus(await f.client.finalize(account, ready.finalize, await csrFor({ dns: ['api.payments.svc'] })), 200).status, 'valid');
  });

  it('after orderLifetime a pending order is invalid, its authorization expired, its challenges no longer validated, and it is no longer listed', async () => {
    const account = await f.account(API);
    const created = await f.client.newOrder(account, ['api.payments.svc']);
    const body = expectStatus(created, 201);
    const expires = Date.parse(body.expires);
    assert.ok(expires - Date.now() <= 6000 && expires - Date.now() > 3000, `expires ${body.expires}`);
    const authz = expectStatus(await f.client.postAsGet(account, body.authorizations[0]), 200);
    const challenge = authz.challenges.find((ch: { type: string }) => ch.type === 'http-01');
    f.dns.setA('api.payments.svc', '127.0.0.1');
    f.http.set(challenge.token, keyAuthorization(challenge.token, account.key));
    await sleep(Math.max(0, expires - Date.now()) + 1100);
    const order = expectStatus(await f.client.postAsGet(account, created.location!), 200);
    assert.equal(order.status, 'invalid');
    assert.equal(expectStatus(await f.client.postAsGet(account, body.authorizations[0]), 200).status, 'expired');
    const requests = f.http.requests.length;
    expectStatus(await f.client.respond(account, challenge.url), 200);
    await sleep(300);
    assert.equal(f.http.requests.length, requests, 'an expired authorization is not validated');
    assert.equal(expectStatus(await f.client.postAsGet(account, body.authorizations[0]), 200).status, 'expired');
    assertAcmeProblem(await f.client.finalize(account, body.finalize, await csrFor({ dns: ['api.payments.svc'] })), 403, 'orderNotReady');
    assert.deepEqual(expectStatus(await f.client.postAsGet(account, `${account.url}/orders`), 200).orders, []);
  });
});

describe('ACME finalization counts against limits.issuance', () => {
  let f: AcmeFixture;
  before(async () => {
    f = await startAcmeFixture({ config: { policies: POLICIES, limits: { issuance: { perIdentity: 1, window: '1h' } } } });
  });
  after(() => f?.stop());

  it('the second finalize of an identity within the window is 429 rateLimited with Retry-After, and its order stays ready', async () => {
    const account = await f.account(FREE);
    const first = expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
    assert.equal(expectStatus(await f.client.finalize(account, first.finalize, await csrFor({ dns: ['one.free.test'] })), 200).status, 'valid');
    const second = await f.client.newOrder(account, ['one.free.test']);
    const body = expectStatus(second, 201);
    const limited = await f.client.finalize(account, body.finalize, await csrFor({ dns: ['one.free.test'] }));
    assertAcmeProblem(limited, 429, 'rateLimited');
    assert.match(limited.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    const after = expectStatus(await f.client.postAsGet(account, second.location!), 200);
    assert.equal(after.status, 'ready', 'a passing refusal leaves the order ready for a retry');
    assert.equal(after.certificate, undefined);
    // The REST API counts the same budget.
    const rest = await f.app.issue(FREE, { csr: await csrFor({ dns: ['one.free.test'] }) });
    assert.equal(rest.status, 429);
    // Another identity has its own.
    const other = await f.account(workload('free', 'two'));
    const theirs = expectStatus(await f.client.newOrder(other, ['two.free.test']), 201);
    assert.equal(expectStatus(await f.client.finalize(other, theirs.finalize, await csrFor({ dns: ['two.free.test'] })), 200).status, 'valid');
  });
});
