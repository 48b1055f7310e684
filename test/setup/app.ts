/**
 * The real app on ephemeral ports with a real database, a throwaway CA and a test identity
 * provider. Each call makes its own database; stop() drops it.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { createLogger } from '../../src/logging.js';
import { parseConfig, type Config } from '../../src/config.js';
import { start, type Running } from '../../src/main.js';
import { ServiceCaClient } from '../../src/client/index.js';
import { createTestDatabase, type TestDatabase } from './database.js';
import { createTestPki, type TestPki } from './pki.js';
import { createTestIssuer, issuerConfig, type TestIssuer } from './tokens.js';

export const TRUST_DOMAIN = 'example.org';
export const ADMIN = `spiffe://${TRUST_DOMAIN}/admin`;
export const workload = (ns: string, sa: string) => `spiffe://${TRUST_DOMAIN}/ns/${ns}/sa/${sa}`;

export interface TestApp {
  running: Running;
  config: Config;
  pki: TestPki;
  issuer: TestIssuer;
  database: TestDatabase;
  /** Base URL of the API listener (plain HTTP unless tls was asked for). */
  api: string;
  /** Base URL of the public listener. */
  public: string;
  client: ServiceCaClient;
  token(sub: string, claims?: Record<string, unknown>): Promise<string>;
  /** POST /v1/certificates with a token for sub. */
  issue(sub: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
  stop(): Promise<void>;
}

export interface TestAppOptions {
  pki?: TestPki;
  issuer?: TestIssuer;
  database?: TestDatabase;
  /** Merged over the default configuration (shallow per top-level key). */
  config?: Record<string, unknown>;
  tls?: boolean;
  logs?: pino.DestinationStream;
}

let logFiles = 0;

/**
 * The product's own logger (its redaction included) at debug level: into the test's stream when
 * it asks for one, and into TEST_LOG_DIR, where test/run.mjs greps every line of the run for
 * tokens, private keys and passphrases once all tests have finished.
 */
function testLogger(logs: pino.DestinationStream | undefined) {
  const streams: pino.StreamEntry[] = [];
  if (logs) streams.push({ level: 'debug', stream: logs });
  const dir = process.env.TEST_LOG_DIR;
  if (dir) streams.push({ level: 'debug', stream: pino.destination({ dest: join(dir, `app-${process.pid}-${++logFiles}.log`), sync: true }) });
  if (streams.length === 0) return createLogger('silent');
  return createLogger('debug', pino.multistream(streams));
}

export function defaultPolicies() {
  return [
    {
      identity: `spiffe://${TRUST_DOMAIN}/ns/{ns}/sa/{sa}`,
      dns: ['{sa}.{ns}.svc', '{sa}.{ns}.svc.cluster.local', '*.{sa}.{ns}.svc'],
      uri: ['{identity}'],
      ip: ['10.0.0.0/8', 'fd00::/8'],
      email: ['{sa}@{ns}.example.org'],
      maxTtl: '48h',
    },
    { identity: `spiffe://${TRUST_DOMAIN}/ns/edge/sa/gateway`, dns: ['*.edge.example.org'], wildcards: true, extendedKeyUsage: ['serverAuth'] },
  ];
}

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const pki = options.pki ?? (await createTestPki('p256'));
  const issuer = options.issuer ?? (await createTestIssuer());
  const database = options.database ?? (await createTestDatabase());
  const raw = {
    server: { host: '127.0.0.1', port: 0, tls: options.tls ? { mode: 'auto', names: ['localhost', '127.0.0.1'] } : { mode: 'off' } },
    public: { host: '127.0.0.1', port: 0 },
    publicUrl: 'http://ca.test:8080',
    database: database.url ? { url: database.url } : {},
    dataDir: database.dataDir,
    ca: { certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate },
    auth: {
      issuers: [issuerConfig(issuer)],
      admins: { identities: [ADMIN] },
    },
    policies: defaultPolicies(),
    logging: { level: 'silent' },
    ...options.config,
  };
  const config = parseConfig(raw, { baseDir: process.cwd(), env: {} });
  const logger = testLogger(options.logs);
  const running = await start(config, { logger, databaseAttempts: 1 });
  const api = running.apiUrl;
  const client = new ServiceCaClient({ baseUrl: api, ca: options.tls ? await (await fetch(`${running.publicUrl}/v1/ca/root.pem`)).text() : undefined });
  const token = (sub: string, claims: Record<string, unknown> = {}) => issuer.mint({ sub, ...claims });
  let stopped = false;
  return {
    running,
    config,
    pki,
    issuer,
    database,
    api,
    public: running.publicUrl,
    client,
    token,
    async issue(sub, body, headers = {}) {
      return fetch(`${api}/v1/certificates`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await token(sub)}`, ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await running.stop(2000);
      if (!options.database) await database.drop();
    },
  };
}
