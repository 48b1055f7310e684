/**
 * Renewal (docs/api.md "Certificate holder", "Renewal window"): POST /v1/certificates/renew with a
 * token signed by the key of a current certificate this CA issued (x5c, leaf only), for the
 * same identity, a new key (the presented certificate's own key is refused) and a subset of the
 * names; a holder token is accepted once, even when sent concurrently; every unacceptable token or
 * presented certificate is a 401 and issues nothing. GET /v1/certificates/{serial}/renewal-info
 * on both listeners: the window notBefore + 2/3 L .. notBefore + 5/6 L, Retry-After
 * min(6 h, L/10), an open window for a revoked certificate. Certificates are read back with
 * node's X509Certificate, never with the code that wrote them.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPublicKey, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { holderToken } from '../../src/client/index.js';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { createKeyAndCsr, csrFor, type ClientKeyType, type Names } from '../setup/csr.js';
import { holderJwt, issueHolder, postRenew, type Holder, type Issued } from '../setup/holder.js';
import { startIdpServer, type IdpServer } from '../setup/idp-server.js';
import { createTestPki } from '../setup/pki.js';
import { assertProblem, issuedCount } from '../setup/rejections.js';
import { createTestIssuer } from '../setup/tokens.js';

const execFileAsync = promisify(execFile);
const SUB = workload('payments', 'api');
const NAMES: Names = { dns: ['api.payments.svc', 'api.payments.svc.cluster.local'], uri: [SUB] };
const now = () => Math.floor(Date.now() / 1000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A public key's SubjectPublicKeyInfo DER, from a KeyObject or a private key PEM. */
const spki = (key: KeyObject | string) => (typeof key === 'string' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });


