/**
 * CRL publication (docs/api.md "CRLs" and "Public"), checked by independent verifiers: the openssl
 * command line (crl -verify, verify -crl_check), @peculiar/x509 as a second parser, and a real
 * node:tls handshake that enforces the CRL. Covers contents and reasons, the issuer binding
 * (AKI, number, validity window), freshness within crl.maxDelay, strictly increasing numbers
 * (across regenerations and a restart on the same database), HTTP caching headers, entries
 * leaving once their certificate expires, and a CRL that never goes back: a conditional request
 * naming a newer CRL than the process holds, and both routes serving one newest CRL.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { systemClock } from '../../src/clock.js';
import { caIssuers } from '../../src/config.js';
import { createCrlPublisher, type CrlPublisher } from '../../src/crl/publisher.js';
import { createSigner } from '../../src/signer/signer.js';
import { x509 } from '../../src/x509/library.js';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import {
  OPENSSL_REASON,
  REASONS,
  REASON_CODE,
  crlPemToDer,
  fetchCrl,
  opensslCrl,
  peculiarEntries,
  peculiarVerify,
  rootCrlPem,
  sha256,
  sleep,
  subjectKeyId,
  verifyWithCrl,
  waitForCrl,
  type OpensslCrl,
  type ReasonName,
} from '../setup/crl-check.js';
import { createTestDatabase, testDatabaseUrl, withPg } from '../setup/database.js';
import { createTestPki } from '../setup/pki.js';
import { bulkRevoke, issueFor, revokeOk, type Issued } from '../setup/revoking.js';
import { createTestIssuer } from '../setup/tokens.js';

const floorToSecond = (iso: string) => Math.floor(Date.parse(iso) / 1000) * 1000;
const hasAll = (serials: readonly string[]) => (crl: OpensslCrl) => serials.every((s) => crl.entries.has(s));

async function text(url: string): Promise<string> {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  return res.text();
}

interface Handshake {
  /** Application data the client received (the server writes only after accepting). */
  data: string;
  clientError: string | undefined;
}

