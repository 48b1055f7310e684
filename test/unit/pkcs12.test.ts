/**
 * The agent's PKCS#12 encoder (src/cli/pkcs12.ts), read back by independent implementations: the
 * openssl command line (`pkcs12 -info`, the key and certificates it extracts, its PKCS12KDF) and
 * node:tls. For every key type the agent makes: the algorithms OpenSSL reports are the modern
 * profile (PBES2, PBKDF2 with HMAC-SHA-256, AES-256-CBC, a SHA-256 MAC), the key and the
 * certificates come back unchanged, and a wrong passphrase is refused by the MAC.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { PKCS12_ITERATIONS, encodePkcs12, pkcs12Kdf } from '../../src/cli/pkcs12.js';
import { openssl } from '../setup/openssl.js';

const PASSPHRASE = 'correct horse battery staple';
/** Whether two private keys (PEM) are the same key: their public halves are equal. */
const sameKey = (a: string, b: string) => {
  const spki = (pem: string) => createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'der' });
  return Buffer.compare(spki(a), spki(b)) === 0;
};
const ders = (pem: string) => (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((c) => new X509Certificate(c).raw.toString('base64')).sort();

const GENPKEY: Record<string, string[]> = {
  p256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  p384: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  rsa: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
  ed25519: ['-algorithm', 'ED25519'],
};

describe('PKCS#12 encoder', () => {
  let dir: string;
  let issuerPem: string;
  const leaves: Record<string, { keyPem: string; certificatePem: string }> = {};
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'service-ca-pkcs12-'));
    run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'issuer.key', '-out', 'issuer.pem', '-subj', '/CN=Test Intermediate', '-days', '1', '-addext', 'basicConstraints=critical,CA:TRUE']);
    issuerPem = readFileSync(join(dir, 'issuer.pem'), 'utf8');
    for (const [type, args] of Object.entries(GENPKEY)) {
      run(['genpkey', ...args, '-out', `${type}.key`]);
      run(['req', '-new', '-key', `${type}.key`, '-subj', `/CN=${type}.p12.test`, '-out', `${type}.csr`]);
      run(['x509', '-req', '-in', `${type}.csr`, '-CA', 'issuer.pem', '-CAkey', 'issuer.key', '-days', '1', '-out', `${type}.pem`]);
      leaves[type] = { keyPem: readFileSync(join(dir, `${type}.key`), 'utf8'), certificatePem: readFileSync(join(dir, `${type}.pem`), 'utf8') };
    }
    writeFileSync(join(dir, 'pass'), `${PASSPHRASE}\n`);
    writeFileSync(join(dir, 'wrong'), 'not the passphrase\n');
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const type of Object.keys(GENPKEY)) {
    it(`${type}: openssl reports the modern profile and returns the key and both certificates; node:tls loads it`, () => {
      const leaf = leaves[type]!;
      const p12 = encodePkcs12({ ...leaf, chainPem: issuerPem, passphrase: PASSPHRASE });
      const file = join(dir, `${type}.p12`);
      writeFileSync(file, p12);

      const info = openssl(['pkcs12', '-info', '-noout', '-in', file, '-passin', `file:${join(dir, 'pass')}`]);
      assert.equal(info.status, 0, info.stderr);
      const report = info.stdout + info.stderr;
      assert.match(report, new RegExp(`MAC: sha256, Iteration ${PKCS12_ITERATIONS}\\b`));
      assert.match(report, /MAC length: 32, salt length: 16/);
      assert.match(report, new RegExp(`PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC, Iteration ${PKCS12_ITERATIONS}, PRF hmacWithSHA256`));
      assert.match(report, new RegExp(`Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC, Iteration ${PKCS12_ITERATIONS}, PRF hmacWithSHA256`));
      assert.equal(report.split('Certificate bag').length - 1, 2, 'the leaf and the intermediate');

      const key = openssl(['pkcs12', '-in', file, '-passin', `file:${join(dir, 'pass')}`, '-nocerts', '-nodes']);
      assert.equal(key.status, 0, key.stderr);
      assert.ok(sameKey(key.stdout.slice(key.stdout.indexOf('-----BEGIN PRIVATE KEY-----')), leaf.keyPem), 'openssl extracts the same private key');
      const certs = openssl(['pkcs12', '-in', file, '-passin', `file:${join(dir, 'pass')}`, '-nokeys']);
      assert.equal(certs.status, 0, certs.stderr);
      assert.deepEqual(ders(certs.stdout), ders(leaf.certificatePem + issuerPem));
      // The leaf carries the localKeyID that pairs it with the key (the first bag printed is the leaf).
      assert.match(certs.stdout.slice(0, certs.stdout.indexOf('-----BEGIN')), /localKeyID: [0-9A-F ]{59}/);

      assert.doesNotThrow(() => createSecureContext({ pfx: p12, passphrase: PASSPHRASE }));
      assert.throws(() => createSecureContext({ pfx: p12, passphrase: 'not the passphrase' }), /mac verify failure/);
      const wrong = openssl(['pkcs12', '-info', '-noout', '-in', file, '-passin', `file:${join(dir, 'wrong')}`]);
      assert.notEqual(wrong.status, 0);
      assert.match(wrong.stderr + wrong.stdout, /Mac verify error: invalid password\?/);
    });
  }

  it('a passphrase outside ASCII and outside the BMP reads back with openssl', () => {
    const passphrase = 'pässwörd ✓ 𝄞';
    const file = join(dir, 'unicode.p12');
    writeFileSync(file, encodePkcs12({ ...leaves.p256!, chainPem: issuerPem, passphrase }));
    writeFileSync(join(dir, 'unicode-pass'), `${passphrase}\n`);
    const key = openssl(['pkcs12', '-in', file, '-passin', `file:${join(dir, 'unicode-pass')}`, '-nocerts', '-nodes']);
    assert.equal(key.status, 0, key.stderr);
    assert.ok(sameKey(key.stdout.slice(key.stdout.indexOf('-----BEGIN PRIVATE KEY-----')), leaves.p256!.keyPem));
  });

  it('the MAC key derivation equals OpenSSL PKCS12KDF over several output blocks', () => {
    // The KDF takes the password already as a BMPString with its terminator (RFC 7292 B.1).
    const bmp = Buffer.concat([Buffer.from('secret', 'utf16le').swap16(), Buffer.alloc(2)]).toString('hex');
    for (const [id, iterations, length] of [
      [3, 1, 32],
      [1, 5, 80],
      [2, 2048, 16],
    ] as const) {
      const r = openssl(['kdf', '-keylen', String(length), '-kdfopt', 'digest:SHA256', '-kdfopt', `hexpass:${bmp}`, '-kdfopt', 'hexsalt:0102030405060708', '-kdfopt', `iter:${iterations}`, '-kdfopt', `id:${id}`, 'PKCS12KDF']);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(pkcs12Kdf('secret', Buffer.from('0102030405060708', 'hex'), id, iterations, length).toString('hex'), r.stdout.trim().replace(/:/g, '').toLowerCase(), `id ${id}, ${iterations} iterations, ${length} octets`);
    }
  });

  it('refuses a key that is not the leaf\'s, and an empty passphrase', () => {
    assert.throws(() => encodePkcs12({ keyPem: leaves.p384!.keyPem, certificatePem: leaves.p256!.certificatePem, chainPem: issuerPem, passphrase: PASSPHRASE }), /the key does not belong to the certificate/);
    assert.throws(() => encodePkcs12({ ...leaves.p256!, chainPem: issuerPem, passphrase: '' }), /must not be empty/);
  });
});
