/**
 * The example workload (deploy/kubernetes/examples/workload) run the way the kubelet runs it,
 * without a cluster: its init container's and its agent sidecar's arguments and environment,
 * read from deployment.yaml, in that order, against a real CA (TLS) that trusts a test issuer
 * as deploy/kubernetes/configmap.yaml trusts the cluster's service-account issuer (the same
 * identity template, audience and token age) and grants names by that ConfigMap's policies.
 * Only what the cluster provides is replaced: every volume is a folder named after it (so
 * containers that mount one volume share one folder, as with an emptyDir), the projected token
 * is a token for the pod's service account minted by the test issuer with the projection's
 * audience and lifetime, the root ConfigMap holds the CA's root, and SERVICE_CA_URL is the test
 * CA's URL. nginx is a stand-in that writes its PID where nginx.conf's `pid` says, and on each
 * SIGHUP records the certificate it would now load (nginx.conf's ssl_certificate).
 *
 * The init command exits 0 and leaves files that `openssl verify` accepts, for the names the
 * policy grants; the sidecar then renews the 30-second certificate inside its window with a new
 * key and sends SIGHUP to the PID in the PID file once the new files are in place, and stops on
 * SIGTERM.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { startTestApp, type TestApp } from '../setup/app.js';
import { runCli } from '../setup/cli-run.js';
import { watchPemFiles, type PemWatch } from '../setup/pem-watch.js';
import { CLI, PROJECT_ROOT, TSX_LOADER, cleanEnv, exitWithin, killAll, spawnService, type ChildService } from '../setup/processes.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const WORKLOAD = 'deploy/kubernetes/examples/workload';

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface Volume {
  name: string;
  projected?: { sources: { serviceAccountToken?: { audience?: string; expirationSeconds?: number; path: string } }[] };
  configMap?: { name: string; items?: { key: string; path: string }[] };
}
interface PodSpec { serviceAccountName?: string; initContainers?: Container[]; containers: Container[]; volumes?: Volume[] }
interface IssuerRaw { name: string; issuer: string; audience: string | string[]; identity: string; jwks?: unknown; algorithms?: string[] }

const read = (rel: string) => readFileSync(join(PROJECT_ROOT, rel), 'utf8');
const serialOf = (hex: string) => hex.toLowerCase().replace(/^00(?=[89a-f])/, '');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every value after --name in an argument list. */
const flagValue = (args: string[] | undefined, name: string) => {
  const i = (args ?? []).lastIndexOf(`--${name}`);
  return i >= 0 ? args![i + 1] : undefined;
};

/**
 * The pod as the test runs it: each volume a folder scratch/<volume name>, and a container's
 * path inside a mount the same path inside its volume's folder.
 */
function localPod(pod: PodSpec, scratch: string) {
  for (const v of pod.volumes ?? []) mkdirSync(join(scratch, v.name), { recursive: true });
  const local = (c: Container, value: string) => {
    const mount = [...(c.volumeMounts ?? [])]
      .sort((a, b) => b.mountPath.length - a.mountPath.length)
      .find((m) => value === m.mountPath || value.startsWith(`${m.mountPath.replace(/\/+$/, '')}/`));
    return mount ? join(scratch, mount.name, posix.relative(mount.mountPath, value)) : value;
  };
  return {
    local,
    /** A container's arguments, with in-cluster paths local. */
    args: (c: Container) => (c.args ?? []).map((a) => local(c, a)),
    /** A container's environment, with in-cluster paths local and the CA's URL replaced. */
    env: (c: Container, caUrl: string) =>
      Object.fromEntries((c.env ?? []).flatMap((e) => (e.value === undefined ? [] : [[e.name, e.name === 'SERVICE_CA_URL' ? caUrl : local(c, e.value)]]))) as Record<string, string>,
  };
}

