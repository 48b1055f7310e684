/**
 * `service-ca agent`: keeps a certificate fresh unattended. At start it obtains one when the
 * files are missing, invalid or for other names; then it polls renewal-info (honouring
 * Retry-After, with jitter) and renews at a random point inside the window with a fresh key,
 * writes the files atomically (cert-files.ts: the key, the leaf, the chain, the full chain, the
 * CA's trust bundle checked against the pinned root, and a PKCS#12 file when asked) and then
 * tells the service: a signal to a pid, to the pid in a pid file, or to the command it runs
 * itself with --exec (supervise.ts), and the --on-renew hook. It re-reads the token file each
 * time (projected tokens rotate) and renews with its current certificate when the token is
 * missing or refused; while the CA is unreachable it keeps the current certificate and retries
 * with capped exponential backoff and jitter; a revoked certificate's window is open at once.
 *
 * A request's key and CSR are kept (PREFIX.pending.key) until its answer arrives: a retry after
 * a lost answer (timeout, reset, 5xx) sends the same CSR, and the same identity token while it
 * is valid, which the CA answers with the certificate it already issued (docs/api.md
 * "Certificate holder", "Retries") instead of a second one, or a refused second renewal.
 *
 * It finds the CA like every client command (context.ts: flags, then SERVICE_CA_* variables,
 * then the saved context), logs JSON lines or, on a terminal, readable ones (log.ts), and serves
 * its own Prometheus metrics with --metrics-addr (agent-metrics.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { ServiceCaError, isRenewalReuse } from '../client/index.js';
import { parseDuration } from '../duration.js';
import { createAgentMetrics, parseListenAddress, serveMetrics, type AgentMetrics } from './agent-metrics.js';
import { paths, readCurrent, readPending, removePending, type CurrentCertificate } from './cert-files.js';
import { CERTIFICATE_OPTIONS, KEY_TYPES, parseOptions, type Command } from './command.js';
import { CONNECTION_USAGE, clientOf, resolveConnection, type Connection } from './context.js';
import type { ClientKeyType, Names } from './keys.js';
import { createAgentLogger, isLogFormat } from './log.js';
import { RenewalReused, completeOutputs, obtain, type AgentState, type ObtainOptions } from './obtain.js';
import { isPid, runHook, sendReloadSignal, sleeper, supervise, type SignalTarget, type Sleeper } from './supervise.js';
import { constants as osConstants } from 'node:os';

const USAGE = `Usage: service-ca agent --out PREFIX [names] [options]

Obtains a certificate for the names (if PREFIX.pem/.key/.chain.pem are missing, invalid or for
other names), then keeps renewing it inside its renewal window.

Connection:
${CONNECTION_USAGE}
                        The token file is re-read at every renewal and may be absent later.

Certificate:
  --dns, --ip, --uri, --email NAME   the names (repeatable)
  --ttl DURATION        requested lifetime (90s, 1h30m, 2d)
  --key-type TYPE       p256 (default), p384, rsa or ed25519

Files (each replaced atomically; the leaf last, so a reader keyed on it finds the rest in place):
  --out PREFIX          PREFIX.key (0600), PREFIX.pem (leaf), PREFIX.chain.pem (intermediates),
                        PREFIX.fullchain.pem (leaf then intermediates), PREFIX.ca.pem (the CA's
                        root(s): written only when they include the pinned root from --ca,
                        SERVICE_CA_ROOT or the context). PREFIX.pending.key (0600) holds the key and
                        CSR of a request until its answer arrives
  --p12 FILE            also a PKCS#12 file (0600) with the key, the leaf and the chain (AES-256,
                        SHA-256 MAC), protected by a passphrase from one of:
  --p12-passphrase-file FILE   its first line (re-read at each renewal)
  --p12-passphrase-env NAME    the environment variable NAME

After each new certificate (one of the first three, then the hook):
  --signal-pid PID      send the signal to PID
  --pid-file FILE       send the signal to the pid FILE holds at that moment (missing: logged)
  --exec CMD            run CMD as the agent's child once the first certificate is in place, as
                        /bin/sh -c 'exec CMD' (one command, shell quoting), send it the signal after
                        each renewal, pass SIGTERM and SIGINT on to it, and exit with its status
                        when it exits (128 + n if signal n ended it)
  --signal NAME         the signal (default SIGHUP)
  --on-renew CMD        run CMD (through /bin/sh) after each new certificate

Operation:
  --max-backoff DURATION  longest wait between retries while the CA is unreachable (default 5m)
  --once                obtain or renew if due, then exit (init containers)
  --metrics-addr HOST:PORT  serve Prometheus metrics on http://HOST:PORT/metrics
  --log-format json|text  log lines (default: text on a terminal, JSON otherwise)
  --help                this text

Exit codes: 0 done (--once) or stopped by SIGTERM/SIGINT; with --exec, the command's status;
1 could not obtain a first certificate with --once, or (--once) the certificate was refused as
already renewed, or an output (the trust bundle, the PKCS#12 file) could not be written, or the
metrics address could not be bound; 2 bad usage.`;

interface AgentOptions extends ObtainOptions {
  onRenew: string | undefined;
  target: SignalTarget;
  signal: NodeJS.Signals;
  maxBackoffMs: number;
  once: boolean;
  metrics: AgentMetrics | undefined;
  /** Called whenever a certificate and its outputs are in place (--exec starts its command the first time). */
  ready: ((current: CurrentCertificate) => void) | undefined;
}

