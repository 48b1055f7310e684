/**
 * Group commit: the writes of concurrent requests are gathered and committed together, one
 * transaction for many of them, and each caller's promise settles only after that commit (so
 * docs/api.md's rule holds: no certificate leaves before its record is committed, whether or not
 * its neighbours' records were committed in the same transaction).
 *
 * A batch goes out when it holds `maxRows` items or `maxDelayMs` after its first item arrived,
 * whichever comes first, and at most `maxInFlight` batches run at once: while they do, new
 * items wait and the next batch grows, so the batch size follows the load without a fixed
 * wait at low load. Items that must not share a batch (the same one-time token id, the same
 * renewed certificate: `conflictKeys`) wait for the next one, so that the set-based statement
 * never has to choose between two rows of its own.
 *
 * `write` returns one result per item, in order; an item refused by the database (a replayed
 * token) gets its own result and fails alone. When `write` throws, the transaction did not
 * commit and every item of the batch is rejected with the error.
 *
 * Why by hand: no maintained library batches promise-returning calls by size, delay and
 * concurrency with per-key exclusion; DataLoader-style batchers flush per tick and have none of
 * the three bounds.
 */
export interface GroupCommitOptions {
  /** Most items in one batch. */
  maxRows: number;
  /** Longest wait, in milliseconds, from a batch's first item to its write (0: the current turn of the event loop). */
  maxDelayMs: number;
  /** Batches written at the same time. */
  maxInFlight: number;
}

export interface GroupCommit<I, R> {
  submit(item: I): Promise<R>;
  /** Writes what waits and resolves when no batch is in flight. */
  drain(): Promise<void>;
  /** Batches written so far and items in them (for metrics and tests). */
  stats(): { batches: number; items: number };
}

interface Waiting<I, R> {
  item: I;
  keys: readonly string[];
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

export function createGroupCommit<I, R>(
  options: GroupCommitOptions,
  write: (items: I[]) => Promise<R[]>,
  conflictKeys: (item: I) => readonly string[] = () => [],
): GroupCommit<I, R> {
  const { maxRows, maxDelayMs, maxInFlight } = options;
  let queue: Waiting<I, R>[] = [];
  let inFlight = 0;
  let timer: NodeJS.Timeout | NodeJS.Immediate | undefined;
  let batches = 0;
  let items = 0;
  const idle: (() => void)[] = [];

  /** Takes up to maxRows items from the queue, leaving behind those whose keys the batch already holds. */
  function take(): Waiting<I, R>[] {
    const batch: Waiting<I, R>[] = [];
    const rest: Waiting<I, R>[] = [];
    const held = new Set<string>();
    for (const w of queue) {
      if (batch.length >= maxRows || w.keys.some((k) => held.has(k))) {
        rest.push(w);
        continue;
      }
      for (const k of w.keys) held.add(k);
      batch.push(w);
    }
    queue = rest;
    return batch;
  }

  function clearTimer(): void {
    if (timer === undefined) return;
    if (maxDelayMs > 0) clearTimeout(timer as NodeJS.Timeout);
    else clearImmediate(timer as NodeJS.Immediate);
    timer = undefined;
  }

  function flush(): void {
    clearTimer();
    while (queue.length > 0 && inFlight < maxInFlight) {
      const batch = take();
      inFlight++;
      batches++;
      items += batch.length;
      write(batch.map((w) => w.item)).then(
        (results) => {
          if (results.length !== batch.length) {
            const err = new Error(`group commit: ${results.length} results for ${batch.length} items`);
            for (const w of batch) w.reject(err);
            return;
          }
          batch.forEach((w, i) => w.resolve(results[i]!));
        },
        (err: unknown) => {
          for (const w of batch) w.reject(err);
        },
      ).finally(() => {
        inFlight--;
        if (queue.length > 0) schedule();
        else if (inFlight === 0) for (const done of idle.splice(0)) done();
      });
    }
  }

  function schedule(): void {
    if (queue.length >= maxRows) return flush();
    if (timer !== undefined) return;
    timer = maxDelayMs > 0 ? setTimeout(flush, maxDelayMs) : setImmediate(flush);
  }

  return {
    submit(item) {
      return new Promise<R>((resolve, reject) => {
        queue.push({ item, keys: conflictKeys(item), resolve, reject });
        schedule();
      });
    },
    drain() {
      if (queue.length === 0 && inFlight === 0) return Promise.resolve();
      flush();
      return new Promise<void>((resolve) => idle.push(resolve));
    },
    stats: () => ({ batches, items }),
  };
}
