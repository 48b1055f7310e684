/**
 * Revocation (owner, admin, bulk) and the admin listing (docs/api.md "Service identity" and "Admin"),
 * through the real app and database. Happy, error and security cases per feature; every record
 * is read back through the API after each change, and refused changes are checked to have changed
 * nothing.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { REASONS, sleep } from '../setup/crl-check.js';
import {
  assertProblem,
  bulkRevoke,
  compareListingOrder,
  getRecord,
  issueFor,
  list,
  listAll,
  listOk,
  revoke,
  revokeOk,
  type Issued,
  type RecordJson,
} from '../setup/revoking.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const RECORD_KEYS = ['certificate', 'identity', 'notAfter', 'notBefore', 'renewedFrom', 'revocationReason', 'revokedAt', 'sans', 'serial', 'status'];
const OWNER_REASONS = REASONS.filter((r) => r !== 'caCompromise' && r !== 'privilegeWithdrawn');

/** A serial nobody issued: 20 random octets, positive. */
const unknownSerial = () => {
  const b = randomBytes(20);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString('hex');
};

/** Issues for workload(ns, sa) with the DNS name its policy allows. */
const issueAs = (app: TestApp, ns: string, sa: string, ttl?: string | number) => issueFor(app, workload(ns, sa), [`${sa}.${ns}.svc`], ttl);

/** Waits until every given certificate's notAfter has passed (the server's clock is this process's). */
async function waitUntilExpired(...certs: Issued[]): Promise<void> {
  const last = Math.max(...certs.map((c) => Date.parse(c.notAfter)));
  await sleep(Math.max(0, last - Date.now() + 50));
}

async function assertUnchanged(app: TestApp, before: RecordJson, what: string): Promise<void> {
  const now = await getRecord(app, before.serial);
  assert.equal(now.status, before.status, `${what}: status`);
  assert.equal(now.revokedAt, before.revokedAt, `${what}: revokedAt`);
  assert.equal(now.revocationReason, before.revocationReason, `${what}: revocationReason`);
}

