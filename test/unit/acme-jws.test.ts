/**
 * Account keys as JWKs (auth/acme-jws.ts publicJwk): RSA moduli are measured in bits, not octets
 * (leading zero octets add nothing), and public exponents are bounded; private members are refused.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { publicJwk } from '../../src/auth/acme-jws.js';
import { CaError } from '../../src/errors.js';

const rsa = (bits: number) => generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ format: 'jwk' }) as { kty: string; n: string; e: string };
const badKey = (value: unknown, detail: RegExp) => assert.throws(() => publicJwk(value), (err: unknown) => err instanceof CaError && err.kind === 'badPublicKey' && detail.test(err.detail));
const b64u = (bytes: number[] | Buffer) => Buffer.from(bytes).toString('base64url');

describe('publicJwk for RSA account keys', () => {
  it('takes a 2048-bit key with e = 65537', () => {
    const jwk = rsa(2048);
    assert.deepEqual(publicJwk(jwk), { kty: 'RSA', n: jwk.n, e: jwk.e });
  });

  it('measures the modulus in bits: a 1024-bit modulus padded with zero octets to 256 is refused', () => {
    const small = Buffer.from(rsa(1024).n, 'base64url');
    badKey({ kty: 'RSA', n: b64u(Buffer.concat([Buffer.alloc(128), small])), e: 'AQAB' }, /2048 to 8192 bits/);
  });

  it('refuses exponents that are even, below 3 or above 2^32', () => {
    const { n } = rsa(2048);
    for (const e of [[1], [2], [0x01, 0x00, 0x00], [0x01, 0x00, 0x00, 0x00, 0x01], Array(9).fill(0xff), []]) {
      badKey({ kty: 'RSA', n, e: e.length ? b64u(e) : '' }, e.length ? /exponent must be odd/ : /jwk\.e must be/);
    }
    assert.equal(publicJwk({ kty: 'RSA', n, e: b64u([0x03]) }).kty, 'RSA', 'e = 3 is taken');
  });

  it('refuses a JWK with private members', () => {
    badKey({ ...rsa(2048), d: 'AQAB' }, /private key material/);
  });
});
