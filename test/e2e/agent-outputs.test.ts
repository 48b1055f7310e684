/**
 * What the rotation agent hands a service, end to end: the real `service-ca agent` as a child
 * process against the real app over TLS. Every file it writes verifies with the openssl command
 * line (the leaf against PREFIX.ca.pem with the chain, the full chain, the PKCS#12 with its
 * passphrase and not with another), works in a real TLS handshake through node:tls, and has its
 * mode; a trust bundle without the pinned root is refused. --exec runs the service as the agent's
 * child once the files are in place, signals that same process after a renewal and exits with its
 * status; --pid-file signals whichever pid the file holds at each renewal; --metrics-addr serves
 * the expiry and renewal times of the certificate on disk. The CA is found through
 * SERVICE_CA_URL, SERVICE_CA_ROOT and SERVICE_CA_TOKEN_FILE without flags, a flag wins over its
 * variable, and --tls-server-name names the certificate the CA must present. Renewals come quickly with 15-second certificates (docs/api.md "Renewal window":
 * the window opens at 2/3 of the lifetime).
 */
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { startTestApp, workload, type TestApp } from '../setup/app.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { openssl, verifyChain } from '../setup/openssl.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { CLI, TSX_LOADER, cleanEnv, exitWithin, freePort, killAll, logLines, spawnService, type ChildService } from '../setup/processes.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const SUB = workload('payments', 'api');
const NAME_ARGS = ['--dns', 'api.payments.svc', '--uri', SUB];
const PASSPHRASE = 'correct horse battery staple';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const blocks = (pem: string) => pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];
const der = (pem: string) => new X509Certificate(pem).raw.toString('base64');
const spkiOfKey = (pem: string) => createPublicKey(createPrivateKey(pem)).export({ type: 'spki', format: 'der' }).toString('base64');
const mode = (path: string) => statSync(path).mode & 0o777;
const serialOnDisk = (prefix: string) => (existsSync(`${prefix}.pem`) ? new X509Certificate(readFileSync(`${prefix}.pem`, 'utf8')).serialNumber : undefined);
const count = (path: string) => (existsSync(path) ? Number(readFileSync(path, 'utf8')) : -1);

/** Polls until check() returns a value other than undefined, or fails with the message. */
async function waitFor<T>(check: () => T | undefined, timeoutMs: number, message: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`${message()} (waited ${timeoutMs} ms)`);
    await sleep(100);
  }
}

/** The parent pid of a process (Linux /proc; the command name may hold spaces and parentheses). */
const parentOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)!.split(' ')[1]);

/**
 * A service that counts the SIGHUPs it receives into STATE.hups, records at start its pid and
 * which of PREFIX's files exist into STATE.starts, and on SIGTERM records it and exits with
 * $SERVICE_EXIT.
 */
const SERVICE = `import { appendFileSync, existsSync, writeFileSync } from 'node:fs';
const [state, prefix] = process.argv.slice(2);
const files = ['.key', '.pem', '.chain.pem', '.fullchain.pem', '.ca.pem', '.p12'].filter((s) => existsSync(prefix + s));
let hups = 0;
writeFileSync(state + '.hups', '0');
appendFileSync(state + '.starts', JSON.stringify({ pid: process.pid, files }) + '\\n');
process.on('SIGHUP', () => writeFileSync(state + '.hups', String(++hups)));
process.on('SIGTERM', () => {
  appendFileSync(state + '.signals', 'SIGTERM\\n');
  process.exit(Number(process.env.SERVICE_EXIT ?? 0));
});
setInterval(() => {}, 1 << 30);
`;

