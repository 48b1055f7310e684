/**
 * Issuance, error cases: every bad input gets the right 4xx problem document (docs/api.md
 * "Conventions"), never a 5xx and never a certificate, and a refused request writes nothing:
 * the certificates table is counted directly at the end.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { csrFor, opensslCsr } from '../setup/csr.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import {
  csrParts, derToPem, encodeTlv, flipByte, opensslGenpkey, opensslReq, opensslReqAsync, opensslReqForKey, pemToDer, resignCsr,
} from '../setup/crafted.js';
import { assertProblem, countCertificateRows } from '../setup/rejections.js';
import { rsaCsrWithExponent, rsaPrimes, usableExponent, type RsaPrimes } from '../setup/rsa-keys.js';

const WEB = workload('shop', 'web');
const P256 = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'];

describe('POST /v1/certificates refuses bad input with the right problem', () => {
  // The slowest key to make; started now so that it is ready by the time its test runs.
  const rsa8192 = opensslReqAsync({ newkey: ['-newkey', 'rsa:8192'], san: 'DNS:web.shop.svc' });
  rsa8192.catch(() => {});

  let database: TestDatabase;
  let app: TestApp;
  let goodCsr: string;
  let knownGoodSerial: string;
  /** Certificates this file expects to be in the database at the end. */
  let issued = 0;

  const post = async (body: BodyInit | undefined, headers: Record<string, string> = { 'Content-Type': 'application/json' }, sub = WEB) =>
    fetch(`${app.api}/v1/certificates`, { method: 'POST', headers: { Authorization: `Bearer ${await app.token(sub)}`, ...headers }, body });
  const postJson = (value: unknown) => post(JSON.stringify(value));

  before(async () => {
    database = await createTestDatabase();
    app = await startTestApp({ database });
    goodCsr = await csrFor({ dns: ['web.shop.svc'] });
    const res = await app.issue(WEB, { csr: goodCsr, ttl: '1h' });
    assert.equal(res.status, 201, await res.clone().text());
    knownGoodSerial = ((await res.json()) as { serial: string }).serial;
    issued++;
  });
  after(async () => {
    await app?.stop();
    await database?.drop();
  });

  describe('malformed', () => {
    it('answers 400 malformed for a body that is not JSON', async () => {
      for (const body of ['{"csr": ', '{csr: "x"}', "{'csr': 'x'}", '{"csr": "x"} trailing', '\u0000']) {
        await assertProblem(await post(body), 400, 'malformed');
      }
    });

    it('answers 400 malformed for an empty body', async () => {
      await assertProblem(await post(''), 400, 'malformed');
      await assertProblem(await post(undefined), 400, 'malformed');
    });

    it('answers 400 malformed for JSON that is not an object', async () => {
      for (const body of ['null', '[]', '"csr"', '42', 'true']) {
        await assertProblem(await post(body), 400, 'malformed');
      }
    });

    it('answers 400 malformed when csr is missing', async () => {
      await assertProblem(await postJson({}), 400, 'malformed');
      await assertProblem(await postJson({ ttl: '1h' }), 400, 'malformed');
      await assertProblem(await postJson({ CSR: goodCsr }), 400, 'malformed');
    });

    it('answers 400 malformed when csr is not a string', async () => {
      for (const csr of [42, null, true, [goodCsr], { pem: goodCsr }]) {
        const body = await assertProblem(await postJson({ csr }), 400, 'malformed');
        assert.match(body.detail, /csr/, 'the detail names the field');
      }
    });

    it('answers 400 malformed for a ttl that is not Ns, Nm, Nh or a positive number of seconds', async () => {
      for (const ttl of ['5 hours', -1, 0, '1y', '', '0s', '-1h', '1h30m', 'h', 1.5, true, '1e3']) {
        await assertProblem(await postJson({ csr: goodCsr, ttl }), 400, 'malformed');
      }
    });

    it('answers 400 malformed for a serial that is not hex in GET /v1/certificates/{serial}', async () => {
      const headers = { Authorization: `Bearer ${await app.token(ADMIN)}` };
      for (const serial of ['not-hex', 'zz', 'abc', '0x0f', 'ab'.repeat(22)]) {
        await assertProblem(await fetch(`${app.api}/v1/certificates/${serial}`, { headers }), 400, 'malformed');
      }
    });
  });

  describe('badCSR', () => {
    it('refuses text that holds no CSR', async () => {
      const rootPem = await (await fetch(`${app.public}/v1/ca/root.pem`)).text();
      const garbage = [
        'hello',
        '-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all!!\n-----END CERTIFICATE REQUEST-----\n',
        derToPem(Buffer.from('this is not DER at all, only text'.repeat(4))),
        derToPem(Buffer.of(0x30, 0x00)),
        rootPem,
        goodCsr.replace(/-----END CERTIFICATE REQUEST-----\s*$/, ''),
      ];
      for (const csr of garbage) await assertProblem(await postJson({ csr }), 400, 'badCSR');
    });

    it('refuses two CSR blocks', async () => {
      const other = await csrFor({ dns: ['web.shop.svc'] });
      await assertProblem(await postJson({ csr: goodCsr + goodCsr }), 400, 'badCSR');
      await assertProblem(await postJson({ csr: `${goodCsr}\n${other}` }), 400, 'badCSR');
    });

    it('refuses truncated DER and DER with trailing octets', async () => {
      const der = pemToDer(goodCsr);
      for (const cut of [der.subarray(0, der.length - 1), der.subarray(0, der.length - 20), der.subarray(0, 40), der.subarray(0, 2)]) {
        await assertProblem(await postJson({ csr: derToPem(cut) }), 400, 'badCSR');
      }
      await assertProblem(await postJson({ csr: derToPem(Buffer.concat([der, Buffer.of(0, 0)])) }), 400, 'badCSR');
    });

    it('refuses a CSR whose signature value was tampered with', async () => {
      const rsa = opensslReq({ newkey: ['-newkey', 'rsa:2048'], san: 'DNS:web.shop.svc' }).csrPem;
      const ed = opensslReq({ newkey: ['-newkey', 'ed25519'], san: 'DNS:web.shop.svc' }).csrPem;
      for (const pem of [goodCsr, rsa, ed]) {
        const der = pemToDer(pem);
        const { sig } = csrParts(der);
        // The last octet of the signature: for ECDSA the low octet of s, so the DER stays well formed.
        const res = await postJson({ csr: derToPem(flipByte(der, sig.end - 1)) });
        await assertProblem(res, 400, 'badCSR');
      }
    });

    it('refuses a CSR whose signed part was changed after signing', async () => {
      // The subject is never copied, so only the signature check can notice this change.
      const { csrPem } = opensslReq({ newkey: P256, san: 'DNS:web.shop.svc', subject: '/CN=tampered' });
      const der = pemToDer(csrPem);
      const at = der.indexOf(Buffer.from('tampered'));
      assert.ok(at > 0 && at < csrParts(der).cri.end, 'the subject is inside the signed part');
      await assertProblem(await postJson({ csr: derToPem(flipByte(der, at, 0x20)) }), 400, 'badCSR');
    });

    it('refuses a correctly signed CSR whose version is not 0', async () => {
      const { csrPem, keyPem } = opensslReq({ newkey: P256, san: 'DNS:web.shop.svc' });
      const der = pemToDer(csrPem);
      const { cri, sigAlg, version } = csrParts(der);
      assert.deepEqual([...der.subarray(version.offset, version.end)], [0x02, 0x01, 0x00]);
      const criDer = der.subarray(cri.offset, cri.end);
      const sigAlgDer = der.subarray(sigAlg.offset, sigAlg.end);
      // Control: re-signing the unchanged request gives an acceptable CSR.
      const control = await postJson({ csr: derToPem(resignCsr(criDer, sigAlgDer, keyPem, 'sha256')) });
      assert.equal(control.status, 201, await control.clone().text());
      issued++;
      for (const v of [1, 2]) {
        const changed = flipByte(criDer, version.start - cri.offset, v);
        await assertProblem(await postJson({ csr: derToPem(resignCsr(changed, sigAlgDer, keyPem, 'sha256')) }), 400, 'badCSR');
      }
    });

    it('refuses a CSR whose signature algorithm does not fit its key', async () => {
      const der = pemToDer(goodCsr);
      const { cri, sig } = csrParts(der);
      const rsaSha256 = Buffer.from('300d06092a864886f70d01010b0500', 'hex');
      const swapped = encodeTlv(0x30, Buffer.concat([der.subarray(cri.offset, cri.end), rsaSha256, der.subarray(sig.offset, sig.end)]));
      await assertProblem(await postJson({ csr: derToPem(swapped) }), 400, 'badCSR');
    });

    it('refuses a CSR with no subjectAltName at all', async () => {
      await assertProblem(await postJson({ csr: opensslCsr(P256, undefined, '/CN=web.shop.svc').csrPem }), 400, 'badCSR');
      await assertProblem(await postJson({ csr: await csrFor({}) }), 400, 'badCSR');
    });

    it('refuses otherName, directoryName and registeredID SANs, alone or beside an allowed name', async () => {
      const dirSection = '[dir_sect]\nCN = web.shop.svc\nO = Shop\n';
      const sans = ['otherName:1.3.6.1.4.1.311.20.2.3;UTF8:web@shop', 'dirName:dir_sect', 'RID:1.2.3.4'];
      for (const san of sans) {
        for (const text of [san, `DNS:web.shop.svc,${san}`]) {
          const { csrPem } = opensslReq({ newkey: P256, san: text, configExtra: dirSection });
          const body = await assertProblem(await postJson({ csr: csrPem }), 400, 'badCSR');
          assert.match(body.detail, /subjectAltName/i, text);
        }
      }
    });

    it('refuses DNS SANs that are not host names', async () => {
      for (const name of ['web_shop.shop.svc', '-web.shop.svc', 'web..shop.svc', 'web shop.svc']) {
        const { csrPem } = opensslReq({ newkey: P256, san: `DNS:${name}` });
        await assertProblem(await postJson({ csr: csrPem }), 400, 'badCSR');
      }
    });
  });

  describe('badPublicKey', () => {
    const cases: [string, () => Promise<string> | string][] = [
      ['RSA 1024', () => opensslReq({ newkey: ['-newkey', 'rsa:1024'], san: 'DNS:web.shop.svc' }).csrPem],
      ['RSA 8192 (above 4096)', async () => (await rsa8192).csrPem],
      ['ECDSA P-521', () => opensslReq({ newkey: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'], san: 'DNS:web.shop.svc' }).csrPem],
      ['ECDSA secp256k1', () => opensslReq({ newkey: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:secp256k1'], san: 'DNS:web.shop.svc' }).csrPem],
      ['RSA 2048 with public exponent 3', () => opensslReqForKey(opensslGenpkey(['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', 'rsa_keygen_pubexp:3']), 'DNS:web.shop.svc')],
      ['Ed448', () => opensslReq({ newkey: ['-newkey', 'ed448'], san: 'DNS:web.shop.svc' }).csrPem],
    ];
    for (const [name, make] of cases) {
      it(`refuses a correctly signed CSR with an ${name} key`, async () => {
        const csr = await make();
        await assertProblem(await postJson({ csr }), 400, 'badPublicKey');
      });
    }

    describe('RSA public exponent: odd, 2^16+1 to 2^256−1 (docs/api.md "Certificate profile", CA/B BR 6.1.6)', () => {
      // Keys built from two primes, so that each odd exponent has its private key and the CSR a
      // valid self-signature (checked with openssl): only the exponent can be the reason.
      const primes = rsaPrimes(2048);
      // openssl req -verify exits 0 either way; its message says which.
      const selfSignatureVerifies = (csr: string) => /verify OK/.test(spawnSync('openssl', ['req', '-verify', '-noout'], { input: csr, encoding: 'utf8' }).stderr);
      const exponentOf = (pem: string) => new X509Certificate(pem).publicKey.asymmetricKeyDetails?.publicExponent;

      const refused: [string, () => { e: bigint; primes: RsaPrimes }, boolean][] = [
        ['an exponent close to its modulus', () => ({ e: usableExponent(primes, primes.n - 2n, -1), primes }), true],
        ['the first usable odd exponent above 2^256−1', () => ({ e: usableExponent(primes, 2n ** 256n + 1n, 1), primes }), true],
        ['exponent 3', () => ({ e: 3n, primes: rsaPrimes(2048, 3n) }), true],
        ['exponent 65535, odd and just below 2^16+1', () => ({ e: usableExponent(primes, 65535n, -1), primes }), true],
        ['an even exponent (no private key can exist; another key signed)', () => ({ e: 2n ** 64n + 2n, primes }), false],
      ];
      for (const [name, key, signed] of refused) {
        it(`refuses a CSR whose RSA key has ${name}`, async () => {
          const { e, primes: ofKey } = key();
          const csr = await rsaCsrWithExponent(ofKey, e, 'web.shop.svc');
          assert.equal(selfSignatureVerifies(csr), signed, 'openssl\'s view of the self-signature');
          const res = await postJson({ csr });
          const problem = await assertProblem(res, 400, 'badPublicKey');
          assert.match(problem.detail, /exponent/, `the detail names the exponent: ${problem.detail}`);
        });
      }

      const accepted: [string, () => bigint][] = [
        ['65537', () => 65537n],
        ['the largest usable odd exponent at most 2^256−1', () => usableExponent(primes, 2n ** 256n - 1n, -1)],
      ];
      for (const [name, exponent] of accepted) {
        it(`issues for an RSA key with exponent ${name}, the key copied unchanged`, async () => {
          const e = exponent();
          const res = await postJson({ csr: await rsaCsrWithExponent(primes, e, 'web.shop.svc'), ttl: '1h' });
          const text = await res.text();
          assert.equal(res.status, 201, text);
          issued++;
          assert.equal(exponentOf((JSON.parse(text) as { certificate: string }).certificate), e);
        });
      }
    });
  });

  describe('size, media type and routes', () => {
    it('answers 413 payloadTooLarge for a body above 64 KiB', async () => {
      const body = JSON.stringify({ csr: goodCsr, pad: 'x'.repeat(70 * 1024) });
      await assertProblem(await post(body), 413, 'payloadTooLarge');
    });

    it('answers 413 for a streamed body above 64 KiB that has no Content-Length', async () => {
      const chunk = new TextEncoder().encode(`{"csr": ${JSON.stringify(goodCsr)}, "pad": "${'x'.repeat(16 * 1024)}`);
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let i = 0; i < 6; i++) controller.enqueue(chunk);
          controller.close();
        },
      });
      const init = {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(WEB)}` },
        body: stream,
        duplex: 'half',
      } as RequestInit;
      const res = await fetch(`${app.api}/v1/certificates`, init);
      await assertProblem(res, 413, 'payloadTooLarge');
    });

    it('accepts a body of exactly 64 KiB and refuses one octet more', async () => {
      const exact = (size: number) => {
        const head = `{"csr": ${JSON.stringify(goodCsr)}, "ttl": "1h"`;
        return `${head}${' '.repeat(size - head.length - 1)}}`;
      };
      assert.equal(Buffer.byteLength(exact(65536)), 65536);
      const ok = await post(exact(65536));
      assert.equal(ok.status, 201, await ok.clone().text());
      issued++;
      await assertProblem(await post(exact(65537)), 413, 'payloadTooLarge');
    });

    it('answers 415 unsupportedMediaType for a body that is not application/json', async () => {
      const body = JSON.stringify({ csr: goodCsr });
      for (const type of ['text/plain', 'text/plain; charset=utf-8', 'application/x-www-form-urlencoded', 'application/jsonp']) {
        await assertProblem(await post(body, { 'Content-Type': type }), 415, 'unsupportedMediaType');
      }
      // No Content-Type at all (a byte body makes fetch send none).
      await assertProblem(await post(new TextEncoder().encode(body), {}), 415, 'unsupportedMediaType');
    });

    it('answers 404 notFound problems for unknown routes on both listeners', async () => {
      const token = await app.token(WEB);
      for (const base of [app.api, app.public]) {
        for (const [method, path] of [['GET', '/v1/nope'], ['POST', '/v1/certificate'], ['GET', '/v1/certificates/abcd/extra'], ['GET', '/']]) {
          const res = await fetch(`${base}${path}`, { method, headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' }, ...(method === 'POST' ? { body: '{}' } : {}) });
          await assertProblem(res, 404, 'notFound');
        }
      }
    });
  });

  describe('nothing was written', () => {
    it('still serves the known-good certificate to an admin', async () => {
      const res = await fetch(`${app.api}/v1/certificates/${knownGoodSerial}`, { headers: { Authorization: `Bearer ${await app.token(ADMIN)}` } });
      assert.equal(res.status, 200);
      const record = (await res.json()) as { serial: string; status: string };
      assert.equal(record.serial, knownGoodSerial);
      assert.equal(record.status, 'valid');
    });

    it('holds exactly the certificates of the accepted requests', async () => {
      await app.stop(); // PGlite serves one process at a time
      assert.equal(await countCertificateRows(database), issued);
    });
  });
});
