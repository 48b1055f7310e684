/**
 * http-01 (RFC 8555 §8.3): GET http://<name>:<acme.challengePorts.http01>/.well-known/acme-challenge/<token>
 * must answer 200 with the key authorization (trailing whitespace ignored). Redirects are
 * followed, at most MAX_REDIRECTS, only to http or https on the challenge ports and only to hosts
 * `mayFollow` allows (the identity's policy: the CA never fetches from a host outside it). The
 * name is resolved by our resolver and the connection made to that address, so that what was
 * checked is what is connected to. Certificates of https redirect targets are not checked: the
 * answer's content is the proof, as for every ACME server.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { CaError } from '../../../errors.js';
import type { NameResolver } from './resolve.js';

const MAX_REDIRECTS = 10;
const MAX_BODY = 8 * 1024;

export interface Http01Options {
  resolver: NameResolver;
  port: number;
  /** The port an https redirect may name (the tls-alpn-01 port). */
  httpsPort: number;
  timeoutMs: number;
  /** Whether a redirect may lead to this host. */
  mayFollow(host: string): boolean;
  /** The attempt's deadline: aborting closes the connection in flight. */
  signal: AbortSignal;
}

interface Answer {
  status: number;
  location: string | undefined;
  body: string;
}

function fetchOnce(url: URL, address: string, timeoutMs: number, signal: AbortSignal): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const https = url.protocol === 'https:';
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const options = {
      host: address,
      port: url.port || (https ? 443 : 80),
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers: { Host: url.host, 'User-Agent': 'service-ca ACME validation', Accept: '*/*', Connection: 'close' },
      timeout: timeoutMs,
      signal,
      ...(https ? { servername: isIP(host) ? undefined : host, rejectUnauthorized: false } : {}),
    };
    const req = (https ? httpsRequest : httpRequest)(options, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY) {
          req.destroy();
          reject(new CaError('incorrectResponse', `the answer at ${url.href} is longer than ${MAX_BODY} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, location: res.headers.location, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new CaError('connection', `no answer from ${url.host} within ${timeoutMs} ms`)));
    req.on('error', (err) => reject(err instanceof CaError ? err : new CaError('connection', `could not fetch ${url.href} from ${address}: ${(err as NodeJS.ErrnoException).code ?? err.message}`)));
    req.end();
  });
}

export async function validateHttp01(options: Http01Options, name: string, token: string, keyAuthorization: string): Promise<void> {
  const host = isIP(name) === 6 ? `[${name}]` : name;
  let url = new URL(`http://${host}:${options.port}/.well-known/acme-challenge/${token}`);
  for (let redirects = 0; ; redirects++) {
    const hostname = url.hostname.replace(/^\[|\]$/g, '');
    const [address] = await options.resolver.addresses(hostname);
    const answer = await fetchOnce(url, address!, options.timeoutMs, options.signal);
    if (answer.status >= 300 && answer.status < 400 && answer.location) {
      if (redirects >= MAX_REDIRECTS) throw new CaError('connection', `more than ${MAX_REDIRECTS} redirects from ${name}`);
      let next: URL;
      try {
        next = new URL(answer.location, url);
      } catch {
        throw new CaError('connection', `a redirect from ${url.href} to an invalid URL`);
      }
      const port = Number(next.port || (next.protocol === 'https:' ? 443 : 80));
      const allowedPort = next.protocol === 'http:' ? port === options.port || port === 80 : next.protocol === 'https:' && (port === options.httpsPort || port === 443);
      if (!allowedPort) throw new CaError('connection', `a redirect to ${next.protocol}//${next.host} is not followed: only http and https on the challenge ports`);
      if (!options.mayFollow(next.hostname.replace(/^\[|\]$/g, ''))) {
        throw new CaError('unauthorized', `a redirect to ${next.hostname} is not followed: that host is outside this identity's policy`);
      }
      url = next;
      continue;
    }
    if (answer.status !== 200) throw new CaError('incorrectResponse', `${url.href} answered ${answer.status}, not 200`);
    if (answer.body.replace(/\s+$/, '') !== keyAuthorization) throw new CaError('incorrectResponse', `the answer at ${url.href} is not this challenge's key authorization`);
    return;
  }
}
