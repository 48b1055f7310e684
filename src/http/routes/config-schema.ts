/**
 * GET /v1/config.schema.json: the JSON Schema of the configuration file (docs/configuration.md
 * "Checking a file"), public on both listeners, so that an editor can validate a file against
 * the schema of the version that runs. Generated from the configuration schema once, on the
 * first request.
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import { configJsonSchemaText } from '../../config-reference.js';
import type { AppEnv } from '../context.js';

const route = createRoute({
  method: 'get',
  path: '/v1/config.schema.json',
  tags: ['operations'],
  operationId: 'getConfigSchema',
  summary: 'The JSON Schema (draft-07) of the configuration file',
  responses: {
    200: {
      description: 'The JSON Schema that docs/config.schema.json holds',
      content: { 'application/schema+json': { schema: z.record(z.string(), z.unknown()) } },
    },
  },
});

let text: string | undefined;

export function configSchemaRoutes(app: OpenAPIHono<AppEnv>): void {
  // The text itself, as committed (a typed JSON answer would be re-serialized).
  app.openapi(route, (c) => {
    text ??= configJsonSchemaText();
    return c.body(text, 200, { 'Content-Type': 'application/schema+json', 'Cache-Control': 'public, max-age=3600' }) as never;
  });
}
