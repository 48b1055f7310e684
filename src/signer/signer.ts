/**
 * The CA: the only holder of key material. It builds certificates from checked templates,
 * lints them against the profile and signs them. Each configured issuer's key is opened once at
 * start-up (signer/keys.ts): a file key is kept in this closure as a node KeyObject (node:crypto
 * signs on it directly, without the thread pool round trip of WebCrypto), a token key stays in
 * its token; nothing outside this module can reach either. Only the active issuer signs
 * certificates; every loaded issuer signs its own CRLs.
 */
import { createPublicKey, randomBytes, X509Certificate, verify as nodeVerify, type KeyObject } from 'node:crypto';
import type { Clock } from '../clock.js';
import type { CaIssuerSettings } from '../config.js';
import { CaError } from '../errors.js';
import { certificatePem, loadAuthority, loadCertificates, loadPrivateKey, sha256Fingerprint, type AuthorityCertificates, type AuthorityFiles } from './authority.js';
import type { SignatureAlgorithm } from './algorithms.js';
import { fileKey, type CaKey } from './keys.js';
import { encodeSigned, leafEncoder, type IssuerProfile, type LeafTemplate } from './leaf-profile.js';
import { lintLeaf } from './lint.js';
import { assertWellFormedDer } from '../x509/der.js';
import { encodeCrlTbs, encodeSignedCrl, type CrlEntries, type CrlHeader } from './crl-profile.js';

export type LeafRequest = Omit<LeafTemplate, 'serial'>;

export interface IssuedCertificate {
  serial: string;
  der: Buffer;
  pem: string;
  fingerprint: string;
  notBefore: Date;
  notAfter: Date;
}

export interface Signer {
  readonly authority: AuthorityCertificates;
  /** The issuer key id: lowercase hex of the intermediate's SubjectKeyIdentifier. */
  readonly keyId: string;
  /** The signature algorithm's name, e.g. ecdsa-with-SHA256. */
  readonly algorithm: string;
  /** Whether this issuer signs new certificates (exactly one of a set does). */
  readonly active: boolean;
  /** For a retiring issuer: when holders of its certificates are told to have renewed. */
  readonly renewBy: Date | undefined;
  issueLeaf(request: LeafRequest): IssuedCertificate;
  /** Signs a CRL over the entries the caller appended (RFC 5280 §5); returns its DER. */
  signCrl(header: CrlHeader, entries: CrlEntries): Buffer;
  /** Signs and verifies a probe value: the readiness check of the key. */
  selfTest(): boolean;
  /**
   * A 32-byte secret for `purpose`, the same in every replica and worker that holds this CA key
   * and different for every purpose: HKDF-SHA-256 (RFC 5869) over the key's PKCS#8 encoding, or
   * for a key in a token over an HMAC the token computes with `ca.pkcs11.secret`. It keys the
   * MACs of ACME nonces and external account bindings, so that neither needs a secret in the
   * database nor in any process's memory but this module's. The key itself never leaves; a
   * secret does not reveal it (HKDF and HMAC are one-way).
   */
  deriveSecret(purpose: string): Buffer;
}

/** Every configured issuer: the active one signs new certificates, all sign their own CRLs. */
export interface Signers {
  readonly active: Signer;
  /** In the order configured. */
  readonly all: readonly Signer[];
  /** The issuer with this key id, if it is configured. */
  byKeyId(keyId: string): Signer | undefined;
  /** Closes what the keys hold open (token sessions). */
  close(): void;
}

export interface SignerConfig {
  ca: AuthorityFiles;
  publicUrl: string;
}

/**
 * A fresh serial from the CSPRNG: 20 octets with the top bit clear, so it is positive, at most
 * 20 octets (RFC 5280 §4.1.2.2) and holds 159 random bits (docs/api.md asks for at least 127).
 */
export function newSerial(): Uint8Array {
  const bytes = randomBytes(20);
  bytes[0] = bytes[0]! & 0x7f;
  if (bytes[0] === 0) bytes[0] = 1;
  return bytes;
}

/** Serial text per docs/api.md: lower-case hex of the INTEGER content without a 00 sign octet. */
export function serialHex(serial: Uint8Array): string {
  let start = 0;
  while (start < serial.length - 1 && serial[start] === 0) start++;
  return Buffer.from(serial.subarray(start)).toString('hex');
}

/** A signer over one issuer file key: the one-issuer form, for tools and tests. */
export function createSigner(config: SignerConfig, clock: Clock): Signer {
  const { key, ...authority } = loadAuthority(config.ca, clock.now());
  return signerFor({ authority, key: fileKey(key), publicUrl: config.publicUrl, active: true, renewBy: undefined, where: config.ca.where ?? 'ca' });
}

export interface IssuerKeys {
  authority: AuthorityCertificates;
  key: CaKey;
  publicUrl: string;
  active: boolean;
  renewBy: Date | undefined;
  where: string;
}

