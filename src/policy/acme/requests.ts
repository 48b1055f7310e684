/**
 * Authenticating an ACME request (RFC 8555 §6.2-6.5): the JWS's form, its `url` against the URL
 * the request reached, its key (the header's `jwk`, or the account its `kid` names, which must
 * be valid), its signature, then its nonce, used once across replicas. The order matters: a
 * request that fails before the nonce check leaves its nonce usable.
 */
import type { JWK } from 'jose';
import { jsonPayload, parseAcmeJws, thumbprintOf, verifyAcmeJws } from '../../auth/acme-jws.js';
import { CaError } from '../../errors.js';
import type { AcmeAccount, Store } from '../../store/store.js';
import type { Nonces } from './nonces.js';
import { accountIdOf } from './resources.js';

/** Which key a request must be signed with: an account's (`kid`), a new key (`jwk`), or either (revokeCert). */
export type SignedBy = 'account' | 'jwk' | 'either';

export interface AcmeRequest {
  /** The JSON object the client POSTed. */
  body: unknown;
  /** The URL the request reached, as the client named it. */
  url: string;
}

export interface Authenticated {
  /** The payload object; undefined for POST-as-GET. */
  payload: Record<string, unknown> | undefined;
  account?: AcmeAccount;
  /** The header's key, when signed with `jwk`, and its thumbprint. */
  jwk?: JWK;
  thumbprint: string;
}

export function createRequestAuthenticator(deps: { store: Pick<Store, 'acme'>; nonces: Nonces }) {
  return async function authenticate(request: AcmeRequest, signedBy: SignedBy): Promise<Authenticated> {
    const parsed = parseAcmeJws(request.body);
    const { header } = parsed;
    if (header.url !== request.url) throw new CaError('unauthorized', `the JWS url (${header.url.slice(0, 200)}) is not the URL this request reached (${request.url})`);
    if (header.jwk) {
      if (signedBy === 'account') throw new CaError('malformed', 'this request must be signed with an account key ("kid")');
      const payload = await verifyAcmeJws(parsed, header.jwk);
      await deps.nonces.use(header.nonce);
      return { payload: jsonPayload(payload), jwk: header.jwk, thumbprint: await thumbprintOf(header.jwk) };
    }
    if (signedBy === 'jwk') throw new CaError('malformed', 'this request must be signed with the new key itself ("jwk")');
    const id = accountIdOf(header.kid!);
    const account = id ? await deps.store.acme.accountById(id) : undefined;
    if (!account) throw new CaError('accountDoesNotExist', 'no account has this kid');
    const payload = await verifyAcmeJws(parsed, account.jwk as JWK);
    await deps.nonces.use(header.nonce);
    if (account.status !== 'valid') throw new CaError('unauthorized', `this account is ${account.status}`);
    return { payload: jsonPayload(payload), account, thumbprint: account.thumbprint };
  };
}

export type RequestAuthenticator = ReturnType<typeof createRequestAuthenticator>;

/** The account of a request signed with `kid` (authenticate with 'account' guarantees one). */
export function accountOf(auth: Authenticated): AcmeAccount {
  if (!auth.account) throw new CaError('malformed', 'this request must be signed with an account key ("kid")');
  return auth.account;
}
