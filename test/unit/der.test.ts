/**
 * The DER writer (src/x509/der.ts, ITU-T X.690 §8 and §10) against known vectors, against what
 * `openssl asn1parse -genstr` encodes for the same value, and read back by `openssl asn1parse`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  bigInteger, bitString, booleanValue, contextTag, ia5String, lengthOctets, nullValue, octetString, oid, readTlv, sequence, setOf,
  smallInteger, time, tlv, unsignedInteger, utf8String,
} from '../../src/x509/der.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

function withTemp<T>(work: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-der-'));
  try {
    return work(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `openssl asn1parse -i` of a DER value: one line per TLV. */
function asn1parse(der: Uint8Array): string[] {
  return withTemp((dir) => {
    writeFileSync(join(dir, 'v.der'), der);
    return execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-i', '-in', join(dir, 'v.der')], { encoding: 'utf8' }).trim().split('\n');
  });
}

/** What openssl itself encodes for an ASN1_generate_nconf string such as "OID:1.2.3". */
function genstr(spec: string): string {
  return withTemp((dir) => {
    execFileSync('openssl', ['asn1parse', '-genstr', spec, '-noout', '-out', join(dir, 'v.der')], { stdio: 'pipe' });
    return hex(readFileSync(join(dir, 'v.der')));
  });
}

describe('lengths', () => {
  const vectors: [number, string][] = [
    [0, '00'], [1, '01'], [127, '7f'], [128, '8180'], [255, '81ff'], [256, '820100'], [65535, '82ffff'], [65536, '83010000'], [16777216, '8401000000'],
  ];
  for (const [n, expected] of vectors) {
    it(`encodes length ${n} as ${expected} (definite, shortest form)`, () => assert.equal(hex(lengthOctets(n)), expected));
  }

  it('writes OCTET STRINGs of 127, 128, 256 and 65536 octets that openssl reads with the right header and length', () => {
    for (const [n, headerLength] of [[127, 2], [128, 3], [256, 4], [65536, 5]] as const) {
      const der = octetString(new Uint8Array(n).fill(0x5a));
      assert.equal(der.length, headerLength + n);
      const [line] = asn1parse(der);
      assert.match(line!, new RegExp(`^\\s*0:d=0\\s+hl=${headerLength}\\s+l=\\s*${n}\\s+prim: OCTET STRING`), line);
      const back = readTlv(der, 0);
      assert.deepEqual(back, { tag: 0x04, start: headerLength, end: headerLength + n, headerLength });
    }
  });
});

describe('OBJECT IDENTIFIER', () => {
  const vectors: [string, string, string][] = [
    ['1.2.840.113549.1.1.11', '06092a864886f70d01010b', 'sha256WithRSAEncryption'],
    ['1.2.840.10045.4.3.2', '06082a8648ce3d040302', 'ecdsa-with-SHA256'],
    ['1.2.840.10045.4.3.3', '06082a8648ce3d040303', 'ecdsa-with-SHA384'],
    ['1.3.101.112', '06032b6570', 'ED25519'],
    ['2.5.29.17', '0603551d11', 'X509v3 Subject Alternative Name'],
    ['2.5.4.3', '0603550403', 'commonName'],
    ['1.3.6.1.5.5.7.48.2', '06082b06010505073002', 'CA Issuers'],
    ['1.2.840.113549.1.9.14', '06092a864886f70d01090e', 'Extension Request'],
    ['2.999.3', '0603883703', '2.999.3'],
    ['0.9.2342.19200300.100.1.25', '060a0992268993f22c640119', 'domainComponent'],
  ];
  for (const [dotted, expected, name] of vectors) {
    it(`encodes ${dotted} (${name})`, () => {
      const der = oid(dotted);
      assert.equal(hex(der), expected);
      assert.equal(hex(der), genstr(`OID:${dotted}`));
      assert.match(asn1parse(der)[0]!, new RegExp(`prim: OBJECT\\s+:${name}$`));
    });
  }

  it('encodes arcs wider than 53 bits exactly (a UUID arc under 2.25)', () => {
    const dotted = '2.25.329800735698586629295641978511506172918';
    assert.equal(hex(oid(dotted)), genstr(`OID:${dotted}`));
    assert.match(asn1parse(oid(dotted))[0]!, /:2\.25\.329800735698586629295641978511506172918$/);
  });

  it('refuses an OID with fewer than two arcs', () => {
    assert.throws(() => oid('1'), RangeError);
  });
});

