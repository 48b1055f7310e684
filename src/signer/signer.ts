/**
 * The CA: the only holder of key material. It builds certificates from checked templates,
 * lints them against the profile and signs them. The private key is read once at start-up and
 * kept in this closure as a node KeyObject (node:crypto signs on it directly, without the thread
 * pool round trip of WebCrypto); nothing outside this module can reach it.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { X509Certificate, verify as nodeVerify } from 'node:crypto';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import { signatureAlgorithmFor } from './algorithms.js';
import { certificatePem, loadAuthority, sha256Fingerprint, type AuthorityCertificates, type AuthorityFiles } from './authority.js';
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
  /** The signature algorithm's name, e.g. ecdsa-with-SHA256. */
  readonly algorithm: string;
  issueLeaf(request: LeafRequest): IssuedCertificate;
  /** Signs a CRL over the entries the caller appended (RFC 5280 §5); returns its DER. */
  signCrl(header: CrlHeader, entries: CrlEntries): Buffer;
  /** Signs and verifies a probe value: the readiness check of the key. */
  selfTest(): boolean;
  /**
   * A 32-byte secret for `purpose`, the same in every replica and worker that holds this CA key
   * and different for every purpose: HKDF-SHA-256 (RFC 5869) over the key's PKCS#8 encoding.
   * It keys the MACs of ACME nonces and external account bindings, so that neither needs a
   * secret in the database nor in any process's memory but this module's. The key itself never
   * leaves; a secret does not reveal it (HKDF is one-way).
   */
  deriveSecret(purpose: string): Buffer;
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

export function createSigner(config: SignerConfig, clock: Clock): Signer {
  const loaded = loadAuthority(config.ca, clock.now());
  const { key, ...authority } = loaded;
  const algorithm = signatureAlgorithmFor(key);
  const issuer: IssuerProfile = {
    subjectDer: authority.subjectDer,
    keyIdentifier: authority.keyIdentifier,
    signatureAlgorithm: algorithm.identifier,
    crlUrl: `${config.publicUrl}/v1/crl`,
    caIssuersUrl: `${config.publicUrl}/v1/ca/intermediate.der`,
  };
  const publicKey = new X509Certificate(authority.intermediateDer).publicKey;
  const encodeTbs = leafEncoder(issuer);
  const secrets = new Map<string, Buffer>();

  return {
    authority,
    algorithm: algorithm.name,
    issueLeaf(request) {
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
      if (!(header.thisUpdate.getTime() < header.nextUpdate.getTime())) throw new CaError('serverInternal', 'CRL thisUpdate must precede nextUpdate');
      if (header.nextUpdate.getTime() > authority.notAfter.getTime()) {
        header = { ...header, nextUpdate: authority.notAfter };
      }
      const tbs = encodeCrlTbs(header, { subjectDer: authority.subjectDer, keyIdentifier: authority.keyIdentifier, signatureAlgorithm: algorithm.identifier }, entries);
      return encodeSignedCrl(tbs, algorithm.identifier, algorithm.sign(tbs));
    },
    deriveSecret(purpose) {
      let secret = secrets.get(purpose);
      if (!secret) {
        const ikm = key.export({ format: 'der', type: 'pkcs8' });
        secret = Buffer.from(hkdfSync('sha256', ikm, 'service-ca derived secrets v1', purpose, 32));
        ikm.fill(0);
        secrets.set(purpose, secret);
      }
      return secret;
    },
    selfTest() {
      try {
        const probe = randomBytes(32);
        const sig = algorithm.sign(probe);
        const hash = algorithm.name === 'Ed25519' ? null : algorithm.name.endsWith('384') ? 'sha384' : 'sha256';
        return nodeVerify(hash, probe, { key: publicKey, dsaEncoding: 'der' }, sig);
      } catch {
        return false;
      }
    },
  };
}
