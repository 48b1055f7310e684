/**
 * The configuration contract (docs/api.md "Configuration contract"): the example file
 * parses, `${ENV}` references are expanded, every error names the key path, cross-field rules
 * hold, relative paths resolve against the file's folder, and the real command line stops with
 * exit code 1 and the key path on a bad file.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError, RESERVED_ISSUER_NAMES, caIssuers, loadConfigFile, parseConfig } from '../../src/config.js';
import { RENEWAL_ISSUER } from '../../src/policy/holder-renewal.js';
import { compilePolicies } from '../../src/policy/names.js';
import { loadAuthority } from '../../src/signer/authority.js';
import { createAuthority } from '../../src/signer/bootstrap.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** The example of docs/api.md "Configuration contract", verbatim. */
const CONTRACT_EXAMPLE = `server:                                       # the API listener
  host: 127.0.0.1
  port: 8443
  tls: { mode: auto, names: [localhost, 127.0.0.1] }   # auto: a certificate this CA issues itself
  # or { mode: files, certificate: ./server.pem, key: ./server.key }, or { mode: off } behind a proxy
public:   { host: 127.0.0.1, port: 8080 }     # plain HTTP: CA certs, CRL, renewal-info, health
publicUrl: http://127.0.0.1:8080              # base of the CRL and AIA URLs in certificates
database: { url: postgres://... }             # or env DATABASE_URL; absent: embedded, under dataDir
dataDir: ./data
ca:
  certificate: ./ca/intermediate.pem          # intermediate certificate
  key: ./ca/intermediate.key                  # PKCS#8 PEM, optionally encrypted
  keyPassphrase: \${CA_KEY_PASSPHRASE}
  chain: ./ca/root.pem                        # root (and any certificates between)
issuance: { defaultTtl: 24h, maxTtl: 72h, backdate: 60s }
crl: { validity: 24h, refresh: 1h, maxDelay: 5s }   # nextUpdate distance; regenerate at least this often
auth:
  issuers:
    - name: k8s
      issuer: https://kubernetes.default.svc
      audience: service-ca
      jwks: { file: ./jwks.json }   # or { url: ... }, { keys: [ ... ] }, { discovery: true }
      algorithms: [RS256, ES256, EdDSA]
      identity: "{sub}"
      maxTokenAge: 1h
      requireJti: false
  admins:
    identities: ["spiffe://example.org/admin"]
policies:
  - identity: "spiffe://example.org/ns/{ns}/sa/{sa}"    # {x} captures one path segment
    dns: ["{sa}.{ns}.svc", "{sa}.{ns}.svc.cluster.local"]
    uri: ["{identity}"]
    ip: ["10.0.0.0/8"]                                 # CIDR ranges an IP SAN must fall in
    maxTtl: 24h
    extendedKeyUsage: [serverAuth, clientAuth]
`;

/** An entry of ca.issuers with files named after `name`. */
const issuerEntry = (name: string, active?: boolean) => ({ certificate: `/ca/${name}.pem`, key: `/ca/${name}.key`, ...(active === undefined ? {} : { active }) });

/** The smallest valid configuration object. */
const minimal = () => ({
  ca: { certificate: '/ca/int.pem', key: '/ca/int.key' },
  auth: { issuers: [{ name: 't', issuer: 'https://issuer.test', audience: 'service-ca', jwks: { file: '/jwks.json' } }] },
});

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'service-ca-config-'));
  dirs.push(d);
  return d;
}
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function writeConfig(text: string): string {
  const dir = tempDir();
  const file = join(dir, 'service-ca.yaml');
  writeFileSync(file, text);
  return file;
}

/**
 * The message start-up stops with for raw, asserting it is a ConfigError: the schema's
 * (parseConfig), then the policy compiler's for what the patterns mean (compilePolicies).
 */
function errorOf(raw: unknown, env: NodeJS.ProcessEnv = {}): string {
  try {
    compilePolicies(parseConfig(raw, { baseDir: '/base', env }).policies);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `a ConfigError, not ${String(err)}`);
    return err.message;
  }
  assert.fail(`parseConfig accepted ${JSON.stringify(raw)}`);
}

