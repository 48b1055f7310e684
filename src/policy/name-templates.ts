/**
 * A policy's DNS, URI and email patterns are templates filled with the identity's captures and
 * `{identity}` (docs/api.md "Identity and policy"). Where a placeholder sits decides what its value
 * may be, so that a value taken from a token's claims cannot change the structure of the name
 * it fills, nor make two identities' names compare equal.
 */

/** Placeholders `{name}` in a pattern, in order (any text between braces: checked by the compiler). */
export function placeholders(pattern: string): string[] {
  return [...pattern.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1] ?? '');
}

/** One lower-case LDH label (RFC 1123 §2.1). */
const DNS_LABEL_VALUE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const canonicalDnsLike = (v: string) => /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(v);
const LOCAL_PART = '[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)*';

/**
 * Where a placeholder sits in a pattern, and so what a captured value may be there:
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
export type TemplateKind = 'dns' | 'uri' | 'email';

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
export function slotAt(kind: TemplateKind, pattern: string, offset: number): Slot {
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
export function ambiguousJoin(kind: TemplateKind, pattern: string): string | undefined {
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
export function fillTemplate(kind: TemplateKind, pattern: string, captures: Record<string, string>, identity: string): string | undefined {
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
