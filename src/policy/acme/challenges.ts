/**
 * Authorizations and challenges (RFC 8555 §7.5): reading an authorization, deactivating it, and
 * answering a challenge, which starts its validation from the CA. Validation runs in the process
 * that got the request, under a claim in the database (store: claimChallenge) that lapses if
 * that process dies, so a client asking again later restarts it on any replica; one challenge of
 * an authorization at a time, at most `limits.perAccount` of an account over all replicas and
 * `limits.perProcess` in this process. A redirect during http-01 is followed only to hosts the
 * identity's policy grants. At shutdown the validations in flight stop without a verdict.
 */
import { setMaxListeners } from 'node:events';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Clock } from '../../clock.js';
import { CaError } from '../../errors.js';
import type { AcmeAccount, AcmeAuthorization, AcmeChallenge, Store } from '../../store/store.js';
import { authorizeNames, type CompiledPolicy } from '../names.js';
import { principalOf, sansOf } from './orders.js';
import { accountOf, type Authenticated } from './requests.js';
import { acmeProblem } from './resources.js';
import { longestValidationMs, validateChallenge, type ValidationSettings } from './validation/validate.js';

export interface ChallengeDeps {
  store: Store;
  clock: Clock;
  policies: CompiledPolicy[];
  validation: ValidationSettings;
  /** acme.authorizationReuse, seconds. */
  authorizationReuse: number;
  /** acme.validations. */
  limits: { perProcess: number; perAccount: number };
  logger: Logger;
  /** Each validation's outcome (metrics). */
  onValidated?: (type: string, valid: boolean) => void;
}

export function createChallenges(deps: ChallengeDeps) {
  const { store, clock } = deps;
  const running = new Set<Promise<void>>();
  const stopping = new AbortController();
  // Every validation in flight (up to acme.validations.perProcess) listens for the stop.
  setMaxListeners(0, stopping.signal);
  // The claim outlives the longest validation, with room for recording its outcome.
  const lease = Math.ceil(longestValidationMs(deps.validation.timeoutMs) / 1000) + 30;

  async function ownAuthorization(account: AcmeAccount, id: string): Promise<AcmeAuthorization> {
    const authz = await store.acme.getAuthorization(id, clock.now());
    if (!authz) throw new CaError('notFound', 'no such authorization');
    if (authz.accountId !== account.id) throw new CaError('unauthorized', 'this authorization belongs to another account');
    return authz;
  }

  /** Whether the account's identity may have this host: where an http-01 redirect may lead. */
  const mayFollow = (account: AcmeAccount) => (host: string) => {
    const principal = principalOf(account);
    try {
      authorizeNames(deps.policies, principal.identity, principal.tokenSans, sansOf([{ type: isIP(host) ? 'ip' : 'dns', value: host.toLowerCase() }]), principal.issuer);
      return true;
    } catch {
      return false;
    }
  };

  async function validate(account: AcmeAccount, authz: AcmeAuthorization, challenge: AcmeChallenge, claim: Date): Promise<void> {
    const keyAuthorization = `${challenge.token}.${account.thumbprint}`;
    const outcome = await validateChallenge(deps.validation, challenge, authz.identifier, keyAuthorization, mayFollow(account), stopping.signal);
    if (outcome === 'stopped') return;
    deps.onValidated?.(challenge.type, outcome.valid);
    if (!outcome.valid) deps.logger.info({ challenge: challenge.id, type: challenge.type, identifier: authz.identifier.value, problem: outcome.error.kind, detail: outcome.error.detail }, 'ACME challenge failed');
    await store.acme.settleChallenge(challenge.id, claim, outcome.valid ? { valid: true } : { valid: false, error: acmeProblem(outcome.error, 400) }, clock.now(), deps.authorizationReuse);
  }

  /** Refuses a validation beyond this process's or the account's limit (the challenge stays pending). */
  async function checkLimits(account: AcmeAccount, now: Date): Promise<void> {
    if (running.size >= deps.limits.perProcess) {
      throw new CaError('rateLimited', `this replica is validating ${running.size} challenges; answer the challenge again shortly`, { retryAfter: 5 });
    }
    const inFlight = await store.acme.validationsInFlight(account.id, now);
    if (inFlight >= deps.limits.perAccount) {
      throw new CaError('rateLimited', `this account has ${inFlight} validations in flight (at most ${deps.limits.perAccount}); answer the challenge again once one ends`, { retryAfter: 5 });
    }
  }

  return {
    /** POST-as-GET an authorization, or deactivate it with {"status": "deactivated"}. */
    async authorization(auth: Authenticated, id: string): Promise<AcmeAuthorization> {
      const account = accountOf(auth);
      const authz = await ownAuthorization(account, id);
      const payload = auth.payload;
      if (payload && payload.status !== undefined) {
        if (payload.status !== 'deactivated') throw new CaError('malformed', 'an authorization\'s status can only be set to "deactivated"');
        if (!(await store.acme.deactivateAuthorization(id))) throw new CaError('malformed', `the authorization is ${authz.status}: only pending or valid ones can be deactivated`);
        return ownAuthorization(account, id);
      }
      return authz;
    },

    /**
     * A challenge: POST-as-GET reads it; a POST of `{}` asks the CA to validate it (once: a
     * challenge already processing or settled is returned as it is).
     */
    async challenge(auth: Authenticated, id: string): Promise<{ challenge: AcmeChallenge; authorizationId: string }> {
      const account = accountOf(auth);
      const challenge = await store.acme.getChallenge(id);
      if (!challenge) throw new CaError('notFound', 'no such challenge');
      const authz = await ownAuthorization(account, challenge.authorizationId);
      if (auth.payload !== undefined) {
        if (Object.keys(auth.payload).length > 0) throw new CaError('malformed', 'a challenge response is the empty object {}');
        const now = clock.now();
        // Another challenge of this authorization being validated: this one waits (the claim below refuses it), uncounted.
        const another = authz.challenges.some((c) => c.id !== id && c.status === 'processing');
        if (challenge.status === 'pending' && authz.status === 'pending' && !another && !stopping.signal.aborted) await checkLimits(account, now);
        const claim = authz.status === 'pending' && !stopping.signal.aborted ? await store.acme.claimChallenge(id, now, lease) : undefined;
        if (claim) {
          const job = validate(account, authz, challenge, claim).catch((err: unknown) => deps.logger.warn({ err: (err as Error).message, challenge: id }, 'could not record an ACME validation; the claim lapses and a new request restarts it'));
          running.add(job);
          void job.finally(() => running.delete(job));
        }
      }
      return { challenge: (await store.acme.getChallenge(id))!, authorizationId: authz.id };
    },

    /** Stops the validations in flight (shutdown) and waits for them: their claims lapse, and a client asking again restarts them. */
    async drain(): Promise<void> {
      stopping.abort();
      await Promise.allSettled([...running]);
    },
  };
}

export type AcmeChallenges = ReturnType<typeof createChallenges>;
