/**
 * Shared machinery of the fuzz tests (issue #7): how many runs a property gets
 * (FUZZ_RUNS_FACTOR × its base count), which seed (FUZZ_SEED, printed with the case count when
 * the file ends), the contract every HTTP answer must keep (docs/api.md "Conventions": never a 5xx,
 * every non-2xx an RFC 9457 problem document whose code matches the status), and a client with a
 * deadline so that a hang fails the run instead of stalling it.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { after } from 'node:test';
import fc from 'fast-check';

function envNumber(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text.trim() === '') return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got ${JSON.stringify(text)}`);
  return n;
}

/** Multiplies every property's base number of runs: 1 in `npm test`, more in `npm run fuzz`. */
export const RUNS_FACTOR = envNumber('FUZZ_RUNS_FACTOR') ?? 1;
if (!(RUNS_FACTOR > 0)) throw new Error('FUZZ_RUNS_FACTOR must be positive');

/** One seed for every property of this process; FUZZ_SEED=<n> replays a run. */
export const SEED = (envNumber('FUZZ_SEED') ?? Math.floor(Math.random() * 0x7fffffff)) | 0;

let cases = 0;
const file = basename(process.argv[1] ?? 'fuzz');
// Printed first, so that a run whose process dies (a native abort) can still be replayed.
console.log(`fuzz: ${file} runs with FUZZ_SEED=${SEED} FUZZ_RUNS_FACTOR=${RUNS_FACTOR}`);
after(() => {
  // Runs that ran (a failing property stops at its first failure); test/fuzz/run.mjs adds them up.
  console.log(`fuzz cases: ${cases} in ${file} (FUZZ_RUNS_FACTOR=${RUNS_FACTOR} FUZZ_SEED=${SEED})`);
});

const traceDir = process.env.FUZZ_TRACE_DIR;
/**
 * With FUZZ_TRACE_DIR set (npm run fuzz sets it), writes the input about to be tried to
 * FUZZ_TRACE_DIR/<file>.last, synchronously: when an input aborts the whole process, fast-check
 * cannot report it, and this file still holds it.
 */
export function traceInput(input: string | Uint8Array): void {
  if (traceDir) writeFileSync(join(traceDir, `${file}.last`), input);
}

export const runs = (base: number): number => Math.max(1, Math.round(base * RUNS_FACTOR));

/**
 * fast-check's own report (seed, replay path, shrunk counterexample, the error) is thrown as
 * fc.assert would; the reporter also counts the runs that actually ran.
 */
const parameters = <T>(base: number): fc.Parameters<T> => ({
  numRuns: runs(base),
  seed: SEED,
  includeErrorInReport: true,
  reporter(details) {
    cases += details.numRuns;
    const message = fc.defaultReportMessage(details);
    if (message !== undefined) throw new Error(message, { cause: details.errorInstance });
  },
});

/**
 * Runs a property with base × FUZZ_RUNS_FACTOR runs; on failure fast-check's error carries the
 * seed, the replay path, the shrunk counterexample and the assertion that failed.
 */
export function checkSync<Ts>(property: fc.IProperty<Ts>, base: number): void {
  fc.assert(property, parameters<Ts>(base));
}

export async function checkAsync<Ts>(property: fc.IAsyncProperty<Ts>, base: number): Promise<void> {
  await fc.assert(property, parameters<Ts>(base));
}

// ---- the HTTP contract ----

/** docs/api.md "Conventions": each problem code and its status. */
export const PROBLEM_STATUS: Readonly<Record<string, number>> = {
  malformed: 400,
  badCSR: 400,
  badPublicKey: 400,
  badRevocationReason: 400,
  unauthorized: 401,
  forbidden: 403,
  rejectedIdentifier: 403,
  notFound: 404,
  alreadyRevoked: 409,
  payloadTooLarge: 413,
  unsupportedMediaType: 415,
  rateLimited: 429,
  serverInternal: 500,
  unavailable: 503,
};

export interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
  /** Method, URL and the interesting request headers, for failure messages. */
  request: string;
}

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
}

