/**
 * Durations as Go and Kubernetes write them (src/duration.ts), in configuration, requests and
 * the command line: compound terms add up, fractions count exactly, and anything that is not a
 * whole number of seconds, or not a duration at all, is refused rather than rounded.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config.js';
import { formatDuration, parseDuration } from '../../src/duration.js';

describe('parseDuration', () => {
  it('reads single and compound terms, fractions and bare seconds', () => {
    const cases: [unknown, number][] = [
      ['90s', 90], ['5m', 300], ['24h', 86_400], ['7d', 604_800], ['1h30m', 5400], ['2d12h', 216_000],
      ['1h0m30s', 3630], ['1.5h', 5400], ['.5m', 30], ['0.25m', 15], ['1500ms500ms', 2], ['2000ms', 2], ['0.1s0.9s', 1],
      ['104249992d', 9_007_199_308_800],
      ['3600', 3600], [3600, 3600], ['0', 0], ['0s', 0], ['  5m ', 300],
    ];
    for (const [text, seconds] of cases) assert.equal(parseDuration(text), seconds, JSON.stringify(text));
  });

  it('refuses what is not a whole number of seconds, or not a duration', () => {
    for (const text of ['500ms', '1.5s', '0.0001h', 'h', '1h 30m', '1h30', '-1s', '1x', '1e3s', '', '1h-30m', '30S', 1.5, -1, '1.2.3h', null, {}, '9'.repeat(20) + 's']) {
      assert.equal(parseDuration(text), undefined, JSON.stringify(text));
    }
  });

  it('formatDuration writes what parseDuration reads back', () => {
    for (const seconds of [0, 1, 59, 60, 90, 3600, 5400, 86_399, 86_400, 90_061, 604_800 + 7]) {
      assert.equal(parseDuration(formatDuration(seconds)), seconds, formatDuration(seconds));
    }
    assert.equal(formatDuration(5400), '1h30m');
    assert.equal(formatDuration(90_061), '1d1h1m1s');
  });
});

describe('durations in the configuration', () => {
  const base = {
    ca: { certificate: '/ca/int.pem', key: '/ca/int.key' },
    auth: { issuers: [{ name: 't', issuer: 'https://issuer.test', audience: 'service-ca', jwks: { file: '/jwks.json' } }] },
  };

  it('a compound duration configures a TTL, and a bad one names its key', () => {
    const config = parseConfig({ ...base, issuance: { defaultTtl: '1h30m', maxTtl: '2d12h' } }, { baseDir: '/', env: {} });
    assert.equal(config.issuance.defaultTtl, 5400);
    assert.equal(config.issuance.maxTtl, 216_000);
    assert.throws(
      () => parseConfig({ ...base, issuance: { defaultTtl: '1h30' } }, { baseDir: '/', env: {} }),
      (err: unknown) => err instanceof ConfigError && err.message.includes('defaultTtl') && err.message.includes('"1h30" is not a duration'),
    );
  });
});
