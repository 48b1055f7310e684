/**
 * Issuance, happy cases: every accepted CSR key type under every intermediate key type, each
 * profile field read back by openssl and node's X509Certificate, not by the code that wrote it.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { startTestApp, workload, type TestApp } from '../setup/app.js';
import { createKeyAndCsr, csrFor, opensslCsr, type ClientKeyType } from '../setup/csr.js';
import { verifyChain, x509Text } from '../setup/openssl.js';
import { createTestPki } from '../setup/pki.js';
import { createTestDatabase } from '../setup/database.js';

const CA_KEYS = ['p256', 'p384', 'rsa', 'ed25519'] as const;
const LEAF_KEYS: ClientKeyType[] = ['p256', 'p384', 'rsa', 'ed25519'];
const SIGNATURE_NAME = { p256: 'ecdsa-with-SHA256', p384: 'ecdsa-with-SHA384', rsa: 'sha256WithRSAEncryption', ed25519: 'ED25519' } as const;

describe('issuance for every key type under every intermediate', () => {
  const database = createTestDatabase();
  after(async () => (await database).drop());

  for (const caKey of CA_KEYS) {
    describe(`${caKey} intermediate`, () => {
      let app: TestApp;
      before(async () => {
        app = await startTestApp({ pki: await createTestPki(caKey), database: await database });
      });
      after(() => app.stop());

      for (const leafKey of LEAF_KEYS) {
        it(`issues for a ${leafKey} CSR and openssl verifies the chain`, async () => {
          const csr = await csrFor({ dns: ['api.payments.svc'], uri: [workload('payments', 'api')] }, leafKey);
          const res = await app.issue(workload('payments', 'api'), { csr, ttl: '1h' });
          assert.equal(res.status, 201, await res.clone().text());
          const body = (await res.json()) as { serial: string; certificate: string; chain: string[]; notBefore: string; notAfter: string; identity: string };
          assert.equal(res.headers.get('location'), `/v1/certificates/${body.serial}`);
          assert.equal(body.identity, workload('payments', 'api'));
          assert.equal(body.chain.length, 1, 'chain holds the intermediate, never the root');
          const rootPem = await (await fetch(`${app.public}/v1/ca/root.pem`)).text();
          assert.ok(!body.chain.includes(rootPem));
          const v = verifyChain(body.certificate, rootPem, body.chain.join(''), 'sslserver');
          assert.ok(v.ok, v.output);
          assert.ok(verifyChain(body.certificate, rootPem, body.chain.join(''), 'sslclient').ok);

          const text = x509Text(body.certificate);
          assert.match(text, new RegExp(`Signature Algorithm: ${SIGNATURE_NAME[caKey]}`, 'i'));
          assert.match(text, /Basic Constraints: critical\s+CA:FALSE/);
          const ku = leafKey === 'rsa' ? /Key Usage: critical\s+Digital Signature, Key Encipherment\n/ : /Key Usage: critical\s+Digital Signature\n/;
          assert.match(text, ku);
          assert.match(text, /Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/);
          assert.match(text, /Subject: CN ?= ?api\.payments\.svc/);
          // The leaf names its own issuer's CRL and certificate, by key id (the intermediate's SKI).
          const kid = /X509v3 Subject Key Identifier:\s+([0-9A-F:]+)/.exec(x509Text(body.chain[0]!))![1]!.replaceAll(':', '').toLowerCase();
          assert.match(text, new RegExp(`CRL Distribution Points:\\s+Full Name:\\s+URI:http://ca\\.test:8080/v1/crl/${kid}\\n`));
          assert.match(text, new RegExp(`CA Issuers - URI:http://ca\\.test:8080/v1/ca/issuers/${kid}\\.der\\n`));

          const leaf = new X509Certificate(body.certificate);
          const intermediate = new X509Certificate(body.chain[0]!);
          assert.ok(leaf.checkIssued(intermediate));
          assert.ok(leaf.verify(intermediate.publicKey));
          assert.equal(leaf.subjectAltName, `DNS:api.payments.svc, URI:${workload('payments', 'api')}`);
          assert.equal(leaf.serialNumber.toLowerCase(), body.serial);
          assert.ok(BigInt(`0x${body.serial}`) >= 2n ** 126n || body.serial.length >= 32, 'serial carries enough random bits');
          assert.equal(new Date(leaf.validFrom).toISOString(), body.notBefore.replace('Z', '.000Z'));
          assert.equal(new Date(body.notAfter).getTime() - new Date(body.notBefore).getTime(), 3600_000);
          const aki = /Authority Key Identifier:\s+(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1];
          const intermediateSki = /Subject Key Identifier:\s+([0-9A-F:]+)/.exec(x509Text(body.chain[0]!))?.[1];
          assert.ok(aki && aki === intermediateSki, `AKI ${aki} = intermediate SKI ${intermediateSki}`);
        });
      }
    });
  }
});

describe('issuance answers and records', () => {
  let app: TestApp;
  before(async () => {
    app = await startTestApp();
  });
  after(() => app.stop());

  it('returns the PEM chain with Accept: application/pem-certificate-chain', async () => {
    const csr = await csrFor({ dns: ['web.shop.svc'] });
    const res = await app.issue(workload('shop', 'web'), { csr }, { Accept: 'application/pem-certificate-chain' });
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('content-type'), 'application/pem-certificate-chain');
    const pem = await res.text();
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----/g) ?? [];
    assert.equal(blocks.length, 2);
    const leaf = new X509Certificate(pem.slice(0, pem.indexOf('-----END CERTIFICATE-----') + 25));
    assert.equal(leaf.subject, 'CN=web.shop.svc');
  });

  it('defaults the ttl to 24h, caps it at the policy maxTtl, and backdates 60 s', async () => {
    const csr = await csrFor({ dns: ['web.shop.svc'] });
    const before = Date.now();
    const r1 = (await (await app.issue(workload('shop', 'web'), { csr })).json()) as { notBefore: string; notAfter: string };
    const nb = new Date(r1.notBefore).getTime();
    assert.equal(new Date(r1.notAfter).getTime() - nb, 24 * 3600_000);
    assert.ok(nb <= before - 59_000 && nb >= before - 62_000, `notBefore ${r1.notBefore} is now − 60 s`);
    const r2 = (await (await app.issue(workload('shop', 'web'), { csr, ttl: 7 * 86400 })).json()) as { notBefore: string; notAfter: string };
    assert.equal(new Date(r2.notAfter).getTime() - new Date(r2.notBefore).getTime(), 48 * 3600_000, 'policy maxTtl 48h');
  });

  it('writes an empty subject and a critical SAN when no DNS name fits in a CN', async () => {
    const csr = await csrFor({ uri: [workload('shop', 'web')], ip: ['10.1.2.3'] });
    const res = await app.issue(workload('shop', 'web'), { csr });
    assert.equal(res.status, 201, await res.clone().text());
    const { certificate } = (await res.json()) as { certificate: string };
    const text = x509Text(certificate);
    assert.match(text, /Subject: *\n/);
    assert.match(text, /Subject Alternative Name: critical\s+IP Address:10\.1\.2\.3, URI:spiffe:\/\/example\.org\/ns\/shop\/sa\/web/);
  });

  it('accepts an openssl-made RSA 3072 CSR with IPv6, email and several names', async () => {
    const { csrPem } = opensslCsr(['-newkey', 'rsa:3072'], 'DNS:web.shop.svc,DNS:web.shop.svc.cluster.local,IP:fd00::10,email:web@shop.example.org', '/CN=ignored/O=Ignored');
    const res = await app.issue(workload('shop', 'web'), { csr: csrPem });
    assert.equal(res.status, 201, await res.clone().text());
    const leaf = new X509Certificate(((await res.json()) as { certificate: string }).certificate);
    assert.equal(leaf.subject, 'CN=web.shop.svc', 'the CSR subject is never copied');
    assert.equal(leaf.subjectAltName, 'DNS:web.shop.svc, DNS:web.shop.svc.cluster.local, IP Address:FD00:0:0:0:0:0:0:10, email:web@shop.example.org');
  });

  it('never copies CSR extensions other than SAN', async () => {
    const { csrPem } = opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'DNS:web.shop.svc');
    // openssl req adds no CA flag by default; ask for one explicitly in a second CSR.
    const { csrPem: caCsr } = opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=keyCertSign'], 'DNS:web.shop.svc');
    for (const csr of [csrPem, caCsr]) {
      const res = await app.issue(workload('shop', 'web'), { csr });
      assert.equal(res.status, 201);
      const text = x509Text(((await res.json()) as { certificate: string }).certificate);
      assert.match(text, /CA:FALSE/);
      assert.doesNotMatch(text, /Certificate Sign/);
    }
  });

  it('GET /v1/certificates/{serial} returns the record to its owner and to admins, with upper case and colons', async () => {
    const csr = await csrFor({ dns: ['web.shop.svc'] });
    const issued = (await (await app.issue(workload('shop', 'web'), { csr })).json()) as { serial: string; certificate: string };
    const get = async (sub: string, serial = issued.serial) =>
      fetch(`${app.api}/v1/certificates/${serial}`, { headers: { Authorization: `Bearer ${await app.token(sub)}` } });
    const own = await get(workload('shop', 'web'));
    assert.equal(own.status, 200);
    const record = (await own.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(record).sort(), ['certificate', 'identity', 'notAfter', 'notBefore', 'renewedFrom', 'revocationReason', 'revokedAt', 'sans', 'serial', 'status'].sort());
    assert.equal(record.status, 'valid');
    assert.equal(record.revokedAt, null);
    assert.equal(record.revocationReason, null);
    assert.deepEqual(record.sans, { dns: ['web.shop.svc'], ip: [], uri: [], email: [] });
    assert.equal(record.certificate, issued.certificate);
    const colons = issued.serial.toUpperCase().match(/../g)!.join(':');
    assert.equal((await get(workload('shop', 'web'), colons)).status, 200);
    assert.equal((await get('spiffe://example.org/admin')).status, 200);
    const other = await get(workload('shop', 'other'));
    assert.equal(other.status, 403);
    assert.equal(((await other.json()) as { type: string }).type, 'urn:service-ca:error:forbidden');
    assert.equal((await get(workload('shop', 'web'), '00'.repeat(20))).status, 404);
  });

  it('serves the CA certificates on both listeners', async () => {
    for (const base of [app.api, app.public]) {
      const root = await fetch(`${base}/v1/ca/root.pem`);
      assert.equal(root.headers.get('content-type'), 'application/x-pem-file');
      const rootCert = new X509Certificate(await root.text());
      assert.ok(rootCert.ca);
      const chain = await (await fetch(`${base}/v1/ca/chain.pem`)).text();
      assert.equal(chain.match(/BEGIN CERTIFICATE/g)?.length, 2);
      const der = await fetch(`${base}/v1/ca/intermediate.der`);
      assert.equal(der.headers.get('content-type'), 'application/pkix-cert');
      const intermediate = new X509Certificate(Buffer.from(await der.arrayBuffer()));
      assert.ok(intermediate.checkIssued(rootCert));
    }
    assert.equal((await fetch(`${app.public}/healthz`)).status, 200);
    assert.equal((await fetch(`${app.public}/readyz`)).status, 200);
  });

  it('keeps authenticated endpoints off the public listener', async () => {
    const csr = await csrFor({ dns: ['web.shop.svc'] });
    const res = await fetch(`${app.public}/v1/certificates`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(workload('shop', 'web'))}` },
      body: JSON.stringify({ csr }),
    });
    assert.equal(res.status, 404);
    assert.equal(res.headers.get('content-type'), 'application/problem+json');
  });

  it('uses the client key generator for every key type', async () => {
    for (const t of LEAF_KEYS) {
      const { keyPem, csrPem } = await createKeyAndCsr(t, { dns: ['web.shop.svc'] });
      assert.match(keyPem, /BEGIN PRIVATE KEY/);
      assert.match(csrPem, /BEGIN CERTIFICATE REQUEST/);
    }
  });
});
