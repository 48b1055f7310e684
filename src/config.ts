/**
 * The one configuration schema (docs/configuration.md and docs/config.schema.json are generated
 * from it by config-reference.ts) and the service's only reader of process.env (the command
 * line reads its own client variables in cli/context.ts). A bad file stops start-up with the
 * key's path and the problem in the message.
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

/**
 * How a value is written when the schema reads it through a transform, which JSON Schema cannot
 * show by itself: a duration, or a number or boolean that may also arrive as text (from a
 * `${VAR}` reference). Read only by the configuration reference (config-reference.ts); parsing
 * never looks at it.
 */
export const writtenAs = z.registry<{ writtenAs: 'duration' | 'nonNegativeDuration' | 'text' }>();

const duration = z
  .union([z.string(), z.number()])
  .transform((v, ctx) => {
    const s = parseDuration(v);
    if (s === undefined || s <= 0) {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use 30s, 5m, 1h30m, 7d or a number of seconds)` });
      return z.NEVER;
    }
    return s;
  })
  .register(writtenAs, { writtenAs: 'duration' });

const nonNegativeDuration = z
  .union([z.string(), z.number()])
  .transform((v, ctx) => {
    const s = parseDuration(v);
    if (s === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${v}" is not a duration (use 30s, 5m, 1h30m, 7d or a number of seconds)` });
      return z.NEVER;
    }
    return s;
  })
  .register(writtenAs, { writtenAs: 'nonNegativeDuration' });

/** `${VAR}` expansion yields text; keys that take numbers or booleans read it back. */
const fromText = (v: unknown) => {
  if (typeof v !== 'string') return v;
  if (/^\d{1,15}$/.test(v.trim())) return Number(v.trim());
  if (v.trim() === 'true') return true;
  if (v.trim() === 'false') return false;
  return v;
};
const int = () => z.preprocess(fromText, z.number().int()).register(writtenAs, { writtenAs: 'text' });
const bool = () => z.preprocess(fromText, z.boolean()).register(writtenAs, { writtenAs: 'text' });

const port = int().pipe(z.number().min(0).max(65535));
const hostName = z.string().min(1);

const tlsSchema = z
  .discriminatedUnion('mode', [
    z
      .object({
        mode: z.literal('auto').describe('A certificate this CA issues to itself, kept in memory and renewed at two thirds of its lifetime.'),
        names: z
          .array(z.string().min(1))
          .min(1)
          .default(['localhost', '127.0.0.1'])
          .describe('DNS names and IP addresses of the API listener\'s certificate. No workload can get a certificate for these names through the API, whatever a policy says.'),
        ttl: duration.default(24 * 3600).describe('Lifetime of the API listener\'s own certificate.'),
      })
      .strict(),
    z
      .object({
        mode: z.literal('files').describe('A certificate and key read from PEM files at start-up.'),
        certificate: z.string().min(1).describe('PEM file: the API listener\'s certificate, then its chain. Its DNS and IP names are never issued through the API.'),
        key: z.string().min(1).describe('PEM file: the private key of that certificate.'),
      })
      .strict(),
    z.object({ mode: z.literal('off').describe('Plain HTTP, for a TLS-terminating proxy in front; start-up logs a warning.') }).strict(),
  ])
  .describe('TLS of the API listener, chosen by `mode`: `auto`, `files` or `off`.');

const HMAC_ALGS = ['HS256', 'HS384', 'HS512'] as const;
const ASYM_ALGS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;
export const JWT_ALGORITHMS = [...ASYM_ALGS, ...HMAC_ALGS] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

