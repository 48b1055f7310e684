/**
 * How the command line finds the CA (src/cli/context.ts), as child processes against a TLS app
 * whose API certificate names only `ca.internal`, so that `https://127.0.0.1:PORT` is what a
 * `kubectl port-forward` gives: it fails the hostname check unless --tls-server-name (or
 * SERVICE_CA_TLS_SERVER_NAME, or the context's) names the certificate's name. `bootstrap` saves a
 * context that later commands use without --server or --ca; SERVICE_CA_URL, SERVICE_CA_ROOT and
 * SERVICE_CA_TOKEN_FILE stand in for the flags, and a flag wins over its variable. Also
 * `--version`, the usage on stderr when no command is given, `status --cert`, and a Go-style
 * `--ttl 1h30m`.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ServiceCaClient } from '../../src/client/index.js';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { inParallel, runCli, type CliResult } from '../setup/cli-run.js';
import { csrFor } from '../setup/csr.js';
import { freePort, PROJECT_ROOT } from '../setup/processes.js';

const OWNER = workload('shop', 'web');
const assertExit = (r: CliResult, code: number) => assert.equal(r.code, code, r.describe);

describe('the command line finds the CA through flags, environment and a saved context', { timeout: 170_000 }, () => {
  let app: TestApp;
  let dir: string;
  let rootFile: string;
  let fingerprint: string;
  let adminToken: string;
  let ownerToken: string;
  let serial: string;
  let certFile: string;
  let closedUrl: string;

  before(async () => {
    app = await startTestApp({ tls: true, config: { server: { host: '127.0.0.1', port: 0, tls: { mode: 'auto', names: ['ca.internal'] } } } });
    dir = mkdtempSync(join(tmpdir(), 'service-ca-cli-context-'));
    const rootPem = await (await fetch(`${app.public}/v1/ca/root.pem`)).text();
    rootFile = join(dir, 'root.pem');
    writeFileSync(rootFile, rootPem);
    fingerprint = createHash('sha256').update(new X509Certificate(rootPem).raw).digest('hex');
    adminToken = join(dir, 'admin.jwt');
    ownerToken = join(dir, 'owner.jwt');
    writeFileSync(adminToken, await app.issuer.mint({ sub: ADMIN }, { ttl: 3600 }));
    writeFileSync(ownerToken, await app.issuer.mint({ sub: OWNER }, { ttl: 3600 }));
    const client = new ServiceCaClient({ baseUrl: app.api, ca: rootPem, tlsServerName: 'ca.internal' });
    const issued = await client.issue(await app.issuer.mint({ sub: OWNER }), { csr: await csrFor({ dns: ['web.shop.svc'] }) });
    serial = issued.serial;
    certFile = join(dir, 'issued.pem');
    writeFileSync(certFile, issued.certificate);
    closedUrl = `https://127.0.0.1:${await freePort()}`;
  });
  after(async () => {
    await app?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh configuration folder: no context saved in it yet. */
  const configDir = (name: string) => join(dir, `config-${name}`);

  it('--version prints the package version; no command prints the usage on stderr and exits 2', async () => {
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
    const [version, none] = await inParallel([() => runCli(['--version']), () => runCli([])]);
    assertExit(version!, 0);
    assert.ok(version!.stdout.startsWith(`service-ca ${pkg.version} `), version!.describe);
    assertExit(none!, 2);
    assert.equal(none!.stdout, '', 'nothing on stdout');
    assert.ok(none!.stderr.startsWith('Usage: service-ca <command>'), none!.describe);
  });

  it('the hostname check uses --tls-server-name, and fails without it', async () => {
    const common = ['status', '--serial', serial, '--server', app.api, '--ca', rootFile, '--token-file', adminToken];
    const [plain, named, wrong] = await inParallel([
      () => runCli(common),
      () => runCli([...common, '--tls-server-name', 'ca.internal']),
      () => runCli([...common, '--tls-server-name', 'other.internal']),
    ]);
    assertExit(plain!, 1);
    assert.ok(plain!.stderr.includes("does not match certificate's altnames"), plain!.describe);
    assertExit(named!, 0);
    assert.ok(named!.stdout.startsWith(serial), named!.describe);
    assertExit(wrong!, 1);
    assert.ok(wrong!.stderr.includes('other.internal'), wrong!.describe);
  });

  it('environment variables stand in for the flags, and a flag wins over its variable', async () => {
    const env = { SERVICE_CA_CONFIG_DIR: configDir('env'), SERVICE_CA_URL: app.api, SERVICE_CA_ROOT: rootFile, SERVICE_CA_TOKEN_FILE: adminToken, SERVICE_CA_TLS_SERVER_NAME: 'ca.internal' };
    const [fromEnv, flagWins, envUsed, nothing] = await inParallel([
      () => runCli(['status', '--serial', serial], { env }),
      () => runCli(['status', '--serial', serial, '--server', app.api], { env: { ...env, SERVICE_CA_URL: closedUrl } }),
      () => runCli(['status', '--serial', serial], { env: { ...env, SERVICE_CA_URL: closedUrl } }),
      () => runCli(['status', '--serial', serial], { env: { SERVICE_CA_CONFIG_DIR: configDir('none') } }),
    ]);
    assertExit(fromEnv!, 0);
    assert.ok(fromEnv!.stdout.startsWith(serial), fromEnv!.describe);
    assertExit(flagWins!, 0);
    assertExit(envUsed!, 1);
    assert.ok(envUsed!.stderr.includes('ECONNREFUSED'), envUsed!.describe);
    assertExit(nothing!, 2);
    assert.ok(nothing!.stderr.includes('--server') && nothing!.stderr.includes('--token-file'), nothing!.describe);
  });

  it('bootstrap saves a context that later commands use; --context and SERVICE_CA_CONTEXT pick one', async () => {
    const env = { SERVICE_CA_CONFIG_DIR: configDir('saved') };
    const saved = await runCli(['bootstrap', '--url', app.public, '--fingerprint', fingerprint, '--server', app.api, '--tls-server-name', 'ca.internal'], { env });
    assertExit(saved, 0);
    const folder = join(env.SERVICE_CA_CONFIG_DIR, 'contexts', 'default');
    assert.equal(readFileSync(join(env.SERVICE_CA_CONFIG_DIR, 'current-context'), 'utf8').trim(), 'default');
    assert.deepEqual(JSON.parse(readFileSync(join(folder, 'context.json'), 'utf8')), { server: app.api, publicUrl: app.public, fingerprint, tlsServerName: 'ca.internal' });
    assert.equal(new X509Certificate(readFileSync(join(folder, 'root.pem'))).fingerprint256, new X509Certificate(readFileSync(rootFile)).fingerprint256);

    const out = join(dir, 'from-context');
    const [status, byCert, request] = await inParallel([
      () => runCli(['status', '--serial', serial, '--token-file', adminToken], { env }),
      () => runCli(['status', '--cert', certFile, '--json'], { env: { ...env, SERVICE_CA_TOKEN_FILE: ownerToken } }),
      () => runCli(['request', '--token-file', ownerToken, '--dns', 'web.shop.svc', '--ttl', '1h30m', '--out', out], { env }),
    ]);
    assertExit(status!, 0);
    assert.ok(status!.stdout.startsWith(serial), status!.describe);
    assertExit(byCert!, 0);
    assert.equal((JSON.parse(byCert!.stdout) as { serial: string }).serial, serial);
    assertExit(request!, 0);
    const leaf = new X509Certificate(readFileSync(`${out}.pem`));
    assert.equal((Date.parse(leaf.validTo) - Date.parse(leaf.validFrom)) / 1000, 5400, 'a lifetime of 1h30m');

    // A second context becomes the current one; the first stays reachable by name.
    const other = await runCli(['bootstrap', '--url', app.public, '--fingerprint', fingerprint, '--server', closedUrl, '--context', 'broken'], { env });
    assertExit(other, 0);
    const [current, named, byEnv, missing] = await inParallel([
      () => runCli(['status', '--serial', serial, '--token-file', adminToken], { env }),
      () => runCli(['status', '--serial', serial, '--token-file', adminToken, '--context', 'default'], { env }),
      () => runCli(['status', '--serial', serial, '--token-file', adminToken], { env: { ...env, SERVICE_CA_CONTEXT: 'default' } }),
      () => runCli(['status', '--serial', serial, '--token-file', adminToken, '--context', 'nope'], { env }),
    ]);
    assertExit(current!, 1);
    assert.ok(current!.stderr.includes('ECONNREFUSED'), current!.describe);
    assertExit(named!, 0);
    assertExit(byEnv!, 0);
    assertExit(missing!, 1);
    assert.ok(missing!.stderr.includes('no saved context "nope"'), missing!.describe);
  });

  it('flags alone need no context (a broken one is not read), and an empty variable counts as unset', async () => {
    const broken = configDir('broken');
    mkdirSync(join(broken, 'contexts', 'default'), { recursive: true });
    writeFileSync(join(broken, 'contexts', 'default', 'context.json'), '{not json');
    writeFileSync(join(broken, 'current-context'), 'default\n');
    const flags = ['status', '--serial', serial, '--server', app.api, '--ca', rootFile, '--tls-server-name', 'ca.internal', '--token-file', adminToken];
    const [allFlags, emptyVars, needsContext] = await inParallel([
      () => runCli(flags, { env: { SERVICE_CA_CONFIG_DIR: broken } }),
      () => runCli(flags, { env: { SERVICE_CA_CONFIG_DIR: broken, SERVICE_CA_ROOT: '', SERVICE_CA_URL: '', SERVICE_CA_TLS_SERVER_NAME: '' } }),
      () => runCli(['status', '--serial', serial, '--token-file', adminToken], { env: { SERVICE_CA_CONFIG_DIR: broken } }),
    ]);
    assertExit(allFlags!, 0);
    assertExit(emptyVars!, 0);
    assertExit(needsContext!, 1);
    assert.ok(needsContext!.stderr.includes('the saved context "default" cannot be read'), needsContext!.describe);
  });

  it('bootstrap saves nothing when the fingerprint does not match', async () => {
    const env = { SERVICE_CA_CONFIG_DIR: configDir('mismatch') };
    const r = await runCli(['bootstrap', '--url', app.public, '--fingerprint', '00'.repeat(32), '--server', app.api], { env });
    assertExit(r, 1);
    assert.equal(existsSync(env.SERVICE_CA_CONFIG_DIR), false, 'no configuration folder was made');
  });
});
