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
  /** For a renewal by a certificate holder: the presented certificate (docs/api.md "Certificate holder"). */
  renews?: RenewedCertificate | undefined;
  claims: JWTPayload;
}

export interface RenewedCertificate {
  serial: string;
  /** Its SubjectPublicKeyInfo, DER: the new CSR must carry another key. */
  spki: Uint8Array;
  /** notAfter − notBefore, seconds: the most a renewal may get. */
  lifetimeSeconds: number;
  /**
   * The configured issuer whose token started the lineage (a policy's `issuers` is matched
   * against it); null for a record made before renewals kept it.
   */
  issuer: string | null;
}

export interface Authenticator {
  /** Verifies a bearer token; throws CaError unauthorized (or unavailable when keys cannot be fetched). */
  authenticate(token: string): Promise<Principal>;
}
