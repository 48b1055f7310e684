/**
 * A small ACME client (RFC 8555) for the API and fuzz tests: it signs every request as a
 * flattened JWS with jose, keeps the nonces the server hands out (Replay-Nonce), creates
 * accounts with external account binding (§7.3.4), orders, answers challenges, finalizes with a
 * CSR, downloads, revokes and changes keys. Its low-level `post` lets a test forge what a
 * client should not send: another `url`, a used nonce, a `jwk` next to a `kid`, another key.
 * `rawJws` builds a JWS by hand for what jose refuses to sign (alg none, HS256 with a chosen
 * secret). Also here: http-01 and tls-alpn-01 responders that record what reached them, the
 * certID of ARI (RFC 9773 §4.1), POST /v1/acme/eab, the ACME problem assertion, and a fixture
 * (an app with ACME on, a DNS server it resolves challenge names with, the responders).
 */
import assert from 'node:assert/strict';
import { createHash, createHmac, createPrivateKey, createPublicKey, sign as nodeSign, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type SecureContext, type Server as TlsServer } from 'node:tls';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PGlite } from '@electric-sql/pglite';
import { calculateJwkThumbprint, exportJWK, FlattenedSign, generateKeyPair, importPKCS8, type CryptoKey, type FlattenedJWS, type JWK } from 'jose';
import type { AcmeUrls } from '../../src/policy/acme/resources.js';
import { x509 } from '../../src/x509/library.js';
import { startTestApp, type TestApp, type TestAppOptions } from './app.js';
import { createKeyAndCsr, type Names } from './csr.js';
import { withPg, type TestDatabase } from './database.js';
import { startDnsServer, type DnsServer } from './dns-server.js';

export const ACME_ERROR = 'urn:ietf:params:acme:error:';

export type AcmeAlg = 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'PS256' | 'EdDSA';

/** An account (or certificate) key: what signs, the public JWK and its RFC 7638 thumbprint. */
export interface AcmeKey {
  alg: AcmeAlg;
  privateKey: CryptoKey | KeyObject;
  jwk: JWK;
  thumbprint: string;
}

async function keyOf(alg: AcmeAlg, privateKey: CryptoKey | KeyObject, publicJwk: JWK): Promise<AcmeKey> {
  const jwk: JWK = publicJwk.kty === 'EC' ? { kty: 'EC', crv: publicJwk.crv!, x: publicJwk.x!, y: publicJwk.y! } : publicJwk.kty === 'RSA' ? { kty: 'RSA', n: publicJwk.n!, e: publicJwk.e! } : { kty: 'OKP', crv: publicJwk.crv!, x: publicJwk.x! };
  return { alg, privateKey, jwk, thumbprint: await calculateJwkThumbprint(jwk, 'sha256') };
}

export async function newAcmeKey(alg: AcmeAlg = 'ES256', options: { modulusLength?: number } = {}): Promise<AcmeKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' || alg === 'PS256' ? { modulusLength: options.modulusLength ?? 2048 } : {}), ...(alg === 'EdDSA' ? { crv: 'Ed25519' } : {}) });
  return keyOf(alg, privateKey, await exportJWK(publicKey));
}

/** A key from PKCS#8 PEM (a certificate's key, as test/setup/csr.ts makes them). */
export async function acmeKeyFromPem(pem: string): Promise<AcmeKey> {
  const key = createPrivateKey(pem);
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const alg: AcmeAlg = type === 'ed25519' ? 'EdDSA' : type === 'rsa' ? 'RS256' : curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : 'ES256';
  return keyOf(alg, await importPKCS8(pem, alg, { extractable: true }), createPublicKey(pem).export({ format: 'jwk' }) as JWK);
}

export const keyAuthorization = (token: string, key: AcmeKey) => `${token}.${key.thumbprint}`;
export const b64u = (data: string | Uint8Array) => Buffer.from(data).toString('base64url');

/** External account binding as POST /v1/acme/eab gives it. */
export interface Eab {
  kid: string;
  /** base64url, no padding. */
  hmacKey: string;
}

