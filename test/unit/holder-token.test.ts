/**
 * Renewal tokens (src/auth/holder-token.ts) checked against the x5c certificate's own key: each
 * key type a holder may have verifies, and every spoiled token gets its own CaError detail. The
 * CA and its certificates are made by the openssl command line, the tokens by jose.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { KeyObject, X509Certificate, generateKeyPairSync, sign as nodeSign, type KeyPairKeyObjectResult } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SignJWT, type JWTPayload } from 'jose';
import { RENEW_AUDIENCE, verifyHolderToken } from '../../src/auth/holder-token.js';
import { fixedClock } from '../../src/clock.js';
import { isCaError } from '../../src/errors.js';

const NOW = 1_800_000_000;
const clock = fixedClock(new Date(NOW * 1000));
const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');

interface Holder {
  key: KeyObject;
  cert: X509Certificate;
  x5c: string;
}

const claims = (extra: JWTPayload = {}): JWTPayload => ({ aud: RENEW_AUDIENCE, iat: NOW, exp: NOW + 120, jti: 'holder-1', ...extra });
const token = (holder: Holder, alg: string, payload: JWTPayload = claims(), header: Record<string, unknown> = {}) =>
  new SignJWT(payload).setProtectedHeader({ alg, x5c: [holder.x5c], ...header }).sign(holder.key);

describe('verifyHolderToken', () => {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-holder-'));
  const holders = new Map<string, Holder>();
  let ca: X509Certificate;

  /** A certificate for pair's public key, signed by the test CA with openssl. */
  function issue(name: string, pair: KeyPairKeyObjectResult): Holder {
    writeFileSync(join(dir, `${name}.key`), pair.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    execFileSync('openssl', ['req', '-new', '-key', join(dir, `${name}.key`), '-subj', `/CN=${name}`, '-out', join(dir, `${name}.csr`)], { stdio: 'pipe' });
    execFileSync('openssl', ['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, 'ca.pem'), '-CAkey', join(dir, 'ca.key'), '-set_serial', '7', '-days', '1', '-out', join(dir, `${name}.pem`)], { stdio: 'pipe' });
    const cert = new X509Certificate(readFileSync(join(dir, `${name}.pem`)));
    return { key: pair.privateKey, cert, x5c: cert.raw.toString('base64') };
  }

  async function detail(t: string): Promise<string> {
    try {
      await verifyHolderToken(t, clock, 60, [ca]);
    } catch (err) {
      assert.ok(isCaError(err), String(err));
      assert.equal(err.kind, 'unauthorized');
      return err.detail;
    }
    assert.fail('the token was accepted');
  }

  before(() => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=holder test CA',
      '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.pem')], { stdio: 'pipe' });
    ca = new X509Certificate(readFileSync(join(dir, 'ca.pem')));
    holders.set('ES256', issue('p256', generateKeyPairSync('ec', { namedCurve: 'P-256' })));
    holders.set('ES384', issue('p384', generateKeyPairSync('ec', { namedCurve: 'P-384' })));
    holders.set('RS256', issue('rsa', generateKeyPairSync('rsa', { modulusLength: 2048 })));
    holders.set('EdDSA', issue('ed25519', generateKeyPairSync('ed25519')));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a token signed by the key of each holder key type', async () => {
    for (const [alg, holder] of [...holders, ['PS256', holders.get('RS256')!] as const]) {
      const verified = await verifyHolderToken(await token(holder, alg), clock, 60, [ca]);
      assert.equal(verified.jti, 'holder-1', alg);
      assert.deepEqual(verified.certificateDer, holder.cert.raw, alg);
    }
  });

  it('refuses every spoiled token with its own detail', async () => {
    const p256 = holders.get('ES256')!;
    const p384 = holders.get('ES384')!;
    const good = await token(p256, 'ES256');
    const [h, p, s] = good.split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    sig[3]! ^= 1;
    // An ES256 header over the P-384 certificate, signed by its key (jose's SignJWT refuses to).
    const h384 = b64({ alg: 'ES256', x5c: [p384.x5c] });
    const es256OnP384 = `${h384}.${p}.${nodeSign('sha256', Buffer.from(`${h384}.${p}`), { key: p384.key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
    const notSigned = 'the renewal token is not signed by the x5c certificate\'s key';
    const cases: [string, string, string][] = [
      ['a flipped signature bit', `${h}.${p}.${sig.toString('base64url')}`, notSigned],
      ['a signature one byte short', `${h}.${p}.${sig.subarray(1).toString('base64url')}`, notSigned],
      ['a token signed by another key', await new SignJWT(claims()).setProtectedHeader({ alg: 'ES256', x5c: [p256.x5c] }).sign(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey), notSigned],
      ['an ES256 header on a P-384 certificate', es256OnP384, notSigned],
      ['an ES384 token on a P-256 certificate', `${b64({ alg: 'ES384', x5c: [p256.x5c] })}.${p}.${s}`, notSigned],
      ['an ES256 header on an RSA certificate', await token({ ...holders.get('RS256')!, key: p256.key }, 'ES256'), notSigned],
      ['alg none', `${b64({ alg: 'none', x5c: [p256.x5c] })}.${p}.`, notSigned],
      ['HS256 keyed with the certificate', await new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', x5c: [p256.x5c] }).sign(p256.cert.raw), notSigned],
      ['a crit header', `${b64({ alg: 'ES256', x5c: [p256.x5c], crit: ['exp'], exp: 1 })}.${p}.${s}`, notSigned],
      ['an expired token', await token(p256, 'ES256', claims({ iat: NOW - 300, exp: NOW - 120 })), 'the renewal token has expired'],
      ['an iat older than 5 minutes', await token(p256, 'ES256', claims({ iat: NOW - 600, exp: NOW + 60 })), 'the renewal token has expired'],
      ['an nbf ahead', await token(p256, 'ES256', claims({ nbf: NOW + 600 })), 'the renewal token\'s "nbf" claim is not acceptable'],
      ['another aud', await token(p256, 'ES256', claims({ aud: 'service-ca' })), 'the renewal token\'s "aud" claim is not acceptable'],
      ['no jti', await token(p256, 'ES256', claims({ jti: undefined })), 'the renewal token\'s "jti" claim is not acceptable'],
      ['a lifetime over 5 minutes', await token(p256, 'ES256', claims({ exp: NOW + 301 })), 'a renewal token may live at most 5 minutes (exp - iat)'],
    ];
    for (const [name, t, expected] of cases) assert.equal(await detail(t), expected, name);
  });
});
