/**
 * Renewal windows (src/policy/renewal.ts; docs/api.md "Renewal window"), and a retiring issuer's
 * renewBy (config ca.issuers[].renewBy): the window keeps its width but closes by renewBy, never
 * opening before notBefore.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renewalWindow } from '../../src/policy/renewal.js';

const H = 3_600_000;
const notBefore = new Date('2027-01-01T00:00:00Z');
/** A 60 h certificate: its usual window is 40 h to 50 h after notBefore. */
const cert = { notBefore, notAfter: new Date(notBefore.getTime() + 60 * H), revokedAt: null };
const at = (hours: number) => new Date(notBefore.getTime() + hours * H);
const NOW = at(1);

describe('renewalWindow with renewBy', () => {
  it('is the usual window without renewBy, or with one at or after its end', () => {
    const usual = { start: at(40), end: at(50) };
    assert.deepEqual(renewalWindow(cert, NOW), usual);
    assert.deepEqual(renewalWindow(cert, NOW, at(50)), usual);
    assert.deepEqual(renewalWindow(cert, NOW, at(55)), usual);
  });

  it('closes at renewBy when it comes first, keeping the width of 10 h', () => {
    assert.deepEqual(renewalWindow(cert, NOW, at(45)), { start: at(35), end: at(45) });
    assert.deepEqual(renewalWindow(cert, NOW, at(20)), { start: at(10), end: at(20) });
  });

  it('never opens before notBefore, and a renewBy before notBefore means now-or-earlier at notBefore', () => {
    assert.deepEqual(renewalWindow(cert, NOW, at(4)), { start: at(0), end: at(4) });
    assert.deepEqual(renewalWindow(cert, NOW, at(-5)), { start: at(0), end: at(0) });
  });

  it('is open now for a revoked certificate, renewBy or not', () => {
    assert.deepEqual(renewalWindow({ ...cert, revokedAt: at(0.5) }, NOW, at(45)), { start: NOW, end: NOW });
  });
});