describe('the contract example', () => {
  it('parses, with durations in seconds and paths resolved against the file\'s folder', () => {
    const file = writeConfig(CONTRACT_EXAMPLE);
    const dir = resolve(file, '..');
    const c = loadConfigFile(file, { CA_KEY_PASSPHRASE: 'correct horse battery staple' });
    assert.deepEqual(c.server, { host: '127.0.0.1', port: 8443, tls: { mode: 'auto', names: ['localhost', '127.0.0.1'], ttl: 86400 }, workers: 'auto', keepAliveTimeout: 65 });
    assert.deepEqual(c.public, { host: '127.0.0.1', port: 8080 });
    assert.equal(c.publicUrl, 'http://127.0.0.1:8080');
    assert.equal(c.database.url, 'postgres://...');
    assert.equal(c.dataDir, join(dir, 'data'));
    assert.deepEqual(c.ca, {
      certificate: join(dir, 'ca', 'intermediate.pem'),
      key: join(dir, 'ca', 'intermediate.key'),
      keyPassphrase: 'correct horse battery staple',
      chain: join(dir, 'ca', 'root.pem'),
    });
    assert.deepEqual(c.issuance, { defaultTtl: 86400, maxTtl: 259200, backdate: 60 });
    assert.deepEqual(c.crl, { validity: 86400, refresh: 3600, maxDelay: 5 });
    const [k8s] = c.auth.issuers;
    assert.equal(c.auth.issuers.length, 1);
    assert.equal(k8s!.name, 'k8s');
    assert.equal(k8s!.issuer, 'https://kubernetes.default.svc');
    assert.equal(k8s!.audience, 'service-ca');
    assert.deepEqual(k8s!.jwks, { file: join(dir, 'jwks.json') });
    assert.deepEqual(k8s!.algorithms, ['RS256', 'ES256', 'EdDSA']);
    assert.equal(k8s!.identity, '{sub}');
    assert.equal(k8s!.maxTokenAge, 3600);
    assert.equal(k8s!.requireJti, false);
    assert.deepEqual(c.auth.admins.identities, ['spiffe://example.org/admin']);
    assert.equal(c.policies.length, 1);
    const [p] = c.policies;
    assert.equal(p!.identity, 'spiffe://example.org/ns/{ns}/sa/{sa}');
    assert.deepEqual(p!.dns, ['{sa}.{ns}.svc', '{sa}.{ns}.svc.cluster.local']);
    assert.deepEqual(p!.uri, ['{identity}']);
    assert.deepEqual(p!.ip, ['10.0.0.0/8']);
    assert.equal(p!.maxTtl, 86400);
    assert.deepEqual(p!.extendedKeyUsage, ['serverAuth', 'clientAuth']);
  });

  it('names CA files that load, once they are written where the example points', async () => {
    const file = writeConfig(CONTRACT_EXAMPLE);
    const dir = resolve(file, '..');
    await createAuthority({ dir: join(dir, 'ca'), keyType: 'p256', intermediatePassphrase: 'correct horse battery staple' });
    const c = loadConfigFile(file, { CA_KEY_PASSPHRASE: 'correct horse battery staple' });
    const loaded = loadAuthority(caIssuers(c.ca)[0]!, new Date());
    assert.equal(loaded.chainDer.length, 1, 'chain: the root');
    assert.equal(loaded.key.asymmetricKeyType, 'ec');
  });

  it('fills every default from a minimal file', () => {
    const c = parseConfig(minimal(), { baseDir: '/base', env: {} });
    assert.deepEqual(c.server, { host: '127.0.0.1', port: 8443, tls: { mode: 'auto', names: ['localhost', '127.0.0.1'], ttl: 86400 }, workers: 'auto', keepAliveTimeout: 65 });
    assert.deepEqual(c.public, { host: '127.0.0.1', port: 8080 });
    assert.equal(c.publicUrl, 'http://127.0.0.1:8080');
    assert.equal(c.database.url, undefined);
    assert.equal(c.dataDir, '/base/data');
    assert.deepEqual(c.issuance, { defaultTtl: 86400, maxTtl: 259200, backdate: 60 });
    assert.deepEqual(c.crl, { validity: 86400, refresh: 3600, maxDelay: 5 });
    assert.deepEqual(c.auth.issuers[0]!.algorithms, ['RS256', 'ES256', 'EdDSA']);
    assert.equal(c.auth.issuers[0]!.identity, '{sub}');
    assert.equal(c.auth.issuers[0]!.requireJti, false);
    assert.deepEqual(c.policies, []);
    assert.equal(c.limits.bodyBytes, 64 * 1024);
    assert.deepEqual(c.acme, {
      enabled: false, challengePorts: { http01: 80, tlsalpn01: 443 }, eabTtl: 86400, authorizationReuse: 86400, orderLifetime: 86400, challengeTimeout: 10,
      allowLoopback: false, validations: { perProcess: 100, perAccount: 10 }, pendingOrdersPerAccount: 300,
    });
  });

  it('takes the acme section of docs/api.md "Configuration contract", and a policy\'s acme.challenges', () => {
    const c = parseConfig(
      {
        ...minimal(),
        acme: {
          enabled: true, resolver: '127.0.0.1:5353', challengePorts: { http01: 5002, tlsalpn01: 5001 }, eabTtl: '1h', authorizationReuse: 0, orderLifetime: '2h', challengeTimeout: '5s',
          allowLoopback: true, validations: { perProcess: 20, perAccount: 2 }, pendingOrdersPerAccount: 50,
        },
        policies: [{ identity: 'x', dns: ['x.svc'], acme: { challenges: 'none' } }, { identity: 'y' }],
      },
      { baseDir: '/', env: {} },
    );
    assert.deepEqual(c.acme, {
      enabled: true, resolver: '127.0.0.1:5353', challengePorts: { http01: 5002, tlsalpn01: 5001 }, eabTtl: 3600, authorizationReuse: 0, orderLifetime: 7200, challengeTimeout: 5,
      allowLoopback: true, validations: { perProcess: 20, perAccount: 2 }, pendingOrdersPerAccount: 50,
    });
    assert.deepEqual(c.policies.map((p) => p.acme.challenges), ['none', 'required']);
    assert.equal(parseConfig({ ...minimal(), acme: { resolver: '[::1]:53' } }, { baseDir: '/', env: {} }).acme.resolver, '[::1]:53');
  });
});