/** Server log entries at error level, most recent last, to explain a 5xx: the message, the error and its cause. */
export class LogTail {
  readonly lines: string[] = [];
  /** A pino destination stream. */
  readonly stream = {
    write: (line: string) => {
      const level = /"level":(\d+)/.exec(line)?.[1];
      if (level === undefined || Number(level) < 50) return;
      let entry: { msg?: string; err?: { type?: string; message?: string; code?: string; cause?: { message?: string; code?: string } } };
      try {
        entry = JSON.parse(line) as typeof entry;
      } catch {
        entry = { msg: line.slice(0, 500) };
      }
      const err = entry.err;
      const message = (err?.message ?? '').split('\n');
      const cause = err?.cause ? ` <- ${err.cause.code ?? ''} ${err.cause.message ?? ''}` : '';
      this.lines.push(`${entry.msg ?? ''}: ${err?.type ?? ''} ${err?.code ?? ''} ${message[0]!.slice(0, 120)} ${message.slice(1).join(' ').slice(0, 300)}${cause}`.slice(0, 900));
      if (this.lines.length > 3) this.lines.shift();
    },
  };
}

let logTail: LogTail | undefined;
/** Server logs to quote when an answer breaks the contract. */
export function quoteLogsFrom(tail: LogTail): void {
  logTail = tail;
}

/**
 * A valid identity token per sub, minted by mint and re-minted every 10 minutes (long fuzz runs
 * outlive one token).
 */
export function cachedTokens(mint: (sub: string) => Promise<string>): (sub: string) => Promise<string> {
  const tokens = new Map<string, { token: string; at: number }>();
  return async (sub) => {
    const cached = tokens.get(sub);
    if (cached && Date.now() - cached.at < 600_000) return cached.token;
    const token = await mint(sub);
    tokens.set(sub, { token, at: Date.now() });
    return token;
  };
}

const MAX_WAIT_MS = 20_000;

type Init = RequestInit & { duplex?: 'half' };

/**
 * One request with a deadline: no answer within MAX_WAIT_MS (a hang) or a dropped connection (a
 * crash, or the server closing a keep-alive connection under a request: the race that
 * server.keepAliveTimeout closes) throws, which fails the property with the input that caused
 * it.
 */
export async function send(url: string, first: Init = {}): Promise<Answer> {
  const method = first.method ?? 'GET';
  const headers = new Headers(first.headers);
  const shown: string[] = [];
  headers.forEach((v, k) => {
    if (k !== 'authorization') shown.push(`${k}: ${v.slice(0, 200)}`);
  });
  const auth = headers.get('authorization');
  if (auth !== null) shown.push(`authorization: ${auth.slice(0, 60)}${auth.length > 60 ? '...' : ''} (${auth.length} chars)`);
  const request = `${method} ${url.slice(0, 600)}${shown.length ? `\n  ${shown.join('\n  ')}` : ''}`;
  if (traceDir) {
    const body = first.body;
    traceInput(`${request}\n\n${typeof body === 'string' ? body : body instanceof Uint8Array ? Buffer.from(body).toString('base64') : ''}`);
  }
  try {
    const res = await fetch(url, { ...first, signal: AbortSignal.timeout(MAX_WAIT_MS) } as RequestInit);
    const body = Buffer.from(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, body, text: body.toString('utf8'), request };
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(`no answer to ${request}: ${(err as Error).name}: ${(err as Error).message}${cause ? ` (${cause.code ?? ''} ${cause.message ?? ''})` : ''} (a hang or a crash)`, { cause: err });
  }
}

function explain(a: Answer, why: string): string {
  const logs = logTail?.lines.length ? `\nserver errors (latest last):\n${logTail.lines.join('\n')}` : '';
  return `${why}\nrequest: ${a.request}\nanswer: ${a.status} ${a.headers.get('content-type') ?? '(no content-type)'}\n${a.text.slice(0, 800)}${logs}`;
}

/**
 * The contract for any answer: a status below 500; a 2xx is returned as it is (the caller checks
 * its body); a 304 only where allowed, without a body; anything else an RFC 9457 problem document
 * exactly as docs/api.md writes it, whose code belongs to its status, never carrying a certificate,
 * with WWW-Authenticate on 401 (error="invalid_token" exactly when a bearer token was sent) and
 * Retry-After on 429 and 503.
 */
