/**
 * ACME (RFC 8555) orders, authorizations, challenges and finalization through the real app,
 * database, a DNS server the CA resolves challenge names with (test/setup/dns-server.ts) and
 * http-01 / tls-alpn-01 responders: deny by default before anything is written (rejectedIdentifier),
 * each challenge type proven and failed, finalize's CSR checks, `acme.challenges: none` policies,
 * notBefore/notAfter, authorization reuse and deactivation, and that an ACME certificate is a
 * certificate of the bound identity like any other (record, audit row, openssl verify).
 */
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ADMIN, defaultPolicies, TRUST_DOMAIN, workload } from '../setup/app.js';
import {
  assertAcmeProblem, countRows, csrDer, expectStatus, issueViaAcme, keyAuthorization, pemBlocks, startAcmeFixture, type AcmeAccount, type AcmeFixture,
} from '../setup/acme-client.js';
import { createKeyAndCsr, csrFor, opensslCsr } from '../setup/csr.js';
import { createTestDatabase } from '../setup/database.js';
import { verifyChain } from '../setup/openssl.js';
import { getRecord } from '../setup/revoking.js';

const API = workload('payments', 'api');
const GATEWAY = workload('edge', 'gateway');
/** Matched by the challenge-free policy below (and by the default one). */
const FREE = workload('free', 'one');
const LOCAL = workload('acme', 'web');

/** The default policies, and one whose names ACME accounts get without a challenge. */
const POLICIES = [
  ...defaultPolicies(),
  { identity: `spiffe://${TRUST_DOMAIN}/ns/free/sa/{sa}`, dns: ['{sa}.free.test', 'www.{sa}.free.test'], ip: ['10.1.0.0/16'], maxTtl: '48h', acme: { challenges: 'none' } },
  // An address the responders answer on (the API listener has no TLS here, so 127.0.0.1 is not reserved).
  { identity: LOCAL, ip: ['127.0.0.1/32'] },
];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const lastSegment = (url: string) => url.slice(url.lastIndexOf('/') + 1);

