/**
 * Loading the issuing CA (src/signer/authority.ts, src/signer/signer.ts): start-up is refused,
 * with a message that names the configuration key, for every CA that cannot sign correctly
 * (RFC 5280 §4.2.1.3 keyUsage, §4.2.1.9 basicConstraints, §4.1.2.5 validity, §6 path), and a
 * key passphrase never appears in any message.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { fixedClock, systemClock } from '../../src/clock.js';
import { CaError } from '../../src/errors.js';
import { loadAuthority, type AuthorityFiles } from '../../src/signer/authority.js';
import { createAuthority, createIntermediate, type IntermediateRollover } from '../../src/signer/bootstrap.js';
import { createSigner, createSigners } from '../../src/signer/signer.js';
import type { CaIssuerSettings } from '../../src/config.js';
import { opensslGenpkey, opensslSelfSigned } from '../setup/crafted.js';
import { createTestPki, type TestPki } from '../setup/pki.js';

const DAY = 86_400_000;
const PASSPHRASE = 'pass-phrase-that-must-never-leak-7f3a';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'service-ca-authority-'));
  dirs.push(d);
  return d;
}
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** Writes the named PEM texts to a fresh folder; returns their paths. */
function files(contents: Record<string, string>): Record<string, string> {
  const dir = tempDir();
  return Object.fromEntries(Object.entries(contents).map(([name, text]) => {
    const p = join(dir, name);
    writeFileSync(p, text);
    return [name, p];
  }));
}

const pkiFiles = (pki: TestPki, extra: Partial<AuthorityFiles> = {}): AuthorityFiles => ({
  certificate: pki.intermediateCertificate,
  key: pki.intermediateKey,
  chain: pki.rootCertificate,
  ...extra,
});

/** Asserts that loading refuses with a CaError whose detail starts with the config key. */
function assertRefused(load: () => unknown, key: string, problem: RegExp): CaError {
  let caught: unknown;
  try {
    load();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof CaError, `refused with a CaError, got ${String(caught)}`);
  assert.ok(caught.detail.startsWith(`${key}: `), `the message names ${key}: ${caught.detail}`);
  assert.match(caught.detail, problem);
  return caught;
}

