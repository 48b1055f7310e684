/**
 * Fuzzing the ACME server (RFC 8555) of one real app (real database, PKI, a DNS server and
 * challenge responders): hostile bodies, media types and sizes on every POST endpoint; protected
 * headers of every shape, validly signed; hostile JSON payloads, validly signed, for newAccount
 * (with external account bindings), newOrder, the account, authorizations, challenges, keyChange,
 * finalize (CSRs built from chosen names and mutated ones) and revokeCert; hostile ids in every
 * resource path and certIDs in renewalInfo. Every answer keeps ACME's contract (acmeContract
 * below: never a 5xx, every error an application/problem+json of an urn:ietf:params:acme:error:
 * type whose status fits it, a Replay-Nonce on every answer to a POST), and each property also
 * states which answers an input may get: nothing is created, issued, revoked or changed unless
 * the input was the valid one, and no name outside the identity's policy ever gets an order.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { ADMIN, defaultPolicies, TRUST_DOMAIN, workload } from '../setup/app.js';
import {
  acmeKeyFromPem, certIdOf, eabJws, pemBlocks, rawJws, startAcmeFixture, type AcmeAccount, type AcmeFixture, type AcmeKey, type Eab,
} from '../setup/acme-client.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { countCertificateRows, issuedCount } from '../setup/rejections.js';
import { applyTextEdits, type TextEdit } from './jws.js';
import { applyByteMutations, buildCri, byteMutations, sampleCsrs, signCri, type GeneralName, type SampleCsr } from './mutations.js';
import { anyJson, assertContract, cachedTokens, checkAsync, explainAnswer, LogTail, quoteLogsFrom, send, urlText, type Answer } from './support.js';

const API = workload('payments', 'api');
const FREE = workload('free', 'one');
const POLICIES = [
  ...defaultPolicies(),
  { identity: `spiffe://${TRUST_DOMAIN}/ns/free/sa/{sa}`, dns: ['{sa}.free.test', 'www.{sa}.free.test'], ip: ['10.1.0.0/16'], maxTtl: '48h', acme: { challenges: 'none' } },
];
const FREE_NAMES = ['one.free.test', 'www.one.free.test'];
const LIMIT = 64 * 1024;
const NONCE = /^[A-Za-z0-9_-]{43}$/;
const JOSE = 'application/jose+json';

/** ACME's error types (RFC 8555 §6.7) as this server answers them, and the statuses each may have. */
const ACME_STATUSES: Readonly<Record<string, readonly number[]>> = {
  malformed: [400, 404, 405, 409, 413, 415],
  unauthorized: [401, 403],
  badNonce: [400],
  badSignatureAlgorithm: [400],
  badPublicKey: [400],
  badCSR: [400],
  badRevocationReason: [400],
  accountDoesNotExist: [400],
  externalAccountRequired: [400],
  orderNotReady: [403],
  rejectedIdentifier: [400, 403],
  unsupportedIdentifier: [400],
  unsupportedContact: [400],
  alreadyRevoked: [400, 409],
  rateLimited: [429],
};

interface AcmeProblemDoc {
  code: string;
  detail: string;
  status: number;
}

/**
 * ACME's contract for any answer: below 500; a Replay-Nonce on every answer to a POST (§6.5);
 * an error is application/problem+json with exactly type, detail and status, of an ACME error
 * type whose status fits, with no caching and never a certificate.
 */
function acmeContract(a: Answer, options: { post: boolean }): AcmeProblemDoc | undefined {
  assert.ok(a.status >= 200 && a.status < 500, explainAnswer(a, `a status of ${a.status}: never a 5xx for any input`));
  if (options.post) assert.match(a.headers.get('replay-nonce') ?? '', NONCE, explainAnswer(a, 'every answer to a POST carries a fresh Replay-Nonce'));
  if (a.status < 300) return undefined;
  assert.equal(a.headers.get('content-type')?.split(';')[0]?.trim(), 'application/problem+json', explainAnswer(a, 'an error is application/problem+json'));
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(a.text) as Record<string, unknown>;
  } catch {
    assert.fail(explainAnswer(a, 'the problem document is not JSON'));
  }
  assert.ok(body !== null && typeof body === 'object' && !Array.isArray(body), explainAnswer(a, 'a JSON object'));
  assert.deepEqual(Object.keys(body).sort(), ['detail', 'status', 'type'], explainAnswer(a, 'exactly type, detail and status'));
  const m = typeof body.type === 'string' ? /^urn:ietf:params:acme:error:([A-Za-z]+)$/.exec(body.type) : null;
  assert.ok(m, explainAnswer(a, 'type is urn:ietf:params:acme:error:<type>'));
  const code = m[1]!;
  assert.ok(ACME_STATUSES[code]?.includes(a.status), explainAnswer(a, `type ${code} with status ${a.status}`));
  assert.equal(body.status, a.status, explainAnswer(a, 'the problem\'s status is the HTTP status'));
  assert.ok(typeof body.detail === 'string' && body.detail.length > 0, explainAnswer(a, 'a detail'));
  assert.equal(a.headers.get('cache-control'), 'no-store', explainAnswer(a, 'no caching'));
  assert.doesNotMatch(a.text, /BEGIN CERTIFICATE/, explainAnswer(a, 'a refusal never carries a certificate'));
  if (a.status === 429) assert.match(a.headers.get('retry-after') ?? '', /^\d+$/, explainAnswer(a, 'Retry-After on 429'));
  return { code, detail: body.detail as string, status: a.status };
}

/** An account key as a node KeyObject (for rawJws) and as the client's key. */
interface NodeKey {
  object: KeyObject;
  key: AcmeKey;
}
async function nodeKey(): Promise<NodeKey> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { object: privateKey, key: await acmeKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string) };
}

/** An independent reading of the API identity's policy (test/setup/app.ts defaultPolicies). */
function apiMayHave(identifier: { type: string; value: string }): boolean {
  if (identifier.type === 'dns') return ['api.payments.svc', 'api.payments.svc.cluster.local'].includes(identifier.value.toLowerCase().replace(/\.$/, ''));
  if (identifier.type !== 'ip') return false;
  if (isIP(identifier.value) === 4) return identifier.value.split('.')[0] === '10';
  return isIP(identifier.value) === 6 && /^fd[0-9a-f]{2}:/i.test(identifier.value.replace(/^fd::/i, 'fd00::'));
}

