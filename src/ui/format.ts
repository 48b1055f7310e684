/** How the console writes times, durations and sizes: UTC, as the API does, and in words for a person. */

export function utc(iso: string | Date): string {
  const d = typeof iso === 'string' ? new Date(iso) : iso;
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** A duration in words, to the two largest units: "3 h 12 min", "45 s". */
export function duration(ms: number): string {
  const s = Math.round(Math.abs(ms) / 1000);
  const units: [number, string][] = [
    [86_400, 'd'],
    [3600, 'h'],
    [60, 'min'],
    [1, 's'],
  ];
  const parts: string[] = [];
  let rest = s;
  for (const [size, name] of units) {
    if (rest >= size || (parts.length === 0 && size === 1)) {
      parts.push(`${Math.floor(rest / size)} ${name}`);
      rest %= size;
    }
    if (parts.length === 2) break;
  }
  return parts.join(' ');
}

/** "in 4 min" or "12 min ago", against now. */
export function relative(iso: string | Date, now = Date.now()): string {
  const t = (typeof iso === 'string' ? new Date(iso) : iso).getTime();
  return t >= now ? `in ${duration(t - now)}` : `${duration(now - t)} ago`;
}

export function bytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A serial cut for a table cell; the full serial stays in the link's accessible name and title. */
export function shortSerial(serial: string): string {
  return serial.length > 16 ? `${serial.slice(0, 8)}…${serial.slice(-6)}` : serial;
}

const STATE_LABELS: Record<string, string> = {
  healthy: 'Healthy',
  renewalDue: 'Renewal due',
  missedRenewal: 'Missed renewal',
  expired: 'Expired',
  revoked: 'Revoked',
};

export function stateLabel(state: string): string {
  return STATE_LABELS[state] ?? state;
}

export function problemText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
