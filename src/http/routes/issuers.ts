/** GET /v1/ca/issuers: every configured issuer's state, for rollovers (admin; docs/api.md "Several issuers"). */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { IssuerStatus } from '../../policy/issuers.js';
import type { AppEnv } from '../context.js';
import { authenticate } from '../middleware/authenticate.js';
import { problemResponse, rfc3339 } from '../schemas.js';

const Count = z.number().int();

const IssuerSchema = z
  .object({
    keyId: z.string().openapi({ description: 'Lowercase hex of the intermediate\'s SubjectKeyIdentifier' }),
    subject: z.string(),
    active: z.boolean().openapi({ description: 'Signs every new certificate' }),
    notBefore: z.string(),
    notAfter: z.string(),
    renewBy: z.string().nullable().openapi({ description: 'A retiring issuer\'s renewBy: holders of its certificates are told to have renewed by then' }),
    certificates: z.object({ unexpired: Count, revoked: Count }).openapi({ description: 'Its certificates that have not expired (revoked ones included), and how many of them are revoked' }),
    crl: z
      .object({ number: Count, thisUpdate: z.string(), nextUpdate: z.string(), entries: Count })
      .nullable()
      .openapi({ description: 'The CRL this instance serves for it (null before the first)' }),
    removable: z.boolean().openapi({ description: 'Not active and no unexpired certificate left: it can leave the configuration' }),
    urls: z.object({ crl: z.string(), certificate: z.string() }).openapi({ description: 'Paths of its CRL and certificate on the public listener' }),
  })
  .openapi('Issuer');

const statusRoute = createRoute({
  method: 'get',
  path: '/v1/ca/issuers',
  tags: ['ca'],
  summary: 'Every configured issuer: active or retiring, validity, unexpired certificates, CRL (admin)',
  security: [{ bearer: [] }],
  middleware: [authenticate] as const,
  responses: {
    200: { description: 'The issuers, in configuration order', content: { 'application/json': { schema: z.object({ issuers: z.array(IssuerSchema) }).openapi('Issuers') } } },
    401: problemResponse('Missing or invalid token'),
    403: problemResponse('Not an admin'),
  },
});

function issuerJson(i: IssuerStatus) {
  return {
    keyId: i.keyId,
    subject: i.subject,
    active: i.active,
    notBefore: rfc3339(i.notBefore),
    notAfter: rfc3339(i.notAfter),
    renewBy: i.renewBy ? rfc3339(i.renewBy) : null,
    certificates: i.certificates,
    crl: i.crl ? { number: i.crl.number, thisUpdate: rfc3339(i.crl.thisUpdate), nextUpdate: rfc3339(i.crl.nextUpdate), entries: i.crl.entries } : null,
    removable: i.removable,
    urls: { crl: `/v1/crl/${i.keyId}`, certificate: `/v1/ca/issuers/${i.keyId}.der` },
  };
}

export function issuerRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(statusRoute, async (c) => c.json({ issuers: (await c.var.deps.issuers.status(c.var.principal)).map(issuerJson) }, 200));
}
