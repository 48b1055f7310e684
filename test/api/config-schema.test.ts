/**
 * GET /v1/config.schema.json (docs/api.md "Public"): the JSON Schema of the configuration file,
 * on both listeners, without authentication, exactly the committed docs/config.schema.json.
 * Happy: both listeners answer it, and it validates this app's own configuration keys.
 * Errors: other methods are 404 problem documents. Security: it needs no token, ignores one, and
 * says nothing about this instance (the same bytes whatever the configuration).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { CONFIG_SCHEMA_PATH } from '../../src/config-reference-write.js';
import { startTestApp, type TestApp } from '../setup/app.js';

const PATH = '/v1/config.schema.json';

describe('GET /v1/config.schema.json', () => {
  let app: TestApp;
  const committed = readFileSync(CONFIG_SCHEMA_PATH, 'utf8');

  before(async () => {
    app = await startTestApp();
  });
  after(async () => {
    await app?.stop();
  });

  describe('happy', () => {
    it('answers the committed JSON Schema on the public listener and on the API listener', async () => {
      for (const base of [app.public, app.api]) {
        const res = await fetch(`${base}${PATH}`);
        assert.equal(res.status, 200, base);
        assert.equal(res.headers.get('content-type'), 'application/schema+json');
        assert.equal(res.headers.get('cache-control'), 'public, max-age=3600');
        assert.equal(await res.text(), committed, base);
      }
    });

    it('describes the keys this app was configured with, and refuses others', async () => {
      const schema = (await (await fetch(`${app.public}${PATH}`)).json()) as {
        $schema: string;
        properties: Record<string, { properties?: Record<string, unknown> }>;
        additionalProperties: boolean;
        required: string[];
      };
      assert.equal(schema.$schema, 'http://json-schema.org/draft-07/schema#');
      assert.equal(schema.additionalProperties, false);
      assert.deepEqual(schema.required.sort(), ['auth', 'ca']);
      for (const key of Object.keys(app.config)) assert.ok(schema.properties[key], `the schema has ${key}`);
      for (const key of Object.keys(app.config.server)) assert.ok(schema.properties.server?.properties?.[key], `the schema has server.${key}`);
    });
  });

  describe('errors', () => {
    it('answers 404 notFound to other methods, as a problem document', async () => {
      for (const method of ['POST', 'PUT', 'DELETE']) {
        const res = await fetch(`${app.public}${PATH}`, { method, headers: { 'Content-Type': 'application/json' }, body: '{}' });
        assert.equal(res.status, 404, method);
        assert.equal(res.headers.get('content-type'), 'application/problem+json');
        const problem = (await res.json()) as { type: string; status: number };
        assert.equal(problem.type, 'urn:service-ca:error:notFound');
        assert.equal(problem.status, 404);
      }
    });
  });

  describe('security', () => {
    it('needs no token and is not refused for a bad one', async () => {
      const res = await fetch(`${app.public}${PATH}`, { headers: { Authorization: 'Bearer not.a.token' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('www-authenticate'), null);
      assert.equal(await res.text(), committed);
    });

    it('says nothing about this instance: no path, host or name from its configuration', async () => {
      const text = await (await fetch(`${app.public}${PATH}`)).text();
      for (const value of [app.config.ca.certificate!, app.config.ca.key!, app.config.publicUrl, app.config.auth.issuers[0]!.issuer, app.config.dataDir]) {
        assert.ok(!text.includes(value), `the schema does not name ${value}`);
      }
    });
  });
});