describe('revocation and the admin listing', () => {
  let app: TestApp;
  before(async () => {
    // A 1 s backdate lets a test make certificates that expire within seconds (ttl 2).
    app = await startTestApp({ config: { issuance: { defaultTtl: '24h', maxTtl: '72h', backdate: '1s' } } });
  });
  after(() => app.stop());

  describe('POST /v1/certificates/{serial}/revoke: happy cases', () => {
    it('the owner revokes its own certificate: 200 with the record, and the record says so afterwards', async () => {
      const owner = workload('rev', 'owner');
      const cert = await issueAs(app, 'rev', 'owner');
      const t0 = Date.now();
      const res = await revoke(app, cert.serial, owner, { reason: 'keyCompromise' });
      const t1 = Date.now();
      assert.equal(res.status, 200, await res.clone().text());
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const record = (await res.json()) as RecordJson;
      assert.deepEqual(Object.keys(record).sort(), [...RECORD_KEYS, 'alsoRevoked'].sort(), 'the record, and the lineage revoked with it');
      assert.equal(record.serial, cert.serial);
      assert.equal(record.identity, owner);
      assert.equal(record.status, 'revoked');
      assert.equal(record.revocationReason, 'keyCompromise');
      assert.match(record.revokedAt ?? '', RFC3339);
      const at = Date.parse(record.revokedAt!);
      assert.ok(at >= t0 - 1000 && at <= t1 + 1000, `revokedAt ${record.revokedAt} is the time of the request`);
      assert.equal(record.certificate, cert.certificate);
      assert.equal(record.notAfter, cert.notAfter);

      const read = await getRecord(app, cert.serial, owner);
      assert.equal(read.status, 'revoked');
      assert.equal(read.revokedAt, record.revokedAt);
      assert.equal(read.revocationReason, 'keyCompromise');
    });

    it('the owner may use every reason except caCompromise and privilegeWithdrawn, and may write the serial in upper case with colons', async () => {
      const owner = workload('rev', 'owner');
      for (const [i, reason] of OWNER_REASONS.entries()) {
        const cert = await issueAs(app, 'rev', 'owner');
        const serial = i % 2 ? cert.serial.toUpperCase().match(/../g)!.join(':') : cert.serial;
        const record = await revokeOk(app, serial, owner, reason);
        assert.equal(record.serial, cert.serial, 'the answer carries the canonical serial');
        assert.equal(record.revocationReason, reason);
        assert.equal((await getRecord(app, cert.serial)).revocationReason, reason);
      }
    });

    it('an admin revokes any certificate with any of the seven reasons', async () => {
      for (const reason of REASONS) {
        const cert = await issueAs(app, 'rev', 'adminvictim');
        const record = await revokeOk(app, cert.serial, ADMIN, reason);
        assert.equal(record.status, 'revoked');
        assert.equal(record.revocationReason, reason);
        assert.equal(record.identity, workload('rev', 'adminvictim'), 'the record keeps its owner');
        const read = await getRecord(app, cert.serial, workload('rev', 'adminvictim'));
        assert.equal(read.revocationReason, reason);
        assert.equal(read.revokedAt, record.revokedAt);
      }
    });
  });

  describe('POST /v1/certificates/{serial}/revoke: errors', () => {
    it('reasons outside the contract are 400 badRevocationReason, for owners and admins, and change nothing', async () => {
      const owner = workload('rev', 'badreason');
      const cert = await issueAs(app, 'rev', 'badreason');
      const valid = await getRecord(app, cert.serial);
      const bodies: [string, unknown][] = [
        ['certificateHold', { reason: 'certificateHold' }],
        ['removeFromCRL', { reason: 'removeFromCRL' }],
        ['aACompromise', { reason: 'aACompromise' }],
        ['the empty string', { reason: '' }],
        ['a number (5)', { reason: 5 }],
        ['a missing reason', {}],
        ['null', { reason: null }],
        ['a differently cased name', { reason: 'KeyCompromise' }],
      ];
      const wrong: string[] = [];
      for (const sub of [owner, ADMIN]) {
        for (const [what, body] of bodies) {
          const res = await revoke(app, cert.serial, sub, body);
          const text = await res.text();
          const type = res.headers.get('content-type') === 'application/problem+json' ? (JSON.parse(text) as { type: string }).type : text;
          if (res.status !== 400 || type !== 'urn:service-ca:error:badRevocationReason') wrong.push(`${what} as ${sub}: ${res.status} ${type}`);
        }
      }
      await assertUnchanged(app, valid, 'after refused reasons');
      assert.deepEqual(wrong, [], 'every refused reason is 400 badRevocationReason');
      assert.equal(valid.status, 'valid');
    });

    it('revoking twice is 409 alreadyRevoked and leaves revokedAt and the reason as they were', async () => {
      const owner = workload('rev', 'twice');
      const cert = await issueAs(app, 'rev', 'twice');
      const first = await revokeOk(app, cert.serial, owner, 'superseded');
      // A second revocation a second later would write a visibly different revokedAt.
      await sleep(1100);
      await assertProblem(await revoke(app, cert.serial, owner, { reason: 'keyCompromise' }), 409, 'alreadyRevoked', 'owner again');
      await assertProblem(await revoke(app, cert.serial, owner, { reason: 'superseded' }), 409, 'alreadyRevoked', 'owner again, same reason');
      await assertProblem(await revoke(app, cert.serial, ADMIN, { reason: 'caCompromise' }), 409, 'alreadyRevoked', 'admin again');
      await assertUnchanged(app, first, 'after the second revocations');
      const listed = (await listOk(app, { identity: owner })).items.find((r) => r.serial === cert.serial);
      assert.equal(listed?.revokedAt, first.revokedAt);
      assert.equal(listed?.revocationReason, 'superseded');
    });

    it('concurrent revocations of one certificate: exactly one 200, the rest 409, and the winner\'s reason stands', async () => {
      const cert = await issueAs(app, 'rev', 'race');
      const reasons = ['keyCompromise', 'superseded', 'affiliationChanged', 'cessationOfOperation', 'unspecified', 'caCompromise', 'privilegeWithdrawn', 'keyCompromise'];
      const answers = await Promise.all(reasons.map((reason) => revoke(app, cert.serial, ADMIN, { reason })));
      const ok = answers.filter((r) => r.status === 200);
      assert.equal(ok.length, 1, `statuses: ${answers.map((r) => r.status).join(',')}`);
      for (const r of answers.filter((a) => a.status !== 200)) await assertProblem(r, 409, 'alreadyRevoked', 'a losing revocation');
      const winner = (await ok[0]!.json()) as RecordJson;
      await assertUnchanged(app, winner, 'after the race');
    });

    it('a body that is not JSON is 400 malformed; a body that is not application/json is 415; nothing changes', async () => {
      const cert = await issueAs(app, 'rev', 'body');
      await assertProblem(await revoke(app, cert.serial, ADMIN, '{"reason": '), 400, 'malformed', 'truncated JSON');
      const res = await fetch(`${app.api}/v1/certificates/${cert.serial}/revoke`, {
        method: 'POST',
        headers: { 'Content-Type': 'text/plain', Authorization: `Bearer ${await app.token(ADMIN)}` },
        body: JSON.stringify({ reason: 'keyCompromise' }),
      });
      await assertProblem(res, 415, 'unsupportedMediaType', 'text/plain');
      assert.equal((await getRecord(app, cert.serial)).status, 'valid');
    });

    it('an unknown serial is 404 notFound; a malformed serial is 400 malformed', async () => {
      for (const sub of [ADMIN, workload('rev', 'owner')]) {
        await assertProblem(await revoke(app, unknownSerial(), sub, { reason: 'keyCompromise' }), 404, 'notFound', `unknown serial as ${sub}`);
      }
      for (const bad of ['xyz', 'abc', 'g0', '0'.repeat(60), '12:3', '-01']) {
        await assertProblem(await revoke(app, encodeURIComponent(bad), ADMIN, { reason: 'keyCompromise' }), 400, 'malformed', `serial "${bad}"`);
      }
    });
  });

  describe('POST /v1/certificates/{serial}/revoke: security', () => {
    it('the owner may not revoke with caCompromise or privilegeWithdrawn (403 forbidden), and the certificate stays valid', async () => {
      const owner = workload('rev', 'limited');
      const cert = await issueAs(app, 'rev', 'limited');
      const valid = await getRecord(app, cert.serial);
      for (const reason of ['caCompromise', 'privilegeWithdrawn']) {
        await assertProblem(await revoke(app, cert.serial, owner, { reason }), 403, 'forbidden', `owner with ${reason}`);
      }
      await assertUnchanged(app, valid, 'after the refused reasons');
      assert.equal((await revokeOk(app, cert.serial, owner, 'cessationOfOperation')).revocationReason, 'cessationOfOperation');
    });

    it('another identity may not revoke (403 forbidden), with any reason, and nothing changes', async () => {
      const cert = await issueAs(app, 'rev', 'victim');
      const valid = await getRecord(app, cert.serial);
      for (const sub of [workload('rev', 'attacker'), workload('other', 'victim'), 'spiffe://example.org/admin/not', 'spiffe://example.org/stranger']) {
        for (const reason of ['keyCompromise', 'unspecified', 'caCompromise']) {
          await assertProblem(await revoke(app, cert.serial, sub, { reason }), 403, 'forbidden', `${sub} with ${reason}`);
        }
      }
      await assertUnchanged(app, valid, 'after the refused revocations');
    });

    it('without a token: 401 with WWW-Authenticate: Bearer; the public listener answers 404', async () => {
      const cert = await issueAs(app, 'rev', 'anon');
      const res = await revoke(app, cert.serial, undefined, { reason: 'keyCompromise' });
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer\b/);
      await assertProblem(res, 401, 'unauthorized', 'no token');
      const pub = await fetch(`${app.public}/v1/certificates/${cert.serial}/revoke`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(ADMIN)}` },
        body: JSON.stringify({ reason: 'keyCompromise' }),
      });
      await assertProblem(pub, 404, 'notFound', 'revocation on the public listener');
      assert.equal((await getRecord(app, cert.serial)).status, 'valid');
    });
  });

  describe('POST /v1/revocations (bulk)', () => {
    it('revokes every currently valid certificate of the identity, returns their serials, and leaves everything else alone', async () => {
      const target = workload('bulk', 'target');
      const valid = await Promise.all([1, 2, 3, 4].map(() => issueAs(app, 'bulk', 'target')));
      const earlier = await issueAs(app, 'bulk', 'target');
      const earlierRecord = await revokeOk(app, earlier.serial, target, 'keyCompromise');
      const expired = await issueAs(app, 'bulk', 'target', 2);
      const bystanders = await Promise.all([issueAs(app, 'bulk', 'bystander'), issueAs(app, 'bulk', 'bystander'), issueAs(app, 'bulk', 'target2')]);
      await waitUntilExpired(expired);
      assert.equal((await getRecord(app, expired.serial)).status, 'expired');

      const res = await bulkRevoke(app, ADMIN, { identity: target, reason: 'cessationOfOperation' });
      assert.equal(res.status, 200, await res.clone().text());
      const body = (await res.json()) as { revoked: string[] };
      assert.deepEqual(Object.keys(body), ['revoked']);
      assert.deepEqual([...body.revoked].sort(), valid.map((c) => c.serial).sort(), 'exactly the valid certificates');
      for (const c of valid) {
        const r = await getRecord(app, c.serial);
        assert.equal(r.status, 'revoked');
        assert.equal(r.revocationReason, 'cessationOfOperation');
        assert.match(r.revokedAt ?? '', RFC3339);
      }
      await assertUnchanged(app, earlierRecord, 'an earlier revocation');
      const exp = await getRecord(app, expired.serial);
      assert.equal(exp.status, 'expired', 'an expired certificate is not currently valid');
      assert.equal(exp.revokedAt, null);
      for (const c of bystanders) assert.equal((await getRecord(app, c.serial)).status, 'valid', `${c.identity} is left alone`);

      const again = await bulkRevoke(app, ADMIN, { identity: target, reason: 'cessationOfOperation' });
      assert.equal(again.status, 200);
      assert.deepEqual(await again.json(), { revoked: [] });
    });

    it('is for admins only: 403 for the identity itself and for others, 401 without a token; nothing is revoked', async () => {
      const target = workload('bulk', 'self');
      const cert = await issueAs(app, 'bulk', 'self');
      await assertProblem(await bulkRevoke(app, target, { identity: target, reason: 'superseded' }), 403, 'forbidden', 'the identity itself');
      await assertProblem(await bulkRevoke(app, workload('bulk', 'other'), { identity: target, reason: 'superseded' }), 403, 'forbidden', 'another identity');
      const anon = await bulkRevoke(app, undefined, { identity: target, reason: 'superseded' });
      assert.match(anon.headers.get('www-authenticate') ?? '', /^Bearer\b/);
      await assertProblem(anon, 401, 'unauthorized', 'no token');
      assert.equal((await getRecord(app, cert.serial)).status, 'valid');
    });

    it('refuses a reason outside the contract (400 badRevocationReason, a missing one included) and a missing identity (400), revoking nothing', async () => {
      const target = workload('bulk', 'badreason');
      const cert = await issueAs(app, 'bulk', 'badreason');
      const wrong: string[] = [];
      for (const reason of ['certificateHold', '', 'KEYCOMPROMISE', 5, null, undefined]) {
        const res = await bulkRevoke(app, ADMIN, { identity: target, reason });
        const body = (await res.json()) as { type?: string };
        if (res.status !== 400 || body.type !== 'urn:service-ca:error:badRevocationReason') wrong.push(`reason ${JSON.stringify(reason)}: ${res.status} ${body.type}`);
      }
      const noIdentity = await bulkRevoke(app, ADMIN, { reason: 'superseded' });
      assert.equal(noIdentity.status, 400, await noIdentity.clone().text());
      assert.equal((await getRecord(app, cert.serial)).status, 'valid');
      assert.deepEqual(wrong, [], 'every refused reason is 400 badRevocationReason');
    });

    it('an identity with no certificate gives an empty list', async () => {
      const res = await bulkRevoke(app, ADMIN, { identity: workload('bulk', 'nobody'), reason: 'superseded' });
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { revoked: [] });
    });
  });

  describe('GET /v1/certificates (admin listing)', () => {
    before(async () => {
      // More than the default page (100), fewer than the largest (1000).
      const existing = (await listOk(app, { limit: '1000' })).items.length;
      const missing = Math.max(0, 130 - existing);
      for (let i = 0; i < missing; i += 8) {
        await Promise.all(Array.from({ length: Math.min(8, missing - i) }, (_, j) => issueAs(app, 'seed', `w${i + j}`)));
      }
    });

    it('is for admins only: 403 forbidden for a workload, 401 without a token', async () => {
      await assertProblem(await list(app, {}, workload('rev', 'owner')), 403, 'forbidden', 'a workload lists');
      await assertProblem(await list(app, { identity: workload('rev', 'owner') }, workload('rev', 'owner')), 403, 'forbidden', 'a workload lists its own');
      const anon = await list(app, {}, null);
      assert.match(anon.headers.get('www-authenticate') ?? '', /^Bearer\b/);
      await assertProblem(anon, 401, 'unauthorized', 'no token');
      await assertProblem(await fetch(`${app.public}/v1/certificates`, { headers: { Authorization: `Bearer ${await app.token(ADMIN)}` } }), 404, 'notFound', 'the public listener');
    });

    it('limit defaults to 100 and may be 1 to 1000; 0, 1001 and non-numbers are 400 malformed', async () => {
      const all = await listOk(app, { limit: '1000' });
      assert.ok(all.items.length > 100 && all.items.length < 1000, `${all.items.length} certificates`);
      assert.equal(all.nextCursor, null, 'everything fits in one page of 1000');
      const first = await listOk(app, {});
      assert.equal(first.items.length, 100);
      assert.ok(first.nextCursor, 'more than 100 certificates: a cursor');
      assert.deepEqual(first.items.map((r) => r.serial), all.items.slice(0, 100).map((r) => r.serial));
      const one = await listOk(app, { limit: '1' });
      assert.equal(one.items.length, 1);
      assert.equal(one.items[0]!.serial, all.items[0]!.serial);
      for (const limit of ['0', '1001', '100000', '-1', 'abc', '1.5', '']) {
        await assertProblem(await list(app, { limit }), 400, 'malformed', `limit=${limit}`);
      }
    });

    it('a cursor that the service did not hand out is 400 malformed', async () => {
      const forged = [
        'garbage',
        '!!!',
        Buffer.from('not json').toString('base64url'),
        Buffer.from(JSON.stringify(['yesterday', 'ab'])).toString('base64url'),
        Buffer.from(JSON.stringify([new Date().toISOString(), 'not hex'])).toString('base64url'),
        Buffer.from(JSON.stringify({ a: 1 })).toString('base64url'),
      ];
      for (const cursor of forged) await assertProblem(await list(app, { cursor }), 400, 'malformed', `cursor ${cursor}`);
    });

    it('filters by identity, status, dns and expiresBefore (exclusive)', async () => {
      const alpha = workload('lst', 'alpha');
      const a1 = await issueAs(app, 'lst', 'alpha', '1h');
      const a2 = await issueAs(app, 'lst', 'alpha', '2h');
      const a3 = await issueAs(app, 'lst', 'alpha', '3h');
      await revokeOk(app, a3.serial, alpha, 'superseded');
      const a4 = await issueAs(app, 'lst', 'alpha', 2);
      const b1 = await issueFor(app, workload('lst', 'beta'), ['beta.lst.svc']);
      const b2 = await issueFor(app, workload('lst', 'beta'), ['beta.lst.svc', 'x.beta.lst.svc']);
      await waitUntilExpired(a4);
      const serials = async (q: Record<string, string>) => (await listAll(app, { ...q, limit: '3' })).items.map((r) => r.serial).sort();
      const sorted = (...c: Issued[]) => c.map((x) => x.serial).sort();

      assert.deepEqual(await serials({ identity: alpha }), sorted(a1, a2, a3, a4));
      assert.deepEqual(await serials({ identity: alpha, status: 'valid' }), sorted(a1, a2));
      assert.deepEqual(await serials({ identity: alpha, status: 'revoked' }), sorted(a3));
      assert.deepEqual(await serials({ identity: alpha, status: 'expired' }), sorted(a4));
      for (const status of ['valid', 'revoked', 'expired'] as const) {
        const items = (await listOk(app, { status, limit: '1000' })).items;
        assert.ok(items.length > 0);
        assert.ok(items.every((r) => r.status === status), `status=${status} lists only ${status} records`);
      }
      assert.deepEqual(await serials({ dns: 'x.beta.lst.svc' }), sorted(b2));
      assert.deepEqual(await serials({ dns: 'beta.lst.svc' }), sorted(b1, b2));
      assert.deepEqual(await serials({ dns: 'BETA.lst.svc' }), sorted(b1, b2), 'DNS names compare case-insensitively');
      assert.deepEqual(await serials({ dns: 'lst.svc' }), [], 'a DNS filter is an exact name, not a suffix');
      assert.deepEqual(await serials({ identity: alpha, dns: 'beta.lst.svc' }), []);

      // expiresBefore is exclusive: notAfter < value.
      assert.deepEqual(await serials({ identity: alpha, expiresBefore: a2.notAfter }), sorted(a1, a4));
      const justAfter = new Date(Date.parse(a2.notAfter) + 1000).toISOString();
      assert.deepEqual(await serials({ identity: alpha, expiresBefore: justAfter }), sorted(a1, a2, a4));
      assert.deepEqual(await serials({ identity: alpha, status: 'valid', expiresBefore: justAfter }), sorted(a1, a2));
      const withOffset = new Date(Date.parse(a2.notAfter) + 3600_000).toISOString().replace(/\.\d{3}Z$/, '+01:00');
      assert.deepEqual(await serials({ identity: alpha, expiresBefore: withOffset }), sorted(a1, a4), `the same instant as ${withOffset}`);

      for (const [q, what] of [
        [{ status: 'bogus' }, 'status=bogus'],
        [{ status: 'VALID' }, 'status=VALID'],
        [{ expiresBefore: 'tomorrow' }, 'expiresBefore=tomorrow'],
        [{ expiresBefore: '2026-13-45T00:00:00Z' }, 'an impossible date'],
      ] as [Record<string, string>, string][]) {
        await assertProblem(await list(app, q), 400, 'malformed', what);
      }
    });

    it('orders by notBefore then serial, newest first, across pages, and every page item is a full record', async () => {
      const whole = (await listOk(app, { limit: '1000' })).items;
      const byPages = await listAll(app, { limit: '7' });
      assert.ok(byPages.pages > 10);
      assert.deepEqual(byPages.items.map((r) => r.serial), whole.map((r) => r.serial), 'pages of 7 give the same sequence as one page');
      const expected = [...whole].sort(compareListingOrder);
      assert.deepEqual(whole.map((r) => r.serial), expected.map((r) => r.serial), 'newest notBefore first, then the larger serial');
      const sameSecond = whole.filter((r, i) => i > 0 && r.notBefore === whole[i - 1]!.notBefore).length;
      assert.ok(sameSecond > 0, 'some certificates share a notBefore, so the serial order is exercised');
      for (const r of whole) assert.deepEqual(Object.keys(r).sort(), RECORD_KEYS);
    });

    it('a walk to the end while other requests keep issuing sees every earlier certificate exactly once', async () => {
      const existing = (await listOk(app, { limit: '1000' })).items.map((r) => r.serial);
      assert.ok(existing.length > 100);
      let walking = true;
      const inserted: string[] = [];
      const inserters = [0, 1, 2].map(async (k) => {
        for (let i = 0; walking; i++) inserted.push((await issueAs(app, 'walk', `w${k}x${i % 5}`)).serial);
      });
      const seen: string[] = [];
      const walkedItems: RecordJson[] = [];
      try {
        let cursor: string | null = null;
        let pages = 0;
        do {
          const page: { items: RecordJson[]; nextCursor: string | null } = await listOk(app, cursor ? { limit: '6', cursor } : { limit: '6' });
          seen.push(...page.items.map((r) => r.serial));
          walkedItems.push(...page.items);
          cursor = page.nextCursor;
          pages++;
          // Let the inserters land certificates between pages, in the same and in later seconds.
          await sleep(pages % 10 === 0 ? 600 : 20);
        } while (cursor);
      } finally {
        walking = false;
        await Promise.all(inserters);
      }
      const duringWalk = inserted.length;
      assert.ok(duringWalk >= 10, `the inserters issued ${duringWalk} certificates during the walk`);
      const counts = new Map<string, number>();
      for (const s of seen) counts.set(s, (counts.get(s) ?? 0) + 1);
      const duplicates = [...counts].filter(([, n]) => n > 1).map(([s]) => s);
      assert.deepEqual(duplicates, [], 'no certificate appears twice');
      const missing = existing.filter((s) => !counts.has(s));
      assert.deepEqual(missing, [], 'no certificate that existed before the walk is skipped');
      for (let i = 1; i < walkedItems.length; i++) {
        assert.ok(compareListingOrder(walkedItems[i - 1]!, walkedItems[i]!) < 0, `order holds across pages at item ${i}`);
      }
    });
  });
});
