/**
 * What a TLS server said in its first flight, read from the raw bytes it sent (RFC 8446, RFC
 * 5246): the version and cipher suite of its ServerHello, its ALPN choice, the certificates it
 * sent and whether it sent a CertificateRequest.
 *
 * Why by hand: node:tls does not tell a client whether the server asked for a client certificate
 * (OpenSSL's client-certificate callback is not exposed), and when the server ends a handshake
 * it refused, node reports only the alert, not the chain the server had sent. Up to TLS 1.2 the
 * server's flight is plaintext up to its ChangeCipherSpec. In TLS 1.3 everything after the
 * ServerHello is encrypted with the server handshake traffic secret, which node hands us through
 * the `keylog` event (the NSS key log line SERVER_HANDSHAKE_TRAFFIC_SECRET): we derive the record
 * key and IV from it (RFC 8446 §7.1 HKDF-Expand-Label, §7.3 traffic keys) and open the records
 * with the suite's AEAD (§5.2, §5.3) up to the server's Finished. Nothing here takes part in the
 * handshake: node's own TLS stack does that; this only reads what went by.
 */
import { createDecipheriv, createHmac, type CipherCCMTypes, type CipherGCMTypes } from 'node:crypto';

export interface ServerFlight {
  /** As node names them: TLSv1.3, TLSv1.2, TLSv1.1, TLSv1. */
  version: string | undefined;
  cipherSuite: number | undefined;
  alpn: string | undefined;
  /** The certificates of the server's Certificate message, DER, in the order sent. */
  certificates: Buffer[];
  certificateRequested: boolean;
  /** Whether the flight was read to its end (ServerHelloDone up to TLS 1.2, Finished in 1.3). */
  complete: boolean;
  /** Why the flight could not be read to its end, when it could not. */
  unreadable: string | undefined;
}

const VERSIONS: Record<number, string> = { 0x0304: 'TLSv1.3', 0x0303: 'TLSv1.2', 0x0302: 'TLSv1.1', 0x0301: 'TLSv1', 0x0300: 'SSLv3' };

/** RFC 8446 §4.1.3: a ServerHello with this random is a HelloRetryRequest. */
const HELLO_RETRY_RANDOM = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

const RECORD = { changeCipherSpec: 20, alert: 21, handshake: 22, applicationData: 23 } as const;
const MESSAGE = { serverHello: 2, encryptedExtensions: 8, certificate: 11, certificateRequest: 13, serverHelloDone: 14, finished: 20 } as const;
const EXTENSION = { alpn: 16, supportedVersions: 43 } as const;

interface Aead {
  cipher: CipherGCMTypes | CipherCCMTypes | 'chacha20-poly1305';
  hash: 'sha256' | 'sha384';
  keyLength: number;
  tagLength: number;
}

/** The TLS 1.3 suites (RFC 8446 §B.4). */
const TLS13_SUITES: Record<number, Aead> = {
  0x1301: { cipher: 'aes-128-gcm', hash: 'sha256', keyLength: 16, tagLength: 16 },
  0x1302: { cipher: 'aes-256-gcm', hash: 'sha384', keyLength: 32, tagLength: 16 },
  0x1303: { cipher: 'chacha20-poly1305', hash: 'sha256', keyLength: 32, tagLength: 16 },
  0x1304: { cipher: 'aes-128-ccm', hash: 'sha256', keyLength: 16, tagLength: 16 },
  0x1305: { cipher: 'aes-128-ccm', hash: 'sha256', keyLength: 16, tagLength: 8 },
};

interface TlsRecord {
  type: number;
  header: Buffer;
  fragment: Buffer;
}

/** The complete records in the bytes; a trailing partial record is left out. */
export function splitRecords(bytes: Buffer): TlsRecord[] {
  const records: TlsRecord[] = [];
  for (let p = 0; p + 5 <= bytes.length; ) {
    const length = bytes.readUInt16BE(p + 3);
    if (p + 5 + length > bytes.length) break;
    records.push({ type: bytes[p]!, header: bytes.subarray(p, p + 5), fragment: bytes.subarray(p + 5, p + 5 + length) });
    p += 5 + length;
  }
  return records;
}

