/**
 * The load generator in C: wrk (Debian's package `wrk`), driven with a Lua script that replays
 * pre-built requests (one fresh token each, bodies by index), so that the load generator takes
 * a few percent of the two cores instead of the 15-45% node:http needs for the same load. The
 * node:http driver (support.ts drive) stays the fallback where wrk is not installed.
 *
 * wrk reports requests, errors by kind (connect, read, write, timeout, and status >= 400) and
 * latency percentiles (over every answer, refusals included: the node:http driver counts 2xx
 * only); its CPU time, read from the shell's `times` after it exits, includes formatting the
 * requests before the measured run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTimed } from './timed-command.js';

export const wrkAvailable = (): boolean => spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;

export interface WrkRequest {
  method: 'GET' | 'POST';
  path: string;
  /** A bearer token, or undefined. */
  token?: string | undefined;
  /** An index into the bodies (sent as application/json), or undefined for none. */
  body?: number | undefined;
  /** Extra headers. */
  headers?: Record<string, string>;
}

export interface WrkRun {
  requests: number;
  /** Answers with a status under 400. */
  succeeded: number;
  /** Bytes received, headers included. */
  bytes: number;
  errors: { connect: number; read: number; write: number; timeout: number; status: number };
  /** Every error above, summed. */
  failed: number;
  elapsed: number;
  p50ms: number;
  p99ms: number;
  p999ms: number;
  /** CPU seconds wrk used (user + system). */
  cpuSeconds: number;
}

// Requests are formatted once in init (wrk.format), then handed out in order, wrapping around:
// the caller builds more requests than the run can send when each must be used once.
const SCRIPT = String.raw`
local reqs = {}
local i = 0
local function unescape(s) return (s:gsub("\\t", "\t"):gsub("\\n", "\n")) end
init = function(args)
  local bodies = {}
  for line in io.lines(args[2]) do bodies[#bodies + 1] = line end
  for line in io.lines(args[1]) do
    local method, path, token, body, extra = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t?(.*)$")
    local headers = {}
    if token ~= "" then headers["Authorization"] = "Bearer " .. token end
    local payload = nil
    if body ~= "" then
      payload = bodies[tonumber(body) + 1]
      headers["Content-Type"] = "application/json"
    end
    for name, value in extra:gmatch("([^:\t]+):([^\t]*)\t?") do headers[name] = unescape(value) end
    reqs[#reqs + 1] = wrk.format(method, path, headers, payload)
  end
end
request = function()
  i = i + 1
  if i > #reqs then i = 1 end
  return reqs[i]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%d,"bytes":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d,"p50":%d,"p99":%d,"p999":%d}\n',
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
`;

/** Runs wrk (one thread, `concurrency` keep-alive connections) for durationMs against port. */
export async function driveWrk(port: number, concurrency: number, durationMs: number, requests: WrkRequest[], bodies: string[] = []): Promise<WrkRun> {
  if (requests.length === 0) throw new Error('wrk needs at least one request');
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-wrk-'));
  try {
    const script = join(dir, 'replay.lua');
    const list = join(dir, 'requests.tsv');
    const bodyFile = join(dir, 'bodies.txt');
    writeFileSync(script, SCRIPT);
    writeFileSync(
      list,
      requests
        .map((r) => [r.method, r.path, r.token ?? '', r.body ?? '', ...Object.entries(r.headers ?? {}).map(([k, v]) => `${k}:${v.replace(/\t/g, '\\t')}`)].join('\t'))
        .join('\n') + '\n',
    );
    // One body per line: JSON.stringify never writes a raw newline.
    writeFileSync(bodyFile, bodies.join('\n') + '\n');
    const wrk = `wrk -t1 -c${concurrency} -d${Math.round(durationMs / 1000)}s --timeout 10s -s ${script} http://127.0.0.1:${port} -- ${list} ${bodyFile}`;
    const { code, out, cpuSeconds } = await runTimed(wrk);
    const line = /^WRK (.*)$/m.exec(out);
    if (code !== 0 || !line) throw new Error(`wrk failed (exit ${code}):\n${out}`);
    const r = JSON.parse(line[1]!) as Record<string, number>;
    const errors = { connect: r.connect!, read: r.read!, write: r.write!, timeout: r.timeout!, status: r.status! };
    return {
      requests: r.requests!,
      succeeded: r.requests! - r.status!,
      bytes: r.bytes!,
      errors,
      failed: errors.connect + errors.read + errors.write + errors.timeout + errors.status,
      elapsed: r.durationUs! / 1e6,
      p50ms: r.p50! / 1000,
      p99ms: r.p99! / 1000,
      p999ms: r.p999! / 1000,
      cpuSeconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
