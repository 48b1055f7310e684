/**
 * CRL publication. Every replica keeps the newest CRL in memory and serves it. A short poll of
 * the database (one small query every `pollMs`) tells each replica when another has stored a
 * newer CRL (then it loads it) or when a revocation is newer than the newest CRL, or the CRL is
 * older than `crl.refresh` (then it regenerates, under the store's lock, so one replica
 * generates at a time and bursts of revocations coalesce into one generation). A revocation
 * made here triggers the check at once. Freshness: a revocation reaches every replica's CRL
 * within pollMs + generation time, kept under `crl.maxDelay`.
 */
import type { Logger } from 'pino';
import type { Clock } from '../clock.js';
import { CrlEntries } from '../signer/crl-profile.js';
import type { Signer } from '../signer/signer.js';
import { toPem } from '../signer/pem.js';
import type { StoredCrl, Store } from '../store/store.js';

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

export interface CrlPublisher {
  current(): PublishedCrl | undefined;
  /** Loads or generates the first CRL, then keeps it fresh until stop(). */
  start(): Promise<void>;
  /** A revocation was committed here: check now rather than at the next poll. */
  revoked(): void;
  /** One synchronisation step (tests and start-up use it directly). */
  sync(): Promise<void>;
  stop(): void;
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
  serving(crl: { number: number; entries: number; bytes: number }): void;
}

function publish(crl: StoredCrl): PublishedCrl {
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

export function createCrlPublisher(deps: { store: Store; signer: Signer; clock: Clock; logger: Logger; settings: CrlSettings; metrics?: CrlMetrics }): CrlPublisher {
  const { store, signer, clock, logger, settings } = deps;
  const issuerKeyId = Buffer.from(signer.authority.keyIdentifier).toString('hex');
  const pollMs = Math.max(100, Math.min(1000, (settings.maxDelay * 1000) / 4));
  let current: PublishedCrl | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;

  const adopt = (crl: StoredCrl) => {
    if (!current || crl.number > current.number) {
      current = publish(crl);
      deps.metrics?.serving({ number: crl.number, entries: crl.entries, bytes: crl.der.length });
    }
  };

  async function generate(): Promise<void> {
    const now = clock.now();
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
      adopt(stored);
    }
  }

  async function step(): Promise<void> {
    const status = await store.crlStatus(issuerKeyId);
    const latest = status.latest;
    if (latest && (!current || latest.number > current.number)) {
      const crl = await store.latestCrl(issuerKeyId);
      if (crl) adopt(crl);
    }
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

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      sync()
        .catch((err: unknown) => logger.warn({ err }, 'CRL synchronisation failed; serving the current CRL'))
        .finally(schedule);
    }, pollMs);
    timer.unref();
  }

  return {
    current: () => current,
    async start() {
      // When another replica or worker holds the generation lock, its CRL is usually a moment
      // away: wait for it briefly, so that a replica is seldom ready without a CRL. Past that
      // (a huge CRL, a database hiccup) it starts anyway and /v1/crl answers 503 until the
      // poll gets one.
      const until = Date.now() + 5000;
      for (let attempt = 0; !current && Date.now() < until; attempt++) {
        if (attempt > 0) await new Promise((r) => setTimeout(r, 250));
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
    revoked() {
      sync().catch((err: unknown) => logger.warn({ err }, 'CRL regeneration after a revocation failed; the poll retries'));
    },
    sync,
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
