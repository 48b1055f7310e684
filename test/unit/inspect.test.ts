/**
 * The pure parts of `service-ca inspect`: the server-flight reader (src/inspect/handshake.ts)
 * on handshakes built here byte by byte, TLS 1.3 ones sealed with keys from a known secret
 * (HKDF-Expand-Label checked against RFC 8448 §3 first); the target argument; and which findings
 * are warnings (src/inspect/report.ts), with the time injected.
 */
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { formatDuration } from '../../src/inspect/certificates.js';
import { hkdfExpandLabel, readServerFlight } from '../../src/inspect/handshake.js';
import { warningsOf, type CertificateEntry, type InspectReport } from '../../src/inspect/report.js';
import { parseTarget } from '../../src/inspect/target.js';
import { opensslReason } from '../../src/inspect/tls-probe.js';

const u8 = (n: number) => Buffer.from([n]);
const u16 = (n: number) => Buffer.from([n >> 8, n & 0xff]);
const u24 = (n: number) => Buffer.from([n >> 16, (n >> 8) & 0xff, n & 0xff]);
const message = (type: number, body: Buffer) => Buffer.concat([u8(type), u24(body.length), body]);
const record = (type: number, fragment: Buffer) => Buffer.concat([u8(type), u16(0x0303), u16(fragment.length), fragment]);
const extension = (type: number, data: Buffer) => Buffer.concat([u16(type), u16(data.length), data]);
const alpn = (name: string) => extension(16, Buffer.concat([u16(name.length + 1), u8(name.length), Buffer.from(name)]));
const HRR = Buffer.from('cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c', 'hex');

function serverHello(o: { version: number; suite: number; extensions?: Buffer[]; random?: Buffer }): Buffer {
  const exts = Buffer.concat(o.extensions ?? []);
  return message(2, Buffer.concat([u16(o.version), o.random ?? randomBytes(32), u8(32), randomBytes(32), u16(o.suite), u8(0), u16(exts.length), exts]));
}

function certificateMessage(certs: Buffer[], tls13: boolean): Buffer {
  const list = Buffer.concat(certs.flatMap((c) => [u24(c.length), c, ...(tls13 ? [u16(0)] : [])]));
  return message(11, Buffer.concat([...(tls13 ? [u8(0)] : []), u24(list.length), list]));
}

const CERTS = [randomBytes(300), randomBytes(200)];
const CERTIFICATE_REQUEST_12 = message(13, Buffer.from([1, 64, 0, 2, 4, 3, 0, 0]));
const CERTIFICATE_REQUEST_13 = message(13, Buffer.from([0, 0, 6, 0, 13, 0, 2, 4, 3]));

/** RFC 8446 §5.2: a record sealed with AES-128-GCM under the key and IV of `secret`, sequence `seq`. */
function sealed(secret: Buffer, seq: number, content: Buffer, type = 22): Buffer {
  const key = hkdfExpandLabel('sha256', secret, 'key', 16);
  const nonce = hkdfExpandLabel('sha256', secret, 'iv', 12);
  nonce.writeUInt32BE((nonce.readUInt32BE(8) ^ seq) >>> 0, 8);
  const inner = Buffer.concat([content, u8(type), Buffer.alloc(3)]);
  const header = Buffer.concat([u8(23), u16(0x0303), u16(inner.length + 16)]);
  const cipher = createCipheriv('aes-128-gcm', key, nonce);
  cipher.setAAD(header);
  const body = Buffer.concat([cipher.update(inner), cipher.final(), cipher.getAuthTag()]);
  return Buffer.concat([header, body]);
}

/** A TLS 1.3 server flight (optionally after a HelloRetryRequest), with the certificate message split over two records. */
function tls13Flight(secret: Buffer, o: { request: boolean; retry?: boolean }): Buffer {
  const hello = serverHello({ version: 0x0303, suite: 0x1301, extensions: [extension(43, u16(0x0304))] });
  const cert = certificateMessage(CERTS, true);
  const parts = [
    ...(o.retry ? [record(22, serverHello({ version: 0x0303, suite: 0x1301, random: HRR, extensions: [extension(43, u16(0x0304))] })), record(20, u8(1))] : []),
    record(22, hello),
    record(20, u8(1)),
    sealed(secret, 0, Buffer.concat([message(8, Buffer.concat([u16(alpn('h2').length), alpn('h2')])), ...(o.request ? [CERTIFICATE_REQUEST_13] : []), cert.subarray(0, 100)])),
    sealed(secret, 1, cert.subarray(100)),
    sealed(secret, 2, Buffer.concat([message(15, randomBytes(72)), message(20, randomBytes(32))])),
  ];
  return Buffer.concat(parts);
}

