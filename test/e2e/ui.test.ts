/**
 * The admin console (/ui) in a real headless browser (Debian's chromium driven by
 * playwright-core), driven by the keyboard alone: Tab, Shift+Tab, Enter, Escape, arrow keys and
 * typed text, never a mouse click. An admin signs in with a pasted token, reads the fleet
 * summary and the current CRL, finds an identity that missed its renewal (by search), opens it
 * and its certificate, cancels a revocation with Escape, revokes through the confirmation
 * dialog, and sees the state change on the overview; then signs out. Every request stays on the
 * CA's origin, the token never reaches web storage or a cookie, every focused control shows its
 * focus, and there is no script error or CSP violation. Screenshots of each page go to
 * test-results/ui-e2e/ (printed at the start). Skips with a message where no chromium is
 * installed (.ci/run installs it).
 *
 * A certificate that missed its renewal, without waiting: the CA's intermediate is made a day in
 * the past and issuance backdates notBefore by 110 minutes, so a 2-hour certificate is issued
 * already past its window's end (⅚ of its life, 10 minutes ago; docs/api.md "Renewal window")
 * while it still has 10 minutes to live.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { createTestPki } from '../setup/pki.js';
import { getRecord, issueFor } from '../setup/revoking.js';
import { chromiumSkip, launchChromium } from '../setup/browser.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const skip = chromiumSkip;
const SHOTS = join(ROOT, 'test-results', 'ui-e2e');

const HEALTHY = workload('shop', 'web');
const DUE = workload('shop', 'cart');
const MISSED = workload('billing', 'ledger');

interface Focused {
  tag: string;
  id: string;
  name: string;
  href: string | null;
  inDialog: boolean;
  outline: string;
}

/** The focused element: tag, id, accessible-ish name (aria-label, else its text), and its focus outline. */
function focused(page: Page): Promise<Focused> {
  return page.evaluate(() => {
    const el = document.activeElement as HTMLElement | null;
    if (!el || el === document.body) return { tag: 'body', id: '', name: '', href: null, inDialog: false, outline: 'none' };
    const style = getComputedStyle(el);
    return {
      tag: el.tagName.toLowerCase(),
      id: el.id,
      name: (el.getAttribute('aria-label') ?? el.innerText ?? '').trim().replace(/\s+/g, ' ').slice(0, 120),
      href: el.getAttribute('href'),
      inDialog: el.closest('dialog[open]') !== null,
      outline: `${style.outlineStyle} ${style.outlineWidth}`,
    };
  });
}

/**
 * Presses Tab (or Shift+Tab) until the focus is on what `want` accepts, then checks that the
 * focus is visible there (an outline of at least 2 px). Fails naming every stop on the way.
 */
