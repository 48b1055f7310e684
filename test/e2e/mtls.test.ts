/**
 * TLS with what the CA issues, checked by node's own TLS stack: the API listener in `auto` mode
 * serves a certificate that chains to the root, names 127.0.0.1 and localhost and is recorded
 * under `service-ca:server`; two issued certificates authenticate each other in a mutual TLS
 * handshake; a client certificate from another CA is refused in the handshake.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkServerIdentity, connect, createServer, type DetailedPeerCertificate, type PeerCertificate, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { createTestPki, type TestPki } from '../setup/pki.js';

const WEB = workload('shop', 'web');
const WORKER = workload('billing', 'worker');

interface HttpsAnswer {
  status: number;
  body: string;
  peer: PeerCertificate;
  authorized: boolean;
}

/** One GET over node:https that trusts only `ca`; resolves with the server's certificate. */
function httpsGet(o: { host: string; port: number; path: string; ca: string; servername?: string; headers?: Record<string, string> }): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: o.host, port: o.port, path: o.path, ca: o.ca, agent: false, headers: o.headers, ...(o.servername ? { servername: o.servername } : {}), timeout: 10_000 },
      (res) => {
        const socket = res.socket as TLSSocket;
        const peer = socket.getPeerCertificate(true);
        const authorized = socket.authorized;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), peer, authorized }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

interface Handshake {
  /** What the server saw of a client it accepted (undefined: no accepted connection). */
  server: { authorized: boolean; peer: PeerCertificate; received: string } | undefined;
  serverError: Error | undefined;
  client: { authorized: boolean; peer: PeerCertificate | undefined; received: string; error: Error | undefined };
}

/**
 * A node:tls server that requires a client certificate chaining to `serverCa`, and one client
 * connection to it. Each side writes a line to the other once the handshake is done.
 */
async function mutualHandshake(server: { key: string; cert: string; ca: string }, client: { key?: string; cert?: string; ca: string; servername: string }): Promise<Handshake> {
  const result: Handshake = { server: undefined, serverError: undefined, client: { authorized: false, peer: undefined, received: '', error: undefined } };
  let serverDone!: () => void;
  const serverFinished = new Promise<void>((r) => (serverDone = r));
  const tlsServer = createServer({ key: server.key, cert: server.cert, ca: server.ca, requestCert: true, rejectUnauthorized: true }, (socket) => {
    const seen = { authorized: socket.authorized, peer: socket.getPeerCertificate(), received: '' };
    result.server = seen;
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (seen.received += d));
    socket.on('error', () => {});
    socket.on('close', serverDone);
    socket.write('hello from web\n');
  });
  tlsServer.on('tlsClientError', (err) => {
    result.serverError = err;
    serverDone();
  });
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  const { port } = tlsServer.address() as AddressInfo;
  try {
    await new Promise<void>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port, servername: client.servername, ca: client.ca, ...(client.key ? { key: client.key, cert: client.cert } : {}) });
      socket.setEncoding('utf8');
      socket.on('secureConnect', () => {
        result.client.authorized = socket.authorized;
        result.client.peer = socket.getPeerCertificate();
        socket.write('hello from worker\n');
        setTimeout(() => socket.end(), 300);
      });
      socket.on('data', (d: string) => (result.client.received += d));
      socket.on('error', (err) => (result.client.error = err));
      socket.on('close', () => resolve());
      socket.setTimeout(10_000, () => socket.destroy(new Error('client timed out')));
    });
    await Promise.race([serverFinished, new Promise((r) => setTimeout(r, 5000))]);
  } finally {
    await new Promise<void>((r) => tlsServer.close(() => r()));
  }
  return result;
}