/** One TLS handshake to 127.0.0.1:port as a client presenting cert (leaf + intermediate). */
function handshake(port: number, rootPem: string, client: Issued): Promise<Handshake> {
  return new Promise((resolve) => {
    let data = '';
    let clientError: string | undefined;
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'web.shop.svc', ca: [rootPem], key: client.keyPem, cert: client.certificate + client.chain.join('') });
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', (err) => (clientError = err.message));
    socket.on('close', () => resolve({ data, clientError }));
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

describe('the CRL after revocations', () => {
  let app: TestApp;
  let chainPem: string;
  let rootPem: string;
  let intermediatePem: string;
  /** Every revocation made through this app: serial → reason and revokedAt. */
  const revoked = new Map<string, { reason: ReasonName; revokedAt: string }>();
  const good: Issued[] = [];
  const revokedCerts = new Map<ReasonName, Issued>();

  const issue = (sa: string, ttl?: string) => issueFor(app, workload('crl', sa), [`${sa}.crl.svc`], ttl);
  async function revokeAndNote(cert: Issued, reason: ReasonName, sub = ADMIN): Promise<void> {
    const record = await revokeOk(app, cert.serial, sub, reason);
    revoked.set(cert.serial, { reason, revokedAt: record.revokedAt! });
  }

  before(async () => {
    app = await startTestApp();
    chainPem = await text(`${app.public}/v1/ca/chain.pem`);
    rootPem = await text(`${app.public}/v1/ca/root.pem`);
    intermediatePem = chainPem.slice(0, chainPem.indexOf('-----END CERTIFICATE-----') + 25);
    assert.ok(new X509Certificate(intermediatePem).ca);
  });
  after(() => app.stop());

  it('lists exactly the revoked, unexpired certificates with their reasons; openssl verifies it, as DER and as PEM', async () => {
    const before = await fetchCrl(app.public);
    assert.equal(before.status, 200, 'a CRL is served from start-up');
    assert.equal(opensslCrl(before.body, chainPem).entries.size, 0, 'nothing is revoked yet');

    for (const reason of REASONS) {
      const cert = await issue('svc');
      // The owner revokes where it may; an admin gives the two reasons only admins may give.
      await revokeAndNote(cert, reason, reason === 'caCompromise' || reason === 'privilegeWithdrawn' ? ADMIN : workload('crl', 'svc'));
      revokedCerts.set(reason, cert);
    }
    good.push(await issue('svc'), await issue('good'));
    const bulk = [await issue('bulk'), await issue('bulk')];
    const res = await bulkRevoke(app, ADMIN, { identity: workload('crl', 'bulk'), reason: 'superseded' });
    assert.equal(res.status, 200);
    for (const c of bulk) {
      const r = await (await fetch(`${app.api}/v1/certificates/${c.serial}`, { headers: { Authorization: `Bearer ${await app.token(ADMIN)}` } })).json() as { revokedAt: string };
      revoked.set(c.serial, { reason: 'superseded', revokedAt: r.revokedAt });
    }

    const { crl, der } = await waitForCrl(app.public, chainPem, hasAll([...revoked.keys()]));
    assert.ok(crl.verified, `openssl crl -verify: ${crl.output}`);
    assert.deepEqual([...crl.entries.keys()].sort(), [...revoked.keys()].sort(), 'exactly the revoked, unexpired serials');
    for (const [serial, { reason, revokedAt }] of revoked) {
      const entry = crl.entries.get(serial)!;
      if (reason === 'unspecified') {
        assert.equal(entry.extensionsText, null, `unspecified is an entry without any extension (RFC 5280 §5.3.1), got ${entry.extensionsText}`);
      } else {
        assert.equal(entry.reason, OPENSSL_REASON[reason], `reason of ${serial}`);
      }
      assert.equal(entry.revocationDate.getTime(), floorToSecond(revokedAt), `revocation date of ${serial} is revokedAt ${revokedAt}`);
    }
    for (const c of good) assert.ok(!crl.entries.has(c.serial), 'a good certificate is not listed');

    // A second, independent parser agrees, and the signature checks with WebCrypto.
    const peculiar = peculiarEntries(der);
    assert.deepEqual([...peculiar.keys()].sort(), [...revoked.keys()].sort());
    for (const [serial, { reason }] of revoked) {
      const e = peculiar.get(serial)!;
      assert.equal(e.reason, reason === 'unspecified' ? undefined : REASON_CODE[reason], `@peculiar/x509 reason of ${serial}`);
      if (reason === 'unspecified') assert.equal(e.extensions, 0);
    }
    assert.ok(await peculiarVerify(der, intermediatePem), '@peculiar/x509 verifies the signature with the intermediate key');

    // Content types, and the same CRL as PEM and on the API listener.
    const derRes = await fetchCrl(app.public);
    assert.equal(derRes.headers.get('content-type'), 'application/pkix-crl');
    const pemRes = await fetchCrl(app.public, '/v1/crl.pem');
    assert.equal(pemRes.status, 200);
    assert.equal(pemRes.headers.get('content-type'), 'application/x-pem-file');
    const pem = pemRes.body.toString('utf8');
    assert.equal(pem.match(/-----BEGIN X509 CRL-----/g)?.length, 1);
    const fromPem = crlPemToDer(pem);
    assert.ok(fromPem.equals(derRes.body), 'the PEM holds the same DER');
    const apiRes = await fetchCrl(app.api);
    assert.ok(apiRes.body.equals(derRes.body), 'both listeners serve the same CRL');
    const pemParsed = opensslCrl(fromPem, chainPem);
    assert.ok(pemParsed.verified);
  });

  it('names the intermediate: issuer, AKI = its SKI, a CRL number, v2, its signature algorithm, and nextUpdate − thisUpdate = crl.validity', async () => {
    const res = await fetchCrl(app.public);
    const crl = opensslCrl(res.body, chainPem);
    assert.ok(crl.verified, crl.output);
    assert.equal(crl.version, 2);
    const ski = subjectKeyId(intermediatePem);
    assert.ok(ski, 'the intermediate has an SKI');
    assert.equal(crl.authorityKeyId, ski, 'AKI keyIdentifier = the intermediate SKI');
    assert.ok(Number.isSafeInteger(crl.number) && crl.number! >= 1, `CRL number ${crl.number}`);
    assert.equal(crl.signatureAlgorithm, 'ecdsa-with-SHA256', 'a P-256 intermediate signs with ecdsa-with-SHA256');
    const parsed = new x509.X509Crl(new Uint8Array(res.body));
    assert.equal(parsed.issuer, new x509.X509Certificate(intermediatePem).subject);
    assert.equal(crl.nextUpdate.getTime() - crl.lastUpdate.getTime(), app.config.crl.validity * 1000);
    assert.equal(app.config.crl.validity, 24 * 3600, 'the default validity');
    const now = Date.now();
    assert.ok(crl.lastUpdate.getTime() <= now + 1000, 'thisUpdate is not in the future');
    assert.ok(crl.lastUpdate.getTime() >= now - app.config.crl.refresh * 1000 - 5000, 'thisUpdate is no older than crl.refresh');
  });

  it('openssl verify -crl_check reports a revoked certificate as revoked and a good one as OK', async () => {
    const crlPem = (await fetchCrl(app.public, '/v1/crl.pem')).body.toString('utf8');
    for (const [reason, cert] of revokedCerts) {
      const v = verifyWithCrl(cert.certificate, rootPem, chainPem, crlPem);
      assert.ok(!v.ok, `${reason}: ${v.output}`);
      assert.match(v.output, /certificate revoked/, `${reason}: ${v.output}`);
    }
    for (const cert of good) {
      const v = verifyWithCrl(cert.certificate, rootPem, chainPem, crlPem);
      assert.ok(v.ok, v.output);
    }
  });

  it('a revocation reaches the served CRL within crl.maxDelay (5 s), on both listeners', async () => {
    assert.equal(app.config.crl.maxDelay, 5);
    for (let round = 0; round < 3; round++) {
      const cert = await issue('fresh');
      const since = Date.now();
      await revokeAndNote(cert, 'keyCompromise');
      for (const base of [app.public, app.api]) {
        const { elapsedMs } = await waitForCrl(base, chainPem, (c) => c.entries.has(cert.serial), { since, timeoutMs: 15_000, intervalMs: 50 });
        assert.ok(elapsedMs <= 5000, `round ${round}: the revocation reached ${base}/v1/crl after ${elapsedMs} ms`);
      }
    }
  });

  it('CRL numbers strictly increase across regenerations, and the same number always means the same CRL', async () => {
    const seen = new Map<number, string>();
    const numberOf = new Map<string, number>();
    const order: number[] = [];
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const res = await fetchCrl(app.public);
        if (res.status === 200) {
          const digest = sha256(res.body);
          const n = numberOf.get(digest) ?? opensslCrl(res.body, chainPem).number!;
          numberOf.set(digest, n);
          assert.equal(seen.get(n) ?? digest, digest, `CRL number ${n} was served with two different contents`);
          seen.set(n, digest);
          order.push(n);
        }
        await sleep(30);
      }
    })();
    const numbers: number[] = [opensslCrl((await fetchCrl(app.public)).body, chainPem).number!];
    const etags = new Set<string>([(await fetchCrl(app.public)).headers.get('etag')!]);
    try {
      for (let i = 0; i < 5; i++) {
        const cert = await issue('numbers');
        await revokeAndNote(cert, i % 2 ? 'superseded' : 'unspecified');
        const { crl } = await waitForCrl(app.public, chainPem, (c) => c.entries.has(cert.serial));
        assert.ok(crl.number! > numbers[numbers.length - 1]!, `number ${crl.number} after ${numbers.join(', ')}`);
        numbers.push(crl.number!);
        etags.add((await fetchCrl(app.public)).headers.get('etag')!);
      }
    } finally {
      watching = false;
      await watcher;
    }
    assert.equal(etags.size, numbers.length, 'each new CRL has a new ETag');
    for (let i = 1; i < order.length; i++) assert.ok(order[i]! >= order[i - 1]!, `served numbers never go back: ${order.slice(Math.max(0, i - 3), i + 1).join(', ')}`);
  });

  it('sends ETag, Last-Modified and Cache-Control: max-age; If-None-Match and If-Modified-Since give 304', async () => {
    // A CRL alone in its second, so that its one-second Last-Modified names it unambiguously
    // (the previous tests made CRLs in quick succession, and one of their generations may still
    // land in the same second: then If-Modified-Since rightly answers 200, and we try again).
    for (let attempt = 1; ; attempt++) {
      await sleep(1100);
      const cert = await issue('headers');
      await revokeAndNote(cert, 'superseded');
      await waitForCrl(app.public, chainPem, (c) => c.entries.has(cert.serial));
      const probe = await fetchCrl(app.public, '/v1/crl');
      const status = (await fetchCrl(app.public, '/v1/crl', { 'If-Modified-Since': probe.headers.get('last-modified')! })).status;
      if (status === 304 || attempt === 3) break;
    }
    for (const path of ['/v1/crl', '/v1/crl.pem'] as const) {
      const res = await fetchCrl(app.public, path);
      assert.equal(res.status, 200);
      const etag = res.headers.get('etag');
      const lastModified = res.headers.get('last-modified');
      const cacheControl = res.headers.get('cache-control');
      assert.match(etag ?? '', /^(W\/)?"[^"]+"$/, `${path}: ETag ${etag}`);
      assert.ok(lastModified && !Number.isNaN(Date.parse(lastModified)), `${path}: Last-Modified ${lastModified}`);
      assert.ok(Date.parse(lastModified!) <= Date.now(), 'Last-Modified is not in the future');
      const maxAge = /(?:^|[,\s])max-age=(\d+)(?:$|[,\s])/.exec(cacheControl ?? '')?.[1];
      assert.ok(maxAge !== undefined && Number(maxAge) > 0, `${path}: Cache-Control ${cacheControl}`);

      const inm = await fetchCrl(app.public, path, { 'If-None-Match': etag! });
      assert.equal(inm.status, 304, `${path}: If-None-Match`);
      assert.equal(inm.body.length, 0, 'a 304 has no body');
      assert.equal(inm.headers.get('etag'), etag);
      assert.equal((await fetchCrl(app.public, path, { 'If-None-Match': `"x", ${etag}` })).status, 304, 'a list of ETags');
      assert.equal((await fetchCrl(app.public, path, { 'If-None-Match': '"some-other-crl"' })).status, 200);

      const ims = await fetchCrl(app.public, path, { 'If-Modified-Since': lastModified! });
      assert.equal(ims.status, 304, `${path}: If-Modified-Since`);
      assert.equal(ims.body.length, 0);
      const older = new Date(Date.parse(lastModified!) - 3600_000).toUTCString();
      assert.equal((await fetchCrl(app.public, path, { 'If-Modified-Since': older })).status, 200, 'modified since an hour before');
      // RFC 9110 §13.1.3: If-Modified-Since is ignored when If-None-Match is present.
      assert.equal((await fetchCrl(app.public, path, { 'If-None-Match': '"some-other-crl"', 'If-Modified-Since': lastModified! })).status, 200);
    }
    const der = await fetchCrl(app.public, '/v1/crl');
    const pem = await fetchCrl(app.public, '/v1/crl.pem');
    assert.notEqual(der.headers.get('etag'), pem.headers.get('etag'), 'two representations, two ETags');
  });

  it('If-Modified-Since with an older CRL\'s Last-Modified never answers 304 for a newer CRL', async () => {
    // Two CRLs generated within one second get the same one-second Last-Modified; a client
    // revalidating with If-Modified-Since must still get the newer one.
    let checked = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      const [x, y] = [await issue('ims'), await issue('ims')];
      while (Date.now() % 1000 > 100) await sleep(5);
      await revokeAndNote(x, 'keyCompromise');
      const first = await waitForCrl(app.public, chainPem, (c) => c.entries.has(x.serial), { intervalMs: 10 });
      const firstRes = await fetchCrl(app.public);
      const lastModified = firstRes.headers.get('last-modified')!;
      await revokeAndNote(y, 'keyCompromise');
      const second = await waitForCrl(app.public, chainPem, (c) => c.entries.has(y.serial), { intervalMs: 10 });
      assert.ok(second.crl.number! > first.crl.number!);
      const revalidated = await fetchCrl(app.public, '/v1/crl', { 'If-Modified-Since': lastModified });
      assert.equal(
        revalidated.status,
        200,
        `CRL ${second.crl.number} (thisUpdate ${second.crl.lastUpdate.toISOString()}) answered 304 to If-Modified-Since: ${lastModified} from CRL ${first.crl.number}, so a caching client keeps a CRL without ${y.serial}`,
      );
      checked++;
      if (second.crl.lastUpdate.getTime() === first.crl.lastUpdate.getTime()) break;
    }
    assert.ok(checked > 0);
  });

  it('a node:tls server with this CRL refuses a revoked client certificate in a real handshake and accepts a good one', async () => {
    const server = await issueFor(app, workload('shop', 'web'), ['web.shop.svc']);
    const okClient = await issueFor(app, workload('tls', 'client'), ['client.tls.svc']);
    const badClient = await issueFor(app, workload('tls', 'client'), ['client.tls.svc']);
    await revokeAndNote(badClient, 'keyCompromise');
    await waitForCrl(app.public, chainPem, (c) => c.entries.has(badClient.serial));
    const crlPem = (await fetchCrl(app.public, '/v1/crl.pem')).body.toString('utf8');
    assert.ok(opensslCrl(crlPemToDer(crlPem), chainPem).entries.has(badClient.serial));
    // node:tls checks revocation along the whole chain: the intermediate needs the root's CRL.
    const rootCrl = rootCrlPem(app.pki.rootKey, app.pki.rootCertificate);

    const serve = (rejectUnauthorized: boolean) => {
      const accepted: { serial: string; authorized: boolean; error: string | null }[] = [];
      const refused: string[] = [];
      const srv = tls.createServer(
        { key: server.keyPem, cert: server.certificate + server.chain.join(''), ca: [rootPem], crl: [crlPem, rootCrl], requestCert: true, rejectUnauthorized },
        (socket) => {
          accepted.push({ serial: socket.getPeerCertificate().serialNumber.toLowerCase(), authorized: socket.authorized, error: socket.authorizationError?.toString() ?? null });
          socket.end('hello');
        },
      );
      srv.on('tlsClientError', (err) => refused.push(err.message));
      return new Promise<{ port: number; accepted: typeof accepted; refused: string[]; close: () => Promise<void> }>((resolve) =>
        srv.listen(0, '127.0.0.1', () => resolve({ port: (srv.address() as AddressInfo).port, accepted, refused, close: () => new Promise((r) => srv.close(() => r())) })),
      );
    };

    const strict = await serve(true);
    try {
      const okHandshake = await handshake(strict.port, rootPem, okClient);
      assert.equal(okHandshake.data, 'hello', `the good client is served: ${okHandshake.clientError}`);
      assert.deepEqual(strict.accepted, [{ serial: okClient.serial, authorized: true, error: null }]);
      const badHandshake = await handshake(strict.port, rootPem, badClient);
      await sleep(50);
      assert.equal(badHandshake.data, '', 'the revoked client gets no application data');
      assert.equal(strict.accepted.length, 1, 'the server never accepted the revoked client');
      assert.ok(strict.refused.length >= 1, 'the server refused a handshake');
    } finally {
      await strict.close();
    }

    // Why it was refused: the same server, reporting instead of rejecting.
    const lenient = await serve(false);
    try {
      await handshake(lenient.port, rootPem, okClient);
      await handshake(lenient.port, rootPem, badClient);
      assert.deepEqual(lenient.accepted, [
        { serial: okClient.serial, authorized: true, error: null },
        { serial: badClient.serial, authorized: false, error: 'CERT_REVOKED' },
      ]);
    } finally {
      await lenient.close();
    }
  });
});

