/**
 * Where a client command finds the CA: its flags first, then environment variables, then the
 * context `service-ca bootstrap` saved (the API URL, the pinned root and its fingerprint), so that
 * after one bootstrap no command repeats `--server` and `--ca`.
 *
 *   flag                 environment                    context
 *   --server URL         SERVICE_CA_URL                 server
 *   --ca FILE            SERVICE_CA_ROOT                root (a file in the context's folder)
 *   --token-file FILE    SERVICE_CA_TOKEN_FILE          -
 *   --tls-server-name    SERVICE_CA_TLS_SERVER_NAME     tlsServerName
 *   --context NAME       SERVICE_CA_CONTEXT             (the current one)
 *
 * Contexts live in `$SERVICE_CA_CONFIG_DIR`, else `$XDG_CONFIG_HOME/service-ca`, else
 * `~/.config/service-ca`: `contexts/NAME/context.json` and `contexts/NAME/root.pem`, and the
 * name of the current one in `current-context`.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ServiceCaClient } from '../client/index.js';
import { writeFileAtomic } from './files.js';

/** The options every command that talks to the API listener takes. */
export const CONNECTION_OPTIONS = {
  server: { type: 'string' },
  ca: { type: 'string' },
  'token-file': { type: 'string' },
  'tls-server-name': { type: 'string' },
  context: { type: 'string' },
} as const;

/** Their lines in a command's usage text. */
export const CONNECTION_USAGE = `  --server URL          the CA's API listener (env SERVICE_CA_URL; else the saved context)
  --ca FILE             PEM root to trust for the server (env SERVICE_CA_ROOT; else the context's)
  --token-file FILE     the bearer token (env SERVICE_CA_TOKEN_FILE)
  --tls-server-name NAME  the name the server's certificate must hold, when it is not the URL's
                        host (a port-forward to localhost, say) (env SERVICE_CA_TLS_SERVER_NAME)
  --context NAME        a context saved by bootstrap (env SERVICE_CA_CONTEXT; default: the current)`;

export interface SavedContext {
  /** The API listener's URL, when bootstrap was told it. */
  server?: string | undefined;
  /** The public listener the root was fetched from. */
  publicUrl: string;
  /** The root's SHA-256 fingerprint, lowercase hex. */
  fingerprint: string;
  tlsServerName?: string | undefined;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SERVICE_CA_CONFIG_DIR) return env.SERVICE_CA_CONFIG_DIR;
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, 'service-ca');
  return join(homedir(), '.config', 'service-ca');
}

export const isContextName = (name: string) => NAME.test(name);

const contextFolder = (name: string) => join(configDir(), 'contexts', name);

/** The file of a saved context's pinned root. */
export const contextRootFile = (name: string) => join(contextFolder(name), 'root.pem');

/** Saves a context and makes it the current one. The root is written beside it. */
export function saveContext(name: string, context: SavedContext, rootPem: string): string {
  if (!isContextName(name)) throw new Error(`"${name}" is not a context name (letters, digits, ".", "_", "-")`);
  const folder = contextFolder(name);
  mkdirSync(folder, { recursive: true, mode: 0o700 });
  writeFileAtomic(contextRootFile(name), rootPem, 0o644);
  writeFileAtomic(join(folder, 'context.json'), `${JSON.stringify(context, null, 2)}\n`, 0o644);
  writeFileAtomic(join(configDir(), 'current-context'), `${name}\n`, 0o644);
  return folder;
}

/** The name of the context in use: --context, then SERVICE_CA_CONTEXT, then the current one. */
function contextName(flag: string | undefined): string | undefined {
  const named = flag ?? (process.env.SERVICE_CA_CONTEXT || undefined);
  if (named !== undefined) return named;
  try {
    const current = readFileSync(join(configDir(), 'current-context'), 'utf8').trim();
    return current || undefined;
  } catch {
    return undefined;
  }
}

/** A saved context, undefined when there is none; throws when one was named but is missing or unreadable. */
export function loadContext(flag?: string): (SavedContext & { name: string; rootFile: string }) | undefined {
  const name = contextName(flag);
  if (name === undefined) return undefined;
  if (!isContextName(name)) throw new Error(`"${name}" is not a context name`);
  const file = join(contextFolder(name), 'context.json');
  if (!existsSync(file)) {
    if (flag === undefined && !process.env.SERVICE_CA_CONTEXT) return undefined;
    throw new Error(`no saved context "${name}" (run service-ca bootstrap --context ${name} first)`);
  }
  let saved: SavedContext;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as SavedContext;
  } catch {
    throw new Error(`the saved context "${name}" cannot be read (${file})`);
  }
  return { ...saved, name, rootFile: contextRootFile(name) };
}

export interface ConnectionValues {
  server?: string | undefined;
  ca?: string | undefined;
  'token-file'?: string | undefined;
  'tls-server-name'?: string | undefined;
  context?: string | undefined;
}

export interface Connection {
  server: string | undefined;
  /** The root file to trust, and its PEM. */
  caFile: string | undefined;
  caPem: string | undefined;
  tokenFile: string | undefined;
  tlsServerName: string | undefined;
}

/** An environment variable's value; an empty one counts as unset. */
const fromEnv = (name: string) => process.env[name] || undefined;

/**
 * Flags, then environment, then the saved context. The context is read only for what flags and
 * environment leave open, and its root and TLS server name go only with its own server: a server
 * named by flag or variable is trusted through --ca or SERVICE_CA_ROOT alone. Throws when a named
 * context or a root file is unusable.
 */
export function resolveConnection(v: ConnectionValues): Connection {
  const server = v.server ?? fromEnv('SERVICE_CA_URL');
  const named = v.context ?? fromEnv('SERVICE_CA_CONTEXT');
  const context = server === undefined || named !== undefined ? loadContext(named) : undefined;
  const fromContext = server === undefined && context?.server !== undefined;
  const caFile = v.ca ?? fromEnv('SERVICE_CA_ROOT') ?? (fromContext || server === undefined ? context?.rootFile : undefined);
  let caPem: string | undefined;
  if (caFile !== undefined) {
    try {
      caPem = readFileSync(caFile, 'utf8');
    } catch {
      throw new Error(`the root file ${caFile} cannot be read`);
    }
  }
  return {
    server: server ?? context?.server,
    caFile,
    caPem,
    tokenFile: v['token-file'] ?? fromEnv('SERVICE_CA_TOKEN_FILE'),
    tlsServerName: v['tls-server-name'] ?? fromEnv('SERVICE_CA_TLS_SERVER_NAME') ?? (fromContext ? context?.tlsServerName : undefined),
  };
}

/** A client for a resolved connection that has a server. */
export function clientOf(c: Connection & { server: string }): ServiceCaClient {
  return new ServiceCaClient({ baseUrl: c.server, ca: c.caPem, tlsServerName: c.tlsServerName });
}
