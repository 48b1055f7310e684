/** Who is calling: what authentication hands to policy. No database, no key material. */
import type { JWTPayload } from 'jose';

export interface Principal {
  /** The identity string the issuer's template built from the claims. */
  identity: string;
  /** The configured name of the issuer that vouched for it (or "renewal" for holder tokens). */
  issuer: string;
  /** Names the token itself limits the request to (`sans` claim), when present. */
  tokenSans: string[] | undefined;
  /** A one-time token id to consume with the issuance, when the issuer requires it. */
  jti: { value: string; expiresAt: Date } | undefined;
  admin: boolean;
  /** For a renewal by a certificate holder: the presented certificate's SubjectPublicKeyInfo, which the new CSR must not reuse. */
  replacesKey?: Uint8Array | undefined;
  claims: JWTPayload;
}

export interface Authenticator {
  /** Verifies a bearer token; throws CaError unauthorized (or unavailable when keys cannot be fetched). */
  authenticate(token: string): Promise<Principal>;
}