describe('INTEGER', () => {
  it('adds a 00 sign octet when the high bit is set and strips redundant zeros', () => {
    const vectors: [number[], string][] = [
      [[], '020100'],
      [[0x00], '020100'],
      [[0x00, 0x00], '020100'],
      [[0x01], '020101'],
      [[0x7f], '02017f'],
      [[0x80], '02020080'],
      [[0xff], '020200ff'],
      [[0x00, 0x80], '02020080'],
      [[0x00, 0x00, 0x7f], '02017f'],
      [[0x00, 0x00, 0x80, 0x00], '0203008000'],
      [[0x01, 0x00], '02020100'],
    ];
    for (const [magnitude, expected] of vectors) {
      assert.equal(hex(unsignedInteger(Uint8Array.from(magnitude))), expected, `magnitude ${hex(Uint8Array.from(magnitude))}`);
    }
  });

  it('matches openssl for small and large values, all read back as positive', () => {
    const values = [0n, 1n, 127n, 128n, 255n, 256n, 32767n, 32768n, 65535n, 65536n, 2n ** 63n, 2n ** 64n - 1n, 2n ** 159n - 1n, 2n ** 159n, 2n ** 160n - 1n];
    for (const v of values) {
      const der = bigInteger(v);
      assert.equal(hex(der), genstr(`INTEGER:${v}`), `value ${v}`);
      const line = asn1parse(der)[0]!;
      assert.match(line, /prim: INTEGER\s+:[0-9A-F]+$/, `value ${v} reads as positive: ${line}`);
      assert.equal(BigInt(`0x${line.split(':').pop()}`), v);
      if (v <= BigInt(Number.MAX_SAFE_INTEGER)) assert.equal(hex(smallInteger(Number(v))), hex(der));
    }
  });

  it('keeps a 20-octet serial with the top bit clear at 20 octets (RFC 5280 §4.1.2.2)', () => {
    const serial = Uint8Array.from({ length: 20 }, (_, i) => (i === 0 ? 0x7f : 0xff));
    const der = unsignedInteger(serial);
    assert.equal(der.length, 22);
    assert.equal(hex(der.subarray(0, 3)), '02147f');
  });

  it('refuses negative values', () => {
    assert.throws(() => bigInteger(-1n), RangeError);
    assert.throws(() => smallInteger(-1), RangeError);
    assert.throws(() => smallInteger(1.5), RangeError);
  });
});

describe('time', () => {
  const vectors: [string, string, 'UTCTIME' | 'GENERALIZEDTIME', string][] = [
    ['1950-01-01T00:00:00Z', '170d3530303130313030303030305a', 'UTCTIME', '500101000000Z'],
    ['1949-12-31T23:59:59Z', '180f31393439313233313233353935395a', 'GENERALIZEDTIME', '19491231235959Z'],
    ['2025-03-04T05:06:07Z', '170d3235303330343035303630375a', 'UTCTIME', '250304050607Z'],
    ['2049-12-31T23:59:59Z', '170d3439313233313233353935395a', 'UTCTIME', '491231235959Z'],
    ['2050-01-01T00:00:00Z', '180f32303530303130313030303030305a', 'GENERALIZEDTIME', '20500101000000Z'],
    ['9999-12-31T23:59:59Z', '180f39393939313233313233353935395a', 'GENERALIZEDTIME', '99991231235959Z'],
  ];
  for (const [iso, expected, kind, text] of vectors) {
    it(`writes ${iso} as ${kind} ${text}`, () => {
      const der = time(new Date(iso));
      assert.equal(hex(der), expected);
      assert.equal(hex(der), genstr(`${kind === 'UTCTIME' ? 'UTCTIME' : 'GENTIME'}:${text}`));
      assert.match(asn1parse(der)[0]!, new RegExp(`prim: ${kind}\\s+:${text}$`));
    });
  }

  it('drops fractions of a second, always in UTC', () => {
    assert.equal(Buffer.from(time(new Date('2030-06-15T12:34:56.999Z')).subarray(2)).toString('ascii'), '300615123456Z');
    assert.equal(Buffer.from(time(new Date('2030-06-15T23:30:00-02:00')).subarray(2)).toString('ascii'), '300616013000Z');
  });
});

