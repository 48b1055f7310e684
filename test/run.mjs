#!/usr/bin/env node
// Runs every test file under test/ with node's test runner (TypeScript through tsx).
// Usage: npm test [-- path-or-substring ...]   Without TEST_DATABASE_URL, store and API tests run
// on the embedded database (PGlite); with it, each test file gets a fresh Postgres database.
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
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
const child = spawn(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`, '--test-timeout=180000', ...files],
  { cwd: root, stdio: 'inherit' },
);
child.on('exit', (code, signal) => process.exit(signal ? 1 : code ?? 1));
