/**
 * One TLS handshake with a live endpoint, without a client certificate, to see what it offers:
 * version, cipher suite, ALPN, the chain it sends, and whether it asks for a client certificate.
 *
 * How the CertificateRequest is seen (node:tls does not report it): the connection runs through a
 * stream of our own that keeps a copy of every byte the server sends, and node's `keylog` event
 * gives the TLS 1.3 handshake secret; handshake.ts reads the server's flight from those bytes, in
 * plaintext up to TLS 1.2 and by opening the sealed records in TLS 1.3. The probe never sends a
 * certificate, so a server that requires one refuses: up to TLS 1.2 inside the handshake, in TLS
 * 1.3 with an alert after the client's Finished (RFC 8446 §4.4.2.4). Hence, in TLS 1.3, when a
 * certificate was requested the probe waits for the first of: an alert (required), a session
 * ticket, data or a plain close (accepted without one), or `settleMs` of silence (accepted).
 *
 * The probe accepts every version and cipher node's OpenSSL can speak (TLS 1.0 and security
 * level 0 included): the point is to see and report a weak endpoint, not to refuse it. It never
 * trusts anything itself (rejectUnauthorized: false); chain.ts verifies what it brings back.
 */
import { connect as netConnect, isIP, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { readServerFlight } from './handshake.js';

export interface ProbeOptions {
  host: string;
  port: number;
  /** SNI; none is sent for an IP address (RFC 6066 §3). */
  servername: string | undefined;
  alpn: string[];
  timeoutMs: number;
  /** How long a TLS 1.3 server that requested a certificate is given to refuse (default 1 s). */
  settleMs?: number;
}

export type ClientCertificateRequest = 'notRequested' | 'requested' | 'required';

export interface ProbeResult {
  version: string | undefined;
  /** The IANA name of the suite, e.g. TLS_AES_128_GCM_SHA256. */
  cipher: string | undefined;
  alpn: string | undefined;
  /** What the server sent, leaf first, DER. */
  certificates: Buffer[];
  clientCertificate: ClientCertificateRequest;
  /** Undefined when the handshake completed and the server kept the connection. */
  handshakeError: string | undefined;
  /** Why the server's flight could not be read completely, if it could not. */
  unreadable: string | undefined;
}

/** A Duplex over a TCP socket that keeps a copy of everything read from it. */
function recordingStream(raw: Socket, received: Buffer[]): Duplex {
  const stream = new Duplex({
    read() {
      raw.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      raw.write(chunk, (err) => callback(err ?? null));
    },
    final(callback) {
      raw.end();
      callback();
    },
    destroy(err, callback) {
      raw.destroy();
      callback(err);
    },
  });
  raw.on('data', (d: Buffer) => {
    received.push(d);
    if (!stream.push(d)) raw.pause();
  });
  raw.on('end', () => stream.push(null));
  raw.on('error', (err) => stream.destroy(err));
  return stream;
}

function tcpConnect(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const raw = netConnect({ host, port });
    const timer = setTimeout(() => raw.destroy(new Error(`no TCP connection to ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    raw.once('connect', () => {
      clearTimeout(timer);
      resolve(raw);
    });
    raw.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/**
 * OpenSSL's reason without its error-stack framing: "80EC…:error:0A00045C:SSL routines:
 * ssl3_read_bytes:tlsv13 alert certificate required:…:SSL alert number 116" becomes
 * "tlsv13 alert certificate required (alert 116)".
 */
export function opensslReason(err: Error): string {
  const reason = /error:[0-9A-Fa-f]+:[^:]*:[^:]*:([^:]+)/.exec(err.message)?.[1];
  if (!reason) return err.message.trim();
  const alert = /SSL alert number (\d+)/.exec(err.message)?.[1];
  return alert ? `${reason} (alert ${alert})` : reason;
}

type Outcome = { kind: 'connected' } | { kind: 'refused'; error: string };

/** The handshake's end: secureConnect, or an error or close before it. */
function handshake(socket: TLSSocket, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve({ kind: 'refused', error: `no TLS handshake within ${timeoutMs} ms` }), timeoutMs);
    const done = (o: Outcome) => {
      clearTimeout(timer);
      resolve(o);
    };
    socket.once('secureConnect', () => done({ kind: 'connected' }));
    socket.once('error', (err) => done({ kind: 'refused', error: opensslReason(err) }));
    socket.once('close', () => done({ kind: 'refused', error: 'the server closed the connection during the handshake' }));
  });
}

/** After a TLS 1.3 handshake: a refusal of the (empty) client certificate, or a sign of acceptance. */
function settle(socket: TLSSocket, settleMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), settleMs);
    const done = (error: string | undefined) => {
      clearTimeout(timer);
      resolve(error);
    };
    socket.once('session', () => done(undefined));
    socket.once('data', () => done(undefined));
    socket.once('error', (err) => done(opensslReason(err)));
    // A close without an alert is no refusal: the server accepted, then had nothing to say.
    socket.once('end', () => done(undefined));
  });
}

export async function probe(o: ProbeOptions): Promise<ProbeResult> {
  const raw = await tcpConnect(o.host, o.port, o.timeoutMs);
  const received: Buffer[] = [];
  const secrets = new Map<string, Buffer>();
  const servername = o.servername && isIP(o.servername) === 0 ? o.servername : undefined;
  const socket = tlsConnect({
    socket: recordingStream(raw, received),
    ...(servername ? { servername } : {}),
    ALPNProtocols: o.alpn,
    rejectUnauthorized: false,
    minVersion: 'TLSv1',
    ciphers: 'DEFAULT:@SECLEVEL=0',
  });
  socket.on('keylog', (line: Buffer) => {
    const [label, , secret] = line.toString('latin1').trim().split(' ');
    if (label && secret) secrets.set(label, Buffer.from(secret, 'hex'));
  });
  socket.on('error', () => {
    // Reported through the outcome.
  });
  try {
    const outcome = await handshake(socket, o.timeoutMs);
    const early = readServerFlight(Buffer.concat(received), secrets);
    let handshakeError = outcome.kind === 'refused' ? outcome.error : undefined;
    if (outcome.kind === 'connected' && early.certificateRequested && early.version === 'TLSv1.3') {
      handshakeError = await settle(socket, o.settleMs ?? 1000);
    }
    const flight = readServerFlight(Buffer.concat(received), secrets);
    const requested = flight.certificateRequested;
    return {
      version: flight.version,
      cipher: outcome.kind === 'connected' ? socket.getCipher().standardName : suiteName(flight.cipherSuite),
      alpn: flight.alpn,
      certificates: flight.certificates,
      clientCertificate: !requested ? 'notRequested' : handshakeError !== undefined ? 'required' : 'requested',
      handshakeError,
      unreadable: flight.complete ? undefined : (flight.unreadable ?? (received.length === 0 ? 'the server sent nothing' : 'the server flight ended early')),
    };
  } finally {
    socket.destroy();
    raw.destroy();
  }
}

/** IANA names of common suites, for a handshake that ended before node named the suite. */
const SUITES: Record<number, string> = {
  0x1301: 'TLS_AES_128_GCM_SHA256',
  0x1302: 'TLS_AES_256_GCM_SHA384',
  0x1303: 'TLS_CHACHA20_POLY1305_SHA256',
  0xc02b: 'TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256',
  0xc02c: 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
  0xc02f: 'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256',
  0xc030: 'TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384',
  0xcca8: 'TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256',
  0xcca9: 'TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256',
  0xc009: 'TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA',
  0xc00a: 'TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA',
  0xc013: 'TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA',
  0xc014: 'TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA',
};

export function suiteName(code: number | undefined): string | undefined {
  if (code === undefined) return undefined;
  return SUITES[code] ?? `0x${code.toString(16).padStart(4, '0')}`;
}
