/**
 * The audit chain on both databases (PGlite always, Postgres too when TEST_DATABASE_URL is set):
 * rows are written once and sealed by seals (db/schema.ts audit_seals); the verifier names a row
 * altered, removed or inserted into a sealed range, and seals cut from the end; the sealer never
 * seals past a transaction still open; and migration 0008 turns a chain sealed the old way (hashes
 * in the rows, written by UPDATE) into seals that verify.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/node-postgres';
import { migrate as migratePostgres } from 'drizzle-orm/node-postgres/migrator';
import { chainHash, GENESIS, verifyChain, type AuditEvent } from '../../src/audit/chain.js';
import { link } from '../../src/audit/sealer.js';
import { MIGRATIONS_FOLDER, openDatabase, type Database } from '../../src/store/database.js';
import { rawRows } from '../../src/store/rows.js';
import { storeOn, type Store } from '../../src/store/store.js';
import { connectPg, storeBackends, type StoreBackend } from '../setup/database.js';

const backends = storeBackends();

const event = (i: number, actor = 'spiffe://example.org/ns/audit/sa/test'): AuditEvent => ({
  at: new Date(Date.UTC(2026, 10, 1, 12, 0, 0, i % 1000)),
  actor,
  action: 'certificates.list',
  serial: null,
  outcome: 'success',
  detail: { i, nested: { b: 1, a: [i] } },
});

/**
 * Seals until no row waits, in seals of at most max rows; how many rows. On a shared Postgres
 * server a write transaction of another test's database holds sealing back for a moment (the
 * horizon is the cluster's oldest running transaction), hence the wait rather than one pass.
 */
