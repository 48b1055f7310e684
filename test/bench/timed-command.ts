/**
 * Runs a load generator (wrk, pgbench) under bash and reads the CPU time it used from the
 * shell's `times` once it has exited, so that the benchmark can say how much of the two cores
 * the load generator itself took.
 */
import { spawn } from 'node:child_process';

const seconds = (text: string) => {
  const m = /(\d+)m([\d.]+)s/.exec(text);
  return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
};

/** The command's exit code, its standard output, and the CPU seconds (user + system) it used. */
export async function runTimed(command: string): Promise<{ code: number; out: string; cpuSeconds: number }> {
  // LC_ALL=C: `times` writes the locale's decimal separator.
  const child = spawn('bash', ['-c', `${command}; status=$?; times; exit $status`], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, LC_ALL: 'C' },
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  // 'close', not 'exit': stdout may still hold the last lines at 'exit'.
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? 1)));
  // `times`: the shell's own user/system line, then its children's (the command's).
  const children = /^(\d+m[\d.]+s) (\d+m[\d.]+s)\s*$/.exec(out.trim().split('\n').slice(-1)[0] ?? '');
  if (!children) throw new Error(`no CPU times after: ${command} (exit ${code}):\n${out}`);
  return { code, out, cpuSeconds: seconds(children[1]!) + seconds(children[2]!) };
}
