/**
 * ACME accounts bound to identities (docs/api.md "ACME"): external account bindings made by
 * POST /v1/acme/eab for an identity, accounts created with one (RFC 8555 §7.3, §7.3.4), their
 * updates, deactivation (§7.3.6) and key changes (§7.3.5). A binding's HMAC key is derived from
 * its kid with a secret only the signer can derive, so the database never holds it.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { jsonPayload, parseAcmeJws, publicJwk, thumbprintOf, verifyAcmeJws, verifyExternalAccountBinding } from '../../auth/acme-jws.js';
import type { Principal } from '../../auth/principal.js';
import type { Clock } from '../../clock.js';
import { CaError } from '../../errors.js';
import type { AcmeAccount, Store } from '../../store/store.js';
import type { CompiledPolicy } from '../names.js';
import type { IssuanceLimiter } from '../rate-limits.js';
import { auditingRefusals } from '../refusals.js';
import { accountOf, type Authenticated } from './requests.js';
import { accountIdOf, type AcmeUrls } from './resources.js';

export interface BindingRequest {
  identity?: string | undefined;
  issuer?: string | undefined;
}

export interface Binding {
  kid: string;
  hmacKey: string;
  identity: string;
  expires: Date;
}

export interface AccountDeps {
  store: Store;
  clock: Clock;
  policies: CompiledPolicy[];
  limiter?: IssuanceLimiter;
  /** Keys the bindings' HMACs (signer.deriveSecret). */
  bindingSecret: Buffer;
  /** acme.eabTtl, seconds. */
  bindingTtl: number;
  /** The configured issuers' names (an admin's binding may name one). */
  issuerNames: readonly string[];
}

const MAX_CONTACTS = 10;

function contactsOf(value: unknown): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_CONTACTS) throw new CaError('malformed', `contact must be a list of at most ${MAX_CONTACTS} URLs`);
  return value.map((c) => {
    if (typeof c !== 'string' || c.length > 320) throw new CaError('malformed', 'each contact must be a URL of at most 320 characters');
    if (!/^mailto:[^\s,@<>]+@[^\s,@<>]+$/i.test(c)) throw new CaError('unsupportedContact', 'only mailto: contacts with one address are accepted');
    return c;
  });
}

