/**
 * HTTP helpers for revocation and listing tests: issue a certificate (keeping its key), revoke
 * one, bulk-revoke an identity, and read the admin listing, always through the real API.
 */
import assert from 'node:assert/strict';
import type { CertificateRecord, Issuance } from '../../src/client/index.js';
import { ADMIN, type TestApp } from './app.js';
import { createKeyAndCsr } from './csr.js';

export type Issued = Omit<Issuance, 'renewalInfo'> & { keyPem: string };

export type RecordJson = CertificateRecord;

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

/** The identity `spiffe://example.org/ns/{ns}/sa/{sa}` may ask for `{sa}.{ns}.svc` (default policy). */
export async function issueFor(app: TestApp, identity: string, dns: string[], ttl?: string | number): Promise<Issued> {
  const { keyPem, csrPem } = await createKeyAndCsr('p256', { dns });
  const res = await app.issue(identity, ttl === undefined ? { csr: csrPem } : { csr: csrPem, ttl });
  assert.equal(res.status, 201, `issuance for ${identity}: ${await res.clone().text()}`);
  return { ...((await res.json()) as Omit<Issued, 'keyPem'>), keyPem };
}

async function bearer(app: TestApp, sub: string): Promise<string> {
  return `Bearer ${await app.token(sub)}`;
}

/** POST /v1/certificates/{serial}/revoke as sub; body is sent as given (an object is JSON-encoded). */
export async function revoke(app: TestApp, serial: string, sub: string | undefined, body: unknown): Promise<Response> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (sub !== undefined) headers.Authorization = await bearer(app, sub);
  return fetch(`${app.api}/v1/certificates/${serial}/revoke`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

/** Revokes and insists on 200; returns the record. */
export async function revokeOk(app: TestApp, serial: string, sub: string, reason: string): Promise<RecordJson> {
  const res = await revoke(app, serial, sub, { reason });
  assert.equal(res.status, 200, `revoking ${serial} as ${sub} (${reason}): ${await res.clone().text()}`);
  return (await res.json()) as RecordJson;
}

export async function bulkRevoke(app: TestApp, sub: string | undefined, body: unknown): Promise<Response> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (sub !== undefined) headers.Authorization = await bearer(app, sub);
  return fetch(`${app.api}/v1/revocations`, { method: 'POST', headers, body: JSON.stringify(body) });
}

export async function getRecord(app: TestApp, serial: string, sub = ADMIN): Promise<RecordJson> {
  const res = await fetch(`${app.api}/v1/certificates/${serial}`, { headers: { Authorization: await bearer(app, sub) } });
  assert.equal(res.status, 200, `GET ${serial}: ${await res.clone().text()}`);
  return (await res.json()) as RecordJson;
}

export interface Page {
  items: RecordJson[];
  nextCursor: string | null;
}

/** GET /v1/certificates?query as sub (admin by default; null: no token). */
export async function list(app: TestApp, query: Record<string, string>, sub: string | null = ADMIN): Promise<Response> {
  const qs = new URLSearchParams(query).toString();
  const headers: Record<string, string> = {};
  if (sub !== null) headers.Authorization = await bearer(app, sub);
  return fetch(`${app.api}/v1/certificates${qs ? `?${qs}` : ''}`, { headers });
}

export async function listOk(app: TestApp, query: Record<string, string>): Promise<Page> {
  const res = await list(app, query);
  assert.equal(res.status, 200, `GET /v1/certificates?${new URLSearchParams(query).toString()}: ${await res.clone().text()}`);
  return (await res.json()) as Page;
}

/** Every item of a listing, page after page, until nextCursor is null. */
export async function listAll(app: TestApp, query: Record<string, string>): Promise<{ items: RecordJson[]; pages: number }> {
  const items: RecordJson[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page: Page = await listOk(app, cursor ? { ...query, cursor } : query);
    pages++;
    items.push(...page.items);
    cursor = page.nextCursor;
    assert.ok(pages < 10_000, 'the listing never ends');
  } while (cursor);
  return { items, pages };
}

/** Asserts a problem document with the given status and code. */
export async function assertProblem(res: Response, status: number, code: string, what: string): Promise<Problem> {
  const text = await res.text();
  assert.equal(res.status, status, `${what}: ${res.status} ${text}`);
  assert.equal(res.headers.get('content-type'), 'application/problem+json', `${what}: content type`);
  const body = JSON.parse(text) as Problem;
  assert.equal(body.type, `urn:service-ca:error:${code}`, `${what}: ${text}`);
  assert.equal(body.status, status, `${what}: status member`);
  return body;
}

/** Newest first: notBefore descending, then serial descending (docs/api.md "Admin"). */
export function compareListingOrder(a: Pick<RecordJson, 'notBefore' | 'serial'>, b: Pick<RecordJson, 'notBefore' | 'serial'>): number {
  const t = Date.parse(b.notBefore) - Date.parse(a.notBefore);
  if (t !== 0) return t;
  const x = BigInt(`0x${a.serial}`);
  const y = BigInt(`0x${b.serial}`);
  return x < y ? 1 : x > y ? -1 : 0;
}