async function sealEverything(store: Store, max = 5000): Promise<number> {
  let total = 0;
  for (const deadline = Date.now() + 15_000; ; ) {
    total += (await store.sealAudit(max, link)).sealed;
    if ((await store.auditHead()).unsealed === 0) return total;
    assert.ok(Date.now() < deadline, `rows still unsealed after 15 s (${total} sealed)`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function verify(store: Store) {
  const head = await store.auditHead();
  return verifyChain(store.auditChain(head.seal), head, head.unsealed);
}

async function assertIntact(store: Store) {
  const verdict = await verify(store);
  assert.ok(verdict.ok, JSON.stringify(verdict));
  return verdict;
}

async function assertBroken(store: Store, problem: RegExp, firstBadSeq: number) {
  const verdict = await verify(store);
  assert.equal(verdict.ok, false, `expected a broken chain (${problem})`);
  if (verdict.ok) return;
  assert.match(verdict.problem, problem);
  assert.equal(verdict.firstBadSeq, firstBadSeq, verdict.problem);
}

/** Runs SQL on the store's own database (PGlite has one connection: the store's). */
async function exec<T = Record<string, unknown>>(database: Database, query: string): Promise<T[]> {
  return rawRows<T>(database.db, sql.raw(query));
}

/** The row id at chain position n, read from its seal. */
async function idAt(database: Database, n: number): Promise<number> {
  const [row] = await exec<{ id: string | number }>(database, `select ids[${n} - first_seq + 1] as id from audit_seals where ${n} between first_seq and last_seq`);
  assert.ok(row, `no seal holds row #${n}`);
  return Number(row.id);
}

for (const backend of backends) {
  describe(`audit chain on ${backend.name}`, () => {
    let db: Awaited<ReturnType<StoreBackend['open']>>;
    let database: Database;
    let store: Store;
    before(async () => {
      db = await backend.open();
      database = await openDatabase(db.config);
      store = storeOn(database);
    });
    after(async () => {
      await store.close();
      await db.drop();
    });

    it('writes seals, never row updates, and shows each row\'s chain position and hashes once sealed', async () => {
      for (let i = 0; i < 12; i++) await store.appendAudit([event(i)]);
      const unsealed = await store.listAudit({ limit: 100 });
      assert.ok(unsealed.every((r) => r.chainSeq === null && r.prevHash === null && r.hash === null));
      assert.equal(await sealEverything(store, 5), 12);
      const [seals] = await exec<{ n: string | number; most: number }>(database, 'select count(*) as n, max(cardinality(ids)) as most from audit_seals');
      assert.ok(Number(seals!.n) >= 3 && seals!.most === 5, `at most 5 rows per seal: ${JSON.stringify(seals)}`);
      const listed = (await store.listAudit({ limit: 100 })).reverse();
      assert.deepEqual(listed.map((r) => r.chainSeq), listed.map((_, i) => i + 1));
      let prev: Buffer = GENESIS;
      for (const r of listed) {
        assert.deepEqual(r.prevHash, prev);
        assert.deepEqual(r.hash, chainHash(prev, r));
        prev = r.hash!;
      }
      const verdict = await assertIntact(store);
      assert.deepEqual([verdict.ok && verdict.rows, verdict.ok && verdict.seals, verdict.ok && verdict.unsealed], [12, Number(seals!.n), 0]);
      // Every row is still the version its own transaction inserted: xmin (the 32-bit id of the
      // transaction that wrote the version) is its txid's low half; an UPDATE would have changed it.
      const [updated] = await exec<{ n: string | number }>(database, 'select count(*) as n from audit_events where xmin::text::bigint <> txid % 4294967296');
      assert.equal(Number(updated!.n), 0);
      // A page of a filtered listing reads its rows' places the same way.
      const [one] = await store.listAudit({ limit: 1, before: listed[7]!.id + 1 });
      assert.equal(one?.chainSeq, 8);
    });

    it('names a row altered, a row removed and a row inserted into a sealed range, each by chain position and id', async () => {
      const id6 = await idAt(database, 6);
      await exec(database, `update audit_events set outcome = 'refused' where id = ${id6}`);
      await assertBroken(store, new RegExp(`^row #6 \\(id ${id6}\\) was altered`), 6);
      await exec(database, `update audit_events set outcome = 'success' where id = ${id6}`);
      await assertIntact(store);

      const [saved] = await exec<{ txid: string | number }>(database, `select txid from audit_events where id = ${id6}`);
      await exec(database, `delete from audit_events where id = ${id6}`);
      await assertBroken(store, new RegExp(`^row #6 \\(id ${id6}\\) is missing: removed`), 6);
      const e = event(5);
      await exec(
        database,
        `insert into audit_events (id, txid, at, actor, action, serial, outcome, detail) overriding system value
         values (${id6}, ${Number(saved!.txid)}, '${e.at.toISOString()}', '${e.actor}', '${e.action}', null, 'success', '${JSON.stringify(e.detail)}')`,
      );
      await assertIntact(store);

      // A row placed in the range of a seal (right after row #3's position), which the seal does not list.
      const id3 = await idAt(database, 3);
      await exec(
        database,
        `insert into audit_events (id, txid, at, actor, action, serial, outcome, detail) overriding system value
         select 1000000, txid, at, actor, action, serial, outcome, detail from audit_events where id = ${id3}`,
      );
      await assertBroken(store, /^a row not in the chain \(id 1000000\) sits after row #3: inserted after sealing/, 4);
      await exec(database, 'delete from audit_events where id = 1000000');
      // Before the chain's first position, where no seal can ever cover it.
      await exec(database, `insert into audit_events (txid, at, actor, action, outcome, detail) values (-5, now(), 'x', 'audit.read', 'success', '{}')`);
      await assertBroken(store, /^a row not in the chain \(id \d+\) sits before row #1: inserted after sealing/, 1);
      await exec(database, 'delete from audit_events where txid = -5');
      await assertIntact(store);
    });

    it('names seals removed from the end (truncation) and a seal whose hashes were rewritten', async () => {
      const [last] = await exec<{ seq: string | number; first_seq: string | number; last_seq: string | number }>(
        database,
        'select seq, first_seq, last_seq from audit_seals order by seq desc limit 1',
      );
      const [seq, first, lastSeq] = [Number(last!.seq), Number(last!.first_seq), Number(last!.last_seq)];
      await exec(database, 'create table saved_seals as select * from audit_seals');
      try {
        await exec(database, `delete from audit_seals where seq = ${seq}`);
        await assertBroken(store, new RegExp(`^rows #${first} to #${lastSeq} are missing: removed from the end of the chain \\(seals ${seq} to ${seq}\\)`), first);
        await exec(database, `insert into audit_seals select * from saved_seals where seq = ${seq}`);
        await assertIntact(store);
        // A seal removed from the middle (its rows left in place).
        const secondFirst = Number((await exec<{ first_seq: string | number }>(database, 'select first_seq from audit_seals where seq = 2'))[0]!.first_seq);
        await exec(database, 'delete from audit_seals where seq = 2');
        await assertBroken(store, new RegExp(`^seal 2 is missing \\(the next seal is 3\\): rows from #${secondFirst} on were removed with it`), secondFirst);
        await exec(database, 'insert into audit_seals select * from saved_seals where seq = 2');
        await assertIntact(store);

        // The first octet of row #2's stored hash rewritten: row #2 no longer has its recorded hash.
        await exec(database, `update audit_seals set hashes = overlay(hashes placing '\\x00'::bytea from 33 for 1) where seq = 1`);
        await assertBroken(store, new RegExp(`^row #2 \\(id ${await idAt(database, 2)}\\) was altered`), 2);
        // A seal that no longer links to the one before it.
        await exec(database, `update audit_seals s set hashes = t.hashes from saved_seals t where s.seq = 1 and t.seq = 1`);
        await exec(database, `update audit_seals set prev_hash = hash where seq = 2`);
        const second = Number((await exec<{ first_seq: string | number }>(database, 'select first_seq from audit_seals where seq = 2'))[0]!.first_seq);
        await assertBroken(store, new RegExp(`^row #${second} does not link to row #${second - 1}: row #${second - 1} was altered`), second - 1);
      } finally {
        await exec(database, 'delete from audit_seals');
        await exec(database, 'insert into audit_seals select * from saved_seals');
        await exec(database, 'drop table saved_seals');
      }
      await assertIntact(store);
    });

    it('leaves a row whose transaction id is not below the horizon (the oldest transaction running) for a later seal', async () => {
      // A transaction id no transaction has reached yet stands for one still running: on PGlite,
      // which runs one transaction at a time, the only way to put a row past the horizon.
      await exec(database, `insert into audit_events (txid, at, actor, action, outcome, detail)
        values (pg_current_xact_id()::text::bigint + 1000000, now(), 'future', 'audit.read', 'success', '{}')`);
      await store.appendAudit([event(1, 'present')]);
      for (const deadline = Date.now() + 15_000; (await store.auditHead()).unsealed > 1 && Date.now() < deadline; ) await store.sealAudit(5000, link);
      const [future] = await store.listAudit({ actor: 'future', limit: 1 });
      const [present] = await store.listAudit({ actor: 'present', limit: 1 });
      assert.equal(future?.chainSeq, null, 'not sealed while its transaction id is at or past the horizon');
      assert.notEqual(present?.chainSeq, null);
      assert.equal((await store.auditHead()).unsealed, 1);
      await exec(database, `delete from audit_events where actor = 'future'`);
      await assertIntact(store);
    });

    it('seals a transaction held open after it commits, never past it, and the chain stays intact', { skip: backend.name === 'PGlite' && 'PGlite runs one transaction at a time: none can stay open while others commit' }, async () => {
      await store.appendAudit([event(1)]);
      await sealEverything(store);
      const before = (await store.auditHead()).seq;

      const held = await connectPg(db.config.url!);
      try {
        await held.query('begin');
        const [heldRow] = (await held.query<{ id: string }>(`insert into audit_events (at, actor, action, outcome, detail) values (now(), 'held', 'audit.read', 'success', '{}') returning id`)).rows;
        // Newer transactions commit rows while the held one is open.
        for (let i = 2; i <= 6; i++) await store.appendAudit([event(i, 'newer')]);
        assert.equal((await store.sealAudit(5000, link)).sealed, 0, 'nothing after the open transaction is sealed');
        const waiting = await store.listAudit({ actor: 'newer', limit: 10 });
        assert.equal(waiting.length, 5);
        assert.ok(waiting.every((r) => r.chainSeq === null));
        assert.equal((await store.auditHead()).unsealed, 5);
        await assertIntact(store);

        await held.query('commit');
        assert.equal(await sealEverything(store), 6);
        const [sealedHeld] = await store.listAudit({ actor: 'held', limit: 1 });
        assert.equal(sealedHeld?.id, Number(heldRow!.id));
        assert.equal(sealedHeld?.chainSeq, before + 1, 'the held row comes first: its transaction wrote before the newer ones');
        const newer = await store.listAudit({ actor: 'newer', limit: 10 });
        assert.deepEqual(newer.map((r) => r.chainSeq), [6, 5, 4, 3, 2].map((n) => before + n));
        const verdict = await assertIntact(store);
        assert.equal(verdict.ok && verdict.rows, before + 6);
      } finally {
        await held.query('rollback').catch(() => {});
        await held.end();
      }
    });
  });
}

/** SQL on a database opened outside the store: the migration test's own connection. */
interface Raw {
  run<T = Record<string, unknown>>(text: string, params?: unknown[]): Promise<T[]>;
  migrate(folder: string): Promise<void>;
  close(): Promise<void>;
}

async function rawDatabase(config: { url?: string | undefined; dataDir: string }): Promise<Raw> {
  if (config.url) {
    const client = await connectPg(config.url);
    return {
      run: async <T>(text: string, params: unknown[] = []) => (await client.query(text, params)).rows as T[],
      migrate: (folder) => migratePostgres(drizzlePostgres(client), { migrationsFolder: folder }),
      close: () => client.end(),
    };
  }
  const client = await PGlite.create(join(config.dataDir, 'pgdata'));
  return {
    run: async <T>(text: string, params: unknown[] = []) => (await client.query<T>(text, params)).rows,
    migrate: (folder) => migratePglite(drizzlePglite(client), { migrationsFolder: folder }),
    close: () => client.close(),
  };
}

/** A copy of the committed migrations that stops after `last` (its tag). */
function migrationsThrough(last: string): { folder: string; remove(): void } {
  const folder = mkdtempSync(join(tmpdir(), 'service-ca-migrations-'));
  cpSync(MIGRATIONS_FOLDER, folder, { recursive: true });
  const journalPath = join(folder, 'meta', '_journal.json');
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: { tag: string }[] };
  const end = journal.entries.findIndex((e) => e.tag === last);
  assert.ok(end >= 0, `no migration ${last}`);
  writeFileSync(journalPath, JSON.stringify({ ...journal, entries: journal.entries.slice(0, end + 1) }));
  return { folder, remove: () => rmSync(folder, { recursive: true, force: true }) };
}

const LEGACY_ROWS = 12_000;
/** Rows the old sealer left for later (committed after higher ids were sealed), and rows never sealed. */
const SEALED_LATE = new Set([100, 5500]);
const NEVER_SEALED = new Set([7000, 12_000]);

/**
 * Seals the rows the way the code before migration 0008 did: chain_seq, prev_hash and hash
 * written into each row by one UPDATE per batch, the head updated after. The first batch leaves
 * rows 100 and 5500 out, as the old sealer did with rows of transactions still open; the second
 * seals them before the rest, so chain order is not id order there.
 */
async function sealTheOldWay(raw: Raw): Promise<Map<number, { chainSeq: number; prevHash: Buffer; hash: Buffer }>> {
  const rows = (await raw.run<{ id: string | number; at: Date; actor: string; action: string; serial: string | null; outcome: string; detail: Record<string, unknown> }>(
    'select id, at, actor, action, serial, outcome, detail from audit_events order by id',
  )).map((r) => ({ ...r, id: Number(r.id), action: r.action as AuditEvent['action'] }));
  const sealable = rows.filter((r) => !NEVER_SEALED.has(r.id));
  const order = [...sealable.filter((r) => r.id < 6000 && !SEALED_LATE.has(r.id)), ...sealable.filter((r) => SEALED_LATE.has(r.id)), ...sealable.filter((r) => r.id >= 6000)];
  const chain = new Map<number, { chainSeq: number; prevHash: Buffer; hash: Buffer }>();
  let prev: Buffer = GENESIS;
  for (const [i, row] of order.entries()) {
    const hash = chainHash(prev, row);
    chain.set(row.id, { chainSeq: i + 1, prevHash: prev, hash });
    prev = hash;
  }
  const batch = JSON.stringify([...chain].map(([id, l]) => ({ id, seq: l.chainSeq, prev: l.prevHash.toString('hex'), hash: l.hash.toString('hex') })));
  await raw.run(
    `update audit_events a set chain_seq = v.seq, prev_hash = decode(v.prev, 'hex'), hash = decode(v.hash, 'hex')
     from jsonb_to_recordset($1::jsonb) as v(id bigint, seq bigint, prev text, hash text) where a.id = v.id`,
    [batch],
  );
  await raw.run(`update audit_head set seq = $1, hash = decode($2, 'hex') where id = 1`, [order.length, prev.toString('hex')]);
  return chain;
}

for (const backend of backends) {
  describe(`migration 0008 on ${backend.name}: a chain sealed row by row becomes seals`, () => {
    let db: Awaited<ReturnType<StoreBackend['open']>>;
    let database: Database;
    let store: Store | undefined;
    let oldChain: Map<number, { chainSeq: number; prevHash: Buffer; hash: Buffer }>;
    before(async () => {
      db = await backend.open();
      const through0007 = migrationsThrough('0007_renewal_lineage');
      const raw = await rawDatabase(db.config);
      try {
        await raw.migrate(through0007.folder);
        await raw.run(
          `insert into audit_events (at, actor, action, serial, outcome, detail)
           select timestamptz '2026-11-01 12:00:00+00' + n * interval '1 millisecond', 'spiffe://example.org/ns/legacy/sa/a' || (n % 3),
                  'certificates.list', null, 'success', jsonb_build_object('n', n, 'nested', jsonb_build_object('b', 1, 'a', jsonb_build_array(n)))
           from generate_series(1, ${LEGACY_ROWS}) n`,
        );
        oldChain = await sealTheOldWay(raw);
      } finally {
        await raw.close();
        through0007.remove();
      }
      database = await openDatabase(db.config); // runs 0008
      store = storeOn(database);
    });
    after(async () => {
      await store?.close();
      await db.drop();
    });

    it('keeps every sealed row\'s chain position and hashes, leaves the unsealed ones to the next seal, and verifies', async () => {
      const head = await store!.auditHead();
      assert.deepEqual([head.seq, head.seal, head.unsealed], [LEGACY_ROWS - NEVER_SEALED.size, 3, NEVER_SEALED.size], 'three seals: cuts at rows #99 and #10000');
      const listed = await store!.listAudit({ limit: LEGACY_ROWS });
      assert.equal(listed.length, LEGACY_ROWS);
      for (const row of listed) {
        const old = oldChain.get(row.id);
        assert.deepEqual([row.chainSeq, row.prevHash, row.hash], old ? [old.chainSeq, old.prevHash, old.hash] : [null, null, null], `row ${row.id}`);
      }
      const verdict = await verify(store!);
      assert.ok(verdict.ok, JSON.stringify(verdict));
      assert.deepEqual([verdict.rows, verdict.unsealed], [LEGACY_ROWS - NEVER_SEALED.size, NEVER_SEALED.size]);

      // The rows never sealed come next, then new rows, all in one chain.
      await store!.appendAudit([event(1, 'after-migration')]);
      assert.equal(await sealEverything(store!), NEVER_SEALED.size + 1);
      const places = new Map((await store!.listAudit({ limit: LEGACY_ROWS + 1 })).map((r) => [r.id, r.chainSeq]));
      assert.deepEqual([7000, 12_000, 12_001].map((id) => places.get(id)), [LEGACY_ROWS - 1, LEGACY_ROWS, LEGACY_ROWS + 1]);
      const after = await verify(store!);
      assert.ok(after.ok && after.rows === LEGACY_ROWS + 1, JSON.stringify(after));
    });

    it('still names a converted row altered, by its old chain position and id', async () => {
      const { chainSeq } = oldChain.get(5500)!;
      assert.equal(chainSeq, 5999, 'sealed late, after row 5999');
      await exec(database, `update audit_events set detail = '{"n": 0}' where id = 5500`);
      await assertBroken(store!, /^row #5999 \(id 5500\) was altered/, 5999);
    });
  });
}

