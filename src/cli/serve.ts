/** `service-ca serve`: run the CA (docs/api.md "Running it"); with no configuration, the development CA. */
import { isWorker, leaveCluster, reportReady, runPrimary, workerCount, workerId } from '../cluster.js';
import { configPathFrom, envFacts } from '../config.js';
import { devBanner, ensureDevCa } from '../dev-ca.js';
import { CaError } from '../errors.js';
import { createServiceLogger } from '../logging.js';
import { start } from '../main.js';
import { parseOptions, readConfig, type Command } from './command.js';

const USAGE = `Usage: service-ca serve [--config FILE]

Runs the CA. The configuration comes from --config FILE, else SERVICE_CA_CONFIG; with neither,
a development CA is created (once) and run under ./data. With Postgres, server.workers
processes serve (default: one per core); with the embedded database, one.

Options:
  --config FILE   the YAML configuration file
  --help          this text`;

export const serveCommand: Command = {
  name: 'serve',
  summary: 'run the CA (a development CA under ./data when there is no configuration)',
  async run(argv) {
    const values = parseOptions(argv, { config: { type: 'string' } }, USAGE);
    if (typeof values === 'number') return values;
    let configPath = configPathFrom(values.config ? ['--config', values.config] : []);
    const dev = configPath === undefined ? await ensureDevCa('./data') : undefined;
    configPath ??= dev!.configPath;

    const config = readConfig(configPath);
    if (config === 1) return 1;
    const logger = createServiceLogger(envFacts().logLevel ?? config.logging.level, workerId());
    const workers = workerCount(config);
    if (workers > 1 && !isWorker()) return runPrimary(workers, logger);
    // A promise nobody awaited failed: log it and keep serving (every request path awaits its
    // own work, so this is a background task). A thrown exception may have left state
    // half-changed: log it and exit so that the supervisor restarts a clean process.
    process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
    process.on('uncaughtException', (err) => {
      logger.fatal({ err }, 'uncaught exception; exiting');
      process.exit(1);
    });
    let running;
    try {
      running = await start(config, { logger });
    } catch (err) {
      const message = err instanceof CaError ? err.detail : err instanceof Error ? err.message : String(err);
      logger.fatal({ err: err instanceof CaError ? undefined : err }, `start-up failed: ${message}`);
      console.error(`service-ca: start-up failed: ${message}`);
      leaveCluster();
      return 1;
    }
    if (dev) console.log(devBanner(dev, running.deps.app.published.rootFingerprint, running.apiUrl.replace('127.0.0.1', 'localhost')));
    reportReady();

    await new Promise<void>((resolve) => {
      let stopping = false;
      const stop = (signal: string) => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'stopping: finishing in-flight requests');
        const hard = setTimeout(() => {
          logger.error('shutdown took too long; exiting');
          process.exit(1);
        }, 9500);
        hard.unref();
        running.stop(8000).then(
          () => {
            logger.info('stopped');
            resolve();
          },
          (err: unknown) => {
            logger.error({ err }, 'error while stopping');
            resolve();
          },
        );
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    });
    leaveCluster();
    return 0;
  },
};
