/**
 * Start-up with the database not there yet (Postgres behind a TCP proxy that is cut): `serve`
 * waits and retries with a clear log line, serves nothing meanwhile, and becomes ready by
 * itself once the database answers. Postgres only.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '../setup/database.js';
import { createTestPki } from '../setup/pki.js';
import { CLI, TSX_LOADER, cleanEnv, freePort, killAll, logLines, spawnService, waitForStatus } from '../setup/processes.js';
import { writeServiceConfig } from '../setup/service-config.js';
import { startTcpProxy, type TcpProxy } from '../setup/tcp-proxy.js';
import { createTestIssuer } from '../setup/tokens.js';

describe('start-up before the database answers', { skip: testDatabaseUrl ? false : 'needs Postgres (TEST_DATABASE_URL) behind a TCP proxy' }, () => {
  let database: TestDatabase;
  let proxy: TcpProxy;

  after(async () => {
    await killAll();
    await proxy?.close();
    await database?.drop();
  });

  it('waits with a "waiting for the database" line, then serves once the database is back', async () => {
    database = await createTestDatabase();
    const url = new URL(database.url!);
    proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
    await proxy.cut();
    const proxied = new URL(url);
    proxied.host = `127.0.0.1:${proxy.port}`;
    const apiPort = await freePort();
    const publicPort = await freePort();
    const config = writeServiceConfig({ pki: await createTestPki('p256'), issuer: await createTestIssuer(), database: { ...database, url: proxied.toString() }, apiPort, publicPort, tls: 'off', workers: 1 });
    const service = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', '--config', config], { cwd: database.dataDir, env: cleanEnv() });
    const deadline = Date.now() + 60_000;
    while (!logLines(service).some((l) => l.msg === 'waiting for the database') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const waiting = logLines(service).filter((l) => l.msg === 'waiting for the database');
    assert.ok(waiting.length >= 1, `a "waiting for the database" line:\n${service.output()}`);
    assert.equal(typeof waiting[0]!.retryInMs, 'number');
    assert.ok(service.running, 'it keeps trying rather than exit');
    const refused = await fetch(`http://127.0.0.1:${publicPort}/healthz`).then(
      (r) => r.status,
      () => 'refused',
    );
    assert.equal(refused, 'refused', 'nothing listens before the database answers');
    await proxy.restore();
    await waitForStatus(`http://127.0.0.1:${publicPort}/readyz`, 200, service, 30_000);
  });
});
