/**
 * Renewal windows (docs/api.md "Renewal window", RFC 9773 shape): for a lifetime L, the window opens
 * at notBefore + 2/3·L and closes at notBefore + 5/6·L; a revoked certificate's window is open
 * now. Clients are told to poll again after min(6 h, L/10).
 *
 * A certificate of a retiring issuer with `renewBy` (config `ca.issuers[].renewBy`) has a window
 * that closes by then: it keeps its width (L/6) but ends at renewBy when that comes first,
 * never opening before notBefore, so that its holder moves to the active issuer early.
 */
export interface RenewalWindow {
  start: Date;
  end: Date;
}

export function renewalWindow(cert: { notBefore: Date; notAfter: Date; revokedAt: Date | null }, now: Date, renewBy?: Date): RenewalWindow {
  if (cert.revokedAt) return { start: now, end: now };
  const from = cert.notBefore.getTime();
  const lifetime = cert.notAfter.getTime() - from;
  const start = from + Math.round((lifetime * 2) / 3);
  const end = from + Math.round((lifetime * 5) / 6);
  if (renewBy === undefined || renewBy.getTime() >= end) return { start: new Date(start), end: new Date(end) };
  const by = Math.max(from, renewBy.getTime());
  return { start: new Date(Math.max(from, Math.min(start, by - (end - start)))), end: new Date(by) };
}

/** Seconds until the client should ask again. */
export function retryAfterSeconds(cert: { notBefore: Date; notAfter: Date }): number {
  const lifetime = (cert.notAfter.getTime() - cert.notBefore.getTime()) / 1000;
  return Math.max(1, Math.min(6 * 3600, Math.floor(lifetime / 10)));
}
