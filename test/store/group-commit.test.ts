/**
 * Group commit on both databases (PGlite always, Postgres with TEST_DATABASE_URL): concurrent
 * issuances are written in one transaction, a row the database refuses (a replayed token id, a
 * renewal of a revoked certificate) fails alone, and a transaction that fails fails every
 * issuance in it with `unavailable` and writes nothing. The transaction is read off the rows
 * themselves: rows inserted by one transaction share its id (xmin).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { isCaError } from '../../src/errors.js';
import { sql } from 'drizzle-orm';
import { openDatabase, type Database } from '../../src/store/database.js';
import { rawRows } from '../../src/store/rows.js';
import { storeOn, type NewCertificate, type Store, type TokenUse } from '../../src/store/store.js';
import { storeBackends, type StoreBackend } from '../setup/database.js';
import { createGroupCommit } from '../../src/store/group-commit.js';

const backends = storeBackends();

const AUDIT = { at: new Date(), actor: 'spiffe://example.org/ns/batch/sa/test', action: 'certificate.issue' as const, detail: { n: 1 } };
const RENEW = { ...AUDIT, action: 'certificate.renew' as const };
const inAnHour = () => new Date(Date.now() + 3600_000);
const token = (issuer = 'test'): TokenUse => ({ issuer, jti: `batch-${randomBytes(8).toString('hex')}`, expiresAt: inAnHour() });

function newCertificate(overrides: Partial<NewCertificate> = {}): NewCertificate {
  const now = Math.floor(Date.now() / 1000) * 1000;
  return {
    serial: randomBytes(20).toString('hex').replace(/^[89a-f]/, '1'),
    issuerKeyId: 'ab'.repeat(20),
    identity: 'spiffe://example.org/ns/batch/sa/web',
    sans: { dns: ['Web.Batch.svc'], ip: [], uri: [], email: [] },
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3600_000),
    der: randomBytes(400),
    fingerprint: randomBytes(32).toString('hex'),
    tokenIssuer: 'test',
    tokenJti: null,
    csrDigest: randomBytes(32),
    renewedFrom: null,
    ...overrides,
  };
}

for (const backend of backends) {
  describe(`group commit on ${backend.name}`, () => {
    let db: Awaited<ReturnType<StoreBackend['open']>>;
    /** Batches of up to 100, one at a time; the database handle reads the rows' transaction ids. */
    let database: Database;
    let store: Store;
    /** Rows' transaction ids (xmin) as text. */
    const xmins = async (table: 'certificates' | 'audit_events', serials: string[]) =>
      (await rawRows<{ x: string }>(database.db, sql`select xmin::text as x from ${sql.identifier(table)} where serial in ${serials}`)).map((r) => r.x);
    before(async () => {
      db = await backend.open();
      database = await openDatabase(db.config);
      store = storeOn(database, undefined, { maxRows: 100, maxDelayMs: 0, maxInFlight: 1 });
    });
    after(async () => {
      await store.close();
      await db.drop();
    });

    it('writes a batch of 100 in one transaction: a replayed token id and a renewal of a revoked certificate are refused alone, the 98 others recorded', async () => {
      const replayed = token();
      const first = newCertificate();
      assert.equal(await store.recordIssuance(first, replayed, AUDIT), 'recorded');
      const parent = newCertificate();
      assert.equal(await store.recordIssuance(parent, token(), AUDIT), 'recorded');
      await store.revoke(parent.serial, { reason: 'superseded', actor: 'admin', at: new Date() });
      const before = store.groupCommitStats();

      const fresh = Array.from({ length: 98 }, () => ({ cert: newCertificate(), use: token() }));
      const replay = { cert: newCertificate(), use: replayed };
      const renewal = { cert: newCertificate({ renewedFrom: parent.serial }), use: token('renewal') };
      const all = [...fresh.slice(0, 40), replay, ...fresh.slice(40, 70), renewal, ...fresh.slice(70)];
      // Submitted in one turn of the event loop: the batch is full before it is written.
      const outcomes = await Promise.all(all.map((a) => store.recordIssuance(a.cert, a.use, a === renewal ? RENEW : AUDIT)));

      assert.deepEqual(store.groupCommitStats(), { batches: before.batches + 1, items: before.items + 100 }, 'one batch of 100');
      assert.equal(outcomes[all.indexOf(replay)], 'tokenUsed');
      assert.equal(outcomes[all.indexOf(renewal)], 'parentInvalid');
      assert.equal(outcomes.filter((o) => o === 'recorded').length, 98);
      assert.equal(await store.getCertificate(replay.cert.serial), undefined);
      assert.equal(await store.getCertificate(renewal.cert.serial), undefined);
      const stored = await store.getCertificate(fresh[0]!.cert.serial);
      assert.deepEqual(stored?.sans.dns, ['Web.Batch.svc']);
      assert.deepEqual(Buffer.from(stored!.der), Buffer.from(fresh[0]!.cert.der));

      const serials = fresh.map((f) => f.cert.serial);
      const certXmins = await xmins('certificates', serials);
      const auditXmins = await xmins('audit_events', serials);
      assert.equal(certXmins.length, 98, 'every recorded certificate has its row');
      assert.equal(auditXmins.length, 98, 'and its audit row');
      assert.equal(new Set([...certXmins, ...auditXmins]).size, 1, `one transaction wrote them all: ${[...new Set(certXmins)].join(', ')}`);
      // The refused renewal's token id was not consumed: it still records an issuance.
      assert.equal(await store.recordIssuance(newCertificate(), renewal.use, AUDIT), 'recorded');
    });

    it('fails every issuance of a transaction that does not commit, with unavailable, and writes none of them', async () => {
      const good = Array.from({ length: 3 }, () => ({ cert: newCertificate(), use: token() }));
      // notAfter before notBefore: the table's check constraint refuses the whole statement.
      const bad = { cert: newCertificate({ notAfter: new Date(Date.now() - 7200_000) }), use: token() };
      const settled = await Promise.allSettled([...good, bad].map((a) => store.recordIssuance(a.cert, a.use, AUDIT)));
      for (const s of settled) {
        assert.equal(s.status, 'rejected');
        assert.ok(isCaError(s.reason) && s.reason.kind === 'unavailable', `rejected with ${String(s.reason)}`);
      }
      for (const g of good) assert.equal(await store.getCertificate(g.cert.serial), undefined, 'nothing of the failed batch was written');
      // Their token ids were rolled back with it.
      for (const g of good) assert.equal(await store.recordIssuance(newCertificate(), g.use, AUDIT), 'recorded');
    });

    it('plans the issuance statement for each batch, never with a cached generic plan', async () => {
      // Postgres would switch the named statement to a generic plan after five executions; one
      // made while the table was small read every valid certificate per batch. The counts are
      // per session: on Postgres a handle of one connection (pool of 1), on PGlite its one session.
      // The Postgres URL names options of its own, which are kept beside the service's.
      const ownOptions = (url: string) => {
        const u = new URL(url);
        u.searchParams.set('options', '-c statement_timeout=61s');
        return u.toString();
      };
      const probe = backend.name === 'Postgres' ? await openDatabase({ ...db.config, url: ownOptions(db.config.url!), poolSize: 1 }) : database;
      const probeStore = probe === database ? store : storeOn(probe, undefined, { maxRows: 100, maxDelayMs: 0, maxInFlight: 1 });
      const plans = async () =>
        (await probe.hot<{ generic: number; custom: number }>('test_plan_counts', `select generic_plans::int as generic, custom_plans::int as custom from pg_prepared_statements where name = 'service_ca_record_issuances'`, []))[0] ?? { generic: 0, custom: 0 };
      try {
        const before = await plans();
        for (let i = 0; i < 8; i++) assert.equal(await probeStore.recordIssuance(newCertificate(), token(), AUDIT), 'recorded');
        const after = await plans();
        assert.deepEqual({ generic: after.generic - before.generic, custom: after.custom - before.custom }, { generic: 0, custom: 8 });
        if (probe !== database) {
          const [own] = await probe.hot<{ timeout: string }>('test_own_option', `select current_setting('statement_timeout') as timeout`, []);
          assert.equal(own?.timeout, '61s', 'the URL\'s own options still apply');
        }
      } finally {
        if (probeStore !== store) await probeStore.close();
      }
    });

    it('never puts two uses of one token id, or two renewals of one certificate, in the same batch', async () => {
      const use = token();
      const parent = newCertificate();
      assert.equal(await store.recordIssuance(parent, token(), AUDIT), 'recorded');
      const before = store.groupCommitStats();
      const outcomes = await Promise.all([
        ...Array.from({ length: 3 }, () => store.recordIssuance(newCertificate(), use, AUDIT)),
        ...Array.from({ length: 3 }, () => store.recordIssuance(newCertificate({ renewedFrom: parent.serial }), token('renewal'), RENEW)),
      ]);
      assert.deepEqual(outcomes, ['recorded', 'tokenUsed', 'tokenUsed', 'recorded', 'parentRenewed', 'parentRenewed']);
      assert.equal(store.groupCommitStats().batches - before.batches, 3, 'each use waited for the batch after the one holding the previous');
    });
  });
}

