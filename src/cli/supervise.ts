/**
 * The agent as a supervisor. Once a new certificate is in place, so that the service picks it up,
 * it sends a signal to a process named by --signal-pid, or to the pid a file holds at that moment
 * (--pid-file: nginx and its kind write a new one whenever they restart), or to the command the
 * agent runs itself (--exec); then it runs the --on-renew hook. A signal that cannot be sent, or a
 * pid file that is missing or garbled, is logged and never stops the agent: the certificate on
 * disk is already the new one.
 *
 * --exec CMD runs `exec CMD` through /bin/sh, so CMD is written in shell syntax (quotes, $VAR)
 * but must be one simple command: the shell replaces itself with it, and the pid the agent
 * signals is the command's own. (A shell left in between would receive the signal instead, die
 * of SIGHUP's default action and leave the service running unsupervised.) For a pipeline or
 * several commands, run a script that ends in `exec`. The child inherits the agent's
 * environment, standard output and error, and stays in its process group (so that whoever ends
 * the agent's group ends it too). While it runs, SIGTERM and SIGINT are passed on to it, and the
 * agent exits when it does, with its status; before it starts, and without --exec, they stop the
 * agent. (Ctrl-C on a terminal signals the whole foreground group, so the command then gets
 * SIGINT twice: from the terminal and from the agent.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { constants } from 'node:os';
import type { Logger } from 'pino';

/** Where the reload signal goes. */
export type SignalTarget = { kind: 'pid'; pid: number } | { kind: 'pid-file'; file: string } | { kind: 'exec'; child: () => Supervised | undefined } | { kind: 'none' };

/** A positive process id (0 and negative numbers would name process groups). */
export const isPid = (n: number) => Number.isSafeInteger(n) && n > 0;

