/**
 * The one place that maps domain errors to HTTP: RFC 9457 problem documents with the contract's
 * codes (docs/api.md "Conventions"). Unknown errors become a generic 500 whose real cause is only
 * logged, with the request id.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { CaError, type ErrorKind } from '../errors.js';
import { acmeError } from './acme-problem.js';
import { STATUS } from './statuses.js';
import type { AppEnv } from './context.js';

export const PROBLEM_TYPE_PREFIX = 'urn:service-ca:error:';

/** Writes the problem document for a CaError, with the headers its kind calls for. */
export function problem(c: Context<AppEnv>, err: CaError): Response {
  const { status, title } = STATUS[err.kind];
  const headers: Record<string, string> = { 'Content-Type': 'application/problem+json', 'Cache-Control': 'no-store' };
  if (err.kind === 'unauthorized') {
    headers['WWW-Authenticate'] = c.get('bearerPresented') ? 'Bearer realm="service-ca", error="invalid_token"' : 'Bearer realm="service-ca"';
  }
  if (err.kind === 'rateLimited' || err.kind === 'unavailable') headers['Retry-After'] = String(err.retryAfter ?? 1);
  // The rest of a body over the limit is not read: the connection cannot carry another request
  // (RFC 9110 §15.5.14 lets the server close it), so node closes it after the answer.
  if (err.kind === 'payloadTooLarge') headers.Connection = 'close';
  const body = { type: `${PROBLEM_TYPE_PREFIX}${err.kind}`, title, status, detail: err.detail };
  return c.body(JSON.stringify(body), status, headers);
}

/** Hono's onError: everything thrown in a request ends here (ACME's routes answer ACME's problems). */
export function onError(err: Error, c: Context<AppEnv>): Response {
  if (c.var.deps?.acme && c.req.path.startsWith('/acme/')) return acmeError(c, err instanceof HTTPException ? httpExceptionError(err) : err);
  if (err instanceof CaError) {
    if (err.kind === 'serverInternal' || err.kind === 'unavailable') {
      c.get('logger')?.warn({ err: err.cause ?? err, kind: err.kind }, err.detail);
    }
    return problem(c, err);
  }
  if (err instanceof HTTPException) return problem(c, httpExceptionError(err));
  c.get('logger')?.error({ err }, 'unhandled error');
  return problem(c, new CaError('serverInternal', `an internal error occurred (request ${c.get('requestId') ?? 'unknown'})`));
}

function httpExceptionError(err: HTTPException): CaError {
  const kind: ErrorKind = err.status === 413 ? 'payloadTooLarge' : err.status === 415 ? 'unsupportedMediaType' : err.status === 401 ? 'unauthorized' : 'malformed';
  return new CaError(kind, kind === 'malformed' ? 'the request body is not valid JSON' : err.message);
}

export function notFound(c: Context<AppEnv>): Response {
  return problem(c, new CaError('notFound', `no route for ${c.req.method} ${new URL(c.req.url).pathname}`));
}
