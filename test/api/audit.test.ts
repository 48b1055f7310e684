/**
 * The audit trail: every issuance, refusal, revocation and admin read leaves a row with time,
 * actor, action, serial and outcome; admins read it through GET /v1/audit with filters and
 * pagination; the sealer links the rows into a hash chain that `service-ca audit verify` walks,
 * naming the first row altered or removed when the database is tampered with.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { runCli } from '../setup/cli-run.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { opensslGenpkey, opensslReqForKey } from '../setup/crafted.js';
import { createTestDatabase, withPg, type TestDatabase } from '../setup/database.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { assertProblem } from '../setup/rejections.js';
import { bulkRevoke, issueFor, list, revokeOk } from '../setup/revoking.js';
import { writeServiceConfig } from '../setup/service-config.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

interface AuditRow {
  id: number;
  at: string;
  actor: string;
  action: string;
  serial: string | null;
  outcome: string;
  detail: Record<string, unknown>;
  chainSeq: number | null;
  prevHash: string | null;
  hash: string | null;
}

const OWNER = workload('shop', 'web');
const OTHER = workload('shop', 'db');

/** Runs SQL on the test's database (PGlite: only while no app holds it). */
async function sqlOn(database: TestDatabase, query: string): Promise<void> {
  if (database.url) {
    await withPg(database.url, (client) => client.query(query));
    return;
  }
  const db = await PGlite.create(join(database.dataDir, 'pgdata'));
  try {
    await db.exec(query);
  } finally {
    await db.close();
  }
}

