/**
 * Name policy through the API (docs/api.md "Identity and policy"): deny by default, `{x}` captures one
 * path segment, a leading `*.` matches exactly one label, literal wildcards only with
 * `wildcards: true`, DNS case-insensitive, IPs by CIDR, URI and email templates, per-policy
 * maxTtl and extendedKeyUsage. What was issued is read back with openssl and node's X509Certificate.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { checkServerIdentity, connect, type PeerCertificate } from 'node:tls';
import { startTestApp, workload, type TestApp } from '../setup/app.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceCaClient, holderToken } from '../../src/client/index.js';
import { createKeyAndCsr, csrFor, opensslCsr, type Names } from '../setup/csr.js';
import { issueHolder, postRenew, type Issued as Issuance } from '../setup/holder.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';
import { opensslReq, opensslSelfSigned } from '../setup/crafted.js';
import { verifyChain, x509Text } from '../setup/openssl.js';
import { assertProblem, countCertificateRows, issuedCount } from '../setup/rejections.js';
import { createTestIssuer, issuerConfig, type TestIssuer } from '../setup/tokens.js';

const WEB = workload('shop', 'web');
const GATEWAY = workload('edge', 'gateway');

interface Issued {
  serial: string;
  certificate: string;
  chain: string[];
  notBefore: string;
  notAfter: string;
}

const lifetimeHours = (i: Issued) => (new Date(i.notAfter).getTime() - new Date(i.notBefore).getTime()) / 3600_000;

/** Issuance helpers over one app, counting what was accepted. */
function issuer(getApp: () => TestApp) {
  const state = { issued: 0 };
  const request = async (sub: string, names: Names | string, extra: Record<string, unknown> = {}, claims?: Record<string, unknown>) => {
    const csr = typeof names === 'string' ? names : await csrFor(names);
    const app = getApp();
    const res = await fetch(`${app.api}/v1/certificates`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(sub, claims)}` },
      body: JSON.stringify({ csr, ...extra }),
    });
    if (res.status === 201) state.issued++;
    return res;
  };
  return {
    state,
    request,
    /** Asserts 201 and returns the issuance. */
    async allowed(sub: string, names: Names | string, extra: Record<string, unknown> = {}, claims?: Record<string, unknown>): Promise<Issued> {
      const res = await request(sub, names, extra, claims);
      assert.equal(res.status, 201, `${sub} ${JSON.stringify(names)}: ${await res.clone().text()}`);
      return (await res.json()) as Issued;
    },
    /** Asserts the 403 problem with the given code; returns its detail. */
    async refused(code: 'forbidden' | 'rejectedIdentifier', sub: string, names: Names | string, claims?: Record<string, unknown>): Promise<string> {
      return (await assertProblem(await request(sub, names, {}, claims), 403, code)).detail;
    },
  };
}

describe('policy with the default test policies', () => {
  let database: TestDatabase;
  let app: TestApp;
  const ca = issuer(() => app);

  before(async () => {
    database = await createTestDatabase();
    app = await startTestApp({ database });
  });
  after(async () => {
    await app?.stop();
    await database?.drop();
  });

  it('refuses with 403 forbidden an identity that no policy matches', async () => {
    for (const sub of [
      'spiffe://example.org/admin',
      'spiffe://other.org/ns/shop/sa/web',
      'spiffe://exampleXorg/ns/shop/sa/web', // "." in the pattern is literal
      'spiffe://example.org/ns/shop/sa/web/extra',
      'xspiffe://example.org/ns/shop/sa/web',
      'spiffe://example.org/ns//sa/web',
      'spiffe://example.org/ns/shop/sa/',
    ]) {
      await ca.refused('forbidden', sub, { dns: ['web.shop.svc'] });
    }
  });

  it('{ns} captures exactly one path segment', async () => {
    await ca.refused('forbidden', 'spiffe://example.org/ns/a/b/sa/x', { dns: ['x.b.svc'] });
    await ca.refused('forbidden', 'spiffe://example.org/ns/a/b/sa/x', { uri: ['spiffe://example.org/ns/a/b/sa/x'] });
    await ca.allowed('spiffe://example.org/ns/b/sa/x', { dns: ['x.b.svc'] });
  });

  it('refuses with 403 rejectedIdentifier when one name is outside the policy, naming it, and issues nothing', async () => {
    const cases: Names[] = [
      { dns: ['web.shop.svc', 'evil.example.com'] },
      { dns: ['web.shop.svc', 'api.shop.svc'] },
      { dns: ['web.shop.svc'], ip: ['192.168.0.1'] },
      { dns: ['web.shop.svc'], uri: [workload('shop', 'api')] },
      { dns: ['web.shop.svc'], email: ['api@shop.example.org'] },
    ];
    for (const names of cases) {
      const detail = await ca.refused('rejectedIdentifier', WEB, names);
      const outside = [...(names.dns ?? []).slice(1), ...(names.ip ?? []), ...(names.uri ?? []), ...(names.email ?? [])];
      for (const n of outside) assert.ok(detail.includes(n), `the detail names ${n}: ${detail}`);
      assert.ok(!detail.includes('web.shop.svc'), `the detail names only what was refused: ${detail}`);
    }
  });

  it('a leading "*." in a DNS pattern matches exactly one label', async () => {
    await ca.allowed(WEB, { dns: ['x.web.shop.svc'] });
    await ca.allowed(WEB, { dns: ['x-1.web.shop.svc', 'y.web.shop.svc'] });
    await ca.refused('rejectedIdentifier', WEB, { dns: ['a.b.web.shop.svc'] });
    await ca.refused('rejectedIdentifier', WEB, { dns: ['x.web.shop.svc.evil'] });
    await ca.refused('rejectedIdentifier', WEB, { dns: ['x.api.shop.svc'] });
  });

  it('refuses a requested literal wildcard unless the policy sets wildcards: true', async () => {
    await ca.refused('rejectedIdentifier', WEB, { dns: ['*.web.shop.svc'] });
    await ca.refused('rejectedIdentifier', WEB, { dns: ['web.shop.svc', '*.web.shop.svc'] });
    const wild = await ca.allowed(GATEWAY, { dns: ['*.edge.example.org'] });
    assert.equal(new X509Certificate(wild.certificate).subjectAltName, 'DNS:*.edge.example.org');
    await ca.allowed(GATEWAY, { dns: ['api.edge.example.org', '*.edge.example.org'] });
    // wildcards: true allows the literal name, not more labels and not the parent.
    await ca.refused('rejectedIdentifier', GATEWAY, { dns: ['a.b.edge.example.org'] });
    await ca.refused('rejectedIdentifier', GATEWAY, { dns: ['edge.example.org'] });
    await assertProblem(await ca.request(GATEWAY, { dns: ['*.*.edge.example.org'] }), 400, 'badCSR'); // not a host name at all
    await ca.refused('rejectedIdentifier', GATEWAY, { dns: ['*.example.org'] });
  });

  it('matches DNS names case-insensitively and issues them lower-cased', async () => {
    const { csrPem } = opensslReq({ newkey: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], san: 'DNS:WEB.Shop.SVC,DNS:X.Web.Shop.Svc' });
    const issued = await ca.allowed(WEB, csrPem);
    assert.equal(new X509Certificate(issued.certificate).subjectAltName, 'DNS:web.shop.svc, DNS:x.web.shop.svc');
    await ca.allowed(GATEWAY, { dns: ['API.Edge.Example.ORG'] });
  });

  it('allows IP SANs inside the policy ranges and refuses those outside', async () => {
    for (const ip of ['10.0.0.0', '10.1.2.3', '10.255.255.255', 'fd00::1', 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff']) {
      await ca.allowed(WEB, { ip: [ip] });
    }
    for (const ip of ['9.255.255.255', '11.0.0.0', '192.168.1.1', '127.0.0.1', 'fc00::1', 'fe80::1', '2001:db8::1', '::1']) {
      await ca.refused('rejectedIdentifier', WEB, { ip: [ip] });
    }
  });

  it('allows the URI made by the {identity} template, exactly', async () => {
    await ca.allowed(WEB, { uri: [WEB] });
    for (const uri of [workload('shop', 'api'), `${WEB}/x`, `${WEB}x`, WEB.toUpperCase(), 'spiffe://example.org/ns/shop/sa/*']) {
      await ca.refused('rejectedIdentifier', WEB, { uri: [uri] });
    }
  });

  it('allows the email made by the {sa}@{ns}.example.org template, exactly', async () => {
    await ca.allowed(WEB, { email: ['web@shop.example.org'] });
    for (const email of ['api@shop.example.org', 'web@api.example.org', 'web@shop.example.org.evil', 'xweb@shop.example.org']) {
      await ca.refused('rejectedIdentifier', WEB, { email: [email] });
    }
  });

  it('caps the ttl at the policy maxTtl, and at issuance.maxTtl for a policy without one', async () => {
    assert.equal(lifetimeHours(await ca.allowed(WEB, { dns: ['web.shop.svc'] }, { ttl: '100h' })), 48, 'the workload policy has maxTtl 48h');
    assert.equal(lifetimeHours(await ca.allowed(WEB, { dns: ['web.shop.svc'] }, { ttl: '2h' })), 2);
    assert.equal(lifetimeHours(await ca.allowed(GATEWAY, { dns: ['api.edge.example.org'] }, { ttl: '100h' })), 72, 'issuance.maxTtl 72h');
  });

  it('narrows the extended key usage to the policy (gateway: serverAuth only)', async () => {
    const rootPem = await (await fetch(`${app.public}/v1/ca/root.pem`)).text();
    const gateway = await ca.allowed(GATEWAY, { dns: ['api.edge.example.org'] });
    const text = x509Text(gateway.certificate);
    assert.match(text, /X509v3 Extended Key Usage:\s*\n\s*TLS Web Server Authentication\s*\n/);
    assert.doesNotMatch(text, /TLS Web Client Authentication/);
    assert.ok(verifyChain(gateway.certificate, rootPem, gateway.chain.join(''), 'sslserver').ok);
    assert.ok(!verifyChain(gateway.certificate, rootPem, gateway.chain.join(''), 'sslclient').ok, 'not usable as a client certificate');
    const web = x509Text((await ca.allowed(WEB, { dns: ['web.shop.svc'] })).certificate);
    assert.match(web, /X509v3 Extended Key Usage:\s*\n\s*TLS Web Server Authentication, TLS Web Client Authentication\s*\n/);
  });

  it('a capture holding "*" does not widen a DNS pattern', async () => {
    const star = 'spiffe://example.org/ns/shop/sa/*';
    // Filled naively, {sa}.{ns}.svc would read *.shop.svc and allow any one label.
    await ca.refused('rejectedIdentifier', star, { dns: ['web.shop.svc'] });
    await ca.refused('rejectedIdentifier', star, { dns: ['*.shop.svc'] });
    await ca.refused('rejectedIdentifier', star, { dns: ['x.web.shop.svc'] });
    await ca.refused('rejectedIdentifier', 'spiffe://example.org/ns/*/sa/web', { dns: ['web.shop.svc'] });
    await ca.refused('rejectedIdentifier', 'spiffe://example.org/ns/*/sa/*', { dns: ['web.shop.svc.cluster.local'] });
  });

  it('a capture must be one lower-case DNS label to fill a DNS pattern', async () => {
    // sa=x.web must not reach x.web.shop.svc, which *.{sa}.{ns}.svc reserves for sa=web.
    await ca.refused('rejectedIdentifier', 'spiffe://example.org/ns/shop/sa/x.web', { dns: ['x.web.shop.svc'] });
    await ca.refused('rejectedIdentifier', 'spiffe://example.org/ns/Shop/sa/Web', { dns: ['web.shop.svc'] });
    // The URI template still works for such identities.
    await ca.allowed('spiffe://example.org/ns/shop/sa/x.web', { uri: ['spiffe://example.org/ns/shop/sa/x.web'] });
  });

  it('requires every name to be in the token\'s "sans" claim as well, when there is one', async () => {
    const claims = { sans: ['WEB.shop.svc', '10.0.0.1'] };
    await ca.allowed(WEB, { dns: ['web.shop.svc'], ip: ['10.0.0.1'] }, {}, claims);
    await ca.refused('rejectedIdentifier', WEB, { dns: ['web.shop.svc', 'x.web.shop.svc'] }, claims);
    await ca.refused('rejectedIdentifier', WEB, { ip: ['10.0.0.2'] }, claims);
  });

  it('issued nothing for a refused request', async () => {
    await app.stop(); // PGlite serves one process at a time
    assert.equal(await countCertificateRows(database), ca.state.issued);
  });
});

describe('policy with custom policies', () => {
  let app: TestApp;
  const ca = issuer(() => app);
  const policies = [
    {
      identity: 'spiffe://example.org/ns/{ns}/sa/{sa}',
      dns: ['*.{sa}.{ns}.svc', 'Static.Example.COM'],
      uri: ['urn:svc:{ns}:{sa}', 'https://{sa}.{ns}.example.org/id/{identity}', 'https://id.example.org/{identity}'],
      email: ['{sa}+{ns}@mail.example.org'],
      ip: ['192.168.1.10', '2001:db8::/32'],
      maxTtl: '1h',
      extendedKeyUsage: ['clientAuth'],
    },
    { identity: 'spiffe://example.org/wild/{ns}/{sa}', dns: ['*.{sa}.{ns}.svc'], wildcards: true },
    { identity: 'k8s:{ns}:{sa}', dns: ['{sa}.{ns}.svc'] },
    { identity: 'mesh:{region}:{zone}:{cluster}:{pool}:{ns}:{sa}', dns: ['{sa}.{ns}.svc'] },
  ];

  before(async () => {
    app = await startTestApp({ config: { policies } });
  });
  after(() => app?.stop());

  it('a policy with only "*.{sa}.{ns}.svc" allows x.web.shop.svc, not a.b.web.shop.svc, not web.shop.svc', async () => {
    await ca.allowed(WEB, { dns: ['x.web.shop.svc'] });
    await ca.refused('rejectedIdentifier', WEB, { dns: ['a.b.web.shop.svc'] });
    await ca.refused('rejectedIdentifier', WEB, { dns: ['web.shop.svc'] });
    await ca.refused('rejectedIdentifier', WEB, { dns: ['*.web.shop.svc'] });
  });

  it('wildcards: true with a captured pattern allows the literal wildcard of that identity only', async () => {
    const wild = 'spiffe://example.org/wild/shop/web';
    await ca.allowed(wild, { dns: ['*.web.shop.svc'] });
    await ca.allowed(wild, { dns: ['x.web.shop.svc'] });
    await ca.refused('rejectedIdentifier', wild, { dns: ['*.api.shop.svc'] });
    await assertProblem(await ca.request(wild, { dns: ['*.*.web.shop.svc'] }), 400, 'badCSR');
    await ca.refused('rejectedIdentifier', wild, { dns: ['web.shop.svc'] });
  });

  it('matches a mixed-case pattern case-insensitively', async () => {
    await ca.allowed(WEB, { dns: ['static.example.com'] });
    await ca.allowed(WEB, { dns: ['STATIC.example.COM'] });
  });

  it('fills URI and email templates with the captures and the identity', async () => {
    await ca.allowed(WEB, { uri: ['urn:svc:shop:web'] });
    await ca.allowed(WEB, { uri: [`https://web.shop.example.org/id/${WEB}`] });
    await ca.allowed(WEB, { email: ['web+shop@mail.example.org'] });
    await ca.refused('rejectedIdentifier', WEB, { uri: ['urn:svc:web:shop'] });
    await ca.refused('rejectedIdentifier', WEB, { email: ['shop+web@mail.example.org'] });
  });

  it('a capture that would add URI or email structure fills no name (the host, scheme or address stays the pattern\'s)', async () => {
    // sa = "evil.example#": the filled URI would name the host evil.example.
    const hashSa = 'spiffe://example.org/ns/shop/sa/evil.example#';
    await ca.refused('rejectedIdentifier', hashSa, { uri: [`https://evil.example#.shop.example.org/id/${hashSa}`] });
    // ns = "a:b": "urn:svc:{ns}:{sa}" would read as four components.
    await ca.refused('rejectedIdentifier', 'spiffe://example.org/ns/a:b/sa/web', { uri: ['urn:svc:a:b:web'] });
    // sa = "x?y", "x@evil.example", "x%2Fy": a query, user information, an encoded slash.
    await ca.refused('rejectedIdentifier', 'spiffe://example.org/ns/shop/sa/x?y', { uri: ['urn:svc:shop:x?y'] });
    await ca.refused('rejectedIdentifier', 'spiffe://example.org/ns/shop/sa/x@evil.example', { uri: ['https://x@evil.example.shop.example.org/id/spiffe://example.org/ns/shop/sa/x@evil.example'] });
    await ca.refused('rejectedIdentifier', 'spiffe://example.org/ns/shop/sa/x%2Fy', { uri: ['urn:svc:shop:x%2Fy'] });
    // email: a capture with a comma or a quote adds structure; atext and dots are names.
    await ca.refused('rejectedIdentifier', 'spiffe://example.org/ns/shop/sa/a,b', { email: ['a,b+shop@mail.example.org'] });
    await ca.allowed('spiffe://example.org/ns/shop/sa/web.v2', { email: ['web.v2+shop@mail.example.org'] });
    // Unreserved characters are still names: dots, tildes, underscores, hyphens.
    await ca.allowed('spiffe://example.org/ns/shop/sa/web_v2.~x-y', { uri: ['urn:svc:shop:web_v2.~x-y'] });
    // ".." as a segment: a client that normalises the path reads another one.
    await ca.refused('rejectedIdentifier', 'spiffe://example.org/ns/shop/sa/..', { uri: ['urn:svc:shop:..'] });
  });

  it('a capture in a URI\'s host or an email\'s domain is one lower-case label: no case variant or dotted value names another identity\'s host', async () => {
    // Hosts and email domains compare case-insensitively: sa=Web would own what sa=web owns.
    const upper = 'spiffe://example.org/ns/shop/sa/Web';
    await ca.refused('rejectedIdentifier', upper, { uri: [`https://Web.shop.example.org/id/${upper}`] });
    await ca.refused('rejectedIdentifier', upper, { uri: [`https://web.shop.example.org/id/${upper}`] });
    // sa=a.b, ns=c would fill the same host as sa=a, ns=b.c.
    const dotted = 'spiffe://example.org/ns/c/sa/a.b';
    await ca.refused('rejectedIdentifier', dotted, { uri: [`https://a.b.c.example.org/id/${dotted}`] });
    // The lower-case label itself is the owner's name.
    await ca.allowed(WEB, { uri: [`https://web.shop.example.org/id/${WEB}`] });
  });

  it('{identity} inside a longer URI stands only for an identity whose captures are path segments: none adds a fragment or query', async () => {
    await ca.allowed(WEB, { uri: [`https://id.example.org/${WEB}`] });
    const fragment = 'spiffe://example.org/ns/shop/sa/web#admin';
    await ca.refused('rejectedIdentifier', fragment, { uri: [`https://id.example.org/${fragment}`] });
    const query = 'spiffe://example.org/ns/shop/sa/web?as=admin';
    await ca.refused('rejectedIdentifier', query, { uri: [`https://id.example.org/${query}`] });
  });

  it('treats a range without a prefix as one address, and checks IPv6 prefixes', async () => {
    await ca.allowed(WEB, { ip: ['192.168.1.10'] });
    await ca.refused('rejectedIdentifier', WEB, { ip: ['192.168.1.11'] });
    await ca.allowed(WEB, { ip: ['2001:db8:ffff::1'] });
    await ca.refused('rejectedIdentifier', WEB, { ip: ['2001:db9::1'] });
    await ca.refused('rejectedIdentifier', WEB, { ip: ['10.0.0.1'] });
  });

  it('applies the policy maxTtl (1h) and its extendedKeyUsage (clientAuth only)', async () => {
    const issued = await ca.allowed(WEB, { dns: ['x.web.shop.svc'] }, { ttl: '2h' });
    assert.equal(lifetimeHours(issued), 1);
    const text = x509Text(issued.certificate);
    assert.match(text, /X509v3 Extended Key Usage:\s*\n\s*TLS Web Client Authentication\s*\n/);
    assert.doesNotMatch(text, /TLS Web Server Authentication/);
    // A policy without maxTtl falls back to issuance.maxTtl (72h by default).
    assert.equal(lifetimeHours(await ca.allowed('k8s:shop:web', { dns: ['web.shop.svc'] }, { ttl: '100h' })), 72);
  });

  it('matches identities against six ":"-separated captures in linear time: a 1,006-character pathological one is refused', async () => {
    // Every capture may hold ":": a backtracking RegExp tries each split of the 1,000 colons before
    // the final "/" refuses, O(n^6) with the event loop blocked (measured with the RegExp the
    // patterns compiled to before: 100 colons 1.2 s, so 1,000 about 10^6 s). The answer is what
    // is checked: with backtracking the request never comes back.
    await ca.refused('forbidden', `mesh:${':'.repeat(1000)}/`, { dns: ['web.shop.svc'] });
    // The greedy captures of a long identity that matches: region takes all but the last five.
    const long = `mesh:${'r:'.repeat(500)}z:c:p:shop:web`;
    await ca.allowed(long, { dns: ['web.shop.svc'] });
    await ca.refused('rejectedIdentifier', long, { dns: ['p.shop.svc'] });
  });

  it('deny by default holds for an identity pattern that is not a path', async () => {
    await ca.allowed('k8s:shop:web', { dns: ['web.shop.svc'] });
    await ca.refused('forbidden', 'k8s:shop', { dns: ['web.shop.svc'] });
    await ca.refused('rejectedIdentifier', 'k8s:shop:api', { dns: ['web.shop.svc'] });
  });
});