describe('environment references', () => {
  it('expands ${VAR} anywhere in a string, in nested objects and lists', () => {
    const raw = { ...minimal(), publicUrl: 'https://${CA_HOST}:${CA_PORT}/', auth: { ...minimal().auth, admins: { identities: ['spiffe://${TRUST_DOMAIN}/admin'] } } };
    const c = parseConfig(raw, { baseDir: '/base', env: { CA_HOST: 'ca.example', CA_PORT: '9000', TRUST_DOMAIN: 'example.org' } });
    assert.equal(c.publicUrl, 'https://ca.example:9000');
    assert.deepEqual(c.auth.admins.identities, ['spiffe://example.org/admin']);
  });

  it('uses the default of ${VAR:-default} when the variable is unset or empty, else the value', () => {
    const raw = { ...minimal(), publicUrl: '${PUBLIC_URL:-http://ca.example:8080}', ca: { ...minimal().ca, keyPassphrase: '${PASS:-}' } };
    const unset = parseConfig(raw, { baseDir: '/base', env: {} });
    assert.equal(unset.publicUrl, 'http://ca.example:8080');
    assert.equal(unset.ca.keyPassphrase, '');
    assert.equal(parseConfig(raw, { baseDir: '/base', env: { PUBLIC_URL: '' } }).publicUrl, 'http://ca.example:8080');
    const set = parseConfig(raw, { baseDir: '/base', env: { PUBLIC_URL: 'https://ca.internal', PASS: 'pw' } });
    assert.equal(set.publicUrl, 'https://ca.internal');
    assert.equal(set.ca.keyPassphrase, 'pw');
  });

  it('refuses an unset variable, naming the variable and the key path', () => {
    const message = errorOf({ ...minimal(), ca: { ...minimal().ca, keyPassphrase: '${CA_KEY_PASSPHRASE}' } });
    assert.match(message, /^config: ca\.keyPassphrase: .*CA_KEY_PASSPHRASE/);
    const inList = errorOf({ ...minimal(), auth: { ...minimal().auth, admins: { identities: ['a', 'spiffe://${TRUST_DOMAIN}/admin'] } } });
    assert.match(inList, /^config: auth\.admins\.identities\.1: .*TRUST_DOMAIN/);
  });

  it('expands a whole-value reference into a number where the key takes a number', () => {
    // `port: ${API_PORT}` is the usual way to pass a port; the expanded text is a number.
    const file = writeConfig('ca: { certificate: /c.pem, key: /k.pem }\nserver:\n  port: ${API_PORT}\nauth: { issuers: [{ name: t, issuer: i, audience: a, jwks: { file: /j.json } }] }\n');
    assert.equal(loadConfigFile(file, { API_PORT: '9443' }).server.port, 9443);
  });

  it('fills database.url from DATABASE_URL when the file has none; the file wins otherwise', () => {
    const env = { DATABASE_URL: 'postgres://env-host/ca' };
    assert.equal(parseConfig(minimal(), { baseDir: '/base', env }).database.url, 'postgres://env-host/ca');
    assert.equal(parseConfig({ ...minimal(), database: {} }, { baseDir: '/base', env }).database.url, 'postgres://env-host/ca');
    assert.equal(parseConfig({ ...minimal(), database: { url: 'postgres://file-host/ca' } }, { baseDir: '/base', env }).database.url, 'postgres://file-host/ca');
    assert.equal(parseConfig(minimal(), { baseDir: '/base', env: {} }).database.url, undefined);
  });
});

