/**
 * What the container image runs, without a container (no image registry here): the build the
 * Dockerfile makes, started with the Dockerfile's own ENTRYPOINT and CMD on the compose
 * configuration (deploy/compose/config.yaml, only its ports moved to free ones), with the
 * Dockerfile's ENV and the environment docker-compose.yml gives it, /etc/service-ca being a
 * scratch folder with CA files from `service-ca init`. Checked: it becomes ready, the
 * Dockerfile's HEALTHCHECK command passes (and fails on a configuration whose public.port nothing
 * listens on), the Kubernetes probes' paths answer, a workload gets a certificate over the API's
 * TLS, and SIGTERM ends it inside compose's stop_grace_period.
 * Postgres only (the compose and Kubernetes layouts use it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { createKeyAndCsr } from '../setup/csr.js';
import { createTestDatabase, testDatabaseUrl, type TestDatabase } from '../setup/database.js';
import { runCli } from '../setup/cli-run.js';
import { PROJECT_ROOT, cleanEnv, exitWithin, freePort, killAll, spawnService, waitForStatus } from '../setup/processes.js';
import { createTestIssuer } from '../setup/tokens.js';

const ROOT = PROJECT_ROOT;

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('the container\'s runtime, without a container', { skip: testDatabaseUrl ? false : 'needs Postgres (TEST_DATABASE_URL): the deployments use it' }, () => {
  let database: TestDatabase;
  // Inside the repository, so that the build finds node_modules as the image's /app does.
  const build = mkdtempSync(join(ROOT, '.build-test-'));
  const etc = mkdtempSync(join(ROOT, '.etc-test-'));

  after(async () => {
    await killAll();
    await database?.drop();
    rmSync(build, { recursive: true, force: true });
    rmSync(etc, { recursive: true, force: true });
  });

  it('serves the compose configuration from the built image command, passes its healthcheck and stops within the grace period', async () => {
    database = await createTestDatabase();
    // The Dockerfile's build stage: `npm run build` (tsc, then the migrations beside the code).
    const tsc = await run(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', build]);
    assert.equal(tsc.code, 0, tsc.out);
    cpSync(join(ROOT, 'db/migrations'), join(build, 'db/migrations'), { recursive: true });

    // /etc/service-ca as compose mounts it: config.yaml, jwks.json and ca/ from `init`.
    const passphrase = 'pass-phrase-that-must-never-leak-7f3a';
    const init = await runCli(['init', '--dir', join(etc, 'ca'), '--intermediate-passphrase-env', 'CA_KEY_PASSPHRASE'], { env: { CA_KEY_PASSPHRASE: passphrase } });
    assert.equal(init.code, 0, init.describe);
    const issuer = await createTestIssuer();
    writeFileSync(join(etc, 'jwks.json'), readFileSync(issuer.jwksPath));
    const config = parse(readFileSync(join(ROOT, 'deploy/compose/config.yaml'), 'utf8')) as { server: Record<string, unknown>; public: Record<string, unknown>; dataDir: string };
    const [apiPort, publicPort] = [await freePort(), await freePort()];
    config.server.port = apiPort;
    config.public.port = publicPort;
    config.dataDir = join(etc, 'data');
    writeFileSync(join(etc, 'config.yaml'), stringify(config));

    // The Dockerfile's ENTRYPOINT, CMD, HEALTHCHECK and ENV: /app/dist is the build, /etc/service-ca is etc.
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8').replace(/\\\r?\n/g, ' ');
    const execForm = (pattern: RegExp) => {
      const json = pattern.exec(dockerfile)?.[1];
      assert.ok(json, `the Dockerfile has ${pattern.source} in exec form`);
      return (JSON.parse(json) as string[]).map((a) => (a === 'node' ? process.execPath : a.startsWith('dist/') ? join(build, a.slice('dist/'.length)) : a));
    };
    const entrypoint = execForm(/^ENTRYPOINT\s+(\[.*\])\s*$/m);
    const cmd = execForm(/^CMD\s+(\[.*\])\s*$/m);
    const healthcheck = execForm(/^HEALTHCHECK\s.*?\bCMD\s+(\[.*\])\s*$/m);
    const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { build?: unknown; environment?: Record<string, string> }> };
    const composeEnv = Object.values(compose.services).find((s) => s.build !== undefined)?.environment ?? {};
    const imageConfig = composeEnv.SERVICE_CA_CONFIG ?? /^ENV\s+SERVICE_CA_CONFIG=(\S+)\s*$/m.exec(dockerfile)?.[1];
    assert.equal(imageConfig, '/etc/service-ca/config.yaml', 'the image and compose read /etc/service-ca/config.yaml');
    const env = cleanEnv({ DATABASE_URL: database.url!, CA_KEY_PASSPHRASE: passphrase, OIDC_ISSUER: issuer.issuer, NODE_ENV: 'production', SERVICE_CA_CONFIG: join(etc, 'config.yaml') });
    const service = spawnService(entrypoint[0]!, [...entrypoint.slice(1), ...cmd], { cwd: build, env });
    await waitForStatus(`http://127.0.0.1:${publicPort}/readyz`, 200, service, 90_000);

    // The image's HEALTHCHECK, verbatim: it follows the configuration's public.port.
    const check = await run(healthcheck[0]!, healthcheck.slice(1), env);
    assert.equal(check.code, 0, `the HEALTHCHECK passes: ${check.out}`);
    assert.match(check.out, new RegExp(`http://127\\.0\\.0\\.1:${publicPort}/healthz answered 200`));
    writeFileSync(join(etc, 'elsewhere.yaml'), stringify({ ...config, public: { ...config.public, port: await freePort() } }));
    const elsewhere = await run(healthcheck[0]!, healthcheck.slice(1), { ...env, SERVICE_CA_CONFIG: join(etc, 'elsewhere.yaml') });
    assert.equal(elsewhere.code, 1, `and fails on a configuration whose public.port nothing listens on: ${elsewhere.out}`);

    // The Kubernetes probes' paths, read from the Deployment.
    const deployment = parse(readFileSync(join(ROOT, 'deploy/kubernetes/deployment.yaml'), 'utf8')) as { spec: { template: { spec: { containers: Record<string, { httpGet?: { path: string } }>[] } } } };
    const container = deployment.spec.template.spec.containers[0]!;
    for (const probe of ['livenessProbe', 'readinessProbe']) {
      const path = container[probe]?.httpGet?.path;
      assert.ok(path, `${probe} has an httpGet path`);
      assert.equal((await fetch(`http://127.0.0.1:${publicPort}${path}`)).status, 200, `${probe} ${path}`);
    }

    // A workload gets a certificate from the API listener (TLS auto, trusted through the root).
    const root = readFileSync(join(etc, 'ca', 'root.pem'), 'utf8');
    const { csrPem } = await createKeyAndCsr('p256', { dns: ['web.shop.svc'] });
    const token = await issuer.mint({ sub: 'spiffe://example.org/ns/shop/sa/web' });
    const status = await new Promise<number>((resolve, reject) => {
      const body = JSON.stringify({ csr: csrPem });
      const req = request(
        { host: '127.0.0.1', port: apiPort, path: '/v1/certificates', method: 'POST', ca: root, servername: 'localhost', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` } },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    assert.equal(status, 201);

    const composeGrace = Number(/stop_grace_period:\s*(\d+)s/.exec(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'))?.[1]);
    service.signal('SIGTERM');
    const exit = await exitWithin(service, composeGrace * 1000);
    assert.equal(exit.code, 0, service.output());
  });
});
