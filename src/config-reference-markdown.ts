/**
 * docs/configuration.md, rendered from the configuration's JSON Schema (config-reference.ts), so
 * that every key, type, default, allowed value and description comes from the schema itself.
 * The prose around the tables is here; the rules between keys come from config.ts.
 */
import { CROSS_KEY_RULES } from './config.js';
import { BOOLEAN_TEXT_PATTERN, DURATION_PATTERN, NUMBER_TEXT_PATTERN, REFERENCE_PATTERN, configJsonSchema, durationText, type JsonSchema } from './config-reference.js';

interface Row {
  key: string;
  type: string;
  default: string;
  description: string;
}

const props = (node: JsonSchema) => (node.properties ?? {}) as Record<string, JsonSchema>;
const requiredOf = (node: JsonSchema) => new Set((node.required ?? []) as string[]);
const branchesOf = (node: JsonSchema) => (node.anyOf ?? node.oneOf) as JsonSchema[] | undefined;
const isObject = (node: JsonSchema) => node.type === 'object' && node.properties !== undefined;
const code = (text: string) => `\`${text}\``;
const orList = (items: string[]) => (items.length <= 1 ? (items[0] ?? '') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`);

/** A value as YAML flow text: `[localhost, 127.0.0.1]`, `{ mode: auto }`, `"{sub}"`. */
function yamlFlow(value: unknown): string {
  if (typeof value === 'string') return /^[A-Za-z0-9._/:@-]+$/.test(value) && !/^[-:]/.test(value) ? value : JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(yamlFlow).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value).map(([k, v]) => `${k}: ${yamlFlow(v)}`);
    return entries.length === 0 ? '{}' : `{ ${entries.join(', ')} }`;
  }
  return String(value);
}

function range(node: JsonSchema, show: (n: number) => string): string {
  const { minimum: min, maximum: max } = node as { minimum?: number; maximum?: number };
  if (min !== undefined && max !== undefined) return `, ${show(min)} to ${show(max)}`;
  if (min !== undefined) return `, at least ${show(min)}`;
  if (max !== undefined) return `, at most ${show(max)}`;
  return '';
}

/** The type and allowed values of a node, in words. */
function typeText(node: JsonSchema): string {
  const branches = branchesOf(node);
  if (branches) {
    const patterns = branches.map((b) => b.pattern);
    if (patterns.includes(DURATION_PATTERN)) {
      const seconds = branches.find((b) => b.type === 'integer')!;
      if (seconds.maximum !== undefined) return `duration${range(seconds, durationText)}`;
      return seconds.minimum === 0 ? 'duration, 0 allowed' : 'duration, above 0';
    }
    const values = branches.filter((b) => b.pattern !== NUMBER_TEXT_PATTERN && b.pattern !== BOOLEAN_TEXT_PATTERN && b.pattern !== REFERENCE_PATTERN);
    if (values.length < branches.length && values.length === 1 && values[0]!.format === 'uri') return 'URL';
    return orList(values.map(typeText));
  }
  if (node.const !== undefined) return code(String(node.const));
  if (Array.isArray(node.enum)) return `one of ${node.enum.map((v) => code(String(v))).join(', ')}`;
  switch (node.type) {
    case 'string': {
      if (typeof node.pattern === 'string') return `string matching ${code(node.pattern)}`;
      const min = node.minLength as number | undefined;
      return min !== undefined && min > 1 ? `string of at least ${min} characters` : 'string';
    }
    case 'integer':
      return `integer${range(node, String)}`;
    case 'number':
      return `number${range(node, String)}`;
    case 'boolean':
      return 'boolean';
    case 'array': {
      const min = node.minItems as number | undefined;
      return `list of ${itemText(node.items as JsonSchema)}${min ? `, at least ${min}` : ''}`;
    }
    case 'object':
      return 'object';
    default:
      return 'any';
  }
}

function itemText(items: JsonSchema): string {
  const text = typeText(items);
  if (text === 'string' || text === 'object') return `${text}s`;
  if (text.startsWith('one of ')) return `values, each ${text}`;
  return `items (${text})`;
}

function defaultText(node: JsonSchema, required: boolean): string {
  if (node.default === undefined) return required ? 'required' : '—';
  return code(yamlFlow(node.default));
}

/** The rows of a node and everything under it; `note` says in which form of a union a key exists. */
function rowsOf(node: JsonSchema, key: string, required: boolean, note: string, rows: Row[], withOwnRow = true): void {
  const description = `${note}${(node.description as string | undefined) ?? ''}`.trim();
  const own = (type: string) => withOwnRow && rows.push({ key, type, default: defaultText(node, required), description });
  const branches = branchesOf(node);
  if (isObject(node)) {
    own('object');
    const req = requiredOf(node);
    for (const [name, child] of Object.entries(props(node))) rowsOf(child, `${key}.${name}`, req.has(name), '', rows);
  } else if (branches && branches.every(isObject)) {
    rowsOfForms(node, branches, key, required, description, rows, withOwnRow);
  } else if (node.type === 'array' && typeof node.items === 'object') {
    const items = node.items as JsonSchema;
    own(typeText(node).replace(/items \(string or object\)/, 'strings or objects'));
    const itemBranches = branchesOf(items);
    if (isObject(items)) rowsOf(items, `${key}[]`, true, '', rows, false);
    else if (itemBranches?.some(isObject)) {
      rows.push({ key: `${key}[]`, type: orList(itemBranches.map(typeText)), default: '—', description: (items.description as string | undefined) ?? '' });
      for (const branch of itemBranches.filter(isObject)) rowsOf(branch, `${key}[]`, true, '', rows, false);
    }
  } else {
    own(typeText(node));
  }
}

/**
 * A union of objects: by a discriminating constant (`server.tls` by `mode`), or by which key is
 * present (`jwks`: `file`, `url`, `keys` or `discovery`). Each key gets one row naming its form.
 */
function rowsOfForms(node: JsonSchema, forms: JsonSchema[], key: string, required: boolean, description: string, rows: Row[], withOwnRow: boolean): void {
  const names = [...new Set(forms.flatMap((f) => Object.keys(props(f))))];
  const discriminator = names.find((n) => forms.every((f) => props(f)[n]?.const !== undefined));
  if (withOwnRow) {
    const type = discriminator ? `object, by ${code(discriminator)}` : `object, one of ${orList(forms.map((f) => code(`{ ${Object.keys(props(f)).join(', ')} }`)))}`;
    rows.push({ key, type, default: defaultText(node, required), description });
  }
  for (const name of names) {
    const holding = forms.filter((f) => props(f)[name] !== undefined);
    if (name === discriminator) {
      const values = holding.map((f) => props(f)[name]!);
      const meaning = values.map((v) => `${code(String(v.const))}: ${(v.description as string | undefined) ?? ''}`).join(' ');
      rows.push({ key: `${key}.${name}`, type: orList(values.map((v) => code(String(v.const)))), default: 'required', description: meaning });
      continue;
    }
    const note = discriminator
      ? `With ${orList(holding.map((f) => code(`${discriminator}: ${String(props(f)[discriminator]!.const)}`)))}. `
      : `The ${code(`{ ${name} }`)} form. `;
    for (const form of holding) {
      rowsOf(props(form)[name]!, `${key}.${name}`, requiredOf(form).has(name), note, rows);
      break;
    }
  }
}

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function table(rows: Row[]): string {
  const lines = ['| key | type | default | description |', '|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${code(r.key)} | ${cell(r.type)} | ${cell(r.default)} | ${cell(r.description)} |`);
  return lines.join('\n');
}

