/**
 * The names of the CA's own API listener (`server.tls.names`) are never issued through the API,
 * whatever a policy says (docs/api.md "Identity and policy"): a workload holding a certificate for
 * them could impersonate the CA's API to every client that trusts the root. The CA's own server
 * certificate is issued internally (policy/server-certificate.ts), never through this check.
 *
 * DNS names compare case-insensitively, and a wildcard on either side covers one label
 * (RFC 6125 §6.4.3): `*.example.org` is refused when `ca.example.org` is reserved. IP addresses
 * compare as addresses: any text form of the same octets, and an IPv4 address also in its
 * IPv4-mapped IPv6 form (RFC 4291 §2.5.5.2), which some clients match against an IPv4 peer.
 */
import { ipToBytes } from '../ip.js';

export interface ReservedNames {
  /** Whether a requested DNS name (canonical, lower case) covers or is covered by a reserved one. */
  dns(name: string): boolean;
  /** Whether a requested IP address is a reserved one. */
  ip(address: string): boolean;
}

const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/** The octets an address is compared by: an IPv4-mapped IPv6 address as its IPv4 octets. */
function addressKey(text: string): string | undefined {
  const bytes = ipToBytes(text);
  if (!bytes) return undefined;
  const mapped = bytes.length === 16 && MAPPED_PREFIX.every((b, i) => bytes[i] === b);
  return Buffer.from(mapped ? bytes.subarray(12) : bytes).toString('hex');
}

/** Whether DNS names a and b (lower case) can name one host: equal, or a wildcard's one label. */
function overlaps(a: string, b: string): boolean {
  if (a === b) return true;
  const covers = (wild: string, name: string) => wild.startsWith('*.') && name.indexOf('.') > 0 && name.slice(name.indexOf('.') + 1) === wild.slice(2);
  return covers(a, b) || covers(b, a);
}

export function reservedNames(names: readonly string[]): ReservedNames {
  const addresses = new Set<string>();
  const dns: string[] = [];
  for (const name of names) {
    const key = addressKey(name);
    if (key !== undefined) addresses.add(key);
    else dns.push(name.toLowerCase().replace(/\.$/, ''));
  }
  return {
    dns: (name) => {
      const n = name.toLowerCase().replace(/\.$/, '');
      return dns.some((r) => overlaps(r, n));
    },
    ip: (address) => {
      const key = addressKey(address);
      return key !== undefined && addresses.has(key);
    },
  };
}

export const NO_RESERVED_NAMES: ReservedNames = { dns: () => false, ip: () => false };
