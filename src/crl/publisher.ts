/**
 * CRL publication. Every process keeps the newest CRL in memory and serves it. It learns of a
 * CRL stored elsewhere at once (Postgres LISTEN/NOTIFY, store/notifications.ts; under
 * node:cluster also from a sibling through the primary), and by a short poll of the database
 * (one small query every `pollMs`) as the fallback. The poll also regenerates when a revocation
 * is newer than the newest CRL, or the CRL is older than `crl.refresh`: under the store's lock,
 * so one process generates at a time and bursts of revocations coalesce into one generation. A
 * revocation made here triggers the check at once. Freshness: a revocation reaches every
 * process's CRL within generation time plus a notification (the poll's pollMs at worst), kept
 * under `crl.maxDelay`.
 *
 * A CRL this process learns of is staged first and served only when the permit covers it
 * (crl/snapshots.ts): at once in a single process, under node:cluster when every worker of the
 * instance has it (crl/relay.ts). A request naming a newer CRL than the served one (by ETag)
 * is answered from a CRL at least that new, loaded from the database if need be.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import { CrlEntries } from '../signer/crl-profile.js';
import type { Signer, Signers } from '../signer/signer.js';
import type { CrlStatus, StoredCrl, Store, Subscription } from '../store/store.js';
import { coalesce } from './coalesce.js';
import { createSnapshots, type PublishedCrl } from './snapshots.js';

export type { PublishedCrl };

export interface CrlPublisher {
  /** The key id of the issuer whose CRLs this publishes. */
  readonly issuerKeyId: string;
  /** The CRL requests get now. */
  current(): PublishedCrl | undefined;
  /**
   * The CRL to answer a request with. `named`: the highest CRL number the request's
   * If-None-Match names; when it is newer than the served CRL, the answer is a CRL at least that
   * new (a 304 then, if it is the one named) whenever the database has one, never an older one.
   * A process that lags behind its instance's permit loads the newer CRL before answering.
   */
  snapshot(named?: number): Promise<PublishedCrl | undefined>;
  /** Loads or generates the first CRL, then keeps it fresh until stop(). */
  start(): Promise<void>;
  /** A revocation was committed here: check now rather than at the next poll. */
  revoked(): void;
  /** One synchronisation step (tests and start-up use it directly). */
  sync(): Promise<void>;
  stop(): Promise<void>;
}

export interface CrlSettings {
  /** nextUpdate − thisUpdate, seconds. */
  validity: number;
  /** Regenerate at least this often, seconds. */
  refresh: number;
  /** How late a revocation may reach the served CRL, seconds. */
  maxDelay: number;
}

export interface CrlMetrics {
  /** This process generated a CRL in `seconds`. */
  generated(seconds: number): void;
  /** This process now serves this CRL (generated here or read from the database). */
  serving(crl: { number: number; entries: number; bytes: number; thisUpdate: Date }): void;
  /** This process asked the database whether a newer CRL exists. */
  checked?(): void;
  /** The issuer expired while running: it publishes no more CRLs (its gauges should go). */
  retired?(): void;
}

/**
 * Several processes of one instance agreeing on what to serve (src/cluster.ts implements it
 * over node:cluster messages; absent: a single process serves what it stages).
 */
export interface CrlCoordination {
  /** This process holds CRL `number`; the others may be waited for at most `waitMs`. */
  staged(number: number, waitMs: number): void;
  subscribe(handlers: {
    /** A sibling holds CRL `number`: load it (or a newer one). */
    load(number: number): void;
    /** Every sibling holds `number`: serve up to it from `at` (ms since the epoch). */
    serve(number: number, at: number): void;
  }): void;
}

/** Spacing of database checks that requests (or notifications) ask for: see crl/coalesce.ts. */
const CHECK_GAP_MS = 50;
/**
 * Longest a request waits for a check before it is answered 503 (the database's own query
 * timeout): an older CRL is never the answer to a request that needs a newer one.
 */
const REQUEST_WAIT_MS = 5000;

