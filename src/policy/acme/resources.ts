/**
 * The ACME resources as clients see them (RFC 8555 §7.1): their URLs under the request's own
 * base (`https://<host>/acme`, as the client reached the CA) and their JSON objects.
 */
import type { CaError } from '../../errors.js';
import type { AcmeAccount, AcmeAuthorization, AcmeChallenge, AcmeOrder } from '../../store/store.js';

export const ACME_ERROR_PREFIX = 'urn:ietf:params:acme:error:';

export interface AcmeUrls {
  base: string;
  directory: string;
  newNonce: string;
  newAccount: string;
  newOrder: string;
  revokeCert: string;
  keyChange: string;
  renewalInfo: string;
  account(id: string): string;
  orders(accountId: string): string;
  order(id: string): string;
  finalize(id: string): string;
  authorization(id: string): string;
  challenge(id: string): string;
  certificate(serial: string): string;
}

/** URLs under `base`, the request's origin followed by /acme. */
export function acmeUrls(base: string): AcmeUrls {
  return {
    base,
    directory: `${base}/directory`,
    newNonce: `${base}/new-nonce`,
    newAccount: `${base}/new-account`,
    newOrder: `${base}/new-order`,
    revokeCert: `${base}/revoke-cert`,
    keyChange: `${base}/key-change`,
    renewalInfo: `${base}/renewal-info`,
    account: (id) => `${base}/account/${id}`,
    orders: (id) => `${base}/account/${id}/orders`,
    order: (id) => `${base}/order/${id}`,
    finalize: (id) => `${base}/order/${id}/finalize`,
    authorization: (id) => `${base}/authz/${id}`,
    challenge: (id) => `${base}/chall/${id}`,
    certificate: (serial) => `${base}/cert/${serial}`,
  };
}

/** The account id a `kid` names, when it is an account URL of this server (any origin: the key proves the rest). */
export function accountIdOf(kid: string): string | undefined {
  return /\/acme\/account\/([A-Za-z0-9_-]{1,64})$/.exec(kid)?.[1];
}

/** An ACME problem document (RFC 8555 §6.7) for an error, with the HTTP status the caller answers with. */
export function acmeProblem(err: CaError, status: number): Record<string, unknown> {
  return { type: `${ACME_ERROR_PREFIX}${acmeErrorType(err.kind)}`, detail: err.detail, status };
}

/** Our error kinds as ACME error types: ACME's own pass through; the rest map to the nearest. */
export function acmeErrorType(kind: CaError['kind']): string {
  switch (kind) {
    case 'forbidden':
      return 'unauthorized';
    case 'notFound':
    case 'payloadTooLarge':
    case 'unsupportedMediaType':
      return 'malformed';
    case 'unavailable':
      return 'serverInternal';
    case 'conflict':
      return 'malformed';
    default:
      return kind;
  }
}

/** An RFC 3339 time in whole seconds (2026-01-02T03:04:05Z). */
export const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

export function accountView(account: AcmeAccount, urls: AcmeUrls): Record<string, unknown> {
  return { status: account.status, contact: account.contact, orders: urls.orders(account.id), createdAt: rfc3339(account.createdAt) };
}

export function orderView(order: AcmeOrder, urls: AcmeUrls): Record<string, unknown> {
  return {
    status: order.status,
    expires: rfc3339(order.expiresAt),
    identifiers: order.identifiers,
    ...(order.notBefore ? { notBefore: rfc3339(order.notBefore) } : {}),
    ...(order.notAfter ? { notAfter: rfc3339(order.notAfter) } : {}),
    ...(order.error ? { error: order.error } : {}),
    authorizations: order.authorizationIds.map(urls.authorization),
    finalize: urls.finalize(order.id),
    ...(order.certificateSerial && order.status === 'valid' ? { certificate: urls.certificate(order.certificateSerial) } : {}),
  };
}

export function challengeView(challenge: AcmeChallenge, urls: AcmeUrls): Record<string, unknown> {
  return {
    type: challenge.type,
    url: urls.challenge(challenge.id),
    status: challenge.status,
    token: challenge.token,
    ...(challenge.validatedAt && challenge.status === 'valid' ? { validated: rfc3339(challenge.validatedAt) } : {}),
    ...(challenge.error ? { error: challenge.error } : {}),
  };
}

export function authorizationView(authz: AcmeAuthorization, urls: AcmeUrls): Record<string, unknown> {
  return {
    identifier: authz.identifier,
    status: authz.status,
    expires: rfc3339(authz.expiresAt),
    challenges: authz.challenges.map((c) => challengeView(c, urls)),
    ...(authz.wildcard ? { wildcard: true } : {}),
  };
}
