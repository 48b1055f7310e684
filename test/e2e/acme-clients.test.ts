/**
 * ACME (RFC 8555) with real clients: Debian's certbot 2.1 and lego 4.9 as child processes against
 * the CA's /acme/ on its HTTPS API listener, trusting only the CA's root, each with an account
 * bound by a fresh external account binding (`POST /v1/acme/eab` with the identity's token), and
 * names resolved by the CA through a test DNS server (test/setup/dns-server.ts) that points
 * them at 127.0.0.1, where the clients answer the challenges. Proven:
 * - certbot obtains with http-01 (standalone; the CA fetched the token from it), renews with
 *   --force-renewal to a new serial, and revokes with its account key, after which the record
 *   of that serial is revoked with the reason given;
 * - lego obtains with http-01, tls-alpn-01 and dns-01 (its exec provider setting TXT records in
 *   the test DNS server), dns-01 also for a literal wildcard of the gateway identity, whose
 *   policy allows wildcards; it revokes with its account key (ES256, where certbot's is RSA);
 * - every certificate verifies with `openssl verify` against the root and the intermediate the
 *   client got in its chain (which is the CA's intermediate), certifies the client's key and
 *   exactly the ordered names, and is listed under the binding's identity (`GET
 *   /v1/certificates?identity=`) with its serial, status valid;
 * - a name outside the identity's policies is refused at newOrder with
 *   urn:ietf:params:acme:error:rejectedIdentifier (the client made no request after newOrder,
 *   the CA never looked the name up, and nothing was issued for it);
 * - with `acme: { challenges: none }` on the identity's policy, lego gets a certificate for a
 *   granted name while the CA's challenge ports lead nowhere: the authorization is valid at
 *   once, no challenge is answered and the CA never resolves the name; an out-of-policy name is
 *   still refused.
 * Skips when certbot or lego is missing (Debian: apt-get install -y certbot lego).
 */
import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { createCertbot, createLego, type Certbot, type Lego, missingClient, readFullchain, type ClientRun, type Eab, type IssuedFiles, type LegoChallenge } from '../setup/acme-clients.js';
import { ADMIN, defaultPolicies, startTestApp, workload, type TestApp } from '../setup/app.js';
import { startDnsServer, type DnsServer } from '../setup/dns-server.js';
import { verifyChain } from '../setup/openssl.js';
import { freePort } from '../setup/processes.js';

const NO_CERTBOT = missingClient('certbot');
const NO_LEGO = missingClient('lego');
const NO_CLIENT = NO_CERTBOT && NO_LEGO ? `${NO_CERTBOT}; ${NO_LEGO}` : false;

/** The default policies grant it `api.payments.svc` and one label below it (`x.api.payments.svc`). */
const API = workload('payments', 'api');
/** Its policy grants `*.edge.example.org` and allows literal wildcards. */
const GATEWAY = workload('edge', 'gateway');
/** Granted to billing's identities only: refused to API. */
const REFUSED = 'db.billing.svc';
/** Every name the tests order points at 127.0.0.1, the refused one too: a refusal is the policy's, not DNS's. */
const NAMES = ['api.payments.svc', 'x.api.payments.svc', 'y.api.payments.svc', 'z.api.payments.svc', REFUSED];
const REJECTED = 'urn:ietf:params:acme:error:rejectedIdentifier';

interface CertificateRecord {
  serial: string;
  identity: string;
  sans: { dns: string[]; ip: string[]; uri: string[]; email: string[] };
  status: 'valid' | 'revoked' | 'expired';
  revocationReason: string | null;
  certificate: string;
}

interface Directory {
  newNonce: string;
  newAccount: string;
  newOrder: string;
  revokeCert: string;
}

