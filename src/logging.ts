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

export function createLogger(level: string, destination?: DestinationStream, worker?: number): Logger {
  return pino(
    { level, base: { service: 'service-ca', ...(worker === undefined ? {} : { worker }) }, redact: { paths: REDACT_PATHS, censor: '[redacted]' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination,
  );
}