export function createAccounts(deps: AccountDeps) {
  const { store, clock } = deps;
  const macKeyOf = (kid: string) => createHmac('sha256', deps.bindingSecret).update(`acme-eab:${kid}`).digest();
  // A kid whose kid and HMAC key (base64url) both start with a letter, a digit or "_": a value
  // starting with "-" is read as an option by the clients' argument parsers (certbot's
  // `--eab-hmac-key -x…` stops with "expected one argument"), once in 32 bindings otherwise.
  const newBindingKid = (): string => {
    for (;;) {
      const kid = randomBytes(16).toString('base64url');
      if (!kid.startsWith('-') && !macKeyOf(kid).toString('base64url').startsWith('-')) return kid;
    }
  };

  const matchesSomePolicy = (identity: string, issuer: string | null) =>
    deps.policies.some((p) => (!p.issuers || (issuer !== null && p.issuers.has(issuer))) && p.match(identity) !== undefined);

  return {
    /** POST /v1/acme/eab: a single-use binding to the caller's identity, or with an admin token to the one named. */
    createBinding: (principal: Principal, request: BindingRequest): Promise<Binding> =>
      auditingRefusals({ store, clock, limiter: deps.limiter }, principal, { action: 'acme.binding', serial: null }, async () => {
        const forOther = request.identity !== undefined && request.identity !== principal.identity;
        if ((forOther || request.issuer !== undefined) && !principal.admin) throw new CaError('forbidden', 'only an admin may name the identity or issuer of a binding');
        if (request.issuer !== undefined && !deps.issuerNames.includes(request.issuer)) {
          throw new CaError('malformed', `issuer must be the name of a configured issuer (${deps.issuerNames.join(', ')})`);
        }
        const identity = request.identity ?? principal.identity;
        const issuer = forOther ? (request.issuer ?? null) : (request.issuer ?? principal.issuer);
        if (!matchesSomePolicy(identity, issuer)) throw new CaError('forbidden', 'no policy grants certificates to this identity');
        const now = clock.now();
        const kid = newBindingKid();
        const expires = new Date(now.getTime() + deps.bindingTtl * 1000);
        const tokenUse = principal.jti ? { issuer: principal.issuer, jti: principal.jti.value, expiresAt: principal.jti.expiresAt } : undefined;
        const binding = { kid, identity, issuer, tokenSans: forOther ? null : (principal.tokenSans ?? null), createdBy: principal.identity, createdAt: now, expiresAt: expires };
        if (!(await store.acme.createBinding(binding, tokenUse))) throw new CaError('unauthorized', 'this token has already been used (jti replay)');
        await store.appendAudit([{ at: now, actor: principal.identity, action: 'acme.binding', serial: null, outcome: 'success', detail: { kid, identity, issuer, expires: expires.toISOString() } }]);
        return { kid, hmacKey: macKeyOf(kid).toString('base64url'), identity, expires };
      }),

    /** newAccount (RFC 8555 §7.3): 201 with a new account, or 200 with the one this key already has. */
    async newAccount(auth: Authenticated, urls: AcmeUrls): Promise<{ created: boolean; account: AcmeAccount }> {
      const payload = auth.payload ?? {};
      const jwk = auth.jwk!;
      const existing = await store.acme.accountByThumbprint(auth.thumbprint);
      if (existing) return { created: false, account: existing };
      if (payload.onlyReturnExisting === true) throw new CaError('accountDoesNotExist', 'no account has this key');
      if (payload.externalAccountBinding === undefined) {
        throw new CaError('externalAccountRequired', 'every account is bound to a service identity: get a binding (kid and HMAC key) from POST /v1/acme/eab');
      }
      const contact = contactsOf(payload.contact);
      const kid = await verifyExternalAccountBinding(payload.externalAccountBinding, { url: urls.newAccount, accountJwk: jwk }, macKeyOf);
      const now = clock.now();
      const result = await store.acme.createAccount({ id: randomUUID().replaceAll('-', ''), thumbprint: auth.thumbprint, jwk: { ...jwk }, contact, bindingKid: kid, createdAt: now }, now);
      if ('existing' in result) return { created: false, account: result.existing };
      if ('bindingUnusable' in result) throw new CaError('unauthorized', 'this external account binding is unknown, expired or already used: get a new one');
      const account = result.created;
      await store.appendAudit([{ at: now, actor: account.identity, action: 'acme.account', serial: null, outcome: 'success', detail: { account: account.id, kid, change: 'created' } }]);
      return { created: true, account };
    },

    /** POST to an account URL (§7.3.2, §7.3.6): read it, update its contact, or deactivate it. */
    async account(auth: Authenticated, id: string): Promise<AcmeAccount> {
      const account = accountOf(auth);
      if (account.id !== id) throw new CaError('unauthorized', 'a request about an account must be signed by that account');
      const payload = auth.payload;
      if (!payload) return account;
      if (payload.status !== undefined) {
        if (payload.status !== 'deactivated') throw new CaError('malformed', 'an account\'s status can only be set to "deactivated"');
        const done = await store.acme.deactivateAccount(account.id);
        if (!done) throw new CaError('unauthorized', 'this account is not valid');
        await store.appendAudit([{ at: clock.now(), actor: account.identity, action: 'acme.account', serial: null, outcome: 'success', detail: { account: account.id, change: 'deactivated' } }]);
        return done;
      }
      if (payload.contact !== undefined) {
        return (await store.acme.updateContact(account.id, contactsOf(payload.contact))) ?? account;
      }
      return account;
    },

    /** keyChange (§7.3.5): the inner JWS, signed by the new key, names the account and its old key. */
    async keyChange(auth: Authenticated, url: string, urls: AcmeUrls): Promise<AcmeAccount> {
      const account = accountOf(auth);
      if (!auth.payload) throw new CaError('malformed', 'a key change carries an inner JWS as its payload');
      const inner = parseAcmeJws(auth.payload, { inner: true });
      if (inner.header.url !== url) throw new CaError('malformed', 'the inner JWS must name the same url as the outer one');
      const newJwk = inner.header.jwk!;
      const body = jsonPayload(await verifyAcmeJws(inner, newJwk));
      if (!body) throw new CaError('malformed', 'the inner payload must be {account, oldKey}');
      const { account: named, oldKey } = body;
      if (typeof named !== 'string' || accountIdOf(named) !== account.id) throw new CaError('unauthorized', 'the inner payload must name the account that signs the request');
      if ((await thumbprintOf(publicJwk(oldKey))) !== account.thumbprint) throw new CaError('unauthorized', 'oldKey is not this account\'s key');
      const next = { thumbprint: await thumbprintOf(newJwk), jwk: { ...newJwk } };
      const result = await store.acme.changeKey(account.id, account.thumbprint, next);
      if ('conflict' in result) throw new CaError('conflict', 'another account already has this key', { location: urls.account(result.conflict) });
      if ('gone' in result) throw new CaError('unauthorized', 'this account is no longer valid, or its key changed meanwhile');
      await store.appendAudit([{ at: clock.now(), actor: account.identity, action: 'acme.account', serial: null, outcome: 'success', detail: { account: account.id, change: 'key' } }]);
      return result.changed;
    },
  };
}

export type AcmeAccounts = ReturnType<typeof createAccounts>;