describe('loading the CA', () => {
  let pki: TestPki;
  let other: TestPki;
  before(async () => {
    [pki, other] = await Promise.all([createTestPki('p256'), createTestPki('p256')]);
    dirs.push(pki.dir, other.dir);
  });

  it('loads a well-formed CA (the control for every refusal below)', () => {
    const loaded = loadAuthority(pkiFiles(pki), new Date());
    assert.equal(loaded.chainDer.length, 1);
    assert.deepEqual(loaded.rootDer, loaded.chainDer[0]);
    assert.ok(loaded.notBefore.getTime() < Date.now() && loaded.notAfter.getTime() > Date.now());
    const signer = createSigner({ ca: pkiFiles(pki), publicUrl: 'http://ca.test' }, systemClock);
    assert.equal(signer.algorithm, 'ecdsa-with-SHA256');
    assert.ok(signer.selfTest());
  });

  it('refuses a key that does not match the certificate (ca.key)', () => {
    assertRefused(() => loadAuthority(pkiFiles(pki, { key: other.intermediateKey }), new Date()), 'ca.key', /does not match/);
    assertRefused(() => loadAuthority(pkiFiles(pki, { key: pki.rootKey }), new Date()), 'ca.key', /does not match/);
    const rsaKey = files({ 'rsa.key': opensslGenpkey(['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048']) })['rsa.key']!;
    assertRefused(() => loadAuthority(pkiFiles(pki, { key: rsaKey }), new Date()), 'ca.key', /does not match/);
    assertRefused(() => createSigner({ ca: pkiFiles(pki, { key: other.intermediateKey }), publicUrl: 'http://ca.test' }, systemClock), 'ca.key', /does not match/);
  });

  it('refuses a key file that is not a private key, and files that cannot be read', () => {
    assertRefused(() => loadAuthority(pkiFiles(pki, { key: pki.intermediateCertificate }), new Date()), 'ca.key', /.+/);
    assertRefused(() => loadAuthority(pkiFiles(pki, { key: join(pki.dir, 'missing.key') }), new Date()), 'ca.key', /cannot read/);
    assertRefused(() => loadAuthority(pkiFiles(pki, { certificate: join(pki.dir, 'missing.pem') }), new Date()), 'ca.certificate', /cannot read/);
    assertRefused(() => loadAuthority(pkiFiles(pki, { certificate: pki.intermediateKey }), new Date()), 'ca.certificate', /no PEM certificate/);
  });

  describe('CA certificates made by openssl', () => {
    const CA = ['basicConstraints = critical, CA:TRUE', 'subjectKeyIdentifier = hash'];
    const load = (extensions: string[]) => {
      const { certPem, keyPem } = opensslSelfSigned(extensions);
      const f = files({ 'ca.pem': certPem, 'ca.key': keyPem });
      return () => loadAuthority({ certificate: f['ca.pem']!, key: f['ca.key']! }, new Date());
    };

    it('loads a self-signed CA with keyCertSign and cRLSign (the control)', () => {
      const loaded = load([...CA, 'keyUsage = critical, keyCertSign, cRLSign'])();
      assert.equal(loaded.chainDer.length, 0);
      assert.deepEqual(loaded.rootDer, loaded.intermediateDer);
    });

    it('refuses a certificate that is not a CA (ca.certificate)', () => {
      assertRefused(load(['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash']), 'ca.certificate', /not a CA/);
      assertRefused(load(['keyUsage = critical, keyCertSign, cRLSign', 'subjectKeyIdentifier = hash']), 'ca.certificate', /not a CA/);
    });

    it('refuses a CA whose keyUsage lacks keyCertSign or cRLSign, or is absent (ca.certificate)', () => {
      assertRefused(load([...CA, 'keyUsage = critical, cRLSign, digitalSignature']), 'ca.certificate', /keyCertSign/);
      assertRefused(load([...CA, 'keyUsage = critical, keyCertSign, digitalSignature']), 'ca.certificate', /cRLSign/);
      assertRefused(load([...CA, 'keyUsage = critical, digitalSignature']), 'ca.certificate', /keyCertSign/);
      assertRefused(load(CA), 'ca.certificate', /keyUsage/);
    });
  });

  describe('validity', () => {
    it('refuses an expired intermediate (ca.certificate)', async () => {
      const dir = tempDir();
      const old = await createAuthority({ dir, keyType: 'p256', now: new Date(Date.now() - 10 * DAY), intermediateDays: 1 });
      const f = { certificate: old.intermediateCertificate, key: old.intermediateKey, chain: old.rootCertificate };
      assertRefused(() => loadAuthority(f, new Date()), 'ca.certificate', /expired/);
      assertRefused(() => createSigner({ ca: f, publicUrl: 'http://ca.test' }, systemClock), 'ca.certificate', /expired/);
      // The same files were fine while the intermediate was valid.
      assert.ok(loadAuthority(f, new Date(Date.now() - 9.5 * DAY)));
    });

    it('refuses an intermediate that is not valid yet, by the injected clock', () => {
      const clock = fixedClock(new Date(Date.now() - 30 * DAY));
      assertRefused(() => createSigner({ ca: pkiFiles(pki), publicUrl: 'http://ca.test' }, clock), 'ca.certificate', /not valid before/);
      clock.set(new Date(Date.now() + 6 * 365 * DAY));
      assertRefused(() => createSigner({ ca: pkiFiles(pki), publicUrl: 'http://ca.test' }, clock), 'ca.certificate', /expired/);
    });
  });

  describe('encrypted keys', () => {
    let encrypted: TestPki;
    before(async () => {
      encrypted = await createTestPki('p256', { intermediatePassphrase: PASSPHRASE });
      dirs.push(encrypted.dir);
      assert.match(readFileSync(encrypted.intermediateKey, 'utf8'), /BEGIN ENCRYPTED PRIVATE KEY/);
    });

    const assertNoLeak = (err: CaError) => {
      for (const text of [err.message, err.detail, String(err.stack), inspect(err, { depth: 10 }), JSON.stringify(err)]) {
        assert.ok(!text.includes(PASSPHRASE), `the passphrase leaks: ${text}`);
      }
    };

    it('refuses an encrypted key without a passphrase, naming ca.keyPassphrase', () => {
      for (const keyPassphrase of [undefined, '']) {
        const err = assertRefused(() => loadAuthority(pkiFiles(encrypted, { keyPassphrase }), new Date()), 'ca.key', /ca\.keyPassphrase/);
        assertNoLeak(err);
      }
    });

    it('refuses a wrong passphrase without showing either passphrase', () => {
      const wrong = `${PASSPHRASE}-wrong`;
      const err = assertRefused(() => loadAuthority(pkiFiles(encrypted, { keyPassphrase: wrong }), new Date()), 'ca.key', /ca\.keyPassphrase/);
      assertNoLeak(err);
      for (const text of [err.message, inspect(err, { depth: 10 })]) assert.ok(!text.includes(wrong));
    });

    it('refuses a passphrase given for the right key but the wrong certificate', () => {
      const err = assertRefused(() => loadAuthority(pkiFiles(pki, { key: encrypted.intermediateKey, keyPassphrase: PASSPHRASE }), new Date()), 'ca.key', /does not match/);
      assertNoLeak(err);
    });

    it('loads an encrypted key with the right passphrase, and signs with it', () => {
      const loaded = loadAuthority(pkiFiles(encrypted, { keyPassphrase: PASSPHRASE }), new Date());
      assert.equal(loaded.key.asymmetricKeyType, 'ec');
      const signer = createSigner({ ca: pkiFiles(encrypted, { keyPassphrase: PASSPHRASE }), publicUrl: 'http://ca.test' }, systemClock);
      assert.ok(signer.selfTest());
    });
  });

  describe('the chain', () => {
    it('refuses a chain that did not issue the intermediate (ca.chain)', () => {
      assertRefused(() => loadAuthority(pkiFiles(pki, { chain: other.rootCertificate }), new Date()), 'ca.chain', /did not issue/);
      // Another CA's intermediate and root: the right shape, the wrong issuer.
      assertRefused(() => loadAuthority(pkiFiles(pki, { chain: other.chain }), new Date()), 'ca.chain', /did not issue/);
    });

    it('refuses a chain that does not end with a self-signed root (ca.chain)', () => {
      assertRefused(() => loadAuthority(pkiFiles(pki, { chain: undefined }), new Date()), 'ca.chain', /self-signed/);
    });

    it('refuses a chain file without a certificate (ca.chain)', () => {
      const f = files({ 'empty.pem': 'no certificates here\n' });
      assertRefused(() => loadAuthority(pkiFiles(pki, { chain: f['empty.pem'] }), new Date()), 'ca.chain', /no PEM certificate/);
    });

    it('accepts the intermediate and the root in ca.certificate itself', () => {
      const f = files({ 'bundle.pem': readFileSync(pki.chain, 'utf8') });
      const loaded = loadAuthority({ certificate: f['bundle.pem']!, key: pki.intermediateKey }, new Date());
      assert.equal(loaded.chainDer.length, 1);
      assert.deepEqual(loaded.rootDer, loaded.chainDer[0]);
    });
  });
});