/** POST /v1/acme/eab with a bearer token (and an optional body: {identity, issuer}). */
export function requestEab(api: string, token: string, body?: unknown, f: Fetch = (url, init) => fetch(url, init)): Promise<Response> {
  const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return f(`${api}/v1/acme/eab`, { method: 'POST', headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}) });
}

/** The inner JWS of an external account binding (§7.3.4): HS256 over the account's public JWK. */
export async function eabJws(eab: Eab, accountJwk: JWK, url: string, options: { alg?: string; hmacKey?: Buffer; header?: Record<string, unknown> } = {}): Promise<FlattenedJWS> {
  const key = options.hmacKey ?? Buffer.from(eab.hmacKey, 'base64url');
  return new FlattenedSign(Buffer.from(JSON.stringify(accountJwk)))
    .setProtectedHeader({ alg: options.alg ?? 'HS256', kid: eab.kid, url, ...options.header })
    .sign(key);
}

/** How `rawJws` signs: a real key, nothing (alg none), HMAC-SHA-256 with a chosen secret, or junk. */
export type RawSigner = { key: KeyObject } | { none: true } | { hmac: string | Buffer } | { garbage: true };

/**
 * A flattened JWS built by hand: header and payload are JSON-encoded unless they are strings
 * (taken as the exact text to encode). ES256/ES384 signatures are raw r||s.
 */
export function rawJws(header: unknown, payload: unknown, signer: RawSigner): FlattenedJWS {
  const prot = b64u(typeof header === 'string' ? header : JSON.stringify(header));
  const body = b64u(typeof payload === 'string' ? payload : JSON.stringify(payload));
  const input = `${prot}.${body}`;
  let signature: string;
  if ('none' in signer) signature = '';
  else if ('garbage' in signer) signature = b64u('not a signature');
  else if ('hmac' in signer) signature = createHmac('sha256', signer.hmac).update(input).digest('base64url');
  else {
    const key = signer.key;
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const hash = key.asymmetricKeyType === 'ed25519' ? null : curve === 'secp384r1' ? 'sha384' : curve === 'secp521r1' ? 'sha512' : 'sha256';
    signature = nodeSign(hash, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url');
  }
  return { protected: prot, payload: body, signature };
}

/** An answer as the tests read it. */
export interface AcmeAnswer {
  status: number;
  headers: Headers;
  text: string;
  /** The body as JSON, when it is JSON. */
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  location: string | null;
  nonce: string | null;
}

/** The directory's resource URLs (named as the CA's own AcmeUrls) and its meta. */
export type Directory = Pick<AcmeUrls, 'newNonce' | 'newAccount' | 'newOrder' | 'revokeCert' | 'keyChange' | 'renewalInfo'> & {
  meta: { externalAccountRequired?: boolean } & Record<string, unknown>;
};

export interface SignOptions {
  key: AcmeKey;
  /** The account URL: signed with `kid`. Absent: with the key's `jwk`. */
  kid?: string;
  /** Forces a `jwk` member (true: the key's own; an object: that one), also next to a `kid`. */
  jwk?: JWK | boolean;
  /** This nonce instead of a fresh one (a used one, a forged one); null leaves it out. */
  nonce?: string | null;
  /** The JWS `url` instead of the request's URL. */
  url?: string;
  /** Protected-header members set over the computed ones (undefined removes one). */
  header?: Record<string, unknown>;
  contentType?: string;
}

export interface AcmeAccount {
  key: AcmeKey;
  /** The account URL (the `kid`). */
  url: string;
  id: string;
}

/** Payload '' (or undefined) is POST-as-GET; another string is sent as that text; anything else as JSON. */
const payloadBytes = (payload: unknown) => Buffer.from(payload === undefined || payload === '' ? '' : typeof payload === 'string' ? payload : JSON.stringify(payload));

export type Fetch = (url: string, init?: RequestInit) => Promise<Response>;

/**
 * fetch over node:https trusting only `ca` (PEM): for an API listener with TLS, whose
 * certificate the global fetch does not trust. Bodies are strings or buffers.
 */
export function fetchTrusting(ca: string): Fetch {
  return (url, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((v, k) => {
        headers[k] = v;
      });
      const req = httpsRequest(url, { method: init.method ?? 'GET', headers, ca }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const h = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
          const body = Buffer.concat(chunks);
          const status = res.statusCode ?? 0;
          resolve(new Response([101, 204, 205, 304].includes(status) || init.method === 'HEAD' ? null : body, { status, headers: h }));
        });
      });
      req.on('error', reject);
      const body = init.body;
      if (typeof body === 'string' || body instanceof Uint8Array) req.end(body);
      else req.end();
    });
}

