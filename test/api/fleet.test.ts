/**
 * The fleet view (docs/api.md "Fleet"): a fleet seeded through the real API at chosen times of the
 * app's injected clock (issuances of chosen lifetimes, a renewal by the holder, revocations, a
 * refusal, renewal-info polls), then judged at one instant: each identity's state, severity,
 * certificate, last poll and last refusal; the summary; filters; cursor pagination pinned to its
 * first page's instant; the window to the millisecond against renewal-info; polls written in
 * batches; the gauges; admins only; bad filters answered with 400.
 *
 * The app is started here with `start` itself (src/main.ts) rather than startTestApp, which has no
 * clock option: the same app, on ephemeral ports and a real database, with a fixedClock. Tokens
 * are minted for the clock's time.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createKeyAndCsr } from '../../src/cli/keys.js';
import { fixedClock } from '../../src/clock.js';
import { ConfigError, parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/logging.js';
import { start, type Running } from '../../src/main.js';
import { createPollRecorder } from '../../src/policy/renewal-info.js';
import { renewalWindow } from '../../src/policy/renewal.js';
import type { FleetItem, FleetSummary } from '../../src/client/index.js';
import type { Poll } from '../../src/store/store.js';
import { ADMIN, defaultPolicies, workload } from '../setup/app.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { holderJwt } from '../setup/holder.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { assertProblem } from '../setup/rejections.js';
import { createTestIssuer, issuerConfig, type TestIssuer } from '../setup/tokens.js';

const H = 3_600_000;
const T0 = new Date(Math.floor(Date.now() / 1000) * 1000);
/** The instant the fleet is judged at. */
const Q = new Date(T0.getTime() + 10 * H);

const id = (sa: string) => workload('fleet', sa);
const A = id('healthy');
const B = id('renewed');
const C = id('due');
const D = id('missed');
const E = id('late');
const F = id('last');
const G = id('gone');
const HR = id('revoked');
const I = id('reissued');
const J = id('shortlived');
const K = workload('other', 'web');
const FLEET_PREFIX = 'spiffe://example.org/ns/fleet/';
/** monitor.*'s defaults, no issuer retiring. */
const DEFAULT_RULES = { warningAt: 5 / 6, criticalAt: 0.95, criticalRemainingMs: 900_000, renewBy: new Map<string, Date>() };

interface Issued {
  serial: string;
  certificate: string;
  keyPem: string;
  notBefore: string;
  notAfter: string;
  renewalInfo: { start: string; end: string };
}

interface Page {
  items: FleetItem[];
  nextCursor: string | null;
}

