/**
 * The quick start (docs/api.md "Running it"): `serve` with no configuration at all, in an empty
 * folder, creates a development CA under ./data and prints the root's SHA-256 fingerprint and the
 * commands that mint a token and request a certificate. The printed commands are run as printed
 * (their `npm run -s service-ca --` prefix becomes `tsx <project>/src/cli/index.ts`, the script
 * it names, because npm would run the script from the project folder rather than this one), and
 * openssl checks the result. The development CA uses the fixed ports 8443 and 8080.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { CLI, TSX_BIN, cleanEnv, exitWithin, killAll, portIsFree, spawnService, type ChildService } from '../setup/processes.js';

const run = promisify(execFile);
const DEV_PORTS = [8443, 8080];
const NPM_PREFIX = 'npm run -s service-ca -- ';

interface Banner {
  fingerprint: string;
  commands: string[];
}

/** Waits for the banner on stdout: the fingerprint line and every command after it. */
async function banner(service: ChildService, timeoutMs = 90_000): Promise<Banner> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const out = service.stdout();
    const fingerprint = /Root certificate SHA-256 fingerprint: ([0-9A-F:]+)/.exec(out)?.[1];
    const commands = out
      .split('\n')
      .filter((l) => /^ {2}\S/.test(l))
      .map((l) => l.trim());
    if (fingerprint && commands.some((c) => c.startsWith('openssl verify'))) return { fingerprint, commands };
    if (!service.running) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`no banner with a fingerprint and the commands (running: ${service.running}):\n${service.output()}`);
}

/** Splits a printed command line into argv and an optional `> file` redirection. */
function parseCommand(line: string): { argv: string[]; stdoutTo?: string } {
  const words = line.split(/\s+/).filter(Boolean);
  const gt = words.indexOf('>');
  if (gt >= 0) {
    assert.equal(gt, words.length - 2, `one redirection, at the end: ${line}`);
    return { argv: words.slice(0, gt), stdoutTo: words[gt + 1]! };
  }
  assert.ok(!line.includes('|') && !line.includes('&&') && !line.includes('$('), `a plain command: ${line}`);
  return { argv: words };
}

describe('quick start: serve with no configuration', () => {
  let cwd: string;
  let service: ChildService | undefined;
  const env = cleanEnv();

  before(async () => {
    const busy: number[] = [];
    for (const p of DEV_PORTS) if (!(await portIsFree(p))) busy.push(p);
    assert.deepEqual(busy, [], `the development CA listens on the fixed ports ${DEV_PORTS.join(' and ')}; ${busy.join(' and ')} ${busy.length > 1 ? 'are' : 'is'} busy on 127.0.0.1: stop whatever uses ${busy.length > 1 ? 'them' : 'it'} and run this test again`);
    cwd = mkdtempSync(join(tmpdir(), 'service-ca-quickstart-'));
  });
  after(async () => {
    await killAll();
    if (cwd) rmSync(cwd, { recursive: true, force: true });
  });

  it('creates ./data, prints the fingerprint and commands that work as printed, and stops with exit 0 on SIGTERM', async (t) => {
    assert.equal(env.SERVICE_CA_CONFIG, undefined);
    assert.equal(env.DATABASE_URL, undefined);
    const started = Date.now();
    service = spawnService(TSX_BIN, [CLI, 'serve'], { cwd, env });
    const { fingerprint, commands } = await banner(service);
    t.diagnostic(`banner after ${Date.now() - started} ms`);

    // ./data holds the development CA, its token issuer, its configuration and the embedded database.
    for (const f of ['data/service-ca.yaml', 'data/ca/root.pem', 'data/ca/intermediate.pem', 'data/ca/intermediate.key', 'data/dev-issuer.key.json', 'data/pgdata']) {
      assert.ok(existsSync(join(cwd, f)), `${f} exists`);
    }
    for (const secret of ['data/ca/intermediate.key', 'data/ca/root.key', 'data/dev-issuer.key.json']) {
      assert.equal(statSync(join(cwd, secret)).mode & 0o777, 0o600, `${secret} is readable by its owner only`);
    }

    // The fingerprint printed is the root's, as openssl computes it.
    const x509 = await run('openssl', ['x509', '-noout', '-fingerprint', '-sha256', '-in', 'data/ca/root.pem'], { cwd });
    const expected = /Fingerprint=([0-9A-F:]+)/i.exec(x509.stdout)?.[1];
    assert.ok(expected, x509.stdout);
    assert.equal(fingerprint, expected.toUpperCase());

    // The commands, in order: token, request, then openssl verify.
    assert.equal(commands.length, 3, `three commands:\n${commands.join('\n')}`);
    assert.ok(commands[0]!.startsWith(`${NPM_PREFIX}token `), commands[0]);
    assert.ok(commands[1]!.startsWith(`${NPM_PREFIX}request `), commands[1]);
    assert.ok(commands[2]!.startsWith('openssl verify '), commands[2]);
    assert.match(commands[1]!, /--server https:\/\/localhost:8443 /);

    let verifyOutput = '';
    for (const line of commands) {
      const { argv, stdoutTo } = parseCommand(line);
      const viaNpm = argv.slice(0, 5).join(' ') === NPM_PREFIX.trim();
      const [file, args] = viaNpm ? [TSX_BIN, [CLI, ...argv.slice(5)]] : [argv[0]!, argv.slice(1)];
      const r = await run(file, args, { cwd, env, timeout: 60_000 }).catch((err: { code?: number; stdout?: string; stderr?: string }) =>
        assert.fail(`"${line}" failed with ${err.code}:\n${err.stdout ?? ''}${err.stderr ?? ''}\nserver:\n${service!.output()}`),
      );
      if (stdoutTo) writeFileSync(join(cwd, stdoutTo), r.stdout);
      if (file === 'openssl') verifyOutput = r.stdout + r.stderr;
    }

    assert.match(verifyOutput, /^web\.pem: OK$/m, verifyOutput);
    assert.match(readFileSync(join(cwd, 'token.jwt'), 'utf8'), /^eyJ[\w-]+\.[\w-]+\.[\w-]+\n$/, 'token.jwt holds one JWT');
    assert.equal(statSync(join(cwd, 'web.key')).mode & 0o777, 0o600, 'web.key has mode 0600');
    for (const f of ['web.pem', 'web.chain.pem']) assert.ok(existsSync(join(cwd, f)), `${f} exists`);

    service.signal('SIGTERM');
    const e = await exitWithin(service, 10_000);
    t.diagnostic(`exited ${e.ms} ms after SIGTERM`);
    assert.equal(e.signal, null, service.output());
    assert.equal(e.code, 0, `exit code after SIGTERM:\n${service.output()}`);
  });
});
