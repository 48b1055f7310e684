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
  /** Renewals refused because the presented certificate had already been renewed with another key. */
  renewalReuses: Counter;
  /** POSTs of the fleet webhook (monitor.webhook), by outcome: sent, retried, failed. */
  webhookNotifications: Counter<'result'>;
  acmeValidations: Counter<'type' | 'result'>;
  /** 1 while an issuer's tokens are verified with a key set past its jwksCacheMaxAge (its refetch fails). */
  jwksStale: Gauge<'issuer'>;
  jwksFetchFailures: Counter<'issuer'>;
  crlGenerationSeconds: Histogram;
  crlEntries: Gauge<'issuer'>;
  crlBytes: Gauge<'issuer'>;
  crlNumber: Gauge<'issuer'>;
  /** thisUpdate of the CRL being served, Unix seconds: its age is time() minus this. */
  crlLastGenerated: Gauge<'issuer'>;
  /** Database checks for a newer CRL (polls, notifications, requests naming a newer ETag), coalesced. */
  crlChecks: Counter;
  intermediateExpiry: Gauge<'issuer' | 'active'>;
  databasePool: Gauge<'state'>;
  publicPool: Gauge<'state'>;
  renewalInfoCacheEntries: Gauge;
  /** Readiness checks run (a database ping and a signature each); /readyz answers in between come from the last one. */
  readinessChecks: Counter<'result'>;
  /** Renewal-info lookups: `hit` from memory, `shared` a database read already in flight, `miss` a read of its own, `unknown` a read that found nothing. */
  renewalInfoLookups: Counter<'result'>;
  /** Group commit (store/group-commit.ts): batches of issuances written, and the issuances in them. */
  issuanceBatches: Counter;
  issuancesBatched: Counter;
  /** Identities by fleet state (docs/api.md "Fleet"), from the shared counts (setFleet). */
  identities: Gauge<'state'>;
  /** Identities by the severity of their certificate's expiry, likewise. */
  certificatesExpiring: Gauge<'severity'>;
  /** Each configured intermediate's notAfter, Unix seconds, by issuer key id and whether it is the active one. */
  intermediateExpiration: Gauge<'issuer' | 'active'>;
  /** Sets the two fleet gauges from one set of counts. */
  setFleet(counts: { states: Record<string, number>; severities: Record<string, number> }): void;
}

/** A configured intermediate as the expiry gauges label it. */
export interface IssuerFacts {
  keyId: string;
  notAfter: Date;
  active: boolean;
}

