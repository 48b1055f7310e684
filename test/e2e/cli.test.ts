/**
 * The service-ca command line as child processes: `init` writes a CA whose printed `ca:` section
 * runs the service (every key type, and an encrypted intermediate key with keyPassphrase:
 * ${VAR}); `bootstrap` pins the root by fingerprint; `status`, `revoke` and `list` against a
 * running app, exiting non-zero with the problem detail on errors. Every command answers --help
 * with 0 and bad usage with 2: each command's run() in this process (loading the program takes
 * seconds per child on this machine), and the dispatcher's exit codes through real processes.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { commandNames, loadCommands } from '../../src/cli/commands.js';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { inParallel, runCli, runInProcess, type CliResult } from '../setup/cli-run.js';
import { csrFor } from '../setup/csr.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { x509Text } from '../setup/openssl.js';
import { exitWithin, freePort, killAll, spawnService, CLI, TSX_LOADER, cleanEnv, waitForStatus } from '../setup/processes.js';
import { writeServiceConfig } from '../setup/service-config.js';
import type { TestPki } from '../setup/pki.js';
import { createTestIssuer } from '../setup/tokens.js';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** Every command of the table, loaded as the program loads them. */
const commands = await loadCommands();

interface Problem {
  type: string;
  status: number;
  detail: string;
}

function assertExit(r: CliResult, code: number): void {
  assert.equal(r.code, code, r.describe);
}

/** Non-zero exit with the API's problem (status, code and detail) on stderr. */
function assertProblemExit(r: CliResult, problem: Problem): void {
  assert.equal(r.code, 1, r.describe);
  assert.ok(r.stderr.includes(problem.detail), `stderr carries the problem detail "${problem.detail}"\n${r.describe}`);
  assert.ok(r.stderr.includes(String(problem.status)), `stderr carries the status ${problem.status}\n${r.describe}`);
  assert.ok(r.stderr.includes(problem.type.replace('urn:service-ca:error:', '')), r.describe);
  assert.equal(r.stdout, '', 'nothing on stdout');
}

interface InitOutput {
  fingerprint: string;
  ca: { certificate: string; key: string; chain: string; keyPassphrase?: string };
}

/** The fingerprint line and the printed `ca:` section, read as YAML. */
function parseInitOutput(stdout: string): InitOutput {
  const fingerprint = /Root SHA-256 fingerprint: *([0-9A-Fa-f:]+)/.exec(stdout)?.[1];
  assert.ok(fingerprint, stdout);
  const at = stdout.search(/^ca:/m);
  assert.ok(at >= 0, `a "ca:" section: ${stdout}`);
  const parsed = parseYaml(stdout.slice(at)) as { ca: InitOutput['ca'] };
  assert.deepEqual(Object.keys(parsed), ['ca'], 'the section is the ca key alone');
  return { fingerprint, ca: parsed.ca };
}

