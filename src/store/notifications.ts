/**
 * Postgres LISTEN/NOTIFY for CRLs. A CRL stored by any process (generateCrl in store/crls.ts)
 * sends `pg_notify('service_ca_crl', '<issuer key id>:<number>')` inside its own transaction,
 * so the notification is delivered at commit and never names a CRL that is not readable yet.
 * Every process listens on one dedicated connection (a pg.Client outside the pools, since
 * LISTEN belongs to a session) and so learns of another replica's or worker's CRL within
 * milliseconds rather than at its next poll.
 *
 * The connection can drop (a database restart, a network fault, an idle timeout): it is opened
 * again with backoff (250 ms doubling to 5 s), forever, without ever throwing into the process.
 * Notifications sent while it was down are lost, so `connected` is called after every
 * (re)connection: the listener then checks the database itself. The publisher's poll stays the
 * fallback for a connection that is silently dead.
 *
 * Hand-written over pg's own Client (which delivers notifications itself): a wrapper package
 * (pg-listen) would add a dependency for the reconnection loop alone, which is the few lines below.
 */
import pg from 'pg';

export const CRL_CHANNEL = 'service_ca_crl';

export interface CrlNotice {
  issuerKeyId: string;
  number: number;
}

export interface CrlListenerHandlers {
  /** A CRL was committed (by this process or any other on the database). */
  stored(notice: CrlNotice): void;
  /** Listening (again): notifications may have been missed before this point. */
  connected(): void;
  /** The connection failed or dropped; the next attempt is in retryInMs. */
  failed(err: Error, retryInMs: number): void;
}

export interface Subscription {
  close(): Promise<void>;
}

/** The payload pg_notify sends; parseCrlNotice reads it back. */
export const crlNoticePayload = (n: CrlNotice) => `${n.issuerKeyId}:${n.number}`;

export function parseCrlNotice(payload: string | undefined): CrlNotice | undefined {
  const m = /^([0-9a-f]{1,128}):(\d{1,15})$/.exec(payload ?? '');
  return m ? { issuerKeyId: m[1]!, number: Number(m[2]) } : undefined;
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/** Listens for stored CRLs on a connection of its own until close(). */
export function listenForCrls(url: string, handlers: CrlListenerHandlers): Subscription {
  let client: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  let failures = 0;
  let closed = false;

  const retry = (err: Error) => {
    const wait = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(failures++, 5));
    try {
      handlers.failed(err, wait);
    } catch {
      // A handler's fault must not stop the reconnection.
    }
    timer = setTimeout(connect, wait);
    timer.unref();
  };

  function connect(): void {
    if (closed) return;
    // keepAlive: a connection whose peer vanished without a FIN is found dead within about a
    // minute instead of the kernel's two hours.
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, keepAlive: true, keepAliveInitialDelayMillis: 10_000 });
    client = c;
    let down = false;
    // 'error' (a reset, a terminated backend) and 'end' may both come for one drop: act once.
    const drop = (err: Error) => {
      if (down) return;
      down = true;
      if (client === c) client = undefined;
      c.end().catch(() => {});
      if (!closed) retry(err);
    };
    c.on('error', drop);
    c.on('end', () => drop(new Error('the notification connection was closed')));
    c.on('notification', (msg) => {
      if (msg.channel !== CRL_CHANNEL) return;
      const notice = parseCrlNotice(msg.payload);
      if (!notice) return;
      try {
        handlers.stored(notice);
      } catch {
        // The poll covers what a failing handler missed.
      }
    });
    c.connect()
      .then(() => c.query(`LISTEN ${CRL_CHANNEL}`))
      .then(() => {
        if (down || closed) return;
        failures = 0;
        try {
          handlers.connected();
        } catch {
          // As above: the poll covers it.
        }
      })
      .catch((err: unknown) => drop(err instanceof Error ? err : new Error(String(err))));
  }

  connect();
  return {
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = undefined;
      await c?.end().catch(() => {});
    },
  };
}
