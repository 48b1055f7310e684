/**
 * What `service-ca inspect TARGET` points at: an https:// URL (its host and port, 443 by
 * default), a file that exists (PEM or DER), or host:port ([v6]:port for an IPv6 address).
 */
export type ParsedTarget = { kind: 'endpoint'; host: string; port: number } | { kind: 'file'; file: string };

function port(text: string): number | undefined {
  const n = Number(text);
  return /^\d{1,5}$/.test(text) && n >= 1 && n <= 65_535 ? n : undefined;
}

/** The target, or a sentence saying why the argument is none. */
export function parseTarget(arg: string, fileExists: (path: string) => boolean): ParsedTarget | { error: string } {
  if (/^https:\/\//i.test(arg)) {
    let url: URL;
    try {
      url = new URL(arg);
    } catch {
      return { error: `${arg} is not a URL` };
    }
    return { kind: 'endpoint', host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port ? Number(url.port) : 443 };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(arg)) return { error: `${arg}: only https:// URLs are inspected` };
  if (fileExists(arg)) return { kind: 'file', file: arg };
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d+)$/.exec(arg) ?? /^([^\s:/[\]]+):(\d+)$/.exec(arg);
  const p = m ? port(m[2]!) : undefined;
  if (m && p !== undefined) return { kind: 'endpoint', host: m[1]!, port: p };
  return { error: `${arg}: no such file, and not host:port or an https:// URL` };
}
