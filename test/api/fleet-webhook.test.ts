/**
 * The fleet webhook (monitor.webhook, docs/monitoring.md "Webhook"): the real app on a real
 * database (started with `start` and a fixedClock, as in fleet.test.ts) POSTs to a local node:http
 * receiver that records every request. A missed renewal (and an expired certificate, critical)
 * is announced once, however many checks follow; the identity's renewal is announced resolved
 * once; a receiver that answers 500 twice is retried and gets one delivery; two instances on one
 * database deliver once between them. With Alertmanager installed, it is the receiver of a case.
 *
 * Checks run every second; after each awaited delivery the test waits four more checks to show
 * that nothing is repeated.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { createKeyAndCsr } from '../../src/cli/keys.js';
import { fixedClock } from '../../src/clock.js';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/logging.js';
import { start, type Running } from '../../src/main.js';
import { createFleetAlerts, type AlertmanagerAlert } from '../../src/policy/fleet-alerts.js';
import { ADMIN, defaultPolicies, workload } from '../setup/app.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { holderJwt } from '../setup/holder.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { createTestIssuer, issuerConfig, type TestIssuer } from '../setup/tokens.js';

const H = 3_600_000;
const SECRET = 'Bearer webhook-secret-7f3a9c';
const CHECKS = 4_000;

interface Received {
  status: number;
  headers: IncomingHttpHeaders;
  alerts: AlertmanagerAlert[];
}

interface Receiver {
  url: string;
  received: Received[];
  /** Requests answered 2xx. */
  delivered(): AlertmanagerAlert[];
  close(): Promise<void>;
}

