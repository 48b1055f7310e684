/** Body size (413) and media type (415) guards, answered before authentication. */
import { bodyLimit } from 'hono/body-limit';
import { createMiddleware } from 'hono/factory';
import { CaError } from '../../errors.js';
import type { AppEnv } from '../context.js';

/**
 * Bodies over maxBytes get 413. A body with a Content-Length is judged by that header alone,
 * before a byte is read (node's parser then reads exactly that many); only a chunked body goes
 * through hono's bodyLimit, which counts the bytes as they stream in. hono's bodyLimit on every
 * request would build the full fetch Request and a body stream for each one, which the node
 * adapter otherwise skips: a fifth of an issuance's main-thread time in the profile.
 */
export const limitBody = (maxBytes: number) => {
  const tooLarge = () => {
    throw new CaError('payloadTooLarge', `request bodies are limited to ${maxBytes} bytes`);
  };
  const streamed = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  return createMiddleware<AppEnv>(async (c, next) => {
    const length = c.req.header('Content-Length');
    if (length !== undefined && c.req.header('Transfer-Encoding') === undefined) {
      if (!/^\d+$/.test(length.trim()) || Number(length) > maxBytes) tooLarge();
      await next();
      return;
    }
    if (c.req.method === 'GET' || c.req.method === 'HEAD') {
      await next();
      return;
    }
    await streamed(c, next);
  });
};

/** POST bodies must be JSON (`application/json`, optionally with parameters). */
export const requireJson = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header('Content-Type') ?? '';
  const [type, ...parameters] = header.split(';');
  if (type!.trim().toLowerCase() !== 'application/json') throw new CaError('unsupportedMediaType', 'the request body must be application/json');
  // RFC 9110 §8.3.1 allows whitespace around ";", which @hono/zod-openapi's media-type check
  // (a strict regular expression) refuses with 415: hand it the same type without that space.
  const normalized = ['application/json', ...parameters.map((p) => p.trim()).filter((p) => p !== '')].join(';');
  if (normalized !== header) c.req.raw.headers.set('Content-Type', normalized);
  await next();
});
