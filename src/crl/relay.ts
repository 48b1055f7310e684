/**
 * The cluster primary's part in CRL publication: one instance, all of its worker processes,
 * never goes back (docs/api.md "CRLs"). Each worker reports every CRL it stages (generated, heard of
 * by NOTIFY, polled, or loaded for a request). The primary relays a number higher than any seen
 * to every worker that lacks it (each loads it from the database and reports back), and once
 * every worker holds it, permits all of them to serve it from one instant a little ahead
 * (SWITCH_DELAY_MS), so that a worker a few milliseconds slower to read the message does not
 * answer with the older CRL after a sibling answered with the newer one. A worker that does not
 * report within `waitMs` (stuck, or its database connection failing) cannot stall publication:
 * the permit goes out anyway, the laggard serves the newer CRL as soon as it holds it, and its
 * requests wait for that load meanwhile (CrlPublisher.snapshot).
 *
 * A worker that joins (a replacement after a crash) counts from its first report on; until the
 * permit covers what it holds it serves nothing and does not listen yet.
 *
 * This module holds the rule; src/cluster.ts carries the messages over node:cluster.
 */

export const CRL_STAGED = 'service-ca:crl-staged';
export const CRL_LOAD = 'service-ca:crl-load';
export const CRL_SERVE = 'service-ca:crl-serve';

/** Each message names its issuer (key id): every issuer's CRLs are numbered and relayed on their own. */
export type CrlMessage =
  | { type: typeof CRL_STAGED; issuer: string; number: number; waitMs: number }
  | { type: typeof CRL_LOAD; issuer: string; number: number }
  | { type: typeof CRL_SERVE; issuer: string; number: number; at: number };

/** A message of CrlMessage's shape without its issuer: one relay handles one issuer. */
export type IssuerCrlMessage = CrlMessage extends infer M ? (M extends CrlMessage ? Omit<M, 'issuer'> : never) : never;

/**
 * How far ahead the switch to a newer CRL is set. The primary writes the permits to every
 * worker's channel in one go, and a worker reads its message within a millisecond unless its
 * event loop is busy (encoding or signing a large CRL); 50 ms covers such a pause and adds
 * little to a revocation's way to the CRL (crl.maxDelay is seconds).
 */
const SWITCH_DELAY_MS = 50;

export interface CrlRelayTransport {
  send(worker: number, message: IssuerCrlMessage): void;
  /** Wall-clock ms since the epoch: the workers compare the switch instant with their own. */
  now(): number;
  warn(details: Record<string, unknown>, message: string): void;
}

export interface CrlRelay {
  /** Worker `worker` holds CRL `number`. */
  staged(worker: number, number: number, waitMs: number): void;
  /** Worker `worker` exited. */
  left(worker: number): void;
  stop(): void;
}

export function createCrlRelay(transport: CrlRelayTransport): CrlRelay {
  /** The highest number each worker has reported holding. */
  const held = new Map<number, number>();
  let target = 0;
  let permitted = 0;
  let waitMs = 1000;
  let timer: NodeJS.Timeout | undefined;

  const arm = () => {
    if (timer || target <= permitted) return;
    timer = setTimeout(() => {
      timer = undefined;
      if (target <= permitted) return;
      const laggards = [...held].filter(([, n]) => n < target).map(([w]) => w);
      transport.warn({ number: target, workers: laggards, waitMs }, 'workers did not load the newest CRL in time; serving it without them');
      permit(target);
    }, waitMs);
    timer.unref();
  };

  function permit(number: number): void {
    permitted = number;
    if (timer) clearTimeout(timer);
    timer = undefined;
    const at = transport.now() + SWITCH_DELAY_MS;
    for (const worker of held.keys()) transport.send(worker, { type: CRL_SERVE, number, at });
  }

  const settle = () => {
    if (target > permitted && [...held.values()].every((n) => n >= target)) permit(target);
    else arm();
  };

  return {
    staged(worker, number, wait) {
      if (!Number.isSafeInteger(number) || number < 1) return;
      if (Number.isFinite(wait) && wait > 0) waitMs = wait;
      const joined = !held.has(worker);
      const holds = Math.max(held.get(worker) ?? 0, number);
      held.set(worker, holds);
      if (holds > target) {
        target = holds;
        for (const [w, n] of held) if (n < target) transport.send(w, { type: CRL_LOAD, number: target });
      } else if (holds < target) {
        transport.send(worker, { type: CRL_LOAD, number: target });
      }
      // A newcomer learns what its siblings serve; it serves once it holds that CRL.
      if (joined && permitted > 0) transport.send(worker, { type: CRL_SERVE, number: permitted, at: transport.now() });
      settle();
    },
    left(worker) {
      if (!held.delete(worker)) return;
      settle();
    },
    stop() {
      if (timer) clearTimeout(timer);
      timer = undefined;
    },
  };
}
