/**
 * The composition root: the only file that wires modules together. Order matters for clear
 * start-up failures: the CA key and certificates first, then the token issuers, then the
 * database (waited for, with retries).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { createAuditSealer } from './audit/sealer.js';
import { createAuthenticator } from './auth/authenticator.js';
import type { KeySetEvents } from './auth/key-sources.js';
import type { Clock } from './clock.js';
import { caIssuers, type Config } from './config.js';
import type { AppDeps } from './http/context.js';
import { workerCount, workerCrlCoordination } from './cluster.js';
import { createCrlPublisher, createCrlPublishers, type CrlPublishers } from './crl/publisher.js';
import { createMetrics, type Metrics } from './metrics.js';
import { createAuditLog } from './policy/audit.js';
import { createIssuerStatus } from './policy/issuers.js';
import { createLister } from './policy/listing.js';
import { createFleet, createFleetMonitor, type FleetMonitor } from './policy/fleet.js';
import { createFleetAlerts, type FleetAlerts } from './policy/fleet-alerts.js';
import { createPollRecorder, createRenewalInfo, type PollRecorder } from './policy/renewal-info.js';
import { createIssuanceLimiter, type IssuanceLimiter } from './policy/rate-limits.js';
import { createRevoker } from './policy/revocations.js';
import { createCertificateAuthority } from './policy/certificates.js';
import { createHealthCheck, type HealthCheck } from './policy/health.js';
import { createHolderAuthenticator } from './policy/holder-renewal.js';
import { compilePolicies } from './policy/names.js';
import { issuingChains, publishedCertificates } from './policy/published.js';
import { createAcme } from './policy/acme/service.js';
import { issueServerCertificate, type ServerCertificate } from './policy/server-certificate.js';
import { createSigners } from './signer/signer.js';
import { caKeyOpener } from './signer/keys.js';
import { createStore, type Store } from './store/store.js';

export interface Deps {
  app: AppDeps;
  store: Store;
  crl: CrlPublishers;
  /** Links the audit rows into their hash chain, about once a second. */
  auditSealer: ReturnType<typeof createAuditSealer>;
  limiter: IssuanceLimiter;
  /** Renewal-info polls waiting to be written (every 5 s; `start` starts the timer, close writes the rest). */
  polls: PollRecorder;
  /** The fleet gauges' counts, refreshed every monitor.refresh once started. */
  fleetMonitor: FleetMonitor;
  /** The fleet webhook (monitor.webhook), checking every interval once started; undefined without one. */
  fleetAlerts: FleetAlerts | undefined;
  /**
   * Deletes what no request can use any more: used token ids whose tokens can no longer be
   * accepted, and past rate-limit windows. Run every 10 minutes by `start`.
   */
  prune(): Promise<void>;
  /** Issues the API listener's own certificate (TLS auto mode). */
  issueServerCertificate(names: string[], ttlSeconds: number): Promise<ServerCertificate>;
  close(): Promise<void>;
}

async function connectWithRetry(config: Config, logger: Logger, attempts: number, onPoolError: () => void = () => {}): Promise<Store> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createStore({
        url: config.database.url,
        poolSize: config.database.poolSize,
        groupCommit: config.database.groupCommit,
        dataDir: config.dataDir,
        onPoolError: (err) => {
          logger.warn({ err: err.message }, 'an idle database connection failed; it will be replaced');
          onPoolError();
        },
      });
    } catch (err) {
      if (attempt >= attempts || !config.database.url) throw err;
      const waitMs = Math.min(5000, 250 * 2 ** attempt);
      logger.warn({ attempt, retryInMs: waitMs, code: (err as { code?: string }).code }, 'waiting for the database');
      await new Promise((r) => setTimeout(r, waitMs));
    }
  }
}

/** An issuer's remote keys that cannot be fetched, or are used stale: a log line and a metric. */
function keySetEvents(logger: Logger, metrics: () => Metrics): KeySetEvents {
  return {
    fetchFailed(issuer, info) {
      metrics().jwksFetchFailures.inc({ issuer });
      if (info.staleUntil) logger.warn({ issuer, ...info }, 'the identity provider\'s keys could not be refetched; its last good key set is used until staleUntil');
      else logger.error({ issuer, ...info }, 'the identity provider\'s keys could not be fetched; its tokens are refused (503) until a fetch succeeds');
    },
    staleChanged(issuer, info) {
      metrics().jwksStale.set({ issuer }, info.stale ? 1 : 0);
      if (info.stale) logger.warn({ issuer, ...info }, 'verifying tokens with a stale key set (past jwksCacheMaxAge): the identity provider does not answer');
      else logger.info({ issuer, ...info }, 'the identity provider\'s key set is fresh again');
    },
  };
}

