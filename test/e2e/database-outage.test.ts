/**
 * Database outages on real Postgres: the app reaches its database through a TCP proxy that the
 * test cuts and restores, and its backends are terminated server-side while it issues. During an
 * outage every answer is 503 `unavailable` with Retry-After and no certificate (docs/api.md
 * "Conventions"), /readyz is 503, and the app recovers on its own. No certificate that was
 * returned may be missing from the database afterwards. The last case runs `service-ca serve` as a
 * process, where an uncaught error would end it.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { startTestApp, workload, type TestApp } from '../setup/app.js';
import { csrFor } from '../setup/csr.js';
import { connectPg, createTestDatabase, testDatabaseUrl, type TestDatabase } from '../setup/database.js';
import { createTestPki } from '../setup/pki.js';
import { CLI, TSX_LOADER, cleanEnv, exitWithin, freePort, killAll, spawnService, waitForStatus, type ChildService } from '../setup/processes.js';
import { writeServiceConfig } from '../setup/service-config.js';
import { allOf, jsonObject } from '../setup/load.js';
import { startTcpProxy, type TcpProxy } from '../setup/tcp-proxy.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const OWNER = workload('shop', 'web');
const UNAVAILABLE = 'urn:service-ca:error:unavailable';
/** The bundled client gives up after 15 s; a 503 must come well before that. */
const ANSWER_WITHIN_MS = 10_000;

interface Answer {
  status: number;
  ms: number;
  retryAfter: string | null;
  contentType: string | null;
  text: string;
  body: Record<string, unknown> | undefined;
}

