/**
 * revokeCert (RFC 8555 §7.6) and ARI's renewalInfo (RFC 9773). A revocation is signed either by
 * an account of the certificate's identity or by the certificate's own key, and goes through the
 * same revoker as the REST API (policy/revocations.ts): the same reasons, audit row and CRL. The
 * renewal window is the REST API's (/v1/certificates/{serial}/renewal-info).
 */
import { X509Certificate } from 'node:crypto';
import { publicJwk, thumbprintOf } from '../../auth/acme-jws.js';
import { CaError } from '../../errors.js';
import { REVOCATION_REASONS, type RevocationReason } from '../../model.js';
import type { Store } from '../../store/store.js';
import type { RenewalInfo, RenewalInfoService } from '../renewal-info.js';
import type { Revoker, RevokedView } from '../revocations.js';
import { normalizeSerial } from '../serials.js';
import type { Authenticated } from './requests.js';

const REASON_BY_CODE = new Map<number, RevocationReason>(Object.entries(REVOCATION_REASONS).map(([name, code]) => [code, name as RevocationReason]));

function reasonOf(value: unknown): RevocationReason {
  if (value === undefined) return 'unspecified';
  const reason = typeof value === 'number' ? REASON_BY_CODE.get(value) : undefined;
  if (!reason) throw new CaError('badRevocationReason', `reason must be one of the codes ${[...REASON_BY_CODE.keys()].join(', ')}`);
  return reason;
}

/** Lower-case hex of serial octets without a leading 00 sign octet (docs/api.md "Conventions"). */
const serialText = (octets: Buffer) => normalizeSerial(octets.toString('hex'));

export function createAcmeRevocation(deps: { store: Store; revoker: Revoker; renewalInfo: RenewalInfoService; issuerKeyIds: readonly string[] }) {
  return {
    async revokeCert(auth: Authenticated): Promise<RevokedView> {
      const { certificate, reason } = auth.payload ?? {};
      if (typeof certificate !== 'string' || !/^[A-Za-z0-9_-]+$/.test(certificate)) throw new CaError('malformed', 'certificate must be the base64url DER of the certificate');
      const der = Buffer.from(certificate, 'base64url');
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(der);
      } catch {
        throw new CaError('malformed', 'certificate is not a DER X.509 certificate');
      }
      const name = reasonOf(reason);
      const serial = normalizeSerial(cert.serialNumber.length % 2 ? `0${cert.serialNumber}` : cert.serialNumber);
      const record = await deps.store.getCertificate(serial);
      if (!record || !Buffer.from(record.der).equals(der)) throw new CaError('notFound', 'this CA did not issue this certificate');
      if (auth.account) {
        if (auth.account.identity !== record.identity) throw new CaError('unauthorized', 'this certificate belongs to another identity than this account\'s');
      } else {
        const keyJwk = publicJwk(cert.publicKey.export({ format: 'jwk' }));
        if ((await thumbprintOf(keyJwk)) !== auth.thumbprint) throw new CaError('unauthorized', 'the request is signed neither by an account nor by the certificate\'s key');
      }
      const principal = { identity: record.identity, issuer: auth.account?.issuer ?? record.tokenIssuer ?? '', tokenSans: undefined, jti: undefined, admin: false, claims: {} };
      return deps.revoker.revoke(principal, serial, name);
    },

    /** GET renewalInfo/{certID}: certID is base64url(authority key identifier) "." base64url(serial octets). */
    async renewalInfo(certId: string): Promise<RenewalInfo> {
      const m = /^([A-Za-z0-9_-]{1,128})\.([A-Za-z0-9_-]{1,32})$/.exec(certId);
      if (!m) throw new CaError('malformed', 'a certID is base64url(key identifier) "." base64url(serial)');
      // Any configured issuer's: holders of a retiring issuer's certificates are told to renew early.
      if (!deps.issuerKeyIds.includes(Buffer.from(m[1]!, 'base64url').toString('hex'))) throw new CaError('notFound', 'no certificate of this CA has this certID');
      return deps.renewalInfo.get(serialText(Buffer.from(m[2]!, 'base64url')));
    },
  };
}

export type AcmeRevocation = ReturnType<typeof createAcmeRevocation>;
