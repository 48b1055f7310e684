/**
 * The registration authority for certificates: it decides and orchestrates. An issuance reads as
 * one straight line: verify the CSR → check every name against policy → compute the validity →
 * the signer builds, lints and signs → the store commits the record and the used token id in one
 * transaction. Nothing is returned before that commit (docs/api.md rule: no certificate leaves the
 * service unless its record is committed).
 *
 * When the store writes nothing because the token id or the renewed certificate was used before,
 * the request may be a retry of one whose answer was lost (docs/api.md "Retries" and "Certificate
 * holder"): the same token with a byte-identical CSR, or a renewal with the same new key, is
 * answered with the certificate issued then (200). Anything else is a replay or, for a renewal,
 * a reuse of a one-time credential: 401, audited as `certificate.renew.reuse`.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { AuditAction } from '../audit/chain.js';
import type { Principal, RenewedCertificate } from '../auth/principal.js';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import { statusAt, type CertificateRecord } from '../model.js';
import type { Signer } from '../signer/signer.js';
import type { IssuanceOutcome, Store } from '../store/store.js';
import { parseCsr, parseCsrOffThread, type ParsedCsr } from '../x509/csr.js';
import { authorizeNames, type CompiledPolicy } from './names.js';
import { issuingChainPem } from './published.js';
import type { IssuanceLimiter } from './rate-limits.js';
import { auditingRefusals } from './refusals.js';
import { renewalWindow } from './renewal.js';
import { normalizeSerial } from './serials.js';
import { computeValidity, parseTtl, requestedValidity, type ValidityRules } from './validity.js';
import { issuanceOf, viewOf, type CertificateView, type Issuance } from './views.js';

export type { CertificateView, Issuance };

export interface IssueRequest {
  csr: string;
  ttl?: string | number | undefined;
  /** An exact window (ACME's notBefore/notAfter), in place of `ttl`: refused when it does not fit the caps. */
  window?: { notBefore: Date | null; notAfter: Date; acceptedAt?: Date | undefined } | undefined;
  /** Added to the audit row's detail (ACME: the account and order). */
  auditDetail?: Record<string, unknown> | undefined;
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
  /** The chain answered with a certificate of each issuer (policy/published.ts issuingChains); default: the signer's. */
  chainOf?: (issuerKeyId: string) => string[];
  policies: CompiledPolicy[];
  validity: ValidityRules;
  clock: Clock;
  /** A renewal presented an already renewed certificate with another key (for the metric an operator alerts on). */
  onRenewalReuse?: () => void;
  /**
   * Where the CSR's self-signature is checked: `inline` on the calling thread, `threadPool` on
   * libuv's (x509/csr.ts parseCsrOffThread). The thread pool pays where a core would otherwise
   * idle: one process on two cores (PGlite) went from 0.79 to 0.89 of step-ca; with a process
   * per core it costs a round trip for nothing (Postgres went from 1.19 to 1.14;
   * docs/performance.md). Default `inline`.
   */
  csrSignatureCheck?: 'inline' | 'threadPool';
}

/** Refusals of a second renewal with another key: known by identity, to audit them under their own action. */
const reuses = new WeakSet<object>();

function reuseRefusal(parent: string): CaError {
  const err = new CaError(
    'unauthorized',
    `certificate ${parent} has already been renewed with another key: a certificate renews once (its key may be in someone else's hands)`,
  );
  reuses.add(err);
  return err;
}

const sameBytes = (a: Uint8Array | null, b: Uint8Array) => a !== null && Buffer.from(a).equals(Buffer.from(b));
const spkiOf = (der: Uint8Array) => new Uint8Array(new X509Certificate(der).publicKey.export({ type: 'spki', format: 'der' }));

