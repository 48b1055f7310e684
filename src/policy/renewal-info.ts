/**
 * Renewal information for rotation agents (docs/api.md "Renewal window"; RFC 9773 shape).
 *
 * Served without authentication on the public listener, so a flood must not reach the database
 * in proportion to its size, nor take connections from issuance:
 * - Known serials are kept in memory: a bounded cache (maxEntries, least recently used evicted
 *   first) whose entries live ttlMs, so a revocation made by another worker or replica opens the
 *   window within ttlMs (deps.ts keeps it under crl.maxDelay); a revocation made by this process
 *   drops the cache at once (`revoked`). Concurrent lookups of one serial share one database read.
 * - Unknown serials are never cached: random serials can neither evict hot entries nor grow the
 *   cache. Their reads go to the store's public pool (Store.getPublicTimes), a small pool of its
 *   own, so a flood of them waits on that pool and never on the one issuance uses.
 */
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import type { CertificateTimes, Store } from '../store/store.js';
import { renewalWindow, retryAfterSeconds, type RenewalWindow } from './renewal.js';
import { normalizeSerial } from './serials.js';

export interface RenewalInfo {
  window: RenewalWindow;
  retryAfter: number;
}

/** Where a lookup's answer came from: memory, a read already in flight for the serial, or a read of its own (found or not). */
export type RenewalInfoLookup = 'hit' | 'shared' | 'miss' | 'unknown';

export interface RenewalInfoOptions {
  store: Pick<Store, 'getPublicTimes'>;
  clock: Clock;
  /** Most certificates held in memory. */
  maxEntries?: number;
  /** How long a certificate's times answer from memory, ms. */
  ttlMs?: number;
  /** Called once per lookup (metrics). */
  onLookup?: (result: RenewalInfoLookup) => void;
}

export interface RenewalInfoService {
  get(serialText: string): Promise<RenewalInfo>;
  /** A certificate was revoked by this process: forget what is held, so its window opens now. */
  revoked(): void;
  /** Certificates held in memory. */
  size(): number;
}

interface Entry {
  times: CertificateTimes;
  expiresAt: number;
}

export function createRenewalInfo(options: RenewalInfoOptions): RenewalInfoService {
  const { store, clock, maxEntries = 10_000, ttlMs = 2000 } = options;
  // A Map iterates in insertion order: re-inserting on each hit keeps the least recently used first.
  const entries = new Map<string, Entry>();
  const reads = new Map<string, Promise<CertificateTimes | undefined>>();
  // Bumped by revoked(): a read that started before a revocation here is not kept.
  let generation = 0;

  const read = (serial: string): Promise<CertificateTimes | undefined> => {
    const started = generation;
    const reading = store.getPublicTimes(serial).then((times) => {
      if (times && generation === started) {
        entries.set(serial, { times, expiresAt: clock.now().getTime() + ttlMs });
        if (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
      }
      return times;
    });
    reads.set(serial, reading);
    const done = () => {
      if (reads.get(serial) === reading) reads.delete(serial);
    };
    void reading.then(done, done);
    return reading;
  };

  const timesOf = async (serial: string): Promise<CertificateTimes | undefined> => {
    const entry = entries.get(serial);
    if (entry) {
      entries.delete(serial);
      if (clock.now().getTime() < entry.expiresAt) {
        entries.set(serial, entry);
        options.onLookup?.('hit');
        return entry.times;
      }
    }
    const pending = reads.get(serial);
    if (pending) {
      options.onLookup?.('shared');
      return pending;
    }
    const times = await read(serial);
    options.onLookup?.(times ? 'miss' : 'unknown');
    return times;
  };

  return {
    async get(serialText) {
      const times = await timesOf(normalizeSerial(serialText));
      if (!times) throw new CaError('notFound', 'no certificate has this serial');
      return { window: renewalWindow(times, clock.now()), retryAfter: retryAfterSeconds(times) };
    },
    revoked() {
      generation++;
      entries.clear();
      reads.clear();
    },
    size: () => entries.size,
  };
}
