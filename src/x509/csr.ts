/**
 * PKCS#10 (RFC 2986) parsing and checking, by a direct DER walk: the request's public key must
 * be one we certify (docs/api.md: ECDSA P-256/P-384, RSA 2048-4096, Ed25519, else badPublicKey), its
 * self-signature must verify (else badCSR), and only the subjectAltName of its extension request
 * is read (RFC 2985 §5.4.2); the subject and every other extension are ignored, never copied.
 *
 * Why by hand: the structure is fixed and small, we need the exact bytes of the signed part and
 * of the SubjectPublicKeyInfo (to copy unchanged into the certificate), and the walk costs a
 * fraction of an ASN.1 object model on the issuance hot path.
 */
import { verify as nodeVerify, type KeyObject } from 'node:crypto';
import { CaError } from '../errors.js';
import { bytesToIp } from '../ip.js';
import type { KeyType, SubjectAltNames } from '../model.js';
import { readPublicKey } from './public-keys.js';
import { oid, readTlv } from './der.js';
import { pemBlocks } from './pem.js';

export interface ParsedCsr {
  /** The whole request, DER (an idempotent retry must send it byte for byte again). */
  der: Uint8Array;
  spki: Uint8Array;
  keyType: KeyType;
  sans: SubjectAltNames;
}

/** Most SANs one request may carry. */
export const MAX_SANS = 100;

const hex = (der: Uint8Array) => Buffer.from(der).toString('hex');
const OIDS = {
  extensionRequest: hex(oid('1.2.840.113549.1.9.14')),
  subjectAltName: hex(oid('2.5.29.17')),
};

/** CSR signature algorithms we verify: OID DER hex → digest (null for Ed25519) and key type. */
const SIGNATURE_ALGORITHMS = new Map<string, { hash: string | null; key: 'ec' | 'rsa' | 'ed25519' }>([
  [hex(oid('1.2.840.10045.4.3.2')), { hash: 'sha256', key: 'ec' }],
  [hex(oid('1.2.840.10045.4.3.3')), { hash: 'sha384', key: 'ec' }],
  [hex(oid('1.2.840.10045.4.3.4')), { hash: 'sha512', key: 'ec' }],
  [hex(oid('1.2.840.113549.1.1.11')), { hash: 'sha256', key: 'rsa' }],
  [hex(oid('1.2.840.113549.1.1.12')), { hash: 'sha384', key: 'rsa' }],
  [hex(oid('1.2.840.113549.1.1.13')), { hash: 'sha512', key: 'rsa' }],
  [hex(oid('1.3.101.112')), { hash: null, key: 'ed25519' }],
]);

const badCsr = (detail: string) => new CaError('badCSR', detail);
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A DNS name as RFC 5280 §4.2.1.6 allows it (LDH labels, A-labels for IDNs), lower-cased. */
export function canonicalDnsName(name: string): string | undefined {
  const n = name.toLowerCase();
  if (n.length === 0 || n.length > 253) return undefined;
  const labels = n.split('.');
  const ok = labels.every((l, i) => (i === 0 && l === '*' && labels.length > 2) || DNS_LABEL.test(l));
  return ok ? n : undefined;
}

const ascii = (b: Uint8Array) => {
  for (const c of b) if (c < 0x20 || c > 0x7e) throw badCsr('a subjectAltName holds non-printable or non-ASCII characters');
  return Buffer.from(b).toString('ascii');
};

