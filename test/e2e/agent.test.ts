/**
 * The rotation agent end to end (docs/api.md "Renewal window", "Certificate holder"): the real
 * `service-ca agent` as a child process against the real app speaking TLS, with 30-second
 * certificates. It renews inside each certificate's window with a new key and runs its hook,
 * renews with its current certificate when the token file is gone, replaces a revoked
 * certificate within one poll, keeps its still-valid certificate while the CA is down and
 * recovers when it is back, never lets a reader see a half-written file, and stops promptly on
 * SIGTERM. `--once` obtains a certificate and exits, and leaves valid files alone.
 */
import assert from 'node:assert/strict';
import { createHash, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { DestinationStream } from 'pino';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { watchPemFiles, type PemWatch, type SeenCertificate } from '../setup/pem-watch.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { CLI, TSX_LOADER, cleanEnv, exitWithin, freePort, killAll, logLines, spawnService, type ChildService } from '../setup/processes.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const SUB = workload('payments', 'api');
const NAME_ARGS = ['--dns', 'api.payments.svc', '--uri', SUB];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sleepUntil = (t: number) => sleep(Math.max(0, t - Date.now()));
const spki = (c: SeenCertificate) => c.cert.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');
const digest = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

/** The app's own request log: POSTs that issued (201), by path. */
function appLog() {
  const lines: { msg?: string; method?: string; path?: string; status?: number }[] = [];
  const stream: DestinationStream = {
    write(s: string) {
      for (const l of s.split('\n')) if (l.startsWith('{')) lines.push(JSON.parse(l) as (typeof lines)[number]);
    },
  };
  const issued = (path: string) => lines.filter((l) => l.msg === 'request' && l.method === 'POST' && l.path === path && l.status === 201).length;
  return { stream, issued: () => ({ token: issued('/v1/certificates'), holder: issued('/v1/certificates/renew') }) };
}

describe('service-ca agent against a TLS CA with 30-second certificates', { timeout: 170_000 }, () => {
  let pki: TestPki;
  let issuer: TestIssuer;
  let database: TestDatabase;
  let app: TestApp;
  let port: number;
  let dir: string;
  let rootPath: string;
  let tokenPath: string;
  let hookPath: string;
  let prefix: string;
  let agent: ChildService;
  let watch: PemWatch;
  const log = appLog();
  const renewals: { from: SeenCertificate; to: SeenCertificate }[] = [];

  const start = () =>
    startTestApp({
      pki,
      issuer,
      database,
      tls: true,
      logs: log.stream,
      config: {
        server: { host: '127.0.0.1', port, tls: { mode: 'auto', names: ['localhost', '127.0.0.1'] } },
        issuance: { defaultTtl: '30s', maxTtl: '1h', backdate: '1s' },
      },
    });
  const writeToken = async () => writeFileSync(tokenPath, `${await issuer.mint({ sub: SUB }, { ttl: 3600 })}\n`);
  const hookSerials = () => (existsSync(hookPath) ? readFileSync(hookPath, 'utf8').split('\n').filter(Boolean).map((l) => l.replace(/^serial=/, '').toLowerCase()) : []);
  const diagnostics = () => `agent output:\n${agent?.output().slice(-6000)}\nseen: ${watch?.certificates.map((c) => `${c.serial} nb=${new Date(c.notBefore).toISOString()} seen=${new Date(c.seenAt).toISOString()}`).join('\n')}`;

  /** The hook's serials once it has run as many times as certificates were seen (at most 5 s). */
  const hooksAfterAllWrites = async () => {
    const deadline = Date.now() + 5000;
    while (hookSerials().length < watch.certificates.length && Date.now() < deadline) await sleep(50);
    return hookSerials();
  };

  /** The first 'renewing' log line for serial. */
  const renewingLine = (serial: string) => logLines(agent).find((l) => l.msg === 'renewing' && l.serial === serial);

  /**
   * The next certificate after `from`, which the agent must have fetched inside from's window:
   * its decision ('renewing') at or after notBefore + 2/3 L, and the CA's issuance time (the new
   * notBefore + the 1 s backdate, whole seconds) between the window's start and its end plus
   * 2 s for the request to arrive on a loaded machine, well before from expires at + 30 s.
   */
  const nextInWindow = async (from: SeenCertificate): Promise<SeenCertificate> => {
    const to = await watch.next(from.serial, Math.max(0, from.notBefore + 35_000 - Date.now()));
    const start = from.notBefore + 20_000;
    const end = from.notBefore + 25_000;
    assert.equal(from.notAfter - from.notBefore, 30_000, 'a 30-second certificate');
    const line = renewingLine(from.serial);
    assert.ok(line, `a "renewing" log line for ${from.serial}\n${diagnostics()}`);
    assert.ok(Date.parse(line.time) >= start, `the agent decided to renew at ${line.time}, not before the window opened at ${new Date(start).toISOString()}`);
    const issuedAt = to.notBefore + 1000;
    assert.ok(issuedAt >= start, `renewed at ${new Date(issuedAt).toISOString()}, not before the window opened at ${new Date(start).toISOString()}\n${diagnostics()}`);
    assert.ok(issuedAt <= end + 2000, `renewed at ${new Date(issuedAt).toISOString()}, inside the window ending ${new Date(end).toISOString()}\n${diagnostics()}`);
    assert.notEqual(spki(to), spki(from), 'a new key');
    renewals.push({ from, to });
    return to;
  };

  before(async () => {
    [pki, issuer, database] = await Promise.all([createTestPki('p256'), createTestIssuer(), createTestDatabase()]);
    port = await freePort();
    app = await start();
    assert.equal(app.api, `https://127.0.0.1:${port}`);
    dir = mkdtempSync(join(tmpdir(), 'service-ca-agent-'));
    rootPath = join(dir, 'root.pem');
    writeFileSync(rootPath, await (await fetch(`${app.public}/v1/ca/root.pem`)).text());
    tokenPath = join(dir, 'token.jwt');
    hookPath = join(dir, 'hook.log');
    prefix = join(dir, 'svc');
    await writeToken();
  });
  after(async () => {
    await watch?.stop();
    await killAll();
    await app?.stop();
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('obtains a first certificate with the token, writes the files and runs the hook', async () => {
    watch = watchPemFiles(prefix);
    agent = spawnService(
      process.execPath,
      [
        '--import', TSX_LOADER, CLI, 'agent', '--server', app.api, '--ca', rootPath, '--token-file', tokenPath, ...NAME_ARGS,
        '--out', prefix, '--max-backoff', '2s', '--on-renew', `openssl x509 -noout -serial -in '${prefix}.pem' >> '${hookPath}'`,
      ],
      { cwd: dir, env: cleanEnv() },
    );
    const first = await watch.next(undefined, 30_000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    assert.equal(first.cert.subjectAltName, `DNS:api.payments.svc, URI:${SUB}`);
    assert.equal(first.notAfter - first.notBefore, 30_000);
    assert.equal(statSync(`${prefix}.key`).mode & 0o777, 0o600, 'the key file is 0600');
    assert.ok(first.cert.checkPrivateKey(createPrivateKey(readFileSync(`${prefix}.key`, 'utf8'))));
    assert.deepEqual(log.issued(), { token: 1, holder: 0 });
    assert.deepEqual(await hooksAfterAllWrites(), [first.serial], 'the hook ran once, after the certificate was in place');
  });

  it('renews inside the window with a new key and runs the hook', async () => {
    const c0 = watch.certificates[0]!;
    const c1 = await nextInWindow(c0);
    assert.deepEqual(log.issued(), { token: 2, holder: 0 }, 'with the token file present, the identity token is used');
    assert.deepEqual(await hooksAfterAllWrites(), [c0.serial, c1.serial]);
  });

  it('renews with its current certificate after the token file was deleted', async () => {
    unlinkSync(tokenPath);
    const c1 = watch.current()!;
    const c2 = await nextInWindow(c1);
    assert.deepEqual(log.issued(), { token: 2, holder: 1 }, 'the renewal went through POST /v1/certificates/renew');
    const record = await app.client.getCertificate(await app.token(ADMIN), c2.serial);
    assert.equal(record.identity, SUB, 'the same identity');
    assert.equal(record.status, 'valid');
    assert.deepEqual(await hooksAfterAllWrites(), watch.certificates.map((c) => c.serial));
  });

  it('replaces a revoked certificate within one poll', async () => {
    await writeToken();
    const c2 = watch.current()!;
    const revoked = await app.client.revoke(await app.token(ADMIN), c2.serial, 'keyCompromise');
    assert.equal(revoked.status, 'revoked');
    const revokedAt = Date.now();
    const c3 = await watch.next(c2.serial, 15_000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    const ms = c3.seenAt - revokedAt;
    assert.ok(ms <= 6000, `replaced ${ms} ms after the revocation (Retry-After is 3 s)\n${diagnostics()}`);
    assert.ok(c3.seenAt < c2.notBefore + 20_000, 'long before the revoked certificate\'s own window');
    const line = renewingLine(c2.serial);
    assert.ok(line && line.windowStart === line.windowEnd, `the agent saw an open window: ${JSON.stringify(line)}`);
    assert.notEqual(spki(c3), spki(c2));
    assert.deepEqual(log.issued(), { token: 3, holder: 1 });
  });

  it('keeps the valid certificate while the CA is down, logs backoff, and renews when it returns', async () => {
    const c3 = watch.current()!;
    await sleepUntil(c3.notBefore + 10_000);
    const files = [`${prefix}.pem`, `${prefix}.key`, `${prefix}.chain.pem`];
    const before = files.map(digest);
    await app.stop();
    const downAt = Date.now();
    await sleepUntil(c3.notBefore + 19_000);
    assert.ok(Date.now() < c3.notAfter, 'the certificate is still valid');
    assert.equal(watch.current()!.serial, c3.serial, 'no new certificate while the CA is down');
    assert.deepEqual(files.map(digest), before, 'the files are unchanged');
    const backoff = logLines(agent).filter((l) => Date.parse(l.time) >= downAt && l.level === 40 && /retrying/.test(l.msg));
    assert.ok(backoff.length >= 1, `the agent logged its backoff\n${diagnostics()}`);
    assert.ok(backoff.every((l) => l.valid === true && typeof l.retryInMs === 'number' && (l.retryInMs as number) <= 2000), JSON.stringify(backoff));

    const restartAt = Date.now();
    app = await start();
    const c4 = await watch.next(c3.serial, 20_000).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    assert.ok(c4.notBefore + 2000 > restartAt, 'issued by the returned CA');
    assert.notEqual(spki(c4), spki(c3));
    assert.equal(c4.notAfter - c4.notBefore, 30_000);
  });

  it('never let a reader see a half-written file', async () => {
    const hooks = await hooksAfterAllWrites();
    await watch.stop();
    assert.deepEqual(watch.failures, []);
    assert.ok(watch.certificates.length >= 5, `saw ${watch.certificates.length} certificates`);
    assert.ok(watch.rounds > 1000, `the reader polled ${watch.rounds} times`);
    assert.equal(new Set(watch.certificates.map(spki)).size, watch.certificates.length, 'every certificate has its own key');
    assert.ok(renewals.length >= 2);
    assert.deepEqual(hooks, watch.certificates.map((c) => c.serial), 'the hook ran once per certificate, in order');
  });

  it('exits 0 promptly on SIGTERM', async () => {
    const t = Date.now();
    agent.signal('SIGTERM');
    const e = await exitWithin(agent, 5000);
    assert.equal(e.signal, null);
    assert.equal(e.code, 0, agent.output().slice(-2000));
    assert.ok(Date.now() - t < 5000);
  });

  it('--once obtains a certificate and exits 0; again with valid files it exits 0 without renewing', async () => {
    const once = join(dir, 'once');
    const run = async () => {
      const s = spawnService(
        process.execPath,
        ['--import', TSX_LOADER, CLI, 'agent', '--once', '--server', app.api, '--ca', rootPath, '--token-file', tokenPath, ...NAME_ARGS, '--ttl', '10m', '--out', once],
        { cwd: dir, env: cleanEnv() },
      );
      const e = await exitWithin(s, 30_000);
      assert.equal(e.code, 0, s.output());
      return s;
    };
    const before = log.issued();
    await run();
    const first = readFileSync(`${once}.pem`, 'utf8');
    const key = readFileSync(`${once}.key`, 'utf8');
    assert.ok(readFileSync(`${once}.chain.pem`, 'utf8').includes('BEGIN CERTIFICATE'));
    assert.equal(log.issued().token, before.token + 1);
    await run();
    assert.equal(readFileSync(`${once}.pem`, 'utf8'), first, 'the same certificate');
    assert.equal(readFileSync(`${once}.key`, 'utf8'), key, 'the same key');
    assert.deepEqual(log.issued(), { token: before.token + 1, holder: before.holder }, 'nothing was issued the second time');
  });

  it('--once exits 1 when it cannot obtain a first certificate', async () => {
    const closed = await freePort();
    const s = spawnService(
      process.execPath,
      ['--import', TSX_LOADER, CLI, 'agent', '--once', '--server', `https://127.0.0.1:${closed}`, '--ca', rootPath, '--token-file', tokenPath, ...NAME_ARGS, '--out', join(dir, 'none')],
      { cwd: dir, env: cleanEnv() },
    );
    const e = await exitWithin(s, 30_000);
    assert.equal(e.code, 1, s.output());
    assert.equal(existsSync(join(dir, 'none.pem')), false);
  });
});
