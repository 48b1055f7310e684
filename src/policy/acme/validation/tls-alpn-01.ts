/**
 * tls-alpn-01 (RFC 8737): a TLS connection to <name>:<acme.challengePorts.tlsalpn01> with SNI
 * <name> (for an IP identifier, its reverse-DNS name, RFC 8738 §6) and ALPN `acme-tls/1` must
 * negotiate `acme-tls/1` and present a self-signed certificate whose only subjectAltName is the
 * identifier and whose critical id-pe-acmeIdentifier extension holds SHA-256 of the key
 * authorization. The certificate is not otherwise trusted: the extension is the proof.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { CaError } from '../../../errors.js';
import { x509 } from '../../../x509/library.js';
import type { NameResolver } from './resolve.js';

const ACME_IDENTIFIER_OID = '1.3.6.1.5.5.7.1.31';
const ALPN = 'acme-tls/1';

/** The reverse-DNS name of an address (RFC 8738 §6): 4.3.2.1.in-addr.arpa, or nibbles under ip6.arpa. */
export function reverseName(ip: string): string {
  if (isIP(ip) === 4) return `${ip.split('.').reverse().join('.')}.in-addr.arpa`;
  const groups = ip.split('::');
  const head = groups[0] ? groups[0].split(':') : [];
  const tail = groups.length > 1 && groups[1] ? groups[1].split(':') : [];
  const full = [...head, ...Array(8 - head.length - tail.length).fill('0'), ...tail].map((g: string) => g.padStart(4, '0'));
  return `${full.join('').split('').reverse().join('.')}.ip6.arpa`;
}

function handshake(address: string, port: number, servername: string, timeoutMs: number, signal: AbortSignal): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: address, port, servername, ALPNProtocols: [ALPN], rejectUnauthorized: false, minVersion: 'TLSv1.2' });
    const abort = () => socket.destroy(new CaError('connection', `no TLS handshake with ${address}:${port} in time`));
    signal.addEventListener('abort', abort, { once: true });
    socket.once('close', () => signal.removeEventListener('abort', abort));
    socket.setTimeout(timeoutMs, () => socket.destroy(new CaError('connection', `no TLS handshake with ${address}:${port} within ${timeoutMs} ms`)));
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', (err) => reject(err instanceof CaError ? err : new CaError('tls', `TLS with ${address}:${port} failed: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
  });
}

export async function validateTlsAlpn01(resolver: NameResolver, port: number, timeoutMs: number, name: string, keyAuthorization: string, signal: AbortSignal): Promise<void> {
  const [address] = await resolver.addresses(name);
  const ip = isIP(name) !== 0;
  const socket = await handshake(address!, port, ip ? reverseName(name) : name, timeoutMs, signal);
  try {
    if (socket.alpnProtocol !== ALPN) throw new CaError('tls', `${name}:${port} did not negotiate ALPN ${ALPN}`);
    const peer = socket.getPeerX509Certificate();
    if (!peer) throw new CaError('tls', `${name}:${port} presented no certificate`);
    const cert = new x509.X509Certificate(peer.raw);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    const names = san?.names.items ?? [];
    const expectedType = ip ? 'ip' : 'dns';
    if (names.length !== 1 || names[0]!.type !== expectedType || names[0]!.value.toLowerCase() !== name.toLowerCase()) {
      throw new CaError('incorrectResponse', `the certificate from ${name}:${port} must name exactly ${name} in its subjectAltName`);
    }
    const ext = cert.extensions.find((e) => e.type === ACME_IDENTIFIER_OID);
    if (!ext) throw new CaError('incorrectResponse', `the certificate from ${name}:${port} has no acmeIdentifier extension`);
    if (!ext.critical) throw new CaError('incorrectResponse', `the acmeIdentifier extension from ${name}:${port} is not critical`);
    const expected = Buffer.concat([Buffer.from([0x04, 0x20]), createHash('sha256').update(keyAuthorization).digest()]);
    if (!Buffer.from(ext.value).equals(expected)) throw new CaError('incorrectResponse', `the acmeIdentifier extension from ${name}:${port} does not hold this challenge's digest`);
  } finally {
    // A closing handshake, not a reset: the responder sees a client that finished, not an error.
    socket.end();
    setTimeout(() => socket.destroy(), 1000).unref();
  }
}