describe('the server flight reader', () => {
  it('derives the TLS 1.3 handshake key and IV of RFC 8448 §3', () => {
    const secret = Buffer.from('b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38', 'hex');
    assert.equal(hkdfExpandLabel('sha256', secret, 'key', 16).toString('hex'), '3fce516009c21727d0f2e4e86ee403bc');
    assert.equal(hkdfExpandLabel('sha256', secret, 'iv', 12).toString('hex'), '5d313eb2671276ee13000b30');
  });

  it('reads a TLS 1.2 flight in plaintext, across records, with and without a CertificateRequest', () => {
    for (const request of [true, false]) {
      const stream = Buffer.concat([serverHello({ version: 0x0303, suite: 0xc02b, extensions: [alpn('http/1.1')] }), certificateMessage(CERTS, false), ...(request ? [CERTIFICATE_REQUEST_12] : []), message(14, Buffer.alloc(0))]);
      const bytes = Buffer.concat([record(22, stream.subarray(0, 50)), record(22, stream.subarray(50, 400)), record(22, stream.subarray(400))]);
      const flight = readServerFlight(bytes, new Map());
      assert.deepEqual(flight, { version: 'TLSv1.2', cipherSuite: 0xc02b, alpn: 'http/1.1', certificates: CERTS, certificateRequested: request, complete: true, unreadable: undefined });
    }
  });

  it('names TLS 1.0 and 1.1 from the ServerHello version, and stops at the server\'s ChangeCipherSpec', () => {
    for (const [version, name] of [[0x0301, 'TLSv1'], [0x0302, 'TLSv1.1']] as const) {
      const bytes = Buffer.concat([record(22, serverHello({ version, suite: 0xc013 })), record(22, certificateMessage(CERTS, false)), record(20, u8(1)), record(22, CERTIFICATE_REQUEST_12)]);
      const flight = readServerFlight(bytes, new Map());
      assert.equal(flight.version, name);
      assert.equal(flight.certificateRequested, false, 'what follows the ChangeCipherSpec is not read as plaintext');
      assert.equal(flight.complete, false);
    }
  });

  it('opens a sealed TLS 1.3 flight with the logged handshake secret, after a HelloRetryRequest too', () => {
    const secret = randomBytes(32);
    for (const [request, retry] of [[true, false], [false, false], [true, true]] as const) {
      const flight = readServerFlight(tls13Flight(secret, { request, retry }), new Map([['SERVER_HANDSHAKE_TRAFFIC_SECRET', secret]]));
      assert.deepEqual(flight, { version: 'TLSv1.3', cipherSuite: 0x1301, alpn: 'h2', certificates: CERTS, certificateRequested: request, complete: true, unreadable: undefined }, `request ${request}, retry ${retry}`);
    }
  });

  it('says why a TLS 1.3 flight cannot be read: no secret, a wrong secret, a partial flight', () => {
    const secret = randomBytes(32);
    const bytes = tls13Flight(secret, { request: true });
    const none = readServerFlight(bytes, new Map());
    assert.equal(none.unreadable, 'the handshake secret was not logged');
    assert.equal(none.certificateRequested, false);
    const wrong = readServerFlight(bytes, new Map([['SERVER_HANDSHAKE_TRAFFIC_SECRET', randomBytes(32)]]));
    assert.match(wrong.unreadable ?? '', /^the handshake could not be read: .*authenticate/);
    assert.equal(wrong.complete, false);
    const cut = readServerFlight(bytes.subarray(0, bytes.length - 20), new Map([['SERVER_HANDSHAKE_TRAFFIC_SECRET', secret]]));
    assert.equal(cut.certificateRequested, true, 'the records that arrived are read');
    assert.equal(cut.complete, false, 'without the Finished the flight is not complete');
  });

  it('never throws on malformed bytes: says so in unreadable', () => {
    const broken = readServerFlight(record(22, message(2, Buffer.concat([u16(0x0303), randomBytes(32), u8(200), randomBytes(5)]))), new Map());
    assert.match(broken.unreadable ?? '', /^the handshake could not be read: /);
    for (let i = 0; i < 300; i++) {
      const body = randomBytes(i % 120);
      assert.doesNotThrow(() => readServerFlight(Buffer.concat([record(22, message(i % 3 === 0 ? 2 : 11, body)), record(23, randomBytes(i % 50))]), new Map([['SERVER_HANDSHAKE_TRAFFIC_SECRET', randomBytes(32)]])), `case ${i}`);
    }
  });
});

