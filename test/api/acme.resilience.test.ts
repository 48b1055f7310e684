/**
 * ACME (RFC 8555) against hostile responders, greedy accounts and lost finalizations, through the
 * real app and database: a responder that trickles its answer fails at the attempt's deadline;
 * one challenge of an authorization is validated at a time; validations in flight are capped per
 * account and per replica, and pending orders per account; loopback and link-local addresses are
 * never connected to unless acme.allowLoopback; a finalization whose process lost track of its
 * order is settled from the audit trail (the certificate it issued, or ready again); a CSR with
 * the account's key and an impossible date are refused.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { defaultPolicies, TRUST_DOMAIN, workload } from '../setup/app.js';
import {
  acmeKeyFromPem, assertAcmeProblem, expectStatus, issueViaAcme, keyAuthorization, querySql, startAcmeFixture, type AcmeAccount, type AcmeFixture,
} from '../setup/acme-client.js';
import { createKeyAndCsr, csrFor } from '../setup/csr.js';
import { createTestDatabase } from '../setup/database.js';

const API = workload('payments', 'api');
const OTHER = workload('edge', 'gateway');
const FREE = workload('free', 'one');
const POLICIES = [
  ...defaultPolicies(),
  { identity: `spiffe://${TRUST_DOMAIN}/ns/free/sa/{sa}`, dns: ['{sa}.free.test'], maxTtl: '48h', acme: { challenges: 'none' } },
];

type Challenge = { type: string; url: string; token: string; status: string; error?: { type: string; detail: string } };

/** An http server that answers 200 and then one byte every 200 ms, for ever: it never finishes, and never goes idle. */
async function startTrickler(): Promise<{ port: number; connections: number; stop(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const state = { connections: 0 };
  const server: Server = createServer((socket) => {
    state.connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100000\r\n\r\n');
    const timer = setInterval(() => socket.write('x'), 200);
    socket.on('close', () => {
      clearInterval(timer);
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    get connections() {
      return state.connections;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function challengesOf(f: AcmeFixture, account: AcmeAccount, authzUrl: string): Promise<Challenge[]> {
  return expectStatus(await f.client.postAsGet(account, authzUrl), 200, authzUrl).challenges as Challenge[];
}

async function pendingHttp01(f: AcmeFixture, account: AcmeAccount, names: string[]): Promise<{ order: { authorizations: string[]; finalize: string }; challenges: Challenge[] }> {
  const order = expectStatus(await f.client.newOrder(account, names), 201, 'newOrder');
  const challenges: Challenge[] = [];
  for (const url of order.authorizations as string[]) {
    challenges.push((await challengesOf(f, account, url)).find((c) => c.type === 'http-01')!);
  }
  for (const name of names) f.dns.setA(name, '127.0.0.1');
  return { order, challenges };
}

describe('ACME under hostile responders, greedy accounts and lost finalizations', () => {
  describe('a responder that never finishes', () => {
    let f: AcmeFixture;
    let trickler: Awaited<ReturnType<typeof startTrickler>>;
    before(async () => {
      trickler = await startTrickler();
      f = await startAcmeFixture({ config: { policies: POLICIES }, acme: { challengePorts: { http01: trickler.port, tlsalpn01: 9 }, challengeTimeout: '1s' } });
    });
    after(async () => {
      await f?.stop();
      await trickler?.stop();
    });

    it('fails at the attempt deadline with a connection problem, though bytes keep coming', async () => {
      const account = await f.account(API);
      const { order, challenges } = await pendingHttp01(f, account, ['api.payments.svc']);
      expectStatus(await f.client.respond(account, challenges[0]!.url), 200, 'challenge response');
      const authz = expectStatus(await f.client.poll(account, order.authorizations[0]!, ['valid', 'invalid'], 30_000), 200);
      assert.equal(authz.status, 'invalid', JSON.stringify(authz));
      const failed = (authz.challenges as Challenge[]).find((c) => c.type === 'http-01')!;
      assert.equal(failed.error?.type, 'urn:ietf:params:acme:error:connection');
      assert.match(failed.error?.detail ?? '', /took longer than 1000 ms/);
      assert.equal(trickler.connections, 3, 'three attempts, each cut at its deadline');
    });

    it('validates one challenge of an authorization at a time: a second one answered meanwhile stays pending', async () => {
      const account = await f.account(API);
      const order = expectStatus(await f.client.newOrder(account, ['api.payments.svc']), 201);
      f.dns.setA('api.payments.svc', '127.0.0.1');
      const challenges = await challengesOf(f, account, order.authorizations[0]);
      const http = challenges.find((c) => c.type === 'http-01')!;
      const dns = challenges.find((c) => c.type === 'dns-01')!;
      assert.equal(expectStatus(await f.client.respond(account, http.url), 200).status, 'processing');
      assert.equal(expectStatus(await f.client.respond(account, dns.url), 200).status, 'pending', 'not validated while http-01 is');
      assert.equal(f.dns.queries.filter((q) => q.name.startsWith('_acme-challenge.')).length, 0, 'no TXT lookup');
      await f.client.poll(account, order.authorizations[0], ['invalid'], 30_000);
    });

  });

  describe('limits on validations in flight', () => {
    let f: AcmeFixture;
    let trickler: Awaited<ReturnType<typeof startTrickler>>;
    before(async () => {
      trickler = await startTrickler();
      f = await startAcmeFixture({ config: { policies: POLICIES }, acme: { challengePorts: { http01: trickler.port, tlsalpn01: 9 }, challengeTimeout: '5s', validations: { perAccount: 1, perProcess: 2 } } });
    });
    after(async () => {
      await f?.stop();
      await trickler?.stop();
    });

    it('per account (429, the challenge stays pending), then per replica', async () => {
      const first = await f.account(API);
      const { challenges } = await pendingHttp01(f, first, ['api.payments.svc', 'api.payments.svc.cluster.local']);
      assert.equal(expectStatus(await f.client.respond(first, challenges[0]!.url), 200).status, 'processing');
      const refused = assertAcmeProblem(await f.client.respond(first, challenges[1]!.url), 429, 'rateLimited', 'the account\'s second validation');
      assert.match(refused.detail, /1 validations in flight \(at most 1\)/);
      assert.equal(expectStatus(await f.client.postAsGet(first, challenges[1]!.url), 200).status, 'pending', 'the refused challenge can be answered again later');
      const other = await f.account(OTHER);
      const theirs = await pendingHttp01(f, other, ['gateway.edge.svc']);
      assert.equal(expectStatus(await f.client.respond(other, theirs.challenges[0]!.url), 200).status, 'processing', 'another account still validates');
      const third = await f.account(workload('edge', 'proxy'));
      const mine = await pendingHttp01(f, third, ['proxy.edge.svc']);
      const busy = assertAcmeProblem(await f.client.respond(third, mine.challenges[0]!.url), 429, 'rateLimited', 'the replica\'s third validation');
      assert.match(busy.detail, /this replica is validating 2 challenges/);
    });
  });

  describe('addresses, orders and CSRs', () => {
    let f: AcmeFixture;
    before(async () => {
      f = await startAcmeFixture({ config: { policies: POLICIES }, acme: { allowLoopback: false, pendingOrdersPerAccount: 2 } });
    });
    after(() => f?.stop());

    for (const [what, address] of [['loopback', '127.0.0.1'], ['IPv4-mapped loopback', '::ffff:127.0.0.1'], ['link-local (cloud metadata)', '169.254.169.254']] as const) {
      it(`a name that resolves to ${what} only is invalid without a connection`, async () => {
        const account = await f.account(API);
        const order = expectStatus(await f.client.newOrder(account, ['api.payments.svc']), 201);
        f.dns.setA('api.payments.svc', address);
        const http = (await challengesOf(f, account, order.authorizations[0])).find((c) => c.type === 'http-01')!;
        f.http.set(http.token, keyAuthorization(http.token, account.key));
        const before = f.http.connections;
        expectStatus(await f.client.respond(account, http.url), 200);
        const authz = expectStatus(await f.client.poll(account, order.authorizations[0], ['valid', 'invalid']), 200);
        assert.equal(authz.status, 'invalid');
        const failed = (authz.challenges as Challenge[]).find((c) => c.type === 'http-01')!;
        assert.equal(failed.error?.type, 'urn:ietf:params:acme:error:connection');
        assert.match(failed.error?.detail ?? '', /no address the CA validates against/);
        assert.equal(f.http.connections, before, 'no connection made');
        f.dns.setA('api.payments.svc');
      });
    }

    it('an account with acme.pendingOrdersPerAccount pending orders gets 429 for the next, and can order again once one is finalized', async () => {
      const account = await f.account(FREE);
      const first = expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
      expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
      const refused = assertAcmeProblem(await f.client.newOrder(account, ['one.free.test']), 429, 'rateLimited');
      assert.match(refused.detail, /2 pending orders \(at most 2\)/);
      assert.equal(expectStatus(await f.client.finalize(account, first.finalize, await csrFor({ dns: ['one.free.test'] })), 200).status, 'valid');
      expectStatus(await f.client.newOrder(account, ['one.free.test']), 201, 'a third order once one is valid');
    });

    it('a CSR with the account\'s own key is badCSR, and the order stays ready', async () => {
      const { keyPem, csrPem } = await createKeyAndCsr('p256', { dns: ['one.free.test'] });
      const account = await f.account(workload('free', 'one'), await acmeKeyFromPem(keyPem));
      const order = expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
      const refused = assertAcmeProblem(await f.client.finalize(account, order.finalize, csrPem), 400, 'badCSR');
      assert.match(refused.detail, /account key/);
      const url = order.finalize.replace(/\/finalize$/, '');
      assert.equal(expectStatus(await f.client.postAsGet(account, url), 200).status, 'ready');
    });

    it('a notAfter that names a day that does not exist is malformed', async () => {
      const account = await f.account(workload('free', 'two'));
      for (const notAfter of ['2027-02-30T00:00:00Z', '2027-13-01T00:00:00Z', '2027-01-01T24:00:00Z']) {
        assertAcmeProblem(await f.client.newOrder(account, ['two.free.test'], { notAfter }), 400, 'malformed', notAfter);
      }
    });
  });

  it('a finalization that lost its order is settled from the audit trail once its lease passes: valid with the certificate it issued, or ready again', async () => {
    const database = await createTestDatabase();
    let f: AcmeFixture | undefined;
    try {
      f = await startAcmeFixture({ database, config: { policies: POLICIES } });
      const { pki, issuer } = f.app;
      const account = await f.account(FREE);
      const issued = await issueViaAcme(f, account, { dns: ['one.free.test'] });
      const unissued = expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
      const held = expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
      const idOf = (url: string) => url.replace(/\/finalize$/, '').slice(url.replace(/\/finalize$/, '').lastIndexOf('/') + 1);
      const oldApi = f.app.api;
      await f.stop();
      f = undefined;
      // As a process that died between the issuance's commit and the order's update would leave
      // them, and one that died before issuing; the third is still within its lease.
      await querySql(database, `update acme_orders set status = 'processing', certificate_serial = null, processing_until = now() - interval '1 minute'
                                 where id in ('${idOf(issued.order.finalize)}', '${idOf(unissued.finalize)}')`);
      await querySql(database, `update acme_orders set status = 'processing', processing_until = now() + interval '1 hour' where id = '${idOf(held.finalize)}'`);
      f = await startAcmeFixture({ database, pki, issuer, config: { policies: POLICIES } });
      const moved = (url: string) => url.replace(oldApi, f!.app.api);
      const again: AcmeAccount = { ...account, url: moved(account.url) };
      const recovered = expectStatus(await f.client.postAsGet(again, moved(issued.orderUrl)), 200);
      assert.equal(recovered.status, 'valid');
      assert.equal(recovered.certificate, moved(issued.order.certificate), 'the certificate issued before, not a new one');
      const ready = expectStatus(await f.client.postAsGet(again, moved(unissued.finalize.replace(/\/finalize$/, ''))), 200);
      assert.equal(ready.status, 'ready');
      assert.equal(expectStatus(await f.client.finalize(again, moved(unissued.finalize), await csrFor({ dns: ['one.free.test'] })), 200).status, 'valid');
      const processing = await f.client.postAsGet(again, moved(held.finalize.replace(/\/finalize$/, '')));
      assert.equal(expectStatus(processing, 200).status, 'processing');
      assert.equal(processing.headers.get('retry-after'), '1');
      assertAcmeProblem(await f.client.finalize(again, moved(held.finalize), await csrFor({ dns: ['one.free.test'] })), 403, 'orderNotReady');
    } finally {
      await f?.stop();
      await database.drop();
    }
  });
});
