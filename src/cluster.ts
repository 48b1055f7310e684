/**
 * Using every core: with Postgres, `serve` forks `server.workers` processes (node:cluster) that
 * share the listening sockets. Each worker is a whole instance (app, signer, database pool, CRL
 * publisher), exactly like one replica of several on one database, so nothing new needs
 * coordinating: serials, token ids, CRL numbers and generation already go through Postgres
 * (constraints, advisory locks). The embedded database belongs to one process, so PGlite
 * always runs a single process.
 *
 * The primary only supervises: it restarts a worker that dies, stops them all on SIGTERM or
 * SIGINT (each finishes its in-flight requests), gives up when workers keep failing at start-up,
 * and answers the workers' requests for cluster-wide metrics (prom-client's AggregatorRegistry),
 * so that /metrics on any worker counts every worker's requests. One thing the workers of an
 * instance must agree on besides the database: which CRL they serve, so that a client whose
 * requests land on different workers never sees the CRL go back (docs/api.md "CRLs"). The primary
 * relays their CRL news (src/crl/relay.ts holds the rule; workerCrlCoordination the worker side).
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { AggregatorRegistry, type Registry } from 'prom-client';
import type { Config } from './config.js';
import type { CrlCoordination } from './crl/publisher.js';
import { CRL_LOAD, CRL_SERVE, CRL_STAGED, createCrlRelay, type CrlMessage, type CrlRelay } from './crl/relay.js';

const METRICS_REQUEST = 'service-ca:metrics-request';
const METRICS_RESPONSE = 'service-ca:metrics-response';
const READY = 'service-ca:ready';

/** Most workers `auto` starts: beyond this, connections and CRL copies cost more than they give. */
const AUTO_MAX = 8;

/** How many processes serve: 1 on PGlite, else the configured count (`auto`: one per core). */
export function workerCount(config: Config): number {
  if (!config.database.url) return 1;
  const w = config.server.workers;
  return w === 'auto' ? Math.min(AUTO_MAX, availableParallelism()) : w;
}

export const isWorker = (): boolean => cluster.isWorker;

/** The worker's number (1, 2, …) for its log lines; undefined outside a cluster. */
export const workerId = (): number | undefined => (cluster.isWorker ? cluster.worker?.id : undefined);

/** In a worker: tells the primary that this worker is serving. */
export function reportReady(): void {
  if (cluster.isWorker) process.send?.({ type: READY });
}

/**
 * In a worker: the CRL publisher's link to its siblings through the primary (crl/relay.ts);
 * undefined outside a cluster, where a process serves what it stages.
 */
export function workerCrlCoordination(issuer: string): CrlCoordination | undefined {
  if (!cluster.isWorker) return undefined;
  const send = (message: CrlMessage) => {
    if (cluster.worker?.isConnected()) process.send?.(message);
  };
  return {
    staged: (number, waitMs) => send({ type: CRL_STAGED, issuer, number, waitMs }),
    subscribe(handlers) {
      process.on('message', (msg: Partial<CrlMessage> | undefined) => {
        if (typeof msg?.number !== 'number' || msg.issuer !== issuer) return;
        if (msg.type === CRL_LOAD) handlers.load(msg.number);
        else if (msg.type === CRL_SERVE && typeof msg.at === 'number') handlers.serve(msg.number, msg.at);
      });
    },
  };
}

/**
 * In a worker that has stopped: closes the channel to the primary, so the process can end with
 * its own exit code. (A worker whose primary dies is ended by node itself at once.)
 */
export function leaveCluster(): void {
  if (cluster.isWorker && cluster.worker?.isConnected()) cluster.worker.disconnect();
}

/**
 * The metrics to serve from /metrics: this process's registry alone, or, in a worker, every
 * worker's metrics aggregated by the primary.
 */
export function metricsSource(registry: Registry): () => Promise<string> {
  if (!cluster.isWorker) return () => registry.metrics();
  // prom-client answers the primary's requests only once an AggregatorRegistry was constructed
  // in the worker (its constructor adds the listener), and then reads the registries set here.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const pending = new Map<number, (text: string) => void>();
  let next = 0;
  process.on('message', (msg: { type?: string; id?: number; text?: string }) => {
    if (msg?.type !== METRICS_RESPONSE || msg.id === undefined) return;
    pending.get(msg.id)?.(msg.text ?? '');
    pending.delete(msg.id);
  });
  return () =>
    new Promise<string>((resolve, reject) => {
      const id = next++;
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error('the cluster primary did not answer for metrics'));
      }, 5000);
      pending.set(id, (text) => {
        clearTimeout(timer);
        resolve(text);
      });
      process.send?.({ type: METRICS_REQUEST, id });
    });
}

