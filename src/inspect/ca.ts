/**
 * What the issuing CA says about a leaf, through its HTTP API only (src/client): the renewal
 * window (renewal-info, public: docs/api.md "Renewal window") and, given a token, the record
 * (`GET /v1/certificates/{serial}`, which needs the owner or an admin).
 *
 * Renewal-info is asked first of the public listener the certificate itself points to: this CA
 * writes `{publicUrl}/v1/crl` as the CRL distribution point and
 * `{publicUrl}/v1/ca/intermediate.der` as AIA caIssuers (docs/api.md "Certificate profile"; the
 * per-issuer forms `/v1/crl/{issuer key id}` and `/v1/ca/issuers/{id}.der` of a planned rollover
 * are read too), so a certificate that has such a URL tells where its CA answers. Else, or when
 * that listener is unreachable, the API listener of the connection (flags, environment, saved
 * context). A 404 means the CA does not know the serial: it did not issue the certificate.
 *
 * For a revoked certificate the CA answers a window whose start and end are both now
 * (docs/api.md "Renewal window"), while any other window has start < end: so `start = end`
 * tells a revocation the CA knows of (another replica's may take a moment to show).
 */
import { ServiceCaClient, ServiceCaError, type CertificateRecord } from '../client/index.js';

export interface CaConnection {
  /** The API listener, when one was given or saved. */
  server: string | undefined;
  caPem: string | undefined;
  tlsServerName: string | undefined;
  /** A bearer token: with it the record is read. */
  token: string | undefined;
  timeoutMs: number;
}

export interface RenewalResult {
  status: 'found' | 'notFound' | 'unreachable' | 'notAsked';
  /** Where it was asked (the last place tried). */
  source: string | undefined;
  start: string | undefined;
  end: string | undefined;
  /** start = end: what the CA answers for a certificate it has revoked. */
  revokedByCa: boolean;
  detail: string;
}

export interface RecordResult {
  status: 'found' | 'failed' | 'notAsked';
  record: Omit<CertificateRecord, 'certificate'> | undefined;
  detail: string;
}

const CA_PATH = /^(https?:\/\/[^?#]*?)\/v1\/(?:crl(?:\/[0-9a-f]+)?(?:\.pem)?|ca\/intermediate\.der|ca\/issuers\/[0-9a-f]+\.der)$/;

/** The public listener's base URL, from a CRL or AIA URL in this CA's form. */
export function publicBaseOf(urls: string[]): string | undefined {
  for (const url of urls) {
    const m = CA_PATH.exec(url);
    if (m) return m[1];
  }
  return undefined;
}

const client = (baseUrl: string, c: CaConnection, tlsServerName?: string) =>
  new ServiceCaClient({ baseUrl, ca: c.caPem, tlsServerName, timeoutMs: c.timeoutMs });

export async function renewalInfo(serial: string, urls: string[], c: CaConnection): Promise<RenewalResult> {
  const places: { base: string; tlsServerName: string | undefined }[] = [];
  const base = publicBaseOf(urls);
  if (base) places.push({ base, tlsServerName: undefined });
  if (c.server && c.server !== base) places.push({ base: c.server, tlsServerName: c.tlsServerName });
  const none = { start: undefined, end: undefined, revokedByCa: false };
  if (places.length === 0) return { status: 'notAsked', source: undefined, ...none, detail: 'no CA to ask: the certificate names none and no --server was given' };
  const failures: string[] = [];
  for (const place of places) {
    try {
      const info = await client(place.base, c, place.tlsServerName).renewalInfo(serial);
      const revokedByCa = info.start.getTime() === info.end.getTime();
      return {
        status: 'found',
        source: place.base,
        start: info.start.toISOString(),
        end: info.end.toISOString(),
        revokedByCa,
        detail: revokedByCa ? 'the CA asks for renewal at once (start = end), its answer for a revoked certificate' : `renew between ${info.start.toISOString()} and ${info.end.toISOString()}`,
      };
    } catch (err) {
      if (err instanceof ServiceCaError && err.status === 404) return { status: 'notFound', source: place.base, ...none, detail: `the CA at ${place.base} does not know this serial` };
      failures.push(`${place.base}: ${err instanceof ServiceCaError ? err.message : ((err as Error).message || String(err))}`);
    }
  }
  return { status: 'unreachable', source: places[places.length - 1]!.base, ...none, detail: `renewal-info unavailable (${failures.join('; ')})` };
}

/** The CA's record of the serial, when a token and a server were given. */
export async function caRecord(serial: string, c: CaConnection): Promise<RecordResult> {
  if (!c.token) return { status: 'notAsked', record: undefined, detail: 'no token given (--token-file)' };
  if (!c.server) return { status: 'failed', record: undefined, detail: 'a token was given but no server (--server, SERVICE_CA_URL or a saved context)' };
  try {
    const { certificate: _pem, ...record } = await client(c.server, c, c.tlsServerName).getCertificate(c.token, serial);
    return { status: 'found', record, detail: `${record.status} (${record.identity})` };
  } catch (err) {
    return { status: 'failed', record: undefined, detail: `the CA's record could not be read: ${err instanceof ServiceCaError ? err.message : (err as Error).message}` };
  }
}
