/**
 * Which CRL a process serves (docs/api.md "CRLs": a client never sees the CRL go back). A process
 * holds CRLs in two stages: staged (loaded from the database or generated here, ready in
 * memory) and served (what requests get). A staged CRL is served once a permit covers its
 * number: in a single process the permit follows the staging at once; under node:cluster the
 * primary gives it only when every worker has staged that number (src/crl/relay.ts), so that no
 * worker serves a number its siblings cannot, and names an instant for the switch so that all
 * workers switch together. The served CRL only ever moves to a higher number.
 *
 * Each request's answer is one PublishedCrl object (DER, PEM, ETag and Last-Modified of one
 * CRL), so /v1/crl and /v1/crl.pem never mix two CRLs in one answer.
 */
import { toPem } from '../x509/pem.js';
import type { StoredCrl } from '../store/store.js';

export interface PublishedCrl {
  number: number;
  thisUpdate: Date;
  nextUpdate: Date;
  entries: number;
  der: Buffer;
  pem(): string;
  etag: string;
  /** An earlier CRL has the same Last-Modified second: If-Modified-Since cannot be trusted. */
  sharesSecond: boolean;
}

export function publish(crl: StoredCrl): PublishedCrl {
  let pem: string | undefined;
  return {
    number: crl.number,
    thisUpdate: crl.thisUpdate,
    nextUpdate: crl.nextUpdate,
    entries: crl.entries,
    der: crl.der,
    pem: () => (pem ??= toPem(crl.der, 'X509 CRL')),
    etag: `"crl-${crl.number}"`,
    sharesSecond: crl.sharesSecond,
  };
}

/**
 * Staged CRLs kept besides the served one. Usually one: a permit follows a staging within
 * milliseconds. A few are kept so that a permit for number n still finds n after n + 1 was
 * staged meanwhile (then n is served, and n + 1 at the next permit).
 */
const MAX_STAGED = 4;

export interface CrlSnapshots {
  /** What requests get now. */
  served(): PublishedCrl | undefined;
  /** The highest number held, staged or served (0: none). */
  newest(): number;
  /** The highest number this process may serve now (0: none yet). */
  permitted(): number;
  /** Holds a CRL; false (and nothing changes) when this number or a newer one is held already. */
  stage(crl: StoredCrl): boolean;
  /** Numbers up to `number` may be served from `at` (ms since the epoch; absent: now). */
  permit(number: number, at?: number): void;
  /** The oldest CRL held (served or staged) whose number is at least `number`. */
  atLeast(number: number): PublishedCrl | undefined;
  /** Resolves when the served CRL changes, or after `ms`. */
  changed(ms: number): Promise<void>;
  stop(): void;
}

export function createSnapshots(options: { now: () => number; onServe: (crl: PublishedCrl) => void }): CrlSnapshots {
  const staged = new Map<number, PublishedCrl>();
  const pending: { number: number; at: number }[] = [];
  const waiters = new Set<() => void>();
  let served: PublishedCrl | undefined;
  let permitted = 0;
  let timer: NodeJS.Timeout | undefined;

  /** Serves the newest staged CRL that the permit covers, if newer than the served one. */
  function advance(): void {
    let best: PublishedCrl | undefined;
    for (const [n, crl] of staged) if (n <= permitted && (!best || n > best.number)) best = crl;
    if (!best || (served && best.number <= served.number)) return;
    served = best;
    for (const n of staged.keys()) if (n <= best.number) staged.delete(n);
    options.onServe(best);
    for (const wake of waiters) wake();
    waiters.clear();
  }

  /** Applies the permits whose instant has come, and waits for the next one. */
  function settle(): void {
    if (pending.length > 0) {
      const now = options.now();
      for (let i = pending.length - 1; i >= 0; i--) {
        if (pending[i]!.at <= now) {
          permitted = Math.max(permitted, pending[i]!.number);
          pending.splice(i, 1);
        }
      }
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (pending.length > 0) {
        timer = setTimeout(settle, Math.max(0, Math.min(...pending.map((p) => p.at)) - now));
        timer.unref();
      }
    }
    advance();
  }

  const newest = () => Math.max(served?.number ?? 0, ...staged.keys());

  return {
    served() {
      settle();
      return served;
    },
    newest,
    permitted() {
      settle();
      return permitted;
    },
    stage(crl) {
      if (crl.number <= newest()) return false;
      staged.set(crl.number, publish(crl));
      if (staged.size > MAX_STAGED) {
        // Keep the lowest (the permit on its way is most likely for it) and the newest (the next
        // permits'); drop the one in between, so a burst never evicts the CRL about to be served.
        const keys = [...staged.keys()].sort((x, y) => x - y);
        staged.delete(keys[1]!);
      }
      advance();
      return true;
    },
    permit(number, at) {
      if (number <= permitted) return;
      if (at === undefined) permitted = number;
      else pending.push({ number, at });
      settle();
    },
    atLeast(number) {
      settle();
      if (served && served.number >= number) return served;
      let best: PublishedCrl | undefined;
      for (const [n, crl] of staged) if (n >= number && (!best || n < best.number)) best = crl;
      return best;
    },
    changed(ms) {
      return new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          waiters.delete(done);
          resolve();
        }, ms);
        const done = () => {
          clearTimeout(t);
          resolve();
        };
        waiters.add(done);
      });
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
      for (const wake of waiters) wake();
      waiters.clear();
    },
  };
}