const textEdit: fc.Arbitrary<TextEdit> = fc.record({
  at: fc.nat(),
  op: fc.constantFrom('replace', 'insert', 'delete', 'dot', 'pad'),
  char: fc.constantFrom('A', 'a', '_', '-', '+', '/', '=', '.', ' ', '\u00e9', '"', '\\'),
});

describe('the ACME server under fuzzing', { concurrency: 3 }, () => {
  let database: TestDatabase;
  let f: AcmeFixture;
  const logs = new LogTail();
  /** 200 answers to finalize that issued: the rows the certificates table gains. */
  let issued = 0;
  let setupIssued = 0;
  let api: AcmeAccount & { object: KeyObject };
  let free: AcmeAccount & { object: KeyObject };
  let order: { url: string; authz: string; challenges: string[] };
  let cert: { serial: string; url: string; der: Buffer; leaf: string };
  let csrs: SampleCsr[];
  const tokenFor = cachedTokens((sub) => f.app.issuer.mint({ sub }, { ttl: 3000 }));

  /** A POST as it is; the answer's nonce is kept for the next request. */
  async function post(url: string, body: string | Uint8Array | object, contentType: string | null = JOSE): Promise<Answer> {
    const headers: Record<string, string> = {};
    if (contentType !== null) headers['Content-Type'] = contentType;
    const a = await send(url, { method: 'POST', headers, body: typeof body === 'string' ? body : body instanceof Uint8Array ? Buffer.from(body) : JSON.stringify(body) });
    const nonce = a.headers.get('replay-nonce');
    if (nonce) f.client.nonces.push(nonce);
    return a;
  }

  /** A JWS signed by key with any header members over alg/nonce/url (a fresh nonce) and kid. */
  async function signed(key: NodeKey | (AcmeAccount & { object: KeyObject }), url: string, payload: unknown, header: Record<string, unknown> = {}) {
    const base: Record<string, unknown> = { alg: 'ES256', nonce: await f.client.nonce(), url };
    if ('url' in key && typeof key.url === 'string' && 'id' in key) base.kid = key.url;
    else base.jwk = key.key.jwk;
    return rawJws({ ...base, ...header }, payload, { key: key.object });
  }

  async function newAccountFor(sub: string): Promise<AcmeAccount & { object: KeyObject }> {
    const k = await nodeKey();
    return { ...(await f.account(sub, k.key)), object: k.object };
  }

  async function newPendingOrder(account: AcmeAccount): Promise<{ url: string; authz: string; challenges: string[] }> {
    const res = await f.client.newOrder(account, ['api.payments.svc']);
    assert.equal(res.status, 201, res.text);
    const authz = await f.client.postAsGet(account, res.body.authorizations[0]);
    return { url: res.location!, authz: res.body.authorizations[0], challenges: (authz.body.challenges as { url: string }[]).map((c) => c.url) };
  }

  /** A ready order of the challenge-free identity, for finalize. */
  async function readyOrder(): Promise<{ url: string; finalize: string }> {
    const res = await f.client.newOrder(free, FREE_NAMES);
    assert.equal(res.status, 201, res.text);
    assert.equal(res.body.status, 'ready');
    return { url: res.location!, finalize: res.body.finalize };
  }

  async function freshCertificate(): Promise<typeof cert> {
    const o = await readyOrder();
    // Every certificate has the key of csrs[0], which the revocation property signs with.
    const done = await f.client.finalize(free, o.finalize, csrs[0]!.pem);
    assert.equal(done.status, 200, done.text);
    setupIssued++;
    const leaf = pemBlocks((await f.client.postAsGet(free, done.body.certificate)).text)[0]!;
    return { serial: lastSegment(done.body.certificate), url: done.body.certificate, der: new X509Certificate(leaf).raw, leaf };
  }

  const lastSegment = (url: string) => url.slice(url.lastIndexOf('/') + 1);

  before(async () => {
    database = await createTestDatabase();
    f = await startAcmeFixture({ database, logs: logs.stream, config: { policies: POLICIES } });
    quoteLogsFrom(logs);
    csrs = await sampleCsrs({ dns: FREE_NAMES });
    api = await newAccountFor(API);
    free = await newAccountFor(FREE);
    order = await newPendingOrder(api);
    cert = await freshCertificate();
  });

  after(async () => {
    if (!f) return;
    assert.equal(await issuedCount(f.app), setupIssued + issued, 'the issuance metric counts one issuance per finalize that answered valid');
    await f.stop();
    assert.equal(await countCertificateRows(database), setupIssued + issued, 'one certificate row per finalize that answered valid, none for a refusal');
    await database.drop();
  });

  /** Every POST endpoint, with the payload and signer a valid request to it has. */
  const endpoints = () => [
    { name: 'newAccount', url: f.client.directory.newAccount, payload: { onlyReturnExisting: true } as unknown, jwk: true },
    { name: 'newOrder', url: f.client.directory.newOrder, payload: { identifiers: [{ type: 'dns', value: 'api.payments.svc' }] } as unknown, jwk: false },
    { name: 'account', url: api.url, payload: '' as unknown, jwk: false },
    { name: 'orders', url: `${api.url}/orders`, payload: '' as unknown, jwk: false },
    { name: 'keyChange', url: f.client.directory.keyChange, payload: '' as unknown, jwk: false },
    { name: 'order', url: order.url, payload: '' as unknown, jwk: false },
    { name: 'finalize', url: `${order.url}/finalize`, payload: { csr: 'AA' } as unknown, jwk: false },
    { name: 'authz', url: order.authz, payload: '' as unknown, jwk: false },
    { name: 'challenge', url: order.challenges[0]!, payload: '' as unknown, jwk: false },
    { name: 'certificate', url: cert.url, payload: '' as unknown, jwk: false },
    { name: 'revokeCert', url: f.client.directory.revokeCert, payload: { certificate: 'AA' } as unknown, jwk: false },
  ];
  const endpointIndex = fc.nat(10);

  it('hostile bodies on every POST endpoint: mutated JWS, arbitrary JSON and octets never pass, never a 5xx', async () => {
    type Mutation =
      | { op: 'replace'; field: 'protected' | 'payload' | 'signature'; value: unknown }
      | { op: 'delete'; field: 'protected' | 'payload' | 'signature' }
      | { op: 'add'; field: string; value: unknown }
      | { op: 'edit'; field: 'protected' | 'payload' | 'signature'; edits: TextEdit[] }
      | { op: 'swap' };
    const field = fc.constantFrom('protected' as const, 'payload' as const, 'signature' as const);
    const mutation: fc.Arbitrary<Mutation> = fc.oneof(
      fc.record({ op: fc.constant('replace' as const), field, value: anyJson }),
      fc.record({ op: fc.constant('delete' as const), field }),
      fc.record({ op: fc.constant('add' as const), field: fc.constantFrom('header', 'signatures', 'unprotected', '__proto__', 'constructor'), value: anyJson }),
      fc.record({ op: fc.constant('edit' as const), field, edits: fc.array(textEdit, { minLength: 1, maxLength: 3 }) }),
      fc.constant({ op: 'swap' as const }),
    );
    const body = fc.oneof(
      { arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }).map((m) => ({ kind: 'mutated' as const, mutations: m })), weight: 6 },
      { arbitrary: anyJson.map((json) => ({ kind: 'json' as const, json })), weight: 2 },
      { arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => ({ kind: 'bytes' as const, bytes })), weight: 1 },
      { arbitrary: fc.nat().map((cut) => ({ kind: 'truncated' as const, cut })), weight: 1 },
    );
    await checkAsync(
      fc.asyncProperty(endpointIndex, body, async (i, b) => {
        const e = endpoints()[i]!;
        const jws = e.jwk ? await signed(await nodeKey(), e.url, e.payload) : await signed(api, e.url, e.payload);
        const original = { ...jws } as Record<string, unknown>;
        let sent: string | Uint8Array;
        if (b.kind === 'json') sent = JSON.stringify(b.json);
        else if (b.kind === 'bytes') sent = b.bytes;
        else if (b.kind === 'truncated') {
          const text = JSON.stringify(jws);
          sent = text.slice(0, b.cut % text.length);
        } else {
          const obj: Record<string, unknown> = { ...jws };
          for (const m of b.mutations) {
            if (m.op === 'replace') obj[m.field] = m.value;
            else if (m.op === 'delete') delete obj[m.field];
            else if (m.op === 'add') Object.defineProperty(obj, m.field, { value: m.value, enumerable: true, configurable: true, writable: true });
            else if (m.op === 'edit') obj[m.field] = applyTextEdits(String(obj[m.field] ?? ''), m.edits);
            else [obj.protected, obj.payload] = [obj.payload, obj.protected];
          }
          sent = JSON.stringify(obj);
        }
        const a = await post(e.url, sent);
        acmeContract(a, { post: true });
        if (a.status < 300) {
          let parsed: Record<string, unknown> = {};
          try {
            parsed = JSON.parse(typeof sent === 'string' ? sent : Buffer.from(sent).toString('utf8')) as Record<string, unknown>;
          } catch {
            assert.fail(explainAnswer(a, 'a body that is not JSON passed'));
          }
          const sameSignature = typeof parsed.signature === 'string' && /^[A-Za-z0-9_-]*$/.test(parsed.signature) && Buffer.from(parsed.signature, 'base64url').equals(Buffer.from(original.signature as string, 'base64url'));
          assert.ok(
            parsed.protected === original.protected && parsed.payload === original.payload && sameSignature && !('header' in parsed) && !('signatures' in parsed),
            explainAnswer(a, `${e.name}: only the untouched JWS passes`),
          );
        }
      }),
      250,
    );
  });

  it('raw bodies, media types and sizes on every POST endpoint: 413, 415, then 400, in that order', async () => {
    const mediaTypes = [JOSE, `${JOSE}; charset=utf-8`, 'Application/Jose+JSON', 'application/json', 'application/jose', 'text/plain', 'application/x-www-form-urlencoded', '', undefined];
    const input = fc.record({
      endpoint: endpointIndex,
      contentType: fc.constantFrom(...mediaTypes),
      body: fc.oneof(
        fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
        anyJson.map((v) => Buffer.from(JSON.stringify(v))),
        fc.constantFrom(LIMIT - 1, LIMIT, LIMIT + 1, 200_000).map((n) => Buffer.alloc(n, 0x7b)),
      ),
    });
    await checkAsync(
      fc.asyncProperty(input, async ({ endpoint, contentType, body }) => {
        const e = endpoints()[endpoint]!;
        const a = await post(e.url, body, contentType ?? null);
        const problem = acmeContract(a, { post: true });
        assert.ok(problem, explainAnswer(a, 'no raw body passes'));
        const jose = contentType !== undefined && /^application\/jose\+json\s*(;.*)?$/i.test(contentType);
        if (body.length > LIMIT) assert.equal(a.status, 413, explainAnswer(a, 'a body over the limit is 413'));
        else if (!jose) assert.equal(a.status, 415, explainAnswer(a, 'another media type is 415'));
        else assert.ok(a.status === 400 || a.status === 401, explainAnswer(a, 'a JOSE body that is no valid JWS is 400 (401 for a url mismatch)'));
      }),
      200,
    );
  });

  it('protected headers of every shape, validly signed: only the one right header passes, and its problems are the right ones', async () => {
    const used = await f.client.nonce();
    assert.equal((await post(api.url, rawJws({ alg: 'ES256', nonce: used, url: api.url, kid: api.url }, '', { key: api.object }))).status, 200);
    const other = await newAccountFor(API);
    const header = fc.record({
      alg: fc.oneof(
        { arbitrary: fc.constant<unknown>('ES256'), weight: 6 },
        { arbitrary: fc.constantFrom<unknown>('none', 'None', 'HS256', 'HS384', 'HS512', 'RS256', 'PS256', 'ES384', 'ES512', 'EdDSA', 'es256', 'ES256 ', '', 'RSA1_5'), weight: 3 },
        { arbitrary: anyJson, weight: 1 },
        { arbitrary: fc.constant<unknown>(undefined), weight: 1 },
      ),
      nonce: fc.oneof(
        { arbitrary: fc.constant<unknown>('fresh'), weight: 6 },
        { arbitrary: fc.constantFrom<unknown>('used', 'forged', 'empty'), weight: 2 },
        { arbitrary: anyJson, weight: 1 },
        { arbitrary: fc.constant<unknown>(undefined), weight: 1 },
      ),
      url: fc.oneof(
        { arbitrary: fc.constant<unknown>('right'), weight: 6 },
        { arbitrary: fc.constantFrom<unknown>('other', 'slash', 'upper', 'host', 'query'), weight: 2 },
        { arbitrary: anyJson, weight: 1 },
        { arbitrary: fc.constant<unknown>(undefined), weight: 1 },
      ),
      key: fc.oneof(
        { arbitrary: fc.constant<unknown>('kid'), weight: 6 },
        { arbitrary: fc.constantFrom<unknown>('jwk', 'both', 'neither', 'other kid', 'kid of nobody', 'private jwk'), weight: 3 },
        { arbitrary: anyJson.map((v) => ({ kid: v })), weight: 1 },
        { arbitrary: anyJson.map((v) => ({ jwk: v })), weight: 1 },
      ),
      extra: fc.dictionary(fc.oneof(fc.constantFrom('b64', 'crit', 'typ', 'cty', 'x5c', 'zip', 'enc', 'jku'), fc.string({ maxLength: 6 })), anyJson, { maxKeys: 2 }),
      // Never {"status": …}: a deactivated account would end every other property.
      payload: fc.oneof({ arbitrary: fc.constant<unknown>(''), weight: 4 }, { arbitrary: anyJson.filter((p) => !(typeof p === 'object' && p !== null && 'status' in p)), weight: 1 }),
    });
    await checkAsync(
      fc.asyncProperty(header, async (h) => {
        const target = api.url;
        const members: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(h.extra)) if (!['alg', 'nonce', 'url', 'kid', 'jwk'].includes(k)) members[k] = v;
        if (h.alg !== undefined) members.alg = h.alg;
        const nonceMap: Record<string, () => Promise<string>> = { fresh: () => f.client.nonce(), used: async () => used, // One character in the middle changed: other octets (the last character has two unused bits,
          // so changing it may spell the same nonce).
          forged: async () => {
            const n = await f.client.nonce();
            return `${n.slice(0, 10)}${n[10] === 'Q' ? 'R' : 'Q'}${n.slice(11)}`;
          }, empty: async () => '' };
        if (typeof h.nonce === 'string' && h.nonce in nonceMap) members.nonce = await nonceMap[h.nonce]!();
        else if (h.nonce !== undefined) members.nonce = h.nonce;
        const urlMap: Record<string, string> = { right: target, other: f.client.directory.newOrder, slash: `${target}/`, upper: target.replace('/acme/', '/Acme/'), host: target.replace('127.0.0.1', 'localhost'), query: `${target}?x` };
        if (typeof h.url === 'string' && h.url in urlMap) members.url = urlMap[h.url];
        else if (h.url !== undefined) members.url = h.url;
        if (h.key === 'kid' || h.key === 'both') members.kid = api.url;
        if (h.key === 'jwk' || h.key === 'both') members.jwk = api.key.jwk;
        if (h.key === 'other kid') members.kid = other.url;
        if (h.key === 'kid of nobody') members.kid = `${f.app.api}/acme/account/0123456789abcdef`;
        if (h.key === 'private jwk') members.jwk = api.object.export({ format: 'jwk' });
        if (typeof h.key === 'object' && h.key !== null) Object.assign(members, h.key);
        const a = await post(target, rawJws(members, h.payload, { key: api.object }));
        const problem = acmeContract(a, { post: true });
        const rightAlg = members.alg === 'ES256';
        const rightNonce = h.nonce === 'fresh';
        const rightUrl = h.url === 'right';
        const rightKey = h.key === 'kid';
        const noCrit = !('b64' in members) && !('crit' in members);
        const payloadOk = h.payload === '' || (typeof h.payload === 'object' && h.payload !== null && !Array.isArray(h.payload) && !('status' in h.payload) && !('contact' in h.payload));
        const valid = rightAlg && rightNonce && rightUrl && rightKey && noCrit;
        if (a.status < 300) assert.ok(valid, explainAnswer(a, `only the right header passes: ${JSON.stringify(h)}`));
        else if (valid && payloadOk) assert.fail(explainAnswer(a, 'the right header is refused'));
        if (problem && typeof members.alg === 'string' && (members.alg === 'none' || /^HS/.test(members.alg))) {
          assert.ok(problem.code === 'badSignatureAlgorithm' || problem.code === 'malformed', explainAnswer(a, 'alg none and MAC algorithms are badSignatureAlgorithm'));
        }
        if (problem && rightAlg && rightUrl && rightKey && noCrit && !rightNonce && typeof members.nonce === 'string' && (h.nonce === 'used' || h.nonce === 'forged' || h.nonce === 'empty')) {
          assert.equal(problem.code, 'badNonce', explainAnswer(a, 'a bad nonce on an otherwise right request is badNonce'));
        }
        if (problem?.code === 'badNonce') assert.equal(a.status, 400);
      }),
      400,
    );
    assert.equal((await f.client.postAsGet(other, other.url)).status, 200, 'the other account is untouched');
  });

  it('newAccount with hostile jwk headers, payloads and external account bindings: an account only for the valid binding of the signing key', async () => {
    let eab: Eab | undefined;
    const binding = fc.oneof(
      { arbitrary: fc.constant({ kind: 'valid' as const }), weight: 3 },
      { arbitrary: fc.record({ kind: fc.constant('field' as const), field: fc.constantFrom('protected', 'payload', 'signature'), value: anyJson }), weight: 2 },
      { arbitrary: fc.record({ kind: fc.constant('edit' as const), field: fc.constantFrom('protected', 'payload', 'signature'), edits: fc.array(textEdit, { minLength: 1, maxLength: 2 }) }), weight: 2 },
      { arbitrary: fc.record({ kind: fc.constant('header' as const), header: fc.dictionary(fc.constantFrom('alg', 'kid', 'url', 'nonce', 'jwk', 'b64', 'crit'), anyJson, { minKeys: 1, maxKeys: 2 }) }), weight: 2 },
      { arbitrary: fc.constantFrom({ kind: 'other key' as const }, { kind: 'wrong hmac' as const }, { kind: 'absent' as const }), weight: 2 },
      { arbitrary: anyJson.map((value) => ({ kind: 'json' as const, value })), weight: 1 },
    );
    const input = fc.record({
      binding,
      contact: fc.oneof({ arbitrary: fc.constant<unknown>(undefined), weight: 3 }, { arbitrary: fc.constant<unknown>(['mailto:ops@payments.example']), weight: 1 }, { arbitrary: anyJson, weight: 1 }),
      onlyReturnExisting: fc.oneof({ arbitrary: fc.constant<unknown>(undefined), weight: 4 }, { arbitrary: anyJson, weight: 1 }),
      jwk: fc.oneof({ arbitrary: fc.constant<unknown>('own'), weight: 6 }, { arbitrary: anyJson, weight: 1 }, { arbitrary: fc.dictionary(fc.constantFrom('kty', 'crv', 'x', 'y', 'n', 'e', 'd', 'k'), anyJson), weight: 1 }),
    });
    await checkAsync(
      fc.asyncProperty(input, async ({ binding: b, contact, onlyReturnExisting, jwk }) => {
        eab ??= await f.eab(API);
        const k = await nodeKey();
        const other = await nodeKey();
        const url = f.client.directory.newAccount;
        let value: unknown;
        if (b.kind === 'absent') value = undefined;
        else if (b.kind === 'json') value = b.value;
        else if (b.kind === 'other key') value = await eabJws(eab, other.key.jwk, url);
        else if (b.kind === 'wrong hmac') value = await eabJws(eab, k.key.jwk, url, { hmacKey: Buffer.alloc(32, 7) });
        else if (b.kind === 'header') value = rawJws({ alg: 'HS256', kid: eab.kid, url, ...b.header }, k.key.jwk, { hmac: Buffer.from(eab.hmacKey, 'base64url') });
        else {
          const jws = (await eabJws(eab, k.key.jwk, url)) as unknown as Record<string, unknown>;
          if (b.kind === 'field') jws[b.field] = b.value;
          if (b.kind === 'edit') jws[b.field] = applyTextEdits(String(jws[b.field]), b.edits);
          value = jws;
        }
        const payload: Record<string, unknown> = {};
        if (value !== undefined) payload.externalAccountBinding = value;
        if (contact !== undefined) payload.contact = contact;
        if (onlyReturnExisting !== undefined) payload.onlyReturnExisting = onlyReturnExisting;
        const header = jwk === 'own' ? {} : { jwk };
        const a = await post(url, await signed(k, url, payload, header));
        const problem = acmeContract(a, { post: true });
        const contactOk = contact === undefined || Array.isArray(contact);
        if (a.status === 201) {
          assert.ok(jwk === 'own' && onlyReturnExisting !== true && contactOk, explainAnswer(a, 'an account only for a right request'));
          const parsed = value as Record<string, unknown>;
          const original = (await eabJws(eab, k.key.jwk, url)) as unknown as Record<string, unknown>;
          // Members the server does not read may be added to a binding that is otherwise right.
          const merged: Record<string, unknown> = b.kind === 'header' ? { alg: 'HS256', kid: eab.kid, url, ...b.header } : {};
          const rightHeader = b.kind === 'header' && merged.alg === 'HS256' && merged.kid === eab.kid && merged.url === url && !('nonce' in merged) && !('crit' in merged);
          assert.ok(
            b.kind === 'valid' || rightHeader || (b.kind === 'edit' && parsed.protected === original.protected && parsed.payload === original.payload),
            explainAnswer(a, `an account only with the valid binding, not ${JSON.stringify(b)}`),
          );
          eab = undefined;
        } else {
          assert.notEqual(a.status, 200, explainAnswer(a, 'a fresh key has no account to return'));
          if (b.kind === 'valid' && jwk === 'own' && onlyReturnExisting === undefined && (contact === undefined || (Array.isArray(contact) && contact[0] === 'mailto:ops@payments.example'))) {
            assert.fail(explainAnswer(a, 'the valid binding is refused'));
          }
          if (b.kind === 'absent' && jwk === 'own' && onlyReturnExisting === undefined) assert.equal(problem?.code, 'externalAccountRequired', explainAnswer(a, 'no binding'));
        }
      }),
      150,
    );
  });

  it('newOrder with hostile identifiers and windows: an order only for names within the identity\'s policy', async () => {
    const value = fc.oneof(
      fc.constantFrom('api.payments.svc', 'API.payments.SVC.', 'api.payments.svc.cluster.local', '*.api.payments.svc', 'web.shop.svc', 'localhost', 'api.payments.svc\u0000', 'api..payments.svc', 'xn--api-.payments.svc', 'a'.repeat(300), '10.0.0.1', '10.255.255.255', '11.0.0.1', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1', '0x0a.0.0.1', '010.0.0.1', '10.0.0.1/8', '127.0.0.1', '*'),
      fc.domain(),
      fc.ipV4(),
      fc.ipV6(),
      fc.string({ maxLength: 30 }),
      anyJson,
    );
    const identifier = fc.oneof(
      { arbitrary: fc.record({ type: fc.constantFrom<unknown>('dns', 'ip'), value }), weight: 8 },
      { arbitrary: fc.record({ type: anyJson, value }), weight: 1 },
      { arbitrary: anyJson, weight: 1 },
    );
    const time = fc.oneof(
      fc.integer({ min: -3 * 86400, max: 4 * 86400 }).map((s) => new Date(Date.now() + s * 1000).toISOString()),
      fc.constantFrom('2026-13-01T00:00:00Z', '2026-01-01', 'now', '', '2026-01-01T00:00:00+25:00', '9999-12-31T23:59:59Z'),
      anyJson,
    );
    const payload = fc.oneof(
      { arbitrary: fc.record({ identifiers: fc.array(identifier, { maxLength: 4 }), notBefore: fc.option(time, { nil: undefined }), notAfter: fc.option(time, { nil: undefined }) }, { requiredKeys: ['identifiers'] }), weight: 8 },
      { arbitrary: anyJson, weight: 1 },
    );
    await checkAsync(
      fc.asyncProperty(payload, async (p) => {
        const a = await post(f.client.directory.newOrder, await signed(api, f.client.directory.newOrder, p));
        const problem = acmeContract(a, { post: true });
        if (a.status < 300) {
          assert.equal(a.status, 201, explainAnswer(a, 'newOrder answers 201'));
          const body = JSON.parse(a.text) as { identifiers: { type: string; value: string }[]; status: string };
          for (const id of body.identifiers) assert.ok(apiMayHave(id), explainAnswer(a, `an order for ${JSON.stringify(id)}, outside the policy`));
          assert.equal(body.status, 'pending', explainAnswer(a, 'the API identity proves its names'));
        } else if (problem && p !== null && typeof p === 'object' && Array.isArray((p as { identifiers?: unknown }).identifiers)) {
          const ids = (p as { identifiers: unknown[] }).identifiers;
          const shaped = ids.every((i) => typeof i === 'object' && i !== null && ['dns', 'ip'].includes((i as { type: unknown }).type as string) && typeof (i as { value: unknown }).value === 'string');
          if (shaped && ids.some((i) => !apiMayHave(i as { type: string; value: string }))) {
            assert.ok(['rejectedIdentifier', 'malformed'].includes(problem.code), explainAnswer(a, 'a name outside the policy is refused as such'));
          }
        }
      }),
      250,
    );
  });

  it('finalize with CSRs built from chosen names, mutated CSRs and hostile payloads: a certificate only for exactly the order\'s names', async () => {
    let ready = await readyOrder();
    const names = ['one.free.test', 'www.one.free.test', 'ONE.Free.Test', 'two.free.test', 'one.free.svc', 'www.one.free.test.', '*.one.free.test', ''];
    const generalName = fc.oneof(
      { arbitrary: fc.constantFrom(...names).map((n): GeneralName => ({ tag: 0x82, value: Buffer.from(n) })), weight: 6 },
      { arbitrary: fc.constantFrom(Buffer.from([10, 1, 0, 1]), Buffer.from([10, 2, 0, 1]), Buffer.alloc(5)).map((b): GeneralName => ({ tag: 0x87, value: b })), weight: 1 },
      { arbitrary: fc.constantFrom(Buffer.from(FREE), Buffer.from('ops@free.test')).map((v): GeneralName => ({ tag: 0x86, value: v })), weight: 1 },
    );
    const csr = fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant('built' as const), sample: fc.nat(3), names: fc.array(generalName, { maxLength: 4 }) }), weight: 5 },
      { arbitrary: fc.record({ kind: fc.constant('mutated' as const), sample: fc.nat(3), mutations: byteMutations }), weight: 3 },
      { arbitrary: fc.constant({ kind: 'good' as const }), weight: 1 },
      { arbitrary: fc.record({ kind: fc.constant('value' as const), value: fc.oneof(fc.string({ maxLength: 40 }), anyJson) }), weight: 1 },
    );
    await checkAsync(
      fc.asyncProperty(csr, async (c) => {
        let value: unknown;
        let expectIssue = false;
        if (c.kind === 'built') {
          const s = csrs[c.sample]!;
          value = signCri(buildCri(s.spki, c.names), s.key, s.type).toString('base64url');
          const texts = c.names.map((n) => (n.tag === 0x82 ? `dns:${Buffer.from(n.value).toString().toLowerCase()}` : `other:${n.tag}:${Buffer.from(n.value).toString('hex')}`));
          expectIssue = new Set(texts).size === texts.length && texts.length === 2 && texts.includes('dns:one.free.test') && texts.includes('dns:www.one.free.test');
        } else if (c.kind === 'mutated') value = applyByteMutations(csrs[c.sample]!.der, c.mutations).toString('base64url');
        else if (c.kind === 'good') {
          value = csrs[0]!.der.toString('base64url');
          expectIssue = true;
        } else value = c.value;
        const a = await post(ready.finalize, await signed(free, ready.finalize, { csr: value }));
        acmeContract(a, { post: true });
        if (a.status === 200) {
          const body = JSON.parse(a.text) as { status: string; certificate?: string };
          assert.equal(body.status, 'valid', explainAnswer(a, 'a 200 finalize is valid'));
          issued++;
          const leaf = pemBlocks((await f.client.postAsGet(free, body.certificate!)).text)[0]!;
          const sans = (new X509Certificate(leaf).subjectAltName ?? '').split(', ').sort();
          assert.deepEqual(sans, ['DNS:one.free.test', 'DNS:www.one.free.test'], explainAnswer(a, 'the certificate names exactly the order\'s names'));
        } else if (expectIssue) {
          assert.fail(explainAnswer(a, 'a well-formed CSR for exactly the order\'s names is refused'));
        }
        const now = await f.client.postAsGet(free, ready.url);
        if (now.body?.status !== 'ready') ready = await readyOrder();
      }),
      150,
    );
  });

  it('revokeCert with hostile certificates and reasons: only this identity\'s certificate, with an allowed reason, is revoked', async () => {
    let target = await freshCertificate();
    const otherIdentity = await newAccountFor(workload('free', 'two'));
    const input = fc.record({
      certificate: fc.oneof(
        { arbitrary: fc.constant({ kind: 'right' as const }), weight: 4 },
        { arbitrary: byteMutations.map((m) => ({ kind: 'mutated' as const, m })), weight: 3 },
        { arbitrary: fc.oneof(fc.string({ maxLength: 60 }), anyJson).map((v) => ({ kind: 'value' as const, v })), weight: 1 },
      ),
      reason: fc.oneof({ arbitrary: fc.constant<unknown>(undefined), weight: 3 }, { arbitrary: fc.integer({ min: -1, max: 11 }), weight: 3 }, { arbitrary: anyJson, weight: 1 }),
      signer: fc.constantFrom('account', 'other identity', 'certificate key', 'random key'),
    });
    await checkAsync(
      fc.asyncProperty(input, async ({ certificate, reason, signer }) => {
        const value = certificate.kind === 'right' ? target.der.toString('base64url') : certificate.kind === 'mutated' ? applyByteMutations(target.der, certificate.m).toString('base64url') : certificate.v;
        const payload: Record<string, unknown> = { certificate: value };
        if (reason !== undefined) payload.reason = reason;
        const url = f.client.directory.revokeCert;
        const jws =
          signer === 'account' ? await signed(free, url, payload)
          : signer === 'other identity' ? await signed(otherIdentity, url, payload)
          : signer === 'certificate key' ? await signed({ object: csrs[0]!.key, key: await acmeKeyFromPem(csrs[0]!.keyPem) }, url, payload)
          : await signed(await nodeKey(), url, payload);
        const a = await post(url, jws);
        acmeContract(a, { post: true });
        const allowedReason = reason === undefined || (typeof reason === 'number' && [0, 1, 3, 4, 5].includes(reason));
        const record = await f.app.running.deps.store.getCertificate(target.serial);
        if (a.status === 200) {
          const same = typeof value === 'string' && Buffer.from(value, 'base64url').equals(target.der);
          assert.ok(same && allowedReason && (signer === 'account' || signer === 'certificate key'), explainAnswer(a, `revoked by ${signer} with ${JSON.stringify(reason)}`));
          assert.ok(record?.revokedAt, 'the record is revoked');
          target = await freshCertificate();
        } else {
          assert.equal(record?.revokedAt ?? null, null, explainAnswer(a, 'a refused revocation changes nothing'));
          if (certificate.kind === 'right' && allowedReason && (signer === 'account' || signer === 'certificate key')) assert.fail(explainAnswer(a, 'the right revocation is refused'));
        }
      }),
      150,
    );
  });

  it('account updates, authorization and challenge payloads: only the documented changes happen', async () => {
    let own = await newAccountFor(API);
    let target = await newPendingOrder(own);
    const input = fc.record({
      resource: fc.constantFrom('account', 'authz', 'challenge'),
      payload: fc.oneof(
        { arbitrary: fc.record({ status: fc.oneof(fc.constantFrom<unknown>('deactivated', 'valid', 'revoked', 'pending'), anyJson) }, { requiredKeys: [] }), weight: 3 },
        { arbitrary: fc.record({ contact: fc.oneof(fc.constant<unknown>(['mailto:a@b.example']), fc.array(fc.string({ maxLength: 20 }), { maxLength: 3 }), anyJson) }), weight: 2 },
        { arbitrary: fc.constant<unknown>({}), weight: 1 },
        { arbitrary: fc.constant<unknown>(''), weight: 1 },
        { arbitrary: anyJson, weight: 2 },
      ),
    });
    await checkAsync(
      fc.asyncProperty(input, async ({ resource, payload }) => {
        const url = resource === 'account' ? own.url : resource === 'authz' ? target.authz : target.challenges[0]!;
        const a = await post(url, await signed(own, url, payload));
        const problem = acmeContract(a, { post: true });
        const p = payload as Record<string, unknown> | null | undefined;
        const isObject = typeof p === 'object' && p !== null && !Array.isArray(p);
        const status = isObject ? p.status : undefined;
        if (a.status === 200) {
          const body = JSON.parse(a.text) as { status: string; contact?: string[] };
          if (resource !== 'challenge' && isObject && status !== undefined) assert.equal(status, 'deactivated', explainAnswer(a, 'only "deactivated" may be set'));
          if (resource === 'challenge') assert.ok(payload === '' || (isObject && Object.keys(p).length === 0), explainAnswer(a, 'a challenge takes {} or POST-as-GET'));
          if (resource === 'account' && status === 'deactivated') {
            assert.equal(body.status, 'deactivated');
            own = await newAccountFor(API);
            target = await newPendingOrder(own);
          } else if (resource === 'authz' && status === 'deactivated') {
            assert.equal(body.status, 'deactivated');
            target = await newPendingOrder(own);
          }
        } else if (isObject && status !== undefined && status !== 'deactivated' && resource !== 'challenge') {
          assert.equal(problem?.code, 'malformed', explainAnswer(a, 'setting another status is malformed'));
        }
        const authz = await f.client.postAsGet(own, target.authz);
        if (authz.body?.status !== 'pending') target = await newPendingOrder(own);
      }),
      150,
    );
  });

  it('keyChange with hostile inner JWS: the key changes only for the valid inner JWS of a new key', async () => {
    let own = await newAccountFor(API);
    const input = fc.record({
      inner: fc.oneof(
        { arbitrary: fc.constant({ kind: 'valid' as const }), weight: 2 },
        { arbitrary: fc.record({ kind: fc.constant('payload' as const), payload: fc.oneof(anyJson.map((v) => JSON.stringify(v)), fc.string({ maxLength: 40 }), fc.constantFrom('', 'not json', '{', '[]', 'null')) }), weight: 3 },
        { arbitrary: fc.record({ kind: fc.constant('members' as const), account: fc.oneof(fc.constant<unknown>('own'), anyJson), oldKey: fc.oneof(fc.constant<unknown>('own'), fc.constant<unknown>('new'), anyJson) }), weight: 2 },
        { arbitrary: fc.record({ kind: fc.constant('header' as const), header: fc.dictionary(fc.constantFrom('alg', 'url', 'nonce', 'jwk', 'kid', 'crit', 'b64'), anyJson, { minKeys: 1, maxKeys: 2 }) }), weight: 2 },
        { arbitrary: fc.record({ kind: fc.constant('edit' as const), field: fc.constantFrom('protected', 'payload', 'signature'), edits: fc.array(textEdit, { minLength: 1, maxLength: 2 }) }), weight: 2 },
        { arbitrary: anyJson.map((value) => ({ kind: 'json' as const, value })), weight: 1 },
      ),
    });
    await checkAsync(
      fc.asyncProperty(input, async ({ inner }) => {
        const next = await nodeKey();
        const url = f.client.directory.keyChange;
        const innerHeader: Record<string, unknown> = { alg: 'ES256', jwk: next.key.jwk, url };
        let value: unknown;
        if (inner.kind === 'json') value = inner.value;
        else if (inner.kind === 'payload') value = rawJws(innerHeader, inner.payload, { key: next.object });
        else if (inner.kind === 'members') {
          const body = { account: inner.account === 'own' ? own.url : inner.account, oldKey: inner.oldKey === 'own' ? own.key.jwk : inner.oldKey === 'new' ? next.key.jwk : inner.oldKey };
          value = rawJws(innerHeader, body, { key: next.object });
        } else if (inner.kind === 'header') value = rawJws({ ...innerHeader, ...inner.header }, { account: own.url, oldKey: own.key.jwk }, { key: next.object });
        else {
          const jws = rawJws(innerHeader, { account: own.url, oldKey: own.key.jwk }, { key: next.object }) as unknown as Record<string, string>;
          if (inner.kind === 'edit') jws[inner.field] = applyTextEdits(jws[inner.field]!, inner.edits);
          value = jws;
        }
        const a = await post(url, await signed(own, url, value));
        acmeContract(a, { post: true });
        const stored = await f.app.running.deps.store.acme.accountById(own.id);
        if (a.status === 200) {
          assert.ok(inner.kind === 'valid' || inner.kind === 'edit' || (inner.kind === 'members' && inner.account === 'own' && inner.oldKey === 'own'), explainAnswer(a, `a key change only with the valid inner JWS, not ${JSON.stringify(inner)}`));
          assert.equal(stored?.thumbprint, next.key.thumbprint, 'the account has the new key');
          own = { ...own, key: next.key, object: next.object };
        } else {
          assert.equal(stored?.thumbprint, own.key.thumbprint, explainAnswer(a, 'a refused key change changes nothing'));
          if (inner.kind === 'valid') assert.fail(explainAnswer(a, 'the valid key change is refused'));
        }
      }),
      150,
    );
  });

  it('hostile ids in every resource path: an answer only for this account\'s own resources, an ACME problem otherwise', async () => {
    const templates = [
      { route: 'account', path: (id: string) => `account/${id}`, own: () => [api.id] },
      { route: 'orders', path: (id: string) => `account/${id}/orders`, own: () => [api.id] },
      { route: 'order', path: (id: string) => `order/${id}`, own: () => [lastSegment(order.url)] },
      { route: 'finalize', path: (id: string) => `order/${id}/finalize`, own: () => [] as string[] },
      { route: 'authz', path: (id: string) => `authz/${id}`, own: () => [lastSegment(order.authz)] },
      { route: 'challenge', path: (id: string) => `chall/${id}`, own: () => order.challenges.map(lastSegment) },
      { route: 'certificate', path: (id: string) => `cert/${id}`, own: () => [] as string[] },
    ];
    const known = () => [api.id, lastSegment(order.url), lastSegment(order.authz), ...order.challenges.map(lastSegment), cert.serial, free.id];
    const id = fc.oneof(
      { arbitrary: urlText(60), weight: 4 },
      { arbitrary: fc.nat(known().length + 10).map((i) => known()[i % known().length]!), weight: 2 },
      { arbitrary: fc.tuple(fc.nat(20), fc.constantFrom('%00', '%2F', '%2f..', '%', '%G0', '..', '.', '%252F', '\u00e9', '%C0%AF')).map(([i, s]) => `${known()[i % known().length]}${s}`), weight: 1 },
    );
    let reached = 0;
    let runs = 0;
    await checkAsync(
      fc.asyncProperty(fc.nat(templates.length - 1), id, async (t, segment) => {
        const template = templates[t]!;
        const requested = `${f.app.api}/acme/${template.path(segment)}`;
        const parsed = new URL(requested);
        // A segment the URL parser resolves away ("..", "%2e") leaves the route: the
        // deterministic test in test/api/acme.accounts.test.ts covers what matches no route.
        fc.pre(parsed.pathname.split('/').length === new URL(`${f.app.api}/acme/${template.path('x')}`).pathname.split('/').length && !parsed.pathname.split('/').slice(1).includes(''));
        runs++;
        const url = `${parsed.origin}${parsed.pathname}`;
        const a = await post(requested, await signed(api, url, ''));
        const problem = acmeContract(a, { post: true });
        if (!(problem?.code === 'unauthorized' && /JWS url/.test(problem.detail))) reached++;
        let decoded: string;
        try {
          decoded = decodeURIComponent(parsed.pathname.split('/')[3]!);
        } catch {
          decoded = parsed.pathname.split('/')[3]!;
        }
        if (a.status < 300) assert.ok(template.own().includes(decoded), explainAnswer(a, `${template.route}: an answer only for this account's own resource (${decoded})`));
      }),
      300,
    );
    assert.ok(runs === 0 || reached > runs / 2, `most requests reached their handler (${reached} of ${runs})`);
  });

  it('POST /v1/acme/eab with arbitrary bodies: a binding only for the caller, or for whom an admin names, and the REST contract', async () => {
    const input = fc.record({
      admin: fc.boolean(),
      body: fc.oneof(
        { arbitrary: fc.record({ identity: fc.oneof(fc.constantFrom<unknown>(API, FREE, ADMIN, workload('shop', 'web'), 'spiffe://elsewhere.test/x', ''), anyJson), issuer: fc.oneof(fc.constantFrom<unknown>('test', 'nope'), anyJson) }, { requiredKeys: [] }), weight: 4 },
        { arbitrary: anyJson, weight: 1 },
      ),
    });
    await checkAsync(
      fc.asyncProperty(input, async ({ admin, body }) => {
        const sub = admin ? ADMIN : API;
        const a = await send(`${f.app.api}/v1/acme/eab`, { method: 'POST', headers: { Authorization: `Bearer ${await tokenFor(sub)}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
        assertContract(a, { bearerSent: true });
        if (a.status !== 201) return;
        const b = body as { identity?: unknown; issuer?: unknown };
        const binding = JSON.parse(a.text) as { identity: string; kid: string; hmacKey: string };
        const wanted = typeof b.identity === 'string' ? b.identity : sub;
        assert.equal(binding.identity, wanted, explainAnswer(a, 'the binding is for the caller or whom it named'));
        if (!admin) assert.ok(b.identity === undefined || b.identity === API, explainAnswer(a, 'a non-admin binds only itself'));
        if (!admin) assert.equal(b.issuer, undefined, explainAnswer(a, 'a non-admin names no issuer'));
        assert.ok([API, FREE, workload('shop', 'web')].includes(binding.identity), explainAnswer(a, 'only an identity a policy matches'));
      }),
      150,
    );
  });

  it('hostile certIDs in renewalInfo: a window only for this CA\'s certificates, an ACME problem otherwise', async () => {
    const [aki, serial] = certIdOf(cert.leaf).split('.') as [string, string];
    const part = fc.oneof(fc.constantFrom(aki, serial, '', 'AA', 'A'.repeat(200)), fc.base64String({ maxLength: 60 }).map((s) => s.replace(/\+/g, '-').replace(/\//g, '_')), urlText(40));
    const certId = fc.oneof(
      { arbitrary: fc.tuple(part, part).map(([a, b]) => `${a}.${b}`), weight: 4 },
      { arbitrary: urlText(80), weight: 2 },
      { arbitrary: fc.tuple(fc.constant(aki), fc.uint8Array({ minLength: 1, maxLength: 22 })).map(([a, b]) => `${a}.${Buffer.from(b).toString('base64url')}`), weight: 2 },
    );
    await checkAsync(
      fc.asyncProperty(certId, async (id) => {
        const requested = `${f.client.directory.renewalInfo}/${id}`;
        const parsed = new URL(requested);
        fc.pre(parsed.pathname.startsWith('/acme/renewal-info/') && parsed.pathname.length > '/acme/renewal-info/'.length && !parsed.pathname.slice('/acme/renewal-info/'.length).includes('/'));
        const a = await send(requested);
        acmeContract(a, { post: false });
        if (a.status === 200) {
          const body = JSON.parse(a.text) as { suggestedWindow: { start: string; end: string } };
          assert.ok(Date.parse(body.suggestedWindow.start) <= Date.parse(body.suggestedWindow.end), explainAnswer(a, 'a window'));
          const segment = decodeURIComponent(parsed.pathname.slice('/acme/renewal-info/'.length));
          const [k, s] = segment.split('.');
          assert.equal(Buffer.from(k!, 'base64url').toString('hex'), Buffer.from(aki, 'base64url').toString('hex'), explainAnswer(a, 'this CA\'s key identifier'));
          assert.ok(s !== undefined && /^[A-Za-z0-9_-]+$/.test(s), explainAnswer(a, 'a serial'));
        }
      }),
      250,
    );
  });
});
