/**
 * The store on both databases: PGlite always, Postgres too when TEST_DATABASE_URL is set.
 * Records round-trip exactly, a token id is used once even under concurrency, and a rejected
 * transaction writes nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { verifyChain } from '../../src/audit/chain.js';
import { link } from '../../src/audit/sealer.js';
import { sql } from 'drizzle-orm';
import { CaError } from '../../src/errors.js';
import { databaseError, openDatabase, type Database } from '../../src/store/database.js';
import { rawRows } from '../../src/store/rows.js';
import { createStore, storeOn, type NewCertificate, type Store } from '../../src/store/store.js';
import { connectPg, storeBackends, type StoreBackend } from '../setup/database.js';

const backends = storeBackends();

/** The audit row every recorded issuance writes with it. */
const AUDIT = { at: new Date(), actor: 'spiffe://example.org/ns/store/sa/test', action: 'certificate.issue' as const, detail: {} };

function newCertificate(overrides: Partial<NewCertificate> = {}): NewCertificate {
  const now = Date.now();
  return {
    serial: randomBytes(20).toString('hex').replace(/^[89a-f]/, '1'),
    issuerKeyId: 'ab'.repeat(20),
    identity: 'spiffe://example.org/ns/shop/sa/web',
    sans: { dns: ['web.shop.svc'], ip: ['10.0.0.1'], uri: [], email: [] },
    notBefore: new Date(Math.floor(now / 1000) * 1000 - 60_000),
    notAfter: new Date(Math.floor(now / 1000) * 1000 + 3600_000),
    der: randomBytes(300),
    fingerprint: randomBytes(32).toString('hex'),
    tokenIssuer: 'test',
    tokenJti: null,
    csrDigest: null,
    renewedFrom: null,
    ...overrides,
  };
}

