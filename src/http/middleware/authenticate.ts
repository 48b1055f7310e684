/**
 * Bearer authentication (RFC 6750 §2.1): runs before any body validation, so that a request
 * without a valid token gets 401 before any 400 about its body (docs/api.md "Precedence").
 */
import { createMiddleware } from 'hono/factory';
import type { Authenticator } from '../../auth/principal.js';
import { CaError } from '../../errors.js';
import type { AppDeps, AppEnv } from '../context.js';

/** Bearer authentication with the authenticator that `pick` chooses from the app's deps. */
const bearer = (pick: (deps: AppDeps) => Authenticator) => createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header('Authorization');
  // RFC 6750 §3.1: error="invalid_token" only when a bearer token was actually sent.
  c.set('bearerPresented', /^Bearer\s+\S/i.test(header ?? ''));
  const m = header ? /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header) : null;
  if (!m) {
    throw new CaError('unauthorized', header ? 'the Authorization header must be "Bearer <JWT>"' : 'a bearer token is required');
  }
  c.set('principal', await pick(c.var.deps).authenticate(m[1]!));
  await next();
});

/** Identity tokens from the configured issuers. */
export const authenticate = bearer((deps) => deps.authenticator);

/** Certificate-holder tokens (x5c) for renewal. */
export const authenticateHolder = bearer((deps) => deps.holderAuthenticator);
