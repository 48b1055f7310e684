/**
 * A YAML configuration file for running `service-ca serve` as a child process, with the same
 * throwaway CA, token issuer and policies as startTestApp, on ports chosen by the caller.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ADMIN, defaultPolicies } from './app.js';
import type { TestDatabase } from './database.js';
import type { TestPki } from './pki.js';
import { issuerConfig, type TestIssuer } from './tokens.js';

export interface ServiceConfigOptions {
  pki: TestPki;
  issuer: TestIssuer;
  database: TestDatabase;
  apiPort: number;
  publicPort: number;
  tls?: 'off' | 'auto';
  logLevel?: string;
  /** server.workers; unset: the service's default (one per core on Postgres). */
  workers?: number | 'auto';
  /** The test issuer's auth.issuers[].requireJti (one-time tokens); unset: the service's default (false). */
  requireJti?: boolean;
  /** The crl section (durations as the config accepts them, e.g. '2s'); unset: the service's defaults. */
  crl?: { validity?: string; refresh?: string; maxDelay?: string };
}

/** Writes service-ca.yaml into a new temp folder; returns its path. */
export function writeServiceConfig(o: ServiceConfigOptions): string {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-config-'));
  const config = {
    server: {
      host: '127.0.0.1',
      port: o.apiPort,
      tls: o.tls === 'auto' ? { mode: 'auto', names: ['localhost', '127.0.0.1'] } : { mode: 'off' },
      ...(o.workers === undefined ? {} : { workers: o.workers }),
    },
    public: { host: '127.0.0.1', port: o.publicPort },
    publicUrl: `http://127.0.0.1:${o.publicPort}`,
    ...(o.database.url ? { database: { url: o.database.url } } : {}),
    dataDir: o.database.dataDir,
    ca: { certificate: o.pki.intermediateCertificate, key: o.pki.intermediateKey, chain: o.pki.rootCertificate },
    auth: {
      issuers: [issuerConfig(o.issuer, 'test', o.requireJti === undefined ? {} : { requireJti: o.requireJti })],
      admins: { identities: [ADMIN] },
    },
    ...(o.crl === undefined ? {} : { crl: o.crl }),
    policies: defaultPolicies(),
    logging: { level: o.logLevel ?? 'info' },
  };
  const path = join(dir, 'service-ca.yaml');
  writeFileSync(path, stringify(config));
  return path;
}
