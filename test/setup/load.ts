/**
 * Load for end-to-end fault tests: HTTP calls that never throw (each outcome records when it
 * started and ended, its status or the connection error, and the problem document), and checks
 * of the contract's 503 (docs/api.md "Conventions") over many outcomes at once.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { withPg } from './database.js';

/** Longest a test waits for one answer: beyond it the request counts as hung. */
export const HANG_MS = 15_000;

export interface Outcome {
  /** What was asked, for messages (e.g. "POST /v1/certificates via b"). */
  what: string;
  started: number;
  ended: number;
  /** The HTTP status, or undefined when no answer came (connection error or hang). */
  status: number | undefined;
  /** The connection error's message when there was no answer. */
  error: string | undefined;
  /** No answer within HANG_MS. */
  hung: boolean;
  retryAfter: string | null;
  contentType: string | null;
  wwwAuthenticate: string | null;
  text: string;
  body: Record<string, unknown> | undefined;
}

/** An answer's body as JSON, or undefined when it is not JSON. */
export function jsonObject(text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** One HTTP call; an outcome in every case. */
export async function call(what: string, url: string, init: RequestInit): Promise<Outcome> {
  const started = Date.now();
  const base = { what, started, retryAfter: null, contentType: null, wwwAuthenticate: null, text: '', body: undefined };
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(HANG_MS) });
    const text = await res.text();
    const body = jsonObject(text);
    return {
      ...base,
      ended: Date.now(),
      status: res.status,
      error: undefined,
      hung: false,
      retryAfter: res.headers.get('retry-after'),
      contentType: res.headers.get('content-type'),
      wwwAuthenticate: res.headers.get('www-authenticate'),
      text,
      body,
    };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const hung = e.name === 'TimeoutError';
    return { ...base, ended: Date.now(), status: undefined, error: `${e.name}: ${e.cause?.code ?? e.cause?.message ?? e.message}`, hung };
  }
}

export const describeOutcome = (o: Outcome) =>
  `${o.what} [${o.started}..${o.ended}, ${o.ended - o.started} ms]: ${o.status ?? (o.hung ? 'no answer (hung)' : `no answer (${o.error})`)} ${o.text.slice(0, 300)}`;

/** Why a 503 breaks the contract (problem document `unavailable`, Retry-After, no certificate), or undefined. */
export function unavailableViolation(o: Outcome): string | undefined {
  if (o.status !== 503) return `${describeOutcome(o)}: not a 503`;
  if (o.contentType !== 'application/problem+json') return `${describeOutcome(o)}: content type ${o.contentType}`;
  if (o.body?.type !== 'urn:service-ca:error:unavailable' || o.body?.status !== 503) return `${describeOutcome(o)}: not the unavailable problem document`;
  if (!/^[1-9]\d*$/.test(o.retryAfter ?? '')) return `${describeOutcome(o)}: Retry-After ${o.retryAfter}`;
  if (o.body?.certificate !== undefined || o.text.includes('BEGIN CERTIFICATE')) return `${describeOutcome(o)}: a 5xx carries a certificate`;
  return undefined;
}

/** Runs every check and reports all that failed at once. */
export function allOf(...checks: (() => void)[]): void {
  const failed = checks.flatMap((check) => {
    try {
      check();
      return [];
    } catch (err) {
      return [(err as Error).message];
    }
  });
  if (failed.length > 0) assert.fail(failed.join('\n---\n'));
}

/** Lists at most `n` items of a failure, with the total. */
export function sample(items: string[], n = 8): string {
  return `${items.length}: ${items.slice(0, n).join('\n  ')}${items.length > n ? '\n  …' : ''}`;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(25);
  }
}

/** The serial of a PEM certificate as the API writes it (lower-case hex, no leading 00). */
export function pemSerial(pem: string): string {
  return new X509Certificate(pem).serialNumber.toLowerCase().replace(/^(00)+(?=[0-9a-f]{2})/, '');
}

export function pemToDer(pem: string): Buffer {
  return new X509Certificate(pem).raw;
}

/** The certificate rows of these serials, read straight from Postgres (not through the service). */
export async function certificateRows(
  url: string,
  serials: string[],
): Promise<Map<string, { der: Buffer; status: string; revocationReason: string | null; tokenJti: string | null }>> {
  const { rows } = await withPg(url, (client) =>
    client.query<{ serial: string; der: Buffer; status: string; revocation_reason: string | null; token_jti: string | null }>(
      'select serial, der, status, revocation_reason, token_jti from certificates where serial = any($1::text[])',
      [serials],
    ),
  );
  return new Map(rows.map((r) => [r.serial, { der: r.der, status: r.status, revocationReason: r.revocation_reason, tokenJti: r.token_jti }]));
}

/** Runs one statement straight on Postgres. */
export async function query<T extends object>(url: string, text: string, params: (string | number)[] = []): Promise<T[]> {
  return (await withPg(url, (client) => client.query<T>(text, params))).rows;
}