/**
 * Runs the primary: forks `count` workers and supervises them until a signal stops them all.
 * Resolves with the process exit code.
 */
export function runPrimary(count: number, logger: Logger): Promise<number> {
  const aggregator = new AggregatorRegistry();
  // One relay per issuer, made when a worker first reports one of its CRLs.
  const crlRelays = new Map<string, CrlRelay>();
  const crlRelay = (issuer: string): CrlRelay => {
    let relay = crlRelays.get(issuer);
    if (!relay) {
      relay = createCrlRelay({
        send(id, message) {
          const w = cluster.workers?.[id];
          if (w?.isConnected()) w.send({ ...message, issuer });
        },
        now: () => Date.now(),
        warn: (details, message) => logger.warn({ issuer, ...details }, message),
      });
      crlRelays.set(issuer, relay);
    }
    return relay;
  };
  const startedAt = new Map<Worker, number>();
  let stopping = false;
  let startupFailures = 0;
  let everReady = false;

  const fork = () => {
    const worker = cluster.fork();
    startedAt.set(worker, Date.now());
    worker.on('message', (msg: { type?: string; id?: number; issuer?: string; number?: number; waitMs?: number }) => {
      if (msg?.type === CRL_STAGED && typeof msg.number === 'number' && typeof msg.issuer === 'string') {
        crlRelay(msg.issuer).staged(worker.id, msg.number, msg.waitMs ?? 0);
      } else if (msg?.type === READY) {
        everReady = true;
        logger.info({ worker: worker.id, pid: worker.process.pid }, 'worker serving');
      } else if (msg?.type === METRICS_REQUEST) {
        aggregator.clusterMetrics().then(
          (text) => worker.isConnected() && worker.send({ type: METRICS_RESPONSE, id: msg.id, text }),
          (err: unknown) => {
            logger.warn({ err }, 'could not aggregate worker metrics');
            if (worker.isConnected()) worker.send({ type: METRICS_RESPONSE, id: msg.id, text: '' });
          },
        );
      }
    });
  };

  return new Promise<number>((resolve) => {
    let exitCode = 0;
    const remaining = () => Object.values(cluster.workers ?? {}).filter((w) => w && !w.isDead()).length;
    cluster.on('exit', (worker, code, signal) => {
      const lived = Date.now() - (startedAt.get(worker) ?? Date.now());
      startedAt.delete(worker);
      for (const relay of crlRelays.values()) relay.left(worker.id);
      if (stopping) {
        // A worker still starting when the signal came has no request to finish: SIGTERM's
        // default action ending it is a clean stop too.
        if (code !== 0 && signal !== 'SIGTERM') exitCode = 1;
        if (remaining() === 0) resolve(exitCode);
        return;
      }
      if (!everReady) {
        // Nothing has served yet: the configuration, the key or the database is wrong, and
        // every worker would fail the same way (each logged why).
        logger.fatal({ worker: worker.id, code, signal }, 'a worker failed to start; stopping');
        stopping = true;
        exitCode = 1;
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
        if (remaining() === 0) resolve(1);
        return;
      }
      logger.error({ worker: worker.id, code, signal, livedMs: lived }, 'worker exited; starting another');
      // A replacement that cannot start either (the database gone for minutes, the key file
      // removed) is tried again with backoff, and after repeated failures the primary gives up.
      startupFailures = lived < 10_000 ? startupFailures + 1 : 0;
      if (startupFailures > count * 5) {
        logger.fatal('workers keep failing; stopping');
        stopping = true;
        exitCode = 1;
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
        if (remaining() === 0) resolve(1);
        return;
      }
      setTimeout(fork, Math.min(5000, 250 * 2 ** Math.min(startupFailures, 5)));
    });

    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      for (const relay of crlRelays.values()) relay.stop();
      logger.info({ signal, workers: Object.keys(cluster.workers ?? {}).length }, 'stopping workers: finishing in-flight requests');
      const hard = setTimeout(() => {
        logger.error('workers took too long to stop; exiting');
        for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGKILL');
        resolve(1);
      }, 9500);
      hard.unref();
      if (remaining() === 0) resolve(exitCode);
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));

    logger.info({ workers: count }, 'starting workers');
    for (let i = 0; i < count; i++) fork();
  });
}
