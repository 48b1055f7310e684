/** The CA certificates anyone may fetch, prepared once from the signer's public facts. */
import { certificatePem, sha256Fingerprint, type AuthorityCertificates } from '../signer/authority.js';

export interface PublishedCertificates {
  rootPem: string;
  /** Intermediate then every certificate above it, root last. */
  chainPem: string;
  intermediateDer: Buffer;
  rootFingerprint: string;
  intermediateNotAfter: Date;
}

/** The `chain` of an issuance answer: the intermediate(s), never the root (docs/api.md). */
export function issuingChainPem(a: AuthorityCertificates): string[] {
  const above = a.chainDer.length > 0 ? a.chainDer.slice(0, -1) : [];
  return [a.intermediateDer, ...above].map(certificatePem);
}

export function publishedCertificates(a: AuthorityCertificates): PublishedCertificates {
  return {
    rootPem: certificatePem(a.rootDer),
    chainPem: [a.intermediateDer, ...a.chainDer].map(certificatePem).join(''),
    intermediateDer: a.intermediateDer,
    rootFingerprint: sha256Fingerprint(a.rootDer),
    intermediateNotAfter: a.notAfter,
  };
}
