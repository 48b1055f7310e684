/**
 * Name policy (API.md "Identity and policy"): deny by default. An identity pattern captures path
 * segments (`{ns}` matches one segment); a policy's DNS, URI and email patterns are filled with
 * those captures and `{identity}`; IP SANs must fall in one of its CIDR ranges. A DNS pattern's
 * leading `*.` matches exactly one label; a requested literal wildcard needs `wildcards: true`.
 * The request is granted by the first matching policy that allows every name; the token's `sans`
 * claim, when present, must allow every name too.
 */
import { BlockList, isIP } from 'node:net';
import type { PolicyConfig } from '../config.js';
import { CaError } from '../errors.js';
import { canonicalIp } from '../ip.js';
import type { ExtendedKeyUsageName, SubjectAltNames } from '../model.js';

export interface CompiledPolicy {
  readonly source: PolicyConfig;
  readonly index: number;
  match(identity: string): Record<string, string> | undefined;
  ipRanges: BlockList;
}

/** What a granted request may have: the policy's bounds that the signing path enforces. */
export interface Grant {
  policyIndex: number;
  maxTtl: number | undefined;
  extendedKeyUsage: ExtendedKeyUsageName[];
}

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function compileIdentity(pattern: string): (identity: string) => Record<string, string> | undefined {
  const names: string[] = [];
  const source = pattern
    .split(/(\{[A-Za-z_][A-Za-z0-9_]*\})/)
    .map((part) => {
      const m = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/.exec(part);
      if (m) {
        names.push(m[1]!);
        return '([^/]+)';
      }
      return escapeRegExp(part);
    })
    .join('');
  const re = new RegExp(`^${source}$`, 's');
  return (identity) => {
    const m = re.exec(identity);
    if (!m) return undefined;
    return Object.fromEntries(names.map((n, i) => [n, m[i + 1]!]));
  };
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

export function compilePolicies(policies: PolicyConfig[]): CompiledPolicy[] {
  return policies.map((source, index) => ({ source, index, match: compileIdentity(source.identity), ipRanges: ipRanges(source.ip) }));
}

function fill(pattern: string, captures: Record<string, string>, identity: string): string {
  return pattern.replace(/\{([^{}]+)\}/g, (_m, name: string) => (name === 'identity' ? identity : captures[name] ?? ''));
}

/** One lower-case LDH label (RFC 1123 §2.1). */
const DNS_LABEL_VALUE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A DNS pattern filled with captures, or undefined when a captured value is not exactly one
 * lower-case DNS label: a captured `*`, a dot (`x.web` would reach into the names that
 * `*.{sa}.{ns}.svc` reserves for sa=web) or a case variant never widens what a pattern allows.
 */
const canonicalDnsLike = (v: string) => /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(v);

function fillDns(pattern: string, captures: Record<string, string>, identity: string): string | undefined {
  let ok = true;
  const filled = pattern.replace(/\{([^{}]+)\}/g, (_m, name: string) => {
    const v = name === 'identity' ? identity : captures[name] ?? '';
    if (!DNS_LABEL_VALUE.test(v) && !(name === 'identity' && canonicalDnsLike(v))) ok = false;
    return v;
  });
  return ok ? filled : undefined;
}

/** Label-wise DNS match: a leading `*` label in the pattern stands for exactly one label. */
export function dnsMatches(pattern: string, name: string, wildcards: boolean): boolean {
  const p = pattern.toLowerCase().split('.');
  const n = name.toLowerCase().split('.');
  if (p.length !== n.length) return false;
  if (n[0] === '*' && !wildcards) return false;
  return p.every((label, i) => label === n[i] || (i === 0 && label === '*' && n[0]!.length > 0));
}

function allowedBy(policy: CompiledPolicy, captures: Record<string, string>, identity: string, kind: keyof SubjectAltNames, name: string): boolean {
  const src = policy.source;
  switch (kind) {
    case 'dns':
      return src.dns.some((p) => {
        const filled = fillDns(p, captures, identity);
        return filled !== undefined && dnsMatches(filled, name, src.wildcards);
      });
    case 'uri':
      return src.uri.some((p) => fill(p, captures, identity) === name);
    case 'email':
      return src.email.some((p) => fill(p, captures, identity) === name);
    case 'ip':
      return policy.ipRanges.check(name, isIP(name) === 4 ? 'ipv4' : 'ipv6');
  }
}

function allowedByToken(tokenSans: string[], kind: keyof SubjectAltNames, name: string): boolean {
  switch (kind) {
    case 'dns':
      return tokenSans.some((s) => s.toLowerCase() === name.toLowerCase());
    case 'ip':
      return tokenSans.some((s) => canonicalIp(s) === name);
    default:
      return tokenSans.includes(name);
  }
}

const KINDS: (keyof SubjectAltNames)[] = ['dns', 'ip', 'uri', 'email'];

/**
 * Decides whether identity may have every one of the names. Throws forbidden when no policy
 * matches the identity, rejectedIdentifier naming the refused names otherwise.
 */
export function authorizeNames(policies: CompiledPolicy[], identity: string, tokenSans: string[] | undefined, sans: SubjectAltNames): Grant {
  const matching = policies.flatMap((p) => {
    const captures = p.match(identity);
    return captures ? [{ policy: p, captures }] : [];
  });
  if (matching.length === 0) throw new CaError('forbidden', 'no policy grants certificates to this identity');

  const names = KINDS.flatMap((kind) => sans[kind].map((name) => ({ kind, name })));
  if (tokenSans) {
    const outside = names.filter(({ kind, name }) => !allowedByToken(tokenSans, kind, name));
    if (outside.length > 0) {
      throw new CaError('rejectedIdentifier', `outside the names this token allows (its "sans" claim, or the certificate being renewed): ${outside.map((o) => o.name).join(', ')}`);
    }
  }
  let fewestOutside: { kind: keyof SubjectAltNames; name: string }[] | undefined;
  for (const { policy, captures } of matching) {
    const outside = names.filter(({ kind, name }) => !allowedBy(policy, captures, identity, kind, name));
    if (outside.length === 0) {
      return { policyIndex: policy.index, maxTtl: policy.source.maxTtl, extendedKeyUsage: policy.source.extendedKeyUsage };
    }
    if (!fewestOutside || outside.length < fewestOutside.length) fewestOutside = outside;
  }
  throw new CaError('rejectedIdentifier', `outside the policy for this identity: ${fewestOutside!.map((o) => o.name).join(', ')}`);
}
