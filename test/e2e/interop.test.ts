/**
 * Interoperability (issue #7 point 4): what the CA issues and publishes, read by three unrelated
 * X.509 stacks. For every intermediate key type the test PKI supports and every leaf key type
 * the CA accepts (P-256, P-384, RSA 2048, Ed25519):
 * - OpenSSL: `verify -x509_strict` with -purpose sslserver and sslclient, `crl -verify`, and
 *   `verify -crl_check` refusing revoked certificates;
 * - GnuTLS (Debian's gnutls-bin): `certtool --verify-chain` and `--verify` with purpose and
 *   hostname, `--verify-crl` and `--crl-info` on the CRL (DER, with the DER intermediate),
 *   `--verify --load-crl` refusing revoked certificates; gnutls-cli and gnutls-serv in real
 *   handshakes with a node:tls peer;
 * - node:tls: mutual TLS between an issued server and an issued client certificate, each side
 *   verifying the other against the root, and a CRL refusing a revoked client.
 * Every check is paired with a refusal by the same tool (another CA's root, a tampered
 * certificate or CRL, a serverAuth-only certificate used as a client, a revoked certificate),
 * so that an accepting tool is shown to check at all. The GnuTLS cases skip when gnutls-bin is
 * missing; the OpenSSL and node:tls cases always run. Last, the CRL served after the
 * intermediate is replaced on the same database, read by the same tools.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { inParallel } from '../setup/cli-run.js';
import { derToPem, pemToDer } from '../setup/crafted.js';
import { fetchCrl, opensslCrl, rootCrlPem, subjectKeyId, verifyWithCrl, waitForCrl } from '../setup/crl-check.js';
import { createKeyAndCsr, type ClientKeyType, type Names } from '../setup/csr.js';
import { createTestDatabase } from '../setup/database.js';
import { openssl, verifyChain } from '../setup/openssl.js';
import { createTestPki, type TestPki } from '../setup/pki.js';
import { freePort, spawnService } from '../setup/processes.js';
import { revokeOk } from '../setup/revoking.js';

const CA_KEYS = ['p256', 'p384', 'rsa', 'ed25519'] as const;
const LEAF_KEYS: ClientKeyType[] = ['p256', 'p384', 'rsa', 'ed25519'];
/** Each leaf key type serves once and is a client once: server K talks to client next(K). */
const clientFor = (k: ClientKeyType) => LEAF_KEYS[(LEAF_KEYS.indexOf(k) + 1) % LEAF_KEYS.length]!;

const SERVER = workload('shop', 'web');
const SERVER_NAMES: Names = { dns: ['web.shop.svc'], ip: ['10.0.0.5'] };
const CLIENT = workload('billing', 'worker');
const CLIENT_NAMES: Names = { dns: ['worker.billing.svc'], uri: [CLIENT] };
/** The default policies narrow this identity to serverAuth. */
const GATEWAY = workload('edge', 'gateway');
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

const has = (command: string) => spawnSync(command, ['--version'], { stdio: 'ignore' }).status === 0;
const CERTTOOL = has('certtool');
const GNUTLS_TLS = has('gnutls-cli') && has('gnutls-serv');
const NO_CERTTOOL = CERTTOOL ? false : 'certtool is not installed (Debian: apt-get install -y gnutls-bin)';
const NO_GNUTLS_TLS = GNUTLS_TLS ? false : 'gnutls-cli/gnutls-serv are not installed (Debian: apt-get install -y gnutls-bin)';
/** Tool invocations at a time: this runs on 2-core machines next to other work. */
const PARALLEL = 2;

interface Leaf {
  keyType: ClientKeyType;
  key: string;
  cert: string;
  /** The leaf followed by the intermediate, as a TLS peer sends it. */
  fullChain: string;
  serial: string;
}

async function issueLeaf(app: TestApp, sub: string, names: Names, keyType: ClientKeyType): Promise<Leaf> {
  const { keyPem, csrPem } = await createKeyAndCsr(keyType, names);
  const res = await app.issue(sub, { csr: csrPem, ttl: '1h' });
  const text = await res.text();
  assert.equal(res.status, 201, `issuing a ${keyType} leaf for ${sub}: ${text}`);
  const body = JSON.parse(text) as { serial: string; certificate: string; chain: string[] };
  return { keyType, key: keyPem, cert: body.certificate, fullChain: body.certificate + body.chain.join(''), serial: body.serial };
}

/** The same certificate with every `web.shop.svc` in it renamed: the signature no longer covers it. */
function tampered(certPem: string): string {
  const der = pemToDer(certPem, 'CERTIFICATE');
  const from = Buffer.from('web.shop.svc');
  let changes = 0;
  for (let i = der.indexOf(from); i >= 0; i = der.indexOf(from, i + 1), changes++) Buffer.from('bad.shop.svc').copy(der, i);
  assert.ok(changes > 0, 'the certificate names web.shop.svc');
  return derToPem(der, 'CERTIFICATE');
}

