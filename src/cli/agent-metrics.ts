/**
 * The agent's own Prometheus endpoint (--metrics-addr HOST:PORT, GET /metrics), so that a monitor
 * can tell when a certificate expires and when the agent last renewed, without reading files:
 *
 *   service_ca_agent_certificate_expiry_timestamp_seconds  notAfter of the certificate in place
 *   service_ca_agent_last_renewal_timestamp_seconds        when the last attempt to obtain one ended
 *   service_ca_agent_last_success_timestamp_seconds        when the last one was obtained
 *   service_ca_agent_renewals_total{result}                attempts, by result (success, failure)
 *
 * An attempt is one request for a certificate (the first included); polling renewal-info is not
 * one. At start, a certificate already in place counts as the last success at its notBefore, so
 * that a restarted agent does not look as if it had never renewed. A private Registry: nothing
 * else in the process registers here.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';

export interface AgentMetrics {
  registry: Registry;
  /** The certificate in place: found at start (`obtained` false) or just obtained. */
  certificate(c: { notBefore: Date; notAfter: Date }, obtained: boolean): void;
  /** One attempt to obtain a certificate ended, now. */
  attempt(result: 'success' | 'failure'): void;
}

const seconds = (ms: number) => Math.floor(ms / 1000);

export function createAgentMetrics(): AgentMetrics {
  const registry = new Registry();
  const expiry = new Gauge({ name: 'service_ca_agent_certificate_expiry_timestamp_seconds', help: 'notAfter of the certificate in place, Unix seconds (0: none yet)', registers: [registry] });
  const lastAttempt = new Gauge({ name: 'service_ca_agent_last_renewal_timestamp_seconds', help: 'When the last attempt to obtain a certificate ended, Unix seconds (0: none since start)', registers: [registry] });
  const lastSuccess = new Gauge({
    name: 'service_ca_agent_last_success_timestamp_seconds',
    help: 'When the last certificate was obtained, Unix seconds (at start: the notBefore of the certificate in place; 0: none)',
    registers: [registry],
  });
  const attempts = new Counter({ name: 'service_ca_agent_renewals_total', help: 'Attempts to obtain a certificate, by result', labelNames: ['result'] as const, registers: [registry] });
  attempts.inc({ result: 'success' }, 0);
  attempts.inc({ result: 'failure' }, 0);
  return {
    registry,
    certificate(c, obtained) {
      expiry.set(seconds(c.notAfter.getTime()));
      if (!obtained) lastSuccess.set(seconds(c.notBefore.getTime()));
    },
    attempt(result) {
      const now = seconds(Date.now());
      lastAttempt.set(now);
      attempts.inc({ result });
      if (result === 'success') lastSuccess.set(now);
    },
  };
}

/** HOST:PORT ([v6]:PORT for IPv6); undefined when it is not one. */
export function parseListenAddress(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: (m[1] ?? m[2])!, port };
}

/** Serves GET /metrics (anything else: 404) until closed; rejects when the address cannot be bound. */
export function serveMetrics(registry: Registry, address: { host: string; port: number }, logger: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      () => res.writeHead(500, { 'Content-Type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.removeListener('error', reject);
      const bound = server.address() as AddressInfo;
      logger.info({ address: bound.address, port: bound.port }, 'serving metrics on /metrics');
      resolve(server);
    });
  });
}
