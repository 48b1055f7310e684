/**
 * ACME (RFC 8555) accounts and request authentication through the real app and database: the
 * directory and nonces (§7.1, §7.2), external account bindings from POST /v1/acme/eab and
 * newAccount with them (§7.3, §7.3.4), the JWS checks every POST goes through (§6.2-6.5: nonce,
 * url, algorithm, key), account reads, key changes (§7.3.5) and deactivation (§7.3.6). Happy,
 * error and security cases; each refusal is checked to have changed nothing.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import {
  AcmeClient, assertAcmeProblem, eabJws, expectStatus, newAcmeKey, rawJws, requestEab, startAcmeFixture, type AcmeAccount, type AcmeFixture, type Eab,
} from '../setup/acme-client.js';
import { assertProblem } from '../setup/rejections.js';
import { createTestIssuer, issuerConfig } from '../setup/tokens.js';

const API = workload('payments', 'api');
const OTHER = workload('shop', 'web');
const NOBODY = 'spiffe://elsewhere.test/no/policy';
const NONCE = /^[A-Za-z0-9_-]{43}$/;

describe('ACME accounts and request authentication', () => {
  let f: AcmeFixture;
  let c: AcmeClient;
  let app: TestApp;

  before(async () => {
    f = await startAcmeFixture();
    ({ app, client: c } = f);
  });
  after(() => f?.stop());

  /** The account as the database holds it. */
  const stored = (id: string) => app.running.deps.store.acme.accountById(id);
  /** Whether a key has an account: newAccount with onlyReturnExisting. */
  async function accountOfKey(key: Awaited<ReturnType<typeof newAcmeKey>>): Promise<string | null> {
    const res = await c.newAccount(key, { onlyReturnExisting: true });
    if (res.status === 200) return res.location;
    assertAcmeProblem(res, 400, 'accountDoesNotExist');
    return null;
  }

  describe('directory and newNonce', () => {
    it('the directory names every resource under /acme, ARI\'s renewalInfo, and requires external account binding', async () => {
      const res = await fetch(f.directoryUrl);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const dir = (await res.json()) as Record<string, unknown>;
      const base = `${app.api}/acme`;
      assert.deepEqual(dir, {
        newNonce: `${base}/new-nonce`,
        newAccount: `${base}/new-account`,
        newOrder: `${base}/new-order`,
        revokeCert: `${base}/revoke-cert`,
        keyChange: `${base}/key-change`,
        renewalInfo: `${base}/renewal-info`,
        meta: { externalAccountRequired: true },
      });
    });

    it('HEAD newNonce is 200 and GET 204, each with a fresh Replay-Nonce, Cache-Control: no-store and the index link', async () => {
      const seen = new Set<string>();
      for (const [method, status] of [['HEAD', 200], ['GET', 204], ['HEAD', 200], ['GET', 204]] as const) {
        const res = await fetch(c.directory.newNonce, { method });
        assert.equal(res.status, status, method);
        const nonce = res.headers.get('replay-nonce') ?? '';
        assert.match(nonce, NONCE, method);
        assert.ok(!seen.has(nonce), 'every nonce is new');
        seen.add(nonce);
        assert.equal(res.headers.get('cache-control'), 'no-store', method);
        assert.equal(res.headers.get('link'), `<${f.directoryUrl}>;rel="index"`);
        assert.equal((await res.arrayBuffer()).byteLength, 0, 'no body');
      }
    });

    it('behind a proxy that ends TLS (X-Forwarded-Proto: https) the URLs are https, and the JWS url must say so', async () => {
      const https = { 'X-Forwarded-Proto': 'https' };
      const dir = (await (await fetch(f.directoryUrl, { headers: https })).json()) as Record<string, string>;
      const base = `https://${new URL(app.api).host}/acme`;
      assert.equal(dir.newAccount, `${base}/new-account`);
      const account = await f.account(API);
      const path = new URL(account.url).pathname;
      const send = async (url: string) => {
        const jws = await c.sign(url, '', { key: account.key, kid: account.url });
        return c.read(await fetch(`${app.api}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/jose+json', ...https }, body: JSON.stringify(jws) }));
      };
      const ok = await send(`${base}/account/${account.id}`);
      assert.equal(expectStatus(ok, 200).orders, `${base}/account/${account.id}/orders`);
      assertAcmeProblem(await send(account.url), 401, 'unauthorized', 'the http URL behind an https proxy');
    });

    it('a URL under /acme/ that matches no route, or a method a resource does not take, is an ACME problem (malformed) with a Replay-Nonce', async () => {
      const account = await f.account(API);
      const jws = (url: string) => c.sign(url, '', { key: account.key, kid: account.url });
      const cases: [string, string, boolean][] = [
        ['POST', `${app.api}/acme/order/`, true],
        ['POST', `${app.api}/acme/order/a/b`, true],
        ['POST', `${app.api}/acme/nothing`, true],
        ['POST', c.directory.newNonce, true],
        ['POST', f.directoryUrl, true],
        ['GET', c.directory.newOrder, false],
        ['GET', account.url, false],
        ['PUT', c.directory.newAccount, false],
        ['GET', `${app.api}/acme/renewal-info/`, false],
      ];
      const wrong: string[] = [];
      for (const [method, url, signedBody] of cases) {
        const res = await c.read(await fetch(url, { method, headers: { 'Content-Type': 'application/jose+json' }, ...(method !== 'GET' ? { body: JSON.stringify(signedBody ? await jws(url) : {}) } : {}) }));
        const ok = (res.status === 404 || res.status === 405) && res.headers.get('content-type') === 'application/problem+json' && res.body?.type === 'urn:ietf:params:acme:error:malformed' && /^[A-Za-z0-9_-]{43}$/.test(res.nonce ?? '');
        if (!ok) wrong.push(`${method} ${new URL(url).pathname}: ${res.status} ${res.headers.get('replay-nonce') ? 'with' : 'without'} Replay-Nonce ${res.text}`);
      }
      assert.deepEqual(wrong, [], 'every answer under /acme/ is an ACME problem document');
    });
  });

  describe('newAccount with external account binding', () => {
    it('without a binding: 400 externalAccountRequired, and no account', async () => {
      const key = await newAcmeKey();
      assertAcmeProblem(await c.newAccount(key), 400, 'externalAccountRequired');
      assertAcmeProblem(await c.post(c.directory.newAccount, '', { key }), 400, 'externalAccountRequired', 'POST-as-GET');
      assert.equal(await accountOfKey(key), null);
    });

    it('with a binding: 201 with the account and its Location; the same key again is 200 with the same Location', async () => {
      const eab = await f.eab(API);
      const key = await newAcmeKey();
      const res = await c.newAccount(key, { eab, contact: ['mailto:ops@payments.example'] });
      const body = expectStatus(res, 201);
      assert.match(res.location ?? '', new RegExp(`^${app.api}/acme/account/[A-Za-z0-9_-]+$`));
      assert.match(res.nonce ?? '', NONCE);
      assert.equal(body.status, 'valid');
      assert.deepEqual(body.contact, ['mailto:ops@payments.example']);
      assert.equal(body.orders, `${res.location}/orders`);
      const id = res.location!.slice(res.location!.lastIndexOf('/') + 1);
      const account = await stored(id);
      assert.equal(account?.identity, API, 'the account acts as the binding\'s identity');
      assert.equal(account?.thumbprint, key.thumbprint);
      assert.equal(account?.bindingKid, eab.kid);
      assert.equal(account?.status, 'valid');

      const again = await c.newAccount(key, { eab });
      assert.equal(expectStatus(again, 200).status, 'valid');
      assert.equal(again.location, res.location);
      const existing = await c.newAccount(key, { onlyReturnExisting: true });
      expectStatus(existing, 200);
      assert.equal(existing.location, res.location);
      const orders = await c.postAsGet({ key, url: res.location!, id }, body.orders);
      assert.deepEqual(expectStatus(orders, 200), { orders: [] });
    });

    it('onlyReturnExisting for a key without an account: 400 accountDoesNotExist, and no account', async () => {
      const key = await newAcmeKey();
      const eab = await f.eab(API);
      assertAcmeProblem(await c.newAccount(key, { eab, onlyReturnExisting: true }), 400, 'accountDoesNotExist');
      // The binding was not spent.
      expectStatus(await c.newAccount(key, { eab }), 201);
    });

    it('a binding is used once: a second key with the same binding is 401 unauthorized and gets no account', async () => {
      const eab = await f.eab(API);
      const first = await c.createAccount(eab);
      const second = await newAcmeKey();
      assertAcmeProblem(await c.newAccount(second, { eab }), 401, 'unauthorized');
      assert.equal(await accountOfKey(second), null);
      assert.equal((await stored(first.id))?.thumbprint, first.key.thumbprint);
    });

    it('a binding with a wrong HMAC key, for another key, for another URL or under an unknown kid is 401 unauthorized and stays usable', async () => {
      const eab = await f.eab(API);
      const key = await newAcmeKey();
      const other = await newAcmeKey();
      assertAcmeProblem(await c.newAccount(key, { eab, eabHmacKey: randomBytes(32) }), 401, 'unauthorized', 'wrong HMAC key');
      assertAcmeProblem(await c.newAccount(key, { eab, eabJwk: other.jwk }), 401, 'unauthorized', 'payload jwk is another key');
      assertAcmeProblem(await c.newAccount(key, { eab, eabUrl: `${app.api}/acme/new-order` }), 401, 'unauthorized', 'another url');
      assertAcmeProblem(await c.newAccount(key, { eab: { kid: randomBytes(16).toString('base64url'), hmacKey: eab.hmacKey } }), 401, 'unauthorized', 'unknown kid');
      assertAcmeProblem(await c.newAccount(key, { eab: { kid: eab.kid, hmacKey: (await f.eab(API)).hmacKey } }), 401, 'unauthorized', 'another binding\'s HMAC key');
      assert.equal(await accountOfKey(key), null);
      assert.equal(await accountOfKey(other), null);
      expectStatus(await c.newAccount(key, { eab }), 201, 'the binding still works');
    });

    it('a binding signed with a non-MAC algorithm or with a nonce is refused', async () => {
      const eab = await f.eab(API);
      const key = await newAcmeKey();
      const url = c.directory.newAccount;
      const rs = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      const forms: [string, unknown, string, number][] = [
        ['ES256', rawJws({ alg: 'ES256', kid: eab.kid, url }, key.jwk, { key: rs }), 'badSignatureAlgorithm', 400],
        ['none', rawJws({ alg: 'none', kid: eab.kid, url }, key.jwk, { none: true }), 'badSignatureAlgorithm', 400],
        ['with a nonce', await eabJws(eab, key.jwk, url, { header: { nonce: 'abc' } }), 'malformed', 400],
        ['not a JWS', 'binding', 'malformed', 400],
        ['an unprotected header', { ...(await eabJws(eab, key.jwk, url)), header: { kid: eab.kid } }, 'malformed', 400],
      ];
      for (const [what, binding, type, status] of forms) {
        assertAcmeProblem(await c.newAccount(key, { payload: { externalAccountBinding: binding } }), status, type, what);
      }
      assert.equal(await accountOfKey(key), null);
      expectStatus(await c.newAccount(key, { eab }), 201);
    });

    it('an expired binding is 401 unauthorized; with one-time tokens, a token gets one binding', async () => {
      const issuer = await createTestIssuer();
      const short = await startAcmeFixture({
        issuer,
        acme: { eabTtl: '1s' },
        config: { auth: { issuers: [issuerConfig(issuer, 'test', { requireJti: true })], admins: { identities: [ADMIN] } } },
      });
      try {
        const token = await short.app.token(API);
        const res = await requestEab(short.app.api, token);
        assert.equal(res.status, 201, await res.clone().text());
        const eab = (await res.json()) as Eab & { expires: string };
        await assertProblem(await requestEab(short.app.api, token), 401, 'unauthorized');
        assert.ok(Date.parse(eab.expires) - Date.now() <= 1500, `expires ${eab.expires}`);
        await new Promise((r) => setTimeout(r, 1300));
        const key = await newAcmeKey();
        assertAcmeProblem(await short.client.newAccount(key, { eab }), 401, 'unauthorized');
        assertAcmeProblem(await short.client.newAccount(key, { onlyReturnExisting: true }), 400, 'accountDoesNotExist');
      } finally {
        await short.stop();
      }
    });

    it('concurrent newAccount: one binding and five keys make one account; one key five times makes one account', async () => {
      const eab = await f.eab(API);
      const keys = await Promise.all(Array.from({ length: 5 }, () => newAcmeKey()));
      const answers = await Promise.all(keys.map((key) => c.newAccount(key, { eab })));
      assert.deepEqual(answers.map((a) => a.status).sort(), [201, 401, 401, 401, 401], answers.map((a) => a.text).join('\n'));
      const key = await newAcmeKey();
      const same = await Promise.all(Array.from({ length: 5 }, async () => c.newAccount(key, { eab: await f.eab(API) })));
      assert.equal(same.filter((a) => a.status === 201).length, 1, same.map((a) => `${a.status} ${a.text}`).join('\n'));
      assert.ok(same.every((a) => a.status === 201 || a.status === 200), same.map((a) => `${a.status} ${a.text}`).join('\n'));
      assert.equal(new Set(same.map((a) => a.location)).size, 1, 'one account URL');
    });

    it('a binding made with a token whose "sans" claim restricts it restricts the account\'s orders too', async () => {
      const res = await requestEab(app.api, await app.token(API, { sans: ['api.payments.svc'] }));
      assert.equal(res.status, 201, await res.clone().text());
      const account = await c.createAccount((await res.json()) as Eab);
      expectStatus(await c.newOrder(account, ['api.payments.svc']), 201);
      assertAcmeProblem(await c.newOrder(account, ['api.payments.svc.cluster.local']), 403, 'rejectedIdentifier', 'granted by the policy, not by the token');
      assertAcmeProblem(await c.newOrder(account, [{ type: 'ip', value: '10.0.0.1' }]), 403, 'rejectedIdentifier');
    });

    it('contacts: mailto only, at most 10', async () => {
      const key = await newAcmeKey();
      const eab = await f.eab(API);
      assertAcmeProblem(await c.newAccount(key, { eab, contact: ['tel:+15555550100'] }), 400, 'unsupportedContact');
      assertAcmeProblem(await c.newAccount(key, { eab, payload: { contact: 'mailto:a@b.example' } }), 400, 'malformed', 'not a list');
      assertAcmeProblem(await c.newAccount(key, { eab, contact: Array.from({ length: 11 }, (_, i) => `mailto:a${i}@b.example`) }), 400, 'malformed', 'eleven');
      assert.equal(await accountOfKey(key), null);
    });
  });

  describe('the JWS of every request (RFC 8555 §6.2-6.5)', () => {
    let account: AcmeAccount;
    before(async () => {
      account = await f.account(API);
    });
    const asAccount = () => ({ key: account.key, kid: account.url });

    it('a replayed nonce is 400 badNonce with a fresh Replay-Nonce, which then works', async () => {
      const nonce = await c.nonce();
      expectStatus(await c.post(account.url, '', { ...asAccount(), nonce }), 200);
      const replay = await c.post(account.url, '', { ...asAccount(), nonce });
      assertAcmeProblem(replay, 400, 'badNonce');
      c.nonces.length = 0;
      expectStatus(await c.post(account.url, '', { ...asAccount(), nonce: replay.nonce! }), 200, 'the fresh nonce');
      // Replayed on another resource, and by a jwk-signed request.
      assertAcmeProblem(await c.post(c.directory.newOrder, { identifiers: [{ type: 'dns', value: 'api.payments.svc' }] }, { ...asAccount(), nonce }), 400, 'badNonce');
      assertAcmeProblem(await c.post(c.directory.newAccount, { onlyReturnExisting: true }, { key: account.key, nonce }), 400, 'badNonce');
    });

    it('one nonce in five concurrent requests is accepted once', async () => {
      const nonce = await c.nonce();
      const answers = await Promise.all(Array.from({ length: 5 }, () => c.post(account.url, '', { ...asAccount(), nonce })));
      assert.deepEqual(answers.map((a) => a.status).sort(), [200, 400, 400, 400, 400]);
      for (const a of answers.filter((x) => x.status === 400)) assertAcmeProblem(a, 400, 'badNonce');
    });

    it('the other spellings of a used nonce (the last character has two unused bits) are badNonce too', async () => {
      const nonce = await c.nonce();
      expectStatus(await c.post(account.url, '', { ...asAccount(), nonce }), 200);
      // 43 base64url characters carry 258 bits for 256: the last character's two low bits are unused.
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const last = alphabet.indexOf(nonce[42]!);
      for (let low = 0; low < 4; low++) {
        const spelling = `${nonce.slice(0, 42)}${alphabet[(last & ~3) | low]}`;
        assertAcmeProblem(await c.post(account.url, '', { ...asAccount(), nonce: spelling }), 400, 'badNonce', spelling);
      }
    });

    it('a forged, truncated, missing or empty nonce is 400 badNonce', async () => {
      const real = await c.nonce();
      const flipped = `${real.slice(0, 20)}${real[20] === 'A' ? 'B' : 'A'}${real.slice(21)}`;
      for (const [what, nonce] of [
        ['random', randomBytes(32).toString('base64url')],
        ['one character changed', flipped],
        ['truncated', real.slice(0, 42)],
        ['padded', `${real}=`],
        ['short', 'abc'],
        ['empty', ''],
        ['missing', null],
      ] as const) {
        assertAcmeProblem(await c.post(account.url, '', { ...asAccount(), nonce }), 400, 'badNonce', what);
      }
      assertAcmeProblem(await c.post(account.url, '', { ...asAccount(), header: { nonce: 42 } }), 400, 'badNonce', 'a number');
      expectStatus(await c.post(account.url, '', { ...asAccount(), nonce: real }), 200, 'the real nonce was not spent by the refusals');
    });

    it('a JWS whose url is not the URL the request reached is 401 unauthorized, and its nonce stays usable', async () => {
      const nonce = await c.nonce();
      const port = new URL(app.api).port;
      for (const url of [c.directory.newOrder, `${account.url}/`, `http://localhost:${port}${new URL(account.url).pathname}`, `${account.url}?x=1`, account.url.replace('/acme/', '/ACME/')]) {
        assertAcmeProblem(await c.post(account.url, '', { ...asAccount(), nonce, url }), 401, 'unauthorized', url);
      }
      assertAcmeProblem(await c.post(account.url, '', { ...asAccount(), header: { url: undefined } }), 401, 'unauthorized', 'no url');
      expectStatus(await c.post(account.url, '', { ...asAccount(), nonce }), 200);
    });

    it('alg none, HS256 and an alg that does not suit the key are 400 badSignatureAlgorithm', async () => {
      const url = account.url;
      const nonce = async () => c.nonce();
      const forms: [string, unknown][] = [
        ['none', rawJws({ alg: 'none', nonce: await nonce(), url, kid: account.url }, '', { none: true })],
        ['HS256 keyed with the account\'s public JWK', rawJws({ alg: 'HS256', nonce: await nonce(), url, kid: account.url }, '', { hmac: JSON.stringify(account.key.jwk) })],
        ['HS256 with jwk', rawJws({ alg: 'HS256', nonce: await nonce(), url: c.directory.newAccount, jwk: account.key.jwk }, { onlyReturnExisting: true }, { hmac: 'secret' })],
        ['HS512', rawJws({ alg: 'HS512', nonce: await nonce(), url, kid: account.url }, '', { hmac: 'secret' })],
        ['RS256 on an EC key', rawJws({ alg: 'RS256', nonce: await nonce(), url, kid: account.url }, '', { garbage: true })],
        ['ES384 on a P-256 key', rawJws({ alg: 'ES384', nonce: await nonce(), url, kid: account.url }, '', { garbage: true })],
        ['an unknown alg', rawJws({ alg: 'ES257', nonce: await nonce(), url, kid: account.url }, '', { garbage: true })],
        ['no alg', rawJws({ nonce: await nonce(), url, kid: account.url }, '', { garbage: true })],
      ];
      for (const [what, jws] of forms) {
        const target = what === 'HS256 with jwk' ? c.directory.newAccount : url;
        assertAcmeProblem(await c.send(target, jws), 400, 'badSignatureAlgorithm', what);
      }
    });

    it('jwk and kid together, or neither, is 400 malformed; kid where jwk is required and the reverse too', async () => {
      assertAcmeProblem(await c.post(account.url, '', { ...asAccount(), jwk: true }), 400, 'malformed', 'jwk and kid');
      assertAcmeProblem(await c.post(account.url, '', { key: account.key, header: { jwk: undefined } }), 400, 'malformed', 'neither');
      assertAcmeProblem(await c.post(c.directory.newAccount, { onlyReturnExisting: true }, asAccount()), 400, 'malformed', 'newAccount with kid');
      assertAcmeProblem(await c.post(c.directory.newOrder, { identifiers: [{ type: 'dns', value: 'api.payments.svc' }] }, { key: account.key }), 400, 'malformed', 'newOrder with jwk');
      assertAcmeProblem(await c.post(account.url, '', { ...asAccount(), header: { kid: 42 } }), 400, 'malformed', 'a kid that is not a string');
    });

    it('a signature by another key, an unknown kid and a kid that is no account URL are refused', async () => {
      const other = await newAcmeKey();
      assertAcmeProblem(await c.post(account.url, '', { key: other, kid: account.url }), 400, 'malformed', 'another key');
      const unknown = `${app.api}/acme/account/${randomBytes(16).toString('hex')}`;
      assertAcmeProblem(await c.post(unknown, '', { key: account.key, kid: unknown }), 400, 'accountDoesNotExist', 'unknown kid');
      assertAcmeProblem(await c.post(account.url, '', { ...asAccount(), kid: 'not a URL' }), 400, 'accountDoesNotExist', 'kid not a URL');
      const tampered = await c.sign(account.url, { contact: [] }, asAccount());
      assertAcmeProblem(await c.send(account.url, { ...tampered, payload: Buffer.from('{"status":"deactivated"}').toString('base64url') }), 400, 'malformed', 'payload swapped');
      assert.equal((await stored(account.id))?.status, 'valid');
    });

    it('a media type other than application/jose+json is 415 with an ACME problem', async () => {
      for (const type of ['application/json', 'text/plain', '', 'application/jose']) {
        const jws = await c.sign(account.url, '', asAccount());
        const res = await c.send(account.url, jws, type);
        assertAcmeProblem(res, 415, 'malformed', type || 'no Content-Type');
        // The nonce was not spent either.
        expectStatus(await c.send(account.url, jws), 200, `after ${type}`);
      }
      expectStatus(await c.send(account.url, await c.sign(account.url, '', asAccount()), 'application/jose+json; charset=utf-8'), 200, 'with a parameter');
    });

    it('bodies that are not a flattened JWS are 400 malformed', async () => {
      const jws = await c.sign(account.url, '', asAccount());
      const compact = `${jws.protected}.${jws.payload}.${jws.signature}`;
      for (const [what, body] of [
        ['not JSON', '{"protected":'],
        ['a compact JWS', compact],
        ['an array', [jws]],
        ['general serialization', { payload: jws.payload, signatures: [{ protected: jws.protected, signature: jws.signature }] }],
        ['an unprotected header', { ...jws, header: { kid: account.url } }],
        ['no signature', { protected: jws.protected, payload: jws.payload }],
        ['payload not base64url', { ...jws, payload: '***' }],
        ['protected not JSON', { ...jws, protected: Buffer.from('nope').toString('base64url') }],
      ] as const) {
        assertAcmeProblem(await c.send(account.url, body), 400, 'malformed', what);
      }
    });

    it('keys the server does not accept: private members, small RSA, other curves', async () => {
      const key = await newAcmeKey();
      const d = 'AAAA';
      assertAcmeProblem(await c.post(c.directory.newAccount, { onlyReturnExisting: true }, { key, jwk: { ...key.jwk, d } }), 400, 'badPublicKey', 'a private member');
      const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const smallJws = rawJws({ alg: 'RS256', nonce: await c.nonce(), url: c.directory.newAccount, jwk: small.publicKey.export({ format: 'jwk' }) }, { onlyReturnExisting: true }, { key: small.privateKey });
      assertAcmeProblem(await c.send(c.directory.newAccount, smallJws), 400, 'badPublicKey', 'RSA 1024');
      assertAcmeProblem(await c.post(c.directory.newAccount, { onlyReturnExisting: true }, { key, jwk: { kty: 'EC', crv: 'secp256k1', x: key.jwk.x!, y: key.jwk.y! } }), 400, 'badPublicKey', 'secp256k1');
      assertAcmeProblem(await c.post(c.directory.newAccount, { onlyReturnExisting: true }, { key, jwk: { kty: 'oct', k: 'c2VjcmV0' } }), 400, 'badPublicKey', 'a symmetric key');
    });

    it('accepts the other account key algorithms: ES384, ES512, RS256, PS256 and EdDSA', async () => {
      for (const alg of ['ES384', 'ES512', 'RS256', 'PS256', 'EdDSA'] as const) {
        const acct = await f.account(API, await newAcmeKey(alg));
        expectStatus(await c.postAsGet(acct, acct.url), 200, alg);
      }
    });
  });

  describe('the account resource, key change and deactivation', () => {
    it('an account reads and updates itself only: another account\'s URL is 401 unauthorized', async () => {
      const mine = await f.account(API);
      const theirs = await f.account(OTHER);
      assert.equal(expectStatus(await c.postAsGet(mine, mine.url), 200).status, 'valid');
      assertAcmeProblem(await c.post(theirs.url, '', { key: mine.key, kid: mine.url }), 401, 'unauthorized', 'read another');
      assertAcmeProblem(await c.post(theirs.url, { status: 'deactivated' }, { key: mine.key, kid: mine.url }), 401, 'unauthorized', 'deactivate another');
      assertAcmeProblem(await c.post(`${theirs.url}/orders`, '', { key: mine.key, kid: mine.url }), 401, 'unauthorized', 'another\'s orders');
      assert.equal((await stored(theirs.id))?.status, 'valid');
      const updated = await c.post(mine.url, { contact: ['mailto:new@payments.example'] }, { key: mine.key, kid: mine.url });
      assert.deepEqual(expectStatus(updated, 200).contact, ['mailto:new@payments.example']);
      assert.deepEqual((await stored(mine.id))?.contact, ['mailto:new@payments.example']);
      assertAcmeProblem(await c.post(mine.url, { status: 'valid' }, { key: mine.key, kid: mine.url }), 400, 'malformed', 'status other than deactivated');
    });

    it('keyChange: the new key signs from then on, the old key\'s requests fail their signature', async () => {
      const account = await f.account(API);
      const newKey = await newAcmeKey();
      const res = await c.keyChange(account, newKey);
      assert.equal(expectStatus(res, 200).status, 'valid');
      assert.equal(res.location, account.url);
      assert.equal((await stored(account.id))?.thumbprint, newKey.thumbprint);
      assertAcmeProblem(await c.postAsGet(account, account.url), 400, 'malformed', 'the old key');
      assert.equal(await accountOfKey(account.key), null, 'the old key has no account');
      assert.equal(await accountOfKey(newKey), account.url, 'the new key has the account');
      const renewed = { ...account, key: newKey };
      expectStatus(await c.postAsGet(renewed, account.url), 200, 'the new key');
      expectStatus(await c.newOrder(renewed, ['api.payments.svc']), 201, 'newOrder with the new key');
      // To a key of another type: the old one's alg no longer suits the account's key.
      const rsa = await newAcmeKey('RS256');
      expectStatus(await c.keyChange(renewed, rsa), 200, 'to RSA');
      assertAcmeProblem(await c.postAsGet(renewed, account.url), 400, 'badSignatureAlgorithm', 'ES256 on the RSA account key');
      expectStatus(await c.postAsGet({ ...account, key: rsa }, account.url), 200, 'the RSA key');
    });

    it('keyChange to a key another account holds is 409 with that account\'s Location, and changes nothing', async () => {
      const account = await f.account(API);
      const holder = await f.account(OTHER);
      const res = await c.keyChange(account, holder.key);
      assertAcmeProblem(res, 409, 'malformed');
      assert.equal(res.location, holder.url);
      assert.equal((await stored(account.id))?.thumbprint, account.key.thumbprint);
      assert.equal((await stored(holder.id))?.thumbprint, holder.key.thumbprint);
      assertAcmeProblem(await c.keyChange(account, account.key), 409, 'malformed', 'its own key');
      expectStatus(await c.postAsGet(account, account.url), 200);
    });

    it('concurrent key changes of several accounts to one new key: one gets it, the others 409 with its Location', async () => {
      const accounts = await Promise.all(Array.from({ length: 4 }, () => f.account(API)));
      const newKey = await newAcmeKey();
      const answers = await Promise.all(accounts.map((a) => c.keyChange(a, newKey)));
      const won = answers.findIndex((a) => a.status === 200);
      assert.ok(won >= 0, answers.map((a) => `${a.status} ${a.text}`).join('\n'));
      for (const [i, a] of answers.entries()) {
        if (i === won) continue;
        assertAcmeProblem(a, 409, 'malformed', `account ${i}`);
        assert.equal(a.location, accounts[won]!.url);
        assert.equal((await stored(accounts[i]!.id))?.thumbprint, accounts[i]!.key.thumbprint);
      }
      assert.equal((await stored(accounts[won]!.id))?.thumbprint, newKey.thumbprint);
    });

    it('keyChange with a wrong inner JWS is refused and changes nothing', async () => {
      const account = await f.account(API);
      const other = await f.account(API);
      const newKey = await newAcmeKey();
      const cases: [string, Parameters<AcmeClient['keyChange']>[2], number, string][] = [
        ['inner url', { innerUrl: c.directory.newOrder }, 400, 'malformed'],
        ['inner nonce', { innerHeader: { nonce: await c.nonce() } }, 400, 'malformed'],
        ['another account', { inner: { account: other.url } }, 401, 'unauthorized'],
        ['another old key', { inner: { oldKey: other.key.jwk } }, 401, 'unauthorized'],
        ['no old key', { inner: { oldKey: undefined } }, 400, 'malformed'],
        ['an inner payload that is not an object', { innerPayload: '"x"' }, 400, 'malformed'],
      ];
      for (const [what, options, status, type] of cases) assertAcmeProblem(await c.keyChange(account, newKey, options), status, type, what);
      const inner = await c.sign(c.directory.keyChange, { account: account.url, oldKey: account.key.jwk }, { key: newKey, nonce: null });
      assertAcmeProblem(await c.post(c.directory.keyChange, { ...inner, signature: inner.signature.replace(/^./, (ch) => (ch === 'A' ? 'B' : 'A')) }, { key: account.key, kid: account.url }), 400, 'malformed', 'inner signature');
      assertAcmeProblem(await c.post(c.directory.keyChange, '', { key: account.key, kid: account.url }), 400, 'malformed', 'no inner JWS');
      assert.equal((await stored(account.id))?.thumbprint, account.key.thumbprint);
      assert.equal(await accountOfKey(newKey), null);
    });

    it('keyChange whose inner payload is not JSON is 400 malformed, never a 500', async () => {
      const account = await f.account(API);
      const newKey = await newAcmeKey();
      assertAcmeProblem(await c.keyChange(account, newKey, { innerPayload: 'not json' }), 400, 'malformed');
      assert.equal((await stored(account.id))?.thumbprint, account.key.thumbprint);
    });

    it('a deactivated account: 200 deactivated, then every request it signs is 401 unauthorized', async () => {
      const account = await f.account(API);
      const order = await c.newOrder(account, ['api.payments.svc']);
      expectStatus(order, 201);
      const orderUrl = order.location!;
      const res = await c.deactivate(account);
      assert.equal(expectStatus(res, 200).status, 'deactivated');
      assert.equal((await stored(account.id))?.status, 'deactivated');
      assertAcmeProblem(await c.postAsGet(account, account.url), 401, 'unauthorized', 'read itself');
      assertAcmeProblem(await c.newOrder(account, ['api.payments.svc']), 401, 'unauthorized', 'newOrder');
      assertAcmeProblem(await c.postAsGet(account, orderUrl), 401, 'unauthorized', 'read its order');
      assertAcmeProblem(await c.deactivate(account), 401, 'unauthorized', 'deactivate again');
      assertAcmeProblem(await c.keyChange(account, await newAcmeKey()), 401, 'unauthorized', 'keyChange');
      assert.equal((await stored(account.id))?.thumbprint, account.key.thumbprint);
    });
  });

  describe('POST /v1/acme/eab', () => {
    const eabAs = async (sub: string, body?: unknown) => requestEab(app.api, await app.token(sub), body);

    it('an identity gets a single-use binding for itself: kid, a 256-bit HMAC key, its identity and expiry', async () => {
      const t0 = Date.now();
      const res = await eabAs(API);
      assert.equal(res.status, 201, await res.clone().text());
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const body = (await res.json()) as Eab & { identity: string; expires: string };
      assert.deepEqual(Object.keys(body).sort(), ['expires', 'hmacKey', 'identity', 'kid']);
      assert.equal(body.identity, API);
      assert.match(body.kid, /^[A-Za-z0-9_-]{16,128}$/);
      assert.match(body.hmacKey, /^[A-Za-z0-9_-]+$/);
      assert.equal(Buffer.from(body.hmacKey, 'base64url').length, 32);
      const ttl = Date.parse(body.expires) - t0;
      assert.ok(ttl > 24 * 3600_000 - 5000 && ttl <= 24 * 3600_000 + 5000, `expires ${body.expires} is a day away`);
      const again = (await (await eabAs(API)).json()) as Eab;
      assert.notEqual(again.kid, body.kid);
      assert.notEqual(again.hmacKey, body.hmacKey);
      const audit = await fetch(`${app.api}/v1/audit?${new URLSearchParams({ action: 'acme.binding', actor: API })}`, { headers: { Authorization: `Bearer ${await app.token(ADMIN)}` } });
      const rows = ((await audit.json()) as { items: { outcome: string; detail: { kid?: string } }[] }).items;
      assert.ok(rows.some((r) => r.outcome === 'success' && r.detail.kid === body.kid), 'an audit row for the binding');
    });

    it('no kid or HMAC key starts with "-", which a client\'s command line would take for an option', async () => {
      // Left to chance, 1 binding in 32 has one (1 in 64 for each value): 100 bindings hold one in 96 runs of 100.
      const bindings: Eab[] = [];
      for (let i = 0; i < 10; i++) bindings.push(...(await Promise.all(Array.from({ length: 10 }, async () => (await (await eabAs(API)).json()) as Eab))));
      assert.equal(new Set(bindings.map((b) => b.kid)).size, 100);
      const dashed = bindings.flatMap((b) => [b.kid, b.hmacKey]).filter((v) => v.startsWith('-'));
      assert.deepEqual(dashed, []);
    });

    it('a non-admin naming another identity or an issuer is 403 forbidden; naming itself is fine', async () => {
      await assertProblem(await eabAs(API, { identity: OTHER }), 403, 'forbidden');
      await assertProblem(await eabAs(API, { issuer: 'test' }), 403, 'forbidden');
      const self = await eabAs(API, { identity: API });
      assert.equal(self.status, 201);
      assert.equal(((await self.json()) as { identity: string }).identity, API);
    });

    it('an identity no policy matches is 403 forbidden, with or without an admin naming it', async () => {
      await assertProblem(await eabAs(NOBODY), 403, 'forbidden');
      await assertProblem(await eabAs(ADMIN, { identity: NOBODY }), 403, 'forbidden');
      await assertProblem(await eabAs(ADMIN), 403, 'forbidden');
    });

    it('an admin naming an identity gets a binding for it, and the account acts as that identity', async () => {
      const res = await eabAs(ADMIN, { identity: OTHER });
      assert.equal(res.status, 201, await res.clone().text());
      const eab = (await res.json()) as Eab & { identity: string };
      assert.equal(eab.identity, OTHER);
      const account = await c.createAccount(eab);
      assert.equal((await stored(account.id))?.identity, OTHER);
      expectStatus(await c.newOrder(account, ['web.shop.svc']), 201, 'an order for the named identity\'s name');
      assertAcmeProblem(await c.newOrder(account, ['api.payments.svc']), 403, 'rejectedIdentifier', 'not the admin\'s names');
    });

    it('no token, a bad token and a bad body are refused', async () => {
      await assertProblem(await fetch(`${app.api}/v1/acme/eab`, { method: 'POST' }), 401, 'unauthorized');
      await assertProblem(await fetch(`${app.api}/v1/acme/eab`, { method: 'POST', headers: { Authorization: 'Bearer x.y.z' } }), 401, 'unauthorized');
      await assertProblem(await eabAs(API, { identity: 5 }), 400, 'malformed');
      await assertProblem(await eabAs(API, { extra: true }), 400, 'malformed');
      await assertProblem(await eabAs(API, '{'), 400, 'malformed');
      await assertProblem(await eabAs(ADMIN, { identity: OTHER, issuer: 'no-such-issuer' }), 400, 'malformed');
    });

    it('is 404 when ACME is off, and so is the directory', async () => {
      const off = await startTestApp();
      try {
        await assertProblem(await requestEab(off.api, await off.token(API)), 404, 'notFound');
        await assertProblem(await fetch(`${off.api}/acme/directory`), 404, 'notFound');
        assert.equal((await fetch(`${off.api}/acme/new-nonce`, { method: 'HEAD' })).status, 404);
        await assertProblem(await fetch(`${off.api}/acme/new-account`, { method: 'POST', headers: { 'Content-Type': 'application/jose+json' }, body: '{}' }), 404, 'notFound');
      } finally {
        await off.stop();
      }
    });
  });
});