export function createCertificateAuthority(deps: CertificateAuthorityDeps): CertificateAuthority {
  const { store, signer, policies, clock } = deps;
  const authority = signer.authority;
  const issuerKeyId = Buffer.from(authority.keyIdentifier).toString('hex');
  const chain = issuingChainPem(authority);
  // A retried request may find a certificate issued before a rollover: it gets its own issuer's chain.
  const chainOf = (record: CertificateRecord) => (record.issuerKeyId === issuerKeyId ? chain : (deps.chainOf?.(record.issuerKeyId) ?? chain));

  const action = (principal: Principal): AuditAction => (principal.renews ? 'certificate.renew' : 'certificate.issue');

  /** Answers a request whose record the store did not write, or throws why. */
  async function retried(
    principal: Principal,
    csr: ParsedCsr,
    digest: Uint8Array,
    outcome: Exclude<IssuanceOutcome, 'recorded'>,
    /** The renewal already made, when the caller has read it. */
    known?: CertificateRecord,
  ): Promise<Issuance> {
    const now = clock.now();
    const answerable = (record: CertificateRecord) => record.identity === principal.identity && statusAt(record, now) === 'valid';
    const renews = principal.renews;
    if (renews) {
      if (outcome === 'parentInvalid') throw new CaError('unauthorized', 'the x5c certificate is no longer valid (revoked or expired)');
      const child = known ?? (await store.renewalOf(renews.serial));
      if (child) {
        if (sameBytes(spkiOf(child.der), csr.spki)) {
          if (answerable(child)) return issuanceOf(child, chainOf(child), now);
          throw new CaError('unauthorized', `certificate ${renews.serial} was renewed as ${child.serial}, which is no longer valid (revoked or expired)`);
        }
        deps.onRenewalReuse?.();
        throw reuseRefusal(renews.serial);
      }
    } else if (principal.jti) {
      const first = await store.issuedWithToken(principal.issuer, principal.jti.value);
      if (first && answerable(first) && sameBytes(first.csrDigest, digest)) return issuanceOf(first, chainOf(first), now);
    }
    throw new CaError('unauthorized', 'this token has already been used (jti replay)');
  }

  async function issue(principal: Principal, request: IssueRequest): Promise<Issuance> {
    await deps.limiter?.take(principal.identity);
    const ttl = parseTtl(request.ttl);
    const csr = deps.csrSignatureCheck === 'threadPool' ? await parseCsrOffThread(request.csr) : parseCsr(request.csr);
    const renews: RenewedCertificate | undefined = principal.renews;
    if (renews && sameBytes(renews.spki, csr.spki)) {
      throw new CaError('badPublicKey', 'a renewal needs a new key: the CSR carries the presented certificate\'s key');
    }
    // A renewal is judged as its lineage's identity token was (a policy's `issuers`).
    const issuer = renews ? (renews.issuer ?? principal.issuer) : principal.issuer;
    const grant = authorizeNames(policies, principal.identity, principal.tokenSans, csr.sans, issuer);
    const digest = createHash('sha256').update(csr.der).digest();
    // A certificate renewed before: a retry or a reuse, answered without signing anything (the
    // renewal statement below still decides whatever races past this look).
    const renewal = renews ? await store.renewalOf(renews.serial) : undefined;
    if (renewal) return retried(principal, csr, digest, 'parentRenewed', renewal);
    const now = clock.now();
    // A renewal gets at most its parent's lifetime: a key alone never buys a longer certificate.
    const maxTtl = Math.min(grant.maxTtl ?? Infinity, renews?.lifetimeSeconds ?? Infinity);
    const policyMaxTtl = Number.isFinite(maxTtl) ? maxTtl : undefined;
    const validity = request.window
      ? requestedValidity(now, request.window, deps.validity, policyMaxTtl, authority)
      : computeValidity(now, ttl, deps.validity, policyMaxTtl, authority);
    const issued = signer.issueLeaf({
      spki: csr.spki,
      keyType: csr.keyType,
      sans: csr.sans,
      notBefore: validity.notBefore,
      notAfter: validity.notAfter,
      extendedKeyUsage: grant.extendedKeyUsage,
    });
    const renewedFrom = renews?.serial ?? null;
    const outcome = await store.recordIssuance(
      {
        serial: issued.serial,
        issuerKeyId,
        identity: principal.identity,
        sans: csr.sans,
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        der: issued.der,
        fingerprint: issued.fingerprint,
        // A renewal's record keeps its lineage's issuer; its holder token's id lives only in
        // used_tokens (namespace `renewal`), so that the retry lookup by (issuer, jti) never finds it.
        tokenIssuer: issuer,
        tokenJti: renews ? null : (principal.jti?.value ?? null),
        csrDigest: digest,
        renewedFrom,
      },
      principal.jti ? { issuer: principal.issuer, jti: principal.jti.value, expiresAt: principal.jti.expiresAt } : undefined,
      {
        at: now,
        actor: principal.identity,
        action: action(principal),
        detail: { issuer: principal.issuer, notAfter: issued.notAfter.toISOString(), sans: csr.sans, ...(renewedFrom ? { renewedFrom } : {}), ...request.auditDetail },
      },
    );
    if (outcome !== 'recorded') return retried(principal, csr, digest, outcome);
    return {
      serial: issued.serial,
      identity: principal.identity,
      certificate: issued.pem,
      chain,
      notBefore: issued.notBefore,
      notAfter: issued.notAfter,
      renewalInfo: renewalWindow({ ...issued, revokedAt: null }, now),
      created: true,
    };
  }

  return {
    issue: (principal, request) =>
      auditingRefusals(
        { store, clock },
        principal,
        { action: (err) => (reuses.has(err as object) ? 'certificate.renew.reuse' : action(principal)), serial: principal.renews?.serial ?? null },
        () => issue(principal, request),
      ),

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
