/**
 * A CRL that only moves forward (docs/api.md "CRLs"; issue #13 point 3): two `service-ca serve`
 * instances, each with two worker processes (node:cluster), on one Postgres database. Revocations
 * come in bursts through both instances while clients fetch /v1/crl and /v1/crl.pem from every
 * instance on a new connection per request (so that consecutive requests reach different
 * workers), and one client goes round both instances revalidating with the newest ETag it holds.
 *
 * Asserts: no client of an instance sees the CRL number go down, and no instance answers with a
 * CRL older than one it answered before the request was sent; the revalidating client gets a 304
 * or a CRL at least as new as its own from either instance; one number always means one CRL; and
 * every revocation is in every instance's CRL (every later answer of it) within crl.maxDelay. The
 * longest delay measured is printed. CRLs are read and verified by openssl.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN, workload } from '../setup/app.js';
import { crlRegressions, followCrls, sleep, watchCrls } from '../setup/crl-check.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { testDatabaseUrl } from '../setup/database.js';
import { startFleet, type Fleet, type FleetMember } from '../setup/fleet.js';
import { logLines } from '../setup/processes.js';
import type { TestIssuer } from '../setup/tokens.js';

const NAMES = ['a', 'b'] as const;
type Name = (typeof NAMES)[number];
const WORKERS = 2;
const MAX_DELAY_MS = 2000;
const BURSTS = 6;
const PER_BURST = 6;

type Instance = FleetMember<Name>;

async function waitFor<T>(what: string, check: () => T | undefined, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

if (!testDatabaseUrl) {
  it('CRL publication across instances of several workers needs a real Postgres server', (t) => {
    t.skip('TEST_DATABASE_URL is not set: several service-ca processes cannot share one embedded PGlite database, so this test runs only against Postgres');
  });
} else {
  describe('two instances of two workers each on one database, revoking in bursts', () => {
    let fleet: Fleet<Name> | undefined;
    let issuer: TestIssuer;
    let chainPem: string;
    let instances: Map<Name, Instance>;

    before(async () => {
      fleet = await startFleet(NAMES, { tls: 'off', workers: WORKERS, crl: { maxDelay: `${MAX_DELAY_MS / 1000}s` } });
      ({ issuer, chainPem, members: instances } = fleet);
      for (const i of instances.values()) {
        await waitFor(`every worker of ${i.name} serving`, () => (logLines(i.service).filter((l) => l.msg === 'worker serving').length >= WORKERS ? true : undefined), 90_000);
      }
    });
    after(() => fleet?.stop());

    const via = (n: Name) => instances.get(n)!;

    async function issue(n: Name, sa: string): Promise<string> {
      const { csrPem } = await createKeyAndCsr('p256', { dns: [`${sa}.burst.svc`] });
      const res = await fetch(`${via(n).api}/v1/certificates`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.mint({ sub: workload('burst', sa) })}` },
        body: JSON.stringify({ csr: csrPem, ttl: '1h' }),
      });
      const body = (await res.json()) as { serial: string };
      assert.equal(res.status, 201, JSON.stringify(body));
      return body.serial;
    }

    async function revoke(n: Name, serial: string): Promise<{ serial: string; via: Name; started: number; ended: number }> {
      const started = Date.now();
      const res = await fetch(`${via(n).api}/v1/certificates/${serial}/revoke`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.mint({ sub: ADMIN })}` },
        body: JSON.stringify({ reason: 'keyCompromise' }),
      });
      assert.equal(res.status, 200, `revoking ${serial} via ${n}: ${await res.text()}`);
      return { serial, via: n, started, ended: Date.now() };
    }

    it('no client sees the CRL number go down, and every revocation reaches every instance within crl.maxDelay', async (t) => {
      const serials: string[] = [];
      for (let i = 0; i < BURSTS * PER_BURST; i++) serials.push(await issue(NAMES[i % 2]!, `s${i % 3}`));

      const replicas = [...instances.values()].map((i) => ({ name: i.name, url: i.pub }));
      const watcher = watchCrls(replicas, chainPem, 25, { paths: ['/v1/crl', '/v1/crl.pem'], clients: 2, newConnections: true });
      const follower = followCrls(replicas, chainPem, 25);
      const revocations: Awaited<ReturnType<typeof revoke>>[] = [];
      try {
        await sleep(500);
        for (let burst = 0; burst < BURSTS; burst++) {
          // A burst: revocations through both instances at once, a few tens of ms apart.
          const batch = serials.slice(burst * PER_BURST, (burst + 1) * PER_BURST);
          revocations.push(...(await Promise.all(batch.map(async (serial, k) => {
            await sleep(k * 40);
            return revoke(NAMES[(burst + k) % 2]!, serial);
          }))));
          await sleep(burst % 2 ? 300 : 900);
        }
        await sleep(MAX_DELAY_MS + 500);
      } finally {
        await Promise.all([watcher.stop(), follower.stop()]);
      }

      const obs = watcher.observations;
      for (const [digest, crl] of [...watcher.byDigest, ...follower.byDigest]) assert.ok(crl.verified, `CRL ${crl.number} (${digest}): ${crl.output}`);

      // Delay: from the revocation request until every later answer of the instance lists it.
      const delays: { serial: string; instance: Name; ms: number }[] = [];
      const missing: string[] = [];
      for (const r of revocations) {
        for (const name of NAMES) {
          const mine = obs.filter((o) => o.replica === name && o.at >= r.started).sort((x, y) => x.at - y.at);
          let lastWithout = -1;
          mine.forEach((o, k) => {
            if (!watcher.byDigest.get(o.digest)!.entries.has(r.serial)) lastWithout = k;
          });
          const first = mine[lastWithout + 1];
          if (!first) missing.push(`${r.serial} (revoked via ${r.via}) never reached ${name} for good`);
          else delays.push({ serial: r.serial, instance: name, ms: first.at - r.started });
        }
      }
      const longest = delays.reduce((m, d) => (d.ms > m.ms ? d : m), { serial: '', instance: 'a' as Name, ms: 0 });
      const numbers = new Set(obs.map((o) => o.number));
      const sorted = delays.map((d) => d.ms).sort((x, y) => x - y);
      const median = sorted[Math.floor(sorted.length / 2)] ?? 0;
      const warnings = [...instances.values()].flatMap((i) => logLines(i.service).filter((l) => l.level >= 40 && /CRL/.test(l.msg)).map((l) => `${i.name}: ${l.msg}`));
      if (warnings.length > 0) t.diagnostic(`warnings: ${[...new Set(warnings)].join('; ')}`);
      t.diagnostic(
        `${revocations.length} revocations in ${BURSTS} bursts, ${obs.length} CRL answers from the watching clients (${numbers.size} CRL numbers), ` +
          `${follower.answers.length} revalidations (${follower.answers.filter((a) => a.status === 304).length} answered 304); ` +
          `revocation-to-CRL delay over both instances: median ${median} ms, longest ${longest.ms} ms (${longest.serial} at ${longest.instance}; crl.maxDelay ${MAX_DELAY_MS} ms)`,
      );

      assert.ok(obs.length > 200 && numbers.size >= BURSTS, `${obs.length} observations of ${numbers.size} CRL numbers`);
      assert.deepEqual(crlRegressions(obs), [], 'no instance goes back to an older CRL');

      const wrong = follower.answers.filter((a) =>
        a.status === 304 ? a.etag !== a.sentEtag : a.status !== 200 || a.number! < a.sentNumber,
      );
      assert.deepEqual(
        wrong.map((a) => `${a.path} from ${a.replica}, holding CRL ${a.sentNumber} (${a.sentEtag}): ${a.status}${a.number === undefined ? '' : ` with CRL ${a.number}`} (ETag ${a.etag})`),
        [],
        'a client revalidating with its newest ETag never gets an older CRL from either instance',
      );
      assert.ok(follower.answers.filter((a) => a.status === 304).length > 10, 'the revalidating client got 304s');

      // One snapshot per answer: its ETag names the CRL in its body (DER and PEM ETags differ).
      const mislabelled = obs.filter((o) => o.etag !== (o.path === '/v1/crl' ? `"crl-${o.number}"` : `"crl-${o.number}-pem"`));
      assert.deepEqual(mislabelled.map((o) => `${o.replica} ${o.path}: ETag ${o.etag} on CRL ${o.number}`), []);

      const digestOf = new Map<number, string>();
      for (const o of obs) {
        assert.equal(digestOf.get(o.number) ?? o.digest, o.digest, `CRL number ${o.number} was served as two different CRLs`);
        digestOf.set(o.number, o.digest);
      }

      assert.deepEqual(missing, []);
      const late = delays.filter((d) => d.ms > MAX_DELAY_MS).map((d) => `${d.serial} reached ${d.instance} after ${d.ms} ms`);
      assert.deepEqual(late, [], `every revocation in every instance's CRL within crl.maxDelay (${MAX_DELAY_MS} ms)`);
    });
  });
}
