/** The CA's own certificates, public on both listeners (docs/api.md "Public"). */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { bytesOf } from '../bytes.js';
import { CaError } from '../../errors.js';
import type { AppEnv } from '../context.js';
import { problemResponse } from '../schemas.js';


const pem = (path: string, summary: string) =>
  createRoute({
    method: 'get',
    path,
    tags: ['ca'],
    summary,
    responses: { 200: { description: summary, content: { 'application/x-pem-file': { schema: z.string() } } } },
  });

const rootRoute = pem('/v1/ca/root.pem', 'The root certificate, PEM');
const chainRoute = pem('/v1/ca/chain.pem', 'The intermediate then the root, PEM');
const intermediateRoute = createRoute({
  method: 'get',
  path: '/v1/ca/intermediate.der',
  tags: ['ca'],
  summary: 'The intermediate certificate, DER (the AIA caIssuers target)',
  responses: { 200: { description: 'DER certificate', content: { 'application/pkix-cert': { schema: z.string().openapi({ format: 'binary' }) } } } },
});

const issuerRoute = createRoute({
  method: 'get',
  path: '/v1/ca/issuers/{file}',
  tags: ['ca'],
  summary: 'A configured intermediate certificate by issuer key id, DER (`{kid}.der`: the AIA caIssuers target its certificates name)',
  request: { params: z.object({ file: z.string().openapi({ description: 'The issuer key id followed by .der', example: '3f1c…e2.der' }) }) },
  responses: {
    200: { description: 'DER certificate', content: { 'application/pkix-cert': { schema: z.string().openapi({ format: 'binary' }) } } },
    404: problemResponse('No configured issuer has this key id'),
  },
});

const CACHE = 'public, max-age=3600';

export function caCertificateRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(rootRoute, (c) => c.body(c.var.deps.published.rootPem, 200, { 'Content-Type': 'application/x-pem-file', 'Cache-Control': CACHE }));
  app.openapi(chainRoute, (c) => c.body(c.var.deps.published.chainPem, 200, { 'Content-Type': 'application/x-pem-file', 'Cache-Control': CACHE }));
  app.openapi(intermediateRoute, (c) =>
    c.body(bytesOf(c.var.deps.published.intermediateDer), 200, { 'Content-Type': 'application/pkix-cert', 'Cache-Control': CACHE }),
  );
  app.openapi(issuerRoute, (c) => {
    const m = /^([0-9a-fA-F]{2,128})\.der$/.exec(c.req.valid('param').file);
    const der = m ? c.var.deps.published.issuers.get(m[1]!.toLowerCase()) : undefined;
    if (!der) throw new CaError('notFound', 'no configured issuer has this key id');
    return c.body(bytesOf(der), 200, { 'Content-Type': 'application/pkix-cert', 'Cache-Control': CACHE }) as never;
  });
}