/** Resolves with `work`, or rejects with `unavailable` after ms. */
async function within<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CaError('unavailable', 'the newest CRL could not be read from the database in time; retry shortly', { retryAfter: 2 })), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export function createCrlPublisher(deps: {
  store: Store;
  signer: Signer;
  clock: Clock;
  logger: Logger;
  settings: CrlSettings;
  metrics?: CrlMetrics;
  coordination?: CrlCoordination;
}): CrlPublisher {
  const { store, signer, clock, logger, settings, coordination } = deps;
  const issuerKeyId = signer.keyId;
  let expiredNoted = false;
  const pollMs = Math.max(100, Math.min(1000, (settings.maxDelay * 1000) / 4));
  const snapshots = createSnapshots({
    now: () => clock.now().getTime(),
    onServe(crl) {
      deps.metrics?.serving({ number: crl.number, entries: crl.entries, bytes: crl.der.length, thisUpdate: crl.thisUpdate });
      logger.debug({ number: crl.number }, 'serving a new CRL');
    },
  });
  let timer: NodeJS.Timeout | undefined;
  let subscription: Subscription | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  /** Stages a CRL this process generated or read; the coordination decides when to serve it. */
  const hold = (crl: StoredCrl) => {
    if (!snapshots.stage(crl)) return;
    if (coordination) coordination.staged(crl.number, pollMs);
    else snapshots.permit(crl.number);
  };

  /** Whether the database has a newer CRL than any held here (then it is loaded and staged). */
  const check = coalesce(async (): Promise<CrlStatus> => {
    deps.metrics?.checked?.();
    const status = await store.crlStatus(issuerKeyId);
    if (status.latest && status.latest.number > snapshots.newest()) {
      const crl = await store.latestCrl(issuerKeyId);
      if (crl) hold(crl);
    }
    return status;
  }, CHECK_GAP_MS);

  async function generate(): Promise<void> {
    const now = clock.now();
    if (now.getTime() >= signer.authority.notAfter.getTime()) {
      // Its certificates have all expired with it (none outlives its issuer): nothing to revoke.
      if (!expiredNoted) {
        if (signer.active) logger.error({ issuer: issuerKeyId, notAfter: signer.authority.notAfter }, 'the active issuer has expired: it signs no more certificates or CRLs; roll over to a new intermediate');
        else logger.warn({ issuer: issuerKeyId, notAfter: signer.authority.notAfter }, 'a retiring issuer has expired: no more CRLs for it; remove it from ca.issuers');
        deps.metrics?.retired?.();
      }
      expiredNoted = true;
      return;
    }
    const thisUpdate = new Date(Math.floor(now.getTime() / 1000) * 1000);
    const nextUpdate = new Date(thisUpdate.getTime() + settings.validity * 1000);
    const started = process.hrtime.bigint();
    const stored = await store.generateCrl(issuerKeyId, now, async (b) => {
      const entries = new CrlEntries();
      await b.entries((serial, seconds, reason) => entries.add(serial, seconds, reason));
      const der = signer.signCrl({ number: b.number, thisUpdate, nextUpdate }, entries);
      return { der, thisUpdate, nextUpdate, entries: entries.count, issuerKeyId };
    });
    if (stored) {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      deps.metrics?.generated(seconds);
      logger.info({ number: stored.number, entries: stored.entries, bytes: stored.der.length, ms: Math.round(seconds * 1000) }, 'generated a CRL');
      hold(stored);
    }
  }

  async function step(): Promise<void> {
    const status = await check();
    const latest = status.latest;
    const now = clock.now().getTime();
    const stale = !latest || status.revision > latest.sourceRevision || now - latest.thisUpdate.getTime() >= settings.refresh * 1000;
    if (stale) await generate();
  }

  /** Runs steps one at a time; a request during a step runs one more step after it. */
  function sync(): Promise<void> {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      try {
        do {
          again = false;
          await step();
        } while (again && !stopped);
      } finally {
        running = undefined;
      }
    })();
    return running;
  }

  const syncSoon = (why: string) => {
    if (!stopped) sync().catch((err: unknown) => logger.warn({ err }, `CRL synchronisation after ${why} failed; the poll retries`));
  };

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      sync()
        .catch((err: unknown) => logger.warn({ err }, 'CRL synchronisation failed; serving the current CRL'))
        .finally(schedule);
    }, pollMs);
    timer.unref();
  }

  coordination?.subscribe({
    load(number) {
      // Already held: say so again (the primary may not have heard yet); else read it.
      if (number <= snapshots.newest()) coordination.staged(snapshots.newest(), pollMs);
      else check().catch((err: unknown) => logger.warn({ err, number }, 'could not load the CRL a sibling worker holds; the poll retries'));
    },
    serve: (number, at) => snapshots.permit(number, at),
  });

  /** Serving, and no older than what this instance serves. */
  const ready = () => {
    const served = snapshots.served();
    return served !== undefined && served.number >= snapshots.permitted();
  };

  return {
    issuerKeyId,
    current: () => snapshots.served(),
    async snapshot(named = 0) {
      const answer = () => {
        const served = snapshots.served();
        return named > (served?.number ?? 0) ? (snapshots.atLeast(named) ?? served) : served;
      };
      const lagging = () => {
        const served = snapshots.served()?.number ?? 0;
        return served < snapshots.permitted() || (named > served && !snapshots.atLeast(named)) || served === 0;
      };
      // A request that names a CRL no newer than held, from a process that is not behind its
      // siblings, costs nothing. Otherwise one shared check (crl/coalesce.ts): a database
      // failure then answers 503 rather than an older CRL.
      if (lagging()) await within(check(), REQUEST_WAIT_MS);
      // A CRL this process holds but may not serve yet (its siblings are still loading it): wait
      // for the permit rather than answer from it, so that no client of this instance gets it
      // before every worker serves it. Past the wait the client, which named it, gets it anyway.
      const deadline = performance.now() + REQUEST_WAIT_MS;
      while (named > (snapshots.served()?.number ?? 0) && snapshots.atLeast(named) && performance.now() < deadline) {
        await snapshots.changed(deadline - performance.now());
      }
      return answer();
    },
    async start() {
      subscription = store.watchCrls({
        stored: (notice) => {
          if (notice.issuerKeyId === issuerKeyId && notice.number > snapshots.newest()) syncSoon('a CRL notification');
        },
        connected: () => syncSoon('listening for CRL notifications'),
        failed: (err, retryInMs) => logger.warn({ err: err.message, retryInMs }, 'the CRL notification connection failed; polling meanwhile'),
      });
      // When another replica or worker holds the generation lock, its CRL is usually a moment
      // away: wait for it briefly, so that a process is seldom ready without a CRL (under
      // node:cluster: without the permit to serve it). Past that (a huge CRL, a database
      // hiccup) it starts anyway and /v1/crl answers 503 until it has one.
      const until = performance.now() + 5000;
      for (let attempt = 0; !ready() && performance.now() < until; attempt++) {
        if (attempt > 0) await snapshots.changed(250);
        if (ready()) break;
        const ok = await sync().then(
          () => true,
          (err: unknown) => {
            logger.warn({ err }, 'no CRL yet; the poll retries');
            return false;
          },
        );
        if (!ok) break;
      }
      schedule();
    },
    revoked: () => syncSoon('a revocation'),
    sync,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      snapshots.stop();
      await subscription?.close();
    },
  };
}

/** Every configured issuer's publisher; `/v1/crl` is the active issuer's. */
export interface CrlPublishers {
  readonly active: CrlPublisher;
  readonly all: readonly CrlPublisher[];
  byKeyId(keyId: string): CrlPublisher | undefined;
  start(): Promise<void>;
  /** A revocation was committed here (of any issuer's certificate). */
  revoked(): void;
  stop(): Promise<void>;
}

export function createCrlPublishers(signers: Pick<Signers, 'all' | 'active'>, publisherOf: (signer: Signer) => CrlPublisher): CrlPublishers {
  const all = signers.all.map(publisherOf);
  const byId = new Map(all.map((p) => [p.issuerKeyId, p]));
  return {
    active: byId.get(signers.active.keyId)!,
    all,
    byKeyId: (keyId) => byId.get(keyId.toLowerCase()),
    start: async () => {
      await Promise.all(all.map((p) => p.start()));
    },
    // The revocation's issuer is not known here; a publisher with nothing new finds so in one small query.
    revoked: () => all.forEach((p) => p.revoked()),
    stop: async () => {
      await Promise.all(all.map((p) => p.stop()));
    },
  };
}