describe('group commit batching', () => {
  /** A write that records its batches and answers each item with itself. */
  function recorder(delayMs = 5) {
    const batches: number[][] = [];
    let running = 0;
    let most = 0;
    const write = async (items: number[]) => {
      batches.push(items);
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, delayMs));
      running--;
      return items.map((i) => i * 10);
    };
    return { batches, write, most: () => most };
  }

  it('writes at most maxRows per batch, at most maxInFlight at a time, and answers each item with its own result', async () => {
    const r = recorder();
    const gc = createGroupCommit({ maxRows: 10, maxDelayMs: 0, maxInFlight: 2 }, r.write);
    const results = await Promise.all(Array.from({ length: 45 }, (_, i) => gc.submit(i)));
    assert.deepEqual(results, Array.from({ length: 45 }, (_, i) => i * 10));
    assert.ok(r.batches.every((b) => b.length <= 10), `batch sizes ${r.batches.map((b) => b.length).join(',')}`);
    assert.equal(r.batches.flat().length, 45);
    assert.equal(r.most(), 2);
    assert.equal(r.batches.length, 5, 'full batches while two are in flight');
  });

  it('waits maxDelayMs for more items, and no longer once the batch is full', async () => {
    const r = recorder(1);
    const gc = createGroupCommit({ maxRows: 4, maxDelayMs: 200, maxInFlight: 1 }, r.write);
    const started = performance.now();
    const one = gc.submit(1);
    await new Promise((res) => setTimeout(res, 50));
    const two = gc.submit(2);
    await Promise.all([one, two]);
    assert.ok(performance.now() - started >= 190, 'the lone items waited for the delay');
    assert.deepEqual(r.batches, [[1, 2]]);
    const fullStarted = performance.now();
    await Promise.all([3, 4, 5, 6].map((i) => gc.submit(i)));
    assert.ok(performance.now() - fullStarted < 150, 'a full batch went at once');
    assert.deepEqual(r.batches[1], [3, 4, 5, 6]);
  });

  it('rejects every item of a batch whose write fails, and goes on with the next batch', async () => {
    let fail = true;
    const gc = createGroupCommit({ maxRows: 3, maxDelayMs: 0, maxInFlight: 1 }, async (items: number[]) => {
      if (fail) {
        fail = false;
        throw new Error('no commit');
      }
      return items;
    });
    const settled = await Promise.allSettled([1, 2, 3, 4].map((i) => gc.submit(i)));
    assert.deepEqual(settled.map((s) => s.status), ['rejected', 'rejected', 'rejected', 'fulfilled']);
    assert.match(String((settled[0] as PromiseRejectedResult).reason), /no commit/);
  });

  it('keeps items with a common key in different batches, in order', async () => {
    const r = recorder(1);
    const gc = createGroupCommit({ maxRows: 10, maxDelayMs: 0, maxInFlight: 1 }, r.write, (i: number) => [i % 2 === 0 ? 'even' : `odd${i}`]);
    await Promise.all([1, 2, 3, 4, 5, 6].map((i) => gc.submit(i)));
    assert.deepEqual(r.batches, [[1, 2, 3, 5], [4], [6]]);
  });
});
