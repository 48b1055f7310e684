/**
 * Path building, CRL checks and the renewal rule of `service-ca inspect` (src/inspect/chain.ts,
 * revocation.ts, inspect.ts) with real crypto: leaves and CRLs signed here with the keys of two
 * throwaway CAs whose roots and intermediates carry the same names, served over a local HTTP
 * server (AIA, CRL distribution points), and the clock injected. A CRL with the right issuer name
 * that lists the serial but is signed by the other CA's key must not count as a revocation.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, webcrypto } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { certOf, type Cert } from '../../src/inspect/certificates.js';
import { buildPath } from '../../src/inspect/chain.js';
import { inspect } from '../../src/inspect/inspect.js';
import { checkCrl } from '../../src/inspect/revocation.js';
import { x509 } from '../../src/x509/library.js';
import { toPem } from '../../src/x509/pem.js';
import { createTestPki, type TestPki } from '../setup/pki.js';

const ALG = { name: 'ECDSA', hash: 'SHA-256' };
const HOUR = 3600_000;
const NO_CA = { server: undefined, caPem: undefined, tlsServerName: undefined, token: undefined, timeoutMs: 5000 };

interface Ca {
  root: Cert;
  intermediate: Cert;
  key: CryptoKey;
}

async function loadCa(pki: TestPki): Promise<Ca> {
  const der = createPrivateKey(readFileSync(pki.intermediateKey)).export({ type: 'pkcs8', format: 'der' });
  const key = (await webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign'])) as CryptoKey;
  const pem = (f: string) => new x509.X509Certificate(readFileSync(f, 'utf8')).rawData;
  return { root: certOf(Buffer.from(pem(pki.rootCertificate)), 'root'), intermediate: certOf(Buffer.from(pem(pki.intermediateCertificate)), 'server'), key };
}

async function mint(ca: Ca, o: { notBefore?: Date; notAfter?: Date; crl?: string[]; aia?: string; akid?: boolean } = {}): Promise<Cert> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
  const notBefore = o.notBefore ?? new Date(Date.now() - 60_000);
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'CN=web.shop.svc',
    issuer: ca.intermediate.parsed.subject,
    notBefore,
    notAfter: o.notAfter ?? new Date(notBefore.getTime() + 24 * HOUR),
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'web.shop.svc' }]),
      ...(o.akid === false ? [] : [await x509.AuthorityKeyIdentifierExtension.create(ca.intermediate.parsed.publicKey)]),
      ...(o.crl ? [new x509.CRLDistributionPointsExtension(o.crl)] : []),
      ...(o.aia ? [new x509.AuthorityInfoAccessExtension({ caIssuers: o.aia })] : []),
    ],
  });
  return certOf(Buffer.from(cert.rawData), 'server');
}

async function crl(ca: Ca, o: { revoked?: Cert; reason?: x509.X509CrlReason; issuer?: string; thisUpdate?: Date; nextUpdate?: Date } = {}): Promise<Buffer> {
  const thisUpdate = o.thisUpdate ?? new Date(Date.now() - 60_000);
  const made = await x509.X509CrlGenerator.create({
    issuer: o.issuer ?? ca.intermediate.parsed.subject,
    thisUpdate,
    nextUpdate: o.nextUpdate ?? new Date(thisUpdate.getTime() + 24 * HOUR),
    entries: o.revoked ? [{ serialNumber: o.revoked.parsed.serialNumber, revocationDate: new Date(Date.now() - 30_000), ...(o.reason !== undefined ? { reason: o.reason } : {}) }] : [],
    signingKey: ca.key,
    signingAlgorithm: ALG,
  });
  return Buffer.from(made.rawData);
}

describe('inspect: path, CRL and renewal checks', () => {
  let ours: Ca;
  let other: Ca;
  let server: Server;
  let base: string;
  const routes = new Map<string, Buffer | string>();

  before(async () => {
    const [a, b] = await Promise.all([createTestPki('p256'), createTestPki('p256')]);
    [ours, other] = await Promise.all([loadCa(a), loadCa(b)]);
    assert.equal(ours.intermediate.parsed.subject, other.intermediate.parsed.subject, 'the two CAs share their names');
    server = createServer((req, res) => {
      const body = routes.get(req.url ?? '');
      res.statusCode = body === undefined ? 404 : 200;
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    routes.set('/intermediate.der', ours.intermediate.der);
  });
  after(() => new Promise((r) => server?.close(r)));

  const path = (leaf: Cert, carried: Cert[], roots: Cert[], untrusted: Cert[] = []) => buildPath({ leaf, carried, untrusted, roots, timeoutMs: 5000 });

  it('trusted; an untrusted root; a missing intermediate; no root at all', async () => {
    const leaf = await mint(ours);
    const trusted = await path(leaf, [ours.intermediate], [ours.root]);
    assert.equal(trusted.status, 'trusted', trusted.detail);
    assert.deepEqual(trusted.path.map((c) => c.source), ['server', 'server', 'root']);
    const foreign = await path(leaf, [ours.intermediate], [other.root]);
    assert.equal(foreign.status, 'untrustedRoot', foreign.detail);
    assert.equal(foreign.missingIssuer, undefined, 'not a missing intermediate');
    const alone = await path(leaf, [], [ours.root]);
    assert.equal(alone.status, 'incomplete', alone.detail);
    assert.equal(alone.missingIssuer, ours.intermediate.parsed.subject);
    const unrooted = await path(leaf, [ours.intermediate], []);
    assert.deepEqual([unrooted.status, unrooted.missingIssuer], ['noRoot', undefined]);
    const bare = await path(leaf, [], []);
    assert.deepEqual([bare.status, bare.missingIssuer], ['noRoot', ours.intermediate.parsed.subject]);
  });

  it('finds a missing intermediate through AIA or --untrusted, and says so', async () => {
    const viaAia = await path(await mint(ours, { aia: `${base}/intermediate.der` }), [], [ours.root]);
    assert.equal(viaAia.status, 'trusted', viaAia.detail);
    assert.deepEqual(viaAia.notCarried, [{ subject: ours.intermediate.parsed.subject, source: 'aia', url: `${base}/intermediate.der` }]);
    const deadAia = await path(await mint(ours, { aia: `${base}/gone.der` }), [], [ours.root]);
    assert.equal(deadAia.status, 'incomplete');
    assert.deepEqual(deadAia.aiaErrors, [`AIA ${base}/gone.der: HTTP 404`]);
    const untrusted = await path(await mint(ours), [], [ours.root], [{ ...ours.intermediate, source: 'untrusted' }]);
    assert.equal(untrusted.status, 'trusted');
    assert.deepEqual(untrusted.notCarried.map((n) => n.source), ['untrusted']);
  });

  it('an intermediate with the right name but another key is a bad signature', async () => {
    const leaf = await mint(other, { akid: false });
    const r = await path(leaf, [ours.intermediate], [ours.root]);
    assert.equal(r.status, 'badSignature', r.detail);
  });

  it('reads the CRL: good, revoked with its reason, in PEM, from the second distribution point', async () => {
    const leaf = await mint(ours);
    routes.set('/empty.crl', await crl(ours));
    routes.set('/revoked.crl', await crl(ours, { revoked: leaf, reason: x509.X509CrlReason.keyCompromise }));
    routes.set('/unspecified.crl', await crl(ours, { revoked: leaf }));
    routes.set('/revoked.pem', toPem(routes.get('/revoked.crl') as Buffer, 'X509 CRL'));
    const check = (urls: string[], issuer: Cert | undefined = ours.intermediate) => checkCrl(leaf, urls.map((u) => `${base}${u}`), issuer, new Date(), 5000, new Map());
    const withoutIssuer = await checkCrl(leaf, [`${base}/revoked.crl`], undefined, new Date(), 5000, new Map());
    const good = await check(['/empty.crl']);
    assert.equal(good.status, 'good', good.detail);
    const revoked = await check(['/revoked.crl']);
    assert.deepEqual([revoked.status, revoked.reason], ['revoked', 'keyCompromise']);
    assert.deepEqual([(await check(['/unspecified.crl'])).reason, (await check(['/revoked.pem'])).status], ['unspecified', 'revoked']);
    const second = await check(['/missing.crl', '/revoked.crl']);
    assert.deepEqual([second.status, second.url], ['revoked', `${base}/revoked.crl`]);
    assert.deepEqual([(await check([])).status, withoutIssuer.status], ['noCrl', 'unknown'], 'without its issuer a CRL proves nothing');
  });

  it('a CRL signed by another key, of another issuer, unreachable or stale is no answer (a stale one that lists the serial still is)', async () => {
    const leaf = await mint(ours);
    routes.set('/forged.crl', await crl(other, { revoked: leaf, reason: x509.X509CrlReason.keyCompromise }));
    routes.set('/other-issuer.crl', await crl(ours, { revoked: leaf, issuer: 'CN=someone else' }));
    const old = new Date(Date.now() - 3 * 24 * HOUR);
    routes.set('/stale.crl', await crl(ours, { thisUpdate: old, nextUpdate: new Date(old.getTime() + HOUR) }));
    routes.set('/stale-revoked.crl', await crl(ours, { revoked: leaf, thisUpdate: old, nextUpdate: new Date(old.getTime() + HOUR) }));
    const check = (u: string) => checkCrl(leaf, [`${base}${u}`], ours.intermediate, new Date(), 5000, new Map());
    const forged = await check('/forged.crl');
    assert.equal(forged.status, 'unknown');
    assert.match(forged.detail, /signature does not verify/);
    assert.match((await check('/other-issuer.crl')).detail, /^the CRL's issuer is CN=someone else/);
    assert.equal((await check('/nothing.crl')).detail, `the CRL could not be fetched: ${base}/nothing.crl: HTTP 404`);
    const stale = await check('/stale.crl');
    assert.deepEqual([stale.status, /stale/.test(stale.detail)], ['unknown', true]);
    assert.equal((await check('/stale-revoked.crl')).status, 'revoked');
  });

  it('a file: clean, then late in its lifetime, then expired, by the injected clock; a revoked one from its CRL', async () => {
    const notBefore = new Date(Date.now() - HOUR);
    const leaf = await mint(ours, { notBefore, notAfter: new Date(notBefore.getTime() + 3 * HOUR) });
    const run = (cert: Cert, at: number) =>
      inspect({ target: { kind: 'file', file: 'leaf.pem' }, fileCertificates: [cert, ours.intermediate], servername: undefined, alpn: [], roots: [ours.root], rootFile: 'root.pem', untrusted: [], ca: NO_CA, timeoutMs: 5000, now: () => new Date(notBefore.getTime() + at) });
    const codes = async (cert: Cert, at: number) => (await run(cert, at)).warnings.map((w) => w.code);
    assert.deepEqual(await codes(leaf, HOUR), []);
    assert.deepEqual(await codes(leaf, 2 * HOUR + 60_000), ['lateInLifetime']);
    assert.deepEqual(await codes(leaf, 3 * HOUR + 1000), ['expired']);
    const revokedLeaf = await mint(ours, { crl: [`${base}/file-revoked.crl`] });
    routes.set('/file-revoked.crl', await crl(ours, { revoked: revokedLeaf, reason: x509.X509CrlReason.superseded }));
    const report = await run(revokedLeaf, HOUR);
    assert.deepEqual(report.warnings.map((w) => w.code), ['revoked']);
    assert.equal(report.certificates[0]!.revocation?.reason, 'superseded');
    assert.equal(report.certificates[0]!.renewal?.status, 'notAsked');
  });
});
