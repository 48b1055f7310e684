/** External account bindings for ACME (docs/api.md "ACME"): POST /v1/acme/eab. */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { CaError } from '../../errors.js';
import type { AppEnv } from '../context.js';
import { authenticate } from '../middleware/authenticate.js';
import { problemResponse, rfc3339 } from '../schemas.js';

const eabRoute = createRoute({
  method: 'post',
  path: '/v1/acme/eab',
  tags: ['acme'],
  summary: 'A single-use ACME external account binding for an identity',
  description:
    'With an identity token: a binding for the caller\'s identity (and the names its token allows). With an admin token, `identity` (and optionally `issuer`, a configured issuer\'s name that policies with `issuers` match) names another. The account created with it acts as that identity. 404 unless acme.enabled.',
  security: [{ bearer: [] }],
  middleware: [authenticate] as const,
  request: {
    body: {
      required: false,
      content: {
        'application/json': {
          schema: z.object({ identity: z.string().min(1).max(1024).optional(), issuer: z.string().min(1).max(256).optional() }).strict().openapi('AcmeBindingRequest'),
        },
      },
    },
  },
  responses: {
    201: {
      description: 'The binding: give kid and hmacKey to the ACME client (certbot --eab-kid/--eab-hmac-key, lego --kid/--hmac)',
      content: {
        'application/json': {
          schema: z
            .object({
              kid: z.string(),
              hmacKey: z.string().openapi({ description: 'base64url, no padding' }),
              identity: z.string(),
              expires: z.string().openapi({ format: 'date-time' }),
            })
            .openapi('AcmeBinding'),
        },
      },
    },
    400: problemResponse('Bad body'),
    401: problemResponse('Missing or invalid token, or a one-time token used before'),
    403: problemResponse('Not an admin (naming another identity), or no policy matches the identity'),
    404: problemResponse('ACME is not enabled'),
  },
});

export function acmeBindingRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(eabRoute, async (c) => {
    const acme = c.var.deps.acme;
    if (!acme) throw new CaError('notFound', 'ACME is not enabled on this CA (acme.enabled)');
    const body = c.req.header('Content-Type') ? c.req.valid('json') : {};
    const binding = await acme.accounts.createBinding(c.var.principal, body ?? {});
    return c.json({ kid: binding.kid, hmacKey: binding.hmacKey, identity: binding.identity, expires: rfc3339(binding.expires) }, 201, { 'Cache-Control': 'no-store' });
  });
}
