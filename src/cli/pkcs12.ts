/**
 * PKCS#12 (RFC 7292) for services that read their key and certificates from one file (Java and
 * .NET key stores, some proxies): the private key, the leaf and the chain, in the profile OpenSSL 3
 * writes by default. The key bag (PKCS8ShroudedKeyBag) and the certificate bags (an EncryptedData
 * content) are each encrypted with PBES2 (RFC 8018 §6.2): PBKDF2 with HMAC-SHA-256 and AES-256-CBC;
 * the whole is authenticated with the RFC 7292 §5 MAC, HMAC-SHA-256 keyed by the PKCS#12 key
 * derivation of Appendix B.2. The MAC is not PBMAC1 (RFC 9579): OpenSSL reads that only from 3.4
 * on, and Node 20 ships OpenSSL 3.0, whose `tls.createSecureContext({ pfx })` must load this file.
 *
 * Why written here, on top of the ASN.1 schemas: node-forge's `pkcs12.toPkcs12Asn1` takes only
 * forge's own RSA keys (it wraps the key as an RSA PrivateKeyInfo; forge has no EC keys), while
 * this agent's default key is P-256; forge can encrypt the key bag with PBES2 and AES, but it
 * writes the certificates unencrypted and its MAC is HMAC-SHA-1, with no option for another
 * digest. PKI.js can write this profile, but as a second ASN.1 object model with a crypto engine
 * of its own beside @peculiar's. So the structures come from @peculiar/asn1-pfx, asn1-pkcs8 and
 * asn1-cms (the family @peculiar/x509 is built on), the two small RFC 8018 parameter SEQUENCEs and
 * CMS EncryptedData, which no @peculiar package defines, from x509/der.ts, and the cryptography
 * from node:crypto. test/unit/pkcs12.test.ts reads every key type back with the openssl command
 * line and node:tls.
 */
import { X509Certificate, createCipheriv, createHash, createHmac, createPrivateKey, pbkdf2Sync, randomBytes } from 'node:crypto';
import { ContentEncryptionAlgorithmIdentifier, ContentInfo, EncryptedContent, EncryptedContentInfo, id_data, id_encryptedData } from '@peculiar/asn1-cms';
import {
  AuthenticatedSafe,
  CertBag,
  MacData,
  PFX,
  PKCS12Attribute,
  PKCS8ShroudedKeyBag,
  SafeBag,
  SafeContents,
  id_certBag,
  id_pkcs8ShroudedKeyBag,
  id_x509Certificate,
} from '@peculiar/asn1-pfx';
import { EncryptedData as EncryptedKey } from '@peculiar/asn1-pkcs8';
import { DigestInfo } from '@peculiar/asn1-rsa';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier } from '@peculiar/asn1-x509';
import { nullValue, octetString, oid, sequence, smallInteger } from '../x509/der.js';

const OID = {
  pbes2: '1.2.840.113549.1.5.13',
  pbkdf2: '1.2.840.113549.1.5.12',
  hmacWithSha256: '1.2.840.113549.2.9',
  aes256Cbc: '2.16.840.1.101.3.4.1.42',
  sha256: '2.16.840.1.101.3.4.2.1',
  localKeyId: '1.2.840.113549.1.9.21',
} as const;

/** PBKDF2 and MAC iterations: above OpenSSL's default of 2048, as Java's key tool writes. */
export const PKCS12_ITERATIONS = 10_000;
const SALT_BYTES = 16;

const arrayBuffer = (b: Uint8Array): ArrayBuffer => {
  const copy = new ArrayBuffer(b.byteLength);
  new Uint8Array(copy).set(b);
  return copy;
};

/**
 * PBES2 (RFC 8018 §6.2.1) with PBKDF2-HMAC-SHA-256 and AES-256-CBC, a fresh salt and IV. The
 * password is its UTF-8 octets, as OpenSSL passes it to PBKDF2 inside PKCS#12.
 */
function pbes2Encrypt(plaintext: Uint8Array, passphrase: string): { algorithm: AlgorithmIdentifier; ciphertext: Buffer } {
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(16);
  const key = pbkdf2Sync(Buffer.from(passphrase, 'utf8'), salt, PKCS12_ITERATIONS, 32, 'sha256');
  const cipher = createCipheriv('aes-256-cbc', key, iv);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  // PBES2-params ::= SEQUENCE { keyDerivationFunc, encryptionScheme }; PBKDF2-params without
  // keyLength (AES-256 fixes it) and with the PRF named, as it is not the SHA-1 default (§A.2).
  const params = sequence(
    sequence(oid(OID.pbkdf2), sequence(octetString(salt), smallInteger(PKCS12_ITERATIONS), sequence(oid(OID.hmacWithSha256), nullValue()))),
    sequence(oid(OID.aes256Cbc), octetString(iv)),
  );
  return { algorithm: new AlgorithmIdentifier({ algorithm: OID.pbes2, parameters: arrayBuffer(params) }), ciphertext };
}

/**
 * The PKCS#12 key derivation (RFC 7292 Appendix B.2) with SHA-256 (u = 32, v = 64 octets): the
 * password as a BMPString with its two-zero terminator (B.1), `id` 3 for MAC keys.
 */