export function signerFor(issuer: IssuerKeys): Signer {
  const { authority, key, publicUrl } = issuer;
  const algorithm = key.algorithm;
  const keyId = authority.keyId;
  const profile: IssuerProfile = {
    subjectDer: authority.subjectDer,
    keyIdentifier: authority.keyIdentifier,
    signatureAlgorithm: algorithm.identifier,
    // Each leaf names its own issuer's CRL and certificate (docs/api.md "Several issuers"), so a
    // later rollover strands no certificate outside every CRL.
    crlUrl: `${publicUrl}/v1/crl/${keyId}`,
    caIssuersUrl: `${publicUrl}/v1/ca/issuers/${keyId}.der`,
  };
  const publicKey = new X509Certificate(authority.intermediateDer).publicKey;
  const encodeTbs = leafEncoder(profile);
  const secrets = new Map<string, Buffer>();

  return {
    authority,
    keyId,
    algorithm: algorithm.name,
    active: issuer.active,
    renewBy: issuer.renewBy,
    issueLeaf(request) {
      if (!issuer.active) throw new CaError('serverInternal', `issuer ${keyId} is not active: only the active issuer signs certificates`);
      const template: LeafTemplate = { ...request, serial: newSerial() };
      lintLeaf(template, authority.notBefore, authority.notAfter);
      const tbs = encodeTbs(template);
      try {
        assertWellFormedDer(tbs);
      } catch {
        throw new CaError('serverInternal', 'pre-issuance lint failed: TBS certificate is not well-formed DER');
      }
      const der = Buffer.from(encodeSigned(tbs, algorithm.identifier, algorithm.sign(tbs)));
      return {
        serial: serialHex(template.serial),
        der,
        pem: certificatePem(der),
        fingerprint: sha256Fingerprint(der),
        notBefore: template.notBefore,
        notAfter: template.notAfter,
      };
    },
    signCrl(header, entries) {
      if (header.nextUpdate.getTime() > authority.notAfter.getTime()) {
        header = { ...header, nextUpdate: authority.notAfter };
      }
      if (!(header.thisUpdate.getTime() < header.nextUpdate.getTime())) throw new CaError('serverInternal', 'CRL thisUpdate must precede nextUpdate (is the issuer expired?)');
      const tbs = encodeCrlTbs(header, { subjectDer: authority.subjectDer, keyIdentifier: authority.keyIdentifier, signatureAlgorithm: algorithm.identifier }, entries);
      return encodeSignedCrl(tbs, algorithm.identifier, algorithm.sign(tbs));
    },
    deriveSecret(purpose) {
      let secret = secrets.get(purpose);
      if (!secret) {
        secret = key.secret(purpose) ?? (() => {
          throw new CaError('serverInternal', `${issuer.where}.key is in a token: set ca.pkcs11.secret to derive secrets for ${purpose}`);
        })();
        secrets.set(purpose, secret);
      }
      return secret;
    },
    selfTest: () => signsFor(algorithm, publicKey),
  };
}

/** An issuer left out at start-up: past its notAfter, so none of its certificates is still valid. */
export interface SkippedIssuer {
  keyId: string;
  where: string;
  notAfter: Date;
}

/**
 * Loads every configured issuer (docs/api.md "Several issuers"). Start-up is refused when an
 * issuer's files do not load, two issuers share a key id, issuers end at different roots, or the
 * active issuer is not valid now. A retiring issuer past its notAfter is left out (`skipped`):
 * its certificates have all expired (none outlives its issuer), so it has nothing left to revoke.
 */
export async function createSigners(config: { ca: CaIssuerSettings[]; publicUrl: string; openKey?: (issuer: CaIssuerSettings) => Promise<CaKey> }, clock: Clock): Promise<{ signers: Signers; skipped: SkippedIssuer[] }> {
  const now = clock.now();
  const loaded: Signer[] = [];
  const skipped: SkippedIssuer[] = [];
  const keys: CaKey[] = [];
  try {
    for (const issuer of config.ca) {
      const authority = loadCertificates(issuer, now, { allowExpired: !issuer.active });
      if (authority.notAfter.getTime() <= now.getTime()) {
        skipped.push({ keyId: authority.keyId, where: issuer.where, notAfter: authority.notAfter });
        continue;
      }
      const key = config.openKey ? await config.openKey(issuer) : fileKey(loadPrivateKey(issuer));
      keys.push(key);
      if (!signsFor(key.algorithm, createPublicKey({ key: authority.spki, format: 'der', type: 'spki' }))) {
        throw new CaError('serverInternal', `${issuer.where}.key: the private key does not match ${issuer.where}.certificate`);
      }
      const other = loaded.find((s) => s.keyId === authority.keyId);
      if (other) throw new CaError('serverInternal', `${issuer.where}.certificate: has the key id ${authority.keyId} of another issuer (listed twice?)`);
      const first = loaded[0];
      if (first && !first.authority.rootDer.equals(authority.rootDer)) {
        throw new CaError('serverInternal', `${issuer.where}.chain: ends at another root than the first issuer's; every issuer must chain to the same root`);
      }
      loaded.push(signerFor({ authority, key, publicUrl: config.publicUrl, active: issuer.active, renewBy: issuer.renewBy, where: issuer.where }));
    }
  } catch (err) {
    for (const key of keys) key.close();
    throw err;
  }
  const active = loaded.find((s) => s.active);
  if (!active) throw new CaError('serverInternal', 'ca: no active issuer could be loaded');
  const byId = new Map(loaded.map((s) => [s.keyId, s]));
  return {
    signers: {
      active,
      all: loaded,
      byKeyId: (keyId) => byId.get(keyId.toLowerCase()),
      close: () => keys.forEach((k) => k.close()),
    },
    skipped,
  };
}

/**
 * Whether `algorithm` makes signatures that `publicKey` verifies: the check that a key is the
 * certificate's (a token key cannot be compared any other way) and the readiness probe. A key
 * that cannot sign (a token gone) is false, not an exception.
 */
function signsFor(algorithm: SignatureAlgorithm, publicKey: KeyObject): boolean {
  try {
    const probe = randomBytes(32);
    return nodeVerify(hashOf(algorithm.name), probe, { key: publicKey, dsaEncoding: 'der' }, algorithm.sign(probe));
  } catch {
    return false;
  }
}

/** The digest a signature algorithm of ours signs over (node:crypto's name; Ed25519 none). */
function hashOf(name: string): string | null {
  return name === 'Ed25519' ? null : name.endsWith('384') ? 'sha384' : 'sha256';
}
