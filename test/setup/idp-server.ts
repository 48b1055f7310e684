/**
 * A local identity provider over plain HTTP on 127.0.0.1: serves JSON documents (a JWKS, an
 * OIDC discovery document) at paths a test sets, and records every request it receives, so that
 * tests can assert how often the CA fetched (caching, one fetch in flight) or that it never
 * fetched at all (`jku`, `x5u` pointing here). A path can be made slow (so that concurrent
 * fetches overlap) or failing (an outage).
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface IdpRequest {
  method: string;
  path: string;
}

export interface IdpServer {
  /** Base URL, e.g. http://127.0.0.1:40123 (no trailing slash). */
  url: string;
  /** Every request received, in order. */
  requests: IdpRequest[];
  /** Serves body as JSON at path (GET); replaces what was there (a failure included). */
  serve(path: string, body: unknown): void;
  /** Answers path with this status and no document from now on, until serve() is called again. */
  fail(path: string, status: number): void;
  /** Holds each answer for path this long (ms) before sending it. */
  delay(path: string, ms: number): void;
  /** How many requests asked for path (any method, query ignored). */
  count(path: string): number;
  close(): Promise<void>;
}

export async function startIdpServer(): Promise<IdpServer> {
  const documents = new Map<string, string>();
  const failures = new Map<string, number>();
  const delays = new Map<string, number>();
  const requests: IdpRequest[] = [];
  const pathOf = (req: IncomingMessage) => new URL(req.url ?? '/', 'http://idp.invalid').pathname;
  const server = createServer((req, res) => {
    const path = pathOf(req);
    requests.push({ method: req.method ?? '', path });
    req.resume();
    const answer = () => {
      const failure = failures.get(path);
      const doc = req.method === 'GET' ? documents.get(path) : undefined;
      if (failure !== undefined || doc === undefined) {
        res.writeHead(failure ?? 404, { 'Content-Type': 'text/plain' }).end('not available');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(doc);
    };
    const ms = delays.get(path);
    if (ms) setTimeout(answer, ms);
    else answer();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    serve(path, body) {
      documents.set(path, JSON.stringify(body));
      failures.delete(path);
    },
    fail(path, status) {
      failures.set(path, status);
    },
    delay(path, ms) {
      delays.set(path, ms);
    },
    count(path) {
      return requests.filter((r) => r.path === path).length;
    },
    close() {
      return new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
