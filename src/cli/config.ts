/**
 * `service-ca config check FILE`: the configuration file checked as `serve` reads it (the same
 * loader: `${VAR}` references, DATABASE_URL, relative paths), against the schema and then the
 * policy compiler, which is what start-up checks before it opens any file or the database.
 * Each problem is printed as `KEY.PATH: message` on stderr. `service-ca config schema` prints
 * the JSON Schema of the file (docs/config.schema.json). Exit 0: valid (or printed); 1: not
 * valid or unreadable; 2: bad usage.
 */
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from '../config.js';
import { configJsonSchemaText } from '../config-reference.js';
import { compilePolicies } from '../policy/policy-compiler.js';
import type { Command } from './command.js';

const USAGE = `Usage: service-ca config check FILE
       service-ca config schema

check    Reads FILE as "serve" does (\${VAR} and \${VAR:-default} expanded, DATABASE_URL for
         database.url) and checks it against the configuration schema and the policy patterns.
         Prints each problem as KEY.PATH: message on stderr. Does not open the files the
         configuration names, nor the database.
schema   Prints the JSON Schema (draft-07) of the configuration file.

Options:
  --help   this text

Exit status: 0 the file is valid (or the schema was printed), 1 it is not or cannot be read,
2 bad usage.`;

/** ConfigError lines are `config: KEY.PATH: message`; the command prints `KEY.PATH: message`. */
const problemsOf = (err: ConfigError) => err.message.split('\n').map((line) => line.replace(/^config: /, ''));

function usageError(message: string): number {
  console.error(`service-ca: ${message}\n\n${USAGE}`);
  return 2;
}

/** The positional arguments of a subcommand, or an exit code (help: 0, bad usage: 2). */
function positionals(argv: string[]): string[] | number {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE);
    return 0;
  }
  try {
    return parseArgs({ args: argv, options: {}, allowPositionals: true, strict: true }).positionals;
  } catch (err) {
    return usageError((err as Error).message);
  }
}

function check(argv: string[]): number {
  const args = positionals(argv);
  if (typeof args === 'number') return args;
  if (args.length !== 1) return usageError(args.length === 0 ? 'config check needs a FILE' : 'config check takes one FILE');
  const file = args[0]!;
  try {
    const config = loadConfigFile(file);
    compilePolicies(config.policies);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const problem of problemsOf(err)) console.error(problem);
    return 1;
  }
  console.log(`${file}: valid`);
  return 0;
}

function schema(argv: string[]): number {
  const args = positionals(argv);
  if (typeof args === 'number') return args;
  if (args.length !== 0) return usageError('config schema takes no argument');
  console.log(configJsonSchemaText().trimEnd());
  return 0;
}

export const configCommand: Command = {
  name: 'config',
  summary: 'check a configuration file (config check FILE), or print its JSON Schema (config schema)',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === '--help' || sub === '-h') {
      console.log(USAGE);
      return 0;
    }
    if (sub === 'check') return check(rest);
    if (sub === 'schema') return schema(rest);
    return usageError(sub === undefined ? 'config needs the subcommand check or schema' : `config has no subcommand "${sub}" (check or schema)`);
  },
};
