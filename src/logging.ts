/**
 * Structured JSON logs (pino). Secrets never reach a log line: authorization headers, keys,
 * passphrases, secrets and tokens are redacted by path, and no code logs a request body.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export const REDACT_PATHS = [
  'authorization', '*.authorization', 'headers.authorization', 'req.headers.authorization',
  'token', '*.token', 'key', '*.key', 'keyPassphrase', '*.keyPassphrase', 'passphrase', '*.passphrase',
  'secret', '*.secret', 'privateKey', '*.privateKey',
];

/** Longest time a line waits in the service's output buffer before it is written. */
const FLUSH_INTERVAL_MS = 250;

/**
 * The service's own log: JSON lines to stdout, written in blocks of at least 4 KiB (or every
 * 250 ms, whichever comes first) rather than one write per line, so that a request line costs
 * no system call at full load. pino writes what is buffered synchronously when the process
 * exits, a fatal error's line included.
 */
export function createServiceLogger(level: string, worker?: number): Logger {
  const destination = pino.destination({ dest: 1, sync: false, minLength: 4096 });
  setInterval(() => destination.flush(), FLUSH_INTERVAL_MS).unref();
  return createLogger(level, destination, worker);
}

export function createLogger(level: string, destination?: DestinationStream, worker?: number): Logger {
  return pino(
    { level, base: { service: 'service-ca', ...(worker === undefined ? {} : { worker }) }, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination,
  );
}
