/**
 * CRLs (RFC 5280 §5), encoded as a stream: entries are appended straight into one growing
 * buffer of DER, with no object per entry, so a CRL of a million entries is built in about a
 * second with flat memory. (@peculiar/x509's CRL generator is quadratic in the entries.)
 *
 * Profile: v2; issuer = the intermediate's subject, byte for byte; thisUpdate/nextUpdate;
 * one entry per revoked, unexpired certificate with its revocation date and, unless the reason
 * is `unspecified`, a reasonCode extension (§5.3.1); CRL extensions authorityKeyIdentifier
 * (§5.2.1) and cRLNumber (§5.2.3).
 */
import { REVOCATION_REASONS, type RevocationReason } from '../model.js';
import { booleanValue, concat, contextTag, lengthOctets, octetString, oid, sequence, smallInteger, tlv, time, type Der, TAG } from '../x509/der.js';

export interface CrlHeader {
  number: number;
  thisUpdate: Date;
  nextUpdate: Date;
}

export interface CrlIssuer {
  subjectDer: Uint8Array;
  keyIdentifier: Uint8Array;
  signatureAlgorithm: Der;
}

/** The reasonCode entry extension for each reason, encoded once. */
const REASON_EXTENSIONS = new Map<RevocationReason, Buffer>(
  (Object.entries(REVOCATION_REASONS) as [RevocationReason, number][])
    .filter(([name]) => name !== 'unspecified')
    .map(([name, code]) => [name, Buffer.from(sequence(sequence(oid('2.5.29.21'), octetString(tlv(TAG.ENUMERATED, Uint8Array.of(code))))))]),
);

/** An append-only DER byte buffer that doubles as it fills. */
class ByteSink {
  private buf = Buffer.allocUnsafe(1 << 16);
  length = 0;
  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  /** Room for n more bytes at `length`; the caller writes them and advances `length`. */
  claim(n: number): Buffer {
    this.reserve(n);
    return this.buf;
  }
  view(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

export class CrlEntries {
  private readonly sink = new ByteSink();
  private day = Number.NaN;
  private dayHead: Buffer = Buffer.alloc(0);
  count = 0;

  /**
   * The DER Time of a revocation second is this day's head (tag, length and date digits, from
   * der.ts's time(), kept while entries share a day) and then "hhmmssZ", written digit by digit:
   * encoding a Date per entry was most of the cost at a million entries.
   */
  private headOfDay(day: number): Buffer {
    if (day !== this.day) {
      const whole = Buffer.from(time(new Date(day * 86_400_000)));
      this.day = day;
      this.dayHead = whole.subarray(0, whole.length - 7);
    }
    return this.dayHead;
  }

  /**
   * Appends one revokedCertificates entry (RFC 5280 §5.1.2.6): the serial as canonical
   * lower-case hex (at most 20 octets), the revocation time in whole seconds since the epoch.
   * Every entry is under 128 octets, so its lengths are single octets.
   */
  add(serialHex: string, revokedAtSeconds: number, reason: RevocationReason): void {
    const octets = serialHex.length / 2;
    // Canonical serials never start with a zero octet (a DER INTEGER must be minimal).
    if (!Number.isInteger(octets) || octets < 1 || octets > 20 || serialHex.startsWith('00')) throw new RangeError(`bad serial ${serialHex}`);
    if (!Number.isSafeInteger(revokedAtSeconds)) throw new RangeError(`bad revocation time ${revokedAtSeconds}`);
    const ext = REASON_EXTENSIONS.get(reason);
    if (!ext && reason !== 'unspecified') throw new RangeError(`bad revocation reason ${reason}`);
    const pad = parseInt(serialHex[0]!, 16) >= 8 ? 1 : 0;
    const day = Math.floor(revokedAtSeconds / 86_400);
    const head = this.headOfDay(day);
    const timeLength = head.length + 7;
    const intLength = octets + pad;
    const inner = 2 + intLength + timeLength + (ext ? ext.length : 0);
    const out = this.sink.claim(2 + inner);
    let p = this.sink.length;
    out[p++] = 0x30;
    out[p++] = inner;
    out[p++] = TAG.INTEGER;
    out[p++] = intLength;
    if (pad) out[p++] = 0;
    if (out.write(serialHex, p, 'hex') !== octets) throw new RangeError(`bad serial ${serialHex}`);
    p += octets;
    p += head.copy(out, p);
    let rest = revokedAtSeconds - day * 86_400;
    const hours = Math.floor(rest / 3600);
    rest -= hours * 3600;
    const minutes = Math.floor(rest / 60);
    rest -= minutes * 60;
    out[p++] = 0x30 + Math.floor(hours / 10);
    out[p++] = 0x30 + (hours % 10);
    out[p++] = 0x30 + Math.floor(minutes / 10);
    out[p++] = 0x30 + (minutes % 10);
    out[p++] = 0x30 + Math.floor(rest / 10);
    out[p++] = 0x30 + (rest % 10);
    out[p++] = 0x5a; // 'Z'
    if (ext) p += ext.copy(out, p);
    this.sink.length = p;
    this.count++;
  }

  get der(): Buffer {
    return this.sink.view();
  }
}

function extension(id: string, critical: boolean, value: Der): Der {
  return critical ? sequence(oid(id), booleanValue(true), octetString(value)) : sequence(oid(id), octetString(value));
}

/** TBSCertList (RFC 5280 §5.1.2) around already-encoded entries. */
export function encodeCrlTbs(header: CrlHeader, issuer: CrlIssuer, entries: CrlEntries): Buffer {
  const extensions = contextTag(
    0,
    true,
    sequence(
      extension('2.5.29.35', false, sequence(tlv(0x80, issuer.keyIdentifier))),
      extension('2.5.29.20', false, smallInteger(header.number)),
    ),
  );
  const head = concat([smallInteger(1), issuer.signatureAlgorithm, issuer.subjectDer, time(header.thisUpdate), time(header.nextUpdate)]);
  const parts: Uint8Array[] = [head];
  if (entries.count > 0) parts.push(Uint8Array.of(0x30), lengthOctets(entries.der.length), entries.der);
  parts.push(extensions);
  const contentLength = parts.reduce((n, p) => n + p.length, 0);
  return Buffer.concat([Uint8Array.of(0x30), lengthOctets(contentLength), ...parts], 1 + lengthOctets(contentLength).length + contentLength);
}

/** CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signatureValue } (§5.1.1). */
export function encodeSignedCrl(tbs: Buffer, signatureAlgorithm: Der, signature: Uint8Array): Buffer {
  const sig = concat([Uint8Array.of(TAG.BIT_STRING), lengthOctets(signature.length + 1), Uint8Array.of(0), signature]);
  const length = tbs.length + signatureAlgorithm.length + sig.length;
  return Buffer.concat([Uint8Array.of(0x30), lengthOctets(length), tbs, signatureAlgorithm, sig]);
}