describe('the example workload\'s init container and agent sidecar against a CA with 30-second certificates', { timeout: 170_000 }, () => {
  const scratch = mkdtempSync(join(tmpdir(), 'service-ca-workload-'));
  const deployment = parseYaml(read(`${WORKLOAD}/deployment.yaml`)) as { spec: { template: { spec: PodSpec } } };
  const pod = deployment.spec.template.spec;
  const namespace = (parseYaml(read(`${WORKLOAD}/kustomization.yaml`)) as { namespace: string }).namespace;
  const nginxConf = (parseYaml(read(`${WORKLOAD}/nginx-config.yaml`)) as { data: Record<string, string> }).data['nginx.conf']!;
  const caConfig = parseYaml((parseYaml(read('deploy/kubernetes/configmap.yaml')) as { data: Record<string, string> }).data['config.yaml']!) as {
    auth: { issuers: IssuerRaw[] };
    policies: unknown[];
  };
  const isAgent = (c: Container) => c.args?.[0] === 'agent';
  const init = (pod.initContainers ?? []).filter(isAgent);
  const sidecars = pod.containers.filter(isAgent);
  const nginx = pod.containers.find((c) => !isAgent(c))!;
  const { local, args, env } = localPod(pod, scratch);
  const directive = (name: string) => new RegExp(`^\\s*${name}\\s+(\\S+);`, 'm').exec(nginxConf)?.[1];

  let issuer: TestIssuer;
  let app: TestApp;
  let watch: PemWatch | undefined;
  let sidecar: ChildService | undefined;
  let standIn: ChildService | undefined;
  let prefix: string;
  let rootPem: string;

  before(async () => {
    assert.equal(init.length, 1, 'one init container runs the agent');
    assert.equal(sidecars.length, 1, 'one sidecar runs the agent');
    // The image's ENTRYPOINT is the command line these arguments go to (runCli runs the same from source).
    assert.match(read('Dockerfile'), /^ENTRYPOINT \["node", "dist\/src\/cli\/index\.js"\]$/m);
    for (const c of [...init, ...sidecars]) assert.equal(c.command, undefined, `${c.name} keeps the image's entrypoint`);

    // The CA as configmap.yaml configures it, its Kubernetes issuer played by a test issuer.
    const projection = pod.volumes!.flatMap((v) => v.projected?.sources ?? []).find((s) => s.serviceAccountToken)!.serviceAccountToken!;
    const k8s = caConfig.auth.issuers.find((i) => i.issuer.startsWith('https://kubernetes.default.svc'))!;
    issuer = await createTestIssuer({ audience: projection.audience!, issuer: 'https://kubernetes.test' });
    app = await startTestApp({
      issuer,
      tls: true,
      config: {
        auth: { issuers: [{ ...k8s, issuer: issuer.issuer, jwks: { file: issuer.jwksPath } }] },
        policies: caConfig.policies,
        issuance: { defaultTtl: '30s', maxTtl: '1h', backdate: '1s' },
      },
    });
    rootPem = await (await fetch(`${app.public}/v1/ca/root.pem`)).text();

    // What the cluster provides: the projected token for the pod's service account, and the root ConfigMap.
    const kubernetes = { namespace, serviceaccount: { name: pod.serviceAccountName, uid: randomUUID() }, pod: { name: 'web-0', uid: randomUUID() } };
    const token = await issuer.mint({ sub: `system:serviceaccount:${namespace}:${pod.serviceAccountName}`, 'kubernetes.io': kubernetes }, { ttl: projection.expirationSeconds ?? 3600 });
    for (const c of [...init, ...sidecars]) {
      const e = env(c, app.api);
      writeFileSync(e.SERVICE_CA_TOKEN_FILE ?? local(c, flagValue(c.args, 'token-file')!), `${token}\n`);
      writeFileSync(e.SERVICE_CA_ROOT ?? local(c, flagValue(c.args, 'ca')!), rootPem);
    }
    prefix = local(init[0]!, flagValue(init[0]!.args, 'out')!);
  });
  after(async () => {
    await watch?.stop();
    await killAll();
    await app?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('the init container\'s command exits 0 with a certificate for the granted names that openssl verifies', async () => {
    const c = init[0]!;
    const r = await runCli(args(c), { env: env(c, app.api), timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.describe);
    const names = ['dns', 'uri'].flatMap((kind) => (c.args ?? []).flatMap((a, i) => (a === `--${kind}` ? [`${kind === 'dns' ? 'DNS' : 'URI'}:${c.args![i + 1]}`] : [])));
    // The names of configmap.yaml's policy for spiffe://cluster.local/ns/{ns}/sa/{sa}, for this pod's service account.
    const sa = pod.serviceAccountName;
    assert.deepEqual(names, [`DNS:${sa}.${namespace}.svc`, `DNS:${sa}.${namespace}.svc.cluster.local`, `URI:spiffe://cluster.local/ns/${namespace}/sa/${sa}`]);
    const leaf = new X509Certificate(readFileSync(`${prefix}.pem`));
    assert.equal(leaf.subjectAltName, names.join(', '));
    assert.ok(leaf.checkPrivateKey(createPrivateKey(readFileSync(`${prefix}.key`))), 'the key is the certificate\'s');
    assert.equal(statSync(`${prefix}.key`).mode & 0o777, 0o600);
    assert.equal(Date.parse(leaf.validTo) - Date.parse(leaf.validFrom), 30_000, 'the CA\'s 30-second lifetime');
    assert.equal(readFileSync(`${prefix}.ca.pem`, 'utf8'), rootPem, 'PREFIX.ca.pem is the root');
    const verify = execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', `${prefix}.ca.pem`, '-untrusted', `${prefix}.chain.pem`, `${prefix}.pem`], { encoding: 'utf8' });
    assert.equal(verify.trim(), `${prefix}.pem: OK`);
    // Every file nginx.conf names, where nginx's mounts put them.
    for (const name of ['ssl_certificate', 'ssl_certificate_key', 'ssl_client_certificate', 'ssl_trusted_certificate']) {
      const file = directive(name);
      assert.ok(file, `nginx.conf has ${name}`);
      assert.ok(existsSync(local(nginx, file)), `${name} ${file} is there for nginx`);
    }
    const fullchain = readFileSync(local(nginx, directive('ssl_certificate')!), 'utf8');
    assert.equal(fullchain, `${readFileSync(`${prefix}.pem`, 'utf8')}${readFileSync(`${prefix}.chain.pem`, 'utf8')}`, 'ssl_certificate is the leaf, then the chain');
  });

  it('the sidecar\'s command renews inside the window and sends SIGHUP to the PID in nginx\'s PID file, after the files', async () => {
    // nginx's stand-in: its PID where nginx.conf's pid puts it; on SIGHUP, the certificate nginx would load.
    const pidFile = local(nginx, directive('pid')!);
    const certificate = local(nginx, directive('ssl_certificate')!);
    const hups = join(scratch, 'hups.log');
    const standInScript = [
      "const fs = require('node:fs');",
      "const { X509Certificate } = require('node:crypto');",
      "process.on('SIGHUP', () => fs.appendFileSync(process.env.HUPS, new X509Certificate(fs.readFileSync(process.env.CERTIFICATE)).serialNumber + '\\n'));",
      "fs.writeFileSync(process.env.PID_FILE, process.pid + '\\n');",
      'setInterval(() => {}, 1 << 30);',
    ].join('\n');
    standIn = spawnService(process.execPath, ['-e', standInScript], { env: cleanEnv({ PID_FILE: pidFile, CERTIFICATE: certificate, HUPS: hups }) });
    for (let i = 0; i < 100 && !existsSync(pidFile); i++) await sleep(50);
    assert.equal(readFileSync(pidFile, 'utf8').trim(), String(standIn.pid), 'the stand-in wrote its PID');
    const signalled = () => (existsSync(hups) ? readFileSync(hups, 'utf8').split('\n').filter(Boolean).map(serialOf) : []);

    const c = sidecars[0]!;
    assert.equal(local(c, flagValue(c.args, 'out')!), prefix, 'the sidecar keeps the files the init container wrote');
    watch = watchPemFiles(prefix, 50);
    const first = await watch.next(undefined, 5_000);
    sidecar = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, ...args(c)], { cwd: scratch, env: cleanEnv(env(c, app.api)) });
    const diagnostics = () => `sidecar:\n${sidecar?.output().slice(-4000)}\nsignalled: ${signalled().join(', ')}`;

    const renewed = await watch.next(first.serial, Math.max(0, first.notAfter + 5_000 - Date.now())).catch((err: Error) => assert.fail(`${err.message}\n${diagnostics()}`));
    const issuedAt = renewed.notBefore + 1000;
    assert.ok(issuedAt >= first.notBefore + 20_000 - 1000, `renewed at ${new Date(issuedAt).toISOString()}, inside the window opening 20 s after ${new Date(first.notBefore).toISOString()}\n${diagnostics()}`);
    assert.ok(issuedAt < first.notAfter, 'before the first certificate expired');
    assert.notEqual(renewed.cert.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'), first.cert.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'), 'a new key');

    for (let i = 0; i < 100 && !signalled().includes(renewed.serial); i++) await sleep(50);
    assert.deepEqual(signalled(), [renewed.serial], `one SIGHUP, after the renewed certificate was in place for nginx\n${diagnostics()}`);
    const verify = execFileSync('openssl', ['verify', '-x509_strict', '-purpose', 'sslserver', '-CAfile', `${prefix}.ca.pem`, '-untrusted', `${prefix}.chain.pem`, `${prefix}.pem`], { encoding: 'utf8' });
    assert.equal(verify.trim(), `${prefix}.pem: OK`);
    assert.deepEqual(watch.failures, [], 'every read of the files found whole PEMs');

    sidecar.signal('SIGTERM');
    const exit = await exitWithin(sidecar, 10_000);
    assert.equal(exit.code, 0, diagnostics());
    assert.ok(standIn.running, 'the stand-in was signalled with SIGHUP only');
  });
});
