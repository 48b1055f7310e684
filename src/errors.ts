/**
 * The one domain error type. Modules throw a CaError with a kind; only http/ knows which status
 * and problem document a kind becomes (src/http/problem.ts). The detail is shown to the client,
 * so it never carries key material, tokens or passphrases.
 */
export type ErrorKind =
  | 'malformed'
  | 'badCSR'
  | 'badPublicKey'
  | 'badRevocationReason'
  | 'unauthorized'
  | 'forbidden'
  | 'rejectedIdentifier'
  | 'notFound'
  | 'alreadyRevoked'
  | 'payloadTooLarge'
  | 'unsupportedMediaType'
  | 'rateLimited'
  | 'serverInternal'
  | 'unavailable'
  // ACME's own (RFC 8555 §6.7; docs/api.md "ACME"): raised only by the ACME modules.
  | 'badNonce'
  | 'badSignatureAlgorithm'
  | 'accountDoesNotExist'
  | 'externalAccountRequired'
  | 'orderNotReady'
  | 'incorrectResponse'
  | 'connection'
  | 'dns'
  | 'tls'
  | 'unsupportedIdentifier'
  | 'unsupportedContact'
  | 'conflict';

export class CaError extends Error {
  readonly kind: ErrorKind;
  readonly detail: string;
  /** Seconds a client should wait before retrying (rateLimited, unavailable). */
  readonly retryAfter: number | undefined;
  /** The resource a conflict is with (an ACME keyChange to a key another account holds: its URL). */
  readonly location: string | undefined;

  constructor(kind: ErrorKind, detail: string, options?: { cause?: unknown; retryAfter?: number; location?: string }) {
    super(`${kind}: ${detail}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CaError';
    this.kind = kind;
    this.detail = detail;
    this.retryAfter = options?.retryAfter;
    this.location = options?.location;
  }
}

export function isCaError(err: unknown): err is CaError {
  return err instanceof CaError;
}
