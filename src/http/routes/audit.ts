/** GET /v1/audit: the audit trail for admins, newest first, with filters and cursor pagination. */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { AUDIT_ACTIONS, type AuditRecord } from '../../policy/audit.js';
import type { AppEnv } from '../context.js';
import { authenticate } from '../middleware/authenticate.js';
import { problemResponse } from '../schemas.js';

const AuditEventSchema = z
  .object({
    id: z.number().int(),
    at: z.string().openapi({ description: 'RFC 3339 with milliseconds, as hashed' }),
    actor: z.string(),
    action: z.string().openapi({ enum: [...AUDIT_ACTIONS] }),
    serial: z.string().nullable(),
    outcome: z.string().openapi({ description: '`success`, or the error code of the refusal' }),
    detail: z.record(z.string(), z.unknown()),
    chainSeq: z.number().int().nullable().openapi({ description: 'Position in the hash chain; null until sealed (about a second, longer while an older write transaction is still open)' }),
    prevHash: z.string().nullable().openapi({ description: 'Hex SHA-256 of the previous row in the chain' }),
    hash: z.string().nullable().openapi({ description: 'Hex SHA-256(prevHash ‖ canonical row)' }),
  })
  .openapi('AuditEvent');

const auditRoute = createRoute({
  method: 'get',
  path: '/v1/audit',
  tags: ['admin'],
  summary: 'Read the audit trail, newest first (admin)',
  security: [{ bearer: [] }],
  middleware: [authenticate] as const,
  request: {
    query: z.object({
      actor: z.string().max(1024).optional(),
      action: z.string().max(64).optional().openapi({ enum: [...AUDIT_ACTIONS] }),
      serial: z.string().max(64).optional(),
      outcome: z.string().max(64).optional(),
      since: z.string().max(64).optional().openapi({ description: 'RFC 3339; inclusive' }),
      until: z.string().max(64).optional().openapi({ description: 'RFC 3339; inclusive' }),
      limit: z.string().max(8).optional().openapi({ description: '1 to 1000, default 100' }),
      cursor: z.string().max(64).optional(),
    }),
  },
  responses: {
    200: {
      description: 'A page of audit rows',
      content: { 'application/json': { schema: z.object({ items: z.array(AuditEventSchema), nextCursor: z.string().nullable() }).openapi('AuditPage') } },
    },
    400: problemResponse('Bad filter, limit or cursor'),
    401: problemResponse('Missing or invalid token'),
    403: problemResponse('Not an admin'),
  },
});

const hex = (b: Buffer | null) => (b ? b.toString('hex') : null);

function eventJson(e: AuditRecord) {
  return {
    id: e.id,
    at: e.at.toISOString(),
    actor: e.actor,
    action: e.action,
    serial: e.serial,
    outcome: e.outcome,
    detail: e.detail,
    chainSeq: e.chainSeq,
    prevHash: hex(e.prevHash),
    hash: hex(e.hash),
  };
}

export function auditRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(auditRoute, async (c) => {
    const page = await c.var.deps.audit.list(c.var.principal, c.req.valid('query'));
    return c.json({ items: page.items.map(eventJson), nextCursor: page.nextCursor }, 200);
  });
}
