/**
 * The configuration reference, generated from the one schema (config.ts): a JSON Schema of the
 * file as it is written (docs/config.schema.json, also served at GET /v1/config.schema.json),
 * and docs/configuration.md, rendered from that JSON Schema (config-reference-markdown.ts).
 * `npm run docs:config` rewrites both (config-reference-write.ts); a unit test fails when the
 * committed files differ from what these functions return.
 *
 * zod's z.toJSONSchema writes the input side of the schema (`io: 'input'`), but a value read
 * through a transform loses what the transform accepts and its default, so the override below
 * restores them from the `writtenAs` registry of config.ts: durations (`90s`, `1h30m`, a number
 * of seconds), numbers and booleans that may arrive as text, and the bounds a pipe adds. Any
 * string may hold a `${VAR}` reference; the schema accepts one wherever a duration, number,
 * boolean or URL goes, since its value is known only when the file is loaded. Draft-07: what
 * editors' YAML validation reads most widely.
 */
import { z } from 'zod';
import { configSchema, writtenAs } from './config.js';
import { formatDuration } from './duration.js';

/** A JSON Schema node, as z.toJSONSchema writes it. */
export type JsonSchema = Record<string, unknown>;

/** `${VAR}` or `${VAR:-default}` anywhere in the text (config.ts expandEnv). */
const REFERENCE = '\\$\\{[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\\}';
/** What parseDuration (duration.ts) reads, or a reference. */
export const DURATION_PATTERN = `^\\s*(?:\\d{1,15}|(?:(?:\\d+(?:\\.\\d+)?|\\.\\d+)(?:ms|s|m|h|d))+)\\s*$|${REFERENCE}`;
/** A whole number written as text (config.ts fromText), or a reference. */
export const NUMBER_TEXT_PATTERN = `^\\s*\\d{1,15}\\s*$|${REFERENCE}`;
/** A boolean written as text (config.ts fromText), or a reference. */
export const BOOLEAN_TEXT_PATTERN = `^\\s*(?:true|false)\\s*$|${REFERENCE}`;
/** A string that holds a reference. */
export const REFERENCE_PATTERN = REFERENCE;

type Kind = 'duration' | 'nonNegativeDuration' | 'text';
interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  defaultValue?: unknown;
}
const defOf = (schema: z.core.$ZodType): Def => schema._zod.def as unknown as Def;

/** How the value of a schema is written: the registry entry of it or of what it wraps or pipes from. */
function kindOf(schema: z.core.$ZodType): Kind | undefined {
  const own = writtenAs.get(schema as z.ZodType)?.writtenAs;
  if (own) return own;
  const def = defOf(schema);
  if (def.innerType && ['default', 'prefault', 'optional'].includes(def.type)) return kindOf(def.innerType);
  if (def.type === 'pipe' && def.in) return kindOf(def.in);
  return undefined;
}

/** Empties a node in place (z.toJSONSchema holds references to it) and fills it with `next`. */
function replace(node: JsonSchema, next: JsonSchema): void {
  for (const key of Object.keys(node)) delete node[key];
  Object.assign(node, next);
}

const SAFE_BOUND = Number.MAX_SAFE_INTEGER;
/** A numeric node without the ±2^53 bounds zod gives every integer. */
function withoutSafeBounds(node: JsonSchema): JsonSchema {
  const { minimum, maximum, ...rest } = node;
  return {
    ...rest,
    ...(minimum !== undefined && minimum !== -SAFE_BOUND ? { minimum } : {}),
    ...(maximum !== undefined && maximum !== SAFE_BOUND ? { maximum } : {}),
  };
}

const BOUND_KEYS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
const isNumeric = (node: JsonSchema) => node.type === 'integer' || node.type === 'number';

/** The annotations (description, default, title) of a node, kept across a replace. */
function annotations(node: JsonSchema): JsonSchema {
  return Object.fromEntries(Object.entries(node).filter(([k]) => k === 'description' || k === 'default' || k === 'title'));
}

