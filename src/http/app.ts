/**
 * The front end: one app factory for both listeners. The API listener serves everything; the
 * public listener serves only the unauthenticated routes and answers 404 for the rest
 * (docs/api.md "Conventions").
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import { requestId } from 'hono/request-id';
import { CaError } from '../errors.js';
import type { AppDeps, AppEnv } from './context.js';
import { limitBody } from './middleware/request-guards.js';
import { notFound, onError, problem } from './problem.js';
import { acmeRoutes } from './routes/acme.js';
import { acmeBindingRoutes } from './routes/acme-eab.js';
import { auditRoutes } from './routes/audit.js';
import { caCertificateRoutes } from './routes/ca-certificates.js';
import { certificateRoutes } from './routes/certificates.js';
import { configSchemaRoutes } from './routes/config-schema.js';
import { crlRoutes } from './routes/crl.js';
import { docsRoutes } from './routes/docs.js';
import { fleetRoutes } from './routes/fleet.js';
import { issuerRoutes } from './routes/issuers.js';
import { healthRoutes } from './routes/health.js';
import { listingRoutes } from './routes/listing.js';
import { renewalInfoRoutes } from './routes/renewal-info.js';
import { revocationRoutes } from './routes/revocations.js';
import { uiRoutes } from './routes/ui.js';
import { annotateOpenApi } from './openapi-operations.js';

export type Listener = 'api' | 'public';

const OPENAPI_INFO = {
  openapi: '3.1.0',
  info: {
    title: 'service-ca',
    version: '1',
    description: 'A private certificate authority for service-to-service mTLS. Errors are RFC 9457 problem documents.',
  },
};

function newApp(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const first = result.error.issues[0];
        const where = first?.path.length ? first.path.join('.') : 'body';
        return problem(c as never, new CaError('malformed', `${where}: ${first?.message ?? 'invalid'}`));
      }
      return undefined;
    },
  });
}

function registerRoutes(app: OpenAPIHono<AppEnv>, listener: Listener): void {
  caCertificateRoutes(app);
  crlRoutes(app);
  healthRoutes(app);
  renewalInfoRoutes(app);
  configSchemaRoutes(app);
  if (listener === 'api') {
    issuerRoutes(app);
    listingRoutes(app);
    certificateRoutes(app);
    revocationRoutes(app);
    auditRoutes(app);
    fleetRoutes(app);
    acmeBindingRoutes(app);
    acmeRoutes(app);
  }
}

let cachedDocument: unknown;

/**
 * The OpenAPI 3.1 document, generated from the route contracts themselves, with the operation
 * ids and the holder-token scheme of openapi-operations.ts: what /openapi.json serves and
 * `npm run openapi` commits.
 */
export function openApiDocument(): unknown {
  if (!cachedDocument) {
    const app = newApp();
    app.openAPIRegistry.registerComponent('securitySchemes', 'bearer', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
    registerRoutes(app, 'api');
    cachedDocument = annotateOpenApi(app.getOpenAPI31Document(OPENAPI_INFO));
  }
  return cachedDocument;
}

export function createApp(deps: AppDeps, listener: Listener): OpenAPIHono<AppEnv> {
  const app = newApp();
  app.use('*', requestId({ limitLength: 128 }));
  app.use('*', async (c, next) => {
    const logger = deps.logger.child({ requestId: c.var.requestId, listener });
    c.set('deps', deps);
    c.set('logger', logger);
    c.set('bearerPresented', false);
    const started = process.hrtime.bigint();
    await next();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const route = c.req.routePath || 'unmatched';
    deps.metrics.httpDuration.observe({ method: c.req.method, route, status: String(c.res.status) }, seconds);
    const status = c.res.status;
    if (status >= 400 || deps.requestLogSample >= 1 || Math.random() < deps.requestLogSample) {
      logger.info({ method: c.req.method, path: c.req.path, status, ms: Math.round(seconds * 1000) }, 'request');
    }
  });
  app.use('*', limitBody(deps.bodyLimitBytes));
  registerRoutes(app, listener);
  app.get('/openapi.json', (c) => c.json(openApiDocument() as object));
  docsRoutes(app);
  if (listener === 'api') uiRoutes(app);
  app.notFound(notFound);
  app.onError(onError);
  return app;
}
