/**
 * A policy's identity pattern matches in linear time (docs/api.md "Identity and policy"; issue 13:
 * four captures separated by ":" against a 300-character identity blocked the event loop for
 * 1.6 s). Two kinds of proof, neither timed: the matcher gives exactly the captures of the
 * anchored greedy RegExp it replaces on every small case fast-check generates, and it answers
 * for 100,000-character identities that a backtracking engine would need millennia for
 * (O(n^4) splits: 200 characters already take ~0.4 s), asserting what it answers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { PolicyConfig } from '../../src/config.js';
import { compilePolicies } from '../../src/policy/names.js';

const policy = (identity: string): PolicyConfig => ({ identity, dns: [], uri: [], ip: [], email: [], wildcards: false, extendedKeyUsage: ['serverAuth', 'clientAuth'], acme: { challenges: 'required' } });
const matcher = (identity: string) => compilePolicies([policy(identity)])[0]!;

/** The RegExp the patterns compiled to before (the oracle for small inputs only). */
function regexMatch(pattern: string, identity: string): Record<string, string> | undefined {
  const names: string[] = [];
  const source = pattern
    .split(/(\{[A-Za-z_][A-Za-z0-9_]*\})/)
    .map((part) => {
      const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(part);
      if (m) {
        names.push(m[1]!);
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  const m = new RegExp(`^${source}$`, 's').exec(identity);
  return m ? Object.fromEntries(names.map((n, i) => [n, m[i + 1]!])) : undefined;
}

describe('identity patterns', () => {
  it('give the same captures as the anchored greedy RegExp, on generated patterns and identities', () => {
    const char = fc.constantFrom('a', 'b', ':', '/', '.');
    const literal = fc.array(char, { minLength: 0, maxLength: 3 }).map((cs) => cs.join(''));
    // Up to five captures with literals (possibly empty: adjacent captures) around them.
    const pattern = fc.array(literal, { minLength: 1, maxLength: 6 }).map((lits) => lits.map((l, i) => (i === 0 ? l : `{c${i}}${l}`)).join(''));
    const identity = fc.array(char, { minLength: 0, maxLength: 14 }).map((cs) => cs.join(''));
    fc.assert(
      fc.property(pattern, identity, (p, id) => {
        assert.deepEqual(matcher(p).match(id), regexMatch(p, id), `${p} against ${JSON.stringify(id)}`);
      }),
      { numRuns: 3000 },
    );
    // Identities built to match: the oracle's captures, not just undefined twice.
    let matched = 0;
    fc.assert(
      fc.property(pattern, fc.array(fc.constantFrom('a', 'b:', 'a.b', ':'), { minLength: 1, maxLength: 3 }), (p, fills) => {
        const id = p.replace(/\{c\d\}/g, () => fills[matched++ % fills.length]!);
        const expected = regexMatch(p, id);
        assert.deepEqual(matcher(p).match(id), expected, `${p} against ${JSON.stringify(id)}`);
      }),
      { numRuns: 2000 },
    );
  });

  it('answer for a 100,000-character identity with four ":"-separated captures: refused, and matched with the greedy captures', () => {
    const m = matcher('k8s:{a}:{b}:{c}:{d}');
    // Every split of the colons is tried by a backtracking engine before the final "/" refuses.
    assert.equal(m.match(`k8s:${':'.repeat(100_000)}/`), undefined);
    assert.equal(m.match(`k8s:${'x:'.repeat(50_000)}/y`), undefined);
    // 50,000 "x" then "y": the first capture takes all it can, the others one token each.
    assert.deepEqual(m.match(`k8s:${'x:'.repeat(50_000)}y`), { a: `${'x:'.repeat(49_997)}x`, b: 'x', c: 'x', d: 'y' });
  });

  it('keep one capture to one path segment, for a 100,000-character identity', () => {
    const m = matcher('spiffe://example.org/ns/{ns}/sa/{sa}');
    assert.deepEqual(m.match(`spiffe://example.org/ns/${'n'.repeat(100_000)}/sa/web`), { ns: 'n'.repeat(100_000), sa: 'web' });
    assert.equal(m.match(`spiffe://example.org/ns/${'n/'.repeat(50_000)}sa/web`), undefined);
  });
});
