/**
 * What policy hands back about certificates: the record view (docs/api.md "GET /v1/certificates/{serial}")
 * and the issuance answer (docs/api.md "POST /v1/certificates"), both made from what the store keeps.
 */
import { certificatePem } from '../signer/authority.js';
import { statusAt, type CertificateRecord, type CertificateStatus, type RevocationReason, type SubjectAltNames } from '../model.js';
import { renewalWindow, type RenewalWindow } from './renewal.js';

export interface CertificateView {
  serial: string;
  identity: string;
  sans: SubjectAltNames;
  notBefore: Date;
  notAfter: Date;
  status: CertificateStatus;
  revokedAt: Date | null;
  revocationReason: RevocationReason | null;
  renewedFrom: string | null;
  certificate: string;
}

export interface Issuance {
  serial: string;
  identity: string;
  certificate: string;
  chain: string[];
  notBefore: Date;
  notAfter: Date;
  renewalInfo: RenewalWindow;
  /** False for an idempotent retry answered with the certificate issued before (200, not 201). */
  created: boolean;
}

export function viewOf(record: CertificateRecord, now: Date): CertificateView {
  return {
    serial: record.serial,
    identity: record.identity,
    sans: record.sans,
    notBefore: record.notBefore,
    notAfter: record.notAfter,
    status: statusAt(record, now),
    revokedAt: record.revokedAt,
    revocationReason: record.revocationReason,
    renewedFrom: record.renewedFrom,
    certificate: certificatePem(record.der),
  };
}

/** The answer to a retry: the certificate issued the first time, as the first answer had it. */
export function issuanceOf(record: CertificateRecord, chain: string[], now: Date): Issuance {
  return {
    serial: record.serial,
    identity: record.identity,
    certificate: certificatePem(record.der),
    chain,
    notBefore: record.notBefore,
    notAfter: record.notAfter,
    renewalInfo: renewalWindow(record, now),
    created: false,
  };
}
