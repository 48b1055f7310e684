/**
 * ACME's problem documents (RFC 8555 §6.7): the one place an error on an /acme/ route becomes an
 * answer, with ACME's error types (`urn:ietf:params:acme:error:…`), the statuses of
 * http/problem.ts, and the headers every ACME answer carries: a fresh Replay-Nonce (so that a
 * client refused with badNonce retries at once, §6.5), the directory's Link and no caching.
 * Unknown errors become serverInternal with a fixed detail; the cause is only logged.
 */
import type { Context } from 'hono';
import { CaError } from '../errors.js';
import { acmeProblem, acmeUrls } from '../policy/acme/resources.js';
import type { AppEnv } from './context.js';
import { STATUS } from './statuses.js';

/**
 * The origin as the client named it: the request's, with the scheme of `X-Forwarded-Proto` when
 * a proxy that ends TLS (server.tls.mode off) says `https`. Trusting the header gives a client
 * nothing: the JWS `url` must match what it says, and the path still has to be this one.
 */
export function requestOrigin(c: Context<AppEnv>): string {
  const url = new URL(c.req.url);
  const forwarded = c.req.header('X-Forwarded-Proto')?.split(',')[0]?.trim().toLowerCase();
  if ((forwarded === 'https' || forwarded === 'http') && url.protocol !== `${forwarded}:`) url.protocol = forwarded;
  return url.origin;
}

/** The base of the ACME URLs as this request reached the CA: its origin and /acme. */
export const acmeBase = (c: Context<AppEnv>) => `${requestOrigin(c)}/acme`;

/** The headers of every ACME answer. */
export function acmeHeaders(c: Context<AppEnv>): Record<string, string> {
  const acme = c.var.deps.acme;
  const headers: Record<string, string> = { 'Cache-Control': 'no-store', Link: `<${acmeUrls(acmeBase(c)).directory}>;rel="index"` };
  if (acme) headers['Replay-Nonce'] = acme.nonces.mint();
  return headers;
}

/** Writes the ACME problem document for what a request threw; `override` sets another status (405) and its headers. */
export function acmeError(c: Context<AppEnv>, thrown: unknown, override?: { status: 405; headers: Record<string, string> }): Response {
  let err: CaError;
  if (thrown instanceof CaError) {
    err = thrown;
    if (err.kind === 'serverInternal' || err.kind === 'unavailable') c.get('logger')?.warn({ err: err.cause ?? err, kind: err.kind }, err.detail);
  } else {
    c.get('logger')?.error({ err: thrown }, 'unhandled error');
    err = new CaError('serverInternal', `an internal error occurred (request ${c.get('requestId') ?? 'unknown'})`);
  }
  const status = override?.status ?? STATUS[err.kind].status;
  const headers: Record<string, string> = { ...acmeHeaders(c), 'Content-Type': 'application/problem+json', ...override?.headers };
  if (err.kind === 'rateLimited' || err.kind === 'unavailable') headers['Retry-After'] = String(err.retryAfter ?? 1);
  if (err.location) headers.Location = err.location;
  if (err.kind === 'payloadTooLarge') headers.Connection = 'close';
  return c.body(JSON.stringify(acmeProblem(err, status)), status, headers);
}
