/**
 * Properties of the DER reader and writer (src/x509/der.ts, X.690 §8 and §10) and of the PEM
 * armour (src/x509/pem.ts, RFC 7468), checked against the independent encoder and walker in
 * test/setup/crafted.ts and decoders written here: readTlv throws nothing but RangeError on any
 * octets; what the writer encodes, the reader and the independent decoders read back.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bigInteger, lengthOctets, oid, readTlv, setOf, smallInteger, time, tlv, unsignedInteger } from '../../src/x509/der.js';
import { pemBlocks, toPem } from '../../src/x509/pem.js';
import { encodeTlv, tlvAt } from '../setup/crafted.js';
import { checkSync } from './support.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

/** Octets that look like a TLV header more often than random ones do. */
const tlvLike = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc
    .tuple(fc.nat(255), fc.integer({ min: 0, max: 6 }), fc.uint8Array({ minLength: 0, maxLength: 6 }), fc.uint8Array({ maxLength: 40 }))
    .map(([tag, n, len, rest]) => Uint8Array.from([tag, n === 0 ? len.length : 0x80 | n, ...len.subarray(0, n), ...rest])),
);

describe('readTlv on arbitrary octets', () => {
  it('returns a TLV inside the buffer that matches an independent reading, or throws RangeError', () => {
    checkSync(
      fc.property(tlvLike, fc.nat(50), (buf, at) => {
        const offset = Math.min(at, buf.length + 1);
        let got: ReturnType<typeof readTlv>;
        try {
          got = readTlv(buf, offset);
        } catch (err) {
          assert.ok(err instanceof RangeError, `readTlv threw ${(err as Error)?.constructor?.name}: ${String(err)}`);
          return;
        }
        assert.ok(offset + 2 <= buf.length, 'a TLV needs at least two octets');
        assert.equal(got.tag, buf[offset]);
        assert.notEqual(got.tag & 0x1f, 0x1f, 'high tag numbers are refused');
        assert.equal(got.headerLength, got.start - offset);
        assert.ok(got.start <= got.end && got.end <= buf.length, `content ${got.start}..${got.end} inside ${buf.length} octets`);
        const first = buf[offset + 1]!;
        if (first < 0x80) {
          assert.equal(got.headerLength, 2);
          assert.equal(got.end - got.start, first);
        } else {
          const n = first & 0x7f;
          assert.ok(n >= 1 && n <= 4, 'long form with 1 to 4 length octets');
          assert.equal(got.headerLength, 2 + n);
          let len = 0;
          for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i]!;
          assert.equal(got.end - got.start, len);
        }
      }),
      6000,
    );
  });

  it('reads back every TLV that the independent encoder writes, and the writer agrees with it', () => {
    const lengths = fc.oneof(fc.nat(300), fc.constantFrom(127, 128, 255, 256, 65535, 65536, 70000));
    const tags = fc.nat(255).filter((t) => (t & 0x1f) !== 0x1f);
    checkSync(
      fc.property(tags, lengths, fc.nat(255), fc.uint8Array({ maxLength: 8 }), (tag, length, fill, tail) => {
        const content = new Uint8Array(length).fill(fill);
        const encoded = encodeTlv(tag, content);
        assert.equal(hex(tlv(tag, content)), hex(encoded), 'src tlv() writes what the independent encoder writes');
        const withTail = Buffer.concat([encoded, tail]);
        const got = readTlv(withTail, 0);
        const independent = tlvAt(withTail, 0);
        assert.deepEqual(got, { tag, start: independent.start, end: independent.end, headerLength: independent.start });
        assert.equal(got.end - got.start, length);
        assert.equal(hex(lengthOctets(length)), hex(encoded.subarray(1, got.start)), 'lengthOctets is the shortest form');
      }),
      2000,
    );
  });
});

/** The INTEGER's value as two's complement, read independently. */
function integerValue(der: Uint8Array): { value: bigint; content: Uint8Array } {
  const t = tlvAt(der, 0);
  assert.equal(t.tag, 0x02, 'an INTEGER');
  assert.equal(t.end, der.length, 'one TLV, nothing after it');
  const content = der.subarray(t.start, t.end);
  assert.ok(content.length > 0, 'an INTEGER has content');
  let value = BigInt(`0x${hex(content)}`);
  if (content[0]! & 0x80) value -= 1n << BigInt(content.length * 8);
  return { value, content };
}

function assertMinimalPositive(content: Uint8Array): void {
  assert.equal(content[0]! & 0x80, 0, 'positive');
  if (content.length > 1) assert.ok(!(content[0] === 0 && content[1]! < 0x80), `no redundant leading zero octet: ${hex(content)}`);
}

