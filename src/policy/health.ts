/**
 * Readiness (docs/api.md "Endpoints": `/readyz` is 200 when the database and the signing key answer).
 *
 * /readyz is served without authentication on the public listener, and a check costs a database
 * round trip on the request pool and a signature with the CA key. So a check runs at most once a
 * second, and only one at a time: every request in between gets the result of the last check (or
 * waits for the one in flight). A database connection that fails (`invalidate`, wired to the
 * pool's error events) drops that result at once, so readiness still turns 503 as soon as the
 * failure is seen, and within a second of the database stopping in any case.
 */
import type { Clock } from '../clock.js';
import type { Signer } from '../signer/signer.js';
import type { Store } from '../store/store.js';

export interface Readiness {
  database: boolean;
  signer: boolean;
}

export interface HealthCheck {
  ready(): Promise<Readiness>;
  /** Forgets the last result: the next request runs a check (a database connection just failed). */
  invalidate(): void;
}

export interface HealthCheckOptions {
  store: Pick<Store, 'ping'>;
  signer: Pick<Signer, 'selfTest'>;
  clock: Clock;
  /** How long a result answers later requests. */
  cacheMs?: number;
  /** Longest wait for the database's answer before it counts as not answering. */
  timeoutMs?: number;
  /** Called once per check actually run (metrics). */
  onCheck?: (result: Readiness) => void;
}

export function createHealthCheck(options: HealthCheckOptions): HealthCheck {
  const { store, signer, clock, cacheMs = 1000, timeoutMs = 2000 } = options;
  let last: { result: Readiness; startedAt: number } | undefined;
  let inFlight: Promise<Readiness> | undefined;
  // Bumped by invalidate(): a check that started before a failure was seen is not kept.
  let generation = 0;

  const check = async (): Promise<Readiness> => {
    let timer: NodeJS.Timeout | undefined;
    const database = await Promise.race([
      store.ping().then(() => true, () => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    const result = { database, signer: signer.selfTest() };
    options.onCheck?.(result);
    return result;
  };

  return {
    ready() {
      const now = clock.now().getTime();
      // Measured from the check's start, so no answer reflects a state older than cacheMs + the check.
      if (last && now - last.startedAt < cacheMs && now >= last.startedAt) return Promise.resolve(last.result);
      if (inFlight) return inFlight;
      const started = generation;
      const running = check().then((result) => {
        if (generation === started) last = { result, startedAt: now };
        return result;
      });
      inFlight = running;
      void running.finally(() => {
        if (inFlight === running) inFlight = undefined;
      });
      return running;
    },
    invalidate() {
      generation++;
      last = undefined;
      inFlight = undefined;
    },
  };
}