export class AcmeClient {
  readonly nonces: string[] = [];
  /** Every answer's status, in order (the fuzz tests count them). */
  readonly statuses: number[] = [];

  private constructor(
    readonly directoryUrl: string,
    readonly directory: Directory,
    readonly fetch: Fetch,
  ) {}

  static async open(directoryUrl: string, options: { fetch?: Fetch } = {}): Promise<AcmeClient> {
    const f = options.fetch ?? ((url: string, init?: RequestInit) => fetch(url, init));
    const res = await f(directoryUrl);
    if (res.status !== 200) throw new Error(`GET ${directoryUrl}: ${res.status} ${await res.text()}`);
    return new AcmeClient(directoryUrl, (await res.json()) as Directory, f);
  }

  /** A fresh nonce: one kept from an earlier answer, or HEAD newNonce. */
  async nonce(): Promise<string> {
    const kept = this.nonces.shift();
    if (kept) return kept;
    const res = await this.fetch(this.directory.newNonce, { method: 'HEAD' });
    const nonce = res.headers.get('replay-nonce');
    if (!nonce) throw new Error(`HEAD ${this.directory.newNonce}: ${res.status} without Replay-Nonce`);
    return nonce;
  }

  /** The flattened JWS of a request: jose signs it with options.key. */
  async sign(url: string, payload: unknown, options: SignOptions): Promise<FlattenedJWS> {
    const header: Record<string, unknown> = { alg: options.key.alg, url: options.url ?? url };
    const nonce = options.nonce === undefined ? await this.nonce() : options.nonce;
    if (nonce !== null) header.nonce = nonce;
    if (options.kid !== undefined) header.kid = options.kid;
    if (options.kid === undefined || options.jwk) header.jwk = typeof options.jwk === 'object' ? options.jwk : options.key.jwk;
    for (const [k, v] of Object.entries(options.header ?? {})) {
      if (v === undefined) delete header[k];
      else header[k] = v;
    }
    return new FlattenedSign(payloadBytes(payload)).setProtectedHeader(header as { alg: string }).sign(options.key.privateKey);
  }

  /** Sends a body as it is (an object JSON-encoded), as application/jose+json unless told. */
  async send(url: string, body: unknown, contentType = 'application/jose+json'): Promise<AcmeAnswer> {
    const headers: Record<string, string> = {};
    if (contentType) headers['Content-Type'] = contentType;
    const res = await this.fetch(url, { method: 'POST', headers, body: typeof body === 'string' ? body : body instanceof Uint8Array ? Buffer.from(body) : JSON.stringify(body) } as RequestInit);
    return this.read(res);
  }

  /** Reads an answer, keeping its nonce. */
  async read(res: Response): Promise<AcmeAnswer> {
    const text = await res.text();
    const nonce = res.headers.get('replay-nonce');
    if (nonce) this.nonces.push(nonce);
    this.statuses.push(res.status);
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    return { status: res.status, headers: res.headers, text, body, location: res.headers.get('location'), nonce };
  }

  /** A signed POST: the low-level call every other one makes. */
  async post(url: string, payload: unknown, options: SignOptions): Promise<AcmeAnswer> {
    return this.send(url, await this.sign(url, payload, options), options.contentType);
  }

  /** POST-as-GET (§6.3) as an account. */
  postAsGet(account: AcmeAccount, url: string): Promise<AcmeAnswer> {
    return this.post(url, '', { key: account.key, kid: account.url });
  }

