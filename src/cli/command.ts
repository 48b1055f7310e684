/** What a command is, and the shared way of reading its options. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfigFile, type Config } from '../config.js';
import { readFileSync } from 'node:fs';
import { ServiceCaError, type ServiceCaClient } from '../client/index.js';
import { CONNECTION_OPTIONS, clientOf, resolveConnection, type ConnectionValues } from './context.js';

export interface Command {
  name: string;
  summary: string;
  run(argv: string[]): Promise<number>;
}

/** The options of every command that obtains a certificate (request, agent). */
export const CERTIFICATE_OPTIONS = {
  ...CONNECTION_OPTIONS,
  dns: { type: 'string', multiple: true },
  ip: { type: 'string', multiple: true },
  uri: { type: 'string', multiple: true },
  email: { type: 'string', multiple: true },
  ttl: { type: 'string' },
  'key-type': { type: 'string', default: 'p256' },
  out: { type: 'string' },
} as const;

export const KEY_TYPES = ['p256', 'p384', 'rsa', 'ed25519'];

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses argv against options, answering --help with the usage text (exit 0) and bad usage with
 * the message and usage (exit 2). Returns the values, or a number to exit with.
 */
export function parseOptions<O extends Options>(argv: string[], options: O, usage: string): ReturnType<typeof parseArgs<{ options: O; args: string[]; allowPositionals: false; strict: true }>>['values'] | number {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(usage);
    return 0;
  }
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true }).values;
  } catch (err) {
    console.error(`service-ca: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
}

/** The service's configuration file, or 1 to exit with after printing why it is unusable. */
export function readConfig(path: string): Config | 1 {
  try {
    return loadConfigFile(path);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 1;
    }
    throw err;
  }
}

/**
 * A client and the bearer token for a command that needs both, from flags, environment and the
 * saved context (context.ts); 2 after printing what is missing with the usage.
 */
export function connect(v: ConnectionValues, usage: string): { client: ServiceCaClient; token: string } | number {
  const c = resolveConnection(v);
  const missing = [!c.server && '--server (or SERVICE_CA_URL, or a context saved by bootstrap)', !c.tokenFile && '--token-file (or SERVICE_CA_TOKEN_FILE)'].filter(Boolean);
  if (missing.length > 0) {
    console.error(`service-ca: ${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} required\n\n${usage}`);
    return 2;
  }
  return { client: clientOf({ ...c, server: c.server! }), token: readToken(c.tokenFile!) };
}

/** A token file's content; a file that cannot be read is an error with its name, never its content. */
export function readToken(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    throw new Error(`the token file ${file} cannot be read`);
  }
}

/** Runs an API call, printing a problem document's message and returning 1 on an API error. */
export async function callApi<T>(work: () => Promise<T>, print: (result: T) => void): Promise<number> {
  try {
    print(await work());
    return 0;
  } catch (err) {
    if (err instanceof ServiceCaError) {
      console.error(`service-ca: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

/** The items of a paged listing: every page, or only the first when `firstOnly` (a --limit was given). */
export async function collectPages<T>(page: (cursor: string | undefined) => Promise<{ items: T[]; nextCursor?: string | null }>, firstOnly: boolean): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | undefined;
  do {
    const p = await page(cursor);
    items.push(...p.items);
    cursor = firstOnly ? undefined : (p.nextCursor ?? undefined);
  } while (cursor);
  return items;
}
