/**
 * Name policy (docs/api.md "Identity and policy"): deny by default. An identity pattern captures path
 * segments (`{ns}` matches one segment); a policy's DNS, URI and email patterns are filled with
 * those captures and `{identity}`; IP SANs must fall in one of its CIDR ranges. A DNS pattern's
 * leading `*.` matches exactly one label; a requested literal wildcard needs `wildcards: true`.
 * A policy with `issuers` matches only tokens of those issuers. The request is granted by the
 * first matching policy that allows every name; the token's `sans` claim, when present, must
 * allow every name too; the API listener's own names are never granted.
 */
import { isIP } from 'node:net';
import { CaError } from '../errors.js';
import { canonicalIp } from '../ip.js';
import type { ExtendedKeyUsageName, SubjectAltNames } from '../model.js';
import { fillTemplate } from './name-templates.js';
import type { CompiledPolicy } from './policy-compiler.js';

export { compilePolicies, type CompiledPolicy, type PolicyCompileOptions } from './policy-compiler.js';

/** What a granted request may have: the policy's bounds that the signing path enforces. */
export interface Grant {
  policyIndex: number;
  maxTtl: number | undefined;
  extendedKeyUsage: ExtendedKeyUsageName[];
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
        const filled = fillTemplate('dns', p, captures, identity);
        return filled !== undefined && dnsMatches(filled, name, src.wildcards);
      });
    case 'uri':
      return src.uri.some((p) => fillTemplate('uri', p, captures, identity) === name);
    case 'email':
      return src.email.some((p) => fillTemplate('email', p, captures, identity) === name);
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
 * Decides whether identity, vouched for by the configured issuer `issuer`, may have every one of
 * the names. Throws forbidden when no policy matches the identity (a policy with `issuers`
 * matches only when `issuer` is one of them: never when it is not given), rejectedIdentifier
 * naming the refused names otherwise, first of all for the API listener's own names.
 */
export function authorizeNames(policies: CompiledPolicy[], identity: string, tokenSans: string[] | undefined, sans: SubjectAltNames, issuer: string): Grant {
  const matching = policies.flatMap((p) => {
    if (p.issuers && !p.issuers.has(issuer)) return [];
    const captures = p.match(identity);
    return captures ? [{ policy: p, captures }] : [];
  });
  if (matching.length === 0) throw new CaError('forbidden', 'no policy grants certificates to this identity');

  const names = KINDS.flatMap((kind) => sans[kind].map((name) => ({ kind, name })));
  const reserved = matching[0]!.policy.reserved;
  const ours = names.filter(({ kind, name }) => (kind === 'dns' && reserved.dns(name)) || (kind === 'ip' && reserved.ip(name)));
  if (ours.length > 0) {
    throw new CaError('rejectedIdentifier', `the CA's own API names (server.tls.names) are never issued: ${ours.map((o) => o.name).join(', ')}`);
  }
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
