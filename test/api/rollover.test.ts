/**
 * Intermediate rollover (docs/api.md "Several issuers"): certificates are issued under
 * intermediate A; a new intermediate B is made under the same root (`createIntermediate`, the code
 * behind `service-ca init --intermediate`); the CA restarts on the same database with both in
 * `ca.issuers`, B active. Then:
 * - every new certificate, and the renewal of an A certificate by its holder, comes from B;
 * - revoking a certificate of A and one of B puts each in its own issuer's CRL, numbered on its
 *   own, and `openssl verify -crl_check` against that CRL reports each revoked;
 * - renewal-info tells the holder of an A certificate to renew by A's renewBy, and the fleet view
 *   judges its identity by that window;
 * - GET /v1/ca/issuers shows both, A removable once its last certificate has expired;
 * - with A removed from the configuration, start-up is clean (no warning or error logged), A's
 *   URLs are gone and B's CRL carries on from its last number.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { createIntermediate, type IntermediateRollover } from '../../src/signer/bootstrap.js';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { removeAtExit } from '../setup/cleanup.js';
import { runCli } from '../setup/cli-run.js';
import { opensslCrl, verifyWithCrl, type OpensslCrl } from '../setup/crl-check.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { holderJwt, issueHolder, postRenew, type Holder } from '../setup/holder.js';
import { openssl, x509Text } from '../setup/openssl.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { createTestIssuer, issuerConfig, type TestIssuer } from '../setup/tokens.js';

const OWNER = workload('shop', 'web');
const NAMES = { dns: ['web.shop.svc'] };
/** The holder of an A certificate that is not renewed: the fleet judges this identity by it. */
const KEEPER = workload('shop', 'keeper');
/** Short lifetimes, so that A's last certificate expires while the test waits. */
const ISSUANCE = { defaultTtl: '30s', maxTtl: '1h', backdate: '1s' };
const CRL = { validity: '1h', refresh: '30m', maxDelay: '1s' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The key id a certificate's issuer goes by: its AuthorityKeyIdentifier, as openssl prints it. */
function authorityKeyId(pem: string): string {
  const m = /X509v3 Authority Key Identifier:\s*\n\s*(?:keyid:)?([0-9A-F:]+)/.exec(x509Text(pem));
  assert.ok(m, 'the certificate has an AuthorityKeyIdentifier');
  return m[1]!.replaceAll(':', '').toLowerCase();
}

function subjectKeyId(pem: string): string {
  const m = /X509v3 Subject Key Identifier:\s*\n\s*([0-9A-F:]+)/.exec(x509Text(pem));
  assert.ok(m, 'the certificate has a SubjectKeyIdentifier');
  return m[1]!.replaceAll(':', '').toLowerCase();
}

/** `openssl verify -crl_check` of leaf under root → intermediate with that issuer's CRL (DER, as served). */
function verifyAgainst(leafPem: string, rootPem: string, intermediatePem: string, crlDer: Buffer): { ok: boolean; output: string } {
  return verifyWithCrl(leafPem, rootPem, intermediatePem, openssl(['crl', '-inform', 'DER', '-in', { file: 'crl.der', content: crlDer }]).stdout);
}

async function bytes(url: string): Promise<{ status: number; body: Buffer; type: string | null }> {
  const res = await fetch(url);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), type: res.headers.get('content-type') };
}

/** The CRL at path once it verifies under chainPem and `accept` holds (revocations reach it within crl.maxDelay). */
async function crlWhen(app: TestApp, path: string, chainPem: string, accept: (crl: OpensslCrl) => boolean): Promise<{ crl: OpensslCrl; der: Buffer }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { status, body } = await bytes(`${app.public}${path}`);
    if (status === 200) {
      const crl = opensslCrl(body, chainPem);
      if (crl.verified && accept(crl)) return { crl, der: body };
    }
    if (Date.now() > deadline) throw new Error(`${path} did not reach the expected state (last status ${status})`);
    await sleep(100);
  }
}