const jitter = (ms: number, fraction = 0.1) => ms * (1 - fraction + Math.random() * 2 * fraction);

/** A certificate (see obtain.ts), counted in the metrics, then the reload signal and hook. */
async function obtainAndReload(o: AgentOptions, state: AgentState, current: CurrentCertificate | undefined, canRenew: boolean): Promise<CurrentCertificate> {
  let written: CurrentCertificate;
  try {
    written = await obtain(o, state, current, canRenew);
  } catch (err) {
    o.metrics?.attempt('failure');
    throw err;
  }
  o.metrics?.attempt('success');
  o.metrics?.certificate(written, true);
  sendReloadSignal(o.target, o.signal, o.logger);
  if (o.onRenew) await runHook(o.onRenew, o.logger);
  return written;
}

export async function runAgent(o: AgentOptions, signals: Sleeper): Promise<number> {
  const { logger } = o;
  const initial = readCurrent(o.out, o.names, new Date());
  let current = initial.current;
  const state: AgentState = {};
  let backoff = 1000;
  let renewAt: number | undefined;
  /** --once: whether this run obtained a certificate (then it exits without asking again). */
  let obtained = false;
  if (current) o.metrics?.certificate(current, false);
  else logger.info({ reason: initial.reason }, 'obtaining a certificate');
  const left = await readPending(o.out, o.names, o.keyType, current);
  if (left.pending) logger.info({ replaces: left.pending.replaces }, 'a request was left unanswered; it will be retried with the same key and CSR');
  else if (left.reason) {
    logger.info({ reason: left.reason }, 'discarding the pending key');
    removePending(o.out);
  }

  while (!signals.stopped) {
    try {
      if (!current) {
        current = await obtainAndReload(o, state, undefined, false);
        renewAt = undefined;
        backoff = 1000;
        obtained = true;
        continue;
      }
      // Every output in place before the service first reads them (--exec), and again if one goes missing.
      const complete = await completeOutputs(o, state, current);
      o.ready?.(current);
      if (o.once && obtained) return complete ? 0 : 1;
      let info;
      try {
        info = await o.client.renewalInfo(current.serial);
      } catch (err) {
        if (!(err instanceof ServiceCaError && err.status === 404)) throw err;
        // The CA does not know this certificate (another CA, or a database started afresh): get one it knows.
        logger.warn({ serial: current.serial }, 'the CA does not know the current certificate; obtaining a new one');
        current = await obtainAndReload(o, state, current, false);
        renewAt = undefined;
        obtained = true;
        continue;
      }
      const now = Date.now();
      // A random point inside the window, fixed per certificate (and moved earlier if the window moves).
      if (renewAt === undefined || renewAt > info.end.getTime()) {
        renewAt = info.start.getTime() + Math.random() * Math.max(0, info.end.getTime() - info.start.getTime());
      }
      if (now >= renewAt || now >= current.notAfter.getTime()) {
        logger.info({ serial: current.serial, windowStart: info.start, windowEnd: info.end }, 'renewing');
        current = await obtainAndReload(o, state, current, current.notAfter.getTime() > now);
        renewAt = undefined;
        backoff = 1000;
        obtained = true;
        continue;
      }
      backoff = 1000;
      if (o.once) return complete ? 0 : 1;
      const retryAfterMs = (info.retryAfter ?? 60) * 1000;
      await signals.sleep(Math.min(jitter(retryAfterMs), renewAt - now));
    } catch (err) {
      const wait = Math.min(o.maxBackoffMs, backoff);
      backoff = Math.min(o.maxBackoffMs, backoff * 2);
      const detail = err instanceof ServiceCaError ? err.message : (err as Error).message;
      const valid = current ? current.notAfter.getTime() > Date.now() : false;
      if (isRenewalReuse(err) || err instanceof RenewalReused) {
        // Loud, and repeated at every attempt while it lasts: the CA has a renewal of this
        // certificate that this agent did not make (docs/api.md "Certificate holder": a certificate
        // renews once). The agent keeps the files it has (removing them would not stop whoever
        // holds the key) and does not present the certificate again (each try would add a reuse
        // to the CA's audit and alert); it waits for an identity token, re-read at each retry.
        logger.error(
          { serial: current?.serial, err: detail, retryInMs: Math.round(wait), valid },
          'the CA refused this renewal because the certificate was already renewed by someone else: its private key may be compromised. Revoke it with reason keyCompromise and provide a new identity token; the agent retries only with an identity token',
        );
        if (o.once) return 1;
      } else {
        logger.warn(
          { err: detail, retryInMs: Math.round(wait), valid, sameKey: existsSync(paths(o.out).pending) },
          'CA request failed; keeping the current certificate and retrying',
        );
      }
      if (o.once && !current) return 1;
      if (o.once && current && Date.now() < current.notAfter.getTime() && backoff > 8000) return 0;
      if (current && Date.now() >= current.notAfter.getTime()) current = undefined;
      await signals.sleep(Math.random() * wait);
    }
  }
  logger.info('stopped');
  return 0;
}