/** A leaf signed by another (throwaway) CA with openssl, with the same names as the real client. */
function foreignClientCertificate(pki: TestPki): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-foreign-'));
  try {
    execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'csr.pem'), '-subj', '/CN=worker.billing.svc'], { stdio: 'pipe' });
    writeFileSync(join(dir, 'ext.cnf'), `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=DNS:worker.billing.svc,URI:${WORKER}\n`);
    execFileSync('openssl', ['x509', '-req', '-in', join(dir, 'csr.pem'), '-CA', pki.intermediateCertificate, '-CAkey', pki.intermediateKey, '-set_serial', '0x4242', '-days', '1', '-extfile', join(dir, 'ext.cnf'), '-out', join(dir, 'cert.pem')], { stdio: 'pipe' });
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') + readFileSync(pki.intermediateCertificate, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('TLS with certificates from the CA', () => {
  let app: TestApp;
  let root: string;
  let port: number;
  let other: TestPki;
  let web: { key: string; cert: string; serial: string };
  let worker: { key: string; cert: string; serial: string };

  before(async () => {
    app = await startTestApp({ tls: true });
    root = await (await fetch(`${app.public}/v1/ca/root.pem`)).text();
    port = app.running.apiPort;
    other = await createTestPki('p256');
  });
  after(async () => {
    await app?.stop();
    if (other) rmSync(other.dir, { recursive: true, force: true });
  });

  it('the API listener speaks TLS with a certificate that verifies against the root alone, for 127.0.0.1 and localhost', async () => {
    assert.match(app.api, /^https:\/\/127\.0\.0\.1:\d+$/);
    const byIp = await httpsGet({ host: '127.0.0.1', port, path: '/healthz', ca: root });
    assert.equal(byIp.status, 200);
    assert.equal(byIp.authorized, true);
    const byName = await httpsGet({ host: '127.0.0.1', port, path: '/healthz', ca: root, servername: 'localhost' });
    assert.equal(byName.status, 200);
    const viaLocalhost = await httpsGet({ host: 'localhost', port, path: '/healthz', ca: root });
    assert.equal(viaLocalhost.status, 200);

    const peer = byIp.peer;
    assert.equal(checkServerIdentity('127.0.0.1', peer), undefined, 'valid for 127.0.0.1');
    assert.equal(checkServerIdentity('localhost', peer), undefined, 'valid for localhost');
    assert.ok(checkServerIdentity('ca.example.org', peer) instanceof Error, 'and for nothing else');
    assert.equal(peer.subjectaltname, 'DNS:localhost, IP Address:127.0.0.1');
    assert.deepEqual(peer.ext_key_usage, ['1.3.6.1.5.5.7.3.1'], 'serverAuth only');

    const leaf = new X509Certificate(peer.raw);
    const intermediate = new X509Certificate((peer as DetailedPeerCertificate).issuerCertificate.raw);
    const rootCert = new X509Certificate(root);
    assert.ok(leaf.verify(intermediate.publicKey), 'the listener sends its intermediate');
    assert.ok(intermediate.verify(rootCert.publicKey));

    await assert.rejects(
      httpsGet({ host: '127.0.0.1', port, path: '/healthz', ca: readFileSync(other.rootCertificate, 'utf8') }),
      /unable to (get local issuer|verify)|self.signed|certificate/i,
      'a client trusting another root refuses the listener',
    );
  });

  it('records the API listener certificate under the identity service-ca:server', async () => {
    const { peer } = await httpsGet({ host: '127.0.0.1', port, path: '/healthz', ca: root });
    const serial = peer.serialNumber.toLowerCase();
    const record = await app.client.getCertificate(await app.token(ADMIN), serial);
    assert.equal(record.serial, serial);
    assert.equal(record.identity, 'service-ca:server');
    assert.equal(record.status, 'valid');
    assert.deepEqual(record.sans, { dns: ['localhost'], ip: ['127.0.0.1'], uri: [], email: [] });
    assert.ok(new X509Certificate(record.certificate).raw.equals(peer.raw), 'the recorded certificate is the one served');

    const owner = await app.client.raw('GET', `/v1/certificates/${serial}`, { headers: { Authorization: `Bearer ${await app.token(WEB)}` } });
    assert.equal(owner.status, 403, 'a workload cannot read the server certificate record');
  });

  it('two issued certificates authenticate each other in a mutual TLS handshake', async () => {
    const issue = async (sub: string, names: Parameters<typeof createKeyAndCsr>[1]) => {
      const { keyPem, csrPem } = await createKeyAndCsr('p256', names);
      const issued = await app.client.issue(await app.token(sub), { csr: csrPem, ttl: '1h' });
      return { key: keyPem, cert: issued.certificate + issued.chain.join(''), serial: issued.serial };
    };
    web = await issue(WEB, { dns: ['web.shop.svc'], ip: ['10.0.0.5'] });
    worker = await issue(WORKER, { dns: ['worker.billing.svc'], uri: [WORKER] });

    const h = await mutualHandshake({ key: web.key, cert: web.cert, ca: root }, { key: worker.key, cert: worker.cert, ca: root, servername: 'web.shop.svc' });
    assert.equal(h.serverError, undefined, `server: ${h.serverError?.message}`);
    assert.equal(h.client.error, undefined, `client: ${h.client.error?.message}`);
    assert.equal(h.client.authorized, true);
    assert.ok(h.server, 'the server accepted the connection');
    assert.equal(h.server.authorized, true);

    const serverSeen = h.client.peer!;
    assert.equal(serverSeen.subject.CN, 'web.shop.svc');
    assert.equal(serverSeen.subjectaltname, 'DNS:web.shop.svc, IP Address:10.0.0.5');
    assert.equal(serverSeen.serialNumber.toLowerCase(), web.serial);
    assert.equal(checkServerIdentity('web.shop.svc', serverSeen), undefined);
    assert.equal(checkServerIdentity('10.0.0.5', serverSeen), undefined);

    const clientSeen = h.server.peer;
    assert.equal(clientSeen.subject.CN, 'worker.billing.svc');
    assert.equal(clientSeen.subjectaltname, `DNS:worker.billing.svc, URI:${WORKER}`);
    assert.equal(clientSeen.serialNumber.toLowerCase(), worker.serial);

    assert.equal(h.client.received, 'hello from web\n');
    assert.equal(h.server.received, 'hello from worker\n');
  });

  it('refuses in the handshake a client certificate from another CA with the same names', async () => {
    assert.ok(web, 'the mutual TLS test issued the server certificate');
    const foreign = foreignClientCertificate(other);
    const h = await mutualHandshake({ key: web.key, cert: web.cert, ca: root }, { key: foreign.key, cert: foreign.cert, ca: root, servername: 'web.shop.svc' });
    assert.equal(h.server, undefined, 'the server never accepts the connection');
    assert.equal(h.client.received, '', 'the client gets nothing from the server');

    // Control: the same certificate is accepted by a server that also trusts the other root, so
    // the refusal above is about the issuing CA and nothing else.
    const both = [root, readFileSync(other.rootCertificate, 'utf8')];
    const control = await mutualHandshake({ key: web.key, cert: web.cert, ca: both.join('') }, { key: foreign.key, cert: foreign.cert, ca: root, servername: 'web.shop.svc' });
    assert.equal(control.server?.authorized, true, `control: ${control.serverError?.message}`);
    assert.equal(control.client.received, 'hello from web\n');
  });

  it('refuses in the handshake a client without a certificate', async () => {
    assert.ok(web, 'the mutual TLS test issued the server certificate');
    const h = await mutualHandshake({ key: web.key, cert: web.cert, ca: root }, { ca: root, servername: 'web.shop.svc' });
    assert.equal(h.server, undefined, 'the server never accepts the connection');
    assert.ok(h.serverError, 'the server reports a handshake error');
    assert.match(`${h.serverError.message} ${(h.serverError as { code?: string }).code}`, /certificate/i);
    assert.equal(h.client.received, '');
  });
});