function durationNode(kind: 'duration' | 'nonNegativeDuration'): JsonSchema {
  return {
    anyOf: [
      { type: 'string', pattern: DURATION_PATTERN },
      { type: 'integer', minimum: kind === 'duration' ? 1 : 0 },
    ],
  };
}

/** A number or boolean that fromText may also read from text. */
function textualNode(node: JsonSchema): JsonSchema {
  const { description: _d, default: _f, title: _t, ...value } = node;
  const branches = Array.isArray(value.anyOf) ? (value.anyOf as JsonSchema[]) : [value];
  const bool = branches.some((b) => b.type === 'boolean');
  return { anyOf: [...branches.map((b) => (isNumeric(b) ? withoutSafeBounds(b) : b)), { type: 'string', pattern: bool ? BOOLEAN_TEXT_PATTERN : NUMBER_TEXT_PATTERN }] };
}

/** The bounds a pipe's output schema adds (`int().pipe(z.number().min(0).max(65535))`), on the numeric branches. */
function bounded(node: JsonSchema, out: z.ZodType): JsonSchema {
  const outJson = z.toJSONSchema(out, { io: 'output', target: 'draft-07' }) as JsonSchema;
  const bounds = Object.fromEntries(Object.entries(withoutSafeBounds(outJson)).filter(([k]) => BOUND_KEYS.includes(k)));
  const branches = (node.anyOf as JsonSchema[]).map((b) => (isNumeric(b) ? { ...b, ...bounds } : b));
  return { anyOf: branches };
}

/** Seconds as the examples write them: `30s`, `65s`, `10m`, `1h`, `24h`, `72h`. */
export function durationText(seconds: number): string {
  if (seconds < 120) return `${seconds}s`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0 && seconds < 3600) return `${seconds / 60}m`;
  return formatDuration(seconds);
}

/** A default as it is written in the file: durations as text (`24h`), the rest as is. */
function writtenDefault(value: unknown, kind: Kind | undefined): unknown {
  if (typeof value === 'number' && (kind === 'duration' || kind === 'nonNegativeDuration')) return durationText(value);
  return value;
}

function override(ctx: { zodSchema: z.core.$ZodType; jsonSchema: JsonSchema }): void {
  const { zodSchema, jsonSchema } = ctx;
  const def = defOf(zodSchema);
  const own = writtenAs.get(zodSchema as z.ZodType)?.writtenAs;
  if (own === 'duration' || own === 'nonNegativeDuration') replace(jsonSchema, { ...annotations(jsonSchema), ...durationNode(own) });
  else if (own === 'text') replace(jsonSchema, { ...annotations(jsonSchema), ...textualNode(jsonSchema) });
  else if (def.type === 'pipe' && def.in && def.out && kindOf(def.in) && Array.isArray(jsonSchema.anyOf)) {
    replace(jsonSchema, { ...annotations(jsonSchema), ...bounded(jsonSchema, def.out) });
  } else if (jsonSchema.type === 'string' && jsonSchema.format === 'uri') {
    const { description: _d, default: _f, title: _t, ...url } = jsonSchema;
    replace(jsonSchema, { ...annotations(jsonSchema), anyOf: [url, { type: 'string', pattern: REFERENCE_PATTERN }] });
  }
  // z.toJSONSchema drops the default of a value read through a transform (input mode); it is a
  // valid input here (a number of seconds, a number), so it is put back.
  if ((def.type === 'default' || def.type === 'prefault') && jsonSchema.default === undefined) {
    jsonSchema.default = writtenDefault(def.defaultValue, kindOf(zodSchema));
  } else if (def.type === 'default' && typeof jsonSchema.default === 'number') {
    jsonSchema.default = writtenDefault(jsonSchema.default, kindOf(zodSchema));
  }
}

/** The JSON Schema (draft-07) of the configuration file as written. */
export function configJsonSchema(): JsonSchema {
  return z.toJSONSchema(configSchema, { io: 'input', target: 'draft-07', unrepresentable: 'throw', override }) as JsonSchema;
}

/** docs/config.schema.json: the JSON Schema, two-space indented, with a final newline. */
export function configJsonSchemaText(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
