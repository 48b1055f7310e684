/**
 * Prometheus metrics (prom-client), one registry per app instance so that tests and several
 * apps in one process never share counters.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  issuances: Counter<'result' | 'issuer'>;
  revocations: Counter<'reason'>;
  crlGenerationSeconds: Histogram;
  crlEntries: Gauge;
  crlBytes: Gauge;
  crlNumber: Gauge;
  intermediateExpiry: Gauge;
}

export function createMetrics(options: { intermediateNotAfter: () => Date; now: () => Date; defaults?: boolean }): Metrics {
  const registry = new Registry();
  if (options.defaults !== false) collectDefaultMetrics({ register: registry });
  return {
    registry,
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
    crlEntries: new Gauge({ name: 'service_ca_crl_entries', help: 'Entries in the newest CRL generated here', registers: [registry] }),
    crlBytes: new Gauge({ name: 'service_ca_crl_bytes', help: 'Size of the newest CRL generated here (DER bytes)', registers: [registry] }),
    crlNumber: new Gauge({ name: 'service_ca_crl_number', help: 'Number of the newest CRL generated here', registers: [registry] }),
    intermediateExpiry: new Gauge({
      name: 'service_ca_intermediate_expiry_seconds',
      help: 'Seconds until the intermediate CA certificate expires',
      registers: [registry],
      collect() {
        this.set((options.intermediateNotAfter().getTime() - options.now().getTime()) / 1000);
      },
    }),
  };
}
