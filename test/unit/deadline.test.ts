/**
 * src/deadline.ts: a deadline fires even after the garbage collector ran (node 20's
 * AbortSignal.any() over AbortSignal.timeout() may not: its timeout signal can be collected), a
 * stop ends it with the stop's reason, and done() leaves nothing armed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { deadline } from '../../src/deadline.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('deadline', () => {
  it('fires at its time although nothing but its listener refers to it and the collector ran', async () => {
    const stop = new AbortController();
    let fired = 0;
    const reasons: unknown[] = [];
    for (let i = 0; i < 20; i++) {
      deadline(150, stop.signal).signal.addEventListener('abort', function (this: AbortSignal) {
        fired++;
        reasons.push(this.reason);
      });
    }
    for (let i = 0; i < 5; i++) {
      gc();
      await sleep(10);
    }
    await sleep(400);
    assert.equal(fired, 20);
    assert.ok(reasons.every((r) => r instanceof DOMException && r.name === 'TimeoutError'), 'a TimeoutError, as AbortSignal.timeout gives');
  });

  it('ends with the stop\'s reason when the stop comes first, or at once when it already came', () => {
    const stop = new AbortController();
    const limit = deadline(60_000, stop.signal);
    assert.equal(limit.signal.aborted, false);
    stop.abort(new Error('shutting down'));
    assert.equal(limit.signal.aborted, true);
    assert.equal((limit.signal.reason as Error).message, 'shutting down');
    limit.done();
    assert.equal(deadline(60_000, stop.signal).signal.aborted, true);
  });

  it('done() disarms it: no abort after its time, and the stop no longer reaches it', async () => {
    const stop = new AbortController();
    const limit = deadline(50, stop.signal);
    limit.done();
    await sleep(120);
    stop.abort();
    assert.equal(limit.signal.aborted, false);
  });
});
