/**
 * Per-identity issuance limits (limits.issuance): a fixed-window counter per identity in the
 * database, so that every replica and worker counts against the same budget. Each issuance or
 * renewal request that reaches the registration authority counts, refused ones included (a
 * client hammering with bad CSRs is limited too). Over the limit: 429 rateLimited, Retry-After
 * the seconds until the window ends.
 */
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import type { Store } from '../store/store.js';

export interface IssuanceLimits {
  /** Requests per identity per window; 0: unlimited. */
  perIdentity: number;
  /** Window length, seconds. */
  window: number;
}

export function createIssuanceLimiter(deps: { store: Store; clock: Clock; limits: IssuanceLimits }) {
  const { store, clock, limits } = deps;
  const windowMs = limits.window * 1000;
  return {
    /** Counts a request by identity; throws rateLimited when it is over the limit. */
    async take(identity: string): Promise<void> {
      if (limits.perIdentity <= 0) return;
      const now = clock.now().getTime();
      const start = Math.floor(now / windowMs) * windowMs;
      const count = await store.countRequest(`issue:${identity}`, new Date(start));
      if (count > limits.perIdentity) {
        throw new CaError('rateLimited', `at most ${limits.perIdentity} certificates per ${limits.window} s for one identity; retry when the window ends`, {
          retryAfter: Math.max(1, Math.ceil((start + windowMs - now) / 1000)),
        });
      }
    },
    /** Deletes counters of past windows. */
    prune: () => store.pruneRateCounters(new Date(Math.floor(clock.now().getTime() / windowMs) * windowMs)),
  };
}

export type IssuanceLimiter = ReturnType<typeof createIssuanceLimiter>;
