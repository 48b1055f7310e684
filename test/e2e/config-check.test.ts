/**
 * `service-ca config check FILE` and `service-ca config schema` as child processes: the Docker
 * Compose example passes once the variables it references are set (the loader `serve` uses,
 * `${VAR}` expansion included) and fails naming the variable when one is not; a file with two
 * mistakes gets both key paths on stderr and exit 1; a policy pattern the compiler refuses is
 * found too; bad usage exits 2 with the usage on stderr; `config schema` prints the committed
 * docs/config.schema.json.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { removeAtExit } from '../setup/cleanup.js';
import { inParallel, runCli, type CliResult } from '../setup/cli-run.js';
import { PROJECT_ROOT } from '../setup/processes.js';

const COMPOSE_CONFIG = join(PROJECT_ROOT, 'deploy/compose/config.yaml');

/** A configuration that passes: the keys without defaults, and a policy. */
const GOOD = `
ca: { certificate: ./ca/intermediate.pem, key: ./ca/intermediate.key }
auth:
  issuers:
    - name: dev
      issuer: service-ca-dev
      audience: service-ca
      jwks: { file: ./jwks.json }
policies:
  - identity: "spiffe://example.org/ns/{ns}/sa/{sa}"
    dns: ["{sa}.{ns}.svc"]
`;

const lines = (text: string) => text.split('\n').filter((l) => l !== '');

function assertUsage(r: CliResult, what: RegExp): void {
  assert.equal(r.code, 2, r.describe);
  assert.match(r.stderr, what, r.describe);
  assert.match(r.stderr, /^Usage: service-ca config check FILE$/m, `the usage on stderr\n${r.describe}`);
  assert.equal(r.stdout, '', r.describe);
}

describe('service-ca config', () => {
  let dir: string;
  const file = (name: string, text: string) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'service-ca-config-check-'));
    removeAtExit(dir);
  });

  it('check passes a valid file (exit 0), the Compose example once its variables are set, and names an unset variable (exit 1)', async () => {
    const good = file('good.yaml', GOOD);
    const [plain, compose, unset] = await inParallel([
      () => runCli(['config', 'check', good]),
      () => runCli(['config', 'check', COMPOSE_CONFIG], { env: { DATABASE_URL: 'postgres://ca@db/ca', CA_KEY_PASSPHRASE: 'not-a-real-passphrase' } }),
      // Empty counts as unset (config.ts expandEnv), whatever the environment of the test run holds.
      () => runCli(['config', 'check', COMPOSE_CONFIG], { env: { DATABASE_URL: 'postgres://ca@db/ca', CA_KEY_PASSPHRASE: '' } }),
    ]);
    assert.equal(plain!.code, 0, plain!.describe);
    assert.equal(plain!.stderr, '', plain!.describe);
    assert.equal(plain!.stdout.trim(), `${good}: valid`);
    assert.equal(compose!.code, 0, compose!.describe);
    assert.equal(compose!.stderr, '', compose!.describe);
    assert.equal(unset!.code, 1, unset!.describe);
    assert.deepEqual(lines(unset!.stderr), ['ca.keyPassphrase: environment variable CA_KEY_PASSPHRASE is not set']);
    assert.equal(unset!.stdout, '');
  });

  it('check prints each problem as KEY.PATH: message on stderr and exits 1: two schema mistakes, then a policy pattern', async () => {
    const twoMistakes = file(
      'two.yaml',
      GOOD.replace('ca: {', 'server: { port: 70000 }\nissuance: { maxTtl: 3 days }\nca: {'),
    );
    const badPattern = file('pattern.yaml', GOOD.replace('dns: ["{sa}.{ns}.svc"]', 'dns: ["{sa}.{team}.svc"]'));
    const [two, pattern, missing] = await inParallel([
      () => runCli(['config', 'check', twoMistakes]),
      () => runCli(['config', 'check', badPattern]),
      () => runCli(['config', 'check', join(dir, 'no-such-file.yaml')]),
    ]);
    assert.equal(two!.code, 1, two!.describe);
    assert.equal(two!.stdout, '');
    const problems = lines(two!.stderr);
    assert.equal(problems.length, 2, two!.describe);
    assert.ok(problems.some((l) => /^server\.port: \S/.test(l)), two!.describe);
    assert.ok(problems.some((l) => l.startsWith('issuance.maxTtl: "3 days" is not a duration')), two!.describe);

    assert.equal(pattern!.code, 1, pattern!.describe);
    assert.deepEqual(lines(pattern!.stderr), ['policies.0.dns.0: "{team}" is neither {identity} nor a capture of the identity pattern']);

    assert.equal(missing!.code, 1, missing!.describe);
    assert.match(missing!.stderr, /^cannot read .*no-such-file\.yaml: ENOENT$/m);
  });

  it('bad usage exits 2 with the usage on stderr', async () => {
    const results = await inParallel([
      () => runCli(['config']),
      () => runCli(['config', 'check']),
      () => runCli(['config', 'check', 'a.yaml', 'b.yaml']),
      () => runCli(['config', 'check', '--strict', 'a.yaml']),
      () => runCli(['config', 'validate', 'a.yaml']),
    ]);
    const [none, noFile, twoFiles, option, unknown] = results as CliResult[];
    assertUsage(none!, /config needs the subcommand check or schema/);
    assertUsage(noFile!, /config check needs a FILE/);
    assertUsage(twoFiles!, /config check takes one FILE/);
    assertUsage(option!, /--strict/);
    assertUsage(unknown!, /no subcommand "validate"/);
  });

  it('schema prints the JSON Schema that docs/config.schema.json holds', async () => {
    const r = await runCli(['config', 'schema']);
    assert.equal(r.code, 0, r.describe);
    assert.equal(r.stdout, readFileSync(join(PROJECT_ROOT, 'docs/config.schema.json'), 'utf8'));
    const schema = JSON.parse(r.stdout) as { properties: Record<string, unknown> };
    assert.ok(schema.properties.auth && schema.properties.policies);
  });
});