/** Checks the files of `init --dir dir`; returns the root and intermediate certificates. */
function checkInitFiles(dir: string, out: InitOutput) {
  for (const f of ['root.pem', 'root.key', 'intermediate.pem', 'intermediate.key', 'chain.pem']) assert.ok(existsSync(join(dir, f)), f);
  for (const f of ['root.key', 'intermediate.key']) assert.equal(statSync(join(dir, f)).mode & 0o777, 0o600, `${f} is 0600`);
  const root = new X509Certificate(readFileSync(join(dir, 'root.pem')));
  const intermediate = new X509Certificate(readFileSync(join(dir, 'intermediate.pem')));
  assert.ok(root.ca && root.checkIssued(root) && root.verify(root.publicKey), 'root.pem is a self-signed CA');
  assert.ok(intermediate.ca && intermediate.checkIssued(root) && intermediate.verify(root.publicKey), 'intermediate.pem is a CA signed by the root');
  const chain = readFileSync(join(dir, 'chain.pem'), 'utf8');
  const parts = chain.split(/(?<=-----END CERTIFICATE-----\n?)/).filter((p) => p.includes('BEGIN'));
  assert.deepEqual(parts.map((p) => new X509Certificate(p).fingerprint256), [intermediate.fingerprint256, root.fingerprint256], 'chain.pem: intermediate then root');
  assert.equal(out.fingerprint.replace(/:/g, '').toLowerCase(), sha256(root.raw), 'the printed fingerprint is the root\'s SHA-256');
  assert.equal(readFileSync(out.ca.certificate, 'utf8'), readFileSync(join(dir, 'intermediate.pem'), 'utf8'));
  assert.equal(readFileSync(out.ca.key, 'utf8'), readFileSync(join(dir, 'intermediate.key'), 'utf8'));
  assert.equal(new X509Certificate(readFileSync(out.ca.chain)).fingerprint256, root.fingerprint256, 'ca.chain is the root');
  const rootKey = createPrivateKey(readFileSync(join(dir, 'root.key')));
  assert.ok(root.checkPrivateKey(rootKey), 'root.key is the root\'s key');
  return { root, intermediate };
}

/** pki fields for startTestApp from a printed ca section. */
const pkiFrom = (dir: string, out: InitOutput, keyType: TestPki['keyType']): TestPki => ({
  dir,
  keyType,
  rootCertificate: out.ca.chain,
  rootKey: join(dir, 'root.key'),
  intermediateCertificate: out.ca.certificate,
  intermediateKey: out.ca.key,
  chain: join(dir, 'chain.pem'),
  rootFingerprint: out.fingerprint,
});

