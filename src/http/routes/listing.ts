/** GET /v1/certificates: the admin listing with filters and cursor pagination (docs/api.md "Admin"). */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../context.js';
import { authenticate } from '../middleware/authenticate.js';
import { CertificateRecordSchema, problemResponse, recordJson } from '../schemas.js';

const listRoute = createRoute({
  method: 'get',
  path: '/v1/certificates',
  tags: ['certificates'],
  summary: 'List certificates, newest first (admin)',
  security: [{ bearer: [] }],
  middleware: [authenticate] as const,
  request: {
    query: z.object({
      identity: z.string().max(1024).optional(),
      status: z.string().max(16).optional().openapi({ enum: ['valid', 'revoked', 'expired'] }),
      dns: z.string().max(253).optional(),
      expiresBefore: z.string().max(64).optional().openapi({ description: 'RFC 3339; exclusive' }),
      limit: z.string().max(8).optional().openapi({ description: '1 to 1000, default 100' }),
      cursor: z.string().max(512).optional(),
    }),
  },
  responses: {
    200: {
      description: 'A page',
      content: { 'application/json': { schema: z.object({ items: z.array(CertificateRecordSchema), nextCursor: z.string().nullable() }).openapi('CertificatePage') } },
    },
    400: problemResponse('Bad filter, limit or cursor'),
    401: problemResponse('Missing or invalid token'),
    403: problemResponse('Not an admin'),
  },
});

export function listingRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(listRoute, async (c) => {
    const page = await c.var.deps.lister.list(c.var.principal, c.req.valid('query'));
    return c.json({ items: page.items.map(recordJson), nextCursor: page.nextCursor }, 200);
  });
}
