/**
 * The AlgorithmIdentifier each CA signature algorithm writes in certificates and CRLs: RFC 5758
 * §3.2 for ECDSA (parameters absent), RFC 4055 §5 for RSA (NULL parameters), RFC 8410 §3 for
 * Ed25519 (absent). Every key back end takes them from here, so a certificate signed in a token
 * and one signed with a key file carry the same bytes.
 */
import { nullValue, oid, sequence, type Der } from '../x509/der.js';

export type SignatureAlgorithmName = 'ecdsa-with-SHA256' | 'ecdsa-with-SHA384' | 'sha256WithRSAEncryption' | 'Ed25519';

/** A fresh DER AlgorithmIdentifier (callers may hold on to it; nobody shares a buffer). */
export function signatureIdentifier(name: SignatureAlgorithmName): Der {
  switch (name) {
    case 'ecdsa-with-SHA256':
      return sequence(oid('1.2.840.10045.4.3.2'));
    case 'ecdsa-with-SHA384':
      return sequence(oid('1.2.840.10045.4.3.3'));
    case 'sha256WithRSAEncryption':
      return sequence(oid('1.2.840.113549.1.1.11'), nullValue());
    case 'Ed25519':
      return sequence(oid('1.3.101.112'));
  }
}
