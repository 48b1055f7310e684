/** GET /v1/fleet and GET /v1/fleet/summary: the operator's view of every identity (docs/api.md "Fleet"). */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { FLEET_SEVERITIES, FLEET_STATES, MAX_IDENTITY_PREFIX, type FleetItem } from '../../policy/fleet.js';
import type { AppEnv } from '../context.js';
import { authenticate } from '../middleware/authenticate.js';
import { problemResponse, rfc3339 } from '../schemas.js';

const State = z.enum(FLEET_STATES as [string, ...string[]]);
const Severity = z.enum(FLEET_SEVERITIES as [string, ...string[]]);
const Count = z.number().int();

const FleetItemSchema = z
  .object({
    identity: z.string(),
    state: State,
    severity: Severity,
    certificate: z
      .object({ serial: z.string(), notBefore: z.string(), notAfter: z.string(), renewalInfo: z.object({ start: z.string(), end: z.string() }) })
      .nullable()
      .openapi({ description: 'The certificate the state is about: the newest valid one, else the newest' }),
    lastPoll: z.object({ at: z.string(), address: z.string().nullable() }).nullable().openapi({ description: 'The last renewal-info request for that certificate (written in batches, a few seconds late)' }),
    lastRefusal: z.object({ at: z.string(), code: z.string() }).nullable().openapi({ description: 'The identity\'s last refused issuance or renewal: its error code' }),
  })
  .openapi('FleetItem');

const refusals = { 401: problemResponse('Missing or invalid token'), 403: problemResponse('Not an admin') };

const listRoute = createRoute({
  method: 'get',
  path: '/v1/fleet',
  tags: ['fleet'],
  summary: 'Every identity\'s state and severity, needing attention first (admin)',
  security: [{ bearer: [] }],
  middleware: [authenticate] as const,
  request: {
    query: z.object({
      state: z.string().max(32).optional().openapi({ enum: [...FLEET_STATES] }),
      severity: z.string().max(32).optional().openapi({ enum: [...FLEET_SEVERITIES] }),
      identityPrefix: z.string().max(MAX_IDENTITY_PREFIX).optional().openapi({ description: 'Only identities starting with this text' }),
      limit: z.string().max(8).optional().openapi({ description: '1 to 1000, default 100' }),
      cursor: z.string().max(24_576).optional().openapi({ description: 'As nextCursor handed it out' }),
    }),
  },
  responses: {
    200: {
      description: 'A page',
      content: { 'application/json': { schema: z.object({ items: z.array(FleetItemSchema), nextCursor: z.string().nullable() }).openapi('FleetPage') } },
    },
    400: problemResponse('Bad filter, limit or cursor'),
    ...refusals,
  },
});

const summaryRoute = createRoute({
  method: 'get',
  path: '/v1/fleet/summary',
  tags: ['fleet'],
  summary: 'How many identities are in each state and of each severity (admin)',
  security: [{ bearer: [] }],
  middleware: [authenticate] as const,
  responses: {
    200: {
      description: 'The counts',
      content: {
        'application/json': {
          schema: z
            .object({
              states: z.object({ healthy: Count, renewalDue: Count, missedRenewal: Count, expired: Count, revoked: Count }),
              severities: z.object({ none: Count, warning: Count, critical: Count }),
            })
            .openapi('FleetSummary'),
        },
      },
    },
    ...refusals,
  },
});

function itemJson(i: FleetItem) {
  const c = i.certificate;
  return {
    identity: i.identity,
    state: i.state,
    severity: i.severity,
    certificate: c && { serial: c.serial, notBefore: rfc3339(c.notBefore), notAfter: rfc3339(c.notAfter), renewalInfo: { start: rfc3339(c.renewalInfo.start), end: rfc3339(c.renewalInfo.end) } },
    lastPoll: i.lastPoll && { at: rfc3339(i.lastPoll.at), address: i.lastPoll.address },
    lastRefusal: i.lastRefusal && { at: rfc3339(i.lastRefusal.at), code: i.lastRefusal.code },
  };
}

export function fleetRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(listRoute, async (c) => {
    const page = await c.var.deps.fleet.list(c.var.principal, c.req.valid('query'));
    return c.json({ items: page.items.map(itemJson), nextCursor: page.nextCursor }, 200);
  });
  app.openapi(summaryRoute, async (c) => {
    const counts = await c.var.deps.fleet.summary(c.var.principal);
    return c.json({ states: { ...counts.states }, severities: { ...counts.severities } }, 200);
  });
}
