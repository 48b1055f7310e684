/**
 * The public listener under a flood (issue 13, "Also found"): /readyz and renewal-info are served
 * without authentication, so a flood of them must not reach the database or the CA key in
 * proportion to its size, nor take database connections from issuance.
 * - /readyz runs at most one check (a database ping and a CA signature) a second, one at a time;
 *   counted by service_ca_readiness_checks_total.
 * - renewal-info answers hot serials from memory (service_ca_renewal_info_lookups_total), never
 *   caches unknown serials, and reads the database on a pool of its own: the issuance pool's
 *   counters (node-postgres's own) never show a waiter while the flood holds the public pool's.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { csrFor } from '../setup/csr.js';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '../setup/database.js';
import { allOf, sleep } from '../setup/load.js';
import { fixedClock } from '../../src/clock.js';
import { isCaError } from '../../src/errors.js';
import { createRenewalInfo, type RenewalInfoLookup } from '../../src/policy/renewal-info.js';
import type { PoolStats } from '../../src/store/store.js';

const WEB = workload('shop', 'web');

/** The sum of a counter's series whose labels include `labels`, from /metrics. */
async function metric(app: TestApp, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${app.public}/metrics`)).text();
  return text
    .split('\n')
    .filter((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(labels))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

/** Runs `tasks` with at most `concurrency` in flight. */
async function pooled<T>(tasks: (() => Promise<T>)[], concurrency: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return results;
}

async function issue(app: TestApp, csr: string): Promise<string> {
  const res = await app.issue(WEB, { csr, ttl: '1h' });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return (JSON.parse(text) as { serial: string }).serial;
}

const renewalInfo = (app: TestApp, serial: string) => fetch(`${app.public}/v1/certificates/${serial}/renewal-info`);

describe('the public listener under a flood', () => {
  let database: TestDatabase;
  let app: TestApp;
  let csr: string;
  let hot: string[];

  before(async () => {
    database = await createTestDatabase();
    app = await startTestApp({ database });
    csr = await csrFor({ dns: ['web.shop.svc'] });
    hot = [await issue(app, csr), await issue(app, csr)];
  });
  after(async () => {
    await app?.stop();
    await database?.drop();
  });

  it('/readyz: a flood runs one readiness check (database ping and CA signature) at a time and at most one a second', async () => {
    await sleep(1100); // whatever an earlier request left is now too old to answer
    const before = await metric(app, 'service_ca_readiness_checks_total');
    const started = Date.now();
    // The first wave finds no fresh result and must share one check; the rest come within its second.
    const answers = await pooled(
      Array.from({ length: 120 }, () => async () => {
        const res = await fetch(`${app.public}/readyz`);
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      }),
      60,
    );
    const elapsed = Date.now() - started;
    const checks = (await metric(app, 'service_ca_readiness_checks_total')) - before;
    for (const a of answers) {
      assert.equal(a.status, 200);
      assert.deepEqual(a.body, { status: 'ready', database: true, signer: true });
    }
    // Checks start at least a second apart, so in `elapsed` ms at most 1 + floor(elapsed / 1000).
    assert.ok(checks >= 1, 'the stale result was replaced by a check');
    assert.ok(checks <= 1 + Math.floor(elapsed / 1000), `${checks} readiness checks for ${answers.length} requests in ${elapsed} ms`);
  });

  it('renewal-info: a flood of one hot serial reads the database about once per cache lifetime, not once per request', async () => {
    const serial = hot[0]!;
    assert.equal((await renewalInfo(app, serial)).status, 200);
    const hitsBefore = await metric(app, 'service_ca_renewal_info_lookups_total', 'result="hit"');
    const missesBefore = await metric(app, 'service_ca_renewal_info_lookups_total', 'result="miss"');
    const allBefore = await metric(app, 'service_ca_renewal_info_lookups_total');
    const started = Date.now();
    const statuses = await pooled(Array.from({ length: 200 }, () => async () => (await renewalInfo(app, serial)).status), 50);
    const elapsed = Date.now() - started;
    const hits = (await metric(app, 'service_ca_renewal_info_lookups_total', 'result="hit"')) - hitsBefore;
    const misses = (await metric(app, 'service_ca_renewal_info_lookups_total', 'result="miss"')) - missesBefore;
    const all = (await metric(app, 'service_ca_renewal_info_lookups_total')) - allBefore;
    assert.deepEqual([...new Set(statuses)], [200]);
    assert.equal(all, 200, 'every request is counted once');
    // A read starts only when the held entry is over a second old (2 s here) and none is in flight.
    assert.ok(misses <= 1 + Math.floor(elapsed / 1000), `${misses} database reads for 200 requests of one serial in ${elapsed} ms`);
    assert.ok(hits > 0, 'answers came from memory');
  });

  it('renewal-info: unknown serials are answered 404 and never enter the cache', async () => {
    for (const serial of hot) assert.equal((await renewalInfo(app, serial)).status, 200);
    const unknownBefore = await metric(app, 'service_ca_renewal_info_lookups_total', 'result="unknown"');
    const statuses = await pooled(Array.from({ length: 300 }, () => async () => (await renewalInfo(app, randomBytes(16).toString('hex'))).status), 50);
    assert.deepEqual([...new Set(statuses)], [404]);
    assert.equal((await metric(app, 'service_ca_renewal_info_lookups_total', 'result="unknown"')) - unknownBefore, 300);
    // Only the two certificates ever looked up are held.
    assert.equal(await metric(app, 'service_ca_renewal_info_cache_entries'), hot.length);
  });

  it('renewal-info: a revocation here opens the window at once, even for a cached serial', async () => {
    const serial = await issue(app, csr);
    const window = async () => ((await (await renewalInfo(app, serial)).json()) as { suggestedWindow: { start: string; end: string } }).suggestedWindow;
    const before = await window();
    assert.ok(Date.parse(before.start) > Date.now(), 'the window is in the future before the revocation');
    const hitsBefore = await metric(app, 'service_ca_renewal_info_lookups_total', 'result="hit"');
    assert.deepEqual(await window(), before);
    assert.equal((await metric(app, 'service_ca_renewal_info_lookups_total', 'result="hit"')) - hitsBefore, 1, 'the second answer came from memory');
    const res = await fetch(`${app.api}/v1/certificates/${serial}/revoke`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(ADMIN)}` },
      body: JSON.stringify({ reason: 'superseded' }),
    });
    assert.equal(res.status, 200, await res.text());
    const after = await window();
    assert.equal(after.start, after.end);
    assert.ok(Date.parse(after.end) <= Date.now(), `the window is open: ${JSON.stringify(after)}`);
  });
});