/** One request over node:https that trusts only the CA's root. */
function https(method: string, url: string, ca: string, token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ca, agent: false, timeout: 15_000, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** What a failed client run printed, for an assertion's message. */
const said = (r: ClientRun) => `${r.argv[0]} exited ${r.code} (signal ${r.signal}, timed out ${r.timedOut}):\n${r.output.slice(-6000)}`;

/** The CA under test with what the clients need: the root's text, the directory, bindings, records. */
class Ca {
  readonly root: string;
  directory!: Directory;
  constructor(readonly app: TestApp) {
    this.root = readFileSync(app.pki.rootCertificate, 'utf8');
  }

  get directoryUrl() {
    return `${this.app.api}/acme/directory`;
  }

  async load() {
    const res = await https('GET', this.directoryUrl, this.root);
    assert.equal(res.status, 200, `GET /acme/directory: ${res.body}`);
    this.directory = JSON.parse(res.body) as Directory;
    return this;
  }

  /** A fresh single-use binding for identity, asked with the identity's own token. */
  async eab(identity: string): Promise<Eab> {
    const res = await https('POST', `${this.app.api}/v1/acme/eab`, this.root, await this.app.token(identity));
    assert.equal(res.status, 201, `POST /v1/acme/eab for ${identity}: ${res.body}`);
    const body = JSON.parse(res.body) as { kid: string; hmacKey: string; identity: string; expires: string };
    assert.equal(body.identity, identity);
    assert.match(body.hmacKey, /^[A-Za-z0-9_-]+$/, 'the HMAC key is base64url without padding');
    return { kid: body.kid, hmacKey: body.hmacKey };
  }

  async list(query: Record<string, string>): Promise<CertificateRecord[]> {
    const res = await https('GET', `${this.app.api}/v1/certificates?${new URLSearchParams({ ...query, limit: '1000' })}`, this.root, await this.app.token(ADMIN));
    assert.equal(res.status, 200, `GET /v1/certificates: ${res.body}`);
    return (JSON.parse(res.body) as { items: CertificateRecord[] }).items;
  }

  async record(serial: string): Promise<CertificateRecord> {
    const res = await https('GET', `${this.app.api}/v1/certificates/${serial}`, this.root, await this.app.token(ADMIN));
    assert.equal(res.status, 200, `GET /v1/certificates/${serial}: ${res.body}`);
    return JSON.parse(res.body) as CertificateRecord;
  }

  /**
   * What a client wrote verifies with openssl against the root and the chain it got (which is the
   * CA's intermediate), certifies the client's key and exactly dns, and is the record of a valid
   * certificate of identity with the same serial. Returns that serial.
   */
  async verifyIssued(files: IssuedFiles | undefined, identity: string, dns: string[]): Promise<string> {
    assert.ok(files, 'the client wrote no certificate');
    const { leaf, intermediates, count } = readFullchain(files.fullchain);
    assert.equal(count, 2, 'the chain holds the leaf and the intermediate');
    const intermediate = new X509Certificate(readFileSync(this.app.pki.intermediateCertificate));
    assert.ok(new X509Certificate(intermediates).raw.equals(intermediate.raw), 'the chain after the leaf is the CA\'s intermediate');
    assert.ok(new X509Certificate(readFileSync(files.chain)).raw.equals(intermediate.raw), 'the chain file is the CA\'s intermediate');
    const verified = verifyChain(leaf, this.root, intermediates);
    assert.ok(verified.ok, `openssl verify: ${verified.output}`);
    const cert = new X509Certificate(leaf);
    assert.deepEqual(
      (cert.subjectAltName ?? '').split(', ').sort(),
      dns.map((d) => `DNS:${d}`).sort(),
      'the certificate names exactly the ordered names',
    );
    const spki = (k: ReturnType<typeof createPublicKey>) => k.export({ type: 'spki', format: 'der' });
    assert.ok(spki(cert.publicKey).equals(spki(createPublicKey(readFileSync(files.key, 'utf8')))), 'the certificate certifies the key the client made');
    const listed = (await this.list({ identity })).filter((r) => new X509Certificate(r.certificate).raw.equals(cert.raw));
    assert.equal(listed.length, 1, `the certificate is listed once under ${identity}`);
    const record = listed[0]!;
    assert.equal(BigInt(`0x${record.serial}`), BigInt(`0x${cert.serialNumber}`), 'the record\'s serial is the certificate\'s');
    assert.equal(record.identity, identity);
    assert.equal(record.status, 'valid');
    assert.deepEqual([...record.sans.dns].sort(), [...dns].sort());
    assert.deepEqual(record.sans.ip, []);
    return record.serial;
  }

  /** Nothing was ever issued for name. */
  async assertNothingFor(name: string) {
    assert.deepEqual((await this.list({ dns: name })).map((r) => r.serial), [], `no certificate names ${name}`);
  }
}

/** The names the CA (or anyone) asked the DNS server about since index `from`. */
const lookedUp = (dns: DnsServer, name: string, from = 0) => dns.queries.slice(from).filter((q) => q.name === name);

describe('ACME with certbot and lego', { skip: NO_CLIENT }, () => {
  let dns: DnsServer;
  let ca: Ca;
  let httpPort: number;
  let tlsPort: number;

  before(async () => {
    dns = await startDnsServer();
    for (const name of NAMES) dns.setA(name, '127.0.0.1');
    httpPort = await freePort();
    tlsPort = await freePort();
    const app = await startTestApp({
      tls: true,
      config: { acme: { enabled: true, allowLoopback: true, resolver: dns.address, challengePorts: { http01: httpPort, tlsalpn01: tlsPort } } },
    });
    ca = await new Ca(app).load();
  });
  after(async () => {
    await ca?.app.stop();
    await dns?.stop();
  });

  describe('certbot', { skip: NO_CERTBOT }, () => {
    const names = ['api.payments.svc', 'x.api.payments.svc'];
    let certbot: Certbot;
    let first: string | undefined;
    let renewed: string | undefined;
    let renewedCert: string | undefined;
    before(() => {
      certbot = createCertbot({ server: ca.directoryUrl, rootPem: ca.app.pki.rootCertificate });
    });
    after(() => certbot?.remove());

    it('obtains a certificate with http-01 from its standalone server', async () => {
      const r = await certbot.obtain({ domains: names, httpPort, eab: await ca.eab(API) });
      assert.equal(r.code, 0, said(r));
      // certbot's standalone server logs each token the CA fetched from it.
      assert.equal(r.log.match(/Serving HTTP01 with token/g)?.length, names.length, 'the CA fetched one http-01 token per name');
      first = await ca.verifyIssued(r.files, API, names);
    });

    it('renews with --force-renewal to a new serial', async () => {
      assert.ok(first, 'nothing to renew: obtaining failed');
      const r = await certbot.renew({ certName: names[0]!, httpPort });
      assert.equal(r.code, 0, said(r));
      renewed = await ca.verifyIssued(r.files, API, names);
      renewedCert = r.files!.cert;
      assert.notEqual(renewed, first);
      // Renewal does not revoke: both are listed, both valid.
      assert.equal((await ca.record(first)).status, 'valid');
    });

    it('revokes with its account key, and the record says revoked with the reason', async () => {
      assert.ok(renewed && renewedCert, 'nothing to revoke: renewal failed');
      const r = await certbot.revoke({ certPath: renewedCert, reason: 'keycompromise' });
      assert.equal(r.code, 0, said(r));
      const record = await ca.record(renewed);
      assert.equal(record.status, 'revoked');
      assert.equal(record.revocationReason, 'keyCompromise');
      assert.equal((await ca.record(first!)).status, 'valid', 'only the revoked certificate is revoked');
    });

    it(`is refused ${REFUSED} at newOrder with rejectedIdentifier`, async () => {
      const refused = createCertbot({ server: ca.directoryUrl, rootPem: ca.app.pki.rootCertificate });
      try {
        const queries = dns.queries.length;
        const r = await refused.obtain({ domains: [REFUSED], httpPort, eab: await ca.eab(API) });
        assert.equal(r.code, 1, said(r));
        // certbot before 2.2 on Python 3.11 (Debian 12's) crashes on any ACME error it raises,
        // printing "AttributeError: can't set attribute" instead of the problem (certbot issue
        // 9539); its log still holds the answer it got.
        assert.ok(r.output.includes(REJECTED) || r.output.includes("AttributeError: can't set attribute"), said(r));
        assert.equal(r.files, undefined);
        // The last request certbot made was newOrder, answered 403 rejectedIdentifier: no
        // authorization, no challenge.
        const posts = [...r.log.matchAll(/Sending POST request to (\S+?):\n/g)];
        assert.equal(posts.at(-1)?.[1], ca.directory.newOrder, `certbot's POSTs: ${posts.map((m) => m[1]).join(' ')}`);
        const answer = r.log.slice(posts.at(-1)!.index);
        assert.match(answer, /Received response:\nHTTP 403\n/, answer);
        assert.match(answer, /"type":\s*"urn:ietf:params:acme:error:rejectedIdentifier"/, answer);
        assert.doesNotMatch(r.log, /Serving HTTP01/);
        assert.deepEqual(lookedUp(dns, REFUSED, queries), [], 'the CA never looked the name up');
        await ca.assertNothingFor(REFUSED);
      } finally {
        refused.remove();
      }
    });
  });

  describe('lego', { skip: NO_LEGO }, () => {
    /**
     * One lego run with its own --path and a fresh binding; returns the run and the serial. `then`
     * runs before the folder is removed, with lego's account and certificate still there.
     */
    const obtain = async (identity: string, domains: string[], challenge: LegoChallenge, then?: (lego: Lego, serial: string) => Promise<void>) => {
      const lego = createLego({ server: ca.directoryUrl, rootPem: ca.app.pki.rootCertificate, email: 'ops@example.org' });
      try {
        const r = await lego.run({ domains, challenge, eab: await ca.eab(identity) });
        assert.equal(r.code, 0, said(r));
        for (const d of domains) {
          assert.ok(r.stderr.includes(`[${d}] acme: use ${challenge.type} solver`), `lego used ${challenge.type} for ${d}:\n${r.stderr}`);
          assert.ok(r.stderr.includes(`[${d}] The server validated our request`), `the CA validated ${d}:\n${r.stderr}`);
        }
        const serial = await ca.verifyIssued(r.files, identity, domains);
        await then?.(lego, serial);
        return { r, serial };
      } finally {
        lego.remove();
      }
    };

    it('obtains a certificate with http-01, and revokes it with its (EC) account key', async () => {
      const { r } = await obtain(API, ['y.api.payments.svc'], { type: 'http-01', port: httpPort }, async (lego, serial) => {
        const revoked = await lego.revoke({ domains: ['y.api.payments.svc'], reason: 4 });
        assert.equal(revoked.code, 0, said(revoked));
        const record = await ca.record(serial);
        assert.equal(record.status, 'revoked');
        assert.equal(record.revocationReason, 'superseded');
      });
      // lego logs each time its challenge server answered the token.
      assert.ok(r.stderr.includes('[y.api.payments.svc] Served key authentication'), r.stderr);
    });

    it('obtains a certificate with tls-alpn-01', async () => {
      await obtain(API, ['z.api.payments.svc'], { type: 'tls-alpn-01', port: tlsPort });
    });

    it('obtains a certificate with dns-01 through its exec provider', async () => {
      const names = ['api.payments.svc', 'x.api.payments.svc'];
      const queries = dns.queries.length;
      await obtain(API, names, { type: 'dns-01', execScript: dns.execProviderScript, resolver: dns.address });
      for (const n of names) {
        assert.ok(lookedUp(dns, `_acme-challenge.${n}`, queries).some((q) => q.type === 'TXT'), `TXT _acme-challenge.${n} was asked for`);
        assert.deepEqual(dns.txt(`_acme-challenge.${n}`), [], 'lego removed its TXT record');
      }
    });

    it('obtains a wildcard with dns-01 for an identity whose policy allows wildcards', async () => {
      await obtain(GATEWAY, ['*.edge.example.org'], { type: 'dns-01', execScript: dns.execProviderScript, resolver: dns.address });
      assert.deepEqual(dns.txt('_acme-challenge.edge.example.org'), []);
    });

    it(`is refused ${REFUSED} at newOrder with rejectedIdentifier`, async () => {
      const lego = createLego({ server: ca.directoryUrl, rootPem: ca.app.pki.rootCertificate, email: 'ops@example.org' });
      try {
        const queries = dns.queries.length;
        const r = await lego.run({ domains: [REFUSED], challenge: { type: 'http-01', port: httpPort }, eab: await ca.eab(API) });
        assert.equal(r.code, 1, said(r));
        // lego's error names the request that failed: newOrder.
        assert.ok(r.stderr.includes(`POST :: ${ca.directory.newOrder} :: ${REJECTED}`), said(r));
        assert.doesNotMatch(r.stderr, /AuthURL|Served key authentication/);
        assert.equal(r.files, undefined);
        assert.deepEqual(lookedUp(dns, REFUSED, queries), [], 'the CA never looked the name up');
        await ca.assertNothingFor(REFUSED);
      } finally {
        lego.remove();
      }
    });
  });
});

describe('ACME with challenges none', { skip: NO_LEGO }, () => {
  let dns: DnsServer;
  let ca: Ca;
  let deadHttp: number;

  before(async () => {
    dns = await startDnsServer();
    for (const name of NAMES) dns.setA(name, '127.0.0.1');
    // Nothing listens on these ports: a validation would fail.
    deadHttp = await freePort();
    const deadTls = await freePort();
    const [first, ...rest] = defaultPolicies();
    const app = await startTestApp({
      tls: true,
      config: {
        policies: [{ ...first!, acme: { challenges: 'none' } }, ...rest],
        acme: { enabled: true, allowLoopback: true, resolver: dns.address, challengePorts: { http01: deadHttp, tlsalpn01: deadTls } },
      },
    });
    ca = await new Ca(app).load();
  });
  after(async () => {
    await ca?.app.stop();
    await dns?.stop();
  });

  it('lego gets a granted name with no challenge answered and no look-up by the CA', async () => {
    const names = ['api.payments.svc', 'x.api.payments.svc'];
    // lego insists on a solver: its own http-01 server listens on another port than the CA's.
    const legoPort = await freePort();
    const lego = createLego({ server: ca.directoryUrl, rootPem: ca.app.pki.rootCertificate, email: 'ops@example.org' });
    try {
      const queries = dns.queries.length;
      const r = await lego.run({ domains: names, challenge: { type: 'http-01', port: legoPort }, eab: await ca.eab(API) });
      assert.equal(r.code, 0, said(r));
      for (const n of names) assert.ok(r.stderr.includes(`[${n}] acme: authorization already valid; skipping challenge`), said(r));
      assert.doesNotMatch(r.stderr, /Served key authentication|Trying to solve/);
      await ca.verifyIssued(r.files, API, names);
      for (const n of names) assert.deepEqual(lookedUp(dns, n, queries), [], `the CA never resolved ${n}`);
    } finally {
      lego.remove();
    }
  });

  it(`lego is still refused ${REFUSED} with rejectedIdentifier`, async () => {
    const lego = createLego({ server: ca.directoryUrl, rootPem: ca.app.pki.rootCertificate, email: 'ops@example.org' });
    try {
      const r = await lego.run({ domains: [REFUSED], challenge: { type: 'http-01', port: await freePort() }, eab: await ca.eab(API) });
      assert.equal(r.code, 1, said(r));
      assert.ok(r.stderr.includes(`POST :: ${ca.directory.newOrder} :: ${REJECTED}`), said(r));
      assert.equal(r.files, undefined);
      await ca.assertNothingFor(REFUSED);
    } finally {
      lego.remove();
    }
  });
});