describe('the target argument', () => {
  const exists = (p: string) => p === 'chain.pem';
  it('reads https URLs, files, host:port and [v6]:port', () => {
    assert.deepEqual(parseTarget('https://ca.example.org/v1/crl', exists), { kind: 'endpoint', host: 'ca.example.org', port: 443 });
    assert.deepEqual(parseTarget('https://[::1]:8443/', exists), { kind: 'endpoint', host: '::1', port: 8443 });
    assert.deepEqual(parseTarget('chain.pem', exists), { kind: 'file', file: 'chain.pem' });
    assert.deepEqual(parseTarget('db.internal:5432', exists), { kind: 'endpoint', host: 'db.internal', port: 5432 });
    assert.deepEqual(parseTarget('[fd00::1]:443', exists), { kind: 'endpoint', host: 'fd00::1', port: 443 });
  });
  it('refuses other schemes, ports out of range and names that are neither', () => {
    assert.deepEqual(parseTarget('http://ca.example.org/', exists), { error: 'http://ca.example.org/: only https:// URLs are inspected' });
    for (const arg of ['host:0', 'host:65536', 'missing.pem', 'host', '::1:443']) {
      assert.deepEqual(parseTarget(arg, exists), { error: `${arg}: no such file, and not host:port or an https:// URL` }, arg);
    }
  });
});

const NOW = new Date('2026-06-01T12:00:00Z');
const HOUR = 3600_000;

function leaf(overrides: Partial<CertificateEntry> = {}): CertificateEntry {
  return {
    position: 0, source: 'server', onPath: true, subject: 'CN=a.b.svc', issuer: 'CN=int', sans: { dns: ['a.b.svc'], ip: [], uri: [], email: [] },
    key: { type: 'ECDSA P-256', bits: 256 }, serial: '01', notBefore: new Date(NOW.getTime() - HOUR).toISOString(), notAfter: new Date(NOW.getTime() + 2 * HOUR).toISOString(),
    secondsLeft: 7200, timeLeft: '2h 0m', fingerprint256: '00', isCa: false, crlUrls: [], caIssuersUrls: [], validity: 'valid',
    revocation: null, renewal: null, record: null, ...overrides,
  };
}

function report(o: Partial<Omit<InspectReport, 'warnings'>> = {}): Omit<InspectReport, 'warnings'> {
  return {
    target: { kind: 'endpoint', host: 'a.b.svc', port: 443, servername: null },
    tls: { version: 'TLSv1.3', cipher: 'TLS_AES_128_GCM_SHA256', alpn: 'h2', alpnOffered: ['h2'], clientCertificate: 'notRequested', handshakeError: null, unreadable: null },
    certificates: [leaf()],
    verification: { status: 'trusted', detail: '', rootFile: 'root.pem', missingIssuer: null, notCarried: [], aiaErrors: [] },
    hostname: { name: 'a.b.svc', kind: 'dns', matched: true },
    ...o,
  };
}

const codes = (r: Omit<InspectReport, 'warnings'>, now = NOW) => warningsOf(r, now).map((w) => w.code);
const window = (startH: number, endH: number, revokedByCa = false) => ({
  status: 'found' as const, source: 'http://ca', start: new Date(NOW.getTime() + startH * HOUR).toISOString(), end: new Date(NOW.getTime() + endH * HOUR).toISOString(), revokedByCa, detail: '',
});

