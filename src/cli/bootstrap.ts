/**
 * `service-ca bootstrap`: fetch the root over plain HTTP (the public listener) and keep it only
 * if its SHA-256 fingerprint is the one given out of band; every later call trusts that root.
 * It is saved as a context (context.ts) with the API listener's URL, which later commands use
 * when neither a flag nor an environment variable names the server or the root.
 */
import { X509Certificate, createHash } from 'node:crypto';
import { ServiceCaClient, ServiceCaError } from '../client/index.js';
import { parseOptions, type Command } from './command.js';
import { isContextName, saveContext } from './context.js';
import { writeFileAtomic } from './files.js';

const USAGE = `Usage: service-ca bootstrap --url PUBLIC-URL --fingerprint SHA256 [--server API-URL] [options]

Downloads the CA's root certificate from the public listener and keeps it only if its SHA-256
fingerprint (hex, colons and case ignored) matches. It is saved with the API listener's URL as a
context under the configuration folder (SERVICE_CA_CONFIG_DIR, else $XDG_CONFIG_HOME/service-ca,
else ~/.config/service-ca), which becomes the current one: later commands then need neither
--server nor --ca. Exit code 1 on a mismatch; nothing is written then.

Options:
  --url URL             the public listener, e.g. http://ca.example:8080
  --fingerprint HEX     the root's SHA-256 fingerprint, from the CA's administrator
  --server URL          the API listener to save in the context, e.g. https://ca.example:8443
  --tls-server-name NAME  the name the API's certificate holds, when it is not the URL's host
  --context NAME        the context's name (default: "default")
  --out FILE            also write the root (PEM) to FILE
  --no-context          write --out only; save no context
  --help                this text`;

export const bootstrapCommand: Command = {
  name: 'bootstrap',
  summary: 'fetch the root certificate and pin it by fingerprint',
  async run(argv) {
    const v = parseOptions(
      argv,
      {
        url: { type: 'string' },
        fingerprint: { type: 'string' },
        out: { type: 'string' },
        server: { type: 'string' },
        'tls-server-name': { type: 'string' },
        context: { type: 'string', default: 'default' },
        'no-context': { type: 'boolean', default: false },
      },
      USAGE,
    );
    if (typeof v === 'number') return v;
    const wanted = (v.fingerprint ?? '').replace(/:/g, '').toLowerCase();
    const problems = [
      (!v.url || !/^[0-9a-f]{64}$/.test(wanted)) && '--url and a 64-hex-digit --fingerprint are required',
      v['no-context'] && !v.out && '--no-context needs --out',
      !isContextName(v.context!) && '--context must be letters, digits, ".", "_" or "-"',
      v.server !== undefined && !/^https?:\/\/[^/]/.test(v.server) && '--server must be an http(s) URL',
    ].filter(Boolean);
    if (problems.length > 0) {
      console.error(`service-ca: ${problems.join('; ')}\n\n${USAGE}`);
      return 2;
    }
    let pem: string;
    try {
      pem = await new ServiceCaClient({ baseUrl: v.url! }).rootPem();
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
    console.log(`root ${cert.subject.replace(/\n/g, ', ')} (SHA-256 ${actual}) pinned`);
    if (v.out) {
      writeFileAtomic(v.out, pem, 0o644);
      console.log(`written to ${v.out}`);
    }
    if (!v['no-context']) {
      const folder = saveContext(v.context!, { server: v.server, publicUrl: v.url!, fingerprint: actual, tlsServerName: v['tls-server-name'] }, pem);
      console.log(`context "${v.context}" saved in ${folder} and made current${v.server ? `: later commands use ${v.server}` : ' (no --server: give it with --server or SERVICE_CA_URL)'}`);
    }
    return 0;
  },
};
