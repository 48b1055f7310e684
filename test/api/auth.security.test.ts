/**
 * Authentication, security cases (docs/api.md "Identity and policy", "Conventions"): every way a JWT
 * can be unacceptable is answered 401 with a problem document and `WWW-Authenticate: Bearer`
 * (`error="invalid_token"` when a token was sent, RFC 6750 §3.1), nothing is issued, and header
 * `jku`, `x5u`, `jwk`, `x5c` and `kid` never make the CA fetch or trust a key config did not name.
 * Then what a token limits: its `sans` claim, the identity template over nested claims, and
 * one-time `jti`s (also across two instances sharing one Postgres database).
 */
import { issuedCount } from '../setup/rejections.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, importJWK, importPKCS8, type CryptoKey, type JWTPayload } from 'jose';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { createKeyAndCsr, csrFor } from '../setup/csr.js';
import { createTestDatabase, testDatabaseUrl } from '../setup/database.js';
import { startIdpServer, type IdpServer } from '../setup/idp-server.js';
import { createTestIssuer, issuerConfig, type TestIssuer } from '../setup/tokens.js';

const SUB = workload('payments', 'api');
const NAMES = { dns: ['api.payments.svc'], uri: [SUB] };
const now = () => Math.floor(Date.now() / 1000);
const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

/** The claims a good token for sub carries (what TestIssuer.mint writes). */
function claimsFor(issuer: TestIssuer, sub: string, extra: JWTPayload = {}): JWTPayload {
  return { iss: issuer.issuer, aud: issuer.audience, sub, iat: now(), exp: now() + 300, jti: randomUUID(), ...extra };
}

/** Signs claims with any key and any protected header: the attacker's tool. */
function sign(payload: JWTPayload, header: Record<string, unknown> & { alg: string }, key: CryptoKey | Uint8Array): Promise<string> {
  return new SignJWT(payload).setProtectedHeader({ typ: 'JWT', ...header }).sign(key);
}

