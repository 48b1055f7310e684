/**
 * One trusted JWT issuer (Kubernetes service accounts, OIDC, SPIFFE JWT-SVIDs): every check of
 * docs/api.md "Identity and policy" is explicit here: algorithm allowlist, exact `iss` and `aud`,
 * required `exp`, `nbf`/`iat` with a clock tolerance, token lifetime within `maxTokenAge`, a
 * required `jti` when the issuer asks for one-time tokens. RFC 7519 §4.1, RFC 8725 §3.
 */
import { errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../clock.js';
import type { IssuerConfig } from '../config.js';
import { CaError } from '../errors.js';
import { renderIdentity } from './identity-template.js';
import { keyResolverFor, type KeySetEvents, type KeySourceOptions } from './key-sources.js';
import type { Principal } from './principal.js';

export interface IssuerVerifier {
  readonly config: IssuerConfig;
  verify(token: string): Promise<Principal>;
}

function unauthorized(detail: string, cause?: unknown): CaError {
  return new CaError('unauthorized', detail, { cause });
}

/** Fixed, token-free details for jose's failures. */
function describe(err: unknown): CaError {
  if (err instanceof CaError) return err;
  if (err instanceof joseErrors.JWTExpired) return unauthorized(err.claim === 'iat' ? 'the token is older than maxTokenAge' : 'the token has expired', err);
  if (err instanceof joseErrors.JWTClaimValidationFailed) return unauthorized(`the token's "${err.claim}" claim is not acceptable (${err.reason})`, err);
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return unauthorized('the token\'s algorithm is not allowed for this issuer', err);
  if (err instanceof joseErrors.JWKSNoMatchingKey) return unauthorized('no trusted key matches the token', err);
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return unauthorized('the token\'s signature does not verify', err);
  // The identity provider's key set could not be had (timeout, unreachable, non-200, not a JWKS):
  // the token may be fine, so this is an outage (503), not a verdict on the token.
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid || (err instanceof joseErrors.JOSEError && /Expected 200 OK/i.test(err.message)) || (err instanceof TypeError && /fetch/i.test(err.message))) {
    return new CaError('unavailable', 'the identity provider\'s keys could not be fetched', { cause: err, retryAfter: 5 });
  }
  if (err instanceof joseErrors.JOSEError) return unauthorized('the token is not a valid JWT for this issuer', err);
  return unauthorized('the token could not be verified', err);
}

function sansClaim(claims: JWTPayload): string[] | undefined {
  const v = claims.sans;
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || v.length > 100 || !v.every((s) => typeof s === 'string' && s.length > 0 && s.length <= 1024)) {
    throw unauthorized('the token\'s "sans" claim must be a list of names');
  }
  return v as string[];
}

export function createIssuerVerifier(
  config: IssuerConfig,
  options: {
    clock: Clock;
    clockToleranceSeconds: number;
    /** The identities that are admins when this issuer vouches for them. */
    admins: ReadonlySet<string>;
    keySources?: KeySourceOptions;
    keyEvents?: KeySetEvents;
  },
): IssuerVerifier {
  const keys = keyResolverFor(config, options.keySources, options.keyEvents);
  const required = ['exp', ...(config.maxTokenAge !== undefined ? ['iat'] : []), ...(config.requireJti ? ['jti'] : [])];
  return {
    config,
    async verify(token) {
      let claims: JWTPayload;
      try {
        ({ payload: claims } = await jwtVerify(token, keys, {
          issuer: config.issuer,
          audience: config.audience,
          algorithms: config.algorithms,
          clockTolerance: options.clockToleranceSeconds,
          currentDate: options.clock.now(),
          requiredClaims: required,
          ...(config.maxTokenAge !== undefined ? { maxTokenAge: config.maxTokenAge } : {}),
        }));
      } catch (err) {
        throw describe(err);
      }
      if (config.maxTokenAge !== undefined && claims.exp! - claims.iat! > config.maxTokenAge) {
        throw unauthorized('the token\'s lifetime (exp - iat) is longer than maxTokenAge');
      }
      if (config.requireJti && (typeof claims.jti !== 'string' || claims.jti.length === 0 || claims.jti.length > 256)) {
        throw unauthorized('this issuer requires a "jti" claim');
      }
      const identity = renderIdentity(config.identity, claims);
      return {
        identity,
        issuer: config.name,
        tokenSans: sansClaim(claims),
        jti: config.requireJti ? { value: claims.jti!, expiresAt: new Date(claims.exp! * 1000) } : undefined,
        admin: options.admins.has(identity),
        claims,
      };
    },
  };
}
