/**
 * The ACME server's registration authority in one object (docs/api.md "ACME"): what the front
 * end's ACME routes (http/routes/acme.ts) call. Accounts, orders, challenges and revocation live
 * in their own files; this one builds them over the same store, policies, issuance and revoker
 * as the REST API, and publishes the directory.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../clock.js';
import type { Config } from '../../config.js';
import type { Store } from '../../store/store.js';
import type { CertificateAuthority } from '../certificates.js';
import type { CompiledPolicy } from '../names.js';
import type { IssuanceLimiter } from '../rate-limits.js';
import type { RenewalInfoService } from '../renewal-info.js';
import type { Revoker } from '../revocations.js';
import type { ValidityRules } from '../validity.js';
import { createAccounts } from './accounts.js';
import { createChallenges } from './challenges.js';
import { createNonces } from './nonces.js';
import { createOrders } from './orders.js';
import { createRequestAuthenticator } from './requests.js';
import type { AcmeUrls } from './resources.js';
import { createAcmeRevocation } from './revocation.js';
import { createNameResolver } from './validation/resolve.js';

export interface AcmeDeps {
  settings: Config['acme'];
  store: Store;
  clock: Clock;
  logger: Logger;
  policies: CompiledPolicy[];
  certificates: CertificateAuthority;
  revoker: Revoker;
  renewalInfo: RenewalInfoService;
  limiter?: IssuanceLimiter;
  validity: ValidityRules;
  /** The signer's public facts and derived secrets (never its key). */
  signer: { deriveSecret(purpose: string): Buffer; authority: { notBefore: Date; notAfter: Date } };
  /** Key ids of every configured issuer (ARI certIDs name them). */
  issuerKeyIds: readonly string[];
  /** The intermediate(s) above a leaf of an issuer, PEM: a certificate download's chain. */
  chainOf: (issuerKeyId: string) => string[];
  issuerNames: readonly string[];
  onValidated?: (type: string, valid: boolean) => void;
}

export function createAcme(deps: AcmeDeps) {
  const { settings, store, clock } = deps;
  const nonces = createNonces({ secret: deps.signer.deriveSecret('acme nonces'), clock, store });
  const accounts = createAccounts({
    store,
    clock,
    policies: deps.policies,
    ...(deps.limiter ? { limiter: deps.limiter } : {}),
    bindingSecret: deps.signer.deriveSecret('acme external account bindings'),
    bindingTtl: settings.eabTtl,
    issuerNames: deps.issuerNames,
  });
  const orders = createOrders({
    store,
    clock,
    policies: deps.policies,
    certificates: deps.certificates,
    validity: deps.validity,
    authority: deps.signer.authority,
    orderLifetime: settings.orderLifetime,
    authorizationReuse: settings.authorizationReuse,
    pendingOrdersPerAccount: settings.pendingOrdersPerAccount,
  });
  const challenges = createChallenges({
    store,
    clock,
    policies: deps.policies,
    validation: {
      resolver: createNameResolver({ server: settings.resolver, timeoutMs: settings.challengeTimeout * 1000, allowLoopback: settings.allowLoopback }),
      ports: settings.challengePorts,
      timeoutMs: settings.challengeTimeout * 1000,
    },
    authorizationReuse: settings.authorizationReuse,
    limits: settings.validations,
    logger: deps.logger,
    ...(deps.onValidated ? { onValidated: deps.onValidated } : {}),
  });
  return {
    nonces,
    authenticate: createRequestAuthenticator({ store, nonces }),
    accounts,
    orders,
    challenges,
    revocation: createAcmeRevocation({ store, revoker: deps.revoker, renewalInfo: deps.renewalInfo, issuerKeyIds: deps.issuerKeyIds }),
    chainOf: deps.chainOf,

    /** The directory (RFC 8555 §7.1.1, RFC 9773 §3). */
    directory(urls: AcmeUrls): Record<string, unknown> {
      return {
        newNonce: urls.newNonce,
        newAccount: urls.newAccount,
        newOrder: urls.newOrder,
        revokeCert: urls.revokeCert,
        keyChange: urls.keyChange,
        renewalInfo: urls.renewalInfo,
        meta: { externalAccountRequired: true },
      };
    },

    /** Deletes used nonces, spent bindings and long-expired orders (run with the other pruning). */
    async prune(): Promise<void> {
      const now = clock.now();
      await store.acme.pruneAccounts(now);
      await store.acme.pruneOrders(now);
    },

    /** Waits for validations in flight. */
    drain: () => challenges.drain(),
  };
}

export type AcmeService = ReturnType<typeof createAcme>;
