/**
 * Pre-issuance lint: the signer re-checks every template against the profile before it signs,
 * so that a policy bug cannot produce a certificate outside the profile (the idea of Boulder's
 * and zlint's pre-issuance checks). What was checked is what gets encoded and signed.
 */
import { isIP } from 'node:net';
import { CaError } from '../errors.js';
import type { LeafTemplate } from './leaf-profile.js';
import { keyTypeOfSpki } from '../x509/public-keys.js';

const DNS_NAME = /^(\*\.)?(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;
const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;

function lintFailed(what: string): never {
  throw new CaError('serverInternal', `pre-issuance lint failed: ${what}`);
}

export function lintLeaf(t: LeafTemplate, caNotBefore: Date, caNotAfter: Date): void {
  if (t.serial.length === 0 || t.serial.length > 20 || (t.serial[0]! & 0x80) !== 0 || t.serial.every((b) => b === 0)) {
    lintFailed('serial must be positive and at most 20 octets');
  }
  if (!(t.notBefore.getTime() < t.notAfter.getTime())) lintFailed('notBefore must precede notAfter');
  if (t.notAfter.getTime() > caNotAfter.getTime()) lintFailed('notAfter is past the intermediate\'s notAfter');
  if (t.notBefore.getTime() < caNotBefore.getTime()) lintFailed('notBefore precedes the intermediate\'s notBefore');
  const count = t.sans.dns.length + t.sans.ip.length + t.sans.uri.length + t.sans.email.length;
  if (count === 0) lintFailed('no subjectAltName');
  for (const n of t.sans.dns) if (!DNS_NAME.test(n)) lintFailed(`bad dNSName ${JSON.stringify(n)}`);
  for (const n of t.sans.ip) if (isIP(n) === 0) lintFailed(`bad iPAddress ${JSON.stringify(n)}`);
  for (const n of t.sans.uri) if (!PRINTABLE_ASCII.test(n) || !/^[a-z][a-z0-9+.-]*:/i.test(n)) lintFailed(`bad URI ${JSON.stringify(n)}`);
  for (const n of t.sans.email) if (!PRINTABLE_ASCII.test(n) || !/^[^@]+@[^@]+$/.test(n)) lintFailed(`bad rfc822Name ${JSON.stringify(n)}`);
  if (t.extendedKeyUsage.length === 0) lintFailed('no extendedKeyUsage');
  if (keyTypeOfSpki(t.spki) !== t.keyType) lintFailed('subject public key type does not match the template');
}
