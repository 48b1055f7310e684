/**
 * Operability on the running app: a request id on every request's log line and in the response
 * header (a caller's own id is kept), and the Prometheus metrics /metrics serves: issuances by
 * result and issuer, latency histograms by route, revocations by reason, CRL generation, size and
 * number, seconds until the intermediate expires, database pool use (Postgres), process defaults.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { testDatabaseUrl } from '../setup/database.js';
import { issueFor, revokeOk } from '../setup/revoking.js';

interface Line {
  msg?: string;
  requestId?: string;
  path?: string;
  status?: number;
}

/** A log stream that parses each JSON line into lines. */
function collect(lines: Line[]): Writable {
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
}

describe('request ids and metrics', () => {
  let app: TestApp;
  const lines: Line[] = [];

  before(async () => {
    app = await startTestApp({ logs: collect(lines) });
  });

  after(async () => {
    await app?.stop();
  });

  it('gives every request an id, in the X-Request-Id header and on its log line, keeping a caller\'s id', async () => {
    const res = await fetch(`${app.public}/healthz`);
    const id = res.headers.get('X-Request-Id');
    assert.match(id ?? '', /^[0-9a-f-]{36}$/);
    const own = await fetch(`${app.public}/healthz`, { headers: { 'X-Request-Id': 'trace-123' } });
    assert.equal(own.headers.get('X-Request-Id'), 'trace-123');
    const refused = await app.issue(workload('shop', 'web'), { csr: 'not a csr' });
    assert.equal(refused.status, 400);
    const refusedId = refused.headers.get('X-Request-Id');
    await new Promise((r) => setTimeout(r, 50));
    for (const rid of [id, 'trace-123', refusedId]) {
      const line = lines.find((l) => l.msg === 'request' && l.requestId === rid);
      assert.ok(line, `a request line with requestId ${rid}`);
    }
    // Every line written while serving a request carries its id.
    assert.ok(lines.filter((l) => l.path !== undefined).every((l) => typeof l.requestId === 'string'));
  });

  it('serves the metrics that operators alert on', async () => {
    const issued = await issueFor(app, workload('shop', 'web'), ['web.shop.svc']);
    const { csrPem } = await createKeyAndCsr('p256', { dns: ['not-granted.example.com'] });
    assert.equal((await app.issue(workload('shop', 'web'), { csr: csrPem })).status, 403);
    await revokeOk(app, issued.serial, ADMIN, 'keyCompromise');
    await app.running.deps.crl.active.sync();
    const res = await fetch(`${app.public}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('Content-Type') ?? '', /^text\/plain/);
    const text = await res.text();
    const value = (re: RegExp) => {
      const m = text.split('\n').find((l) => re.test(l));
      assert.ok(m, `a sample matching ${re}`);
      return Number(m.split(' ').pop());
    };
    assert.equal(value(/^service_ca_issuances_total\{result="issued",issuer="test"\}/), 1);
    assert.equal(value(/^service_ca_issuances_total\{result="rejectedIdentifier",issuer="test"\}/), 1);
    const issuedCount = value(/^service_ca_http_request_duration_seconds_count\{method="POST",route="\/v1\/certificates",status="201"\}/);
    assert.ok(issuedCount >= 1);
    assert.equal(value(/^service_ca_http_request_duration_seconds_bucket\{le="\+Inf",method="POST",route="\/v1\/certificates",status="201"\}/), issuedCount);
    // One issuance recorded, alone in its group-commit transaction.
    assert.equal(value(/^service_ca_issuances_batched_total /), 1);
    assert.equal(value(/^service_ca_issuance_batches_total /), 1);
    assert.equal(value(/^service_ca_revocations_total\{reason="keyCompromise"\}/), 1);
    assert.ok(value(/^service_ca_crl_generation_seconds_count/) >= 1);
    const kid = app.running.deps.crl.active.issuerKeyId;
    const labelled = (name: string) => new RegExp(`^${name}\\{issuer="${kid}"\\} `);
    assert.ok(value(labelled('service_ca_crl_number')) >= 1);
    assert.equal(value(labelled('service_ca_crl_entries')), 1);
    assert.ok(value(labelled('service_ca_crl_bytes')) > 100);
    // The served CRL's thisUpdate, as an independent reader of the DER (openssl) prints it.
    const crlText = execFileSync('openssl', ['crl', '-inform', 'DER', '-noout', '-lastupdate'], { input: Buffer.from(await (await fetch(`${app.public}/v1/crl`)).arrayBuffer()) }).toString();
    assert.equal(value(labelled('service_ca_crl_last_generated_timestamp_seconds')), Date.parse(crlText.replace(/^lastUpdate=/, '').trim()) / 1000);
    const expiry = value(new RegExp(`^service_ca_intermediate_expiry_seconds\\{issuer="${kid}",active="true"\\} `));
    assert.ok(expiry > 0 && expiry < 20 * 365 * 86400, `intermediate expiry ${expiry}`);
    assert.ok(value(/^process_cpu_seconds_total /) > 0);
    assert.ok(value(/^nodejs_heap_size_used_bytes /) > 0);
    if (testDatabaseUrl) assert.ok(value(/^service_ca_database_pool_connections\{state="open"\} /) >= 1);
  });
});

describe('request log sampling (logging.requestSample: 0)', () => {
  let app: TestApp;
  const lines: Line[] = [];

  before(async () => {
    app = await startTestApp({ logs: collect(lines), config: { logging: { level: 'info', requestSample: 0 } } });
  });

  after(async () => {
    await app?.stop();
  });

  it('logs no successful request, and every refused or failed one', async () => {
    const ok = await Promise.all([1, 2, 3].map(() => fetch(`${app.public}/healthz`)));
    assert.deepEqual(ok.map((r) => r.status), [200, 200, 200]);
    const issued = await issueFor(app, workload('shop', 'web'), ['web.shop.svc']);
    const refused = await app.issue(workload('shop', 'web'), { csr: 'not a csr' });
    assert.equal(refused.status, 400);
    const missing = await fetch(`${app.api}/v1/certificates/00ff`, { headers: { Authorization: `Bearer ${await app.token(ADMIN)}` } });
    assert.equal(missing.status, 404);
    await new Promise((r) => setTimeout(r, 50));
    const requests = lines.filter((l) => l.msg === 'request');
    assert.deepEqual(requests.map((l) => l.status).sort(), [400, 404], `request lines: ${JSON.stringify(requests)}`);
    assert.ok(!requests.some((l) => l.path === '/healthz' || l.path === `/v1/certificates/${issued.serial}`));
  });
});
