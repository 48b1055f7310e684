/**
 * Renewal by the holder of a current certificate (docs/api.md "Certificate holder"): the token's
 * signature was checked against the x5c certificate's key in auth/holder-token.ts; here the
 * certificate must be one this CA issued (signed by a configured intermediate and byte for byte the
 * recorded one), unexpired and unrevoked. The renewal then runs as that certificate's identity,
 * limited to the names the certificate already has (a subset) and to its lifetime, with the
 * token's jti used once; policy/certificates.ts records the parent, which renews once.
 */
import { X509Certificate } from 'node:crypto';
import { verifyHolderToken } from '../auth/holder-token.js';
import type { Authenticator } from '../auth/principal.js';
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import type { Signers } from '../signer/signer.js';
import type { Store } from '../store/store.js';
import { normalizeSerial } from './serials.js';
import { SERVER_IDENTITY } from './server-certificate.js';

export const RENEWAL_ISSUER = 'renewal';

export function createHolderAuthenticator(deps: { store: Store; signers: Pick<Signers, 'all'>; clock: Clock; clockToleranceSeconds: number }): Authenticator {
  // Every configured issuer's: a certificate of a retiring issuer renews into one of the active.
  const intermediates = deps.signers.all.map((s) => new X509Certificate(s.authority.intermediateDer));
  const refuse = (detail: string) => new CaError('unauthorized', detail);
  return {
    async authenticate(token) {
      const holder = await verifyHolderToken(token, deps.clock, deps.clockToleranceSeconds, intermediates);
      const cert = new X509Certificate(holder.certificateDer);
      let serial: string;
      try {
        serial = normalizeSerial(cert.serialNumber);
      } catch {
        throw refuse('the x5c certificate was not issued by this CA');
      }
      const record = await deps.store.getCertificate(serial);
      if (!record || !Buffer.from(record.der).equals(holder.certificateDer)) throw refuse('the x5c certificate was not issued by this CA');
      if (record.identity === SERVER_IDENTITY) throw refuse('the CA\'s own server certificate cannot be renewed through the API');
      if (record.revokedAt) throw refuse('the x5c certificate is revoked');
      const now = deps.clock.now().getTime();
      if (now >= record.notAfter.getTime() || now < record.notBefore.getTime()) throw refuse('the x5c certificate is not valid now');
      return {
        identity: record.identity,
        issuer: RENEWAL_ISSUER,
        tokenSans: [...record.sans.dns, ...record.sans.ip, ...record.sans.uri, ...record.sans.email],
        jti: { value: holder.jti, expiresAt: holder.expiresAt },
        admin: false,
        renews: {
          serial: record.serial,
          spki: new Uint8Array(cert.publicKey.export({ type: 'spki', format: 'der' })),
          lifetimeSeconds: Math.floor((record.notAfter.getTime() - record.notBefore.getTime()) / 1000),
          // A renewal's record carries its lineage's issuer (policy/certificates.ts), so this is
          // the issuer of the identity token that started the lineage.
          issuer: record.tokenIssuer === RENEWAL_ISSUER ? null : record.tokenIssuer,
        },
        claims: holder.claims,
      };
    },
  };
}
