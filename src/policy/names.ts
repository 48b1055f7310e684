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
const LOCAL_PART = '[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*';

/**
 * Where a placeholder sits in a pattern, and so what a captured value may be there. A capture
 * comes from the token's claims, so it must not change the structure of the name it fills, nor
 * make two identities' names compare equal:
 * - `label`: in a DNS name, a URI's scheme or authority, or an email's domain: exactly one
 *   lower-case LDH label. These compare case-insensitively (RFC 5280 §7.2, §7.4, §7.5), so
 *   `Web` would name what `web` owns; a dot would let `sa=x.web` reach into `*.{sa}.{ns}.svc`.
 * - `segment`: in a URI's path, query or fragment (or a URN's body): RFC 3986 unreserved
 *   characters, not `.` or `..`: no `:`, `/`, `?`, `#`, `@` or percent-encoding, so that
 *   `https://id.example.org/{ns}/{sa}` cannot be made to name another path, query or user.
 * - `local`: in an email's local part: dot-atom of letters, digits, `_` and `-`.
 * - `address`: in an email pattern without a literal `@`: a whole address, local@domain.
 */
export type Slot = 'label' | 'segment' | 'local' | 'address';

const SLOT_RULES: Record<Slot, RegExp> = {
  label: DNS_LABEL_VALUE,
  segment: /^(?!\.\.?$)[A-Za-z0-9._~-]+$/,
  local: new RegExp(`^${LOCAL_PART}$`),
  address: new RegExp(`^${LOCAL_PART}@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$`),
};

/** The characters a value in each slot may hold (for the ambiguity check of configuration). */
const SLOT_CHARACTERS: Record<Slot, RegExp> = {
  label: /[a-z0-9-]/,
  segment: /[A-Za-z0-9._~-]/,
  local: /[A-Za-z0-9._-]/,
  address: /[A-Za-z0-9._@-]/,
};

/** The slot of the placeholder at offset in a pattern of kind (read from the pattern's literal text). */
export function slotAt(kind: 'dns' | 'uri' | 'email', pattern: string, offset: number): Slot {
  if (kind === 'dns') return 'label';
  if (kind === 'email') {
    const at = pattern.indexOf('@');
    return at === -1 ? 'address' : offset > at ? 'label' : 'local';
  }
  // A URI: the scheme up to the first ':', the authority after '//' up to '/', '?' or '#'.
  const colon = pattern.indexOf(':');
  if (colon === -1 || offset < colon) return 'label';
  if (pattern.startsWith('//', colon + 1)) {
    const rest = pattern.slice(colon + 3).search(/[/?#]/);
    const authorityEnd = rest === -1 ? pattern.length : colon + 3 + rest;
    if (offset < authorityEnd) return 'label';
  }
  return 'segment';
}

/**
 * Why two placeholders of a pattern can be filled two ways into one name (`{sa}-{ns}.svc`: sa=a-b,
 * ns=c and sa=a, ns=b-c), or undefined: the literal text between two placeholders must hold a
 * character that neither of their values may hold.
 */
export function ambiguousJoin(kind: 'dns' | 'uri' | 'email', pattern: string): string | undefined {
  const found = [...pattern.matchAll(/\{([^{}]+)\}/g)];
  for (let i = 1; i < found.length; i++) {
    const left = found[i - 1]!;
    const right = found[i]!;
    const between = pattern.slice(left.index + left[0].length, right.index);
    const slots = [slotAt(kind, pattern, left.index), slotAt(kind, pattern, right.index)];
    if (![...between].some((ch) => slots.every((slot) => !SLOT_CHARACTERS[slot].test(ch)))) {
      return `${left[0]} and ${right[0]} need a separator that neither value may hold (such as "." between DNS labels or "/" between path segments)`;
    }
  }
  return undefined;
}

/**
 * A pattern filled with the captures and the identity, or undefined when a value breaks its
 * slot's rule. `{identity}` is the authenticated identity: a whole URI or email pattern
 * `{identity}` is the identity verbatim; inside a longer pattern it may only stand where a
 * path segment or local part may, and only when every capture of the identity is a segment, so
 * that a claim cannot add a query or fragment through it; in a DNS name or URI authority it must
 * be a dotted lower-case DNS name.
 */
function fill(kind: 'dns' | 'uri' | 'email', pattern: string, captures: Record<string, string>, identity: string): string | undefined {
  let ok = true;
  const filled = pattern.replace(/\{([^{}]+)\}/g, (whole: string, name: string, offset: number) => {
    const slot = slotAt(kind, pattern, offset);
    if (name === 'identity') {
      if (kind !== 'dns' && whole === pattern) return identity;
      if (slot === 'label') ok &&= canonicalDnsLike(identity);
      else ok &&= Object.values(captures).every((v) => SLOT_RULES.segment.test(v));
      return identity;
    }
    const v = captures[name] ?? '';
    ok &&= SLOT_RULES[slot].test(v);
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