const INTRO = `# Configuration reference

<!-- Generated from src/config.ts by \`npm run docs:config\`. Do not edit by hand: change the schema's descriptions, then run it. -->

service-ca reads one YAML file at start-up. This page lists every key the file may hold: its
type, its default and what it does. The same schema checks the file when the service starts,
so this page and the service cannot disagree. docs/api.md "Configuration contract" has a
complete example.

## Reading the file

- The path comes from \`--config FILE\`, else from the environment variable SERVICE_CA_CONFIG.
  With neither, \`service-ca serve\` runs a development CA under \`./data\`.
- \`\${VAR}\` and \`\${VAR:-default}\` are replaced in every string value before the file is
  checked. A variable that is unset or empty takes the default; without a default, it stops
  start-up. Numbers and booleans may arrive this way as text (\`"8443"\`, \`"true"\`).
- Relative paths are relative to the folder of the configuration file: \`dataDir\`,
  \`ca.certificate\`, \`ca.key\`, \`ca.chain\`, \`server.tls.certificate\`, \`server.tls.key\` and
  \`auth.issuers[].jwks.file\`.
- The environment variable DATABASE_URL fills \`database.url\` when the file has none.
  LOG_LEVEL overrides \`logging.level\`.
- A key the schema does not know is an error. So is a missing required key or a wrong value.
  The service then stops with the key's path and the problem:
  \`config: issuance.maxTtl: "3 days" is not a duration (use 30s, 5m, 1h30m, 7d or a number of seconds)\`.

## Durations

A duration is one or more terms of a number and a unit, with no spaces: \`90s\`, \`5m\`,
\`1h30m\`, \`1.5h\`, \`2d12h\`. The units are \`ms\`, \`s\`, \`m\`, \`h\` and \`d\` (24 hours). A bare
whole number, such as \`3600\`, counts seconds. The total must be a whole number of seconds.

## Checking a file

- \`service-ca config check FILE\` loads the file as \`serve\` does, \`\${VAR}\` references
  included, and checks it against the schema and the policy patterns. It prints each problem as
  \`KEY.PATH: message\` and exits 1 when there is one, else 0. It does not open the files the
  configuration names or the database.
- The same schema as a JSON Schema (draft-07) is [config.schema.json](config.schema.json).
  \`service-ca config schema\` prints it, and the public listener serves it at
  \`GET /v1/config.schema.json\`. Editors that use the YAML language server validate and
  complete a file whose first line names the schema:

  \`\`\`yaml
  # yaml-language-server: $schema=./docs/config.schema.json
  \`\`\`

  That path suits a file in the repository's root folder; from elsewhere, give the path of
  \`docs/config.schema.json\` relative to the file, or a URL such as
  \`http://127.0.0.1:8080/v1/config.schema.json\`.

- The JSON Schema accepts a \`\${VAR}\` reference wherever a duration, number, boolean or URL
  goes: its value is known only when the file is loaded. It cannot check the rules below that
  join several keys; \`config check\` and start-up do.

## Rules across keys

${CROSS_KEY_RULES.map((r) => `- ${r}`).join('\n')}

## Keys

In a key, \`[]\` stands for each item of a list: \`auth.issuers[].name\` is the \`name\` of
every issuer. "required" means the key has no default and must be written; "—" means the key
may be left out and has no default.
`;

/** docs/configuration.md: the prose above, then one table per top-level key. */
export function configReferenceMarkdown(): string {
  const schema = configJsonSchema();
  const required = requiredOf(schema);
  const sections: string[] = [INTRO];
  for (const [name, node] of Object.entries(props(schema))) {
    const rows: Row[] = [];
    const nested = isObject(node);
    rowsOf(node, name, required.has(name), '', rows, !nested);
    const heading = `### ${code(name)}`;
    const about = nested && node.description ? `\n${node.description as string}${required.has(name) ? ' Required.' : ''}\n` : '';
    sections.push(`${heading}\n${about}\n${table(rows)}\n`);
  }
  return sections.join('\n');
}
