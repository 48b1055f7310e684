/**
 * Where an issuer's keys come from (docs/api.md "Identity and policy"): a JWKS URL (cached, refetched
 * on an unknown kid at most once per cool-down, so a key rotation needs no restart), OIDC
 * discovery (the document's `issuer` must match exactly), inline keys, a shared HMAC secret, and a
 * JWKS file re-read when it is replaced on disk. Remote sources are a local HTTP server on
 * 127.0.0.1 that counts what the CA fetched.
 *
 * Then the rules of auth/remote-key-set.ts: one discovery (and key set) fetch in flight however many first tokens arrive,
 * one more only after a backoff when it failed; past jwksCacheMaxAge a failing identity provider
 * does not stop issuance until jwksStaleTtl has passed (log line, metric, backoff).
 *
 * Two checks wait out real cool-downs: the remote set's (jwksCooldown, 5 s here; 30 s by default)
 * and the file's (5 s).
 * Their apps start in the file-level before(), and their tests run last, so the other tests
 * overlap most of the wait.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { csrFor } from '../setup/csr.js';
import { startIdpServer, type IdpServer } from '../setup/idp-server.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const SUB = workload('payments', 'api');
const now = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let csr: string;

/** A key the identity provider rotates to: same issuer, new kid. */
interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function newSigningKey(alg: 'ES256' | 'RS256' = 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `rotated-${randomUUID().slice(0, 8)}`;
  return { kid, privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' } };
}

function claims(issuer: { issuer: string; audience: string }, extra: JWTPayload = {}): JWTPayload {
  return { iss: issuer.issuer, aud: issuer.audience, sub: SUB, iat: now(), exp: now() + 300, jti: randomUUID(), ...extra };
}

function sign(payload: JWTPayload, header: { alg: string; kid?: string }, key: CryptoKey | Uint8Array): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ typ: 'JWT', ...header }).sign(key);
}

async function issue(app: TestApp, token: string): Promise<Response> {
  return fetch(`${app.api}/v1/certificates`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({ csr }),
  });
}

async function assertIssued(res: Response, context = ''): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 201, `${context} ${text}`);
  assert.equal((JSON.parse(text) as { identity: string }).identity, SUB);
}

async function assertUnauthorized(res: Response): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 401, text);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  assert.equal((JSON.parse(text) as { type: string }).type, 'urn:service-ca:error:unauthorized');
  assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer .*error="invalid_token"/);
}

/** Retries until the answer is 201 or the deadline passes; returns the last answer's status. */
async function issuedWithin(ms: number, attempt: () => Promise<Response>): Promise<{ status: number; attempts: number; body: string }> {
  const deadline = Date.now() + ms;
  for (let attempts = 1; ; attempts++) {
    const res = await attempt();
    const body = await res.text();
    if (res.status === 201 || Date.now() > deadline) return { status: res.status, attempts, body };
    await sleep(1000);
  }
}

function issuerConfig(issuer: { issuer: string; audience: string }, name: string, source: Record<string, unknown>, algorithms = ['ES256']) {
  return { name, issuer: issuer.issuer, audience: issuer.audience, algorithms, maxTokenAge: '1h', ...source };
}

const authWith = (...issuers: unknown[]) => ({ auth: { issuers, admins: { identities: [ADMIN] } } });

// Started before everything, checked at the end (see the header comment).
let remoteIdp: IdpServer;
let remoteIssuer: TestIssuer;
let remoteApp: TestApp;
let fileIssuer: TestIssuer;
let fileApp: TestApp;

before(async () => {
  csr = await csrFor({ dns: ['api.payments.svc'], uri: [SUB] });
  remoteIdp = await startIdpServer();
  remoteIssuer = await createTestIssuer();
  remoteIdp.serve('/jwks', { keys: [remoteIssuer.publicJwk] });
  remoteApp = await startTestApp({ issuer: remoteIssuer, config: authWith(issuerConfig(remoteIssuer, 'remote', { jwks: { url: `${remoteIdp.url}/jwks` }, jwksCooldown: '5s' })) });
  fileIssuer = await createTestIssuer();
  fileApp = await startTestApp({ issuer: fileIssuer });
});
after(async () => {
  await remoteApp?.stop();
  await remoteIdp?.close();
  await fileApp?.stop();
});

