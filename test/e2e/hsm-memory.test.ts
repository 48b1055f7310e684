/**
 * The CA key never enters the service's process (docs/hsm.md). The token is SoftHSM2 served by
 * `p11-kit server` in a process of its own, as a network HSM would be; `service-ca serve` loads
 * p11-kit's client module, so every signature is made in the other process. The key was imported
 * with a private scalar this test knows (then sensitive and not extractable): after the service
 * has issued, renewed, revoked and signed CRLs with it, and derived ACME's secrets through the
 * token, its whole readable memory is searched for the scalar, big-endian as DER writes it and
 * byte-reversed as OpenSSL's BIGNUM words hold it on x86-64: neither is there.
 *
 * The control shows the search can fail: a node process that loaded the same key from its PEM
 * file and signed with it, as a file key is used, holds the scalar where the search finds it.
 * Skips without SoftHSM2, the pkcs11js binding or p11-kit (Debian's p11-kit, p11-kit-modules).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import { ADMIN, workload } from '../setup/app.js';
import { removeAtExit } from '../setup/cleanup.js';
import { opensslCrl } from '../setup/crl-check.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { holderJwt } from '../setup/holder.js';
import { verifyChain } from '../setup/openssl.js';
import { scanProcessMemory } from '../setup/process-memory.js';
import { CLI, TSX_LOADER, cleanEnv, freePort, killAll, spawnService, waitForStatus, type ChildService } from '../setup/processes.js';
import { writeServiceConfig } from '../setup/service-config.js';
import { createSoftHsmToken, issueTokenIntermediate, softhsmMissing, type SoftHsmToken } from '../setup/softhsm.js';
import { createTestIssuer, type TestIssuer } from '../setup/tokens.js';

const CLIENT_MODULE = '/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so';
const OWNER = workload('shop', 'web');
const NAMES = { dns: ['web.shop.svc'] };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function missing(): string | undefined {
  const softhsm = softhsmMissing();
  if (softhsm) return softhsm;
  if (!existsSync(CLIENT_MODULE) || spawnSync('p11-kit', ['--help']).error) return 'p11-kit (Debian\'s p11-kit and p11-kit-modules) is not installed';
  return undefined;
}

/** The scalar as DER writes it, and byte-reversed (little-endian words, as a BIGNUM holds it). */
const forms = (scalar: Buffer) => [scalar, Buffer.from(scalar).reverse()];

