/**
 * A policy's `identity` pattern (docs/api.md "Identity and policy"): literal text and `{name}`
 * captures, each capture one or more characters other than `/` (one path segment). A pattern
 * matches an identity as the anchored, greedy RegExp `^lit([^/]+)lit([^/]+)…lit$` would: the
 * first capture as long as the rest can still match, then the second, and so on.
 *
 * Hand-written, not a RegExp: when captures are separated by a character they may hold
 * (`k8s:{a}:{b}:{c}:{d}`), a backtracking engine tries every split of the identity, O(n^k):
 * four captures against a 300-character identity blocked the event loop for 1.6 s (measured),
 * and V8's linear engine is an experimental flag. Here one backward pass per pattern
 * element records which suffixes of the identity the rest of the pattern can match, then one
 * forward pass picks each capture's longest feasible end: O(n × pattern length) time and
 * memory, whatever the identity holds.
 */

type Element = { literal: string } | { capture: string };

export interface IdentityPattern {
  /** The capture names, in order. */
  readonly captures: string[];
  /** The captures when the whole identity matches, else undefined. */
  match(identity: string): Record<string, string> | undefined;
}

const CAPTURE = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

/** Splits a pattern into literals and captures (`{name}` with a valid name; any other brace is literal text). */
function elementsOf(pattern: string): Element[] {
  const elements: Element[] = [];
  for (const part of pattern.split(/(\{[A-Za-z_][A-Za-z0-9_]*\})/)) {
    const m = CAPTURE.exec(part);
    if (m) elements.push({ capture: m[1]! });
    else if (part.length > 0) elements.push({ literal: part });
  }
  return elements;
}

const SLASH = 0x2f;

export function compileIdentityPattern(pattern: string): IdentityPattern {
  const elements = elementsOf(pattern);
  const captures = elements.flatMap((e) => ('capture' in e ? [e.capture] : []));
  return {
    captures,
    match(identity) {
      const n = identity.length;
      // segmentEnd[p]: the index of the first "/" at or after p (n when none): a capture
      // starting at p ends at most there.
      const segmentEnd = new Uint32Array(n + 1);
      segmentEnd[n] = n;
      for (let p = n - 1; p >= 0; p--) segmentEnd[p] = identity.charCodeAt(p) === SLASH ? p : segmentEnd[p + 1]!;

      // fits[i][p] = 1 when elements i.. match exactly identity[p..n).
      const fits: Uint8Array[] = new Array<Uint8Array>(elements.length + 1);
      fits[elements.length] = new Uint8Array(n + 1);
      fits[elements.length]![n] = 1;
      for (let i = elements.length - 1; i >= 0; i--) {
        const e = elements[i]!;
        const next = fits[i + 1]!;
        const here = new Uint8Array(n + 1);
        if ('literal' in e) {
          const len = e.literal.length;
          for (let p = 0; p + len <= n; p++) if (next[p + len] === 1 && identity.startsWith(e.literal, p)) here[p] = 1;
        } else {
          // A capture from p fits when some end e in [p+1, segmentEnd[p]] has next[e]: keep,
          // scanning backwards, the nearest such e at or after each position.
          let nearest = Number.POSITIVE_INFINITY;
          for (let p = n; p >= 0; p--) {
            if (p + 1 <= n && next[p + 1] === 1) nearest = p + 1;
            if (nearest <= segmentEnd[p]!) here[p] = 1;
          }
        }
        fits[i] = here;
      }
      if (fits[0]![0] !== 1) return undefined;

      // Greedy walk: each capture takes its longest end from which the rest still fits.
      const values: Record<string, string> = {};
      let p = 0;
      elements.forEach((e, i) => {
        if ('literal' in e) {
          p += e.literal.length;
          return;
        }
        const next = fits[i + 1]!;
        let end = segmentEnd[p]!;
        while (next[end] !== 1) end--;
        values[e.capture] = identity.slice(p, end);
        p = end;
      });
      return values;
    },
  };
}
