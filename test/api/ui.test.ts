/**
 * GET /ui, the admin console (docs/api.md "Admin console"), as HTTP: the page and its assets
 * with their media types, caching and security headers (a CSP without inline script or style,
 * nosniff, no referrer), index.html for the console's client-side routes, 404 problems for
 * unknown assets and paths that try to leave the assets folder, nothing on the public listener,
 * and no asset that loads or names anything outside the origin (the console runs on networks
 * with no route out). The browser side is test/e2e/ui.test.ts.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { startTestApp, type TestApp } from '../setup/app.js';
import { assertProblem } from '../setup/rejections.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** dist/ui, built now unless it is already newer than src/ui (a fresh clone has no build). */
function buildConsole(): void {
  execFileSync(process.execPath, ['src/ui/build.mjs', '--if-stale'], { cwd: ROOT, stdio: 'pipe', timeout: 120_000 });
}

/** The assets index.html names: its script, stylesheet and icon (paths under /ui/assets/). */
function assetsOf(html: string): string[] {
  return [...html.matchAll(/\b(?:src|href)="(\/ui\/assets\/[^"]+)"/g)].map((m) => m[1]!);
}

/**
 * URLs in a text that would reach outside the origin: absolute http(s) URLs, protocol-relative
 * ones in attributes or CSS url(), and @import. XML namespace names (http://www.w3.org/2000/svg
 * and its siblings, which Preact writes to create SVG elements and the icon declares) are
 * identifiers that nothing fetches, so they are allowed.
 */
