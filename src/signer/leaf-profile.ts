/**
 * The leaf certificate profile (docs/api.md "Certificate profile"; RFC 5280 §4.1 and §4.2), encoded
 * straight to DER. This is the one replaceable piece that turns a checked template into TBS bytes.
 */
import { createHash } from 'node:crypto';
import { ipToBytes } from '../ip.js';
import type { ExtendedKeyUsageName, KeyType, SubjectAltNames } from '../model.js';
import {
  bitString, booleanValue, contextTag, octetString, oid, readTlv, sequence, setOf, smallInteger,
  tlv, time, unsignedInteger, utf8String, type Der,
} from '../x509/der.js';

export interface LeafTemplate {
  /** Positive serial, at most 20 octets (RFC 5280 §4.1.2.2). */
  serial: Uint8Array;
  /** The subject's SubjectPublicKeyInfo DER, copied unchanged from the CSR. */
  spki: Uint8Array;
  keyType: KeyType;
  sans: SubjectAltNames;
  notBefore: Date;
  notAfter: Date;
  extendedKeyUsage: ExtendedKeyUsageName[];
}

/** What the profile needs to know about the issuing CA. */
export interface IssuerProfile {
  /** The intermediate's subject Name, DER exactly as in its certificate (becomes our issuer). */
  subjectDer: Uint8Array;
  /** The intermediate's subject key identifier (becomes our AKI keyIdentifier). */
  keyIdentifier: Uint8Array;
  signatureAlgorithm: Der;
  crlUrl: string;
  caIssuersUrl: string;
}

const OID = {
  commonName: '2.5.4.3',
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyIdentifier: '2.5.29.14',
  authorityKeyIdentifier: '2.5.29.35',
  crlDistributionPoints: '2.5.29.31',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
  caIssuers: '1.3.6.1.5.5.7.48.2',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
} as const;

/** Each OID above, encoded once. */
const OID_DER = Object.fromEntries(Object.entries(OID).map(([name, dotted]) => [name, oid(dotted)])) as Record<keyof typeof OID, Der>;

/** Longest commonName (RFC 5280 Appendix A, ub-common-name). */
export const MAX_CN_LENGTH = 64;

function extension(id: keyof typeof OID, critical: boolean, value: Der): Der {
  return critical ? sequence(OID_DER[id], booleanValue(true), octetString(value)) : sequence(OID_DER[id], octetString(value));
}

/** GeneralNames (RFC 5280 §4.2.1.6) in the order dns, ip, uri, email. */
export function generalNames(sans: SubjectAltNames): Der {
  const names: Der[] = [
    ...sans.dns.map((n) => tlv(0x82, Buffer.from(n, 'ascii'))),
    ...sans.ip.map((n) => {
      const bytes = ipToBytes(n);
      if (!bytes) throw new RangeError(`not an IP address: ${n}`);
      return tlv(0x87, bytes);
    }),
    ...sans.uri.map((n) => tlv(0x86, Buffer.from(n, 'ascii'))),
    ...sans.email.map((n) => tlv(0x81, Buffer.from(n, 'ascii'))),
  ];
  return sequence(...names);
}

/** SHA-1 of the subjectPublicKey BIT STRING's bits (RFC 5280 §4.2.1.2, method 1). */
export function keyIdentifierOf(spki: Uint8Array): Uint8Array {
  const outer = readTlv(spki, 0);
  const algorithm = readTlv(spki, outer.start);
  const key = readTlv(spki, algorithm.end);
  return createHash('sha1').update(spki.subarray(key.start + 1, key.end)).digest();
}

/**
 * The subject: CN = the first DNS SAN of at most 64 characters, else an empty subject, in which
 * case the SAN extension is critical (RFC 5280 §4.1.2.6, §4.2.1.6).
 */
export function subjectFor(sans: SubjectAltNames): { der: Der; empty: boolean } {
  const cn = sans.dns.find((n) => n.length <= MAX_CN_LENGTH);
  if (cn === undefined) return { der: sequence(), empty: true };
  return { der: sequence(setOf(sequence(OID_DER.commonName, utf8String(cn)))), empty: false };
}

/** KeyUsage: digitalSignature, plus keyEncipherment for RSA keys (RFC 5280 §4.2.1.3). */
function keyUsage(keyType: KeyType): Der {
  return keyType === 'rsa' ? bitString(Uint8Array.of(0xa0), 5) : bitString(Uint8Array.of(0x80), 7);
}

/**
 * The TBSCertificate (RFC 5280 §4.1) encoder for one issuer. What does not change between
 * certificates (version, issuer, signature algorithm, basicConstraints, keyUsage and EKU
 * variants, AKI, CRL distribution point, AIA) is encoded once here, so that an issuance encodes
 * only its serial, validity, subject, SANs and key.
 */
export function leafEncoder(issuer: IssuerProfile): (t: LeafTemplate) => Der {
  const version = contextTag(0, true, smallInteger(2));
  const basicConstraints = extension('basicConstraints', true, sequence());
  const keyUsages = { rsa: extension('keyUsage', true, keyUsage('rsa')), other: extension('keyUsage', true, keyUsage('ecdsa-p256')) };
  const ekus = new Map<string, Der>();
  const fixedTail = [
    extension('authorityKeyIdentifier', false, sequence(tlv(0x80, issuer.keyIdentifier))),
    extension('crlDistributionPoints', false, sequence(sequence(contextTag(0, true, contextTag(0, true, tlv(0x86, Buffer.from(issuer.crlUrl, 'ascii'))))))),
    extension('authorityInfoAccess', false, sequence(sequence(OID_DER.caIssuers, tlv(0x86, Buffer.from(issuer.caIssuersUrl, 'ascii'))))),
  ];
  return (t) => {
    const subject = subjectFor(t.sans);
    const ekuKey = t.extendedKeyUsage.join(',');
    let eku = ekus.get(ekuKey);
    if (!eku) {
      eku = extension('extKeyUsage', false, sequence(...t.extendedKeyUsage.map((e) => OID_DER[e])));
      ekus.set(ekuKey, eku);
    }
    return sequence(
      version,
      unsignedInteger(t.serial),
      issuer.signatureAlgorithm,
      issuer.subjectDer,
      sequence(time(t.notBefore), time(t.notAfter)),
      subject.der,
      t.spki,
      contextTag(
        3,
        true,
        sequence(
          basicConstraints,
          t.keyType === 'rsa' ? keyUsages.rsa : keyUsages.other,
          eku,
          extension('subjectAltName', subject.empty, generalNames(t.sans)),
          extension('subjectKeyIdentifier', false, octetString(keyIdentifierOf(t.spki))),
          ...fixedTail,
        ),
      ),
    );
  };
}

/** Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue } (RFC 5280 §4.1.1). */
export function encodeSigned(tbs: Der, signatureAlgorithm: Der, signature: Uint8Array): Der {
  return sequence(tbs, signatureAlgorithm, bitString(signature));
}
