/**
 * /docs in a real headless browser (Debian's chromium driven by playwright-core): the page
 * renders the API from /openapi.json, lists POST /v1/certificates, and loads nothing from
 * anywhere but the service. Skips with a message where no chromium is installed (.ci/run
 * installs it).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { startTestApp, type TestApp } from '../setup/app.js';
import { chromiumSkip, launchChromium } from '../setup/browser.js';

const skip = chromiumSkip;

describe('/docs in a headless browser', { skip }, () => {
  let app: TestApp;
  let browser: Browser;

  before(async () => {
    app = await startTestApp();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
  });

  it('renders the API and lists POST /v1/certificates, loading only from the service', async () => {
    const page = await browser.newPage();
    const requested: string[] = [];
    const failures: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    page.on('pageerror', (e) => failures.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') failures.push(m.text());
    });
    const res = await page.goto(`${app.api}/docs`);
    assert.equal(res?.status(), 200);
    assert.match(res?.headers()['content-security-policy'] ?? '', /default-src 'none'/);
    // Swagger UI renders one block per operation, each with its method and path.
    const operation = page.locator('.opblock-post', { has: page.locator('[data-path="/v1/certificates"]') });
    await operation.first().waitFor({ timeout: 20_000 });
    assert.equal(await operation.first().locator('.opblock-summary-method').innerText(), 'POST');
    assert.match(await page.locator('.info .title').innerText(), /service-ca/);
    const paths = await page.locator('.opblock-summary-path').allInnerTexts();
    assert.ok(paths.length >= 10, `only ${paths.length} operations rendered`);
    assert.ok(paths.some((p) => p.includes('/v1/crl')));
    const origin = new URL(app.api).origin;
    assert.deepEqual(requested.filter((u) => !u.startsWith(origin) && !u.startsWith('data:')), [], 'every request stays on the service');
    assert.ok(requested.includes(`${origin}/openapi.json`));
    assert.deepEqual(failures, []);
    await page.close();
  });
});