describe('ACME orders, challenges and finalization', () => {
  let f: AcmeFixture;

  before(async () => {
    f = await startAcmeFixture({ config: { policies: POLICIES } });
  });
  after(() => f?.stop());

  const order = (account: AcmeAccount, url: string) => f.client.postAsGet(account, url).then((a) => expectStatus(a, 200, url));

  describe('newOrder', () => {
    it('201 with a pending order, one pending authorization per identifier, and http-01, dns-01 and tls-alpn-01 for a DNS name', async () => {
      const account = await f.account(API);
      const res = await f.client.newOrder(account, ['API.Payments.svc.', 'api.payments.svc.cluster.local']);
      const body = expectStatus(res, 201);
      assert.match(res.location ?? '', new RegExp(`^${f.app.api}/acme/order/[A-Za-z0-9_-]+$`));
      assert.equal(body.status, 'pending');
      assert.deepEqual(body.identifiers, [{ type: 'dns', value: 'api.payments.svc' }, { type: 'dns', value: 'api.payments.svc.cluster.local' }], 'canonical: lower case, no trailing dot');
      assert.equal(body.finalize, `${res.location}/finalize`);
      const lifetime = Date.parse(body.expires) - Date.now();
      assert.ok(lifetime > 23.9 * 3600_000 && lifetime <= 24 * 3600_000 + 1000, `expires ${body.expires}`);
      assert.equal(body.authorizations.length, 2);
      assert.equal(body.certificate, undefined);
      const tokens = new Set<string>();
      for (const [i, url] of (body.authorizations as string[]).entries()) {
        const read = await f.client.postAsGet(account, url);
        assert.equal(read.headers.get('retry-after'), '1', 'a pending authorization asks to be polled again in a second');
        const authz = expectStatus(read, 200);
        assert.deepEqual(authz.identifier, body.identifiers[i]);
        assert.equal(authz.status, 'pending');
        assert.equal(authz.wildcard, undefined);
        assert.deepEqual(authz.challenges.map((ch: { type: string }) => ch.type).sort(), ['dns-01', 'http-01', 'tls-alpn-01']);
        for (const ch of authz.challenges as { url: string; status: string; token: string }[]) {
          assert.equal(ch.status, 'pending');
          assert.match(ch.token, /^[A-Za-z0-9_-]{43,}$/, 'a token of at least 128 bits, base64url');
          assert.match(ch.url, new RegExp(`^${f.app.api}/acme/chall/`));
          tokens.add(ch.token);
          const read = await f.client.postAsGet(account, ch.url);
          assert.equal(expectStatus(read, 200).token, ch.token);
          assert.match(read.headers.get('link') ?? '', new RegExp(`<${url}>;rel="up"`));
        }
      }
      assert.equal(tokens.size, 6, 'every challenge has its own token');
      const list = await f.client.postAsGet(account, `${account.url}/orders`);
      assert.deepEqual(expectStatus(list, 200).orders, [res.location]);
    });

    it('an IP identifier gets http-01 and tls-alpn-01 only; IPv6 is written as RFC 5952 text', async () => {
      const account = await f.account(API);
      const body = expectStatus(await f.client.newOrder(account, [{ type: 'ip', value: '10.2.3.4' }, { type: 'ip', value: 'FD00:0:0:0::1' }]), 201);
      assert.deepEqual(body.identifiers, [{ type: 'ip', value: '10.2.3.4' }, { type: 'ip', value: 'fd00::1' }]);
      for (const url of body.authorizations as string[]) {
        const authz = await order(account, url);
        assert.deepEqual(authz.challenges.map((ch: { type: string }) => ch.type).sort(), ['http-01', 'tls-alpn-01']);
      }
    });

    it('a wildcard gets one dns-01 challenge on the base name, wildcard: true', async () => {
      const account = await f.account(GATEWAY);
      const body = expectStatus(await f.client.newOrder(account, ['*.edge.example.org']), 201);
      assert.deepEqual(body.identifiers, [{ type: 'dns', value: '*.edge.example.org' }]);
      const authz = await order(account, body.authorizations[0]);
      assert.deepEqual(authz.identifier, { type: 'dns', value: 'edge.example.org' });
      assert.equal(authz.wildcard, true);
      assert.deepEqual(authz.challenges.map((ch: { type: string }) => ch.type), ['dns-01']);
    });

    it('malformed identifier lists are refused', async () => {
      const account = await f.account(API);
      const post = (payload: unknown) => f.client.post(f.client.directory.newOrder, payload, { key: account.key, kid: account.url });
      const cases: [string, unknown, number, string][] = [
        ['no identifiers', {}, 400, 'malformed'],
        ['POST-as-GET', '', 400, 'malformed'],
        ['an empty list', { identifiers: [] }, 400, 'malformed'],
        ['not a list', { identifiers: { type: 'dns', value: 'api.payments.svc' } }, 400, 'malformed'],
        ['101 identifiers', { identifiers: Array.from({ length: 101 }, (_, i) => ({ type: 'ip', value: `10.0.0.${i}` })) }, 400, 'malformed'],
        ['twice the same name', { identifiers: [{ type: 'dns', value: 'api.payments.svc' }, { type: 'dns', value: 'API.payments.svc' }] }, 400, 'malformed'],
        ['a value that is not a string', { identifiers: [{ type: 'dns', value: 5 }] }, 400, 'malformed'],
        ['an identifier that is not an object', { identifiers: ['api.payments.svc'] }, 400, 'malformed'],
        ['an email identifier', { identifiers: [{ type: 'email', value: 'api@payments.example.org' }] }, 400, 'unsupportedIdentifier'],
        ['no type', { identifiers: [{ value: 'api.payments.svc' }] }, 400, 'unsupportedIdentifier'],
        ['an IP that is not one', { identifiers: [{ type: 'ip', value: '10.0.0.256' }] }, 400, 'malformed'],
        ['a DNS name that is not one', { identifiers: [{ type: 'dns', value: 'api..payments.svc' }] }, 403, 'rejectedIdentifier'],
        ['notBefore without notAfter', { identifiers: [{ type: 'dns', value: 'api.payments.svc' }], notBefore: new Date().toISOString() }, 400, 'malformed'],
        ['notAfter that is no time', { identifiers: [{ type: 'dns', value: 'api.payments.svc' }], notAfter: 'tomorrow' }, 400, 'malformed'],
        ['notAfter as a number', { identifiers: [{ type: 'dns', value: 'api.payments.svc' }], notAfter: Date.now() + 3600_000 }, 400, 'malformed'],
      ];
      for (const [what, payload, status, type] of cases) assertAcmeProblem(await post(payload), status, type, what);
      assert.deepEqual(expectStatus(await f.client.postAsGet(account, `${account.url}/orders`), 200).orders, [], 'no order was written');
    });
  });

  describe('deny by default', () => {
    it('a name outside the identity\'s policy is 403 rejectedIdentifier: no order, authorization or challenge row, no DNS query and no connection', async () => {
      const database = await createTestDatabase();
      const own = await startAcmeFixture({ database, config: { policies: POLICIES } });
      try {
        const account = await own.account(API);
        const refused: (string | { type: string; value: string })[][] = [
          ['web.shop.svc'],
          ['api.payments.svc', 'web.shop.svc'],
          ['localhost'],
          [{ type: 'ip', value: '127.0.0.1' }],
          [{ type: 'ip', value: '11.0.0.1' }],
          ['*.api.payments.svc'],
          ['evil.example.com'],
          ['one.free.test'],
        ];
        for (const ids of refused) {
          const problem = assertAcmeProblem(await own.client.newOrder(account, ids), 403, 'rejectedIdentifier', JSON.stringify(ids));
          assert.match(problem.detail, /outside/);
        }
        // A binding for a name outside is refused alike for an account of another identity.
        const free = await own.account(FREE);
        assertAcmeProblem(await own.client.newOrder(free, ['api.payments.svc']), 403, 'rejectedIdentifier');
        assert.deepEqual(expectStatus(await own.client.postAsGet(account, `${account.url}/orders`), 200).orders, []);
        await sleep(200);
        assert.equal(own.http.connections, 0, 'the CA connected to no challenge server');
        assert.deepEqual(own.dns.queries, [], 'the CA asked no DNS question');
      } finally {
        await own.stop();
      }
      try {
        assert.equal(await countRows(database, 'acme_orders'), 0);
        assert.equal(await countRows(database, 'acme_authorizations'), 0);
        assert.equal(await countRows(database, 'acme_challenges'), 0);
        assert.equal(await countRows(database, 'acme_order_authorizations'), 0);
        assert.equal(await countRows(database, 'acme_accounts'), 2, 'the two accounts, and nothing else');
      } finally {
        await database.drop();
      }
    });

    it('the API listener\'s own names (server.tls.names) are never ordered', async () => {
      const own = await startAcmeFixture({ tls: true, config: { policies: [...POLICIES, { identity: workload('acme', 'web'), dns: ['localhost', 'web.acme.test'], ip: ['127.0.0.1/32'] }] } });
      try {
        const account = await own.account(workload('acme', 'web'));
        assertAcmeProblem(await own.client.newOrder(account, ['localhost']), 403, 'rejectedIdentifier');
        assertAcmeProblem(await own.client.newOrder(account, [{ type: 'ip', value: '127.0.0.1' }]), 403, 'rejectedIdentifier');
        expectStatus(await own.client.newOrder(account, ['web.acme.test']), 201);
      } finally {
        await own.stop();
      }
    });
  });

  describe('challenges', () => {
    it('http-01: the whole flow, to a certificate of the bound identity that openssl verifies, with its record and audit row', async () => {
      const account = await f.account(API);
      const created = await f.client.newOrder(account, ['api.payments.svc']);
      const orderUrl = created.location!;
      const authzUrl = expectStatus(created, 201).authorizations[0];
      const authz = await order(account, authzUrl);
      const challenge = authz.challenges.find((ch: { type: string }) => ch.type === 'http-01');
      f.dns.setA('api.payments.svc', '127.0.0.1');
      f.http.set(challenge.token, keyAuthorization(challenge.token, account.key));
      const before = f.http.requests.length;
      const answered = await f.client.respond(account, challenge.url);
      assert.ok(['pending', 'processing', 'valid'].includes(expectStatus(answered, 200).status));
      assert.match(answered.headers.get('link') ?? '', new RegExp(`<${authzUrl}>;rel="up"`));
      const valid = expectStatus(await f.client.poll(account, authzUrl, ['valid', 'invalid']), 200);
      assert.equal(valid.status, 'valid', JSON.stringify(valid));
      const proven = valid.challenges.find((ch: { type: string }) => ch.type === 'http-01');
      assert.equal(proven.status, 'valid');
      assert.match(proven.validated, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/);
      assert.deepEqual(f.http.requests.slice(before), [`/.well-known/acme-challenge/${challenge.token}`], 'one GET of the token');
      // Answering again does not validate again.
      expectStatus(await f.client.respond(account, challenge.url), 200);
      await sleep(200);
      assert.equal(f.http.requests.length, before + 1);

      const ready = await order(account, orderUrl);
      assert.equal(ready.status, 'ready');
      const { keyPem, csrPem } = await createKeyAndCsr('p256', { dns: ['api.payments.svc'] });
      const finalized = await f.client.finalize(account, ready.finalize, csrPem);
      const done = expectStatus(finalized, 200);
      assert.equal(finalized.location, orderUrl);
      assert.equal(done.status, 'valid');
      assert.match(done.certificate, new RegExp(`^${f.app.api}/acme/cert/[0-9a-f]+$`));
      assert.equal((await order(account, orderUrl)).certificate, done.certificate);

      const download = await f.client.postAsGet(account, done.certificate);
      assert.equal(download.status, 200, download.text);
      assert.equal(download.headers.get('content-type'), 'application/pem-certificate-chain');
      const [leaf, intermediate, ...rest] = pemBlocks(download.text);
      assert.ok(leaf && intermediate, 'the leaf and the intermediate');
      assert.deepEqual(rest, []);
      const root = await (await fetch(`${f.app.public}/v1/ca/root.pem`)).text();
      const verified = verifyChain(leaf, root, intermediate, 'sslserver');
      assert.ok(verified.ok, verified.output);
      const cert = new X509Certificate(leaf);
      assert.equal(cert.subjectAltName, 'DNS:api.payments.svc');
      assert.ok(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem)), 'the CSR\'s key');
      const serial = lastSegment(done.certificate);
      assert.equal(cert.serialNumber.toLowerCase().replace(/^0+/, ''), serial.replace(/^0+/, ''));

      const record = await getRecord(f.app, serial, ADMIN);
      assert.equal(record.identity, API, 'the certificate belongs to the bound identity');
      assert.equal(record.status, 'valid');
      assert.equal(record.certificate.replace(/\s+/g, ''), leaf.replace(/\s+/g, ''));
      const audit = await fetch(`${f.app.api}/v1/audit?${new URLSearchParams({ action: 'certificate.issue', serial })}`, { headers: { Authorization: `Bearer ${await f.app.token(ADMIN)}` } });
      const rows = ((await audit.json()) as { items: { actor: string; outcome: string; detail: { acme?: { account: string; order: string } } }[] }).items;
      assert.equal(rows.length, 1, JSON.stringify(rows));
      assert.equal(rows[0]!.actor, API);
      assert.equal(rows[0]!.outcome, 'success');
      assert.deepEqual(rows[0]!.detail.acme, { account: account.id, order: lastSegment(orderUrl) });

      // Finalizing a valid order again is refused, and issues nothing more.
      assertAcmeProblem(await f.client.finalize(account, ready.finalize, csrPem), 403, 'orderNotReady');
      // Another account of the same identity may download it; one of another identity may not.
      const sibling = await f.account(API);
      expectStatus(await f.client.postAsGet(sibling, done.certificate), 200);
      const stranger = await f.account(workload('shop', 'web'));
      assertAcmeProblem(await f.client.postAsGet(stranger, done.certificate), 404, 'malformed');
      assertAcmeProblem(await f.client.postAsGet(stranger, orderUrl), 401, 'unauthorized');
      assertAcmeProblem(await f.client.postAsGet(stranger, authzUrl), 401, 'unauthorized');
      assertAcmeProblem(await f.client.postAsGet(stranger, challenge.url), 401, 'unauthorized');
    });

    it('a wrong answer: the challenge is invalid with incorrectResponse, then the authorization and the order', async () => {
      const account = await f.account(API);
      const created = await f.client.newOrder(account, ['api.payments.svc.cluster.local']);
      const orderUrl = created.location!;
      const authzUrl = expectStatus(created, 201).authorizations[0];
      const authz = await order(account, authzUrl);
      const challenge = authz.challenges.find((ch: { type: string }) => ch.type === 'http-01');
      f.dns.setA('api.payments.svc.cluster.local', '127.0.0.1');
      f.http.set(challenge.token, `${challenge.token}.not-the-thumbprint`);
      expectStatus(await f.client.respond(account, challenge.url), 200);
      const invalid = expectStatus(await f.client.poll(account, authzUrl, ['valid', 'invalid']), 200);
      assert.equal(invalid.status, 'invalid');
      const failed = invalid.challenges.find((ch: { type: string }) => ch.type === 'http-01');
      assert.equal(failed.status, 'invalid');
      assert.equal(failed.error.type, 'urn:ietf:params:acme:error:incorrectResponse');
      assert.equal(failed.error.status, 400);
      assert.equal(typeof failed.error.detail, 'string');
      assert.equal((await order(account, orderUrl)).status, 'invalid');
      assertAcmeProblem(await f.client.finalize(account, `${orderUrl}/finalize`, await csrFor({ dns: ['api.payments.svc.cluster.local'] })), 403, 'orderNotReady');
      // Another challenge of the now invalid authorization cannot be tried.
      const other = authz.challenges.find((ch: { type: string }) => ch.type === 'tls-alpn-01');
      assert.equal(expectStatus(await f.client.respond(account, other.url), 200).status, 'pending');
    });

    it('an order made invalid by its authorization is no longer in the account\'s orders list (RFC 8555 §7.1.2.1: SHOULD NOT include invalid orders)', async () => {
      const account = await f.account(API);
      expectStatus(await f.client.newOrder(account, ['api.payments.svc']), 201);
      const kept = await f.client.newOrder(account, ['api.payments.svc.cluster.local']);
      expectStatus(kept, 201);
      const dropped = await f.client.newOrder(account, ['10.9.9.9']);
      const authzUrl = expectStatus(dropped, 201).authorizations[0];
      assert.deepEqual(expectStatus(await f.client.postAsGet(account, `${account.url}/orders`), 200).orders.length, 3);
      expectStatus(await f.client.post(authzUrl, { status: 'deactivated' }, { key: account.key, kid: account.url }), 200);
      assert.equal((await order(account, dropped.location!)).status, 'invalid');
      const listed = expectStatus(await f.client.postAsGet(account, `${account.url}/orders`), 200).orders as string[];
      assert.ok(listed.includes(kept.location!), 'a pending order is listed');
      assert.ok(!listed.includes(dropped.location!), `the invalid order ${dropped.location} is not listed: ${JSON.stringify(listed)}`);
    });

    it('http-01 failures: 404, no server, a name that does not resolve, a redirect outside the policy', async () => {
      const account = await f.account(API);
      const tryName = async (name: string, prepare: (token: string) => void): Promise<{ type: string; detail: string }> => {
        const created = expectStatus(await f.client.newOrder(account, [name]), 201);
        const authz = await order(account, created.authorizations[0]);
        const challenge = authz.challenges.find((ch: { type: string }) => ch.type === 'http-01');
        prepare(challenge.token);
        expectStatus(await f.client.respond(account, challenge.url), 200);
        const settled = expectStatus(await f.client.poll(account, created.authorizations[0], ['valid', 'invalid']), 200);
        assert.equal(settled.status, 'invalid', JSON.stringify(settled));
        return settled.challenges.find((ch: { type: string }) => ch.type === 'http-01').error;
      };
      const notFound = await tryName('10.0.0.1', () => {});
      assert.equal(notFound.type, 'urn:ietf:params:acme:error:connection', 'nothing listens on 10.0.0.1');
      f.dns.setA('api.payments.svc', '127.0.0.1');
      const missing = await tryName('api.payments.svc', () => {});
      assert.equal(missing.type, 'urn:ietf:params:acme:error:incorrectResponse', `a 404: ${missing.detail}`);
      f.dns.setA('api.payments.svc');
      const unresolved = await tryName('api.payments.svc', () => {});
      assert.equal(unresolved.type, 'urn:ietf:params:acme:error:dns', unresolved.detail);
      f.dns.setA('api.payments.svc', '127.0.0.1');
      const before = f.http.requests.length;
      const redirected = await tryName('api.payments.svc', (token) => f.http.redirect(token, `http://evil.example.com:${f.http.port}/.well-known/acme-challenge/${token}`));
      assert.equal(redirected.type, 'urn:ietf:params:acme:error:unauthorized', redirected.detail);
      assert.ok(f.http.requests.slice(before).every((p) => p.startsWith('/.well-known/acme-challenge/')));
      assert.ok(!f.dns.queries.some((q) => q.name === 'evil.example.com'), 'the redirect target was never resolved');
    });

    it('dns-01 proves a wildcard through a TXT record', async () => {
      const account = await f.account(GATEWAY);
      const created = await f.client.newOrder(account, ['*.edge.example.org']);
      const body = expectStatus(created, 201);
      const authz = await order(account, body.authorizations[0]);
      const challenge = authz.challenges[0];
      f.dns.setTxt('_acme-challenge.edge.example.org', ['unrelated', createHash('sha256').update(keyAuthorization(challenge.token, account.key)).digest('base64url')]);
      expectStatus(await f.client.respond(account, challenge.url), 200);
      assert.equal(expectStatus(await f.client.poll(account, body.authorizations[0], ['valid', 'invalid']), 200).status, 'valid');
      const ready = await order(account, created.location!);
      assert.equal(ready.status, 'ready');
      const done = expectStatus(await f.client.finalize(account, ready.finalize, await csrFor({ dns: ['*.edge.example.org'] })), 200);
      assert.equal(done.status, 'valid');
      const leaf = pemBlocks((await f.client.postAsGet(account, done.certificate)).text)[0]!;
      assert.equal(new X509Certificate(leaf).subjectAltName, 'DNS:*.edge.example.org');
    });

    it('dns-01 with a wrong digest is invalid with incorrectResponse', async () => {
      const account = await f.account(GATEWAY);
      const body = expectStatus(await f.client.newOrder(account, ['*.edge.example.org']), 201);
      const authz = await order(account, body.authorizations[0]);
      f.dns.setTxt('_acme-challenge.edge.example.org', [createHash('sha256').update(`${authz.challenges[0].token}.wrong`).digest('base64url')]);
      expectStatus(await f.client.respond(account, authz.challenges[0].url), 200);
      const settled = expectStatus(await f.client.poll(account, body.authorizations[0], ['valid', 'invalid']), 200);
      assert.equal(settled.status, 'invalid');
      assert.equal(settled.challenges[0].error.type, 'urn:ietf:params:acme:error:incorrectResponse');
    });

    it('tls-alpn-01 proves a name with the acmeIdentifier certificate', async () => {
      const account = await f.account(API);
      const created = await f.client.newOrder(account, ['api.payments.svc']);
      const body = expectStatus(created, 201);
      const authz = await order(account, body.authorizations[0]);
      const challenge = authz.challenges.find((ch: { type: string }) => ch.type === 'tls-alpn-01');
      f.dns.setA('api.payments.svc', '127.0.0.1');
      await f.tls.set('api.payments.svc', keyAuthorization(challenge.token, account.key));
      expectStatus(await f.client.respond(account, challenge.url), 200);
      const settled = expectStatus(await f.client.poll(account, body.authorizations[0], ['valid', 'invalid']), 200);
      assert.equal(settled.status, 'valid', JSON.stringify(settled));
      assert.ok(f.tls.handshakes.includes('api.payments.svc'), 'SNI is the name');
    });

    it('an IP address proven by http-01 and by tls-alpn-01 (SNI its reverse-DNS name, RFC 8738)', async () => {
      for (const type of ['http-01', 'tls-alpn-01']) {
        // An account each: the first one's valid authorization would be reused.
        const account = await f.account(LOCAL);
        const created = await f.client.newOrder(account, [{ type: 'ip', value: '127.0.0.1' }]);
        const body = expectStatus(created, 201);
        const authz = await order(account, body.authorizations[0]);
        assert.deepEqual(authz.identifier, { type: 'ip', value: '127.0.0.1' });
        const challenge = authz.challenges.find((ch: { type: string }) => ch.type === type);
        if (type === 'http-01') f.http.set(challenge.token, keyAuthorization(challenge.token, account.key));
        else await f.tls.set('127.0.0.1', keyAuthorization(challenge.token, account.key));
        expectStatus(await f.client.respond(account, challenge.url), 200);
        const settled = expectStatus(await f.client.poll(account, body.authorizations[0], ['valid', 'invalid']), 200);
        assert.equal(settled.status, 'valid', `${type}: ${JSON.stringify(settled)}`);
        if (type === 'tls-alpn-01') assert.ok(f.tls.handshakes.includes('1.0.0.127.in-addr.arpa'), JSON.stringify(f.tls.handshakes));
        const done = expectStatus(await f.client.finalize(account, body.finalize, await csrFor({ ip: ['127.0.0.1'] })), 200);
        const leaf = pemBlocks((await f.client.postAsGet(account, done.certificate)).text)[0]!;
        assert.equal(new X509Certificate(leaf).subjectAltName, 'IP Address:127.0.0.1');
      }
    });

    it('tls-alpn-01 with the digest of another key authorization is invalid with incorrectResponse', async () => {
      const account = await f.account(API);
      const body = expectStatus(await f.client.newOrder(account, ['api.payments.svc.cluster.local']), 201);
      const authz = await order(account, body.authorizations[0]);
      const challenge = authz.challenges.find((ch: { type: string }) => ch.type === 'tls-alpn-01');
      f.dns.setA('api.payments.svc.cluster.local', '127.0.0.1');
      await f.tls.set('api.payments.svc.cluster.local', `${challenge.token}.${'A'.repeat(43)}`);
      expectStatus(await f.client.respond(account, challenge.url), 200);
      const settled = expectStatus(await f.client.poll(account, body.authorizations[0], ['valid', 'invalid']), 200);
      assert.equal(settled.status, 'invalid');
      assert.equal(settled.challenges.find((ch: { type: string }) => ch.type === 'tls-alpn-01').error.type, 'urn:ietf:params:acme:error:incorrectResponse');
    });

    it('a challenge response other than {} is malformed; deactivating an authorization makes the order invalid', async () => {
      const account = await f.account(API);
      const created = await f.client.newOrder(account, ['api.payments.svc']);
      const authzUrl = expectStatus(created, 201).authorizations[0];
      const authz = await order(account, authzUrl);
      assertAcmeProblem(await f.client.post(authz.challenges[0].url, { status: 'valid' }, { key: account.key, kid: account.url }), 400, 'malformed', 'a challenge response with members');
      assert.equal((await order(account, authzUrl)).status, 'pending');
      assertAcmeProblem(await f.client.post(authzUrl, { status: 'valid' }, { key: account.key, kid: account.url }), 400, 'malformed', 'status valid');
      const stranger = await f.account(API);
      assertAcmeProblem(await f.client.post(authzUrl, { status: 'deactivated' }, { key: stranger.key, kid: stranger.url }), 401, 'unauthorized', 'another account of the same identity');
      const res = await f.client.post(authzUrl, { status: 'deactivated' }, { key: account.key, kid: account.url });
      assert.equal(expectStatus(res, 200).status, 'deactivated');
      assert.equal((await order(account, created.location!)).status, 'invalid');
      assertAcmeProblem(await f.client.post(authzUrl, { status: 'deactivated' }, { key: account.key, kid: account.url }), 400, 'malformed', 'twice');
    });

    it('a valid authorization is reused by the same account\'s next order, never by another account', async () => {
      const account = await f.account(API);
      const first = await issueViaAcme(f, account, { dns: ['api.payments.svc'] });
      const firstAuthz = first.order.authorizations[0];
      const again = expectStatus(await f.client.newOrder(account, ['api.payments.svc']), 201);
      assert.deepEqual(again.authorizations, [firstAuthz]);
      assert.equal(again.status, 'ready');
      const other = await f.account(API);
      const theirs = expectStatus(await f.client.newOrder(other, ['api.payments.svc']), 201);
      assert.notEqual(theirs.authorizations[0], firstAuthz);
      assert.equal(theirs.status, 'pending');
    });

    it('five concurrent answers to one challenge validate it once', async () => {
      const account = await f.account(API);
      const created = expectStatus(await f.client.newOrder(account, ['api.payments.svc']), 201);
      const authz = await order(account, created.authorizations[0]);
      const challenge = authz.challenges.find((ch: { type: string }) => ch.type === 'http-01');
      f.dns.setA('api.payments.svc', '127.0.0.1');
      f.http.set(challenge.token, keyAuthorization(challenge.token, account.key));
      const answers = await Promise.all(Array.from({ length: 5 }, () => f.client.respond(account, challenge.url)));
      assert.ok(answers.every((a) => a.status === 200), answers.map((a) => a.text).join('\n'));
      assert.equal(expectStatus(await f.client.poll(account, created.authorizations[0], ['valid', 'invalid']), 200).status, 'valid');
      await sleep(200);
      assert.equal(f.http.requests.filter((p) => p.endsWith(challenge.token)).length, 1, 'one GET of the token');
    });

    it('unknown orders, authorizations, challenges and certificates are 404', async () => {
      const account = await f.account(API);
      for (const path of ['order/0123456789abcdef0123456789abcdef', 'authz/nope', 'chall/nope', 'cert/00ff', 'cert/not-hex', 'order/x/finalize']) {
        assertAcmeProblem(await f.client.postAsGet(account, `${f.app.api}/acme/${path}`), 404, 'malformed', path);
      }
    });
  });

  describe('finalize', () => {
    let account: AcmeAccount;
    before(async () => {
      account = await f.account(FREE);
    });

    it('before the order is ready: 403 orderNotReady, and the order stays pending', async () => {
      const other = await f.account(API);
      const created = await f.client.newOrder(other, ['api.payments.svc']);
      expectStatus(created, 201);
      assertAcmeProblem(await f.client.finalize(other, `${created.location}/finalize`, await csrFor({ dns: ['api.payments.svc'] })), 403, 'orderNotReady');
      assert.equal((await order(other, created.location!)).status, 'pending');
    });

    it('a CSR that does not ask for exactly the order\'s identifiers is 400 badCSR and leaves the order ready; a good one then issues', async () => {
      const created = await f.client.newOrder(account, ['one.free.test', 'www.one.free.test']);
      const body = expectStatus(created, 201);
      assert.equal(body.status, 'ready', 'names of a challenge-free policy');
      const csrs: [string, string][] = [
        ['one name missing', await csrFor({ dns: ['one.free.test'] })],
        ['another name', await csrFor({ dns: ['one.free.test', 'two.free.test'] })],
        ['one more name', await csrFor({ dns: ['one.free.test', 'www.one.free.test', 'one.free.svc'] })],
        ['an IP besides', await csrFor({ dns: ['one.free.test', 'www.one.free.test'], ip: ['10.1.0.1'] })],
        ['a URI besides', await csrFor({ dns: ['one.free.test', 'www.one.free.test'], uri: [FREE] })],
        ['no names', opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], undefined, '/CN=one.free.test').csrPem],
      ];
      for (const [what, csr] of csrs) {
        assertAcmeProblem(await f.client.finalize(account, body.finalize, csr), 400, 'badCSR', what);
        assert.equal((await order(account, created.location!)).status, 'ready', `after ${what}`);
      }
      const post = (csr: unknown) => f.client.post(body.finalize, { csr }, { key: account.key, kid: account.url });
      assertAcmeProblem(await post(undefined), 400, 'malformed', 'no csr');
      assertAcmeProblem(await post(5), 400, 'malformed', 'not a string');
      const good = await csrFor({ dns: ['www.one.free.test', 'ONE.free.test'] });
      assertAcmeProblem(await post(csrDer(good).toString('base64')), 400, 'malformed', 'base64 with padding, not base64url');
      assertAcmeProblem(await post(Buffer.from('not a CSR').toString('base64url')), 400, 'badCSR', 'not DER');
      assert.equal((await order(account, created.location!)).status, 'ready');
      const done = expectStatus(await f.client.finalize(account, body.finalize, good), 200);
      assert.equal(done.status, 'valid', 'names in any order and case');
    });

    it('five concurrent finalizes of one ready order issue one certificate', async () => {
      const body = expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
      const answers = await Promise.all(Array.from({ length: 5 }, async () => f.client.finalize(account, body.finalize, await csrFor({ dns: ['one.free.test'] }))));
      const issued = answers.filter((a) => a.status === 200);
      assert.equal(issued.length, 1, answers.map((a) => `${a.status} ${a.text}`).join('\n'));
      for (const a of answers.filter((x) => x.status !== 200)) assertAcmeProblem(a, 403, 'orderNotReady');
      const audit = await fetch(`${f.app.api}/v1/audit?${new URLSearchParams({ action: 'certificate.issue', actor: FREE, limit: '1000' })}`, { headers: { Authorization: `Bearer ${await f.app.token(ADMIN)}` } });
      const rows = ((await audit.json()) as { items: { detail: { acme?: { order: string } } }[] }).items;
      assert.equal(rows.filter((r) => r.detail.acme?.order === lastSegment(body.finalize.replace(/\/finalize$/, ''))).length, 1, 'one issuance for the order');
    });

    it('the CSR\'s names are the order\'s, its key any the REST API accepts (RSA, P-384, Ed25519)', async () => {
      for (const type of ['rsa', 'p384', 'ed25519'] as const) {
        const body = expectStatus(await f.client.newOrder(account, ['one.free.test']), 201);
        const { csrPem } = await createKeyAndCsr(type, { dns: ['one.free.test'] });
        assert.equal(expectStatus(await f.client.finalize(account, body.finalize, csrPem), 200, type).status, 'valid', type);
      }
    });
  });

  describe('acme.challenges: none', () => {
    it('names of the challenge-free policy are valid at once with no challenge and no connection; others keep their challenges or are refused', async () => {
      const account = await f.account(workload('free', 'two'));
      const connections = f.http.connections;
      const queries = f.dns.queries.length;
      const created = await f.client.newOrder(account, ['two.free.test', { type: 'ip', value: '10.1.2.3' }]);
      const body = expectStatus(created, 201);
      assert.equal(body.status, 'ready');
      for (const url of body.authorizations as string[]) {
        const authz = await order(account, url);
        assert.equal(authz.status, 'valid');
        assert.deepEqual(authz.challenges, []);
      }
      const { csrPem } = await createKeyAndCsr('p256', { dns: ['two.free.test'], ip: ['10.1.2.3'] });
      const done = expectStatus(await f.client.finalize(account, body.finalize, csrPem), 200);
      assert.equal(done.status, 'valid');
      const leaf = pemBlocks((await f.client.postAsGet(account, done.certificate)).text)[0]!;
      assert.equal(new X509Certificate(leaf).subjectAltName, 'DNS:two.free.test, IP Address:10.1.2.3');
      assert.equal(f.http.connections, connections, 'no connection');
      assert.equal(f.dns.queries.length, queries, 'no DNS question');
      // The default policy also matches this identity, and wants challenges for its names.
      const svc = expectStatus(await f.client.newOrder(account, ['two.free.svc']), 201);
      assert.equal(svc.status, 'pending');
      assert.equal((await order(account, svc.authorizations[0])).challenges.length, 3);
      assertAcmeProblem(await f.client.newOrder(account, ['three.free.test']), 403, 'rejectedIdentifier', 'another sa\'s name');
      assertAcmeProblem(await f.client.newOrder(account, [{ type: 'ip', value: '10.2.0.1' }, 'two.free.test']), 403, 'rejectedIdentifier', 'no one policy grants both');
    });
  });
});
