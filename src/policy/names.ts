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

/** One lower-case LDH label (RFC 1123 §2.1). */
const DNS_LABEL_VALUE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const canonicalDnsLike = (v: string) => /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(v);
/** RFC 3986 §2.3 unreserved characters: a capture can add no delimiter (`:`, `/`, `?`, `#`, `@`) and no percent-encoding to a URI. */
const URI_CAPTURE = /^[A-Za-z0-9._~-]+$/;
/** RFC 5322 §3.2.3 atext, dots and `@`: no space, quote, bracket, comma or other structure in an email name. */
const EMAIL_CAPTURE = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.@-]+$/;

/**
 * What a captured value may be, by the kind of pattern it fills. A capture comes from the
 * token's claims, so it must not change the structure of the name it fills:
 * - DNS: exactly one lower-case label: a captured `*`, a dot (`x.web` would reach into the
 *   names that `*.{sa}.{ns}.svc` reserves for sa=web) or a case variant never widens what a
 *   pattern allows. `{identity}` may be a dotted DNS-like name.
 * - URI: unreserved characters only: `https://{sa}.{ns}.example.org/id` with sa=`evil.example#`
 *   would otherwise name the host evil.example.
 * - email: atext, dots and `@` (a filled name with two `@` is never a valid request).
 * `{identity}` is the authenticated identity itself and fills URI and email patterns verbatim.
 */
const CAPTURE_RULES: Record<'dns' | 'uri' | 'email', (value: string, isIdentity: boolean) => boolean> = {
  dns: (v, isIdentity) => DNS_LABEL_VALUE.test(v) || (isIdentity && canonicalDnsLike(v)),
  uri: (v, isIdentity) => isIdentity || URI_CAPTURE.test(v),
  email: (v, isIdentity) => isIdentity || EMAIL_CAPTURE.test(v),
};

/** A pattern filled with the captures and the identity, or undefined when a value breaks its kind's rule. */
function fill(kind: 'dns' | 'uri' | 'email', pattern: string, captures: Record<string, string>, identity: string): string | undefined {
  let ok = true;
  const filled = pattern.replace(/\{([^{}]+)\}/g, (_m, name: string) => {
    const isIdentity = name === 'identity';
    const v = isIdentity ? identity : captures[name] ?? '';
    if (!CAPTURE_RULES[kind](v, isIdentity)) ok = false;
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
        const filled = fill('dns', p, captures, identity);
        return filled !== undefined && dnsMatches(filled, name, src.wildcards);
      });
    case 'uri':
      return src.uri.some((p) => fill('uri', p, captures, identity) === name);
    case 'email':
      return src.email.some((p) => fill('email', p, captures, identity) === name);
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
