/**
 * `service-ca inspect` as a child process against real TLS servers (node:tls and `openssl
 * s_server`) serving certificates from a running CA whose public listener is the CRL and AIA
 * URL written into them: TLS 1.3 and 1.2 with version, cipher and ALPN; a CertificateRequest seen
 * in both versions, optional and required; TLS 1.1 warned about; a server that sends the leaf
 * only; a name mismatch; a revoked certificate found in the CA's CRL (signature checked) and in
 * its record; PEM and DER files; the --json shape; bad usage. Exit 0 clean, 1 warnings, 2 usage.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server, type TlsOptions } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { saveContext } from '../../src/cli/context.js';
import { inspectCommand } from '../../src/cli/inspect.js';
import type { InspectReport } from '../../src/inspect/report.js';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { inParallel, runCli, runInProcess, type CliResult } from '../setup/cli-run.js';
import { waitForCrl } from '../setup/crl-check.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { cleanEnv, freePort, killAll, spawnService } from '../setup/processes.js';
import { revokeOk } from '../setup/revoking.js';

// No saved context or environment of the machine running the tests steers the command.
const CONFIG_DIR = mkdtempSync(join(tmpdir(), 'service-ca-inspect-config-'));
process.env.SERVICE_CA_CONFIG_DIR = CONFIG_DIR;
for (const k of ['SERVICE_CA_URL', 'SERVICE_CA_ROOT', 'SERVICE_CA_TOKEN_FILE', 'SERVICE_CA_TLS_SERVER_NAME', 'SERVICE_CA_CONTEXT']) delete process.env[k];

const WEB = workload('shop', 'web');
const NAME = 'web.shop.svc';

/** `service-ca inspect ARGS` as a child process. */
const inspectCli = (args: string[], env: Record<string, string> = {}) => runCli(['inspect', ...args], { timeoutMs: 90_000, env });

/** Whether 127.0.0.1:port takes a TCP connection (closed at once). */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const reportOf = (r: CliResult) => JSON.parse(r.stdout) as InspectReport;
const codes = (r: InspectReport) => r.warnings.map((w) => w.code).sort();


/** The key id of the app's (only) issuer: its leaves name its own CRL and certificate URLs. */
const issuerKeyId = (app: TestApp) => app.running.deps.crl.active.issuerKeyId;

interface Issued {
  key: string;
  leaf: string;
  intermediate: string;
  serial: string;
}