describe('the renewal-info cache on the app\'s own store', () => {
  let app: TestApp;
  let serials: string[];
  before(async () => {
    app = await startTestApp();
    const csr = await csrFor({ dns: ['web.shop.svc'] });
    serials = [await issue(app, csr), await issue(app, csr), await issue(app, csr)];
  });
  after(() => app?.stop());

  it('holds at most maxEntries certificates, evicting the least recently used; entries live ttlMs; a local revocation drops them', async () => {
    const clock = fixedClock(new Date());
    const lookups: RenewalInfoLookup[] = [];
    const cache = createRenewalInfo({ store: app.running.deps.store, clock, maxEntries: 2, ttlMs: 2000, onLookup: (r) => lookups.push(r) });
    const [a, b, c] = serials as [string, string, string];
    const ask = async (serial: string) => {
      await cache.get(serial);
      return lookups.at(-1);
    };
    assert.deepEqual([await ask(a), await ask(b), await ask(a)], ['miss', 'miss', 'hit']);
    assert.equal(await ask(c), 'miss', 'a third certificate is read');
    assert.equal(cache.size(), 2, 'and the cache stays at its bound');
    assert.equal(await ask(a), 'hit', 'the most recently used stays');
    assert.equal(await ask(b), 'miss', 'the least recently used was evicted');
    await assert.rejects(cache.get('7f'.repeat(20)), (err: unknown) => isCaError(err) && err.kind === 'notFound');
    assert.equal(lookups.at(-1), 'unknown');
    assert.equal(cache.size(), 2, 'an unknown serial takes no place');
    assert.equal(await ask(b), 'hit');
    clock.advance(2000);
    assert.equal(await ask(b), 'miss', 'an entry lives ttlMs');
    assert.equal(await ask(b), 'hit');
    cache.revoked();
    assert.equal(cache.size(), 0);
    assert.equal(await ask(b), 'miss', 'a revocation here drops what is held');
  });
});

