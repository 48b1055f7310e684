/**
 * The typed service-ca API client (`import { ServiceCaClient } from 'service-ca/client'`). The
 * command line uses it; it speaks only the HTTP API of docs/api.md. Node's https module is used
 * directly so that a private root can be trusted per client without touching global settings.
 */
import { X509Certificate, createPrivateKey, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { SignJWT, importPKCS8 } from 'jose';

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

export class ServiceCaError extends Error {
  constructor(
    readonly status: number,
    readonly problem: Problem | undefined,
    readonly retryAfter: number | undefined,
  ) {
    super(problem ? `${problem.status} ${problem.type.replace('urn:service-ca:error:', '')}: ${problem.detail}` : `HTTP ${status}`);
    this.name = 'ServiceCaError';
  }
  get code(): string | undefined {
    return this.problem?.type.replace('urn:service-ca:error:', '');
  }
}

export interface SubjectAltNames {
  dns: string[];
  ip: string[];
  uri: string[];
  email: string[];
}

export interface Issuance {
  serial: string;
  identity: string;
  certificate: string;
  chain: string[];
  notBefore: string;
  notAfter: string;
  renewalInfo: { start: string; end: string };
}

export interface CertificateRecord {
  serial: string;
  identity: string;
  sans: SubjectAltNames;
  notBefore: string;
  notAfter: string;
  status: 'valid' | 'revoked' | 'expired';
  revokedAt: string | null;
  revocationReason: string | null;
  certificate: string;
}

export interface ListQuery {
  identity?: string;
  status?: 'valid' | 'revoked' | 'expired';
  dns?: string;
  expiresBefore?: string;
  limit?: number;
  cursor?: string;
}

/** An identity's state in the fleet view (docs/api.md "Fleet"). */
export type FleetState = 'healthy' | 'renewalDue' | 'missedRenewal' | 'expired' | 'revoked';
export type FleetSeverity = 'none' | 'warning' | 'critical';

export interface FleetItem {
  identity: string;
  state: FleetState;
  severity: FleetSeverity;
  certificate: { serial: string; notBefore: string; notAfter: string; renewalInfo: { start: string; end: string } } | null;
  lastPoll: { at: string; address: string | null } | null;
  lastRefusal: { at: string; code: string } | null;
}

export interface FleetQuery {
  state?: FleetState;
  severity?: FleetSeverity;
  identityPrefix?: string;
  limit?: number;
  cursor?: string;
}

export interface FleetSummary {
  states: Record<FleetState, number>;
  severities: Record<FleetSeverity, number>;
}

/** A configured issuer, as GET /v1/ca/issuers describes it (RFC 3339 times). */
export interface IssuerInfo {
  keyId: string;
  subject: string;
  active: boolean;
  notBefore: string;
  notAfter: string;
  renewBy: string | null;
  certificates: { unexpired: number; revoked: number };
  crl: { number: number; thisUpdate: string; nextUpdate: string; entries: number } | null;
  removable: boolean;
  urls: { crl: string; certificate: string };
}

export interface ClientOptions {
  /** The API listener, e.g. https://ca.example:8443. */
  baseUrl: string;
  /** PEM root(s) to trust for https, in addition to nothing else (private CA). */
  ca?: string | undefined;
  /** Per-request timeout in ms (default 15 s). */
  timeoutMs?: number;
  /**
   * The name the server's certificate must hold, when it is not the URL's host: through a
   * `kubectl port-forward` to localhost, say (SNI and the hostname check both use it).
   */
  tlsServerName?: string | undefined;
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** POST /v1/acme/eab's answer: what an ACME client needs to create its account. */
export interface AcmeBinding {
  kid: string;
  /** base64url, no padding. */
  hmacKey: string;
  identity: string;
  expires: string;
}

export class ServiceCaClient {
  constructor(private readonly options: ClientOptions) {}

  /** One HTTP exchange; rejects only on transport failures. */
  raw(method: string, path: string, init: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<RawResponse> {
    const url = new URL(path, this.options.baseUrl);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(
        url,
        {
          method,
          headers: { ...(init.body !== undefined ? { 'Content-Length': String(Buffer.byteLength(init.body)) } : {}), ...init.headers },
          ...(url.protocol === 'https:' && this.options.ca ? { ca: this.options.ca } : {}),
          ...(url.protocol === 'https:' && this.options.tlsServerName ? { servername: this.options.tlsServerName } : {}),
          timeout: this.options.timeoutMs ?? 15_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`request to ${url.origin} timed out`)));
      req.on('error', reject);
      if (init.body !== undefined) req.write(init.body);
      req.end();
    });
  }

  private async json<T>(method: string, path: string, token: string | undefined, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await this.raw(method, path, { headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    if (res.status >= 400) throw errorOf(res);
    return JSON.parse(res.body.toString('utf8')) as T;
  }

  private async text(path: string): Promise<string> {
    const res = await this.raw('GET', path);
    if (res.status >= 400) throw errorOf(res);
    return res.body.toString('utf8');
  }

  /**
   * POST with an identity token. 201: issued now; 200: this same token and byte-identical CSR
   * were answered before and this is the certificate issued then (docs/api.md "Retries"). Both are
   * an Issuance.
   */
  issue(token: string, request: { csr: string; ttl?: string | number }): Promise<Issuance> {
    return this.issuance('/v1/certificates', token, request);
  }

  getCertificate(token: string, serial: string): Promise<CertificateRecord> {
    return this.json('GET', `/v1/certificates/${encodeURIComponent(serial)}`, token);
  }

  /**
   * Renews with a holder token (see holderToken) for the same identity. 201: renewed now; 200:
   * the certificate was already renewed with this CSR's key, and this is that renewal (docs/api.md
   * "Certificate holder"). Renewed before with another key: 401, see isRenewalReuse.
   */
  renew(holderToken: string, request: { csr: string; ttl?: string | number }): Promise<Issuance> {
    return this.issuance('/v1/certificates/renew', holderToken, request);
  }

  /** An issuance answer: 200 and 201 carry the same Issuance; any other success is not one. */
  private async issuance(path: string, token: string, request: { csr: string; ttl?: string | number }): Promise<Issuance> {
    const res = await this.raw('POST', path, {
      headers: { Accept: 'application/json', Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(request),
    });
    if (res.status !== 200 && res.status !== 201) throw errorOf(res);
    return JSON.parse(res.body.toString('utf8')) as Issuance;
  }

  revoke(token: string, serial: string, reason: string): Promise<CertificateRecord> {
    return this.json('POST', `/v1/certificates/${encodeURIComponent(serial)}/revoke`, token, { reason });
  }

  revokeIdentity(token: string, identity: string, reason: string): Promise<{ revoked: string[] }> {
    return this.json('POST', '/v1/revocations', token, { identity, reason });
  }

  /** A single-use ACME external account binding: for the token's identity, or (admin) the one named. */
  acmeBinding(token: string, request: { identity?: string; issuer?: string } = {}): Promise<AcmeBinding> {
    return this.json('POST', '/v1/acme/eab', token, request);
  }

  list(token: string, query: ListQuery = {}): Promise<{ items: CertificateRecord[]; nextCursor: string | null }> {
    return this.json('GET', `/v1/certificates${queryString(query)}`, token);
  }

  /** One page of the fleet, identities needing attention first (admin). */
  fleet(token: string, query: FleetQuery = {}): Promise<{ items: FleetItem[]; nextCursor: string | null }> {
    return this.json('GET', `/v1/fleet${queryString(query)}`, token);
  }

  /** How many identities are in each state and of each severity (admin). */
  fleetSummary(token: string): Promise<FleetSummary> {
    return this.json('GET', '/v1/fleet/summary', token);
  }

  /** Every configured issuer (admin). */
  async issuers(token: string): Promise<IssuerInfo[]> {
    return (await this.json<{ issuers: IssuerInfo[] }>('GET', '/v1/ca/issuers', token)).issuers;
  }

  /** The renewal window and how long to wait before asking again (seconds, from Retry-After). */
  async renewalInfo(serial: string): Promise<{ start: Date; end: Date; retryAfter: number | undefined }> {
    const res = await this.raw('GET', `/v1/certificates/${encodeURIComponent(serial)}/renewal-info`, { headers: { Accept: 'application/json' } });
    if (res.status >= 400) throw errorOf(res);
    const body = JSON.parse(res.body.toString('utf8')) as { suggestedWindow: { start: string; end: string } };
    const ra = Number(res.headers['retry-after']);
    return { start: new Date(body.suggestedWindow.start), end: new Date(body.suggestedWindow.end), retryAfter: Number.isFinite(ra) ? ra : undefined };
  }

  rootPem(): Promise<string> {
    return this.text('/v1/ca/root.pem');
  }

  chainPem(): Promise<string> {
    return this.text('/v1/ca/chain.pem');
  }
}

/**
 * A certificate-holder token for renewal (docs/api.md "Certificate holder"): signed with the
 * certificate's private key, carrying the certificate (leaf only) as x5c, aud service-ca:renew,
 * a 2-minute lifetime and a fresh jti.
 */
export async function holderToken(certificatePem: string, privateKeyPem: string): Promise<string> {
  const cert = new X509Certificate(certificatePem);
  const keyObject = createPrivateKey(privateKeyPem);
  const type = keyObject.asymmetricKeyType;
  const alg = type === 'ed25519' ? 'EdDSA' : type === 'rsa' ? 'RS256' : keyObject.asymmetricKeyDetails?.namedCurve === 'secp384r1' ? 'ES384' : 'ES256';
  const key = await importPKCS8(keyObject.export({ type: 'pkcs8', format: 'pem' }) as string, alg);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg, x5c: [cert.raw.toString('base64')] })
    .setAudience('service-ca:renew')
    .setIssuedAt(now)
    .setExpirationTime(now + 120)
    .setJti(randomUUID())
    .sign(key);
}

/**
 * Whether a renewal was refused because the presented certificate was already renewed with
 * another key (docs/api.md "Certificate holder": a certificate renews once; the CA audits it as a
 * reuse): someone else holds, or held, that certificate's private key.
 */
export function isRenewalReuse(err: unknown): boolean {
  return err instanceof ServiceCaError && err.status === 401 && /already (been )?renewed/i.test(err.problem?.detail ?? '');
}

/** `?k=v&…` of the query's defined values, or nothing. */
function queryString(query: object): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(k, String(v));
  const qs = params.toString();
  return qs ? `?${qs}` : '';
}

function errorOf(res: RawResponse): ServiceCaError {
  let problem: Problem | undefined;
  try {
    problem = JSON.parse(res.body.toString('utf8')) as Problem;
  } catch {
    problem = undefined;
  }
  const ra = Number(res.headers['retry-after']);
  return new ServiceCaError(res.status, problem, Number.isFinite(ra) ? ra : undefined);
}
