/**
 * The configuration reference (src/config-reference.ts): docs/configuration.md and
 * docs/config.schema.json are what the schema generates now; every key the schema accepts has
 * a row in the reference, found by a walk of the zod schema itself, not of the generated JSON
 * Schema; every default the reference states is the one parsing applies; and the JSON Schema
 * validates the repository's example configurations while flagging unknown keys and wrong values.
 * The validator is ajv (draft-07) with ajv-formats, development dependencies.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, parseConfig, type Config } from '../../src/config.js';
import { configJsonSchema, configJsonSchemaText, type JsonSchema } from '../../src/config-reference.js';
import { configReferenceMarkdown } from '../../src/config-reference-markdown.js';
import { CONFIG_DOC_PATH, CONFIG_SCHEMA_PATH } from '../../src/config-reference-write.js';
import { ensureDevCa } from '../../src/dev-ca.js';
import { parseDuration } from '../../src/duration.js';
import { compilePolicies } from '../../src/policy/policy-compiler.js';
import { removeAtExit } from '../setup/cleanup.js';
import { PROJECT_ROOT } from '../setup/processes.js';

const read = (rel: string) => readFileSync(join(PROJECT_ROOT, rel), 'utf8');

interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  options?: z.ZodType[];
  element?: z.ZodType;
}
const defOf = (s: z.ZodType) => s._zod.def as unknown as Def;

/** What a schema accepts as input, unwrapped: defaults, optionals, and the input side of pipes. */
function unwrap(s: z.ZodType): z.ZodType {
  const def = defOf(s);
  if (['default', 'prefault', 'optional', 'nullable'].includes(def.type)) return unwrap(def.innerType!);
  if (def.type === 'pipe') return unwrap(defOf(def.in!).type === 'transform' ? def.out! : def.in!);
  return s;
}
const isObjectLike = (s: z.ZodType): boolean => {
  const def = defOf(unwrap(s));
  return def.type === 'object' || (def.type === 'union' && def.options!.some(isObjectLike));
};

/**
 * Every key path the schema accepts whose value is not itself an object of keys: `server.port`,
 * `auth.issuers[].name`, `auth.admins.identities[]` (an entry may be a plain string) and
 * `auth.admins.identities[].issuer`.
 */
function leafKeys(schema: z.ZodType, path: string, out: Set<string>): Set<string> {
  const s = unwrap(schema);
  const def = defOf(s);
  if (def.type === 'object') {
    for (const [key, child] of Object.entries(def.shape!)) leafKeys(child, path ? `${path}.${key}` : key, out);
  } else if (def.type === 'union') {
    if (!def.options!.every(isObjectLike)) out.add(path);
    for (const option of def.options!.filter(isObjectLike)) leafKeys(option, path, out);
  } else if (def.type === 'array' && isObjectLike(def.element!)) {
    leafKeys(def.element!, `${path}[]`, out);
  } else {
    out.add(path);
  }
  return out;
}

