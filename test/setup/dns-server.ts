/**
 * A small authoritative DNS server for ACME tests, on 127.0.0.1 with an ephemeral port, over UDP
 * and TCP (the same port number): A, AAAA and TXT from an in-memory map the test controls, SOA
 * and NS for each zone (the last label of a name, e.g. `svc.`, which lego's zone look-ups ask
 * for), answers with TTL 0 and the AA and RA bits set (so that Go's resolver takes them), NXDOMAIN
 * for a name that has no record at all. Names compare case-insensitively, with or without the
 * trailing dot; an answer repeats the question's name as it was asked.
 *
 * TXT records can also be set by another process through a small HTTP control endpoint on
 * 127.0.0.1 that takes a per-server secret: execProviderScript is an executable for lego's
 * `exec` DNS provider (EXEC_PATH), which lego runs as `present <fqdn> <value>` and
 * `cleanup <fqdn> <value>`; it exits 0 only once the server has the change, so that the record
 * is there before lego tells the CA to validate.
 */
import { randomBytes } from 'node:crypto';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { isIPv4, isIPv6, createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { removeAtExit } from './cleanup.js';

export interface DnsQuery {
  /** The name as asked, lower case, without the trailing dot. */
  name: string;
  type: string;
  transport: 'udp' | 'tcp';
}

export interface DnsServer {
  /** "127.0.0.1:PORT": the same port answers UDP and TCP. */
  address: string;
  host: string;
  port: number;
  /** Replaces the A (or, for an IPv6 address, AAAA) records of name; no address removes both. */
  setA(name: string, ...ips: string[]): void;
  /** Replaces the TXT records of name; an empty list removes them. */
  setTxt(name: string, values: string[]): void;
  /** The TXT records of name now (including what the exec provider script added). */
  txt(name: string): string[];
  /** Every question asked so far, in order. */
  queries: DnsQuery[];
  /** An executable for lego's exec DNS provider: `present|cleanup <fqdn> <value>`. */
  execProviderScript: string;
  stop(): Promise<void>;
}

interface Records {
  a: string[];
  aaaa: string[];
  txt: string[];
}

/** Lower case, without the trailing dot. */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/\.$/, '');
}

/** The zone a name belongs to here: its last label (`api.payments.svc` is in `svc`). */
function zoneOf(name: string): string {
  const labels = name.split('.');
  return labels[labels.length - 1] ?? name;
}

const NXDOMAIN = 3;
const SERVFAIL = 2;
const NOTIMP = 4;
const FORMERR = 1;

