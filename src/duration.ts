/**
 * Durations in configuration, requests and the command line, written as Go and Kubernetes write
 * them: one or more `NUMBER UNIT` terms with no spaces (`90s`, `5m`, `1h30m`, `1.5h`, `2d12h`),
 * units `ms`, `s`, `m`, `h` and `d` (a day of 24 h; Go has no `d`, ours is an addition), or a
 * bare whole number of seconds (`3600`, or the number 3600 in YAML or JSON).
 *
 * Returns whole seconds, or undefined when the text is not a duration, is negative, does not
 * come to a whole number of seconds (`1500ms` does not; `1500ms500ms` does) or is too large to
 * count exactly. Hand-written: the npm duration parsers either read English (`1 hour`) or do
 * not refuse what we must refuse (fractions of a second, unknown units, trailing text).
 */
const UNIT_MS: Record<string, bigint> = { ms: 1n, s: 1000n, m: 60_000n, h: 3_600_000n, d: 86_400_000n };
const TERM = /(\d+)?(?:\.(\d+))?(ms|s|m|h|d)/y;
const MAX_SECONDS = BigInt(Number.MAX_SAFE_INTEGER);

export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d{1,15}$/.test(text)) return Number(text);
  if (text.length === 0 || text.length > 64) return undefined;
  // Counted exactly, in units of 10^-k ms for a fraction of k digits: 1.5h and 0.1s0.9s add up
  // to whole seconds where floating point would not.
  let total = 0n;
  let scale = 1n;
  TERM.lastIndex = 0;
  while (TERM.lastIndex < text.length) {
    const m = TERM.exec(text);
    if (!m || (m[1] === undefined && m[2] === undefined)) return undefined;
    const fraction = m[2] ?? '';
    const termScale = 10n ** BigInt(fraction.length);
    const term = (BigInt(m[1] ?? '0') * termScale + BigInt(fraction || '0')) * UNIT_MS[m[3]!]!;
    // total/scale + term/termScale, over the larger scale.
    if (termScale > scale) {
      total *= termScale / scale;
      scale = termScale;
    }
    total += term * (scale / termScale);
  }
  const perSecond = 1000n * scale;
  if (total % perSecond !== 0n || total / perSecond > MAX_SECONDS) return undefined;
  return Number(total / perSecond);
}

/** Seconds written the way parseDuration reads them, largest units first (`1h30m`, `45s`, `0s`). */
export function formatDuration(seconds: number): string {
  if (seconds === 0) return '0s';
  const parts: string[] = [];
  let rest = seconds;
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) parts.push(`${n}${unit}`);
    rest -= n * size;
  }
  return parts.join('');
}