describe('loading several issuers (ca.issuers)', () => {
  let pki: TestPki;
  let other: TestPki;
  let b: IntermediateRollover;
  before(async () => {
    [pki, other] = await Promise.all([createTestPki('p256'), createTestPki('p384')]);
    dirs.push(pki.dir, other.dir);
    b = await createIntermediate({ dir: join(tempDir(), 'b'), rootCertificate: pki.rootCertificate, rootKey: pki.rootKey, intermediateDays: 3650, now: new Date() });
  });
  const issuer = (files: AuthorityFiles, n: number, active = false): CaIssuerSettings => ({ ...files, active, where: `ca.issuers.${n}` });
  const ofA = (n: number, active = false) => issuer(pkiFiles(pki), n, active);
  const ofB = (n: number, active = false) => issuer({ certificate: b.intermediateCertificate, key: b.intermediateKey!, chain: b.chain }, n, active);
  const load = (ca: CaIssuerSettings[], clock = systemClock) => createSigners({ ca, publicUrl: 'http://ca.test' }, clock);

  /** Asserts that loading refuses with a CaError whose detail is exactly `detail`. */
  async function refused(ca: CaIssuerSettings[], detail: string): Promise<void> {
    await assert.rejects(load(ca), (err: unknown) => err instanceof CaError && err.detail === detail);
  }

  it('loads both, the active one signing leaves that name their issuer by key id; only it signs certificates', async () => {
    const { signers, skipped } = await load([ofA(0), ofB(1, true)]);
    assert.deepEqual(skipped, []);
    assert.deepEqual(signers.all.map((s) => [s.keyId, s.active]), [[loadAuthority(pkiFiles(pki), new Date()).keyId, false], [b.keyId, true]]);
    assert.equal(signers.active.keyId, b.keyId);
    assert.equal(signers.byKeyId(b.keyId.toUpperCase()), signers.active);
    assert.equal(signers.byKeyId('00'), undefined);
    assert.ok(signers.all.every((s) => s.selfTest()));
    const retiring = signers.all[0]!;
    const spki = new Uint8Array(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }));
    // The control: the active issuer signs the same request.
    assert.equal(signers.active.issueLeaf({ spki, keyType: 'ecdsa-p256', sans: { dns: ['a.test'], ip: [], uri: [], email: [] }, notBefore: new Date(), notAfter: new Date(Date.now() + 60_000), extendedKeyUsage: ['serverAuth'] }).der[0], 0x30);
    assert.throws(
      () => retiring.issueLeaf({ spki, keyType: 'ecdsa-p256', sans: { dns: ['a.test'], ip: [], uri: [], email: [] }, notBefore: new Date(), notAfter: new Date(Date.now() + 60_000), extendedKeyUsage: ['serverAuth'] }),
      (err: unknown) => err instanceof CaError && err.detail === `issuer ${retiring.keyId} is not active: only the active issuer signs certificates`,
    );
    signers.close();
  });

  it('refuses issuers of another root, one listed twice, and a key of another issuer, naming the entry', async () => {
    await refused([ofA(0, true), issuer(pkiFiles(other), 1)], 'ca.issuers.1.chain: ends at another root than the first issuer\'s; every issuer must chain to the same root');
    await refused([ofA(0, true), ofA(1)], `ca.issuers.1.certificate: has the key id ${loadAuthority(pkiFiles(pki), new Date()).keyId} of another issuer (listed twice?)`);
    await refused([ofA(0, true), issuer({ certificate: b.intermediateCertificate, key: pki.intermediateKey, chain: b.chain }, 1)], 'ca.issuers.1.key: the private key does not match ca.issuers.1.certificate');
    await refused([ofA(0, true), issuer({ ...pkiFiles(pki), certificate: join(pki.dir, 'missing.pem') }, 1)], `ca.issuers.1.certificate: cannot read ${join(pki.dir, 'missing.pem')} (ENOENT)`);
  });

  it('leaves out a retiring issuer past its notAfter (its certificates all expired with it), never the active one', async () => {
    // B was made to live to the root's end (10 years), A the usual 5: a day after A's end, only B is valid.
    const aEnd = loadAuthority(pkiFiles(pki), new Date()).notAfter;
    const later = fixedClock(new Date(aEnd.getTime() + DAY));
    const { signers, skipped } = await load([ofA(0), ofB(1, true)], later);
    assert.deepEqual(skipped, [{ keyId: loadAuthority(pkiFiles(pki), new Date()).keyId, where: 'ca.issuers.0', notAfter: aEnd }]);
    assert.deepEqual(signers.all.map((s) => s.keyId), [b.keyId]);
    signers.close();
    await assert.rejects(load([ofA(0, true), ofB(1)], later), (err: unknown) => err instanceof CaError && err.detail === `ca.issuers.0.certificate: expired at ${aEnd.toISOString()}`);
  });
});
