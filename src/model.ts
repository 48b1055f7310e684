/**
 * The shared vocabulary of the CA: plain data types that several modules pass between them.
 * No behaviour lives here.
 */

/** Subject alternative names by kind (RFC 5280 §4.2.1.6), in canonical text form. */
export interface SubjectAltNames {
  dns: string[];
  ip: string[];
  uri: string[];
  email: string[];
}

/**
 * Identities the CA keeps for itself (its API listener's certificate is `service-ca:server`): no
 * token may map to one, or its holder would own, and could revoke, the CA's own certificates.
 */
export const RESERVED_IDENTITY_PREFIX = 'service-ca:';

export type ExtendedKeyUsageName = 'serverAuth' | 'clientAuth';

export type KeyType = 'ecdsa-p256' | 'ecdsa-p384' | 'rsa' | 'ed25519';

/** RFC 5280 §5.3.1 reason names accepted by the API (certificateHold and removeFromCRL are not). */
export const REVOCATION_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  caCompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  privilegeWithdrawn: 9,
} as const;
export type RevocationReason = keyof typeof REVOCATION_REASONS;

export type CertificateStatus = 'valid' | 'revoked' | 'expired';

/** One issued certificate as the store keeps it. */
export interface CertificateRecord {
  serial: string;
  identity: string;
  sans: SubjectAltNames;
  notBefore: Date;
  notAfter: Date;
  revokedAt: Date | null;
  revocationReason: RevocationReason | null;
  revokedBy: string | null;
  der: Uint8Array;
  fingerprint: string;
  tokenIssuer: string | null;
  tokenJti: string | null;
  /** SHA-256 of the CSR it was issued for (null for records made before it was kept). */
  csrDigest: Uint8Array | null;
  /** The certificate it renewed (docs/api.md "Certificate holder"); null when a token asked for it. */
  renewedFrom: string | null;
  /** Key id of the intermediate that signed it (docs/api.md "Several issuers"). */
  issuerKeyId: string;
  createdAt: Date;
}

/** The status a record has at a given time: revoked wins over expired. */
export function statusAt(record: Pick<CertificateRecord, 'revokedAt' | 'notAfter'>, now: Date): CertificateStatus {
  if (record.revokedAt) return 'revoked';
  return record.notAfter.getTime() <= now.getTime() ? 'expired' : 'valid';
}
