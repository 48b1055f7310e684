/**
 * Fuzzing the reading and revoking endpoints of one real app: the admin listing's filters and
 * cursor (and walking its pages), serials in every spelling and none (renewal-info on both
 * listeners, GET /v1/certificates/{serial}), the CRL's conditional headers, arbitrary methods
 * and paths, and revocation (one serial, or every certificate of an identity) against a model
 * of who owns and who revoked what. Every answer keeps the contract (support.ts assertContract),
 * each property also states which answers an input may get, and no request here writes a
 * certificate row. Read-only properties run concurrently; revocations run after them.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { CertificateRecord } from '../../src/client/index.js';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { peculiarEntries } from '../setup/crl-check.js';
import { countCertificateRows } from '../setup/rejections.js';
import { headerSafe, REASON_NAMES } from './oracles.js';
import { anyJson, assertContract, cachedTokens, assertOneOf, checkAsync, explainAnswer, inPool, LogTail, quoteLogsFrom, send, urlText, type Answer } from './support.js';

const WEB = workload('shop', 'web');
const API = workload('shop', 'api');
const DB = workload('pay', 'db');
const VICTIM = workload('fuzz', 'victim');
const BULK = workload('fuzz', 'bulk');
const NOBODY = 'spiffe://elsewhere.test/no/policy';
const DNS_OF: Record<string, string> = { [WEB]: 'web.shop.svc', [API]: 'api.shop.svc', [DB]: 'db.pay.svc', [VICTIM]: 'victim.fuzz.svc', [BULK]: 'bulk.fuzz.svc' };

/** A certificate record as the API answers it (docs/api.md), as the client library types it. */
type RecordJson = CertificateRecord;

/** The spellings docs/api.md allows for a serial: upper case, colons, and the DER sign octet. */
const spelling = (canonical: string) =>
  fc.record({ colons: fc.boolean(), sign: fc.boolean(), flips: fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }) }).map(({ colons, sign, flips }) => {
    const octets = canonical.match(/../g)!;
    if (sign && parseInt(octets[0]!, 16) >= 0x80) octets.unshift('00');
    return [...octets.join(colons ? ':' : '')].map((c, i) => (flips[i % flips.length] ? c.toUpperCase() : c)).join('');
  });

/** An independent reading of serial text: canonical hex, or undefined when it is not a serial. */
function canonicalSerial(text: string): string | undefined {
  const s = text.replace(/:/g, '').toLowerCase();
  if (!/^([0-9a-f]{2}){1,21}$/.test(s)) return undefined;
  return s.length > 2 && s.startsWith('00') && parseInt(s[2]!, 16) >= 8 ? s.slice(2) : s;
}

function assertRecordShape(a: Answer, r: RecordJson): void {
  assert.match(r.serial, /^([0-9a-f]{2})+$/, explainAnswer(a, 'a canonical serial'));
  assert.ok(['valid', 'revoked', 'expired'].includes(r.status), explainAnswer(a, 'a status'));
  assert.ok(Array.isArray(r.sans.dns) && Array.isArray(r.sans.ip) && Array.isArray(r.sans.uri) && Array.isArray(r.sans.email), explainAnswer(a, 'sans by kind'));
  assert.equal(r.revokedAt === null, r.status !== 'revoked', explainAnswer(a, 'revokedAt is null exactly while not revoked'));
  assert.equal(r.revocationReason === null, r.status !== 'revoked', explainAnswer(a, 'revocationReason is null exactly while not revoked'));
  assert.match(r.certificate, /^-----BEGIN CERTIFICATE-----/, explainAnswer(a, 'the PEM certificate'));
  assert.ok(!Number.isNaN(Date.parse(r.notBefore)) && !Number.isNaN(Date.parse(r.notAfter)), explainAnswer(a, 'RFC 3339 times'));
}

/** (notBefore, serial) of a item or cursor, newest first: a before b. */
const newerThan = (a: { notBefore: string; serial: string }, b: { notBefore: string; serial: string }) => {
  const ta = Date.parse(a.notBefore);
  const tb = Date.parse(b.notBefore);
  return ta > tb || (ta === tb && a.serial > b.serial);
};