describe('other types', () => {
  it('encodes BOOLEAN, NULL, BIT STRING, strings and context tags', () => {
    assert.equal(hex(booleanValue(true)), '0101ff');
    assert.equal(hex(booleanValue(false)), '010100');
    assert.equal(hex(nullValue()), '0500');
    assert.equal(hex(bitString(Uint8Array.of(0x80), 7)), '03020780');
    assert.equal(hex(bitString(Uint8Array.of(0xa0), 5)), '030205a0');
    assert.equal(hex(bitString(Uint8Array.of(1, 2))), '0303000102');
    assert.equal(hex(utf8String('é')), '0c02c3a9');
    assert.equal(hex(ia5String('a.b')), '1603612e62');
    assert.equal(hex(contextTag(0, true, Uint8Array.of(0x02, 0x01, 0x02))), 'a003020102');
    assert.equal(hex(contextTag(6, false, Buffer.from('x'))), '860178');
    assert.equal(hex(sequence()), '3000');
    assert.equal(hex(tlv(0x04, Uint8Array.of(1), Uint8Array.of(2, 3))), '0403010203');
  });

  it('sorts SET OF members by their encodings (X.690 §11.6)', () => {
    const a = oid('2.5.4.3');
    const b = oid('2.5.4.10');
    const c = utf8String('z');
    const set = setOf(c, b, a);
    assert.equal(hex(set), `31${(a.length + b.length + c.length).toString(16).padStart(2, '0')}${[hex(a), hex(b), hex(c)].sort().join('')}`);
    assert.equal(hex(setOf(b, a)), hex(setOf(a, b)));
  });

  it('builds nested structures openssl walks with the right depths', () => {
    const der = sequence(
      oid('1.2.840.10045.4.3.2'),
      sequence(smallInteger(2), booleanValue(true), contextTag(3, true, octetString(new Uint8Array(300)))),
      setOf(sequence(oid('2.5.4.3'), utf8String('web.shop.svc'))),
      time(new Date('2050-01-01T00:00:00Z')),
    );
    const lines = asn1parse(der).map((l) => l.replace(/^\s*\d+:/, '').replace(/\s+/g, ' ').trim());
    assert.deepEqual(lines.map((l) => /d=(\d+)/.exec(l)![1]), ['0', '1', '1', '2', '2', '2', '3', '1', '2', '3', '3', '1']);
    assert.match(lines[0]!, /^d=0 hl=4 l= 3\d\d cons: SEQUENCE/);
    assert.match(lines[6]!, /^d=3 hl=4 l= 300 prim: OCTET STRING/);
    assert.match(lines[10]!, /prim: UTF8STRING :web\.shop\.svc$/);
    assert.match(lines[11]!, /prim: GENERALIZEDTIME :20500101000000Z$/);
  });
});

describe('readTlv', () => {
  it('reads short and long forms and nested offsets', () => {
    const der = sequence(octetString(new Uint8Array(200)), nullValue());
    const outer = readTlv(der, 0);
    assert.deepEqual(outer, { tag: 0x30, start: 3, end: der.length, headerLength: 3 });
    const inner = readTlv(der, outer.start);
    assert.deepEqual(inner, { tag: 0x04, start: 6, end: 206, headerLength: 3 });
    assert.deepEqual(readTlv(der, inner.end), { tag: 0x05, start: 208, end: 208, headerLength: 2 });
  });

  it('refuses truncated, indefinite-length and oversized encodings with a RangeError', () => {
    const bad: [string, number[]][] = [
      ['empty', []],
      ['tag only', [0x30]],
      ['content cut short', [0x04, 0x05, 1, 2]],
      ['length octets cut short', [0x04, 0x82, 0x01]],
      ['indefinite length', [0x30, 0x80, 0x00, 0x00]],
      ['five length octets', [0x04, 0x85, 0, 0, 0, 0, 1, 0]],
      ['high tag number', [0x1f, 0x81, 0x01, 0x00]],
      ['a length past the end', [0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x00]],
    ];
    for (const [name, bytes] of bad) {
      assert.throws(() => readTlv(Uint8Array.from(bytes), 0), RangeError, name);
    }
  });
});
