/**
 * A local identity provider over plain HTTP on 127.0.0.1: serves JSON documents (a JWKS, an
 * OIDC discovery document) at paths a test sets, and records every request it receives, so that
 * tests can assert how often the CA fetched (caching) or that it never fetched at all (`jku`,
 * `x5u` pointing here).
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
  /** Serves body as JSON at path (GET); replaces what was there. */
  serve(path: string, body: unknown): void;
  /** How many requests asked for path (any method, query ignored). */
  count(path: string): number;
  close(): Promise<void>;
}

export async function startIdpServer(): Promise<IdpServer> {
  const documents = new Map<string, string>();
  const requests: IdpRequest[] = [];
  const pathOf = (req: IncomingMessage) => new URL(req.url ?? '/', 'http://idp.invalid').pathname;
  const server = createServer((req, res) => {
    const path = pathOf(req);
    requests.push({ method: req.method ?? '', path });
    req.resume();
    const doc = req.method === 'GET' ? documents.get(path) : undefined;
    if (doc === undefined) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }).end(doc);
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