describe('CRLs signed by every intermediate key type', () => {
  const SIGNATURE_NAME = { p384: 'ecdsa-with-SHA384', rsa: 'sha256WithRSAEncryption', ed25519: 'ED25519' } as const;
  for (const keyType of ['p384', 'rsa', 'ed25519'] as const) {
    it(`a ${keyType} intermediate: openssl verifies the CRL and finds the revoked certificate revoked and the good one OK`, async () => {
      const app = await startTestApp({ pki: await createTestPki(keyType) });
      try {
        const chainPem = await text(`${app.public}/v1/ca/chain.pem`);
        const rootPem = await text(`${app.public}/v1/ca/root.pem`);
        const [bad, ok] = [await issueFor(app, workload('kt', 'svc'), ['svc.kt.svc']), await issueFor(app, workload('kt', 'svc'), ['svc.kt.svc'])];
        await revokeOk(app, bad.serial, ADMIN, 'keyCompromise');
        const { crl } = await waitForCrl(app.public, chainPem, (c) => c.entries.has(bad.serial));
        assert.ok(crl.verified, crl.output);
        assert.equal(crl.signatureAlgorithm, SIGNATURE_NAME[keyType]);
        assert.equal(crl.entries.get(bad.serial)?.reason, 'Key Compromise');
        const crlPem = (await fetchCrl(app.public, '/v1/crl.pem')).body.toString('utf8');
        const revokedCheck = verifyWithCrl(bad.certificate, rootPem, chainPem, crlPem);
        assert.ok(!revokedCheck.ok && /certificate revoked/.test(revokedCheck.output), revokedCheck.output);
        const goodCheck = verifyWithCrl(ok.certificate, rootPem, chainPem, crlPem);
        assert.ok(goodCheck.ok, goodCheck.output);
      } finally {
        await app.stop();
      }
    });
  }
});