/** A node:http receiver: answers the statuses queued in `failures` first, then 200. */
async function startReceiver(failures: number[] = []): Promise<Receiver> {
  const received: Received[] = [];
  const queue = [...failures];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const status = queue.shift() ?? 200;
      received.push({ status, headers: req.headers, alerts: JSON.parse(Buffer.concat(chunks).toString('utf8')) as AlertmanagerAlert[] });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v2/alerts`,
    received,
    delivered: () => received.filter((r) => r.status === 200).flatMap((r) => r.alerts),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, ok: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const named = (alerts: AlertmanagerAlert[], identity: string, alertname: string) => alerts.filter((a) => a.labels.identity === identity && a.labels.alertname === alertname);
const firing = (alerts: AlertmanagerAlert[], identity: string, alertname: string) => named(alerts, identity, alertname).filter((a) => a.endsAt === undefined);
const resolved = (alerts: AlertmanagerAlert[], identity: string, alertname: string) => named(alerts, identity, alertname).filter((a) => a.endsAt !== undefined);

/** One database, one throwaway CA, the app (one or more instances) started at T0 of a fixedClock. */
function fixture(name: string, offsetMs = 0) {
  const T0 = new Date(Math.floor((Date.now() + offsetMs) / 1000) * 1000);
  const clock = fixedClock(T0);
  const f = {
    T0,
    clock,
    pki: undefined as unknown as TestPki,
    issuer: undefined as unknown as TestIssuer,
    database: undefined as unknown as TestDatabase,
    logDir: mkdtempSync(join(tmpdir(), 'fleet-webhook-')),
    apps: [] as Running[],
    async setUp() {
      // The CA is made at the clock's start: one made now would not be valid yet for a clock set in the past.
      [f.pki, f.issuer, f.database] = await Promise.all([createTestPki('p256', { now: T0 }), createTestIssuer(), createTestDatabase()]);
    },
    config(url: string) {
      return parseConfig(
        {
          server: { host: '127.0.0.1', port: 0, tls: { mode: 'off' } },
          public: { host: '127.0.0.1', port: 0 },
          database: f.database.url ? { url: f.database.url } : {},
          dataDir: f.database.dataDir,
          ca: { certificate: f.pki.intermediateCertificate, key: f.pki.intermediateKey, chain: f.pki.rootCertificate },
          auth: { issuers: [issuerConfig(f.issuer)], admins: { identities: [ADMIN] } },
          policies: defaultPolicies(),
          logging: { level: 'debug' },
          monitor: { refresh: '1s', webhook: { url, interval: '1s', timeout: '5s', headers: { Authorization: '${WEBHOOK_AUTH}' } } },
        },
        { baseDir: process.cwd(), env: { WEBHOOK_AUTH: SECRET } },
      );
    },
    async launch(url: string): Promise<Running> {
      const logger = createLogger('debug', pino.destination({ dest: join(f.logDir, `${name}-${f.apps.length}.log`), sync: true }));
      const running = await start(f.config(url), { logger, clock, databaseAttempts: 1 });
      f.apps.push(running);
      return running;
    },
    logs: () => f.apps.map((_, i) => readFileSync(join(f.logDir, `${name}-${i}.log`), 'utf8')).join(''),
    async tearDown() {
      for (const app of f.apps) await app.stop(2000);
      await f.database?.drop();
      rmSync(f.logDir, { recursive: true, force: true });
    },
    seconds: () => Math.floor(clock.now().getTime() / 1000),
    async issue(app: Running, identity: string, ttl: string) {
      const dns = [`${identity.split('/sa/')[1]}.${identity.split('/ns/')[1]!.split('/')[0]}.svc`];
      const { keyPem, csrPem } = await createKeyAndCsr('p256', { dns });
      const token = await f.issuer.mint({ sub: identity }, { iat: f.seconds(), exp: f.seconds() + 300 });
      const res = await fetch(`${app.apiUrl}/v1/certificates`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: JSON.stringify({ csr: csrPem, ttl }) });
      assert.equal(res.status, 201, await res.clone().text());
      return { ...((await res.json()) as { certificate: string; serial: string }), keyPem, dns };
    },
    async renew(app: Running, held: { certificate: string; keyPem: string; dns: string[] }, ttl: string) {
      const { csrPem } = await createKeyAndCsr('p256', { dns: held.dns });
      const holder = await holderJwt(held, { iat: f.seconds(), exp: f.seconds() + 120 });
      const res = await fetch(`${app.apiUrl}/v1/certificates/renew`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${holder}` }, body: JSON.stringify({ csr: csrPem, ttl }) });
      assert.equal(res.status, 201, await res.clone().text());
    },
  };
  return f;
}

