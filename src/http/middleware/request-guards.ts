/** Body size (413) and media type (415) guards, answered before authentication. */
import { bodyLimit } from 'hono/body-limit';
import { createMiddleware } from 'hono/factory';
import { CaError } from '../../errors.js';
import type { AppEnv } from '../context.js';

export const limitBody = (maxBytes: number) =>
  bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new CaError('payloadTooLarge', `request bodies are limited to ${maxBytes} bytes`);
    },
  });

/** POST bodies must be JSON (`application/json`, optionally with parameters). */
export const requireJson = createMiddleware<AppEnv>(async (c, next) => {
  const type = (c.req.header('Content-Type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') throw new CaError('unsupportedMediaType', 'the request body must be application/json');
  await next();
});
