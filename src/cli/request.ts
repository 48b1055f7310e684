/**
 * `service-ca request`: make a key here (it is never sent), build the CSR, obtain the
 * certificate, and write key, certificate and chain atomically with restrictive modes.
 */
import { ServiceCaError } from '../client/index.js';
import { parseDuration } from '../duration.js';
import { CERTIFICATE_OPTIONS, KEY_TYPES, connect, parseOptions, type Command } from './command.js';
import { CONNECTION_USAGE } from './context.js';
import { writeIssued } from './cert-files.js';
import { createKeyAndCsr, type ClientKeyType } from './keys.js';

const USAGE = `Usage: service-ca request --token-file FILE --out PREFIX [names] [options]

Writes PREFIX.key (0600), PREFIX.pem (the certificate), PREFIX.chain.pem (the intermediates) and
PREFIX.fullchain.pem (the certificate, then the intermediates).

Options:
${CONNECTION_USAGE}
  --dns NAME            a DNS name (repeatable)
  --ip ADDRESS          an IP address (repeatable)
  --uri URI             a URI, e.g. a SPIFFE ID (repeatable)
  --email ADDRESS       an email address (repeatable)
  --ttl DURATION        requested lifetime, e.g. 24h or 1h30m
  --key-type TYPE       p256 (default), p384, rsa or ed25519
  --out PREFIX          where to write the files
  --json                print the issuance answer as JSON
  --help                this text`;

export const requestCommand: Command = {
  name: 'request',
  summary: 'make a key and get a certificate for it',
  async run(argv) {
    const v = parseOptions(
      argv,
      { ...CERTIFICATE_OPTIONS, json: { type: 'boolean', default: false } },
      USAGE,
    );
    if (typeof v === 'number') return v;
    if (!v.out) {
      console.error(`service-ca: --out is required\n\n${USAGE}`);
      return 2;
    }
    if (!KEY_TYPES.includes(v['key-type']!)) {
      console.error('service-ca: --key-type must be p256, p384, rsa or ed25519');
      return 2;
    }
    const ttl = v.ttl === undefined ? undefined : parseDuration(v.ttl);
    if (v.ttl !== undefined && !ttl) {
      console.error(`service-ca: --ttl "${v.ttl}" is not a duration (90s, 1h30m, 2d)`);
      return 2;
    }
    const c = connect(v, USAGE);
    if (typeof c === 'number') return c;
    const { client, token } = c;
    const { keyPem, csrPem } = await createKeyAndCsr(v['key-type'] as ClientKeyType, { dns: v.dns, ip: v.ip, uri: v.uri, email: v.email });
    let issued;
    try {
      issued = await client.issue(token, { csr: csrPem, ...(ttl ? { ttl } : {}) });
    } catch (err) {
      if (err instanceof ServiceCaError) {
        console.error(`service-ca: ${err.message}`);
        return 1;
      }
      throw err;
    }
    writeIssued(v.out, keyPem, issued);
    if (v.json) console.log(JSON.stringify(issued, null, 2));
    else console.log(`Issued ${issued.serial} to ${issued.identity}, valid until ${issued.notAfter}: ${v.out}.pem, ${v.out}.key, ${v.out}.chain.pem, ${v.out}.fullchain.pem`);
    return 0;
  },
};