describe('service-ca init', () => {
  let base: string;
  let database: TestDatabase;
  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'service-ca-init-'));
    database = await createTestDatabase();
  });
  after(async () => {
    await killAll();
    await database?.drop();
    rmSync(base, { recursive: true, force: true });
  });

  const KEY_TYPES = [
    { keyType: 'p256', args: [], key: (k: ReturnType<typeof createPrivateKey>) => k.asymmetricKeyDetails?.namedCurve === 'prime256v1', signature: /ecdsa-with-SHA256/ },
    { keyType: 'p384', args: ['--key-type', 'p384'], key: (k: ReturnType<typeof createPrivateKey>) => k.asymmetricKeyDetails?.namedCurve === 'secp384r1', signature: /ecdsa-with-SHA384/ },
    { keyType: 'rsa', args: ['--key-type', 'rsa'], key: (k: ReturnType<typeof createPrivateKey>) => k.asymmetricKeyType === 'rsa', signature: /sha256WithRSAEncryption/ },
    { keyType: 'ed25519', args: ['--key-type', 'ed25519'], key: (k: ReturnType<typeof createPrivateKey>) => k.asymmetricKeyType === 'ed25519', signature: /ED25519/i },
  ] as const;

  it('writes root and intermediate for every --key-type, and its printed ca section runs a CA', async () => {
    const runs = await inParallel(KEY_TYPES.map((t) => () => runCli(['init', '--dir', join(base, t.keyType), ...t.args])));
    for (const [i, t] of KEY_TYPES.entries()) {
      const r = runs[i]!;
      assertExit(r, 0);
      const dir = join(base, t.keyType);
      const out = parseInitOutput(r.stdout);
      assert.equal(out.ca.keyPassphrase, undefined, 'no passphrase was asked for');
      const { root, intermediate } = checkInitFiles(dir, out);
      assert.doesNotMatch(readFileSync(out.ca.key, 'utf8'), /ENCRYPTED/);
      for (const f of ['root.key', 'intermediate.key']) assert.ok(t.key(createPrivateKey(readFileSync(join(dir, f)))), `${t.keyType}: ${f}`);

      // The printed section is the ca section of a working configuration.
      const app = await startTestApp({ database, config: { ca: out.ca }, pki: pkiFrom(dir, out, t.keyType) });
      try {
        assert.equal(new X509Certificate(await (await fetch(`${app.public}/v1/ca/root.pem`)).text()).fingerprint256, root.fingerprint256, 'the app serves this root');
        const res = await app.issue(workload('shop', 'web'), { csr: await csrFor({ dns: ['web.shop.svc'] }) });
        assert.equal(res.status, 201, await res.clone().text());
        const leaf = new X509Certificate(((await res.json()) as { certificate: string }).certificate);
        assert.ok(leaf.checkIssued(intermediate) && leaf.verify(intermediate.publicKey), `${t.keyType}: the leaf is signed by intermediate.key`);
        assert.match(x509Text(leaf.toString()), new RegExp(`Signature Algorithm: ${t.signature.source}`, 'i'));
      } finally {
        await app.stop();
      }
    }
  });

  it('refuses to overwrite an existing CA, leaving its files as they were', async () => {
    const dir = join(base, 'twice');
    assertExit(await runCli(['init', '--dir', dir]), 0);
    const before = ['root.key', 'intermediate.key', 'root.pem'].map((f) => readFileSync(join(dir, f), 'utf8'));
    const again = await runCli(['init', '--dir', dir]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /refusing to overwrite an existing CA/);
    assert.deepEqual(['root.key', 'intermediate.key', 'root.pem'].map((f) => readFileSync(join(dir, f), 'utf8')), before);
  });

  it('--intermediate-passphrase-env VAR encrypts the key, and serve starts with keyPassphrase: ${VAR}', async () => {
    const dir = join(base, 'encrypted');
    const passphrase = 'correct horse battery staple';
    const r = await runCli(['init', '--dir', dir, '--intermediate-passphrase-env', 'INT_PASS'], { env: { INT_PASS: passphrase } });
    assertExit(r, 0);
    const out = parseInitOutput(r.stdout);
    assert.equal(out.ca.keyPassphrase, '${INT_PASS}', 'the printed section reads the passphrase from the environment');
    assert.doesNotMatch(r.stdout, new RegExp(passphrase), 'the passphrase itself is never printed');
    const { intermediate } = checkInitFiles(dir, out);
    const keyPem = readFileSync(out.ca.key, 'utf8');
    assert.match(keyPem, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assert.throws(() => createPrivateKey(keyPem), 'unusable without the passphrase');
    assert.ok(intermediate.checkPrivateKey(createPrivateKey({ key: keyPem, passphrase })), 'the passphrase opens the intermediate\'s key');
    assert.doesNotMatch(readFileSync(join(dir, 'root.key'), 'utf8'), /ENCRYPTED/, 'the root key was not asked to be encrypted');

    // serve, as a child, from a configuration file holding the printed section verbatim.
    const issuer = await createTestIssuer();
    const [apiPort, publicPort] = [await freePort(), await freePort()];
    const generated = writeServiceConfig({ pki: pkiFrom(dir, out, 'p256'), issuer, database, apiPort, publicPort, tls: 'off' });
    const config = parseYaml(readFileSync(generated, 'utf8')) as Record<string, unknown>;
    writeFileSync(generated, stringifyYaml({ ...config, ca: out.ca }));
    assert.match(readFileSync(generated, 'utf8'), /keyPassphrase: \$\{INT_PASS\}/);
    const serve = (env: Record<string, string>) => spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', '--config', generated], { cwd: dir, env: cleanEnv(env) });
    try {
      const wrong = serve({ INT_PASS: 'not the passphrase' });
      const e = await exitWithin(wrong, 60_000);
      assert.notEqual(e.code, 0, `a wrong passphrase stops start-up:\n${wrong.output()}`);

      const service = serve({ INT_PASS: passphrase });
      await waitForStatus(`http://127.0.0.1:${publicPort}/readyz`, 200, service);
      const res = await fetch(`http://127.0.0.1:${apiPort}/v1/certificates`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.mint({ sub: workload('shop', 'web') })}` },
        body: JSON.stringify({ csr: await csrFor({ dns: ['web.shop.svc'] }) }),
      });
      assert.equal(res.status, 201, await res.clone().text());
      const leaf = new X509Certificate(((await res.json()) as { certificate: string }).certificate);
      assert.ok(leaf.verify(intermediate.publicKey), 'signed with the decrypted intermediate key');
      service.signal('SIGTERM');
      assert.equal((await exitWithin(service, 10_000)).code, 0, service.output());
    } finally {
      await killAll();
      rmSync(dirname(generated), { recursive: true, force: true });
    }
  });
});

describe('bootstrap, status, revoke and list against a running app', () => {
  let app: TestApp;
  let dir: string;
  let fingerprint: string;
  let rootPem: string;
  const OWNER = workload('shop', 'web');
  const MANY = workload('lists', 'many');
  const tokens: Record<'owner' | 'other' | 'admin', string> = { owner: '', other: '', admin: '' };
  const owned: string[] = [];
  const many: string[] = [];
  before(async () => {
    app = await startTestApp();
    dir = mkdtempSync(join(tmpdir(), 'service-ca-cli-'));
    rootPem = await (await fetch(`${app.public}/v1/ca/root.pem`)).text();
    fingerprint = sha256(new X509Certificate(rootPem).raw);
    for (const [k, sub] of [['owner', OWNER], ['other', workload('shop', 'other')], ['admin', ADMIN]] as const) {
      tokens[k] = join(dir, `${k}.jwt`);
      writeFileSync(tokens[k], await app.issuer.mint({ sub }, { ttl: 3600 }));
    }
    const csr = await csrFor({ dns: ['web.shop.svc'] });
    for (let i = 0; i < 3; i++) owned.push(await issueSerial(app, OWNER, csr));
    const manyCsr = await csrFor({ dns: ['many.lists.svc'] });
    await inParallel(Array.from({ length: 120 }, () => async () => void many.push(await issueSerial(app, MANY, manyCsr))), 6);
  });
  after(async () => {
    await app?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const cli = (args: string[], token?: keyof typeof tokens) => runCli([...args, '--server', app.api, ...(token ? ['--token-file', tokens[token]] : [])], { cwd: dir });
  /** The problem the API itself answers, to compare the command's stderr with. */
  const problemOf = async (path: string, token: keyof typeof tokens, body?: unknown): Promise<Problem> => {
    const res = await fetch(`${app.api}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { Authorization: `Bearer ${readFileSync(tokens[token], 'utf8')}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    assert.ok(res.status >= 400, `${path} is an error`);
    return (await res.json()) as Problem;
  };
  const record = (serial: string) => app.client.getCertificate(readFileSync(tokens.admin, 'utf8'), serial);

  it('bootstrap writes the root when the fingerprint matches (colons and case ignored), and nothing with exit 1 when not', async () => {
    const colons = fingerprint.toUpperCase().match(/../g)!.join(':');
    const wrongFp = sha256(new X509Certificate((await (await fetch(`${app.public}/v1/ca/chain.pem`)).text()).split(/(?<=-----END CERTIFICATE-----\n?)/)[0]!).raw);
    const closed = await freePort();
    const [ok, wrong, unreachable] = await inParallel([
      () => runCli(['bootstrap', '--url', app.public, '--fingerprint', colons, '--out', join(dir, 'root-colons.pem')]),
      () => runCli(['bootstrap', '--url', app.public, '--fingerprint', wrongFp, '--out', join(dir, 'root-wrong.pem')]),
      () => runCli(['bootstrap', '--url', `http://127.0.0.1:${closed}`, '--fingerprint', fingerprint, '--out', join(dir, 'root-none.pem')]),
    ]);
    assertExit(ok!, 0);
    assert.equal(new X509Certificate(readFileSync(join(dir, 'root-colons.pem'))).fingerprint256, new X509Certificate(rootPem).fingerprint256);
    assertExit(wrong!, 1);
    assert.ok(wrong!.stderr.length > 0, wrong!.describe);
    assert.equal(existsSync(join(dir, 'root-wrong.pem')), false, 'nothing written on a mismatch');
    assert.deepEqual(readdirTmp(dir), [], 'no temp file left behind');
    assertExit(unreachable!, 1);
    assert.equal(existsSync(join(dir, 'root-none.pem')), false);
  });

  it('status shows a record (text, and --json for an upper-case serial with colons), and exits 1 with the problem for unknown and foreign serials', async () => {
    const serial = owned[0]!;
    const unknown = '7f'.repeat(20);
    const [text, json, missing, foreign] = await inParallel([
      () => cli(['status', '--serial', serial], 'owner'),
      () => cli(['status', '--serial', serial.toUpperCase().match(/../g)!.join(':'), '--json'], 'owner'),
      () => cli(['status', '--serial', unknown], 'owner'),
      () => cli(['status', '--serial', serial], 'other'),
    ]);
    assertExit(text!, 0);
    assert.match(text!.stdout, new RegExp(`^${serial}\\s+valid\\s+\\S+\\s+${OWNER.replace(/[/.]/g, '\\$&')}\\s+web\\.shop\\.svc`, 'm'));
    assertExit(json!, 0);
    const api = await record(serial);
    assert.deepEqual(JSON.parse(json!.stdout), api, '--json prints the API record');
    assertProblemExit(missing!, await problemOf(`/v1/certificates/${unknown}`, 'owner'));
    assertProblemExit(foreign!, await problemOf(`/v1/certificates/${serial}`, 'other'));
  });

  it('revoke --serial revokes as the owner, and exits 1 with the problem when already revoked or for a bad reason', async () => {
    const [first, second] = owned;
    const ok = await cli(['revoke', '--serial', first!, '--reason', 'superseded'], 'owner');
    assertExit(ok, 0);
    assert.match(ok.stdout, new RegExp(first!));
    const r = await record(first!);
    assert.equal(r.status, 'revoked');
    assert.equal(r.revocationReason, 'superseded');
    const [again, hold] = await inParallel([
      () => cli(['revoke', '--serial', first!, '--reason', 'keyCompromise'], 'owner'),
      () => cli(['revoke', '--serial', second!, '--reason', 'certificateHold'], 'owner'),
    ]);
    assertProblemExit(again!, await problemOf(`/v1/certificates/${first}/revoke`, 'owner', { reason: 'keyCompromise' }));
    assertProblemExit(hold!, await problemOf(`/v1/certificates/${second}/revoke`, 'owner', { reason: 'certificateHold' }));
    assert.equal((await record(second!)).status, 'valid', 'nothing was revoked by the refused commands');
    assert.equal((await record(first!)).revocationReason, 'superseded');
  });

  it('revoke --identity revokes every valid certificate of the identity (admin only)', async () => {
    const denied = await cli(['revoke', '--identity', OWNER, '--reason', 'cessationOfOperation'], 'owner');
    assertProblemExit(denied, await problemOf('/v1/revocations', 'owner', { identity: OWNER, reason: 'cessationOfOperation' }));
    assert.equal((await record(owned[1]!)).status, 'valid');
    const ok = await cli(['revoke', '--identity', OWNER, '--reason', 'cessationOfOperation', '--json'], 'admin');
    assertExit(ok, 0);
    const { revoked } = JSON.parse(ok.stdout) as { revoked: string[] };
    assert.deepEqual([...revoked].sort(), [owned[1]!, owned[2]!].sort(), 'the valid ones, not the one already revoked');
    for (const s of owned.slice(1)) {
      const r = await record(s);
      assert.equal(r.status, 'revoked');
      assert.equal(r.revocationReason, 'cessationOfOperation');
    }
  });

  it('list follows every page (admin), honours --limit and filters, and exits 1 with the problem for non-admins and bad limits', async () => {
    const [json, text, limited, revoked, denied, tooMany] = await inParallel([
      () => cli(['list', '--identity', MANY, '--json'], 'admin'),
      () => cli(['list', '--identity', MANY], 'admin'),
      () => cli(['list', '--identity', MANY, '--limit', '5', '--json'], 'admin'),
      () => cli(['list', '--identity', OWNER, '--status', 'revoked', '--json'], 'admin'),
      () => cli(['list'], 'owner'),
      () => cli(['list', '--limit', '1001'], 'admin'),
    ]);
    assertExit(json!, 0);
    const items = JSON.parse(json!.stdout) as { serial: string; identity: string; notBefore: string }[];
    assert.equal(items.length, 120, 'more than one page of 100: every page was followed');
    assert.deepEqual(items.map((i) => i.serial).sort(), [...many].sort(), 'no item repeated or skipped');
    assert.ok(items.every((i) => i.identity === MANY));
    for (let i = 1; i < items.length; i++) assert.ok(Date.parse(items[i - 1]!.notBefore) >= Date.parse(items[i]!.notBefore), 'newest first');
    assertExit(text!, 0);
    const lines = text!.stdout.trim().split('\n');
    assert.equal(lines.length, 120);
    assert.deepEqual(lines.map((l) => l.split(/\s+/)[0]), items.map((i) => i.serial), 'one line per record, in the same order');
    assertExit(limited!, 0);
    const page = (await (await fetch(`${app.api}/v1/certificates?identity=${encodeURIComponent(MANY)}&limit=5`, { headers: { Authorization: `Bearer ${readFileSync(tokens.admin, 'utf8')}` } })).json()) as { items: { serial: string }[] };
    assert.deepEqual((JSON.parse(limited!.stdout) as { serial: string }[]).map((i) => i.serial), page.items.map((i) => i.serial), '--limit 5: one page of 5');
    assertExit(revoked!, 0);
    assert.deepEqual((JSON.parse(revoked!.stdout) as { serial: string }[]).map((i) => i.serial).sort(), [...owned].sort());
    assertProblemExit(denied!, await problemOf('/v1/certificates', 'owner'));
    assertProblemExit(tooMany!, await problemOf('/v1/certificates?limit=1001', 'admin'));
  });

  it('exits 1 when the server cannot be reached', async () => {
    const closed = await freePort();
    const r = await runCli(['status', '--serial', owned[0]!, '--server', `http://127.0.0.1:${closed}`, '--token-file', tokens.owner]);
    assertExit(r, 1);
    assert.ok(r.stderr.length > 0, r.describe);
  });
});

