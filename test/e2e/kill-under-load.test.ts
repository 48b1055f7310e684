/**
 * SIGKILL under full load loses nothing that was answered (docs/api.md: no certificate leaves the
 * service unless its record is committed), now that issuances are committed in groups
 * (src/store/group-commit.ts): `service-ca serve` (on PGlite by default, on Postgres with
 * TEST_DATABASE_URL, with its default workers) issues with one-time tokens at 32 concurrent
 * requests; once 150 certificates are answered its whole process group is SIGKILLed; it is
 * started again on the same database and stopped; then the database itself, opened by the test,
 * must hold every answered certificate (byte for byte) and its audit row.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../../src/store/database.js';
import { rawRows } from '../../src/store/rows.js';
import { workload } from '../setup/app.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { pemSerial, sleep, until } from '../setup/load.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { CLI, TSX_LOADER, cleanEnv, freePort, spawnService, waitForStatus, type ChildService } from '../setup/processes.js';
import { writeServiceConfig } from '../setup/service-config.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const CONCURRENCY = 32;
const ANSWERED_BEFORE_KILL = 150;

describe('SIGKILL under full load', () => {
  let pki: TestPki;
  let issuer: TestIssuer;
  let database: TestDatabase;
  let configFile: string;
  let api: string;
  let pub: string;
  let service: ChildService | undefined;

  const serve = async () => {
    service = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', '--config', configFile], { cwd: database.dataDir, env: cleanEnv() });
    await waitForStatus(`${pub}/readyz`, 200, service, 90_000);
  };

  before(async () => {
    [pki, issuer, database] = await Promise.all([createTestPki('p256'), createTestIssuer(), createTestDatabase()]);
    const [apiPort, publicPort] = [await freePort(), await freePort()];
    configFile = writeServiceConfig({ pki, issuer, database, apiPort, publicPort, tls: 'off', logLevel: 'warn', requireJti: true });
    api = `http://127.0.0.1:${apiPort}`;
    pub = `http://127.0.0.1:${publicPort}`;
  });
  after(async () => {
    await service?.kill();
    await database.drop();
    for (const dir of [pki.dir, dirname(issuer.jwksPath), dirname(configFile)]) rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the record and the audit row of every certificate a client received', async () => {
    await serve();
    const csrs = await Promise.all(Array.from({ length: 40 }, (_, i) => createKeyAndCsr('p256', { dns: [`kill${i}.load.svc`] })));
    const received: string[] = [];
    let failed = 0;
    let stop = false;
    const loop = async (worker: number) => {
      for (let n = 0; !stop; n++) {
        const i = (worker + n * CONCURRENCY) % csrs.length;
        const token = await issuer.mint({ sub: workload('load', `kill${i}`) });
        try {
          const res = await fetch(`${api}/v1/certificates`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
            body: JSON.stringify({ csr: csrs[i]!.csrPem }),
          });
          const text = await res.text();
          if (res.status === 201) received.push((JSON.parse(text) as { certificate: string }).certificate);
          else failed++;
        } catch {
          // The connection died with the process: no answer, nothing promised.
          failed++;
          await sleep(5);
        }
      }
    };
    const loops = Array.from({ length: CONCURRENCY }, (_, w) => loop(w));
    await until(`${ANSWERED_BEFORE_KILL} certificates answered`, () => received.length >= ANSWERED_BEFORE_KILL, 60_000);
    await service!.kill();
    stop = true;
    await Promise.all(loops);
    assert.ok(failed > 0, 'requests were in flight when the process died');

    // A clean restart on the same database, then a clean stop: the test reads the database itself.
    await serve();
    service!.signal('SIGTERM');
    await service!.exited;

    const serials = received.map(pemSerial);
    const opened = await openDatabase({ url: database.url, dataDir: database.dataDir });
    try {
      const certs = await rawRows<{ serial: string; der: Buffer | Uint8Array }>(opened.db, sql`select serial, der from certificates where serial in ${serials}`);
      const audited = await rawRows<{ serial: string }>(opened.db, sql`select serial from audit_events where action = 'certificate.issue' and outcome = 'success' and serial in ${serials}`);
      const stored = new Map(certs.map((c) => [c.serial, Buffer.from(c.der)]));
      const missing = received.filter((pem) => !stored.get(pemSerial(pem))?.equals(new X509Certificate(pem).raw));
      assert.deepEqual(missing.map(pemSerial), [], `answered certificates without their record (of ${received.length})`);
      const auditedSerials = new Set(audited.map((a) => a.serial));
      assert.deepEqual(serials.filter((s) => !auditedSerials.has(s)), [], 'answered certificates without their audit row');
      assert.equal(audited.length, serials.length, 'one audit row each');
    } finally {
      await opened.close();
    }
  });
});
