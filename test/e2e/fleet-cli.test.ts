/**
 * `service-ca fleet` as a child process against a running app (docs/api.md "Fleet"): the JSON is
 * the API's items, the text a table in the same order with the severity written out, `--summary`
 * the counts, filters passed on; a non-admin exits 1 with the problem, bad usage exits 2. And the
 * fleet gauges of `serve` with several worker processes (Postgres): counted once, not once per
 * worker.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { FleetItem, FleetSummary } from '../../src/client/index.js';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { inParallel, runCli, type CliResult } from '../setup/cli-run.js';
import { csrFor } from '../setup/csr.js';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '../setup/database.js';
import { createTestPki } from '../setup/pki.js';
import { CLI, TSX_LOADER, cleanEnv, freePort, killAll, logLines, spawnService, waitForStatus } from '../setup/processes.js';
import { issueFor, revokeOk } from '../setup/revoking.js';
import { writeServiceConfig } from '../setup/service-config.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const HEALTHY = workload('cli', 'web');
const REVOKED = workload('cli', 'db');
const SHORT = workload('shop', 'cache');

describe('service-ca fleet', () => {
  let app: TestApp;
  let dir: string;
  const tokens = { admin: '', owner: '' };
  const serials: Record<string, string> = {};

  before(async () => {
    // A certificate with less than 2 hours left is critical: SHORT (1 hour) is, for the whole test.
    app = await startTestApp({ config: { monitor: { criticalRemaining: '2h' } } });
    dir = mkdtempSync(join(tmpdir(), 'service-ca-fleet-cli-'));
    tokens.admin = join(dir, 'admin.jwt');
    tokens.owner = join(dir, 'owner.jwt');
    writeFileSync(tokens.admin, await app.issuer.mint({ sub: ADMIN }, { ttl: 3600 }));
    writeFileSync(tokens.owner, await app.issuer.mint({ sub: HEALTHY }, { ttl: 3600 }));
    serials[HEALTHY] = (await issueFor(app, HEALTHY, ['web.cli.svc'], '24h')).serial;
    serials[REVOKED] = (await issueFor(app, REVOKED, ['db.cli.svc'], '24h')).serial;
    serials[SHORT] = (await issueFor(app, SHORT, ['cache.shop.svc'], '1h')).serial;
    await revokeOk(app, serials[REVOKED]!, ADMIN, 'cessationOfOperation');
  });
  after(async () => {
    await app?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cli = (args: string[], token: keyof typeof tokens = 'admin') => runCli(['fleet', ...args, '--server', app.api, '--token-file', tokens[token]], { cwd: dir });
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${app.api}${path}`, { headers: { Authorization: `Bearer ${readFileSync(tokens.admin, 'utf8')}` } });
    assert.equal(res.status, 200);
    return (await res.json()) as T;
  };
  const ok = (r: CliResult) => assert.equal(r.code, 0, r.describe);

  it('prints the fleet as JSON and as a table, needing attention first, and the summary', async () => {
    const [json, text, summaryJson, summaryText, revoked, prefix, limited] = await inParallel([
      () => cli(['--json']),
      () => cli([]),
      () => cli(['--summary', '--json']),
      () => cli(['--summary']),
      () => cli(['--state', 'revoked', '--json']),
      () => cli(['--identity-prefix', 'spiffe://example.org/ns/cli/', '--severity', 'none', '--json']),
      () => cli(['--limit', '1', '--json']),
    ]);
    for (const r of [json, text, summaryJson, summaryText, revoked, prefix, limited]) ok(r!);
    const items = JSON.parse(json!.stdout) as FleetItem[];
    // A revoked certificate's window is "now" (renew at once): the time of each request.
    const steady = (list: FleetItem[]) => list.map((i) => (i.state === 'revoked' ? { ...i, certificate: { ...i.certificate!, renewalInfo: null } } : i));
    assert.deepEqual(steady(items), steady((await api<{ items: FleetItem[] }>('/v1/fleet')).items), 'the API\'s items');
    const revokedWindow = items.find((i) => i.state === 'revoked')!.certificate!.renewalInfo;
    assert.equal(revokedWindow.start, revokedWindow.end);
    assert.deepEqual(
      items.map((i) => [i.identity, i.state, i.severity, i.certificate?.serial]),
      [
        [SHORT, 'healthy', 'critical', serials[SHORT]],
        [REVOKED, 'revoked', 'none', serials[REVOKED]],
        [HEALTHY, 'healthy', 'none', serials[HEALTHY]],
      ],
    );
    const lines = text!.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^SEVERITY\s+STATE\s+NOT AFTER\s+LEFT\s+SERIAL\s+LAST POLL\s+LAST REFUSAL\s+IDENTITY$/);
    assert.equal(lines.length, 4, text!.describe);
    lines.slice(1).forEach((line, n) => {
      const item = items[n]!;
      const cells = line.split(/\s{2,}/);
      assert.equal(cells[0], item.severity, line);
      assert.equal(cells[1], item.state, line);
      assert.equal(cells[2], item.certificate!.notAfter, line);
      assert.match(cells[3]!, /^(\d+d\d+h|\d+h\d+m|\d+m\d+s)$/, line);
      assert.equal(cells[4], item.certificate!.serial, line);
      assert.equal(cells.at(-1), item.identity, line);
    });
    // The severity column lines up: every row's state starts where the header's does.
    const stateAt = lines[0]!.indexOf('STATE');
    for (const line of lines.slice(1)) assert.match(line.slice(stateAt), /^(healthy|revoked) /);

    const summary = await api<FleetSummary>('/v1/fleet/summary');
    assert.deepEqual(JSON.parse(summaryJson!.stdout), summary);
    assert.deepEqual(summary, { states: { healthy: 2, renewalDue: 0, missedRenewal: 0, expired: 0, revoked: 1 }, severities: { none: 2, warning: 0, critical: 1 } });
    assert.equal(summaryText!.stdout, 'identities: 3\nstates:     healthy 2  renewalDue 0  missedRenewal 0  expired 0  revoked 1\nseverities: critical 1  warning 0  none 2\n');

    assert.deepEqual((JSON.parse(revoked!.stdout) as FleetItem[]).map((i) => i.identity), [REVOKED]);
    assert.deepEqual((JSON.parse(prefix!.stdout) as FleetItem[]).map((i) => i.identity), [REVOKED, HEALTHY]);
    assert.deepEqual((JSON.parse(limited!.stdout) as FleetItem[]).map((i) => i.identity), [SHORT], '--limit 1: one page of one');
  });

  it('exits 1 with the problem for a non-admin, and 2 for bad usage', async () => {
    const [denied, badState, badLimit, summaryFilter, noToken] = await inParallel([
      () => cli([], 'owner'),
      () => cli(['--state', 'broken']),
      () => cli(['--limit', 'many']),
      () => cli(['--summary', '--state', 'healthy']),
      () => runCli(['fleet', '--server', app.api], { cwd: dir }),
    ]);
    assert.equal(denied!.code, 1, denied!.describe);
    assert.match(denied!.stderr, /403 forbidden: this operation is for admins/);
    assert.equal(denied!.stdout, '');
    for (const r of [badState, badLimit, summaryFilter, noToken]) {
      assert.equal(r!.code, 2, r!.describe);
      assert.match(r!.stderr, /Usage: service-ca fleet/);
    }
    assert.match(badState!.stderr, /--state must be one of healthy, renewalDue, missedRenewal, expired, revoked/);
  });
});

describe('fleet gauges of several worker processes', { skip: testDatabaseUrl ? false : 'needs Postgres (TEST_DATABASE_URL): the embedded database runs one process' }, () => {
  const WORKERS = 2;
  let database: TestDatabase;
  let issuer: TestIssuer;
  let api: string;
  let pub: string;

  before(async () => {
    [database, issuer] = await Promise.all([createTestDatabase(), createTestIssuer()]);
    const pki = await createTestPki('p256');
    const [apiPort, publicPort] = [await freePort(), await freePort()];
    const file = writeServiceConfig({ pki, issuer, database, apiPort, publicPort, tls: 'off', workers: WORKERS });
    writeFileSync(file, stringifyYaml({ ...(parseYaml(readFileSync(file, 'utf8')) as object), monitor: { refresh: '1s' } }));
    const service = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', '--config', file], { cwd: database.dataDir, env: cleanEnv() });
    api = `http://127.0.0.1:${apiPort}`;
    pub = `http://127.0.0.1:${publicPort}`;
    await waitForStatus(`${api}/readyz`, 200, service, 90_000);
    for (const deadline = Date.now() + 90_000; logLines(service).filter((l) => l.msg === 'worker serving').length < WORKERS; ) {
      if (Date.now() > deadline) throw new Error('the workers did not all start');
      await new Promise((r) => setTimeout(r, 100));
    }
  });
  after(async () => {
    await killAll();
    await database?.drop();
  });

  it('reports each count once, from whichever worker answers /metrics', async () => {
    const csr = await csrFor({ dns: ['api.gauges.svc'] });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${api}/v1/certificates`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.mint({ sub: workload('gauges', i === 0 ? 'api' : `api${i}`) })}` },
        body: JSON.stringify({ csr: i === 0 ? csr : await csrFor({ dns: [`api${i}.gauges.svc`] }) }),
      });
      assert.equal(res.status, 201, await res.text());
    }
    const sample = (text: string, state: string) => Number(new RegExp(`^service_ca_identities\\{state="${state}"\\} (\\S+)$`, 'm').exec(text)?.[1]);
    const seen: number[] = [];
    for (const deadline = Date.now() + 30_000; seen.filter((n) => n === 3).length < 6; ) {
      if (Date.now() > deadline) break;
      // A connection of its own each time: the requests land on either worker.
      const text = await (await fetch(`${pub}/metrics`, { headers: { Connection: 'close' } })).text();
      seen.push(sample(text, 'healthy'));
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.ok(seen.filter((n) => n === 3).length >= 6, `healthy identities reported: ${seen.join(', ')}`);
    // No answer sums the workers' copies (a worker that has not read the counts yet reports none).
    assert.ok(seen.filter(Number.isFinite).every((n) => n <= 3), `never more than the 3 identities: ${seen.join(', ')}`);
  });
});
