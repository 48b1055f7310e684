/**
 * The sealer's linking (src/audit/sealer.ts): each row's hash chains to the one before from the
 * head, and a seal's rows are hashed a slice at a time, so that a worker serves requests while
 * a large seal is linked (a seal of a second's issuances once held one for ~40 ms).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { chainHash, type AuditEvent } from '../../src/audit/chain.js';
import { link } from '../../src/audit/sealer.js';

const rows = (n: number): (AuditEvent & { id: number })[] =>
  Array.from({ length: n }, (_, i) => ({
    id: 1000 + i,
    at: new Date(1_800_000_000_000 + i),
    actor: 'spiffe://example.org/ns/shop/sa/web',
    action: 'certificate.issue',
    serial: (i + 1).toString(16).padStart(40, '0'),
    outcome: 'success',
    detail: { n: i },
  }));

describe('audit sealer link', () => {
  it('chains every row to the one before it, from the head', async () => {
    const head = { seq: 41, hash: createHash('sha256').update('head').digest() };
    const input = rows(250);
    const linked = await link(head, input);
    assert.equal(linked.length, 250);
    let prev: Buffer = head.hash;
    for (const [i, l] of linked.entries()) {
      assert.equal(l.id, input[i]!.id);
      assert.equal(l.chainSeq, 42 + i);
      assert.deepEqual(l.prevHash, prev);
      assert.deepEqual(l.hash, chainHash(prev, input[i]!));
      prev = l.hash;
    }
  });

  it('lets other work run while it links a large seal', async () => {
    let ranMeanwhile = false;
    setImmediate(() => {
      ranMeanwhile = true;
    });
    const linked = await link({ seq: 0, hash: Buffer.alloc(32) }, rows(1000));
    assert.equal(linked.length, 1000);
    assert.equal(ranMeanwhile, true, 'a callback queued before linking ran before it finished');
  });
});
