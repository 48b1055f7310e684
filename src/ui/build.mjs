#!/usr/bin/env node
/**
 * Builds the admin console into dist/ui/ (src/ui/vite.config.mjs), atomically: Vite writes a
 * folder of its own, which then replaces dist/ui/ by rename, so that a CA serving the console
 * while a build runs (a test, `npm run build` beside `npm start`) never sees half a build.
 *
 *   node src/ui/build.mjs              build
 *   node src/ui/build.mjs --if-stale   build only when dist/ui/ is missing or older than a file
 *                                      of src/ui/ or the lock file; without Vite (production
 *                                      dependencies only) warn and exit 0: the CA runs, and /ui
 *                                      answers that the console is not built.
 *
 * `npm start` runs the second form first (prestart), so `npm install && npm start` on a fresh
 * clone serves the console; `npm run build` (and so the Docker image) runs the first.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const out = join(root, 'dist', 'ui');

/** The newest modification time of the files under dir (milliseconds). */
function newest(dir) {
  let t = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    t = Math.max(t, entry.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function stale() {
  const index = join(out, 'index.html');
  if (!existsSync(index)) return true;
  const built = statSync(index).mtimeMs;
  return newest(here) > built || statSync(join(root, 'package-lock.json')).mtimeMs > built;
}

const ifStale = process.argv.includes('--if-stale');
if (ifStale && !stale()) process.exit(0);

let vite;
try {
  vite = await import('vite');
} catch {
  if (!ifStale) throw new Error('vite is not installed: run npm install (with dev dependencies) to build the admin console');
  console.warn('service-ca: the admin console (/ui) is not built and Vite is not installed here; run `npm install` then `npm run build:ui` to build it');
  process.exit(0);
}

const started = Date.now();
mkdirSync(join(root, 'dist'), { recursive: true });
const work = mkdtempSync(join(root, 'dist', '.ui-build-'));
try {
  await vite.build({ configFile: join(here, 'vite.config.mjs'), build: { outDir: join(work, 'ui') } });
  // Swap: the old build aside, the new one in place (two renames: the folder is never half written).
  const old = join(work, 'old');
  if (existsSync(out)) renameSync(out, old);
  try {
    renameSync(join(work, 'ui'), out);
  } catch (err) {
    // Another build won the race: its result is as good as ours (same sources, same hashes).
    if (!existsSync(out)) throw err;
  }
  console.log(`service-ca: admin console built into ${out} in ${Date.now() - started} ms`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
