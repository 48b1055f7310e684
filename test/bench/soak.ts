/**
 * Soak (a script, not a test): the real server on Postgres under a steady open-loop load for a
 * fixed time — issuances at a fixed rate with fresh one-time tokens, renewal-info lookups, CRL
 * downloads, and a trickle of revocations so that CRLs keep being regenerated — sampling every
 * interval: requests and errors per kind, p99 latency, and the server's resident memory. At the
 * end it judges whether RSS levelled off: the mean of the last third of the run must be within
 * 10% of the mean of the middle third, and the last third's own slope under 5 MiB per minute.
 *
 *   npm run soak -- [--minutes 5] [--rate 150] [--sample 10] [--workers N] [--db postgres|pglite]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createKeyAndCsr } from '../../src/cli/keys.js';
import { createTestPki } from '../setup/pki.js';
import { benchIssuer, percentile, processTree, startBenchServer } from './support.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '5' },
    rate: { type: 'string', default: '150' },
    sample: { type: 'string', default: '10' },
    workers: { type: 'string' },
    db: { type: 'string', default: 'postgres' },
  },
});
const minutes = Number(values.minutes);
const rate = Number(values.rate);
const sampleSeconds = Number(values.sample);
const ADMIN = 'spiffe://example.org/admin';

/** Current resident memory of the server's process tree (all workers), MiB. */
function treeRssMiB(root: number): number {
  let kib = 0;
  for (const pid of processTree(root)) {
    try {
      kib += Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return Math.round(kib / 1024);
}

type Kind = 'issue' | 'renewalInfo' | 'crl' | 'revoke';

async function main() {
  const work = mkdtempSync(join(tmpdir(), 'service-ca-soak-'));
  const pki = await createTestPki('p256');
  const issuer = await benchIssuer(work);
  console.log(`node ${process.version}, ${cpus().length} CPUs; ${minutes} min at ${rate} issuances/s on ${values.db}; preparing CSRs...`);
  const bodies: string[] = [];
  for (let i = 0; i < 1000; i++) bodies.push(JSON.stringify({ csr: (await createKeyAndCsr('p256', { dns: [`w${i}.soak.svc`] })).csrPem, ttl: '1h' }));
  const server = await startBenchServer({
    db: values.db as 'postgres' | 'pglite',
    dir: work,
    pki,
    issuer,
    ...(values.workers ? { workers: Number(values.workers) } : {}),
    config: { crl: { validity: '24h', refresh: '1h', maxDelay: '2s' } },
  });
  // Idle sockets are dropped after 4 s, before the server's 5 s keep-alive timeout: otherwise a
  // request sent on a socket the server is closing fails (a load-generator artifact).
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64, timeout: 4000 });
  const serials: string[] = [];
  let interval = { counts: {} as Record<string, number>, errors: {} as Record<string, number>, latencies: [] as number[] };
  const samples: Record<string, unknown>[] = [];
  let inFlight = 0;

  const send = (kind: Kind, method: string, port: number, path: string, headers: Record<string, string>, body?: string) => {
    if (inFlight > 2000) {
      interval.errors.overload = (interval.errors.overload ?? 0) + 1;
      return;
    }
    inFlight++;
    const t0 = performance.now();
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        inFlight--;
        const ok = (res.statusCode ?? 0) < 300 || (kind === 'crl' && res.statusCode === 304);
        if (ok) {
          interval.counts[kind] = (interval.counts[kind] ?? 0) + 1;
          if (kind === 'issue') {
            interval.latencies.push(performance.now() - t0);
            const serial = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { serial: string }).serial;
            if (serials.length < 50_000) serials.push(serial);
          }
        } else interval.errors[`${kind} ${res.statusCode}`] = (interval.errors[`${kind} ${res.statusCode}`] ?? 0) + 1;
      });
    });
    req.on('error', () => {
      inFlight--;
      interval.errors[`${kind} network`] = (interval.errors[`${kind} network`] ?? 0) + 1;
    });
    req.end(body);
  };

  const started = performance.now();
  const end = started + minutes * 60_000;
  let n = 0;
  let due = 0;
  const tick = setInterval(() => {
    // Open loop: what is due since the start is sent, whatever the answers' latency.
    const elapsed = (performance.now() - started) / 1000;
    const target = Math.floor(elapsed * rate);
    for (; due < target; due++) {
      const i = n++;
      const token = issuer.mint(`spiffe://example.org/ns/soak/sa/w${i % 1000}`, 600);
      send('issue', 'POST', server.apiPort, '/v1/certificates', { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, bodies[i % bodies.length]);
      if (i % 2 === 0 && serials.length > 0) send('renewalInfo', 'GET', server.publicPort, `/v1/certificates/${serials[i % serials.length]}/renewal-info`, {});
      if (i % Math.max(1, Math.round(rate / 5)) === 0) send('crl', 'GET', server.publicPort, '/v1/crl', {});
      if (i % 100 === 50 && serials.length > 100) {
        const serial = serials.splice(Math.floor(Math.random() * serials.length), 1)[0]!;
        send('revoke', 'POST', server.apiPort, `/v1/certificates/${serial}/revoke`, { 'Content-Type': 'application/json', Authorization: `Bearer ${issuer.mint(ADMIN, 600)}` }, JSON.stringify({ reason: 'superseded' }));
      }
    }
  }, 10);
  const sampler = setInterval(() => {
    const lat = interval.latencies.sort((a, b) => a - b);
    const row = {
      minute: Number(((performance.now() - started) / 60_000).toFixed(2)),
      issuedPerSecond: Math.round((interval.counts.issue ?? 0) / sampleSeconds),
      renewalInfoPerSecond: Math.round((interval.counts.renewalInfo ?? 0) / sampleSeconds),
      crlPerSecond: Number(((interval.counts.crl ?? 0) / sampleSeconds).toFixed(1)),
      revoked: interval.counts.revoke ?? 0,
      errors: Object.values(interval.errors).reduce((a, b) => a + b, 0),
      errorKinds: JSON.stringify(interval.errors),
      p99ms: Number(percentile(lat, 99).toFixed(1)),
      serverRssMiB: treeRssMiB(server.pid),
      loadGeneratorRssMiB: Math.round(process.memoryUsage().rss / 1024 / 1024),
    };
    samples.push(row);
    console.log(JSON.stringify(row));
    interval = { counts: {}, errors: {}, latencies: [] };
  }, sampleSeconds * 1000);

  await new Promise((r) => setTimeout(r, end - performance.now()));
  clearInterval(tick);
  await new Promise((r) => setTimeout(r, 2000));
  clearInterval(sampler);
  agent.destroy();
  await server.stop();
  rmSync(work, { recursive: true, force: true });

  const rss = samples.map((s) => s.serverRssMiB as number);
  const third = Math.max(1, Math.floor(rss.length / 3));
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
  const middle = mean(rss.slice(third, 2 * third));
  const last = rss.slice(rss.length - third);
  const growth = (mean(last) - middle) / middle;
  const slopePerMinute = last.length > 1 ? ((last[last.length - 1]! - last[0]!) / ((last.length - 1) * sampleSeconds)) * 60 : 0;
  const levelsOff = growth < 0.1 && slopePerMinute < 5;
  const totals = {
    issued: samples.reduce((a, s) => a + (s.issuedPerSecond as number) * sampleSeconds, 0),
    errors: samples.reduce((a, s) => a + (s.errors as number), 0),
    rssMiddleThirdMiB: Math.round(middle),
    rssLastThirdMiB: Math.round(mean(last)),
    rssGrowth: Number((growth * 100).toFixed(1)),
    rssSlopeLastThirdMiBPerMinute: Number(slopePerMinute.toFixed(1)),
    levelsOff,
  };
  console.table(samples.map(({ errorKinds: _e, ...s }) => s));
  console.log(JSON.stringify(totals));
  console.log(levelsOff ? 'RSS levels off' : 'RSS DOES NOT level off');
  mkdirSync('.bench', { recursive: true });
  const out = join('.bench', `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(out, JSON.stringify({ kind: 'soak', node: process.version, minutes, rate, samples, totals }, null, 2));
  console.log(`results written to ${out}`);
  process.exitCode = levelsOff && totals.errors === 0 ? 0 : 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