const jwksSchema = z
  .union([
    z.object({ file: z.string().min(1).describe('A JWKS file, read again when it changes on disk.') }).strict(),
    z.object({ url: z.url({ protocol: /^https?$/ }).describe('A JWKS URL (http or https), fetched and cached.') }).strict(),
    z.object({ keys: z.array(z.record(z.string(), z.unknown())).min(1).describe('The keys themselves, as JWK objects.') }).strict(),
    z
      .object({
        discovery: z
          .literal(true)
          .describe('OIDC discovery: read `{issuer}/.well-known/openid-configuration`, then the `jwks_uri` it names (a Kubernetes API server serves both).'),
      })
      .strict(),
  ])
  .describe('Where the issuer\'s public keys come from: exactly one of `file`, `url`, `keys` or `discovery`. Required unless `secret` is set.');

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
      .regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" and "-" only')
      .describe('A short name for this issuer, unique in the list: used in metrics, audit rows, `auth.admins.identities[].issuer` and `policies[].issuers`. `renewal` is reserved.'),
    issuer: z.string().min(1).describe('The exact `iss` claim of the issuer\'s tokens.'),
    audience: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
      .describe('The `aud` the tokens must carry: one value, or a list of which a token must carry at least one.'),
    jwks: jwksSchema.optional(),
    secret: z
      .string()
      .min(32, 'an HMAC secret must be at least 32 characters')
      .optional()
      .describe('A shared HMAC secret of at least 32 characters, instead of `jwks`. Only with it may `algorithms` name HS256, HS384 or HS512, and then only those.'),
    algorithms: z
      .array(z.enum(JWT_ALGORITHMS))
      .min(1)
      .default(['RS256', 'ES256', 'EdDSA'])
      .describe('The JWS algorithms accepted. HMAC algorithms need `secret`; `none` is never accepted.'),
    identity: z
      .string()
      .min(1)
      .default('{sub}')
      .describe('Template that builds the identity from the claims: `{claim}` placeholders, with dots for nested claims (`{kubernetes.io.namespace}`). Identities starting with `service-ca:` are refused.'),
    maxTokenAge: duration
      .optional()
      .describe('Longest token lifetime (`exp` - `iat`) and oldest `iat` accepted. When set, tokens need `iat`.'),
    requireJti: bool()
      .default(false)
      .describe('Accept each token once: tokens need a `jti`, consumed by the issuance it authorizes, across replicas.'),
    /** Least time between two fetches of a remote key set (an unknown kid triggers one). */
    jwksCooldown: duration.default(30).describe('Least time between two fetches of a remote key set; a token with an unknown `kid` triggers one.'),
    /** How long a fetched key set is used before it is fetched again. */
    jwksCacheMaxAge: duration.default(600).describe('How long a fetched remote key set is used before it is fetched again.'),
    /**
     * How long past jwksCacheMaxAge the last good key set is still used while its refetch fails
     * (retried with backoff); 0: never. Past it, the issuer's tokens get 503.
     */
    jwksStaleTtl: nonNegativeDuration
      .default(24 * 3600)
      .describe('How long past `jwksCacheMaxAge` the last good remote key set is still used while fetching it fails. Past it, the issuer\'s tokens get 503. 0: never.'),
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
    identity: z
      .string()
      .min(1)
      .describe('The identities this policy is for: a pattern in which `{name}` captures one path segment, e.g. `spiffe://example.org/ns/{ns}/sa/{sa}`.'),
    dns: z
      .array(z.string().min(1))
      .default([])
      .describe('Allowed DNS names: patterns filled with the captures and `{identity}`. A leading `*.` matches exactly one label.'),
    uri: z.array(z.string().min(1)).default([]).describe('Allowed URI names: patterns filled like `dns`; `{identity}` alone is the identity itself.'),
    ip: z.array(z.string().min(1)).default([]).describe('Allowed IP addresses: addresses or CIDR ranges, IPv4 or IPv6.'),
    email: z.array(z.string().min(1)).default([]).describe('Allowed email names: patterns filled like `dns`.'),
    wildcards: bool().default(false).describe('Allow a CSR to ask for a literal wildcard name such as `*.payments.svc`.'),
    maxTtl: duration.optional().describe('Longest lifetime this policy grants, within `issuance.maxTtl`.'),
    extendedKeyUsage: z
      .array(z.enum(EKUS))
      .min(1)
      .default(['serverAuth', 'clientAuth'])
      .describe('The extended key usages written into certificates this policy grants.'),
    /** Names of configured issuers: the policy matches only their tokens. Absent: any issuer's. */
    issuers: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe('Names of issuers in `auth.issuers`: the policy matches only their tokens. Absent: tokens of any issuer.'),
    acme: z
      .object({
        challenges: z
          .enum(['required', 'none'])
          .default('required')
          .describe('`none`: for ACME accounts bound to an identity this policy matches, the names this policy grants are valid without a challenge (the identity token behind the binding was the proof). `required`: every name is proven by a challenge.'),
      })
      .strict()
      .prefault({})
      .describe('How ACME accounts bound to identities this policy matches prove their names.'),
  })
  .strict();