describe('fleet view', () => {
  const clock = fixedClock(T0);
  let pki: TestPki;
  let issuer: TestIssuer;
  let database: TestDatabase;
  let running: Running;
  let launch: () => Promise<void>;
  let api: string;
  let pub: string;
  const issued = new Map<string, Issued>();

  const seconds = () => Math.floor(clock.now().getTime() / 1000);
  const token = (sub: string) => issuer.mint({ sub }, { iat: seconds(), exp: seconds() + 300 });
  const auth = async (sub: string) => ({ Authorization: `Bearer ${await token(sub)}` });

  async function issue(identity: string, ttl: string | number, key = identity): Promise<Issued> {
    const dns = [`${identity.split('/sa/')[1]}.${identity.split('/ns/')[1]!.split('/')[0]}.svc`];
    const { keyPem, csrPem } = await createKeyAndCsr('p256', { dns });
    const res = await fetch(`${api}/v1/certificates`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(await auth(identity)) }, body: JSON.stringify({ csr: csrPem, ttl }) });
    assert.equal(res.status, 201, await res.clone().text());
    const answer = { ...((await res.json()) as Omit<Issued, 'keyPem'>), keyPem };
    issued.set(key, answer);
    return answer;
  }

  async function revoke(serial: string, sub: string): Promise<void> {
    const res = await fetch(`${api}/v1/certificates/${serial}/revoke`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(await auth(sub)) }, body: JSON.stringify({ reason: 'superseded' }) });
    assert.equal(res.status, 200, await res.clone().text());
  }

  async function poll(serial: string): Promise<void> {
    const res = await fetch(`${pub}/v1/certificates/${serial}/renewal-info`);
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  }

  const fleet = async (query: Record<string, string>, sub = ADMIN) => fetch(`${api}/v1/fleet?${new URLSearchParams(query)}`, { headers: await auth(sub) });
  const fleetOk = async (query: Record<string, string> = {}): Promise<Page> => {
    const res = await fleet(query);
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as Page;
  };
  const summaryOk = async (): Promise<FleetSummary> => {
    const res = await fetch(`${api}/v1/fleet/summary`, { headers: await auth(ADMIN) });
    assert.equal(res.status, 200, await res.clone().text());
    return (await res.json()) as FleetSummary;
  };
  const at = (ms: number) => clock.set(new Date(T0.getTime() + ms));

  before(async () => {
    [pki, issuer, database] = await Promise.all([createTestPki('p256'), createTestIssuer(), createTestDatabase()]);
    const config = parseConfig(
      {
        server: { host: '127.0.0.1', port: 0, tls: { mode: 'off' } },
        public: { host: '127.0.0.1', port: 0 },
        publicUrl: 'http://ca.test:8080',
        database: database.url ? { url: database.url } : {},
        dataDir: database.dataDir,
        ca: { certificate: pki.intermediateCertificate, key: pki.intermediateKey, chain: pki.rootCertificate },
        auth: { issuers: [issuerConfig(issuer)], admins: { identities: [ADMIN] } },
        policies: defaultPolicies(),
        logging: { level: 'silent' },
        monitor: { refresh: '1s' },
      },
      { baseDir: process.cwd(), env: {} },
    );
    // Into TEST_LOG_DIR like startTestApp's apps: the run searches every line for secrets.
    const dir = process.env.TEST_LOG_DIR;
    const logger = dir ? createLogger('debug', pino.destination({ dest: join(dir, `fleet-${process.pid}.log`), sync: true })) : createLogger('silent');
    launch = async () => {
      running = await start(config, { logger, clock, databaseAttempts: 1 });
      api = running.apiUrl;
      pub = running.publicUrl;
    };
    await launch();

    at(0);
    await issue(A, '24h');
    const b1 = await issue(B, '12h', 'B1');
    await issue(C, '13h');
    await issue(D, 40_000);
    await issue(E, 37_500);
    await issue(G, '9h');
    const h = await issue(HR, '24h');
    await issue(I, '24h', 'I1');
    await issue(J, '48h', 'J1');
    await issue(K, '24h');
    at(1 * H);
    await revoke(h.serial, HR);
    await revoke((await issue(I, '24h', 'I2')).serial, I);
    await issue(J, '7h', 'J2');
    at(5 * H);
    await poll(issued.get(C)!.serial);
    at(9 * H);
    // B renews inside its window ([8h, 10h) after its notBefore) with its own key.
    const { keyPem, csrPem } = await createKeyAndCsr('p256', { dns: ['renewed.fleet.svc'] });
    const holder = await holderJwt({ certificate: b1.certificate, keyPem: b1.keyPem }, { iat: seconds(), exp: seconds() + 120 });
    const renewal = await fetch(`${api}/v1/certificates/renew`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${holder}` }, body: JSON.stringify({ csr: csrPem, ttl: '12h' }) });
    assert.equal(renewal.status, 201, await renewal.clone().text());
    issued.set(B, { ...((await renewal.json()) as Omit<Issued, 'keyPem'>), keyPem });
    await issue(F, 3900);
    await poll(issued.get(C)!.serial);
    await poll(issued.get(D)!.serial);
    at(9.5 * H);
    // A name outside D's policy: refused and audited with D as the actor.
    const { csrPem: outside } = await createKeyAndCsr('p256', { dns: ['missed.other.svc'] });
    const refused = await fetch(`${api}/v1/certificates`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...(await auth(D)) }, body: JSON.stringify({ csr: outside }) });
    await assertProblem(refused, 403, 'rejectedIdentifier');
    await running.deps.polls.flush();
    clock.set(Q);
  });

  after(async () => {
    await running?.stop(2000);
    await database?.drop();
  });

  /** What each identity is at Q, in the order "needing attention first". */
  const EXPECTED: [string, string, string, string][] = [
    [G, 'expired', 'critical', G],
    [F, 'missedRenewal', 'critical', F],
    [E, 'missedRenewal', 'critical', E],
    [D, 'missedRenewal', 'warning', D],
    [HR, 'revoked', 'none', HR],
    [C, 'renewalDue', 'none', C],
    [B, 'healthy', 'none', B],
    [A, 'healthy', 'none', A],
    [I, 'healthy', 'none', 'I1'],
    [K, 'healthy', 'none', K],
    [J, 'healthy', 'none', 'J1'],
  ];

  it('judges every identity by its newest valid certificate, needing attention first', async () => {
    const { items, nextCursor } = await fleetOk({ limit: '1000' });
    assert.equal(nextCursor, null);
    assert.deepEqual(
      items.map((i) => [i.identity, i.state, i.severity, i.certificate?.serial]),
      EXPECTED.map(([identity, state, severity, key]) => [identity, state, severity, issued.get(key)!.serial]),
    );
    const byIdentity = new Map(items.map((i) => [i.identity, i]));
    const nine = new Date(T0.getTime() + 9 * H).toISOString().replace('.000Z', 'Z');
    assert.deepEqual(byIdentity.get(C)!.lastPoll, { at: nine, address: '127.0.0.1' }, 'the last of two polls');
    assert.deepEqual(byIdentity.get(D)!.lastPoll, { at: nine, address: '127.0.0.1' });
    assert.deepEqual(byIdentity.get(D)!.lastRefusal, { at: new Date(T0.getTime() + 9.5 * H).toISOString().replace('.000Z', 'Z'), code: 'rejectedIdentifier' });
    for (const i of items.filter((x) => x.identity !== C && x.identity !== D)) {
      assert.equal(i.lastPoll, null, i.identity);
      assert.equal(i.lastRefusal, null, i.identity);
    }
    assert.deepEqual(byIdentity.get(HR)!.certificate!.renewalInfo, { start: Q.toISOString().replace('.000Z', 'Z'), end: Q.toISOString().replace('.000Z', 'Z') });
    for (const item of items) {
      const cert = issued.get(EXPECTED.find((e) => e[0] === item.identity)![3])!;
      assert.deepEqual(Object.keys(item), ['identity', 'state', 'severity', 'certificate', 'lastPoll', 'lastRefusal']);
      assert.equal(item.certificate!.notBefore, cert.notBefore, item.identity);
      assert.equal(item.certificate!.notAfter, cert.notAfter, item.identity);
      // The window is the one renewal-info answers (for the revoked one: open now). These polls
      // are at Q; no later test reads these certificates' last polls.
      const info = (await (await fetch(`${pub}/v1/certificates/${cert.serial}/renewal-info`)).json()) as { suggestedWindow: { start: string; end: string } };
      assert.deepEqual(item.certificate!.renewalInfo, info.suggestedWindow, item.identity);
    }
  });

  it('counts identities by state and by severity', async () => {
    assert.deepEqual(await summaryOk(), {
      states: { healthy: 5, renewalDue: 1, missedRenewal: 3, expired: 1, revoked: 1 },
      severities: { none: 7, warning: 1, critical: 3 },
    });
  });

  it('filters by state, severity and identity prefix, keeping the order', async () => {
    const identities = async (q: Record<string, string>) => (await fleetOk(q)).items.map((i) => i.identity);
    assert.deepEqual(await identities({ state: 'missedRenewal' }), [F, E, D]);
    assert.deepEqual(await identities({ severity: 'critical' }), [G, F, E]);
    assert.deepEqual(await identities({ state: 'healthy', severity: 'none' }), [B, A, I, K, J]);
    assert.deepEqual(await identities({ state: 'revoked' }), [HR]);
    assert.deepEqual(await identities({ identityPrefix: FLEET_PREFIX }), EXPECTED.map((e) => e[0]).filter((x) => x !== K));
    assert.deepEqual(await identities({ identityPrefix: `${FLEET_PREFIX}sa/re` }), [HR, B, I]);
    assert.deepEqual(await identities({ identityPrefix: `${FLEET_PREFIX}sa/re`, state: 'healthy' }), [B, I]);
    assert.deepEqual(await identities({ identityPrefix: 'spiffe://example.org/ns/nobody/' }), []);
    assert.deepEqual(await identities({ identityPrefix: K }), [K], 'a whole identity is its own prefix');
  });

  it('pages with an opaque cursor, every page judged at the instant of the first', async () => {
    const walked: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page: Page = await fleetOk(cursor ? { limit: '3', cursor } : { limit: '3' });
      assert.ok(page.items.length <= 3);
      walked.push(...page.items.map((i) => `${i.identity} ${i.state} ${i.severity}`));
      cursor = page.nextCursor;
      pages++;
      // Time goes on between pages: by Q + 6h, C, D and E would have expired.
      clock.advance(2 * H);
    } while (cursor);
    clock.set(Q);
    assert.equal(pages, 4);
    assert.deepEqual(walked, EXPECTED.map(([identity, state, severity]) => `${identity} ${state} ${severity}`));
    // A new walk at a later instant sees the later fleet.
    clock.set(new Date(Q.getTime() + 6 * H));
    const later = (await fleetOk({ identityPrefix: FLEET_PREFIX, state: 'expired' })).items.map((i) => i.identity);
    clock.set(Q);
    assert.deepEqual(later.sort(), [C, D, E, F, G].sort());
  });

  it('uses renewal-info\'s window to the millisecond, and the default warning begins where it ends', async () => {
    const window = issued.get(C)!.renewalInfo;
    const judge = async (ms: number) => {
      clock.set(new Date(ms));
      const [item] = (await fleetOk({ identityPrefix: C })).items;
      return `${item!.state} ${item!.severity}`;
    };
    const start = Date.parse(window.start);
    const end = Date.parse(window.end);
    assert.equal(await judge(start - 1), 'healthy none');
    assert.equal(await judge(start), 'renewalDue none');
    assert.equal(await judge(end - 1), 'renewalDue none');
    assert.equal(await judge(end), 'missedRenewal warning');
    const life = Date.parse(issued.get(C)!.notAfter) - Date.parse(issued.get(C)!.notBefore);
    assert.equal(await judge(Date.parse(issued.get(C)!.notBefore) + Math.round(life * 0.95) - 1), 'missedRenewal warning');
    assert.equal(await judge(Date.parse(issued.get(C)!.notBefore) + Math.round(life * 0.95)), 'missedRenewal critical');
    assert.equal(await judge(Date.parse(issued.get(C)!.notAfter) - 1), 'missedRenewal critical');
    assert.equal(await judge(Date.parse(issued.get(C)!.notAfter)), 'expired critical');
    clock.set(Q);
  });

  it('closes the window of a retiring issuer\'s certificate at its renewBy, to the millisecond of renewal-info\'s', async () => {
    const c = issued.get(C)!;
    const record = (await running.deps.store.getCertificate(c.serial))!;
    const cert = { notBefore: new Date(c.notBefore), notAfter: new Date(c.notAfter), revokedAt: null };
    const nb = cert.notBefore.getTime();
    const rules = (renewBy: Date) => ({ ...DEFAULT_RULES, renewBy: new Map([[record.issuerKeyId, renewBy], ['another issuer', new Date(nb)]]) });
    const judge = async (renewBy: Date, ms: number) => {
      const [row] = await running.deps.store.listFleet({ now: new Date(ms), rules: rules(renewBy), identityPrefix: C, limit: 10 });
      return `${row!.state} ${row!.severity}`;
    };
    // After the usual end (no change), inside the usual window, before the window's width from
    // notBefore (it opens at notBefore), and before notBefore (open and closed at once).
    for (const renewBy of [nb + 12 * H, nb + 9 * H + 123, nb + H, nb - H]) {
      const window = renewalWindow(cert, Q, new Date(renewBy));
      const start = window.start.getTime();
      const end = window.end.getTime();
      assert.equal(end, Math.min(Math.max(renewBy, nb), Date.parse(c.renewalInfo.end)), 'the window closes by renewBy');
      const expected = (ms: number) => (ms < start ? 'healthy none' : ms < end ? 'renewalDue none' : 'missedRenewal warning');
      for (const ms of [start - 1, start, end - 1, end, end + H]) {
        assert.equal(await judge(new Date(renewBy), ms), expected(ms), `renewBy notBefore${renewBy >= nb ? '+' : ''}${(renewBy - nb) / H} h, judged at notBefore+${(ms - nb) / H} h`);
      }
    }
    // Only the certificates of the issuer named: another issuer's renewBy changes nothing.
    const [row] = await running.deps.store.listFleet({ now: Q, rules: { ...DEFAULT_RULES, renewBy: new Map([['another issuer', new Date(nb)]]) }, identityPrefix: C, limit: 10 });
    assert.equal(`${row!.state} ${row!.severity}`, 'renewalDue none');
  });

  it('takes its thresholds from the rules (monitor.* in the configuration)', async () => {
    const rows = await running.deps.store.listFleet({ now: Q, rules: { warningAt: 0.3, criticalAt: 0.6, criticalRemainingMs: 0, renewBy: new Map() }, identityPrefix: FLEET_PREFIX, limit: 100 });
    const severity = new Map(rows.map((r) => [r.identity, r.severity]));
    // Shares of the lifetime used at Q: C 0.77, A and I 0.42, B 0.08, J 0.21; H is revoked.
    assert.deepEqual([C, A, I, B, J, HR].map((x) => severity.get(x)), ['critical', 'warning', 'warning', 'none', 'none', 'none']);
    assert.throws(() => parseConfig({ ...minimalConfig(), monitor: { warningAt: 0.9, criticalAt: 0.8 } }, { baseDir: '/', env: {} }), (err: unknown) => err instanceof ConfigError && /monitor\.warningAt: is above monitor\.criticalAt/.test(err.message));
    assert.throws(() => parseConfig({ ...minimalConfig(), monitor: { criticalAt: 1.5 } }, { baseDir: '/', env: {} }), (err: unknown) => err instanceof ConfigError && /monitor\.criticalAt/.test(err.message));
    const defaults = parseConfig(minimalConfig(), { baseDir: '/', env: {} }).monitor;
    assert.deepEqual(defaults, { warningAt: 5 / 6, criticalAt: 0.95, criticalRemaining: 900, refresh: 30 });
  });

  function minimalConfig() {
    return { ca: { certificate: 'c.pem', key: 'k.pem' }, auth: { issuers: [issuerConfig(issuer)] } };
  }

  it('reports the gauges from the shared counts, and the intermediate\'s expiry', async () => {
    const sample = (text: string, name: string, label: string, value: string) => Number(new RegExp(`^${name}\\{${label}="${value}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
    const want = await summaryOk();
    let text = '';
    for (let tries = 0; tries < 50; tries++) {
      await running.deps.fleetMonitor.refresh();
      text = await (await fetch(`${pub}/metrics`)).text();
      if (sample(text, 'service_ca_identities', 'state', 'healthy') === want.states.healthy && sample(text, 'service_ca_certificates_expiring', 'severity', 'critical') === want.severities.critical) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const [state, n] of Object.entries(want.states)) assert.equal(sample(text, 'service_ca_identities', 'state', state), n, `${state}\n${text}`);
    for (const [severity, n] of Object.entries(want.severities)) assert.equal(sample(text, 'service_ca_certificates_expiring', 'severity', severity), n, severity);
    const intermediate = new X509Certificate(Buffer.from(await (await fetch(`${pub}/v1/ca/intermediate.der`)).arrayBuffer()));
    const expiry = Number(/^service_ca_intermediate_expiration_timestamp_seconds\{issuer="[0-9a-f]+",active="true"\} (\S+)$/m.exec(text)?.[1]);
    assert.equal(expiry, Date.parse(intermediate.validTo) / 1000);
  });

  it('is for admins only: 401 without a token, 403 for a workload, and the refusal is audited', async () => {
    for (const path of ['/v1/fleet', '/v1/fleet/summary']) {
      const anonymous = await fetch(`${api}${path}`);
      await assertProblem(anonymous, 401, 'unauthorized');
      assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Bearer/);
      await assertProblem(await fetch(`${api}${path}`, { headers: await auth(A) }), 403, 'forbidden');
      // Not on the public listener at all.
      assert.equal((await fetch(`${pub}${path}`, { headers: await auth(ADMIN) })).status, 404);
    }
    const audit = (await (await fetch(`${api}/v1/audit?${new URLSearchParams({ actor: A, outcome: 'forbidden' })}`, { headers: await auth(ADMIN) })).json()) as { items: { action: string }[] };
    assert.deepEqual(audit.items.map((r) => r.action), ['certificates.list', 'certificates.list']);
    const reads = (await (await fetch(`${api}/v1/audit?${new URLSearchParams({ actor: ADMIN, action: 'certificates.list' })}`, { headers: await auth(ADMIN) })).json()) as { items: { detail: Record<string, unknown> }[] };
    assert.ok(reads.items.some((r) => r.detail.view === 'fleet' && r.detail.state === 'missedRenewal'), 'an admin\'s read is audited with its filters');
    // A refused workload's read is not its "last refusal": that is about getting certificates.
    const [a] = (await fleetOk({ identityPrefix: A })).items;
    assert.equal(a!.lastRefusal, null);
  });

  it('answers bad filters, limits and cursors with 400 malformed', async () => {
    const bad: Record<string, string>[] = [
      { state: 'broken' },
      { state: 'Healthy' },
      { severity: 'high' },
      { limit: '0' },
      { limit: '1001' },
      { limit: 'ten' },
      { cursor: '!!' },
      { cursor: Buffer.from('[1,2]').toString('base64url') },
      { cursor: Buffer.from(JSON.stringify(['2026-01-01T00:00:00.000Z', 0, 9, '1000', 'x'])).toString('base64url') },
      { cursor: Buffer.from(JSON.stringify(['2026-01-01T00:00:00.000Z', 0, 0, '1; drop table', 'x'])).toString('base64url') },
      { identityPrefix: 'x'.repeat(1025) },
      { identityPrefix: 'spiffe://\u0000' },
    ];
    for (const q of bad) await assertProblem(await fleet(q), 400, 'malformed');
  });

  it('writes polls in batches: one write per batch whatever the polls, one row per serial, never back in time', async () => {
    const store = running.deps.store;
    const writes: Poll[][] = [];
    const recorder = createPollRecorder({ store: { recordPolls: (polls) => (writes.push(polls), store.recordPolls(polls)) }, flushAt: 3, maxBatch: 2 });
    // Identities of their own, which no earlier test polled.
    const [P1, P2, P3] = [workload('polls', 'one'), workload('polls', 'two'), workload('polls', 'three')];
    const a = (await issue(P1, '24h')).serial;
    const e = (await issue(P2, '24h')).serial;
    const g = (await issue(P3, '24h')).serial;
    const base = Q.getTime() - H;
    for (let n = 0; n < 500; n++) recorder.note(n % 2 ? a : e, base + n, n % 2 ? '192.0.2.7' : '::ffff:198.51.100.4');
    assert.equal(writes.length, 0, 'noting polls writes nothing');
    assert.equal(recorder.pending(), 2);
    assert.equal(await recorder.flush(), 2);
    assert.equal(writes.length, 1, 'one write for the batch');
    assert.deepEqual(writes[0]!.map((p) => [p.serial, p.at.getTime(), p.address]).sort(), [[a, base + 499, '192.0.2.7'], [e, base + 498, '198.51.100.4']].sort());
    const lastPoll = async (identity: string) => (await fleetOk({ identityPrefix: identity })).items[0]!.lastPoll;
    assert.deepEqual(await lastPoll(P1), { at: new Date(base + 499).toISOString(), address: '192.0.2.7' });
    assert.deepEqual(await lastPoll(P2), { at: new Date(base + 498).toISOString(), address: '198.51.100.4' }, 'an IPv4 address of a dual-stack listener, written plainly');
    // A poll within a minute of the last one written for its serial is not even noted.
    recorder.note(a, base + 499 + 59_000, '192.0.2.7');
    assert.equal(recorder.pending(), 0);
    // A replica flushing an older poll late leaves the row as it is.
    assert.equal(await store.recordPolls([{ serial: a, at: new Date(base), address: '203.0.113.9' }]), 0);
    assert.deepEqual(await lastPoll(P1), { at: new Date(base + 499).toISOString(), address: '192.0.2.7' });
    // A serial no certificate has is skipped, not an error for the batch.
    assert.equal(await store.recordPolls([{ serial: '7f'.repeat(20), at: Q, address: null }, { serial: e, at: Q, address: null }]), 1);
    // flushAt serials waiting start a write without a flush, in statements of at most maxBatch rows.
    recorder.note(a, Q.getTime(), '192.0.2.7');
    recorder.note(e, Q.getTime() + 1, '192.0.2.7');
    assert.equal(writes.length, 1);
    recorder.note(g, Q.getTime(), '192.0.2.7');
    assert.equal(writes.length, 2, 'the third serial started a write');
    await recorder.stop();
    assert.deepEqual(writes.slice(1).map((w) => w.length), [2, 1]);

    // The app's own recorder: a poll through the public listener shows up after its batch is written.
    await running.deps.polls.stop();
    const P4 = workload('polls', 'four');
    const h = (await issue(P4, '24h')).serial;
    clock.set(new Date(Q.getTime() + 1000));
    for (let n = 0; n < 20; n++) await poll(h);
    assert.equal(running.deps.polls.pending(), 1);
    assert.equal(await lastPoll(P4), null, 'not before its batch is written');
    await running.deps.polls.flush();
    assert.deepEqual(await lastPoll(P4), { at: new Date(Q.getTime() + 1000).toISOString().replace('.000Z', 'Z'), address: '127.0.0.1' });
    clock.set(Q);
  });

  it('writes the polls still waiting when it stops', async () => {
    const P5 = workload('polls', 'five');
    const serial = (await issue(P5, '24h')).serial;
    await poll(serial);
    // Waiting now, and stop() comes before any timer can write it: only the shutdown does.
    assert.equal(running.deps.polls.pending(), 1);
    await running.stop(2000);
    await launch();
    const [item] = (await fleetOk({ identityPrefix: P5 })).items;
    assert.deepEqual(item!.lastPoll, { at: Q.toISOString().replace('.000Z', 'Z'), address: '127.0.0.1' });
  });
});
