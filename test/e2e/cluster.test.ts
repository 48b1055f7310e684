/**
 * `serve` with several worker processes on one Postgres database (src/cluster.ts): requests are
 * spread over the workers, /metrics on any worker counts every worker's issuances, a worker
 * that dies is replaced while the others keep serving, and SIGTERM to the primary stops them
 * all gracefully. Postgres only: PGlite runs one process.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { workload } from '../setup/app.js';
import { csrFor } from '../setup/csr.js';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '../setup/database.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { CLI, TSX_LOADER, cleanEnv, exitWithin, freePort, killAll, logLines, spawnService, waitForStatus, type ChildService } from '../setup/processes.js';
import { writeServiceConfig } from '../setup/service-config.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const WORKERS = 2;

function issuedCount(metricsText: string): number {
  return metricsText
    .split('\n')
    .filter((l) => l.startsWith('service_ca_issuances_total{') && l.includes('result="issued"'))
    .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
}

async function waitFor<T>(what: string, check: () => T | undefined, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('several worker processes', { skip: testDatabaseUrl ? false : 'needs Postgres (TEST_DATABASE_URL): the embedded database runs one process' }, () => {
  let database: TestDatabase;
  let issuer: TestIssuer;
  let service: ChildService;
  let api: string;
  let csr: string;
  let pki: TestPki;

  before(async () => {
    database = await createTestDatabase();
    pki = await createTestPki('p256');
    issuer = await createTestIssuer();
    const apiPort = await freePort();
    const publicPort = await freePort();
    const config = writeServiceConfig({ pki, issuer, database, apiPort, publicPort, tls: 'off', workers: WORKERS });
    service = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', '--config', config], { cwd: database.dataDir, env: cleanEnv() });
    api = `http://127.0.0.1:${apiPort}`;
    await waitForStatus(`${api}/readyz`, 200, service, 90_000);
    await waitFor('every worker serving', () => (logLines(service).filter((l) => l.msg === 'worker serving').length >= WORKERS ? true : undefined), 90_000);
    csr = await csrFor({ dns: ['web.shop.svc'] });
  });

  after(async () => {
    await killAll();
    await database?.drop();
  });

  const issue = async () => {
    const res = await fetch(`${api}/v1/certificates`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.mint({ sub: workload('shop', 'web') })}`, Connection: 'close' },
      body: JSON.stringify({ csr }),
      signal: AbortSignal.timeout(15_000),
    });
    await res.arrayBuffer();
    return res.status;
  };

  it('spreads requests over every worker, and /metrics counts the issuances of all of them', async () => {
    const before = issuedCount(await (await fetch(`${api}/metrics`)).text());
    const statuses = [];
    // A new connection per request: the primary hands connections to workers in turn.
    for (let round = 0; round < 5; round++) statuses.push(...(await Promise.all(Array.from({ length: 8 }, issue))));
    assert.deepEqual(new Set(statuses), new Set([201]));
    const servedBy = await waitFor('request lines', () => {
      const workers = new Set(logLines(service).filter((l) => l.msg === 'request' && l.path === '/v1/certificates' && l.status === 201).map((l) => l.worker));
      return workers.size >= WORKERS ? workers : undefined;
    });
    assert.equal(servedBy.size, WORKERS, `issuances were served by workers ${[...servedBy].join(', ')}`);
    // Whichever worker answers /metrics, it reports all 40 issuances.
    for (let i = 0; i < 4; i++) {
      const text = await (await fetch(`${api}/metrics`, { headers: { Connection: 'close' } })).text();
      assert.equal(issuedCount(text) - before, 40);
      assert.match(text, /service_ca_database_pool_connections\{state="open"\} \d+/);
    }
  });

  it('replaces a worker that dies, and keeps serving meanwhile', async () => {
    const serving = logLines(service).filter((l) => l.msg === 'worker serving');
    const victim = serving[serving.length - 1]!;
    process.kill(victim.pid as number, 'SIGKILL');
    // Connections the primary handed to the worker before it knew of its death die with it (as
    // its in-flight requests do); from the moment it knows, the others take every connection.
    await waitFor('the primary to see the exit', () => (logLines(service).some((l) => l.msg === 'worker exited; starting another') ? true : undefined));
    const statuses = [];
    for (let i = 0; i < 10; i++) statuses.push(await issue());
    assert.deepEqual(new Set(statuses), new Set([201]), 'the surviving worker answered while the other was replaced');
    await waitFor('a replacement worker', () => (logLines(service).some((l) => l.msg === 'worker serving' && l.pid !== victim.pid && !serving.some((s) => s.pid === l.pid)) ? true : undefined), 60_000);
  });

  it('leaves no worker serving unsupervised when the primary is killed', async () => {
    const apiPort = await freePort();
    const config = writeServiceConfig({ pki, issuer, database, apiPort, publicPort: await freePort(), tls: 'off', workers: WORKERS });
    const other = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', '--config', config], { cwd: database.dataDir, env: cleanEnv() });
    await waitForStatus(`http://127.0.0.1:${apiPort}/readyz`, 200, other, 90_000);
    const workerPids = await waitFor('every worker serving', () => {
      const pids = logLines(other).filter((l) => l.msg === 'worker serving').map((l) => l.pid as number);
      return pids.length >= WORKERS ? pids : undefined;
    }, 90_000);
    process.kill(other.pid, 'SIGKILL');
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await waitFor('the workers to exit', () => (workerPids.every((p) => !alive(p)) ? true : undefined), 15_000);
  });

  it('stops every worker on SIGTERM, finishing in-flight requests, and exits 0', async () => {
    // An issuance whose body is only half sent when SIGTERM arrives.
    const body = JSON.stringify({ csr });
    const token = await issuer.mint({ sub: workload('shop', 'web') });
    const req = request(`${api}/v1/certificates`, {
      method: 'POST',
      agent: false,
      headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), Authorization: `Bearer ${token}` },
    });
    const status = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });
    req.write(body.slice(0, 100));
    await new Promise((r) => setTimeout(r, 500));
    service.signal('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(service.running, 'the primary waits for the worker with a request in flight');
    req.end(body.slice(100));
    assert.equal(await status, 201);
    const exit = await exitWithin(service, 10_000);
    assert.equal(exit.code, 0, service.output());
    const lines = logLines(service);
    assert.ok(lines.some((l) => l.msg === 'stopping workers: finishing in-flight requests'));
    assert.ok(lines.filter((l) => l.msg === 'stopped').length >= WORKERS, 'every worker reported its stop');
  });
});
