/**
 * `service-ca healthcheck`, the image's HEALTHCHECK (src/cli/healthcheck.ts), against a real CA
 * started from a configuration file the way `serve` starts one (the same loader, then
 * src/main.ts), with its public listener on a port that is not the default 8080 and on every
 * address. The check must find the listener through that file: its public.port (a file naming
 * a port where nothing listens fails), its public.host (0.0.0.0 and :: asked on loopback), the
 * file from --config or SERVICE_CA_CONFIG, `${VAR}` expanded as serve expands it. A listener
 * that answers 503 or never answers fails; bad usage exits 2.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { healthcheckCommand, publicListenerUrl } from '../../src/cli/healthcheck.js';
import { loadConfigFile } from '../../src/config.js';
import { createLogger } from '../../src/logging.js';
import { start, type Running } from '../../src/main.js';
import { runInProcess } from '../setup/cli-run.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { PROJECT_ROOT, TSX_LOADER, cleanEnv, freePort } from '../setup/processes.js';
import { createTestIssuer, issuerConfig, type TestIssuer } from '../setup/tokens.js';

const HEALTHCHECK_SCRIPT = join(PROJECT_ROOT, 'src/cli/healthcheck.ts');

/** `node src/cli/healthcheck.ts ARGS` as a child process (asynchronously: the CA runs in this one). */
function runScript(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX_LOADER, HEALTHCHECK_SCRIPT, ...args], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `fn` with process.env[name] set (or removed), then puts it back. */
async function withEnv<T>(name: string, value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const before = process.env[name];
  if (value === undefined) delete process.env[name];
  else process.env[name] = value;
  try {
    return await fn();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

describe('service-ca healthcheck', () => {
  let dir: string;
  let pki: TestPki;
  let issuer: TestIssuer;
  let database: TestDatabase;
  let running: Running;
  let port: number;
  let configFile: string;
  const servers: Server[] = [];

  /** An HTTP server answering 200 "ok" on host:port (closed after the tests), or undefined when it cannot listen there. */
  async function answeringOk(port: number, host: string): Promise<ReturnType<typeof createHttpServer> | undefined> {
    const server = createHttpServer((_req, res) => res.end('ok'));
    const listening = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, host, () => resolve(true));
    });
    if (!listening) return undefined;
    servers.push(server);
    return server;
  }

  /** A configuration file: the running CA's, with `public` (and any other top-level key) replaced. */
  const writeConfig = (name: string, over: Record<string, unknown>) => {
    const file = join(dir, name);
    writeFileSync(
      file,
      stringify({
        server: { host: '127.0.0.1', port: 0, tls: { mode: 'off' } },
        public: { host: '0.0.0.0', port },
        publicUrl: 'http://ca.test:8080',
        dataDir: database.dataDir,
        database: database.url ? { url: database.url } : {},
        ca: { certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate },
        auth: { issuers: [issuerConfig(issuer)] },
        logging: { level: 'silent' },
        ...over,
      }),
    );
    return file;
  };
  const check = (argv: string[]) => runInProcess(healthcheckCommand, argv);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'service-ca-healthcheck-'));
    [pki, issuer, database] = await Promise.all([createTestPki('p256'), createTestIssuer(), createTestDatabase()]);
    do port = await freePort();
    while (port === 8080);
    configFile = writeConfig('config.yaml', {});
    // As serve does: the file through the configuration loader, then start-up.
    running = await start(loadConfigFile(configFile, {}), { logger: createLogger('silent'), databaseAttempts: 1 });
  });
  after(async () => {
    await running?.stop(2000);
    await database?.drop();
    for (const s of servers) s.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('exits 0 when the public listener the file names answers /healthz, asking 127.0.0.1 for a listener on 0.0.0.0', async () => {
    const r = await check(['--config', configFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `healthy: http://127.0.0.1:${port}/healthz answered 200`);
  });

  it('follows public.port: a file naming a port where nothing listens fails, with the URL it asked', async () => {
    const elsewhere = await freePort();
    const r = await check(['--config', writeConfig('elsewhere.yaml', { public: { host: '0.0.0.0', port: elsewhere } })]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `unhealthy: http://127.0.0.1:${elsewhere}/healthz: ECONNREFUSED`);
  });

  it('asks an explicit public.host, and /readyz with --ready', async () => {
    const r = await check(['--config', writeConfig('loopback.yaml', { public: { host: '127.0.0.1', port } }), '--ready']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `healthy: http://127.0.0.1:${port}/readyz answered 200`);
  });

  it('reads the file in SERVICE_CA_CONFIG when there is no --config, as serve does', async () => {
    const r = await withEnv('SERVICE_CA_CONFIG', configFile, () => check([]));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^healthy: http://127\\.0\\.0\\.1:${port}/healthz`));
  });

  it('expands ${VAR} as serve does, and a variable that is not set stops it with the key\'s path', async () => {
    const file = writeConfig('variables.yaml', { public: { host: '0.0.0.0', port: '${HEALTHCHECK_TEST_PORT}' } });
    const set = await withEnv('HEALTHCHECK_TEST_PORT', String(port), () => check(['--config', file]));
    assert.equal(set.code, 0, set.stderr);
    const unset = await withEnv('HEALTHCHECK_TEST_PORT', undefined, () => check(['--config', file]));
    assert.equal(unset.code, 1);
    assert.match(unset.stderr, /public\.port: environment variable HEALTHCHECK_TEST_PORT is not set/);
  });

  it('asks ::1 for a listener on ::', async (t) => {
    const v6 = await answeringOk(0, '::1');
    if (!v6) {
      t.skip('no IPv6 loopback on this machine');
      return;
    }
    const v6Port = (v6.address() as { port: number }).port;
    const r = await check(['--config', writeConfig('v6.yaml', { public: { host: '::', port: v6Port } })]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `healthy: http://[::1]:${v6Port}/healthz answered 200`);
  });

  it('asks a port that fetch refuses (the Fetch standard\'s bad ports, here 10080)', async (t) => {
    if (!(await answeringOk(10080, '127.0.0.1'))) {
      t.skip('port 10080 is busy on this machine');
      return;
    }
    await assert.rejects(fetch('http://127.0.0.1:10080/healthz'), TypeError, 'fetch refuses port 10080');
    const r = await check(['--config', writeConfig('bad-port.yaml', { public: { host: '127.0.0.1', port: 10080 } })]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'healthy: http://127.0.0.1:10080/healthz answered 200');
  });

  it('fails on an answer other than 200, and on no answer within --timeout', async () => {
    const failing = createHttpServer((_req, res) => {
      res.statusCode = 503;
      res.end('down');
    });
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    servers.push(failing);
    const failingPort = (failing.address() as { port: number }).port;
    const r503 = await check(['--config', writeConfig('503.yaml', { public: { host: '127.0.0.1', port: failingPort } })]);
    assert.equal(r503.code, 1);
    assert.equal(r503.stderr, `unhealthy: http://127.0.0.1:${failingPort}/healthz answered 503`);

    const sockets: Socket[] = [];
    const silent = createTcpServer((s) => void sockets.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentPort = (silent.address() as { port: number }).port;
    const started = Date.now();
    const timedOut = await check(['--config', writeConfig('silent.yaml', { public: { host: '127.0.0.1', port: silentPort } }), '--timeout', '1s']);
    const ms = Date.now() - started;
    for (const s of sockets) s.destroy();
    silent.close();
    assert.equal(timedOut.code, 1);
    assert.equal(timedOut.stderr, `unhealthy: http://127.0.0.1:${silentPort}/healthz: no answer within 1 s`);
    assert.ok(ms >= 900 && ms < 5000, `gave up after ${ms} ms, about the 1 s asked for`);
  });

  it('exits 2 on bad usage or no configuration named, 1 on a configuration that does not parse', async () => {
    const none = await withEnv('SERVICE_CA_CONFIG', undefined, () => check([]));
    assert.equal(none.code, 2);
    assert.match(none.stderr, /^service-ca: no configuration: --config FILE or SERVICE_CA_CONFIG/);
    const badTimeout = await check(['--config', configFile, '--timeout', 'soon']);
    assert.equal(badTimeout.code, 2);
    assert.match(badTimeout.stderr, /--timeout must be a duration/);
    const unknown = await check(['--config', configFile, '--port', '8080']);
    assert.equal(unknown.code, 2);
    const broken = await check(['--config', writeConfig('broken.yaml', { public: { host: '0.0.0.0', port: 'eighty' } })]);
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /^config: public\.port: /);
    const missing = await check(['--config', join(dir, 'missing.yaml')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot read .*missing\.yaml: ENOENT/);
  });

  it('runs on its own as a script (the Dockerfile\'s node dist/src/cli/healthcheck.js), with the exit code of the check', async () => {
    const healthy = await runScript(['--config', configFile]);
    assert.equal(healthy.code, 0, healthy.stderr);
    assert.equal(healthy.stdout.trim(), `healthy: http://127.0.0.1:${port}/healthz answered 200`);
    const closed = await freePort();
    const refused = await runScript(['--config', writeConfig('script.yaml', { public: { host: '127.0.0.1', port: closed } })]);
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(refused.stderr.trim(), `unhealthy: http://127.0.0.1:${closed}/healthz: ECONNREFUSED`);
  });

  it('publicListenerUrl: loopback for every-address binds, brackets for IPv6, names as they are', () => {
    const url = (host: string) => publicListenerUrl({ host, port: 9090 }, '/healthz');
    assert.equal(url('0.0.0.0'), 'http://127.0.0.1:9090/healthz');
    assert.equal(url('::'), 'http://[::1]:9090/healthz');
    assert.equal(url('0:0::0'), 'http://[::1]:9090/healthz');
    assert.equal(url('::1'), 'http://[::1]:9090/healthz');
    assert.equal(url('fd00:0::1'), 'http://[fd00::1]:9090/healthz');
    assert.equal(url('10.1.2.3'), 'http://10.1.2.3:9090/healthz');
    assert.equal(url('ca.internal'), 'http://ca.internal:9090/healthz');
  });
});
