/** dns-01 (RFC 8555 §8.4): a TXT record at _acme-challenge.<name> holding base64url(SHA-256(key authorization)). */
import { createHash } from 'node:crypto';
import { CaError } from '../../../errors.js';
import type { NameResolver } from './resolve.js';

export async function validateDns01(resolver: NameResolver, name: string, keyAuthorization: string): Promise<void> {
  const expected = createHash('sha256').update(keyAuthorization).digest('base64url');
  const at = `_acme-challenge.${name}`;
  const records = await resolver.txt(at);
  if (!records.includes(expected)) {
    throw new CaError('incorrectResponse', records.length === 0 ? `no TXT record at ${at}` : `none of the ${records.length} TXT record(s) at ${at} holds this challenge's digest`);
  }
}
