/**
 * The repository stands alone: a reader of a clone can follow every reference. No file names a
 * path outside the repository; every Markdown document a file mentions (`docs/api.md`, `SECURITY.md`)
 * is in it; every relative Markdown link leads to a file of the repository; and every citation of
 * a section of the API reference (`docs/api.md "Retries"`) names a heading that docs/api.md has.
 * The last part feeds each check a file that breaks it, so that none can pass vacuously.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const ROOT = resolve(import.meta.dirname, '../..');

/** Every file of the checkout, tracked or new (not ignored), that is text. */
function repositoryFiles(): { path: string; text: string }[] {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], { cwd: ROOT, encoding: 'utf8' }).split('\0').filter(Boolean);
  return listed
    .filter((p) => p !== 'package-lock.json' && existsSync(join(ROOT, p)))
    .map((p) => ({ path: p, raw: readFileSync(join(ROOT, p)) }))
    .filter(({ raw }) => !raw.subarray(0, 8000).includes(0))
    .map(({ path, raw }) => ({ path, text: raw.toString('utf8') }));
}

/** Headings of a Markdown document, without their #s. */
const headings = (markdown: string) => new Set([...markdown.matchAll(/^#{1,6}\s+(.+?)\s*$/gm)].map((m) => m[1]!.replace(/`/g, '')));

const inside = (path: string) => {
  const rel = relative(ROOT, path);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
};

/** File names used as fixtures in tests, not references. */
const FIXTURE_NAMES = new Set(['a.md']);

/** The problems of one file: "path: what". `exists` answers for a path relative to the root. */
function referenceProblems(path: string, text: string, apiHeadings: Set<string>, exists: (rel: string) => boolean): string[] {
  const problems: string[] = [];
  const folder = dirname(path);
  const resolvesInside = (ref: string) => inside(resolve(ROOT, folder, ref));
  // 1. Relative paths that climb out of the repository (in strings, prose and Markdown links).
  for (const m of text.matchAll(/(?<![\w.])((?:\.\.\/)+)[\w.@-][\w./@-]*/g)) {
    if (!resolvesInside(m[0])) problems.push(`${path}: "${m[0]}" is outside the repository`);
  }
  // 2. Markdown documents named anywhere must be files of the repository.
  for (const m of text.matchAll(/(?<![\w/.-])([\w.-]+(?:\/[\w.-]+)*\.md)\b/g)) {
    const name = m[1]!;
    if (FIXTURE_NAMES.has(name)) continue;
    const candidates = [join(folder, name), name];
    if (!candidates.some((c) => inside(resolve(ROOT, c)) && exists(c))) problems.push(`${path}: names ${name}, which the repository does not have`);
  }
  // 3. Relative Markdown links lead to files of the repository.
  if (path.endsWith('.md')) {
    for (const m of text.matchAll(/\]\((?!https?:|mailto:|#)([^)#\s]+)(?:#[^)]*)?\)/g)) {
      const target = join(folder, m[1]!);
      if (!inside(resolve(ROOT, target)) || !exists(target)) problems.push(`${path}: links ${m[1]}, which is not a file of the repository`);
    }
  }
  // 4. Citations of the API reference name one of its headings.
  // A citation may wrap onto the next line of a comment (`docs/api.md` / ` * "Retries"`).
  for (const m of text.matchAll(/docs\/api\.md(?:[ ,]|\n\s*(?:\*|\/\/)?)*"([^"]+)"/g)) {
    const heading = m[1]!.replace(/\s*\n\s*(?:\*|\/\/)?\s*/g, ' ');
    if (!apiHeadings.has(heading)) problems.push(`${path}: cites docs/api.md "${heading}", which is not one of its headings`);
  }
  return problems;
}

describe('the repository stands alone', () => {
  it('names no path outside it, and every document, link and cited section it names is in it', () => {
    const apiDoc = join(ROOT, 'docs/api.md');
    assert.ok(existsSync(apiDoc), 'docs/api.md exists');
    const apiHeadings = headings(readFileSync(apiDoc, 'utf8'));
    const exists = (rel: string) => existsSync(join(ROOT, rel));
    const files = repositoryFiles();
    assert.ok(files.some((f) => f.path === 'README.md') && files.some((f) => f.path.startsWith('src/')), 'the file list holds the README and the sources');
    // This file holds broken references on purpose, as the checks' own test cases.
    const problems = files.filter((f) => f.path !== 'test/unit/self-contained.test.ts').flatMap((f) => referenceProblems(f.path, f.text, apiHeadings, exists));
    assert.deepEqual(problems, []);
  });

  it('each check objects to a file that breaks it', () => {
    const apiHeadings = new Set(['Retries']);
    const exists = (rel: string) => ['README.md', 'docs/api.md'].includes(rel.replace(/^\.\//, ''));
    const check = (path: string, text: string) => referenceProblems(path, text, apiHeadings, exists);
    assert.deepEqual(check('src/a.ts', "// see docs/api.md \"Retries\"\nimport x from '../b.js';"), [], 'a good file passes');
    assert.equal(check('src/a.ts', "const p = '../../shared/peers';").length, 1, 'a path that climbs out');
    assert.equal(check('src/a.ts', '// API.md "Retries"').length, 1, 'a document the repository lacks');
    assert.equal(check('docs/x.md', '[the contract](../../shared/API.md)').length, 3, 'a link outside: climbs out, names a missing document, links outside');
    assert.equal(check('docs/x.md', '[missing](missing.txt)').length, 1, 'a link to a missing file');
    assert.equal(check('src/a.ts', '// docs/api.md "Retry"').length, 1, 'a heading docs/api.md does not have');
    assert.equal(check('src/a.ts', '/* see docs/api.md\n * "Retry"). */').length, 1, 'a wrapped citation is checked too');
    assert.deepEqual(check('src/a.ts', '/* see docs/api.md\n * "Retries"). */'), [], 'and passes when the heading exists');
  });
});