describe('service-ca inspect', () => {
  let app: TestApp;
  let dir: string;
  let rootFile: string;
  let web: Issued;
  let revoked: Issued;
  const servers: Server[] = [];
  const file = (name: string, content: string | Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, content);
    return p;
  };

  async function issue(ttl = '1h'): Promise<Issued> {
    const { keyPem, csrPem } = await createKeyAndCsr('p256', { dns: [NAME] });
    const issued = await app.client.issue(await app.token(WEB), { csr: csrPem, ttl });
    return { key: keyPem, leaf: issued.certificate, intermediate: issued.chain.join(''), serial: issued.serial };
  }

  /** A node:tls server on 127.0.0.1; its port. */
  async function nodeServer(options: TlsOptions): Promise<number> {
    const server = createServer(options, (socket) => {
      socket.on('error', () => {});
    });
    server.on('tlsClientError', () => {});
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  }

  /**
   * `openssl s_server` with the web certificate and its intermediate, and extra arguments; its
   * port once it accepts TCP connections. -quiet: without it, s_server ends its connections when
   * its standard input (here /dev/null) is at its end.
   */
  async function opensslServer(args: string[]): Promise<number> {
    const port = await freePort();
    const s = spawnService('openssl', ['s_server', '-quiet', '-accept', `127.0.0.1:${port}`, '-cert', file('web.pem', web.leaf), '-key', file('web.key', web.key), '-cert_chain', file('chain.pem', web.intermediate), ...args], { env: cleanEnv() });
    const deadline = Date.now() + 15_000;
    while (!(await accepts(port))) {
      if (!s.running || Date.now() > deadline) throw new Error(`openssl s_server ${args.join(' ')} did not start:\n${s.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return port;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'service-ca-inspect-'));
    const publicPort = await freePort();
    app = await startTestApp({ config: { public: { host: '127.0.0.1', port: publicPort }, publicUrl: `http://127.0.0.1:${publicPort}` } });
    rootFile = app.pki.rootCertificate;
    web = await issue();
    revoked = await issue();
  });
  after(async () => {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    await killAll();
    await app?.stop();
    rmSync(dir, { recursive: true, force: true });
    rmSync(CONFIG_DIR, { recursive: true, force: true });
  });

  it('a clean TLS 1.3 endpoint: version, cipher, ALPN, the chain trusted, the CRL and renewal-info of the CA, exit 0; --json has the documented shape', async () => {
    const port = await nodeServer({ key: web.key, cert: web.leaf + web.intermediate, ALPNProtocols: ['h2', 'http/1.1'] });
    const [text, json] = await inParallel([
      () => inspectCli([`127.0.0.1:${port}`, '--servername', NAME, '--ca', rootFile]),
      () => inspectCli([`https://127.0.0.1:${port}/some/path`, '--servername', NAME, '--ca', rootFile, '--json', '--alpn', 'http/1.1']),
    ]);
    assert.equal(text!.code, 0, text!.describe);
    assert.match(text!.stdout, /^TLS +TLSv1\.3, TLS_AES_(128_GCM_SHA256|256_GCM_SHA384)$/m, text!.describe);
    assert.match(text!.stdout, /^ALPN +h2 \(offered: h2, http\/1\.1\)$/m);
    assert.match(text!.stdout, /^Client cert +not requested$/m);
    assert.match(text!.stdout, new RegExp(`^  serial +${web.serial}$`, 'm'));
    assert.match(text!.stdout, /^No warnings\.$/m);

    assert.equal(json!.code, 0, json!.describe);
    const r = reportOf(json!);
    assert.deepEqual(Object.keys(r), ['target', 'tls', 'certificates', 'verification', 'hostname', 'warnings']);
    assert.deepEqual(r.target, { kind: 'endpoint', host: '127.0.0.1', port, servername: NAME });
    assert.match(r.tls!.cipher ?? '', /^TLS_AES_(128_GCM_SHA256|256_GCM_SHA384)$/);
    assert.deepEqual(r.tls, { version: 'TLSv1.3', cipher: r.tls!.cipher, alpn: 'http/1.1', alpnOffered: ['http/1.1'], clientCertificate: 'notRequested', handshakeError: null, unreadable: null });
    assert.deepEqual(r.certificates.map((c) => [c.position, c.source, c.onPath]), [[0, 'server', true], [1, 'server', true], [2, 'root', true]]);
    const [leaf, intermediate] = r.certificates;
    assert.deepEqual(Object.keys(leaf!), [
      'position', 'source', 'onPath', 'subject', 'issuer', 'sans', 'key', 'serial', 'notBefore', 'notAfter', 'secondsLeft', 'timeLeft',
      'fingerprint256', 'isCa', 'crlUrls', 'caIssuersUrls', 'validity', 'revocation', 'renewal', 'record',
    ]);
    assert.deepEqual(Object.keys(r.verification!), ['status', 'detail', 'rootFile', 'missingIssuer', 'notCarried', 'aiaErrors']);
    const x = new X509Certificate(web.leaf);
    assert.deepEqual(
      { subject: leaf!.subject, sans: leaf!.sans, key: leaf!.key, serial: leaf!.serial, notAfter: leaf!.notAfter, fingerprint256: leaf!.fingerprint256, validity: leaf!.validity },
      { subject: `CN=${NAME}`, sans: { dns: [NAME], ip: [], uri: [], email: [] }, key: { type: 'ECDSA P-256', bits: 256 }, serial: web.serial, notAfter: new Date(x.validTo).toISOString(), fingerprint256: x.fingerprint256.replace(/:/g, '').toLowerCase(), validity: 'valid' },
    );
    assert.ok(leaf!.secondsLeft > 3000 && leaf!.secondsLeft <= 3600, `about an hour left: ${leaf!.secondsLeft}`);
    assert.deepEqual(leaf!.crlUrls, [`${app.public}/v1/crl/${issuerKeyId(app)}`]);
    assert.equal(leaf!.revocation?.status, 'good', leaf!.revocation?.detail);
    assert.match(leaf!.revocation!.detail, /signature verified/);
    assert.equal(leaf!.renewal?.status, 'found');
    assert.equal(leaf!.renewal?.source, app.public, 'renewal-info from the public listener the certificate names');
    const nb = Date.parse(leaf!.notBefore);
    const lifetime = Date.parse(leaf!.notAfter) - nb;
    assert.equal(Date.parse(leaf!.renewal!.start!), nb + Math.round((lifetime * 2) / 3), 'the window of docs/api.md "Renewal window"');
    assert.equal(leaf!.record?.status, 'notAsked');
    assert.equal(intermediate!.isCa, true);
    assert.equal(intermediate!.revocation?.status, 'noCrl');
    assert.equal(r.certificates[2]!.revocation, null, 'a trust anchor is not checked for revocation');
    assert.equal(r.verification?.status, 'trusted');
    assert.equal(r.verification?.rootFile, rootFile);
    assert.deepEqual(r.hostname, { name: NAME, kind: 'dns', matched: true });
    assert.deepEqual(r.warnings, []);
  });

  it('TLS 1.2 from openssl s_server is reported as such, with its ECDHE suite', async () => {
    const port = await opensslServer(['-tls1_2', '-alpn', 'http/1.1']);
    const r = await inspectCli([`127.0.0.1:${port}`, '--servername', NAME, '--ca', rootFile, '--json']);
    assert.equal(r.code, 0, r.describe);
    const tls = reportOf(r).tls!;
    assert.equal(tls.version, 'TLSv1.2');
    assert.match(tls.cipher!, /^TLS_ECDHE_ECDSA_WITH_/);
    assert.equal(tls.alpn, 'http/1.1');
    assert.equal(tls.clientCertificate, 'notRequested');
  });

  it('sees a CertificateRequest in TLS 1.2 and 1.3, optional (-verify, requestCert) and required (-Verify, rejectUnauthorized)', async () => {
    const root = await (await fetch(`${app.public}/v1/ca/root.pem`)).text();
    const cases: [string, () => Promise<number>, string, 'requested' | 'required'][] = [
      ['s_server -tls1_2 -verify', () => opensslServer(['-tls1_2', '-verify', '1']), 'TLSv1.2', 'requested'],
      ['s_server -tls1_3 -verify', () => opensslServer(['-tls1_3', '-verify', '1']), 'TLSv1.3', 'requested'],
      ['s_server -tls1_2 -Verify', () => opensslServer(['-tls1_2', '-Verify', '1']), 'TLSv1.2', 'required'],
      ['s_server -tls1_3 -Verify', () => opensslServer(['-tls1_3', '-Verify', '1']), 'TLSv1.3', 'required'],
      ['node requestCert', () => nodeServer({ key: web.key, cert: web.leaf + web.intermediate, ca: root, requestCert: true, rejectUnauthorized: false }), 'TLSv1.3', 'requested'],
      ['node rejectUnauthorized', () => nodeServer({ key: web.key, cert: web.leaf + web.intermediate, ca: root, requestCert: true, rejectUnauthorized: true }), 'TLSv1.3', 'required'],
      ['node TLS 1.2 rejectUnauthorized', () => nodeServer({ key: web.key, cert: web.leaf + web.intermediate, ca: root, requestCert: true, rejectUnauthorized: true, maxVersion: 'TLSv1.2' }), 'TLSv1.2', 'required'],
    ];
    const ports: number[] = [];
    for (const c of cases) ports.push(await c[1]());
    const runs = await inParallel(cases.map((_, i) => () => inspectCli([`127.0.0.1:${ports[i]}`, '--servername', NAME, '--ca', rootFile, '--json'])), 2);
    for (const [i, [what, , version, expected]] of cases.entries()) {
      const run = runs[i]!;
      assert.equal(run.code, 0, `${what}: asking for a client certificate is no fault\n${run.describe}`);
      const r = reportOf(run);
      assert.equal(r.tls!.version, version, what);
      assert.equal(r.tls!.clientCertificate, expected, `${what}\n${run.stdout}`);
      if (expected === 'required') assert.ok(r.tls!.handshakeError, `${what}: the refusal is reported`);
      assert.equal(r.verification?.status, 'trusted', `${what}: the chain was read even from a refused handshake`);
      assert.equal(r.certificates[0]!.serial, web.serial, what);
    }
  });

  it('warns about TLS 1.1 (openssl at security level 0)', async () => {
    const port = await opensslServer(['-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0']);
    const r = await inspectCli([`127.0.0.1:${port}`, '--servername', NAME, '--ca', rootFile, '--json']);
    assert.equal(r.code, 1, r.describe);
    const report = reportOf(r);
    assert.equal(report.tls!.version, 'TLSv1.1');
    assert.deepEqual(codes(report), ['tlsVersion']);
  });

  it('a server that sends the leaf only: missing intermediate (found through AIA), not an untrusted root', async () => {
    const port = await nodeServer({ key: web.key, cert: web.leaf });
    const r = await inspectCli([`127.0.0.1:${port}`, '--servername', NAME, '--ca', rootFile, '--json']);
    assert.equal(r.code, 1, r.describe);
    const report = reportOf(r);
    assert.deepEqual(codes(report), ['missingIntermediate']);
    assert.equal(report.verification!.status, 'trusted', 'with the intermediate from AIA the chain verifies');
    assert.deepEqual(report.verification!.notCarried, [{ subject: report.certificates[1]!.subject, source: 'aia', url: `${app.public}/v1/ca/issuers/${issuerKeyId(app)}.der` }]);
    assert.equal(report.certificates[1]!.source, 'aia');
  });

  it('a name mismatch with --servername, and an IP target checked against IP SANs', async () => {
    const port = await nodeServer({ key: web.key, cert: web.leaf + web.intermediate });
    const [other, ip] = await inParallel([
      () => inspectCli([`127.0.0.1:${port}`, '--servername', 'api.shop.svc', '--ca', rootFile, '--json']),
      () => inspectCli([`127.0.0.1:${port}`, '--ca', rootFile]),
    ]);
    assert.equal(other!.code, 1, other!.describe);
    assert.deepEqual(reportOf(other!).hostname, { name: 'api.shop.svc', kind: 'dns', matched: false });
    assert.deepEqual(codes(reportOf(other!)), ['nameMismatch']);
    assert.equal(ip!.code, 1, ip!.describe);
    assert.match(ip!.stdout, /^ {2}nameMismatch: the certificate is not valid for the IP address 127\.0\.0\.1$/m);
  });

  it('a revoked certificate: revoked in the CA\'s CRL (signature checked) and in its record (admin token), exit 1', async () => {
    await revokeOk(app, revoked.serial, ADMIN, 'keyCompromise');
    await waitForCrl(app.public, revoked.intermediate, (crl) => crl.entries.has(revoked.serial));
    const port = await nodeServer({ key: revoked.key, cert: revoked.leaf + revoked.intermediate });
    const token = file('admin.token', await app.token(ADMIN));
    const r = await inspectCli([`127.0.0.1:${port}`, '--servername', NAME, '--ca', rootFile, '--server', app.api, '--token-file', token, '--json']);
    assert.equal(r.code, 1, r.describe);
    const report = reportOf(r);
    const leaf = report.certificates[0]!;
    assert.equal(leaf.revocation?.status, 'revoked');
    assert.equal(leaf.revocation?.reason, 'keyCompromise');
    assert.equal(leaf.revocation?.url, `${app.public}/v1/crl/${issuerKeyId(app)}`);
    assert.equal(leaf.revocation?.crl?.issuer, report.certificates[1]!.subject, 'the CRL read is the intermediate\'s');
    assert.equal(leaf.record?.status, 'found');
    assert.equal(leaf.record?.record?.status, 'revoked');
    assert.equal(leaf.renewal?.revokedByCa, true, 'renewal-info: start = end');
    assert.deepEqual(codes(report), ['pastRenewalWindow', 'revoked']);
  });

  it('a PEM chain file and a DER leaf file (its intermediate from AIA); the root from --ca, SERVICE_CA_ROOT or the saved context; none', async () => {
    const pem = file('chain-file.pem', web.leaf + web.intermediate);
    const der = file('leaf.der', new X509Certificate(web.leaf).raw);
    const contextDir = join(dir, 'contexts-home');
    process.env.SERVICE_CA_CONFIG_DIR = contextDir;
    try {
      saveContext('inspect-test', { publicUrl: app.public, fingerprint: app.pki.rootFingerprint }, await (await fetch(`${app.public}/v1/ca/root.pem`)).text());
    } finally {
      process.env.SERVICE_CA_CONFIG_DIR = CONFIG_DIR;
    }
    const [p, d, fromEnv, fromContext, unrooted] = await inParallel([
      () => inspectCli([pem, '--ca', rootFile, '--json']),
      () => inspectCli([der, '--ca', rootFile, '--json']),
      () => inspectCli([pem, '--json'], { SERVICE_CA_ROOT: rootFile }),
      () => inspectCli([pem, '--json'], { SERVICE_CA_CONFIG_DIR: contextDir }),
      () => inspectCli([pem, '--json']),
    ]);
    assert.equal(p!.code, 0, p!.describe);
    assert.deepEqual(reportOf(p!).target, { kind: 'file', file: pem });
    assert.equal(reportOf(p!).tls, null);
    assert.equal(reportOf(p!).hostname, null, 'a file is checked against a name only when one is given');
    assert.deepEqual(reportOf(p!).certificates.map((c) => c.source), ['file', 'file', 'root']);
    assert.equal(d!.code, 0, d!.describe);
    assert.deepEqual(reportOf(d!).certificates.map((c) => c.source), ['file', 'aia', 'root']);
    assert.equal(reportOf(d!).certificates[0]!.serial, web.serial);
    for (const [run, root] of [[fromEnv!, rootFile], [fromContext!, join(contextDir, 'contexts', 'inspect-test', 'root.pem')]] as const) {
      assert.equal(run.code, 0, run.describe);
      assert.deepEqual([reportOf(run).verification?.status, reportOf(run).verification?.rootFile], ['trusted', root]);
    }
    assert.equal(unrooted!.code, 1, unrooted!.describe);
    assert.deepEqual(codes(reportOf(unrooted!)), ['unverified']);
  });

  it('bad usage exits 2 with the usage on stderr; --help exits 0', async () => {
    const pem = file('usage.pem', web.leaf);
    for (const argv of [[], [pem, pem], [pem, '--bogus'], ['http://127.0.0.1:8080/'], ['127.0.0.1:70000'], ['no-such-file.pem'], [pem, '--timeout', '0'], [pem, '--ca', join(dir, 'missing-root.pem')]]) {
      const r = await runInProcess(inspectCommand, argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /Usage: service-ca inspect TARGET/, argv.join(' '));
      assert.equal(r.stdout, '');
    }
    const help = await runInProcess(inspectCommand, ['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: service-ca inspect TARGET/);
    const child = await inspectCli(['ftp://example.invalid/']);
    assert.equal(child.code, 2, child.describe);
    assert.match(child.stderr, /only https:\/\/ URLs/);
  });
});