/** A node http(s) answer as a fetch Response, for the problem-document helpers. */
function asResponse(raw: { status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }): Response {
  const headers = new Headers();
  for (const [k, v] of Object.entries(raw.headers)) for (const x of Array.isArray(v) ? v : v === undefined ? [] : [v]) headers.append(k, x);
  return new Response(new Uint8Array(raw.body), { status: raw.status, headers });
}

describe('the API listener\'s own names (server.tls.names) are never issued', () => {
  let app: TestApp;
  // As an operator may write them: mixed case, an IPv6 loopback.
  const serverNames = ['127.0.0.1', 'Localhost', '::1', 'CA.Internal.Example'];
  before(async () => {
    app = await startTestApp({
      tls: true,
      config: {
        server: { host: '127.0.0.1', port: 0, tls: { mode: 'auto', names: serverNames } },
        // A policy that grants every one of those names (and more) to every workload.
        policies: [{
          identity: 'spiffe://example.org/ns/{ns}/sa/{sa}',
          dns: ['{sa}.{ns}.svc', 'localhost', 'ca.internal.example', '*.internal.example'],
          wildcards: true,
          ip: ['127.0.0.0/8', '::1', '::ffff:0:0/96'],
        }],
      },
    });
  });
  after(() => app?.stop());

  const request = async (csr: string) =>
    asResponse(await app.client.raw('POST', '/v1/certificates', {
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(WEB)}` },
      body: JSON.stringify({ csr }),
    }));

  it('403 rejectedIdentifier for each of them, DNS in any case or under a wildcard, IPs in any form, whatever the policy says; nothing issued', async () => {
    const before = await issuedCount(app);
    const cases: [string, string][] = [
      [await csrFor({ dns: ['localhost'] }), 'localhost'],
      [opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'DNS:LocalHost').csrPem, 'localhost'],
      [await csrFor({ dns: ['ca.internal.example'] }), 'ca.internal.example'],
      [await csrFor({ dns: ['*.internal.example'] }), '*.internal.example'],
      [await csrFor({ dns: ['web.shop.svc', 'localhost'] }), 'localhost'],
      [await csrFor({ ip: ['127.0.0.1'] }), '127.0.0.1'],
      [await csrFor({ ip: ['::1'] }), '::1'],
      [opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'IP:0:0:0:0:0:0:0:1').csrPem, '::1'],
      [opensslCsr(['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'IP:::ffff:127.0.0.1').csrPem, '::ffff:7f00:1'],
    ];
    for (const [csr, name] of cases) {
      const problem = await assertProblem(await request(csr), 403, 'rejectedIdentifier');
      assert.ok(problem.detail.includes(name), `the detail names ${name}: ${problem.detail}`);
      assert.ok(!problem.detail.includes('web.shop.svc'), problem.detail);
    }
    assert.equal(await issuedCount(app), before);
  });

  it('other names of the same policy are issued: another loopback address, another name under the wildcard', async () => {
    const res = await request(await csrFor({ dns: ['web.shop.svc', 'api.internal.example'], ip: ['127.0.0.2'] }));
    assert.equal(res.status, 201, await res.clone().text());
    const { certificate } = (await res.json()) as Issued;
    assert.equal(new X509Certificate(certificate).subjectAltName, 'DNS:web.shop.svc, DNS:api.internal.example, IP Address:127.0.0.2');
  });

  it('the CA\'s own server certificate, issued internally, still carries them', async () => {
    const root = await app.client.rootPem();
    const port = Number(new URL(app.api).port);
    const peer = await new Promise<PeerCertificate>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, ca: root, servername: 'ca.internal.example' }, () => {
        resolve(socket.getPeerCertificate());
        socket.end();
      });
      socket.on('error', reject);
    });
    for (const host of ['localhost', 'ca.internal.example', '127.0.0.1', '::1']) assert.equal(checkServerIdentity(host, peer), undefined, `valid for ${host}`);
  });
});

describe('the names of a listener certificate from files (server.tls mode files) are never issued either', () => {
  let app: TestApp;
  let dir: string;
  let client: ServiceCaClient;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'service-ca-listener-'));
    const { certPem, keyPem } = opensslSelfSigned(['subjectAltName = DNS:ca.files.example, IP:127.0.0.1', 'basicConstraints = CA:FALSE']);
    writeFileSync(join(dir, 'server.pem'), certPem);
    writeFileSync(join(dir, 'server.key'), keyPem);
    app = await startTestApp({
      config: {
        server: { host: '127.0.0.1', port: 0, tls: { mode: 'files', certificate: join(dir, 'server.pem'), key: join(dir, 'server.key') } },
        policies: [{ identity: 'spiffe://example.org/ns/{ns}/sa/{sa}', dns: ['{sa}.{ns}.svc', '*.files.example'], wildcards: true, ip: ['127.0.0.0/8'] }],
      },
    });
    // The listener's certificate is self-signed: the client trusts exactly it.
    client = new ServiceCaClient({ baseUrl: app.api, ca: certPem });
  });
  after(async () => {
    await app?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('403 rejectedIdentifier for the certificate\'s DNS name and IP address; other names of the policy are issued', async () => {
    const request = async (names: Names) =>
      asResponse(await client.raw('POST', '/v1/certificates', {
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await app.token(WEB)}` },
        body: JSON.stringify({ csr: await csrFor(names) }),
      }));
    await assertProblem(await request({ dns: ['ca.files.example'] }), 403, 'rejectedIdentifier');
    await assertProblem(await request({ dns: ['*.files.example'] }), 403, 'rejectedIdentifier');
    await assertProblem(await request({ ip: ['127.0.0.1'] }), 403, 'rejectedIdentifier');
    assert.equal((await request({ dns: ['api.files.example'], ip: ['127.0.0.2'] })).status, 201);
  });
});