/**
 * The PKCS#12 passphrase, read when a PKCS#12 file is written: the first line of a file (as
 * openssl's `-passin file:` reads it) or an environment variable. The error names where it was
 * looked for, never what was found.
 */
function passphraseReader(file: string | undefined, env: string | undefined): () => string {
  return () => {
    let value: string | undefined;
    if (file !== undefined) {
      try {
        value = readFileSync(file, 'utf8').split(/\r?\n/)[0];
      } catch {
        throw new Error(`the passphrase file ${file} cannot be read`);
      }
    } else {
      value = process.env[env!];
    }
    if (!value) throw new Error(file !== undefined ? `the passphrase file ${file} is empty` : `the environment variable ${env} is unset or empty`);
    return value;
  };
}

export const agentCommand: Command = {
  name: 'agent',
  summary: 'keep a certificate fresh: obtain, poll renewal-info, renew, reload',
  async run(argv) {
    const v = parseOptions(
      argv,
      {
        ...CERTIFICATE_OPTIONS,
        'on-renew': { type: 'string' },
        'signal-pid': { type: 'string' },
        'pid-file': { type: 'string' },
        exec: { type: 'string' },
        signal: { type: 'string', default: 'SIGHUP' },
        'max-backoff': { type: 'string', default: '5m' },
        once: { type: 'boolean', default: false },
        p12: { type: 'string' },
        'p12-passphrase-file': { type: 'string' },
        'p12-passphrase-env': { type: 'string' },
        'metrics-addr': { type: 'string' },
        'log-format': { type: 'string' },
      },
      USAGE,
    );
    if (typeof v === 'number') return v;
    let connection: Connection;
    try {
      connection = resolveConnection(v);
    } catch (err) {
      console.error(`service-ca: ${(err as Error).message}`);
      return 2;
    }
    const names: Names = { dns: v.dns ?? [], ip: v.ip ?? [], uri: v.uri ?? [], email: v.email ?? [] };
    const maxBackoff = parseDuration(v['max-backoff']);
    const ttl = v.ttl === undefined ? undefined : parseDuration(v.ttl);
    const pid = v['signal-pid'] === undefined ? undefined : Number(v['signal-pid']);
    const metricsAddress = v['metrics-addr'] === undefined ? undefined : parseListenAddress(v['metrics-addr']);
    const passphraseSources = [v['p12-passphrase-file'], v['p12-passphrase-env']].filter((x) => x !== undefined).length;
    const passphrase = v.p12 !== undefined && passphraseSources === 1 ? passphraseReader(v['p12-passphrase-file'], v['p12-passphrase-env']) : undefined;
    let passphraseProblem: string | undefined;
    try {
      passphrase?.();
    } catch (err) {
      passphraseProblem = (err as Error).message;
    }
    const problems = [
      !connection.server && '--server (or SERVICE_CA_URL, or a context saved by bootstrap) is required',
      !v.out && '--out is required',
      names.dns!.length + names.ip!.length + names.uri!.length + names.email!.length === 0 && 'at least one name is required',
      !KEY_TYPES.includes(v['key-type']!) && '--key-type must be p256, p384, rsa or ed25519',
      !maxBackoff && '--max-backoff is not a duration',
      v.ttl !== undefined && !ttl && '--ttl is not a duration (90s, 1h30m, 2d)',
      pid !== undefined && !isPid(pid) && '--signal-pid must be a process id',
      [v['signal-pid'], v['pid-file'], v.exec].filter((x) => x !== undefined).length > 1 && '--signal-pid, --pid-file and --exec exclude each other',
      v.exec !== undefined && v.once && '--exec cannot be combined with --once',
      !(/^SIG[A-Z0-9]+$/.test(v.signal!) && v.signal! in osConstants.signals) && '--signal must be a signal name such as SIGHUP',
      v.p12 !== undefined && passphraseSources !== 1 && '--p12 needs exactly one of --p12-passphrase-file and --p12-passphrase-env',
      v.p12 === undefined && passphraseSources > 0 && '--p12-passphrase-file and --p12-passphrase-env need --p12',
      passphraseProblem,
      v['metrics-addr'] !== undefined && !metricsAddress && '--metrics-addr must be HOST:PORT',
      v['log-format'] !== undefined && !isLogFormat(v['log-format']) && '--log-format must be json or text',
    ].filter(Boolean);
    if (problems.length) {
      console.error(`service-ca: ${problems.join('; ')}\n\n${USAGE}`);
      return 2;
    }
    const logger = createAgentLogger(isLogFormat(v['log-format']) ? v['log-format'] : undefined);
    if (connection.caPem === undefined) logger.warn('no pinned root (--ca, SERVICE_CA_ROOT or a saved context): the trust bundle is checked against the certificate only, not against a pinned root');
    const metrics = metricsAddress ? createAgentMetrics() : undefined;
    let server: Server | undefined;
    if (metrics && metricsAddress) {
      try {
        server = await serveMetrics(metrics.registry, metricsAddress, logger);
      } catch (err) {
        logger.error({ address: v['metrics-addr'], err: (err as Error).message }, 'cannot serve metrics');
        return 1;
      }
    }

    const signals = sleeper();
    const supervision = supervise({ pid, pidFile: v['pid-file'], exec: v.exec, logger, signals });
    try {
      const code = await runAgent(
        {
          client: clientOf({ ...connection, server: connection.server! }),
          tokenFile: connection.tokenFile,
          pinnedRoot: connection.caPem,
          names,
          ttl,
          keyType: v['key-type'] as ClientKeyType,
          out: v.out!,
          p12: v.p12 !== undefined && passphrase ? { path: v.p12, passphrase } : undefined,
          onRenew: v['on-renew'],
          target: supervision.target,
          signal: v.signal as NodeJS.Signals,
          maxBackoffMs: maxBackoff! * 1000,
          once: v.once!,
          logger,
          metrics,
          ready: supervision.ready,
        },
        signals,
      );
      return await supervision.exitStatus(code);
    } finally {
      supervision.dispose();
      server?.closeAllConnections();
      server?.close();
    }
  },
};
