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
  | 'unavailable';

export class CaError extends Error {
  readonly kind: ErrorKind;
  readonly detail: string;
  /** Seconds a client should wait before retrying (rateLimited, unavailable). */
  readonly retryAfter: number | undefined;

  constructor(kind: ErrorKind, detail: string, options?: { cause?: unknown; retryAfter?: number }) {
    super(`${kind}: ${detail}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CaError';
    this.kind = kind;
    this.detail = detail;
    this.retryAfter = options?.retryAfter;
  }
}

export function isCaError(err: unknown): err is CaError {
  return err instanceof CaError;
}
