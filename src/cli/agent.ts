/**
 * `service-ca agent`: keeps a certificate fresh unattended. At start it obtains one when the
 * files are missing, invalid or for other names; then it polls renewal-info (honouring
 * Retry-After, with jitter) and renews at a random point inside the window with a fresh key,
 * writes the files atomically and runs the reload hook. It re-reads the token file each time
 * (projected tokens rotate) and renews with its current certificate when the token is missing
 * or refused; while the CA is unreachable it keeps the current certificate and retries with
 * capped exponential backoff and jitter; a revoked certificate's window is open at once.
 *
 * A request's key and CSR are kept (PREFIX.pending.key) until its answer arrives: a retry after
 * a lost answer (timeout, reset, 5xx) sends the same CSR, and the same identity token while it
 * is valid, which the CA answers with the certificate it already issued (API.md "Certificate
 * holder", "Retries") instead of a second one, or a refused second renewal.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { pino } from 'pino';
import { ServiceCaClient, ServiceCaError, isRenewalReuse } from '../client/index.js';
import { parseDuration } from '../duration.js';
import { paths, readCurrent, readPending, removePending, type CurrentCertificate } from './cert-files.js';
import { CERTIFICATE_OPTIONS, KEY_TYPES, parseOptions, type Command } from './command.js';
import type { ClientKeyType, Names } from './keys.js';
import { RenewalReused, obtain, type AgentState, type ObtainOptions } from './obtain.js';

const USAGE = `Usage: service-ca agent --server URL --out PREFIX --token-file FILE [names] [options]

Obtains a certificate for the names (if PREFIX.pem/.key/.chain.pem are missing, invalid or for
other names), then keeps renewing it inside its renewal window. Logs are JSON lines.

Options:
  --server URL          the CA's API listener
  --ca FILE             PEM root to trust for the server
  --token-file FILE     identity token, re-read at every renewal (may be absent later)
  --dns, --ip, --uri, --email NAME   the names (repeatable)
  --ttl DURATION        requested lifetime
  --key-type TYPE       p256 (default), p384, rsa or ed25519
  --out PREFIX          PREFIX.key (0600), PREFIX.pem, PREFIX.chain.pem; PREFIX.pending.key (0600)
                        holds the key and CSR of a request until its answer arrives
  --on-renew CMD        run CMD (through /bin/sh) after each renewal
  --signal-pid PID      or send a signal to PID after each renewal
  --signal NAME         the signal (default SIGHUP)
  --max-backoff DURATION  longest wait between retries while the CA is unreachable (default 5m)
  --once                obtain or renew if due, then exit (init containers)
  --help                this text

Exit codes: 0 done (--once) or stopped by SIGTERM/SIGINT; 1 could not obtain a first certificate
with --once, or (--once) the certificate was refused as already renewed; 2 bad usage.`;

interface AgentOptions extends ObtainOptions {
  onRenew: string | undefined;
  signalPid: number | undefined;
  signal: NodeJS.Signals;
  maxBackoffMs: number;
  once: boolean;
}

const jitter = (ms: number, fraction = 0.1) => ms * (1 - fraction + Math.random() * 2 * fraction);

/** A certificate (see obtain.ts), then the reload hook. */
async function obtainAndReload(o: AgentOptions, state: AgentState, current: CurrentCertificate | undefined, canRenew: boolean): Promise<CurrentCertificate> {
  const written = await obtain(o, state, current, canRenew);
  await reload(o);
  return written;
}

