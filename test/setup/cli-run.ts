/**
 * The command line for tests: `node --import tsx src/cli/index.ts ARGS` as a child process
 * (asynchronously: the app may run in this process), with its exit code, stdout and stderr
 * apart; a few at a time (each one loads the whole program); and a command's run() in this
 * process with its console output captured, for the many usage checks.
 */
import { spawn } from 'node:child_process';
import type { Command } from '../../src/cli/command.js';
import { CLI, TSX_LOADER, cleanEnv } from './processes.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** The whole invocation, for assertion messages. */
  describe: string;
}

const live = new Set<number>();
process.once('exit', () => {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
});

/** Runs `service-ca ARGS`; rejects when it has not exited within timeoutMs (and kills it). */
export function runCli(args: string[], options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX_LOADER, CLI, ...args], {
      cwd: options.cwd,
      env: cleanEnv(options.env),
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const pid = child.pid!;
    live.add(pid);
    const out: string[] = [];
    const err: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (d: string) => out.push(d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => err.push(d));
    const timer = setTimeout(() => {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // Gone already.
      }
      reject(new Error(`service-ca ${args.join(' ')} did not exit within ${options.timeoutMs ?? 60_000} ms:\n${out.join('')}${err.join('')}`));
    }, options.timeoutMs ?? 60_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(pid);
      const stdout = out.join('');
      const stderr = err.join('');
      resolve({ code, signal, stdout, stderr, describe: `service-ca ${args.join(' ')} → ${code ?? signal}\nstdout: ${stdout}\nstderr: ${stderr}` });
    });
  });
}

/** Runs the tasks with at most `limit` at a time; resolves with their results in order. */
export async function inParallel<T>(tasks: (() => Promise<T>)[], limit = 3): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** A command's run(argv) in this process, with what it wrote to console.log and console.error. */
export async function runInProcess(command: Command, argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(' '));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(' '));
  try {
    const code = await command.run(argv);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}
