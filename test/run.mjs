#!/usr/bin/env node
// Runs every test file under test/ with node's test runner (TypeScript through tsx).
// Usage: npm test [-- path-or-substring ...]   Without TEST_DATABASE_URL, store and API tests run
// on the embedded database (PGlite); with it, each test file gets a fresh Postgres database.
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const dir = join(root, 'test');
function walk(d) {
  return readdirSync(d).flatMap((name) => {
    const p = join(d, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.test.ts') ? [p] : [];
  });
}
const filters = process.argv.slice(2);
const files = walk(dir)
  .map((p) => relative(root, p))
  .filter((p) => filters.length === 0 || filters.some((f) => p.includes(f)))
  .sort();
if (files.length === 0) {
  console.error('no test files match');
  process.exit(1);
}
console.log(`database: ${process.env.TEST_DATABASE_URL ? 'Postgres (TEST_DATABASE_URL)' : 'embedded PGlite'}; ${files.length} test files`);
// Every app and child service of the run logs here at debug level (test/setup/app.ts,
// test/setup/processes.ts); after the run, every line is searched for secrets.
const logDir = mkdtempSync(join(tmpdir(), 'service-ca-test-logs-'));
// The command line's saved contexts (src/cli/context.ts): an empty folder of the run's own, never
// the user's, and none of the user's SERVICE_CA_* client variables.
const configDir = mkdtempSync(join(tmpdir(), 'service-ca-test-config-'));
const testEnv = { ...process.env, TEST_LOG_DIR: logDir, SERVICE_CA_CONFIG_DIR: configDir };
for (const k of ['SERVICE_CA_URL', 'SERVICE_CA_ROOT', 'SERVICE_CA_TOKEN_FILE', 'SERVICE_CA_TLS_SERVER_NAME', 'SERVICE_CA_CONTEXT']) delete testEnv[k];
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`, '--test-timeout=180000', ...files],
  { cwd: root, stdio: 'inherit', env: testEnv },
);
child.on('exit', (code, signal) => {
  const leaks = checkLogs();
  rmSync(logDir, { recursive: true, force: true });
  rmSync(configDir, { recursive: true, force: true });
  process.exit(signal ? 1 : (code ?? 1) || leaks);
});

/**
 * What must never reach a log line: a JWT (any bearer token), a PEM private key, and the
 * passphrases and secrets the tests use. Returns 1 when a line holds one (or, for a whole run,
 * when there was no line to search at all: the capture would be broken).
 */
function checkLogs() {
  const patterns = [
    ['a JWT', /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*/],
    ['a PEM private key', /PRIVATE KEY-----/],
    ['a test passphrase', /correct horse battery staple|pass-phrase-that-must-never-leak/],
  ];
  let lines = 0;
  const found = [];
  for (const name of readdirSync(logDir)) {
    for (const line of readFileSync(join(logDir, name), 'utf8').split('\n')) {
      if (!line) continue;
      lines++;
      for (const [what, re] of patterns) if (re.test(line)) found.push(`${name}: ${what}: ${line.replace(re, '«…»').slice(0, 300)}`);
    }
  }
  if (found.length > 0) {
    console.error(`\nsecrets in the logs of this run (${found.length} lines):\n${found.slice(0, 20).join('\n')}`);
    return 1;
  }
  if (lines === 0 && filters.length === 0) {
    console.error('\nthe log check read no log line: the capture is broken');
    return 1;
  }
  console.log(`# log check: ${lines} log lines searched for tokens, private keys and passphrases: none found`);
  return 0;
}
