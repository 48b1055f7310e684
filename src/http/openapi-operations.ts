/**
 * What the OpenAPI document says beyond the route contracts: a stable operationId for every
 * operation, and the certificate-holder token that POST /v1/certificates/renew takes instead of
 * an identity token (docs/api.md "Certificate holder"). An operation without an id here, or whose
 * contract names another id, stops the generator: ids are part of the contract (client
 * generators name their functions by them) and never change once published.
 */

/** `METHOD path` → operationId (camelCase). */
export const OPERATION_IDS: Readonly<Record<string, string>> = {
  'GET /v1/ca/root.pem': 'getRootCertificate',
  'GET /v1/ca/chain.pem': 'getCaChain',
  'GET /v1/ca/intermediate.der': 'getIntermediateCertificate',
  'GET /v1/crl': 'getCrl',
  'GET /v1/crl.pem': 'getCrlPem',
  'GET /v1/crl/{issuer}': 'getIssuerCrl',
  'GET /v1/ca/issuers/{file}': 'getIssuerCertificate',
  'GET /v1/ca/issuers': 'listIssuers',
  'GET /healthz': 'getHealth',
  'GET /readyz': 'getReadiness',
  'GET /metrics': 'getMetrics',
  'GET /v1/certificates/{serial}/renewal-info': 'getRenewalInfo',
  'GET /v1/config.schema.json': 'getConfigSchema',
  'GET /v1/certificates': 'listCertificates',
  'POST /v1/certificates': 'issueCertificate',
  'POST /v1/certificates/renew': 'renewCertificate',
  'GET /v1/certificates/{serial}': 'getCertificate',
  'POST /v1/certificates/{serial}/revoke': 'revokeCertificate',
  'POST /v1/revocations': 'revokeIdentity',
  'GET /v1/audit': 'listAuditEvents',
  'GET /v1/fleet': 'listFleet',
  'GET /v1/fleet/summary': 'getFleetSummary',
  'POST /v1/acme/eab': 'createAcmeBinding',
};

const IDENTITY_TOKEN =
  'An identity token: a JWT from an issuer listed under auth.issuers (a Kubernetes service-account token, an OIDC ID token, a SPIFFE JWT-SVID), ' +
  'checked for signature, iss, aud, exp, nbf/iat and, per issuer, maxTokenAge and jti. Admin endpoints need an identity listed under auth.admins.identities.';

const HOLDER_TOKEN =
  'A certificate-holder token for POST /v1/certificates/renew only: a JWT signed with the private key of a current certificate this CA issued, ' +
  'whose protected header carries that certificate (leaf only, base64 DER) as x5c, with claims aud "service-ca:renew", iat, exp at most 300 s after iat, and a jti used once. ' +
  'Algorithm: ES256 (P-256 key), ES384 (P-384), RS256 or PS256 (RSA), EdDSA (Ed25519).';

const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options', 'trace'];

interface Operation {
  tags?: string[];
  operationId?: string;
  security?: Record<string, string[]>[];
  description?: string;
}

interface Document {
  paths: Record<string, Record<string, Operation>>;
  components?: { securitySchemes?: Record<string, Record<string, unknown>> };
}

/** The document with every operation's id, the holder-token scheme on renewal, and both schemes described. */
export function annotateOpenApi<T>(document: T): T {
  const doc = structuredClone(document) as unknown as Document;
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const key = `${method.toUpperCase()} ${path}`;
      const id = OPERATION_IDS[key];
      if (!id) throw new Error(`openapi: ${key} has no operationId: add one to src/http/openapi-operations.ts`);
      if (op.operationId !== undefined && op.operationId !== id) throw new Error(`openapi: ${key} names operationId ${op.operationId}, src/http/openapi-operations.ts ${id}`);
      // The id right after the tags, where a reader of the JSON looks for it.
      const { tags, operationId: _id, ...rest } = op;
      const annotated: Operation = { ...(tags ? { tags } : {}), operationId: id, ...rest };
      if (key === 'POST /v1/certificates/renew') {
        annotated.security = [{ holderToken: [] }];
        annotated.description = `Authorization: Bearer <holder token> (see the holderToken security scheme). ${HOLDER_TOKEN}`;
      }
      item[method] = annotated;
    }
  }
  const schemes = ((doc.components ??= {}).securitySchemes ??= {});
  schemes.bearer = { ...schemes.bearer, type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: IDENTITY_TOKEN };
  schemes.holderToken = { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: HOLDER_TOKEN };
  return doc as unknown as T;
}