/** The rows of the reference's tables: key, type, default, description. */
function tableRows(markdown: string): Map<string, { type: string; default: string; description: string }> {
  const rows = new Map<string, { type: string; default: string; description: string }>();
  for (const m of markdown.matchAll(/^\| `([^`]+)` \| (.+?) \| (.+?) \| (.*) \|$/gm)) {
    rows.set(m[1]!, { type: m[2]!, default: m[3]!, description: m[4]! });
  }
  return rows;
}

const EXAMPLE_ENV = { CA_KEY_PASSPHRASE: 'not-a-real-passphrase', DATABASE_URL: 'postgres://ca@db/ca' };

/** The configuration files the repository ships or writes, as YAML text. */
function exampleConfigs(devConfigPath: string): { name: string; text: string }[] {
  const configMap = parseYaml(read('deploy/kubernetes/configmap.yaml')) as { data: Record<string, string> };
  const apiDoc = read('docs/api.md');
  const contract = apiDoc.slice(apiDoc.indexOf('\n## Configuration contract'));
  const block = /```yaml\n([\s\S]*?)```/.exec(contract);
  assert.ok(configMap.data['config.yaml'], 'the ConfigMap holds config.yaml');
  assert.ok(block, 'docs/api.md "Configuration contract" holds a YAML example');
  return [
    { name: 'deploy/compose/config.yaml', text: read('deploy/compose/config.yaml') },
    { name: 'deploy/kubernetes/configmap.yaml config.yaml', text: configMap.data['config.yaml']! },
    { name: 'docs/api.md "Configuration contract"', text: block[1]! },
    { name: 'the development CA (data/service-ca.yaml)', text: readFileSync(devConfigPath, 'utf8') },
  ];
}

describe('the configuration reference', () => {
  let devConfigPath: string;
  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'service-ca-config-reference-'));
    removeAtExit(dir);
    devConfigPath = (await ensureDevCa(join(dir, 'data'))).configPath;
  });

  it('docs/configuration.md and docs/config.schema.json are what the schema generates (run "npm run docs:config")', () => {
    assert.equal(readFileSync(CONFIG_SCHEMA_PATH, 'utf8'), configJsonSchemaText());
    assert.equal(readFileSync(CONFIG_DOC_PATH, 'utf8'), configReferenceMarkdown());
  });

  it('has a row, with a type and a description, for every key the schema accepts, and none for a key it refuses', () => {
    const leaves = leafKeys(configSchema, '', new Set());
    // The walk itself reaches the corners: a discriminated union, a union of forms, a list of either.
    for (const key of ['server.port', 'server.tls.mode', 'server.tls.certificate', 'auth.issuers[].jwks.discovery', 'auth.admins.identities[]', 'auth.admins.identities[].issuer', 'policies[].ip', 'limits.issuance.window']) {
      assert.ok(leaves.has(key), `the walk finds ${key}`);
    }
    assert.ok(leaves.size >= 50, `${leaves.size} keys`);
    const rows = tableRows(readFileSync(CONFIG_DOC_PATH, 'utf8'));
    for (const key of leaves) {
      const row = rows.get(key);
      assert.ok(row, `docs/configuration.md has no row for ${key}`);
      assert.notEqual(row.type.trim(), '', `${key} has a type`);
      assert.ok(row.description.trim().length >= 10, `${key} has a description: "${row.description}"`);
    }
    const accepted = (key: string) => [...leaves].some((leaf) => leaf === key || leaf.startsWith(`${key}.`) || leaf.startsWith(`${key}[]`));
    for (const key of rows.keys()) assert.ok(accepted(key), `docs/configuration.md lists ${key}, which the schema does not accept`);
  });

  it('states for every key the default that parsing applies', () => {
    const minimal = { ca: { certificate: 'i.pem', key: 'i.key' }, auth: { issuers: [{ name: 'a', issuer: 'https://a', audience: 'ca', jwks: { file: 'j.json' } }] } };
    const parsed = parseConfig(minimal, { baseDir: '/etc/ca', env: {} }) as unknown as Record<string, unknown>;
    const schema = configJsonSchema();
    let checked = 0;
    const walk = (node: JsonSchema, value: unknown, path: string) => {
      // An object's default ({}) only makes it optional: its keys' defaults are checked one by one.
      if (node.default !== undefined && node.properties === undefined && path !== 'dataDir') {
        const expected = typeof node.default === 'string' && node.anyOf && parseDuration(node.default) !== undefined && typeof value === 'number' ? parseDuration(node.default) : node.default;
        assert.deepEqual(value, expected, `the default of ${path}`);
        checked++;
      }
      for (const [key, child] of Object.entries((node.properties ?? {}) as Record<string, JsonSchema>)) {
        if (value !== null && typeof value === 'object' && key in value) walk(child, (value as Record<string, unknown>)[key], path ? `${path}.${key}` : key);
      }
    };
    walk(schema, parsed, '');
    const issuer = ((schema.properties as Record<string, JsonSchema>).auth!.properties as Record<string, JsonSchema>).issuers!.items as JsonSchema;
    walk(issuer, (parsed as unknown as Config).auth.issuers[0], 'auth.issuers[]');
    assert.ok(checked >= 32, `${checked} defaults checked`);
    assert.equal((parsed as unknown as Config).dataDir, '/etc/ca/data', 'dataDir: "./data" relative to the file');
  });

  describe('as a JSON Schema', () => {
    const ajv = new Ajv({ allErrors: true });
    addFormats.default(ajv);
    const validate = ajv.compile(JSON.parse(readFileSync(CONFIG_SCHEMA_PATH, 'utf8')) as object);
    const problems = (config: unknown) => (validate(config) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`));

    it('validates the repository\'s example configurations, which the service itself also accepts (schema and policy patterns)', () => {
      for (const { name, text } of exampleConfigs(devConfigPath)) {
        const config = parseYaml(text) as unknown;
        assert.deepEqual(problems(config), [], name);
        assert.doesNotThrow(() => compilePolicies(parseConfig(config, { baseDir: '/etc/ca', env: EXAMPLE_ENV }).policies), name);
      }
    });

    it('flags an unknown key, at the top and deep down, a wrong type, a value out of range and a bad duration', () => {
      const good = parseYaml(read('deploy/compose/config.yaml')) as Record<string, Record<string, unknown>>;
      assert.deepEqual(problems(good), []);
      const changed = (change: (c: typeof good) => void) => {
        const copy = structuredClone(good);
        change(copy);
        return problems(copy);
      };
      assert.ok(changed((c) => (c.serverr = {})).some((p) => p.includes('additional properties')), 'an unknown top-level key');
      assert.ok(changed((c) => (c.issuance!.maxTTL = '72h')).some((p) => p.startsWith('/issuance') && p.includes('additional properties')), 'an unknown key deep down');
      assert.notDeepEqual(changed((c) => (c.server!.port = 'https')), [], 'a port that is not a number');
      assert.notDeepEqual(changed((c) => (c.server!.port = 70000)), [], 'a port out of range');
      assert.notDeepEqual(changed((c) => (c.issuance!.maxTtl = '3 days')), [], 'a duration with a space');
      assert.notDeepEqual(changed((c) => (c.logging!.level = 'verbose')), [], 'a log level that does not exist');
      assert.notDeepEqual(changed((c) => delete c.ca), [], 'a required key missing');
    });

    it('accepts a ${VAR} reference wherever a number, boolean, duration or URL goes', () => {
      const good = parseYaml(read('deploy/compose/config.yaml')) as Record<string, Record<string, unknown>>;
      good.server!.port = '${API_PORT}';
      good.issuance!.maxTtl = '${MAX_TTL:-72h}';
      good.publicUrl = '${PUBLIC_URL}' as never;
      (good.auth!.issuers as Record<string, unknown>[])[0]!.requireJti = '${REQUIRE_JTI}';
      good.limits = { bodyBytes: '65536' };
      assert.deepEqual(problems(good), []);
      const env = { ...EXAMPLE_ENV, API_PORT: '9443', PUBLIC_URL: 'https://ca.example.org', REQUIRE_JTI: 'true' };
      const parsed = parseConfig(good, { baseDir: '/etc/ca', env });
      assert.equal(parsed.server.port, 9443);
      assert.equal(parsed.issuance.maxTtl, 72 * 3600);
      assert.equal(parsed.auth.issuers[0]!.requireJti, true);
    });
  });
});
