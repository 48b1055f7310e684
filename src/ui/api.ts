/**
 * The console's calls to the CA: same origin only (the CSP's connect-src 'self'), the admin
 * token as a Bearer header from memory (session.ts), no cookies, no caching of answers. A 401
 * ends the session: the token expired or was refused.
 */
import { session, signOut } from './session';
import type { AuditEvent, CertificateRecord, FleetItem, FleetSummary, Page, Revoked } from './types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    /** The problem document's code (`notFound`, `alreadyRevoked`…), or `network`. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const PROBLEM_PREFIX = 'urn:service-ca:error:';

async function problemOf(res: Response): Promise<ApiError> {
  try {
    const body = (await res.json()) as { type?: string; detail?: string };
    const code = body.type?.startsWith(PROBLEM_PREFIX) ? body.type.slice(PROBLEM_PREFIX.length) : `http${res.status}`;
    return new ApiError(res.status, code, body.detail ?? res.statusText);
  } catch {
    return new ApiError(res.status, `http${res.status}`, `the CA answered ${res.status} ${res.statusText}`);
  }
}

async function send(path: string, token: string, init: RequestInit = {}): Promise<Response> {
  try {
    return await fetch(path, {
      ...init,
      credentials: 'omit',
      cache: 'no-store',
      headers: { Accept: 'application/json', Authorization: `Bearer ${token}`, ...(init.headers as Record<string, string> | undefined) },
    });
  } catch {
    throw new ApiError(0, 'network', 'the CA did not answer (network error)');
  }
}

async function request<T>(path: string, init?: RequestInit): Promise<T> {
  const s = session();
  if (!s) throw new ApiError(401, 'unauthorized', 'not signed in');
  const res = await send(path, s.token, init);
  if (!res.ok) {
    const err = await problemOf(res);
    // Only if this is still the session that sent it: a late answer must not end a new one.
    if (res.status === 401 && session() === s) signOut(`The CA refused the token: ${err.message}. Sign in with a fresh admin token.`);
    throw err;
  }
  return (await res.json()) as T;
}

/** A query string of the defined, non-empty values. */
function query(params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

export interface FleetQuery {
  state?: string;
  severity?: string;
  identityPrefix?: string;
  limit?: number;
  cursor?: string;
}

export interface CertificateQuery {
  identity?: string;
  status?: string;
  dns?: string;
  limit?: number;
  cursor?: string;
}

export interface AuditQuery {
  actor?: string;
  serial?: string;
  limit?: number;
  cursor?: string;
}

/**
 * Checks a pasted token before keeping it: one admin listing of one record. 401: the CA refused
 * the token; 403: a valid token whose identity is not an admin.
 */
export async function verifyAdminToken(token: string): Promise<void> {
  const res = await send('/v1/certificates?limit=1', token);
  if (!res.ok) throw await problemOf(res);
}

export const api = {
  summary: () => request<FleetSummary>('/v1/fleet/summary'),
  fleet: (q: FleetQuery) => request<Page<FleetItem>>(`/v1/fleet${query({ ...q })}`),
  certificates: (q: CertificateQuery) => request<Page<CertificateRecord>>(`/v1/certificates${query({ ...q })}`),
  certificate: (serial: string) => request<CertificateRecord>(`/v1/certificates/${encodeURIComponent(serial)}`),
  audit: (q: AuditQuery) => request<Page<AuditEvent>>(`/v1/audit${query({ ...q })}`),
  revoke: (serial: string, reason: string) =>
    request<Revoked>(`/v1/certificates/${encodeURIComponent(serial)}/revoke`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ reason }),
    }),
};

/** The current CRL as the API listener serves it (docs/api.md "Public": both listeners), without the token. */
export async function currentCrl(): Promise<{ der: Uint8Array; etag: string | null }> {
  let res: Response;
  try {
    res = await fetch('/v1/crl', { credentials: 'omit', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'network', 'the CA did not answer (network error)');
  }
  if (!res.ok) throw await problemOf(res);
  return { der: new Uint8Array(await res.arrayBuffer()), etag: res.headers.get('ETag') };
}
