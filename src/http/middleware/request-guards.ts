/** Body size (413) and media type (415) guards, answered before authentication. */
import { bodyLimit } from 'hono/body-limit';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Context } from 'hono';
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
  const tooLarge = (c: Context<AppEnv>): never => {
    if (c.env?.incoming) lingerAfterAnswer(c.env.incoming);
    throw new CaError('payloadTooLarge', `request bodies are limited to ${maxBytes} bytes`);
  };
  const streamed = bodyLimit({ maxSize: maxBytes, onError: tooLarge });
  return createMiddleware<AppEnv>(async (c, next) => {
    const length = c.req.header('Content-Length');
    if (length !== undefined && c.req.header('Transfer-Encoding') === undefined) {
      if (!/^\d+$/.test(length.trim()) || Number(length) > maxBytes) tooLarge(c);
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

/** How long a connection answered 413 keeps reading what the client still sends before it closes. */
const LINGER_MS = 500;

/**
 * A lingering close for a 413: its answer says Connection: close (http/problem.ts) and the rest of
 * the body is never read. Node closes the socket as soon as the answer is written, and closing a
 * socket that holds unread bytes resets the connection: a client still sending its body can lose
 * the 413 to that reset and see only ECONNRESET. As Go's net/http does (closeWriteAndWait), the
 * server half-closes after the answer, reads and discards what still comes for up to LINGER_MS
 * (or until the client closes its side), then closes. Node has no option for this; it calls the
 * socket's destroySoon() once the answer is written, which is replaced for this socket only.
 */
function lingerAfterAnswer(incoming: IncomingMessage): void {
  const socket = incoming.socket as Socket | null;
  if (!socket) return;
  socket.destroySoon = function lingeringClose(this: Socket) {
    this.end();
    // A body streamed into the limit check stays paused under its reader: drain it here.
    incoming.removeAllListeners('data');
    incoming.on('data', () => {});
    incoming.resume();
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once('end', () => this.destroy());
    this.once('close', () => clearTimeout(timer));
  };
}

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
