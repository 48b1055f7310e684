#!/usr/bin/env node
// Runs the fuzz tests (test/fuzz/*.test.ts) with many more runs than `npm test` gives them.
// Usage: npm run fuzz [-- path-or-substring ...]
//   FUZZ_RUNS_FACTOR  multiplies every property's number of runs (default 20; `npm test` uses 1)
//   FUZZ_SEED         the fast-check seed of every property (default: a random one, printed)
//   TEST_DATABASE_URL as for `npm test`: Postgres instead of the embedded PGlite
// A failure prints fast-check's seed, replay path and shrunk counterexample; the same
// FUZZ_SEED and FUZZ_RUNS_FACTOR replay the run. Each file also writes the input it is about to
// try to FUZZ_TRACE_DIR/<file>.last, which is kept (and named) when a test process was killed
// by a signal: an input that aborts the process leaves no fast-check report.
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

const root = new URL('../..', import.meta.url).pathname;
const dir = join(root, 'test', 'fuzz');
const filters = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((name) => name.endsWith('.test.ts'))
  .map((name) => relative(root, join(dir, name)))
  .filter((p) => filters.length === 0 || filters.some((f) => p.includes(f)))
  .sort();
if (files.length === 0) {
  console.error('no fuzz test files match');
  process.exit(1);
}

const factor = process.env.FUZZ_RUNS_FACTOR ?? '20';
if (!(Number(factor) > 0)) {
  console.error(`FUZZ_RUNS_FACTOR must be a positive number, got ${JSON.stringify(factor)}`);
  process.exit(1);
}
const seed = process.env.FUZZ_SEED ?? String(randomInt(0x7fffffff));
if (!Number.isInteger(Number(seed))) {
  console.error(`FUZZ_SEED must be an integer, got ${JSON.stringify(seed)}`);
  process.exit(1);
}

const traceDir = mkdtempSync(join(tmpdir(), 'service-ca-fuzz-trace-'));
console.log(
  `fuzz: FUZZ_RUNS_FACTOR=${factor} FUZZ_SEED=${seed}; database: ${process.env.TEST_DATABASE_URL ? 'Postgres (TEST_DATABASE_URL)' : 'embedded PGlite'}; ${files.length} test files`,
);
const started = Date.now();
const child = spawn(
  process.execPath,
  // Each property runs FUZZ_RUNS_FACTOR times longer than in `npm test`, hence the long timeout.
  ['--import', 'tsx', '--test', `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`, `--test-timeout=${process.env.FUZZ_TEST_TIMEOUT_MS ?? 4 * 3600_000}`, ...files],
  { cwd: root, stdio: ['inherit', 'pipe', 'inherit'], env: { ...process.env, FUZZ_RUNS_FACTOR: factor, FUZZ_SEED: seed, FUZZ_TRACE_DIR: traceDir } },
);

// Pass the test runner's output through, adding up the case counts each file reports.
let cases = 0;
let killed = false;
let pending = '';
child.stdout.setEncoding('utf8').on('data', (chunk) => {
  process.stdout.write(chunk);
  const lines = (pending + chunk).split('\n');
  pending = lines.pop() ?? '';
  for (const line of lines) {
    const m = /fuzz cases: (\d+) in /.exec(line);
    if (m) cases += Number(m[1]);
    if (/^\s*signal: 'SIG/.test(line)) killed = true;
  }
});
child.on('exit', (code, signal) => {
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (killed) console.log(`fuzz: a test process was killed by a signal; the input each file tried last is in ${traceDir}/<file>.last`);
  else rmSync(traceDir, { recursive: true, force: true });
  console.log(`fuzz: ${cases} cases in ${seconds} s (FUZZ_RUNS_FACTOR=${factor} FUZZ_SEED=${seed}); replay with FUZZ_SEED=${seed} FUZZ_RUNS_FACTOR=${factor} npm run fuzz`);
  process.exit(signal ? 1 : code ?? 1);
});
