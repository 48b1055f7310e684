/**
 * TLS `auto` mode: the API listener's own certificate, issued by this CA to itself and
 * recorded like any other certificate (no certificate leaves the service without its record).
 * The TLS key is generated in memory for each certificate and never written anywhere.
 */
import { generateKeyPairSync } from 'node:crypto';
import { isIP } from 'node:net';
import type { Clock } from '../clock.js';
import { canonicalIp } from '../ip.js';
import { RESERVED_IDENTITY_PREFIX } from '../model.js';
import type { Signer } from '../signer/signer.js';
import type { Store } from '../store/store.js';
import { canonicalDnsName } from '../x509/csr.js';
import { issuingChainPem } from './published.js';
import { computeValidity, type ValidityRules } from './validity.js';

export const SERVER_IDENTITY = `${RESERVED_IDENTITY_PREFIX}server`;

export interface ServerCertificate {
  keyPem: string;
  /** Leaf then intermediate(s), PEM. */
  certificatePem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export function sansForNames(names: string[]): { dns: string[]; ip: string[]; uri: string[]; email: string[] } {
  const dns: string[] = [];
  const ip: string[] = [];
  for (const n of names) {
    if (isIP(n)) ip.push(canonicalIp(n)!);
    else {
      const d = canonicalDnsName(n);
      if (!d) throw new Error(`server.tls.names: "${n}" is neither a DNS name nor an IP address`);
      dns.push(d);
    }
  }
  return { dns, ip, uri: [], email: [] };
}

export async function issueServerCertificate(
  deps: { signer: Signer; store: Store; clock: Clock; validity: ValidityRules },
  names: string[],
  ttlSeconds: number,
): Promise<ServerCertificate> {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const sans = sansForNames(names);
  const now = deps.clock.now();
  const validity = computeValidity(now, ttlSeconds, { ...deps.validity, maxTtl: ttlSeconds }, undefined, deps.signer.authority);
  const issued = deps.signer.issueLeaf({
    spki: publicKey.export({ type: 'spki', format: 'der' }),
    keyType: 'ecdsa-p256',
    sans,
    notBefore: validity.notBefore,
    notAfter: validity.notAfter,
    extendedKeyUsage: ['serverAuth'],
  });
  await deps.store.recordIssuance({
    serial: issued.serial,
    issuerKeyId: Buffer.from(deps.signer.authority.keyIdentifier).toString('hex'),
    identity: SERVER_IDENTITY,
    sans,
    notBefore: issued.notBefore,
    notAfter: issued.notAfter,
    der: issued.der,
    fingerprint: issued.fingerprint,
    tokenIssuer: null,
    tokenJti: null,
    csrDigest: null,
    renewedFrom: null,
  }, undefined, { at: now, actor: SERVER_IDENTITY, action: 'certificate.issue', detail: { purpose: 'the API listener\'s own certificate', sans } });
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    certificatePem: issued.pem + issuingChainPem(deps.signer.authority).join(''),
    serial: issued.serial,
    notBefore: issued.notBefore,
    notAfter: issued.notAfter,
  };
}
