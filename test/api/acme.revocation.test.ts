/**
 * ACME revokeCert (RFC 8555 §7.6) and renewalInfo (ARI, RFC 9773) through the real app: a
 * revocation signed by an account of the certificate's identity or by the certificate's own key
 * goes through the REST API's revoker (the record, the CRL openssl reads), one signed by anyone
 * else changes nothing; ARI's window is the REST API's renewal-info window.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ADMIN, defaultPolicies, TRUST_DOMAIN, workload } from '../setup/app.js';
import {
  acmeKeyFromPem, assertAcmeProblem, certIdOf, expectStatus, newAcmeKey, pemBlocks, startAcmeFixture, type AcmeAccount, type AcmeFixture,
} from '../setup/acme-client.js';
import { opensslSelfSigned } from '../setup/crafted.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { waitForCrl } from '../setup/crl-check.js';
import { getRecord, issueFor } from '../setup/revoking.js';

const ONE = workload('free', 'one');
const TWO = workload('free', 'two');
const POLICIES = [...defaultPolicies(), { identity: `spiffe://${TRUST_DOMAIN}/ns/free/sa/{sa}`, dns: ['{sa}.free.test'], maxTtl: '48h', acme: { challenges: 'none' } }];

interface Issued {
  serial: string;
  leaf: string;
  chain: string;
  keyPem: string;
}

describe('ACME revokeCert and renewalInfo', () => {
  let f: AcmeFixture;
  let one: AcmeAccount;
  let two: AcmeAccount;
  let chainPem: string;

  before(async () => {
    f = await startAcmeFixture({ config: { policies: POLICIES } });
    one = await f.account(ONE);
    two = await f.account(TWO);
    chainPem = await (await fetch(`${f.app.public}/v1/ca/chain.pem`)).text();
  });
  after(() => f?.stop());

  /** A certificate for account's identity (sa.free.test), issued through ACME. */
  async function issue(account: AcmeAccount, sa: string): Promise<Issued> {
    const order = expectStatus(await f.client.newOrder(account, [`${sa}.free.test`]), 201);
    const { keyPem, csrPem } = await createKeyAndCsr('p256', { dns: [`${sa}.free.test`] });
    const done = expectStatus(await f.client.finalize(account, order.finalize, csrPem), 200);
    const chain = (await f.client.postAsGet(account, done.certificate)).text;
    return { serial: done.certificate.slice(done.certificate.lastIndexOf('/') + 1), leaf: pemBlocks(chain)[0]!, chain, keyPem };
  }

  describe('revokeCert', () => {
    it('signed by an account of the certificate\'s identity: 200, the record is revoked with the reason, and the CRL lists it', async () => {
      const cert = await issue(one, 'one');
      const res = await f.client.revoke(cert.leaf, one, 1);
      assert.equal(res.status, 200, res.text);
      assert.equal(res.text, '');
      assert.match(res.nonce ?? '', /^[A-Za-z0-9_-]{43}$/);
      const record = await getRecord(f.app, cert.serial);
      assert.equal(record.status, 'revoked');
      assert.equal(record.revocationReason, 'keyCompromise');
      const { crl } = await waitForCrl(f.app.public, chainPem, (c) => c.entries.has(cert.serial));
      assert.ok(crl.verified, crl.output);
      assert.equal(crl.entries.get(cert.serial)?.reason, 'Key Compromise');
      const audit = await fetch(`${f.app.api}/v1/audit?${new URLSearchParams({ action: 'certificate.revoke', serial: cert.serial })}`, { headers: { Authorization: `Bearer ${await f.app.token(ADMIN)}` } });
      const rows = ((await audit.json()) as { items: { actor: string; outcome: string }[] }).items;
      assert.deepEqual(rows.map((r) => [r.actor, r.outcome]), [[ONE, 'success']]);
    });

    it('without a reason it is unspecified; another account of the same identity may revoke', async () => {
      const cert = await issue(one, 'one');
      const sibling = await f.account(ONE);
      expectStatus(await f.client.revoke(cert.leaf, sibling), 200);
      assert.equal((await getRecord(f.app, cert.serial)).revocationReason, 'unspecified');
    });

    it('signed by the certificate\'s own key (jwk): 200, and the certificate is revoked', async () => {
      const cert = await issue(one, 'one');
      const key = await acmeKeyFromPem(cert.keyPem);
      assert.equal(key.alg, 'ES256');
      expectStatus(await f.client.revoke(cert.leaf, key, 4), 200);
      const record = await getRecord(f.app, cert.serial);
      assert.equal(record.status, 'revoked');
      assert.equal(record.revocationReason, 'superseded');
    });

    it('a certificate issued by the REST API is revoked the same way', async () => {
      const rest = await issueFor(f.app, ONE, ['one.free.test']);
      expectStatus(await f.client.revoke(rest.certificate, one, 5), 200);
      assert.equal((await getRecord(f.app, rest.serial)).revocationReason, 'cessationOfOperation');
    });

    it('signed by an account of another identity, or by a key that is neither: 401 unauthorized, and the certificate stays valid', async () => {
      const cert = await issue(one, 'one');
      assertAcmeProblem(await f.client.revoke(cert.leaf, two, 1), 401, 'unauthorized', 'another identity\'s account');
      assertAcmeProblem(await f.client.revoke(cert.leaf, await newAcmeKey()), 401, 'unauthorized', 'a random key');
      assertAcmeProblem(await f.client.revoke(cert.leaf, two.key), 401, 'unauthorized', 'another account\'s key as jwk');
      const other = await issue(two, 'two');
      assertAcmeProblem(await f.client.revoke(cert.leaf, await acmeKeyFromPem(other.keyPem)), 401, 'unauthorized', 'another certificate\'s key');
      assert.equal((await getRecord(f.app, cert.serial)).status, 'valid');
      assert.equal((await getRecord(f.app, other.serial)).status, 'valid');
    });

    it('twice: 409 alreadyRevoked, and the first revocation stands', async () => {
      const cert = await issue(one, 'one');
      expectStatus(await f.client.revoke(cert.leaf, one, 4), 200);
      const first = await getRecord(f.app, cert.serial);
      assertAcmeProblem(await f.client.revoke(cert.leaf, one, 1), 409, 'alreadyRevoked', 'by the account');
      assertAcmeProblem(await f.client.revoke(cert.leaf, await acmeKeyFromPem(cert.keyPem)), 409, 'alreadyRevoked', 'by the key');
      const now = await getRecord(f.app, cert.serial);
      assert.equal(now.revokedAt, first.revokedAt);
      assert.equal(now.revocationReason, 'superseded');
    });

    it('reasons outside RFC 5280\'s used codes, and the admin-only ones, are refused', async () => {
      const cert = await issue(one, 'one');
      for (const reason of [7, 8, 11, -1, 1.5, '1', 'keyCompromise', null, 6]) {
        const res = await f.client.post(f.client.directory.revokeCert, { certificate: new X509Certificate(cert.leaf).raw.toString('base64url'), reason }, { key: one.key, kid: one.url });
        assertAcmeProblem(res, 400, 'badRevocationReason', JSON.stringify(reason));
      }
      for (const reason of [2, 9]) assertAcmeProblem(await f.client.revoke(cert.leaf, one, reason), 403, 'unauthorized', `admin-only reason ${reason}`);
      assert.equal((await getRecord(f.app, cert.serial)).status, 'valid');
    });

    it('a certificate this CA did not issue, or no certificate at all, is refused', async () => {
      const foreign = opensslSelfSigned(['basicConstraints=critical,CA:FALSE', 'subjectAltName=DNS:one.free.test']);
      assertAcmeProblem(await f.client.revoke(foreign.certPem, one), 404, 'malformed', 'a self-signed certificate');
      assertAcmeProblem(await f.client.revoke(foreign.certPem, await acmeKeyFromPem(createPrivateKey(foreign.keyPem).export({ type: 'pkcs8', format: 'pem' }) as string)), 404, 'malformed', 'signed by its key');
      const cert = await issue(one, 'one');
      const der = new X509Certificate(cert.leaf).raw;
      const post = (payload: unknown) => f.client.post(f.client.directory.revokeCert, payload, { key: one.key, kid: one.url });
      assertAcmeProblem(await post({}), 400, 'malformed', 'no certificate');
      assertAcmeProblem(await post(''), 400, 'malformed', 'POST-as-GET');
      assertAcmeProblem(await post({ certificate: der.toString('base64') }), 400, 'malformed', 'base64, not base64url');
      assertAcmeProblem(await post({ certificate: randomBytes(64).toString('base64url') }), 400, 'malformed', 'not DER');
      assertAcmeProblem(await post({ certificate: Buffer.concat([der, Buffer.from([0])]).toString('base64url') }), 404, 'malformed', 'a trailing octet');
      assertAcmeProblem(await post({ certificate: cert.leaf }), 400, 'malformed', 'PEM');
      assert.equal((await getRecord(f.app, cert.serial)).status, 'valid');
    });
  });

  describe('renewalInfo (ARI)', () => {
    it('the window of a certificate is the REST API\'s renewal-info window', async () => {
      const cert = await issue(one, 'one');
      const certId = certIdOf(cert.leaf);
      const res = await fetch(`${f.client.directory.renewalInfo}/${certId}`);
      const text = await res.text();
      assert.equal(res.status, 200, text);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      assert.match(res.headers.get('retry-after') ?? '', /^\d+$/);
      const rest = await fetch(`${f.app.api}/v1/certificates/${cert.serial}/renewal-info`);
      assert.equal(rest.status, 200);
      const ari = JSON.parse(text) as { suggestedWindow: { start: string; end: string } };
      const window = ((await rest.json()) as typeof ari).suggestedWindow;
      assert.deepEqual(Object.keys(ari), ['suggestedWindow']);
      assert.equal(Date.parse(ari.suggestedWindow.start), Date.parse(window.start), `start ${ari.suggestedWindow.start} = ${window.start}`);
      assert.equal(Date.parse(ari.suggestedWindow.end), Date.parse(window.end), `end ${ari.suggestedWindow.end} = ${window.end}`);
      assert.equal(res.headers.get('retry-after'), rest.headers.get('retry-after'));
      const { validFrom, validTo } = new X509Certificate(cert.leaf);
      const nb = Date.parse(validFrom);
      const lifetime = Date.parse(validTo) - nb;
      assert.ok(Math.abs(Date.parse(ari.suggestedWindow.start) - (nb + (lifetime * 2) / 3)) < 1000);
      assert.ok(Math.abs(Date.parse(ari.suggestedWindow.end) - (nb + (lifetime * 5) / 6)) < 1000);
    });

    it('the serial octets are DER\'s: an extra 00 octet before a positive serial names no certificate', async () => {
      const cert = await issue(one, 'one');
      const [aki, serial] = certIdOf(cert.leaf).split('.') as [string, string];
      const octets = Buffer.from(serial, 'base64url');
      assert.ok(octets[0]! < 0x80, 'the CA\'s serials are positive without a sign octet');
      assert.equal((await fetch(`${f.client.directory.renewalInfo}/${aki}.${serial}`)).status, 200);
      const padded = Buffer.concat([Buffer.from([0]), octets]).toString('base64url');
      assertAcmeProblem(await f.client.read(await fetch(`${f.client.directory.renewalInfo}/${aki}.${padded}`)), 404, 'malformed');
    });

    it('a revoked certificate\'s window is open now', async () => {
      const cert = await issue(one, 'one');
      expectStatus(await f.client.revoke(cert.leaf, one), 200);
      const t0 = Date.now();
      const res = await fetch(`${f.client.directory.renewalInfo}/${certIdOf(cert.leaf)}`);
      assert.equal(res.status, 200);
      const { suggestedWindow } = (await res.json()) as { suggestedWindow: { start: string; end: string } };
      assert.ok(Date.parse(suggestedWindow.end) <= t0 + 5000, `end ${suggestedWindow.end} is now`);
    });

    it('unknown certIDs are 404, malformed ones 400, as ACME problems', async () => {
      const cert = await issue(one, 'one');
      const [aki, serial] = certIdOf(cert.leaf).split('.') as [string, string];
      const ask = async (id: string) => f.client.read(await fetch(`${f.client.directory.renewalInfo}/${id}`));
      assertAcmeProblem(await ask(`${aki}.${randomBytes(20).toString('base64url')}`), 404, 'malformed', 'an unknown serial');
      assertAcmeProblem(await ask(`${randomBytes(20).toString('base64url')}.${serial}`), 404, 'malformed', 'another CA\'s key identifier');
      for (const id of ['nodot', `${aki}.`, `.${serial}`, `${aki}.${serial}.x`, `${aki}.${'A'.repeat(40)}`, `${aki}.a+b`, `${aki}.${serial}=`]) {
        assertAcmeProblem(await ask(encodeURIComponent(id)), 400, 'malformed', id);
      }
    });
  });
});
