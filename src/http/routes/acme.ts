/**
 * ACME (RFC 8555) on the API listener under /acme/ (docs/api.md "ACME"). Every POST is a JWS
 * (`application/jose+json`) that policy authenticates; these handlers only read the body, call
 * one policy function, and shape the answer with ACME's headers (Replay-Nonce, Link, Location).
 * Errors become ACME problem documents in http/acme-problem.ts. The protocol is not in the
 * OpenAPI document: its contract is RFC 8555.
 */
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { CaError } from '../../errors.js';
import type { AcmeService } from '../../policy/acme/service.js';
import { accountView, acmeUrls, authorizationView, challengeView, orderView, rfc3339, type AcmeUrls } from '../../policy/acme/resources.js';
import type { Authenticated, SignedBy } from '../../policy/acme/requests.js';
import { acmeBase, acmeError, acmeHeaders, requestOrigin } from '../acme-problem.js';
import type { AppEnv } from '../context.js';

type Ctx = Context<AppEnv>;

/** A path parameter; the routes below all name theirs, so it is never missing. */
const param = (c: Ctx, name: string) => c.req.param(name) ?? '';

function service(c: Ctx): AcmeService {
  const acme = c.var.deps.acme;
  if (!acme) throw new CaError('notFound', 'ACME is not enabled on this CA (acme.enabled)');
  return acme;
}

