/** POST /v1/certificates and GET /v1/certificates/{serial} (docs/api.md "Service identity"). */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { IssueRequest } from '../../policy/certificates.js';
import { isCaError } from '../../errors.js';
import type { AppEnv } from '../context.js';
import { authenticate, authenticateHolder } from '../middleware/authenticate.js';
import { requireJson } from '../middleware/request-guards.js';
import { CertificateRecordSchema, IssuanceSchema, IssueRequestSchema, Serial, issuanceJson, problemResponse, recordJson } from '../schemas.js';

const PEM_CHAIN = 'application/pem-certificate-chain';
const security = [{ bearer: [] }];

const issueRoute = createRoute({
  method: 'post',
  path: '/v1/certificates',
  tags: ['certificates'],
  summary: 'Issue a certificate for the calling identity',
  security,
  middleware: [requireJson, authenticate] as const,
  request: { body: { required: true, content: { 'application/json': { schema: IssueRequestSchema } } } },
  responses: {
    200: {
      description: 'A retry (the same one-time token with a byte-identical CSR, or a renewal with the same new key): the certificate issued then',
      headers: z.object({ Location: z.string() }),
      content: { 'application/json': { schema: IssuanceSchema }, [PEM_CHAIN]: { schema: z.string() } },
    },
    201: {
      description: 'Issued; the record is committed',
      headers: z.object({ Location: z.string() }),
      content: { 'application/json': { schema: IssuanceSchema }, [PEM_CHAIN]: { schema: z.string() } },
    },
    400: problemResponse('Malformed request, bad CSR or public key'),
    401: problemResponse('Missing or invalid token'),
    403: problemResponse('Identity or name outside policy'),
    413: problemResponse('Body too large'),
    415: problemResponse('Body is not JSON'),
    429: problemResponse('Too many certificates for this identity in the window (limits.issuance); see Retry-After'),
    503: problemResponse('Database unavailable'),
  },
});

const renewRoute = createRoute({
  ...issueRoute,
  path: '/v1/certificates/renew',
  summary: 'Renew with a token signed by the current certificate\'s key (x5c), for the same identity',
  middleware: [requireJson, authenticateHolder] as const,
  responses: { ...issueRoute.responses, 401: problemResponse('Token or presented certificate not acceptable (foreign, expired or revoked)') },
});

const getRoute = createRoute({
  method: 'get',
  path: '/v1/certificates/{serial}',
  tags: ['certificates'],
  summary: 'Read a certificate record (owner or admin)',
  security,
  middleware: [authenticate] as const,
  request: { params: z.object({ serial: Serial }) },
  responses: {
    200: { description: 'The record', content: { 'application/json': { schema: CertificateRecordSchema } } },
    401: problemResponse('Missing or invalid token'),
    403: problemResponse('Another identity\'s certificate'),
    404: problemResponse('Unknown serial'),
  },
});

export function certificateRoutes(app: OpenAPIHono<AppEnv>): void {
  const issue = async (c: Context<AppEnv>, body: IssueRequest) => {
    const { certificates, metrics } = c.var.deps;
    const principal = c.var.principal;
    try {
      const issued = await certificates.issue(principal, body);
      metrics.issuances.inc({ result: issued.created ? 'issued' : 'retried', issuer: principal.issuer });
      c.header('Location', `/v1/certificates/${issued.serial}`);
      // 200: a retry answered with the certificate issued before (docs/api.md "Retries").
      const status = issued.created ? 201 : 200;
      if ((c.req.header('Accept') ?? '').toLowerCase().includes(PEM_CHAIN)) {
        return c.body(issued.certificate + issued.chain.join(''), status, { 'Content-Type': PEM_CHAIN });
      }
      return c.json(issuanceJson(issued), status);
    } catch (err) {
      metrics.issuances.inc({ result: isCaError(err) ? err.kind : 'serverInternal', issuer: principal.issuer });
      throw err;
    }
  };
  app.openapi(issueRoute, (c) => issue(c, c.req.valid('json')) as never);
  app.openapi(renewRoute, (c) => issue(c, c.req.valid('json')) as never);

  app.openapi(getRoute, async (c) => {
    const view = await c.var.deps.certificates.get(c.var.principal, c.req.valid('param').serial);
    return c.json(recordJson(view), 200);
  });
}
