/**
 * The command line as a child process, for end-to-end tests: spawn in its own process group,
 * capture its output, wait for an HTTP answer, signal it and wait for its exit. killAll() ends
 * every group this module started and is still running (call it from an after() hook).
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';

export const PROJECT_ROOT = new URL('../../', import.meta.url).pathname.replace(/\/$/, '');
export const CLI = `${PROJECT_ROOT}/src/cli/index.ts`;
export const TSX_BIN = `${PROJECT_ROOT}/node_modules/.bin/tsx`;
/** tsx's loader as a URL, so that `node --import` works from any working folder. */
export const TSX_LOADER = import.meta.resolve('tsx');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ChildService {
  child: ChildProcess;
  pid: number;
  /** Everything written so far to stdout and stderr. */
  output(): string;
  stdout(): string;
  /** Resolves when the process has exited. */
  exited: Promise<Exit>;
  /** Whether it has exited yet. */
  readonly running: boolean;
  /** Sends a signal to the process itself (not its group). */
  signal(sig: NodeJS.Signals): void;
  /** SIGKILL to the whole process group, if still running; waits for the exit. */
  kill(): Promise<void>;
}

const live = new Set<ChildService>();
// Even when a test fails or the runner ends the file early, no child outlives this process.
process.once('exit', () => {
  for (const s of live) {
    try {
      process.kill(-s.pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
});

/** A TCP port that was free a moment ago on 127.0.0.1 (bind to 0, read, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Whether a port on 127.0.0.1 can be bound now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** The environment of the test process without the variables that would steer the CA. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env };
  // The CLI's own defaults (src/cli/context.ts) come from the test's extra variables only.
  const client = ['SERVICE_CA_URL', 'SERVICE_CA_ROOT', 'SERVICE_CA_TOKEN_FILE', 'SERVICE_CA_TLS_SERVER_NAME', 'SERVICE_CA_CONTEXT'];
  for (const k of ['DATABASE_URL', 'SERVICE_CA_CONFIG', 'LOG_LEVEL', 'NODE_OPTIONS', 'NODE_TEST_CONTEXT', 'TEST_DATABASE_URL', ...client]) delete env[k];
  return { ...env, ...extra };
}

export function spawnService(command: string, args: string[], options: SpawnOptions & { env: NodeJS.ProcessEnv }): ChildService {
  const child = spawn(command, args, { ...options, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const out: string[] = [];
  const std: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    out.push(d);
    std.push(d);
  });
  child.stderr!.setEncoding('utf8').on('data', (d: string) => out.push(d));
  let running = true;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      running = false;
      resolve({ code, signal });
    });
  });
  const pid = child.pid;
  const service: ChildService = {
    child,
    pid,
    output: () => out.join(''),
    stdout: () => std.join(''),
    exited,
    get running() {
      return running;
    },
    signal(sig) {
      if (running) process.kill(pid, sig);
    },
    async kill() {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // The group is gone already.
      }
      if (running) await exited;
      live.delete(service);
    },
  };
  live.add(service);
  void exited.then(() => {
    // Its output joins the run's logs, which test/run.mjs greps for secrets at the end.
    if (process.env.TEST_LOG_DIR) writeFileSync(join(process.env.TEST_LOG_DIR, `child-${process.pid}-${pid}.log`), out.join(''));
    // Leave grandchildren no chance to outlive their parent (tsx runs the CLI as a child).
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Nothing left in the group.
    }
    live.delete(service);
  });
  return service;
}

/** A pino line a child process printed. */
export interface LogLine {
  time: string;
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** The JSON log lines (pino) on a child's stdout, in order. */
export function logLines(service: ChildService): LogLine[] {
  return service
    .stdout()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);
}

/** Kills every process group this module started that is still alive. */
export async function killAll(): Promise<void> {
  await Promise.all([...live].map((s) => s.kill()));
}

/** Polls url until it answers status (or the process exits, or timeoutMs passes). */
export async function waitForStatus(url: string, status: number, service: ChildService | undefined, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (service && !service.running) {
      const e = await service.exited;
      throw new Error(`the process exited (code ${e.code}, signal ${e.signal}) before ${url} answered ${status}:\n${service.output()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
      last = `${res.status} ${await res.text()}`;
      if (res.status === status) return;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 150));
  }
  throw new Error(`${url} did not answer ${status} within ${timeoutMs} ms (last: ${last})${service ? `\n${service.output()}` : ''}`);
}

/** Resolves with the exit, or rejects after timeoutMs. */
export async function exitWithin(service: ChildService, timeoutMs: number): Promise<Exit & { ms: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    const e = await Promise.race([
      service.exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the process did not exit within ${timeoutMs} ms:\n${service.output()}`)), timeoutMs);
      }),
    ]);
    return { ...e, ms: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}
