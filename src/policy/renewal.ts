/**
 * Renewal windows (docs/api.md "Renewal window", RFC 9773 shape): for a lifetime L, the window opens
 * at notBefore + 2/3·L and closes at notBefore + 5/6·L; a revoked certificate's window is open
 * now. Clients are told to poll again after min(6 h, L/10).
 */
export interface RenewalWindow {
  start: Date;
  end: Date;
}

export function renewalWindow(cert: { notBefore: Date; notAfter: Date; revokedAt: Date | null }, now: Date): RenewalWindow {
  if (cert.revokedAt) return { start: now, end: now };
  const from = cert.notBefore.getTime();
  const lifetime = cert.notAfter.getTime() - from;
  return { start: new Date(from + Math.round((lifetime * 2) / 3)), end: new Date(from + Math.round((lifetime * 5) / 6)) };
}

/** Seconds until the client should ask again. */
export function retryAfterSeconds(cert: { notBefore: Date; notAfter: Date }): number {
  const lifetime = (cert.notAfter.getTime() - cert.notBefore.getTime()) / 1000;
  return Math.max(1, Math.min(6 * 3600, Math.floor(lifetime / 10)));
}
