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
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const TERM = /(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)/y;

export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (/^\d{1,15}$/.test(text)) return Number(text);
  if (text.length === 0 || text.length > 64) return undefined;
  let ms = 0;
  TERM.lastIndex = 0;
  while (TERM.lastIndex < text.length) {
    const m = TERM.exec(text);
    if (!m) return undefined;
    // Fractions are counted in thousandths so that 1.5h or 0.25s add up exactly.
    const [whole, fraction = ''] = m[1]!.split('.');
    const thousandths = Number(whole || '0') * 1000 + Number(fraction.slice(0, 3).padEnd(3, '0'));
    if (fraction.length > 3 && /[1-9]/.test(fraction.slice(3))) return undefined;
    ms += (thousandths * UNIT_MS[m[2]!]!) / 1000;
  }
  if (!Number.isSafeInteger(ms) || ms % 1000 !== 0) return undefined;
  return ms / 1000;
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