async function tabTo(page: Page, what: string, want: (f: Focused) => boolean, options: { back?: boolean; max?: number } = {}): Promise<Focused> {
  const stops: string[] = [];
  for (let i = 0; i < (options.max ?? 80); i++) {
    await page.keyboard.press(options.back ? 'Shift+Tab' : 'Tab');
    const f = await focused(page);
    if (want(f)) {
      const [style, width] = f.outline.split(' ');
      assert.ok(style !== 'none' && Number.parseFloat(width ?? '0') >= 2, `${what}: the focus is not visible (outline ${f.outline})`);
      return f;
    }
    stops.push(`${f.tag}${f.id ? `#${f.id}` : ''} "${f.name.slice(0, 40)}"`);
  }
  assert.fail(`${what}: not reached with ${options.back ? 'Shift+Tab' : 'Tab'}; the focus went through ${stops.join(' → ')}`);
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function text(page: Page, selector: string): Promise<string> {
  const l = page.locator(selector).first();
  await l.waitFor({ timeout: 20_000 });
  return (await l.innerText()).trim();
}

/** Waits until the text of selector is `expected` (the page loads and re-renders as answers come). */
async function waitForText(page: Page, selector: string, expected: string): Promise<void> {
  await page.waitForFunction(([s, e]) => document.querySelector(s!)?.textContent?.trim() === e, [selector, expected], { timeout: 20_000 });
}

/**
 * Waits for the page whose heading is `heading`, and for the focus to be on that heading: the
 * console moves it there after each navigation, so the next Tab starts at the new page.
 */
async function waitForPage(page: Page, heading: string): Promise<void> {
  await waitForText(page, 'main h1', heading);
  await page.waitForFunction(() => document.activeElement === document.querySelector('main h1'), undefined, { timeout: 5000 });
}

/** dist/ui, built now unless it is already newer than src/ui (a fresh clone has no build). */
function buildConsole(): void {
  execFileSync(process.execPath, ['src/ui/build.mjs', '--if-stale'], { cwd: ROOT, stdio: 'pipe', timeout: 120_000 });
}

describe('the admin console in a headless browser, by keyboard alone', { skip }, () => {
  let app: TestApp;
  let browser: Browser;
  let missedSerial: string;

  before(async () => {
    buildConsole();
    rmSync(SHOTS, { recursive: true, force: true });
    mkdirSync(SHOTS, { recursive: true });
    console.log(`# screenshots of the admin console: ${SHOTS}`);
    // A CA whose certificates start a day ago, so that issuance may backdate far.
    app = await startTestApp({ pki: await createTestPki('p256', { now: new Date(Date.now() - 86_400_000) }), config: { issuance: { backdate: '110m', defaultTtl: '24h', maxTtl: '72h' } } });
    await issueFor(app, HEALTHY, ['web.shop.svc'], '24h');
    await issueFor(app, DUE, ['cart.shop.svc'], '150m');
    missedSerial = (await issueFor(app, MISSED, ['ledger.billing.svc'], '2h')).serial;
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await app?.stop();
  });

  it('signs in, finds the missed renewal, revokes it through the confirmation, and sees the state change', async () => {
    const admin = await app.token(ADMIN);
    const origin = new URL(app.api).origin;
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const requested: string[] = [];
    const failures: string[] = [];
    page.on('request', (r) => requested.push(r.url()));
    page.on('pageerror', (e) => failures.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') failures.push(`console ${m.type()}: ${m.text()}`);
    });

    try {
      await flow();
    } catch (err) {
      // What the page showed when it failed, and what it logged.
      await shot(page, 'zz-failure').catch(() => undefined);
      if (failures.length > 0) console.log(`# page messages before the failure:\n# ${failures.join('\n# ')}`);
      throw err;
    } finally {
      await context.close();
    }

    async function flow(): Promise<void> {
      // 1. Sign in: the token field has the focus; the token is typed in, Enter submits.
      const res = await page.goto(`${app.api}/ui`);
      assert.equal(res?.status(), 200);
      await page.locator('#token').waitFor();
      assert.equal((await focused(page)).id, 'token', 'the token field has the focus on the sign-in page');
      await shot(page, '01-sign-in');
      await page.keyboard.insertText(admin);
      await page.keyboard.press('Enter');

      // 2. The overview: counts by state and severity, the CRL, the identities in order of urgency.
      await waitForPage(page, 'Fleet overview');
      await waitForText(page, '[data-summary="states"] [data-state="missedRenewal"] .count', '1');
      assert.equal(await text(page, '[data-summary="states"] [data-state="healthy"] .count'), '1');
      assert.equal(await text(page, '[data-summary="states"] [data-state="renewalDue"] .count'), '1');
      assert.equal(await text(page, '[data-summary="states"] [data-state="revoked"] .count'), '0');
      const missedRow = `tr[data-identity="${MISSED}"]`;
      assert.equal(await page.locator(missedRow).getAttribute('data-state'), 'missedRenewal');
      assert.equal(await page.locator('table.fleet tbody tr').first().getAttribute('data-identity'), MISSED, 'the missed renewal comes first');
      // Severity as the API says it, shown by a word and a shape, not by colour alone.
      const fleet = (await (await fetch(`${app.api}/v1/fleet?identityPrefix=${encodeURIComponent(MISSED)}`, { headers: { Authorization: `Bearer ${admin}` } })).json()) as { items: { identity: string; severity: string }[] };
      const severity = fleet.items.find((i) => i.identity === MISSED)?.severity;
      assert.ok(severity === 'warning' || severity === 'critical', `a missed renewal is a warning or critical, not ${severity}`);
      assert.equal(await text(page, `${missedRow} .severity-text`), severity === 'critical' ? 'Critical' : 'Warning');
      assert.equal(await page.locator(`${missedRow} .severity svg path`).count(), 2, 'the severity has its shape');
      const crlNumber = await text(page, '[data-crl-number]');
      assert.match(crlNumber, /^\d+$/);
      // The number read from the DER in the browser is the one the CA names in its ETag.
      assert.equal((await fetch(`${app.api}/v1/crl`)).headers.get('etag'), `"crl-${crlNumber}"`);
      assert.equal(await text(page, '[data-crl-entries]'), '0');
      await shot(page, '02-overview');

      // The token is in memory only.
      assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie]), [0, 0, '']);
      assert.deepEqual(await context.cookies(), []);
      assert.ok(!page.url().includes(admin.slice(0, 20)), 'the token is not in the URL');

      // 3. Search by identity prefix, from the navigation.
      await tabTo(page, 'the Search link', (f) => f.tag === 'a' && f.name === 'Search', { back: true });
      await page.keyboard.press('Enter');
      await waitForPage(page, 'Search');
      await tabTo(page, 'the search field', (f) => f.id === 'search-q');
      await page.keyboard.insertText('spiffe://example.org/ns/billing/');
      await page.keyboard.press('Enter');
      await waitForText(page, '#results-heading', '1 result for identity (prefix) “spiffe://example.org/ns/billing/”');
      assert.equal(await page.locator(`${missedRow}`).getAttribute('data-state'), 'missedRenewal');
      await page.waitForFunction(() => document.querySelector('[data-announcer]')?.textContent?.includes('1 result for'), undefined, { timeout: 5000 });
      await shot(page, '03-search');

      // 4. The identity: its fleet state, its certificates, what it did.
      await tabTo(page, 'the identity link in the results', (f) => f.tag === 'a' && f.name === MISSED);
      await page.keyboard.press('Enter');
      await waitForPage(page, MISSED);
      await waitForText(page, '[data-fleet-state]', 'Missed renewal');
      await page.locator(`tr[data-serial="${missedSerial}"]`).waitFor({ timeout: 20_000 });
      await page.locator('table.audit tr[data-action="certificate.issue"]').first().waitFor({ timeout: 20_000 });
      await shot(page, '04-identity');

      // 5. Its certificate: names, validity, lineage, audit trail.
      await tabTo(page, 'the certificate link', (f) => f.tag === 'a' && f.name === `Certificate ${missedSerial}`);
      await page.keyboard.press('Enter');
      await waitForPage(page, missedSerial);
      await waitForText(page, '[data-status]', 'Valid');
      assert.match(await text(page, '[data-names]'), /ledger\.billing\.svc/);
      assert.match(await text(page, '[data-renewed-from]'), /issued with an identity token/);
      await waitForText(page, '[data-renewals]', 'no renewal');
      await page.locator('table.audit tr[data-action="certificate.issue"]').first().waitFor({ timeout: 20_000 });
      await shot(page, '05-certificate');

      // 6. A reason, chosen with the arrow keys, then the confirmation, which names the certificate.
      await tabTo(page, 'the reason', (f) => f.id === 'revoke-reason');
      for (let i = 0; i < 8 && (await page.locator('#revoke-reason').inputValue()) !== 'superseded'; i++) await page.keyboard.press('ArrowDown');
      assert.equal(await page.locator('#revoke-reason').inputValue(), 'superseded');
      const opener = await tabTo(page, 'the Revoke… button', (f) => f.tag === 'button' && f.name === 'Revoke…');
      assert.equal(opener.inDialog, false);
      await page.keyboard.press('Enter');
      await page.locator('dialog[data-confirm-revoke][open]').waitFor({ timeout: 5000 });
      assert.equal(await text(page, '[data-confirm-serial]'), missedSerial);
      assert.equal(await text(page, '[data-confirm-identity]'), MISSED);
      assert.equal(await text(page, '[data-confirm-reason]'), 'Superseded');
      const first = await focused(page);
      assert.ok(first.inDialog && first.name === 'Cancel', `the dialog opens on Cancel, not ${JSON.stringify(first)}`);
      await shot(page, '06-confirm');

      // Escape cancels: nothing is revoked, and the focus is back on the button that opened it.
      await page.keyboard.press('Escape');
      await page.waitForFunction(() => !document.querySelector('dialog[data-confirm-revoke]')?.hasAttribute('open'), undefined, { timeout: 5000 });
      assert.equal((await focused(page)).name, 'Revoke…');
      assert.equal((await getRecord(app, missedSerial)).status, 'valid', 'Escape revoked nothing');

      // Enter opens it again; Tab to "Revoke certificate", Enter revokes.
      await page.keyboard.press('Enter');
      await page.locator('dialog[data-confirm-revoke][open]').waitFor({ timeout: 5000 });
      // A cancel and a reopen quicker than the dialog's close event (it comes in a later task):
      // the late event must not close the reopened dialog.
      const stillOpen = await page.evaluate(async () => {
        const d = document.querySelector<HTMLDialogElement>('dialog[data-confirm-revoke]')!;
        d.close();
        document.querySelector<HTMLFormElement>('form.revoke')!.requestSubmit();
        await new Promise((resolve) => setTimeout(resolve, 200));
        return d.open;
      });
      assert.equal(stillOpen, true, 'the dialog reopened before its close event stays open');
      const confirm = await tabTo(page, 'the confirming button', (f) => f.name === 'Revoke certificate', { max: 3 });
      assert.ok(confirm.inDialog);
      await page.keyboard.press('Enter');
      await page.locator('[data-revoked-notice]').waitFor({ timeout: 20_000 });
      await waitForText(page, '[data-status]', 'Revoked (superseded)');
      assert.equal(await page.locator('dialog[open]').count(), 0, 'the dialog is gone');
      const record = await getRecord(app, missedSerial);
      assert.equal(record.status, 'revoked');
      assert.equal(record.revocationReason, 'superseded');
      await page.locator('table.audit tr[data-action="certificate.revoke"]').first().waitFor({ timeout: 20_000 });
      await shot(page, '07-revoked');

      // 7. The overview shows the change: the identity is revoked, nothing missed, the CRL lists it.
      await tabTo(page, 'the Overview link', (f) => f.tag === 'a' && f.name === 'Overview', { back: true });
      await page.keyboard.press('Enter');
      await waitForPage(page, 'Fleet overview');
      await waitForText(page, '[data-summary="states"] [data-state="revoked"] .count', '1');
      assert.equal(await text(page, '[data-summary="states"] [data-state="missedRenewal"] .count'), '0');
      await page.waitForFunction((id) => document.querySelector(`tr[data-identity="${id}"]`)?.getAttribute('data-state') === 'revoked', MISSED, { timeout: 20_000 });
      // The CRL within crl.maxDelay: Refresh (by keyboard) until the entry is there.
      const deadline = Date.now() + 15_000;
      await tabTo(page, 'the Refresh button', (f) => f.tag === 'button' && f.name === 'Refresh');
      while ((await page.locator('[data-crl-entries]').textContent().catch(() => null)) !== '1') {
        assert.ok(Date.now() < deadline, 'the revocation reached the CRL the console shows');
        await page.waitForTimeout(500);
        await page.keyboard.press('Enter');
        await page.locator('[data-crl-entries]').waitFor({ timeout: 10_000 });
      }
      assert.ok(BigInt(await text(page, '[data-crl-number]')) > BigInt(crlNumber), 'a newer CRL');
      await shot(page, '08-overview-after');

      // 8. Sign out: the token is forgotten, the sign-in page is back.
      await tabTo(page, 'Sign out', (f) => f.tag === 'button' && f.name === 'Sign out', { back: true });
      await page.keyboard.press('Enter');
      await page.locator('#token').waitFor({ timeout: 5000 });
      assert.match(await text(page, 'main .notice'), /Signed out/);
      await shot(page, '09-signed-out');

      const outside = requested.filter((u) => !u.startsWith(`${origin}/`));
      assert.deepEqual(outside, [], 'every request stays on the CA origin');
      for (const path of ['/ui', '/v1/fleet/summary', '/v1/fleet?', '/v1/crl', `/v1/certificates/${missedSerial}/revoke`, `/v1/audit?serial=${missedSerial}`]) {
        assert.ok(requested.some((u) => u.startsWith(`${origin}${path}`)), `the console asked for ${path}`);
      }
      assert.deepEqual(failures, [], 'no script error, CSP violation or failed load');
    }
  });
});
