/**
 * Name resolution for challenge validation (docs/api.md "ACME"): through `acme.resolver` when it
 * is set (split DNS, tests), else through the system's resolver. Failures become ACME `dns`
 * problems naming the name, never a 500.
 */
import { promises as dns } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { CaError } from '../../../errors.js';

export interface NameResolver {
  /** The addresses of a name (IPv4 first), or the address itself for an IP identifier. */
  addresses(name: string): Promise<string[]>;
  /** The TXT records of a name, each record's strings joined. */
  txt(name: string): Promise<string[]>;
}

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'ENONAME']);

function dnsProblem(name: string, what: string, err: unknown): CaError {
  const code = (err as { code?: string }).code ?? 'error';
  return new CaError('dns', NOT_FOUND.has(code) ? `no ${what} record for ${name}` : `looking up the ${what} records of ${name} failed (${code})`);
}

/**
 * Addresses validation never connects to: unspecified, link-local (cloud metadata services live
 * at 169.254.169.254), multicast and broadcast. Loopback joins them unless `acme.allowLoopback`:
 * a client must not point the CA at its own host's services.
 */
function unreachable(allowLoopback: boolean): BlockList {
  const list = new BlockList();
  list.addSubnet('0.0.0.0', 8, 'ipv4');
  list.addSubnet('169.254.0.0', 16, 'ipv4');
  list.addSubnet('224.0.0.0', 4, 'ipv4');
  list.addAddress('255.255.255.255', 'ipv4');
  list.addAddress('::', 'ipv6');
  list.addSubnet('fe80::', 10, 'ipv6');
  list.addSubnet('ff00::', 8, 'ipv6');
  if (!allowLoopback) {
    list.addSubnet('127.0.0.0', 8, 'ipv4');
    list.addAddress('::1', 'ipv6');
  }
  return list;
}

/** An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged as the IPv4 address it carries. */
function blocked(list: BlockList, address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return list.check(mapped[1]!, 'ipv4');
  return list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

export function createNameResolver(options: { server?: string | undefined; timeoutMs: number; allowLoopback?: boolean }): NameResolver {
  const refused = unreachable(options.allowLoopback ?? false);
  /** The addresses validation may connect to; none left is the client's problem, never a connection attempt. */
  const reachable = (name: string, found: string[]): string[] => {
    const usable = found.filter((a) => !blocked(refused, a));
    if (usable.length === 0) {
      throw new CaError('connection', `${name} has no address the CA validates against (loopback, link-local, multicast and unspecified addresses are refused)`);
    }
    return usable;
  };
  const resolver = new dns.Resolver({ timeout: options.timeoutMs, tries: 2 });
  if (options.server) resolver.setServers([options.server]);
  const collect = async (lookup: () => Promise<string[]>) => {
    try {
      return await lookup();
    } catch (err) {
      if (NOT_FOUND.has((err as { code?: string }).code ?? '')) return [];
      throw err;
    }
  };
  return {
    async addresses(name) {
      if (isIP(name)) return reachable(name, [name]);
      let found: string[];
      try {
        if (!options.server) found = (await dns.lookup(name, { all: true, order: 'ipv4first' })).map((a) => a.address);
        else found = [...(await collect(() => resolver.resolve4(name))), ...(await collect(() => resolver.resolve6(name)))];
        if (found.length === 0) throw Object.assign(new Error('no address'), { code: 'ENOTFOUND' });
      } catch (err) {
        throw dnsProblem(name, 'A or AAAA', err);
      }
      return reachable(name, found);
    },
    async txt(name) {
      try {
        return (await resolver.resolveTxt(name)).map((chunks) => chunks.join(''));
      } catch (err) {
        throw dnsProblem(name, 'TXT', err);
      }
    },
  };
}