async function reload(o: AgentOptions): Promise<void> {
  if (o.signalPid !== undefined) {
    try {
      process.kill(o.signalPid, o.signal);
      o.logger.info({ pid: o.signalPid, signal: o.signal }, 'signalled');
    } catch (err) {
      o.logger.error({ pid: o.signalPid, err: (err as Error).message }, 'could not signal');
    }
  }
  if (o.onRenew) {
    const code = await new Promise<number>((resolve) => {
      const child = spawn('/bin/sh', ['-c', o.onRenew!], { stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('exit', (c) => resolve(c ?? 1));
      child.on('error', () => resolve(127));
    });
    if (code === 0) o.logger.info({ command: o.onRenew }, 'reload hook ran');
    else o.logger.error({ command: o.onRenew, code }, 'reload hook failed');
  }
}

/** A sleep that SIGTERM cuts short. */
function sleeper() {
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

export async function runAgent(o: AgentOptions, signals: ReturnType<typeof sleeper>): Promise<number> {
  const { logger } = o;
  const initial = readCurrent(o.out, o.names, new Date());
  let current = initial.current;
  const state: AgentState = {};
  let backoff = 1000;
  let renewAt: number | undefined;
  if (!current) logger.info({ reason: initial.reason }, 'obtaining a certificate');
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
        if (o.once) return 0;
        continue;
      }
      let info;
      try {
        info = await o.client.renewalInfo(current.serial);
      } catch (err) {
        if (!(err instanceof ServiceCaError && err.status === 404)) throw err;
        // The CA does not know this certificate (another CA, or a database started afresh): get one it knows.
        logger.warn({ serial: current.serial }, 'the CA does not know the current certificate; obtaining a new one');
        current = await obtainAndReload(o, state, current, false);
        renewAt = undefined;
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
        continue;
      }
      backoff = 1000;
      if (o.once) return 0;
      const retryAfterMs = (info.retryAfter ?? 60) * 1000;
      await signals.sleep(Math.min(jitter(retryAfterMs), renewAt - now));
    } catch (err) {
      const wait = Math.min(o.maxBackoffMs, backoff);
      backoff = Math.min(o.maxBackoffMs, backoff * 2);
      const detail = err instanceof ServiceCaError ? err.message : (err as Error).message;
      const valid = current ? current.notAfter.getTime() > Date.now() : false;
      if (isRenewalReuse(err) || err instanceof RenewalReused) {
        // Loud, and repeated at every attempt while it lasts: the CA has a renewal of this
        // certificate that this agent did not make (API.md "Certificate holder": a certificate
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
        signal: { type: 'string', default: 'SIGHUP' },
        'max-backoff': { type: 'string', default: '5m' },
        once: { type: 'boolean', default: false },
      },
      USAGE,
    );
    if (typeof v === 'number') return v;
    const names: Names = { dns: v.dns ?? [], ip: v.ip ?? [], uri: v.uri ?? [], email: v.email ?? [] };
    const maxBackoff = parseDuration(v['max-backoff']);
    const pid = v['signal-pid'] === undefined ? undefined : Number(v['signal-pid']);
    const problems = [
      !v.server && '--server is required',
      !v.out && '--out is required',
      names.dns!.length + names.ip!.length + names.uri!.length + names.email!.length === 0 && 'at least one name is required',
      !KEY_TYPES.includes(v['key-type']!) && '--key-type must be p256, p384, rsa or ed25519',
      !maxBackoff && '--max-backoff is not a duration',
      pid !== undefined && !Number.isInteger(pid) && '--signal-pid must be a process id',
      !/^SIG[A-Z0-9]+$/.test(v.signal!) && '--signal must be a signal name such as SIGHUP',
    ].filter(Boolean);
    if (problems.length) {
      console.error(`service-ca: ${problems.join('; ')}\n\n${USAGE}`);
      return 2;
    }
    const logger = pino({ base: { service: 'service-ca-agent' }, timestamp: pino.stdTimeFunctions.isoTime });
    const signals = sleeper();
    process.once('SIGTERM', () => signals.stop());
    process.once('SIGINT', () => signals.stop());
    return runAgent(
      {
        client: new ServiceCaClient({ baseUrl: v.server!, ca: v.ca ? readFileSync(v.ca, 'utf8') : undefined }),
        tokenFile: v['token-file'],
        names,
        ttl: v.ttl,
        keyType: v['key-type'] as ClientKeyType,
        out: v.out!,
        onRenew: v['on-renew'],
        signalPid: pid,
        signal: v.signal as NodeJS.Signals,
        maxBackoffMs: maxBackoff! * 1000,
        once: v.once!,
        logger,
      },
      signals,
    );
  },
};
