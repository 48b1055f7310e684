/**
 * Two replicas on one Postgres database (docs/api.md "CRLs"): a revocation made through either is in
 * the CRL that both serve within crl.maxDelay; concurrent revocations through both all arrive;
 * and the CRL numbers that the two replicas serve never stand for two different CRLs and never
 * go back in time. CRLs are read by openssl, not by the code that wrote them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { sleep, waitForCrl, watchCrls } from '../setup/crl-check.js';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '../setup/database.js';
import { createTestPki } from '../setup/pki.js';
import { issueFor, revokeOk, type Issued } from '../setup/revoking.js';
import { createTestIssuer } from '../setup/tokens.js';

const MAX_DELAY_MS = 5000;

if (!testDatabaseUrl) {
  it('CRL publication across replicas needs a real Postgres server', (t) => {
    t.skip('TEST_DATABASE_URL is not set: two app instances cannot share one embedded PGlite database, so the replica tests run only against Postgres');
  });
} else {
  describe('two replicas on one Postgres database', () => {
    let database: TestDatabase;
    let a: TestApp;
    let b: TestApp;
    let chainPem: string;
    let watcher: ReturnType<typeof watchCrls<'a' | 'b'>>;

    before(async () => {
      database = await createTestDatabase();
      const pki = await createTestPki('p256');
      const issuer = await createTestIssuer();
      [a, b] = await Promise.all([startTestApp({ database, pki, issuer }), startTestApp({ database, pki, issuer })]);
      chainPem = await (await fetch(`${a.public}/v1/ca/chain.pem`)).text();
      assert.equal(await (await fetch(`${b.public}/v1/ca/chain.pem`)).text(), chainPem);
      watcher = watchCrls([{ name: 'a' as const, url: a.public }, { name: 'b' as const, url: b.public }], chainPem, 40);
    });
    after(async () => {
      await watcher?.stop();
      await Promise.allSettled([a?.stop(), b?.stop()]);
      await database?.drop();
    });

    it('a revocation made through one replica is in the CRL the other serves within 5 s', async () => {
      for (const [via, other, name] of [[a, b, 'a→b'], [b, a, 'b→a'], [a, b, 'a→b again']] as const) {
        const cert = await issueFor(via, workload('rep', 'svc'), ['svc.rep.svc']);
        const since = Date.now();
        await revokeOk(via, cert.serial, ADMIN, 'keyCompromise');
        const seen = await waitForCrl(other.public, chainPem, (c) => c.entries.has(cert.serial), { since, timeoutMs: 15_000, intervalMs: 50 });
        assert.ok(seen.crl.verified, seen.crl.output);
        assert.ok(seen.elapsedMs <= MAX_DELAY_MS, `${name}: the other replica served it after ${seen.elapsedMs} ms`);
        const own = await waitForCrl(via.public, chainPem, (c) => c.entries.has(cert.serial), { since, timeoutMs: 15_000, intervalMs: 50 });
        assert.ok(own.elapsedMs <= MAX_DELAY_MS, `${name}: the revoking replica served it after ${own.elapsedMs} ms`);
      }
    });

    it('concurrent revocations through both replicas all reach both CRLs within 5 s', async () => {
      const certs: Issued[] = [];
      for (let i = 0; i < 24; i++) certs.push(await issueFor(i % 2 ? a : b, workload('rep', `c${i % 4}`), [`c${i % 4}.rep.svc`]));
      const reasons = ['keyCompromise', 'superseded', 'unspecified', 'cessationOfOperation', 'affiliationChanged', 'caCompromise'];
      const since = Date.now();
      // Each certificate is revoked once, alternately through a and b, all at the same time; a
      // few are raced through both replicas, where exactly one may win.
      const raced = certs.slice(0, 4);
      const results = await Promise.all([
        ...certs.map(async (c, i) => ({ serial: c.serial, status: (await revokeVia(i % 2 ? a : b, c.serial, reasons[i % reasons.length]!)).status })),
        ...raced.map(async (c) => ({ serial: c.serial, status: (await revokeVia(a, c.serial, 'superseded')).status })),
      ]);
      for (const c of certs) {
        const statuses = results.filter((r) => r.serial === c.serial).map((r) => r.status).sort();
        assert.deepEqual(statuses, raced.includes(c) ? [200, 409] : [200], `revocations of ${c.serial}`);
      }
      const committed = Date.now();
      for (const [name, replica] of [['a', a], ['b', b]] as const) {
        const seen = await waitForCrl(replica.public, chainPem, (crl) => certs.every((c) => crl.entries.has(c.serial)), { since, timeoutMs: 20_000, intervalMs: 50 });
        assert.ok(seen.crl.verified, seen.crl.output);
        assert.ok(seen.elapsedMs - (committed - since) <= MAX_DELAY_MS, `replica ${name} served all ${certs.length} revocations ${seen.elapsedMs - (committed - since)} ms after the last commit`);
      }
    });

    it('the CRL numbers seen from both replicas never repeat for different content and strictly increase over time', async () => {
      // More revocations through both while the watcher keeps reading both replicas.
      for (let round = 0; round < 4; round++) {
        const certs = await Promise.all([issueFor(a, workload('rep', 'n'), ['n.rep.svc']), issueFor(b, workload('rep', 'n'), ['n.rep.svc'])]);
        await Promise.all([revokeOk(a, certs[0].serial, ADMIN, 'superseded'), revokeOk(b, certs[1].serial, ADMIN, 'superseded')]);
        await sleep(300);
      }
      await sleep(2500);
      await watcher.stop();
      const obs = watcher.observations;
      assert.ok(obs.length > 50, `${obs.length} observations`);

      const digestOf = new Map<number, string>();
      const clashes: string[] = [];
      for (const o of obs) {
        const d = digestOf.get(o.number);
        if (d !== undefined && d !== o.digest) clashes.push(`number ${o.number} served as two different CRLs (${o.replica} at ${new Date(o.at).toISOString()})`);
        digestOf.set(o.number, o.digest);
      }
      assert.deepEqual(clashes, [], 'one number, one CRL');

      const numberOf = new Map<string, number>();
      for (const o of obs) numberOf.set(o.digest, o.number);
      assert.equal(new Set(numberOf.values()).size, numberOf.size, 'different CRLs never share a number');

      for (const replica of ['a', 'b'] as const) {
        const seq = obs.filter((o) => o.replica === replica);
        for (let i = 1; i < seq.length; i++) {
          assert.ok(seq[i]!.number >= seq[i - 1]!.number, `replica ${replica} went back from CRL ${seq[i - 1]!.number} to ${seq[i]!.number}`);
        }
        assert.ok(new Set(seq.map((o) => o.number)).size >= 4, `replica ${replica} served several CRLs`);
      }

      // Across replicas: a CRL first served later (by either) has a higher number, and a newer
      // CRL (higher number) has a thisUpdate no earlier and a superset of unexpired entries.
      const firstSeen = new Map<number, number>();
      for (const o of obs) if (!firstSeen.has(o.number)) firstSeen.set(o.number, o.at);
      const numbers = [...firstSeen.keys()].sort((x, y) => x - y);
      const crlOf = (n: number) => watcher.byDigest.get(digestOf.get(n)!)!;
      for (let i = 1; i < numbers.length; i++) {
        const [older, newer] = [crlOf(numbers[i - 1]!), crlOf(numbers[i]!)];
        assert.ok(newer.lastUpdate.getTime() >= older.lastUpdate.getTime(), `CRL ${numbers[i]} has an earlier thisUpdate than CRL ${numbers[i - 1]}`);
        const dropped = [...older.entries.keys()].filter((s) => !newer.entries.has(s));
        assert.deepEqual(dropped, [], `CRL ${numbers[i]} drops entries of CRL ${numbers[i - 1]} (nothing has expired)`);
      }
      for (const [n, at] of firstSeen) {
        for (const [m, at2] of firstSeen) {
          // 1 s of slack: two pollers that see a new CRL at nearly the same time.
          if (at2 > at + 1000) assert.ok(m > n, `CRL ${m} first seen ${at2 - at} ms after CRL ${n}, yet its number is not higher`);
        }
      }
    });
  });
}

async function revokeVia(app: TestApp, serial: string, reason: string): Promise<Response> {
  const res = await fetch(`${app.api}/v1/certificates/${serial}/revoke`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(ADMIN)}` },
    body: JSON.stringify({ reason }),
  });
  await res.arrayBuffer();
  return res;
}