async function revokeAsAdmin(app: TestApp, serial: string, reason = 'keyCompromise'): Promise<void> {
  const res = await fetch(`${app.api}/v1/certificates/${serial}/revoke`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(ADMIN)}` },
    body: JSON.stringify({ reason }),
  });
  assert.equal(res.status, 200, await res.text());
}

async function recordOf(app: TestApp, serial: string): Promise<{ identity: string; status: string; sans: Names }> {
  const res = await fetch(`${app.api}/v1/certificates/${serial}`, { headers: { Authorization: `Bearer ${await app.token(ADMIN)}` } });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as { identity: string; status: string; sans: Names };
}

/** 401 unauthorized with `WWW-Authenticate: Bearer error="invalid_token"` (a token was sent). */
async function assertRefused(res: Response, what: string): Promise<string> {
  const www = res.headers.get('www-authenticate') ?? '';
  const problem = await assertProblem(res, 401, 'unauthorized').catch((err: Error) => {
    throw new Error(`${what}: ${err.message}`);
  });
  assert.match(www, /^Bearer(\s|$)/, `${what}: WWW-Authenticate: ${www}`);
  assert.match(www, /error="invalid_token"/, `${what}: WWW-Authenticate: ${www}`);
  return problem.detail;
}

/** Renews holder with a fresh key for names; asserts 201 and returns the answer and the key. */
async function renewOk(app: TestApp, holder: Holder, names: Names, body: Record<string, unknown> = {}, keyType: ClientKeyType = 'p256'): Promise<Holder> {
  const { keyPem, csrPem } = await createKeyAndCsr(keyType, names);
  const res = await postRenew(app, await holderToken(holder.issued.certificate, holder.keyPem), { csr: csrPem, ...body });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  assert.equal(res.headers.get('content-type')?.split(';')[0], 'application/json');
  const issued = JSON.parse(text) as Issued;
  assert.equal(res.headers.get('location'), `/v1/certificates/${issued.serial}`);
  return { issued, keyPem, cert: new X509Certificate(issued.certificate) };
}

describe('POST /v1/certificates/renew', () => {
  let app: TestApp;
  let intermediate: X509Certificate;
  let csr: string;
  before(async () => {
    app = await startTestApp();
    intermediate = new X509Certificate(Buffer.from(await (await fetch(`${app.public}/v1/ca/intermediate.der`)).arrayBuffer()));
    csr = await csrFor(NAMES);
  });
  after(() => app.stop());

  it('renews with the client holderToken for the same identity, a new key and the same names', async () => {
    const holder = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
    const renewed = await renewOk(app, holder, NAMES);
    const { issued, cert } = renewed;
    assert.equal(issued.identity, SUB);
    assert.notEqual(issued.serial, holder.issued.serial);
    assert.equal(cert.serialNumber.toLowerCase().replace(/^00/, ''), issued.serial.replace(/^00/, ''));
    assert.ok(cert.checkIssued(intermediate) && cert.verify(intermediate.publicKey), 'signed by this CA\'s intermediate');
    assert.equal(issued.chain.length, 1);
    assert.equal(new X509Certificate(issued.chain[0]!).fingerprint256, intermediate.fingerprint256, 'the chain holds the intermediate, never the root');
    assert.ok(!spki(cert.publicKey).equals(spki(holder.cert.publicKey)), 'the renewed certificate has a new key');
    assert.ok(spki(cert.publicKey).equals(spki(renewed.keyPem)), 'it certifies the key of the CSR');
    assert.equal(cert.subjectAltName, holder.cert.subjectAltName);
    assert.equal(cert.subjectAltName, `DNS:api.payments.svc, DNS:api.payments.svc.cluster.local, URI:${SUB}`);
    assert.equal(cert.subject, 'CN=api.payments.svc');
    assert.equal(new Date(cert.validFrom).getTime(), Date.parse(issued.notBefore));
    assert.equal(new Date(cert.validTo).getTime(), Date.parse(issued.notAfter));
    // The default ttl (24 h) is capped at the presented certificate's own 1 h: a key alone never buys a longer certificate.
    assert.equal(Date.parse(issued.notAfter) - Date.parse(issued.notBefore), 3600_000, 'at most the presented certificate\'s lifetime');
    const record = await recordOf(app, issued.serial);
    assert.equal(record.identity, SUB, 'the record is for the presented certificate\'s identity');
    assert.equal(record.status, 'valid');
    // The owner reads it with its identity token: it is the same identity.
    const own = await fetch(`${app.api}/v1/certificates/${issued.serial}`, { headers: { Authorization: `Bearer ${await app.token(SUB)}` } });
    assert.equal(own.status, 200);
    // The presented certificate stays valid: renewal is not revocation.
    assert.equal((await recordOf(app, holder.issued.serial)).status, 'valid');

    // The renewed certificate renews in turn, and a shorter ttl is honoured.
    const again = await renewOk(app, renewed, NAMES, { ttl: '30m' });
    assert.equal(again.issued.identity, SUB);
    assert.equal(Date.parse(again.issued.notAfter) - Date.parse(again.issued.notBefore), 1800_000, 'the ttl is honoured');
    assert.ok(!spki(again.cert.publicKey).equals(spki(cert.publicKey)));
  });

  it('400 for a CSR with the presented certificate\'s own key: a renewal carries a new key', async () => {
    const holder = await issueHolder(app, SUB, NAMES);
    const dir = mkdtempSync(join(tmpdir(), 'service-ca-samekey-'));
    let sameKeyCsr: string;
    try {
      writeFileSync(join(dir, 'key.pem'), holder.keyPem);
      await execFileAsync('openssl', ['req', '-new', '-key', join(dir, 'key.pem'), '-subj', '/CN=api.payments.svc', '-addext', 'subjectAltName=DNS:api.payments.svc', '-out', join(dir, 'csr.pem')]);
      sameKeyCsr = readFileSync(join(dir, 'csr.pem'), 'utf8');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const before = await issuedCount(app);
    const res = await postRenew(app, await holderToken(holder.issued.certificate, holder.keyPem), { csr: sameKeyCsr });
    const text = await res.clone().text();
    assert.equal(res.status, 400, `the old key is refused: ${text}`);
    assert.match((JSON.parse(text) as { type: string }).type, /^urn:service-ca:error:(badPublicKey|badCSR)$/, text);
    assert.equal(await issuedCount(app), before, 'nothing was issued');
  });

  it('answers the PEM chain with Accept: application/pem-certificate-chain', async () => {
    const holder = await issueHolder(app, SUB, NAMES);
    const res = await fetch(`${app.api}/v1/certificates/renew`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/pem-certificate-chain', Authorization: `Bearer ${await holderToken(holder.issued.certificate, holder.keyPem)}` },
      body: JSON.stringify({ csr }),
    });
    assert.equal(res.status, 201, await res.clone().text());
    assert.equal(res.headers.get('content-type'), 'application/pem-certificate-chain');
    const pem = await res.text();
    assert.equal(pem.match(/BEGIN CERTIFICATE/g)?.length, 2);
    assert.equal(new X509Certificate(pem).subjectAltName, holder.cert.subjectAltName);
  });

  for (const keyType of ['p384', 'rsa', 'ed25519'] as const) {
    it(`renews a ${keyType} certificate with a token signed by its ${keyType} key`, async () => {
      const holder = await issueHolder(app, SUB, NAMES, { keyType });
      const renewed = await renewOk(app, holder, NAMES, {}, keyType);
      assert.equal(renewed.issued.identity, SUB);
      assert.equal(renewed.cert.publicKey.asymmetricKeyType, holder.cert.publicKey.asymmetricKeyType);
    });
  }

  it('issues a subset of the presented certificate\'s names', async () => {
    const holder = await issueHolder(app, SUB, NAMES);
    const one = await renewOk(app, holder, { dns: ['API.payments.svc'] });
    assert.equal(one.cert.subjectAltName, 'DNS:api.payments.svc');
    const uri = await renewOk(app, await issueHolder(app, SUB, NAMES), { uri: [SUB] });
    assert.equal(uri.cert.subjectAltName, `URI:${SUB}`);
    assert.deepEqual((await recordOf(app, uri.issued.serial)).sans, { dns: [], ip: [], uri: [SUB], email: [] });
  });

  it('403 rejectedIdentifier for a name the presented certificate does not have, even one the policy allows', async () => {
    const holder = await issueHolder(app, SUB, { dns: ['api.payments.svc'] });
    const wider: Names = { dns: ['api.payments.svc', 'api.payments.svc.cluster.local'] };
    // Control: the identity's policy allows the wider set with an identity token.
    const control = await createKeyAndCsr('p256', wider);
    assert.equal((await app.issue(SUB, { csr: control.csrPem })).status, 201, 'the policy allows these names to the identity');
    const before = await issuedCount(app);
    for (const names of [wider, { dns: ['x.api.payments.svc'] }, { dns: ['api.payments.svc'], ip: ['10.1.2.3'] }, { dns: ['web.shop.svc'] }]) {
      const res = await postRenew(app, await holderToken(holder.issued.certificate, holder.keyPem), { csr: await csrFor(names) });
      await assertProblem(res, 403, 'rejectedIdentifier');
    }
    assert.equal(await issuedCount(app), before, 'nothing was issued');
  });

  it('answers 400 for a bad CSR only after the holder token was accepted (401 first)', async () => {
    const holder = await issueHolder(app, SUB, NAMES);
    await assertProblem(await postRenew(app, await holderToken(holder.issued.certificate, holder.keyPem), { csr: 'not a csr' }), 400, 'badCSR');
    await assertRefused(await postRenew(app, await holderJwt({ certificate: holder.issued.certificate, keyPem: holder.keyPem }, { aud: 'elsewhere' }), { csr: 'not a csr' }), 'bad token and bad body');
    const none = await postRenew(app, undefined, { csr: 'not a csr' });
    const www = none.headers.get('www-authenticate') ?? '';
    await assertProblem(none, 401, 'unauthorized');
    assert.match(www, /^Bearer(\s|$)/);
    assert.doesNotMatch(www, /invalid_token/, 'no token was sent (RFC 6750 §3.1)');
  });

  it('issues once for one holder token sent five times at once: the copies with the same CSR get that certificate (200)', async () => {
    const holder = await issueHolder(app, SUB, NAMES);
    const token = await holderToken(holder.issued.certificate, holder.keyPem);
    const before = await issuedCount(app);
    const answers = await Promise.all(Array.from({ length: 5 }, () => postRenew(app, token, { csr })));
    const statuses = answers.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 200, 200, 200, 201], 'exactly one is issued; the retries are answered with it');
    const serials = new Set(await Promise.all(answers.map(async (r) => ((await r.json()) as Issued).serial)));
    assert.equal(serials.size, 1, 'every answer carries the one certificate');
    assert.equal(await issuedCount(app), before + 1);
    // The same token with another key is a replay of a one-time credential.
    await assertRefused(await postRenew(app, token, { csr: await csrFor(NAMES) }), 'the token again with another key');
    assert.equal(await issuedCount(app), before + 1);
  });

  describe('refusals (401, nothing issued)', () => {
    let holder: Holder;
    /** Renewed by the accepted hand-built token, so that `holder` itself is never renewed. */
    let replayed: Holder;
    let other: Holder;
    let foreignApp: TestApp;
    let foreign: Holder;
    let forgedPem: string;
    let count: number;
    let jtiReplay: { token: string; jti: string } | undefined;
    before(async () => {
      holder = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
      replayed = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
      other = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
      const foreignPki = await createTestPki('p256');
      foreignApp = await startTestApp({ pki: foreignPki });
      foreign = await issueHolder(foreignApp, SUB, NAMES, { ttl: '1h' });
      forgedPem = await forgeWithForeignIntermediate(foreignPki, holder);
      count = await issuedCount(app);
    });
    after(async () => {
      await foreignApp?.stop();
      assert.equal(await issuedCount(app), count + (jtiReplay ? 1 : 0), 'only the first use of the replayed token issued anything');
    });

    const h = () => ({ certificate: holder.issued.certificate, keyPem: holder.keyPem });

    it('accepts the hand-built token that the refusals below each spoil in one way', async () => {
      // Lifetime exactly 5 minutes is still fine; the replay test below uses this token again.
      const jti = `replay-${Date.now()}`;
      const token = await holderJwt({ certificate: replayed.issued.certificate, keyPem: replayed.keyPem }, { iat: now(), exp: now() + 300, jti });
      const res = await postRenew(app, token, { csr });
      assert.equal(res.status, 201, await res.text());
      jtiReplay = { token, jti };
    });

    const cases: { name: string; token: () => Promise<string>; csr?: () => Promise<string> }[] = [
      // With the same CSR these would be the idempotent retry (200); with another key they are replays.
      { name: 'a replayed token (same jti) with another key', token: async () => jtiReplay!.token, csr: () => csrFor(NAMES) },
      {
        name: 'a second token with an already used jti',
        token: () => holderJwt({ certificate: replayed.issued.certificate, keyPem: replayed.keyPem }, { jti: jtiReplay!.jti }),
        csr: () => csrFor(NAMES),
      },
      { name: 'a token of the holder, whose own jti was used by another certificate\'s token', token: () => holderJwt(h(), { jti: jtiReplay!.jti }) },
      { name: 'a token lifetime over 5 minutes (exp - iat = 301 s)', token: () => holderJwt(h(), { iat: now(), exp: now() + 301 }) },
      { name: 'a token lifetime of an hour', token: () => holderJwt(h(), { iat: now() - 10, exp: now() + 3590 }) },
      { name: 'aud of the identity issuer', token: () => holderJwt(h(), { aud: 'service-ca' }) },
      { name: 'aud service-ca:renew-other', token: () => holderJwt(h(), { aud: 'service-ca:renew-other' }) },
      { name: 'no aud', token: () => holderJwt(h(), { aud: null }) },
      { name: 'no jti', token: () => holderJwt(h(), { jti: null }) },
      { name: 'an empty jti', token: () => holderJwt(h(), { jti: '' }) },
      { name: 'no iat', token: () => holderJwt(h(), { iat: null }) },
      { name: 'no exp', token: () => holderJwt(h(), { exp: null }) },
      { name: 'an expired token', token: () => holderJwt(h(), { iat: now() - 280, exp: now() - 120 }) },
      { name: 'a token signed by another key (this CA\'s certificate in x5c)', token: () => holderJwt(h(), { keyPem: other.keyPem }) },
      { name: 'x5c with the leaf and the intermediate', token: () => holderJwt(h(), { x5c: [holder.issued.certificate, holder.issued.chain[0]!] }) },
      { name: 'x5c with another certificate first', token: () => holderJwt(h(), { x5c: [other.issued.certificate, holder.issued.certificate] }) },
      { name: 'x5c holding the intermediate only', token: () => holderJwt(h(), { x5c: [holder.issued.chain[0]!] }) },
      { name: 'no x5c (a jwk header instead)', token: () => holderJwt(h(), { x5c: null, header: { jwk: createPublicKey(holder.keyPem).export({ format: 'jwk' }) } }) },
      // Beside a good x5c: only the refusal of key-locating headers stops these.
      { name: 'a jku header beside a good x5c', token: () => holderJwt(h(), { header: { jku: 'https://attacker.example/jwks.json' } }) },
      { name: 'an x5u header beside a good x5c', token: () => holderJwt(h(), { header: { x5u: 'https://attacker.example/leaf.pem' } }) },
      { name: 'a jwk header beside a good x5c', token: () => holderJwt(h(), { header: { jwk: createPublicKey(holder.keyPem).export({ format: 'jwk' }) } }) },
      { name: 'a certificate from a foreign CA (another root and intermediate)', token: () => holderJwt({ certificate: foreign.issued.certificate, keyPem: foreign.keyPem }) },
      { name: 'a forged certificate: the serial and names of ours, signed by a foreign intermediate', token: () => holderJwt({ certificate: forgedPem, keyPem: holder.keyPem }) },
      { name: 'an identity token from the trusted issuer', token: () => app.token(SUB) },
      { name: 'an admin identity token', token: () => app.token(ADMIN) },
    ];
    for (const c of cases) {
      it(`401 for ${c.name}`, async () => {
        assert.ok(jtiReplay, 'the accepted token ran first');
        const detail = await assertRefused(await postRenew(app, await c.token(), { csr: c.csr ? await c.csr() : csr }), c.name);
        assert.ok(detail.length > 0);
      });
    }

    it('401 for a presented certificate that was revoked', async () => {
      const victim = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
      count += 1;
      await revokeAsAdmin(app, victim.issued.serial);
      await assertRefused(await postRenew(app, await holderToken(victim.issued.certificate, victim.keyPem), { csr }), 'revoked');
      await assertRefused(await postRenew(app, await holderToken(victim.issued.certificate, victim.keyPem), { csr: await csrFor({ dns: ['api.payments.svc'] }) }), 'revoked, subset');
    });

    it('401 on POST /v1/certificates for a holder token (it is not an identity token)', async () => {
      const res = await fetch(`${app.api}/v1/certificates`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await holderToken(holder.issued.certificate, holder.keyPem)}` },
        body: JSON.stringify({ csr }),
      });
      await assertRefused(res, 'holder token on the identity endpoint');
    });

    it('404 on the public listener (an authenticated endpoint)', async () => {
      const res = await postRenew(app, await holderToken(holder.issued.certificate, holder.keyPem), { csr }, app.public);
      assert.equal(res.status, 404, await res.text());
    });
  });
});

