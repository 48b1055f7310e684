/**
 * The typed Hono context: what handlers can reach. Dependencies arrive through the app factory,
 * never through module singletons.
 */
import type { Logger } from 'pino';
import type { Principal, Authenticator } from '../auth/principal.js';
import type { CertificateAuthority } from '../policy/certificates.js';
import type { PublishedCertificates } from '../policy/published.js';
import type { HealthCheck } from '../policy/health.js';
import type { Metrics } from '../metrics.js';

export interface AppDeps {
  authenticator: Authenticator;
  certificates: CertificateAuthority;
  published: PublishedCertificates;
  health: HealthCheck;
  logger: Logger;
  metrics: Metrics;
  bodyLimitBytes: number;
}

export interface AppEnv {
  Variables: {
    deps: AppDeps;
    logger: Logger;
    requestId: string;
    principal: Principal;
    /** Whether the request carried a bearer token (for WWW-Authenticate error="invalid_token"). */
    bearerPresented: boolean;
  };
}
