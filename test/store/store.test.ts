/**
 * The store on both databases: PGlite always, Postgres too when TEST_DATABASE_URL is set.
 * Records round-trip exactly, a token id is used once even under concurrency, and a rejected
 * transaction writes nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import postgres from 'postgres';
import { verifyChain } from '../../src/audit/chain.js';
import { link } from '../../src/audit/sealer.js';
import { createStore, type NewCertificate, type Store } from '../../src/store/store.js';
import { testDatabaseUrl } from '../setup/database.js';

interface Backend {
  name: string;
  open(): Promise<{ config: { url?: string; dataDir: string }; drop(): Promise<void> }>;
}

const backends: Backend[] = [
  {
    name: 'PGlite',
    async open() {
      const dataDir = mkdtempSync(join(tmpdir(), 'service-ca-store-'));
      return { config: { dataDir }, drop: async () => rmSync(dataDir, { recursive: true, force: true }) };
    },
  },
];
if (testDatabaseUrl) {
  backends.push({
    name: 'Postgres',
    async open() {
      const name = `service_ca_store_${randomBytes(5).toString('hex')}`;
      const admin = postgres(testDatabaseUrl!, { max: 1, onnotice: () => {} });
      await admin.unsafe(`create database ${name}`);
      const url = new URL(testDatabaseUrl!);
      url.pathname = `/${name}`;
      const dataDir = mkdtempSync(join(tmpdir(), 'service-ca-store-'));
      return {
        config: { url: url.toString(), dataDir },
        async drop() {
          await admin.unsafe(`drop database if exists ${name} with (force)`);
          await admin.end();
          rmSync(dataDir, { recursive: true, force: true });
        },
      };
    },
  });
}

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
    ...overrides,
  };
}

for (const backend of backends) {
  describe(`store on ${backend.name}`, () => {
    let db: Awaited<ReturnType<Backend['open']>>;
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
      const results = await Promise.allSettled(attempts.map((c) => store.recordIssuance(c, use, AUDIT)));
      const ok = results.filter((r) => r.status === 'fulfilled');
      assert.equal(ok.length, 1, 'exactly one issuance consumes the token id');
      for (const r of results) {
        if (r.status === 'rejected') assert.equal((r.reason as { kind?: string }).kind, 'unauthorized');
      }
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

    it('seals audit rows appended concurrently into one unbroken chain, also with two sealers racing', async () => {
      const second = backend.name === 'Postgres' ? await createStore(db.config) : store;
      try {
        const at = new Date();
        await Promise.all(
          Array.from({ length: 60 }, (_, i) =>
            store.appendAudit([{ at, actor: `actor-${i % 3}`, action: 'certificates.list', serial: null, outcome: 'success', detail: { i, nested: { b: 1, a: [i] } } }]),
          ),
        );
        // Both seal until nothing waits: the advisory lock lets one in at a time.
        for (let round = 0; round < 20 && (await store.auditHead()).unsealed > 0; round++) {
          await Promise.all([store.sealAudit(7, link), second.sealAudit(7, link)]);
        }
        const head = await store.auditHead();
        assert.equal(head.unsealed, 0);
        const verdict = await verifyChain(store.auditChain(), head, 0);
        assert.ok(verdict.ok, JSON.stringify(verdict));
        assert.ok(verdict.rows >= 60);
        // The verifier is not satisfied by anything: a head that claims one more row fails it.
        const short = await verifyChain(store.auditChain(), { ...head, seq: head.seq + 1 }, 0);
        assert.equal(short.ok, false);
      } finally {
        if (second !== store) await second.close();
      }
    });
  });
}
