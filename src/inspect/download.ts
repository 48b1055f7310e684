/**
 * GETs of what a certificate points to (its CRL, its issuer through AIA caIssuers): http and
 * https only, with a deadline and a size cap.
 */

/** A CRL of 100,000 entries is about 4 MB; anything past this is refused. */
const MAX_BYTES = 64 * 1024 * 1024;

export class DownloadError extends Error {
  override name = 'DownloadError';
}

export async function download(url: string, timeoutMs: number): Promise<Buffer> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DownloadError(`${url} is not a URL`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new DownloadError(`${url}: only http and https are fetched`);
  let res: Response;
  try {
    res = await fetch(parsed, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new DownloadError(`${url}: ${cause?.code ?? cause?.message ?? (err as Error).message}`);
  }
  if (res.status !== 200) {
    await res.body?.cancel();
    throw new DownloadError(`${url}: HTTP ${res.status}`);
  }
  const length = Number(res.headers.get('content-length'));
  if (Number.isFinite(length) && length > MAX_BYTES) {
    await res.body?.cancel();
    throw new DownloadError(`${url}: ${length} bytes is more than ${MAX_BYTES}`);
  }
  const body = Buffer.from(await res.arrayBuffer());
  if (body.length > MAX_BYTES) throw new DownloadError(`${url}: more than ${MAX_BYTES} bytes`);
  return body;
}
