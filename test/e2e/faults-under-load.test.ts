/**
 * Database cuts under sustained load (issue #7): `service-ca serve` as a process, one worker and
 * then two, reaching Postgres through a TCP proxy that the test cuts in the middle of the load
 * and restores. Tokens are one-time (requireJti: true), so every request carries a fresh jti.
 *
 * Issuance: 16 clients, each request a new key and CSR. Every 201 has its record in the database
 * (read straight from Postgres, the same DER); while the database is down nothing is 201 (only
 * 503 `unavailable` with Retry-After, or no answer at all), nothing is ever 500 or hangs; 201
 * comes back within 5 s of the database's return.
 * Revocation: certificates issued first, then revoked by 16 concurrent clients while the
 * database is cut; what fails with 503 is retried. Every 200 is revoked in the database with its
 * reason and is in the next CRL (read by openssl) within crl.maxDelay; a 409 only ever follows an
 * attempt whose answer was lost; the final CRL holds exactly the database's revocations.
 * database-outage.test.ts proves the single-request contract; this file proves it under load.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ADMIN, workload } from '../setup/app.js';
import { OPENSSL_REASON, waitForCrl, type ReasonName } from '../setup/crl-check.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '../setup/database.js';
import { allOf, call, certificateRows, describeOutcome, pemSerial, pemToDer, query, sample, sleep, unavailableViolation, until, type Outcome } from '../setup/load.js';
import { createTestPki } from '../setup/pki.js';
import { CLI, TSX_LOADER, cleanEnv, freePort, killAll, spawnService, waitForStatus, type ChildService } from '../setup/processes.js';
import { writeServiceConfig } from '../setup/service-config.js';
import { startTcpProxy, type TcpProxy } from '../setup/tcp-proxy.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const CLIENTS = 16;
const OUTAGE_MS = 3000;
const RECOVER_WITHIN_MS = 5000;
const MAX_DELAY_S = 2;
const REVOKED_CERTS = 96;
const REASONS: ReasonName[] = ['keyCompromise', 'superseded', 'unspecified', 'cessationOfOperation', 'affiliationChanged', 'caCompromise', 'privilegeWithdrawn'];

interface Window {
  /** proxy.cut() was called. */
  cutStarted: number;
  /** proxy.cut() returned: every connection reset, new ones refused. */
  cutDone: number;
  /** proxy.restore() was called. */
  restoreStarted: number;
  /** proxy.restore() returned: the database is reachable again. */
  restored: number;
}

/** Started after the cut took effect and answered before the restore began: the database could not have been reached. */
const surelyDown = (o: Outcome, w: Window) => o.started >= w.cutDone && o.ended <= w.restoreStarted;
/** Overlaps the outage (with a second of slack after the restore, for connections opened meanwhile). */
const nearOutage = (o: Outcome, w: Window) => o.ended >= w.cutStarted && o.started <= w.restored + 1000;

/**
 * The contract around an outage, for answers of which `ok` is the success status: an answer is
 * `ok`, `alsoOk`, or a well-formed 503; no answer at all only near the outage; never a hang;
 * never a success (nor anything but a 503 or no answer) while the database was surely down.
 */
function outageViolations(outcomes: Outcome[], w: Window, ok: number, alsoOk: number[] = []): (() => void)[] {
  return [
    () => {
      const hung = outcomes.filter((o) => o.hung).map(describeOutcome);
      assert.deepEqual(hung, [], `requests without an answer within 15 s (hangs): ${sample(hung)}`);
    },
    () => {
      const bad = outcomes.filter((o) => o.status !== undefined && o.status !== ok && o.status !== 503 && !alsoOk.includes(o.status)).map(describeOutcome);
      assert.deepEqual(bad, [], `answers other than ${[ok, ...alsoOk, 503].join(', ')} (a 500 among them is a defect): ${sample(bad)}`);
    },
    () => {
      const bad = outcomes.filter((o) => o.status === 503).map(unavailableViolation).filter((v): v is string => v !== undefined);
      assert.deepEqual(bad, [], `malformed 503s: ${sample(bad)}`);
    },
    () => {
      const bad = outcomes.filter((o) => o.status === undefined && !o.hung && !nearOutage(o, w)).map(describeOutcome);
      assert.deepEqual(bad, [], `connection errors away from the outage: ${sample(bad)}`);
    },
    () => {
      const bad = outcomes.filter((o) => surelyDown(o, w) && o.status !== undefined && o.status !== 503).map(describeOutcome);
      assert.deepEqual(bad, [], `answers other than 503 while the database was down (cut ${w.cutDone}, restore ${w.restoreStarted}): ${sample(bad)}`);
    },
  ];
}

