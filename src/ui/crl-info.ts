/**
 * What the console shows of the current CRL: its number, thisUpdate, nextUpdate and entry count,
 * read from the DER that GET /v1/crl serves. Only the outer structure of RFC 5280 §5.1 is walked
 * (TBSCertList's fields in order); nothing is verified here: the console reports, relying
 * parties verify.
 */

export interface CrlInfo {
  number: bigint | null;
  thisUpdate: Date;
  nextUpdate: Date | null;
  entries: number;
  bytes: number;
}

interface Tlv {
  tag: number;
  /** Content start and end (exclusive). */
  start: number;
  end: number;
}

function tlv(der: Uint8Array, at: number, limit: number): Tlv {
  if (at + 2 > limit) throw new Error('truncated DER');
  const tag = der[at]!;
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > limit) throw new Error('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  if (start + len > limit) throw new Error('truncated DER');
  return { tag, start, end: start + len };
}

/** The TLVs directly inside a constructed value. */
function children(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const t = tlv(der, at, parent.end);
    out.push(t);
    at = t.end;
  }
  return out;
}

const ascii = (der: Uint8Array, t: Tlv) => String.fromCharCode(...der.subarray(t.start, t.end));

/** UTCTime (0x17, two-digit years: 50–99 are 19xx, RFC 5280 §4.1.2.5.1) or GeneralizedTime (0x18). */
function timeOf(der: Uint8Array, t: Tlv): Date | null {
  const s = ascii(der, t);
  const m = t.tag === 0x17 ? /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : t.tag === 0x18 ? /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(s) : null;
  if (!m) return null;
  let year = Number(m[1]);
  if (t.tag === 0x17) year += year >= 50 ? 1900 : 2000;
  return new Date(Date.UTC(year, Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])));
}

/** The DER of OID 2.5.29.20, cRLNumber (RFC 5280 §5.2.3). */
const CRL_NUMBER_OID = [0x55, 0x1d, 0x14];

function crlNumber(der: Uint8Array, extensionsWrapper: Tlv): bigint | null {
  const [extensions] = children(der, extensionsWrapper);
  if (!extensions) return null;
  for (const ext of children(der, extensions)) {
    const parts = children(der, ext);
    const oid = parts[0];
    const value = parts[parts.length - 1];
    if (!oid || !value || oid.tag !== 0x06 || value.tag !== 0x04) continue;
    const id = der.subarray(oid.start, oid.end);
    if (id.length !== CRL_NUMBER_OID.length || !CRL_NUMBER_OID.every((b, i) => id[i] === b)) continue;
    const int = tlv(der, value.start, value.end);
    if (int.tag !== 0x02) return null;
    let n = 0n;
    for (let i = int.start; i < int.end; i++) n = n * 256n + BigInt(der[i]!);
    return n;
  }
  return null;
}

export function readCrl(der: Uint8Array): CrlInfo {
  const list = tlv(der, 0, der.length);
  const [tbs] = children(der, list);
  if (list.tag !== 0x30 || !tbs || tbs.tag !== 0x30) throw new Error('not a CRL');
  const fields = children(der, tbs);
  let i = fields[0]?.tag === 0x02 ? 1 : 0; // version, when present
  i += 2; // signature AlgorithmIdentifier, issuer Name
  const thisField = fields[i++];
  const thisUpdate = thisField ? timeOf(der, thisField) : null;
  if (!thisUpdate) throw new Error('a CRL without thisUpdate');
  let nextUpdate: Date | null = null;
  if (fields[i] && (fields[i]!.tag === 0x17 || fields[i]!.tag === 0x18)) nextUpdate = timeOf(der, fields[i++]!);
  let entries = 0;
  if (fields[i]?.tag === 0x30) entries = children(der, fields[i++]!).length;
  const number = fields[i]?.tag === 0xa0 ? crlNumber(der, fields[i]!) : null;
  return { number, thisUpdate, nextUpdate, entries, bytes: der.length };
}
