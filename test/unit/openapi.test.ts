/** The committed OpenAPI document is exactly what the route contracts generate. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { OPENAPI_PATH, openApiJson } from '../../openapi/generate.js';

it('openapi/openapi.json matches the routes (run "npm run openapi" after changing a route)', () => {
  const committed = readFileSync(OPENAPI_PATH, 'utf8');
  assert.equal(committed, openApiJson());
  const doc = JSON.parse(committed) as { openapi: string; paths: Record<string, Record<string, unknown>> };
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/v1/certificates']?.post);
  assert.ok(doc.paths['/v1/certificates/{serial}']?.get);
});