for (const backend of backends) {
  describe(`store on ${backend.name}`, () => {
    let db: Awaited<ReturnType<StoreBackend['open']>>;
    let store: Store;
    before(async () => {
      db = await backend.open();
      store = await createStore(db.config);
    });
    after(async () => {
      await store.close();
      await db.drop();
    });

    it('round-trips a record exactly', async () => {
      const cert = newCertificate();
      await store.recordIssuance(cert, undefined, AUDIT);
      const got = await store.getCertificate(cert.serial);
      assert.ok(got);
      assert.equal(got.serial, cert.serial);
      assert.equal(got.identity, cert.identity);
      assert.deepEqual(got.sans, cert.sans);
      assert.equal(got.notBefore.getTime(), cert.notBefore.getTime());
      assert.equal(got.notAfter.getTime(), cert.notAfter.getTime());
      assert.deepEqual(Buffer.from(got.der), Buffer.from(cert.der));
      assert.equal(got.revokedAt, null);
      assert.equal(got.revocationReason, null);
      assert.equal(await store.getCertificate('00'), undefined);
    });

    it('refuses a duplicate serial and writes nothing of the failed transaction', async () => {
      const cert = newCertificate();
      await store.recordIssuance(cert, undefined, AUDIT);
      const jti = `j-${randomBytes(4).toString('hex')}`;
      await assert.rejects(store.recordIssuance({ ...cert, fingerprint: 'ff'.repeat(32) }, { issuer: 'test', jti, expiresAt: new Date(Date.now() + 60_000) }, AUDIT));
      // The token id of the failed transaction was rolled back with it: it can be used now.
      await store.recordIssuance(newCertificate(), { issuer: 'test', jti, expiresAt: new Date(Date.now() + 60_000) }, AUDIT);
    });

    it('uses a token id once, even when many issuances race for it', async () => {
      const use = { issuer: 'test', jti: `race-${randomBytes(4).toString('hex')}`, expiresAt: new Date(Date.now() + 60_000) };
      const attempts = Array.from({ length: 12 }, () => newCertificate());
      const outcomes = await Promise.all(attempts.map((c) => store.recordIssuance(c, use, AUDIT)));
      assert.deepEqual(outcomes.sort(), ['recorded', ...Array<string>(11).fill('tokenUsed')], 'exactly one issuance consumes the token id');
      const stored = await Promise.all(attempts.map((c) => store.getCertificate(c.serial)));
      assert.equal(stored.filter(Boolean).length, 1, 'the losers wrote no certificate');
    });

    it('keeps a token id per issuer', async () => {
      const jti = `shared-${randomBytes(4).toString('hex')}`;
      await store.recordIssuance(newCertificate(), { issuer: 'a', jti, expiresAt: new Date(Date.now() + 60_000) }, AUDIT);
      await store.recordIssuance(newCertificate(), { issuer: 'b', jti, expiresAt: new Date(Date.now() + 60_000) }, AUDIT);
    });

    it('prunes used token ids only after their tokens expired', async () => {
      const expired = { issuer: 'test', jti: `old-${randomBytes(4).toString('hex')}`, expiresAt: new Date(Date.now() - 1000) };
      await store.recordIssuance(newCertificate(), expired, AUDIT);
      const pruned = await store.pruneUsedTokens(new Date());
      assert.ok(pruned >= 1);
      await store.recordIssuance(newCertificate(), { issuer: 'test', jti: `keep-${randomBytes(4).toString('hex')}`, expiresAt: new Date(Date.now() + 60_000) }, AUDIT);
      assert.equal(await store.pruneUsedTokens(new Date()), 0);
    });

    it('enforces the record invariants in the schema', async () => {
      await assert.rejects(store.recordIssuance(newCertificate({ notAfter: new Date(Date.now() - 3600_000) }), undefined, AUDIT));
    });

    it('keeps records across a reopen', async () => {
      const cert = newCertificate();
      await store.recordIssuance(cert, undefined, AUDIT);
      await store.close();
      store = await createStore(db.config);
      const got = await store.getCertificate(cert.serial);
      assert.equal(got?.fingerprint, cert.fingerprint);
    });

    describe('renewal lineage (docs/api.md "Certificate holder")', () => {
      const inAnHour = () => new Date(Date.now() + 3600_000);
      let jtis = 0;
      const use = () => ({ issuer: 'renewal', jti: `lineage-${randomBytes(4).toString('hex')}-${++jtis}`, expiresAt: inAnHour() });
      const RENEW = { ...AUDIT, action: 'certificate.renew' as const };
      async function root(): Promise<NewCertificate> {
        const cert = newCertificate();
        assert.equal(await store.recordIssuance(cert, undefined, AUDIT), 'recorded');
        return cert;
      }
      async function renew(parent: NewCertificate): Promise<NewCertificate> {
        const child = newCertificate({ renewedFrom: parent.serial });
        assert.equal(await store.recordIssuance(child, use(), RENEW), 'recorded');
        return child;
      }
      const statusOf = async (c: NewCertificate) => ((await store.getCertificate(c.serial))?.revokedAt ? 'revoked' : 'valid');

      it('renews a certificate once: of twelve racing renewals one is recorded, and the others write nothing', async () => {
        const parent = await root();
        const children = Array.from({ length: 12 }, () => newCertificate({ renewedFrom: parent.serial }));
        const outcomes = await Promise.all(children.map((c) => store.recordIssuance(c, use(), RENEW)));
        assert.deepEqual([...outcomes].sort(), [...Array<string>(11).fill('parentRenewed'), 'recorded']);
        const winner = children[outcomes.indexOf('recorded')]!;
        assert.equal((await store.renewalOf(parent.serial))?.serial, winner.serial);
        assert.equal((await store.getCertificate(winner.serial))?.renewedFrom, parent.serial);
        const stored = await Promise.all(children.map((c) => store.getCertificate(c.serial)));
        assert.equal(stored.filter(Boolean).length, 1, 'no fork: one child');
      });

      it('records nothing, and keeps the token id unused, for a parent that is revoked or expired', async () => {
        const revoked = await root();
        await store.revoke(revoked.serial, { reason: 'superseded', actor: 'admin', at: new Date() });
        const token = use();
        assert.equal(await store.recordIssuance(newCertificate({ renewedFrom: revoked.serial }), token, RENEW), 'parentInvalid');
        const expired = newCertificate({ notBefore: new Date(Date.now() - 7200_000), notAfter: new Date(Date.now() - 3600_000) });
        assert.equal(await store.recordIssuance(expired, undefined, AUDIT), 'recorded');
        assert.equal(await store.recordIssuance(newCertificate({ renewedFrom: expired.serial }), use(), RENEW), 'parentInvalid');
        assert.equal(await store.renewalOf(revoked.serial), undefined);
        // The token id was not consumed: it still records a renewal of a valid parent.
        assert.equal(await store.recordIssuance(newCertificate({ renewedFrom: (await root()).serial }), token, RENEW), 'recorded');
      });

      it('tells a used token id from a renewed parent', async () => {
        const parent = await root();
        const token = use();
        assert.equal(await store.recordIssuance(newCertificate({ renewedFrom: parent.serial }), token, RENEW), 'recorded');
        assert.equal(await store.recordIssuance(newCertificate({ renewedFrom: parent.serial }), use(), RENEW), 'parentRenewed');
        assert.equal(await store.recordIssuance(newCertificate({ renewedFrom: (await root()).serial }), token, RENEW), 'tokenUsed');
      });

      it('keyCompromise revokes the whole lineage below the certificate in one transaction; other reasons the certificate alone', async () => {
        const a = await root();
        const b = await renew(a);
        const c = await renew(b);
        const d = await renew(c);
        const other = await root();
        const superseded = await store.revoke(c.serial, { reason: 'superseded', actor: 'admin', at: new Date() });
        assert.deepEqual(superseded.alsoRevoked, []);
        assert.equal(await statusOf(d), 'valid', 'superseded revokes the certificate alone');
        const compromised = await store.revoke(a.serial, { reason: 'keyCompromise', actor: 'admin', at: new Date() });
        assert.deepEqual(compromised.alsoRevoked, [b.serial, d.serial].sort(), 'below a revoked link too, and not the link revoked before');
        for (const x of [a, b, c, d]) assert.equal(await statusOf(x), 'revoked');
        assert.equal((await store.getCertificate(d.serial))?.revocationReason, 'keyCompromise');
        assert.equal(await statusOf(other), 'valid');
        const rows = await store.listAudit({ serial: d.serial, limit: 10 });
        assert.deepEqual(rows.map((r) => [r.action, r.detail.lineageOf]), [['certificate.revoke', a.serial], ['certificate.renew', undefined]]);
      });

      it('keyCompromise on a certificate revoked before (superseded) still revokes its lineage, and answers 409', async () => {
        const a = await root();
        const b = await renew(a);
        const c = await renew(b);
        await store.revoke(a.serial, { reason: 'superseded', actor: 'admin', at: new Date() });
        assert.equal(await statusOf(b), 'valid');
        await assert.rejects(store.revoke(a.serial, { reason: 'keyCompromise', actor: 'admin', at: new Date() }), (err: CaError) => {
          assert.equal(err.kind, 'alreadyRevoked');
          assert.match(err.detail, /the 2 certificates renewed from it were revoked now/);
          return true;
        });
        for (const x of [b, c]) assert.equal((await store.getCertificate(x.serial))?.revocationReason, 'keyCompromise');
        assert.equal((await store.getCertificate(a.serial))?.revocationReason, 'superseded', 'the certificate keeps its first revocation');
        await assert.rejects(store.revoke(a.serial, { reason: 'keyCompromise', actor: 'admin', at: new Date() }), (err: CaError) => err.detail === 'this certificate is already revoked');
      });

      it('a bulk revocation takes the child of a renewal that held its parent while the revocation waited', { skip: backend.name === 'Postgres' ? false : 'needs a second connection (Postgres)' }, async () => {
        const identity = `spiffe://example.org/ns/race/sa/${randomBytes(3).toString('hex')}`;
        const parent = newCertificate({ identity });
        assert.equal(await store.recordIssuance(parent, undefined, AUDIT), 'recorded');
        const child = newCertificate({ identity, renewedFrom: parent.serial });
        // A renewal in flight: its transaction holds the parent FOR SHARE and has inserted the child.
        const renewal = await connectPg(db.config.url!);
        try {
          await renewal.query('begin');
          await renewal.query(`select 1 from certificates where serial = $1 and status = 'valid' for share`, [parent.serial]);
          await renewal.query(
            `insert into certificates (serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, der, fingerprint, renewed_from)
             values ($1, $2, $3, $4::jsonb, $5::text[], $6, $7, $8, $9, $10)`,
            [child.serial, child.issuerKeyId, identity, JSON.stringify(child.sans), child.sans.dns, child.notBefore, child.notAfter, Buffer.from(child.der), child.fingerprint, parent.serial],
          );
          const revocation = store.revokeIdentity(identity, { reason: 'keyCompromise', actor: 'admin', at: new Date() });
          await new Promise((r) => setTimeout(r, 300)); // the revocation now waits on the parent's row
          await renewal.query('commit');
          assert.deepEqual(await revocation, [parent.serial, child.serial].sort());
        } finally {
          await renewal.end();
        }
        assert.equal(await statusOf(child), 'revoked', 'no valid child of a revoked certificate');
      });
    });

    it('seals audit rows appended concurrently into one unbroken chain, also with two sealers racing', async () => {
      const second = backend.name === 'Postgres' ? await createStore(db.config) : store;
      try {
        const at = new Date();
        await Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            store.appendAudit([{ at, actor: `actor-${i % 3}`, action: 'certificates.list', serial: null, outcome: 'success', detail: { i, nested: { b: 1, a: [i] } } }]),
          ),
        );
        // Both seal until nothing waits: the advisory lock lets one in at a time. (A write
        // transaction of another test's database on the same server holds sealing back a moment.)
        for (const deadline = Date.now() + 15_000; (await store.auditHead()).unsealed > 0 && Date.now() < deadline; ) {
          await Promise.all([store.sealAudit(7, link), second.sealAudit(7, link)]);
        }
        const head = await store.auditHead();
        assert.equal(head.unsealed, 0);
        const verdict = await verifyChain(store.auditChain(head.seal), head, 0);
        assert.ok(verdict.ok, JSON.stringify(verdict));
        assert.ok(verdict.rows >= 60);
        // The verifier is not satisfied by anything: a head that claims one more row, or one more seal, fails it.
        const short = await verifyChain(store.auditChain(head.seal), { ...head, seq: head.seq + 1 }, 0);
        assert.equal(short.ok, false);
        const truncated = await verifyChain(store.auditChain(head.seal + 1), { ...head, seal: head.seal + 1 }, 0);
        assert.equal(truncated.ok, false);
      } finally {
        if (second !== store) await second.close();
      }
    });
  });
}