export function assertContract(a: Answer, options: { allowNotModified?: boolean; bearerSent?: boolean } = {}): ProblemDocument | undefined {
  assert.ok(a.status >= 200 && a.status < 500, explain(a, `a status of ${a.status} (docs/api.md: no 5xx for any input)`));
  if (a.status < 300) return undefined;
  if (a.status === 304 && options.allowNotModified) {
    assert.equal(a.body.length, 0, explain(a, 'a 304 has no body'));
    return undefined;
  }
  const type = a.headers.get('content-type')?.split(';')[0]?.trim();
  assert.equal(type, 'application/problem+json', explain(a, 'a non-2xx answer is application/problem+json'));
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(a.text) as Record<string, unknown>;
  } catch {
    assert.fail(explain(a, 'the problem document is not JSON'));
  }
  assert.ok(body !== null && typeof body === 'object' && !Array.isArray(body), explain(a, 'the problem document is a JSON object'));
  assert.deepEqual(Object.keys(body).sort(), ['detail', 'status', 'title', 'type'], explain(a, 'a problem has exactly type, title, status and detail'));
  const m = typeof body.type === 'string' ? /^urn:service-ca:error:([A-Za-z]+)$/.exec(body.type) : null;
  assert.ok(m, explain(a, 'type is urn:service-ca:error:<code>'));
  const code = m[1]!;
  assert.equal(PROBLEM_STATUS[code], a.status, explain(a, `code ${code} belongs to status ${PROBLEM_STATUS[code]}, not ${a.status}`));
  assert.equal(body.status, a.status, explain(a, 'the problem\'s status is the HTTP status'));
  assert.ok(typeof body.title === 'string' && body.title.length > 0, explain(a, 'title is a non-empty string'));
  assert.ok(typeof body.detail === 'string' && body.detail.length > 0, explain(a, 'detail is a non-empty string'));
  assert.doesNotMatch(a.text, /BEGIN CERTIFICATE/, explain(a, 'a refusal never carries a certificate'));
  if (a.status === 401) {
    const challenge = a.headers.get('www-authenticate') ?? '';
    assert.match(challenge, /^Bearer\b/, explain(a, 'a 401 carries WWW-Authenticate: Bearer'));
    if (options.bearerSent !== undefined) {
      assert.equal(/error="invalid_token"/.test(challenge), options.bearerSent, explain(a, `error="invalid_token" exactly when a token was sent (sent: ${options.bearerSent})`));
    }
  }
  if (a.status === 429 || a.status === 503) assert.match(a.headers.get('retry-after') ?? '', /^\d+$/, explain(a, 'Retry-After on 429 and 503'));
  return { type: body.type as string, title: body.title as string, status: a.status, detail: body.detail as string, code };
}

/** assertContract, and the answer must be one of the given statuses or problem codes. */
export function assertOneOf(a: Answer, allowed: (number | string)[], options: Parameters<typeof assertContract>[1] = {}): ProblemDocument | undefined {
  const problem = assertContract(a, options);
  const ok = allowed.includes(a.status) || (problem !== undefined && allowed.includes(problem.code));
  assert.ok(ok, explain(a, `expected one of ${allowed.join(', ')}`));
  return problem;
}

export { explain as explainAnswer };

/** RFC 6750 §3.1 as the app reads it: a bearer token was sent. */
export const bearerSent = (authorization: string | undefined) => authorization !== undefined && /^Bearer\s+\S/i.test(authorization);

/** Runs the tasks with at most `limit` at a time; rejects with the first failure. */
export async function inPool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

// ---- generators shared by several files ----

/** Text that a URL may carry after percent-decoding: any octets, UTF-8 or not. */
export function percentEncodeBytes(bytes: Uint8Array): string {
  return [...bytes].map((b) => (/[A-Za-z0-9\-_.~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0').toUpperCase()}`)).join('');
}

/** Strings for path segments and query values, sent percent-encoded, raw or as odd escapes. */
export const urlText = (maxLength = 80): fc.Arbitrary<string> =>
  fc.oneof(
    fc.string({ unit: 'binary', maxLength }).map((s) => percentEncodeBytes(Buffer.from(s, 'utf8'))),
    fc.uint8Array({ maxLength }).map(percentEncodeBytes),
    // Raw ASCII, but for what would end the segment or that the URL parser strips or rewrites.
    fc.string({ unit: 'binary-ascii', maxLength }).map((s) => [...s].map((c) => (c <= ' ' || c === '\x7f' || '#?&/\\'.includes(c) ? percentEncodeBytes(Buffer.from(c)) : c)).join('')),
    fc.stringMatching(/^(%[0-9A-Za-z]{0,2}|[a-z0-9]){0,12}$/),
  );

/** JSON values of any shape, with strings that include control characters and lone surrogates. */
export const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3, stringUnit: 'binary-ascii' }),
  fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }),
);