/** The pid in a pid file now: its first line, a positive integer; else why there is none. */
export function readPidFile(file: string): { pid: number } | { problem: string } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    return { problem: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'the pid file does not exist' : `the pid file cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  const line = text.split('\n')[0]!.trim();
  const pid = /^\d{1,10}$/.test(line) ? Number(line) : NaN;
  return isPid(pid) ? { pid } : { problem: 'the pid file does not hold a process id' };
}

function signalPid(pid: number, signal: NodeJS.Signals, logger: Logger, via: Record<string, unknown> = {}): void {
  // 0 and negative numbers name process groups (-1: every process of this user): never those.
  if (!isPid(pid)) {
    logger.error({ pid, signal, ...via }, 'could not signal: not a process id');
    return;
  }
  try {
    process.kill(pid, signal);
    logger.info({ pid, signal, ...via }, 'signalled');
  } catch (err) {
    logger.error({ pid, signal, ...via, err: (err as NodeJS.ErrnoException).code ?? (err as Error).message }, 'could not signal');
  }
}

/** The reload signal, sent to the target as it is now. */
export function sendReloadSignal(target: SignalTarget, signal: NodeJS.Signals, logger: Logger): void {
  if (target.kind === 'pid') signalPid(target.pid, signal, logger);
  else if (target.kind === 'pid-file') {
    const read = readPidFile(target.file);
    if ('pid' in read) signalPid(read.pid, signal, logger, { pidFile: target.file });
    else logger.error({ pidFile: target.file, problem: read.problem, signal }, 'could not signal: no process id in the pid file');
  } else if (target.kind === 'exec') {
    // Before the first certificate the child has not been started; it will read the files at start.
    const child = target.child();
    if (child?.running) signalPid(child.pid, signal, logger, { exec: true });
  }
}

/** Runs the --on-renew hook through /bin/sh and logs how it ended. */
export async function runHook(command: string, logger: Logger): Promise<void> {
  const code = await new Promise<number>((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('exit', (c, s) => resolve(c ?? exitStatusOfSignal(s)));
    child.on('error', () => resolve(127));
  });
  if (code === 0) logger.info({ command }, 'reload hook ran');
  else logger.error({ command, code }, 'reload hook failed');
}

/** A shell's exit status for a process ended by a signal: 128 + the signal's number. */
export const exitStatusOfSignal = (signal: NodeJS.Signals | null) => 128 + (signal ? (constants.signals[signal] ?? 0) : 0);

/** The command --exec runs. */
export interface Supervised {
  readonly pid: number;
  readonly running: boolean;
  signal(sig: NodeJS.Signals): void;
  /** Its exit status (128 + n when ended by signal n). */
  readonly exited: Promise<number>;
}

/**
 * Starts `exec CMD` through /bin/sh (see the header). When the agent itself exits while the child
 * runs (an error it could not handle), the child is sent SIGTERM rather than left behind.
 */
export function startSupervised(command: string, logger: Logger): Supervised {
  const child: ChildProcess = spawn('/bin/sh', ['-c', `exec ${command}`], { stdio: ['ignore', 'inherit', 'inherit'] });
  let running = true;
  const orphanGuard = () => {
    if (running && child.pid !== undefined) process.kill(child.pid, 'SIGTERM');
  };
  process.once('exit', orphanGuard);
  const exited = new Promise<number>((resolve) => {
    child.once('exit', (code, signal) => {
      running = false;
      process.removeListener('exit', orphanGuard);
      resolve(code ?? exitStatusOfSignal(signal));
    });
    child.once('error', (err) => {
      running = false;
      process.removeListener('exit', orphanGuard);
      logger.error({ command, err: err.message }, 'could not start the command');
      resolve(127);
    });
  });
  logger.info({ command, pid: child.pid }, 'started the command');
  return {
    pid: child.pid ?? -1,
    get running() {
      return running;
    },
    signal(sig) {
      if (!running || child.pid === undefined) return;
      try {
        process.kill(child.pid, sig);
      } catch {
        // It exited meanwhile: its exit is reported through `exited`.
      }
    },
    exited,
  };
}

/** A sleep that stop() cuts short (SIGTERM, or the end of the --exec command). */
export function sleeper() {
  let wake: (() => void) | undefined;
  let stopped = false;
  return {
    get stopped() {
      return stopped;
    },
    stop() {
      stopped = true;
      wake?.();
    },
    sleep(ms: number) {
      return new Promise<void>((resolve) => {
        if (stopped) return resolve();
        const t = setTimeout(resolve, Math.max(0, ms));
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    },
  };
}

export type Sleeper = ReturnType<typeof sleeper>;

export interface Supervision {
  /** Where the reload signal goes. */
  target: SignalTarget;
  /** With --exec: starts the command, the first time a certificate is in place. */
  ready: (() => void) | undefined;
  /** The agent's exit status: the command's when one was started (once it has exited), else `code`. */
  exitStatus(code: number): Promise<number>;
  /** Removes the signal handlers. */
  dispose(): void;
}

/** Installs the SIGTERM and SIGINT handlers and chooses the reload target (at most one of pid, pidFile, exec). */
export function supervise(o: { pid?: number | undefined; pidFile?: string | undefined; exec?: string | undefined; logger: Logger; signals: Sleeper }): Supervision {
  let child: Supervised | undefined;
  const exec = o.exec;
  const target: SignalTarget =
    o.pid !== undefined ? { kind: 'pid', pid: o.pid } : o.pidFile !== undefined ? { kind: 'pid-file', file: o.pidFile } : exec !== undefined ? { kind: 'exec', child: () => child } : { kind: 'none' };
  const onSignal = (signal: NodeJS.Signals) => {
    if (child?.running) {
      o.logger.info({ signal, pid: child.pid }, 'passing the signal on to the command');
      child.signal(signal);
    } else o.signals.stop();
  };
  const onTerm = () => onSignal('SIGTERM');
  const onInt = () => onSignal('SIGINT');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  return {
    target,
    ready:
      exec === undefined
        ? undefined
        : () => {
            if (child) return;
            child = startSupervised(exec, o.logger);
            void child.exited.then((status) => {
              o.logger.info({ status }, 'the command exited; the agent stops');
              o.signals.stop();
            });
          },
    exitStatus: async (code) => (child ? child.exited : code),
    dispose() {
      process.removeListener('SIGTERM', onTerm);
      process.removeListener('SIGINT', onInt);
    },
  };
}
