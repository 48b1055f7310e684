/**
 * The CA key in a PKCS#11 token (src/signer/pkcs11.ts) against a real SoftHSM2 token: each key
 * type signs in the token and node:crypto and openssl verify the result; a key that could leave
 * the token is refused, and the token itself refuses to hand out a key; the module never asks
 * for a private key's CKA_VALUE; lost sessions and logins are recovered once, and a token that is
 * gone becomes CaError('unavailable') (the API's 503) without a PIN in any message.
 */
import assert from 'node:assert/strict';
import { createHmac, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { CaError } from '../../src/errors.js';
import { CKA, CKO } from '../../src/signer/pkcs11-constants.js';
import { loadBinding, type Attribute, type Handle } from '../../src/signer/pkcs11-binding.js';
import { ulong } from '../../src/signer/pkcs11-token.js';
import { ecdsaSignatureDer, openTokenKey, openTokenSecret, type TokenSettings } from '../../src/signer/pkcs11.js';
import { encodeSigned, leafEncoder } from '../../src/signer/leaf-profile.js';
import { x509 } from '../../src/x509/library.js';
import { toPem } from '../../src/x509/pem.js';
import { verifyChain } from '../setup/openssl.js';
import { createSoftHsmToken, issueTokenIntermediate, softhsmMissing, type SoftHsmToken } from '../setup/softhsm.js';

const missing = softhsmMissing();

/** The AlgorithmIdentifier DER each key type must write, spelled out (RFC 5758, 4055, 8410). */
const EXPECTED = {
  'ca-p256': { name: 'ecdsa-with-SHA256', identifier: '300a06082a8648ce3d040302', hash: 'sha256', keyType: 'ecdsa-p256' },
  'ca-p384': { name: 'ecdsa-with-SHA384', identifier: '300a06082a8648ce3d040303', hash: 'sha384', keyType: 'ecdsa-p384' },
  'ca-rsa': { name: 'sha256WithRSAEncryption', identifier: '300d06092a864886f70d01010b0500', hash: 'sha256', keyType: 'rsa' },
  'ca-ed25519': { name: 'Ed25519', identifier: '300506032b6570', hash: null, keyType: 'ed25519' },
} as const;

/** CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT. */
const CKA_PRIVATE_EXPONENT = 0x123;
const RSA_PRIVATE_PARTS = [0x123, 0x124, 0x125, 0x126, 0x127, 0x128];

const spki = (key: KeyObject | string) => (typeof key === 'string' ? createPublicKey(key) : key).export({ type: 'spki', format: 'der' });

/** Runs `open` and returns the CaError it throws (failing the test if it throws anything else). */
function refusal(open: () => unknown): CaError {
  try {
    open();
  } catch (err) {
    assert.ok(err instanceof CaError, `a CaError, got ${String(err)}`);
    return err;
  }
  return assert.fail('expected a refusal');
}

describe('ECDSA signatures from r||s to X.509 DER', () => {
  it('writes INTEGERs X.690 wants: no redundant leading zero octet, a 00 before a set high bit', () => {
    assert.equal(ecdsaSignatureDer(Buffer.from('80010075', 'hex')).toString('hex'), '30080203008001020175');
    assert.equal(ecdsaSignatureDer(Buffer.from('00000001', 'hex')).toString('hex'), '3006020100020101');
  });

  it('turns node:crypto\'s own r||s signatures into DER signatures that node:crypto verifies', () => {
    for (const namedCurve of ['P-256', 'P-384']) {
      const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve });
      for (let i = 0; i < 20; i++) {
        const data = randomBytes(100);
        const raw = sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
        assert.equal(verify('sha256', data, { key: publicKey, dsaEncoding: 'der' }, ecdsaSignatureDer(raw)), true);
      }
    }
  });

  it('refuses a signature that is not two halves', () => {
    assert.throws(() => ecdsaSignatureDer(Buffer.alloc(63)), (err: unknown) => err instanceof CaError && err.detail === "the token's ECDSA signature has 63 octets, not r||s");
  });
});

