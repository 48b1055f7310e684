/**
 * Subject public keys (src/x509/public-keys.ts): the fast path (exact DER header, import from
 * coordinates) must accept and refuse exactly what OpenSSL's own SPKI decoder does, and give the
 * same key.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { describe, it } from 'node:test';
import { isCaError } from '../../src/errors.js';
import { keyTypeOfSpki, readPublicKey } from '../../src/x509/public-keys.js';

const spkiOf = (k: KeyObject) => k.export({ type: 'spki', format: 'der' });

function badPublicKey(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => isCaError(err) && err.kind === 'badPublicKey');
}

describe('subject public keys', () => {
  const accepted = [
    ['ecdsa-p256', generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey],
    ['ecdsa-p384', generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey],
    ['ed25519', generateKeyPairSync('ed25519').publicKey],
    ['rsa', generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey],
  ] as const;

  it('reads each accepted key type as the same key OpenSSL decodes from the DER', () => {
    for (const [type, key] of accepted) {
      const spki = spkiOf(key);
      const read = readPublicKey(spki);
      assert.equal(read.keyType, type);
      assert.equal(keyTypeOfSpki(spki), type);
      assert.ok(read.key.equals(createPublicKey({ key: spki, format: 'der', type: 'spki' })), type);
    }
  });

  it('accepts a compressed P-256 point through the general path', () => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
    const jwk = key.export({ format: 'jwk' });
    const y = Buffer.from(jwk.y!, 'base64url');
    const x = Buffer.from(jwk.x!, 'base64url');
    const compressed = Buffer.concat([Buffer.from('3039301306072a8648ce3d020106082a8648ce3d030107032200', 'hex'), Buffer.of(2 + (y[31]! & 1)), x]);
    const read = readPublicKey(compressed);
    assert.equal(read.keyType, 'ecdsa-p256');
    assert.ok(read.key.equals(key));
  });

  it('refuses a point that is not on the curve, on the fast path', () => {
    const spki = Buffer.from(spkiOf(accepted[0][1]));
    spki[spki.length - 1]! ^= 1;
    badPublicKey(() => readPublicKey(spki));
    assert.throws(() => createPublicKey({ key: spki, format: 'der', type: 'spki' }), 'OpenSSL refuses it too');
  });

  it('refuses a canonical header with a trailing or missing octet, as OpenSSL does', () => {
    const spki = spkiOf(accepted[0][1]);
    badPublicKey(() => readPublicKey(Buffer.concat([spki, Buffer.of(0)])));
    badPublicKey(() => readPublicKey(spki.subarray(0, spki.length - 1)));
    assert.equal(keyTypeOfSpki(spki.subarray(0, spki.length - 1)), undefined);
  });

  it('refuses a BER encoding of an accepted key, which OpenSSL itself would read', () => {
    const spki = spkiOf(accepted[0][1]);
    // The same SPKI with its outer length in long form (81 59 for 59): valid BER, not DER.
    const ber = Buffer.concat([Buffer.of(0x30, 0x81, spki[1]!), spki.subarray(2)]);
    assert.ok(createPublicKey({ key: ber, format: 'der', type: 'spki' }).equals(accepted[0][1]), 'OpenSSL reads the BER form');
    badPublicKey(() => readPublicKey(ber));
    assert.equal(keyTypeOfSpki(ber), undefined);
  });

  it('refuses curves, sizes and exponents outside the profile', () => {
    badPublicKey(() => readPublicKey(spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey)));
    badPublicKey(() => readPublicKey(spkiOf(generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey)));
    badPublicKey(() => readPublicKey(spkiOf(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey)));
    badPublicKey(() => readPublicKey(spkiOf(generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 3 }).publicKey)));
    badPublicKey(() => readPublicKey(spkiOf(generateKeyPairSync('ed448').publicKey)));
    badPublicKey(() => readPublicKey(Buffer.from('not a key')));
    assert.equal(keyTypeOfSpki(spkiOf(generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey)), undefined);
  });

  it('accepts an RSA public exponent only when odd and between 2^16+1 and 2^256−1 (CA/B BR 6.1.6), at both bounds', () => {
    // A public key needs no private half: one modulus, each exponent written into the SPKI.
    const { n } = accepted[3][1].export({ format: 'jwk' });
    const modulus = BigInt(`0x${Buffer.from(n!, 'base64url').toString('hex')}`);
    const spkiWith = (e: bigint) => {
      let hex = e.toString(16);
      if (hex.length % 2) hex = `0${hex}`;
      return spkiOf(createPublicKey({ key: { kty: 'RSA', n, e: Buffer.from(hex, 'hex').toString('base64url') }, format: 'jwk' }));
    };
    for (const e of [65537n, 2n ** 32n + 15n, 2n ** 255n + 1n, 2n ** 256n - 1n]) {
      const spki = spkiWith(e);
      const read = readPublicKey(spki);
      assert.equal(read.keyType, 'rsa', `e = ${e}`);
      assert.equal(read.key.asymmetricKeyDetails?.publicExponent, e);
      assert.equal(keyTypeOfSpki(spki), 'rsa');
    }
    const refused = [3n, 65535n, 65536n, 65538n, 2n ** 256n, 2n ** 256n + 1n, 2n ** 1024n + 1n, modulus - 2n, modulus - 1n];
    for (const e of refused) {
      const spki = spkiWith(e);
      assert.throws(() => readPublicKey(spki), (err: unknown) => isCaError(err) && err.kind === 'badPublicKey' && /exponent/.test(err.detail), `e = ${e}`);
      assert.equal(keyTypeOfSpki(spki), undefined, `e = ${e}`);
    }
  });
});
