/**
 * The audit sealer: about once a second, links the rows whose transactions have finished into
 * the hash chain (src/audit/chain.ts), writing one seal per batch and never touching the rows.
 * The store takes an advisory lock, so across replicas and workers one seals at a time and the
 * chain has one order. Sealing apart from the actions keeps issuances from queueing on one
 * chain-head row lock. Each sealing logs the new head hash: copies of it in the log store anchor
 * the chain outside the database, so that even a rewrite of the whole chain shows.
 */
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import { chainHash, type AuditEvent } from './chain.js';

/** Most rows in one seal: bounds a seal's arrays, and what a page of GET /v1/audit reads per row. */
const BATCH = 5000;

/** Chain links for rows in sealing order, from the head. */
export function link(head: { seq: number; hash: Buffer }, rows: (AuditEvent & { id: number })[]) {
  let prev = head.hash;
  let seq = head.seq;
  return rows.map((row) => {
    const hash = chainHash(prev, row);
    const linked = { id: row.id, chainSeq: ++seq, prevHash: prev, hash };
    prev = hash;
    return linked;
  });
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
