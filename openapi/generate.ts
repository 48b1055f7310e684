/**
 * The OpenAPI document is generated from the route contracts (src/http/routes), never written
 * by hand, with the operation ids and the holder-token scheme of src/http/openapi-operations.ts.
 * `npm run openapi` rewrites openapi/openapi.json; a test fails when it is stale.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from '../src/http/app.js';

export const OPENAPI_PATH = fileURLToPath(new URL('./openapi.json', import.meta.url));

export function openApiJson(): string {
  return `${JSON.stringify(openApiDocument(), null, 2)}\n`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(OPENAPI_PATH, openApiJson());
  console.log(`wrote ${OPENAPI_PATH}`);
}