/** A leaf with the client's names signed by another CA's intermediate (openssl x509 -req). */
async function foreignLeaf(pki: TestPki): Promise<Leaf> {
  const dir = await mkdtemp(join(tmpdir(), 'service-ca-interop-foreign-'));
  try {
    const f = (name: string) => join(dir, name);
    await writeFile(f('ext.cnf'), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:worker.billing.svc,URI:${CLIENT}\n`);
    const req = openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('key.pem'), '-out', f('csr.pem'), '-subj', '/CN=worker.billing.svc']);
    assert.equal(req.status, 0, req.stderr);
    const sign = openssl(['x509', '-req', '-in', f('csr.pem'), '-CA', pki.intermediateCertificate, '-CAkey', pki.intermediateKey, '-set_serial', '0x4242', '-days', '1', '-extfile', f('ext.cnf'), '-out', f('cert.pem')]);
    assert.equal(sign.status, 0, sign.stderr);
    const cert = await readFile(f('cert.pem'), 'utf8');
    return { keyType: 'p256', key: await readFile(f('key.pem'), 'utf8'), cert, fullChain: cert + (await readFile(pki.intermediateCertificate, 'utf8')), serial: '4242' };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- command-line tools, asynchronously (so that several run at once) ----

type Arg = string | { file: string; content: string | Buffer };

interface ToolResult {
  status: number | null;
  output: string;
  /** The invocation and the tail of its output, for assertion messages. */
  describe: string;
}

async function runTool(command: string, args: Arg[], timeoutMs = 20_000): Promise<ToolResult> {
  const dir = await mkdtemp(join(tmpdir(), 'service-ca-interop-'));
  try {
    const argv: string[] = [];
    for (const a of args) {
      if (typeof a === 'string') argv.push(a);
      else {
        await writeFile(join(dir, a.file), a.content);
        argv.push(join(dir, a.file));
      }
    }
    return await new Promise((resolve) => {
      execFile(command, argv, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
        const status = err ? (typeof err.code === 'number' ? err.code : null) : 0;
        const output = `${stdout}${stderr}`;
        const tail = output.trim().split('\n').slice(-8).join('\n');
        resolve({ status, output, describe: `${command} ${args.map((a) => (typeof a === 'string' ? a : a.file)).join(' ')} → ${status}\n${tail}` });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface Check {
  name: string;
  run: () => Promise<ToolResult>;
  /** Whether the tool must accept (exit 0 and print the acceptance) or refuse. */
  accept: boolean;
  /** What the output must show: acceptance or the reason for the refusal. */
  expect: RegExp;
}

/** Runs the checks PARALLEL at a time and asserts them all, reporting every mismatch at once. */
async function assertChecks(checks: Check[]): Promise<void> {
  const results = await inParallel(checks.map((c) => c.run), PARALLEL);
  const wrong = checks.flatMap((c, i) => {
    const r = results[i]!;
    const ok = c.accept ? r.status === 0 && c.expect.test(r.output) : r.status !== 0 && r.status !== null && c.expect.test(r.output);
    return ok ? [] : [`${c.name}: expected ${c.accept ? 'acceptance' : 'refusal'} matching ${c.expect}\n  ${r.describe.replace(/\n/g, '\n  ')}`];
  });
  assert.deepEqual(wrong, [], wrong.join('\n\n'));
}

const GNUTLS_TRUSTED = /Chain verification output: Verified\. The certificate is trusted\./;
const GNUTLS_NOT_TRUSTED = /Chain verification output: Not verified\./;

// ---- TLS peers ----

interface NodeServer {
  port: number;
  /** Clients whose handshake completed: with rejectUnauthorized false, also the refused ones and why. */
  accepted: { authorized: boolean; reason: string | null; peerSerial: string; received: string }[];
  errors: string[];
  close(): Promise<void>;
}

/**
 * A node:tls server that asks for a client certificate chaining to `ca` (and not revoked by
 * `crl`), refusing any other unless `report` is set (then it records why); it greets each client
 * it accepted and leaves the closing to the client.
 */
async function startNodeServer(o: { key: string; cert: string; ca: string; crl?: string[]; report?: boolean }): Promise<NodeServer> {
  const accepted: NodeServer['accepted'] = [];
  const errors: string[] = [];
  const server = createServer({ key: o.key, cert: o.cert, ca: o.ca, ...(o.crl ? { crl: o.crl } : {}), requestCert: true, rejectUnauthorized: !o.report }, (socket) => {
    const reason = socket.authorizationError ? String((socket.authorizationError as Error & { code?: string }).code ?? socket.authorizationError) : null;
    const seen = { authorized: socket.authorized, reason, peerSerial: socket.getPeerCertificate().serialNumber?.toLowerCase() ?? '', received: '' };
    accepted.push(seen);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (seen.received += d));
    socket.on('error', () => {});
    if (socket.authorized) socket.write('hello from node server\n');
    else socket.end();
  });
  server.on('tlsClientError', (err) => errors.push(err.message));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    accepted,
    errors,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

interface ClientOutcome {
  authorized: boolean;
  peerSerial: string | undefined;
  received: string;
  error: string | undefined;
}

/** A node:tls client that trusts only `ca`, checks the name, sends a line and reads one. */
function nodeClient(port: number, o: { key?: string; cert?: string; ca: string; servername?: string }): Promise<ClientOutcome> {
  return new Promise((resolve) => {
    const out: ClientOutcome = { authorized: false, peerSerial: undefined, received: '', error: undefined };
    const socket = connect({ host: '127.0.0.1', port, servername: o.servername ?? 'web.shop.svc', ca: o.ca, ...(o.key ? { key: o.key, cert: o.cert } : {}) });
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => {
      out.authorized = socket.authorized;
      out.peerSerial = socket.getPeerCertificate().serialNumber?.toLowerCase();
      socket.write('hello from node client\n');
    });
    socket.on('data', (d: string) => {
      out.received += d;
      if (out.received.includes('\n')) socket.end();
    });
    socket.on('error', (err) => (out.error ??= err.message));
    socket.on('close', () => resolve(out));
    socket.setTimeout(10_000, () => socket.destroy(new Error('client timed out')));
  });
}

/** Serials as node prints them may keep a leading zero octet; the API never does. */
const sameSerial = (a: string | undefined, b: string) => a?.replace(/^(00)+(?=[0-9a-f]{2})/, '') === b;

/**
 * gnutls-cli as a client with a certificate: it sends a line, and once the server's greeting has
 * arrived its input ends, so that it closes the connection itself (exit 0 on a clean close).
 */
async function gnutlsCli(port: number, o: { leaf: Leaf; ca: string; crl?: string; hostname?: string }): Promise<{ code: number | null; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'service-ca-gnutls-cli-'));
  try {
    const f = (name: string) => join(dir, name);
    await Promise.all([writeFile(f('ca.pem'), o.ca), writeFile(f('chain.pem'), o.leaf.fullChain), writeFile(f('key.pem'), o.leaf.key), o.crl ? writeFile(f('crl.pem'), o.crl) : undefined]);
    const args = ['-p', String(port), '127.0.0.1', '--verify-hostname', o.hostname ?? 'web.shop.svc', '--x509cafile', f('ca.pem'), '--x509certfile', f('chain.pem'), '--x509keyfile', f('key.pem')];
    if (o.crl) args.push('--x509crlfile', f('crl.pem'));
    return await new Promise((resolve) => {
      const child = spawn('gnutls-cli', args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let output = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
      child.stdin.on('error', () => {});
      child.stdin.write('hello from gnutls-cli\n');
      child.stdout.on('data', () => {
        if (output.includes('hello from node server')) child.stdin.end();
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, output });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** gnutls-serv as an echo server that requires and verifies a client certificate (and the CRL). */
async function withGnutlsServ<T>(o: { leaf: Leaf; ca: string; crl: string }, use: (port: number) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'service-ca-gnutls-serv-'));
  const f = (name: string) => join(dir, name);
  await Promise.all([writeFile(f('ca.pem'), o.ca), writeFile(f('chain.pem'), o.leaf.fullChain), writeFile(f('key.pem'), o.leaf.key), writeFile(f('crl.pem'), o.crl)]);
  const port = await freePort();
  const serv = spawnService(
    'gnutls-serv',
    ['--echo', '-p', String(port), '--require-client-cert', '--verify-client-cert', '--x509cafile', f('ca.pem'), '--x509crlfile', f('crl.pem'), '--x509certfile', f('chain.pem'), '--x509keyfile', f('key.pem')],
    { env: process.env },
  );
  try {
    const deadline = Date.now() + 10_000;
    while (!/listening on IPv4/.test(serv.output())) {
      assert.ok(serv.running && Date.now() < deadline, `gnutls-serv did not start: ${serv.output()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    return await use(port);
  } finally {
    await serv.kill();
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- the matrix ----

type CaKey = (typeof CA_KEYS)[number];

interface Fixture {
  app: TestApp;
  rootPem: string;
  intermediatePem: string;
  /** GET /v1/ca/intermediate.der, the AIA caIssuers target. */
  intermediateDer: Buffer;
  /** By leaf key type: the server's names, and the client's. */
  servers: Map<ClientKeyType, Leaf>;
  clients: Map<ClientKeyType, Leaf>;
  /** serverAuth only (the gateway policy). */
  gateway: Leaf;
  /** Revoked with keyCompromise, with the server's names (so it can serve). */
  revokedServer: Leaf;
  /** Revoked with unspecified (an entry without a reasonCode), with the client's names. */
  revokedClient: Leaf;
  /** The first published CRL that lists both revoked leaves. */
  crlDer: Buffer;
  crlPem: string;
  /** An empty CRL of the root: node:tls checks the whole chain once it has a CRL. */
  rootCrl: string;
}

/** One app (its own database) for a CA with a caKey intermediate, and what it issued and revoked. */
async function prepare(caKey: CaKey): Promise<Fixture> {
  const app = await startTestApp({ pki: await createTestPki(caKey) });
  try {
    const rootPem = await (await fetch(`${app.public}/v1/ca/root.pem`)).text();
    const intermediateDer = Buffer.from(await (await fetch(`${app.public}/v1/ca/intermediate.der`)).arrayBuffer());
    const intermediatePem = derToPem(intermediateDer, 'CERTIFICATE');
    const servers = new Map<ClientKeyType, Leaf>();
    const clients = new Map<ClientKeyType, Leaf>();
    for (const k of LEAF_KEYS) {
      servers.set(k, await issueLeaf(app, SERVER, SERVER_NAMES, k));
      clients.set(k, await issueLeaf(app, CLIENT, CLIENT_NAMES, k));
    }
    const gateway = await issueLeaf(app, GATEWAY, { dns: ['api.edge.example.org'] }, caKey);
    const revokedServer = await issueLeaf(app, SERVER, SERVER_NAMES, caKey);
    const revokedClient = await issueLeaf(app, CLIENT, CLIENT_NAMES, caKey);
    await revokeOk(app, revokedServer.serial, ADMIN, 'keyCompromise');
    await revokeOk(app, revokedClient.serial, ADMIN, 'unspecified');
    const published = await waitForCrl(app.public, intermediatePem, (c) => c.entries.has(revokedServer.serial) && c.entries.has(revokedClient.serial));
    const crlDer = published.der;
    const rootCrl = rootCrlPem(app.pki.rootKey, app.pki.rootCertificate);
    return { app, rootPem, intermediatePem, intermediateDer, servers, clients, gateway, revokedServer, revokedClient, crlDer, crlPem: derToPem(crlDer, 'X509 CRL'), rootCrl };
  } catch (err) {
    await app.stop();
    throw err;
  }
}

describe('interop with OpenSSL, GnuTLS and node:tls', () => {
  let foreign: TestPki;
  let foreignRoot: string;
  let foreignClient: Leaf;

  const fixtures = new Map<CaKey, Fixture>();

  // One app and one database per intermediate, as in production (one CA, one database); set up
  // two at a time.
  before(async () => {
    foreign = await createTestPki('p256');
    foreignRoot = await readFile(foreign.rootCertificate, 'utf8');
    foreignClient = await foreignLeaf(foreign);
    // Every setup runs to its end (so that after() stops every app), then the first failure fails the suite.
    const failures = await inParallel(
      CA_KEYS.map((k) => () => prepare(k).then((f) => void fixtures.set(k, f), (err: unknown) => err)),
      2,
    );
    const failed = failures.find((e) => e !== undefined);
    if (failed) throw failed;
  });
  after(() => Promise.all([...fixtures.values()].map((f) => f.app.stop())));

  for (const caKey of CA_KEYS) {
    describe(`${caKey} intermediate`, () => {
      let rootPem: string;
      let intermediatePem: string;
      let intermediateDer: Buffer;
      let servers: Map<ClientKeyType, Leaf>;
      let clients: Map<ClientKeyType, Leaf>;
      let gateway: Leaf;
      let revokedServer: Leaf;
      let revokedClient: Leaf;
      let crlDer: Buffer;
      let crlPem: string;
      let rootCrl: string;
      before(() => {
        const f = fixtures.get(caKey);
        assert.ok(f, `the ${caKey} CA was set up`);
        ({ rootPem, intermediatePem, intermediateDer, servers, clients, gateway, revokedServer, revokedClient, crlDer, crlPem, rootCrl } = f);
      });

      /**
       * For every leaf key type: a node:tls server with the issued server certificate of that
       * type, and the issued client certificate of the next type; what check finds wrong with
       * the pairing, if anything.
       */
      async function wrongWithNodeServer(check: (p: { serverKey: ClientKeyType; server: Leaf; client: Leaf; srv: NodeServer }) => Promise<string | undefined>): Promise<string[]> {
        const wrong: string[] = [];
        for (const serverKey of LEAF_KEYS) {
          const server = servers.get(serverKey)!;
          const client = clients.get(clientFor(serverKey))!;
          const srv = await startNodeServer({ key: server.key, cert: server.fullChain, ca: rootPem });
          try {
            const problem = await check({ serverKey, server, client, srv });
            if (problem !== undefined) wrong.push(problem);
          } finally {
            await srv.close();
          }
        }
        return wrong;
      }

      it('OpenSSL verify -x509_strict accepts every leaf key for sslserver and sslclient, and refuses what it must', () => {
        const wrong: string[] = [];
        const expect = (what: string, v: { ok: boolean; output: string }, ok: boolean) => {
          if (v.ok !== ok) wrong.push(`${what}: expected ${ok ? 'OK' : 'a refusal'}: ${v.output.trim()}`);
        };
        for (const leaf of [...servers.values(), ...clients.values()]) {
          for (const purpose of ['sslserver', 'sslclient']) expect(`${leaf.keyType} leaf, ${purpose}`, verifyChain(leaf.cert, rootPem, intermediatePem, purpose), true);
        }
        const p256 = servers.get('p256')!;
        expect('trusting another CA root', verifyChain(p256.cert, foreignRoot, intermediatePem, 'sslserver'), false);
        expect('a tampered leaf', verifyChain(tampered(p256.cert), rootPem, intermediatePem, 'sslserver'), false);
        expect('another CA leaf', verifyChain(foreignClient.cert, rootPem, intermediatePem, 'sslclient'), false);
        expect('serverAuth-only leaf as sslserver', verifyChain(gateway.cert, rootPem, intermediatePem, 'sslserver'), true);
        expect('serverAuth-only leaf as sslclient', verifyChain(gateway.cert, rootPem, intermediatePem, 'sslclient'), false);
        const byName = openssl(['verify', '-x509_strict', '-verify_hostname', 'web.shop.svc', '-verify_ip', '10.0.0.5', '-CAfile', { file: 'root.pem', content: rootPem }, '-untrusted', { file: 'int.pem', content: intermediatePem }, { file: 'leaf.pem', content: p256.cert }]);
        expect('-verify_hostname web.shop.svc -verify_ip 10.0.0.5', { ok: byName.status === 0, output: byName.stdout + byName.stderr }, true);
        const otherName = openssl(['verify', '-x509_strict', '-verify_hostname', 'api.shop.svc', '-CAfile', { file: 'root.pem', content: rootPem }, '-untrusted', { file: 'int.pem', content: intermediatePem }, { file: 'leaf.pem', content: p256.cert }]);
        expect('-verify_hostname api.shop.svc', { ok: otherName.status === 0, output: otherName.stdout + otherName.stderr }, false);
        assert.deepEqual(wrong, [], wrong.join('\n'));
      });

      it('OpenSSL crl -verify accepts the CRL against the intermediate, and verify -crl_check refuses the revoked leaves', () => {
        const crl = opensslCrl(crlDer, intermediatePem);
        assert.ok(crl.verified, crl.output);
        assert.ok(crl.entries.has(revokedServer.serial) && crl.entries.has(revokedClient.serial));
        const foreignCheck = openssl(['crl', '-inform', 'DER', '-in', { file: 'crl.der', content: crlDer }, '-CAfile', { file: 'foreign.pem', content: foreignRoot }, '-verify', '-noout']);
        assert.notEqual(foreignCheck.status, 0, 'openssl crl -verify accepted the CRL with another CA');
        assert.match(foreignCheck.stderr, /Error getting CRL issuer certificate/);
        const forged = Buffer.from(crlDer);
        forged[forged.length - 1]! ^= 0x01;
        const forgedCheck = opensslCrl(forged, intermediatePem);
        assert.ok(!forgedCheck.verified, 'openssl crl -verify accepted a CRL with a changed signature');

        const good = verifyWithCrl(servers.get('p256')!.cert, rootPem, intermediatePem, crlPem);
        assert.ok(good.ok, good.output);
        for (const revoked of [revokedServer, revokedClient]) {
          const v = verifyWithCrl(revoked.cert, rootPem, intermediatePem, crlPem);
          assert.ok(!v.ok, `openssl accepted revoked ${revoked.serial}: ${v.output}`);
          assert.match(v.output, /certificate revoked/);
        }
      });

      it('GnuTLS certtool verifies every leaf (chain, purpose, hostname) and refuses what it must', { skip: NO_CERTTOOL }, async () => {
        const root = { file: 'root.pem', content: rootPem };
        const withChain = (leafPem: string, top = rootPem) => ({ file: 'chain.pem', content: leafPem + intermediatePem + top });
        const leafAndInt = (leafPem: string) => ({ file: 'leaf.pem', content: leafPem + intermediatePem });
        const checks: Check[] = [];
        for (const leaf of [...servers.values(), ...clients.values()]) {
          const what = `${leaf.keyType} leaf`;
          checks.push({ name: `${what} --verify-chain`, accept: true, expect: GNUTLS_TRUSTED, run: () => runTool('certtool', ['--verify-chain', '--infile', withChain(leaf.cert)]) });
          for (const purpose of [SERVER_AUTH, CLIENT_AUTH]) {
            checks.push({
              name: `${what} --verify --verify-purpose ${purpose}`,
              accept: true,
              expect: GNUTLS_TRUSTED,
              run: () => runTool('certtool', ['--verify', '--load-ca-certificate', root, '--verify-purpose', purpose, '--infile', leafAndInt(leaf.cert)]),
            });
          }
        }
        const server = servers.get(caKey)!;
        checks.push(
          { name: 'server --verify-hostname web.shop.svc', accept: true, expect: GNUTLS_TRUSTED, run: () => runTool('certtool', ['--verify', '--load-ca-certificate', root, '--verify-hostname', 'web.shop.svc', '--infile', leafAndInt(server.cert)]) },
          { name: 'server --verify-hostname api.shop.svc', accept: false, expect: /does not match/, run: () => runTool('certtool', ['--verify', '--load-ca-certificate', root, '--verify-hostname', 'api.shop.svc', '--infile', leafAndInt(server.cert)]) },
          { name: 'chain ending in another CA root', accept: false, expect: GNUTLS_NOT_TRUSTED, run: () => runTool('certtool', ['--verify-chain', '--infile', withChain(server.cert, foreignRoot)]) },
          { name: 'trusting another CA root', accept: false, expect: /issuer is unknown/, run: () => runTool('certtool', ['--verify', '--load-ca-certificate', { file: 'foreign.pem', content: foreignRoot }, '--infile', leafAndInt(server.cert)]) },
          { name: 'a tampered leaf', accept: false, expect: /The signature in the certificate is invalid/, run: () => runTool('certtool', ['--verify-chain', '--infile', withChain(tampered(server.cert))]) },
          { name: 'another CA leaf under this intermediate', accept: false, expect: GNUTLS_NOT_TRUSTED, run: () => runTool('certtool', ['--verify-chain', '--infile', withChain(foreignClient.cert)]) },
          { name: 'serverAuth-only leaf for serverAuth', accept: true, expect: GNUTLS_TRUSTED, run: () => runTool('certtool', ['--verify', '--load-ca-certificate', root, '--verify-purpose', SERVER_AUTH, '--infile', leafAndInt(gateway.cert)]) },
          { name: 'serverAuth-only leaf for clientAuth', accept: false, expect: /does not match the intended purpose/, run: () => runTool('certtool', ['--verify', '--load-ca-certificate', root, '--verify-purpose', CLIENT_AUTH, '--infile', leafAndInt(gateway.cert)]) },
        );
        await assertChecks(checks);
      });

      it('GnuTLS certtool verifies the CRL with the DER intermediate, reads its entries, and refuses revoked leaves with --load-crl', { skip: NO_CERTTOOL }, async () => {
        const crlFile = { file: 'crl.pem', content: crlPem };
        const root = { file: 'root.pem', content: rootPem };
        const forged = Buffer.from(crlDer);
        forged[forged.length - 1]! ^= 0x01;
        const checks: Check[] = [
          { name: '--verify-crl (DER CRL, DER intermediate)', accept: true, expect: /Verification output: Verified\./, run: () => runTool('certtool', ['--verify-crl', '--inder', '--load-ca-certificate', { file: 'int.der', content: intermediateDer }, '--infile', { file: 'crl.der', content: crlDer }]) },
          { name: '--verify-crl with the root', accept: false, expect: /Not verified/, run: () => runTool('certtool', ['--verify-crl', '--load-ca-certificate', root, '--infile', crlFile]) },
          { name: '--verify-crl with another CA', accept: false, expect: /Not verified/, run: () => runTool('certtool', ['--verify-crl', '--load-ca-certificate', { file: 'foreign.pem', content: foreignRoot }, '--infile', crlFile]) },
          { name: '--verify-crl of a CRL with a changed signature', accept: false, expect: /Not verified/, run: () => runTool('certtool', ['--verify-crl', '--inder', '--load-ca-certificate', { file: 'int.der', content: intermediateDer }, '--infile', { file: 'crl.der', content: forged }]) },
          { name: 'a good leaf with --load-crl', accept: true, expect: GNUTLS_TRUSTED, run: () => runTool('certtool', ['--verify', '--load-ca-certificate', root, '--load-crl', crlFile, '--infile', { file: 'leaf.pem', content: servers.get(caKey)!.cert + intermediatePem }]) },
        ];
        for (const [what, revoked] of [['keyCompromise', revokedServer], ['unspecified', revokedClient]] as const) {
          checks.push({
            name: `the leaf revoked (${what}) with --load-crl`,
            accept: false,
            expect: /The certificate chain is revoked/,
            run: () => runTool('certtool', ['--verify', '--load-ca-certificate', root, '--load-crl', crlFile, '--infile', { file: 'leaf.pem', content: revoked.cert + intermediatePem }]),
          });
          checks.push({
            name: `the leaf revoked (${what}) without a CRL (control)`,
            accept: true,
            expect: GNUTLS_TRUSTED,
            run: () => runTool('certtool', ['--verify', '--load-ca-certificate', root, '--infile', { file: 'leaf.pem', content: revoked.cert + intermediatePem }]),
          });
        }
        await assertChecks(checks);

        const info = await runTool('certtool', ['--crl-info', '--inder', '--infile', { file: 'crl.der', content: crlDer }]);
        assert.equal(info.status, 0, info.describe);
        const listed = [...info.output.matchAll(/Serial Number \(hex\): ([0-9a-f]+)/g)].map((m) => m[1]);
        assert.ok(listed.includes(revokedServer.serial) && listed.includes(revokedClient.serial), `certtool lists ${listed.join(', ')}`);
        assert.match(info.output, new RegExp(`Revoked certificates \\(${listed.length}\\):`));
        assert.match(info.output, /Version: 2\b/);
        assert.match(info.output, /Issuer: CN=service-ca Intermediate CA/);
        const ski = subjectKeyId(intermediatePem)!.replace(/:/g, '').toLowerCase();
        assert.match(info.output, new RegExp(`Authority Key Identifier \\(not critical\\):\\s+${ski}`));
        const number = opensslCrl(crlDer, intermediatePem).number!;
        assert.match(info.output, new RegExp(`CRL Number \\(not critical\\): 0*${number.toString(16)}\\b`, 'i'));
        const garbled = await runTool('certtool', ['--crl-info', '--inder', '--infile', { file: 'crl.der', content: crlDer.subarray(0, crlDer.length - 10) }]);
        assert.notEqual(garbled.status, 0, `certtool read a truncated CRL: ${garbled.describe}`);
      });

      it('node:tls: an issued server and an issued client authenticate each other for every leaf key type', async () => {
        const wrong = await wrongWithNodeServer(async ({ serverKey, server, client, srv }) => {
          const c = await nodeClient(srv.port, { key: client.key, cert: client.fullChain, ca: rootPem });
          const s = srv.accepted[0];
          const ok =
            c.error === undefined && c.authorized && sameSerial(c.peerSerial, server.serial) && c.received === 'hello from node server\n' &&
            s?.authorized === true && sameSerial(s.peerSerial, client.serial) && s.received === 'hello from node client\n';
          return ok ? undefined : `server ${serverKey}, client ${client.keyType}: client ${JSON.stringify(c)}, server ${JSON.stringify(s)} ${srv.errors.join('; ')}`;
        });
        assert.deepEqual(wrong, [], wrong.join('\n'));
      });

      it('node:tls refuses another CA, a revoked client (CRL) and a serverAuth-only client, each for its reason', async () => {
        const server = servers.get(caKey)!;
        const client = clients.get(caKey)!;
        const crl = [crlPem, rootCrl];
        // The foreign CA has the same names as this one: OpenSSL may stop at the foreign
        // intermediate's signature or at this CA's CRL (found by issuer name) not verifying.
        const refused: [string, Leaf, RegExp][] = [
          ['a client of another CA', foreignClient, /^(CERT|CRL)_SIGNATURE_FAILURE$|^UNABLE_TO_GET_ISSUER_CERT/],
          ['a revoked client (keyCompromise)', revokedServer, /^CERT_REVOKED$/],
          ['a revoked client (unspecified)', revokedClient, /^CERT_REVOKED$/],
          ['a serverAuth-only client', gateway, /^INVALID_PURPOSE$/],
        ];
        const strict = await startNodeServer({ key: server.key, cert: server.fullChain, ca: rootPem, crl });
        try {
          const good = await nodeClient(strict.port, { key: client.key, cert: client.fullChain, ca: rootPem });
          assert.equal(good.received, 'hello from node server\n', `with the CRL loaded a good client is accepted: ${good.error} ${strict.errors.join('; ')}`);
          for (const [what, leaf] of refused) {
            const c = await nodeClient(strict.port, { key: leaf.key, cert: leaf.fullChain, ca: rootPem });
            assert.equal(c.received, '', `${what}: the server answered`);
          }
          assert.equal(strict.accepted.length, 1, 'the server accepted only the good client');
          assert.equal(strict.errors.length, refused.length, `every refusal is a handshake error: ${strict.errors.join('; ')}`);

          const distrustful = await nodeClient(strict.port, { key: client.key, cert: client.fullChain, ca: foreignRoot });
          assert.equal(distrustful.received, '');
          assert.ok(!distrustful.authorized);
          assert.match(distrustful.error ?? '', /unable to get local issuer certificate|certificate signature failure/, 'a client trusting another root refuses the server');
        } finally {
          await strict.close();
        }

        // Why: the same server, recording the verification result instead of refusing.
        const lenient = await startNodeServer({ key: server.key, cert: server.fullChain, ca: rootPem, crl, report: true });
        try {
          for (const [, leaf] of refused) await nodeClient(lenient.port, { key: leaf.key, cert: leaf.fullChain, ca: rootPem });
          assert.equal(lenient.accepted.length, refused.length);
          refused.forEach(([what, leaf, reason], i) => {
            const seen = lenient.accepted[i]!;
            assert.ok(sameSerial(seen.peerSerial, leaf.serial), `${what}: presented ${seen.peerSerial}`);
            assert.equal(seen.authorized, false, what);
            assert.match(seen.reason ?? 'no error', reason, what);
          });
        } finally {
          await lenient.close();
        }
      });

      it('gnutls-cli with an issued client certificate and a node:tls server authenticate each other', { skip: NO_GNUTLS_TLS }, async () => {
        const wrong = await wrongWithNodeServer(async ({ serverKey, client, srv }) => {
          const c = await gnutlsCli(srv.port, { leaf: client, ca: rootPem });
          const s = srv.accepted[0];
          const ok = c.code === 0 && /Status: The certificate is trusted/.test(c.output) && c.output.includes('hello from node server') && s?.authorized === true && sameSerial(s.peerSerial, client.serial) && s.received === 'hello from gnutls-cli\n';
          return ok ? undefined : `node server ${serverKey}, gnutls-cli ${client.keyType}: exit ${c.code}, server ${JSON.stringify(s)} ${srv.errors.join('; ')}\n${c.output.split('\n').filter((l) => /^(\*|- Status|- Description)/.test(l)).join('\n')}`;
        });
        assert.deepEqual(wrong, [], wrong.join('\n\n'));

        // Refusals by gnutls-cli: another root, another name, a revoked server certificate. GnuTLS
        // verifies a CRL when it loads it, against the CA file: the CRL's issuer (the
        // intermediate) has to be in it, so the CRL case trusts root and intermediate; the
        // same setup with a good certificate is the control.
        const client = clients.get(caKey)!;
        const server = servers.get(caKey)!;
        const cases = [
          { what: 'trusting another root', server, ca: foreignRoot, crl: undefined, hostname: undefined, accept: false, expect: /The certificate issuer is unknown/ },
          { what: 'another host name', server, ca: rootPem, crl: undefined, hostname: 'api.shop.svc', accept: false, expect: /The name in the certificate does not match/ },
          { what: 'a revoked server certificate', server: revokedServer, ca: rootPem + intermediatePem, crl: crlPem, hostname: undefined, accept: false, expect: /The certificate chain is revoked/ },
          { what: 'a good server certificate with the CRL', server, ca: rootPem + intermediatePem, crl: crlPem, hostname: undefined, accept: true, expect: /Status: The certificate is trusted/ },
        ];
        for (const k of cases) {
          const srv = await startNodeServer({ key: k.server.key, cert: k.server.fullChain, ca: rootPem });
          try {
            const c = await gnutlsCli(srv.port, { leaf: client, ca: k.ca, crl: k.crl, hostname: k.hostname });
            assert.match(c.output, k.expect, k.what);
            if (k.accept) {
              assert.equal(c.code, 0, `${k.what}:\n${c.output}`);
              assert.ok(c.output.includes('hello from node server'), k.what);
              continue;
            }
            assert.notEqual(c.code, 0, `gnutls-cli accepted ${k.what}:\n${c.output}`);
            assert.ok(!c.output.includes('hello from node server'), `${k.what}: data went through`);
          } finally {
            await srv.close();
          }
        }
      });

      it('a node:tls client with an issued certificate and gnutls-serv authenticate each other; gnutls-serv refuses revoked and foreign clients', { skip: NO_GNUTLS_TLS }, async () => {
        const server = servers.get(caKey)!;
        await withGnutlsServ({ leaf: server, ca: rootPem, crl: crlPem }, async (port) => {
          for (const clientKey of LEAF_KEYS) {
            const client = clients.get(clientKey)!;
            const c = await nodeClient(port, { key: client.key, cert: client.fullChain, ca: rootPem });
            assert.equal(c.error, undefined, `${clientKey} client: ${c.error}`);
            assert.ok(c.authorized, `${clientKey} client: the node client trusts gnutls-serv's certificate`);
            assert.ok(sameSerial(c.peerSerial, server.serial), `${clientKey} client: served ${c.peerSerial}`);
            assert.equal(c.received, 'hello from node client\n', `${clientKey} client: gnutls-serv echoes only after accepting the client`);
          }
          const refused = {
            'a revoked client (keyCompromise)': revokedServer,
            'a revoked client (unspecified)': revokedClient,
            'a client of another CA': foreignClient,
          };
          for (const [what, leaf] of Object.entries(refused)) {
            const c = await nodeClient(port, { key: leaf.key, cert: leaf.fullChain, ca: rootPem });
            assert.equal(c.received, '', `gnutls-serv echoed to ${what}`);
            assert.ok(c.error, `${what}: the connection ended without an error`);
          }
          const distrustful = await nodeClient(port, { key: clients.get('p256')!.key, cert: clients.get('p256')!.fullChain, ca: foreignRoot });
          assert.equal(distrustful.received, '');
          assert.match(distrustful.error ?? '', /unable to get local issuer|certificate/i);
        });
      });
    });
  }
});

/**
 * An intermediate replaced on the same database (rotation, or one replica started with the new
 * files before the others): the CRL served at the new intermediate's CRLDistributionPoints must
 * be one the new intermediate signed, or every relying party that checks CRLs refuses its
 * certificates (the two intermediates share their name, so OpenSSL picks this CRL for them).
 */
describe('the CRL after the intermediate changes on the same database', () => {
  it('is signed by the configured intermediate (openssl crl -verify, certtool --verify-crl, a node:tls server with the CRL)', async () => {
    const database = await createTestDatabase();
    try {
      const before = await startTestApp({ pki: await createTestPki('p256'), database });
      try {
        const old = await issueLeaf(before, CLIENT, CLIENT_NAMES, 'p256');
        await revokeOk(before, old.serial, ADMIN, 'superseded');
        await waitForCrl(before.public, await readFile(before.pki.intermediateCertificate, 'utf8'), (c) => c.entries.has(old.serial));
      } finally {
        await before.stop();
      }

      const app = await startTestApp({ pki: await createTestPki('p256'), database });
      try {
        const rootPem = await readFile(app.pki.rootCertificate, 'utf8');
        const intermediatePem = await readFile(app.pki.intermediateCertificate, 'utf8');
        const server = await issueLeaf(app, SERVER, SERVER_NAMES, 'p256');
        const client = await issueLeaf(app, CLIENT, CLIENT_NAMES, 'p256');
        const crlDer = (await fetchCrl(app.public)).body;
        const crlPem = derToPem(crlDer, 'X509 CRL');
        const problems: string[] = [];

        const byOpenssl = opensslCrl(crlDer, intermediatePem);
        if (!byOpenssl.verified) problems.push(`openssl crl -verify with the configured intermediate (CRL number ${byOpenssl.number}, AKI ${byOpenssl.authorityKeyId}, intermediate SKI ${subjectKeyId(intermediatePem)}): ${byOpenssl.output.trim()}`);
        if (CERTTOOL) {
          const byCerttool = await runTool('certtool', ['--verify-crl', '--load-ca-certificate', { file: 'int.pem', content: intermediatePem }, '--infile', { file: 'crl.pem', content: crlPem }]);
          if (byCerttool.status !== 0) problems.push(`certtool --verify-crl: ${byCerttool.describe}`);
        }
        const srv = await startNodeServer({ key: server.key, cert: server.fullChain, ca: rootPem, crl: [crlPem, rootCrlPem(app.pki.rootKey, app.pki.rootCertificate)], report: true });
        try {
          await nodeClient(srv.port, { key: client.key, cert: client.fullChain, ca: rootPem });
          const seen = srv.accepted[0];
          if (!seen?.authorized) problems.push(`a node:tls server with the served CRL refuses a good client of the new intermediate: ${seen?.reason ?? srv.errors.join('; ')}`);
        } finally {
          await srv.close();
        }
        assert.deepEqual(problems, [], problems.join('\n'));
      } finally {
        await app.stop();
      }
    } finally {
      await database.drop();
    }
  });
});