  /** newAccount; with `eab`, the binding is signed over `key` (or options.eabJwk). */
  async newAccount(
    key: AcmeKey,
    options: { eab?: Eab; onlyReturnExisting?: boolean; contact?: string[]; eabJwk?: JWK; eabUrl?: string; eabHmacKey?: Buffer; payload?: Record<string, unknown> } = {},
  ): Promise<AcmeAnswer> {
    const payload: Record<string, unknown> = { termsOfServiceAgreed: true, ...options.payload };
    if (options.contact) payload.contact = options.contact;
    if (options.onlyReturnExisting) payload.onlyReturnExisting = true;
    if (options.eab) {
      payload.externalAccountBinding = await eabJws(options.eab, options.eabJwk ?? key.jwk, options.eabUrl ?? this.directory.newAccount, options.eabHmacKey ? { hmacKey: options.eabHmacKey } : {});
    }
    return this.post(this.directory.newAccount, payload, { key });
  }

  /** A new account bound by eab (201 expected), with a fresh key unless one is given. */
  async createAccount(eab: Eab, key?: AcmeKey): Promise<AcmeAccount> {
    const k = key ?? (await newAcmeKey());
    const res = await this.newAccount(k, { eab });
    if (res.status !== 201 || !res.location) throw new Error(`newAccount: ${res.status} ${res.text}`);
    return { key: k, url: res.location, id: res.location.slice(res.location.lastIndexOf('/') + 1) };
  }

  newOrder(account: AcmeAccount, identifiers: (string | { type: string; value: string })[], extra: Record<string, unknown> = {}): Promise<AcmeAnswer> {
    const ids = identifiers.map((i) => (typeof i === 'string' ? { type: /^[0-9.]+$|:/.test(i) ? 'ip' : 'dns', value: i } : i));
    return this.post(this.directory.newOrder, { identifiers: ids, ...extra }, { key: account.key, kid: account.url });
  }

  /** Answers a challenge: POST {} (§7.5.1). */
  respond(account: AcmeAccount, challengeUrl: string): Promise<AcmeAnswer> {
    return this.post(challengeUrl, {}, { key: account.key, kid: account.url });
  }

  /** POST-as-GET url until its status is one of `until` (or timeoutMs passes: then the last answer). */
  async poll(account: AcmeAccount, url: string, until: string[], timeoutMs = 20_000): Promise<AcmeAnswer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await this.postAsGet(account, url);
      if (res.status !== 200 || until.includes(res.body?.status) || Date.now() > deadline) return res;
      await sleep(100);
    }
  }

  finalize(account: AcmeAccount, finalizeUrl: string, csrPem: string): Promise<AcmeAnswer> {
    return this.post(finalizeUrl, { csr: csrDer(csrPem).toString('base64url') }, { key: account.key, kid: account.url });
  }

  /** revokeCert, signed by an account (kid) or by a key (jwk: the certificate's own). */
  revoke(certificate: string | Uint8Array, signer: AcmeAccount | AcmeKey, reason?: number): Promise<AcmeAnswer> {
    const der = typeof certificate === 'string' ? new X509Certificate(certificate).raw : Buffer.from(certificate);
    const payload = { certificate: der.toString('base64url'), ...(reason === undefined ? {} : { reason }) };
    const options: SignOptions = 'url' in signer ? { key: signer.key, kid: signer.url } : { key: signer };
    return this.post(this.directory.revokeCert, payload, options);
  }

  /** keyChange (§7.3.5): the inner JWS is signed by newKey over {account, oldKey}. */
  async keyChange(account: AcmeAccount, newKey: AcmeKey, options: { inner?: Partial<{ account: unknown; oldKey: unknown }>; innerUrl?: string; innerHeader?: Record<string, unknown>; innerPayload?: string } = {}): Promise<AcmeAnswer> {
    const url = this.directory.keyChange;
    const innerPayload = options.innerPayload ?? JSON.stringify({ account: account.url, oldKey: account.key.jwk, ...options.inner });
    const inner = await new FlattenedSign(Buffer.from(innerPayload))
      .setProtectedHeader({ alg: newKey.alg, jwk: newKey.jwk, url: options.innerUrl ?? url, ...options.innerHeader })
      .sign(newKey.privateKey);
    return this.post(url, inner, { key: account.key, kid: account.url });
  }

  deactivate(account: AcmeAccount): Promise<AcmeAnswer> {
    return this.post(account.url, { status: 'deactivated' }, { key: account.key, kid: account.url });
  }
}