async function post(app: TestApp, authorization: string | undefined, body: unknown, contentType = 'application/json'): Promise<Response> {
  return fetch(`${app.api}/v1/certificates`, {
    method: 'POST',
    headers: { 'Content-Type': contentType, ...(authorization !== undefined ? { Authorization: authorization } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}


async function assertProblem(res: Response, status: number, code: string): Promise<Problem> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.equal(res.headers.get('content-type'), 'application/problem+json');
  const body = JSON.parse(text) as Problem & { certificate?: unknown };
  assert.equal(body.type, `urn:service-ca:error:${code}`);
  assert.equal(body.status, status);
  assert.equal(typeof body.title, 'string');
  assert.equal(body.certificate, undefined, 'an error never carries a certificate');
  return body;
}

/** 401, RFC 6750 §3.1: `error="invalid_token"` only when a bearer token was sent. */
async function assertUnauthorized(res: Response, tokenSent: boolean, token?: string): Promise<Problem> {
  const www = res.headers.get('www-authenticate') ?? '';
  const body = await assertProblem(res, 401, 'unauthorized');
  assert.match(www, /^Bearer(\s|$)/, `WWW-Authenticate: ${www}`);
  if (tokenSent) assert.match(www, /error="invalid_token"/, `WWW-Authenticate: ${www}`);
  else assert.doesNotMatch(www, /error=/, `WWW-Authenticate: ${www}`);
  // The problem document never echoes the token (nor its signature) back.
  const secrets = token ? [token, token.split('.')[2] ?? ''].filter((s) => s.length >= 16) : [];
  for (const s of secrets) assert.ok(!JSON.stringify(body).includes(s), 'the token is not echoed');
  return body;
}

/** A self-signed certificate and its key, made by openssl: attacker material for x5c / x5u. */
function attackerCertificate(): { certPem: string; keyPem: string; der: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-attacker-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
      '-subj', '/CN=issuer.test', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem')], { stdio: 'pipe' });
    const certPem = readFileSync(join(dir, 'c.pem'), 'utf8');
    return { certPem, keyPem: readFileSync(join(dir, 'k.pem'), 'utf8'), der: Buffer.from(new X509Certificate(certPem).raw) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('POST /v1/certificates refuses every unacceptable token with 401', () => {
  let app: TestApp;
  let idp: IdpServer;
  let csr: string;
  let attacker: { privateKey: CryptoKey; jwk: Record<string, unknown> };
  let attackerCert: { certPem: string; keyPem: string; der: Buffer; key: CryptoKey };
  let issued: number;

  before(async () => {
    app = await startTestApp();
    idp = await startIdpServer();
    csr = await csrFor(NAMES);
    const pair = await generateKeyPair('ES256', { extractable: true });
    attacker = { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid: 'attacker', alg: 'ES256', use: 'sig' } };
    const cert = attackerCertificate();
    attackerCert = { ...cert, key: await importPKCS8(cert.keyPem, 'ES256') };
    idp.serve('/attacker/jwks.json', { keys: [attacker.jwk, { ...attacker.jwk, kid: app.issuer.kid }] });
    idp.serve('/attacker/cert.pem', { pem: attackerCert.certPem });
    // The fixture is sound: a good token for the same body is issued.
    const ok = await post(app, `Bearer ${await app.token(SUB)}`, { csr });
    assert.equal(ok.status, 201, await ok.clone().text());
    issued = await issuedCount(app);
    assert.equal(issued, 1);
  });
  after(async () => {
    await app.stop();
    await idp.close();
  });

  const m = (claims: JWTPayload = {}, options: Parameters<TestIssuer['mint']>[1] = {}) => app.issuer.mint({ sub: SUB, ...claims }, options);
  const cases: { name: string; token: () => Promise<string> }[] = [
    { name: 'alg none (unsecured JWT)', token: async () => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claimsFor(app.issuer, SUB))}.` },
    { name: 'alg none with the trusted kid', token: async () => `${b64url({ alg: 'none', kid: app.issuer.kid })}.${b64url(claimsFor(app.issuer, SUB))}.` },
    { name: 'alg "None" with a copied signature', token: async () => `${b64url({ alg: 'None', kid: app.issuer.kid })}.${b64url(claimsFor(app.issuer, SUB))}.${(await m()).split('.')[2]}` },
    {
      name: 'HS256 with the issuer\'s public key PEM as the HMAC secret',
      token: async () => sign(claimsFor(app.issuer, SUB), { alg: 'HS256', kid: app.issuer.kid }, new TextEncoder().encode(await exportSPKI(await importJWK(app.issuer.publicJwk, 'ES256') as CryptoKey))),
    },
    {
      name: 'HS256 with the issuer\'s public JWK JSON as the HMAC secret',
      token: async () => sign(claimsFor(app.issuer, SUB), { alg: 'HS256', kid: app.issuer.kid }, new TextEncoder().encode(JSON.stringify(app.issuer.publicJwk))),
    },
    {
      name: 'HS256 with the JWKS file bytes as the HMAC secret',
      token: async () => sign(claimsFor(app.issuer, SUB), { alg: 'HS256', kid: app.issuer.kid }, readFileSync(app.issuer.jwksPath)),
    },
    { name: 'an expired exp', token: () => m({}, { iat: now() - 900, exp: now() - 300 }) },
    { name: 'no exp', token: () => m({}, { exp: null }) },
    { name: 'nbf 10 minutes ahead (beyond the clock tolerance)', token: () => m({}, { nbf: now() + 600 }) },
    { name: 'iat 10 minutes ahead (beyond the clock tolerance)', token: () => m({}, { iat: now() + 600, exp: now() + 900 }) },
    { name: 'a wrong iss', token: () => m({}, { iss: 'https://evil.test' }) },
    { name: 'iss differing by a trailing slash', token: () => m({}, { iss: `${app.issuer.issuer}/` }) },
    { name: 'a wrong aud', token: () => m({}, { aud: 'another-service' }) },
    { name: 'an aud list without ours', token: () => m({}, { aud: ['a', 'Service-CA'] }) },
    { name: 'no aud', token: () => sign({ ...claimsFor(app.issuer, SUB), aud: undefined }, { alg: 'ES256', kid: app.issuer.kid }, app.issuer.privateKey) },
    { name: 'an unknown kid (signed by the trusted key)', token: () => m({}, { header: { kid: 'no-such-kid' } }) },
    { name: 'an untrusted key carrying the trusted kid', token: () => m({}, { key: attacker.privateKey }) },
    { name: 'an untrusted key and no kid', token: () => sign(claimsFor(app.issuer, SUB), { alg: 'ES256' }, attacker.privateKey) },
    {
      name: 'a tampered payload (another identity) under a valid signature',
      token: async () => {
        const [h, , s] = (await m()).split('.');
        return `${h}.${b64url(claimsFor(app.issuer, ADMIN))}.${s}`;
      },
    },
    { name: 'jku naming the attacker\'s JWKS (attacker kid)', token: () => sign(claimsFor(app.issuer, SUB), { alg: 'ES256', kid: 'attacker', jku: `${idp.url}/attacker/jwks.json` }, attacker.privateKey) },
    { name: 'jku naming the attacker\'s JWKS (trusted kid)', token: () => sign(claimsFor(app.issuer, SUB), { alg: 'ES256', kid: app.issuer.kid, jku: `${idp.url}/attacker/jwks.json` }, attacker.privateKey) },
    { name: 'x5u naming the attacker\'s certificate', token: () => sign(claimsFor(app.issuer, SUB), { alg: 'ES256', x5u: `${idp.url}/attacker/cert.pem` }, attackerCert.key) },
    { name: 'x5u naming the attacker\'s certificate (trusted kid)', token: () => sign(claimsFor(app.issuer, SUB), { alg: 'ES256', kid: app.issuer.kid, x5u: `${idp.url}/attacker/cert.pem` }, attackerCert.key) },
    { name: 'jwk embedding the attacker\'s key (no kid)', token: () => sign(claimsFor(app.issuer, SUB), { alg: 'ES256', jwk: { ...attacker.jwk, kid: undefined } }, attacker.privateKey) },
    { name: 'jwk embedding the attacker\'s key (trusted kid)', token: () => sign(claimsFor(app.issuer, SUB), { alg: 'ES256', kid: app.issuer.kid, jwk: { ...attacker.jwk, kid: app.issuer.kid } }, attacker.privateKey) },
    { name: 'x5c carrying the attacker\'s self-signed certificate', token: () => sign(claimsFor(app.issuer, SUB), { alg: 'ES256', x5c: [attackerCert.der.toString('base64')] }, attackerCert.key) },
    {
      name: 'x5c carrying the attacker\'s certificate and the real intermediate (trusted kid)',
      token: async () => {
        const intermediate = Buffer.from(new X509Certificate(readFileSync(app.pki.intermediateCertificate, 'utf8')).raw).toString('base64');
        return sign(claimsFor(app.issuer, SUB), { alg: 'ES256', kid: app.issuer.kid, x5c: [attackerCert.der.toString('base64'), intermediate] }, attackerCert.key);
      },
    },
    { name: 'a lifetime (exp - iat) of 2 h over maxTokenAge 1 h', token: () => m({}, { iat: now(), exp: now() + 7200 }) },
    { name: 'an iat older than maxTokenAge', token: () => m({}, { iat: now() - 7200, exp: now() + 300 }) },
    { name: 'no iat while maxTokenAge is set', token: () => m({}, { iat: null }) },
    { name: 'an identity template claim (sub) missing', token: () => app.issuer.mint({}) },
    // The CA's own identities (its API listener's certificate is service-ca:server): a token that
    // maps there would own, and could revoke, the CA's certificates.
    { name: 'an identity in the namespace the CA keeps for itself (service-ca:server)', token: () => m({ sub: 'service-ca:server' }) },
    { name: 'a "sans" claim that is not a list of names', token: () => m({ sans: 'api.payments.svc' }) },
    { name: 'garbage', token: async () => 'not-a-jwt' },
    { name: 'three garbage segments', token: async () => 'a.b.c' },
    {
      name: 'a validly signed token over 16 KiB',
      token: () => m({ pad: 'x'.repeat(17 * 1024) }),
    },
  ];

  for (const c of cases) {
    it(`401 for ${c.name}`, async () => {
      const token = await c.token();
      await assertUnauthorized(await post(app, `Bearer ${token}`, { csr }), true, token);
      assert.equal(await issuedCount(app), issued, 'nothing was issued');
    });
  }

  it('never fetched anything named by jku or x5u', async () => {
    await sleep(300); // a fetch fired in the background would have arrived by now
    assert.deepEqual(idp.requests, []);
  });

  it('401 for an x5c carrying a certificate this CA issued, signed with its key', async () => {
    const holder = await createKeyAndCsr('p256', { dns: ['api.payments.svc'] });
    const res = await app.issue(SUB, { csr: holder.csrPem });
    assert.equal(res.status, 201);
    const { certificate } = (await res.json()) as { certificate: string };
    issued = await issuedCount(app);
    const x5c = [Buffer.from(new X509Certificate(certificate).raw).toString('base64')];
    const key = await importPKCS8(holder.keyPem, 'ES256');
    for (const header of [{ alg: 'ES256', x5c }, { alg: 'ES256', kid: app.issuer.kid, x5c }]) {
      for (const aud of [app.issuer.audience, 'service-ca:renew']) {
        const token = await sign(claimsFor(app.issuer, SUB, { aud }), header, key);
        await assertUnauthorized(await post(app, `Bearer ${token}`, { csr }), true, token);
      }
    }
    assert.equal(await issuedCount(app), issued);
  });

  it('401 without error="invalid_token" when no token is sent', async () => {
    await assertUnauthorized(await post(app, undefined, { csr }), false);
  });

  it('401 without error="invalid_token" for the Basic scheme (no bearer token sent, RFC 6750 §3.1)', async () => {
    await assertUnauthorized(await post(app, `Basic ${Buffer.from('admin:admin').toString('base64')}`, { csr }), false);
  });

  it('401 for a Basic scheme carrying a valid JWT', async () => {
    const res = await post(app, `Basic ${await app.token(SUB)}`, { csr });
    assert.equal(res.status, 401, await res.clone().text());
    assert.equal(((await res.json()) as Problem).type, 'urn:service-ca:error:unauthorized');
  });

  it('accepts the scheme name in any case and honours the clock tolerance', async () => {
    for (const [scheme, options] of [['bearer', {}], ['BEARER', { nbf: now() + 10 }], ['Bearer', { iat: now() - 600, exp: now() - 10 }]] as const) {
      const res = await post(app, `${scheme} ${await m({}, options)}`, { csr });
      assert.equal(res.status, 201, `${scheme}: ${await res.clone().text()}`);
    }
    issued = await issuedCount(app);
  });

  describe('precedence', () => {
    const badBodies: [string, string][] = [
      ['a body failing the schema', JSON.stringify({ csr: 42 })],
      ['an empty object', '{}'],
      ['a body that is not JSON', '{"csr": '],
      ['a CSR that is not PEM', JSON.stringify({ csr: 'not a csr', ttl: 'forever' })],
    ];
    for (const [what, body] of badBodies) {
      it(`401, not 400, for ${what} without a token`, async () => {
        await assertUnauthorized(await post(app, undefined, body), false);
      });
      it(`401, not 400, for ${what} with an invalid token`, async () => {
        await assertUnauthorized(await post(app, `Bearer ${await m({}, { exp: now() - 600, iat: now() - 900 })}`, body), true);
      });
    }

    it('a valid token with a bad body is 400 (the precedence cases above are real)', async () => {
      await assertProblem(await post(app, `Bearer ${await m()}`, { csr: 42 }), 400, 'malformed');
    });

    it('413 for a body over 64 KiB, before or after authentication', async () => {
      const big = JSON.stringify({ csr: 'A'.repeat(65 * 1024) });
      await assertProblem(await post(app, `Bearer ${await m()}`, big), 413, 'payloadTooLarge');
      const anonymous = await post(app, undefined, big);
      assert.ok([401, 413].includes(anonymous.status), `413 may come before 401; got ${anonymous.status}`);
      await assertProblem(anonymous, anonymous.status, anonymous.status === 413 ? 'payloadTooLarge' : 'unauthorized');
    });

    it('415 for text/plain, before or after authentication', async () => {
      await assertProblem(await post(app, `Bearer ${await m()}`, JSON.stringify({ csr }), 'text/plain'), 415, 'unsupportedMediaType');
      const anonymous = await post(app, undefined, JSON.stringify({ csr }), 'text/plain');
      assert.ok([401, 415].includes(anonymous.status), `415 may come before 401; got ${anonymous.status}`);
      await assertProblem(anonymous, anonymous.status, anonymous.status === 415 ? 'unsupportedMediaType' : 'unauthorized');
      assert.equal(await issuedCount(app), issued);
    });
  });
});

describe('HMAC confusion against an RS256 issuer', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp({ issuer: await createTestIssuer({ alg: 'RS256' }) });
  });
  after(() => app.stop());

  it('401 for HS256/HS384/HS512 keyed with the RSA public key (PEM, PEM without newline, JWK JSON, modulus)', async () => {
    const csr = await csrFor(NAMES);
    const pem = await exportSPKI(await importJWK(app.issuer.publicJwk, 'RS256') as CryptoKey);
    const secrets = [pem, pem.trimEnd(), JSON.stringify(app.issuer.publicJwk), String(app.issuer.publicJwk.n)];
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      for (const secret of secrets) {
        const token = await sign(claimsFor(app.issuer, SUB), { alg, kid: app.issuer.kid }, new TextEncoder().encode(secret));
        await assertUnauthorized(await post(app, `Bearer ${token}`, { csr }), true, token);
      }
    }
    const good = await post(app, `Bearer ${await app.token(SUB)}`, { csr });
    assert.equal(good.status, 201, 'the RS256 issuer itself works');
  });
});

describe('what a token limits', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp();
  });
  after(() => app.stop());

  const issueWith = async (claims: Record<string, unknown>, names: Parameters<typeof csrFor>[0]) =>
    post(app, `Bearer ${await app.token(SUB, claims)}`, { csr: await csrFor(names) });

  it('a "sans" claim limits the names: one CSR name outside it is 403 rejectedIdentifier, nothing issued', async () => {
    const before = await issuedCount(app);
    const res = await issueWith({ sans: ['api.payments.svc'] }, { dns: ['api.payments.svc', 'api.payments.svc.cluster.local'] });
    const problem = await assertProblem(res, 403, 'rejectedIdentifier');
    assert.match(problem.detail, /api\.payments\.svc\.cluster\.local/);
    const uri = await issueWith({ sans: ['api.payments.svc'] }, { dns: ['api.payments.svc'], uri: [SUB] });
    await assertProblem(uri, 403, 'rejectedIdentifier');
    const ip = await issueWith({ sans: ['api.payments.svc', '10.1.2.3'] }, { dns: ['api.payments.svc'], ip: ['10.1.2.4'] });
    await assertProblem(ip, 403, 'rejectedIdentifier');
    const empty = await issueWith({ sans: [] }, { dns: ['api.payments.svc'] });
    await assertProblem(empty, 403, 'rejectedIdentifier');
    assert.equal(await issuedCount(app), before);
  });

  it('a "sans" claim never widens the policy', async () => {
    const res = await issueWith({ sans: ['db.payments.svc'] }, { dns: ['db.payments.svc'] });
    await assertProblem(res, 403, 'rejectedIdentifier');
  });

  it('names inside both the claim and the policy are issued (DNS case-insensitively, IPs as addresses)', async () => {
    const res = await issueWith(
      { sans: ['API.Payments.SVC', '10.1.2.3', SUB, 'unused.payments.svc'] },
      { dns: ['api.payments.svc'], ip: ['10.1.2.3'], uri: [SUB] },
    );
    assert.equal(res.status, 201, await res.clone().text());
    const { certificate } = (await res.json()) as { certificate: string };
    assert.equal(new X509Certificate(certificate).subjectAltName, `DNS:api.payments.svc, IP Address:10.1.2.3, URI:${SUB}`);
  });

  it('builds the identity from nested claims with a dotted template', async () => {
    const issuer = await createTestIssuer({ issuer: 'https://kubernetes.default.svc' });
    const k8s = await startTestApp({
      issuer,
      config: {
        auth: {
          issuers: [{
            name: 'k8s', issuer: issuer.issuer, audience: issuer.audience, jwks: { file: issuer.jwksPath }, algorithms: ['ES256'],
            identity: 'k8s:{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}', maxTokenAge: '1h',
          }],
          admins: { identities: [] },
        },
        policies: [{ identity: 'k8s:{ns}/{sa}', dns: ['{sa}.{ns}.svc'] }],
      },
    });
    try {
      const k8sClaims = (ns: string, sa: string) => ({
        sub: `system:serviceaccount:${ns}:${sa}`,
        'kubernetes.io': { namespace: ns, serviceaccount: { name: sa, uid: randomUUID() }, pod: { name: `${sa}-0` } },
      });
      const tokenFor = (claims: Record<string, unknown>) => issuer.mint(claims);
      const ok = await post(k8s, `Bearer ${await tokenFor(k8sClaims('payments', 'api'))}`, { csr: await csrFor({ dns: ['api.payments.svc'] }) });
      assert.equal(ok.status, 201, await ok.clone().text());
      const body = (await ok.json()) as { identity: string; certificate: string; serial: string };
      assert.equal(body.identity, 'k8s:payments/api');
      assert.equal(new X509Certificate(body.certificate).subjectAltName, 'DNS:api.payments.svc');
      const record = await fetch(`${k8s.api}/v1/certificates/${body.serial}`, { headers: { Authorization: `Bearer ${await tokenFor(k8sClaims('payments', 'api'))}` } });
      assert.equal(record.status, 200);
      assert.equal(((await record.json()) as { identity: string }).identity, 'k8s:payments/api');

      const other = await post(k8s, `Bearer ${await tokenFor(k8sClaims('shop', 'web'))}`, { csr: await csrFor({ dns: ['api.payments.svc'] }) });
      await assertProblem(other, 403, 'rejectedIdentifier');
      const missing = await post(k8s, `Bearer ${await tokenFor({ sub: 'system:serviceaccount:payments:api' })}`, { csr: await csrFor({ dns: ['api.payments.svc'] }) });
      await assertUnauthorized(missing, true);
      const notString = await post(k8s, `Bearer ${await tokenFor({ 'kubernetes.io': { namespace: { x: 1 }, serviceaccount: { name: 'api' } } })}`, { csr: await csrFor({ dns: ['api.payments.svc'] }) });
      await assertUnauthorized(notString, true);
    } finally {
      await k8s.stop();
    }
  });
});

describe('admins bound to an issuer (two issuers whose identity templates overlap)', () => {
  const OPS = `spiffe://example.org/ops`;
  let app: TestApp;
  let other: TestIssuer;
  before(async () => {
    const issuer = await createTestIssuer();
    other = await createTestIssuer({ issuer: 'https://other-idp.test' });
    app = await startTestApp({
      issuer,
      config: { auth: { issuers: [issuerConfig(issuer), issuerConfig(other, 'other')], admins: { identities: [{ issuer: 'test', identity: ADMIN }, OPS] } } },
    });
  });
  after(() => app.stop());

  const audit = async (token: string) => fetch(`${app.api}/v1/audit`, { headers: { Authorization: `Bearer ${token}` } });

  it('{issuer, identity}: only that issuer\'s token makes the identity an admin; the other issuer\'s token for the same identity is 403', async () => {
    const own = await audit(await app.token(ADMIN));
    assert.equal(own.status, 200, await own.clone().text());
    await assertProblem(await audit(await other.mint({ sub: ADMIN })), 403, 'forbidden');
    // Nor can it revoke an identity's certificates as an admin would.
    const issued = await post(app, `Bearer ${await app.token(SUB)}`, { csr: await csrFor(NAMES) });
    assert.equal(issued.status, 201, await issued.clone().text());
    const revoke = await fetch(`${app.api}/v1/revocations`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await other.mint({ sub: ADMIN })}` },
      body: JSON.stringify({ identity: SUB, reason: 'keyCompromise' }),
    });
    await assertProblem(revoke, 403, 'forbidden');
    const record = await fetch(`${app.api}/v1/certificates/${((await issued.json()) as { serial: string }).serial}`, { headers: { Authorization: `Bearer ${await app.token(SUB)}` } });
    assert.equal(((await record.json()) as { status: string }).status, 'valid');
  });

  it('a plain identity is an admin with any configured issuer\'s token', async () => {
    assert.equal((await audit(await app.token(OPS))).status, 200);
    assert.equal((await audit(await other.mint({ sub: OPS }))).status, 200);
  });
});

/** The default test issuer, but one-time tokens. */
function jtiConfig(issuer: TestIssuer) {
  return {
    auth: {
      issuers: [issuerConfig(issuer, 'test', { requireJti: true })],
      admins: { identities: [ADMIN] },
    },
  };
}

describe('one-time tokens (requireJti: true)', () => {
  let app: TestApp;
  let csr: string;
  before(async () => {
    const issuer = await createTestIssuer();
    app = await startTestApp({ issuer, config: jtiConfig(issuer) });
    csr = await csrFor(NAMES);
  });
  after(() => app.stop());

  it('accepts a jti once: 201, then 401 on replay with another CSR (the same CSR is the idempotent retry: 200, the same certificate)', async () => {
    const token = await app.token(SUB);
    const first = await post(app, `Bearer ${token}`, { csr });
    assert.equal(first.status, 201, await first.clone().text());
    await assertUnauthorized(await post(app, `Bearer ${token}`, { csr: await csrFor(NAMES) }), true, token);
    await assertUnauthorized(await post(app, `Bearer ${token}`, { csr: await csrFor(NAMES) }), true, token);
    const retry = await post(app, `Bearer ${token}`, { csr });
    assert.equal(retry.status, 200, await retry.clone().text());
    assert.equal(((await retry.json()) as { serial: string }).serial, ((await first.json()) as { serial: string }).serial);
  });

  it('lets exactly one of several concurrent uses of a jti (each with its own CSR) through', async () => {
    const token = await app.token(SUB);
    const csrs = await Promise.all(Array.from({ length: 6 }, () => csrFor(NAMES)));
    const results = await Promise.all(csrs.map((c) => post(app, `Bearer ${token}`, { csr: c })));
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [201, 401, 401, 401, 401, 401]);
    for (const r of results.filter((x) => x.status === 401)) await assertUnauthorized(r, true);
  });

  it('keeps a used jti while its token can still be accepted (until exp + clockTolerance), across pruning', async () => {
    const now = Math.floor(Date.now() / 1000);
    // Expired 10 s ago: still accepted within the default 30 s clock tolerance.
    const token = await app.issuer.mint({ sub: SUB }, { iat: now - 100, exp: now - 10 });
    const first = await post(app, `Bearer ${token}`, { csr });
    assert.equal(first.status, 201, await first.clone().text());
    await app.running.deps.prune();
    await assertUnauthorized(await post(app, `Bearer ${token}`, { csr: await csrFor(NAMES) }), true, token);
  });

  it('refuses a token without jti, or with an empty one', async () => {
    await assertUnauthorized(await post(app, `Bearer ${await app.issuer.mint({ sub: SUB }, { jti: null })}`, { csr }), true);
    await assertUnauthorized(await post(app, `Bearer ${await app.issuer.mint({ sub: SUB }, { jti: '' })}`, { csr }), true);
  });

  it('a different jti for the same identity is fine', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await post(app, `Bearer ${await app.token(SUB)}`, { csr })).status, 201);
  });
});

describe('one-time tokens across two instances sharing one database', () => {
  it('a jti used on one instance is refused on the other', async (t) => {
    if (!testDatabaseUrl) {
      t.skip('needs TEST_DATABASE_URL: two instances cannot share one embedded PGlite database');
      return;
    }
    const database = await createTestDatabase();
    const issuer = await createTestIssuer();
    const a = await startTestApp({ issuer, database, config: jtiConfig(issuer) });
    const b = await startTestApp({ issuer, database, config: jtiConfig(issuer) });
    try {
      const csr = await csrFor(NAMES);
      const token = await issuer.mint({ sub: SUB });
      const first = await post(a, `Bearer ${token}`, { csr });
      assert.equal(first.status, 201, await first.clone().text());
      await assertUnauthorized(await post(b, `Bearer ${token}`, { csr: await csrFor(NAMES) }), true, token);

      const racing = await issuer.mint({ sub: SUB });
      const csrs = await Promise.all([1, 2, 3, 4].map(() => csrFor(NAMES)));
      const results = await Promise.all([a, b, a, b].map((app, i) => post(app, `Bearer ${racing}`, { csr: csrs[i]! })));
      assert.deepEqual(results.map((r) => r.status).sort(), [201, 401, 401, 401]);
    } finally {
      await a.stop();
      await b.stop();
      await database.drop();
    }
  });
});