describe('CRL entries leave once their certificate expires', () => {
  let app: TestApp;
  let chainPem: string;
  before(async () => {
    app = await startTestApp({
      config: { issuance: { defaultTtl: '5s', maxTtl: '1h', backdate: '1s' }, crl: { validity: '60s', refresh: '2s', maxDelay: '1s' } },
    });
    chainPem = await text(`${app.public}/v1/ca/chain.pem`);
  });
  after(() => app.stop());

  it('with crl.maxDelay = 1 s, every revocation is served within 1 s, also one made right after a CRL was generated', async () => {
    const certs = await Promise.all(Array.from({ length: 8 }, () => issueFor(app, workload('exp', 'delay'), ['delay.exp.svc'], '1h')));
    const delays: number[] = [];
    // Back to back: each revocation follows the CRL that published the one before.
    for (const cert of certs) {
      const since = Date.now();
      await revokeOk(app, cert.serial, ADMIN, 'keyCompromise');
      delays.push((await waitForCrl(app.public, chainPem, (c) => c.entries.has(cert.serial), { since, intervalMs: 20 })).elapsedMs);
    }
    assert.ok(Math.max(...delays) <= 1000, `revocation to served CRL, ms: ${delays.join(', ')}`);
  });

  it('an expired certificate leaves the next CRL; an unexpired one stays; CRLs are refreshed and valid for crl.validity', async () => {
    const short = await issueFor(app, workload('exp', 'short'), ['short.exp.svc']);
    const long = await issueFor(app, workload('exp', 'long'), ['long.exp.svc'], '1h');
    assert.equal(Date.parse(short.notAfter) - Date.parse(short.notBefore), 5000, 'the configured default ttl');
    await revokeOk(app, short.serial, ADMIN, 'keyCompromise');
    await revokeOk(app, long.serial, ADMIN, 'superseded');
    await waitForCrl(app.public, chainPem, hasAll([short.serial, long.serial]), { intervalMs: 25 });
    assert.ok(Date.now() < Date.parse(short.notAfter), 'both revocations were published before the short certificate expired');

    const shortEnd = Date.parse(short.notAfter);
    const observed = new Map<number, OpensslCrl>();
    const deadline = shortEnd + 2000 + 1000 + 3000; // refresh + maxDelay + slack
    let gone: OpensslCrl | undefined;
    while (Date.now() < deadline) {
      const res = await fetchCrl(app.public);
      const crl = opensslCrl(res.body, chainPem);
      observed.set(crl.number!, crl);
      if (!crl.entries.has(short.serial)) {
        gone = crl;
        if (Date.now() > shortEnd + 2500) break;
      }
      await sleep(100);
    }
    assert.ok(gone, `no CRL without the expired certificate within ${deadline - shortEnd} ms of its notAfter`);
    for (const crl of observed.values()) {
      assert.ok(crl.verified, crl.output);
      assert.ok(crl.entries.has(long.serial), `CRL ${crl.number} keeps the unexpired revoked certificate`);
      assert.equal(crl.nextUpdate.getTime() - crl.lastUpdate.getTime(), 60_000, 'crl.validity = 60 s');
      const t = crl.lastUpdate.getTime();
      if (t >= shortEnd + 1000) assert.ok(!crl.entries.has(short.serial), `CRL ${crl.number} (thisUpdate ${crl.lastUpdate.toISOString()}) still lists a certificate expired at ${short.notAfter}`);
      if (t < shortEnd - 1000) assert.ok(crl.entries.has(short.serial), `CRL ${crl.number} dropped ${short.serial} before it expired`);
    }
    assert.ok(observed.size >= 2, `regenerated at least every crl.refresh (2 s): saw ${[...observed.keys()].join(', ')}`);
  });
});