/** The DER of a PEM CSR (or certificate, with label). */
export function csrDer(pem: string, label = 'CERTIFICATE REQUEST'): Buffer {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  if (!m) throw new Error(`no ${label} in ${pem.slice(0, 60)}`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

/** The PEM certificates of a chain, in order. */
export const pemBlocks = (text: string): string[] => text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g) ?? [];

/** ARI's certID (RFC 9773 §4.1): base64url(authority key identifier) "." base64url(serial octets). */
export function certIdOf(certPem: string): string {
  const cert = new x509.X509Certificate(certPem);
  const aki = cert.getExtension(x509.AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) throw new Error('the certificate has no authority key identifier');
  return `${Buffer.from(aki.keyId, 'hex').toString('base64url')}.${Buffer.from(cert.serialNumber, 'hex').toString('base64url')}`;
}

/**
 * An http-01 responder on 127.0.0.1 (ephemeral port): GET /.well-known/acme-challenge/<token>
 * answers what `set` gave for that token (404 otherwise). It counts every connection and keeps
 * every request path, so a test can show the CA never came.
 */
export interface ChallengeServer {
  port: number;
  set(token: string, body: string, status?: number): void;
  /** Answers with a redirect to location for this token. */
  redirect(token: string, location: string): void;
  requests: string[];
  connections: number;
  stop(): Promise<void>;
}

export async function startChallengeServer(): Promise<ChallengeServer> {
  const answers = new Map<string, { status: number; body: string; location?: string }>();
  const sockets = new Set<Socket>();
  const state = { requests: [] as string[], connections: 0 };
  const server: Server = createServer((req, res) => {
    state.requests.push(req.url ?? '');
    const token = /^\/\.well-known\/acme-challenge\/([^/?]+)$/.exec(req.url ?? '')?.[1];
    const answer = token ? answers.get(token) : undefined;
    if (!answer) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('no such token');
      return;
    }
    res.writeHead(answer.status, { 'Content-Type': 'application/octet-stream', ...(answer.location ? { Location: answer.location } : {}) }).end(answer.body);
  });
  server.on('connection', (s) => {
    state.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    set: (token, body, status = 200) => answers.set(token, { status, body }),
    redirect: (token, location) => answers.set(token, { status: 302, body: '', location }),
    get requests() {
      return state.requests;
    },
    get connections() {
      return state.connections;
    },
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---- assertions and fixtures of the ACME tests ----

export interface AcmeProblem {
  type: string;
  detail: string;
  status: number;
}

/**
 * Asserts that an answer is the ACME problem document (RFC 8555 §6.7) of `type` with `status`:
 * application/problem+json, type urn:ietf:params:acme:error:<type>, a detail, and the headers
 * every ACME answer carries (a fresh Replay-Nonce, Cache-Control: no-store, the index Link).
 */
export function assertAcmeProblem(a: AcmeAnswer, status: number, type: string, what = ''): AcmeProblem {
  const where = `${what ? `${what}: ` : ''}expected ${status} ${type}, got ${a.status}: ${a.text}`;
  assert.equal(a.status, status, where);
  assert.equal(a.headers.get('content-type')?.split(';')[0]?.trim(), 'application/problem+json', where);
  const body = a.body as AcmeProblem;
  assert.equal(body?.type, `${ACME_ERROR}${type}`, where);
  assert.equal(body.status, status, where);
  assert.ok(typeof body.detail === 'string' && body.detail.length > 0, `${where}: a detail`);
  assert.match(a.headers.get('replay-nonce') ?? '', /^[A-Za-z0-9_-]{43}$/, `${where}: a fresh Replay-Nonce`);
  assert.equal(a.headers.get('cache-control'), 'no-store', where);
  assert.match(a.headers.get('link') ?? '', /;rel="index"/, where);
  assert.doesNotMatch(a.text, /BEGIN CERTIFICATE/);
  return body;
}

/** Asserts a status (with the answer in the message) and returns the answer's JSON body. */
export function expectStatus(a: AcmeAnswer, status: number, what = ''): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.equal(a.status, status, `${what ? `${what}: ` : ''}expected ${status}, got ${a.status}: ${a.text}`);
  return a.body;
}

/**
 * Rows of a table of the test's database. PGlite is a single-process database: only once the app
 * that holds it has stopped.
 */
/** Runs one statement on a test database no app has open (a PGlite data directory is one process's). */
export async function querySql<T>(database: TestDatabase, sql: string): Promise<T[]> {
  if (database.url) return (await withPg(database.url, (client) => client.query(sql))).rows as T[];
  const db = await PGlite.create(join(database.dataDir, 'pgdata'));
  try {
    return (await db.query<T>(sql)).rows;
  } finally {
    await db.close();
  }
}

export async function countRows(database: TestDatabase, table: string, where = 'true'): Promise<number> {
  return (await querySql<{ n: number }>(database, `select count(*)::int as n from ${table} where ${where}`))[0]!.n;
}

/** An app with ACME on, a DNS server it resolves challenge names with, and an http-01 responder. */
export interface AcmeFixture {
  app: TestApp;
  dns: DnsServer;
  http: ChallengeServer;
  tls: TlsAlpnResponder;
  client: AcmeClient;
  directoryUrl: string;
  /** A binding for sub (an identity token of its own), 201 expected. */
  eab(sub: string, body?: unknown): Promise<Eab & { identity: string; expires: string }>;
  /** A new account bound to sub. */
  account(sub: string, key?: AcmeKey): Promise<AcmeAccount>;
  stop(): Promise<void>;
}

/**
 * Starts the fixture: options.acme is merged over { enabled, resolver, challengePorts }, the rest
 * of options.config over the app's defaults.
 */
export async function startAcmeFixture(options: Omit<TestAppOptions, 'config'> & { config?: Record<string, unknown>; acme?: Record<string, unknown> } = {}): Promise<AcmeFixture> {
  const dns = await startDnsServer();
  const http = await startChallengeServer();
  const tls = await startTlsAlpnResponder();
  let app: TestApp;
  try {
    app = await startTestApp({
      ...options,
      config: {
        ...options.config,
        acme: { enabled: true, allowLoopback: true, resolver: dns.address, challengePorts: { http01: http.port, tlsalpn01: tls.port }, challengeTimeout: '2s', ...options.acme },
      },
    });
  } catch (err) {
    await Promise.all([dns.stop(), http.stop(), tls.stop()]);
    throw err;
  }
  const directoryUrl = `${app.api}/acme/directory`;
  let client: AcmeClient;
  let transport: Fetch | undefined;
  try {
    transport = options.tls ? fetchTrusting(await (await fetch(`${app.public}/v1/ca/root.pem`)).text()) : undefined;
    client = await AcmeClient.open(directoryUrl, transport ? { fetch: transport } : {});
  } catch (err) {
    await app.stop();
    await Promise.all([dns.stop(), http.stop(), tls.stop()]);
    throw err;
  }
  const eab = async (sub: string, body?: unknown) => {
    const res = await requestEab(app.api, await app.token(sub), body, transport);
    assert.equal(res.status, 201, `POST /v1/acme/eab as ${sub}: ${await res.clone().text()}`);
    return (await res.json()) as Eab & { identity: string; expires: string };
  };
  return {
    app,
    dns,
    http,
    tls,
    client,
    directoryUrl,
    eab,
    account: async (sub, key) => client.createAccount(await eab(sub), key),
    async stop() {
      await app.stop();
      await Promise.all([dns.stop(), http.stop(), tls.stop()]);
    },
  };
}

/** Points name at 127.0.0.1 and serves the key authorization of the authorization's http-01 challenge. */
export async function passHttp01(f: AcmeFixture, account: AcmeAccount, authzUrl: string): Promise<AcmeAnswer> {
  const authz = expectStatus(await f.client.postAsGet(account, authzUrl), 200, 'authorization');
  const challenge = (authz.challenges as { type: string; url: string; token: string }[]).find((c) => c.type === 'http-01');
  assert.ok(challenge, `an http-01 challenge in ${JSON.stringify(authz)}`);
  f.dns.setA(authz.identifier.value, '127.0.0.1');
  f.http.set(challenge.token, keyAuthorization(challenge.token, account.key));
  expectStatus(await f.client.respond(account, challenge.url), 200, 'challenge response');
  return f.client.poll(account, authzUrl, ['valid', 'invalid']);
}

/**
 * An order for names proven by http-01 and finalized with a fresh key's CSR: the valid order,
 * the certificate chain (PEM) and the key.
 */
export async function issueViaAcme(f: AcmeFixture, account: AcmeAccount, names: Names, extra: Record<string, unknown> = {}): Promise<{ order: any; orderUrl: string; chain: string; keyPem: string; serial: string }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const identifiers = [...(names.dns ?? []).map((value) => ({ type: 'dns', value })), ...(names.ip ?? []).map((value) => ({ type: 'ip', value }))];
  const created = await f.client.newOrder(account, identifiers, extra);
  let order = expectStatus(created, 201, 'newOrder');
  const orderUrl = created.location!;
  for (const url of order.authorizations as string[]) {
    const authz = expectStatus(await f.client.postAsGet(account, url), 200);
    if (authz.status === 'pending') assert.equal(expectStatus(await passHttp01(f, account, url), 200).status, 'valid', `authorization ${url}`);
  }
  order = expectStatus(await f.client.poll(account, orderUrl, ['ready', 'invalid']), 200);
  assert.equal(order.status, 'ready', JSON.stringify(order));
  const { keyPem, csrPem } = await createKeyAndCsr('p256', names);
  const finalized = expectStatus(await f.client.finalize(account, order.finalize, csrPem), 200, 'finalize');
  assert.equal(finalized.status, 'valid', JSON.stringify(finalized));
  const download = await f.client.postAsGet(account, finalized.certificate);
  assert.equal(download.status, 200, download.text);
  return { order: finalized, orderUrl, chain: download.text, keyPem, serial: (finalized.certificate as string).slice((finalized.certificate as string).lastIndexOf('/') + 1) };
}

/**
 * A tls-alpn-01 responder (RFC 8737) on 127.0.0.1: for a name (SNI) it was given a key
 * authorization for, it negotiates acme-tls/1 and presents a self-signed certificate naming
 * only that name, with the critical acmeIdentifier extension holding SHA-256 of the key
 * authorization.
 */
export interface TlsAlpnResponder {
  port: number;
  /** For a DNS name or an IPv4 address (asked for by its reverse-DNS name). */
  set(name: string, keyAuthorization: string): Promise<void>;
  /** Server names of the handshakes it saw. */
  handshakes: string[];
  stop(): Promise<void>;
}

async function acmeTlsCertificate(name: string, keyAuthorization: string): Promise<{ key: string; cert: string }> {
  const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const digest = createHash('sha256').update(keyAuthorization).digest();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: 'CN=acme-tls-alpn-01',
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3600_000),
    keys: keys as unknown as CryptoKeyPair,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' } as EcdsaParams,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: /^[0-9.]+$|:/.test(name) ? 'ip' : 'dns', value: name }]),
      new x509.Extension('1.3.6.1.5.5.7.1.31', true, Buffer.concat([Buffer.from([0x04, 0x20]), digest])),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return { key: createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string, cert: cert.toString('pem') };
}

export async function startTlsAlpnResponder(): Promise<TlsAlpnResponder> {
  const contexts = new Map<string, SecureContext>();
  const fallback = await acmeTlsCertificate('fallback.invalid', 'none');
  const handshakes: string[] = [];
  const server: TlsServer = createTlsServer({
    ...fallback,
    ALPNProtocols: ['acme-tls/1'],
    SNICallback: (servername, cb) => {
      handshakes.push(servername);
      cb(null, contexts.get(servername.toLowerCase()));
    },
  });
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    async set(name, keyAuthorization) {
      // An IP address is asked for by its reverse-DNS name (RFC 8738 §6).
      const sni = isIP(name) === 4 ? `${name.split('.').reverse().join('.')}.in-addr.arpa` : name.toLowerCase();
      contexts.set(sni, createSecureContext(await acmeTlsCertificate(name, keyAuthorization)));
    },
    handshakes,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
