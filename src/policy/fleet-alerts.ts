/**
 * The fleet's webhook (monitor.webhook; docs/monitoring.md "Webhook"): an Alertmanager-compatible
 * POST when an identity enters `missedRenewal` state or `critical` severity, and another when it
 * leaves it.
 *
 * Every `interval`, each process tries to claim the check (store/fleet-alerts.ts: one claimed row
 * for every replica and worker on the database); the one that claims it
 * 1. compares the fleet at the clock's now with the open alert rows: opens a row per identity and
 *    alert that began, resolves those that ended;
 * 2. delivers what is pending, oldest first, in POSTs of at most BATCH alerts, each retried with
 *    exponential backoff up to maxAttempts; before each POST it extends its claim to cover that
 *    POST's every attempt (and stops if it lost the claim), and after a 2xx it marks the POST's
 *    rows sent, each only once (an update guarded on the column being null). A POST that fails
 *    every attempt ends the check; its rows are tried again at the next one.
 * 3. leaves its claim to lapse at the next check's due time.
 * So each opened row is announced firing once, and each resolved row resolved once, after a 2xx
 * (a process that dies between a 2xx and its mark, or a claim that lapses mid-POST, can repeat a
 * delivery: Alertmanager deduplicates identical alerts). Header values are never logged, nor put
 * in an error.
 */
import { randomUUID } from 'node:crypto';
import type { Clock } from '../clock.js';
import { deadline } from '../deadline.js';
import type { PendingFleetAlert, FleetRules, Store } from '../store/store.js';
import { periodic } from './periodic.js';

export interface WebhookSettings {
  url: string;
  /** Seconds for one POST. */
  timeout: number;
  maxAttempts: number;
  /** Seconds between two checks of the fleet. */
  interval: number;
  headers?: Record<string, string> | undefined;
}

export type WebhookResult = 'sent' | 'retried' | 'failed';

/** One alert of Alertmanager's v2 API (POST /api/v2/alerts takes an array of them). */
export interface AlertmanagerAlert {
  labels: { alertname: string; identity: string; severity: 'warning' | 'critical'; service: 'service-ca' };
  annotations: { summary: string; description: string };
  startsAt: string;
  endsAt?: string;
  generatorURL?: string;
}

/** Alerts per POST. */
export const BATCH = 100;
/** Pending rows read per check. */
const PENDING_LIMIT = 1000;
/** First pause between attempts (doubled after each, at most MAX_BACKOFF_MS). */
const FIRST_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

export const backoffMs = (attempt: number) => Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** (attempt - 1));

/** The URL as it may be logged: no user, password, query or fragment. */
export const loggableUrl = (url: string) => {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
};

/** The Alertmanager alert of one row: firing (no endsAt) or resolved (endsAt: when it ended). */
export function alertOf(row: PendingFleetAlert): AlertmanagerAlert {
  const missed = row.alert === 'missedRenewal';
  const alert: AlertmanagerAlert = {
    labels: {
      alertname: missed ? 'ServiceCaMissedRenewal' : 'ServiceCaCertificateCritical',
      identity: row.identity,
      severity: missed ? 'warning' : 'critical',
      service: 'service-ca',
    },
    annotations: missed
      ? {
          summary: `${row.identity} missed its renewal`,
          description: `The newest valid certificate of ${row.identity} is past the end of its renewal window and no newer certificate was issued: its agent stopped renewing. See GET /v1/fleet?identityPrefix= for its last poll and last refusal.`,
        }
      : {
          summary: `${row.identity}'s certificate is critical`,
          description: `The certificate of ${row.identity} is expired or about to expire (past monitor.criticalAt of its lifetime, or less than monitor.criticalRemaining left) with no successor: the service loses mTLS when it expires.`,
        },
    startsAt: row.startedAt.toISOString(),
  };
  if (row.resolvedAt) alert.endsAt = row.resolvedAt.toISOString();
  return alert;
}