describe('audit trail', () => {
  let database: TestDatabase;
  let pki: TestPki;
  let issuer: TestIssuer;
  let app: TestApp;
  const serials: string[] = [];

  const audit = async (query: Record<string, string>, sub = ADMIN) =>
    fetch(`${app.api}/v1/audit?${new URLSearchParams(query)}`, { headers: { Authorization: `Bearer ${await app.token(sub)}` } });
  const auditOk = async (query: Record<string, string>) => {
    const res = await audit(query);
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as { items: AuditRow[]; nextCursor: string | null };
  };

  before(async () => {
    database = await createTestDatabase();
    pki = await createTestPki('p256');
    issuer = await createTestIssuer();
    app = await startTestApp({ database, pki, issuer });
  });

  after(async () => {
    await app?.stop();
    await database?.drop();
  });

  it('records issuances, refusals, revocations and admin reads with actor, action, serial and outcome', async () => {
    for (let i = 0; i < 3; i++) serials.push((await issueFor(app, OWNER, ['web.shop.svc'])).serial);
    const other = await issueFor(app, OTHER, ['db.shop.svc']);
    const { csrPem } = await createKeyAndCsr('p256', { dns: ['db.shop.svc'] });
    await assertProblem(await app.issue(OWNER, { csr: csrPem }), 403, 'rejectedIdentifier');
    await revokeOk(app, serials[0]!, OWNER, 'superseded');
    assert.equal((await bulkRevoke(app, ADMIN, { identity: OTHER, reason: 'keyCompromise' })).status, 200);
    assert.equal((await list(app, { identity: OWNER })).status, 200);
    await assertProblem(await list(app, {}, OWNER), 403, 'forbidden');

    const { items } = await auditOk({ limit: '100' });
    const find = (action: string, outcome: string, serial?: string) => items.filter((r) => r.action === action && r.outcome === outcome && (serial === undefined || r.serial === serial));
    for (const s of serials) assert.equal(find('certificate.issue', 'success', s).length, 1, `issuance of ${s}`);
    const issued = find('certificate.issue', 'success', serials[1]!)[0]!;
    assert.equal(issued.actor, OWNER);
    assert.deepEqual((issued.detail.sans as { dns: string[] }).dns, ['web.shop.svc']);
    const refused = find('certificate.issue', 'rejectedIdentifier');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.actor, OWNER);
    assert.equal(refused[0]!.serial, null);
    assert.deepEqual(find('certificate.revoke', 'success', serials[0]!).map((r) => [r.actor, r.detail.reason]), [[OWNER, 'superseded']]);
    assert.deepEqual(find('certificate.revoke', 'success', other.serial).map((r) => [r.actor, r.detail.reason]), [[ADMIN, 'keyCompromise']]);
    assert.deepEqual(find('identity.revoke', 'success').map((r) => [r.actor, r.detail.identity, r.detail.revoked]), [[ADMIN, OTHER, 1]]);
    assert.equal(find('certificates.list', 'success')[0]?.actor, ADMIN);
    assert.equal(find('certificates.list', 'forbidden')[0]?.actor, OWNER);
    // Times are the service's, newest first by row.
    const ids = items.map((r) => r.id);
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a));
    for (const r of items) assert.ok(Math.abs(Date.parse(r.at) - Date.now()) < 60_000, r.at);
  });

  it('filters by serial, action, actor and outcome, and pages without repeating or skipping', async () => {
    const bySerial = await auditOk({ serial: serials[0]! });
    assert.deepEqual(bySerial.items.map((r) => r.action).sort(), ['certificate.issue', 'certificate.revoke']);
    const refusals = await auditOk({ outcome: 'forbidden' });
    assert.ok(refusals.items.length >= 1 && refusals.items.every((r) => r.outcome === 'forbidden'));
    const owner = await auditOk({ actor: OWNER, action: 'certificate.issue' });
    assert.equal(owner.items.length, 4, 'three issued, one refused');

    const all = (await auditOk({ limit: '1000' })).items.map((r) => r.id);
    const walked: number[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: AuditRow[]; nextCursor: string | null } = await auditOk(cursor ? { limit: '3', cursor } : { limit: '3' });
      walked.push(...page.items.map((r) => r.id));
      cursor = page.nextCursor;
    } while (cursor);
    // Each page read is itself audited (newer rows), so the walk holds every row that existed.
    assert.deepEqual(walked.filter((id) => all.includes(id)), all);
    assert.equal(new Set(walked).size, walked.length);
  });

  it('is for admins only, and answers bad filters with a problem document', async () => {
    await assertProblem(await audit({}, OWNER), 403, 'forbidden');
    await assertProblem(await audit({ limit: '0' }), 400, 'malformed');
    await assertProblem(await audit({ action: 'everything' }), 400, 'malformed');
    await assertProblem(await audit({ since: 'yesterday' }), 400, 'malformed');
    await assertProblem(await audit({ cursor: '!!' }), 400, 'malformed');
    const refused = await auditOk({ action: 'audit.read', outcome: 'forbidden' });
    assert.equal(refused.items[0]?.actor, OWNER);
  });

  it('keeps about 1 KiB of a refusal\'s detail, however much of the request the refusal echoes', async () => {
    // A 40,000-character DNS name: refused as badCSR with the name in the answer's detail.
    const csr = opensslReqForKey(opensslGenpkey(['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']), `DNS:${'a'.repeat(40_000)}.shop.svc`);
    const res = await app.issue(OWNER, { csr });
    const problem = await assertProblem(res, 400, 'badCSR');
    assert.ok(problem.detail.length > 40_000, 'the answer names the name (the row must not)');
    const { items } = await auditOk({ actor: OWNER, outcome: 'badCSR' });
    assert.equal(items.length, 1);
    const stored = JSON.stringify(items[0]!.detail);
    assert.ok(stored.length <= 1200, `the row keeps ${stored.length} characters of detail`);
    assert.match(String(items[0]!.detail.reason), /^"a{900,}.*more characters not kept\)$/);
  });

  it('links every row into a hash chain within seconds', async () => {
    const deadline = Date.now() + 10_000;
    let items: AuditRow[] = [];
    for (;;) {
      items = (await auditOk({ limit: '1000' })).items.slice(1); // the newest row is this read itself
      if (items.every((r) => r.chainSeq !== null) || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const chain = items.filter((r) => r.chainSeq !== null).sort((a, b) => a.chainSeq! - b.chainSeq!);
    assert.equal(chain.length, items.length, 'every row sealed');
    assert.deepEqual(chain.map((r) => r.chainSeq), chain.map((_, i) => i + 1));
    assert.equal(chain[0]!.prevHash, '00'.repeat(32));
    for (let i = 1; i < chain.length; i++) assert.equal(chain[i]!.prevHash, chain[i - 1]!.hash);
  });

  describe('service-ca audit verify', () => {
    let config: string;
    const verify = () => runCli(['audit', 'verify', '--config', config], { timeoutMs: 60_000 });

    before(async () => {
      await app.running.deps.auditSealer.sealNow();
      await app.stop(); // PGlite is one process's database
      config = writeServiceConfig({ pki, issuer, database, apiPort: 1, publicPort: 2, tls: 'off' });
    });

    it('reports an intact chain with exit 0', async () => {
      const r = await verify();
      assert.equal(r.code, 0, r.describe);
      assert.match(r.stdout, /audit chain intact: \d+ rows, head #\d+ [0-9a-f]{64}/);
    });

    it('names the first row altered, then a row removed, then seals removed from the end (exit 1)', async () => {
      // Row #5 is found through the seal that lists it.
      const fifth = `(select ids[5 - first_seq + 1] from audit_seals where 5 between first_seq and last_seq)`;
      await sqlOn(database, `update audit_events set outcome = outcome || '!' where id = ${fifth}`);
      let r = await verify();
      assert.equal(r.code, 1, r.describe);
      assert.match(r.stdout, /BROKEN at row #5: row #5 \(id \d+\) was altered/);

      await sqlOn(database, `delete from audit_events where id = ${fifth}`);
      r = await verify();
      assert.equal(r.code, 1, r.describe);
      assert.match(r.stdout, /BROKEN at row #5: row #5 \(id \d+\) is missing: removed/);

      // The seals from row #5 on gone, the head still names the last: truncation.
      await sqlOn(database, `delete from audit_seals where last_seq >= 5`);
      r = await verify();
      assert.equal(r.code, 1, r.describe);
      assert.match(r.stdout, /BROKEN at row #\d: rows #\d to #\d+ are missing: removed from the end of the chain/);
    });
  });
});
