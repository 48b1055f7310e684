/**
 * ACME orders for an account's identity (docs/api.md "ACME"; RFC 8555 §7.4): every identifier is
 * checked against the identity's policies before any authorization exists (deny by default:
 * rejectedIdentifier), the window asked for against the policy's caps, and names a policy with
 * `acme.challenges: none` grants are valid at once. Finalizing issues through the same
 * registration authority as the REST API (policy/certificates.ts): the same checks, limits,
 * record and audit row, so an ACME certificate is a certificate of the identity like any other.
 */
import { createPublicKey, randomBytes, randomUUID, type JsonWebKey } from 'node:crypto';
import type { Principal } from '../../auth/principal.js';
import type { Clock } from '../../clock.js';
import { CaError } from '../../errors.js';
import { canonicalIp } from '../../ip.js';
import type { SubjectAltNames } from '../../model.js';
import type { AcmeAccount, AcmeChallengeType, AcmeIdentifier, AcmeOrder, NewAcmeAuthorization, Store } from '../../store/store.js';
import { certificatePem } from '../../signer/authority.js';
import { canonicalDnsName, parseCsr } from '../../x509/csr.js';
import type { CertificateAuthority } from '../certificates.js';
import { authorizeNames, type CompiledPolicy } from '../names.js';
import { requestedValidity, type ValidityRules } from '../validity.js';
import { accountOf, type Authenticated } from './requests.js';
import { acmeProblem } from './resources.js';

const MAX_IDENTIFIERS = 100;

export interface OrderDeps {
  store: Store;
  clock: Clock;
  policies: CompiledPolicy[];
  certificates: CertificateAuthority;
  validity: ValidityRules;
  authority: { notBefore: Date; notAfter: Date };
  /** acme.orderLifetime and acme.authorizationReuse, seconds. */
  orderLifetime: number;
  authorizationReuse: number;
  /** acme.pendingOrdersPerAccount. */
  pendingOrdersPerAccount: number;
}

/** The identity an account acts as, in the form policy and issuance take. */
export function principalOf(account: AcmeAccount): Principal {
  return { identity: account.identity, issuer: account.issuer ?? '', tokenSans: account.tokenSans ?? undefined, jti: undefined, admin: false, claims: {} };
}

/** A newOrder's identifiers, canonical (DNS lower-case, IPs as RFC 5952 text), checked for form. */
export function parseIdentifiers(value: unknown): AcmeIdentifier[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_IDENTIFIERS) {
    throw new CaError('malformed', `identifiers must be a list of 1 to ${MAX_IDENTIFIERS} identifiers`);
  }
  const seen = new Set<string>();
  return value.map((item: unknown) => {
    const { type, value: v } = (typeof item === 'object' && item !== null ? item : {}) as Record<string, unknown>;
    if (typeof v !== 'string' || v.length === 0) throw new CaError('malformed', 'each identifier needs a "value" string');
    let identifier: AcmeIdentifier;
    if (type === 'dns') {
      const name = canonicalDnsName(v.replace(/\.$/, ''));
      if (!name) throw new CaError('rejectedIdentifier', `"${v.slice(0, 255)}" is not a DNS name`);
      identifier = { type: 'dns', value: name };
    } else if (type === 'ip') {
      const ip = canonicalIp(v);
      if (!ip) throw new CaError('malformed', `"${v.slice(0, 64)}" is not an IP address`);
      identifier = { type: 'ip', value: ip };
    } else {
      throw new CaError('unsupportedIdentifier', 'identifier types are "dns" and "ip"');
    }
    const key = `${identifier.type}:${identifier.value}`;
    if (seen.has(key)) throw new CaError('malformed', `identifier ${identifier.value} is listed twice`);
    seen.add(key);
    return identifier;
  });
}

