/**
 * `service-ca healthcheck`: the container image's HEALTHCHECK. Exits 0 when the CA's public
 * listener answers GET /healthz (or /readyz) with 200, 1 otherwise. The listener's address comes
 * from the configuration `serve` reads, through the same loader (--config FILE, else
 * SERVICE_CA_CONFIG; `${VAR}` expansion included): public.host and public.port, asked on the
 * loopback address of its family when the listener binds every address (0.0.0.0, ::).
 *
 * This file also runs on its own, `node dist/src/cli/healthcheck.js [options]`, which is how the
 * Dockerfile calls it: docker runs the check every 10 s, and loading the whole command line
 * (every command, and the server's modules behind `serve`) costs 0.55 s of CPU and 98 MB per run,
 * against 0.16 s and 60 MB for this file and the configuration loader (compiled, Node 20, the
 * 2-core development machine, three runs each).
 */
import { realpathSync } from 'node:fs';
import { request } from 'node:http';
import { isIP } from 'node:net';
import { pathToFileURL } from 'node:url';
import { configPathFrom, type Config } from '../config.js';
import { parseDuration } from '../duration.js';
import { parseOptions, readConfig, type Command } from './command.js';

const USAGE = `Usage: service-ca healthcheck [--config FILE] [options]

Exits 0 when the CA's public listener answers GET /healthz with 200, else 1 (a container
HEALTHCHECK). The listener is where the configuration that serve reads puts it: --config FILE,
else SERVICE_CA_CONFIG; public.host and public.port, asked on 127.0.0.1 or ::1 when the
listener binds 0.0.0.0 or ::.

Options:
  --config FILE        the service's configuration file (env SERVICE_CA_CONFIG)
  --ready              ask /readyz (the database and the signing key answer) instead of /healthz
  --timeout DURATION   how long to wait for the answer (default 2s)
  --help               this text

Exit codes: 0 healthy; 1 unhealthy, no answer in time, or the configuration cannot be read;
2 bad usage or no configuration named.`;

/** The URL at which a process on this host reaches the public listener: every-address binds become loopback. */
export function publicListenerUrl(listener: Config['public'], path: string): string {
  // An IPv6 address in its canonical, bracketed form (RFC 3986 §3.2.2), so that :: and 0::0 compare equal.
  const host = isIP(listener.host) === 6 ? new URL(`http://[${listener.host}]/`).hostname : listener.host;
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host;
  return `http://${reachable}:${listener.port}${path}`;
}

/**
 * The status of GET url, on a connection of its own that closes after the answer. node:http,
 * not fetch: fetch refuses the ports on the Fetch standard's "bad port" list (6000, 6667,
 * 10080…), which a public.port may well be.
 */
function statusOf(url: string, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    req.once('close', () => clearTimeout(timer));
    req.once('error', reject);
    req.end();
  });
}

export const healthcheckCommand: Command = {
  name: 'healthcheck',
  summary: 'exit 0 when the CA\'s public listener answers /healthz (the image\'s HEALTHCHECK)',
  async run(argv) {
    const v = parseOptions(argv, { config: { type: 'string' }, ready: { type: 'boolean', default: false }, timeout: { type: 'string', default: '2s' } }, USAGE);
    if (typeof v === 'number') return v;
    const timeout = parseDuration(v.timeout);
    if (!timeout) {
      console.error(`service-ca: --timeout must be a duration of at least 1s\n\n${USAGE}`);
      return 2;
    }
    let configPath: string | undefined;
    try {
      configPath = configPathFrom(v.config === undefined ? [] : ['--config', v.config]);
    } catch (err) {
      console.error(`service-ca: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (configPath === undefined) {
      console.error(`service-ca: no configuration: --config FILE or SERVICE_CA_CONFIG\n\n${USAGE}`);
      return 2;
    }
    const config = readConfig(configPath);
    if (config === 1) return 1;
    const url = publicListenerUrl(config.public, v.ready ? '/readyz' : '/healthz');
    try {
      const status = await statusOf(url, timeout * 1000);
      if (status === 200) {
        console.log(`healthy: ${url} answered 200`);
        return 0;
      }
      console.error(`unhealthy: ${url} answered ${status}`);
      return 1;
    } catch (err) {
      // The error's code (ECONNREFUSED, EHOSTUNREACH…) says enough; its message repeats the address.
      const code = (err as NodeJS.ErrnoException).code;
      console.error(`unhealthy: ${url}: ${code ?? (err as Error).message}`);
      return 1;
    }
  },
};

/** Whether this file is the script node was started with (`node dist/src/cli/healthcheck.js`). */
function isMainScript(): boolean {
  const script = process.argv[1];
  if (script === undefined) return false;
  try {
    return pathToFileURL(realpathSync(script)).href === import.meta.url;
  } catch {
    return false;
  }
}

// Run as a script: the command, without loading the command table.
if (isMainScript()) {
  healthcheckCommand.run(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`service-ca: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 1;
    },
  );
}