/** A key: a PEM file path, or a PKCS#11 URI (RFC 7512) of a key in the token `ca.pkcs11` names. */
const keyReference = z.string().min(1);

/** True for a PKCS#11 URI (RFC 7512 §3: the scheme is case-insensitive). */
export const isPkcs11Uri = (key: string): boolean => /^pkcs11:/i.test(key);

const caIssuer = z
  .object({
    certificate: z.string().min(1).describe('PEM file: this intermediate\'s certificate (certificates after the first are read as the chain above it).'),
    key: keyReference.describe('Its private key: a PEM file (PKCS#8, optionally encrypted) or a PKCS#11 URI.'),
    keyPassphrase: z.string().optional().describe('Passphrase of an encrypted `key`, as a `${VAR}` reference.'),
    chain: z.string().min(1).optional().describe('PEM file: the certificates above the intermediate, ending with the root (the same root for every issuer).'),
    active: z.boolean().default(false).describe('This issuer signs new certificates (renewals included). Exactly one issuer is active.'),
    // A plain string checked by refine: a format's pattern would land in the generated reference.
    renewBy: z
      .string()
      .refine((v) => /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/i.test(v) && !Number.isNaN(Date.parse(v)), {
        message: 'must be an RFC 3339 time with its offset, e.g. 2027-03-01T00:00:00Z',
      })
      .optional()
      .describe('For a retiring issuer: renewal-info tells holders of its certificates to renew by this time (RFC 3339), before their usual window, so that they move to the active issuer early; the fleet view judges them by that window.'),
  })
  .strict();

type CaSection = z.output<typeof configSchema>['ca'];

/** The `ca` rules of CROSS_KEY_RULES. */
function caRules(ca: CaSection, ctx: z.RefinementCtx): void {
  const single = ca.certificate !== undefined || ca.key !== undefined;
  if (ca.issuers && single) ctx.addIssue({ code: 'custom', path: ['ca', 'issuers'], message: 'is set together with ca.certificate/ca.key: use one form' });
  if (!ca.issuers) {
    if (ca.certificate === undefined) ctx.addIssue({ code: 'custom', path: ['ca', 'certificate'], message: 'is required (or list ca.issuers)' });
    if (ca.key === undefined) ctx.addIssue({ code: 'custom', path: ['ca', 'key'], message: 'is required (or list ca.issuers)' });
  } else {
    const active = ca.issuers.flatMap((i, n) => (i.active ? [n] : []));
    if (active.length > 1) ctx.addIssue({ code: 'custom', path: ['ca', 'issuers', active[1]!, 'active'], message: `only one issuer may be active (issuer ${active[0]} is too)` });
    if (active.length === 0 && ca.issuers.length > 1) ctx.addIssue({ code: 'custom', path: ['ca', 'issuers'], message: 'no issuer has active: true (exactly one signs new certificates)' });
    ca.issuers.forEach((i, n) => {
      if (i.renewBy !== undefined && (i.active || ca.issuers!.length === 1)) {
        ctx.addIssue({ code: 'custom', path: ['ca', 'issuers', n, 'renewBy'], message: 'is for an issuer that is not active (one being retired)' });
      }
    });
  }
  const keys = ca.issuers ? ca.issuers.map((i, n) => ({ key: i.key, path: ['ca', 'issuers', n, 'key'] })) : [{ key: ca.key ?? '', path: ['ca', 'key'] }];
  for (const { key, path } of keys) {
    if (isPkcs11Uri(key) && !ca.pkcs11) ctx.addIssue({ code: 'custom', path, message: 'is a PKCS#11 URI: set ca.pkcs11 (module and pin)' });
  }
}

/** One issuing intermediate, its files or token key, as the signer loads it. */
export interface CaIssuerSettings {
  certificate: string;
  key: string;
  keyPassphrase?: string | undefined;
  chain?: string | undefined;
  active: boolean;
  renewBy?: Date | undefined;
  /** Where its keys are in the configuration, for messages: `ca` or `ca.issuers.N`. */
  where: string;
}

