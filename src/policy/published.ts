/** The CA certificates anyone may fetch, prepared once from the signers' public facts. */
import { certificatePem, sha256Fingerprint, type AuthorityCertificates } from '../signer/authority.js';
import type { Signers } from '../signer/signer.js';

export interface PublishedCertificates {
  rootPem: string;
  /** The active intermediate then every certificate above it, root last. */
  chainPem: string;
  /** The active intermediate. */
  intermediateDer: Buffer;
  rootFingerprint: string;
  intermediateNotAfter: Date;
  /** Every configured intermediate by issuer key id (the AIA caIssuers targets). */
  issuers: ReadonlyMap<string, Buffer>;
}

/** The `chain` of an issuance answer: the intermediate(s), never the root (docs/api.md). */
export function issuingChainPem(a: AuthorityCertificates): string[] {
  const above = a.chainDer.length > 0 ? a.chainDer.slice(0, -1) : [];
  return [a.intermediateDer, ...above].map(certificatePem);
}

/**
 * The `chain` for a certificate of the issuer with this key id: its own intermediate(s), so that a
 * certificate of a retiring issuer, downloaded or answered again after a rollover, comes with the
 * intermediate that signed it. An issuer no longer configured (its certificates have all expired)
 * gets the active issuer's.
 */
export function issuingChains(signers: Pick<Signers, 'active' | 'all'>): (issuerKeyId: string) => string[] {
  const chains = new Map(signers.all.map((s) => [s.keyId, issuingChainPem(s.authority)]));
  const active = chains.get(signers.active.keyId)!;
  return (issuerKeyId) => chains.get(issuerKeyId) ?? active;
}

export function publishedCertificates(signers: Pick<Signers, 'active' | 'all'>): PublishedCertificates {
  const a = signers.active.authority;
  return {
    rootPem: certificatePem(a.rootDer),
    chainPem: [a.intermediateDer, ...a.chainDer].map(certificatePem).join(''),
    intermediateDer: a.intermediateDer,
    rootFingerprint: sha256Fingerprint(a.rootDer),
    intermediateNotAfter: a.notAfter,
    issuers: new Map(signers.all.map((s) => [s.keyId, s.authority.intermediateDer])),
  };
}
