/**
 * The real command line as a child process (docs/api.md "Running it"): `service-ca serve --config FILE`
 * answers, SIGTERM lets an in-flight request finish and ends the process with exit 0 within
 * 10 s, a restart on the same database still has every record, and SERVICE_CA_CONFIG works in
 * place of --config. PGlite under dataDir without TEST_DATABASE_URL, a Postgres database with it.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request, type IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { workload } from '../setup/app.js';
import { csrFor } from '../setup/csr.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { CLI, TSX_LOADER, cleanEnv, exitWithin, freePort, killAll, spawnService, waitForStatus, type ChildService } from '../setup/processes.js';
import { writeServiceConfig } from '../setup/service-config.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const OWNER = workload('shop', 'web');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Issued {
  serial: string;
  certificate: string;
}

describe('service-ca serve as a child process: graceful stop and restart', () => {
  let pki: TestPki;
  let issuer: TestIssuer;
  let database: TestDatabase;
  let configPath: string;
  let cwd: string;
  let apiPort: number;
  let publicPort: number;
  let api: string;
  let pub: string;
  let csr: string;
  const issued: Issued[] = [];

  before(async () => {
    [pki, issuer, database] = await Promise.all([createTestPki('p256'), createTestIssuer(), createTestDatabase()]);
    apiPort = await freePort();
    publicPort = await freePort();
    assert.notEqual(apiPort, publicPort);
    api = `http://127.0.0.1:${apiPort}`;
    pub = `http://127.0.0.1:${publicPort}`;
    configPath = writeServiceConfig({ pki, issuer, database, apiPort, publicPort, tls: 'off' });
    // An empty working folder: if the configuration were ignored, the development CA would appear here.
    cwd = mkdtempSync(join(tmpdir(), 'service-ca-cwd-'));
    csr = await csrFor({ dns: ['web.shop.svc'] });
  });
  after(async () => {
    await killAll();
    await database?.drop();
    for (const d of [cwd, configPath && dirname(configPath), pki?.dir, issuer && dirname(issuer.jwksPath)]) if (d) rmSync(d, { recursive: true, force: true });
  });

  const serve = (via: 'flag' | 'env'): ChildService =>
    spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', ...(via === 'flag' ? ['--config', configPath] : [])], {
      cwd,
      env: cleanEnv(via === 'env' ? { SERVICE_CA_CONFIG: configPath } : {}),
    });

  const issue = async (): Promise<Issued> => {
    const res = await fetch(`${api}/v1/certificates`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.mint({ sub: OWNER })}` },
      body: JSON.stringify({ csr, ttl: '1h' }),
    });
    const text = await res.text();
    assert.equal(res.status, 201, text);
    return JSON.parse(text) as Issued;
  };

  /** GET every certificate issued so far as its owner: the same certificate comes back. */
  const assertRecordsKept = async () => {
    assert.ok(issued.length >= 2);
    for (const { serial, certificate } of issued) {
      const res = await fetch(`${api}/v1/certificates/${serial}`, { headers: { Authorization: `Bearer ${await issuer.mint({ sub: OWNER })}` } });
      const text = await res.text();
      assert.equal(res.status, 200, `GET ${serial} after a restart: ${text}`);
      const record = JSON.parse(text) as { serial: string; identity: string; certificate: string; status: string };
      assert.equal(record.serial, serial);
      assert.equal(record.identity, OWNER);
      assert.equal(record.status, 'valid');
      assert.equal(record.certificate, certificate, 'the same certificate, byte for byte');
    }
  };

  /** SIGTERM, then: exit code 0 within 10 s of the signal. */
  const stopGracefully = async (service: ChildService) => {
    service.signal('SIGTERM');
    const e = await exitWithin(service, 10_000);
    assert.equal(e.signal, null, service.output());
    assert.equal(e.code, 0, `exit code after SIGTERM:\n${service.output()}`);
    return e.ms;
  };

  it('serves with --config, finishes an in-flight request on SIGTERM and exits 0 within 10 s', async (t) => {
    const service = serve('flag');
    await waitForStatus(`${pub}/readyz`, 200, service);
    assert.equal((await fetch(`${api}/readyz`)).status, 200, 'the API listener is on the configured port');
    issued.push(await issue());

    // An issuance whose body is only half sent when SIGTERM arrives.
    const body = JSON.stringify({ csr, ttl: '1h' });
    const token = await issuer.mint({ sub: OWNER });
    let inFlight: ReturnType<typeof request> | undefined;
    const response = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(`${api}/v1/certificates`, {
        method: 'POST',
        agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), Authorization: `Bearer ${token}` },
      });
      req.on('response', (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.write(body.slice(0, 200));
      inFlight = req;
    });
    await sleep(500);
    const signalled = Date.now();
    service.signal('SIGTERM');
    // Once the listeners are closed, new connections are refused, while the process still runs.
    let refused = false;
    while (!refused && Date.now() - signalled < 5000) {
      refused = await fetch(`${pub}/healthz`, { signal: AbortSignal.timeout(1000) }).then(() => false, () => true);
      if (!refused) await sleep(100);
    }
    assert.ok(refused, 'a stopping process accepts no new connection');
    await sleep(300);
    assert.ok(service.running, `the process waits for the in-flight request:\n${service.output()}`);
    inFlight!.end(body.slice(200));

    const answer = await response;
    assert.equal(answer.status, 201, `the in-flight request completes: ${answer.text}`);
    const late = JSON.parse(answer.text) as Issued;
    assert.equal(new X509Certificate(late.certificate).serialNumber.toLowerCase().replace(/^0+/, ''), late.serial.replace(/^0+/, ''));
    issued.push(late);

    const e = await exitWithin(service, Math.max(0, 10_000 - (Date.now() - signalled)));
    assert.equal(e.signal, null, service.output());
    assert.equal(e.code, 0, `exit code after SIGTERM:\n${service.output()}`);
    assert.ok(Date.now() - signalled <= 10_000, `exited ${Date.now() - signalled} ms after SIGTERM`);
    t.diagnostic(`exited ${Date.now() - signalled} ms after SIGTERM, with a request in flight`);
  });

  it('has every record after a restart on the same database', async () => {
    const service = serve('flag');
    await waitForStatus(`${pub}/readyz`, 200, service);
    await assertRecordsKept();
    issued.push(await issue());
    await stopGracefully(service);
    assert.equal(existsSync(join(database.dataDir, 'pgdata')), database.kind === 'pglite', `the records live in ${database.kind}`);
  });

  it('reads the configuration from SERVICE_CA_CONFIG when --config is absent', async () => {
    const service = serve('env');
    await waitForStatus(`${pub}/readyz`, 200, service);
    await assertRecordsKept();
    const ms = await stopGracefully(service);
    assert.ok(ms < 10_000);
    assert.equal(existsSync(join(cwd, 'data')), false, 'no development CA was created in the working folder');
  });

  it('stops within 10 s when idle, with exit 0', async (t) => {
    const started = Date.now();
    const service = serve('flag');
    await waitForStatus(`${pub}/readyz`, 200, service);
    t.diagnostic(`ready ${Date.now() - started} ms after spawning`);
    const ms = await stopGracefully(service);
    t.diagnostic(`exited ${ms} ms after SIGTERM`);
    assert.ok(ms < 10_000, `${ms} ms`);
  });
});