/** Prometheus text: the value of a sample, by its name with labels as written. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

describe('service-ca agent outputs, supervision and metrics', { timeout: 170_000 }, () => {
  let pki: TestPki;
  let issuer: TestIssuer;
  let database: TestDatabase;
  let app: TestApp;
  let dir: string;
  let rootPath: string;
  let rootPem: string;
  let foreignRootPath: string;
  let tokenPath: string;
  let passPath: string;
  let servicePath: string;
  const agents: ChildService[] = [];

  const agent = (args: string[], env: Record<string, string> = {}) => {
    const s = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'agent', ...args], { cwd: dir, env: cleanEnv(env) });
    agents.push(s);
    return s;
  };
  const connection = () => ['--server', app.api, '--ca', rootPath, '--token-file', tokenPath];
  const runOnce = async (args: string[], env: Record<string, string> = {}) => {
    const s = agent(['--once', ...args], env);
    const e = await exitWithin(s, 60_000);
    return { ...e, output: s.output(), lines: logLines(s) };
  };
  /** The next certificate after `serial` in PREFIX.pem, within the 15-second certificate's lifetime. */
  const nextCertificate = (prefix: string, serial: string, s: ChildService) =>
    waitFor(
      () => {
        const now = serialOnDisk(prefix);
        return now !== undefined && now !== serial ? now : undefined;
      },
      25_000,
      () => `no certificate after ${serial}; agent output:\n${s.output().slice(-4000)}`,
    );

  before(async () => {
    let foreign: TestPki;
    [pki, issuer, database, foreign] = await Promise.all([createTestPki('p256'), createTestIssuer(), createTestDatabase(), createTestPki('p256')]);
    app = await startTestApp({ pki, issuer, database, tls: true, config: { issuance: { defaultTtl: '15s', maxTtl: '1h', backdate: '1s' } } });
    dir = mkdtempSync(join(tmpdir(), 'service-ca-agent-outputs-'));
    rootPath = join(dir, 'root.pem');
    rootPem = await (await fetch(`${app.public}/v1/ca/root.pem`)).text();
    writeFileSync(rootPath, rootPem);
    foreignRootPath = foreign.rootCertificate;
    tokenPath = join(dir, 'token.jwt');
    writeFileSync(tokenPath, `${await issuer.mint({ sub: SUB }, { ttl: 3600 })}\n`);
    passPath = join(dir, 'p12.pass');
    writeFileSync(passPath, `${PASSPHRASE}\n`);
    writeFileSync(join(dir, 'wrong.pass'), 'not the passphrase\n');
    servicePath = join(dir, 'service.mjs');
    writeFileSync(servicePath, SERVICE);
  });
  after(async () => {
    await killAll();
    await app?.stop();
    await database?.drop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds the CA through SERVICE_CA_URL, SERVICE_CA_ROOT and SERVICE_CA_TOKEN_FILE alone, and every output verifies', async () => {
    const prefix = join(dir, 'svc');
    const p12 = join(dir, 'svc.p12');
    const r = await runOnce([...NAME_ARGS, '--ttl', '10m', '--out', prefix, '--p12', p12, '--p12-passphrase-file', passPath], {
      SERVICE_CA_URL: app.api,
      SERVICE_CA_ROOT: rootPath,
      SERVICE_CA_TOKEN_FILE: tokenPath,
    });
    assert.equal(r.code, 0, r.output);
    assert.ok(r.lines.some((l) => l.msg === 'certificate written'), 'JSON log lines when standard output is not a terminal');

    const leaf = readFileSync(`${prefix}.pem`, 'utf8');
    const key = readFileSync(`${prefix}.key`, 'utf8');
    const chain = readFileSync(`${prefix}.chain.pem`, 'utf8');
    const fullchain = readFileSync(`${prefix}.fullchain.pem`, 'utf8');
    const ca = readFileSync(`${prefix}.ca.pem`, 'utf8');
    assert.equal(mode(`${prefix}.key`), 0o600);
    assert.equal(mode(p12), 0o600);
    for (const f of ['.pem', '.chain.pem', '.fullchain.pem', '.ca.pem']) assert.equal(mode(`${prefix}${f}`), 0o644, f);

    // The trust bundle is the CA's root, the one pinned; the full chain is the leaf, then the chain.
    assert.deepEqual(blocks(ca).map(der), [der(rootPem)]);
    assert.equal(blocks(chain).length, 1, 'one intermediate');
    assert.deepEqual(blocks(fullchain).map(der), [der(leaf), der(chain)]);
    const leafCheck = verifyChain(leaf, ca, chain, 'sslserver');
    assert.ok(leafCheck.ok, leafCheck.output);
    const fullCheck = openssl(['verify', '-x509_strict', '-CAfile', { file: 'ca.pem', content: ca }, '-untrusted', { file: 'fullchain.pem', content: fullchain }, { file: 'leaf.pem', content: blocks(fullchain)[0]! }]);
    assert.equal(fullCheck.status, 0, fullCheck.stdout + fullCheck.stderr);
    assert.match(fullCheck.stdout, /leaf\.pem: OK/);

    // The PKCS#12: openssl reads it with the passphrase file and refuses it with another.
    const info = openssl(['pkcs12', '-info', '-noout', '-in', p12, '-passin', `file:${passPath}`]);
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout + info.stderr, /Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC/);
    const wrong = openssl(['pkcs12', '-info', '-noout', '-in', p12, '-passin', `file:${join(dir, 'wrong.pass')}`]);
    assert.notEqual(wrong.status, 0);
    assert.match(wrong.stdout + wrong.stderr, /Mac verify error/);
    const certs = openssl(['pkcs12', '-in', p12, '-passin', `file:${passPath}`, '-nokeys']);
    assert.equal(certs.status, 0, certs.stderr);
    assert.deepEqual(blocks(certs.stdout).map(der).sort(), [der(leaf), der(chain)].sort());
    const keys = openssl(['pkcs12', '-in', p12, '-passin', `file:${passPath}`, '-nocerts', '-nodes']);
    assert.equal(keys.status, 0, keys.stderr);
    assert.ok(spkiOfKey(keys.stdout.slice(keys.stdout.indexOf('-----BEGIN PRIVATE KEY-----'))) === spkiOfKey(key), 'the PKCS#12 holds the key of PREFIX.key');

    // A TLS server on the PKCS#12 and a client trusting PREFIX.ca.pem complete a handshake for the name.
    const server = createServer({ pfx: readFileSync(p12), passphrase: PASSPHRASE }, (socket) => socket.end('hello'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const greeting = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port, servername: 'api.payments.svc', ca }, () => {
          if (!socket.authorized) reject(new Error(`not authorized: ${socket.authorizationError?.message}`));
        });
        let text = '';
        socket.setEncoding('utf8').on('data', (d: string) => (text += d));
        socket.on('end', () => resolve(text));
        socket.on('error', reject);
      });
      assert.equal(greeting, 'hello');
    } finally {
      server.close();
    }
  });

  it('a flag wins over its environment variable', async () => {
    const closed = await freePort();
    const prefix = join(dir, 'flags');
    const r = await runOnce([...connection(), ...NAME_ARGS, '--ttl', '10m', '--out', prefix], {
      SERVICE_CA_URL: `https://127.0.0.1:${closed}`,
      SERVICE_CA_ROOT: foreignRootPath,
      SERVICE_CA_TOKEN_FILE: join(dir, 'no-such-token'),
    });
    assert.equal(r.code, 0, r.output);
    // Had SERVICE_CA_ROOT been used, neither the TLS connection nor the bundle check would pass.
    assert.deepEqual(blocks(readFileSync(`${prefix}.ca.pem`, 'utf8')).map(der), [der(rootPem)]);
  });

  it('--tls-server-name: the name the CA\'s certificate must hold', async () => {
    const [right, wrong] = await Promise.all([
      runOnce([...connection(), '--tls-server-name', 'localhost', ...NAME_ARGS, '--ttl', '10m', '--out', join(dir, 'sni')]),
      runOnce([...connection(), '--tls-server-name', 'ca.elsewhere.test', ...NAME_ARGS, '--ttl', '10m', '--out', join(dir, 'sni-wrong')]),
    ]);
    assert.equal(right.code, 0, right.output);
    assert.equal(wrong.code, 1, wrong.output);
    assert.ok(wrong.lines.some((l) => /Host: ca\.elsewhere\.test\. is not in the cert's altnames/.test(String(l.err))), wrong.output);
    assert.equal(existsSync(join(dir, 'sni-wrong.pem')), false);
  });

  it('refuses a trust bundle without the pinned root, writes the rest, and completes PREFIX.ca.pem later', async () => {
    // A plain HTTP API listener, so that a root other than the CA's can be pinned without TLS refusing it first.
    const plainDatabase = await createTestDatabase();
    const plain = await startTestApp({ pki, issuer, database: plainDatabase, config: { issuance: { defaultTtl: '10m', maxTtl: '1h', backdate: '1s' } } });
    try {
      const prefix = join(dir, 'plain');
      const args = ['--server', plain.api, '--token-file', tokenPath, ...NAME_ARGS, '--out', prefix];
      const refused = await runOnce([...args, '--ca', foreignRootPath]);
      assert.equal(refused.code, 1, refused.output);
      assert.equal(existsSync(`${prefix}.ca.pem`), false, 'no trust bundle');
      const error = refused.lines.find((l) => l.level === 50 && /refusing the trust bundle/.test(l.msg));
      assert.ok(error, refused.output);
      assert.equal(error.problem, 'the bundle does not hold the pinned root');
      const leaf = readFileSync(`${prefix}.pem`, 'utf8');
      const check = verifyChain(leaf, rootPem, readFileSync(`${prefix}.chain.pem`, 'utf8'));
      assert.ok(check.ok, check.output);
      assert.deepEqual(blocks(readFileSync(`${prefix}.fullchain.pem`, 'utf8')).map(der)[0], der(leaf));

      const completed = await runOnce([...args, '--ca', rootPath]);
      assert.equal(completed.code, 0, completed.output);
      assert.equal(readFileSync(`${prefix}.pem`, 'utf8'), leaf, 'the same certificate: the valid one is kept');
      assert.deepEqual(blocks(readFileSync(`${prefix}.ca.pem`, 'utf8')).map(der), [der(rootPem)]);
      const line = completed.lines.find((l) => /wrote the missing outputs/.test(l.msg));
      assert.deepEqual(line?.outputs, ['ca'], completed.output);
    } finally {
      await plain.stop();
      await plainDatabase.drop();
    }
  });

  describe('--exec with --metrics-addr', () => {
    let s: ChildService;
    let metricsUrl: string;
    const prefix = () => join(dir, 'exec');
    const state = () => join(dir, 'exec-service');
    const starts = () => (existsSync(`${state()}.starts`) ? readFileSync(`${state()}.starts`, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { pid: number; files: string[] }) : []);
    const metrics = async () => (await fetch(metricsUrl)).text();

    it('starts the command once every file is in place, as the agent\'s own child', async () => {
      const port = await freePort();
      metricsUrl = `http://127.0.0.1:${port}/metrics`;
      s = agent(
        [...connection(), ...NAME_ARGS, '--ttl', '15s', '--out', prefix(), '--max-backoff', '2s', '--exec', `'${process.execPath}' '${servicePath}' '${state()}' '${prefix()}'`, '--metrics-addr', `127.0.0.1:${port}`],
        { SERVICE_EXIT: '7' },
      );
      const [started] = await waitFor(() => (starts().length > 0 ? starts() : undefined), 30_000, () => `the command did not start:\n${s.output()}`);
      assert.deepEqual(started!.files, ['.key', '.pem', '.chain.pem', '.fullchain.pem', '.ca.pem'], 'every file was in place when the command started');
      assert.equal(parentOf(started!.pid), s.pid, 'the command is the agent\'s child, with no shell in between');
    });

    it('signals the same process after a renewal instead of restarting it', async () => {
      const first = serialOnDisk(prefix())!;
      await nextCertificate(prefix(), first, s);
      await waitFor(() => (count(`${state()}.hups`) === 1 ? true : undefined), 5000, () => `the command was not signalled:\n${s.output().slice(-3000)}`);
      assert.equal(starts().length, 1, 'started once');
      assert.ok(s.running);
      const line = logLines(s).find((l) => l.msg === 'signalled');
      assert.equal(line?.pid, starts()[0]!.pid);
      assert.equal(line?.signal, 'SIGHUP');
    });

    it('serves the expiry and renewal metrics of the certificate on disk', async () => {
      // The counter moves just after the leaf is written: poll briefly for it.
      const SUCCESS = 'service_ca_agent_renewals_total{result="success"}';
      let body = await metrics();
      for (const deadline = Date.now() + 5000; sample(body, SUCCESS) !== 2 && Date.now() < deadline; body = await metrics()) await sleep(100);
      const leaf = new X509Certificate(readFileSync(`${prefix()}.pem`, 'utf8'));
      assert.equal(sample(body, 'service_ca_agent_certificate_expiry_timestamp_seconds'), Date.parse(leaf.validTo) / 1000, body);
      assert.equal(sample(body, SUCCESS), 2, body);
      assert.equal(sample(body, 'service_ca_agent_renewals_total{result="failure"}'), 0, body);
      const success = sample(body, 'service_ca_agent_last_success_timestamp_seconds')!;
      // Obtained after the CA signed it (notBefore is backdated 1 s) and before this read.
      assert.ok(success >= Date.parse(leaf.validFrom) / 1000 && success <= Date.now() / 1000, `${success} against notBefore ${leaf.validFrom}`);
      assert.equal(sample(body, 'service_ca_agent_last_renewal_timestamp_seconds'), success);
      assert.equal((await fetch(metricsUrl.replace('/metrics', '/other'))).status, 404);
    });

    it('passes SIGTERM on to the command and exits with its status', async () => {
      s.signal('SIGTERM');
      const e = await exitWithin(s, 20_000);
      assert.equal(e.code, 7, s.output().slice(-3000));
      assert.equal(readFileSync(`${state()}.signals`, 'utf8'), 'SIGTERM\n', 'the command got SIGTERM once');
      assert.equal(starts().length, 1);
    });
  });

  it('--exec: the agent exits with the status of a command that ends on its own', async () => {
    const prefix = join(dir, 'short');
    const s = agent([...connection(), ...NAME_ARGS, '--ttl', '10m', '--out', prefix, '--exec', `'${process.execPath}' -e 'setTimeout(() => process.exit(3), 300)'`]);
    const e = await exitWithin(s, 30_000);
    assert.equal(e.code, 3, s.output());
    assert.ok(logLines(s).some((l) => l.msg === 'the command exited; the agent stops' && l.status === 3), s.output());
    assert.ok(existsSync(`${prefix}.pem`));
  });

  it('--pid-file: signals the pid the file holds at each renewal; a missing file is logged and the agent goes on', async () => {
    const prefix = join(dir, 'pidfile');
    const pidFile = join(dir, 'service.pid');
    const s = agent([...connection(), ...NAME_ARGS, '--ttl', '15s', '--out', prefix, '--max-backoff', '2s', '--pid-file', pidFile]);
    const missing = await waitFor(
      () => logLines(s).find((l) => l.level === 50 && l.msg === 'could not signal: no process id in the pid file'),
      30_000,
      () => `no error about the missing pid file:\n${s.output()}`,
    );
    assert.equal(missing.problem, 'the pid file does not exist');
    assert.ok(s.running, 'a missing pid file does not stop the agent');

    const service = (name: string) => {
      const p = spawnService(process.execPath, [servicePath, join(dir, name), join(dir, 'unused')], { cwd: dir, env: cleanEnv() });
      return waitFor(() => (count(join(dir, `${name}.hups`)) === 0 ? p : undefined), 10_000, () => `${name} did not start: ${p.output()}`);
    };
    const a = await service('service-a');
    writeFileSync(pidFile, `${a.pid}\n`);
    const first = serialOnDisk(prefix)!;
    const second = await nextCertificate(prefix, first, s);
    await waitFor(() => (count(join(dir, 'service-a.hups')) === 1 ? true : undefined), 5000, () => `service a was not signalled:\n${s.output().slice(-3000)}`);

    // The service restarts under another pid and rewrites its pid file: the next renewal signals the new one.
    const b = await service('service-b');
    writeFileSync(pidFile, `${b.pid}\n`);
    await nextCertificate(prefix, second, s);
    await waitFor(() => (count(join(dir, 'service-b.hups')) === 1 ? true : undefined), 5000, () => `service b was not signalled:\n${s.output().slice(-3000)}`);
    assert.equal(count(join(dir, 'service-a.hups')), 1, 'the old pid was not signalled again');
    assert.ok(s.running);
    s.signal('SIGTERM');
    assert.equal((await exitWithin(s, 10_000)).code, 0);
  });

  it('refuses conflicting or incomplete options with exit 2', async () => {
    const base = [...connection(), ...NAME_ARGS, '--out', join(dir, 'usage')];
    const cases: [string[], RegExp][] = [
      [['--pid-file', join(dir, 'x.pid'), '--signal-pid', '1'], /--signal-pid, --pid-file and --exec exclude each other/],
      [['--pid-file', join(dir, 'x.pid'), '--exec', 'true'], /--signal-pid, --pid-file and --exec exclude each other/],
      [['--p12', join(dir, 'x.p12')], /--p12 needs exactly one of --p12-passphrase-file and --p12-passphrase-env/],
      [['--p12', join(dir, 'x.p12'), '--p12-passphrase-env', 'SERVICE_CA_TEST_UNSET'], /the environment variable SERVICE_CA_TEST_UNSET is unset or empty/],
      [['--log-format', 'xml'], /--log-format must be json or text/],
      [['--metrics-addr', 'localhost'], /--metrics-addr must be HOST:PORT/],
    ];
    const results = await Promise.all(
      cases.map(async ([args]) => {
        const s = agent([...base, ...args]);
        return { e: await exitWithin(s, 30_000), output: s.output() };
      }),
    );
    results.forEach(({ e, output }, i) => {
      assert.equal(e.code, 2, output);
      assert.match(output, cases[i]![1]);
    });
    assert.equal(existsSync(join(dir, 'usage.pem')), false);
  });

  it('--log-format text prints readable lines, and --p12-passphrase-env reads the passphrase from the environment', async () => {
    const prefix = join(dir, 'text');
    const p12 = join(dir, 'text.p12');
    const r = await runOnce([...connection(), ...NAME_ARGS, '--ttl', '10m', '--out', prefix, '--log-format', 'text', '--p12', p12, '--p12-passphrase-env', 'AGENT_P12_PASSPHRASE'], {
      AGENT_P12_PASSPHRASE: PASSPHRASE,
    });
    assert.equal(r.code, 0, r.output);
    assert.equal(r.lines.length, 0, 'no JSON line');
    assert.match(r.output, /INFO.*certificate written/);
    const info = openssl(['pkcs12', '-info', '-noout', '-in', p12, '-passin', `file:${passPath}`]);
    assert.equal(info.status, 0, info.stderr);
  });
});
