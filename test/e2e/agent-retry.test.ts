/**
 * The rotation agent when an answer is lost (docs/api.md "Certificate holder", "Retries"), beside
 * agent.test.ts (whose run already takes most of a file's 180 s budget): the real `service-ca
 * agent` as a child process against the real app over TLS, through a TCP proxy
 * (test/setup/tcp-proxy.ts). Once the app has logged a POST's answer, and before node writes its
 * bytes (the request log line is written synchronously just before), the proxy holds them and then
 * resets the connection, or the agent is killed meanwhile: the CA has committed the certificate
 * and the agent never receives it. The agent must retry with the key and CSR it kept (in
 * PREFIX.pending.key, 0600) and the same identity token, so that the CA answers 200 with the
 * certificate it made instead of making a second one. A renewal the CA refuses as a reuse
 * (someone else renewed the certificate) is logged at level error and the certificate is never
 * presented again.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DestinationStream } from 'pino';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { holderJwt } from '../setup/holder.js';
import { until } from '../setup/load.js';
import { openssl } from '../setup/openssl.js';
import { watchPemFiles, type PemWatch, type SeenCertificate } from '../setup/pem-watch.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { CLI, TSX_LOADER, cleanEnv, killAll, logLines, spawnService, type ChildService, type LogLine } from '../setup/processes.js';
import { startTcpProxy, type TcpProxy } from '../setup/tcp-proxy.js';
import { createTestIssuer, issuerConfig, type TestIssuer } from '../setup/tokens.js';

const spki = (c: SeenCertificate) => c.cert.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

describe('service-ca agent when an answer is lost or a renewal is refused as a reuse', { timeout: 170_000 }, () => {
  const RENEWER = workload('payments', 'api');
  const BATCH = workload('payments', 'batch');
  const WORKER = workload('payments', 'worker');
  const namesOf = (sub: string) => ['--dns', `${sub.split('/').at(-1)}.payments.svc`, '--uri', sub];
  let pki: TestPki;
  let issuer: TestIssuer;
  let database: TestDatabase;
  let app: TestApp;
  let proxy: TcpProxy;
  let dir: string;
  let rootPath: string;
  const watches: PemWatch[] = [];
  const lines: LogLine[] = [];
  /** Armed by a test: the next POST to path the app answers has its answer held, then `then` runs. */
  let drop: { path: string; then: (line: LogLine) => void } | undefined;
  const stream: DestinationStream = {
    write(s: string) {
      for (const text of s.split('\n')) {
        if (!text.startsWith('{')) continue;
        const l = JSON.parse(text) as LogLine;
        lines.push(l);
        if (drop && l.msg === 'request' && l.method === 'POST' && l.path === drop.path) {
          const d = drop;
          drop = undefined;
          proxy.partition();
          d.then(l);
        }
      }
    },
  };
  const answers = (path: string) => lines.filter((l) => l.msg === 'request' && l.method === 'POST' && l.path === path).map((l) => l.status);
  const dropThenReset = (path: string) =>
    new Promise<LogLine>((resolve) => {
      drop = { path, then: (l) => void proxy.cut().then(() => proxy.restore()).then(() => resolve(l)) };
    });
  const records = async (identity: string) => (await app.client.list(await app.token(ADMIN), { identity })).items;
  /** The public key of a certificate, a private key or a public key (PEM). */
  const spkiOf = (pem: string) => (pem.includes('BEGIN CERTIFICATE-----') ? new X509Certificate(pem).publicKey : createPublicKey(pem)).export({ type: 'spki', format: 'der' }).toString('base64');
  const tokenFile = async (sub: string) => {
    const path = join(dir, `${sub.split('/').at(-1)}.jwt`);
    writeFileSync(path, `${await issuer.mint({ sub }, { ttl: 3600 })}\n`);
    return path;
  };
  const startAgent = (prefix: string, tokenPath: string, sub: string) =>
    spawnService(
      process.execPath,
      ['--import', TSX_LOADER, CLI, 'agent', '--server', `https://127.0.0.1:${proxy.port}`, '--ca', rootPath, '--token-file', tokenPath, ...namesOf(sub), '--out', prefix, '--max-backoff', '2s'],
      { cwd: dir, env: cleanEnv() },
    );
  const watch = (prefix: string) => {
    const w = watchPemFiles(prefix);
    watches.push(w);
    return w;
  };
  const failWith = (agent: ChildService) => (err: Error) => assert.fail(`${err.message}\nagent output:\n${agent.output().slice(-6000)}`);

  before(async () => {
    [pki, issuer, database] = await Promise.all([createTestPki('p256'), createTestIssuer(), createTestDatabase()]);
    app = await startTestApp({
      pki,
      issuer,
      database,
      tls: true,
      logs: stream,
      config: {
        issuance: { defaultTtl: '20s', maxTtl: '1h', backdate: '1s' },
        // One-time identity tokens: only an idempotent retry (same token, same CSR) can reuse one.
        auth: {
          issuers: [issuerConfig(issuer, 'test', { requireJti: true })],
          admins: { identities: [ADMIN] },
        },
      },
    });
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(app.api).port) });
    dir = mkdtempSync(join(tmpdir(), 'service-ca-agent-lost-'));
    rootPath = join(dir, 'root.pem');
    writeFileSync(rootPath, await (await fetch(`${app.public}/v1/ca/root.pem`)).text());
  });
  after(async () => {
    await Promise.all(watches.map((w) => w.stop()));
    await killAll();
    await proxy?.close();
    await app?.stop();
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let renewer: ChildService;
  let renewerWatch: PemWatch;
  const renewerPrefix = () => join(dir, 'api');

  it('retries a renewal whose answer was lost with the same key: the CA answers 200 with the renewal it made', async () => {
    const tokenPath = await tokenFile(RENEWER);
    renewerWatch = watch(renewerPrefix());
    renewer = startAgent(renewerPrefix(), tokenPath, RENEWER);
    const c0 = await renewerWatch.next(undefined, 30_000).catch(failWith(renewer));
    unlinkSync(tokenPath); // the renewal goes through POST /v1/certificates/renew
    const lost = dropThenReset('/v1/certificates/renew');
    const c1 = await renewerWatch.next(c0.serial, 30_000).catch(failWith(renewer));
    assert.equal((await lost).status, 201, 'the CA made the renewal whose answer was lost');

    const renewals = (await records(RENEWER)).filter((r) => r.serial !== c0.serial);
    assert.ok(renewals.length >= 1);
    assert.deepEqual(renewals.map((r) => spkiOf(r.certificate)), renewals.map(() => spki(c1)), 'every renewal the CA made carries the key the agent kept (the retry sent the same CSR)');
    assert.equal(spkiOf(readFileSync(`${renewerPrefix()}.key`, 'utf8')), spki(c1), 'the key file holds that key');
    // The agent removes it just after writing the certificate (a crash in between leaves a key the certificate carries: discarded).
    await until('the pending key removed once the certificate is written', () => !existsSync(`${renewerPrefix()}.pending.key`), 5000);
    const logs = logLines(renewer);
    assert.ok(logs.some((l) => l.msg === 'retrying the unanswered request with the same key and CSR' && l.replaces === c0.serial), renewer.output().slice(-4000));
    // The CA's side (docs/api.md "Certificate holder"): one renewal, and the retry answered 200 with it.
    assert.deepEqual(renewals.map((r) => r.serial), [c1.serial], 'one renewal, not two');
    assert.deepEqual(answers('/v1/certificates/renew'), [201, 200]);
  });

  it('logs at level error when a renewal is refused as a reuse, never presents that certificate again, and recovers with a new token', async (t) => {
    t.after(() => renewer.kill()); // a failure here must not leave it running into the next tests
    const prefix = renewerPrefix();
    const c1 = renewerWatch.current()!;
    // Someone holding the agent's key renews its certificate first, with a key of their own.
    const stolenKey = readFileSync(`${prefix}.key`, 'utf8');
    const theirs = await createKeyAndCsr('p256', { dns: ['api.payments.svc'], uri: [RENEWER] });
    await app.client.renew(await holderJwt({ certificate: c1.pem, keyPem: stolenKey }), { csr: theirs.csrPem });
    const before = answers('/v1/certificates/renew').length;

    // In c1's window the agent renews; the CA refuses it as a reuse; the agent says so, again at each retry.
    const refusals = () => logLines(renewer).filter((l) => l.level === 50 && /already renewed/.test(l.msg));
    await until('two reuse errors in the agent log', () => refusals().length >= 2, 30_000).catch(failWith(renewer));
    const [first] = refusals();
    assert.equal(first!.serial, c1.serial);
    assert.match(first!.msg, /someone else: its private key may be compromised/);
    assert.match(String(first!.err), /^401 unauthorized: .*already (been )?renewed/);
    assert.deepEqual(answers('/v1/certificates/renew').slice(before), [401], 'the agent presented the refused certificate once');
    assert.equal(renewerWatch.current()!.serial, c1.serial, 'the agent keeps its files');

    // The key it made for that renewal was never certified: a new identity token certifies it.
    const pending = readFileSync(`${prefix}.pending.key`, 'utf8');
    await tokenFile(RENEWER);
    const c2 = await renewerWatch.next(c1.serial, 20_000).catch(failWith(renewer));
    assert.equal(spki(c2), spkiOf(pending), 'the identity token certified the kept key');
    assert.deepEqual(answers('/v1/certificates/renew').slice(before), [401], 'never presented again');
  });

  it('retries a first issuance whose answer was lost with the same token and CSR, even after the token file changed', async (t) => {
    const prefix = join(dir, 'batch');
    const tokenPath = await tokenFile(BATCH);
    const next = `${await issuer.mint({ sub: BATCH }, { ttl: 3600 })}\n`;
    const before = answers('/v1/certificates').length;
    const lost = new Promise<LogLine>((resolve) => {
      drop = {
        path: '/v1/certificates',
        then: (l) => {
          writeFileSync(tokenPath, next); // a rotated token: the retry must still send the one it sent
          void proxy.cut().then(() => proxy.restore()).then(() => resolve(l));
        },
      };
    });
    const w = watch(prefix);
    const agent = startAgent(prefix, tokenPath, BATCH);
    t.after(() => agent.kill());
    const c = await w.next(undefined, 30_000).catch(failWith(agent));
    assert.equal((await lost).status, 201);
    const made = await records(BATCH);
    assert.deepEqual(made.map((r) => spkiOf(r.certificate)), made.map(() => spki(c)), 'every certificate the CA made carries the key the agent kept');
    assert.deepEqual(made.map((r) => r.serial), [c.serial], 'one certificate: the retry got the one issued then');
    assert.deepEqual(answers('/v1/certificates').slice(before), [201, 200]);
  });

  it('a restarted agent retries with the key and CSR it kept on disk', async (t) => {
    const prefix = join(dir, 'worker');
    const tokenPath = await tokenFile(WORKER);
    const w = watch(prefix);
    let agent = startAgent(prefix, tokenPath, WORKER);
    t.after(() => agent.kill());
    // The CA issues; the agent is killed before the answer reaches it.
    const lost = await new Promise<LogLine>((resolve) => {
      drop = { path: '/v1/certificates', then: (l) => void agent.kill().then(() => proxy.cut()).then(() => proxy.restore()).then(() => resolve(l)) };
    });
    assert.equal(lost.status, 201);
    assert.equal(existsSync(`${prefix}.pem`), false, 'the agent died without its certificate');
    const pendingPath = `${prefix}.pending.key`;
    assert.ok(existsSync(pendingPath), `the pending key is kept\n${agent.output()}`);
    assert.equal(statSync(pendingPath).mode & 0o777, 0o600, 'the pending key is 0600');
    const pending = readFileSync(pendingPath, 'utf8');
    const csrKey = openssl(['req', '-in', { file: 'p.pem', content: pending }, '-noout', '-verify', '-pubkey']);
    assert.equal(csrKey.status, 0, csrKey.stderr);
    assert.equal(spkiOf(csrKey.stdout), spkiOf(pending), 'the kept CSR is for the kept key');
    const [made, ...more] = await records(WORKER);
    assert.deepEqual(more, []);
    assert.equal(spkiOf(made!.certificate), spkiOf(pending), 'the CA certified the kept key');

    agent = startAgent(prefix, tokenPath, WORKER);
    const c = await w.next(undefined, 30_000).catch(failWith(agent));
    assert.ok(logLines(agent).some((l) => l.msg === 'a request was left unanswered; it will be retried with the same key and CSR'), agent.output());
    assert.equal(spki(c), spkiOf(pending));
    await until('the pending key removed once the certificate is written', () => !existsSync(pendingPath), 5000);
    assert.equal(c.serial, made!.serial, 'the CA answered with the certificate it had issued');
    assert.deepEqual((await records(WORKER)).map((r) => r.serial), [made!.serial]);
  });
});