/** How long after the restore the first success came among requests sent after it. */
function recoveryMs(outcomes: Outcome[], w: Window, ok: number): number | undefined {
  const firsts = outcomes.filter((o) => o.status === ok && o.started >= w.restoreStarted).map((o) => o.ended - w.restored);
  return firsts.length ? Math.min(...firsts) : undefined;
}

if (!testDatabaseUrl) {
  it('database cuts under load need a real Postgres server', (t) => {
    t.skip('TEST_DATABASE_URL is not set: these tests cut a TCP connection to a Postgres server, which the embedded PGlite does not have');
  });
} else {
  for (const workers of [1, 2]) {
    describe(`service-ca serve (workers: ${workers}) under load while its database is cut`, () => {
      let database: TestDatabase;
      let issuer: TestIssuer;
      let proxy: TcpProxy;
      let service: ChildService;
      let api: string;
      let pub: string;
      let chainPem: string;
      const folders: string[] = [];

      before(async () => {
        const [pki, iss, db] = await Promise.all([createTestPki('p256'), createTestIssuer(), createTestDatabase()]);
        [issuer, database] = [iss, db];
        folders.push(pki.dir, dirname(iss.jwksPath));
        const url = new URL(database.url!);
        proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 5432) });
        const proxied = new URL(url);
        proxied.hostname = '127.0.0.1';
        proxied.port = String(proxy.port);
        const [apiPort, publicPort] = [await freePort(), await freePort()];
        [api, pub] = [`http://127.0.0.1:${apiPort}`, `http://127.0.0.1:${publicPort}`];
        const config = writeServiceConfig({
          pki,
          issuer,
          database: { ...database, url: proxied.toString() },
          apiPort,
          publicPort,
          tls: 'off',
          logLevel: 'warn',
          workers,
          requireJti: true,
          crl: { maxDelay: `${MAX_DELAY_S}s` },
        });
        folders.push(dirname(config));
        service = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', '--config', config], { cwd: database.dataDir, env: cleanEnv() });
        await waitForStatus(`${pub}/readyz`, 200, service, 90_000);
        chainPem = await (await fetch(`${pub}/v1/ca/chain.pem`)).text();
      });
      after(async () => {
        await killAll();
        // Let the dead service's connections close on their own before closing the proxy:
        // resetAndDestroy() (tcp-proxy.ts) on a socket already shutting down fails with EINVAL
        // and leaks its handle, which keeps this test file from ever exiting.
        await until('the proxy\'s connections to close', () => !proxy || proxy.open === 0, 10_000).catch(() => {});
        await proxy?.close();
        await database?.drop();
        folders.forEach((d) => rmSync(d, { recursive: true, force: true }));
      });

      /** One issuance with a new key and a one-time token. */
      const issue = async (client: number): Promise<Outcome> => {
        const [ns, sa] = ['load', `c${client}`];
        const { csrPem } = await createKeyAndCsr('p256', { dns: [`${sa}.${ns}.svc`] });
        const token = await issuer.mint({ sub: workload(ns, sa) });
        return call(`POST /v1/certificates (client ${client})`, `${api}/v1/certificates`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
          body: JSON.stringify({ csr: csrPem, ttl: '1h' }),
        });
      };
      const revoke = async (serial: string, reason: ReasonName): Promise<Outcome> =>
        call(`revoke ${serial} (${reason})`, `${api}/v1/certificates/${serial}/revoke`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.mint({ sub: ADMIN })}` },
          body: JSON.stringify({ reason }),
        });

      /** Cuts the database for OUTAGE_MS, then restores it. */
      const outage = async (): Promise<Window> => {
        const cutStarted = Date.now();
        await proxy.cut();
        const cutDone = Date.now();
        await sleep(OUTAGE_MS);
        const restoreStarted = Date.now();
        await proxy.restore();
        return { cutStarted, cutDone, restoreStarted, restored: Date.now() };
      };

      const assertStillServing = () => {
        assert.ok(service.running, `service-ca serve exited:\n${service.output()}`);
        const restarts = service.output().split('\n').filter((l) => l.includes('worker exited'));
        assert.deepEqual(restarts, [], 'no worker died (the primary would have replaced it)');
      };

      it(`issuance from ${CLIENTS} clients: every 201 is recorded, nothing but 503 while the database is down, 201 again within 5 s`, async (t) => {
        const outcomes: Outcome[] = [];
        let stop = false;
        const loops = Array.from({ length: CLIENTS }, async (_, client) => {
          while (!stop) {
            const o = await issue(client);
            outcomes.push(o);
            // A client that got no certificate waits a little before it asks again.
            if (o.status !== 201) await sleep(50);
          }
        });
        let w!: Window;
        try {
          await until('40 issuances before the cut', () => outcomes.filter((o) => o.status === 201).length >= 40, 30_000);
          w = await outage();
          const restored = w;
          await until('a 201 sent after the restore', () => recoveryMs(outcomes, restored, 201) !== undefined, RECOVER_WITHIN_MS + 3000).catch(() => {});
          await sleep(1000);
        } finally {
          stop = true;
          await Promise.all(loops);
        }

        const ok = outcomes.filter((o) => o.status === 201);
        const counts = outcomes.reduce<Record<string, number>>((m, o) => ({ ...m, [String(o.status ?? o.error)]: (m[String(o.status ?? o.error)] ?? 0) + 1 }), {});
        assert.ok(outcomes.some((o) => surelyDown(o, w) && o.status === 503), `the cut was seen as 503s (${JSON.stringify(counts)})`);
        assert.ok(ok.some((o) => o.ended < w.cutStarted) && ok.some((o) => o.started > w.restored), `201s before and after the cut (${JSON.stringify(counts)})`);

        const serials = ok.map((o) => o.body?.serial as string);
        const rows = await certificateRows(database.url!, serials);
        const recovered = recoveryMs(outcomes, w, 201);
        const stored = (await query<{ n: number }>(database.url!, 'select count(*)::int as n from certificates'))[0]!.n;
        t.diagnostic(`answers ${JSON.stringify(counts)}; 201 again ${recovered} ms after the restore; ${stored - ok.length} records whose 201 was lost (allowed)`);
        allOf(
          ...outageViolations(outcomes, w, 201),
          () => assert.ok(recovered !== undefined && recovered <= RECOVER_WITHIN_MS, `201 again ${recovered ?? 'more than 8000'} ms after the database came back (at most ${RECOVER_WITHIN_MS})`),
          () => assert.equal(new Set(serials).size, serials.length, 'every 201 has its own serial'),
          () => {
            const bad = ok.filter((o) => pemSerial(o.body?.certificate as string) !== o.body?.serial).map(describeOutcome);
            assert.deepEqual(bad, [], `a 201 whose serial is not its certificate's: ${sample(bad)}`);
          },
          () => {
            const missing = ok.filter((o) => !rows.get(o.body?.serial as string)?.der.equals(pemToDer(o.body?.certificate as string))).map(describeOutcome);
            assert.deepEqual(missing, [], `certificates returned with 201 but not recorded (or recorded with other DER): ${sample(missing)}`);
          },
          assertStillServing,
        );
      });

      it(`revocation burst from ${CLIENTS} clients: every 200 is revoked in the database and in the next CRL, none lost`, async (t) => {
        // The certificates, issued while the database is up.
        const certs: string[] = [];
        await Promise.all(
          Array.from({ length: 8 }, async (_, client) => {
            while (certs.length < REVOKED_CERTS) {
              const o = await issue(client);
              assert.equal(o.status, 201, describeOutcome(o));
              certs.push(o.body?.serial as string);
            }
          }),
        );
        const reasonOf = new Map(certs.map((s, i) => [s, REASONS[i % REASONS.length]!]));

        // Each revoked once by one of 16 clients; a 503 or a lost answer goes back in the queue.
        const queue = [...certs];
        const attempts = new Map<string, Outcome[]>(certs.map((s) => [s, []]));
        const outcomes: Outcome[] = [];
        let inFlight = 0;
        const loops = Array.from({ length: CLIENTS }, async () => {
          while (queue.length > 0 || inFlight > 0) {
            const serial = queue.shift();
            if (serial === undefined) {
              await sleep(20);
              continue;
            }
            inFlight++;
            const o = await revoke(serial, reasonOf.get(serial)!);
            inFlight--;
            outcomes.push(o);
            attempts.get(serial)!.push(o);
            if (o.status === 503 || o.status === undefined) queue.push(serial);
            // Paced, so that the burst lasts until the cut has come and gone.
            await sleep(100);
          }
        });
        let w!: Window;
        try {
          await until(`a third of the revocations acknowledged`, () => outcomes.filter((o) => o.status === 200).length >= REVOKED_CERTS / 3, 30_000);
          w = await outage();
        } finally {
          await Promise.all(loops);
        }
        const lastAnswer = Math.max(...outcomes.map((o) => o.ended));
        const acked = outcomes.filter((o) => o.status === 200);
        const ackedSerials = new Set(acked.map((o) => o.what.split(' ')[1]!));
        assert.ok(acked.some((o) => o.ended < w.cutStarted) && acked.some((o) => o.started > w.restored), 'revocations acknowledged before and after the cut');
        assert.ok(outcomes.some((o) => surelyDown(o, w) && o.status === 503), 'the cut was seen as 503s');

        // The CRL that holds every acknowledged revocation, within maxDelay of the last answer.
        let crlSeen: Awaited<ReturnType<typeof waitForCrl>> | string;
        try {
          crlSeen = await waitForCrl(pub, chainPem, (c) => [...ackedSerials].every((s) => c.entries.has(s)), { since: lastAnswer, timeoutMs: MAX_DELAY_S * 1000 + 6000, intervalMs: 50 });
        } catch (err) {
          crlSeen = (err as Error).message;
        }
        const rows = await certificateRows(database.url!, certs);
        const dbRevoked = (await query<{ serial: string }>(database.url!, `select serial from certificates where status = 'revoked'`)).map((r) => r.serial);
        const recovered = recoveryMs(outcomes, w, 200);
        const statuses = outcomes.reduce<Record<string, number>>((m, o) => ({ ...m, [String(o.status ?? o.error)]: (m[String(o.status ?? o.error)] ?? 0) + 1 }), {});
        t.diagnostic(`answers ${JSON.stringify(statuses)}; 200 again ${recovered} ms after the restore; CRL with every 200 ${typeof crlSeen === 'string' ? 'never' : `${crlSeen.elapsedMs} ms`} after the last answer`);

        allOf(
          ...outageViolations(outcomes, w, 200, [409]),
          () => assert.ok(recovered !== undefined && recovered <= RECOVER_WITHIN_MS, `200 again ${recovered ?? 'never'} ms after the database came back (at most ${RECOVER_WITHIN_MS})`),
          () => {
            // One 200 per certificate, or a 409 after an attempt whose answer was lost (a 503
            // or no answer, whose commit went through); 409 on a first attempt is a defect.
            const bad = certs.flatMap((s) => {
              const seq = attempts.get(s)!;
              const final = seq[seq.length - 1]!;
              const oks = seq.filter((o) => o.status === 200).length;
              const firstConflict = seq.findIndex((o) => o.status === 409);
              if (oks > 1) return [`${s}: ${oks} times 200`];
              if (final.status !== 200 && final.status !== 409) return [`${s}: ended with ${describeOutcome(final)}`];
              if (firstConflict === 0) return [`${s}: 409 on its only revocation request`];
              return [];
            });
            assert.deepEqual(bad, [], `revocation outcomes per certificate: ${sample(bad)}`);
          },
          () => {
            const bad = [...ackedSerials].filter((s) => rows.get(s)?.status !== 'revoked' || rows.get(s)?.revocationReason !== reasonOf.get(s));
            assert.deepEqual(bad.map((s) => `${s}: ${JSON.stringify({ ...rows.get(s), der: undefined })}`), [], 'acknowledged revocations missing from the database (or with another reason)');
          },
          () => assert.deepEqual(certs.filter((s) => rows.get(s)?.status !== 'revoked'), [], 'every certificate is revoked in the end'),
          () => {
            assert.ok(typeof crlSeen !== 'string', `no CRL held all ${ackedSerials.size} acknowledged revocations within ${MAX_DELAY_S} s + 6 s of the last answer: ${String(crlSeen)}`);
            const { crl, elapsedMs } = crlSeen;
            assert.ok(crl.verified, crl.output);
            assert.ok(elapsedMs <= MAX_DELAY_S * 1000 + 1000, `the CRL held every acknowledged revocation ${elapsedMs} ms after the last answer (crl.maxDelay ${MAX_DELAY_S} s)`);
            assert.deepEqual([...crl.entries.keys()].sort(), [...dbRevoked].sort(), 'the CRL holds exactly the revocations in the database');
            const wrongReason = [...crl.entries.values()].filter((e) => e.reason !== (reasonOf.get(e.serial) === 'unspecified' ? null : OPENSSL_REASON[reasonOf.get(e.serial)!]));
            assert.deepEqual(wrongReason.map((e) => `${e.serial}: ${e.reason}`), [], 'CRL reasons');
          },
          assertStillServing,
        );
      });
    });
  }
}
