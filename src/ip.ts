/**
 * IP address text <-> octets for iPAddress SANs (RFC 5280 §4.2.1.6: 4 octets for IPv4, 16 for
 * IPv6). Node has isIP and BlockList but no conversion to octets, so the few lines are here.
 */
import { isIP } from 'node:net';

/** Canonical text: dotted quad, or RFC 5952 compressed lower-case IPv6 (via WHATWG URL). */
export function canonicalIp(text: string): string | undefined {
  const family = isIP(text);
  if (family === 4) return text.split('.').map((p) => String(Number(p))).join('.');
  if (family === 6) return new URL(`http://[${text}]/`).hostname.slice(1, -1);
  return undefined;
}

export function ipToBytes(text: string): Uint8Array | undefined {
  const canonical = canonicalIp(text);
  if (canonical === undefined) return undefined;
  if (isIP(canonical) === 4) return Uint8Array.from(canonical.split('.').map(Number));
  let parts = canonical.split(':');
  // An embedded dotted IPv4 tail (::ffff:1.2.3.4) becomes two groups.
  const last = parts[parts.length - 1] ?? '';
  if (last.includes('.')) {
    const v4 = last.split('.').map(Number);
    parts = [...parts.slice(0, -1), ((v4[0]! << 8) | v4[1]!).toString(16), ((v4[2]! << 8) | v4[3]!).toString(16)];
  }
  const gap = parts.indexOf('');
  let groups: string[];
  if (gap >= 0) {
    const head = parts.slice(0, gap).filter((p) => p !== '');
    const tail = parts.slice(gap + 1).filter((p) => p !== '');
    groups = [...head, ...Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  } else {
    groups = parts;
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[i * 2] = v >> 8;
    out[i * 2 + 1] = v & 0xff;
  });
  return out;
}

export function bytesToIp(bytes: Uint8Array): string | undefined {
  if (bytes.length === 4) return Array.from(bytes).join('.');
  if (bytes.length === 16) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
    return canonicalIp(groups.join(':'));
  }
  return undefined;
}
