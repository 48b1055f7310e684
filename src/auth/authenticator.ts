/**
 * Bearer token authentication across every configured issuer: the unverified `iss` only picks
 * which issuers' checks to run; acceptance needs one of them to verify the token completely.
 */
import { decodeJwt, decodeProtectedHeader } from 'jose';
import type { Clock } from '../clock.js';
import type { Config } from '../config.js';
import { CaError } from '../errors.js';
import { createIssuerVerifier, type IssuerVerifier } from './jwt-issuer.js';
import type { KeySetEvents, KeySourceOptions } from './key-sources.js';
import type { Authenticator, Principal } from './principal.js';

/** Longest bearer token accepted (bytes); larger ones are refused before any parsing. */
export const MAX_TOKEN_LENGTH = 16 * 1024;

export interface AuthenticatorOptions {
  keySources?: KeySourceOptions;
  /** Told when an issuer's remote keys cannot be fetched, or are used past jwksCacheMaxAge. */
  keyEvents?: KeySetEvents;
}

/**
 * The admins an issuer can vouch for (docs/api.md "Identity and policy"): the plain identities of
 * `auth.admins.identities`, and the `{issuer, identity}` entries naming this issuer, so that an
 * issuer whose identity template can produce an admin's identity does not make it an admin.
 */
function adminsOf(auth: Config['auth'], issuerName: string): ReadonlySet<string> {
  return new Set(auth.admins.identities.flatMap((a) => (typeof a === 'string' ? [a] : a.issuer === issuerName ? [a.identity] : [])));
}

export function createAuthenticator(auth: Config['auth'], clock: Clock, options: AuthenticatorOptions = {}): Authenticator {
  const verifiers: IssuerVerifier[] = auth.issuers.map((config) =>
    createIssuerVerifier(config, {
      clock,
      clockToleranceSeconds: auth.clockTolerance,
      admins: adminsOf(auth, config.name),
      ...(options.keySources ? { keySources: options.keySources } : {}),
      ...(options.keyEvents ? { keyEvents: options.keyEvents } : {}),
    }),
  );
  return {
    async authenticate(token: string): Promise<Principal> {
      if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) throw new CaError('unauthorized', 'the bearer token is empty or too long');
      let iss: unknown;
      try {
        decodeProtectedHeader(token);
        iss = decodeJwt(token).iss;
      } catch {
        throw new CaError('unauthorized', 'the bearer token is not a JWT');
      }
      const candidates = verifiers.filter((v) => v.config.issuer === iss);
      if (candidates.length === 0) throw new CaError('unauthorized', 'the token\'s issuer is not trusted');
      let firstError: unknown;
      for (const v of candidates) {
        try {
          return await v.verify(token);
        } catch (err) {
          firstError ??= err;
        }
      }
      throw firstError;
    },
  };
}