describe('reading and revoking endpoints under fuzzing', () => {
  let database: TestDatabase;
  let app: TestApp;
  const logs = new LogTail();
  let rows = 0;
  /** Every certificate made in setup: serial → owner. */
  const owner = new Map<string, string>();
  const revoked = new Set<string>();
  let webSerial: string;
  let revokedWebSerial: string;
  const victims: string[] = [];
  const bulkSerials: string[] = [];
  const cursors: string[] = [];
  let renewalInfoOf: Map<string, string>;

  const tokenFor = cachedTokens((sub) => app.issuer.mint({ sub }, { ttl: 3000 }));
  const auth = async (sub: string | undefined): Promise<Record<string, string>> => (sub ? { Authorization: `Bearer ${await tokenFor(sub)}` } : {});

  before(async () => {
    database = await createTestDatabase();
    app = await startTestApp({ database, logs: logs.stream });
    quoteLogsFrom(logs);
    const plan = [
      ...Array.from({ length: 6 }, (_, i) => [WEB, i % 2 ? '1h' : undefined] as const),
      ...Array.from({ length: 6 }, (_, i) => [API, i % 3 ? '2h' : undefined] as const),
      ...Array.from({ length: 6 }, () => [DB, '30m'] as const),
      ...Array.from({ length: 20 }, () => [VICTIM, undefined] as const),
      ...Array.from({ length: 4 }, () => [BULK, undefined] as const),
    ];
    await inPool(plan, 4, async ([identity, ttl]) => {
      const { csrPem } = await createKeyAndCsr('p256', { dns: [DNS_OF[identity]!] });
      const res = await send(`${app.api}/v1/certificates`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...(await auth(identity)) },
        body: JSON.stringify(ttl ? { csr: csrPem, ttl } : { csr: csrPem }),
      });
      assert.equal(res.status, 201, res.text);
      const serial = (JSON.parse(res.text) as { serial: string }).serial;
      owner.set(serial, identity);
      if (identity === VICTIM) victims.push(serial);
      if (identity === BULK) bulkSerials.push(serial);
    });
    rows = plan.length;
    const webs = [...owner].filter(([, id]) => id === WEB).map(([s]) => s);
    [webSerial, revokedWebSerial] = webs as [string, string];
    for (const s of [revokedWebSerial, [...owner].find(([, id]) => id === API)![0]]) {
      const r = await send(`${app.api}/v1/certificates/${s}/revoke`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(await auth(ADMIN)) }, body: JSON.stringify({ reason: 'keyCompromise' }) });
      assert.equal(r.status, 200, r.text);
      revoked.add(s);
    }
    for (const limit of [1, 2, 3, 5]) {
      let cursor: string | null = null;
      do {
        const r = await send(`${app.api}/v1/certificates?limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, { headers: await auth(ADMIN) });
        assert.equal(r.status, 200, r.text);
        cursor = (JSON.parse(r.text) as { nextCursor: string | null }).nextCursor;
        if (cursor && cursors.length < 60) cursors.push(cursor);
      } while (cursor && cursors.length < 60);
    }
    renewalInfoOf = new Map();
    for (const s of owner.keys()) {
      if (revoked.has(s)) continue;
      const r = await send(`${app.public}/v1/certificates/${s}/renewal-info`);
      assert.equal(r.status, 200, r.text);
      renewalInfoOf.set(s, r.text);
    }
    // Wait for the CRL that lists the setup's revocations, so that the CRL stays put while read.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const r = await send(`${app.public}/v1/crl`);
      if (r.status === 200 && [...revoked].every((s) => peculiarEntries(r.body).has(s))) break;
      assert.ok(Date.now() < deadline, 'a CRL with the setup revocations within 20 s');
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });

  after(async () => {
    if (!app) return;
    await app.stop();
    assert.equal(await countCertificateRows(database), rows, 'no request here writes a certificate row');
    await database.drop();
  });

  describe('reads', { concurrency: 5 }, () => {
    const knownSerial = () => fc.constantFrom(...owner.keys());

    it('GET /v1/certificates with fuzzed filters, limits and cursors: 200 with a page that keeps every filter, or 400 malformed', async () => {
      type Param = { key: string; raw: string; valid: boolean; value?: string };
      const enc = encodeURIComponent;
      const known = (key: string, values: string[]) => fc.constantFrom(...values).map((v): Param => ({ key, raw: enc(v), valid: true, value: v }));
      const odd = (key: string) => urlText(60).map((raw): Param => ({ key, raw, valid: false }));
      const param = fc.oneof(
        known('identity', [WEB, API, DB, VICTIM, NOBODY]),
        odd('identity'),
        fc.string({ unit: 'binary', maxLength: 30 }).map((v): Param => ({ key: 'identity', raw: enc(v.replace(/[\ud800-\udfff]/g, '')), valid: false })),
        known('status', ['valid', 'revoked', 'expired']),
        fc.constantFrom('VALID', '', 'valid ', 'all', 'revoked,valid').map((v): Param => ({ key: 'status', raw: enc(v), valid: false })),
        known('dns', ['web.shop.svc', 'API.shop.svc', 'db.pay.svc', 'nothing.svc']),
        odd('dns'),
        fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d): Param => ({ key: 'expiresBefore', raw: enc(d.toISOString()), valid: true, value: d.toISOString() })),
        fc.constantFrom('2030-01-01T00:00:00+02:00', '2030-01-01T00:00:00-11:30', '2030-01-01', '2030-01-01t00:00:00z', 'now', '0000-01-01T00:00:00Z', '0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z', '+275760-09-13T00:00:00Z', '2030-13-45T99:99:99Z', '2030-02-30T00:00:00Z')
          .map((v): Param => ({ key: 'expiresBefore', raw: enc(v), valid: false })),
        fc.integer({ min: 1, max: 1000 }).map((n): Param => ({ key: 'limit', raw: String(n), valid: true, value: String(n) })),
        fc.oneof(fc.integer({ min: -5, max: 0 }).map(String), fc.integer({ min: 1001, max: 99_999_999 }).map(String), fc.constantFrom('0001', '1e3', ' 5', '', '10.0', '0x10', '٣', 'NaN')).map((v): Param => ({ key: 'limit', raw: enc(v), valid: false })),
        fc.constantFrom(...cursors).map((c): Param => ({ key: 'cursor', raw: c, valid: true, value: c })),
        fc
          .tuple(fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.string({ maxLength: 12 }), fc.integer()), fc.oneof(fc.stringMatching(/^[0-9a-f]{2,40}$/), fc.string({ maxLength: 8 })))
          .map(([t, s]): Param => ({ key: 'cursor', raw: Buffer.from(JSON.stringify([t, s])).toString('base64url'), valid: false })),
        fc.base64String({ maxLength: 60 }).map((v): Param => ({ key: 'cursor', raw: enc(v), valid: false })),
        odd('cursor'),
        fc.tuple(fc.constantFrom('Limit', 'STATUS', 'foo', 'identity[]', '', 'cursor ', 'a=b'), urlText(10)).map(([k, raw]): Param => ({ key: `x-${k}`, raw, valid: true })),
      );
      await checkAsync(
        fc.asyncProperty(fc.array(param, { maxLength: 5 }), fc.constantFrom(ADMIN, ADMIN, ADMIN, WEB), async (params, actor) => {
          const query = params.map((p) => `${p.key.startsWith('x-') ? enc(p.key.slice(2)) : p.key}=${p.raw}`).join('&');
          const a = await send(`${app.api}/v1/certificates?${query}`, { headers: await auth(actor) });
          assertOneOf(a, actor === ADMIN ? [200, 'malformed'] : ['forbidden', 'malformed']);
          const knownKeys = params.filter((p) => !p.key.startsWith('x-')).map((p) => p.key);
          const unique = new Set(knownKeys).size === knownKeys.length;
          if (actor === ADMIN && unique && params.every((p) => p.valid)) assert.equal(a.status, 200, explainAnswer(a, 'well-formed filters give a page'));
          if (a.status !== 200) return;
          const page = JSON.parse(a.text) as { items: RecordJson[]; nextCursor: string | null };
          assert.ok(Array.isArray(page.items) && (page.nextCursor === null || typeof page.nextCursor === 'string'), explainAnswer(a, 'items and nextCursor'));
          const get = (key: string) => params.find((p) => p.key === key && p.value !== undefined)?.value;
          const limitParam = params.find((p) => p.key === 'limit');
          const limit = limitParam ? (limitParam.value !== undefined ? Number(limitParam.value) : undefined) : 100;
          if (limit !== undefined) {
            assert.ok(page.items.length <= limit, explainAnswer(a, `at most ${limit} items`));
            if (page.items.length < limit) assert.equal(page.nextCursor, null, explainAnswer(a, 'a short page is the last'));
          }
          page.items.forEach((item, i) => {
            assertRecordShape(a, item);
            if (i > 0) assert.ok(newerThan(page.items[i - 1]!, item), explainAnswer(a, 'ordered by notBefore then serial, newest first'));
            if (!unique) return;
            if (get('identity') !== undefined) assert.equal(item.identity, get('identity'), explainAnswer(a, 'the identity filter'));
            if (get('status') !== undefined) assert.equal(item.status, get('status'), explainAnswer(a, 'the status filter'));
            if (get('dns') !== undefined) assert.ok(item.sans.dns.includes(get('dns')!.toLowerCase()), explainAnswer(a, 'the dns filter'));
            if (get('expiresBefore') !== undefined) assert.ok(Date.parse(item.notAfter) < Date.parse(get('expiresBefore')!), explainAnswer(a, 'expiresBefore is exclusive'));
            const cursor = get('cursor');
            if (cursor !== undefined) {
              const [t, s] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
              assert.ok(newerThan({ notBefore: t, serial: s }, item), explainAnswer(a, 'a page after the cursor starts after it'));
            }
          });
        }),
        900,
      );
    });

    it('walking the pages of any filter with any limit yields the one-page listing, each certificate once', async () => {
      const filter = fc.record(
        { identity: fc.constantFrom(WEB, API, DB, VICTIM), status: fc.constantFrom('valid', 'revoked'), dns: fc.constantFrom('web.shop.svc', 'victim.fuzz.svc') },
        { requiredKeys: [] },
      );
      await checkAsync(
        fc.asyncProperty(filter, fc.integer({ min: 1, max: 9 }), async (f, limit) => {
          const base = Object.entries(f).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&');
          const whole = await send(`${app.api}/v1/certificates?${base}&limit=1000`, { headers: await auth(ADMIN) });
          assertOneOf(whole, [200]);
          const expected = (JSON.parse(whole.text) as { items: RecordJson[] }).items.map((i) => i.serial);
          const walked: string[] = [];
          let cursor: string | null = null;
          for (let pages = 0; ; pages++) {
            assert.ok(pages <= expected.length + 1, 'the walk ends');
            const a = await send(`${app.api}/v1/certificates?${base}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`, { headers: await auth(ADMIN) });
            assertOneOf(a, [200]);
            const page = JSON.parse(a.text) as { items: RecordJson[]; nextCursor: string | null };
            walked.push(...page.items.map((i) => i.serial));
            cursor = page.nextCursor;
            if (!cursor) break;
          }
          assert.deepEqual(walked, expected, `pages of ${limit} with ${base || 'no filter'} give the whole listing`);
        }),
        80,
      );
    });

    it('GET /v1/certificates/{serial}/renewal-info with serials in any spelling and none, on both listeners', async () => {
      const serial = fc.oneof(
        { arbitrary: knownSerial().chain((s) => spelling(s).map((text) => ({ text, known: s as string | undefined }))), weight: 4 },
        { arbitrary: fc.stringMatching(/^([0-9a-f]{2}){1,21}$/).map((text) => ({ text, known: undefined as string | undefined })), weight: 2 },
        { arbitrary: fc.oneof(urlText(60), fc.stringMatching(/^[0-9a-fA-F:]{0,50}$/), fc.constantFrom('00', '0', '', '%00', '..', '%2e%2e', 'x'.repeat(2000))).map((text) => ({ text, known: undefined as string | undefined })), weight: 2 },
      );
      await checkAsync(
        fc.asyncProperty(serial, fc.constantFrom('api', 'public'), async ({ text, known }, listener) => {
          fc.pre(text !== '' && !/^(\.|%2e){1,2}$/i.test(text));
          const a = await send(`${listener === 'api' ? app.api : app.public}/v1/certificates/${text}/renewal-info`);
          const canonical = canonicalSerial(decodeURIComponentSafe(text));
          const isKnown = known !== undefined || (canonical !== undefined && owner.has(canonical));
          assertOneOf(a, isKnown ? [200] : canonical !== undefined ? ['notFound'] : ['malformed', 'notFound']);
          if (a.status !== 200) return;
          assert.match(a.headers.get('retry-after') ?? '', /^\d+$/, explainAnswer(a, 'Retry-After'));
          const s = known ?? canonical!;
          if (revoked.has(s)) {
            const w = (JSON.parse(a.text) as { suggestedWindow: { start: string; end: string } }).suggestedWindow;
            assert.ok(w.start === w.end && Date.parse(w.end) <= Date.now() + 1000, explainAnswer(a, 'a revoked certificate\'s window is open now'));
          } else {
            assert.equal(a.text, renewalInfoOf.get(s), explainAnswer(a, 'every spelling gives the same window'));
          }
        }),
        900,
      );
    });

    it('GET /v1/certificates/{serial} with serials in any spelling, as owner, admin, another identity or none', async () => {
      const serial = fc.oneof(
        { arbitrary: knownSerial().chain((s) => spelling(s)), weight: 4 },
        { arbitrary: fc.stringMatching(/^([0-9a-f]{2}){1,21}$/), weight: 1 },
        { arbitrary: fc.oneof(urlText(40), fc.stringMatching(/^[0-9a-fA-F:]{1,50}$/)), weight: 2 },
      );
      await checkAsync(
        fc.asyncProperty(serial, fc.constantFrom(WEB, ADMIN, API, NOBODY, undefined), async (text, actor) => {
          fc.pre(text !== '' && !/^(\.|%2e){1,2}$/i.test(text));
          const a = await send(`${app.api}/v1/certificates/${text}`, { headers: await auth(actor) });
          const canonical = canonicalSerial(decodeURIComponentSafe(text));
          const identity = canonical === undefined ? undefined : owner.get(canonical);
          const expected =
            actor === undefined ? ['unauthorized']
            : canonical === undefined ? ['malformed', 'notFound']
            : identity === undefined ? ['notFound']
            : actor === ADMIN || actor === identity ? [200]
            : ['forbidden'];
          assertOneOf(a, expected, { bearerSent: actor !== undefined });
          if (a.status === 200) {
            const r = JSON.parse(a.text) as RecordJson;
            assertRecordShape(a, r);
            assert.equal(r.serial, canonical);
            assert.equal(r.identity, identity);
            assert.equal(r.status, revoked.has(canonical!) ? 'revoked' : 'valid');
          }
        }),
        700,
      );
    });

    it('GET /v1/crl and /v1/crl.pem with fuzzed If-None-Match and If-Modified-Since: 304 exactly for a matching validator', async () => {
      // Header values carry no control characters but HTAB (RFC 9110 §5.5); fetch refuses them.
      const headerText = (maxLength: number) => fc.string({ unit: 'binary-ascii', maxLength }).map(headerSafe);
      const tag = fc.oneof(fc.constantFrom('current', 'weak', '*', 'other', 'unquoted'), headerText(20));
      const inm = fc.option(fc.array(tag, { minLength: 1, maxLength: 3 }), { nil: undefined });
      const ims = fc.option(
        fc.oneof(
          fc.constantFrom('equal', 'later', 'earlier', 'garbage', 'iso-later', 'epoch'),
          fc.date({ noInvalidDate: true }).map((d) => d.toUTCString()),
          headerText(30),
        ),
        { nil: undefined },
      );
      await checkAsync(
        fc.asyncProperty(fc.constantFrom('/v1/crl', '/v1/crl.pem'), fc.constantFrom('api', 'public'), inm, ims, async (path, listener, tags, since) => {
          const base = listener === 'api' ? app.api : app.public;
          const plain = await send(`${base}${path}`);
          assertOneOf(plain, [200]);
          const etag = plain.headers.get('etag')!;
          const lastModified = plain.headers.get('last-modified')!;
          assert.ok(etag && lastModified, explainAnswer(plain, 'ETag and Last-Modified'));
          assert.match(plain.headers.get('cache-control') ?? '', /max-age=\d+/, explainAnswer(plain, 'Cache-Control: max-age'));
          const headers: Record<string, string> = {};
          const sent: string[] = [];
          if (tags) {
            for (const t of tags) sent.push(t === 'current' ? etag : t === 'weak' ? `W/${etag}` : t === 'other' ? '"crl-0"' : t === 'unquoted' ? etag.replace(/"/g, '') : t);
            headers['If-None-Match'] = sent.join(', ');
          }
          const lm = Date.parse(lastModified);
          if (since !== undefined) {
            headers['If-Modified-Since'] =
              since === 'equal' ? lastModified
              : since === 'later' ? new Date(lm + 3_600_000).toUTCString()
              : since === 'earlier' ? new Date(lm - 3_600_000).toUTCString()
              : since === 'iso-later' ? new Date(lm + 3_600_000).toISOString()
              : since === 'epoch' ? new Date(0).toUTCString()
              : since === 'garbage' ? 'not a date'
              : since;
          }
          const a = await send(`${base}${path}`, { headers });
          assertContract(a, { allowNotModified: true });
          fc.pre(a.headers.get('etag') === etag); // the CRL did not change in between
          const values = (headers['If-None-Match'] ?? '').split(',').map((t) => t.trim());
          if (tags) {
            const matches = values.some((t) => t === etag || t === `W/${etag}` || t === '*');
            assert.equal(a.status, matches ? 304 : 200, explainAnswer(a, `If-None-Match ${matches ? 'matches' : 'does not match'} ${etag} (it wins over If-Modified-Since)`));
          } else if (since === 'earlier' || since === 'epoch' || since === 'garbage' || since === undefined) {
            assert.equal(a.status, 200, explainAnswer(a, 'modified since then, or no usable validator'));
          } else {
            assert.ok(a.status === 200 || a.status === 304, explainAnswer(a, '200 or 304'));
          }
          if (a.status === 200) assert.ok(a.body.length > 0, explainAnswer(a, 'the CRL'));
        }),
        400,
      );
    });

    it('arbitrary methods, paths, queries and bodies on both listeners get an answer that keeps the contract', async () => {
      const segment = fc.oneof(
        { arbitrary: fc.constantFrom('v1', 'certificates', 'crl', 'crl.pem', 'ca', 'root.pem', 'chain.pem', 'intermediate.der', 'renewal-info', 'revoke', 'revocations', 'renew', 'healthz', 'readyz', 'metrics', 'openapi.json', 'docs'), weight: 4 },
        { arbitrary: knownSerial(), weight: 1 },
        { arbitrary: urlText(12), weight: 2 },
      );
      const request = fc.record({
        method: fc.constantFrom('GET', 'GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
        path: fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => `/${s.join('/')}`),
        trailingSlash: fc.boolean(),
        query: fc.option(fc.array(fc.tuple(urlText(8), urlText(12)), { maxLength: 3 }).map((q) => q.map(([k, v]) => `${k}=${v}`).join('&')), { nil: undefined }),
        listener: fc.constantFrom('api', 'public'),
        actor: fc.constantFrom(ADMIN, WEB, NOBODY, undefined),
        body: fc.option(anyJson, { nil: undefined }),
      });
      await checkAsync(
        fc.asyncProperty(request, async (r) => {
          const url = `${r.listener === 'api' ? app.api : app.public}${r.path}${r.trailingSlash ? '/' : ''}${r.query !== undefined ? `?${r.query}` : ''}`;
          // A revocation needs a real reason; random bodies never carry one, so nothing is revoked here.
          const body = r.method === 'GET' || r.body === undefined ? undefined : JSON.stringify(r.body);
          const headers = { ...(await auth(r.actor)), ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) };
          fc.pre(!(typeof r.body === 'object' && r.body !== null && 'reason' in r.body));
          const a = await send(url, { method: r.method, headers, body });
          assertContract(a, { bearerSent: r.actor !== undefined });
        }),
        800,
      );
    });
  });

  describe('revocations', { concurrency: 2 }, () => {
    it('POST /v1/certificates/{serial}/revoke against a model of owners and revocations', async () => {
      const reasons = REASON_NAMES as readonly string[];
      const serial = fc.oneof(
        { arbitrary: fc.constantFrom(...victims).chain((s) => spelling(s)), weight: 6 },
        { arbitrary: fc.constantFrom(webSerial, revokedWebSerial), weight: 1 },
        { arbitrary: fc.stringMatching(/^([0-9a-f]{2}){1,20}$/), weight: 1 },
        { arbitrary: fc.oneof(urlText(30), fc.constantFrom('zz', '0', 'x'.repeat(50))), weight: 1 },
      );
      const body = fc.oneof(
        { arbitrary: fc.constantFrom(...reasons).map((reason) => ({ json: JSON.stringify({ reason }) as string, reason: reason as unknown, shaped: true })), weight: 6 },
        { arbitrary: fc.oneof(anyJson, fc.constantFrom('certificateHold', 'KeyCompromise', '__proto__', '')).map((reason) => ({ json: JSON.stringify({ reason }), reason, shaped: true })), weight: 2 },
        { arbitrary: fc.constant({ json: '{}', reason: undefined as unknown, shaped: true }), weight: 1 },
        { arbitrary: fc.oneof(anyJson.filter((v) => v === null || typeof v !== 'object' || Array.isArray(v)).map((v) => JSON.stringify(v)), fc.constantFrom('{"reason":', 'reason=keyCompromise', '')).map((json) => ({ json, reason: undefined as unknown, shaped: false })), weight: 1 },
      );
      await checkAsync(
        fc.asyncProperty(serial, body, fc.constantFrom(VICTIM, VICTIM, VICTIM, ADMIN, API, NOBODY), async (text, b, actor) => {
          const a = await send(`${app.api}/v1/certificates/${text}/revoke`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(await auth(actor)) }, body: b.json });
          const canonical = canonicalSerial(decodeURIComponentSafe(text));
          const identity = canonical === undefined ? undefined : owner.get(canonical);
          const reasonOk = typeof b.reason === 'string' && reasons.includes(b.reason);
          const problems: string[] = [];
          if (!b.shaped) problems.push('malformed');
          if (canonical === undefined) problems.push('malformed', 'notFound');
          else if (identity === undefined) problems.push('notFound');
          if (b.shaped && !reasonOk) problems.push('badRevocationReason');
          if (identity !== undefined && actor !== ADMIN && (actor !== identity || b.reason === 'caCompromise' || b.reason === 'privilegeWithdrawn')) problems.push('forbidden');
          if (identity !== undefined && revoked.has(canonical!)) problems.push('alreadyRevoked');
          assertOneOf(a, problems.length ? problems : [200], { bearerSent: true });
          if (a.status === 200) {
            const r = JSON.parse(a.text) as RecordJson;
            assertRecordShape(a, r);
            assert.equal(r.status, 'revoked');
            assert.equal(r.revocationReason, b.reason);
            revoked.add(canonical!);
          }
        }),
        400,
      );
    });

    it('POST /v1/revocations with fuzzed bodies: admins revoke exactly the identity\'s valid certificates', async () => {
      const identity = fc.oneof(
        { arbitrary: fc.constant(BULK), weight: 1 },
        { arbitrary: fc.string({ unit: 'binary', maxLength: 40 }), weight: 2 },
        { arbitrary: fc.string({ unit: 'binary-ascii', maxLength: 20 }), weight: 2 },
        { arbitrary: fc.constantFrom('', 'x'.repeat(1025), NOBODY), weight: 1 },
      );
      const body = fc.oneof(
        { arbitrary: fc.record({ identity, reason: fc.constantFrom<unknown>(...REASON_NAMES) }), weight: 6 },
        { arbitrary: fc.record({ identity: fc.oneof(identity, anyJson), reason: anyJson }, { requiredKeys: [] }), weight: 2 },
        { arbitrary: anyJson, weight: 1 },
      );
      await checkAsync(
        fc.asyncProperty(body, fc.constantFrom(ADMIN, ADMIN, ADMIN, WEB), async (b, actor) => {
          const a = await send(`${app.api}/v1/revocations`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(await auth(actor)) }, body: JSON.stringify(b) });
          const obj = typeof b === 'object' && b !== null && !Array.isArray(b) ? (b as Record<string, unknown>) : undefined;
          const id = obj?.identity;
          const problems: string[] = [];
          if (!obj || typeof id !== 'string' || id.length === 0 || id.length > 1024) problems.push('malformed');
          if (obj && !(typeof obj.reason === 'string' && (REASON_NAMES as readonly string[]).includes(obj.reason))) problems.push('badRevocationReason');
          if (actor !== ADMIN) problems.push('forbidden');
          // No identity holds a NUL (identity templates refuse control characters): an empty
          // list or a 400 are both fair answers.
          const allowed = problems.length ? problems : typeof id === 'string' && id.includes('\u0000') ? [200, 'malformed'] : [200];
          assertOneOf(a, allowed, { bearerSent: true });
          if (a.status !== 200) return;
          const got = (JSON.parse(a.text) as { revoked: string[] }).revoked;
          const expected = [...owner].filter(([s, o]) => o === id && !revoked.has(s)).map(([s]) => s);
          assert.deepEqual([...got].sort(), expected.sort(), explainAnswer(a, 'exactly the identity\'s valid certificates'));
          for (const s of got) revoked.add(s);
        }),
        400,
      );
    });
  });

  describe('defects found by the properties above (they fail until src/ is fixed)', () => {
    it('DEFECT-3: a NUL character in a text filter or bulk-revocation identity gets 200 or 400, not 500', async () => {
      // Found by the listing and bulk-revocation properties. Postgres refuses 0x00 in text
      // (SQLSTATE 22021); the store passes the value through (src/store/listing.ts,
      // src/store/revocations.ts) and databaseError (src/store/database.ts) leaves the error to
      // the 500 path. Nothing validates these strings before the query (src/policy/listing.ts,
      // src/http/routes/revocations.ts).
      for (const query of ['identity=%00', 'dns=a%00b']) {
        assertOneOf(await send(`${app.api}/v1/certificates?${query}`, { headers: await auth(ADMIN) }), [200, 'malformed']);
      }
      const a = await send(`${app.api}/v1/revocations`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(await auth(ADMIN)) }, body: JSON.stringify({ identity: 'a\u0000b', reason: 'superseded' }) });
      assertOneOf(a, [200, 'malformed']);
    });

    it('DEFECT-4: an expiresBefore or cursor time outside Postgres\'s range gets 200 or 400, not 500', async () => {
      // Found by the listing property. Year 0000 is valid RFC 3339 and a valid JS Date, and the
      // cursor accepts any JS date (src/policy/listing.ts decodeCursor, years -271821 to
      // 275760); Postgres timestamptz refuses them (SQLSTATE 22008) and the error becomes a 500.
      const cursor = (t: string) => Buffer.from(JSON.stringify([t, 'aa'])).toString('base64url');
      for (const query of ['expiresBefore=0000-01-01T00:00:00Z', `cursor=${cursor('+275760-09-13T00:00:00.000Z')}`, `cursor=${cursor('-271821-04-20T00:00:00.000Z')}`]) {
        assertOneOf(await send(`${app.api}/v1/certificates?${query}`, { headers: await auth(ADMIN) }), [200, 'malformed']);
      }
    });
  });
});

/** What a server sees of a percent-encoded path segment, where that is defined. */
function decodeURIComponentSafe(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
