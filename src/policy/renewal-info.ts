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
 * - Each answered poll is noted for the fleet view (docs/api.md "Fleet": `lastPoll`) in memory,
 *   at most one entry per serial, and written in batches by the PollRecorder below: a poll costs
 *   two Map updates, never a database write of its own.
 */
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import type { CertificateTimes, Poll, Store } from '../store/store.js';
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
  /** Where answered polls are noted (absent: nowhere). */
  polls?: Pick<PollRecorder, 'note'>;
  /** When holders of an issuer's certificates are told to have renewed (a retiring issuer's `renewBy`). */
  renewBy?: (issuerKeyId: string) => Date | undefined;
}

export interface RenewalInfoService {
  /** The window of a certificate; `from` is the address the poll came from, noted with the poll. */
  get(serialText: string, from?: string): Promise<RenewalInfo>;
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
    async get(serialText, from) {
      const serial = normalizeSerial(serialText);
      const times = await timesOf(serial);
      if (!times) throw new CaError('notFound', 'no certificate has this serial');
      const now = clock.now();
      options.polls?.note(serial, now.getTime(), from);
      return { window: renewalWindow(times, now, options.renewBy?.(times.issuerKeyId)), retryAfter: retryAfterSeconds(times) };
    },
    revoked() {
      generation++;
      entries.clear();
      reads.clear();
    },
    size: () => entries.size,
  };
}

/**
 * The last poll of each certificate, gathered in memory by one process and written in batches
 * (Store.recordPolls: one upsert of at most `maxBatch` (1000) rows, at most one per serial, never
 * moving a row back in time, whatever order replicas flush in). What is waiting is written every
 * `intervalMs` (5 s), at once when `flushAt` (10,000) serials are waiting, and by stop() at
 * shutdown. A serial polled many times in between is written once, and a poll within
 * `minIntervalMs` (1 minute) of the last one this process wrote for the serial is not noted at
 * all: an agent polls every L/10 (at most 6 hours), so only a flood repeats a serial that often,
 * and the fleet view needs minutes, not seconds. Measured with the renewal-info benchmark (about
 * 4,000 polls a second cycling over 8,000 serials, on the embedded database, which shares the
 * process's CPU): writing every serial at each flush served 8-16 % fewer answers.
 * A batch that fails (the database is away) is kept for the next one, except what newer polls
 * replaced, up to `maxPending` serials waiting (polls are a hint, not a record).
 */
export interface PollRecorder {
  /** Notes a poll at atMs (epoch ms) from `address`. Allocates nothing for a serial already waiting or written within minIntervalMs. */
  note(serial: string, atMs: number, address: string | undefined): void;
  /** Writes what is waiting now (after a write already under way); the rows written. */
  flush(): Promise<number>;
  /** Serials waiting to be written. */
  pending(): number;
  start(): void;
  /** Stops the timer and writes what is waiting. */
  stop(): Promise<void>;
}

export interface PollRecorderOptions {
  store: Pick<Store, 'recordPolls'>;
  intervalMs?: number;
  /** Most rows per statement. */
  maxBatch?: number;
  /** Serials waiting that start a write before the interval ends. */
  flushAt?: number;
  maxPending?: number;
  /** A poll this soon after the last one written for its serial is not noted (ms). */
  minIntervalMs?: number;
  /** Serials whose last written poll is remembered for minIntervalMs (the oldest forgotten first). */
  maxRemembered?: number;
  /** A batch could not be written (it is kept, or dropped past maxPending). */
  onError?: (err: unknown, kept: number) => void;
}

/** An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; written as a.b.c.d. */
const plainAddress = (a: string | undefined) => (a === undefined ? null : a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a);

export function createPollRecorder(options: PollRecorderOptions): PollRecorder {
  const { store, intervalMs = 5000, maxBatch = 1000, flushAt = 10_000, maxPending = 100_000, minIntervalMs = 60_000, maxRemembered = 100_000 } = options;
  // Two maps rather than one of objects: a poll of a serial already waiting replaces two values.
  let times = new Map<string, number>();
  let addresses = new Map<string, string | undefined>();
  // The time of the last poll written per serial, in the order written (oldest first).
  const written = new Map<string, number>();
  const remember = (polls: Poll[]) => {
    for (const p of polls) {
      written.delete(p.serial);
      written.set(p.serial, p.at.getTime());
    }
    for (const serial of written.keys()) {
      if (written.size <= maxRemembered) break;
      written.delete(serial);
    }
  };
  let writing: Promise<number> | undefined;
  let again = false;
  let timer: NodeJS.Timeout | undefined;

  /** Puts a failed batch back, under what newer polls noted meanwhile. */
  const keep = (polls: Poll[]) => {
    for (const p of polls) {
      if (times.size >= maxPending) return;
      const at = p.at.getTime();
      if ((times.get(p.serial) ?? -Infinity) < at) {
        times.set(p.serial, at);
        addresses.set(p.serial, p.address ?? undefined);
      }
    }
  };

  const writeWaiting = async (): Promise<number> => {
    let rows = 0;
    do {
      again = false;
      const batchTimes = times;
      const batchAddresses = addresses;
      times = new Map();
      addresses = new Map();
      const polls: Poll[] = [];
      for (const [serial, at] of batchTimes) polls.push({ serial, at: new Date(at), address: plainAddress(batchAddresses.get(serial)) });
      for (let i = 0; i < polls.length; i += maxBatch) {
        const part = polls.slice(i, i + maxBatch);
        try {
          rows += await store.recordPolls(part);
          remember(part);
        } catch (err) {
          keep(polls.slice(i));
          options.onError?.(err, times.size);
          return rows;
        }
      }
    } while (again);
    return rows;
  };

  const flush = (): Promise<number> => {
    if (writing) {
      again = true;
      return writing;
    }
    if (times.size === 0) return Promise.resolve(0);
    writing = writeWaiting().finally(() => {
      writing = undefined;
    });
    return writing;
  };

  // A failed write is reported through onError inside; nothing else can reject.
  const ignore = () => {};
  const flushQuietly = () => void flush().catch(ignore);

  return {
    note(serial, atMs, address) {
      const last = written.get(serial);
      if (last !== undefined && atMs - last < minIntervalMs) return;
      const before = times.get(serial);
      if (before === undefined || before <= atMs) {
        times.set(serial, atMs);
        addresses.set(serial, address);
      }
      if (times.size < flushAt) return;
      if (writing) again = true;
      else flushQuietly();
    },
    flush,
    pending: () => times.size,
    start() {
      if (timer) return;
      timer = setInterval(flushQuietly, intervalMs);
      timer.unref();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      await writing;
      await flush();
    },
  };
}