export function createMetrics(options: {
  issuers: () => readonly IssuerFacts[];
  now: () => Date;
  /** The database pool's connections (absent on PGlite: the gauge stays empty). */
  poolStats?: () => { total: number; idle: number; waiting: number } | undefined;
  /** The public lookups' own small pool (renewal-info), likewise. */
  publicPoolStats?: () => { total: number; idle: number; waiting: number } | undefined;
  /** Entries in the renewal-info cache. */
  renewalInfoCacheSize?: () => number;
  /** Batches of issuances written so far and the issuances in them (the store's group commit). */
  groupCommitStats?: () => { batches: number; items: number };
  defaults?: boolean;
}): Metrics {
  const registry = new Registry();
  if (options.defaults !== false) collectDefaultMetrics({ register: registry });
  // Every process of an instance reads the same counts, computed once for the whole database
  // (policy/fleet.ts createFleetMonitor), so the instance reports one worker's values ('first'),
  // all labels from the same worker: summing would count the fleet once per worker.
  const identities = new Gauge({
    name: 'service_ca_identities',
    help: 'Identities by fleet state: healthy, renewalDue, missedRenewal, expired, revoked (recomputed every monitor.refresh)',
    labelNames: ['state'],
    aggregator: 'first',
    registers: [registry],
  });
  const certificatesExpiring = new Gauge({
    name: 'service_ca_certificates_expiring',
    help: 'Identities by the severity of their certificate\'s expiry: none, warning (past monitor.warningAt of its lifetime), critical (past monitor.criticalAt, or less than monitor.criticalRemaining left, or expired)',
    labelNames: ['severity'],
    aggregator: 'first',
    registers: [registry],
  });
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
    acmeValidations: new Counter({
      name: 'service_ca_acme_validations_total',
      help: 'ACME challenge validations finished by this process, by challenge type and result (valid, invalid)',
      labelNames: ['type', 'result'],
      registers: [registry],
    }),
    webhookNotifications: new Counter({
      name: 'service_ca_webhook_notifications_total',
      help: 'Attempts to POST fleet alerts to monitor.webhook, by result: sent (answered 2xx), retried (failed, another attempt follows), failed (the last attempt failed; tried again at the next check)',
      labelNames: ['result'],
      registers: [registry],
    }),
    renewalReuses: new Counter({
      name: 'service_ca_renewal_reuse_total',
      help: 'Renewals refused because the presented certificate was already renewed with another key (its key may be compromised: alert on any)',
      registers: [registry],
    }),
    jwksStale: new Gauge({
      name: 'service_ca_jwks_stale',
      help: '1 while an issuer\'s tokens are verified with its last good key set, past jwksCacheMaxAge, because refetching it fails (used for at most jwksStaleTtl)',
      labelNames: ['issuer'],
      aggregator: 'max',
      registers: [registry],
    }),
    jwksFetchFailures: new Counter({
      name: 'service_ca_jwks_fetch_failures_total',
      help: 'Failed fetches of an issuer\'s key set or OIDC discovery document',
      labelNames: ['issuer'],
      registers: [registry],
    }),
    crlGenerationSeconds: new Histogram({
      name: 'service_ca_crl_generation_seconds',
      help: 'Time to read, build, sign and store a CRL',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16],
      registers: [registry],
    }),
    // Every worker of an instance serves the same CRL once all hold it (src/crl/relay.ts): the newest is the largest.
    // One series per issuer (label `issuer`: its key id), each issuer's CRL numbered on its own.
    crlEntries: new Gauge({ name: 'service_ca_crl_entries', help: 'Entries in the CRL being served, by issuer key id', labelNames: ['issuer'], aggregator: 'max', registers: [registry] }),
    crlBytes: new Gauge({ name: 'service_ca_crl_bytes', help: 'Size of the CRL being served (DER bytes), by issuer key id', labelNames: ['issuer'], aggregator: 'max', registers: [registry] }),
    crlNumber: new Gauge({ name: 'service_ca_crl_number', help: 'Number of the CRL being served, by issuer key id', labelNames: ['issuer'], aggregator: 'max', registers: [registry] }),
    crlLastGenerated: new Gauge({
      name: 'service_ca_crl_last_generated_timestamp_seconds',
      help: 'thisUpdate of the CRL being served, Unix seconds, by issuer key id (every worker serves the same CRL)',
      labelNames: ['issuer'],
      aggregator: 'max',
      registers: [registry],
    }),
    crlChecks: new Counter({
      name: 'service_ca_crl_checks_total',
      help: 'Database checks for a CRL newer than the one held (polls, notifications, conditional requests naming a newer ETag; shared and spaced)',
      registers: [registry],
    }),
    intermediateExpiry: new Gauge({
      name: 'service_ca_intermediate_expiry_seconds',
      help: 'Seconds until each configured intermediate CA certificate expires, by issuer key id and active (true for the one signing new certificates)',
      labelNames: ['issuer', 'active'],
      aggregator: 'min',
      registers: [registry],
      collect() {
        for (const i of options.issuers()) this.set({ issuer: i.keyId, active: String(i.active) }, (i.notAfter.getTime() - options.now().getTime()) / 1000);
      },
    }),
    databasePool: poolGauge(registry, 'service_ca_database_pool_connections', 'Database pool connections: open, in use, idle, and requests waiting for one', options.poolStats),
    publicPool: poolGauge(
      registry,
      'service_ca_database_public_pool_connections',
      'The public lookups\' own database pool (renewal-info): open, in use, idle, and requests waiting for one',
      options.publicPoolStats,
    ),
    readinessChecks: new Counter({
      name: 'service_ca_readiness_checks_total',
      help: 'Readiness checks run (a database ping and a CA key signature each), by result; /readyz answers in between reuse the last one',
      labelNames: ['result'],
      registers: [registry],
    }),
    renewalInfoLookups: new Counter({
      name: 'service_ca_renewal_info_lookups_total',
      help: 'Renewal-info lookups: hit (from memory), shared (a database read already in flight), miss (a database read of its own), unknown (a read that found no such serial)',
      labelNames: ['result'],
      registers: [registry],
    }),
    issuanceBatches: totalOf(registry, 'service_ca_issuance_batches_total', 'Transactions that recorded issuances (group commit): the mean batch is service_ca_issuances_batched_total over this', () => options.groupCommitStats?.().batches),
    issuancesBatched: totalOf(registry, 'service_ca_issuances_batched_total', 'Issuances written in those transactions, refused rows (a replayed token) included', () => options.groupCommitStats?.().items),
    identities,
    certificatesExpiring,
    intermediateExpiration: new Gauge({
      name: 'service_ca_intermediate_expiration_timestamp_seconds',
      help: 'When each configured intermediate CA certificate expires (its notAfter), Unix seconds, by issuer key id and active (true for the one signing new certificates)',
      labelNames: ['issuer', 'active'],
      aggregator: 'max',
      registers: [registry],
      collect() {
        for (const i of options.issuers()) this.set({ issuer: i.keyId, active: String(i.active) }, i.notAfter.getTime() / 1000);
      },
    }),
    setFleet(counts) {
      for (const [state, n] of Object.entries(counts.states)) identities.set({ state }, n);
      for (const [severity, n] of Object.entries(counts.severities)) certificatesExpiring.set({ severity }, n);
    },
    renewalInfoCacheEntries: new Gauge({
      name: 'service_ca_renewal_info_cache_entries',
      help: 'Certificates held in the renewal-info cache',
      registers: [registry],
      collect() {
        this.set(options.renewalInfoCacheSize?.() ?? 0);
      },
    }),
  };
}

/** A counter whose total is kept elsewhere and read at each scrape. */
function totalOf(registry: Registry, name: string, help: string, read: () => number | undefined): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const total = read();
      if (total === undefined) return;
      this.reset();
      this.inc(total);
    },
  });
}

type PoolStatsReader = (() => { total: number; idle: number; waiting: number } | undefined) | undefined;

/** A pool's connections by state, read at each scrape (absent on PGlite: the gauge stays empty). */
function poolGauge(registry: Registry, name: string, help: string, read: PoolStatsReader): Gauge<'state'> {
  return new Gauge({
    name,
    help,
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const stats = read?.();
      if (!stats) return;
      this.set({ state: 'open' }, stats.total);
      this.set({ state: 'in_use' }, stats.total - stats.idle);
      this.set({ state: 'idle' }, stats.idle);
      this.set({ state: 'waiting' }, stats.waiting);
    },
  });
}