/** Leftover temp files of an atomic write (".name.xxxx.tmp") in dir. */
function readdirTmp(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.endsWith('.tmp'));
}

async function issueSerial(app: TestApp, sub: string, csr: string): Promise<string> {
  const res = await app.issue(sub, { csr });
  const text = await res.text();
  assert.equal(res.status, 201, text);
  return (JSON.parse(text) as { serial: string }).serial;
}

describe('--help and bad usage', () => {
  const BAD_USAGE: Record<string, string[][]> = {
    serve: [['--bogus'], ['--config']],
    init: [[], ['--dir', '/nonexistent/never-written', '--key-type', 'dsa'], ['--dir', 'x', 'extra']],
    token: [[], ['--sub', 'x', '--ttl', 'forever']],
    request: [['--server', 'http://127.0.0.1:9'], ['--server', 'http://127.0.0.1:9', '--token-file', 't', '--out', 'o', '--key-type', 'dsa']],
    status: [['--server', 'http://127.0.0.1:9', '--token-file', 't'], ['--serial', 'ab', '--token-file', 't'], ['--serial', 'ab', '--nope']],
    revoke: [['--serial', 'ab', '--server', 'http://127.0.0.1:9', '--token-file', 't'], ['--serial', 'ab', '--identity', 'x', '--reason', 'superseded', '--server', 'http://127.0.0.1:9', '--token-file', 't']],
    list: [['--bogus'], ['--token-file', 't']],
    audit: [[], ['check'], ['verify'], ['verify', '--bogus']],
    acme: [[], ['frobnicate'], ['eab', '--bogus'], ['eab', '--issuer', 'k8s', '--server', 'http://127.0.0.1:9', '--token-file', 't']],
    config: [[], ['check'], ['frobnicate'], ['check', 'a.yaml', 'b.yaml']],
    healthcheck: [['--bogus']],
    inspect: [[], ['--bogus'], ['a.pem', 'b.pem']],
    ca: [[], ['frobnicate'], ['status', '--bogus'], ['status', '--token-file', 't']],
    fleet: [['--bogus'], ['--state', 'sleepy', '--server', 'http://127.0.0.1:9', '--token-file', 't'], ['--severity', 'high', '--server', 'http://127.0.0.1:9', '--token-file', 't']],
    agent: [['--out', 'o', '--dns', 'a.b'], ['--server', 'http://127.0.0.1:9', '--dns', 'a.b'], ['--server', 'http://127.0.0.1:9', '--out', 'o'], ['--server', 'http://127.0.0.1:9', '--out', 'o', '--dns', 'a.b', '--max-backoff', 'soon']],
    bootstrap: [['--url', 'http://127.0.0.1:9', '--out', 'o'], ['--url', 'http://127.0.0.1:9', '--out', 'o', '--fingerprint', 'abc'], ['--url', 'http://127.0.0.1:9', '--fingerprint', 'ab'.repeat(32), '--no-context'], ['--url', 'http://127.0.0.1:9', '--fingerprint', 'ab'.repeat(32), '--context', '../escape']],
  };

  it('covers every command in the command table', () => {
    assert.deepEqual(commands.map((c) => c.name).sort(), Object.keys(BAD_USAGE).sort());
    assert.deepEqual(commandNames, commands.map((c) => c.name), 'the program finds each command under its own name');
  });

  for (const command of commands) {
    it(`${command.name} --help exits 0 with its usage; bad usage exits 2 with the usage on stderr`, async () => {
      const help = await runInProcess(command, ['--help']);
      assert.equal(help.code, 0);
      assert.match(help.stdout, new RegExp(`^Usage: service-ca ${command.name}\\b`));
      assert.equal(help.stderr, '');
      for (const argv of BAD_USAGE[command.name] ?? []) {
        const r = await runInProcess(command, argv);
        assert.equal(r.code, 2, `${command.name} ${argv.join(' ')}: ${r.stdout}${r.stderr}`);
        assert.match(r.stderr, /service-ca: /, `${command.name} ${argv.join(' ')} says what is wrong`);
      }
    });
  }

  it('the service-ca program exits with those codes', async () => {
    const [top, none, unknown, help, bad] = await inParallel([
      () => runCli(['--help']),
      () => runCli([]),
      () => runCli(['frobnicate']),
      () => runCli(['agent', '--help']),
      () => runCli(['list', '--bogus']),
    ]);
    assertExit(top!, 0);
    for (const c of commands) assert.match(top!.stdout, new RegExp(`^  ${c.name}\\s`, 'm'), `${c.name} is listed`);
    assertExit(none!, 2);
    assertExit(unknown!, 2);
    assert.match(unknown!.stderr, /frobnicate/);
    assertExit(help!, 0);
    assert.match(help!.stdout, /^Usage: service-ca agent/);
    assertExit(bad!, 2);
    assert.match(bad!.stderr, /bogus/);
    assert.match(bad!.stderr, /Usage: service-ca list/);
  });
});
