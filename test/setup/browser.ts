/**
 * Debian's chromium for the browser tests (playwright-core drives it): where it is, why a test
 * skips without it, and a launch with the flags this machine's closed network needs (no
 * background connections, no QUIC, no component updates).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** false when chromium is there, else the reason a browser test skips (node:test's `skip`). */
export const chromiumSkip: string | false = existsSync(CHROMIUM) ? false : `no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`;

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
