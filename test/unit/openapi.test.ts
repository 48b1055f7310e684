/** The committed OpenAPI document is exactly what the route contracts generate. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import { OPENAPI_PATH, openApiJson } from '../../openapi/generate.js';
import { openApiDocument } from '../../src/http/app.js';
import { OPERATION_IDS, annotateOpenApi } from '../../src/http/openapi-operations.js';

interface Operation {
  operationId?: string;
  security?: Record<string, string[]>[];
}
interface Document {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { securitySchemes: Record<string, { type: string; scheme: string; description?: string }> };
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

function operations(doc: Document): { key: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m] !== undefined).map((m) => ({ key: `${m.toUpperCase()} ${path}`, op: item[m]! })),
  );
}

it('openapi/openapi.json matches the routes (run "npm run openapi" after changing a route)', () => {
  const committed = readFileSync(OPENAPI_PATH, 'utf8');
  assert.equal(committed, openApiJson());
  const doc = JSON.parse(committed) as Document;
  assert.equal(doc.openapi, '3.1.0');
  assert.ok(doc.paths['/v1/certificates']?.post);
  assert.ok(doc.paths['/v1/acme/eab']?.post, 'the ACME binding endpoint is documented');
  assert.ok(doc.paths['/v1/certificates/{serial}']?.get);
  assert.ok(doc.paths['/v1/config.schema.json']?.get);
  assert.deepEqual(JSON.parse(JSON.stringify(openApiDocument())), doc, '/openapi.json serves the committed document, operation ids included');
});

it('gives every operation a distinct camelCase operationId, the one src/http/openapi-operations.ts names', () => {
  const doc = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')) as Document;
  const ops = operations(doc);
  assert.equal(ops.length, 23);
  for (const { key, op } of ops) {
    assert.match(op.operationId ?? '', /^[a-z][a-zA-Z0-9]*$/, `${key} has no camelCase operationId`);
    assert.equal(op.operationId, OPERATION_IDS[key], key);
  }
  const ids = ops.map(({ op }) => op.operationId);
  assert.equal(new Set(ids).size, ids.length, `operationIds repeat: ${ids.join(', ')}`);
  // No id is left in the table for an operation that no longer exists.
  assert.deepEqual(Object.keys(OPERATION_IDS).sort(), ops.map(({ key }) => key).sort());
});

it('describes the renewal\'s holder token as its own bearer scheme, and the identity token of every other authenticated operation', () => {
  const doc = JSON.parse(readFileSync(OPENAPI_PATH, 'utf8')) as Document;
  const schemes = doc.components.securitySchemes;
  assert.equal(schemes.holderToken?.type, 'http');
  assert.equal(schemes.holderToken?.scheme, 'bearer');
  for (const words of ['x5c', 'service-ca:renew', 'jti', '300 s']) assert.ok(schemes.holderToken?.description?.includes(words), `holderToken: ${words}`);
  assert.ok(schemes.bearer?.description?.includes('auth.issuers'));
  assert.deepEqual(doc.paths['/v1/certificates/renew']?.post?.security, [{ holderToken: [] }]);
  assert.deepEqual(doc.paths['/v1/certificates']?.post?.security, [{ bearer: [] }]);
  const holderOps = operations(doc).filter(({ op }) => op.security?.some((s) => 'holderToken' in s));
  assert.deepEqual(holderOps.map(({ key }) => key), ['POST /v1/certificates/renew']);
});

it('refuses to generate a document with an operation that has no operationId, or another one than the table', () => {
  const base = { openapi: '3.1.0', paths: { '/v1/certificates': { get: {} } } };
  assert.throws(() => annotateOpenApi({ ...base, paths: { ...base.paths, '/v1/new-thing': { get: {} } } }), /GET \/v1\/new-thing has no operationId/);
  assert.throws(() => annotateOpenApi({ ...base, paths: { '/v1/certificates': { get: { operationId: 'listThem' } } } }), /names operationId listThem, src\/http\/openapi-operations.ts listCertificates/);
  const annotated = annotateOpenApi(base) as unknown as Document;
  assert.equal(annotated.paths['/v1/certificates']?.get?.operationId, 'listCertificates');
});
