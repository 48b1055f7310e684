/**
 * The agent's log: JSON lines (pino) for collectors, or human-readable lines (pino-pretty) when
 * someone watches a terminal. --log-format json|text chooses; without it, text when standard
 * output (where the lines go) is a terminal, JSON otherwise. pino-pretty runs as a synchronous
 * stream in this process, not as a worker transport: a line is out before the agent exits.
 */
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export const LOG_FORMATS = ['json', 'text'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const isLogFormat = (v: string | undefined): v is LogFormat => LOG_FORMATS.includes(v as LogFormat);

/** The agent's logger, writing to standard output. */
export function createAgentLogger(format: LogFormat | undefined): Logger {
  const base = { service: 'service-ca-agent' };
  const terminal = process.stdout.isTTY === true;
  if (!(format === 'text' || (format === undefined && terminal))) return pino({ base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: 1, sync: true }));
  return pino({ base }, pretty({ sync: true, destination: 1, colorize: terminal, translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l', ignore: 'pid,hostname,service' }));
}
