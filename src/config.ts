/**
 * The one configuration schema (the configuration contract the README documents) and the only reader
 * of process.env. A bad file stops start-up with the key's path and the problem in the message.
 * The schema checks shapes and cross-field rules; what a policy's patterns mean is checked by the
 * policy compiler (policy/policy-compiler.ts) at start-up, with the same kind of message.
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { parseDuration } from './duration.js';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const duration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const s = parseDuration(v);
  if (s === undefined || s <= 0) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use 30s, 5m, 1h30m, 7d or a number of seconds)` });
    return z.NEVER;
  }
  return s;
});

const nonNegativeDuration = z.union([z.string(), z.number()]).transform((v, ctx) => {
  const s = parseDuration(v);
  if (s === undefined) {
    ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use 30s, 5m, 1h30m, 7d or a number of seconds)` });
    return z.NEVER;
  }
  return s;
});

/** `${VAR}` expansion yields text; keys that take numbers or booleans read it back. */
const fromText = (v: unknown) => {
  if (typeof v !== 'string') return v;
  if (/^\d{1,15}$/.test(v.trim())) return Number(v.trim());
  if (v.trim() === 'true') return true;
  if (v.trim() === 'false') return false;
  return v;
};
const int = () => z.preprocess(fromText, z.number().int());
const bool = () => z.preprocess(fromText, z.boolean());

const port = int().pipe(z.number().min(0).max(65535));
const hostName = z.string().min(1);

const tlsSchema = z.discriminatedUnion('mode', [
  z.object({
    mode: z.literal('auto'),
    names: z.array(z.string().min(1)).min(1).default(['localhost', '127.0.0.1']),
    ttl: duration.default(24 * 3600),
  }).strict(),
  z.object({ mode: z.literal('files'), certificate: z.string().min(1), key: z.string().min(1) }).strict(),
  z.object({ mode: z.literal('off') }).strict(),
]);

const HMAC_ALGS = ['HS256', 'HS384', 'HS512'] as const;
const ASYM_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export const JWT_ALGORITHMS = [...ASYM_ALGS, ...HMAC_ALGS] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

const jwksSchema = z.union([
  z.object({ file: z.string().min(1) }).strict(),
  z.object({ url: z.url({ protocol: /^https?$/ }) }).strict(),
  z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1) }).strict(),
  z.object({ discovery: z.literal(true) }).strict(),
]);

/**
 * Issuer names the CA uses itself: `renewal` is the issuer of holder renewals
 * (policy/holder-renewal.ts RENEWAL_ISSUER) in used token ids, audit rows and metrics, so a
 * configured issuer of that name would share their namespace.
 */
export const RESERVED_ISSUER_NAMES: readonly string[] = ['renewal'];

const issuerSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only'),
    issuer: z.string().min(1),
    audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
    jwks: jwksSchema.optional(),
    secret: z.string().min(32, 'an HMAC secret must be at least 32 characters').optional(),
    algorithms: z.array(z.enum(JWT_ALGORITHMS)).min(1).default(['RS256', 'ES256', 'EdDSA']),
    identity: z.string().min(1).default('{sub}'),
    maxTokenAge: duration.optional(),
    requireJti: bool().default(false),
    /** Least time between two fetches of a remote key set (an unknown kid triggers one). */
    jwksCooldown: duration.default(30),
    /** How long a fetched key set is used before it is fetched again. */
    jwksCacheMaxAge: duration.default(600),
    /**
     * How long past jwksCacheMaxAge the last good key set is still used while its refetch fails
     * (retried with backoff); 0: never. Past it, the issuer's tokens get 503.
     */
    jwksStaleTtl: nonNegativeDuration.default(24 * 3600),
  })
  .strict()
  .superRefine((iss, ctx) => {
    if (RESERVED_ISSUER_NAMES.includes(iss.name.toLowerCase())) {
      ctx.addIssue({ code: 'custom', path: ['name'], message: `"${iss.name}" is reserved: it names the CA's own holder renewals` });
    }
    const hmac = iss.algorithms.filter((a) => (HMAC_ALGS as readonly string[]).includes(a));
    if (hmac.length > 0 && iss.secret === undefined) {
      ctx.addIssue({ code: 'custom', path: ['algorithms'], message: `${hmac.join(', ')} needs a shared "secret" on this issuer` });
    }
    if (iss.secret !== undefined && hmac.length !== iss.algorithms.length) {
      ctx.addIssue({ code: 'custom', path: ['algorithms'], message: 'an issuer with a shared secret allows HMAC algorithms only' });
    }
    if (iss.secret === undefined && iss.jwks === undefined) {
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'required: { file }, { url }, { keys } or { discovery: true }' });
    }
    if (iss.secret !== undefined && iss.jwks !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['jwks'], message: 'an issuer has either jwks or a shared secret, not both' });
    }
  });

const EKUS = ['serverAuth', 'clientAuth'] as const;
export type ExtendedKeyUsage = (typeof EKUS)[number];

