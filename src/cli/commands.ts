/**
 * The command table. Each command's module is imported only when that command runs: `serve`
 * loads the whole CA (HTTP, database drivers, signer), which a client command such as the
 * image's `healthcheck` or the rotation agent never needs (about a second of start-up each).
 */
import type { Command } from './command.js';

const loaders: [string, () => Promise<Command>][] = [
  ['serve', async () => (await import('./serve.js')).serveCommand],
  ['init', async () => (await import('./init.js')).initCommand],
  ['config', async () => (await import('./config.js')).configCommand],
  ['healthcheck', async () => (await import('./healthcheck.js')).healthcheckCommand],
  ['token', async () => (await import('./token.js')).tokenCommand],
  ['request', async () => (await import('./request.js')).requestCommand],
  ['status', async () => (await import('./admin.js')).statusCommand],
  ['revoke', async () => (await import('./admin.js')).revokeCommand],
  ['list', async () => (await import('./admin.js')).listCommand],
  ['fleet', async () => (await import('./fleet.js')).fleetCommand],
  ['ca', async () => (await import('./ca.js')).caCommand],
  ['inspect', async () => (await import('./inspect.js')).inspectCommand],
  ['audit', async () => (await import('./audit.js')).auditCommand],
  ['acme', async () => (await import('./acme.js')).acmeCommand],
  ['agent', async () => (await import('./agent.js')).agentCommand],
  ['bootstrap', async () => (await import('./bootstrap.js')).bootstrapCommand],
];

/** The names the program looks commands up by; each is its module's own command name (a test). */
export const commandNames = loaders.map(([name]) => name);

/** The command called name, or undefined when there is none. */
export async function loadCommand(name: string): Promise<Command | undefined> {
  const entry = loaders.find(([n]) => n === name);
  return entry ? entry[1]() : undefined;
}

/** Every command, in the usage's order (the usage lists their summaries). */
export function loadCommands(): Promise<Command[]> {
  return Promise.all(loaders.map(([, load]) => load()));
}