describe('renewal-info has its own database connections (Postgres)', () => {
  if (!testDatabaseUrl) {
    it('needs a Postgres server', (t) => {
      t.skip('TEST_DATABASE_URL is not set: PGlite is one connection in the process, with no pool to share');
    });
    return;
  }
  let app: TestApp;
  let csr: string;
  let hot: string[];
  before(async () => {
    app = await startTestApp();
    csr = await csrFor({ dns: ['web.shop.svc'] });
    hot = [await issue(app, csr), await issue(app, csr)];
  });
  after(() => app?.stop());

  it('a flood of renewal-info (random and hot serials) holds only its own pool: issuance\'s never has a waiter, and issuance succeeds meanwhile', async () => {
    const store = app.running.deps.store;
    const issuancePool: PoolStats[] = [];
    const publicPool: PoolStats[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        issuancePool.push(store.poolStats()!);
        publicPool.push(store.publicPoolStats()!);
        await new Promise((r) => setImmediate(r));
      }
    })();
    const flood = pooled(
      Array.from({ length: 600 }, (_, i) => async () => {
        const known = i % 4 === 0;
        const serial = known ? hot[i % hot.length]! : randomBytes(20).toString('hex');
        return { known, status: (await renewalInfo(app, serial)).status };
      }),
      100,
    );
    const issued: string[] = [];
    // Issuance runs one at a time beside the flood, as a workload would.
    for (let i = 0; i < 3; i++) issued.push(await issue(app, csr));
    const answers = await flood;
    sampling = false;
    await sampler;

    const waiting = Math.max(...issuancePool.map((s) => s.waiting));
    allOf(
      () => assert.equal(waiting, 0, `the issuance pool had ${waiting} waiters during the flood`),
      () => assert.ok(publicPool.some((s) => s.waiting > 0 && s.total - s.idle === s.total), 'the flood held every connection of the public pool, with requests waiting'),
      () => assert.equal(issued.length, 3),
      () => {
        // A flood may be told to come back (503); it is never answered wrongly.
        for (const a of answers) assert.ok(a.status === (a.known ? 200 : 404) || a.status === 503, `${a.known ? 'a hot' : 'a random'} serial answered ${a.status}`);
        assert.ok(answers.filter((a) => a.status !== 503).length > answers.length / 2, 'most of the flood was answered');
      },
    );
  });

  it('a revocation made by another replica opens the window within crl.maxDelay', async () => {
    const other = await startTestApp({ pki: app.pki, issuer: app.issuer, database: app.database });
    try {
      const serial = await issue(app, csr);
      assert.equal((await renewalInfo(app, serial)).status, 200);
      const res = await fetch(`${other.api}/v1/certificates/${serial}/revoke`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await other.token(ADMIN)}` },
        body: JSON.stringify({ reason: 'superseded' }),
      });
      assert.equal(res.status, 200, await res.text());
      const revokedAt = Date.now();
      const limit = app.config.crl.maxDelay * 1000;
      for (;;) {
        const w = ((await (await renewalInfo(app, serial)).json()) as { suggestedWindow: { start: string; end: string } }).suggestedWindow;
        if (w.start === w.end && Date.parse(w.end) <= Date.now()) break;
        assert.ok(Date.now() - revokedAt <= limit, `the window was still ${JSON.stringify(w)} ${Date.now() - revokedAt} ms after the revocation`);
        await sleep(100);
      }
    } finally {
      await other.stop();
    }
  });
});
