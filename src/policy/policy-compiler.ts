/**
 * The policy compiler: checks every pattern of `policies` and turns them into matchers, once at
 * start-up. A pattern that is wrong stops start-up with a ConfigError naming the key path
 * (`config: policies.0.dns.1: ...`), as the schema's own errors do: the
 * schema (config.ts) checks the shape, this module what the patterns mean.
 */
import { BlockList, isIP } from 'node:net';
import { ConfigError, type PolicyConfig } from '../config.js';
import { compileIdentityPattern } from './identity-pattern.js';
import { ambiguousJoin, placeholders } from './name-templates.js';
import { NO_RESERVED_NAMES, reservedNames, type ReservedNames } from './reserved-names.js';

export interface CompiledPolicy {
  readonly source: PolicyConfig;
  readonly index: number;
  /** The identity pattern's captures, or undefined when the identity does not match it (linear time). */
  match(identity: string): Record<string, string> | undefined;
  readonly ipRanges: BlockList;
  /** The issuers (configured names) whose tokens this policy is for; undefined: any issuer. */
  readonly issuers: ReadonlySet<string> | undefined;
  /** Names never issued through the API (the API listener's own, `server.tls.names`). */
  readonly reserved: ReservedNames;
}

export interface PolicyCompileOptions {
  /** The API listener's names (`server.tls.names` in TLS auto mode): refused whatever a policy says. */
  reservedNames?: readonly string[];
}

const CAPTURE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The problems of one policy's patterns, each with its key path below `policies.<index>`. */
function problemsOf(p: PolicyConfig): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const captures = placeholders(p.identity);
  for (const c of captures) {
    if (!CAPTURE_NAME.test(c) || c === 'identity') problems.push({ path: ['identity'], message: `"{${c}}" is not a valid capture name` });
  }
  if (new Set(captures).size !== captures.length) problems.push({ path: ['identity'], message: 'a capture name appears twice' });
  for (const kind of ['dns', 'uri', 'email'] as const) {
    p[kind].forEach((pattern, i) => {
      for (const name of placeholders(pattern)) {
        if (name !== 'identity' && !captures.includes(name)) {
          problems.push({ path: [kind, i], message: `"{${name}}" is neither {identity} nor a capture of the identity pattern` });
        }
      }
      const ambiguous = ambiguousJoin(kind, pattern);
      if (ambiguous) problems.push({ path: [kind, i], message: `"${pattern}" could be filled two ways: ${ambiguous}` });
    });
  }
  p.ip.forEach((range, i) => {
    const [addr, bits, extra] = range.split('/');
    const family = isIP(addr ?? '');
    const max = family === 4 ? 32 : 128;
    const ok = family !== 0 && extra === undefined && (bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= max));
    if (!ok) problems.push({ path: ['ip', i], message: `"${range}" is not an IP address or CIDR range` });
  });
  return problems;
}

function ipRanges(ranges: string[]): BlockList {
  const list = new BlockList();
  for (const r of ranges) {
    const [addr, bits] = r.split('/');
    const family = isIP(addr!) === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) list.addAddress(addr!, family);
    else list.addSubnet(addr!, Number(bits), family);
  }
  return list;
}

/**
 * Compiles `policies` (already parsed by the schema). Throws a ConfigError listing every
 * problem with its key path when a pattern is wrong.
 */
export function compilePolicies(policies: PolicyConfig[], options: PolicyCompileOptions = {}): CompiledPolicy[] {
  const problems = policies.flatMap((p, index) =>
    problemsOf(p).map(({ path, message }) => `config: ${['policies', index, ...path].map(String).join('.')}: ${message}`),
  );
  if (problems.length > 0) throw new ConfigError(problems.join('\n'));
  const reserved = options.reservedNames && options.reservedNames.length > 0 ? reservedNames(options.reservedNames) : NO_RESERVED_NAMES;
  return policies.map((source, index) => {
    const identity = compileIdentityPattern(source.identity);
    return {
      source,
      index,
      match: (id: string) => identity.match(id),
      ipRanges: ipRanges(source.ip),
      issuers: source.issuers ? new Set(source.issuers) : undefined,
      reserved,
    };
  });
}