describe('the CA key stays in the token: the service process never holds it', { skip: missing() }, () => {
  let token: SoftHsmToken;
  let known: ReturnType<SoftHsmToken['importKnownKey']>;
  let issuer: TestIssuer;
  let database: TestDatabase;
  let server: ChildProcess;
  let service: ChildService;
  let api: string;
  let pub: string;
  let rootPem: string;
  let intermediatePem: string;

  before(async () => {
    token = await createSoftHsmToken({ keys: [] });
    known = token.importKnownKey('known-p256');
    const dir = mkdtempSync(join(tmpdir(), 'service-ca-hsm-memory-'));
    removeAtExit(dir);
    const socket = join(dir, 'p11-kit.sock');
    server = spawn('p11-kit', ['server', '--foreground', '--name', socket, '--provider', token.module, `pkcs11:token=${encodeURIComponent(token.label)}`], {
      env: { ...process.env, ...token.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    for (let i = 0; i < 100 && !existsSync(socket); i++) await sleep(50);
    assert.ok(existsSync(socket), 'p11-kit server listens');

    const ca = await issueTokenIntermediate(known.publicKeyPem);
    rootPem = new X509Certificate(ca.rootPem).toString();
    intermediatePem = new X509Certificate(ca.intermediatePem).toString();
    writeFileSync(join(dir, 'intermediate.pem'), intermediatePem);
    writeFileSync(join(dir, 'root.pem'), rootPem);

    issuer = await createTestIssuer();
    database = await createTestDatabase();
    const [apiPort, publicPort] = [await freePort(), await freePort()];
    const placeholder = { intermediateCertificate: join(dir, 'intermediate.pem'), intermediateKey: 'unused', rootCertificate: join(dir, 'root.pem') };
    const configPath = writeServiceConfig({ pki: placeholder as never, issuer, database, apiPort, publicPort, crl: { validity: '1h', refresh: '30m', maxDelay: '1s' } });
    const config = parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    // The token's key, through p11-kit's client module; the PIN from the environment.
    config.ca = { certificate: join(dir, 'intermediate.pem'), chain: join(dir, 'root.pem'), key: known.uri, pkcs11: { module: CLIENT_MODULE, pin: '${TOKEN_PIN}', secret: token.secretUri } };
    config.acme = { enabled: true };
    writeFileSync(configPath, stringify(config));
    api = `http://127.0.0.1:${apiPort}`;
    pub = `http://127.0.0.1:${publicPort}`;
    service = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', '--config', configPath], {
      cwd: dir,
      env: cleanEnv({ TOKEN_PIN: token.pin, P11_KIT_SERVER_ADDRESS: `unix:path=${socket}` }),
    });
    await waitForStatus(`${pub}/readyz`, 200, service);
  });

  after(async () => {
    await killAll();
    server?.kill();
    await database?.drop();
    token?.cleanup();
  });

  it('signs through the other process: issuance, renewal, revocation and the CRL verify with openssl', async () => {
    const bearer = async (sub: string) => ({ 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.mint({ sub })}` });
    const { keyPem, csrPem } = await createKeyAndCsr('p256', NAMES);
    const issued = await fetch(`${api}/v1/certificates`, { method: 'POST', headers: await bearer(OWNER), body: JSON.stringify({ csr: csrPem }) });
    assert.equal(issued.status, 201, await issued.clone().text());
    const first = (await issued.json()) as { certificate: string };
    const v = verifyChain(first.certificate, rootPem, intermediatePem, 'sslserver');
    assert.ok(v.ok, v.output);

    const next = await createKeyAndCsr('p256', NAMES);
    const renewed = await fetch(`${api}/v1/certificates/renew`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await holderJwt({ certificate: first.certificate, keyPem })}` },
      body: JSON.stringify({ csr: next.csrPem }),
    });
    assert.equal(renewed.status, 201, await renewed.clone().text());
    const renewal = (await renewed.json()) as { serial: string; certificate: string };
    assert.ok(verifyChain(renewal.certificate, rootPem, intermediatePem).ok);

    const revoked = await fetch(`${api}/v1/certificates/${renewal.serial}/revoke`, { method: 'POST', headers: await bearer(ADMIN), body: JSON.stringify({ reason: 'keyCompromise' }) });
    assert.equal(revoked.status, 200, await revoked.clone().text());
    const deadline = Date.now() + 10_000;
    for (;;) {
      const crl = opensslCrl(Buffer.from(await (await fetch(`${pub}/v1/crl`)).arrayBuffer()), `${intermediatePem}${rootPem}`);
      if (crl.entries.has(renewal.serial)) {
        assert.ok(crl.verified, crl.output);
        break;
      }
      assert.ok(Date.now() < deadline, 'the revocation reached the CRL');
      await sleep(100);
    }
    // ACME's nonces are keyed through the token's HMAC secret.
    assert.match((await fetch(`${api}/acme/new-nonce`, { method: 'HEAD' })).headers.get('replay-nonce') ?? '', /^[A-Za-z0-9_-]{20,}$/);
  });

  it('holds no copy of the private key anywhere in its memory', () => {
    const scan = scanProcessMemory(service.pid, forms(known.scalar));
    assert.ok(scan.bytes > 50 * 1024 * 1024, `searched the whole process (${scan.bytes} bytes)`);
    assert.deepEqual(scan.found, [[], []], 'the scalar is in no readable page of the service');
  });

  it('(control) the same search finds the key in a process that loaded it from a file and signed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'service-ca-hsm-control-'));
    removeAtExit(dir);
    writeFileSync(join(dir, 'key.pem'), known.privateKeyPem, { mode: 0o600 });
    const child = spawn(process.execPath, ['-e', [
      "const c = require('node:crypto');",
      `const k = c.createPrivateKey(require('node:fs').readFileSync(${JSON.stringify(join(dir, 'key.pem'))}));`,
      "c.sign('sha256', Buffer.from('probe'), { key: k, dsaEncoding: 'der' });",
      "process.stdout.write('ready\\n'); setInterval(() => {}, 1000);",
    ].join(' ')], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await new Promise<void>((resolve) => child.stdout!.once('data', () => resolve()));
      const scan = scanProcessMemory(child.pid!, forms(known.scalar));
      assert.ok(scan.found.some((f) => f.length > 0), `the scalar was found (${scan.bytes} bytes searched)`);
    } finally {
      child.kill();
    }
  });
});