/**
 * A certificate with the serial, subject and names of `like`, for like's key, signed by another
 * CA's intermediate (openssl, asynchronously: the app runs in this process).
 */
async function forgeWithForeignIntermediate(pki: { intermediateCertificate: string; intermediateKey: string }, like: Holder): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-forge-'));
  try {
    const csrPath = join(dir, 'req.pem');
    const keyPath = join(dir, 'key.pem');
    writeFileSync(keyPath, like.keyPem);
    await execFileAsync('openssl', ['req', '-new', '-key', keyPath, '-subj', '/CN=api.payments.svc', '-out', csrPath]);
    writeFileSync(join(dir, 'ext.cnf'), `[v3]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:api.payments.svc,DNS:api.payments.svc.cluster.local,URI:${SUB}\n`);
    await execFileAsync('openssl', [
      'x509', '-req', '-in', csrPath, '-CA', pki.intermediateCertificate, '-CAkey', pki.intermediateKey,
      '-set_serial', `0x${like.issued.serial}`, '-days', '1', '-extfile', join(dir, 'ext.cnf'), '-extensions', 'v3', '-out', join(dir, 'leaf.pem'),
    ]);
    const pem = readFileSync(join(dir, 'leaf.pem'), 'utf8');
    const forged = new X509Certificate(pem);
    assert.equal(forged.serialNumber.toLowerCase().replace(/^00/, ''), like.issued.serial.replace(/^00/, ''), 'the forgery carries our serial');
    assert.equal(forged.issuer, like.cert.issuer, 'and our issuer name');
    return pem;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('renewal with an expired presented certificate', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp({ config: { issuance: { defaultTtl: '3s', backdate: '1s', maxTtl: '1h' } } });
  });
  after(() => app.stop());

  it('401 once the presented certificate has expired, while a longer one still renews', async () => {
    const short = await issueHolder(app, SUB, NAMES);
    const long = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
    const notAfter = Date.parse(short.issued.notAfter);
    assert.ok(notAfter - Date.parse(short.issued.notBefore) === 3000, 'a 3 s certificate');
    await sleep(Math.max(0, notAfter - Date.now()) + 1200);
    assert.ok(Date.now() > notAfter);
    const before = await issuedCount(app);
    const csr = await csrFor(NAMES);
    const detail = await assertRefused(await postRenew(app, await holderToken(short.issued.certificate, short.keyPem), { csr }), 'expired');
    assert.ok(detail.length > 0);
    assert.equal(await issuedCount(app), before);
    const ok = await postRenew(app, await holderToken(long.issued.certificate, long.keyPem), { csr });
    assert.equal(ok.status, 201, await ok.text());
  });
});

