/**
 * The answers the console reads, as docs/api.md states them ("Admin", "Fleet (admin)",
 * "Service identity"): typed here for the browser, which cannot import the server's schemas.
 */

export type FleetState = 'healthy' | 'renewalDue' | 'missedRenewal' | 'expired' | 'revoked';
export type Severity = 'none' | 'warning' | 'critical';

export const FLEET_STATES: readonly FleetState[] = ['missedRenewal', 'expired', 'renewalDue', 'revoked', 'healthy'];
export const SEVERITIES: readonly Severity[] = ['critical', 'warning', 'none'];

export interface FleetItem {
  identity: string;
  state: FleetState;
  severity: Severity;
  certificate: { serial: string; notBefore: string; notAfter: string; renewalInfo: { start: string; end: string } } | null;
  lastPoll: { at: string; address: string | null } | null;
  lastRefusal: { at: string; code: string } | null;
}

export interface FleetSummary {
  states: Record<FleetState, number>;
  severities: Record<Severity, number>;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export type CertificateStatus = 'valid' | 'revoked' | 'expired';

export interface CertificateRecord {
  serial: string;
  identity: string;
  sans: { dns: string[]; ip: string[]; uri: string[]; email: string[] };
  notBefore: string;
  notAfter: string;
  status: CertificateStatus;
  revokedAt: string | null;
  revocationReason: string | null;
  renewedFrom: string | null;
  certificate: string;
}

export interface Revoked extends CertificateRecord {
  alsoRevoked: string[];
}

export interface AuditEvent {
  id: number;
  at: string;
  actor: string;
  action: string;
  serial: string | null;
  outcome: string;
  detail: Record<string, unknown>;
  chainSeq: number | null;
}

/** The RFC 5280 §5.3.1 reasons that POST /v1/certificates/{serial}/revoke accepts (certificateHold is refused). */
export const REVOCATION_REASONS: readonly { value: string; label: string }[] = [
  { value: 'unspecified', label: 'Unspecified' },
  { value: 'keyCompromise', label: 'Key compromise (also revokes its renewals)' },
  { value: 'caCompromise', label: 'CA compromise' },
  { value: 'affiliationChanged', label: 'Affiliation changed' },
  { value: 'superseded', label: 'Superseded' },
  { value: 'cessationOfOperation', label: 'Cessation of operation' },
  { value: 'privilegeWithdrawn', label: 'Privilege withdrawn' },
];