export interface FleetAlertsDeps {
  store: Pick<Store, 'claimFleetAlertCheck' | 'extendFleetAlertCheck' | 'syncFleetAlerts' | 'pendingFleetAlerts' | 'markFleetAlertsSent'>;
  clock: Clock;
  rules: FleetRules;
  webhook: WebhookSettings;
  /** One per POST attempt's outcome: sent (2xx), retried (another attempt follows), failed (the last one failed). */
  onResult?: (result: WebhookResult) => void;
  /** A failed attempt or check; `detail` holds no header value. */
  onError?: (detail: { message: string; url: string; attempt?: number; alerts?: number }) => void;
  fetch?: typeof fetch;
}

export function createFleetAlerts(deps: FleetAlertsDeps) {
  const { webhook } = deps;
  const doFetch = deps.fetch ?? fetch;
  const url = loggableUrl(webhook.url);
  /** This process's claims (a new token per process, the same across its checks). */
  const holder = randomUUID();
  // Long enough for one POST's every attempt and pause, and a margin for the marking.
  let backoffTotal = 0;
  for (let a = 1; a < webhook.maxAttempts; a++) backoffTotal += backoffMs(a);
  const postLeaseSeconds = webhook.maxAttempts * webhook.timeout + backoffTotal / 1000 + 10;
  const stopping = new AbortController();

  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      stopping.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });

  /** One POST, its attempts included; true after a 2xx. */
  async function deliver(alerts: AlertmanagerAlert[]): Promise<boolean> {
    const body = JSON.stringify(alerts);
    for (let attempt = 1; attempt <= webhook.maxAttempts && !stopping.signal.aborted; attempt++) {
      let message: string;
      const limit = deadline(webhook.timeout * 1000, stopping.signal);
      try {
        const res = await doFetch(webhook.url, {
          method: 'POST',
          headers: { ...webhook.headers, 'Content-Type': 'application/json' },
          body,
          signal: limit.signal,
          redirect: 'manual',
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.status >= 200 && res.status < 300) {
          deps.onResult?.('sent');
          return true;
        }
        message = `answered ${res.status}`;
      } catch (err) {
        // Only the error's name and code: never a message that could quote a request's headers.
        const e = err as { name?: string; cause?: { code?: string } };
        message = e.name === 'TimeoutError' ? `no answer within ${webhook.timeout} s` : `request failed (${e.cause?.code ?? e.name ?? 'error'})`;
      } finally {
        limit.done();
      }
      const last = attempt >= webhook.maxAttempts;
      deps.onResult?.(last ? 'failed' : 'retried');
      deps.onError?.({ message, url, attempt, alerts: alerts.length });
      if (!last) await pause(backoffMs(attempt));
    }
    return false;
  }

  async function check(): Promise<void> {
    if (!(await deps.store.claimFleetAlertCheck(holder, postLeaseSeconds))) return;
    let nextDue = webhook.interval * 0.8;
    try {
      await deps.store.syncFleetAlerts(deps.clock.now(), deps.rules);
      const pending = await deps.store.pendingFleetAlerts(PENDING_LIMIT);
      for (let i = 0; i < pending.length && !stopping.signal.aborted; i += BATCH) {
        if (!(await deps.store.extendFleetAlertCheck(holder, postLeaseSeconds))) return;
        const rows = pending.slice(i, i + BATCH);
        if (!(await deliver(rows.map(alertOf)))) break;
        await deps.store.markFleetAlertsSent(rows, deps.clock.now());
      }
    } finally {
      // Stopped: another process may take the check over at once.
      if (stopping.signal.aborted) nextDue = 0;
      await deps.store.extendFleetAlertCheck(holder, nextDue).catch(() => undefined);
    }
  }

  const loop = periodic(
    () => check().catch((err: unknown) => deps.onError?.({ message: `could not check the fleet's alerts: ${(err as Error).message}`, url })),
    webhook.interval * 1000,
  );

  return {
    /** Checks now (tests; the timer does it every interval). */
    check: loop.run,
    start() {
      if (!stopping.signal.aborted) loop.start();
    },
    /** Stops the timer and any POST under way (its rows stay pending), and waits for the check to end. */
    async stop() {
      stopping.abort();
      await loop.stop();
    },
  };
}

export type FleetAlerts = ReturnType<typeof createFleetAlerts>;
