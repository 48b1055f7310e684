#!/usr/bin/env node
/**
 * The service-ca command line. Exit codes: 0 success, 1 failure at run time, 2 bad usage.
 * `serve` and `init` run the CA itself; every other command is a client of the HTTP API.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCommand, loadCommands } from './commands.js';

/** The top-level usage: every command's summary, so every command's module is loaded for it. */
const usage = async () => `Usage: service-ca <command> [options]

Commands:
${(await loadCommands()).map((c) => `  ${c.name.padEnd(12)} ${c.summary}`).join('\n')}

Run "service-ca <command> --help" for a command's options, "service-ca --version" for the version.

Client commands find the CA through their flags, then SERVICE_CA_URL, SERVICE_CA_ROOT,
SERVICE_CA_TOKEN_FILE and SERVICE_CA_TLS_SERVER_NAME, then the context bootstrap saved.`;

/** The package's version, from the nearest package.json above this file (src/cli or dist/src/cli). */
function version(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'service-ca' && pkg.version) return pkg.version;
    } catch {
      // No package.json here; look one folder up.
    }
  }
  return 'unknown';
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name) {
    // Bad usage: the usage goes to stderr, so that a script's output stays clean.
    console.error(await usage());
    return 2;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    console.log(await usage());
    return 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    console.log(`service-ca ${version()} (node ${process.versions.node}, OpenSSL ${process.versions.openssl})`);
    return 0;
  }
  const command = await loadCommand(name);
  if (!command) {
    console.error(`service-ca: unknown command "${name}"\n\n${await usage()}`);
    return 2;
  }
  return command.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`service-ca: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