describe('a JWKS URL', () => {
  it('fetches the set once and answers later tokens from the cache', async () => {
    for (let i = 0; i < 4; i++) await assertIssued(await issue(remoteApp, await remoteIssuer.mint({ sub: SUB })), `request ${i}`);
    assert.equal(remoteIdp.count('/jwks'), 1, `fetches: ${JSON.stringify(remoteIdp.requests)}`);
  });

  it('refuses keys the set does not hold, without refetching during the cool-down', async () => {
    const stranger = await newSigningKey();
    for (const kid of [stranger.kid, remoteIssuer.kid, `${stranger.kid}-2`, `${stranger.kid}-3`]) {
      await assertUnauthorized(await issue(remoteApp, await sign(claims(remoteIssuer), { alg: 'ES256', kid }, stranger.privateKey)));
    }
    assert.equal(remoteIdp.count('/jwks'), 1, 'unknown kids inside the cool-down never reach the identity provider');
    assert.deepEqual(remoteIdp.requests.map((r) => r.path), ['/jwks']);
  });
});

/** A 503 problem document that says when to retry, for a token that may well be good. */
async function assertUnavailable(res: Response): Promise<void> {
  const text = await res.text();
  assert.equal(res.status, 503, text);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  assert.equal((JSON.parse(text) as { type: string }).type, 'urn:service-ca:error:unavailable');
  assert.ok(Number(res.headers.get('retry-after')) > 0, `Retry-After: ${res.headers.get('retry-after')}`);
}

