/**
 * Database checks for a newer CRL, shared by everyone who asks: a poll, a notification, a
 * sibling worker's news, and requests naming a CRL newer than the one served (If-None-Match,
 * docs/api.md "CRLs"). A caller gets the result of a check that started after it asked (a CRL
 * committed before a request arrived is therefore seen), yet at most one check runs at a time
 * and at most one waits, and checks start at least `minGapMs` apart: a flood of requests naming
 * forged, huge CRL numbers costs the database one small query per `minGapMs` per process,
 * however many requests there are.
 */

/** Wraps `run` so that concurrent callers share its runs as described above. */
export function coalesce<T>(run: () => Promise<T>, minGapMs: number): () => Promise<T> {
  let inFlight: Promise<T> | undefined;
  let queued: Promise<T> | undefined;
  // A monotonic clock: this only spaces runs, it decides nothing about certificates or CRLs.
  let lastStart = -Infinity;

  const begin = (): Promise<T> => {
    lastStart = performance.now();
    const p = run();
    inFlight = p;
    const clear = () => {
      if (inFlight === p) inFlight = undefined;
    };
    p.then(clear, clear);
    return p;
  };

  return () => {
    if (queued) return queued;
    const gap = lastStart + minGapMs - performance.now();
    if (!inFlight && gap <= 0) return begin();
    const previous = inFlight ?? Promise.resolve();
    queued = previous
      .then(
        () => undefined,
        () => undefined,
      )
      .then(async () => {
        const wait = lastStart + minGapMs - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        queued = undefined;
        return begin();
      });
    return queued;
  };
}