describe('fleet webhook: a missed renewal fires once, its recovery resolves once', () => {
  const f = fixture('once');
  let receiver: Receiver;
  let app: Running;
  const M = workload('hook', 'missed');
  const X = workload('hook', 'expired');
  const OK = workload('hook', 'healthy');
  let m: Awaited<ReturnType<typeof f.issue>>;

  before(async () => {
    receiver = await startReceiver();
    await f.setUp();
    app = await f.launch(receiver.url);
    m = await f.issue(app, M, '12h');
    await f.issue(app, X, '1h');
    await f.issue(app, OK, '24h');
  });
  after(async () => {
    await f.tearDown();
    await receiver?.close();
  });

  it('sends nothing while the fleet is healthy', async () => {
    await sleep(CHECKS);
    assert.deepEqual(receiver.received, []);
  });

  it('posts one firing alert per identity and alert, in Alertmanager v2 form, and no repeat', async () => {
    // 11 h into a 12 h certificate: past its window's end (10 h), not yet critical (11.4 h, 15 min left).
    f.clock.set(new Date(f.T0.getTime() + 11 * H));
    const firedAt = f.clock.now().toISOString();
    await waitFor('the firing alerts', () => firing(receiver.delivered(), M, 'ServiceCaMissedRenewal').length > 0 && firing(receiver.delivered(), X, 'ServiceCaCertificateCritical').length > 0);
    await sleep(CHECKS);
    const all = receiver.delivered();
    assert.equal(firing(all, M, 'ServiceCaMissedRenewal').length, 1, JSON.stringify(all));
    assert.equal(firing(all, X, 'ServiceCaCertificateCritical').length, 1, JSON.stringify(all));
    assert.deepEqual(named(all, M, 'ServiceCaCertificateCritical'), [], 'M is a warning, not critical');
    assert.deepEqual(named(all, X, 'ServiceCaMissedRenewal'), [], 'X expired: not a missed renewal');
    assert.deepEqual(all.filter((a) => a.labels.identity === OK), []);
    assert.equal(all.length, 2);
    const alert = firing(all, M, 'ServiceCaMissedRenewal')[0]!;
    assert.deepEqual(alert.labels, { alertname: 'ServiceCaMissedRenewal', identity: M, severity: 'warning', service: 'service-ca' });
    assert.deepEqual(Object.keys(alert).sort(), ['annotations', 'labels', 'startsAt']);
    assert.equal(alert.startsAt, firedAt);
    assert.match(alert.annotations.summary, /missed its renewal/);
    assert.ok(alert.annotations.description.length > 0);
    assert.deepEqual(firing(all, X, 'ServiceCaCertificateCritical')[0]!.labels.severity, 'critical');
    for (const r of receiver.received) {
      assert.equal(r.headers.authorization, SECRET);
      assert.equal(r.headers['content-type'], 'application/json');
    }
  });

  it('posts one resolved alert when the identity renews, and no repeat', async () => {
    f.clock.advance(60_000);
    await f.renew(app, m, '12h');
    const resolvedAt = f.clock.now().toISOString();
    await waitFor('the resolved alert', () => resolved(receiver.delivered(), M, 'ServiceCaMissedRenewal').length > 0);
    await sleep(CHECKS);
    const all = receiver.delivered();
    const done = resolved(all, M, 'ServiceCaMissedRenewal');
    assert.equal(done.length, 1, JSON.stringify(all));
    assert.equal(done[0]!.endsAt, resolvedAt);
    assert.equal(done[0]!.startsAt, firing(all, M, 'ServiceCaMissedRenewal')[0]!.startsAt, 'the same alert');
    assert.equal(firing(all, M, 'ServiceCaMissedRenewal').length, 1, 'never fired again');
    assert.deepEqual(resolved(all, X, 'ServiceCaCertificateCritical'), [], 'X is still expired');
    assert.equal(all.length, 3);
    const metrics = await (await fetch(`${app.publicUrl}/metrics`)).text();
    assert.match(metrics, /service_ca_webhook_notifications_total\{result="sent"\} [1-9]/);
  });
});

describe('fleet webhook: a receiver answering 500 twice is retried', () => {
  const f = fixture('retry');
  let receiver: Receiver;
  const M = workload('hook', 'retried');

  before(async () => {
    receiver = await startReceiver([500, 500]);
    await f.setUp();
  });
  after(async () => {
    await f.tearDown();
    await receiver?.close();
  });

  it('delivers once, after two failed attempts, and logs no header value', async () => {
    const app = await f.launch(receiver.url);
    await f.issue(app, M, '12h');
    f.clock.set(new Date(f.T0.getTime() + 11 * H));
    await waitFor('a delivery', () => receiver.delivered().length > 0);
    await sleep(CHECKS);
    assert.deepEqual(receiver.received.map((r) => r.status), [500, 500, 200]);
    for (const r of receiver.received) assert.deepEqual(r.alerts, receiver.received[0]!.alerts, 'each attempt posts the same alerts');
    assert.equal(firing(receiver.delivered(), M, 'ServiceCaMissedRenewal').length, 1);
    const metrics = await (await fetch(`${app.publicUrl}/metrics`)).text();
    assert.match(metrics, /service_ca_webhook_notifications_total\{result="retried"\} 2\b/);
    assert.match(metrics, /service_ca_webhook_notifications_total\{result="sent"\} 1\b/);
    const logs = f.logs();
    assert.match(logs, /answered 500/);
    assert.ok(!logs.includes('webhook-secret'), 'a header value was logged');
  });
});