/** GeneralNames (RFC 5280 §4.2.1.6): dNSName, iPAddress, URI and rfc822Name only. */
function readSans(der: Uint8Array, sans: SubjectAltNames): void {
  const seq = readTlv(der, 0);
  if (seq.tag !== 0x30 || seq.end !== der.length) throw badCsr('the subjectAltName extension is malformed');
  for (let p = seq.start; p < seq.end; ) {
    const gn = readTlv(der, p);
    const value = der.subarray(gn.start, gn.end);
    switch (gn.tag) {
      case 0x82: {
        const name = canonicalDnsName(ascii(value));
        if (!name) throw badCsr(`${JSON.stringify(ascii(value))} is not a valid DNS name`);
        sans.dns.push(name);
        break;
      }
      case 0x87: {
        const ip = bytesToIp(value);
        if (!ip) throw badCsr('an iPAddress SAN must be 4 or 16 octets');
        sans.ip.push(ip);
        break;
      }
      case 0x86: {
        const uri = ascii(value);
        if (!/^[a-z][a-z0-9+.-]*:[^\s]+$/i.test(uri) || uri.length > 2048) throw badCsr(`${JSON.stringify(uri)} is not a valid URI`);
        sans.uri.push(uri);
        break;
      }
      case 0x81: {
        const email = ascii(value);
        if (!/^[^@\s]+@[^@\s]+$/.test(email) || email.length > 320) throw badCsr(`${JSON.stringify(email)} is not a valid email address`);
        sans.email.push(email);
        break;
      }
      default:
        throw badCsr('only dNSName, iPAddress, URI and rfc822Name subjectAltNames are accepted');
    }
    p = gn.end;
  }
}

/** The extension request attribute's subjectAltName, when there is one. */
function readAttributes(der: Uint8Array, start: number, end: number, sans: SubjectAltNames): void {
  let seenExtensionRequest = false;
  for (let p = start; p < end; ) {
    const attr = readTlv(der, p);
    if (attr.tag !== 0x30) throw badCsr('a CSR attribute is malformed');
    const type = readTlv(der, attr.start);
    if (type.tag !== 0x06) throw badCsr('a CSR attribute is malformed');
    if (hex(der.subarray(attr.start, type.end)) === OIDS.extensionRequest) {
      if (seenExtensionRequest) throw badCsr('the CSR has two extension requests');
      seenExtensionRequest = true;
      const values = readTlv(der, type.end);
      if (values.tag !== 0x31) throw badCsr('the extension request is malformed');
      const exts = readTlv(der, values.start);
      if (exts.tag !== 0x30 || exts.end !== values.end) throw badCsr('the extension request must hold one Extensions value');
      let seenSan = false;
      for (let q = exts.start; q < exts.end; ) {
        const ext = readTlv(der, q);
        const id = readTlv(der, ext.start);
        let v = readTlv(der, id.end);
        if (v.tag === 0x01) v = readTlv(der, v.end); // critical flag
        if (ext.tag !== 0x30 || id.tag !== 0x06 || v.tag !== 0x04 || v.end !== ext.end) throw badCsr('a requested extension is malformed');
        if (hex(der.subarray(ext.start, id.end)) === OIDS.subjectAltName) {
          if (seenSan) throw badCsr('the CSR requests subjectAltName twice');
          seenSan = true;
          readSans(der.subarray(v.start, v.end), sans);
        }
        q = ext.end;
      }
    }
    p = attr.end;
  }
}

function dedupe(values: string[]): string[] {
  return [...new Set(values)];
}

/** A CSR read but not yet checked: its self-signature's inputs, and the fields the result keeps. */
interface ReadCsr {
  der: Uint8Array;
  spki: Uint8Array;
  keyType: KeyType;
  sans: SubjectAltNames;
  proof: { hash: string | null; signed: Uint8Array; key: KeyObject; signature: Uint8Array };
}

/** Parses and checks a PEM CSR; throws badCSR or badPublicKey. */
export function parseCsr(pem: string): ParsedCsr {
  const read = readCsr(pem);
  let ok = false;
  try {
    ok = nodeVerify(read.proof.hash, read.proof.signed, { key: read.proof.key, dsaEncoding: 'der' }, read.proof.signature);
  } catch {
    ok = false;
  }
  return checked(read, ok);
}

/**
 * parseCsr with the self-signature checked on libuv's thread pool (node:crypto's verify with a
 * callback) instead of the calling thread: the same checks, the same errors in the same order.
 * The issuance path uses it when the service runs fewer processes than cores (always so on the
 * embedded database), so that a main thread that is the limit serves other requests while the
 * signature is checked (docs/performance.md).
 */
export async function parseCsrOffThread(pem: string): Promise<ParsedCsr> {
  const read = readCsr(pem);
  const { hash, signed, key, signature } = read.proof;
  const ok = await new Promise<boolean>((resolve) => {
    try {
      nodeVerify(hash, signed, { key, dsaEncoding: 'der' }, signature, (err, verified) => resolve(!err && verified));
    } catch {
      resolve(false);
    }
  });
  return checked(read, ok);
}

