/**
 * PKCS#11 URIs (RFC 7512): how a configuration names a key in a token, e.g.
 * `pkcs11:token=CA;object=issuing-key;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so`.
 *
 * The parser follows the RFC 7512 §2.3 grammar strictly: a character the grammar does not allow
 * unencoded (a space, `#`, `/` in the path, `&` in the query) is refused instead of guessed at, as
 * is a repeated attribute, since a URI that names a CA key must mean exactly one thing. Messages
 * name the attribute and the problem, never a query value: `pin-value` carries the PIN.
 * Attributes outside the RFC's list are kept as vendor attributes (§2.3 allows them); the caller
 * decides whether it understands them.
 */
import { CaError } from '../errors.js';

export type Pkcs11ObjectType = 'public' | 'private' | 'cert' | 'secret-key' | 'data';

export interface Pkcs11Uri {
  /** Token: CK_TOKEN_INFO label, manufacturerID, serialNumber, model. */
  readonly token?: string;
  readonly manufacturer?: string;
  readonly serial?: string;
  readonly model?: string;
  /** Module: CK_INFO manufacturerID, libraryDescription, libraryVersion. */
  readonly libraryManufacturer?: string;
  readonly libraryDescription?: string;
  readonly libraryVersion?: { readonly major: number; readonly minor: number };
  /** Slot: CK_SLOT_INFO slotDescription, manufacturerID, and the CK_SLOT_ID. */
  readonly slotDescription?: string;
  readonly slotManufacturer?: string;
  readonly slotId?: bigint;
  /** Object: CKA_LABEL, CKA_ID (bytes), CKA_CLASS. */
  readonly object?: string;
  readonly id?: Buffer;
  readonly type?: Pkcs11ObjectType;
  readonly modulePath?: string;
  readonly moduleName?: string;
  readonly pinSource?: string;
  /** Not enumerable, so neither JSON.stringify nor util.inspect of a parsed URI shows the PIN. */
  readonly pinValue?: string;
  readonly vendorPath: ReadonlyMap<string, string>;
  readonly vendorQuery: ReadonlyMap<string, string>;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

// RFC 3986 unreserved characters plus pk11-res-avail (RFC 7512 §2.3).
const COMMON = "A-Za-z0-9\\-._~:\\[\\]@!$'()*+,=";
const PATH_VALUE = new RegExp(`^(?:[${COMMON}&]|%[0-9A-Fa-f]{2})*$`);
const QUERY_VALUE = new RegExp(`^(?:[${COMMON}/?|]|%[0-9A-Fa-f]{2})*$`);
const NAME = /^[A-Za-z0-9_-]+$/;

const TEXT_PATH: Record<string, keyof Pkcs11Uri> = {
  token: 'token',
  manufacturer: 'manufacturer',
  serial: 'serial',
  model: 'model',
  'library-manufacturer': 'libraryManufacturer',
  'library-description': 'libraryDescription',
  'slot-description': 'slotDescription',
  'slot-manufacturer': 'slotManufacturer',
  object: 'object',
};
const TEXT_QUERY: Record<string, keyof Pkcs11Uri> = {
  'module-path': 'modulePath',
  'module-name': 'moduleName',
  'pin-source': 'pinSource',
  'pin-value': 'pinValue',
};
const TYPES: readonly Pkcs11ObjectType[] = ['public', 'private', 'cert', 'secret-key', 'data'];
const PATH_NAMES = new Set([...Object.keys(TEXT_PATH), 'id', 'type', 'slot-id', 'library-version']);
const QUERY_NAMES = new Set(Object.keys(TEXT_QUERY));

/**
 * The grammar's names and type values are ABNF quoted strings, which match in any case (RFC 5234
 * §2.3): `Token=` is `token=`. Vendor attribute names are kept as written.
 */
function standardName(written: string, names: ReadonlySet<string>): string {
  const lower = written.toLowerCase();
  return names.has(lower) ? lower : written;
}

function fail(detail: string): never {
  throw new CaError('serverInternal', detail);
}

/** The first character the grammar refuses unencoded, for the message (a path is not secret). */
function firstUnencoded(value: string, allowed: RegExp): string {
  for (let i = 0; i < value.length; i++) {
    const rest = value.slice(i);
    const step = rest.startsWith('%') && /^%[0-9A-Fa-f]{2}/.test(rest) ? 3 : 1;
    if (!allowed.test(value.slice(i, i + step))) return value[i] === '%' ? "'%' not followed by two hex digits" : `'${value[i]}' must be percent-encoded`;
    i += step - 1;
  }
  return 'a character must be percent-encoded';
}

function percentDecode(value: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    if (value[i] === '%') {
      bytes.push(parseInt(value.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(value.charCodeAt(i));
    }
  }
  return Buffer.from(bytes);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(name: string, bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return fail(`PKCS#11 URI: ${name} is not UTF-8 once percent-decoded`);
  }
}

/**
 * Splits `name=value` attributes; `=` may appear in a value (pk11-res-avail), not in a name.
 * Text of the query is never quoted back: a mistyped attribute there may be the PIN.
 */
function attributes(component: string, separator: string, where: 'path' | 'query'): [string, string][] {
  if (component === '') return [];
  const quote = (s: string) => (where === 'path' ? ` '${s.slice(0, 40)}'` : '');
  return component.split(separator).map((attr) => {
    const eq = attr.indexOf('=');
    if (attr === '') fail(`PKCS#11 URI: an empty attribute in the ${where} (a stray '${separator}')`);
    if (eq <= 0) fail(`PKCS#11 URI: ${where} attribute${quote(attr)} is not of the form name=value`);
    const name = attr.slice(0, eq);
    if (!NAME.test(name)) fail(`PKCS#11 URI: ${where} attribute name${quote(name)} holds a character other than letters, digits, '-' and '_'`);
    return [name, attr.slice(eq + 1)];
  });
}

/**
 * Parses a PKCS#11 URI (RFC 7512 §2.3). The scheme is case-insensitive (RFC 3986 §3.1); attribute
 * names are matched as the RFC writes them. Throws CaError('serverInternal') naming the problem.
 */
export function parsePkcs11Uri(uri: string): Pkcs11Uri {
  if (!/^pkcs11:/i.test(uri)) fail('PKCS#11 URI: does not start with pkcs11:');
  const rest = uri.slice('pkcs11:'.length);
  const q = rest.indexOf('?');
  const path = q === -1 ? rest : rest.slice(0, q);
  const query = q === -1 ? '' : rest.slice(q + 1);
  const out: Mutable<Omit<Pkcs11Uri, 'vendorPath' | 'vendorQuery'>> = {};
  const vendorPath = new Map<string, string>();
  const vendorQuery = new Map<string, string>();
  const seen = new Set<string>();
  const seenInQuery = new Set<string>();

  for (const [written, raw] of attributes(path, ';', 'path')) {
    const name = standardName(written, PATH_NAMES);
    if (seen.has(name)) fail(`PKCS#11 URI: ${name} appears more than once`);
    seen.add(name);
    if (!PATH_VALUE.test(raw)) fail(`PKCS#11 URI: in ${name}, ${firstUnencoded(raw, PATH_VALUE)}`);
    const bytes = percentDecode(raw);
    const field = TEXT_PATH[name];
    if (field) (out as Record<string, unknown>)[field] = text(name, bytes);
    else if (name === 'id') out.id = bytes;
    else if (name === 'type') {
      const type = bytes.toString('latin1').toLowerCase() as Pkcs11ObjectType;
      if (!TYPES.includes(type)) fail(`PKCS#11 URI: type '${type.slice(0, 20)}' is not one of ${TYPES.join(', ')}`);
      out.type = type;
    } else if (name === 'slot-id') {
      const digits = bytes.toString('latin1');
      if (!/^[0-9]+$/.test(digits)) fail('PKCS#11 URI: slot-id is not a decimal number');
      out.slotId = BigInt(digits);
    } else if (name === 'library-version') {
      const m = /^([0-9]+)(?:\.([0-9]+))?$/.exec(bytes.toString('latin1'));
      if (!m) fail('PKCS#11 URI: library-version is not M or M.N');
      out.libraryVersion = { major: Number(m[1]), minor: Number(m[2] ?? 0) };
    } else vendorPath.set(name, text(name, bytes));
  }

  for (const [written, raw] of attributes(query, '&', 'query')) {
    const name = standardName(written, QUERY_NAMES);
    const field = TEXT_QUERY[name];
    if (seenInQuery.has(name)) fail(`PKCS#11 URI: ${name} appears more than once`);
    seenInQuery.add(name);
    if (!QUERY_VALUE.test(raw)) fail(`PKCS#11 URI: in ${name}, a character must be percent-encoded`);
    const value = text(name, percentDecode(raw));
    if (name === 'pin-value') Object.defineProperty(out, 'pinValue', { value, enumerable: false });
    else if (field) (out as Record<string, unknown>)[field] = value;
    else vendorQuery.set(name, value);
  }
  if (out.pinValue !== undefined && out.pinSource !== undefined) fail('PKCS#11 URI: has both pin-value and pin-source');
  if (out.modulePath !== undefined && out.moduleName !== undefined) fail('PKCS#11 URI: has both module-path and module-name');
  return Object.assign(out, { vendorPath, vendorQuery });
}

/** The path attributes that select a token and object, for messages (never the query: the PIN). */
export function describePkcs11Uri(uri: Pkcs11Uri): string {
  const parts: string[] = [];
  for (const [name, value] of [['token', uri.token], ['serial', uri.serial], ['manufacturer', uri.manufacturer], ['model', uri.model], ['object', uri.object]] as const) {
    if (value !== undefined) parts.push(`${name} "${value}"`);
  }
  if (uri.slotId !== undefined) parts.push(`slot-id ${uri.slotId}`);
  if (uri.id !== undefined) parts.push(`id ${uri.id.toString('hex')}`);
  return parts.length > 0 ? parts.join(', ') : 'the URI (it names nothing)';
}