describe('fleet webhook: two instances on one database', () => {
  const f = fixture('pair');
  let receiver: Receiver;
  const M = workload('hook', 'shared');
  let stopSecond: (() => Promise<void>) | undefined;

  before(async () => {
    receiver = await startReceiver();
    await f.setUp();
  });
  after(async () => {
    await stopSecond?.();
    await f.tearDown();
    await receiver?.close();
  });

  it('delivers one alert between them, not two', async () => {
    const first = await f.launch(receiver.url);
    if (f.database.kind === 'postgres') {
      await f.launch(receiver.url);
    } else {
      // PGlite is one process's database: the second checker shares the first app's store.
      const config = f.config(receiver.url);
      const second = createFleetAlerts({
        store: first.deps.store,
        clock: f.clock,
        rules: { warningAt: config.monitor.warningAt, criticalAt: config.monitor.criticalAt, criticalRemainingMs: config.monitor.criticalRemaining * 1000, renewBy: new Map() },
        webhook: config.monitor.webhook!,
      });
      second.start();
      stopSecond = () => second.stop();
    }
    await f.issue(first, M, '12h');
    f.clock.set(new Date(f.T0.getTime() + 11 * H));
    await waitFor('a delivery', () => receiver.delivered().length > 0);
    await sleep(CHECKS);
    assert.equal(receiver.received.length, 1, JSON.stringify(receiver.received.map((r) => r.alerts)));
    assert.equal(firing(receiver.delivered(), M, 'ServiceCaMissedRenewal').length, 1);
  });
});

const alertmanager = (() => {
  try {
    // Debian names its binary prometheus-alertmanager; upstream's is alertmanager.
    return execFileSync('sh', ['-c', 'command -v prometheus-alertmanager || command -v alertmanager'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
})();

describe('fleet webhook: Alertmanager as the receiver', () => {
  // Started 11 h in the past, so that the alert's startsAt is Alertmanager's present.
  const f = fixture('alertmanager', -11 * H);
  let child: ChildProcess | undefined;
  let amDir: string | undefined;

  after(async () => {
    child?.kill('SIGTERM');
    await f.tearDown();
    if (amDir) rmSync(amDir, { recursive: true, force: true });
  });

  it('Alertmanager accepts the firing alert', { skip: alertmanager ? false : 'alertmanager is not installed (Debian: prometheus-alertmanager)' }, async () => {
    amDir = mkdtempSync(join(tmpdir(), 'alertmanager-'));
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    const configFile = join(amDir, 'alertmanager.yml');
    execFileSync('sh', ['-c', `printf 'route:\\n  receiver: none\\nreceivers:\\n  - name: none\\n' > '${configFile}'`]);
    child = spawn(alertmanager!, [`--config.file=${configFile}`, `--storage.path=${amDir}`, `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address='], { stdio: 'ignore' });
    const base = `http://127.0.0.1:${port}`;
    const ready = async () => (await fetch(`${base}/-/ready`).catch(() => undefined))?.status === 200;
    for (let i = 0; i < 300 && !(await ready()); i++) await sleep(100);
    assert.ok(await ready(), 'Alertmanager did not start');
    await f.setUp();
    const app = await f.launch(`${base}/api/v2/alerts`);
    const M = workload('hook', 'alertmanager');
    await f.issue(app, M, '12h');
    f.clock.set(new Date(f.T0.getTime() + 11 * H));
    let found: { labels: Record<string, string> }[] = [];
    for (let i = 0; i < 300 && found.length === 0; i++) {
      const alerts = (await (await fetch(`${base}/api/v2/alerts`)).json()) as { labels: Record<string, string> }[];
      found = alerts.filter((a) => a.labels.identity === M && a.labels.alertname === 'ServiceCaMissedRenewal');
      if (found.length === 0) await sleep(100);
    }
    assert.equal(found.length, 1);
    assert.equal(found[0]!.labels.service, 'service-ca');
  });
});
