/**
 * The CA's private keys behind one interface: a PEM file read into a node KeyObject, or a key in
 * a PKCS#11 token that signs there and never enters the process (signer/pkcs11.ts). The signer
 * only ever asks a key to sign and to derive secrets; nothing here hands the key itself out.
 */
import { hkdfSync, type KeyObject } from 'node:crypto';
import { isPkcs11Uri } from '../config.js';
import { CaError } from '../errors.js';
import { signatureAlgorithmFor, type SignatureAlgorithm } from './algorithms.js';
import { loadPrivateKey, type AuthorityFiles } from './authority.js';

export interface CaKey {
  readonly algorithm: SignatureAlgorithm;
  /**
   * A 32-byte secret for `purpose`, the same in every replica and worker that holds this key and
   * different for every purpose (see Signer.deriveSecret). Undefined when the key cannot derive
   * one (a token key without `ca.pkcs11.secret`).
   */
  secret(purpose: string): Buffer | undefined;
  /** Releases what the key holds open (a token session); a file key holds nothing. */
  close(): void;
}

/** HKDF-SHA-256 (RFC 5869) with the label every derived secret of service-ca shares. */
export function hkdfSecret(ikm: Uint8Array, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, 'service-ca derived secrets v1', purpose, 32));
}

/** A key read from its PEM file: node:crypto signs on it directly (no thread-pool round trip). */
export function fileKey(key: KeyObject): CaKey {
  const algorithm = signatureAlgorithmFor(key);
  return {
    algorithm,
    secret(purpose) {
      const ikm = key.export({ format: 'der', type: 'pkcs8' });
      try {
        return hkdfSecret(ikm, purpose);
      } finally {
        ikm.fill(0);
      }
    },
    close() {},
  };
}

/** The token that holds keys written as PKCS#11 URIs (`ca.pkcs11`). */
export interface TokenSettings {
  module: string;
  pin: string;
  /** PKCS#11 URI of a generic secret in the token, for derived secrets. */
  secret?: string | undefined;
}

/**
 * How each issuer's key is opened: a PEM file, or (with `ca.pkcs11`) a key in a token. The
 * PKCS#11 binding is a native module, loaded only when a token is configured.
 */
export function caKeyOpener(token: TokenSettings | undefined): (issuer: AuthorityFiles & { where: string }) => Promise<CaKey> {
  return async (issuer) => {
    if (!isPkcs11Uri(issuer.key)) return fileKey(loadPrivateKey(issuer));
    if (!token) throw new CaError('serverInternal', `${issuer.where}.key is a PKCS#11 URI: set ca.pkcs11 (module and pin)`);
    const { openTokenKey, openTokenSecret } = await import('./pkcs11.js');
    const key = await openTokenKey(issuer.key, { module: token.module, pin: token.pin }, issuer.where);
    let secret: { hmac(data: Uint8Array): Buffer; close(): void } | undefined;
    try {
      secret = token.secret ? await openTokenSecret(token.secret, { module: token.module, pin: token.pin }) : undefined;
    } catch (err) {
      key.close();
      throw err;
    }
    return {
      algorithm: key.algorithm,
      // The token computes HMAC-SHA-256 with its secret; that output is the HKDF input, so every
      // replica that opens the same token derives the same secrets and none is ever read out.
      secret: (purpose) => (secret ? hkdfSecret(secret.hmac(Buffer.from('service-ca derived secrets v1')), purpose) : undefined),
      close() {
        secret?.close();
        key.close();
      },
    };
  };
}