describe('renewal while the identity token\'s issuer is unreachable', () => {
  let app: TestApp;
  let idp: IdpServer;
  before(async () => {
    const issuer = await createTestIssuer();
    idp = await startIdpServer();
    idp.serve('/jwks.json', { keys: [issuer.publicJwk] });
    app = await startTestApp({
      issuer,
      config: {
        auth: {
          issuers: [
            {
              name: 'remote',
              issuer: issuer.issuer,
              audience: issuer.audience,
              jwks: { url: `${idp.url}/jwks.json` },
              algorithms: [issuer.alg],
              maxTokenAge: '1h',
              jwksCacheMaxAge: '1s',
              jwksCooldown: '1s',
              // No grace with the last good key set: identity tokens fail as soon as it is stale.
              jwksStaleTtl: 0,
            },
          ],
          admins: { identities: [ADMIN] },
        },
      },
    });
  });
  after(async () => {
    await app.stop();
    await idp.close();
  });

  it('renews with the holder token while identity tokens can no longer be checked', async () => {
    const holder = await issueHolder(app, SUB, NAMES);
    assert.ok(idp.count('/jwks.json') >= 1, 'the identity token was checked against the remote key set');
    await idp.close();
    await sleep(2500); // past jwksCacheMaxAge and jwksCooldown
    const csr = await csrFor(NAMES);
    const denied = await app.issue(SUB, { csr });
    assert.notEqual(denied.status, 201, `control: an identity token cannot be checked now: ${await denied.text()}`);
    const renewed = await renewOk(app, holder, NAMES);
    assert.equal(renewed.issued.identity, SUB);
  });
});

