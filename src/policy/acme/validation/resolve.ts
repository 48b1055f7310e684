/**
 * Name resolution for challenge validation (docs/api.md "ACME"): through `acme.resolver` when it
 * is set (split DNS, tests), else through the system's resolver. Failures become ACME `dns`
 * problems naming the name, never a 500.
 */
import { promises as dns } from 'node:dns';
import { isIP } from 'node:net';
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

export function createNameResolver(options: { server?: string | undefined; timeoutMs: number }): NameResolver {
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
      if (isIP(name)) return [name];
      try {
        if (!options.server) return (await dns.lookup(name, { all: true, order: 'ipv4first' })).map((a) => a.address);
        const found = [...(await collect(() => resolver.resolve4(name))), ...(await collect(() => resolver.resolve6(name)))];
        if (found.length === 0) throw Object.assign(new Error('no address'), { code: 'ENOTFOUND' });
        return found;
      } catch (err) {
        throw dnsProblem(name, 'A or AAAA', err);
      }
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
