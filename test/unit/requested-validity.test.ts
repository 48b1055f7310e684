/**
 * ACME's exact windows (policy/validity.ts requestedValidity, docs/api.md "ACME"): honoured to the
 * second when they fit the caps, refused (malformed, never shortened) when they do not, and
 * without a notBefore the backdate gives way to the cap.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CaError } from '../../src/errors.js';
import { requestedValidity } from '../../src/policy/validity.js';

const now = new Date('2026-12-04T12:00:00.250Z');
const rules = { defaultTtl: 3600, maxTtl: 86_400, backdate: 60 };
const ca = { notBefore: new Date('2026-01-01T00:00:00Z'), notAfter: new Date('2027-06-01T00:00:00Z') };
const at = (offsetSeconds: number) => new Date(Date.parse('2026-12-04T12:00:00Z') + offsetSeconds * 1000);
const refused = (fn: () => unknown, detail: RegExp) => assert.throws(fn, (err: unknown) => err instanceof CaError && err.kind === 'malformed' && detail.test(err.detail));

describe('requestedValidity', () => {
  it('gives exactly the window asked for, in whole seconds', () => {
    const w = requestedValidity(now, { notBefore: at(0), notAfter: at(7200) }, rules, undefined, ca);
    assert.deepEqual([w.notBefore.toISOString(), w.notAfter.toISOString()], [at(0).toISOString(), at(7200).toISOString()]);
  });

  it('without notBefore starts a backdate ago, or later when the backdate would pass the cap', () => {
    const short = requestedValidity(now, { notBefore: null, notAfter: at(3600) }, rules, undefined, ca);
    assert.equal(short.notBefore.toISOString(), at(-60).toISOString());
    const full = requestedValidity(now, { notBefore: null, notAfter: at(86_400) }, rules, undefined, ca);
    assert.equal(full.notBefore.toISOString(), at(0).toISOString());
    assert.equal(full.notAfter.getTime() - full.notBefore.getTime(), 86_400_000);
  });

  it('refuses a window past the policy\'s or the issuance cap, one ending before now, one starting before the backdate, one outside the intermediate', () => {
    refused(() => requestedValidity(now, { notBefore: null, notAfter: at(86_401) }, rules, undefined, ca), /longer than the policy allows \(86400 s\)/);
    refused(() => requestedValidity(now, { notBefore: at(0), notAfter: at(3601) }, rules, 3600, ca), /longer than the policy allows \(3600 s\)/);
    refused(() => requestedValidity(now, { notBefore: at(-30), notAfter: at(-1) }, rules, undefined, ca), /later than notBefore and than now/);
    refused(() => requestedValidity(now, { notBefore: at(-3600), notAfter: at(3600) }, rules, undefined, ca), /more than issuance\.backdate/);
    refused(() => requestedValidity(new Date('2027-05-31T20:00:00Z'), { notBefore: null, notAfter: new Date('2027-06-01T06:00:00Z') }, rules, undefined, ca), /outside the intermediate/);
  });
});

describe('requestedValidity of a window accepted earlier (an ACME order finalized later)', () => {
  it('holds notBefore to the backdate as of the acceptance, not as of now', () => {
    const acceptedAt = at(-600);
    const window = { notBefore: at(-610), notAfter: at(3600), acceptedAt };
    const w = requestedValidity(now, window, rules, undefined, ca);
    assert.equal(w.notBefore.toISOString(), at(-610).toISOString());
    refused(() => requestedValidity(now, { notBefore: at(-610), notAfter: at(3600) }, rules, undefined, ca), /more than issuance.backdate/);
    refused(() => requestedValidity(now, { ...window, notBefore: at(-700) }, rules, undefined, ca), /more than issuance.backdate/);
  });

  it('still refuses a window that has ended by now', () => {
    refused(() => requestedValidity(now, { notBefore: at(-650), notAfter: at(-1), acceptedAt: at(-660) }, rules, undefined, ca), /notAfter must be later/);
  });
});
