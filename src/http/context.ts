/**
 * The typed Hono context: what handlers can reach. Dependencies arrive through the app factory,
 * never through module singletons.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { Principal, Authenticator } from '../auth/principal.js';
import type { CertificateAuthority } from '../policy/certificates.js';
import type { AuditLog } from '../policy/audit.js';
import type { Lister } from '../policy/listing.js';
import type { Revoker } from '../policy/revocations.js';
import type { RenewalInfoService } from '../policy/renewal-info.js';
import type { PublishedCrl } from '../crl/publisher.js';
import type { PublishedCertificates } from '../policy/published.js';
import type { HealthCheck } from '../policy/health.js';
import type { Metrics } from '../metrics.js';
import type { FleetService } from '../policy/fleet.js';
import type { AcmeService } from '../policy/acme/service.js';
import type { IssuerStatusService } from '../policy/issuers.js';

/** Where one issuer's CRL is read for an answer (crl/publisher.ts). */
export interface CrlSource {
  snapshot(named?: number): Promise<PublishedCrl | undefined>;
}

export interface AppDeps {
  authenticator: Authenticator;
  /** The ACME server (policy/acme/service.ts); undefined unless acme.enabled. */
  acme?: AcmeService | undefined;
  /** The configured issuers' state (policy/issuers.ts). */
  issuers: IssuerStatusService;
  /** The fleet view (policy/fleet.ts). */
  fleet: FleetService;
  holderAuthenticator: Authenticator;
  certificates: CertificateAuthority;
  revoker: Revoker;
  lister: Lister;
  audit: AuditLog;
  renewalInfo: RenewalInfoService;
  /** The CRLs: the active issuer's (/v1/crl) and each configured issuer's by key id. */
  crl: { active: CrlSource; byKeyId(keyId: string): CrlSource | undefined };
  /** Cache-Control max-age of the CRL, seconds. */
  crlMaxAge: number;
  published: PublishedCertificates;
  health: HealthCheck;
  logger: Logger;
  metrics: Metrics;
  bodyLimitBytes: number;
  /** Share of successful requests logged (logging.requestSample); others are always logged. */
  requestLogSample: number;
}

export interface AppEnv {
  /** What @hono/node-server hands each request: node's own request and response. */
  Bindings: { incoming?: IncomingMessage };
  Variables: {
    deps: AppDeps;
    logger: Logger;
    requestId: string;
    principal: Principal;
    /** Whether the request carried a bearer token (for WWW-Authenticate error="invalid_token"). */
    bearerPresented: boolean;
  };
}
