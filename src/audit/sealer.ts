/**
 * The audit sealer: about once a second, links the rows whose transactions have finished into
 * the hash chain (src/audit/chain.ts), writing one seal per batch and never touching the rows.
 * The store takes an advisory lock, so across replicas and workers one seals at a time and the
 * chain has one order. Sealing apart from the actions keeps issuances from queueing on one
 * chain-head row lock. Each sealing logs the new head hash: copies of it in the log store anchor
 * the chain outside the database, so that even a rewrite of the whole chain shows.
 */
import { setImmediate } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { ChainLink } from '../store/audit.js';
import type { Store } from '../store/store.js';
import { chainHash, type AuditEvent } from './chain.js';

/**
 * Most rows in one seal: bounds a seal's arrays, what a page of GET /v1/audit reads per row, and
 * how long one seal holds the event loop. Reading, linking and hashing a seal's rows is
 * synchronous work in the service, ~20 µs a row: at 5,000 rows a seal of a second's issuances
 * (2,200 at full load) stopped one worker for ~40 ms every second, and that was the p99 of
 * issuance (docs/performance.md). Seals of 500, linked LINK_SLICE rows per turn of the
 * event loop, hold it a few ms at a time; the next seal runs after the database's answer.
 */
const BATCH = 500;

/** Rows linked in one turn of the event loop: hashing a seal never holds a worker for long. */
const LINK_SLICE = 100;

/** Chain links for rows in sealing order, from the head; yields to the event loop every LINK_SLICE rows. */
export async function link(head: { seq: number; hash: Buffer }, rows: (AuditEvent & { id: number })[]) {
  let prev = head.hash;
  let seq = head.seq;
  const linked: ChainLink[] = [];
  for (const [i, row] of rows.entries()) {
    if (i > 0 && i % LINK_SLICE === 0) await setImmediate();
    const hash = chainHash(prev, row);
    linked.push({ id: row.id, chainSeq: ++seq, prevHash: prev, hash });
    prev = hash;
  }
  return linked;
}

export function createAuditSealer(deps: { store: Store; logger: Logger; intervalMs?: number }) {
  const { store, logger } = deps;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let running: Promise<number> | undefined;

  async function sealAll(): Promise<number> {
    let total = 0;
    for (;;) {
      const r = await store.sealAudit(BATCH, link);
      total += r.sealed;
      if (r.sealed > 0) logger.info({ sealed: r.sealed, seal: r.seal, seq: r.seq, head: r.hash.toString('hex') }, 'sealed audit rows');
      if (r.sealed < BATCH) return total;
    }
  }

  /** Seals what waits now (one run at a time); how many rows. */
  function sealNow(): Promise<number> {
    running ??= sealAll().finally(() => {
      running = undefined;
    });
    return running;
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      sealNow()
        .catch((err: unknown) => logger.warn({ err }, 'could not seal audit rows; retrying'))
        .finally(schedule);
    }, deps.intervalMs ?? 1000);
    timer.unref();
  }

  return {
    start: schedule,
    sealNow,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}