describe('which findings are warnings', () => {
  it('none for a clean report; TLS below 1.2 is one', () => {
    assert.deepEqual(codes(report()), []);
    assert.deepEqual(codes(report({ tls: { ...report().tls!, version: 'TLSv1.2' } })), []);
    for (const version of ['TLSv1', 'TLSv1.1']) assert.deepEqual(codes(report({ tls: { ...report().tls!, version } })), ['tlsVersion'], version);
  });

  it('a refusal for want of a client certificate is no fault; another failed handshake is', () => {
    const tls = report().tls!;
    assert.deepEqual(codes(report({ tls: { ...tls, clientCertificate: 'required', handshakeError: 'alert certificate required' } })), []);
    assert.deepEqual(codes(report({ tls: { ...tls, handshakeError: 'no shared cipher' }, certificates: [], verification: null, hostname: null })), ['handshakeFailed']);
  });

  it('a missing intermediate apart from an untrusted root; an unverified chain; a name mismatch', () => {
    const v = report().verification!;
    assert.deepEqual(codes(report({ verification: { ...v, status: 'incomplete', missingIssuer: 'CN=int' } })), ['missingIntermediate']);
    assert.deepEqual(codes(report({ verification: { ...v, status: 'untrustedRoot' } })), ['untrusted']);
    assert.deepEqual(codes(report({ verification: { ...v, status: 'noRoot' } })), ['unverified']);
    const notCarried = [{ subject: 'CN=int', source: 'aia' as const, url: 'http://ca/v1/ca/intermediate.der' }];
    assert.deepEqual(codes(report({ verification: { ...v, notCarried } })), ['missingIntermediate'], 'a server must send its intermediates');
    assert.deepEqual(codes(report({ target: { kind: 'file', file: 'leaf.pem' }, tls: null, verification: { ...v, notCarried } })), [], 'a file of the leaf alone is fine');
    assert.deepEqual(codes(report({ hostname: { name: '10.0.0.1', kind: 'ip', matched: false } })), ['nameMismatch']);
  });

  it('validity, revocation and the CA record, per certificate', () => {
    assert.deepEqual(codes(report({ certificates: [leaf({ validity: 'expired' })] })), ['expired']);
    assert.deepEqual(codes(report({ certificates: [leaf(), leaf({ position: 1, validity: 'notYetValid' })] })), ['notYetValid']);
    const revoked = { status: 'revoked' as const, url: 'http://ca/v1/crl', detail: 'revoked', revokedAt: NOW.toISOString(), reason: 'keyCompromise', crl: undefined };
    assert.deepEqual(codes(report({ certificates: [leaf({ revocation: revoked })] })), ['revoked']);
    assert.deepEqual(codes(report({ certificates: [leaf({ revocation: { ...revoked, status: 'unknown' } })] })), ['revocationUnknown']);
    const record = { serial: '01', identity: 'x', sans: { dns: [], ip: [], uri: [], email: [] }, notBefore: '', notAfter: '', status: 'revoked' as const, revokedAt: NOW.toISOString(), revocationReason: 'superseded' };
    assert.deepEqual(codes(report({ certificates: [leaf({ record: { status: 'found', record, detail: '' } })] })), ['revoked'], 'the record alone tells a revocation');
    assert.deepEqual(codes(report({ certificates: [leaf({ revocation: revoked, record: { status: 'found', record, detail: '' } })] })), ['revoked'], 'said once');
    assert.deepEqual(codes(report({ certificates: [leaf({ record: { status: 'failed', record: undefined, detail: '403' } })] })), ['caRecordUnavailable']);
  });

  it('the renewal window: past its end, or opened at once for a revocation; without one, the last third of the lifetime', () => {
    assert.deepEqual(codes(report({ certificates: [leaf({ renewal: window(-1, 1) })] })), [], 'inside the window');
    assert.deepEqual(codes(report({ certificates: [leaf({ renewal: window(-2, -1) })] })), ['pastRenewalWindow']);
    assert.deepEqual(codes(report({ certificates: [leaf({ renewal: window(0, 0, true) })] })), ['pastRenewalWindow']);
    // Lifetime 3 h from NOW − 1 h: the last third starts at NOW + 1 h.
    assert.deepEqual(codes(report()), []);
    assert.deepEqual(codes(report(), new Date(NOW.getTime() + HOUR - 1000)), []);
    assert.deepEqual(codes(report(), new Date(NOW.getTime() + HOUR)), ['lateInLifetime']);
    assert.deepEqual(codes(report({ certificates: [leaf({ renewal: window(-2, 1) })] }), new Date(NOW.getTime() + HOUR)), [], 'renewal-info wins over the rule of thirds');
  });
});

describe('small formats', () => {
  it("openssl's reason without its error stack", () => {
    const e = new Error('80EC65BFC77F0000:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 116\n');
    assert.equal(opensslReason(e), 'tlsv13 alert certificate required (alert 116)');
    assert.equal(opensslReason(new Error('socket hang up')), 'socket hang up');
  });
  it('durations', () => {
    assert.equal(formatDuration(3 * 86_400 + 4 * 3600 + 59), '3d 4h');
    assert.equal(formatDuration(5 * 3600 + 12 * 60), '5h 12m');
    assert.equal(formatDuration(42 * 60 + 5), '42m');
    assert.equal(formatDuration(9), '9s');
    assert.equal(formatDuration(-(2 * 3600 + 5 * 60)), 'expired 2h 5m ago');
  });
});