function externalReferences(text: string): string[] {
  const found = [...text.matchAll(/\bhttps?:\/\/[^\s"'`)<>]+/g)].map((m) => m[0]).filter((u) => !/^http:\/\/www\.w3\.org\/(?:2000\/svg|1999\/xhtml|1999\/xlink|1998\/Math\/MathML|XML\/1998\/namespace|2000\/xmlns\/)$/.test(u));
  found.push(...[...text.matchAll(/(?:src|href|action)\s*=\s*["']\s*(\/\/[^"']+)/g)].map((m) => m[1]!));
  found.push(...[...text.matchAll(/url\(\s*["']?\s*((?:[a-z]+:)?\/\/[^"')]+)/gi)].map((m) => m[1]!));
  found.push(...[...text.matchAll(/@import\s+[^;]+;/g)].map((m) => m[0]));
  return found;
}

function assertSecurityHeaders(res: Response, what: string): void {
  assert.equal(res.headers.get('content-security-policy'), CSP, `${what}: CSP`);
  assert.equal(res.headers.get('x-content-type-options'), 'nosniff', `${what}: nosniff`);
  assert.equal(res.headers.get('referrer-policy'), 'no-referrer', `${what}: referrer policy`);
  assert.equal(res.headers.get('x-frame-options'), 'DENY', `${what}: framing`);
}

describe('GET /ui (admin console)', () => {
  let app: TestApp;
  let index: string;

  before(async () => {
    buildConsole();
    app = await startTestApp();
    index = await (await fetch(`${app.api}/ui`)).text();
  });

  after(async () => {
    await app?.stop();
  });

  describe('happy', () => {
    it('serves the page with a strict CSP, nosniff, no referrer and no caching of the page itself', async () => {
      const res = await fetch(`${app.api}/ui`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/html; charset=UTF-8');
      assert.equal(res.headers.get('cache-control'), 'no-cache');
      assertSecurityHeaders(res, '/ui');
      const body = await res.text();
      assert.match(body, /<div id="app">/);
      assert.match(body, /<title>service-ca admin console<\/title>/);
    });

    it('answers index.html for /ui/ and for the console routes under it (reload and shared links)', async () => {
      for (const path of ['/ui/', '/ui/search?by=dns&q=web.shop.svc', '/ui/identity?name=spiffe%3A%2F%2Fexample.org%2Fns%2Fshop%2Fsa%2Fweb', '/ui/certificates/0f1c0a', '/ui/no/such/page']) {
        const res = await fetch(`${app.api}${path}`);
        assert.equal(res.status, 200, path);
        assertSecurityHeaders(res, path);
        assert.equal(await res.text(), index, path);
      }
    });

    it('serves every asset the page names with its media type, as immutable, with the same headers', async () => {
      const assets = assetsOf(index);
      const types = new Map(assets.map((a) => [a.slice(a.lastIndexOf('.')), a]));
      assert.deepEqual([...types.keys()].sort(), ['.css', '.js', '.svg'], `assets: ${assets.join(', ')}`);
      const expected: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
      for (const path of assets) {
        const res = await fetch(`${app.api}${path}`);
        assert.equal(res.status, 200, path);
        assert.equal(res.headers.get('content-type'), expected[path.slice(path.lastIndexOf('.'))], path);
        assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable', path);
        assertSecurityHeaders(res, path);
        assert.ok((await res.arrayBuffer()).byteLength > 100, `${path} has content`);
      }
      // Hashed names: a new build is a new URL, which is what makes a year of caching safe.
      for (const path of assets) assert.match(path, /^\/ui\/assets\/[\w-]+-[\w-]{8}\.(js|css|svg)$/, path);
    });
  });

  describe('error', () => {
    it('answers a 404 problem, with the security headers, for an asset the build did not make', async () => {
      const js = assetsOf(index).find((a) => a.endsWith('.js'))!;
      for (const path of ['/ui/assets/nope.js', `${js.slice(0, -3)}0.js`, '/ui/assets/index.html', '/ui/assets/', '/ui/assets/deeper/x.js', '/ui/assets/x.exe']) {
        const res = await fetch(`${app.api}${path}`);
        assertSecurityHeaders(res, path);
        await assertProblem(res, 404, 'notFound');
      }
    });

    it('never serves a file outside the assets folder, however the path is encoded', async () => {
      for (const path of ['/ui/assets/..%2Findex.html', '/ui/assets/..%2F..%2F..%2Fpackage.json', '/ui/assets/%2e%2e%2f%2e%2e%2fpackage.json', '/ui/assets/.%2F..%2Findex.html']) {
        const res = await fetch(`${app.api}${path}`);
        await assertProblem(res, 404, 'notFound');
      }
    });

    it('answers 404 for a method other than GET', async () => {
      const res = await fetch(`${app.api}/ui`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
      await assertProblem(res, 404, 'notFound');
    });
  });

  describe('security', () => {
    it('is absent from the public listener: the page, its routes and its assets are 404', async () => {
      for (const path of ['/ui', '/ui/', '/ui/search', ...assetsOf(index)]) {
        const res = await fetch(`${app.public}${path}`);
        await assertProblem(res, 404, 'notFound');
        assert.equal(res.headers.get('content-security-policy'), null, path);
      }
    });

    it('has no inline script or style, and no asset loads or names anything outside the origin', async () => {
      // The checks themselves first: each finds what it is meant to find.
      assert.deepEqual(externalReferences('a("https://cdn.example/x.js")'), ['https://cdn.example/x.js']);
      assert.deepEqual(externalReferences('<script src="//cdn.example/x.js">'), ['//cdn.example/x.js']);
      assert.deepEqual(externalReferences('b{background:url(//fonts.example/f.woff2)}'), ['//fonts.example/f.woff2']);
      assert.deepEqual(externalReferences('@import "x.css";'), ['@import "x.css";']);
      assert.deepEqual(externalReferences('createElementNS("http://www.w3.org/2000/svg")'), []);

      assert.deepEqual(externalReferences(index), [], 'index.html');
      const scripts = [...index.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)];
      assert.ok(scripts.length >= 1);
      for (const s of scripts) {
        assert.match(s[0], /\bsrc="\/ui\/assets\//, 'every script is a file of the build');
        assert.equal(s[1]!.trim(), '', 'no inline script');
      }
      assert.doesNotMatch(index, /<style\b|\sstyle=|\son[a-z]+=/i, 'no inline style or event handler attribute');
      for (const path of assetsOf(index)) {
        const text = await (await fetch(`${app.api}${path}`)).text();
        assert.deepEqual(externalReferences(text), [], path);
      }
    });

    it('keeps the token out of storage: the bundle uses no web storage and no cookie', async () => {
      const js = assetsOf(index).find((a) => a.endsWith('.js'))!;
      const code = await (await fetch(`${app.api}${js}`)).text();
      assert.match(code, /Authorization/, 'the bundle is the console (it sends the token)');
      for (const word of ['localStorage', 'sessionStorage', 'indexedDB', 'document.cookie']) assert.ok(!code.includes(word), `the bundle mentions ${word}`);
    });
  });
});
