/**
 * Authorizations and challenges (RFC 8555 §7.5): reading an authorization, deactivating it, and
 * answering a challenge, which starts its validation from the CA. Validation runs in the process
 * that got the request, under a claim in the database (store: claimChallenge) that lapses if
 * that process dies, so a client asking again later restarts it on any replica. A redirect
 * during http-01 is followed only to hosts the identity's policy grants.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../clock.js';
import { CaError } from '../../errors.js';
import type { AcmeAccount, AcmeAuthorization, AcmeChallenge, Store } from '../../store/store.js';
import { authorizeNames, type CompiledPolicy } from '../names.js';
import { principalOf, sansOf } from './orders.js';
import { accountOf, type Authenticated } from './requests.js';
import { acmeProblem } from './resources.js';
import { ATTEMPTS, validateChallenge, type ValidationSettings } from './validation/validate.js';
import { isIP } from 'node:net';

export interface ChallengeDeps {
  store: Store;
  clock: Clock;
  policies: CompiledPolicy[];
  validation: ValidationSettings;
  /** acme.authorizationReuse, seconds. */
  authorizationReuse: number;
  logger: Logger;
  /** Each validation's outcome (metrics). */
  onValidated?: (type: string, valid: boolean) => void;
}

export function createChallenges(deps: ChallengeDeps) {
  const { store, clock } = deps;
  const running = new Set<Promise<void>>();

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

  async function validate(account: AcmeAccount, authz: AcmeAuthorization, challenge: AcmeChallenge): Promise<void> {
    const keyAuthorization = `${challenge.token}.${account.thumbprint}`;
    const outcome = await validateChallenge(deps.validation, challenge, authz.identifier, keyAuthorization, mayFollow(account));
    deps.onValidated?.(challenge.type, outcome.valid);
    if (!outcome.valid) deps.logger.info({ challenge: challenge.id, type: challenge.type, identifier: authz.identifier.value, problem: outcome.error.kind, detail: outcome.error.detail }, 'ACME challenge failed');
    await store.acme.settleChallenge(challenge.id, outcome.valid ? { valid: true } : { valid: false, error: acmeProblem(outcome.error, 400) }, clock.now(), deps.authorizationReuse);
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
        const lease = Math.ceil((deps.validation.timeoutMs / 1000) * 2 * ATTEMPTS) + 30;
        if (authz.status === 'pending' && (await store.acme.claimChallenge(id, clock.now(), lease))) {
          const job = validate(account, authz, challenge).catch((err: unknown) => deps.logger.warn({ err: (err as Error).message, challenge: id }, 'could not record an ACME validation; the claim lapses and a new request restarts it'));
          running.add(job);
          void job.finally(() => running.delete(job));
        }
      }
      return { challenge: (await store.acme.getChallenge(id))!, authorizationId: authz.id };
    },

    /** Waits for the validations in flight (shutdown, tests). */
    async drain(): Promise<void> {
      await Promise.allSettled([...running]);
    },
  };
}

export type AcmeChallenges = ReturnType<typeof createChallenges>;
