#!/usr/bin/env node
/**
 * The service-ca command line. Exit codes: 0 success, 1 failure at run time, 2 bad usage.
 * `serve` and `init` run the CA itself; every other command is a client of the HTTP API.
 */
import { commands } from './commands.js';

const USAGE = `Usage: service-ca <command> [options]

Commands:
${commands.map((c) => `  ${c.name.padEnd(10)} ${c.summary}`).join('\n')}

Run "service-ca <command> --help" for a command's options.`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(USAGE);
    return name ? 0 : 2;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    console.error(`service-ca: unknown command "${name}"\n\n${USAGE}`);
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
