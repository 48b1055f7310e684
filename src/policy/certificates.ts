/**
 * The registration authority for certificates: it decides and orchestrates. An issuance reads as
 * one straight line: verify the CSR → check every name against policy → compute the validity →
 * the signer builds, lints and signs → the store commits the record and the used token id in one
 * transaction. Nothing is returned before that commit (API.md rule: no certificate leaves the
 * service unless its record is committed).
 */
import type { AuditAction } from '../audit/chain.js';
import type { Principal } from '../auth/principal.js';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import { auditRefusal } from './audit.js';
import type { IssuanceLimiter } from './rate-limits.js';
import { statusAt, type CertificateRecord, type CertificateStatus, type RevocationReason, type SubjectAltNames } from '../model.js';
import type { Signer } from '../signer/signer.js';
import { certificatePem } from '../signer/authority.js';
import type { Store } from '../store/store.js';
import { parseCsr } from './csr.js';
import { issuingChainPem } from './published.js';
import { authorizeNames, type CompiledPolicy } from './names.js';
import { renewalWindow, type RenewalWindow } from './renewal.js';
import { normalizeSerial } from './serials.js';
import { computeValidity, parseTtl, type ValidityRules } from './validity.js';

export interface CertificateView {
  serial: string;
  identity: string;
  sans: SubjectAltNames;
  notBefore: Date;
  notAfter: Date;
  status: CertificateStatus;
  revokedAt: Date | null;
  revocationReason: RevocationReason | null;
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
}

export interface IssueRequest {
  csr: string;
  ttl?: string | number | undefined;
}

export interface CertificateAuthority {
  issue(principal: Principal, request: IssueRequest): Promise<Issuance>;
  /** The record, for its owner or an admin. */
  get(principal: Principal, serial: string): Promise<CertificateView>;
}

export interface CertificateAuthorityDeps {
  store: Store;
  /** Per-identity issuance limits; absent: none. */
  limiter?: IssuanceLimiter;
  signer: Signer;
  policies: CompiledPolicy[];
  validity: ValidityRules;
  clock: Clock;
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
    certificate: certificatePem(record.der),
  };
}

export function createCertificateAuthority(deps: CertificateAuthorityDeps): CertificateAuthority {
  const { store, signer, policies, clock } = deps;
  const authority = signer.authority;
  const issuerKeyId = Buffer.from(authority.keyIdentifier).toString('hex');
  const chain = issuingChainPem(authority);

  const action = (principal: Principal): AuditAction => (principal.replacesKey ? 'certificate.renew' : 'certificate.issue');

  async function issue(principal: Principal, request: IssueRequest): Promise<Issuance> {
      await deps.limiter?.take(principal.identity);
      const ttl = parseTtl(request.ttl);
      const csr = parseCsr(request.csr);
      if (principal.replacesKey && Buffer.from(principal.replacesKey).equals(Buffer.from(csr.spki))) {
        throw new CaError('badPublicKey', 'a renewal needs a new key: the CSR carries the presented certificate\'s key');
      }
      const grant = authorizeNames(policies, principal.identity, principal.tokenSans, csr.sans);
      const now = clock.now();
      const validity = computeValidity(now, ttl, deps.validity, grant.maxTtl, authority);
      const issued = signer.issueLeaf({
        spki: csr.spki,
        keyType: csr.keyType,
        sans: csr.sans,
        notBefore: validity.notBefore,
        notAfter: validity.notAfter,
        extendedKeyUsage: grant.extendedKeyUsage,
      });
      await store.recordIssuance(
        {
          serial: issued.serial,
          issuerKeyId,
          identity: principal.identity,
          sans: csr.sans,
          notBefore: issued.notBefore,
          notAfter: issued.notAfter,
          der: issued.der,
          fingerprint: issued.fingerprint,
          tokenIssuer: principal.issuer,
          tokenJti: principal.jti?.value ?? null,
        },
        principal.jti ? { issuer: principal.issuer, jti: principal.jti.value, expiresAt: principal.jti.expiresAt } : undefined,
        { at: now, actor: principal.identity, action: action(principal), detail: { issuer: principal.issuer, notAfter: issued.notAfter.toISOString(), sans: csr.sans } },
      );
      return {
        serial: issued.serial,
        identity: principal.identity,
        certificate: issued.pem,
        chain,
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        renewalInfo: renewalWindow({ ...issued, revokedAt: null }, now),
      };
  }

  return {
    async issue(principal, request) {
      try {
        return await issue(principal, request);
      } catch (err) {
        await auditRefusal(store, clock, principal, action(principal), null, err);
        throw err;
      }
    },

    async get(principal, serialText) {
      const record = await store.getCertificate(normalizeSerial(serialText));
      if (!record) throw new CaError('notFound', 'no certificate has this serial');
      if (!principal.admin && record.identity !== principal.identity) {
        throw new CaError('forbidden', 'this certificate belongs to another identity');
      }
      return viewOf(record, clock.now());
    },
  };
}