async function revokeAsAdmin(app: TestApp, serial: string): Promise<void> {
  const res = await fetch(`${app.api}/v1/certificates/${serial}/revoke`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(ADMIN)}` },
    body: JSON.stringify({ reason: 'keyCompromise' }),
  });
  assert.equal(res.status, 200, await res.text());
}

interface IssuerJson {
  keyId: string;
  active: boolean;
  certificates: { unexpired: number; revoked: number };
  crl: { number: number } | null;
  removable: boolean;
  renewBy: string | null;
}

async function issuers(app: TestApp): Promise<IssuerJson[]> {
  const res = await fetch(`${app.api}/v1/ca/issuers`, { headers: { Authorization: `Bearer ${await app.token(ADMIN)}` } });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { issuers: IssuerJson[] }).issuers;
}

/** A log stream that keeps every line at warn or above. */
function warnings(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line && (JSON.parse(line) as { level: number }).level >= 40) lines.push(line);
      }
      done();
    },
  });
  return { stream, lines };
}

describe('intermediate rollover: two issuers, one active, each with its own CRL', () => {
  let pki: TestPki;
  let issuer: TestIssuer;
  let database: TestDatabase;
  let b: IntermediateRollover;
  let rootPem: string;
  let aPem: string;
  let bPem: string;
  let kidA: string;
  let kidB: string;
  let app: TestApp | undefined;
  /** Under A, before the rollover: one renewed by its holder, one revoked, one kept for renewal-info. */
  let renewed: Holder;
  let revokedA: Holder;
  let keptA: Holder;
  /** A's last CRL number before the rollover. */
  let lastCrlOfA: number;
  let renewBy: Date;
  /** B's CRL number right after the restart with both issuers. */
  let firstCrlOfB: number | undefined;

  /** Issuance under A answered again after the rollover (a retry of a lost answer): token, CSR, first answer. */
  let retry: { token: string; csr: string; serial: string };

  // One-time tokens (requireJti), so that a retried request is answered with its first certificate.
  const start = (ca: Record<string, unknown>, logs?: Writable) =>
    startTestApp({
      pki,
      issuer,
      database,
      logs,
      config: { ca, issuance: ISSUANCE, crl: CRL, auth: { issuers: [issuerConfig(issuer, 'test', { requireJti: true })], admins: { identities: [ADMIN] } } },
    });

  before(async () => {
    pki = await createTestPki('p256');
    issuer = await createTestIssuer();
    database = await createTestDatabase();
    const one = await start({ certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate });
    try {
      renewed = await issueHolder(one, OWNER, NAMES);
      revokedA = await issueHolder(one, OWNER, NAMES);
      keptA = await issueHolder(one, KEEPER, { dns: ['keeper.shop.svc'] });
      const token = await one.token(OWNER);
      const { csrPem } = await createKeyAndCsr('p256', NAMES);
      const res = await one.issue(OWNER, { csr: csrPem }, { Authorization: `Bearer ${token}` });
      assert.equal(res.status, 201, await res.clone().text());
      retry = { token, csr: csrPem, serial: ((await res.json()) as { serial: string }).serial };
      await one.running.deps.crl.active.sync();
      lastCrlOfA = one.running.deps.crl.active.current()!.number;
    } finally {
      await one.stop();
    }
    const dir = mkdtempSync(join(tmpdir(), 'service-ca-rollover-'));
    removeAtExit(dir);
    b = await createIntermediate({ dir: join(dir, 'b'), rootCertificate: pki.rootCertificate, rootKey: pki.rootKey, currentCertificate: pki.intermediateCertificate, now: new Date() });
    rootPem = readFileSync(pki.rootCertificate, 'utf8');
    aPem = new X509Certificate(readFileSync(pki.intermediateCertificate)).toString();
    bPem = new X509Certificate(readFileSync(b.intermediateCertificate)).toString();
    kidA = subjectKeyId(aPem);
    kidB = subjectKeyId(bPem);
    // Holders of A's certificates are told to have renewed 8 s after keptA's notBefore, well
    // before its usual window (from 2/3 of its 30 s).
    renewBy = new Date(new Date(keptA.issued.notBefore).getTime() + 8000);
    app = await start({
      issuers: [
        { certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate, renewBy: renewBy.toISOString() },
        { certificate: b.intermediateCertificate, key: b.intermediateKey, chain: b.chain, active: true },
      ],
    });
    firstCrlOfB = app.running.deps.crl.byKeyId(kidB)?.current()?.number;
  });

  after(async () => {
    await app?.stop();
    await database.drop();
  });

  it('made B under the same root with the same name and another key', () => {
    assert.notEqual(kidA, kidB);
    assert.equal(b.keyId, kidB);
    assert.equal(new X509Certificate(bPem).subject, new X509Certificate(aPem).subject);
    assert.equal(authorityKeyId(renewed.issued.certificate), kidA, 'the first certificates came from A');
  });

  it('issues every new certificate from B, naming B\'s own CRL and certificate URLs', async () => {
    const fresh = await issueHolder(app!, OWNER, NAMES);
    assert.equal(authorityKeyId(fresh.issued.certificate), kidB);
    assert.equal(new X509Certificate(fresh.issued.chain[0]!).toString(), bPem, 'the chain holds B');
    const text = x509Text(fresh.issued.certificate);
    assert.match(text, new RegExp(`URI:http://ca\\.test:8080/v1/crl/${kidB}\\n`));
    assert.match(text, new RegExp(`CA Issuers - URI:http://ca\\.test:8080/v1/ca/issuers/${kidB}\\.der\\n`));
    // Each issuer's certificate at its AIA URL; the unnamed URLs are the active issuer's.
    const certA = await bytes(`${app!.public}/v1/ca/issuers/${kidA}.der`);
    assert.equal(certA.status, 200);
    assert.equal(certA.type, 'application/pkix-cert');
    assert.equal(new X509Certificate(certA.body).toString(), aPem);
    assert.equal(new X509Certificate((await bytes(`${app!.public}/v1/ca/issuers/${kidB}.der`)).body).toString(), bPem);
    assert.equal(new X509Certificate((await bytes(`${app!.public}/v1/ca/intermediate.der`)).body).toString(), bPem);
    assert.equal((await bytes(`${app!.public}/v1/ca/issuers/${'ab'.repeat(20)}.der`)).status, 404);
    assert.equal((await bytes(`${app!.public}/v1/crl/${'ab'.repeat(20)}`)).status, 404);
  });

  it('answers a retry of an issuance made under A with that certificate and A\'s intermediate', async () => {
    const res = await app!.issue(OWNER, { csr: retry.csr }, { Authorization: `Bearer ${retry.token}` });
    assert.equal(res.status, 200, await res.clone().text());
    const body = (await res.json()) as { serial: string; certificate: string; chain: string[] };
    assert.equal(body.serial, retry.serial);
    assert.equal(authorityKeyId(body.certificate), kidA);
    assert.deepEqual(body.chain.map((c) => new X509Certificate(c).toString()), [aPem], 'the chain holds the intermediate that signed it');
  });

  it('renews a certificate of A, by its holder, into one of B', async () => {
    const { keyPem, csrPem } = await createKeyAndCsr('p256', NAMES);
    const res = await postRenew(app!, await holderJwt({ certificate: renewed.issued.certificate, keyPem: renewed.keyPem }), { csr: csrPem });
    assert.equal(res.status, 201, await res.clone().text());
    const body = (await res.json()) as { certificate: string; chain: string[] };
    assert.equal(authorityKeyId(body.certificate), kidB);
    assert.ok(new X509Certificate(body.certificate).checkPrivateKey(createPrivateKey(keyPem)), 'the renewal certifies the new key');
    const v = verifyAgainst(body.certificate, rootPem, bPem, (await crlWhen(app!, `/v1/crl/${kidB}`, `${bPem}${rootPem}`, () => true)).der);
    assert.ok(v.ok, v.output);
  });

  it('puts a revoked certificate of A in A\'s CRL and one of B in B\'s, each reported revoked by openssl', async () => {
    const ofB = await issueHolder(app!, OWNER, NAMES);
    await revokeAsAdmin(app!, revokedA.issued.serial);
    await revokeAsAdmin(app!, ofB.issued.serial);
    const crlA = await crlWhen(app!, `/v1/crl/${kidA}`, `${aPem}${rootPem}`, (c) => c.entries.has(revokedA.issued.serial));
    const crlB = await crlWhen(app!, `/v1/crl/${kidB}`, `${bPem}${rootPem}`, (c) => c.entries.has(ofB.issued.serial));
    assert.ok(!crlA.crl.entries.has(ofB.issued.serial), 'B\'s certificate is not in A\'s CRL');
    assert.ok(!crlB.crl.entries.has(revokedA.issued.serial), 'A\'s certificate is not in B\'s CRL');
    // Numbered on their own: A carries on from before the rollover, B's series started at 1.
    assert.ok(crlA.crl.number! > lastCrlOfA, `A's CRL ${crlA.crl.number} follows ${lastCrlOfA}`);
    assert.equal(firstCrlOfB, 1);

    const revokedVerdict = verifyAgainst(revokedA.issued.certificate, rootPem, aPem, crlA.der);
    assert.equal(revokedVerdict.ok, false);
    assert.match(revokedVerdict.output, /certificate revoked/);
    const revokedB = verifyAgainst(ofB.issued.certificate, rootPem, bPem, crlB.der);
    assert.equal(revokedB.ok, false);
    assert.match(revokedB.output, /certificate revoked/);
    // The control: an A certificate nobody revoked verifies against the same CRL.
    const kept = verifyAgainst(keptA.issued.certificate, rootPem, aPem, crlA.der);
    assert.ok(kept.ok, kept.output);

    // /v1/crl and its PEM are B's, byte for byte the same CRL as B's own URL.
    const active = await bytes(`${app!.public}/v1/crl`);
    const own = await bytes(`${app!.public}/v1/crl/${kidB}`);
    assert.deepEqual(active.body, own.body);
    const pem = await bytes(`${app!.public}/v1/crl/${kidA}.pem`);
    assert.equal(pem.type, 'application/x-pem-file');
    assert.match(pem.body.toString('utf8'), /^-----BEGIN X509 CRL-----\n/);
    assert.deepEqual(Buffer.from(pem.body.toString('utf8').replace(/-----[A-Z0-9 ]+-----|\s/g, ''), 'base64'), (await bytes(`${app!.public}/v1/crl/${kidA}`)).body);
  });

  it('tells the holder of an A certificate to renew by A\'s renewBy, and a B certificate its usual window', async () => {
    const res = await fetch(`${app!.public}/v1/certificates/${keptA.issued.serial}/renewal-info`);
    assert.equal(res.status, 200);
    const { suggestedWindow } = (await res.json()) as { suggestedWindow: { start: string; end: string } };
    const notBefore = new Date(keptA.issued.notBefore).getTime();
    const lifetime = new Date(keptA.issued.notAfter).getTime() - notBefore;
    const width = Math.round((lifetime * 5) / 6) - Math.round((lifetime * 2) / 3);
    assert.equal(new Date(suggestedWindow.end).getTime(), renewBy.getTime());
    assert.equal(new Date(suggestedWindow.start).getTime(), renewBy.getTime() - width);

    // The fleet view shows the same window, and judges the identity by it.
    const before = Date.now();
    const fleet = await fetch(`${app!.api}/v1/fleet?${new URLSearchParams({ identityPrefix: KEEPER })}`, { headers: { Authorization: `Bearer ${await app!.token(ADMIN)}` } });
    const after = Date.now();
    assert.equal(fleet.status, 200, await fleet.clone().text());
    const [item] = ((await fleet.json()) as { items: { state: string; certificate: { serial: string; renewalInfo: { start: string; end: string } } }[] }).items;
    assert.equal(item!.certificate.serial, keptA.issued.serial);
    assert.deepEqual(item!.certificate.renewalInfo, suggestedWindow);
    const state = (ms: number) => (ms < renewBy.getTime() - width ? 'healthy' : ms < renewBy.getTime() ? 'renewalDue' : 'missedRenewal');
    if (state(before) === state(after)) assert.equal(item!.state, state(before));

    const ofB = await issueHolder(app!, OWNER, NAMES);
    const info = (await (await fetch(`${app!.public}/v1/certificates/${ofB.issued.serial}/renewal-info`)).json()) as { suggestedWindow: { start: string; end: string } };
    const nb = new Date(ofB.issued.notBefore).getTime();
    const l = new Date(ofB.issued.notAfter).getTime() - nb;
    assert.equal(new Date(info.suggestedWindow.end).getTime(), nb + Math.round((l * 5) / 6));
  });

  it('shows both issuers to an admin, and A removable once its last certificate expired', async () => {
    const now = await issuers(app!);
    assert.deepEqual(
      now.map((i) => [i.keyId, i.active, i.removable, i.renewBy]),
      [
        [kidA, false, false, renewBy.toISOString().replace('.000Z', 'Z')],
        [kidB, true, false, null],
      ],
    );
    const a = now[0]!;
    assert.equal(a.certificates.unexpired, 4, 'renewed, revokedA, keptA and the retried one have not expired yet');
    assert.equal(a.certificates.revoked, 1);
    assert.ok(a.crl !== null && a.crl.number > lastCrlOfA);
    const forbidden = await fetch(`${app!.api}/v1/ca/issuers`, { headers: { Authorization: `Bearer ${await app!.token(OWNER)}` } });
    assert.equal(forbidden.status, 403);
    const audit = async (query: Record<string, string>) =>
      ((await (await fetch(`${app!.api}/v1/audit?${new URLSearchParams({ action: 'certificates.list', ...query })}`, { headers: { Authorization: `Bearer ${await app!.token(ADMIN)}` } })).json()) as { items: { outcome: string; detail: Record<string, unknown> }[] }).items;
    assert.ok((await audit({ actor: ADMIN })).some((i) => i.outcome === 'success' && i.detail.view === 'issuers'), 'the admin\'s read is audited');
    assert.equal((await audit({ actor: OWNER, outcome: 'forbidden' })).length, 1, 'the refusal is audited');

    // The same through `service-ca ca status`, as a table and as JSON.
    const tokenFile = join(mkdtempSync(join(tmpdir(), 'service-ca-rollover-token-')), 'admin.jwt');
    removeAtExit(dirname(tokenFile));
    writeFileSync(tokenFile, await app!.token(ADMIN), { mode: 0o600 });
    const table = await runCli(['ca', 'status', '--server', app!.api, '--token-file', tokenFile]);
    assert.equal(table.code, 0, table.describe);
    const lines = table.stdout.trimEnd().split('\n');
    assert.deepEqual(lines.map((l) => l.split(/\s+/).slice(0, 2)), [['KEY', 'ID'], [kidA, 'retiring'], [kidB, 'active']]);
    assert.deepEqual(lines.slice(1).map((l) => l.split(/\s{2,}/)[4]), ['4', '4'], 'UNEXPIRED: A issued four, B four so far');
    const json = await runCli(['ca', 'status', '--json', '--server', app!.api, '--token-file', tokenFile]);
    assert.equal(json.code, 0, json.describe);
    assert.deepEqual((JSON.parse(json.stdout) as IssuerJson[]).map((i) => [i.keyId, i.certificates.unexpired]), [[kidA, 4], [kidB, 4]]);

    // A's certificates live 30 s from before the rollover; wait for the last one to expire.
    const last = Math.max(...[renewed, revokedA, keptA].map((h) => new Date(h.issued.notAfter).getTime())) + 2000;
    await sleep(Math.max(0, last - Date.now() + 1000));
    const later = await issuers(app!);
    assert.deepEqual([later[0]!.certificates, later[0]!.removable], [{ unexpired: 0, revoked: 0 }, true]);
    assert.equal(later[1]!.removable, false, 'the active issuer is never removable');
  });

  it('starts cleanly with A removed, without A\'s URLs, and B\'s CRL carries on', async () => {
    const crlB = opensslCrl((await bytes(`${app!.public}/v1/crl/${kidB}`)).body, `${bPem}${rootPem}`);
    await app!.stop();
    app = undefined;
    const logs = warnings();
    app = await start({ issuers: [{ certificate: b.intermediateCertificate, key: b.intermediateKey, chain: b.chain }] }, logs.stream);
    // The one expected warning: these tests run the API listener without TLS.
    const unexpected = logs.lines.filter((l) => (JSON.parse(l) as { msg: string }).msg !== 'server.tls.mode is off: the API listener speaks plain HTTP and must sit behind a TLS-terminating proxy');
    assert.deepEqual(unexpected, [], 'nothing else logged at warn or above while starting');
    assert.equal(logs.lines.length, 1, 'the TLS warning was seen, so the stream heard the start-up');
    assert.equal((await bytes(`${app.public}/v1/crl/${kidA}`)).status, 404);
    assert.equal((await bytes(`${app.public}/v1/ca/issuers/${kidA}.der`)).status, 404);
    const after = await crlWhen(app, `/v1/crl/${kidB}`, `${bPem}${rootPem}`, () => true);
    assert.ok(after.crl.number! >= crlB.number!, `B's CRL ${after.crl.number} does not go back from ${crlB.number}`);
    assert.deepEqual([...after.crl.entries.keys()].sort(), [...crlB.entries.keys()].sort(), 'B\'s revocations are still listed');
    const list = await issuers(app);
    assert.deepEqual(list.map((i) => [i.keyId, i.active]), [[kidB, true]]);
  });
});