describe('an identity provider that fails', () => {
  it('a JWKS URL that answers 404: 503 with Retry-After, and the same token is issued once the set is served (its jti was not used up)', async () => {
    const idp = await startIdpServer();
    const issuer = await createTestIssuer();
    const app = await startTestApp({ issuer, config: authWith(issuerConfig(issuer, 'flaky', { jwks: { url: `${idp.url}/jwks` } })) });
    try {
      const token = await issuer.mint({ sub: SUB });
      await assertUnavailable(await issue(app, token));
      assert.equal(idp.count('/jwks'), 1);
      idp.serve('/jwks', { keys: [issuer.publicJwk] });
      const result = await issuedWithin(10_000, () => issue(app, token));
      assert.equal(result.status, 201, `after ${result.attempts} attempts: ${result.body}`);
    } finally {
      await app.stop();
      await idp.close();
    }
  });

  it('a JWKS URL that accepts the connection and never answers: 503 after the 5 s fetch timeout, not a hung request', async () => {
    // Accepts and holds every connection without a byte of answer.
    const held: Socket[] = [];
    const silent: Server = createServer((socket) => {
      held.push(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    const issuer = await createTestIssuer();
    const app = await startTestApp({ issuer, config: authWith(issuerConfig(issuer, 'silent', { jwks: { url: `http://127.0.0.1:${port}/jwks` } })) });
    try {
      const started = Date.now();
      await assertUnavailable(await issue(app, await issuer.mint({ sub: SUB })));
      const took = Date.now() - started;
      assert.ok(held.length >= 1, 'the CA did connect to the key set URL');
      assert.ok(took >= 4500 && took < 9000, `answered after ${took} ms; the fetch timeout is 5 s`);
    } finally {
      await app.stop();
      for (const socket of held) socket.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});

describe('OIDC discovery', () => {
  let idp: IdpServer;
  let good: TestIssuer;
  let liar: TestIssuer;
  let slash: TestIssuer;
  let app: TestApp;
  before(async () => {
    idp = await startIdpServer();
    good = await createTestIssuer({ issuer: idp.url });
    idp.serve('/.well-known/openid-configuration', { issuer: idp.url, jwks_uri: `${idp.url}/openid/v1/jwks`, id_token_signing_alg_values_supported: ['ES256'] });
    idp.serve('/openid/v1/jwks', { keys: [good.publicJwk] });
    // Two tenants whose discovery documents name another issuer than the one configured.
    liar = await createTestIssuer({ issuer: `${idp.url}/tenant-b` });
    idp.serve('/tenant-b/.well-known/openid-configuration', { issuer: 'https://accounts.evil.test', jwks_uri: `${idp.url}/tenant-b/jwks` });
    idp.serve('/tenant-b/jwks', { keys: [liar.publicJwk] });
    slash = await createTestIssuer({ issuer: `${idp.url}/tenant-c` });
    idp.serve('/tenant-c/.well-known/openid-configuration', { issuer: `${idp.url}/tenant-c/`, jwks_uri: `${idp.url}/tenant-c/jwks` });
    idp.serve('/tenant-c/jwks', { keys: [slash.publicJwk] });
    app = await startTestApp({
      issuer: good,
      config: authWith(
        issuerConfig(good, 'oidc', { jwks: { discovery: true } }),
        issuerConfig(liar, 'tenant-b', { jwks: { discovery: true } }),
        issuerConfig(slash, 'tenant-c', { jwks: { discovery: true } }),
      ),
    });
  });
  after(async () => {
    await app.stop();
    await idp.close();
  });

  it('finds the keys through {issuer}/.well-known/openid-configuration and caches both', async () => {
    for (let i = 0; i < 3; i++) await assertIssued(await issue(app, await good.mint({ sub: SUB })));
    assert.equal(idp.count('/.well-known/openid-configuration'), 1);
    assert.equal(idp.count('/openid/v1/jwks'), 1);
  });

  it('still checks signatures: a stranger\'s key under the discovered issuer is 401', async () => {
    const stranger = await newSigningKey();
    await assertUnauthorized(await issue(app, await sign(claims(good), { alg: 'ES256', kid: good.kid }, stranger.privateKey)));
  });

  for (const [tenant, what] of [['tenant-b', 'another issuer'], ['tenant-c', 'the issuer with a trailing slash']] as const) {
    it(`refuses a discovery document naming ${what}, and never fetches its jwks_uri`, async () => {
      const issuer = tenant === 'tenant-b' ? liar : slash;
      for (let i = 0; i < 2; i++) {
        const res = await issue(app, await issuer.mint({ sub: SUB }));
        const text = await res.text();
        // The contract names no status for an identity provider that cannot be trusted: the
        // token is refused either as unverifiable (401) or as keys unavailable (503).
        assert.ok(res.status === 401 || res.status === 503, `${res.status} ${text}`);
        assert.equal(res.headers.get('content-type'), 'application/problem+json');
        assert.ok(!text.includes('BEGIN CERTIFICATE'));
        if (res.status === 503) assert.ok(res.headers.get('retry-after'), 'a 503 carries Retry-After');
        else assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer /);
      }
      assert.ok(idp.count(`/${tenant}/.well-known/openid-configuration`) >= 1, 'the document was read');
      assert.equal(idp.count(`/${tenant}/jwks`), 0, 'keys named by an untrusted document are never fetched');
    });
  }
});

interface LogLine {
  level: number;
  msg: string;
  issuer?: string;
  staleUntil?: string;
}

/** The app's log lines, parsed. */
function logCollector(): { stream: Writable; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as LogLine);
      done();
    },
  });
  return { stream, lines };
}

/** A sample's value in the app's /metrics, or undefined when absent. */
async function metric(app: TestApp, sample: string): Promise<number | undefined> {
  const text = await (await fetch(`${app.public}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

/**
 * One app, four remote issuers on one local identity provider, each for one case: two OIDC
 * discovery tenants (`/a`, `/b`) and two JWKS URLs (`/stale`, `/bounded`) with short cache ages.
 */
describe('remote keys: concurrent first tokens and an identity provider outage', () => {
  let idp: IdpServer;
  let app: TestApp;
  const logs = logCollector();
  const issuers: Record<'a' | 'b' | 'stale' | 'bounded', TestIssuer> = {} as never;
  // Forged tokens: an attacker's key, the right iss.
  const forged = async (issuer: TestIssuer) => sign(claims(issuer), { alg: 'ES256', kid: `forged-${randomUUID()}` }, (await newSigningKey()).privateKey);
  const concurrently = async (n: number, token: () => Promise<string>) => Promise.all((await Promise.all(Array.from({ length: n }, token))).map((t) => issue(app, t)));

  before(async () => {
    idp = await startIdpServer();
    for (const name of ['a', 'b', 'stale', 'bounded'] as const) issuers[name] = await createTestIssuer({ issuer: `${idp.url}/${name}` });
    for (const name of ['a', 'b'] as const) {
      idp.serve(`/${name}/.well-known/openid-configuration`, { issuer: issuers[name].issuer, jwks_uri: `${idp.url}/${name}/jwks` });
      idp.serve(`/${name}/jwks`, { keys: [issuers[name].publicJwk] });
    }
    // Slow answers, so that every token arrives while the first fetch is on its way.
    idp.delay('/a/.well-known/openid-configuration', 400);
    idp.delay('/a/jwks', 400);
    idp.fail('/b/.well-known/openid-configuration', 503);
    idp.serve('/stale/jwks', { keys: [issuers.stale.publicJwk] });
    idp.serve('/bounded/jwks', { keys: [issuers.bounded.publicJwk] });
    app = await startTestApp({
      issuer: issuers.a,
      logs: logs.stream,
      config: authWith(
        issuerConfig(issuers.a, 'a', { jwks: { discovery: true } }),
        issuerConfig(issuers.b, 'b', { jwks: { discovery: true }, jwksCooldown: '30s' }),
        issuerConfig(issuers.stale, 'stale', { jwks: { url: `${idp.url}/stale/jwks` }, jwksCacheMaxAge: '2s', jwksCooldown: '2s' }),
        issuerConfig(issuers.bounded, 'bounded', { jwks: { url: `${idp.url}/bounded/jwks` }, jwksCacheMaxAge: '2s', jwksStaleTtl: '4s', jwksCooldown: '1s' }),
      ),
    });
  });
  after(async () => {
    await app?.stop();
    await idp?.close();
  });

  it('OIDC discovery at start-up: eight concurrent forged tokens make one discovery fetch and one key set fetch', async () => {
    for (const res of await concurrently(8, () => forged(issuers.a))) await assertUnauthorized(res);
    assert.equal(idp.count('/a/.well-known/openid-configuration'), 1, `requests: ${JSON.stringify(idp.requests)}`);
    assert.equal(idp.count('/a/jwks'), 1, `requests: ${JSON.stringify(idp.requests)}`);
    // The keys found serve real tokens without another fetch.
    await assertIssued(await issue(app, await issuers.a.mint({ sub: SUB })));
    assert.equal(idp.requests.filter((r) => r.path.startsWith('/a/')).length, 2);
  });

  it('OIDC discovery after a failed fetch: tokens inside the backoff fetch nothing, then eight concurrent tokens make one fetch', async () => {
    await assertUnavailable(await issue(app, await forged(issuers.b)));
    await assertUnavailable(await issue(app, await forged(issuers.b)));
    assert.equal(idp.count('/b/.well-known/openid-configuration'), 1, 'a failed fetch is not repeated per token');
    idp.serve('/b/.well-known/openid-configuration', { issuer: issuers.b.issuer, jwks_uri: `${idp.url}/b/jwks` });
    idp.delay('/b/.well-known/openid-configuration', 400);
    await sleep(1200); // the first backoff step is 1 s
    for (const res of await concurrently(8, () => forged(issuers.b))) await assertUnauthorized(res);
    assert.equal(idp.count('/b/.well-known/openid-configuration'), 2, `requests: ${JSON.stringify(idp.requests)}`);
    assert.equal(idp.count('/b/jwks'), 1);
  });

  it('past jwksCacheMaxAge with a failing identity provider: issues with the last good set, refetches with backoff (not per request), logs and counts it, and recovers', async () => {
    const issuer = issuers.stale;
    const stale = () => metric(app, 'service_ca_jwks_stale{issuer="stale"}');
    await assertIssued(await issue(app, await issuer.mint({ sub: SUB })));
    assert.equal(await stale(), undefined, 'never stale yet');
    idp.fail('/stale/jwks', 500);
    await sleep(2300);
    // Past jwksCacheMaxAge: the refetch fails, the last good set still verifies.
    await assertIssued(await issue(app, await issuer.mint({ sub: SUB })), 'stale set');
    assert.equal(idp.count('/stale/jwks'), 2);
    const started = Date.now();
    for (const res of await concurrently(20, () => issuer.mint({ sub: SUB }))) await assertIssued(res, 'stale set');
    // The backoff after failures is 1 s, then 2 s: at most one refetch per elapsed second.
    const refetches = idp.count('/stale/jwks') - 2;
    assert.ok(refetches <= 1 + Math.floor((Date.now() - started) / 1000), `twenty requests in ${Date.now() - started} ms made ${refetches} fetches`);
    assert.equal(await stale(), 1);
    assert.equal(await metric(app, 'service_ca_jwks_fetch_failures_total{issuer="stale"}'), idp.count('/stale/jwks') - 1);
    const staleLines = logs.lines.filter((l) => l.issuer === 'stale' && l.level === 40 && /stale key set/.test(l.msg));
    assert.equal(staleLines.length, 1, 'one line when the set becomes stale');
    assert.ok(logs.lines.some((l) => l.issuer === 'stale' && l.level === 40 && typeof l.staleUntil === 'string' && /could not be refetched/.test(l.msg)));

    // The identity provider answers again: a later refetch succeeds and the set is fresh.
    idp.serve('/stale/jwks', { keys: [issuer.publicJwk] });
    const deadline = Date.now() + 15_000;
    while ((await stale()) !== 0 && Date.now() < deadline) {
      await assertIssued(await issue(app, await issuer.mint({ sub: SUB })));
      await sleep(300);
    }
    assert.equal(await stale(), 0);
    assert.ok(logs.lines.some((l) => l.issuer === 'stale' && l.level === 30 && /fresh again/.test(l.msg)));
  });

  it('past jwksCacheMaxAge + jwksStaleTtl: 503 with Retry-After, as with no key set at all', async () => {
    const issuer = issuers.bounded;
    await assertIssued(await issue(app, await issuer.mint({ sub: SUB })));
    const fetchedBy = Date.now();
    idp.fail('/bounded/jwks', 500);
    await sleep(2300);
    await assertIssued(await issue(app, await issuer.mint({ sub: SUB })), 'inside jwksStaleTtl');
    await sleep(Math.max(0, fetchedBy + 6500 - Date.now()));
    await assertUnavailable(await issue(app, await issuer.mint({ sub: SUB })));
  });
});

describe('inline keys', () => {
  let app: TestApp;
  let ec: TestIssuer;
  let rsa: SigningKey;
  before(async () => {
    ec = await createTestIssuer();
    rsa = await newSigningKey('RS256');
    app = await startTestApp({ issuer: ec, config: authWith(issuerConfig(ec, 'inline', { jwks: { keys: [ec.publicJwk, rsa.publicJwk] } }, ['ES256', 'RS256'])) });
  });
  after(() => app.stop());

  it('accepts tokens signed by any key of the inline set', async () => {
    await assertIssued(await issue(app, await ec.mint({ sub: SUB })));
    await assertIssued(await issue(app, await sign(claims(ec), { alg: 'RS256', kid: rsa.kid }, rsa.privateKey)));
  });

  it('refuses a key outside the set, and a key used under another key\'s kid', async () => {
    const stranger = await newSigningKey();
    await assertUnauthorized(await issue(app, await sign(claims(ec), { alg: 'ES256', kid: stranger.kid }, stranger.privateKey)));
    await assertUnauthorized(await issue(app, await sign(claims(ec), { alg: 'ES256', kid: ec.kid }, stranger.privateKey)));
    await assertUnauthorized(await issue(app, await sign(claims(ec), { alg: 'RS256', kid: ec.kid }, rsa.privateKey)));
  });
});

describe('a shared-secret HS256 issuer', () => {
  const secret = randomBytes(32).toString('hex');
  const hmac = { issuer: 'https://hmac.test', audience: 'service-ca' };
  const key = new TextEncoder().encode(secret);
  let app: TestApp;
  before(async () => {
    app = await startTestApp({ config: authWith(issuerConfig(hmac, 'hmac', { secret }, ['HS256'])) });
  });
  after(() => app.stop());

  it('accepts HS256 tokens made with the secret', async () => {
    await assertIssued(await issue(app, await sign(claims(hmac), { alg: 'HS256' }, key)));
    await assertIssued(await issue(app, await sign(claims(hmac), { alg: 'HS256', kid: 'whatever' }, key)));
  });

  it('refuses another secret, an algorithm outside the allowlist, alg none and asymmetric keys', async () => {
    const stranger = await newSigningKey();
    const none = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify(claims(hmac))).toString('base64url')}.`;
    const tokens = [
      await sign(claims(hmac), { alg: 'HS256' }, new TextEncoder().encode(randomBytes(32).toString('hex'))),
      await sign(claims(hmac), { alg: 'HS256' }, new TextEncoder().encode(secret.slice(0, 32))),
      await sign(claims(hmac), { alg: 'HS512' }, key),
      await sign(claims(hmac), { alg: 'HS384' }, key),
      none,
      await sign(claims(hmac), { alg: 'ES256', kid: stranger.kid }, stranger.privateKey),
      await sign(claims(hmac, { exp: now() - 600, iat: now() - 900 }), { alg: 'HS256' }, key),
      await sign(claims(hmac, { aud: 'other' }), { alg: 'HS256' }, key),
    ];
    for (const token of tokens) await assertUnauthorized(await issue(app, token));
  });
});