describe('CRL numbers across a restart on the same database', () => {
  it('keep increasing: the restarted app serves at least the last number, and its next CRL is higher', async () => {
    const database = await createTestDatabase();
    const pki = await createTestPki('p256');
    const issuer = await createTestIssuer();
    try {
      const first = await startTestApp({ database, pki, issuer });
      let lastNumber: number;
      let chainPem: string;
      const before: string[] = [];
      try {
        chainPem = await text(`${first.public}/v1/ca/chain.pem`);
        for (let i = 0; i < 3; i++) {
          const c = await issueFor(first, workload('restart', 'svc'), ['svc.restart.svc']);
          await revokeOk(first, c.serial, ADMIN, 'keyCompromise');
          before.push(c.serial);
        }
        const { crl } = await waitForCrl(first.public, chainPem, hasAll(before));
        lastNumber = crl.number!;
        assert.ok(lastNumber >= 2);
      } finally {
        await first.stop();
      }

      const second = await startTestApp({ database, pki, issuer });
      try {
        const served = opensslCrl((await fetchCrl(second.public)).body, chainPem);
        assert.ok(served.verified, served.output);
        assert.ok(served.number! >= lastNumber, `after the restart the CRL number is ${served.number}, before it was ${lastNumber}`);
        assert.ok(hasAll(before)(served), 'the revocations survive the restart');
        const c = await issueFor(second, workload('restart', 'svc'), ['svc.restart.svc']);
        await revokeOk(second, c.serial, ADMIN, 'superseded');
        const { crl } = await waitForCrl(second.public, chainPem, hasAll([...before, c.serial]));
        assert.ok(crl.number! > lastNumber && crl.number! > served.number!, `new CRL number ${crl.number} after ${lastNumber} and ${served.number}`);
      } finally {
        await second.stop();
      }
    } finally {
      await database.drop();
    }
  });
});

