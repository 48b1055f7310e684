/**
 * Serial text as clients may write it (docs/api.md "Conventions"): upper or lower case, with or
 * without colons, optionally with a 00 sign octet; normalised to the canonical lower-case hex.
 */
import { CaError } from '../errors.js';

export function normalizeSerial(text: string): string {
  let s = text.replace(/:/g, '').toLowerCase();
  if (!/^[0-9a-f]+$/.test(s) || s.length % 2 !== 0 || s.length > 42) {
    throw new CaError('malformed', 'a serial is hex, two digits per octet, at most 20 octets');
  }
  if (s.length > 2 && s.startsWith('00') && parseInt(s.slice(2, 3), 16) >= 8) s = s.slice(2);
  return s;
}
