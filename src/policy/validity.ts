/**
 * Validity of a new certificate (docs/api.md "Certificate profile"): notBefore = now − backdate;
 * notAfter = notBefore + ttl, the ttl defaulting to issuance.defaultTtl and capped by the
 * policy's and the issuance maxTtl, and never past the intermediate's notAfter (RFC 5280
 * §4.1.2.5: a certificate must not outlive its issuer).
 */
import { parseDuration } from '../duration.js';
import { CaError } from '../errors.js';

export interface ValidityRules {
  defaultTtl: number;
  maxTtl: number;
  backdate: number;
}

/** Reads a requested ttl (`Ns`, `Nm`, `Nh` or seconds); absent gives undefined. */
export function parseTtl(ttl: unknown): number | undefined {
  if (ttl === undefined || ttl === null) return undefined;
  const s = parseDuration(ttl);
  if (s === undefined || s <= 0) throw new CaError('malformed', 'ttl must be a positive duration such as "24h", "90m", "3600s" or a number of seconds');
  return s;
}

export function computeValidity(
  now: Date,
  requestedTtl: number | undefined,
  rules: ValidityRules,
  policyMaxTtl: number | undefined,
  ca: { notBefore: Date; notAfter: Date },
): { notBefore: Date; notAfter: Date } {
  const ttl = Math.min(requestedTtl ?? rules.defaultTtl, rules.maxTtl, policyMaxTtl ?? Infinity);
  const notBefore = new Date(Math.max(now.getTime() - rules.backdate * 1000, ca.notBefore.getTime()));
  // Whole seconds: X.509 times carry no fractions.
  notBefore.setUTCMilliseconds(0);
  const caEnd = Math.floor(ca.notAfter.getTime() / 1000) * 1000;
  const notAfter = new Date(Math.min(notBefore.getTime() + ttl * 1000, caEnd));
  if (notAfter.getTime() <= now.getTime()) {
    if (notAfter.getTime() === caEnd) {
      throw new CaError('unavailable', 'the intermediate CA certificate has expired; no certificate can be issued', { retryAfter: 3600 });
    }
    throw new CaError('malformed', `a ttl of ${ttl} s is not longer than issuance.backdate (${rules.backdate} s): the certificate would be expired when issued`);
  }
  return { notBefore, notAfter };
}