const policySchema = z
  .object({
    identity: z.string().min(1),
    dns: z.array(z.string().min(1)).default([]),
    uri: z.array(z.string().min(1)).default([]),
    ip: z.array(z.string().min(1)).default([]),
    email: z.array(z.string().min(1)).default([]),
    wildcards: bool().default(false),
    maxTtl: duration.optional(),
    extendedKeyUsage: z.array(z.enum(EKUS)).min(1).default(['serverAuth', 'clientAuth']),
    /** Names of configured issuers: the policy matches only their tokens. Absent: any issuer's. */
    issuers: z.array(z.string().min(1)).min(1).optional(),
  })
  .strict();

/** Group commit of issuances when the configuration names none (database.groupCommit); measured in docs/performance.md. */
export const GROUP_COMMIT_DEFAULTS = { maxRows: 64, maxDelayMs: 0, maxInFlight: 1 } as const;

const configSchema = z
  .object({
    server: z
      .object({
        host: hostName.default('127.0.0.1'),
        port: port.default(8443),
        tls: tlsSchema.default({ mode: 'auto', names: ['localhost', '127.0.0.1'], ttl: 24 * 3600 }),
        /** Processes serving (node:cluster), `auto`: one per core. PGlite always runs one. */
        workers: z.preprocess(fromText, z.union([z.literal('auto'), z.number().int().min(1).max(64)])).default('auto'),
        /**
         * How long an idle keep-alive connection stays open (both listeners), in seconds. Longer
         * than the clients' and load balancers' own idle timeouts (60 s is common), so that the
         * client closes an idle connection, never the server under a request that is on its way:
         * node's default of 5 s races clients that reuse a connection at about that age.
         */
        keepAliveTimeout: duration.pipe(z.number().min(1).max(3600)).default(65),
      })
      .strict()
      .prefault({}),
    public: z.object({ host: hostName.default('127.0.0.1'), port: port.default(8080) }).strict().prefault({}),
    publicUrl: z.url({ protocol: /^https?$/ }).default('http://127.0.0.1:8080').transform((u) => u.replace(/\/+$/, '')),
    database: z
      .object({
        url: z.string().min(1).optional(),
        /** Connections per process (Postgres): replicas × workers × (poolSize + 5) in all (2 for CRL work, 2 for public lookups, 1 listening for new CRLs). */
        poolSize: int().pipe(z.number().min(1).max(200)).default(8),
        /**
         * Group commit of issuances (store/group-commit.ts): a batch is written when it holds
         * maxRows issuances or maxDelayMs after its first arrived, with at most maxInFlight
         * batches at a time per process (PGlite: one). Each request is answered after its
         * batch's commit. The defaults were measured (docs/performance.md).
         */
        groupCommit: z
          .object({
            maxRows: int().pipe(z.number().min(1).max(1000)).default(GROUP_COMMIT_DEFAULTS.maxRows),
            maxDelayMs: int().pipe(z.number().min(0).max(1000)).default(GROUP_COMMIT_DEFAULTS.maxDelayMs),
            maxInFlight: int().pipe(z.number().min(1).max(64)).default(GROUP_COMMIT_DEFAULTS.maxInFlight),
          })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
    dataDir: z.string().min(1).default('./data'),
    ca: z
      .object({
        certificate: z.string().min(1),
        key: z.string().min(1),
        keyPassphrase: z.string().optional(),
        chain: z.string().min(1).optional(),
      })
      .strict(),
    issuance: z
      .object({
        defaultTtl: duration.default(24 * 3600),
        maxTtl: duration.default(72 * 3600),
        backdate: nonNegativeDuration.default(60),
      })
      .strict()
      .prefault({}),
    crl: z
      .object({ validity: duration.default(24 * 3600), refresh: duration.default(3600), maxDelay: duration.default(5) })
      .strict()
      .prefault({}),
    auth: z
      .object({
        clockTolerance: nonNegativeDuration.default(30),
        issuers: z.array(issuerSchema).min(1),
        /**
         * An entry is an identity (from any issuer), or { issuer, identity }: only a token of
         * that issuer (its configured name) can claim it (API.md "Identity and policy").
         */
        admins: z
          .object({
            identities: z
              .array(z.union([z.string().min(1), z.object({ issuer: z.string().min(1), identity: z.string().min(1) }).strict()]))
              .default([]),
          })
          .strict()
          .prefault({}),
      })
      .strict(),
    policies: z.array(policySchema).default([]),
    logging: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        /**
         * Share of successful requests (status below 400) that get a request line, 0 to 1;
         * refused and failed requests are always logged.
         */
        requestSample: z.preprocess(fromText, z.number().min(0).max(1)).default(1),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        bodyBytes: int().pipe(z.number().min(1024).max(16 * 1024 * 1024)).default(64 * 1024),
        /**
         * Issuances (and renewals) per identity per window, counted in the database so that every
         * replica and worker shares them; 0: no limit. Over it: 429 rateLimited with Retry-After.
         */
        issuance: z
          .object({ perIdentity: int().pipe(z.number().min(0)).default(0), window: duration.default(60) })
          .strict()
          .prefault({}),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.issuance.defaultTtl > c.issuance.maxTtl) {
      ctx.addIssue({ code: 'custom', path: ['issuance', 'defaultTtl'], message: 'is longer than issuance.maxTtl' });
    }
    if (!c.database.url && typeof c.server.workers === 'number' && c.server.workers > 1) {
      ctx.addIssue({ code: 'custom', path: ['server', 'workers'], message: 'must be 1 (or auto) with the embedded database: only Postgres is shared by several processes' });
    }
    if (c.crl.refresh >= c.crl.validity) {
      ctx.addIssue({ code: 'custom', path: ['crl', 'refresh'], message: 'must be shorter than crl.validity' });
    }
    const names = c.auth.issuers.map((i) => i.name);
    names.forEach((n, i) => {
      if (names.indexOf(n) !== i) ctx.addIssue({ code: 'custom', path: ['auth', 'issuers', i, 'name'], message: `"${n}" is used twice` });
    });
    const unknown = (n: string) => `"${n}" is not the name of an issuer in auth.issuers (${names.join(', ')})`;
    c.auth.admins.identities.forEach((a, i) => {
      if (typeof a !== 'string' && !names.includes(a.issuer)) ctx.addIssue({ code: 'custom', path: ['auth', 'admins', 'identities', i, 'issuer'], message: unknown(a.issuer) });
    });
    c.policies.forEach((p, i) => {
      p.issuers?.forEach((n, j) => {
        if (!names.includes(n)) ctx.addIssue({ code: 'custom', path: ['policies', i, 'issuers', j], message: unknown(n) });
      });
    });
  });

export type Config = z.output<typeof configSchema>;
export type IssuerConfig = Config['auth']['issuers'][number];
export type PolicyConfig = Config['policies'][number];
export type AdminIdentity = Config['auth']['admins']['identities'][number];
export type TlsConfig = Config['server']['tls'];

/** Expands `${VAR}` and `${VAR:-default}` in every string value; an unset variable is an error. */
function expandEnv(value: unknown, env: NodeJS.ProcessEnv, path: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      throw new ConfigError(`config: ${path.join('.') || '(root)'}: environment variable ${name} is not set`);
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, [...path, String(i)]));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, expandEnv(v, env, [...path, k])]));
  }
  return value;
}