/** A fresh database of this backend, opened before the suite's tests and dropped after them. */
function openedDatabase(backend: StoreBackend): () => Database {
  let db: Awaited<ReturnType<StoreBackend['open']>>;
  let database: Database;
  before(async () => {
    db = await backend.open();
    database = await openDatabase(db.config);
  });
  after(async () => {
    await database.close();
    await db.drop();
  });
  return () => database;
}

// Revocation at any size (docs/api.md "Admin"): more rows than Postgres's 65,535 bind parameters
// allow as one parameter list per audit row (the statement that failed before).
for (const backend of backends) {
  describe(`bulk revocation on ${backend.name}`, () => {
    const opened = openedDatabase(backend);

    it('revokes 12,000 certificates of one identity in one transaction, with an audit row for each', async () => {
      const store = storeOn(opened());
      const identity = 'spiffe://example.org/ns/bulk/sa/api';
      const template = newCertificate({ identity });
      assert.equal(await store.recordIssuance(template, undefined, AUDIT), 'recorded');
      // 11,999 more rows like it in one statement (seeding through the API would take minutes here).
      await opened().db.execute(sql`insert into certificates (serial, issuer_key_id, identity, sans, dns_names, not_before, not_after, der, fingerprint)
        select '7f' || left(md5(n::text) || md5(n::text), 38), issuer_key_id, identity, sans, dns_names, not_before, not_after, der, md5(n::text) || md5(n::text)
        from certificates, generate_series(1, 11999) as n where serial = ${template.serial}`);
      const revoked = await store.revokeIdentity(identity, { reason: 'keyCompromise', actor: 'admin', at: new Date() });
      assert.equal(revoked.length, 12_000);
      assert.equal(new Set(revoked).size, 12_000);
      assert.deepEqual(revoked, [...revoked].sort(), 'in serial order');
      const [counted] = await rawRows<{ revoked: number; audited: number }>(
        opened().db,
        sql`select (select count(*)::int from certificates where identity = ${identity} and status = 'revoked') as revoked,
                   (select count(*)::int from audit_events where action = 'certificate.revoke' and detail->>'identity' = ${identity}) as audited`,
      );
      assert.deepEqual(counted, { revoked: 12_000, audited: 12_000 });
      const summary = await store.listAudit({ action: 'identity.revoke', limit: 10 });
      assert.deepEqual(summary.map((r) => r.detail), [{ identity, reason: 'keyCompromise', revoked: 12_000 }]);
      assert.deepEqual(await store.revokeIdentity(identity, { reason: 'keyCompromise', actor: 'admin', at: new Date() }), [], 'nothing left to revoke');
    });
  });
}

