/**
 * Start-up: config → deps → listeners. The API listener speaks TLS (`auto`: a certificate this
 * CA issues itself and renews at two thirds of its life; `files`; `off` behind a terminating
 * proxy); the public listener is plain HTTP. SIGTERM: stop accepting, finish in-flight
 * requests, close the database, exit within 10 s (docs/api.md "Running it").
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import type { Logger } from 'pino';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config.js';
import { createDeps, type Deps } from './deps.js';
import { createApp } from './http/app.js';

export interface Running {
  apiUrl: string;
  publicUrl: string;
  apiPort: number;
  publicPort: number;
  deps: Deps;
  /** Stops accepting, lets in-flight requests finish (at most graceMs), closes the database. */
  stop(graceMs?: number): Promise<void>;
}

function listen(server: Server | HttpsServer, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server | HttpsServer, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    force.unref();
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}

/**
 * Request headers may total 32 KiB on the API listener (node's default is 16 KiB), so that an
 * over-long bearer token reaches the authenticator's own limit (16 KiB) and gets a 401 problem
 * document rather than a bare 431.
 */
const MAX_HEADER_BYTES = 32 * 1024;

/**
 * Both listeners. Slow clients: a request's headers within 10 s (counted from the connection's
 * start, then from each request's first byte), the whole request (an unread body that node
 * discards included) within 30 s. Node enforces both only when it checks its connections, every
 * 30 s by default, so a client that never finished its headers held its connection 10-40 s;
 * checked every second, it is cut off at 10-11 s. The API listener's TLS handshake gets the same
 * 10 s (node's default is 120 s).
 */
const HTTP_OPTIONS = { headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1000 };
const API_OPTIONS = { ...HTTP_OPTIONS, maxHeaderSize: MAX_HEADER_BYTES };
const TLS_OPTIONS = { ...API_OPTIONS, handshakeTimeout: 10_000 };

const hostForUrl = (host: string) => (host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host);

export async function start(config: Config, options: { logger: Logger; clock?: Clock; databaseAttempts?: number }): Promise<Running> {
  const { logger } = options;
  const clock = options.clock ?? systemClock;
  const deps = await createDeps(config, { clock, logger, ...(options.databaseAttempts ? { databaseAttempts: options.databaseAttempts } : {}) });
  const timers: NodeJS.Timeout[] = [];
  try {
    await deps.crl.start();
    deps.auditSealer.start();
    deps.polls.start();
    deps.fleetMonitor.start();
    deps.fleetAlerts?.start();
    // autoCleanupIncoming off: the adapter's clean-up closes a keep-alive connection when a body
    // answered early (401, 415) has not been read within 500 ms of the answer, so a held-up
    // event loop (a long GC, CRL encoding) dropped the client's next request on it (found by the
    // fuzz suite). Node reads and discards an unread body itself (within requestTimeout; such a
    // body is at most limits.bodyBytes, checked first), and a body over the limit is answered
    // with Connection: close (http/problem.ts).
    const listenerOptions = { autoCleanupIncoming: false };
    const apiListener = getRequestListener(createApp(deps.app, 'api').fetch, listenerOptions);
    const publicListener = getRequestListener(createApp(deps.app, 'public').fetch, listenerOptions);
    const tls = config.server.tls;
    let api: Server | HttpsServer;
    if (tls.mode === 'off') {
      logger.warn('server.tls.mode is off: the API listener speaks plain HTTP and must sit behind a TLS-terminating proxy');
      api = createHttpServer(API_OPTIONS, apiListener);
    } else if (tls.mode === 'files') {
      api = createHttpsServer({ ...TLS_OPTIONS, cert: readFileSync(tls.certificate), key: readFileSync(tls.key) }, apiListener);
    } else {
      const first = await deps.issueServerCertificate(tls.names, tls.ttl);
      const https = createHttpsServer({ ...TLS_OPTIONS, cert: first.certificatePem, key: first.keyPem }, apiListener);
      api = https;
      const schedule = (notBefore: Date, notAfter: Date) => {
        const renewAt = notBefore.getTime() + ((notAfter.getTime() - notBefore.getTime()) * 2) / 3;
        const t = setTimeout(async () => {
          try {
            const next = await deps.issueServerCertificate(tls.names, tls.ttl);
            https.setSecureContext({ cert: next.certificatePem, key: next.keyPem });
            logger.info({ serial: next.serial, notAfter: next.notAfter.toISOString() }, 'renewed the API listener certificate');
            schedule(next.notBefore, next.notAfter);
          } catch (err) {
            logger.error({ err }, 'could not renew the API listener certificate; retrying in 60 s');
            schedule(new Date(clock.now().getTime() - 120_000), new Date(clock.now().getTime() + 60_000));
          }
        }, Math.max(1000, renewAt - clock.now().getTime()));
        t.unref();
        timers.push(t);
      };
      schedule(first.notBefore, first.notAfter);
    }
    const pub = createHttpServer(HTTP_OPTIONS, publicListener);
    for (const server of [api, pub]) {
      // Idle keep-alive connections: see server.keepAliveTimeout in config.ts. Between requests
      // headersTimeout is not running (it restarts at the next request's first byte), so it stays short.
      server.keepAliveTimeout = config.server.keepAliveTimeout * 1000;
    }
    const apiPort = await listen(api, config.server.host, config.server.port);
    const publicPort = await listen(pub, config.public.host, config.public.port);
    const prune = setInterval(() => {
      deps.prune().catch((err: unknown) => logger.warn({ err }, 'could not prune used token ids and rate counters'));
    }, 10 * 60_000);
    prune.unref();
    timers.push(prune);
    const scheme = tls.mode === 'off' ? 'http' : 'https';
    const running: Running = {
      apiUrl: `${scheme}://${hostForUrl(config.server.host)}:${apiPort}`,
      publicUrl: `http://${hostForUrl(config.public.host)}:${publicPort}`,
      apiPort,
      publicPort,
      deps,
      async stop(graceMs = 8000) {
        timers.forEach((t) => clearTimeout(t));
        await Promise.all([closeServer(api, graceMs), closeServer(pub, graceMs)]);
        await deps.close();
      },
    };
    logger.info({ api: running.apiUrl, public: running.publicUrl, database: deps.store.kind }, 'service-ca is listening');
    return running;
  } catch (err) {
    timers.forEach((t) => clearTimeout(t));
    await deps.close().catch(() => {});
    throw err;
  }
}
