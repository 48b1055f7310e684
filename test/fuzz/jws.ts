/**
 * Compact JWS (RFC 7515 §7.1) built by hand for the fuzz tests, so that any header and any
 * payload, JSON or not, can be signed: with a real key (ES256/ES384 raw r||s, RS256, EdDSA),
 * with none, with HMAC over a chosen secret (the algorithm-confusion attack), or with garbage.
 */
import { createHmac, sign as nodeSign, type KeyObject } from 'node:crypto';

export const b64u = (v: unknown): string => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

export type JwsSigner = { key: KeyObject } | { none: true } | { hmac: string | Buffer } | { garbage: true };

/** header and payload are JSON-encoded unless they are strings, which are taken as they are. */
export function signJws(header: unknown, payload: unknown, signer: JwsSigner): string {
  const input = `${b64u(header)}.${b64u(payload)}`;
  if ('none' in signer) return `${input}.`;
  if ('garbage' in signer) return `${input}.${b64u('not a signature')}`;
  if ('hmac' in signer) return `${input}.${createHmac('sha256', signer.hmac).update(input).digest('base64url')}`;
  const key = signer.key;
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const hash = type === 'ed25519' ? null : type === 'ec' && curve === 'secp384r1' ? 'sha384' : 'sha256';
  return `${input}.${nodeSign(hash, Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }).toString('base64url')}`;
}

/** Character-level edits of a token's text. */
export interface TextEdit {
  at: number;
  op: 'replace' | 'insert' | 'delete' | 'dot' | 'pad';
  char: string;
}

export function applyTextEdits(text: string, edits: TextEdit[]): string {
  let t = text;
  for (const e of edits) {
    const at = e.at % (t.length + 1);
    if (e.op === 'replace') t = t.slice(0, at) + e.char + t.slice(at + 1);
    else if (e.op === 'insert') t = t.slice(0, at) + e.char + t.slice(at);
    else if (e.op === 'delete') t = t.slice(0, at) + t.slice(at + 1);
    else if (e.op === 'dot') t = `${t}.`;
    else t = `${t}==`;
  }
  return t;
}

/** Whether an edited token still carries what was signed: the same first two segments and signature octets. */
export function sameSignedToken(original: string, edited: string): boolean {
  const [h0, p0, s0] = original.split('.');
  const parts = edited.split('.');
  if (parts.length !== 3) return false;
  const [h1, p1, s1] = parts;
  return h0 === h1 && p0 === p1 && Buffer.from(s1!, 'base64url').equals(Buffer.from(s0!, 'base64url'));
}
