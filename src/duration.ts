/**
 * Durations in configuration and requests: `Ns`, `Nm`, `Nh`, `Nd` or a number of seconds.
 * Returns whole seconds, or undefined when the text is not a duration.
 */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  }
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,10})(s|m|h|d)?$/.exec(value.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = unit === 's' ? 1 : unit === 'm' ? 60 : unit === 'h' ? 3600 : 86400;
  const seconds = n * factor;
  return Number.isSafeInteger(seconds) ? seconds : undefined;
}