export function sansOf(identifiers: AcmeIdentifier[]): SubjectAltNames {
  return { dns: identifiers.filter((i) => i.type === 'dns').map((i) => i.value), ip: identifiers.filter((i) => i.type === 'ip').map((i) => i.value), uri: [], email: [] };
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

/** An RFC 3339 time whose fields exist: 2024-02-30 or 25:00 is refused, not rolled over. */
function optionalTime(value: unknown, name: string): Date | null {
  if (value === undefined) return null;
  const m = typeof value === 'string' ? RFC3339.exec(value) : null;
  const [year, month, day, hour, minute, second] = (m?.slice(1, 7) ?? []).map(Number) as number[];
  const exists = m && month! >= 1 && month! <= 12 && day! >= 1 && day! === new Date(Date.UTC(year!, month! - 1, day!)).getUTCDate() && hour! < 24 && minute! < 60 && second! < 60;
  const t = exists ? new Date(value as string) : undefined;
  if (!t || Number.isNaN(t.getTime())) throw new CaError('malformed', `${name} must be an RFC 3339 time`);
  return t;
}

/** Whether the CSR's key is the account's own (a certificate must never carry the key that controls the account). */
function isAccountKey(spki: Uint8Array, account: AcmeAccount): boolean {
  try {
    const der = createPublicKey({ key: account.jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'der' });
    return Buffer.from(spki).equals(der);
  } catch {
    return false;
  }
}

/** The least time a valid authorization must have left to be reused by a new order (or the order's lifetime, if shorter). */
const REUSE_MARGIN_SECONDS = 3600;

/** How long a finalization holds its order before a reader may settle it from the audit trail. */
const FINALIZE_LEASE_SECONDS = 120;

const challengeTypesFor = (identifier: AcmeIdentifier, wildcard: boolean): AcmeChallengeType[] =>
  identifier.type === 'ip' ? ['http-01', 'tls-alpn-01'] : wildcard ? ['dns-01'] : ['http-01', 'dns-01', 'tls-alpn-01'];

const sameSet = (a: string[], b: string[]) => a.length === b.length && new Set(a).size === new Set([...a, ...b]).size;

export function createOrders(deps: OrderDeps) {
  const { store, clock } = deps;
  const withoutChallenges = deps.policies.filter((p) => p.source.acme.challenges === 'none');

  /** Whether a policy with `acme.challenges: none` grants this one name to the identity. */
  function grantedWithoutChallenge(principal: Principal, identifier: AcmeIdentifier): boolean {
    if (withoutChallenges.length === 0) return false;
    try {
      authorizeNames(withoutChallenges, principal.identity, principal.tokenSans, sansOf([identifier]), principal.issuer);
      return true;
    } catch {
      return false;
    }
  }

  async function ownOrder(account: AcmeAccount, id: string): Promise<AcmeOrder> {
    const now = clock.now();
    let order = await store.acme.getOrder(id, now);
    if (!order) throw new CaError('notFound', 'no such order');
    if (order.accountId !== account.id) throw new CaError('unauthorized', 'this order belongs to another account');
    // A finalization that lost track of its order (its process died, or its last write failed).
    if (order.status === 'processing' && order.processingUntil && order.processingUntil.getTime() < now.getTime()) {
      await store.acme.settleFinalize(id, now, true);
      order = (await store.acme.getOrder(id, now))!;
    }
    return order;
  }

  return {
    principalOf,

    async newOrder(auth: Authenticated): Promise<AcmeOrder> {
      const account = accountOf(auth);
      const payload = auth.payload ?? {};
      const identifiers = parseIdentifiers(payload.identifiers);
      const principal = principalOf(account);
      // Deny by default, before anything is written or any challenge is offered.
      const grant = authorizeNames(deps.policies, principal.identity, principal.tokenSans, sansOf(identifiers), principal.issuer);
      const now = clock.now();
      const notBefore = optionalTime(payload.notBefore, 'notBefore');
      const notAfter = optionalTime(payload.notAfter, 'notAfter');
      if (notBefore && !notAfter) throw new CaError('malformed', 'notBefore needs notAfter');
      if (notAfter) requestedValidity(now, { notBefore: notBefore ? new Date(notBefore) : null, notAfter }, deps.validity, grant.maxTtl, deps.authority);
      const pending = await store.acme.pendingOrders(account.id, now);
      if (pending >= deps.pendingOrdersPerAccount) {
        throw new CaError('rateLimited', `this account has ${pending} pending orders (at most ${deps.pendingOrdersPerAccount}); finalize them or let them expire`, { retryAfter: 60 });
      }
      // A reused authorization has at least REUSE_MARGIN (or the order's lifetime) left, and the
      // order expires no later than the first of them: none lapses under its order.
      let expiresAt = new Date(now.getTime() + deps.orderLifetime * 1000);
      const margin = Math.min(REUSE_MARGIN_SECONDS, deps.orderLifetime) * 1000;
      const reusable = deps.authorizationReuse > 0 ? await store.acme.reusableAuthorizations(account.id, identifiers, new Date(now.getTime() + margin)) : new Map<string, { id: string; expiresAt: Date }>();
      const authorizations = identifiers.map((identifier): string | NewAcmeAuthorization => {
        const wildcard = identifier.type === 'dns' && identifier.value.startsWith('*.');
        const bare: AcmeIdentifier = wildcard ? { type: 'dns', value: identifier.value.slice(2) } : identifier;
        const reuse = reusable.get(`${identifier.type}:${wildcard ? '*.' : ''}${bare.value}`);
        if (reuse) {
          if (reuse.expiresAt.getTime() < expiresAt.getTime()) expiresAt = reuse.expiresAt;
          return reuse.id;
        }
        const free = grantedWithoutChallenge(principal, identifier);
        return {
          id: randomUUID().replaceAll('-', ''),
          identifier: bare,
          wildcard,
          status: free ? 'valid' : 'pending',
          expiresAt,
          challenges: free ? [] : challengeTypesFor(bare, wildcard).map((type) => ({ id: randomUUID().replaceAll('-', ''), type, token: randomBytes(32).toString('base64url') })),
        };
      });
      const id = randomUUID().replaceAll('-', '');
      await store.acme.createOrder({ id, accountId: account.id, identifiers, notBefore, notAfter, expiresAt, createdAt: now, authorizations });
      return (await store.acme.getOrder(id, now))!;
    },

    async order(auth: Authenticated, id: string): Promise<AcmeOrder> {
      return ownOrder(accountOf(auth), id);
    },

    async orders(auth: Authenticated, accountId: string): Promise<string[]> {
      const account = accountOf(auth);
      if (account.id !== accountId) throw new CaError('unauthorized', 'another account\'s orders');
      return store.acme.listOrders(account.id, clock.now());
    },

    /** finalize (§7.4): the CSR must ask for exactly the order's identifiers; issuance is the REST API's. */
    async finalize(auth: Authenticated, id: string): Promise<AcmeOrder> {
      const account = accountOf(auth);
      const order = await ownOrder(account, id);
      if (order.status !== 'ready') throw new CaError('orderNotReady', `the order is ${order.status}, not ready`);
      const csrText = auth.payload?.csr;
      if (typeof csrText !== 'string' || !/^[A-Za-z0-9_-]+$/.test(csrText)) throw new CaError('malformed', 'csr must be the base64url DER of a PKCS#10 request');
      const b64 = Buffer.from(csrText, 'base64url').toString('base64');
      const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${b64.replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END CERTIFICATE REQUEST-----\n`;
      const csr = parseCsr(pem);
      const wanted = sansOf(order.identifiers);
      if (csr.sans.uri.length > 0 || csr.sans.email.length > 0 || !sameSet(csr.sans.dns, wanted.dns) || !sameSet(csr.sans.ip, wanted.ip)) {
        throw new CaError('badCSR', `the CSR must ask for exactly the order's identifiers (${order.identifiers.map((i) => i.value).join(', ')})`);
      }
      if (isAccountKey(csr.spki, account)) throw new CaError('badCSR', 'the CSR carries the account key: a certificate needs a key of its own');
      // The window accepted at newOrder still fits (it may have ended since): refused while the order stays ready.
      const window = order.notAfter ? { notBefore: order.notBefore, notAfter: order.notAfter, acceptedAt: order.createdAt } : undefined;
      if (window) requestedValidity(clock.now(), window, deps.validity, undefined, deps.authority);
      if (!(await store.acme.beginFinalize(order.id, clock.now(), FINALIZE_LEASE_SECONDS))) {
        throw new CaError('orderNotReady', 'the order is no longer ready (finalized by another request, or it expired)');
      }
      let serial: string;
      try {
        serial = (await deps.certificates.issue(principalOf(account), { csr: pem, window, auditDetail: { acme: { account: account.id, order: order.id } } })).serial;
      } catch (err) {
        if (err instanceof CaError && err.kind === 'rateLimited') {
          // Refused before anything was signed: the order is ready again for a later finalize.
          await store.acme.endFinalize(order.id, { retry: true }).catch(() => {});
        } else if (err instanceof CaError && err.kind !== 'unavailable') {
          await store.acme.endFinalize(order.id, { error: acmeProblem(err, 400) }).catch(() => {});
        } else {
          // Unknown whether the issuance committed (the database went away mid-way): the audit
          // trail decides, now or, failing that, once the lease passes.
          await store.acme.settleFinalize(order.id, clock.now(), false).catch(() => {});
        }
        throw err;
      }
      // Issued and recorded: should this write fail, the order is settled from the audit trail.
      await store.acme.endFinalize(order.id, { serial }).catch(() => {});
      return (await store.acme.getOrder(order.id, clock.now()))!;
    },

    /** The certificate of a valid order of this account's identity, as a PEM chain (§7.4.2). */
    async certificate(auth: Authenticated, serial: string, chainOf: (issuerKeyId: string) => string[]): Promise<string> {
      const account = accountOf(auth);
      const record = /^[0-9a-f]{1,40}$/.test(serial) ? await store.getCertificate(serial) : undefined;
      if (!record || record.identity !== account.identity) throw new CaError('notFound', 'no certificate of this account\'s identity has this serial');
      return [certificatePem(record.der), ...chainOf(record.issuerKeyId)].join('');
    },
  };
}

export type AcmeOrders = ReturnType<typeof createOrders>;
