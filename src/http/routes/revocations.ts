/** Revocation by the owner or an admin, and bulk revocation of an identity (docs/api.md). */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../context.js';
import { authenticate } from '../middleware/authenticate.js';
import { requireJson } from '../middleware/request-guards.js';
import { CertificateRecordSchema, Serial, problemResponse, recordJson } from '../schemas.js';

// Any JSON value is read here; policy answers badRevocationReason for anything but the names.
const Reason = z.unknown().openapi({
  type: 'string',
  description: 'RFC 5280 reason name',
  example: 'keyCompromise',
  enum: ['unspecified', 'keyCompromise', 'caCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'],
});

const revokeRoute = createRoute({
  method: 'post',
  path: '/v1/certificates/{serial}/revoke',
  tags: ['revocation'],
  summary: 'Revoke a certificate (its owner, or an admin)',
  security: [{ bearer: [] }],
  middleware: [requireJson, authenticate] as const,
  request: {
    params: z.object({ serial: Serial }),
    body: { required: true, content: { 'application/json': { schema: z.object({ reason: Reason.optional() }).openapi('RevokeRequest') } } },
  },
  responses: {
    200: {
      description: 'Revoked; with reason keyCompromise every certificate renewed from it (directly or transitively) too, listed in alsoRevoked',
      content: { 'application/json': { schema: CertificateRecordSchema.extend({ alsoRevoked: z.array(z.string()) }).openapi('Revoked') } },
    },
    400: problemResponse('Bad reason or serial'),
    401: problemResponse('Missing or invalid token'),
    403: problemResponse('Not the owner, or a reason only admins may give'),
    404: problemResponse('Unknown serial'),
    409: problemResponse('Already revoked'),
  },
});

const bulkRoute = createRoute({
  method: 'post',
  path: '/v1/revocations',
  tags: ['revocation'],
  summary: 'Revoke every valid certificate of an identity (admin)',
  security: [{ bearer: [] }],
  middleware: [requireJson, authenticate] as const,
  request: {
    body: {
      required: true,
      content: { 'application/json': { schema: z.object({ identity: z.string().min(1).max(1024), reason: Reason.optional() }).openapi('BulkRevokeRequest') } },
    },
  },
  responses: {
    200: { description: 'The serials revoked', content: { 'application/json': { schema: z.object({ revoked: z.array(z.string()) }).openapi('BulkRevocation') } } },
    400: problemResponse('Bad reason'),
    401: problemResponse('Missing or invalid token'),
    403: problemResponse('Not an admin'),
  },
});

export function revocationRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(revokeRoute, async (c) => {
    const view = await c.var.deps.revoker.revoke(c.var.principal, c.req.valid('param').serial, c.req.valid('json').reason);
    c.var.deps.metrics.revocations.inc({ reason: view.revocationReason ?? 'unspecified' }, 1 + view.alsoRevoked.length);
    return c.json({ ...recordJson(view), alsoRevoked: view.alsoRevoked }, 200);
  });
  app.openapi(bulkRoute, async (c) => {
    const body = c.req.valid('json');
    const revoked = await c.var.deps.revoker.revokeIdentity(c.var.principal, body.identity, body.reason);
    c.var.deps.metrics.revocations.inc({ reason: String(body.reason) }, revoked.length);
    return c.json({ revoked }, 200);
  });
}
