/** The HTTP status and title of each error kind: for the REST API's problems (problem.ts) and ACME's (acme-problem.ts). */
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { ErrorKind } from '../errors.js';

export const STATUS: Record<ErrorKind, { status: ContentfulStatusCode; title: string }> = {
  malformed: { status: 400, title: 'Malformed request' },
  badCSR: { status: 400, title: 'Bad certificate signing request' },
  badPublicKey: { status: 400, title: 'Unacceptable public key' },
  badRevocationReason: { status: 400, title: 'Bad revocation reason' },
  unauthorized: { status: 401, title: 'Unauthorized' },
  forbidden: { status: 403, title: 'Forbidden' },
  rejectedIdentifier: { status: 403, title: 'Name outside policy' },
  notFound: { status: 404, title: 'Not found' },
  alreadyRevoked: { status: 409, title: 'Already revoked' },
  payloadTooLarge: { status: 413, title: 'Payload too large' },
  unsupportedMediaType: { status: 415, title: 'Unsupported media type' },
  rateLimited: { status: 429, title: 'Too many requests' },
  serverInternal: { status: 500, title: 'Internal server error' },
  unavailable: { status: 503, title: 'Service unavailable' },
  badNonce: { status: 400, title: 'Bad nonce' },
  badSignatureAlgorithm: { status: 400, title: 'Unsupported signature algorithm' },
  accountDoesNotExist: { status: 400, title: 'No such account' },
  externalAccountRequired: { status: 400, title: 'External account binding required' },
  orderNotReady: { status: 403, title: 'Order not ready' },
  incorrectResponse: { status: 400, title: 'Incorrect challenge response' },
  connection: { status: 400, title: 'Could not connect for validation' },
  dns: { status: 400, title: 'DNS problem' },
  tls: { status: 400, title: 'TLS problem' },
  unsupportedIdentifier: { status: 400, title: 'Unsupported identifier' },
  unsupportedContact: { status: 400, title: 'Unsupported contact' },
  conflict: { status: 409, title: 'Conflict' },
};