/** The checks after the signature's: it verified, and the names are few enough and not none. */
function checked({ der, spki, keyType, sans }: ReadCsr, signatureVerified: boolean): ParsedCsr {
  if (!signatureVerified) throw badCsr('the CSR\'s signature does not verify');
  const result: SubjectAltNames = { dns: dedupe(sans.dns), ip: dedupe(sans.ip), uri: dedupe(sans.uri), email: dedupe(sans.email) };
  const count = result.dns.length + result.ip.length + result.uri.length + result.email.length;
  if (count === 0) throw badCsr('the CSR requests no subjectAltName');
  if (count > MAX_SANS) throw badCsr(`the CSR requests more than ${MAX_SANS} names`);
  return { der, spki, keyType, sans: result };
}

/** Reads a PEM CSR and its public key; throws badCSR or badPublicKey for all but the signature and name checks. */
function readCsr(pem: string): ReadCsr {
  const blocks = [...pemBlocks(pem, 'CERTIFICATE REQUEST'), ...pemBlocks(pem, 'NEW CERTIFICATE REQUEST')];
  if (blocks.length !== 1) throw badCsr('expected exactly one PEM "CERTIFICATE REQUEST" block');
  const der = new Uint8Array(blocks[0]!);
  const sans: SubjectAltNames = { dns: [], ip: [], uri: [], email: [] };
  let spki: Uint8Array;
  let signed: Uint8Array;
  let algorithm: { hash: string | null; key: string } | undefined;
  let signature: Uint8Array;
  try {
    const outer = readTlv(der, 0);
    if (outer.tag !== 0x30 || outer.end !== der.length) throw badCsr('not a DER PKCS#10 request');
    const cri = readTlv(der, outer.start);
    const sigAlg = readTlv(der, cri.end);
    const sig = readTlv(der, sigAlg.end);
    if (cri.tag !== 0x30 || sigAlg.tag !== 0x30 || sig.tag !== 0x03 || sig.end !== outer.end) throw badCsr('not a DER PKCS#10 request');
    signed = der.subarray(outer.start, cri.end);
    const algOid = readTlv(der, sigAlg.start);
    algorithm = algOid.tag === 0x06 ? SIGNATURE_ALGORITHMS.get(hex(der.subarray(sigAlg.start, algOid.end))) : undefined;
    if (der[sig.start] !== 0) throw badCsr('the CSR signature has unused bits');
    signature = der.subarray(sig.start + 1, sig.end);

    const version = readTlv(der, cri.start);
    if (version.tag !== 0x02 || version.end - version.start !== 1 || der[version.start] !== 0) throw badCsr('the CSR version must be 1 (0)');
    const subject = readTlv(der, version.end);
    const spkiTlv = readTlv(der, subject.end);
    if (subject.tag !== 0x30 || spkiTlv.tag !== 0x30) throw badCsr('not a DER PKCS#10 request');
    spki = der.slice(subject.end, spkiTlv.end);
    if (spkiTlv.end < cri.end) {
      const attrs = readTlv(der, spkiTlv.end);
      if (attrs.tag !== 0xa0 || attrs.end !== cri.end) throw badCsr('the CSR attributes are malformed');
      readAttributes(der, attrs.start, attrs.end, sans);
    }
  } catch (err) {
    if (err instanceof CaError) throw err;
    throw badCsr('not a DER PKCS#10 request');
  }
  const { key, keyType } = readPublicKey(spki);
  if (!algorithm) throw badCsr('the CSR\'s signature algorithm is not accepted (ECDSA or RSA PKCS#1 v1.5 with SHA-2, or Ed25519)');
  const family = keyType === 'rsa' ? 'rsa' : keyType === 'ed25519' ? 'ed25519' : 'ec';
  if (algorithm.key !== family) throw badCsr('the CSR\'s signature algorithm does not fit its key');
  return { der, spki, keyType, sans, proof: { hash: algorithm.hash, signed, key, signature } };
}
