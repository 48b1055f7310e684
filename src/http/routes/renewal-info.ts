/** GET /v1/certificates/{serial}/renewal-info: public, on both listeners (docs/api.md). */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../context.js';
import { Serial, problemResponse, rfc3339 } from '../schemas.js';

const route = createRoute({
  method: 'get',
  path: '/v1/certificates/{serial}/renewal-info',
  tags: ['renewal'],
  summary: 'When to renew this certificate (RFC 9773 shape)',
  request: { params: z.object({ serial: Serial }) },
  responses: {
    200: {
      description: 'The suggested window; Retry-After says when to ask again',
      headers: z.object({ 'Retry-After': z.string() }),
      content: { 'application/json': { schema: z.object({ suggestedWindow: z.object({ start: z.string(), end: z.string() }) }).openapi('RenewalInfo') } },
    },
    400: problemResponse('Bad serial'),
    404: problemResponse('Unknown serial'),
  },
});

export function renewalInfoRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(route, async (c) => {
    // The poll is noted with the address of the connection's peer: the client, or the proxy in front.
    const info = await c.var.deps.renewalInfo.get(c.req.valid('param').serial, c.env?.incoming?.socket.remoteAddress);
    c.header('Retry-After', String(info.retryAfter));
    c.header('Cache-Control', 'no-store');
    return c.json({ suggestedWindow: { start: rfc3339(info.window.start), end: rfc3339(info.window.end) } }, 200);
  });
}