describe('after the cool-downs', () => {
  it('a JWKS URL: the identity provider rotates to a new kid and the CA refetches and accepts it without restart', async () => {
    const rotated = await newSigningKey();
    remoteIdp.serve('/jwks', { keys: [rotated.publicJwk] });
    const fetchesBefore = remoteIdp.count('/jwks');
    // Within the cool-down the unknown kid is refused without a fetch; once it has passed, the
    // first token with the new kid makes the CA refetch the set (jwksCooldown: 5 s here).
    const result = await issuedWithin(20_000, async () => issue(remoteApp, await sign(claims(remoteIssuer), { alg: 'ES256', kid: rotated.kid }, rotated.privateKey)));
    assert.equal(result.status, 201, `after ${result.attempts} attempts: ${result.body}`);
    assert.equal(remoteIdp.count('/jwks'), fetchesBefore + 1, 'exactly one refetch, however many tokens asked before the cool-down ended');
    // The refetched set replaced the cached one: the retired key is no longer trusted.
    await assertUnauthorized(await issue(remoteApp, await remoteIssuer.mint({ sub: SUB })));
    await assertIssued(await issue(remoteApp, await sign(claims(remoteIssuer), { alg: 'ES256', kid: rotated.kid }, rotated.privateKey)));
    assert.equal(remoteIdp.count('/jwks'), fetchesBefore + 1);
  });

  it('a JWKS file replaced on disk: the new key is picked up on an unknown kid, the old one dropped', async () => {
    await assertIssued(await issue(fileApp, await fileIssuer.mint({ sub: SUB })));
    const rotated = await newSigningKey();
    // Replace the file the way a mounted ConfigMap does: write aside, rename over.
    const next = join(dirname(fileIssuer.jwksPath), 'jwks.next.json');
    writeFileSync(next, JSON.stringify({ keys: [rotated.publicJwk] }));
    renameSync(next, fileIssuer.jwksPath);
    // The file source re-reads at most every ~5 s (counted from start-up or the last check).
    const result = await issuedWithin(15_000, async () => issue(fileApp, await sign(claims(fileIssuer), { alg: 'ES256', kid: rotated.kid }, rotated.privateKey)));
    assert.equal(result.status, 201, `after ${result.attempts} attempts: ${result.body}`);
    await assertUnauthorized(await issue(fileApp, await fileIssuer.mint({ sub: SUB })));
  });
});