export function pkcs12Kdf(passphrase: string, salt: Uint8Array, id: number, iterations: number, length: number): Buffer {
  const u = 32;
  const v = 64;
  const password = Buffer.concat([Buffer.from(passphrase, 'utf16le').swap16(), Buffer.alloc(2)]);
  const stretch = (b: Uint8Array) => {
    const out = Buffer.alloc(b.length === 0 ? 0 : v * Math.ceil(b.length / v));
    for (let i = 0; i < out.length; i++) out[i] = b[i % b.length]!;
    return out;
  };
  const d = Buffer.alloc(v, id);
  const i = Buffer.concat([stretch(salt), stretch(password)]);
  const blocks: Buffer[] = [];
  for (;;) {
    let a = createHash('sha256').update(d).update(i).digest();
    for (let r = 1; r < iterations; r++) a = createHash('sha256').update(a).digest();
    blocks.push(a);
    if (blocks.length * u >= length) break;
    // I_j = (I_j + B + 1) mod 2^(8v) for every v-octet block of I, B being A repeated to v octets.
    const b = stretch(a);
    for (let j = 0; j < i.length; j += v) {
      let carry = 1;
      for (let k = v - 1; k >= 0; k--) {
        const sum = i[j + k]! + b[k]! + carry;
        i[j + k] = sum & 0xff;
        carry = sum >> 8;
      }
    }
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** localKeyID (PKCS#9), which pairs the key with its certificate: the leaf's SHA-1, as OpenSSL sets it. */
function localKeyId(leaf: X509Certificate): PKCS12Attribute {
  // Set after construction: asn1-pfx 2.11's PKCS12Attribute constructor drops its argument.
  const attribute = new PKCS12Attribute();
  attribute.attrId = OID.localKeyId;
  attribute.attrValues = [arrayBuffer(octetString(createHash('sha1').update(leaf.raw).digest()))];
  return attribute;
}

function certificateBag(cert: X509Certificate, attributes?: PKCS12Attribute[]): SafeBag {
  const bag = new CertBag({ certId: id_x509Certificate, certValue: AsnConvert.serialize(new OctetString(cert.raw)) });
  return new SafeBag({ bagId: id_certBag, bagValue: AsnConvert.serialize(bag), ...(attributes ? { bagAttributes: attributes } : {}) });
}

/**
 * A PKCS#12 file (DER) holding the key (PKCS#8 PEM), the leaf and the chain (intermediates, PEM),
 * protected by the passphrase. Throws when the key does not belong to the leaf or the passphrase
 * is empty.
 */
export function encodePkcs12(input: { keyPem: string; certificatePem: string; chainPem: string; passphrase: string }): Buffer {
  if (input.passphrase.length === 0) throw new Error('a PKCS#12 passphrase must not be empty');
  const key = createPrivateKey(input.keyPem);
  const leaf = new X509Certificate(input.certificatePem);
  if (!leaf.checkPrivateKey(key)) throw new Error('the key does not belong to the certificate');
  const chain = (input.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));
  const keyId = [localKeyId(leaf)];

  // The certificates: one SafeContents, encrypted as CMS EncryptedData (RFC 5652 §8, version 0).
  const certificates = pbes2Encrypt(new Uint8Array(AsnConvert.serialize(new SafeContents([certificateBag(leaf, keyId), ...chain.map((c) => certificateBag(c))]))), input.passphrase);
  const encryptedContentInfo = new EncryptedContentInfo({
    contentType: id_data,
    contentEncryptionAlgorithm: new ContentEncryptionAlgorithmIdentifier(certificates.algorithm),
    encryptedContent: new EncryptedContent({ value: new OctetString(certificates.ciphertext) }),
  });
  const encryptedData = sequence(smallInteger(0), new Uint8Array(AsnConvert.serialize(encryptedContentInfo)));

  // The key: a PKCS8ShroudedKeyBag (an EncryptedPrivateKeyInfo) in a plain Data content.
  const shrouded = pbes2Encrypt(key.export({ type: 'pkcs8', format: 'der' }), input.passphrase);
  const keyBag = new SafeBag({
    bagId: id_pkcs8ShroudedKeyBag,
    bagValue: AsnConvert.serialize(new PKCS8ShroudedKeyBag({ encryptionAlgorithm: shrouded.algorithm, encryptedData: new EncryptedKey(shrouded.ciphertext) })),
    bagAttributes: keyId,
  });
  const keyContents = AsnConvert.serialize(new OctetString(AsnConvert.serialize(new SafeContents([keyBag]))));

  const authenticatedSafe = AsnConvert.serialize(
    new AuthenticatedSafe([new ContentInfo({ contentType: id_encryptedData, content: arrayBuffer(encryptedData) }), new ContentInfo({ contentType: id_data, content: keyContents })]),
  );
  const macSalt = randomBytes(SALT_BYTES);
  const mac = createHmac('sha256', pkcs12Kdf(input.passphrase, macSalt, 3, PKCS12_ITERATIONS, 32)).update(new Uint8Array(authenticatedSafe)).digest();
  const pfx = new PFX({
    version: 3,
    authSafe: new ContentInfo({ contentType: id_data, content: AsnConvert.serialize(new OctetString(authenticatedSafe)) }),
    macData: new MacData({
      mac: new DigestInfo({ digestAlgorithm: new AlgorithmIdentifier({ algorithm: OID.sha256, parameters: null }), digest: new OctetString(mac) }),
      macSalt: new OctetString(macSalt),
      iterations: PKCS12_ITERATIONS,
    }),
  });
  return Buffer.from(AsnConvert.serialize(pfx));
}