/** Handshake messages (type, body) in a handshake byte stream; a partial one at the end is left out. */
function messages(stream: Buffer): { type: number; body: Buffer }[] {
  const out: { type: number; body: Buffer }[] = [];
  for (let p = 0; p + 4 <= stream.length; ) {
    const length = stream.readUIntBE(p + 1, 3);
    if (p + 4 + length > stream.length) break;
    out.push({ type: stream[p]!, body: stream.subarray(p + 4, p + 4 + length) });
    p += 4 + length;
  }
  return out;
}

/** Extensions (RFC 8446 §4.2) from a uint16-length-prefixed block at offset. */
function extensions(body: Buffer, offset: number): Map<number, Buffer> {
  const found = new Map<number, Buffer>();
  if (offset + 2 > body.length) return found;
  const end = Math.min(body.length, offset + 2 + body.readUInt16BE(offset));
  for (let p = offset + 2; p + 4 <= end; ) {
    const length = body.readUInt16BE(p + 2);
    found.set(body.readUInt16BE(p), body.subarray(p + 4, p + 4 + length));
    p += 4 + length;
  }
  return found;
}

/** The protocol of an ALPN extension in a server's answer: a list of exactly one name (RFC 7301 §3.1). */
const alpnOf = (data: Buffer | undefined) => (data && data.length >= 3 ? data.subarray(3, 3 + data[2]!).toString('latin1') : undefined);

/** Certificates of a Certificate message: RFC 5246 §7.4.2, or RFC 8446 §4.4.2 with its context and per-entry extensions. */
function certificatesOf(body: Buffer, tls13: boolean): Buffer[] {
  let p = tls13 ? 1 + body[0]! : 0;
  const end = Math.min(body.length, p + 3 + body.readUIntBE(p, 3));
  p += 3;
  const out: Buffer[] = [];
  while (p + 3 <= end) {
    const length = body.readUIntBE(p, 3);
    out.push(Buffer.from(body.subarray(p + 3, p + 3 + length)));
    p += 3 + length;
    if (tls13) p += 2 + body.readUInt16BE(p);
  }
  return out;
}

/** RFC 8446 §7.1: HKDF-Expand-Label(secret, label, "", length), HKDF-Expand of RFC 5869 §2.3. */
export function hkdfExpandLabel(hash: 'sha256' | 'sha384', secret: Buffer, label: string, length: number): Buffer {
  const full = Buffer.from(`tls13 ${label}`, 'latin1');
  const info = Buffer.concat([Buffer.from([length >> 8, length & 0xff, full.length]), full, Buffer.from([0])]);
  const blocks: Buffer[] = [];
  let previous = Buffer.alloc(0);
  for (let i = 1; Buffer.concat(blocks).length < length; i++) {
    previous = createHmac(hash, secret).update(Buffer.concat([previous, info, Buffer.from([i])])).digest();
    blocks.push(previous);
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** Opens one TLS 1.3 record (RFC 8446 §5.2-5.3); returns the inner content type and content. */
function openRecord(aead: Aead, key: Buffer, iv: Buffer, sequence: number, record: TlsRecord): { type: number; content: Buffer } {
  const nonce = Buffer.from(iv);
  nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ sequence) >>> 0, 8);
  const sealed = record.fragment.subarray(0, record.fragment.length - aead.tagLength);
  const tag = record.fragment.subarray(record.fragment.length - aead.tagLength);
  const decipher = createDecipheriv(aead.cipher as CipherGCMTypes, key, nonce, { authTagLength: aead.tagLength });
  decipher.setAuthTag(tag);
  decipher.setAAD(record.header, { plaintextLength: sealed.length });
  const inner = Buffer.concat([decipher.update(sealed), decipher.final()]);
  let end = inner.length;
  while (end > 0 && inner[end - 1] === 0) end--;
  if (end === 0) throw new Error('a record without a content type');
  return { type: inner[end - 1]!, content: inner.subarray(0, end - 1) };
}

/**
 * Reads the server's flight from what it sent, given the key log lines node reported (label →
 * secret). Never throws: what could not be read is said in `unreadable`.
 */
