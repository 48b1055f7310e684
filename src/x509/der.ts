/**
 * A minimal DER writer (ITU-T X.690 §10) for the fixed structures this CA emits: leaf
 * certificates and CRLs.
 *
 * Why by hand: @peculiar/x509 builds a certificate through a full ASN.1 object model (measured at
 * about 370 leaves/s per core, over 90% of it object work) and its CRL generator is quadratic in
 * the number of entries. The profile we emit is small and fixed, so encoding it is a few
 * concatenations of tag-length-value triples. Parsing stays with @peculiar/x509 and OpenSSL, and
 * the tests check every variant with independent parsers.
 */

export type Der = Uint8Array;

/** Tag numbers (universal class) used by the profile. */
export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  ENUMERATED: 0x0a,
  UTF8_STRING: 0x0c,
  PRINTABLE_STRING: 0x13,
  IA5_STRING: 0x16,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
  SEQUENCE: 0x30,
  SET: 0x31,
} as const;

/** The length octets of a DER length (definite form, shortest encoding). */
export function lengthOctets(length: number): Uint8Array {
  if (length < 0x80) return Uint8Array.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n & 0xff);
  return Uint8Array.of(0x80 | bytes.length, ...bytes);
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

/** One TLV with the given identifier octet. */
export function tlv(tag: number, ...content: Uint8Array[]): Der {
  const body = content.length === 1 ? content[0]! : concat(content);
  return concat([Uint8Array.of(tag), lengthOctets(body.length), body]);
}

export const sequence = (...items: Der[]): Der => tlv(TAG.SEQUENCE, ...items);

/** SET OF: DER sorts the encoded elements (X.690 §11.6). */
export function setOf(...items: Der[]): Der {
  const sorted = [...items].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return tlv(TAG.SET, ...sorted);
}

/** Context-specific tag [n]; constructed when the content is itself TLVs. */
export const contextTag = (n: number, constructed: boolean, ...content: Uint8Array[]): Der =>
  tlv((constructed ? 0xa0 : 0x80) | n, ...content);

export const nullValue = (): Der => Uint8Array.of(TAG.NULL, 0);

export const booleanValue = (v: boolean): Der => Uint8Array.of(TAG.BOOLEAN, 1, v ? 0xff : 0x00);

/**
 * INTEGER from unsigned big-endian magnitude octets: strips redundant leading zeros and adds a
 * 0x00 sign octet when the high bit is set, so the value stays positive.
 */
export function unsignedInteger(magnitude: Uint8Array): Der {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  const body = trimmed.length === 0 ? Uint8Array.of(0) : (trimmed[0]! & 0x80) !== 0 ? concat([Uint8Array.of(0), trimmed]) : trimmed;
  return tlv(TAG.INTEGER, body);
}

export function smallInteger(n: number): Der {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError('smallInteger takes a non-negative safe integer');
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return unsignedInteger(Uint8Array.from(bytes.length ? bytes : [0]));
}

export function bigInteger(n: bigint): Der {
  if (n < 0n) throw new RangeError('bigInteger takes a non-negative value');
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return unsignedInteger(Buffer.from(hex, 'hex'));
}

/** OBJECT IDENTIFIER from dotted text (X.690 §8.19). */
export function oid(dotted: string): Der {
  const arcs = dotted.split('.').map((a) => BigInt(a));
  if (arcs.length < 2) throw new RangeError(`bad OID ${dotted}`);
  const first = arcs[0]! * 40n + arcs[1]!;
  const out: number[] = [];
  for (const arc of [first, ...arcs.slice(2)]) {
    const chunk: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) chunk.unshift(Number(v & 0x7fn) | 0x80);
    out.push(...chunk);
  }
  return tlv(TAG.OID, Uint8Array.from(out));
}

export const octetString = (content: Uint8Array): Der => tlv(TAG.OCTET_STRING, content);

/** BIT STRING with the given number of unused bits in the last octet. */
export const bitString = (content: Uint8Array, unusedBits = 0): Der => tlv(TAG.BIT_STRING, Uint8Array.of(unusedBits), content);

export const utf8String = (s: string): Der => tlv(TAG.UTF8_STRING, Buffer.from(s, 'utf8'));

export const ia5String = (s: string): Der => tlv(TAG.IA5_STRING, Buffer.from(s, 'ascii'));

const pad2 = (n: number) => String(n).padStart(2, '0');

/**
 * RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; always Zulu, with seconds,
 * no fractions.
 */
export function time(d: Date): Der {
  const y = d.getUTCFullYear();
  const rest = `${pad2(d.getUTCMonth() + 1)}${pad2(d.getUTCDate())}${pad2(d.getUTCHours())}${pad2(d.getUTCMinutes())}${pad2(d.getUTCSeconds())}Z`;
  if (y >= 1950 && y < 2050) return tlv(TAG.UTC_TIME, Buffer.from(`${pad2(y % 100)}${rest}`, 'ascii'));
  return tlv(TAG.GENERALIZED_TIME, Buffer.from(`${String(y).padStart(4, '0')}${rest}`, 'ascii'));
}

/**
 * Reads the TLV at offset in a DER buffer: its tag, where its content starts and ends.
 * Throws RangeError on a truncated, indefinite-length or non-minimal length (DER, X.690 §10.1):
 * what is read here may be copied into a certificate, which must be DER throughout.
 */
export function readTlv(buf: Uint8Array, offset: number): { tag: number; start: number; end: number; headerLength: number } {
  if (offset + 2 > buf.length) throw new RangeError('truncated DER');
  const tag = buf[offset]!;
  if ((tag & 0x1f) === 0x1f) throw new RangeError('high tag numbers are not used here');
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new RangeError('unsupported DER length');
    if (p + n > buf.length) throw new RangeError('truncated DER');
    if (buf[p] === 0) throw new RangeError('non-minimal DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    if (len < 0x80) throw new RangeError('non-minimal DER length');
    p += n;
  }
  if (p + len > buf.length) throw new RangeError('truncated DER');
  return { tag, start: p, end: p + len, headerLength: p - offset };
}

/** Walks a DER value and every constructed value inside it; throws on a malformed encoding. */
export function assertWellFormedDer(der: Uint8Array, start = 0, end = der.length): void {
  let p = start;
  while (p < end) {
    const t = readTlv(der, p);
    if (t.end > end) throw new RangeError('DER value overruns its parent');
    if (t.tag & 0x20) assertWellFormedDer(der, t.start, t.end);
    p = t.end;
  }
}
