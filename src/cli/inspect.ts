/**
 * `service-ca inspect TARGET`: what a certificate, a chain file or a live TLS endpoint looks like
 * to a client, and what is wrong with it. The work is in src/inspect/; this reads the options,
 * the roots (flags, then environment, then the saved context: context.ts) and the files, and
 * prints the report. Exit 0 with no warning, 1 with any, 2 on bad usage.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { systemClock } from '../clock.js';
import { certificatesIn, type Cert, type CertificateSource } from '../inspect/certificates.js';
import { inspect } from '../inspect/inspect.js';
import { renderText } from '../inspect/render.js';
import { parseTarget } from '../inspect/target.js';
import { readToken, type Command } from './command.js';
import { CONNECTION_OPTIONS, resolveConnection } from './context.js';
import { parseDuration } from '../duration.js';

const USAGE = `Usage: service-ca inspect TARGET [options]

TARGET is a PEM or DER certificate file (a chain: leaf first), host:port, or https://host[:port]/...
Prints each certificate (subject, issuer, SANs, key, serial, validity, time left), the path to
a trusted root, revocation from the CRL (its signature checked) and, for a certificate this CA
issued, its renewal window; for an endpoint also the TLS version, cipher suite, ALPN and whether
it asks for a client certificate. Exit 0 when nothing is wrong, 1 on any warning, 2 on bad usage.

Options:
  --servername NAME     SNI and the name the leaf must hold (default: the target's host; an IP
                        address is checked against IP SANs)
  --alpn LIST           protocols to offer, comma-separated (default h2,http/1.1; "" offers none)
  --ca FILE             PEM root(s) to verify against (env SERVICE_CA_ROOT; else the saved context's)
  --untrusted FILE      PEM intermediates to build the path with (repeatable)
  --server URL          the CA's API listener, for renewal-info and the record (env SERVICE_CA_URL;
                        else the saved context)
  --token-file FILE     also read the CA's record of the leaf (owner or admin token)
                        (env SERVICE_CA_TOKEN_FILE)
  --tls-server-name NAME  the name the API listener's certificate holds (env SERVICE_CA_TLS_SERVER_NAME)
  --context NAME        a context saved by bootstrap (env SERVICE_CA_CONTEXT; default: the current)
  --timeout DURATION    for each connection and download (default 10s)
  --json                the report as JSON
  --help                this text`;

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  servername: { type: 'string' },
  alpn: { type: 'string' },
  untrusted: { type: 'string', multiple: true },
  timeout: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

function readCertificates(file: string, source: CertificateSource, what: string): Cert[] {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    throw new Error(`${what} ${file} cannot be read`);
  }
  try {
    return certificatesIn(bytes, source);
  } catch (err) {
    throw new Error(`${what} ${file} holds no certificate: ${(err as Error).message}`);
  }
}

function usage(message: string): number {
  console.error(`service-ca: ${message}\n\n${USAGE}`);
  return 2;
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'inspect a certificate, chain file or TLS endpoint',
  async run(argv) {
    if (argv.includes('--help') || argv.includes('-h')) {
      console.log(USAGE);
      return 0;
    }
    let parsed;
    try {
      parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
    } catch (err) {
      return usage((err as Error).message);
    }
    const v = parsed.values;
    if (parsed.positionals.length !== 1) return usage('give exactly one TARGET');
    const target = parseTarget(parsed.positionals[0]!, existsSync);
    if ('error' in target) return usage(target.error);
    const timeout = v.timeout === undefined ? 10 : parseDuration(v.timeout);
    if (!timeout) return usage('--timeout takes a duration above 0 (10s, 1m)');
    const alpn = v.alpn === undefined ? ['h2', 'http/1.1'] : v.alpn.split(',').map((p) => p.trim()).filter(Boolean);
    if (alpn.some((p) => p.length > 255)) return usage('an ALPN protocol name is at most 255 bytes');

    let roots: Cert[];
    let untrusted: Cert[];
    let fileCertificates: Cert[] | undefined;
    let connection;
    let token: string | undefined;
    try {
      connection = resolveConnection(v);
      roots = connection.caPem === undefined ? [] : readCertificates(connection.caFile!, 'root', 'the root file');
      untrusted = (v.untrusted ?? []).flatMap((f) => readCertificates(f, 'untrusted', 'the --untrusted file'));
      token = connection.tokenFile ? readToken(connection.tokenFile) : undefined;
    } catch (err) {
      return usage((err as Error).message);
    }
    if (target.kind === 'file') {
      try {
        fileCertificates = readCertificates(target.file, 'file', 'the file');
      } catch (err) {
        console.error(`service-ca: ${(err as Error).message}`);
        return 1;
      }
    }

    const report = await inspect({
      target,
      fileCertificates,
      servername: v.servername,
      alpn,
      roots,
      rootFile: connection.caFile,
      untrusted,
      ca: { server: connection.server, caPem: connection.caPem, tlsServerName: connection.tlsServerName, token, timeoutMs: timeout * 1000 },
      timeoutMs: timeout * 1000,
      now: systemClock.now,
    });
    console.log(v.json ? JSON.stringify(report, null, 2) : renderText(report));
    return report.warnings.length === 0 ? 0 : 1;
  },
};
