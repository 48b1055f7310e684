/** The API's JSON shapes (docs/api.md "Endpoints"), shared by route contracts and the OpenAPI document. */
import { z } from '@hono/zod-openapi';
import type { CertificateView, Issuance } from '../policy/certificates.js';

export const rfc3339 = (d: Date) => d.toISOString().replace(/\.000Z$/, 'Z');

export const Problem = z
  .object({
    type: z.string().openapi({ example: 'urn:service-ca:error:badCSR' }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
  })
  .openapi('Problem');

export const problemResponse = (description: string) => ({
  description,
  content: { 'application/problem+json': { schema: Problem } },
});

export const Serial = z
  .string()
  .openapi({ param: { name: 'serial', in: 'path' }, example: '0f1c0a9e5b7d3c2a1b0c9d8e7f6a5b4c3d2e1f00', description: 'Lower-case hex; upper case and colons accepted' });

export const Sans = z
  .object({ dns: z.array(z.string()), ip: z.array(z.string()), uri: z.array(z.string()), email: z.array(z.string()) })
  .openapi('SubjectAltNames');

const Window = z.object({ start: z.string(), end: z.string() }).openapi('RenewalWindow');

export const CertificateRecordSchema = z
  .object({
    serial: z.string(),
    identity: z.string(),
    sans: Sans,
    notBefore: z.string(),
    notAfter: z.string(),
    status: z.enum(['valid', 'revoked', 'expired']),
    revokedAt: z.string().nullable(),
    revocationReason: z.string().nullable(),
    renewedFrom: z.string().nullable().openapi({ description: 'The serial of the certificate this one renewed; null for an issuance with an identity token' }),
    certificate: z.string().openapi({ description: 'PEM leaf certificate' }),
  })
  .openapi('CertificateRecord');

export const IssuanceSchema = z
  .object({
    serial: z.string(),
    identity: z.string(),
    certificate: z.string().openapi({ description: 'PEM leaf certificate' }),
    chain: z.array(z.string()).openapi({ description: 'PEM intermediate(s), never the root' }),
    notBefore: z.string(),
    notAfter: z.string(),
    renewalInfo: Window,
  })
  .openapi('Issuance');

export const IssueRequestSchema = z
  .object({
    csr: z.string().min(1).max(60_000).openapi({ description: 'PEM PKCS#10 certificate signing request' }),
    ttl: z.union([z.string().max(32), z.number()]).optional().openapi({ description: '"Ns", "Nm", "Nh" or seconds', example: '24h' }),
  })
  .openapi('IssueRequest');

export function recordJson(v: CertificateView) {
  return {
    serial: v.serial,
    identity: v.identity,
    sans: { dns: v.sans.dns, ip: v.sans.ip, uri: v.sans.uri, email: v.sans.email },
    notBefore: rfc3339(v.notBefore),
    notAfter: rfc3339(v.notAfter),
    status: v.status,
    revokedAt: v.revokedAt ? rfc3339(v.revokedAt) : null,
    revocationReason: v.revocationReason,
    renewedFrom: v.renewedFrom,
    certificate: v.certificate,
  };
}

export function issuanceJson(i: Issuance) {
  return {
    serial: i.serial,
    identity: i.identity,
    certificate: i.certificate,
    chain: i.chain,
    notBefore: rfc3339(i.notBefore),
    notAfter: rfc3339(i.notAfter),
    renewalInfo: { start: rfc3339(i.renewalInfo.start), end: rfc3339(i.renewalInfo.end) },
  };
}