export function readServerFlight(received: Buffer, secrets: ReadonlyMap<string, Buffer>): ServerFlight {
  const flight: ServerFlight = { version: undefined, cipherSuite: undefined, alpn: undefined, certificates: [], certificateRequested: false, complete: false, unreadable: undefined };
  try {
    const records = splitRecords(received);
    const plain: Buffer[] = [];
    for (const r of records) {
      if (r.type === RECORD.handshake) plain.push(r.fragment);
      else if (r.type === RECORD.changeCipherSpec && flight.version !== undefined && flight.version !== 'TLSv1.3') break;
      else if (r.type === RECORD.applicationData || r.type === RECORD.alert) break;
      // A TLS 1.3 middlebox-compatibility ChangeCipherSpec (RFC 8446 §D.4), after a ServerHello or
      // a HelloRetryRequest, is passed over.
      if (flight.version === undefined) {
        for (const m of messages(Buffer.concat(plain))) if (m.type === MESSAGE.serverHello) readServerHello(m.body, flight);
      }
    }
    if (flight.version === 'TLSv1.3') readEncryptedFlight(records, secrets, flight);
    else readPlainFlight(Buffer.concat(plain), flight);
  } catch (err) {
    flight.unreadable = `the handshake could not be read: ${(err as Error).message}`;
  }
  return flight;
}

/** ServerHello (RFC 8446 §4.1.3): version (supported_versions wins), suite, ALPN; a HelloRetryRequest is passed over. */
function readServerHello(body: Buffer, flight: ServerFlight): void {
  if (body.length < 38 || body.subarray(2, 34).equals(HELLO_RETRY_RANDOM)) return;
  const sessionIdEnd = 35 + body[34]!;
  const exts = extensions(body, sessionIdEnd + 3);
  const selected = exts.get(EXTENSION.supportedVersions);
  const version = selected && selected.length === 2 ? selected.readUInt16BE(0) : body.readUInt16BE(0);
  flight.version = VERSIONS[version] ?? `0x${version.toString(16).padStart(4, '0')}`;
  flight.cipherSuite = body.readUInt16BE(sessionIdEnd);
  flight.alpn = alpnOf(exts.get(EXTENSION.alpn));
}

/** Up to TLS 1.2: Certificate, ServerKeyExchange, CertificateRequest, ServerHelloDone in plaintext. */
function readPlainFlight(stream: Buffer, flight: ServerFlight): void {
  for (const m of messages(stream)) {
    if (m.type === MESSAGE.certificate) flight.certificates = certificatesOf(m.body, false);
    else if (m.type === MESSAGE.certificateRequest) flight.certificateRequested = true;
    else if (m.type === MESSAGE.serverHelloDone) {
      flight.complete = true;
      return;
    }
  }
  if (flight.version === undefined) flight.unreadable = 'the server sent no ServerHello';
}

/** TLS 1.3: EncryptedExtensions, CertificateRequest, Certificate, CertificateVerify, Finished, sealed. */
function readEncryptedFlight(records: TlsRecord[], secrets: ReadonlyMap<string, Buffer>, flight: ServerFlight): void {
  const aead = TLS13_SUITES[flight.cipherSuite ?? -1];
  const secret = secrets.get('SERVER_HANDSHAKE_TRAFFIC_SECRET');
  if (!aead) {
    flight.unreadable = `cipher suite 0x${flight.cipherSuite?.toString(16)} is not one this reader opens`;
    return;
  }
  if (!secret) {
    flight.unreadable = 'the handshake secret was not logged';
    return;
  }
  const key = hkdfExpandLabel(aead.hash, secret, 'key', aead.keyLength);
  const iv = hkdfExpandLabel(aead.hash, secret, 'iv', 12);
  const stream: Buffer[] = [];
  let sequence = 0;
  for (const r of records) {
    if (r.type !== RECORD.applicationData) continue;
    const inner = openRecord(aead, key, iv, sequence++, r);
    if (inner.type !== RECORD.handshake) break;
    stream.push(inner.content);
    for (const m of messages(Buffer.concat(stream))) {
      if (m.type === MESSAGE.encryptedExtensions) flight.alpn = alpnOf(extensions(m.body, 0).get(EXTENSION.alpn));
      else if (m.type === MESSAGE.certificateRequest) flight.certificateRequested = true;
      else if (m.type === MESSAGE.certificate) flight.certificates = certificatesOf(m.body, true);
      else if (m.type === MESSAGE.finished) {
        flight.complete = true;
        return;
      }
    }
  }
}
