/**
 * The streaming CRL entry encoder (src/signer/crl-profile.ts) against entries built the slow way
 * from der.ts's primitives (one Date and one time() per entry), and against openssl's reading.
 * The fast path writes the time of day digit by digit, so the cases cover day and century edges
 * and the UTCTime/GeneralizedTime switch of RFC 5280 §4.1.2.5.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REVOCATION_REASONS, type RevocationReason } from '../../src/model.js';
import { CrlEntries } from '../../src/signer/crl-profile.js';
import { octetString, oid, sequence, time, tlv, unsignedInteger, TAG } from '../../src/x509/der.js';

const REASONS = Object.keys(REVOCATION_REASONS) as RevocationReason[];

/** revokedCertificates entry (RFC 5280 §5.1.2.6) from the general-purpose DER writer. */
function slowEntry(serialHex: string, seconds: number, reason: RevocationReason): Buffer {
  const parts = [unsignedInteger(Buffer.from(serialHex, 'hex')), time(new Date(seconds * 1000))];
  if (reason !== 'unspecified') {
    parts.push(sequence(sequence(oid('2.5.29.21'), octetString(tlv(TAG.ENUMERATED, Uint8Array.of(REVOCATION_REASONS[reason]))))));
  }
  return Buffer.from(sequence(...parts));
}

function canonicalSerial(): string {
  const bytes = randomBytes(1 + Math.floor(Math.random() * 20));
  if (bytes[0] === 0) bytes[0] = 1;
  return bytes.toString('hex');
}

const EDGES = [
  Date.UTC(1950, 0, 1) / 1000,
  -1,
  0,
  Date.UTC(1999, 11, 31, 23, 59, 59) / 1000,
  Date.UTC(2000, 1, 29, 12, 0, 0) / 1000,
  Date.UTC(2026, 10, 28, 0, 0, 0) / 1000,
  Date.UTC(2026, 10, 28, 23, 59, 59) / 1000,
  Date.UTC(2049, 11, 31, 23, 59, 59) / 1000,
  Date.UTC(2050, 0, 1, 0, 0, 0) / 1000,
  Date.UTC(2100, 2, 1, 9, 8, 7) / 1000,
];

describe('CRL entries', () => {
  it('encode byte for byte what the general DER writer encodes, across days, centuries and every reason', () => {
    const cases: [string, number, RevocationReason][] = [];
    for (const s of EDGES) for (const r of REASONS) cases.push([canonicalSerial(), s, r]);
    const from = Date.UTC(1950, 0, 1) / 1000;
    const to = Date.UTC(2120, 0, 1) / 1000;
    for (let i = 0; i < 5000; i++) {
      // Runs of entries in one day, then a jump: the per-day head must be refreshed on every change.
      const day = from + Math.floor(Math.random() * (to - from));
      for (let k = 0; k < 1 + (i % 3); k++) cases.push([canonicalSerial(), day + Math.floor(Math.random() * 86_400), REASONS[i % REASONS.length]!]);
    }
    const entries = new CrlEntries();
    for (const [serial, seconds, reason] of cases) entries.add(serial, seconds, reason);
    assert.equal(entries.count, cases.length);
    const expected = Buffer.concat(cases.map(([serial, seconds, reason]) => slowEntry(serial, seconds, reason)));
    assert.equal(entries.der.toString('hex'), expected.toString('hex'));
  });

  it('are read by openssl with their times and reason codes', () => {
    const entries = new CrlEntries();
    entries.add('7f01', Date.UTC(2049, 11, 31, 23, 59, 59) / 1000, 'keyCompromise');
    entries.add('80', Date.UTC(2050, 0, 1, 0, 0, 0) / 1000, 'privilegeWithdrawn');
    const dir = mkdtempSync(join(tmpdir(), 'service-ca-crl-entries-'));
    try {
      writeFileSync(join(dir, 'e.der'), Buffer.concat([Uint8Array.of(0x30, entries.der.length), entries.der]));
      const text = execFileSync('openssl', ['asn1parse', '-inform', 'DER', '-in', join(dir, 'e.der')], { encoding: 'utf8' });
      assert.match(text, /UTCTIME\s+:491231235959Z/);
      assert.match(text, /GENERALIZEDTIME\s+:20500101000000Z/);
      assert.match(text, /INTEGER\s+:7F01/);
      assert.match(text, /INTEGER\s+:80/);
      assert.match(text, /CRL Reason Code\n.*OCTET STRING\s+\[HEX DUMP\]:0A0101\n/);
      assert.match(text, /CRL Reason Code\n.*OCTET STRING\s+\[HEX DUMP\]:0A0109\n/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuse non-canonical serials, fractional times and unknown reasons, writing nothing', () => {
    const entries = new CrlEntries();
    assert.throws(() => entries.add('00ff', 0, 'unspecified'), RangeError);
    assert.throws(() => entries.add('abc', 0, 'unspecified'), RangeError);
    assert.throws(() => entries.add('zz', 0, 'unspecified'), RangeError);
    assert.throws(() => entries.add('01'.repeat(21), 0, 'unspecified'), RangeError);
    assert.throws(() => entries.add('01', 1.5, 'unspecified'), RangeError);
    assert.throws(() => entries.add('01', 0, 'certificateHold' as RevocationReason), RangeError);
    assert.equal(entries.count, 0);
  });
});