/**
 * The names the API listener presents, which are never issued through the API: `auto` mode's
 * list, or the DNS and IP SANs of `files` mode's certificate. `off` (TLS ends at a proxy) names
 * none: reserve the proxy's names by keeping them out of every policy.
 */
function listenerNames(tls: Config['server']['tls']): string[] {
  if (tls.mode === 'auto') return tls.names;
  if (tls.mode !== 'files') return [];
  const san = new X509Certificate(readFileSync(tls.certificate)).subjectAltName ?? '';
  return san.split(', ').flatMap((entry) => {
    const m = /^(?:DNS|IP Address):(.+)$/.exec(entry);
    return m ? [m[1]!] : [];
  });
}

export async function createDeps(config: Config, options: { clock: Clock; logger: Logger; databaseAttempts?: number }): Promise<Deps> {
  const { clock, logger } = options;
  // Policies first: a wrong pattern stops start-up (ConfigError, with its key path) before the CA key loads.
  const policies = compilePolicies(config.policies, { reservedNames: listenerNames(config.server.tls) });
  const { signers, skipped } = await createSigners({ ca: caIssuers(config.ca), publicUrl: config.publicUrl, openKey: caKeyOpener(config.ca.pkcs11) }, clock);
  for (const s of skipped) logger.warn({ issuer: s.keyId, notAfter: s.notAfter }, `${s.where} has expired and is left out: every certificate it issued has expired too; remove it from the configuration`);
  const signer = signers.active;
  // Key-set events happen on requests, after `metrics` below exists.
  const authenticator = createAuthenticator(config.auth, clock, { keyEvents: keySetEvents(logger, () => metrics) });
  // A failed database connection drops the cached readiness at once (policy/health.ts).
  const readiness: { health?: HealthCheck } = {};
  const store = await connectWithRetry(config, logger, options.databaseAttempts ?? 30, () => readiness.health?.invalidate());
  const limiter = createIssuanceLimiter({ store, clock, limits: config.limits.issuance });
  const published = publishedCertificates(signers);
  const chainOf = issuingChains(signers);
  const metrics = createMetrics({
    issuers: () => signers.all.map((s) => ({ keyId: s.keyId, notAfter: s.authority.notAfter, active: s.active })),
    now: () => clock.now(),
    poolStats: () => store.poolStats(),
    publicPoolStats: () => store.publicPoolStats(),
    renewalInfoCacheSize: () => renewalInfo.size(),
    groupCommitStats: () => store.groupCommitStats(),
  });
  const health = createHealthCheck({ store, signer, clock, onCheck: (r) => metrics.readinessChecks.inc({ result: r.database && r.signer ? 'ready' : 'unready' }) });
  readiness.health = health;
  const polls = createPollRecorder({
    store,
    onError: (err, kept) => logger.warn({ err: (err as Error).message, kept }, 'could not write renewal-info polls; kept for the next batch'),
  });
  // Each retiring issuer's renewBy: renewal-info and the fleet view close its certificates' windows by then.
  const renewByIssuer = new Map(signers.all.flatMap((s) => (s.renewBy ? [[s.keyId, s.renewBy] as const] : [])));
  // Held at most half of crl.maxDelay (and 2 s): another replica's revocation opens the window well within it.
  const renewalInfo = createRenewalInfo({
    store,
    clock,
    ttlMs: Math.min(2000, (config.crl.maxDelay * 1000) / 2),
    onLookup: (result) => metrics.renewalInfoLookups.inc({ result }),
    polls,
    renewBy: (issuerKeyId) => renewByIssuer.get(issuerKeyId),
  });
  const fleetRules = {
    warningAt: config.monitor.warningAt,
    criticalAt: config.monitor.criticalAt,
    criticalRemainingMs: config.monitor.criticalRemaining * 1000,
    renewBy: renewByIssuer,
  };
  const fleetMonitor = createFleetMonitor({
    store,
    clock,
    rules: fleetRules,
    refreshSeconds: config.monitor.refresh,
    report: (counts) => metrics.setFleet(counts),
    onError: (err) => logger.warn({ err: (err as Error).message }, 'could not refresh the fleet gauges'),
  });
  const webhook = config.monitor.webhook;
  const fleetAlerts = webhook
    ? createFleetAlerts({
        store,
        clock,
        rules: fleetRules,
        webhook,
        onResult: (result) => metrics.webhookNotifications.inc({ result }),
        // The detail names the URL without credentials or query, and never a header value.
        onError: (detail) => logger.warn(detail, 'could not deliver the fleet alerts to monitor.webhook'),
      })
    : undefined;
  const certificates = createCertificateAuthority({
    store,
    signer,
    chainOf,
    policies,
    validity: config.issuance,
    clock,
    limiter,
    onRenewalReuse: () => metrics.renewalReuses.inc(),
    // Fewer serving processes than cores (always so on PGlite): a core is free for the thread pool.
    csrSignatureCheck: workerCount(config) < availableParallelism() ? 'threadPool' : 'inline',
  });
  const revoker = createRevoker({
    store,
    clock,
    limiter,
    onRevoked: () => {
      crl.revoked();
      renewalInfo.revoked();
    },
  });
  const acme = config.acme.enabled
    ? createAcme({
        settings: config.acme,
        store,
        clock,
        logger,
        policies,
        certificates,
        revoker,
        renewalInfo,
        limiter,
        validity: config.issuance,
        signer,
        issuerKeyIds: signers.all.map((s) => s.keyId),
        chainOf,
        issuerNames: config.auth.issuers.map((i) => i.name),
        onValidated: (type, valid) => metrics.acmeValidations.inc({ type, result: valid ? 'valid' : 'invalid' }),
      })
    : undefined;
  const crl = createCrlPublishers(signers, (issuer) => {
    const labels = { issuer: issuer.keyId };
    return createCrlPublisher({
      store,
      signer: issuer,
      clock,
      logger: logger.child({ issuer: issuer.keyId }),
      settings: config.crl,
      metrics: {
        generated: (seconds) => metrics.crlGenerationSeconds.observe(seconds),
        serving({ number, entries, bytes, thisUpdate }) {
          metrics.crlEntries.set(labels, entries);
          metrics.crlBytes.set(labels, bytes);
          metrics.crlNumber.set(labels, number);
          metrics.crlLastGenerated.set(labels, thisUpdate.getTime() / 1000);
        },
        checked: () => metrics.crlChecks.inc(),
        retired() {
          for (const gauge of [metrics.crlEntries, metrics.crlBytes, metrics.crlNumber, metrics.crlLastGenerated]) gauge.remove(labels);
        },
      },
      coordination: workerCrlCoordination(issuer.keyId),
    });
  });
  const auditSealer = createAuditSealer({ store, logger });
  return {
    app: {
      authenticator,
      holderAuthenticator: createHolderAuthenticator({ store, signers, clock, clockToleranceSeconds: config.auth.clockTolerance }),
      certificates,
      revoker,
      acme,
      // Refusals of these count against the caller's issuance budget too (policy/refusals.ts).
      lister: createLister({ store, clock, limiter }),
      audit: createAuditLog({ store, clock, limiter }),
      fleet: createFleet({ store, clock, limiter, rules: fleetRules }),
      issuers: createIssuerStatus({ store, clock, limiter, signers, crlOf: (keyId) => crl.byKeyId(keyId)?.current() }),
      renewalInfo,
      crl,
      crlMaxAge: config.crl.maxDelay,
      published,
      health,
      logger,
      metrics,
      bodyLimitBytes: config.limits.bodyBytes,
      requestLogSample: config.logging.requestSample,
    },
    store,
    crl,
    auditSealer,
    limiter,
    polls,
    fleetMonitor,
    fleetAlerts,
    async prune() {
      // A token is accepted until exp + clockTolerance: its id must be kept until then, or a
      // replay inside that window would find it gone.
      await Promise.all([store.pruneUsedTokens(new Date(clock.now().getTime() - config.auth.clockTolerance * 1000)), limiter.prune(), acme?.prune()]);
    },
    issueServerCertificate: (names, ttl) => issueServerCertificate({ signer, store, clock, validity: config.issuance }, names, ttl),
    close: async () => {
      // Validations in flight record their outcome before the database goes.
      await acme?.drain();
      await crl.stop();
      await auditSealer.stop();
      await fleetMonitor.stop();
      await fleetAlerts?.stop();
      // The polls noted since the last batch, before the database goes.
      await polls.stop();
      await store.close();
      signers.close();
    },
  };
}