function resolvePaths(c: Config, baseDir: string): Config {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const tls = c.server.tls.mode === 'files' ? { ...c.server.tls, certificate: abs(c.server.tls.certificate), key: abs(c.server.tls.key) } : c.server.tls;
  return {
    ...c,
    server: { ...c.server, tls },
    dataDir: abs(c.dataDir),
    ca: { ...c.ca, certificate: abs(c.ca.certificate), key: abs(c.ca.key), ...(c.ca.chain ? { chain: abs(c.ca.chain) } : {}) },
    auth: {
      ...c.auth,
      issuers: c.auth.issuers.map((i) => (i.jwks && 'file' in i.jwks ? { ...i, jwks: { file: abs(i.jwks.file) } } : i)),
    },
  };
}

function formatIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => `config: ${i.path.map(String).join('.') || '(root)'}: ${i.message}`)
    .join('\n');
}

/**
 * DATABASE_URL fills database.url when the file has none, before validation, so that the rules
 * that depend on the database (server.workers) see it.
 */
function withDatabaseUrl(expanded: unknown, url: string | undefined): unknown {
  if (!url || expanded === null || typeof expanded !== 'object' || Array.isArray(expanded)) return expanded;
  const o = expanded as Record<string, unknown>;
  const database = o.database;
  if (database === undefined || database === null) return { ...o, database: { url } };
  if (typeof database === 'object' && !Array.isArray(database) && (database as Record<string, unknown>).url === undefined) return { ...o, database: { ...database, url } };
  return expanded;
}

/**
 * Parses a configuration object (already read from YAML). Relative paths are resolved against
 * baseDir (the configuration file's folder). `DATABASE_URL` fills database.url when it is absent.
 */
export function parseConfig(raw: unknown, options: { baseDir: string; env?: NodeJS.ProcessEnv }): Config {
  const env = options.env ?? process.env;
  const expanded = withDatabaseUrl(expandEnv(raw ?? {}, env, []), env.DATABASE_URL);
  const result = configSchema.safeParse(expanded);
  if (!result.success) throw new ConfigError(formatIssues(result.error));
  return resolvePaths(result.data, options.baseDir);
}

/** Reads and parses the YAML file at path. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config: ${path} is not valid YAML: ${(err as Error).message}`);
  }
  return parseConfig(raw, { baseDir: dirname(resolve(path)), env });
}

/** Where the configuration comes from: `--config FILE`, else SERVICE_CA_CONFIG, else none (development CA). */
export function configPathFrom(argv: string[], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const i = argv.findIndex((a) => a === '--config' || a.startsWith('--config='));
  if (i >= 0) {
    const arg = argv[i] ?? '';
    const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[i + 1];
    if (!value) throw new ConfigError('config: --config needs a file path');
    return value;
  }
  return env.SERVICE_CA_CONFIG || undefined;
}

/** Environment facts other modules need, read here so that config.ts stays the only reader. */
export function envFacts(env: NodeJS.ProcessEnv = process.env): { logLevel: string | undefined } {
  return { logLevel: env.LOG_LEVEL };
}