/** The issuers of a checked `ca` section, in the order written; the shorthand is one active issuer. */
export function caIssuers(ca: CaSection): CaIssuerSettings[] {
  if (!ca.issuers) return [{ certificate: ca.certificate!, key: ca.key!, keyPassphrase: ca.keyPassphrase, chain: ca.chain, active: true, where: 'ca' }];
  const only = ca.issuers.length === 1;
  return ca.issuers.map((i, n) => ({
    certificate: i.certificate,
    key: i.key,
    keyPassphrase: i.keyPassphrase,
    chain: i.chain,
    active: i.active || only,
    renewBy: i.renewBy === undefined ? undefined : new Date(i.renewBy),
    where: `ca.issuers.${n}`,
  }));
}

/**
 * The rules between keys that the superRefine calls below check, in words, for the configuration
 * reference (a JSON Schema cannot say them). Keep them in step with those checks.
 */
export const CROSS_KEY_RULES: readonly string[] = [
  '`issuance.defaultTtl` is at most `issuance.maxTtl`.',
  '`crl.refresh` is shorter than `crl.validity`.',
  '`server.workers` is `auto` or 1 with the embedded database (no `database.url` and no DATABASE_URL).',
  'Each `auth.issuers[].name` is used once, and is not `renewal`.',
  'An issuer has either `jwks` or `secret`, not both and not neither; with `secret`, `algorithms` lists HMAC algorithms only, and only then may it list them.',
  '`auth.admins.identities[].issuer` and `policies[].issuers[]` name issuers of `auth.issuers`.',
  '`monitor.warningAt` is at most `monitor.criticalAt`.',
  '`ca` has either `certificate` and `key` or `issuers`, not both; exactly one of `ca.issuers` has `active: true` (a list of one may leave it out), and only an issuer that is not active has `renewBy`; a `key` that is a PKCS#11 URI needs `ca.pkcs11`.',
  'In `policies` (checked by the policy compiler, at start-up and by `service-ca config check`): a capture name in `identity` starts with a letter or `_`, holds letters, digits and `_`, is not `identity`, and appears once; every `{name}` in `dns`, `uri` and `email` is `{identity}` or a capture of `identity`; two placeholders are joined by a character neither value may hold (`{sa}.{ns}.svc`, not `{sa}-{ns}.svc`); each `ip` entry is an IP address or a CIDR range.',
];

/**
 * The fleet's severities when the configuration names none (docs/api.md "Fleet"): a warning from
 * ⅚ of the lifetime (the end of the renewal window), critical from 95 % of it or with less than
 * 15 minutes left.
 */
export const MONITOR_DEFAULTS = { warningAt: 5 / 6, criticalAt: 0.95, criticalRemaining: 15 * 60, refresh: 30 } as const;

/** A share of a certificate's lifetime, above 0 and at most 1. */
const lifetimeShare = () =>
  z
    .preprocess(fromText, z.number().gt(0).max(1))
    .register(writtenAs, { writtenAs: 'text' });

/** Group commit of issuances when the configuration names none (database.groupCommit); measured in docs/performance.md. */
export const GROUP_COMMIT_DEFAULTS = { maxRows: 64, maxDelayMs: 0, maxInFlight: 1 } as const;

