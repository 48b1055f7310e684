/**
 * `service-ca init --intermediate`, the first case as a child process and the rest in process: a CA made by `init` (P-384, its root key
 * encrypted in a folder of its own) gets a new intermediate under the same root, checked by
 * openssl (the chain, the subjectKeyIdentifier the command prints, the name, the dates) and by
 * node:crypto (the key file); the printed `ca.issuers` list is read as YAML. The refusals (a key
 * of another CA, a wrong or missing passphrase, files already there, a current intermediate of
 * another root, a missing --root-key) exit non-zero with their exact message and write nothing.
 */
import assert from 'node:assert/strict';
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { initCommand } from '../../src/cli/init.js';
import { runCli, runInProcess, type CliResult } from '../setup/cli-run.js';
import { openssl } from '../setup/openssl.js';

const ROOT_PASS = 'correct horse battery staple';
const INT_PASS = 'pass-phrase-that-must-never-leak';
const OLD_NAME = 'CN=Shop Issuing CA,O=Shop';
const DAY = 86_400_000;

function assertExit(r: CliResult, code: number): void {
  assert.equal(r.code, code, r.describe);
}

/** openssl x509 -noout ARGS -in file: its output, or a failure with openssl's message. */
function x509Field(file: string, ...args: string[]): string {
  const r = openssl(['x509', '-noout', ...args, '-in', file]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/** The subjectKeyIdentifier as openssl prints it, normalised to lowercase hex without colons. */
function opensslKeyId(file: string): string {
  const text = x509Field(file, '-ext', 'subjectKeyIdentifier');
  const id = text.split('\n')[1]?.replace(/[:\s]/g, '').toLowerCase() ?? '';
  assert.match(id, /^[0-9a-f]{40}$/, `a 160-bit key id in: ${text}`);
  return id;
}

/** The subject with each value's string type (PrintableString, UTF8String...), as openssl reads it. */
const typedSubject = (file: string) => x509Field(file, '-subject', '-nameopt', 'RFC2253,show_type');
const dateOf = (file: string, which: 'startdate' | 'enddate') => new Date(x509Field(file, `-${which}`).replace(/^not(Before|After)=/, ''));
const curveOf = (file: string) => /ASN1 OID: (\S+)|Public Key Algorithm: (ED25519)/.exec(x509Field(file, '-text'))?.slice(1).find(Boolean);

/** The printed `ca:` section: from its line to the next blank line, read as YAML. */
function printedIssuers(stdout: string): { text: string; issuers: Record<string, unknown>[] } {
  const text = /^ca:\n(?: .*\n)+/m.exec(stdout)?.[0];
  assert.ok(text, `a ca: section in: ${stdout}`);
  const parsed = parseYaml(text) as { ca: { issuers: Record<string, unknown>[] } };
  assert.deepEqual(Object.keys(parsed), ['ca']);
  assert.deepEqual(Object.keys(parsed.ca), ['issuers']);
  return { text, issuers: parsed.ca.issuers };
}

/**
 * `service-ca ARGS` run in this process (the command's own run(), its console output captured,
 * `env` set for the call): the same code as the binary without a process start per case. One
 * test below runs the real binary. Calls must not overlap (console and env are this process's).
 */
async function cli(argv: string[], options: { env?: Record<string, string> } = {}): Promise<CliResult> {
  assert.equal(argv[0], 'init');
  const saved = Object.fromEntries(Object.keys(options.env ?? {}).map((k) => [k, process.env[k]]));
  Object.assign(process.env, options.env);
  try {
    const r = await runInProcess(initCommand, argv.slice(1));
    const line = (t: string) => (t === '' ? '' : `${t}\n`);
    return { code: r.code, signal: null, stdout: line(r.stdout), stderr: line(r.stderr), describe: `service-ca ${argv.join(' ')} → ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}` };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Runs the tasks one after the other (in-process runs share the console). */
async function sequential<T>(tasks: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = [];
  for (const task of tasks) results.push(await task());
  return results;
}

describe('service-ca init --intermediate', () => {
  let base: string;
  let ca: string;
  let rootPem: string;
  let rootKey: string;
  let oldIntermediate: string;
  let other: string;
  const rollover = (dir: string, ...args: string[]) => ['init', '--intermediate', '--dir', dir, '--root-certificate', rootPem, '--root-key', rootKey, '--root-passphrase-env', 'ROOT_PASS', ...args];

  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'service-ca-rollover-'));
    ca = join(base, 'ca');
    rootPem = join(ca, 'root.pem');
    rootKey = join(base, 'offline', 'root.key');
    oldIntermediate = join(ca, 'intermediate.pem');
    other = join(base, 'other');
    const [made, otherMade] = await sequential([
      // A root of 400 days: the default 1825 days of a new intermediate must be capped to it.
      () => cli(['init', '--dir', ca, '--key-type', 'p384', '--root-key-dir', join(base, 'offline'), '--root-passphrase-env', 'ROOT_PASS', '--root-days', '400', '--intermediate-days', '200', '--intermediate-name', OLD_NAME], { env: { ROOT_PASS } }),
      () => cli(['init', '--dir', other]),
    ]);
    assertExit(made!, 0);
    assertExit(otherMade!, 0);
    assert.match(readFileSync(rootKey, 'utf8'), /^-----BEGIN ENCRYPTED PRIVATE KEY-----/, 'the root key is encrypted');
  });
  after(() => rmSync(base, { recursive: true, force: true }));

  it('signs a new intermediate under the root, named as the current one, capped at the root, and prints the issuers list', async () => {
    const dir = join(ca, '2027');
    const r = await runCli(rollover(dir, '--current-certificate', oldIntermediate, '--intermediate-passphrase-env', 'INT_PASS'), { env: { ROOT_PASS, INT_PASS } });
    assertExit(r, 0);
    assert.equal(r.stderr, '');
    for (const secret of [ROOT_PASS, INT_PASS, 'PRIVATE KEY']) assert.ok(!r.stdout.includes(secret), `"${secret}" is never printed`);
    assert.deepEqual(readdirSync(dir).sort(), ['chain.pem', 'intermediate.key', 'intermediate.pem']);
    const cert = join(dir, 'intermediate.pem');

    const verified = openssl(['verify', '-x509_strict', '-CAfile', rootPem, cert]);
    assert.equal(verified.stdout.trim(), `${cert}: OK`, verified.stderr);
    assert.equal(verified.status, 0);

    const keyId = opensslKeyId(cert);
    assert.notEqual(keyId, opensslKeyId(oldIntermediate), 'a new key');
    assert.equal(/^Key id: (.*)$/m.exec(r.stdout)?.[1], keyId, 'the printed key id is the certificate\'s subjectKeyIdentifier');
    assert.equal(typedSubject(cert), typedSubject(oldIntermediate), 'the current intermediate\'s name, string types included');
    assert.equal(typedSubject(cert), 'subject=O=PRINTABLESTRING:Shop,CN=PRINTABLESTRING:Shop Issuing CA');
    assert.equal(curveOf(cert), 'secp384r1', 'the current intermediate\'s key type');

    const key = readFileSync(join(dir, 'intermediate.key'), 'utf8');
    assert.equal(statSync(join(dir, 'intermediate.key')).mode & 0o777, 0o600);
    assert.match(key, /^-----BEGIN ENCRYPTED PRIVATE KEY-----/);
    assert.ok(new X509Certificate(readFileSync(cert)).checkPrivateKey(createPrivateKey({ key, passphrase: INT_PASS })), 'intermediate.key is the new certificate\'s key');

    const root = new X509Certificate(readFileSync(rootPem));
    assert.equal(readFileSync(join(dir, 'chain.pem'), 'utf8').match(/BEGIN CERTIFICATE/g)?.length, 1, 'chain.pem holds one certificate');
    assert.equal(new X509Certificate(readFileSync(join(dir, 'chain.pem'))).fingerprint256, root.fingerprint256, 'chain.pem is the root');
    assert.equal(/^Root SHA-256 fingerprint: (.*)$/m.exec(r.stdout)?.[1], createHash('sha256').update(root.raw).digest('hex'));

    // Capped: 1825 days asked, the root ends after 400.
    assert.equal(x509Field(cert, '-enddate'), x509Field(rootPem, '-enddate'), 'notAfter is the root\'s');
    const notBefore = dateOf(cert, 'startdate');
    const notAfter = dateOf(cert, 'enddate');
    assert.ok(r.stdout.includes(`Valid from ${notBefore.toISOString()} to ${notAfter.toISOString()}\n`), r.stdout);
    assert.ok(r.stdout.includes(`capped at the root's notAfter: 1825 days would have run to ${new Date(notBefore.getTime() + 1825 * DAY).toISOString()}\n`), r.stdout);

    const { text, issuers } = printedIssuers(r.stdout);
    assert.deepEqual(issuers, [
      { certificate: oldIntermediate, chain: join(dir, 'chain.pem') },
      { certificate: cert, key: join(dir, 'intermediate.key'), keyPassphrase: '${INT_PASS}', chain: join(dir, 'chain.pem'), active: true },
    ]);
    assert.match(text, /^ {6}# key: its key file, and keyPassphrase if it has one, as configured today$/m, 'a placeholder for the current key');
    assert.match(r.stdout, /restart every replica with both issuers, the new one active/);
    assert.match(r.stdout, /`service-ca ca status` shows it\), then\nremove it/);
  });

  it('without --current-certificate: the default name, --key-type, a validity within the root, and a placeholder for the current issuer', async () => {
    const dir = join(base, 'no-current');
    const r = await cli(rollover(dir, '--key-type', 'ed25519', '--intermediate-days', '30'), { env: { ROOT_PASS } });
    assertExit(r, 0);
    const cert = join(dir, 'intermediate.pem');
    assert.equal(openssl(['verify', '-x509_strict', '-CAfile', rootPem, cert]).status, 0);
    assert.equal(typedSubject(cert), 'subject=CN=PRINTABLESTRING:service-ca Intermediate CA');
    assert.equal(curveOf(cert), 'ED25519');
    assert.equal(dateOf(cert, 'enddate').getTime() - dateOf(cert, 'startdate').getTime(), 30 * DAY, 'the 30 days asked');
    assert.ok(!r.stdout.includes('capped'), r.stdout);
    assert.doesNotMatch(readFileSync(join(dir, 'intermediate.key'), 'utf8'), /ENCRYPTED/, 'no passphrase was asked for');

    const { text, issuers } = printedIssuers(r.stdout);
    assert.deepEqual(issuers, [{ certificate: cert, key: join(dir, 'intermediate.key'), chain: join(dir, 'chain.pem'), active: true }]);
    assert.match(text, /^ {4}# - the current issuer: its certificate, key, keyPassphrase and chain as configured today$/m);
  });

  it('--json prints the paths, key id, validity and root fingerprint; the key type defaults to the root\'s', async () => {
    const dir = join(base, 'json');
    const r = await cli(rollover(dir, '--json'), { env: { ROOT_PASS } });
    assertExit(r, 0);
    const out = JSON.parse(r.stdout) as Record<string, string>;
    const cert = join(dir, 'intermediate.pem');
    assert.deepEqual(out, {
      dir,
      intermediateCertificate: cert,
      intermediateKey: join(dir, 'intermediate.key'),
      chain: join(dir, 'chain.pem'),
      keyId: opensslKeyId(cert),
      notBefore: dateOf(cert, 'startdate').toISOString(),
      notAfter: dateOf(rootPem, 'enddate').toISOString(),
      rootFingerprint: createHash('sha256').update(new X509Certificate(readFileSync(rootPem)).raw).digest('hex'),
    });
    assert.equal(curveOf(cert), 'secp384r1');
  });

  it('refuses a key of another CA, a wrong or missing passphrase, another root\'s intermediate and existing files, writing nothing', async () => {
    const otherKey = join(other, 'root.key');
    const occupied = join(base, 'occupied');
    mkdirSync(occupied);
    writeFileSync(join(occupied, 'chain.pem'), 'kept\n');
    const cases: { dir: string; argv: string[]; env: Record<string, string>; message: string }[] = [
      { dir: join(base, 'r1'), argv: ['init', '--intermediate', '--dir', join(base, 'r1'), '--root-certificate', rootPem, '--root-key', otherKey], env: {}, message: `the root key ${otherKey} does not match the root certificate ${rootPem}` },
      { dir: join(base, 'r2'), argv: rollover(join(base, 'r2')), env: { ROOT_PASS: 'not the passphrase' }, message: `cannot decrypt the root key ${rootKey} (wrong passphrase?)` },
      { dir: join(base, 'r3'), argv: ['init', '--intermediate', '--dir', join(base, 'r3'), '--root-certificate', rootPem, '--root-key', rootKey], env: {}, message: `the root key ${rootKey} is encrypted and no passphrase was given` },
      { dir: join(base, 'r4'), argv: rollover(join(base, 'r4'), '--current-certificate', join(other, 'intermediate.pem')), env: { ROOT_PASS }, message: `the current intermediate ${join(other, 'intermediate.pem')} was not issued by the root certificate ${rootPem}` },
    ];
    const runs = await sequential(cases.map((c) => () => cli(c.argv, { env: c.env })));
    for (const [i, c] of cases.entries()) {
      const r = runs[i]!;
      assertExit(r, 1);
      assert.equal(r.stderr, `service-ca: ${c.message}\n`, r.describe);
      assert.equal(r.stdout, '');
      assert.ok(!existsSync(c.dir), `${c.dir} was not made`);
    }
    assert.ok(!runs[1]!.stderr.includes('not the passphrase'), 'the passphrase is not echoed');

    // Files already there: the whole set is refused, those there are kept, none is added.
    // The files of ca/ (ca/2027 of the first test is a folder beside them).
    const filesOf = (dir: string) => readdirSync(dir).filter((f) => statSync(join(dir, f)).isFile()).sort().map((f) => [f, readFileSync(join(dir, f), 'utf8')]);
    const before = filesOf(ca);
    const [inCa, inOccupied] = await sequential([() => cli(rollover(ca), { env: { ROOT_PASS } }), () => cli(rollover(occupied), { env: { ROOT_PASS } })]);
    assertExit(inCa!, 1);
    assert.equal(inCa!.stderr, `service-ca: refusing to overwrite an existing CA: ${['intermediate.key', 'intermediate.pem', 'chain.pem'].map((f) => join(ca, f)).join(', ')}\n`);
    assert.deepEqual(filesOf(ca), before);
    assert.deepEqual(before.map(([f]) => f), ['chain.pem', 'intermediate.key', 'intermediate.pem', 'root.pem']);
    assertExit(inOccupied!, 1);
    assert.equal(inOccupied!.stderr, `service-ca: refusing to overwrite an existing CA: ${join(occupied, 'chain.pem')}\n`);
    assert.deepEqual(readdirSync(occupied), ['chain.pem']);
    assert.equal(readFileSync(join(occupied, 'chain.pem'), 'utf8'), 'kept\n');
  });

  it('without --root-key (or with an option of a new root) it is bad usage: exit 2 and the usage', async () => {
    const missing = await cli(['init', '--intermediate', '--dir', join(base, 'u1'), '--root-certificate', rootPem]);
    assertExit(missing, 2);
    assert.ok(missing.stderr.startsWith('service-ca: --root-key is required with --intermediate\n\nUsage: service-ca init --dir DIR'), missing.describe);
    assert.equal(missing.stdout, '');
    assert.ok(!existsSync(join(base, 'u1')));

    const both = await runInProcess(initCommand, ['--intermediate', '--dir', join(base, 'u2')]);
    assert.equal(both.code, 2);
    assert.ok(both.stderr.startsWith('service-ca: --root-certificate and --root-key are required with --intermediate\n'), both.stderr);
    const mixed = await runInProcess(initCommand, [...rollover(join(base, 'u3'), '--root-days', '10').slice(1)]);
    assert.equal(mixed.code, 2);
    assert.ok(mixed.stderr.startsWith('service-ca: --root-days is for a new root, not for --intermediate\n'), mixed.stderr);
    const stray = await runInProcess(initCommand, ['--dir', join(base, 'u4'), '--current-certificate', oldIntermediate]);
    assert.equal(stray.code, 2);
    assert.ok(stray.stderr.startsWith('service-ca: --current-certificate is only for --intermediate\n'), stray.stderr);
    const days = await runInProcess(initCommand, [...rollover(join(base, 'u5'), '--intermediate-days', '0').slice(1)]);
    assert.equal(days.code, 2);
    assert.ok(days.stderr.startsWith('service-ca: --intermediate-days must be a whole number of days above 0\n'), days.stderr);
    for (const d of ['u2', 'u3', 'u4', 'u5']) assert.ok(!existsSync(join(base, d)), `${d} was not made`);
  });

  it('init --help documents the mode', async () => {
    const help = await runInProcess(initCommand, ['--help']);
    assert.equal(help.code, 0);
    assert.ok(help.stdout.includes('service-ca init --intermediate --dir DIR --root-certificate ROOT.pem --root-key ROOT.key [options]'), help.stdout);
    for (const option of ['--root-certificate FILE', '--root-key FILE', '--current-certificate FILE']) assert.ok(help.stdout.includes(`  ${option}`), option);
    assert.match(help.stdout, /The new intermediate ends no later than the root\./);
  });
});
