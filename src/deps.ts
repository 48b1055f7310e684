/**
 * The composition root: the only file that wires modules together. Order matters for clear
 * start-up failures: the CA key and certificates first, then the token issuers, then the
 * database (waited for, with retries).
 */
import type { Logger } from 'pino';
import { createAuditSealer } from './audit/sealer.js';
import { createAuthenticator } from './auth/authenticator.js';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import type { AppDeps } from './http/context.js';
import { createCrlPublisher, type CrlPublisher } from './crl/publisher.js';
import { createMetrics } from './metrics.js';
import { createAuditLog } from './policy/audit.js';
import { createLister } from './policy/listing.js';
import { createRenewalInfo } from './policy/renewal-info.js';
import { createIssuanceLimiter, type IssuanceLimiter } from './policy/rate-limits.js';
import { createRevoker } from './policy/revocations.js';
import { createCertificateAuthority } from './policy/certificates.js';
import { createHealthCheck } from './policy/health.js';
import { createHolderAuthenticator } from './policy/holder-renewal.js';
import { compilePolicies } from './policy/names.js';
import { publishedCertificates } from './policy/published.js';
import { issueServerCertificate, type ServerCertificate } from './policy/server-certificate.js';
import { createSigner } from './signer/signer.js';
import { createStore, type Store } from './store/store.js';

export interface Deps {
  app: AppDeps;
  store: Store;
  crl: CrlPublisher;
  /** Links the audit rows into their hash chain, about once a second. */
  auditSealer: ReturnType<typeof createAuditSealer>;
  limiter: IssuanceLimiter;
  /**
   * Deletes what no request can use any more: used token ids whose tokens can no longer be
   * accepted, and past rate-limit windows. Run every 10 minutes by `start`.
   */
  prune(): Promise<void>;
  /** Issues the API listener's own certificate (TLS auto mode). */
  issueServerCertificate(names: string[], ttlSeconds: number): Promise<ServerCertificate>;
  close(): Promise<void>;
}

async function connectWithRetry(config: Config, logger: Logger, attempts: number): Promise<Store> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createStore({
        url: config.database.url,
        poolSize: config.database.poolSize,
        dataDir: config.dataDir,
        onPoolError: (err) => logger.warn({ err: err.message }, 'an idle database connection failed; it will be replaced'),
      });
    } catch (err) {
      if (attempt >= attempts || !config.database.url) throw err;
      const waitMs = Math.min(5000, 250 * 2 ** attempt);
      logger.warn({ attempt, retryInMs: waitMs, code: (err as { code?: string }).code }, 'waiting for the database');
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}

export async function createDeps(config: Config, options: { clock: Clock; logger: Logger; databaseAttempts?: number }): Promise<Deps> {
  const { clock, logger } = options;
  const signer = createSigner({ ca: config.ca, publicUrl: config.publicUrl }, clock);
  const authenticator = createAuthenticator(config.auth, clock);
  const policies = compilePolicies(config.policies);
  const store = await connectWithRetry(config, logger, options.databaseAttempts ?? 30);
  const limiter = createIssuanceLimiter({ store, clock, limits: config.limits.issuance });
  const certificates = createCertificateAuthority({ store, signer, policies, validity: config.issuance, clock, limiter });
  const published = publishedCertificates(signer.authority);
  const metrics = createMetrics({ intermediateNotAfter: () => signer.authority.notAfter, now: () => clock.now(), poolStats: () => store.poolStats() });
  const crl = createCrlPublisher({
    store,
    signer,
    clock,
    logger,
    settings: config.crl,
    metrics: {
      generated: (seconds) => metrics.crlGenerationSeconds.observe(seconds),
      serving({ number, entries, bytes }) {
        metrics.crlEntries.set(entries);
        metrics.crlBytes.set(bytes);
        metrics.crlNumber.set(number);
      },
    },
  });
  const auditSealer = createAuditSealer({ store, logger });
  return {
    app: {
      authenticator,
      holderAuthenticator: createHolderAuthenticator({ store, signer, clock, clockToleranceSeconds: config.auth.clockTolerance }),
      certificates,
      revoker: createRevoker({ store, clock, onRevoked: () => crl.revoked() }),
      lister: createLister({ store, clock }),
      audit: createAuditLog({ store, clock }),
      renewalInfo: createRenewalInfo({ store, clock }),
      crl,
      crlMaxAge: config.crl.maxDelay,
      published,
      health: createHealthCheck(store, signer),
      logger,
      metrics,
      bodyLimitBytes: config.limits.bodyBytes,
    },
    store,
    crl,
    auditSealer,
    limiter,
    async prune() {
      // A token is accepted until exp + clockTolerance: its id must be kept until then, or a
      // replay inside that window would find it gone.
      await Promise.all([store.pruneUsedTokens(new Date(clock.now().getTime() - config.auth.clockTolerance * 1000)), limiter.prune()]);
    },
    issueServerCertificate: (names, ttl) => issueServerCertificate({ signer, store, clock, validity: config.issuance }, names, ttl),
    close: async () => {
      crl.stop();
      await auditSealer.stop();
      await store.close();
    },
  };
}
