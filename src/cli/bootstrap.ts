/**
 * `service-ca bootstrap`: fetch the root over plain HTTP (the public listener) and keep it only
 * if its SHA-256 fingerprint is the one given out of band; every later call trusts that file.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { ServiceCaClient, ServiceCaError } from '../client/index.js';
import { parseOptions, type Command } from './command.js';
import { writeFileAtomic } from './files.js';

const USAGE = `Usage: service-ca bootstrap --url PUBLIC-URL --fingerprint SHA256 --out FILE

Downloads the CA's root certificate from the public listener and writes it to FILE only if its
SHA-256 fingerprint (hex, colons and case ignored) matches. Exit code 1 on a mismatch.

Options:
  --url URL             the public listener, e.g. http://ca.example:8080
  --fingerprint HEX     the root's SHA-256 fingerprint, from the CA's administrator
  --out FILE            where to write the root (PEM)
  --help                this text`;

export const bootstrapCommand: Command = {
  name: 'bootstrap',
  summary: 'fetch the root certificate and pin it by fingerprint',
  async run(argv) {
    const v = parseOptions(argv, { url: { type: 'string' }, fingerprint: { type: 'string' }, out: { type: 'string' } }, USAGE);
    if (typeof v === 'number') return v;
    const wanted = (v.fingerprint ?? '').replace(/:/g, '').toLowerCase();
    if (!v.url || !v.out || !/^[0-9a-f]{64}$/.test(wanted)) {
      console.error(`service-ca: --url, --out and a 64-hex-digit --fingerprint are required\n\n${USAGE}`);
      return 2;
    }
    let pem: string;
    try {
      pem = await new ServiceCaClient({ baseUrl: v.url }).rootPem();
    } catch (err) {
      console.error(`service-ca: could not fetch the root: ${err instanceof ServiceCaError ? err.message : (err as Error).message}`);
      return 1;
    }
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch {
      console.error('service-ca: the server did not answer with a certificate');
      return 1;
    }
    const actual = createHash('sha256').update(cert.raw).digest('hex');
    if (actual !== wanted) {
      console.error(`service-ca: REFUSED: the root's fingerprint is ${actual}, not ${wanted}`);
      return 1;
    }
    if (!cert.ca || cert.issuer !== cert.subject || !cert.verify(cert.publicKey)) {
      console.error('service-ca: REFUSED: the certificate is not a self-signed CA certificate');
      return 1;
    }
    writeFileAtomic(v.out, pem, 0o644);
    console.log(`root ${cert.subject} (SHA-256 ${actual}) written to ${v.out}`);
    return 0;
  },
};