export const configSchema = z
  .object({
    server: z
      .object({
        host: hostName.default('127.0.0.1').describe('Address the API listener binds to.'),
        port: port.default(8443).describe('TCP port of the API listener; 0 picks a free port.'),
        tls: tlsSchema.default({ mode: 'auto', names: ['localhost', '127.0.0.1'], ttl: 24 * 3600 }),
        /** Processes serving (node:cluster), `auto`: one per core. PGlite always runs one. */
        workers: z
          .preprocess(fromText, z.union([z.literal('auto'), z.number().int().min(1).max(64)]))
          .register(writtenAs, { writtenAs: 'text' })
          .default('auto')
          .describe('Processes serving both listeners (node:cluster). `auto`: one per core, at most 8. Always one with the embedded database, where a number above 1 is refused.'),
        /**
         * How long an idle keep-alive connection stays open (both listeners), in seconds. Longer
         * than the clients' and load balancers' own idle timeouts (60 s is common), so that the
         * client closes an idle connection, never the server under a request that is on its way:
         * node's default of 5 s races clients that reuse a connection at about that age.
         */
        keepAliveTimeout: duration
          .pipe(z.number().min(1).max(3600))
          .default(65)
          .describe('How long both listeners keep an idle keep-alive connection open, 1 s to 1 h. Keep it above the idle timeouts of clients and load balancers.'),
      })
      .strict()
      .prefault({})
      .describe('The API listener: every endpoint, the authenticated ones included.'),
    public: z
      .object({
        host: hostName.default('127.0.0.1').describe('Address the public listener binds to.'),
        port: port.default(8080).describe('TCP port of the public listener; 0 picks a free port.'),
      })
      .strict()
      .prefault({})
      .describe('The public listener: plain HTTP, no authentication. It serves the CA certificates, CRLs, renewal information, health, metrics and documents.'),
    publicUrl: z
      .url({ protocol: /^https?$/ })
      .default('http://127.0.0.1:8080')
      .transform((u) => u.replace(/\/+$/, ''))
      .describe('Base URL of the public listener as relying parties reach it: certificates name `{publicUrl}/v1/crl` and `{publicUrl}/v1/ca/intermediate.der`. A trailing slash is dropped.'),
    database: z
      .object({
        url: z
          .string()
          .min(1)
          .optional()
          .describe('A `postgres://` URL. Absent: the environment variable DATABASE_URL, else the embedded database (PGlite) under `dataDir`.'),
        /** Connections per process (Postgres): replicas × workers × (poolSize + 5) in all (2 for CRL work, 2 for public lookups, 1 listening for new CRLs). */
        poolSize: int()
          .pipe(z.number().min(1).max(200))
          .default(8)
          .describe('Postgres connections per process for requests. Each process opens 5 more: 2 for CRL work, 2 for the public listener\'s lookups, 1 listening for new CRLs.'),
        /**
         * Group commit of issuances (store/group-commit.ts): a batch is written when it holds
         * maxRows issuances or maxDelayMs after its first arrived, with at most maxInFlight
         * batches at a time per process (PGlite: one). Each request is answered after its
         * batch's commit. The defaults were measured (docs/performance.md).
         */
        groupCommit: z
          .object({
            maxRows: int()
              .pipe(z.number().min(1).max(1000))
              .default(GROUP_COMMIT_DEFAULTS.maxRows)
              .describe('Most issuances committed together in one transaction.'),
            maxDelayMs: int()
              .pipe(z.number().min(0).max(1000))
              .default(GROUP_COMMIT_DEFAULTS.maxDelayMs)
              .describe('Longest wait for more issuances after a batch\'s first, in milliseconds. 0: write what arrived in the same turn of the event loop.'),
            maxInFlight: int()
              .pipe(z.number().min(1).max(64))
              .default(GROUP_COMMIT_DEFAULTS.maxInFlight)
              .describe('Batches committing at once per process; always 1 on the embedded database.'),
          })
          .strict()
          .prefault({})
          .describe('Group commit: issuances are written in batches, and each request is answered after its batch commits.'),
      })
      .strict()
      .prefault({})
      .describe('Where records are kept: Postgres, or the embedded database.'),
    dataDir: z.string().min(1).default('./data').describe('Folder of the embedded database (unused with Postgres).'),
    ca: z
      .object({
        certificate: z.string().min(1).optional().describe('PEM file: the intermediate CA certificate that signs certificates and CRLs. Certificates after the first are read as the chain above it. The one-issuer form; `issuers` lists several.'),
        key: keyReference.optional().describe('The intermediate\'s private key: a PEM file (PKCS#8, optionally encrypted), or a PKCS#11 URI (`pkcs11:token=…;object=…`, RFC 7512) of a key in a token, with `pkcs11` set.'),
        keyPassphrase: z.string().optional().describe('Passphrase of an encrypted `key`. Write it as a `${VAR}` reference, not in the file.'),
        chain: z.string().min(1).optional().describe('PEM file: the certificates above the intermediate, ending with the self-signed root.'),
        issuers: z
          .array(caIssuer)
          .min(1)
          .optional()
          .describe('Several intermediates under one root (a rollover): exactly one `active: true` signs every new certificate; the others only sign the CRLs of the certificates they issued, until the last of those expires. Instead of `certificate`/`key`.'),
        pkcs11: z
          .object({
            module: z.string().min(1).describe('Path of the PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.'),
            pin: z.string().min(1).describe('The token user\'s PIN. Write it as a `${VAR}` reference, not in the file.'),
            secret: keyReference
              .optional()
              .describe('PKCS#11 URI of a generic secret key in the token (CKK_GENERIC_SECRET, usable for HMAC-SHA-256). ACME keys its nonces and external account bindings with secrets derived through it, since a key in a token cannot be read. Needed with `acme.enabled` when the active issuer\'s key is in a token.'),
          })
          .strict()
          .optional()
          .describe('The token that holds keys written as PKCS#11 URIs.'),
      })
      .strict()
      .describe('The issuing CA: one intermediate (`certificate`, `key`) or several (`issuers`). Paths are relative to the configuration file\'s folder.'),
    issuance: z
      .object({
        defaultTtl: duration.default(24 * 3600).describe('Lifetime of a certificate when the request names none. At most `maxTtl`.'),
        maxTtl: duration.default(72 * 3600).describe('Longest lifetime of any certificate.'),
        backdate: nonNegativeDuration.default(60).describe('How far `notBefore` lies before the time of issuance, for clients whose clocks run behind.'),
      })
      .strict()
      .prefault({})
      .describe('Certificate lifetimes.'),
    crl: z
      .object({
        validity: duration.default(24 * 3600).describe('Distance from a CRL\'s `thisUpdate` to its `nextUpdate`.'),
        refresh: duration.default(3600).describe('A new CRL is made at least this often, even without revocations. Shorter than `validity`.'),
        maxDelay: duration.default(5).describe('Longest time from a revocation to its appearance in the CRL of every replica; also the CRL\'s `Cache-Control: max-age`.'),
      })
      .strict()
      .prefault({})
      .describe('Certificate revocation lists.'),
    auth: z
      .object({
        clockTolerance: nonNegativeDuration.default(30).describe('Leeway for `exp`, `nbf` and `iat` of every token.'),
        issuers: z.array(issuerSchema).min(1).describe('The identity providers whose tokens are trusted. At least one.'),
        /**
         * An entry is an identity (from any issuer), or { issuer, identity }: only a token of
         * that issuer (its configured name) can claim it (docs/api.md "Identity and policy").
         */
        admins: z
          .object({
            identities: z
              .array(
                z
                  .union([
                    z.string().min(1).describe('An identity: an admin with a token of any issuer.'),
                    z
                      .object({
                        issuer: z.string().min(1).describe('The `name` of an issuer in `auth.issuers`: only its tokens make this identity an admin.'),
                        identity: z.string().min(1).describe('The identity, as that issuer\'s `identity` template builds it.'),
                      })
                      .strict(),
                  ])
                  .describe('An identity string, or `{ issuer, identity }`.'),
              )
              .default([])
              .describe('The admins: each entry is an identity, or `{ issuer, identity }` bound to one issuer (safer when issuers could build the same identity).'),
          })
          .strict()
          .prefault({})
          .describe('Who may use the admin endpoints.'),
      })
      .strict()
      .describe('Authentication: trusted token issuers and admins.'),
    policies: z
      .array(policySchema)
      .default([])
      .describe('Which identity may get which names. Deny by default: a request is granted by the first policy matching the identity that allows every name.'),
    logging: z
      .object({
        level: z
          .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
          .default('info')
          .describe('The log level; the environment variable LOG_LEVEL overrides it.'),
        /**
         * Share of successful requests (status below 400) that get a request line, 0 to 1;
         * refused and failed requests are always logged.
         */
        requestSample: z
          .preprocess(fromText, z.number().min(0).max(1))
          .register(writtenAs, { writtenAs: 'text' })
          .default(1)
          .describe('Share of successful requests (status below 400) that get a log line, 0 to 1. Refused and failed requests are always logged.'),
      })
      .strict()
      .prefault({})
      .describe('JSON log lines on stdout.'),
    limits: z
      .object({
        bodyBytes: int()
          .pipe(z.number().min(1024).max(16 * 1024 * 1024))
          .default(64 * 1024)
          .describe('Largest request body, in bytes; larger bodies get 413.'),
        /**
         * Issuances (and renewals) per identity per window, counted in the database so that every
         * replica and worker shares them; 0: no limit. Over it: 429 rateLimited with Retry-After.
         */
        issuance: z
          .object({
            perIdentity: int()
              .pipe(z.number().min(0))
              .default(0)
              .describe('Issuance and renewal requests per identity per window, counted in the database for all replicas and workers. Above it: 429 with Retry-After. 0: no limit.'),
            window: duration.default(60).describe('Length of the fixed window of that count.'),
          })
          .strict()
          .prefault({})
          .describe('Per-identity rate limit of issuances and renewals.'),
      })
      .strict()
      .prefault({})
      .describe('Request limits.'),
    acme: z
      .object({
        enabled: bool().default(false).describe('Serve ACME (RFC 8555) on the API listener under `/acme/`, its directory at `/acme/directory`. Every account is bound to a service identity by external account binding.'),
        resolver: z
          .string()
          .regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, 'must be host:port, an IPv6 host in brackets')
          .optional()
          .describe('The DNS server (`host:port`) the CA asks when it validates challenges: for split DNS and tests. Absent: the system resolver.'),
        challengePorts: z
          .object({
            http01: int().pipe(z.number().min(1).max(65535)).default(80).describe('Port the CA connects to for `http-01`.'),
            tlsalpn01: int().pipe(z.number().min(1).max(65535)).default(443).describe('Port the CA connects to for `tls-alpn-01`.'),
          })
          .strict()
          .prefault({})
          .describe('Ports the CA connects to when validating challenges.'),
        eabTtl: duration.default(24 * 3600).describe('How long an external account binding (`POST /v1/acme/eab`) can be used, once, to create an account.'),
        authorizationReuse: nonNegativeDuration.default(24 * 3600).describe('How long a valid authorization is reused for new orders of the same account. 0: every order proves its names again.'),
        orderLifetime: duration.default(24 * 3600).describe('How long a pending order and its pending authorizations stay usable.'),
        challengeTimeout: duration.pipe(z.number().min(1).max(120)).default(10).describe('Deadline of one attempt of a challenge validation, all of it (lookups, connections, redirects, TLS handshake, answer), 1 s to 2 min.'),
        allowLoopback: bool().default(false).describe('Validate challenges against loopback addresses (127.0.0.0/8, ::1): for clients on the CA\'s own host, and tests. Unspecified, link-local, multicast and broadcast addresses are never connected to.'),
        validations: z
          .object({
            perProcess: int().pipe(z.number().min(1).max(10_000)).default(100).describe('Validations one replica runs at once; a challenge answered beyond it is refused with 429 and Retry-After, and stays pending.'),
            perAccount: int().pipe(z.number().min(1).max(1_000)).default(10).describe('Validations of one account in flight at once, over all replicas (counted in the database).'),
          })
          .strict()
          .prefault({})
          .describe('Limits on challenge validations in flight.'),
        pendingOrdersPerAccount: int().pipe(z.number().min(1).max(100_000)).default(300).describe('Orders one account may have pending (not yet finalized, unexpired) at once; a newOrder beyond it is refused with 429.'),
      })
      .strict()
      .prefault({})
      .describe('ACME (RFC 8555) for certbot, lego, Caddy and cert-manager, with accounts bound to service identities.'),
    monitor: z
      .object({
        warningAt: lifetimeShare()
          .default(MONITOR_DEFAULTS.warningAt)
          .describe('Share of its lifetime after which an identity\'s certificate is a `warning` in the fleet view, above 0 and at most 1. Default ⅚ (0.8333…): the end of its renewal window.'),
        criticalAt: lifetimeShare()
          .default(MONITOR_DEFAULTS.criticalAt)
          .describe('Share of its lifetime after which an identity\'s certificate is `critical`, above 0 and at most 1. At least `warningAt`.'),
        criticalRemaining: nonNegativeDuration
          .default(MONITOR_DEFAULTS.criticalRemaining)
          .describe('A certificate with less time than this left is `critical`, whatever its lifetime. 0: only `criticalAt` counts.'),
        refresh: duration
          .pipe(z.number().min(1).max(3600))
          .default(MONITOR_DEFAULTS.refresh)
          .describe('How often the fleet gauges (`service_ca_identities`, `service_ca_certificates_expiring`) are recomputed, 1 s to 1 h: once per period for all replicas and workers on the database, which then all report the same counts.'),
        webhook: z
          .object({
            url: z
              .url({ protocol: /^https?$/ })
              .describe('Where alerts are POSTed (http or https), as a JSON array of Alertmanager v2 alerts: for Alertmanager, `http://host:9093/api/v2/alerts`.'),
            timeout: duration.default(5).describe('Longest wait for one POST\'s answer.'),
            maxAttempts: z
              .preprocess(fromText, z.number().int().min(1).max(20))
              .default(5)
              .register(writtenAs, { writtenAs: 'text' })
              .describe('Attempts per POST, 1 to 20, with exponential backoff between them (0.5 s, 1 s, 2 s… at most 30 s). A POST that fails them all is tried again at the next check.'),
            interval: duration
              .pipe(z.number().min(1).max(3600))
              .default(30)
              .describe('How often the fleet is checked for identities entering or leaving `missedRenewal` or `critical`, 1 s to 1 h: by one process of all replicas and workers on the database at a time.'),
            headers: z
              .record(
                z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name'),
                z.string().regex(/^[\t\x20-\x7e]*$/, 'must be printable ASCII (the value is not shown)'),
              )
              .optional()
              .describe('Extra request headers (an `Authorization` header, say), their values typically given as `${VAR}`. Values are never logged.'),
          })
          .strict()
          .optional()
          .describe('An Alertmanager-compatible POST when an identity enters `missedRenewal` state or `critical` severity (firing), and when it leaves it (resolved, `endsAt` set): once per change, retried until answered with a 2xx. Absent: no webhook.'),
      })
      .strict()
      .prefault({})
      .describe('The fleet view (GET /v1/fleet) and its gauges: when an identity\'s certificate counts as a warning or critical.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.issuance.defaultTtl > c.issuance.maxTtl) {
      ctx.addIssue({ code: 'custom', path: ['issuance', 'defaultTtl'], message: 'is longer than issuance.maxTtl' });
    }
    if (!c.database.url && typeof c.server.workers === 'number' && c.server.workers > 1) {
      ctx.addIssue({ code: 'custom', path: ['server', 'workers'], message: 'must be 1 (or auto) with the embedded database: only Postgres is shared by several processes' });
    }
    caRules(c.ca, ctx);
    if (c.monitor.warningAt > c.monitor.criticalAt) {
      ctx.addIssue({ code: 'custom', path: ['monitor', 'warningAt'], message: 'is above monitor.criticalAt' });
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
  })
  .meta({ title: 'service-ca configuration', description: 'The configuration file of service-ca (YAML).' });

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
  const keyPath = (k: string) => (isPkcs11Uri(k) ? k : abs(k));
  const tls = c.server.tls.mode === 'files' ? { ...c.server.tls, certificate: abs(c.server.tls.certificate), key: abs(c.server.tls.key) } : c.server.tls;
  return {
    ...c,
    server: { ...c.server, tls },
    dataDir: abs(c.dataDir),
    ca: {
      ...c.ca,
      ...(c.ca.certificate !== undefined ? { certificate: abs(c.ca.certificate) } : {}),
      ...(c.ca.key !== undefined ? { key: keyPath(c.ca.key) } : {}),
      ...(c.ca.chain ? { chain: abs(c.ca.chain) } : {}),
      ...(c.ca.issuers
        ? { issuers: c.ca.issuers.map((i) => ({ ...i, certificate: abs(i.certificate), key: keyPath(i.key), ...(i.chain ? { chain: abs(i.chain) } : {}) })) }
        : {}),
      ...(c.ca.pkcs11 ? { pkcs11: { ...c.ca.pkcs11, module: abs(c.ca.pkcs11.module) } } : {}),
    },
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