export async function startDnsServer(): Promise<DnsServer> {
  const records = new Map<string, Records>();
  const queries: DnsQuery[] = [];
  const entry = (name: string): Records => {
    const key = normalizeName(name);
    let r = records.get(key);
    if (!r) {
      r = { a: [], aaaa: [], txt: [] };
      records.set(key, r);
    }
    return r;
  };
  const prune = (name: string) => {
    const key = normalizeName(name);
    const r = records.get(key);
    if (r && r.a.length === 0 && r.aaaa.length === 0 && r.txt.length === 0) records.delete(key);
  };

  /** The SOA of a zone: every zone (a name's last label) is served here. */
  const soaFor = (zone: string): dnsPacket.Answer => ({
    type: 'SOA',
    name: zone,
    ttl: 0,
    class: 'IN',
    data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 60, retry: 60, expire: 600, minimum: 0 },
  });

  function answer(query: dnsPacket.DecodedPacket, transport: 'udp' | 'tcp'): Buffer {
    const base = {
      id: query.id,
      type: 'response' as const,
      // AA and RA: an authoritative answer, and Go's resolver refuses a non-AA, non-RA answer
      // without records as a lame referral. RD echoes the query's.
      flags: dnsPacket.AUTHORITATIVE_ANSWER | dnsPacket.RECURSION_AVAILABLE | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0),
      questions: query.questions ?? [],
    };
    const opt = (query.additionals ?? []).find((a) => a.type === 'OPT');
    const additionals: dnsPacket.Answer[] = opt ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [];
    const q = query.questions?.[0];
    if (query.questions?.length !== 1 || !q) return dnsPacket.encode({ ...base, flags: base.flags | FORMERR, additionals });
    if (query.flag_qr) return dnsPacket.encode({ ...base, flags: base.flags | FORMERR, additionals });
    const name = normalizeName(q.name);
    queries.push({ name, type: q.type, transport });
    const zone = zoneOf(name);
    const r = records.get(name);
    const answers: dnsPacket.Answer[] = [];
    const authorities: dnsPacket.Answer[] = [];
    let rcode = 0;
    if (q.class !== undefined && q.class !== 'IN' && q.class !== 'ANY') {
      rcode = NOTIMP;
    } else if (name === zone) {
      // The zone apex: SOA and NS, and the records the test put there.
      if (q.type === 'SOA') answers.push(soaFor(q.name));
      else if (q.type === 'NS') {
        answers.push({ type: 'NS', name: q.name, ttl: 0, class: 'IN', data: `ns.${zone}` });
        additionals.push({ type: 'A', name: `ns.${zone}`, ttl: 0, class: 'IN', data: '127.0.0.1' });
      } else answers.push(...recordsOf(q, r));
      if (answers.length === 0) authorities.push(soaFor(zone));
    } else if (name === `ns.${zone}`) {
      if (q.type === 'A') answers.push({ type: 'A', name: q.name, ttl: 0, class: 'IN', data: '127.0.0.1' });
      else authorities.push(soaFor(zone));
    } else if (!r) {
      rcode = NXDOMAIN;
      authorities.push(soaFor(zone));
    } else {
      answers.push(...recordsOf(q, r));
      if (answers.length === 0) authorities.push(soaFor(zone));
    }
    const packet = { ...base, flags: base.flags | rcode, answers, authorities, additionals };
    const encoded = dnsPacket.encode(packet);
    const limit = opt && opt.type === 'OPT' ? Math.max(512, Math.min(opt.udpPayloadSize, 1232)) : 512;
    if (transport === 'udp' && encoded.length > limit) {
      // Too long for this UDP answer: the client asks again over TCP.
      return dnsPacket.encode({ ...base, flags: base.flags | rcode | dnsPacket.TRUNCATED_RESPONSE, additionals: opt ? additionals.slice(0, 1) : [] });
    }
    return encoded;
  }

  function recordsOf(q: dnsPacket.Question, r: Records | undefined): dnsPacket.Answer[] {
    if (!r) return [];
    const out: dnsPacket.Answer[] = [];
    if (q.type === 'A' || (q.type as string) === 'ANY') for (const ip of r.a) out.push({ type: 'A', name: q.name, ttl: 0, class: 'IN', data: ip });
    if (q.type === 'AAAA' || (q.type as string) === 'ANY') for (const ip of r.aaaa) out.push({ type: 'AAAA', name: q.name, ttl: 0, class: 'IN', data: ip });
    if (q.type === 'TXT' || (q.type as string) === 'ANY') for (const v of r.txt) out.push({ type: 'TXT', name: q.name, ttl: 0, class: 'IN', data: [Buffer.from(v, 'utf8')] });
    return out;
  }

  function respond(msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      // Not a DNS message we can read: answer FORMERR when there is at least an id to answer to.
      if (msg.length < 2) return undefined;
      const header = Buffer.alloc(12);
      msg.copy(header, 0, 0, 2);
      header.writeUInt16BE(0x8000 | FORMERR, 2);
      return header;
    }
    try {
      return answer(query, transport);
    } catch {
      return dnsPacket.encode({ id: query.id, type: 'response', flags: SERVFAIL, questions: query.questions ?? [] });
    }
  }

  // UDP on an ephemeral port, then TCP on the same number (another try when TCP's is taken).
  let udp: Socket | undefined;
  let tcp: TcpServer | undefined;
  for (let attempt = 0; attempt < 20 && !tcp; attempt++) {
    const u = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      u.once('error', reject);
      u.bind(0, '127.0.0.1', () => resolve());
    });
    const port = u.address().port;
    const t = createTcpServer((socket) => serveTcp(socket));
    const ok = await new Promise<boolean>((resolve) => {
      t.once('error', () => resolve(false));
      t.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      udp = u;
      tcp = t;
    } else {
      u.close();
    }
  }
  if (!udp || !tcp) throw new Error('could not bind UDP and TCP on one port of 127.0.0.1');
  const udpSocket = udp;
  udpSocket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    const out = respond(msg, 'udp');
    if (out) udpSocket.send(out, rinfo.port, rinfo.address);
  });
  const tcpSockets = new Set<TcpSocket>();
  function serveTcp(socket: TcpSocket) {
    tcpSockets.add(socket);
    socket.on('close', () => tcpSockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(10_000, () => socket.destroy());
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      // Each message has a two-byte length before it (RFC 1035 §4.2.2).
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) break;
        const msg = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        const out = respond(msg, 'tcp');
        if (!out) continue;
        const framed = Buffer.alloc(2 + out.length);
        framed.writeUInt16BE(out.length, 0);
        out.copy(framed, 2);
        socket.write(framed);
      }
    });
  }
  const port = udpSocket.address().port;

  const setTxt = (name: string, values: string[]) => {
    entry(name).txt = [...values];
    prune(name);
  };
  const txt = (name: string) => [...(records.get(normalizeName(name))?.txt ?? [])];

  // The control endpoint for the exec provider script: POST {action, fqdn, value} with the secret.
  const secret = randomBytes(24).toString('hex');
  const control: HttpServer = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reply = (status: number, text: string) => {
        res.writeHead(status, { 'Content-Type': 'text/plain' });
        res.end(text);
      };
      if (req.method !== 'POST' || req.url !== '/txt') return reply(404, 'not found');
      if (req.headers.authorization !== `Bearer ${secret}`) return reply(401, 'bad secret');
      let body: { action?: unknown; fqdn?: unknown; value?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
      } catch {
        return reply(400, 'not JSON');
      }
      const { action, fqdn, value } = body;
      if (typeof fqdn !== 'string' || fqdn === '' || typeof value !== 'string') return reply(400, 'fqdn and value must be strings');
      const now = txt(fqdn);
      if (action === 'present') setTxt(fqdn, now.includes(value) ? now : [...now, value]);
      else if (action === 'cleanup') setTxt(fqdn, now.filter((v) => v !== value));
      else return reply(400, 'action must be present or cleanup');
      reply(200, 'ok');
    });
  });
  await new Promise<void>((resolve, reject) => {
    control.once('error', reject);
    control.listen(0, '127.0.0.1', () => resolve());
  });
  const controlUrl = `http://127.0.0.1:${(control.address() as AddressInfo).port}/txt`;

  // The script: node itself through the shebang (lego runs EXEC_PATH directly, with the args).
  if (/\s/.test(process.execPath)) throw new Error(`node's path has white space, which a shebang line cannot hold: ${process.execPath}`);
  const scriptDir = mkdtempSync(join(tmpdir(), 'service-ca-dns-'));
  removeAtExit(scriptDir);
  const execProviderScript = join(scriptDir, 'lego-exec-provider.mjs');
  writeFileSync(
    execProviderScript,
    `#!${process.execPath}
// lego's exec DNS provider: present|cleanup <fqdn> <value>, forwarded to the test's DNS server.
const [action, fqdn, value] = process.argv.slice(2);
if ((action !== 'present' && action !== 'cleanup') || !fqdn || value === undefined) {
  console.error('usage: present|cleanup <fqdn> <value>');
  process.exit(2);
}
const res = await fetch(${JSON.stringify(controlUrl)}, {
  method: 'POST',
  headers: { 'Content-Type': 'application/json', Authorization: ${JSON.stringify(`Bearer ${secret}`)} },
  body: JSON.stringify({ action, fqdn, value }),
});
if (res.status !== 200) {
  console.error(\`the test DNS server refused \${action} \${fqdn}: \${res.status} \${await res.text()}\`);
  process.exit(1);
}
`,
  );
  chmodSync(execProviderScript, 0o755);

  let stopped = false;
  return {
    address: `127.0.0.1:${port}`,
    host: '127.0.0.1',
    port,
    setA(name, ...ips) {
      for (const ip of ips) if (!isIPv4(ip) && !isIPv6(ip)) throw new Error(`not an IP address: ${ip}`);
      const r = entry(name);
      r.a = ips.filter((ip) => isIPv4(ip));
      r.aaaa = ips.filter((ip) => isIPv6(ip));
      prune(name);
    },
    setTxt,
    txt,
    queries,
    execProviderScript,
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const s of tcpSockets) s.destroy();
      await Promise.all([
        new Promise<void>((resolve) => udpSocket.close(() => resolve())),
        new Promise<void>((resolve) => tcp!.close(() => resolve())),
        new Promise<void>((resolve) => {
          control.closeAllConnections();
          control.close(() => resolve());
        }),
      ]);
      rmSync(scriptDir, { recursive: true, force: true });
    },
  };
}