describe('policies limited to issuers (two issuers with the same identity template)', () => {
  let app: TestApp;
  let other: TestIssuer;
  before(async () => {
    const issuer = await createTestIssuer();
    other = await createTestIssuer({ issuer: 'https://partner-idp.test' });
    app = await startTestApp({
      issuer,
      config: {
        auth: { issuers: [issuerConfig(issuer), issuerConfig(other, 'partner')], admins: { identities: [] } },
        policies: [
          { identity: 'spiffe://example.org/ns/{ns}/sa/{sa}', issuers: ['test'], dns: ['{sa}.{ns}.svc'] },
          { identity: 'spiffe://example.org/ns/{ns}/sa/{sa}', issuers: ['partner'], dns: ['{sa}.{ns}.partner.example'] },
          { identity: 'spiffe://example.org/partner/{sa}', issuers: ['partner'], dns: ['{sa}.partner.example'] },
        ],
      },
    });
  });
  after(() => app?.stop());

  const issueAs = async (token: string, names: Names) =>
    fetch(`${app.api}/v1/certificates`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
      body: JSON.stringify({ csr: await csrFor(names) }),
    });

  it('a policy with issuers matches only tokens of those issuers', async () => {
    const mine = await issueAs(await app.token(WEB), { dns: ['web.shop.svc'] });
    assert.equal(mine.status, 201, await mine.clone().text());
    // The partner's token for the same identity gets the partner's policy only.
    await assertProblem(await issueAs(await other.mint({ sub: WEB }), { dns: ['web.shop.svc'] }), 403, 'rejectedIdentifier');
    const partner = await issueAs(await other.mint({ sub: WEB }), { dns: ['web.shop.partner.example'] });
    assert.equal(partner.status, 201, await partner.clone().text());
    await assertProblem(await issueAs(await app.token(WEB), { dns: ['web.shop.partner.example'] }), 403, 'rejectedIdentifier');
    // An identity only the partner's policies know: forbidden with the other issuer's token.
    await assertProblem(await issueAs(await app.token('spiffe://example.org/partner/web'), { dns: ['web.partner.example'] }), 403, 'forbidden');
    const own = await issueAs(await other.mint({ sub: 'spiffe://example.org/partner/web' }), { dns: ['web.partner.example'] });
    assert.equal(own.status, 201, await own.clone().text());
  });

  it('a renewal is judged under the issuer whose token started its lineage, renewal after renewal', async () => {
    let holder = await issueHolder(app, WEB, { dns: ['web.shop.partner.example'] }, { token: await other.mint({ sub: WEB }) });
    for (let round = 0; round < 2; round++) {
      const { keyPem, csrPem } = await createKeyAndCsr('p256', { dns: ['web.shop.partner.example'] });
      const res = await postRenew(app, await holderToken(holder.issued.certificate, holder.keyPem), { csr: csrPem });
      const text = await res.text();
      assert.equal(res.status, 201, `round ${round}: the partner's policy still grants the name: ${text}`);
      const issued = JSON.parse(text) as Issuance;
      holder = { issued, keyPem, cert: new X509Certificate(issued.certificate) };
    }
  });
});