/**
 * Another replica on the same database, reduced to its CRL publisher (the same code a replica
 * runs, with its own signer on the same CA key): crl.refresh 0, so each sync() stores the next CRL.
 * The app hears of it only through the database (a notification, its poll, or a request).
 */
function otherReplica(app: TestApp): CrlPublisher {
  return createCrlPublisher({
    store: app.running.deps.store,
    signer: createSigner({ ca: caIssuers(app.config.ca)[0]!, publicUrl: app.config.publicUrl }, systemClock),
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    settings: { validity: 3600, refresh: 0, maxDelay: 5 },
  });
}

/** The CRL number of an answer's body, read by openssl (DER, or the DER inside the PEM). */
function numberOf(res: { body: Buffer }, path: '/v1/crl' | '/v1/crl.pem', chainPem: string): number {
  const crl = opensslCrl(path === '/v1/crl' ? res.body : crlPemToDer(res.body.toString('utf8')), chainPem);
  assert.ok(crl.verified, crl.output);
  return crl.number!;
}

const etagFor = (n: number, path: '/v1/crl' | '/v1/crl.pem') => (path === '/v1/crl' ? `"crl-${n}"` : `"crl-${n}-pem"`);

describe('a CRL that never goes back (docs/api.md "CRLs")', () => {
  let app: TestApp;
  let chainPem: string;
  let other: CrlPublisher;

  before(async () => {
    app = await startTestApp();
    chainPem = await text(`${app.public}/v1/ca/chain.pem`);
    other = otherReplica(app);
  });
  after(async () => {
    await other?.stop();
    await app?.stop();
  });

  for (const path of ['/v1/crl', '/v1/crl.pem'] as const) {
    it(`${path}: If-None-Match naming a CRL newer than the process holds answers 304 (or a newer CRL), never the older one; then both routes serve it`, async () => {
      const cert = await issueFor(app, workload('nb', 'svc'), ['svc.nb.svc']);
      await revokeOk(app, cert.serial, ADMIN, 'keyCompromise');
      const { crl: held } = await waitForCrl(app.public, chainPem, (c) => c.entries.has(cert.serial));

      // Another replica stores the next CRL; a client fetched it there and now asks this one.
      await other.sync();
      const newer = other.current()!;
      assert.ok(newer.number > held.number!, `the other replica stored CRL ${newer.number} after ${held.number}`);
      const named = etagFor(newer.number, path);
      const res = await fetchCrl(app.public, path, { 'If-None-Match': `"some-other-crl", ${named}` });
      if (res.status === 200) {
        assert.ok(numberOf(res, path, chainPem) >= newer.number, `200 with CRL ${numberOf(res, path, chainPem)} to a client holding CRL ${newer.number}`);
      } else {
        assert.equal(res.status, 304, `${path} with If-None-Match ${named}: ${res.status}`);
        assert.equal(res.headers.get('etag'), named, 'the 304 names the CRL the client holds');
      }

      // One snapshot, the newest known: from now on neither route answers with an older CRL,
      // and each answer's ETag and Last-Modified describe its own body.
      for (const p of ['/v1/crl.pem', '/v1/crl', '/v1/crl.pem'] as const) {
        const r = await fetchCrl(app.public, p);
        assert.equal(r.status, 200);
        const n = numberOf(r, p, chainPem);
        assert.ok(n >= newer.number, `${p} answered CRL ${n} after this process had answered for CRL ${newer.number}`);
        assert.equal(r.headers.get('etag'), etagFor(n, p), `${p}: the ETag names the CRL in the body`);
      }
    });
  }

  it(
    'listens for stored CRLs on a connection of its own, and listens again when that connection is terminated',
    { skip: testDatabaseUrl ? false : 'Postgres only: with the embedded database one process is alone, and nothing listens' },
    async () => {
      const url = app.database.url!;
      const listeners = () =>
        withPg(url, async (c) => (await c.query<{ pid: number }>(`select pid from pg_stat_activity where datname = current_database() and query = 'LISTEN service_ca_crl'`)).rows.map((r) => r.pid));
      const until = async (what: string, check: (pids: number[]) => boolean) => {
        const deadline = Date.now() + 15_000;
        for (let pids = await listeners(); ; pids = await listeners()) {
          if (check(pids)) return pids;
          assert.ok(Date.now() < deadline, `${what}: listening connections ${pids.join(', ') || 'none'}`);
          await sleep(100);
        }
      };
      const [first] = await until('one listening connection', (pids) => pids.length === 1);
      await withPg(url, (c) => c.query('select pg_terminate_backend($1)', [first]));
      await until('a new listening connection after the old one was terminated', (pids) => pids.length === 1 && pids[0] !== first);
      // Still serving, and it hears of the other replica's next CRL.
      await other.sync();
      const { crl } = await waitForCrl(app.public, chainPem, (c) => c.number! >= other.current()!.number, { timeoutMs: 5000, intervalMs: 50 });
      assert.ok(crl.verified, crl.output);
    },
  );

  it('a forged, huge number in If-None-Match gets the current CRL with 200, and a flood of them shares a few database checks', async () => {
    const current = await fetchCrl(app.public);
    const n = numberOf(current, '/v1/crl', chainPem);
    const checks = async () => (await app.running.deps.app.metrics.registry.getSingleMetric('service_ca_crl_checks_total')!.get()).values[0]?.value ?? 0;
    const before = await checks();
    const started = Date.now();
    const REQUESTS = 300;
    const answers = await Promise.all(
      Array.from({ length: REQUESTS }, (_, i) => {
        const path = i % 2 ? ('/v1/crl.pem' as const) : ('/v1/crl' as const);
        return fetchCrl(app.public, path, { 'If-None-Match': etagFor(999_999_999_999_999 - i, path) }).then((r) => ({ path, r }));
      }),
    );
    const elapsed = Date.now() - started;
    const made = (await checks()) - before;
    for (const { path, r } of answers) {
      assert.equal(r.status, 200, `${path}: ${r.status} ${r.body.toString('utf8').slice(0, 200)}`);
      assert.equal(r.headers.get('etag'), etagFor(n, path), 'the current CRL');
    }
    // Checks are shared and start at least 50 ms apart (polls included): the database saw a
    // bounded number of small queries, not one per request.
    assert.ok(made >= 1, 'a number newer than the one held was checked against the database');
    assert.ok(made <= Math.ceil(elapsed / 50) + 2 && made < REQUESTS / 3, `${made} database checks for ${REQUESTS} requests in ${elapsed} ms`);
  });
});