async function answer(res: Response, started: number): Promise<Answer> {
  const text = await res.text();
  const body = jsonObject(text);
  return { status: res.status, ms: Date.now() - started, retryAfter: res.headers.get('retry-after'), contentType: res.headers.get('content-type'), text, body };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The contract for a 503: problem document `unavailable`, Retry-After in seconds, no certificate. */
function assertUnavailable(a: Answer, what: string): void {
  assert.equal(a.status, 503, `${what}: ${a.status} ${a.text}`);
  assert.equal(a.contentType, 'application/problem+json', `${what}: content type`);
  assert.equal(a.body?.type, UNAVAILABLE, `${what}: ${a.text}`);
  assert.equal(a.body?.status, 503);
  assert.match(a.retryAfter ?? '', /^[1-9]\d*$/, `${what}: Retry-After is a positive number of seconds, got ${a.retryAfter}`);
  assert.equal(a.body?.certificate, undefined, `${what}: a 5xx never carries a certificate`);
  assert.doesNotMatch(a.text, /BEGIN CERTIFICATE/, `${what}: a 5xx never carries a certificate`);
}

if (!testDatabaseUrl) {
  it('database outages need a real Postgres server', (t) => {
    t.skip('TEST_DATABASE_URL is not set: the outage tests cut a TCP connection to a Postgres server, which the embedded PGlite does not have');
  });
} else {
  const serverUrl: string = testDatabaseUrl;
  describe('database outage (real Postgres behind a TCP proxy)', () => {
    let database: TestDatabase;
    let proxy: TcpProxy;
    let app: TestApp;
    let csr: string;
    let dbName: string;
    /** Every certificate the app returned with a 201, to check against the database at the end. */
    const returned = new Map<string, string>();
    /** Uncaught exceptions and unhandled rejections: either one ends `service-ca serve` (Node's defaults). */
    const uncaught: unknown[] = [];
    const onUncaught = (err: unknown) => uncaught.push(err);

    before(async () => {
      process.on('uncaughtException', onUncaught);
      process.on('unhandledRejection', onUncaught);
      database = await createTestDatabase();
      const url = new URL(database.url!);
      dbName = url.pathname.slice(1);
      proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
      const proxied = new URL(url);
      proxied.hostname = '127.0.0.1';
      proxied.port = String(proxy.port);
      app = await startTestApp({ database: { ...database, url: proxied.toString() } });
      csr = await csrFor({ dns: ['web.shop.svc'] });
    });
    after(async () => {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
      await app?.stop();
      await proxy?.close();
      await database?.drop();
    });

    const issue = async (): Promise<Answer> => {
      const started = Date.now();
      const a = await answer(await app.issue(OWNER, { csr, ttl: '1h' }), started);
      if (a.status === 201) {
        const serial = a.body?.serial as string;
        assert.match(serial, /^[0-9a-f]+$/);
        returned.set(serial, a.body?.certificate as string);
      }
      return a;
    };
    const get = async (serial: string): Promise<Answer> => {
      const started = Date.now();
      return answer(await fetch(`${app.api}/v1/certificates/${serial}`, { headers: { Authorization: `Bearer ${await app.token(OWNER)}` } }), started);
    };
    const readyz = async () => (await fetch(`${app.public}/readyz`, { signal: AbortSignal.timeout(10_000) })).status;

    /** Polls until an issuance succeeds and /readyz is 200; returns how long that took, or undefined. */
    const recovery = async (limitMs: number): Promise<{ ms: number | undefined; last: string }> => {
      const started = Date.now();
      let last = '';
      while (Date.now() - started < limitMs) {
        const a = await issue();
        const r = await readyz();
        if (a.status === 201 && r === 200) return { ms: Date.now() - started, last };
        last = `issuance ${a.status} after ${a.ms} ms ${a.status === 201 ? '' : a.text}, readyz ${r}`;
        await sleep(200);
      }
      return { ms: undefined, last };
    };
    const assertRecovered = (r: { ms: number | undefined; last: string }, limitMs: number) =>
      assert.ok(r.ms !== undefined && r.ms <= limitMs, `issuance and /readyz must recover within ${limitMs} ms of the database coming back, without a restart (took ${r.ms ?? 'longer'} ms; last: ${r.last})`);

    /** Issues from `n` concurrent loops until stop() is called; collects every answer. */
    const load = (n: number) => {
      const answers: Answer[] = [];
      let stopped = false;
      const loops = Array.from({ length: n }, async () => {
        while (!stopped) answers.push(await issue());
      });
      return {
        answers,
        async stop() {
          stopped = true;
          await Promise.all(loops);
          return answers;
        },
      };
    };

    /** What the contract allows around an outage: 201, or a well-formed 503, each answered in bounded time. */
    const assertOutageAnswers = (answers: Answer[]) => {
      const unexpected = answers.filter((a) => a.status !== 201 && a.status !== 503);
      assert.deepEqual(unexpected.map((a) => `${a.status} ${a.text}`), [], `no 500 (nor anything but 201 and 503) among ${answers.length} answers`);
      answers.filter((a) => a.status === 503).forEach((a, i) => assertUnavailable(a, `503 number ${i}`));
      const slow = answers.filter((a) => a.ms > ANSWER_WITHIN_MS).map((a) => `${a.status} after ${a.ms} ms`);
      assert.deepEqual(slow, [], `every request is answered within ${ANSWER_WITHIN_MS} ms during an outage (503 at once, not held until the database returns)`);
    };

    /** An uncaught exception or unhandled rejection here is a crash of `service-ca serve`, which installs no handler. */
    const assertNoCrash = () => {
      const seen = uncaught.splice(0).map((e) => (e instanceof Error ? (e.stack ?? e.message).split('\n').slice(0, 2).join(' ') : String(e)));
      assert.deepEqual([...new Set(seen)], [], `no uncaught exception or unhandled rejection: each would end the service-ca process (${seen.length} seen)`);
    };

    beforeEach(() => {
      uncaught.length = 0;
    });

    it('works through the proxy before any outage', async () => {
      const a = await issue();
      assert.equal(a.status, 201, a.text);
      assert.equal(await readyz(), 200);
      assert.ok(proxy.accepted > 0, 'the app reaches its database through the proxy');
    });

    it('answers 503 unavailable with Retry-After while the database is unreachable, then recovers without a restart', async () => {
      const before = await issue();
      assert.equal(before.status, 201, before.text);
      const serial = before.body?.serial as string;

      await proxy.cut();
      const issuance = await issue();
      assertUnavailable(issuance, 'POST /v1/certificates during the outage');
      assert.ok(issuance.ms < 10_000, `the 503 came after ${issuance.ms} ms`);

      const several = await Promise.all(Array.from({ length: 4 }, () => issue()));
      several.forEach((a, i) => assertUnavailable(a, `concurrent POST ${i} during the outage`));

      assert.equal(await readyz(), 503, '/readyz during the outage');
      const apiReady = await fetch(`${app.api}/readyz`);
      assert.equal(apiReady.status, 503, '/readyz on the API listener during the outage');
      assert.equal(((await apiReady.json()) as { database: boolean }).database, false);

      assertUnavailable(await get(serial), 'GET /v1/certificates/{serial} during the outage');
      assert.equal((await fetch(`${app.public}/healthz`)).status, 200, 'the process itself is alive');

      await proxy.restore();
      assertRecovered(await recovery(5000), 5000);
      const again = await get(serial);
      assert.equal(again.status, 200, again.text);
      assert.equal(again.body?.certificate, before.body?.certificate);
      assertNoCrash();
    });

    it('a cut under concurrent load: only 201 or 503, each answered promptly, and issuance recovers within seconds', async () => {
      const running = load(6);
      await sleep(400);
      await proxy.cut();
      await sleep(1000);
      await proxy.restore();
      const recovered = await recovery(5000);
      const answers = await running.stop();

      const statuses = answers.map((a) => a.status);
      assert.ok(statuses.includes(503), `the cut was seen (${statuses.length} answers)`);
      assert.ok(statuses.includes(201), 'issuances succeeded around the cut');
      allOf(
        () => assertNoCrash(),
        () => assertRecovered(recovered, 5000),
        () => assertOutageAnswers(answers),
      );
    });

    it('survives its backends being terminated server-side while it issues', async () => {
      const admin = await connectPg(serverUrl);
      let terminated = 0;
      let answers: Answer[] = [];
      let recovered: Awaited<ReturnType<typeof recovery>> = { ms: undefined, last: 'not measured' };
      try {
        const running = load(4);
        const until = Date.now() + 4000;
        while (Date.now() < until) {
          await sleep(150);
          const { rows } = await admin.query<{ killed: boolean }>(
            'select pg_terminate_backend(pid) as killed from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
            [dbName],
          );
          terminated += rows.filter((r) => r.killed).length;
        }
        recovered = await recovery(5000);
        answers = await running.stop();
      } finally {
        await admin.end();
      }
      assert.ok(terminated > 0, 'backends of the app were terminated');
      assert.ok(answers.some((a) => a.status === 201), 'issuances went through between the terminations');
      allOf(
        () => assertNoCrash(),
        () => assertRecovered(recovered, 5000),
        () => assertOutageAnswers(answers),
      );
    });

    it('answers 503 within seconds while the database accepts connections but never answers (partition), then recovers', async () => {
      const warm = await issue();
      assert.equal(warm.status, 201, warm.text);
      proxy.partition();
      let during: Answer | string;
      const started = Date.now();
      try {
        const res = await fetch(`${app.api}/v1/certificates`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(OWNER)}` },
          body: JSON.stringify({ csr, ttl: '1h' }),
          signal: AbortSignal.timeout(ANSWER_WITHIN_MS + 5000),
        });
        during = await answer(res, started);
      } catch (err) {
        during = `no answer within ${Date.now() - started} ms (${(err as Error).name})`;
      }
      const ready = await readyz();
      await proxy.restore();
      const recovered = await recovery(5000);

      allOf(
        () => {
          assert.ok(typeof during !== 'string', `POST /v1/certificates while the database hangs: ${String(during)}; a 503 with Retry-After is due`);
          assertUnavailable(during, 'POST /v1/certificates while the database hangs');
          assert.ok(during.ms <= ANSWER_WITHIN_MS, `the 503 came after ${during.ms} ms`);
        },
        () => assert.equal(ready, 503, '/readyz while the database hangs'),
        () => assertRecovered(recovered, 5000),
        () => assertNoCrash(),
      );
    });

    it('has a record for every certificate it returned', async () => {
      assert.ok(returned.size > 5, `${returned.size} certificates were returned`);
      for (const [serial, certificate] of returned) {
        const a = await get(serial);
        assert.equal(a.status, 200, `certificate ${serial} was returned but GET answers ${a.status} ${a.text}`);
        assert.equal(a.body?.certificate, certificate);
        assert.equal(new X509Certificate(certificate).serialNumber.toLowerCase().replace(/^0+/, ''), serial.replace(/^0+/, ''));
      }
      assertNoCrash();
    });
  });

  describe('service-ca serve as a process while its backends are terminated', () => {
    let database: TestDatabase;
    let issuer: TestIssuer;
    let service: ChildService;
    let api: string;
    let pub: string;
    const folders: string[] = [];

    before(async () => {
      const [pki, iss, db] = await Promise.all([createTestPki('p256'), createTestIssuer(), createTestDatabase()]);
      [issuer, database] = [iss, db];
      folders.push(pki.dir, dirname(iss.jwksPath));
      const [apiPort, publicPort] = [await freePort(), await freePort()];
      [api, pub] = [`http://127.0.0.1:${apiPort}`, `http://127.0.0.1:${publicPort}`];
      const config = writeServiceConfig({ pki, issuer, database, apiPort, publicPort, tls: 'off', logLevel: 'warn' });
      folders.push(dirname(config));
      service = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', '--config', config], { cwd: database.dataDir, env: cleanEnv() });
      await waitForStatus(`${pub}/readyz`, 200, service);
    });
    after(async () => {
      await killAll();
      await database?.drop();
      folders.forEach((d) => rmSync(d, { recursive: true, force: true }));
    });

    it('keeps running, answers only 201 or 503, keeps every record it returned, and stops with exit 0', async () => {
      const csr = await csrFor({ dns: ['web.shop.svc'] });
      const issued: string[] = [];
      const outcomes: string[] = [];
      const post = async () => {
        try {
          const res = await fetch(`${api}/v1/certificates`, {
            method: 'POST',
            headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.mint({ sub: OWNER })}` },
            body: JSON.stringify({ csr, ttl: '1h' }),
            signal: AbortSignal.timeout(ANSWER_WITHIN_MS + 5000),
          });
          const body = (await res.json()) as { serial?: string };
          if (res.status === 201) issued.push(body.serial!);
          return res.status;
        } catch (err) {
          return `no answer (${(err as Error).message})`;
        }
      };
      const admin = await connectPg(serverUrl);
      let terminated = 0;
      try {
        let stop = false;
        const loops = Array.from({ length: 4 }, async () => {
          while (!stop && service.running) outcomes.push(String(await post()));
        });
        const until = Date.now() + 4000;
        while (Date.now() < until && service.running) {
          await sleep(150);
          const { rows } = await admin.query<{ killed: boolean }>(
            'select pg_terminate_backend(pid) as killed from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
            [new URL(database.url!).pathname.slice(1)],
          );
          terminated += rows.filter((r) => r.killed).length;
        }
        stop = true;
        await Promise.all(loops);
      } finally {
        await admin.end();
      }
      assert.ok(terminated > 0, 'backends of the process were terminated');
      if (!service.running) {
        const e = await service.exited;
        const cause = service.output().split('\n').filter((l) => /Error|^\s+at /.test(l) && !l.startsWith('{')).slice(0, 4).join('\n');
        assert.fail(`service-ca serve died (exit code ${e.code}) while its database connections were being terminated:\n${cause}`);
      }
      const counts = outcomes.reduce<Record<string, number>>((m, o) => ({ ...m, [o]: (m[o] ?? 0) + 1 }), {});
      assert.deepEqual(Object.keys(counts).filter((o) => o !== '201' && o !== '503'), [], `only 201 and 503: ${JSON.stringify(counts)}`);

      const deadline = Date.now() + 5000;
      let last: number | string = 'none';
      while (Date.now() < deadline && (last = await post()) !== 201) await sleep(200);
      assert.equal(last, 201, 'issuance works again within 5 s, without a restart');
      for (const serial of issued) {
        const res = await fetch(`${api}/v1/certificates/${serial}`, { headers: { Authorization: `Bearer ${await issuer.mint({ sub: OWNER })}` } });
        assert.equal(res.status, 200, `certificate ${serial} was returned, so it is recorded`);
      }

      service.signal('SIGTERM');
      const e = await exitWithin(service, 10_000);
      assert.equal(e.code, 0, service.output());
    });
  });
}
