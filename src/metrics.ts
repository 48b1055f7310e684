/**
 * Prometheus metrics (prom-client), one registry per app instance so that tests and several
 * apps in one process never share counters. Under node:cluster every worker keeps its own and
 * /metrics answers with all of them aggregated by the primary (src/cluster.ts): counters and
 * histograms are summed, and each gauge says how it aggregates.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { metricsSource } from './cluster.js';

export interface Metrics {
  registry: Registry;
  /** The text /metrics serves: this process's metrics, or every worker's under node:cluster. */
  exposition(): Promise<string>;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  issuances: Counter<'result' | 'issuer'>;
  revocations: Counter<'reason'>;
  crlGenerationSeconds: Histogram;
  crlEntries: Gauge;
  crlBytes: Gauge;
  crlNumber: Gauge;
  intermediateExpiry: Gauge;
  databasePool: Gauge<'state'>;
}

export function createMetrics(options: {
  intermediateNotAfter: () => Date;
  now: () => Date;
  /** The database pool's connections (absent on PGlite: the gauge stays empty). */
  poolStats?: () => { total: number; idle: number; waiting: number } | undefined;
  defaults?: boolean;
}): Metrics {
  const registry = new Registry();
  if (options.defaults !== false) collectDefaultMetrics({ register: registry });
  return {
    registry,
    exposition: metricsSource(registry),
    httpDuration: new Histogram({
      name: 'service_ca_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    issuances: new Counter({
      name: 'service_ca_issuances_total',
      help: 'Certificate issuance requests by result (issued or the error code) and token issuer',
      labelNames: ['result', 'issuer'],
      registers: [registry],
    }),
    revocations: new Counter({ name: 'service_ca_revocations_total', help: 'Certificates revoked, by reason', labelNames: ['reason'], registers: [registry] }),
    crlGenerationSeconds: new Histogram({
      name: 'service_ca_crl_generation_seconds',
      help: 'Time to read, build, sign and store a CRL',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16],
      registers: [registry],
    }),
    // Every worker serves the newest CRL within a poll of each other: the newest is the largest.
    crlEntries: new Gauge({ name: 'service_ca_crl_entries', help: 'Entries in the CRL being served', aggregator: 'max', registers: [registry] }),
    crlBytes: new Gauge({ name: 'service_ca_crl_bytes', help: 'Size of the CRL being served (DER bytes)', aggregator: 'max', registers: [registry] }),
    crlNumber: new Gauge({ name: 'service_ca_crl_number', help: 'Number of the CRL being served', aggregator: 'max', registers: [registry] }),
    intermediateExpiry: new Gauge({
      name: 'service_ca_intermediate_expiry_seconds',
      help: 'Seconds until the intermediate CA certificate expires',
      aggregator: 'min',
      registers: [registry],
      collect() {
        this.set((options.intermediateNotAfter().getTime() - options.now().getTime()) / 1000);
      },
    }),
    databasePool: new Gauge({
      name: 'service_ca_database_pool_connections',
      help: 'Database pool connections: open, in use, idle, and requests waiting for one',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const stats = options.poolStats?.();
        if (!stats) return;
        this.set({ state: 'open' }, stats.total);
        this.set({ state: 'in_use' }, stats.total - stats.idle);
        this.set({ state: 'idle' }, stats.idle);
        this.set({ state: 'waiting' }, stats.waiting);
      },
    }),
  };
}