// Database.hot: named prepared statements on both drivers (on PGlite by hand over its wire
// protocol, store/pglite-prepared.ts).
for (const backend of backends) {
  describe(`hot statements on ${backend.name}`, () => {
    const opened = openedDatabase(backend);

    it('carries every value exactly, both ways', async () => {
      const octets = Buffer.from([0, 1, 0x5c, 0x78, 0xff]);
      for (let run = 0; run < 2; run++) {
        const [row] = await opened().hot<{ names: string[]; octets: Uint8Array; doc: unknown; at: Date; nothing: null; n: number }>(
          'service_ca_test_values',
          'select $1::text[] as names, $2::bytea as octets, $3::jsonb as doc, $4::timestamptz as at, $5::text as nothing, cardinality($1::text[]) as n',
          [['a"b', 'c,d', 'e\\f', '', 'NULL', '{x}'], octets, JSON.stringify({ k: ['v', 1] }), '2026-01-02T03:04:05.678Z', null],
        );
        assert.deepEqual(row!.names, ['a"b', 'c,d', 'e\\f', '', 'NULL', '{x}']);
        assert.equal(row!.n, 6);
        assert.deepEqual(Buffer.from(row!.octets), octets);
        assert.deepEqual(row!.doc, { k: ['v', 1] });
        assert.equal(new Date(row!.at).toISOString(), '2026-01-02T03:04:05.678Z');
        assert.equal(row!.nothing, null);
      }
    });

    it('reports a database error with its code, and the statement still works after it', async () => {
      const fail = opened().hot('service_ca_test_cast', 'select $1::int as n', ['not a number']);
      await assert.rejects(fail, (err: { code?: string }) => err.code === '22P02');
      const [row] = await opened().hot<{ n: number }>('service_ca_test_cast', 'select $1::int as n', ['7']);
      assert.equal(row!.n, 7);
    });

    it('refuses SQL that does not parse, keeps nothing of it, and refuses a second text under one name', async () => {
      await assert.rejects(opened().hot('service_ca_test_parse', 'selec $1::int as n', ['1']), (err: { code?: string }) => err.code === '42601');
      const [row] = await opened().hot<{ n: number }>('service_ca_test_parse', 'select $1::int as n', ['2']);
      assert.equal(row!.n, 2);
      await assert.rejects(opened().hot('service_ca_test_parse', 'select $1::int + 1 as n', ['2']), (err: Error) => err.message.includes('service_ca_test_parse'));
    });

    it('reports a statement the server refuses as that error (a 500), not as an outage (a 503 that invites the same retry)', async () => {
      // Postgres refuses a bind message over 65,535 parameters (SQLSTATE 08P01) and keeps the connection.
      const n = 70_000;
      const refused = await opened()
        .hot('service_ca_test_too_many', `select array[${Array.from({ length: n }, (_, i) => `$${i + 1}::int`).join(',')}] as x`, Array<number>(n).fill(1))
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      assert.ok(refused, 'the database refused the statement');
      const mapped = databaseError(refused);
      assert.ok(!(mapped instanceof CaError && mapped.kind === 'unavailable'), `mapped to ${String(mapped)}`);
      assert.equal(mapped, refused, 'passed on as it is, for the 500 path to log');
      const [row] = await opened().hot<{ n: number }>('service_ca_test_after_refusal', 'select 1 as n', []);
      assert.equal(row!.n, 1, 'the database still answers');
    });

    it('after close, the store answers unavailable', async () => {
      const other = await backend.open();
      const closed = await openDatabase(other.config);
      const closedStore = storeOn(closed);
      await closed.close();
      await assert.rejects(closedStore.getCertificate('01'), (err: { kind?: string }) => err.kind === 'unavailable');
      await other.drop();
    });

    it('never runs inside another caller\'s open transaction', async () => {
      const jti = `held-${randomBytes(4).toString('hex')}`;
      let release!: () => void;
      const held = new Promise<void>((r) => (release = r));
      let written!: () => void;
      const wrote = new Promise<void>((r) => (written = r));
      const tx = opened()
        .transaction(async (t) => {
          await t.execute(sql`insert into used_tokens (issuer, jti, expires_at) values ('store-test', ${jti}, now() + interval '1 hour')`);
          written();
          await held;
          throw new Error('roll back');
        })
        .catch((err: Error) => err.message);
      await wrote;
      // While the transaction is open: on Postgres another connection, on PGlite (one session)
      // the statement waits for the transaction to end. It must never see the uncommitted row.
      const count = opened().hot<{ n: number }>('service_ca_test_count', 'select count(*)::int as n from used_tokens where jti = $1', [jti]);
      setTimeout(release, 200);
      assert.equal(await tx, 'roll back');
      const [row] = await count;
      assert.equal(row!.n, 0);
    });
  });
}