describe('GET /v1/certificates/{serial}/renewal-info', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp();
  });
  after(() => app.stop());

  interface Info {
    status: number;
    retryAfter: string | null;
    start: number;
    end: number;
    body: { suggestedWindow: { start: string; end: string } };
  }
  const info = async (base: string, serial: string): Promise<Info> => {
    const res = await fetch(`${base}/v1/certificates/${serial}/renewal-info`);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal(res.headers.get('content-type')?.split(';')[0], 'application/json');
    const body = JSON.parse(text) as Info['body'];
    assert.deepEqual(Object.keys(body), ['suggestedWindow']);
    assert.deepEqual(Object.keys(body.suggestedWindow).sort(), ['end', 'start']);
    for (const t of [body.suggestedWindow.start, body.suggestedWindow.end]) assert.match(t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'RFC 3339 UTC');
    return { status: res.status, retryAfter: res.headers.get('retry-after'), start: Date.parse(body.suggestedWindow.start), end: Date.parse(body.suggestedWindow.end), body };
  };

  const cases: { name: string; sub: string; names: Names; ttl: string; lifetime: number; retryAfter: number }[] = [
    { name: '1 h', sub: SUB, names: NAMES, ttl: '1h', lifetime: 3600, retryAfter: 360 },
    { name: '100 s (fractional window edges)', sub: SUB, names: NAMES, ttl: '100s', lifetime: 100, retryAfter: 10 },
    { name: '48 h', sub: SUB, names: NAMES, ttl: '48h', lifetime: 48 * 3600, retryAfter: 17280 },
    { name: '72 h (Retry-After capped at 6 h)', sub: workload('edge', 'gateway'), names: { dns: ['www.edge.example.org'] }, ttl: '72h', lifetime: 72 * 3600, retryAfter: 21600 },
  ];
  for (const c of cases) {
    it(`for a ${c.name} certificate: window 2/3..5/6 of the lifetime, Retry-After ${c.retryAfter}, on both listeners, equal to the issuance answer`, async () => {
      const holder = await issueHolder(app, c.sub, c.names, { ttl: c.ttl });
      const nb = new Date(holder.cert.validFrom).getTime();
      const na = new Date(holder.cert.validTo).getTime();
      const lifetime = na - nb;
      assert.equal(lifetime, c.lifetime * 1000, 'the lifetime read from the certificate');
      const start = nb + (lifetime * 2) / 3;
      const end = nb + (lifetime * 5) / 6;
      const answers: Info[] = [];
      for (const base of [app.public, app.api]) {
        const i = await info(base, holder.issued.serial);
        assert.ok(Math.abs(i.start - start) < 1000, `start ${new Date(i.start).toISOString()} = notBefore + 2/3 L = ${new Date(start).toISOString()}`);
        assert.ok(Math.abs(i.end - end) < 1000, `end ${new Date(i.end).toISOString()} = notBefore + 5/6 L = ${new Date(end).toISOString()}`);
        assert.equal(i.retryAfter, String(c.retryAfter), 'Retry-After = min(6 h, L/10) in seconds');
        answers.push(i);
      }
      assert.deepEqual(answers[0]!.body, answers[1]!.body, 'both listeners answer the same');
      assert.deepEqual(holder.issued.renewalInfo, answers[0]!.body.suggestedWindow, 'the issuance answer\'s renewalInfo is the renewal-info window');
      // Serials are also found in upper case and with colons.
      const colons = holder.issued.serial.toUpperCase().match(/../g)!.join(':');
      assert.deepEqual((await info(app.public, colons)).body, answers[0]!.body);
    });
  }

  it('the renewal answer\'s renewalInfo equals the renewal-info of the renewed certificate', async () => {
    const holder = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
    const renewed = await renewOk(app, holder, NAMES, { ttl: '30m' });
    const i = await info(app.public, renewed.issued.serial);
    assert.deepEqual(renewed.issued.renewalInfo, i.body.suggestedWindow);
    assert.equal(i.start - Date.parse(renewed.issued.notBefore), 1200_000);
    assert.equal(i.end - Date.parse(renewed.issued.notBefore), 1500_000);
  });

  it('opens the window now for a revoked certificate (start = end <= now)', async () => {
    const holder = await issueHolder(app, SUB, NAMES, { ttl: '1h' });
    const before = await info(app.public, holder.issued.serial);
    assert.ok(before.start > Date.now() + 1000, 'before revocation the window is in the future');
    const revokedBefore = Date.now();
    await revokeAsAdmin(app, holder.issued.serial, 'superseded');
    for (const base of [app.public, app.api]) {
      const asked = Date.now();
      const i = await info(base, holder.issued.serial);
      const answered = Date.now();
      assert.equal(i.start, i.end, `start = end: ${JSON.stringify(i.body)}`);
      assert.ok(i.end <= answered, `the window is open now: end ${new Date(i.end).toISOString()} <= ${new Date(answered).toISOString()}`);
      assert.ok(i.end >= Math.min(asked, revokedBefore) - 60_000, 'and not absurdly far in the past');
      assert.ok(i.retryAfter !== null && Number.isInteger(Number(i.retryAfter)), 'Retry-After is still given');
    }
  });

  it('404 notFound for an unknown serial on both listeners', async () => {
    for (const base of [app.public, app.api]) {
      await assertProblem(await fetch(`${base}/v1/certificates/${'7f'.repeat(20)}/renewal-info`), 404, 'notFound');
      await assertProblem(await fetch(`${base}/v1/certificates/01/renewal-info`), 404, 'notFound');
    }
  });

  it('400 malformed for a serial that is not hex octets', async () => {
    for (const bad of ['xyz', 'abc', '0g', 'ab'.repeat(22), '12-34']) {
      await assertProblem(await fetch(`${app.public}/v1/certificates/${bad}/renewal-info`), 400, 'malformed');
    }
  });
});