describe('PKCS#11 token keys on SoftHSM2', { skip: missing }, () => {
  let token: SoftHsmToken;
  let settings: TokenSettings;
  /** Every C_GetAttributeValue of the module under test: the object's class and the attributes asked. */
  const reads: { objectClass: bigint; types: number[] }[] = [];
  let restoreSpy = () => {};

  before(async () => {
    token = await createSoftHsmToken({
      keys: [
        { label: 'extractable', type: 'p256', extractable: true },
        { label: 'loose', type: 'p256', sensitive: false, extractable: true },
        { label: 'cert-only', type: 'p256', publicHalf: 'certificate' },
        { label: 'rotated', type: 'p256' },
      ],
    });
    settings = { module: token.module, pin: token.pin };
    // The module under test makes its own handle on first use, after this: its reads are seen.
    const proto = Object.getPrototypeOf(loadBinding().PKCS11.prototype) as { C_GetAttributeValue: (s: Handle, o: Handle, t: Attribute[]) => { value: Buffer }[] };
    const original = proto.C_GetAttributeValue;
    proto.C_GetAttributeValue = function (this: unknown, session, object, template) {
      const objectClass = ulong(original.call(this, session, object, [{ type: CKA.CLASS }])[0]!.value);
      reads.push({ objectClass, types: template.map((a) => a.type) });
      return original.call(this, session, object, template);
    };
    restoreSpy = () => void (proto.C_GetAttributeValue = original);
  });
  after(() => {
    restoreSpy();
    token?.cleanup();
  });

  describe('signing', () => {
    for (const [label, expected] of Object.entries(EXPECTED)) {
      it(`${label}: ${expected.name} in the token, verified by node:crypto with the public key object`, () => {
        const fixture = token.keys[label]!;
        const key = openTokenKey(fixture.uri, settings);
        try {
          assert.equal(key.algorithm.name, expected.name);
          assert.equal(Buffer.from(key.algorithm.identifier).toString('hex'), expected.identifier);
          assert.deepEqual(spki(key.publicKey), spki(fixture.publicKeyPem));
          const tbs = randomBytes(700);
          const signature = key.algorithm.sign(tbs);
          // node:crypto reads ECDSA signatures as DER Ecdsa-Sig-Value by default: the X.509 form.
          assert.equal(verify(expected.hash, tbs, fixture.publicKeyPem, signature), true);
          tbs[0] = tbs[0]! ^ 1;
          assert.equal(verify(expected.hash, tbs, fixture.publicKeyPem, signature), false);
        } finally {
          key.close();
        }
      });
    }

    it('signs leaf certificates that openssl verifies up to the root, for every key type', async () => {
      for (const [label, expected] of Object.entries(EXPECTED)) {
        const { rootPem, intermediatePem, subjectDer } = await issueTokenIntermediate(token.keys[label]!.publicKeyPem);
        const key = openTokenKey(token.keys[label]!.uri, settings);
        try {
          const ski = new x509.X509Certificate(intermediatePem).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId;
          const encode = leafEncoder({ subjectDer, keyIdentifier: Buffer.from(ski, 'hex'), signatureAlgorithm: key.algorithm.identifier, crlUrl: 'http://ca.test/crl', caIssuersUrl: 'http://ca.test/ca.der' });
          const leafKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey;
          const now = Date.now();
          const tbs = encode({
            serial: Uint8Array.of(0x01, ...randomBytes(15)), spki: spki(leafKey), keyType: 'ecdsa-p256',
            sans: { dns: ['svc.example.test'], ip: [], uri: [], email: [] },
            notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000), extendedKeyUsage: ['serverAuth'],
          });
          const leaf = Buffer.from(encodeSigned(tbs, key.algorithm.identifier, key.algorithm.sign(tbs)));
          const result = verifyChain(toPem(leaf, 'CERTIFICATE'), rootPem, intermediatePem, 'sslserver');
          assert.ok(result.ok, `${label} (${expected.name}): ${result.output}`);
        } finally {
          key.close();
        }
      }
    });

    it('reads the public half from the certificate beside the key when there is no public key object', () => {
      const fixture = token.keys['cert-only']!;
      const key = openTokenKey(fixture.uri, settings);
      try {
        assert.deepEqual(spki(key.publicKey), spki(fixture.publicKeyPem));
        const tbs = randomBytes(64);
        assert.equal(verify('sha256', tbs, fixture.publicKeyPem, key.algorithm.sign(tbs)), true);
      } finally {
        key.close();
      }
    });
  });

  describe('the key never leaves the token', () => {
    it('refuses an extractable key and a key that is not sensitive', () => {
      assert.equal(refusal(() => openTokenKey(token.keys.extractable!.uri, settings)).detail, 'ca.key: the key must be non-extractable: CKA_EXTRACTABLE is not false');
      assert.equal(refusal(() => openTokenKey(token.keys.loose!.uri, settings)).detail, 'ca.key: the key must be non-extractable: CKA_SENSITIVE is not true');
    });

    it('a second session of the module cannot read the private key or the secret: the token answers CKR_ATTRIBUTE_SENSITIVE', () => {
      const { cryptoki } = token.admin;
      const session = token.admin.openSession();
      try {
        const find = (label: string, objectClass: number) => {
          cryptoki.C_FindObjectsInit(session, [{ type: CKA.CLASS, value: objectClass }, { type: CKA.LABEL, value: label }]);
          const [object] = cryptoki.C_FindObjects(session, 2);
          cryptoki.C_FindObjectsFinal(session);
          return object!;
        };
        // The secret part of each key: CKA_VALUE for EC, Edwards and generic secret keys, the
        // private exponent for RSA (whose private key object has no CKA_VALUE).
        const secrets: [string, number, number][] = [
          ['ca-p256', CKO.PRIVATE_KEY, CKA.VALUE],
          ['ca-p384', CKO.PRIVATE_KEY, CKA.VALUE],
          ['ca-ed25519', CKO.PRIVATE_KEY, CKA.VALUE],
          ['ca-rsa', CKO.PRIVATE_KEY, CKA_PRIVATE_EXPONENT],
          ['ca-secret', CKO.SECRET_KEY, CKA.VALUE],
        ];
        for (const [label, objectClass, part] of secrets) {
          assert.throws(() => cryptoki.C_GetAttributeValue(session, find(label, objectClass), [{ type: part }]), { message: 'CKR_ATTRIBUTE_SENSITIVE' }, label);
        }
        // What the refused key above would give away: its private scalar.
        assert.equal(cryptoki.C_GetAttributeValue(session, find('loose', CKO.PRIVATE_KEY), [{ type: CKA.VALUE }])[0]!.value.length, 32);
      } finally {
        cryptoki.C_CloseSession(session);
      }
    });

    it('never asks the token for the secret part of a private or secret key', () => {
      reads.length = 0;
      for (const label of ['ca-p256', 'ca-p384', 'ca-rsa', 'ca-ed25519', 'cert-only']) {
        const key = openTokenKey(token.keys[label]!.uri, settings);
        key.algorithm.sign(Buffer.from('tbs'));
        key.close();
      }
      const secret = openTokenSecret(token.secretUri, settings);
      secret.hmac(Buffer.from('data'));
      secret.close();
      const secretParts = new Set<number>([CKA.VALUE, ...RSA_PRIVATE_PARTS]);
      const partReads = reads.filter((r) => r.types.some((t) => secretParts.has(t)));
      assert.ok(reads.some((r) => r.objectClass === BigInt(CKO.PRIVATE_KEY)), 'the spy saw the private keys being read');
      assert.ok(reads.some((r) => r.objectClass === BigInt(CKO.SECRET_KEY)), 'the spy saw the secret key being read');
      // The certificate's CKA_VALUE (cert-only's public half) is the one such read, and it is public.
      assert.deepEqual([...new Set(partReads.map((r) => r.objectClass))], [BigInt(CKO.CERTIFICATE)]);
    });
  });

  describe('start-up refusals name the setting', () => {
    const uri = () => token.keys['ca-p256']!.uri;
    const base = () => `pkcs11:token=${encodeURIComponent(token.label)}`;

    it('a wrong PIN, without the PIN in the message', () => {
      const err = refusal(() => openTokenKey(uri(), { ...settings, pin: 'wrong-pin-7f3a' }));
      assert.equal(err.detail, 'ca.key: the token refused the PIN (CKR_PIN_INCORRECT)');
      assert.doesNotMatch(err.message, /wrong-pin-7f3a/);
    });

    it('a PIN in the URI, without the PIN in the message', () => {
      const err = refusal(() => openTokenKey(`${uri()}?pin-value=${token.pin}`, settings));
      assert.equal(err.detail, 'ca.key: the URI carries a PIN (pin-value or pin-source): remove it, the configured PIN is used');
      assert.ok(!err.message.includes(token.pin));
    });

    const cases: [string, () => string, () => string][] = [
      ['a URI of another type', () => `${base()};object=ca-p256;type=cert`, () => 'ca.key: the URI names an object of type cert; this needs type=private'],
      ['a URI that names no object', () => base(), () => 'ca.key: the URI names no object: give object= (its CKA_LABEL) or id= (its CKA_ID)'],
      ['an unknown object', () => `${base()};object=nope`, () => `ca.key: no private key matches token "${token.label}", object "nope"`],
      ['a secret named as a key', () => `${base()};object=ca-secret`, () => `ca.key: no private key matches token "${token.label}", object "ca-secret"`],
      ['an unknown token', () => 'pkcs11:token=nope;object=ca-p256', () => 'ca.key: no initialised token matches token "nope", object "ca-p256"'],
      ['a vendor attribute', () => `${base()};object=ca-p256;x-slot=3`, () => 'ca.key: the URI attribute x-slot is not understood'],
      ['another module-path', () => `${base()};object=ca-p256?module-path=/opt/hsm/lib.so`, () => `ca.key: the URI's module-path /opt/hsm/lib.so is not the configured module ${token.module}`],
      ['a malformed URI', () => `${base()};object=a b`, () => "ca.key: PKCS#11 URI: in object, ' ' must be percent-encoded"],
    ];
    for (const [what, make, expected] of cases) {
      it(what, () => assert.equal(refusal(() => openTokenKey(make(), settings)).detail, expected()));
    }

    it('a module that does not load, and a relative module path', () => {
      const detail = refusal(() => openTokenKey(uri(), { ...settings, module: '/nonexistent/libnothing.so' })).detail;
      assert.ok(detail.startsWith('ca.key: cannot load the PKCS#11 module /nonexistent/libnothing.so ('), detail);
      assert.equal(refusal(() => openTokenKey(uri(), { ...settings, module: 'libsofthsm2.so' })).detail, 'ca.key: the PKCS#11 module path libsofthsm2.so is not absolute');
    });

    it("an issuer's key by its place in the configuration, and the secret by its setting", () => {
      assert.equal(refusal(() => openTokenKey(`${base()};object=nope`, settings, 'ca.issuers.1')).detail, `ca.issuers.1.key: no private key matches token "${token.label}", object "nope"`);
      assert.equal(refusal(() => openTokenSecret(`${base()};object=ca-p256`, settings)).detail, `ca.pkcs11.secret: no secret key matches token "${token.label}", object "ca-p256"`);
    });

    it('the pkcs11js binding missing', () => {
      assert.equal(refusal(() => loadBinding('pkcs11js-not-installed')).detail, 'a PKCS#11 URI needs the pkcs11js-not-installed module, which is not installed; run npm install pkcs11js-not-installed');
    });
  });

  describe('HMAC-SHA-256 in the token', () => {
    it('is 32 octets, the same for the same input in every opening, different for different inputs', () => {
      const first = openTokenSecret(token.secretUri, settings);
      const second = openTokenSecret(token.secretUri, settings);
      try {
        const a = first.hmac(Buffer.from('service-ca nonce key'));
        assert.equal(a.length, 32);
        assert.deepEqual(second.hmac(Buffer.from('service-ca nonce key')), a);
        assert.notDeepEqual(first.hmac(Buffer.from('service-ca nonce kez')), a);
      } finally {
        first.close();
        second.close();
      }
    });

    it('is HMAC-SHA-256 as node:crypto computes it, for a secret imported with a known value', () => {
      const secret = openTokenSecret(token.knownSecret.uri, settings);
      try {
        for (const data of [Buffer.from('service-ca derived secrets v1'), Buffer.alloc(0), randomBytes(1000)]) {
          assert.equal(secret.hmac(data).toString('hex'), createHmac('sha256', token.knownSecret.value).update(data).digest('hex'), `${data.length} octets`);
        }
      } finally {
        secret.close();
      }
    });

    it('refuses an extractable secret and a private key named as the secret', () => {
      assert.equal(refusal(() => openTokenSecret(token.extractableSecretUri, settings)).detail, 'ca.pkcs11.secret: the key must be non-extractable: CKA_EXTRACTABLE is not false');
      assert.equal(refusal(() => openTokenSecret(token.keyUri, settings)).detail, 'ca.pkcs11.secret: the URI names an object of type private; this needs type=secret-key');
    });
  });

  describe('when the token goes away underneath', () => {
    const tbs = Buffer.from('tbs certificate');
    const signsValidly = (key: ReturnType<typeof openTokenKey>) => verify('sha256', tbs, token.publicKeyPem, key.algorithm.sign(tbs));

    it('reconnects and logs in again after another user of the module closed every session', () => {
      const key = openTokenKey(token.keyUri, settings);
      const secret = openTokenSecret(token.secretUri, settings);
      try {
        const mac = secret.hmac(tbs);
        token.admin.cryptoki.C_CloseAllSessions(token.admin.slot);
        assert.equal(signsValidly(key), true);
        assert.deepEqual(secret.hmac(tbs), mac);
      } finally {
        key.close();
        secret.close();
      }
    });

    it('initialises the module again after another user finalised it', () => {
      const key = openTokenKey(token.keyUri, settings);
      try {
        token.admin.cryptoki.C_Finalize();
        assert.equal(signsValidly(key), true);
      } finally {
        key.close();
      }
    });

    it('does not sign with another key found under the same URI after a reconnect', () => {
      const key = openTokenKey(token.keys.rotated!.uri, settings);
      try {
        assert.equal(verify('sha256', tbs, token.keys.rotated!.publicKeyPem, key.algorithm.sign(tbs)), true);
        token.replaceKey('rotated');
        token.admin.cryptoki.C_CloseAllSessions(token.admin.slot);
        const err = refusal(() => key.algorithm.sign(tbs));
        assert.equal(err.kind, 'unavailable');
        assert.equal(err.detail, "the CA key's PKCS#11 token is unavailable: the key found on reconnecting is not the one opened at start-up");
      } finally {
        key.close();
      }
    });

    it('answers unavailable once the token refuses the PIN, and does not try it again', () => {
      const key = openTokenKey(token.keyUri, settings);
      const { cryptoki, slot, openSession } = token.admin;
      const changePin = (from: string, to: string) => {
        const session = openSession(from);
        cryptoki.C_SetPIN(session, from, to);
        cryptoki.C_CloseAllSessions(slot);
      };
      try {
        changePin(token.pin, 'changed-pin-5c1e');
        const expected = "the CA key's PKCS#11 token refuses the PIN (CKR_PIN_INCORRECT); it is not tried again before a restart";
        const first = refusal(() => key.algorithm.sign(tbs));
        assert.equal(first.kind, 'unavailable');
        assert.equal(first.detail, expected);
        changePin('changed-pin-5c1e', token.pin);
        // The PIN is right again, but the latched key does not log in: a new opening does.
        assert.equal(refusal(() => key.algorithm.sign(tbs)).detail, expected);
        const reopened = openTokenKey(token.keyUri, settings);
        assert.equal(signsValidly(reopened), true);
        reopened.close();
      } finally {
        key.close();
      }
    });

    it('answers unavailable, with retry-after and no PIN, once the token is deleted', () => {
      const key = openTokenKey(token.keyUri, settings);
      const secret = openTokenSecret(token.secretUri, settings);
      try {
        assert.equal(signsValidly(key), true);
        token.deleteToken();
        const gone = `is unavailable: no initialised token matches token "${token.label}"`;
        for (let attempt = 0; attempt < 2; attempt++) {
          const err = refusal(() => key.algorithm.sign(tbs));
          assert.equal(err.kind, 'unavailable');
          assert.equal(err.retryAfter, 5);
          assert.equal(err.detail, `the CA key's PKCS#11 token ${gone}, object "ca-p256", id 10`);
          assert.ok(!err.message.includes(token.pin));
        }
        const err = refusal(() => secret.hmac(tbs));
        assert.equal(err.kind, 'unavailable');
        assert.equal(err.detail, `the derivation secret's PKCS#11 token ${gone}, object "ca-secret", id 01`);
      } finally {
        key.close();
        secret.close();
      }
    });
  });
});
