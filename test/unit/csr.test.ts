/**
 * parseCsr (src/x509/csr.ts) on requests made by the openssl command line and by the client's
 * generator: every accepted key type with the right keyType and the exact SubjectPublicKeyInfo,
 * SANs in canonical form (DNS lower-cased, IPv6 per RFC 5952, duplicates removed), and the
 * refusals that belong to the parser itself.
 */
import assert from 'node:assert/strict';
import { createPublicKey } from 'node:crypto';
import { describe, it } from 'node:test';
import { CaError } from '../../src/errors.js';
import { parseCsr } from '../../src/x509/csr.js';
import { csrFor } from '../setup/csr.js';
import { derToPem, opensslReq, pemToDer } from '../setup/crafted.js';

const SAN = 'DNS:web.shop.svc';
const spkiOf = (keyPem: string) => createPublicKey(keyPem).export({ type: 'spki', format: 'der' });

function assertRefused(pem: string, kind: 'badCSR' | 'badPublicKey', detail?: RegExp): void {
  assert.throws(
    () => parseCsr(pem),
    (err: unknown) => err instanceof CaError && err.kind === kind && (!detail || detail.test(err.detail)),
  );
}

describe('parseCsr: accepted keys (openssl req)', () => {
  const cases: [string, string[], string][] = [
    ['RSA 2048', ['-newkey', 'rsa:2048'], 'rsa'],
    ['RSA 3072', ['-newkey', 'rsa:3072'], 'rsa'],
    ['RSA 4096', ['-newkey', 'rsa:4096'], 'rsa'],
    ['RSA 2048, SHA-384', ['-newkey', 'rsa:2048', '-sha384'], 'rsa'],
    ['RSA 2048, SHA-512', ['-newkey', 'rsa:2048', '-sha512'], 'rsa'],
    ['ECDSA P-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'ecdsa-p256'],
    ['ECDSA P-256, SHA-384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-sha384'], 'ecdsa-p256'],
    ['ECDSA P-384', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-sha384'], 'ecdsa-p384'],
    ['ECDSA P-384, SHA-256', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'], 'ecdsa-p384'],
    ['Ed25519', ['-newkey', 'ed25519'], 'ed25519'],
  ];
  for (const [name, newkey, keyType] of cases) {
    it(`reads a ${name} request as ${keyType}, with its exact public key`, () => {
      const { csrPem, keyPem } = opensslReq({ newkey, san: SAN });
      const parsed = parseCsr(csrPem);
      assert.equal(parsed.keyType, keyType);
      assert.deepEqual(Buffer.from(parsed.spki), spkiOf(keyPem));
      assert.deepEqual(parsed.sans, { dns: ['web.shop.svc'], ip: [], uri: [], email: [] });
    });
  }

  it('reads requests made by the client key generator for every key type', async () => {
    const expected = { p256: 'ecdsa-p256', p384: 'ecdsa-p384', rsa: 'rsa', ed25519: 'ed25519' } as const;
    for (const [type, keyType] of Object.entries(expected) as [keyof typeof expected, string][]) {
      const parsed = parseCsr(await csrFor({ dns: ['web.shop.svc'], ip: ['10.0.0.1'] }, type));
      assert.equal(parsed.keyType, keyType);
      assert.deepEqual(parsed.sans, { dns: ['web.shop.svc'], ip: ['10.0.0.1'], uri: [], email: [] });
    }
  });
});

describe('parseCsr: subject alternative names', () => {
  const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];

  it('lower-cases DNS names and removes duplicates, keeping first-seen order', () => {
    const { csrPem } = opensslReq({ newkey: P256, san: 'DNS:Web.Shop.SVC,DNS:api.shop.svc,DNS:web.shop.svc,DNS:WEB.SHOP.SVC,DNS:*.Web.Shop.Svc,DNS:xn--bcher-kva.example' });
    assert.deepEqual(parseCsr(csrPem).sans.dns, ['web.shop.svc', 'api.shop.svc', '*.web.shop.svc', 'xn--bcher-kva.example']);
  });

  it('writes IPv4 as a dotted quad and IPv6 in RFC 5952 form, and removes duplicates', () => {
    const ips: [string, string][] = [
      ['10.0.0.1', '10.0.0.1'],
      ['FD00:0000:0000:0000:0000:0000:0000:0010', 'fd00::10'],
      ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1'],
      ['2001:0db8:0000:0000:0000:ff00:0042:8329', '2001:db8::ff00:42:8329'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['0:0:0:0:0:0:0:1', '::1'],
      ['2001:DB8::', '2001:db8::'],
    ];
    for (const [input, canonical] of ips) {
      const { csrPem } = opensslReq({ newkey: P256, san: `IP:${input}` });
      assert.deepEqual(parseCsr(csrPem).sans.ip, [canonical], input);
    }
    const { csrPem } = opensslReq({ newkey: P256, san: 'IP:fd00::10,IP:10.0.0.1,IP:FD00:0:0:0:0:0:0:10,IP:10.0.0.1,IP:fd00:0::0:10' });
    assert.deepEqual(parseCsr(csrPem).sans.ip, ['fd00::10', '10.0.0.1']);
  });

  it('keeps URIs and emails exactly as written, removing exact duplicates only', () => {
    const { csrPem } = opensslReq({
      newkey: P256,
      san: 'URI:spiffe://example.org/ns/shop/sa/web,URI:spiffe://example.org/ns/shop/sa/web,URI:spiffe://example.org/ns/Shop/sa/web,email:web@shop.example.org,email:web@shop.example.org,email:Web@shop.example.org',
    });
    const { sans } = parseCsr(csrPem);
    assert.deepEqual(sans.uri, ['spiffe://example.org/ns/shop/sa/web', 'spiffe://example.org/ns/Shop/sa/web']);
    assert.deepEqual(sans.email, ['web@shop.example.org', 'Web@shop.example.org']);
  });

  it('reads every kind together', () => {
    const { csrPem } = opensslReq({ newkey: P256, san: 'email:web@shop.example.org,URI:urn:svc:shop:web,IP:fd00::1,DNS:web.shop.svc' });
    assert.deepEqual(parseCsr(csrPem).sans, { dns: ['web.shop.svc'], ip: ['fd00::1'], uri: ['urn:svc:shop:web'], email: ['web@shop.example.org'] });
  });

  it('refuses DNS names that are not host names', () => {
    for (const name of ['web_shop.svc', '-web.shop.svc', 'web-.shop.svc', 'web..shop.svc', 'web.shop.svc.', '*.svc', 'a.*.shop.svc', `${'a'.repeat(64)}.svc`, `${'a.'.repeat(127)}svc`]) {
      assertRefused(opensslReq({ newkey: P256, san: `DNS:${name}` }).csrPem, 'badCSR');
    }
    // Control: the longest label and name that are allowed.
    const longest = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
    assert.equal(longest.length, 253);
    assert.deepEqual(parseCsr(opensslReq({ newkey: P256, san: `DNS:${longest}` }).csrPem).sans.dns, [longest]);
  });

  it('refuses more than 100 names, and no name at all', () => {
    const names = Array.from({ length: 101 }, (_, i) => `DNS:n${i}.shop.svc`);
    assertRefused(opensslReq({ newkey: P256, san: names.join(',') }).csrPem, 'badCSR');
    assert.equal(parseCsr(opensslReq({ newkey: P256, san: names.slice(1).join(',') }).csrPem).sans.dns.length, 100);
    assertRefused(opensslReq({ newkey: P256 }).csrPem, 'badCSR', /subjectAltName/);
  });
});

describe('parseCsr: the PEM wrapping', () => {
  it('accepts the legacy NEW CERTIFICATE REQUEST label and CRLF line ends', () => {
    const { csrPem } = opensslReq({ newkey: ['-newkey', 'ed25519'], san: SAN });
    assert.equal(parseCsr(csrPem.replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST')).keyType, 'ed25519');
    assert.equal(parseCsr(csrPem.replace(/\n/g, '\r\n')).keyType, 'ed25519');
    assert.equal(parseCsr(`some text before\n${csrPem}and after\n`).keyType, 'ed25519');
  });

  it('refuses a certificate, two requests, and a re-wrapped truncated request', () => {
    const { csrPem } = opensslReq({ newkey: ['-newkey', 'ed25519'], san: SAN });
    assertRefused(csrPem.replace(/CERTIFICATE REQUEST/g, 'CERTIFICATE'), 'badCSR');
    assertRefused(csrPem + csrPem, 'badCSR');
    const der = pemToDer(csrPem);
    assertRefused(derToPem(der.subarray(0, der.length - 1)), 'badCSR');
  });
});

describe('parseCsr: refused keys', () => {
  const cases: [string, string[]][] = [
    ['RSA 1024', ['-newkey', 'rsa:1024']],
    ['RSA 2040', ['-newkey', 'rsa:2040']],
    ['ECDSA P-521', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521']],
    ['ECDSA P-224', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-224']],
    ['Ed448', ['-newkey', 'ed448']],
  ];
  for (const [name, newkey] of cases) {
    it(`refuses ${name} as badPublicKey`, () => assertRefused(opensslReq({ newkey, san: SAN }).csrPem, 'badPublicKey'));
  }
});
