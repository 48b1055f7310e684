/** Liveness, readiness and metrics (docs/api.md "Public"). */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../context.js';

const Health = z.object({ status: z.string(), database: z.boolean().optional(), signer: z.boolean().optional() }).openapi('Health');

const healthz = createRoute({
  method: 'get',
  path: '/healthz',
  tags: ['operations'],
  summary: 'The process runs',
  responses: { 200: { description: 'Alive', content: { 'application/json': { schema: Health } } } },
});

const readyz = createRoute({
  method: 'get',
  path: '/readyz',
  tags: ['operations'],
  summary: 'The database and the signing key answer',
  responses: {
    200: { description: 'Ready', content: { 'application/json': { schema: Health } } },
    503: { description: 'Not ready', content: { 'application/json': { schema: Health } } },
  },
});

const metrics = createRoute({
  method: 'get',
  path: '/metrics',
  tags: ['operations'],
  summary: 'Prometheus metrics',
  responses: { 200: { description: 'Prometheus text format', content: { 'text/plain': { schema: z.string() } } } },
});

export function healthRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(healthz, (c) => c.json({ status: 'ok' }, 200));
  app.openapi(readyz, async (c) => {
    const r = await c.var.deps.health.ready();
    const ok = r.database && r.signer;
    c.header('Cache-Control', 'no-store');
    return ok ? c.json({ status: 'ready', ...r }, 200) : c.json({ status: 'unavailable', ...r }, 503);
  });
  app.openapi(metrics, async (c) => {
    const { registry, exposition } = c.var.deps.metrics;
    return c.text(await exposition(), 200, { 'Content-Type': registry.contentType });
  });
}
