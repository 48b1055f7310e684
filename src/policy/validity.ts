/**
 * Validity of a new certificate (docs/api.md "Certificate profile"): notBefore = now − backdate;
 * notAfter = notBefore + ttl, the ttl defaulting to issuance.defaultTtl and capped by the
 * policy's and the issuance maxTtl, and never past the intermediate's notAfter (RFC 5280
 * §4.1.2.5: a certificate must not outlive its issuer).
 */
import { CaError } from '../errors.js';

export interface ValidityRules {
  defaultTtl: number;
  maxTtl: number;
  backdate: number;
}

/**
 * A request's ttl, in the forms docs/api.md "POST /v1/certificates" gives (`Ns`, `Nm`, `Nh`, `Nd`
 * or a number of seconds); absent gives undefined. Narrower than the configuration's durations
 * (src/duration.ts: `1h30m`, `1.5h`) on purpose: what an API accepts is a contract every
 * replica and client must keep; the command line sends seconds.
 */
export function parseTtl(ttl: unknown): number | undefined {
  if (ttl === undefined || ttl === null) return undefined;
  const s = requestSeconds(ttl);
  if (s === undefined || s <= 0) throw new CaError('malformed', 'ttl must be a positive duration such as "24h", "90m", "3600s" or a number of seconds');
  return s;
}

function requestSeconds(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,10})(s|m|h|d)?$/.exec(value.trim());
  if (!m) return undefined;
  const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] ?? 's']!;
  return Number.isSafeInteger(seconds) ? seconds : undefined;
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

/**
 * An exact window asked for (ACME's `notBefore`/`notAfter`, RFC 8555 §7.1.3), honoured when it
 * fits the caps: its lifetime within the policy's and the issuance maxTtl, ending after `now`
 * and within the intermediate's validity, starting no earlier than `now` minus the backdate.
 * Without a notBefore it starts as any certificate does, or later where the backdate would
 * take the lifetime past the cap. Never shortened or moved: a window that
 * does not fit is refused (malformed), since a client asked for exactly this one. A window
 * accepted earlier (an ACME order's, at newOrder) is held to the backdate as of `acceptedAt`,
 * so that the time a client takes to prove control does not push its notBefore out of reach.
 */
export function requestedValidity(
  now: Date,
  requested: { notBefore: Date | null; notAfter: Date; acceptedAt?: Date | undefined },
  rules: ValidityRules,
  policyMaxTtl: number | undefined,
  ca: { notBefore: Date; notAfter: Date },
): { notBefore: Date; notAfter: Date } {
  const earliest = now.getTime() - rules.backdate * 1000;
  const floor = Math.min(earliest, (requested.acceptedAt ?? now).getTime() - rules.backdate * 1000);
  const notAfter = new Date(Math.floor(requested.notAfter.getTime() / 1000) * 1000);
  const cap = Math.min(rules.maxTtl, policyMaxTtl ?? Infinity);
  // Without a notBefore, the backdate gives way to the cap: a notAfter of now + maxTtl fits.
  const notBefore = requested.notBefore ? new Date(requested.notBefore) : new Date(Math.max(earliest, notAfter.getTime() - cap * 1000, ca.notBefore.getTime()));
  notBefore.setUTCMilliseconds(0);
  if (!requested.notBefore && notBefore.getTime() > now.getTime()) throw new CaError('malformed', `the window asked for is longer than the policy allows (${cap} s)`);
  if (notBefore.getTime() < floor - 1000) throw new CaError('malformed', `notBefore lies more than issuance.backdate (${rules.backdate} s) in the past`);
  if (notAfter.getTime() <= Math.max(now.getTime(), notBefore.getTime())) throw new CaError('malformed', 'notAfter must be later than notBefore and than now');
  if ((notAfter.getTime() - notBefore.getTime()) / 1000 > cap) throw new CaError('malformed', `the window asked for is longer than the policy allows (${cap} s)`);
  if (notBefore.getTime() < ca.notBefore.getTime() || notAfter.getTime() > ca.notAfter.getTime()) {
    throw new CaError('malformed', 'the window asked for lies outside the intermediate CA certificate\'s validity');
  }
  return { notBefore, notAfter };
}
