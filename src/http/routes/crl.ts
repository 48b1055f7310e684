/**
 * The current CRLs, served from memory (docs/api.md "Public"): the active issuer's, DER at /v1/crl
 * and PEM at /v1/crl.pem, and each configured issuer's at /v1/crl/{issuer key id} and its .pem
 * (docs/api.md "Several issuers"), with ETag, Last-Modified and Cache-Control;
 * If-None-Match / If-Modified-Since give 304.
 * Each answer comes from one snapshot of the publisher (its headers and body describe one CRL),
 * and a request whose If-None-Match names a CRL newer than the one served gets that CRL (304)
 * or a newer one, never an older one (docs/api.md "CRLs").
 */
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { CaError } from '../../errors.js';
import { bytesOf } from '../bytes.js';
import type { AppEnv, CrlSource } from '../context.js';
import { problemResponse } from '../schemas.js';

const crlRoute = (path: string, type: string, summary: string) =>
  createRoute({
    method: 'get',
    path,
    tags: ['crl'],
    summary,
    responses: {
      200: { description: summary, content: { [type]: { schema: z.string().openapi({ format: type.endsWith('crl') ? 'binary' : undefined }) } } },
      304: { description: 'Not modified' },
      503: problemResponse('No CRL could be loaded yet'),
    },
  });

const derRoute = crlRoute('/v1/crl', 'application/pkix-crl', 'The active issuer\'s current full CRL, DER');
const pemRoute = crlRoute('/v1/crl.pem', 'application/x-pem-file', 'The active issuer\'s current full CRL, PEM');

/**
 * One path per issuer, `{kid}` or `{kid}.pem`: hono's router cannot split a suffix off a
 * parameter, so the route takes the segment whole and the handler reads the suffix.
 */
const issuerRoute = createRoute({
  method: 'get',
  path: '/v1/crl/{issuer}',
  tags: ['crl'],
  summary: 'A configured issuer\'s current full CRL: DER, or PEM when the key id ends with .pem',
  request: { params: z.object({ issuer: z.string().openapi({ description: 'The issuer key id (lowercase hex of its SubjectKeyIdentifier), optionally followed by .pem', example: '3f1c…e2.pem' }) }) },
  responses: {
    200: {
      description: 'The CRL',
      content: { 'application/pkix-crl': { schema: z.string().openapi({ format: 'binary' }) }, 'application/x-pem-file': { schema: z.string() } },
    },
    304: { description: 'Not modified' },
    404: problemResponse('No configured issuer has this key id'),
    503: problemResponse('No CRL could be loaded yet'),
  },
});

const ISSUER_SEGMENT = /^([0-9a-fA-F]{2,128})(\.pem)?$/;

/**
 * RFC 9110 §13.1: If-None-Match wins over If-Modified-Since. Last-Modified has whole seconds, so
 * when two CRLs share a second (a burst of revocations) If-Modified-Since never answers 304.
 */
function notModified(c: Context<AppEnv>, etag: string, thisUpdate: Date, sharesSecond: boolean): boolean {
  const inm = c.req.header('If-None-Match');
  if (inm !== undefined) return inm.split(',').some((t) => t.trim() === etag || t.trim() === `W/${etag}` || t.trim() === '*');
  const ims = c.req.header('If-Modified-Since');
  if (ims !== undefined && !sharesSecond) {
    const since = Date.parse(ims);
    return !Number.isNaN(since) && Math.floor(thisUpdate.getTime() / 1000) <= Math.floor(since / 1000);
  }
  return false;
}

/** Our ETags: "crl-N" (DER) and "crl-N-pem" (PEM). 15 digits keep N a safe integer. */
const OUR_ETAG = /^(?:W\/)?"crl-(\d{1,15})(?:-pem)?"$/;

/** The highest CRL number that If-None-Match names in one of our ETags (0: none). */
function namedNumber(inm: string | undefined): number {
  let named = 0;
  for (const tag of inm?.split(',') ?? []) {
    const m = OUR_ETAG.exec(tag.trim());
    if (m) named = Math.max(named, Number(m[1]));
  }
  return named;
}

async function serve(c: Context<AppEnv>, source: CrlSource, format: 'der' | 'pem'): Promise<Response> {
  const crl = await source.snapshot(namedNumber(c.req.header('If-None-Match')));
  if (!crl) throw new CaError('unavailable', 'no CRL has been published yet', { retryAfter: 2 });
  const headers: Record<string, string> = {
    ETag: format === 'der' ? crl.etag : crl.etag.replace(/"$/, '-pem"'),
    'Last-Modified': crl.thisUpdate.toUTCString(),
    'Cache-Control': `public, max-age=${c.var.deps.crlMaxAge}`,
  };
  if (notModified(c, headers.ETag!, crl.thisUpdate, crl.sharesSecond)) return c.body(null, 304, headers);
  return format === 'der'
    ? c.body(bytesOf(crl.der), 200, { ...headers, 'Content-Type': 'application/pkix-crl' })
    : c.body(crl.pem(), 200, { ...headers, 'Content-Type': 'application/x-pem-file' });
}

export function crlRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(derRoute, async (c) => (await serve(c, c.var.deps.crl.active, 'der')) as never);
  app.openapi(pemRoute, async (c) => (await serve(c, c.var.deps.crl.active, 'pem')) as never);
  app.openapi(issuerRoute, async (c) => {
    const m = ISSUER_SEGMENT.exec(c.req.valid('param').issuer);
    const source = m ? c.var.deps.crl.byKeyId(m[1]!) : undefined;
    if (!source) throw new CaError('notFound', 'no configured issuer has this key id');
    return (await serve(c, source, m![2] ? 'pem' : 'der')) as never;
  });
}