/** Reads and authenticates a POST: its media type, its JSON body, its JWS. */
async function signed(c: Ctx, signedBy: SignedBy): Promise<{ acme: AcmeService; auth: Authenticated; urls: AcmeUrls }> {
  const acme = service(c);
  const type = (c.req.header('Content-Type') ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/jose+json') throw new CaError('unsupportedMediaType', 'ACME requests are application/jose+json');
  let body: unknown;
  try {
    body = JSON.parse(await c.req.text());
  } catch {
    throw new CaError('malformed', 'the body is not JSON');
  }
  const urls = acmeUrls(acmeBase(c));
  const url = `${requestOrigin(c)}${new URL(c.req.url).pathname}`;
  return { acme, auth: await acme.authenticate({ body, url }, signedBy), urls };
}

/** What a resource still being worked on carries (§8.2): clients poll after a second, not their default 5 s. */
const POLL_AGAIN = { 'Retry-After': '1' };

const json = (c: Ctx, body: unknown, status: 200 | 201, extra: Record<string, string> = {}) =>
  c.body(JSON.stringify(body), status, { ...acmeHeaders(c), 'Content-Type': 'application/json', ...extra });

/** A resource asked with a method it does not take (RFC 8555 §6.3: 405), and a path that names no resource (404), both as ACME problems. */
const wrongMethod = (allow: string) => (c: Ctx) => {
  service(c);
  return acmeError(c, new CaError('malformed', `${c.req.method} is not allowed on ${new URL(c.req.url).pathname}; use ${allow}`), { status: 405, headers: { Allow: allow } });
};

export function acmeRoutes(app: OpenAPIHono<AppEnv>): void {
  const postPaths: string[] = [];
  const getPaths: string[] = [];
  const post = (path: string, handler: (c: Ctx) => Promise<Response>) => {
    postPaths.push(path);
    app.post(path, handler);
  };
  const get = (path: string, handler: (c: Ctx) => Response | Promise<Response>) => {
    getPaths.push(path);
    app.get(path, handler);
  };

  // The directory changes with the configuration: no-store, as every ACME answer.
  get('/acme/directory', (c) => c.body(JSON.stringify(service(c).directory(acmeUrls(acmeBase(c)))), 200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' }));

  // newNonce (§7.2): HEAD answers 200, GET 204, both with a fresh nonce and no caching (hono
  // routes HEAD to the GET handler).
  get('/acme/new-nonce', (c) => {
    service(c);
    return c.body(null, c.req.method === 'HEAD' ? 200 : 204, acmeHeaders(c));
  });

  post('/acme/new-account', async (c) => {
    const { acme, auth, urls } = await signed(c, 'jwk');
    const { created, account } = await acme.accounts.newAccount(auth, urls);
    return json(c, accountView(account, urls), created ? 201 : 200, { Location: urls.account(account.id) });
  });

  post('/acme/account/:id', async (c) => {
    const { acme, auth, urls } = await signed(c, 'account');
    const account = await acme.accounts.account(auth, param(c, 'id'));
    return json(c, accountView(account, urls), 200, { Location: urls.account(account.id) });
  });

  post('/acme/account/:id/orders', async (c) => {
    const { acme, auth, urls } = await signed(c, 'account');
    const ids = await acme.orders.orders(auth, param(c, 'id'));
    return json(c, { orders: ids.map(urls.order) }, 200);
  });

  post('/acme/key-change', async (c) => {
    const { acme, auth, urls } = await signed(c, 'account');
    const account = await acme.accounts.keyChange(auth, urls.keyChange, urls);
    return json(c, accountView(account, urls), 200, { Location: urls.account(account.id) });
  });

  post('/acme/new-order', async (c) => {
    const { acme, auth, urls } = await signed(c, 'account');
    const order = await acme.orders.newOrder(auth);
    return json(c, orderView(order, urls), 201, { Location: urls.order(order.id) });
  });

  post('/acme/order/:id', async (c) => {
    const { acme, auth, urls } = await signed(c, 'account');
    const order = await acme.orders.order(auth, param(c, 'id'));
    return json(c, orderView(order, urls), 200, order.status === 'processing' ? POLL_AGAIN : {});
  });

  post('/acme/order/:id/finalize', async (c) => {
    const { acme, auth, urls } = await signed(c, 'account');
    // Counted as the REST API's issuances are, under the issuer label "acme".
    const issuances = c.var.deps.metrics.issuances;
    const order = await acme.orders.finalize(auth, param(c, 'id')).catch((err: unknown) => {
      issuances.inc({ result: err instanceof CaError ? err.kind : 'serverInternal', issuer: 'acme' });
      throw err;
    });
    issuances.inc({ result: 'issued', issuer: 'acme' });
    return json(c, orderView(order, urls), 200, { Location: urls.order(order.id), ...(order.status === 'processing' ? POLL_AGAIN : {}) });
  });

  post('/acme/authz/:id', async (c) => {
    const { acme, auth, urls } = await signed(c, 'account');
    const authz = await acme.challenges.authorization(auth, param(c, 'id'));
    return json(c, authorizationView(authz, urls), 200, authz.status === 'pending' ? POLL_AGAIN : {});
  });

  post('/acme/chall/:id', async (c) => {
    const { acme, auth, urls } = await signed(c, 'account');
    const { challenge, authorizationId } = await acme.challenges.challenge(auth, param(c, 'id'));
    return json(c, challengeView(challenge, urls), 200, {
      Link: `<${urls.authorization(authorizationId)}>;rel="up", <${urls.directory}>;rel="index"`,
      ...(challenge.status === 'processing' ? POLL_AGAIN : {}),
    });
  });

  post('/acme/cert/:serial', async (c) => {
    const { acme, auth } = await signed(c, 'account');
    const pem = await acme.orders.certificate(auth, param(c, 'serial'), acme.chainOf);
    return c.body(pem, 200, { ...acmeHeaders(c), 'Content-Type': 'application/pem-certificate-chain' });
  });

  post('/acme/revoke-cert', async (c) => {
    const { acme, auth } = await signed(c, 'either');
    const revoked = await acme.revocation.revokeCert(auth);
    c.var.deps.metrics.revocations.inc({ reason: revoked.revocationReason ?? 'unspecified' }, 1 + revoked.alsoRevoked.length);
    return c.body(null, 200, acmeHeaders(c));
  });

  // ARI (RFC 9773 §4): a GET, unauthenticated, with the REST API's window.
  get('/acme/renewal-info/:certId', async (c) => {
    const info = await service(c).revocation.renewalInfo(param(c, 'certId'));
    const window = { start: rfc3339(info.window.start), end: rfc3339(info.window.end) };
    return c.body(JSON.stringify({ suggestedWindow: window }), 200, { 'Content-Type': 'application/json', 'Retry-After': String(info.retryAfter), 'Cache-Control': 'no-store' });
  });

  app.on(['GET', 'PUT', 'PATCH', 'DELETE'], postPaths, wrongMethod('POST'));
  app.on(['POST', 'PUT', 'PATCH', 'DELETE'], getPaths, wrongMethod('GET, HEAD'));
  app.all('/acme/*', (c) => {
    service(c);
    throw new CaError('notFound', `no ACME resource at ${new URL(c.req.url).pathname}; the directory is at /acme/directory`);
  });
}
