/**
 * Independent readings of the rules the fuzz tests check the code against, written from the
 * RFCs and docs/api.md rather than from src/.
 */

/** RFC 1123 §2.1 LDH labels; a leading "*" label only before at least two more (docs/api.md wildcards). */
export function isDnsName(s: string): boolean {
  if (s.length < 1 || s.length > 253 || !/^[\x20-\x7e]+$/.test(s)) return false;
  const labels = s.toLowerCase().split('.');
  return labels.every((l, i) => (i === 0 && l === '*' && labels.length > 2) || /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(l));
}

/** RFC 5952 §4 text for 4 or 16 octets: hex groups, the first longest run of zero groups as "::". */
export function ipText(b: Uint8Array): string {
  if (b.length === 4) return [...b].join('.');
  const groups = Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16));
  let best = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) [best, bestLength] = [i, j - i];
    i = j > i ? j : i + 1;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}

/** docs/api.md "Service identity": the revocation reasons the API accepts. */
export const REASON_NAMES = ['unspecified', 'keyCompromise', 'caCompromise', 'affiliationChanged', 'superseded', 'cessationOfOperation', 'privilegeWithdrawn'] as const;

/**
 * Whether octets are one DER value (X.690 §10.1): definite lengths in the shortest form, no
 * high tag numbers, and constructed values made of such values all the way down.
 */
export function isStrictDer(der: Uint8Array): boolean {
  const read = (buf: Uint8Array, start: number, end: number): boolean => {
    for (let p = start; p < end; ) {
      if (p + 2 > end) return false;
      const tag = buf[p]!;
      if ((tag & 0x1f) === 0x1f) return false;
      let len = buf[p + 1]!;
      let q = p + 2;
      if (len & 0x80) {
        const n = len & 0x7f;
        if (n === 0 || n > 4 || q + n > end || buf[q] === 0) return false;
        len = 0;
        for (let i = 0; i < n; i++) len = len * 256 + buf[q + i]!;
        if (len < 0x80) return false;
        q += n;
      }
      if (q + len > end) return false;
      if (tag & 0x20 && !read(buf, q, q + len)) return false;
      p = q + len;
    }
    return true;
  };
  return der.length > 0 && read(der, 0, der.length) && (() => {
    // Exactly one value.
    const n = der[1]! & 0x80 ? der[1]! & 0x7f : 0;
    let len = n ? 0 : der[1]!;
    for (let i = 0; i < n; i++) len = len * 256 + der[2 + i]!;
    return 2 + n + len === der.length;
  })();
}

/** C0 controls and DEL, which an identity never holds (docs/api.md; RFC 5234 CTL). */
// eslint-disable-next-line no-control-regex
export const hasControlCharacters = (s: string): boolean => /[\x00-\x1f\x7f]/.test(s);

/** Text without the characters a header value may not hold (RFC 9110 §5.5: controls but HTAB). */
// eslint-disable-next-line no-control-regex
export const headerSafe = (s: string): string => s.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '');