describe('INTEGER writers', () => {
  it('unsignedInteger encodes the magnitude as a minimal positive INTEGER', () => {
    checkSync(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), (magnitude) => {
        const { value, content } = integerValue(unsignedInteger(magnitude));
        assert.equal(value, BigInt(`0x${hex(magnitude)}`));
        assertMinimalPositive(content);
      }),
      2000,
    );
  });

  it('bigInteger and smallInteger encode their value as a minimal positive INTEGER; negatives are RangeErrors', () => {
    checkSync(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 170n) - 1n }), fc.nat({ max: Number.MAX_SAFE_INTEGER }), (big, small) => {
        const b = integerValue(bigInteger(big));
        assert.equal(b.value, big);
        assertMinimalPositive(b.content);
        const s = integerValue(smallInteger(small));
        assert.equal(s.value, BigInt(small));
        assertMinimalPositive(s.content);
        assert.throws(() => bigInteger(-1n - big), RangeError);
        assert.throws(() => smallInteger(-1 - small), RangeError);
      }),
      2000,
    );
  });
});

/** Dotted text of an OBJECT IDENTIFIER, decoded independently (X.690 §8.19). */
function decodeOid(der: Uint8Array): string {
  const t = tlvAt(der, 0);
  assert.equal(t.tag, 0x06);
  assert.equal(t.end, der.length);
  const arcs: bigint[] = [];
  let v = 0n;
  let fresh = true;
  for (const b of der.subarray(t.start, t.end)) {
    assert.ok(!(fresh && b === 0x80), 'subidentifiers have no leading 0x80 octet');
    v = (v << 7n) | BigInt(b & 0x7f);
    fresh = false;
    if (!(b & 0x80)) {
      arcs.push(v);
      v = 0n;
      fresh = true;
    }
  }
  assert.ok(fresh, 'the last subidentifier ends');
  const first = arcs.shift()!;
  const top = first < 40n ? 0n : first < 80n ? 1n : 2n;
  return [top, first - top * 40n, ...arcs].join('.');
}

describe('OBJECT IDENTIFIER, time and SET OF writers', () => {
  it('oid writes arcs that decode to the same dotted text', () => {
    const arcs = fc.oneof(fc.nat(200), fc.nat({ max: Number.MAX_SAFE_INTEGER }));
    checkSync(
      fc.property(fc.nat(2), fc.nat(39), fc.nat(500), fc.array(arcs, { maxLength: 10 }), (a, b, b2, rest) => {
        const dotted = [a, a === 2 ? b2 : b, ...rest].join('.');
        assert.equal(decodeOid(oid(dotted)), dotted);
      }),
      2000,
    );
  });

  it('time writes UTCTime for 1950-2049 and GeneralizedTime otherwise, for the same second', () => {
    checkSync(
      fc.property(fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), (d) => {
        const der = time(d);
        const t = tlvAt(der, 0);
        const text = Buffer.from(der.subarray(t.start, t.end)).toString('ascii');
        const y = d.getUTCFullYear();
        const utc = y >= 1950 && y < 2050;
        assert.equal(t.tag, utc ? 0x17 : 0x18);
        const m = (utc ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/ : /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/).exec(text);
        assert.ok(m, `time text ${text}`);
        const year = utc ? (Number(m[1]) < 50 ? 2000 : 1900) + Number(m[1]) : Number(m[1]);
        const back = new Date(0);
        back.setUTCFullYear(year, Number(m[2]) - 1, Number(m[3]));
        back.setUTCHours(Number(m[4]), Number(m[5]), Number(m[6]), 0);
        assert.equal(back.getTime(), Math.floor(d.getTime() / 1000) * 1000, `${text} for ${d.toISOString()}`);
      }),
      2000,
    );
  });

  it('setOf sorts its elements by their encodings and keeps every one', () => {
    checkSync(
      fc.property(fc.array(fc.tuple(fc.constantFrom(0x02, 0x04, 0x06, 0x0c, 0x30), fc.uint8Array({ maxLength: 6 })), { maxLength: 8 }), (items) => {
        const encoded = items.map(([tag, content]) => tlv(tag, content));
        const set = setOf(...encoded);
        const outer = tlvAt(set, 0);
        assert.equal(outer.tag, 0x31);
        const got: string[] = [];
        for (let p = outer.start; p < outer.end; ) {
          const e = tlvAt(set, p);
          got.push(hex(set.subarray(p, e.end)));
          p = e.end;
        }
        const expected = encoded.map(hex).sort((x, y) => Buffer.compare(Buffer.from(x, 'hex'), Buffer.from(y, 'hex')));
        assert.deepEqual(got, expected);
      }),
      1000,
    );
  });
});

describe('PEM armour', () => {
  const label = fc.constantFrom('CERTIFICATE', 'CERTIFICATE REQUEST', 'X509 CRL', 'PRIVATE KEY');
  const junk = fc.string({ unit: 'binary-ascii', maxLength: 40 }).map((s) => s.replace(/-/g, ''));

  it('pemBlocks reads back, in order, every block toPem wrote with its label, among any other text', () => {
    checkSync(
      fc.property(fc.array(fc.tuple(label, fc.uint8Array({ maxLength: 200 }), junk), { maxLength: 5 }), junk, label, (blocks, head, wanted) => {
        const text = head + blocks.map(([l, der, after]) => toPem(der, l) + after).join('');
        const expected = blocks.filter(([l]) => l === wanted).map(([, der]) => hex(der));
        assert.deepEqual(pemBlocks(text, wanted).map(hex), expected);
      }),
      1500,
    );
  });
});