describe('errors name the key path', () => {
  const cases: [string, unknown, RegExp][] = [
    ['a bad duration', { ...minimal(), issuance: { maxTtl: '5 hours' } }, /^config: issuance\.maxTtl: .*5 hours/m],
    ['a zero duration', { ...minimal(), crl: { validity: 0 } }, /^config: crl\.validity: /m],
    ['a port out of range', { ...minimal(), server: { port: 70000 } }, /^config: server\.port: /m],
    ['a bad tls mode', { ...minimal(), server: { tls: { mode: 'sometimes' } } }, /^config: server\.tls\.mode: /m],
    ['a missing CA key', { ...minimal(), ca: { certificate: '/c.pem' } }, /^config: ca\.key: /m],
    ['no issuers', { ...minimal(), auth: { issuers: [] } }, /^config: auth\.issuers: /m],
    ['algorithm "none"', { ...minimal(), auth: { issuers: [{ ...minimal().auth.issuers[0], algorithms: ['none'] }] } }, /^config: auth\.issuers\.0\.algorithms\.0: /m],
    ['a bad policy CIDR', { ...minimal(), policies: [{ identity: 'x', ip: ['10.0.0.0/33'] }] }, /^config: policies\.0\.ip\.0: .*10\.0\.0\.0\/33/m],
    ['an unknown placeholder', { ...minimal(), policies: [{ identity: 'spiffe://x/{ns}', dns: ['{sa}.svc'] }] }, /^config: policies\.0\.dns\.0: .*\{sa\}/m],
    ['a bad EKU', { ...minimal(), policies: [{ identity: 'x', extendedKeyUsage: ['codeSigning'] }] }, /^config: policies\.0\.extendedKeyUsage\.0: /m],
    ['a relative publicUrl', { ...minimal(), publicUrl: 'ca.example' }, /^config: publicUrl: /m],
    ['several workers on the embedded database', { ...minimal(), server: { workers: 2 } }, /^config: server\.workers: .*embedded database/m],
    ['zero workers', { ...minimal(), database: { url: 'postgres://h/db' }, server: { workers: 0 } }, /^config: server\.workers: /m],
    ['an ACME resolver without a port', { ...minimal(), acme: { resolver: '10.0.0.53' } }, /^config: acme\.resolver: must be host:port/m],
    ['an ACME challenge port of 0', { ...minimal(), acme: { challengePorts: { http01: 0 } } }, /^config: acme\.challengePorts\.http01: /m],
    ['a challenge timeout over 2 minutes', { ...minimal(), acme: { challengeTimeout: '5m' } }, /^config: acme\.challengeTimeout: /m],
    ['a policy\'s unknown acme.challenges', { ...minimal(), policies: [{ identity: 'x', acme: { challenges: 'sometimes' } }] }, /^config: policies\.0\.acme\.challenges: /m],
    ['a keep-alive timeout of zero', { ...minimal(), server: { keepAliveTimeout: 0 } }, /^config: server\.keepAliveTimeout: /m],
    ['a keep-alive timeout over an hour', { ...minimal(), server: { keepAliveTimeout: '2h' } }, /^config: server\.keepAliveTimeout: /m],
    ['two DNS captures joined by a hyphen', { ...minimal(), policies: [{ identity: 'spiffe://x/{ns}/{sa}', dns: ['{sa}-{ns}.svc'] }] }, /^config: policies\.0\.dns\.0: .*could be filled two ways: \{sa\} and \{ns\}/m],
    ['two URI path captures joined by a dot', { ...minimal(), policies: [{ identity: 'spiffe://x/{ns}/{sa}', uri: ['urn:svc:{ns}.{sa}'] }] }, /^config: policies\.0\.uri\.0: .*could be filled two ways/m],
    ['two email captures side by side', { ...minimal(), policies: [{ identity: 'spiffe://x/{ns}/{sa}', email: ['{sa}{ns}@mail.example.org'] }] }, /^config: policies\.0\.email\.0: .*could be filled two ways/m],
    ['ca.issuers beside ca.certificate', { ...minimal(), ca: { ...minimal().ca, issuers: [issuerEntry('a', true)] } }, /^config: ca\.issuers: is set together with ca\.certificate\/ca\.key: use one form$/m],
    ['neither form of ca', { ...minimal(), ca: {} }, /^config: ca\.certificate: is required \(or list ca\.issuers\)$/m],
    ['two issuers, none active', { ...minimal(), ca: { issuers: [issuerEntry('a'), issuerEntry('b')] } }, /^config: ca\.issuers: no issuer has active: true/m],
    ['two active issuers', { ...minimal(), ca: { issuers: [issuerEntry('a', true), issuerEntry('b', true)] } }, /^config: ca\.issuers\.1\.active: only one issuer may be active \(issuer 0 is too\)$/m],
    ['renewBy on the active issuer', { ...minimal(), ca: { issuers: [issuerEntry('a'), { ...issuerEntry('b', true), renewBy: '2027-01-01T00:00:00Z' }] } }, /^config: ca\.issuers\.1\.renewBy: is for an issuer that is not active/m],
    ['a renewBy that is no RFC 3339 time', { ...minimal(), ca: { issuers: [{ ...issuerEntry('a'), renewBy: 'next week' }, issuerEntry('b', true)] } }, /^config: ca\.issuers\.0\.renewBy: /m],
    ['a PKCS#11 key without ca.pkcs11', { ...minimal(), ca: { certificate: '/c.pem', key: 'pkcs11:token=ca;object=int' } }, /^config: ca\.key: is a PKCS#11 URI: set ca\.pkcs11 \(module and pin\)$/m],
    ['a PKCS#11 issuer key without ca.pkcs11', { ...minimal(), ca: { issuers: [{ ...issuerEntry('a', true), key: 'PKCS11:object=int' }] } }, /^config: ca\.issuers\.0\.key: is a PKCS#11 URI/m],
  ];
  for (const [name, raw, expected] of cases) {
    it(`for ${name}`, () => assert.match(errorOf(raw), expected));
  }

  it('accepts captures joined by a character neither may hold', () => {
    const policy = {
      identity: 'spiffe://example.org/ns/{ns}/sa/{sa}',
      dns: ['{sa}.{ns}.svc', '*.{sa}.{ns}.svc'],
      uri: ['urn:svc:{ns}:{sa}', 'spiffe://example.org/ns/{ns}/sa/{sa}', 'https://{sa}.{ns}.example.org/id/{identity}', '{identity}'],
      email: ['{sa}+{ns}@mail.example.org', '{sa}@{ns}.example.org'],
    };
    const c = parseConfig({ ...minimal(), policies: [policy] }, { baseDir: '/', env: {} });
    assert.equal(c.policies[0]!.uri.length, 4);
    assert.equal(compilePolicies(c.policies).length, 1);
  });

  it('reports every pattern problem at once, each with its key path (the policy compiler)', () => {
    const message = errorOf({ ...minimal(), policies: [{ identity: 'x' }, { identity: 'spiffe://x/{ns}/{ns}', dns: ['{sa}.svc'], ip: ['10.0.0.1/8/1'] }] });
    assert.deepEqual(message.split('\n').map((line) => line.split(': ')[1]), ['policies.1.identity', 'policies.1.dns.0', 'policies.1.ip.0']);
    assert.match(message, /^config: policies\.1\.identity: a capture name appears twice$/m);
  });

  it('refuses the issuer name "renewal", which names the holder renewals in token ids, audit rows and metrics', () => {
    const other = { ...minimal().auth.issuers[0], issuer: 'https://other.test' };
    assert.match(errorOf({ ...minimal(), auth: { issuers: [minimal().auth.issuers[0], { ...other, name: 'renewal' }] } }), /^config: auth\.issuers\.1\.name: "renewal" is reserved/m);
    assert.match(errorOf({ ...minimal(), auth: { issuers: [{ ...other, name: 'Renewal' }] } }), /^config: auth\.issuers\.0\.name: "Renewal" is reserved/m);
    assert.ok(RESERVED_ISSUER_NAMES.includes(RENEWAL_ISSUER), 'the reserved names include the one holder renewals use');
    assert.equal(parseConfig({ ...minimal(), auth: { issuers: [{ ...other, name: 'renewals' }] } }, { baseDir: '/', env: {} }).auth.issuers[0]!.name, 'renewals');
  });

  it('takes admins bound to an issuer and policies limited to issuers, naming an issuer that is not configured', () => {
    const issuers = [minimal().auth.issuers[0], { ...minimal().auth.issuers[0], name: 'k8s', issuer: 'https://k8s.test' }];
    const ok = parseConfig({
      ...minimal(),
      auth: { issuers, admins: { identities: ['spiffe://x/admin', { issuer: 'k8s', identity: 'spiffe://x/ops' }] } },
      policies: [{ identity: 'spiffe://x/{sa}', issuers: ['k8s', 't'] }],
    }, { baseDir: '/', env: {} });
    assert.deepEqual(ok.auth.admins.identities, ['spiffe://x/admin', { issuer: 'k8s', identity: 'spiffe://x/ops' }]);
    assert.deepEqual(ok.policies[0]!.issuers, ['k8s', 't']);
    assert.equal(parseConfig(minimal(), { baseDir: '/', env: {} }).policies.length, 0);

    const admin = errorOf({ ...minimal(), auth: { issuers, admins: { identities: ['a', { issuer: 'oidc', identity: 'spiffe://x/admin' }] } } });
    assert.match(admin, /^config: auth\.admins\.identities\.1\.issuer: "oidc" is not the name of an issuer in auth\.issuers \(t, k8s\)$/m);
    const policy = errorOf({ ...minimal(), auth: { issuers }, policies: [{ identity: 'x', issuers: ['k8s', 'renewal'] }] });
    assert.match(policy, /^config: policies\.0\.issuers\.1: "renewal" is not the name of an issuer/m);
    assert.match(errorOf({ ...minimal(), policies: [{ identity: 'x', issuers: [] }] }), /^config: policies\.0\.issuers: /m);
    assert.match(errorOf({ ...minimal(), auth: { ...minimal().auth, admins: { identities: [{ identity: 'x' }] } } }), /^config: auth\.admins\.identities\.0/m);
  });

  it('takes auth.issuers[].jwksStaleTtl as a duration, 24h by default, 0 for never', () => {
    const issuer = minimal().auth.issuers[0];
    assert.equal(parseConfig(minimal(), { baseDir: '/', env: {} }).auth.issuers[0]!.jwksStaleTtl, 86400);
    assert.equal(parseConfig({ ...minimal(), auth: { issuers: [{ ...issuer, jwksStaleTtl: '2h' }] } }, { baseDir: '/', env: {} }).auth.issuers[0]!.jwksStaleTtl, 7200);
    assert.equal(parseConfig({ ...minimal(), auth: { issuers: [{ ...issuer, jwksStaleTtl: 0 }] } }, { baseDir: '/', env: {} }).auth.issuers[0]!.jwksStaleTtl, 0);
    assert.match(errorOf({ ...minimal(), auth: { issuers: [{ ...issuer, jwksStaleTtl: 'a day' }] } }), /^config: auth\.issuers\.0\.jwksStaleTtl: /m);
  });

  it('refuses an HMAC algorithm on an issuer without a shared secret', () => {
    const issuer = { name: 'h', issuer: 'https://h', audience: 'a', jwks: { file: '/j.json' }, algorithms: ['HS256'] };
    assert.match(errorOf({ ...minimal(), auth: { issuers: [issuer] } }), /^config: auth\.issuers\.0\.algorithms: .*HS256.*secret/m);
    const mixed = { ...issuer, algorithms: ['ES256', 'HS384'] };
    assert.match(errorOf({ ...minimal(), auth: { issuers: [minimal().auth.issuers[0], mixed] } }), /^config: auth\.issuers\.1\.algorithms: .*HS384/m);
    // With a secret (and no jwks) the same algorithm is accepted.
    const ok = parseConfig({ ...minimal(), auth: { issuers: [{ name: 'h', issuer: 'https://h', audience: 'a', secret: 's'.repeat(32), algorithms: ['HS256'] }] } }, { baseDir: '/', env: {} });
    assert.deepEqual(ok.auth.issuers[0]!.algorithms, ['HS256']);
  });

  it('refuses a shared secret beside a public-key algorithm, one under 32 characters, and one beside jwks; never echoes the secret', () => {
    const secret = 'correct horse battery staple 0123456789';
    const hmac = { name: 'h', issuer: 'https://h', audience: 'a', secret, algorithms: ['HS256'] };
    // An HMAC issuer that also allowed ES256 would accept a token "signed" with the secret as either.
    const mixed = errorOf({ ...minimal(), auth: { issuers: [{ ...hmac, algorithms: ['HS256', 'ES256'] }] } });
    assert.match(mixed, /^config: auth\.issuers\.0\.algorithms: an issuer with a shared secret allows HMAC algorithms only/m);
    const short = errorOf({ ...minimal(), auth: { issuers: [{ ...hmac, secret: 's'.repeat(31) }] } });
    assert.match(short, /^config: auth\.issuers\.0\.secret: an HMAC secret must be at least 32 characters/m);
    assert.ok(!short.includes('s'.repeat(31)), short);
    const both = errorOf({ ...minimal(), auth: { issuers: [{ ...hmac, jwks: { file: '/j.json' } }] } });
    assert.match(both, /^config: auth\.issuers\.0\.jwks: an issuer has either jwks or a shared secret, not both/m);
    for (const message of [mixed, short, both]) assert.ok(!message.includes(secret), 'the secret is not in the error');
    // Exactly 32 characters is enough.
    assert.equal(parseConfig({ ...minimal(), auth: { issuers: [{ ...hmac, secret: 's'.repeat(32) }] } }, { baseDir: '/', env: {} }).auth.issuers[0]!.secret, 's'.repeat(32));
  });

  it('takes server.workers as auto or a count, also from an environment variable', () => {
    const withDb = { ...minimal(), database: { url: 'postgres://h/db' } };
    assert.equal(parseConfig(withDb, { baseDir: '/', env: {} }).server.workers, 'auto');
    assert.equal(parseConfig({ ...withDb, server: { workers: '${WORKERS}' } }, { baseDir: '/', env: { WORKERS: '3' } }).server.workers, 3);
    assert.equal(parseConfig({ ...minimal(), server: { workers: 1 } }, { baseDir: '/', env: {} }).server.workers, 1);
    // A database URL from DATABASE_URL alone counts as Postgres for the workers rule.
    assert.equal(parseConfig({ ...minimal(), server: { workers: 2 } }, { baseDir: '/', env: { DATABASE_URL: 'postgres://env/db' } }).server.workers, 2);
  });

  it('takes server.keepAliveTimeout as a duration', () => {
    assert.equal(parseConfig({ ...minimal(), server: { keepAliveTimeout: '2m' } }, { baseDir: '/', env: {} }).server.keepAliveTimeout, 120);
  });

  it('refuses a defaultTtl longer than maxTtl, also when defaultTtl is the default', () => {
    assert.match(errorOf({ ...minimal(), issuance: { defaultTtl: '48h', maxTtl: '24h' } }), /^config: issuance\.defaultTtl: .*maxTtl/m);
    assert.match(errorOf({ ...minimal(), issuance: { maxTtl: '1h' } }), /^config: issuance\.defaultTtl: .*maxTtl/m);
    assert.equal(parseConfig({ ...minimal(), issuance: { defaultTtl: '1h', maxTtl: '1h' } }, { baseDir: '/', env: {} }).issuance.maxTtl, 3600);
  });

  it('refuses unknown keys at every level, naming them', () => {
    const top = errorOf({ ...minimal(), polices: [] });
    assert.match(top, /^config: /);
    assert.match(top, /polices/);
    assert.match(errorOf({ ...minimal(), server: { hots: '0.0.0.0' } }), /^config: server: .*hots/m);
    assert.match(errorOf({ ...minimal(), issuance: { maxTTL: '1h' } }), /^config: issuance: .*maxTTL/m);
    assert.match(errorOf({ ...minimal(), policies: [{ identity: 'x', dsn: ['a.svc'] }] }), /^config: policies\.0: .*dsn/m);
    assert.match(errorOf({ ...minimal(), auth: { issuers: [{ ...minimal().auth.issuers[0], audiance: 'x' }] } }), /^config: auth\.issuers\.0: .*audiance/m);
  });

  it('reports a missing file and a file that is not YAML', () => {
    assert.throws(() => loadConfigFile('/nonexistent/service-ca.yaml', {}), (err: unknown) => err instanceof ConfigError && /\/nonexistent\/service-ca\.yaml/.test(err.message));
    const bad = writeConfig('server: [unclosed\n');
    assert.throws(() => loadConfigFile(bad, {}), (err: unknown) => err instanceof ConfigError && err.message.includes(bad) && /YAML/.test(err.message));
  });
});

describe('ca.issuers', () => {
  it('reads the one-issuer form as one active issuer, and a list in its order with the one marked active', () => {
    assert.deepEqual(caIssuers(parseConfig(minimal(), { baseDir: '/base', env: {} }).ca), [
      { certificate: '/ca/int.pem', key: '/ca/int.key', keyPassphrase: undefined, chain: undefined, active: true, where: 'ca' },
    ]);
    const raw = { ...minimal(), ca: { issuers: [{ ...issuerEntry('old'), key: 'rel/old.key', renewBy: '2027-03-01T12:00:00+01:00' }, { ...issuerEntry('new', true), key: 'pkcs11:token=ca;object=new' }], pkcs11: { module: 'lib/p11.so', pin: '${PIN}' } } };
    const c = parseConfig(raw, { baseDir: '/base', env: { PIN: '1234' } });
    assert.deepEqual(caIssuers(c.ca), [
      { certificate: '/ca/old.pem', key: '/base/rel/old.key', keyPassphrase: undefined, chain: undefined, active: false, renewBy: new Date('2027-03-01T11:00:00Z'), where: 'ca.issuers.0' },
      // A PKCS#11 URI is not a path: it is kept as written.
      { certificate: '/ca/new.pem', key: 'pkcs11:token=ca;object=new', keyPassphrase: undefined, chain: undefined, active: true, renewBy: undefined, where: 'ca.issuers.1' },
    ]);
    assert.deepEqual(c.ca.pkcs11, { module: '/base/lib/p11.so', pin: '1234' });
  });

  it('takes a list of one issuer as active without saying so', () => {
    assert.equal(caIssuers(parseConfig({ ...minimal(), ca: { issuers: [issuerEntry('only')] } }, { baseDir: '/base', env: {} }).ca)[0]!.active, true);
  });
});

describe('the module', () => {
  it('config.ts imports only zod, yaml, node built-ins, its duration parser and types: no policy module', () => {
    const source = readFileSync(join(ROOT, 'src/config.ts'), 'utf8');
    const imports = [...source.matchAll(/^import\s+(type\s+)?[^'"]*?from\s+'([^']+)';/gm)].map((m) => ({ type: m[1] !== undefined, from: m[2]! }));
    assert.ok(imports.length > 0, 'found the imports');
    const values = imports.filter((i) => !i.type).map((i) => i.from);
    assert.deepEqual(values.filter((f) => !(f.startsWith('node:') || f === 'zod' || f === 'yaml' || f === './duration.js')), []);
  });
});

describe('relative paths', () => {
  it('resolve against the configuration file\'s folder, not the working directory', () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'etc'));
    const file = join(dir, 'etc', 'ca.yaml');
    writeFileSync(file, [
      'server: { tls: { mode: files, certificate: tls/server.pem, key: ./tls/server.key } }',
      'dataDir: ../var/data',
      'ca: { certificate: ./ca/int.pem, key: /abs/int.key, chain: ca/root.pem }',
      'auth:',
      '  issuers:',
      '    - { name: a, issuer: https://a, audience: x, jwks: { file: ./jwks.json } }',
      '    - { name: b, issuer: https://b, audience: x, jwks: { url: "https://b/jwks" } }',
      '',
    ].join('\n'));
    // Given as a path relative to the working directory, which is not the file's folder.
    const c = loadConfigFile(relative(process.cwd(), file), {});
    const etc = join(dir, 'etc');
    assert.deepEqual(c.server.tls, { mode: 'files', certificate: join(etc, 'tls/server.pem'), key: join(etc, 'tls/server.key') });
    assert.equal(c.dataDir, join(dir, 'var', 'data'));
    assert.equal(c.ca.certificate, join(etc, 'ca/int.pem'));
    assert.equal(c.ca.key, '/abs/int.key');
    assert.equal(c.ca.chain, join(etc, 'ca/root.pem'));
    assert.deepEqual(c.auth.issuers[0]!.jwks, { file: join(etc, 'jwks.json') });
    assert.deepEqual(c.auth.issuers[1]!.jwks, { url: 'https://b/jwks' });
  });
});

describe('the command line', () => {
  /** `npx tsx src/cli/index.ts serve ...` in the repository, with a clean environment. */
  function serve(args: string[], env: Record<string, string> = {}) {
    const { DATABASE_URL: _d, SERVICE_CA_CONFIG: _s, CA_KEY_PASSPHRASE: _p, ...rest } = process.env;
    const r = spawnSync('npx', ['tsx', 'src/cli/index.ts', 'serve', ...args], {
      cwd: ROOT,
      env: { ...rest, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
    return { status: r.status, signal: r.signal, output: `${r.stdout}${r.stderr}` };
  }
  const badFile = () =>
    writeConfig([
      'server: { port: 0, tls: { mode: off } }',
      'public: { port: 0 }',
      'ca: { certificate: ./ca.pem, key: ./ca.key }',
      'issuance: { maxTtl: 5 hours }',
      'auth: { issuers: [{ name: t, issuer: i, audience: a, jwks: { file: ./j.json } }] }',
      '',
    ].join('\n'));

  it('`serve --config BAD.yaml` exits 1 and prints the key path', () => {
    const r = serve(['--config', badFile()]);
    assert.equal(r.signal, null, `did not stop by itself: ${r.output}`);
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /config: issuance\.maxTtl: /);
  });

  it('reads the file from SERVICE_CA_CONFIG as well', () => {
    const r = serve([], { SERVICE_CA_CONFIG: badFile() });
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /config: issuance\.maxTtl: /);
  });

  it('exits 1 naming an unset environment variable\'s key', () => {
    const file = writeConfig(CONTRACT_EXAMPLE);
    const r = serve(['--config', file]);
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /config: ca\.keyPassphrase: .*CA_KEY_PASSPHRASE/);
  });

  it('exits 1 naming a policy pattern\'s key path (checked by the policy compiler at start-up)', () => {
    const file = writeConfig([
      'server: { port: 0, tls: { mode: off } }',
      'public: { port: 0 }',
      'dataDir: ./data',
      'ca: { certificate: ./missing.pem, key: ./missing.key }',
      'auth: { issuers: [{ name: t, issuer: i, audience: a, jwks: { keys: [{ kty: EC }] } }] }',
      'policies: [{ identity: "spiffe://x/{ns}/{sa}", dns: ["{sa}.svc", "{sa}-{ns}.svc"] }]',
      '',
    ].join('\n'));
    const r = serve(['--config', file]);
    assert.equal(r.signal, null, `did not stop by itself: ${r.output}`);
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /config: policies\.0\.dns\.1: .*could be filled two ways/);
  });

  it('exits 1 naming ca.certificate when the CA files are missing', () => {
    const file = writeConfig([
      'server: { port: 0, tls: { mode: off } }',
      'public: { port: 0 }',
      'dataDir: ./data',
      'ca: { certificate: ./missing.pem, key: ./missing.key }',
      'auth: { issuers: [{ name: t, issuer: i, audience: a, jwks: { keys: [{ kty: EC }] } }] }',
      '',
    ].join('\n'));
    const r = serve(['--config', file]);
    assert.equal(r.signal, null, `did not stop by itself: ${r.output}`);
    assert.equal(r.status, 1, r.output);
    assert.match(r.output, /ca\.certificate/);
  });
});
