/**
 * Bearer authentication (RFC 6750 §2.1): runs before any body validation, so that a request
 * without a valid token gets 401 before any 400 about its body (API.md "Precedence").
 */
import { createMiddleware } from 'hono/factory';
import { CaError } from '../../errors.js';
import type { AppEnv } from '../context.js';

export const authenticate = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header('Authorization');
  c.set('bearerPresented', header !== undefined && header.trim() !== '');
  const m = header ? /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(header) : null;
  if (!m) {
    throw new CaError('unauthorized', header ? 'the Authorization header must be "Bearer <JWT>"' : 'a bearer token is required');
  }
  c.set('principal', await c.var.deps.authenticator.authenticate(m[1]!));
  await next();
});
