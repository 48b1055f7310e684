/**
 * The intermediate's key in a PKCS#11 token (docs/hsm.md; docs/api.md "Several issuers"): the real
 * app with `ca.key` a PKCS#11 URI of a key generated in a SoftHSM2 token (sensitive, not
 * extractable) issues, renews and revokes, and its certificates and CRL verify with openssl. ACME's
 * derived secrets come from the token's HMAC secret (`ca.pkcs11.secret`). When the token goes away,
 * issuance answers 503 with the reason, readiness fails, and nothing is recorded.
 * Skips without SoftHSM2 (Debian's softhsm2) or the optional pkcs11js binding.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { removeAtExit } from '../setup/cleanup.js';
import { opensslCrl } from '../setup/crl-check.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { holderJwt, issueHolder, postRenew } from '../setup/holder.js';
import { verifyChain } from '../setup/openssl.js';
import { assertProblem, revokeOk } from '../setup/revoking.js';
import { parse } from 'yaml';
import { runCli } from '../setup/cli-run.js';
import { createTestPki } from '../setup/pki.js';
import { createSoftHsmToken, softhsmMissing, type SoftHsmToken } from '../setup/softhsm.js';

const OWNER = workload('shop', 'web');
const NAMES = { dns: ['web.shop.svc'] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('the intermediate key in a PKCS#11 token (SoftHSM2)', { skip: softhsmMissing() }, () => {
  let token: SoftHsmToken;
  let app: TestApp;
  let rootPem: string;
  let intermediatePem: string;

  before(async () => {
    token = await createSoftHsmToken();
    // The operator's way (docs/hsm.md): the key is made in the token, and `service-ca init
    // --intermediate --public-key` makes its certificate under the existing root.
    const pki = await createTestPki('p256');
    const dir = mkdtempSync(join(tmpdir(), 'service-ca-hsm-'));
    removeAtExit(dir);
    writeFileSync(join(dir, 'token-key.pub.pem'), token.publicKeyPem);
    const made = await runCli([
      'init', '--intermediate', '--dir', join(dir, 'ca'), '--root-certificate', pki.rootCertificate, '--root-key', pki.rootKey,
      '--public-key', join(dir, 'token-key.pub.pem'), '--key-uri', token.keyUri,
    ]);
    assert.equal(made.code, 0, made.describe);
    assert.deepEqual(readdirSync(join(dir, 'ca')).sort(), ['chain.pem', 'intermediate.pem'], 'no key file: the key stays in the token');
    const printed = parse(made.stdout.slice(made.stdout.indexOf('\nca:\n') + 1, made.stdout.indexOf('\nNext steps'))) as { ca: { issuers: { key: string; certificate: string; chain: string }[]; pkcs11: { module: string } } };
    const issuer = printed.ca.issuers.at(-1)!;
    assert.equal(issuer.key, token.keyUri);
    assert.equal(printed.ca.pkcs11.module, token.module);
    // One PEM block each, newline-terminated, so that they concatenate into a chain file.
    rootPem = new X509Certificate(readFileSync(pki.rootCertificate)).toString();
    intermediatePem = new X509Certificate(readFileSync(issuer.certificate)).toString();
    assert.equal(new X509Certificate(intermediatePem).publicKey.export({ type: 'spki', format: 'pem' }), token.publicKeyPem, 'the certificate is for the token\'s key');
    app = await startTestApp({
      config: {
        ca: {
          issuers: [{ certificate: issuer.certificate, key: issuer.key, chain: issuer.chain }],
          pkcs11: { module: token.module, pin: token.pin, secret: token.secretUri },
        },
        acme: { enabled: true },
        crl: { validity: '1h', refresh: '30m', maxDelay: '1s' },
      },
    });
  });

  after(async () => {
    await app?.stop();
    token?.cleanup();
  });

  it('issues, renews and revokes with the token\'s key; openssl verifies the certificates and the CRL', async () => {
    const holder = await issueHolder(app, OWNER, NAMES);
    const v = verifyChain(holder.issued.certificate, rootPem, intermediatePem, 'sslserver');
    assert.ok(v.ok, v.output);
    assert.equal(new X509Certificate(holder.issued.chain[0]!).toString(), new X509Certificate(intermediatePem).toString());

    const { csrPem } = await createKeyAndCsr('p256', NAMES);
    const res = await postRenew(app, await holderJwt({ certificate: holder.issued.certificate, keyPem: holder.keyPem }), { csr: csrPem });
    assert.equal(res.status, 201, await res.clone().text());
    const renewal = (await res.json()) as { serial: string; certificate: string };
    const rv = verifyChain(renewal.certificate, rootPem, intermediatePem, 'sslclient');
    assert.ok(rv.ok, rv.output);

    await revokeOk(app, renewal.serial, ADMIN, 'keyCompromise');
    const deadline = Date.now() + 10_000;
    for (;;) {
      const crl = opensslCrl(Buffer.from(await (await fetch(`${app.public}/v1/crl`)).arrayBuffer()), `${intermediatePem}${rootPem}`);
      if (crl.entries.has(renewal.serial)) {
        assert.ok(crl.verified, crl.output);
        assert.equal(crl.entries.get(renewal.serial)!.reason, 'Key Compromise');
        break;
      }
      assert.ok(Date.now() < deadline, 'the revocation reached the CRL');
      await sleep(100);
    }
  });

  it('keys ACME\'s nonces with a secret derived through the token', async () => {
    const res = await fetch(`${app.api}/acme/new-nonce`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('replay-nonce') ?? '', /^[A-Za-z0-9_-]{20,}$/);
  });

  it('answers 503 with the reason when the token is gone, records nothing, and is not ready', async () => {
    const before = (await app.running.deps.store.listCertificates({ identity: OWNER, limit: 100 }, new Date())).length;
    token.deleteToken();
    const { csrPem } = await createKeyAndCsr('p256', NAMES);
    const res = await app.issue(OWNER, { csr: csrPem });
    const problem = await assertProblem(res, 503, 'unavailable', 'issuance with the token gone');
    assert.match(problem.detail, /PKCS#11/);
    assert.ok(res.headers.get('retry-after'), 'Retry-After is set');
    const after = (await app.running.deps.store.listCertificates({ identity: OWNER, limit: 100 }, new Date())).length;
    assert.equal(after, before, 'no record was written');
    // Readiness signs a probe: it fails once its cached answer (at most a second old) is renewed.
    await sleep(1100);
    assert.equal((await fetch(`${app.public}/readyz`)).status, 503);
  });
});
