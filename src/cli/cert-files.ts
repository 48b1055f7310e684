/**
 * The files a service reads: PREFIX.key (0600), PREFIX.pem (leaf), PREFIX.chain.pem
 * (intermediates), PREFIX.fullchain.pem (the leaf, then the intermediates), PREFIX.ca.pem (the
 * CA's root(s), the trust bundle: only when it holds the pinned root and the leaf chains to it)
 * and, when asked for, a PKCS#12 file (0600) with the key, the leaf and the chain. Each is
 * replaced atomically; the key first, then the chain, the full chain, the trust bundle and the
 * PKCS#12, and the leaf last, so that a reader that keys off the leaf's change finds everything
 * else already in place. Beside them the agent keeps PREFIX.pending.key (0600): the key and CSR
 * of a request not answered yet, so that a retry after a lost answer, even by a restarted agent,
 * sends the same CSR (docs/api.md "Certificate holder": a renewal retried with the same key
 * answers 200; "Retries").
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Issuance } from '../client/index.js';
import { x509 } from '../x509/library.js';
import { writeFileAtomic } from './files.js';
import type { ClientKeyType, Names } from './keys.js';
import { encodePkcs12 } from './pkcs12.js';

export interface CurrentCertificate {
  certificatePem: string;
  keyPem: string;
  /** The intermediates, PEM. */
  chainPem: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export const paths = (prefix: string) => ({
  key: `${prefix}.key`,
  cert: `${prefix}.pem`,
  chain: `${prefix}.chain.pem`,
  fullchain: `${prefix}.fullchain.pem`,
  ca: `${prefix}.ca.pem`,
  pending: `${prefix}.pending.key`,
});

function sortedNames(names: Names): string {
  const n = (v: string[] | undefined, f: (s: string) => string = (s) => s) => [...(v ?? [])].map(f).sort();
  return JSON.stringify({ dns: n(names.dns, (s) => s.toLowerCase()), ip: n(names.ip), uri: n(names.uri), email: n(names.email) });
}

/** The SANs of a certificate as Names (node's subjectAltName text). */
export function namesOf(cert: X509Certificate): Names {
  const out: Required<Names> = { dns: [], ip: [], uri: [], email: [] };
  for (const part of (cert.subjectAltName ?? '').split(', ')) {
    const i = part.indexOf(':');
    const kind = part.slice(0, i);
    const value = part.slice(i + 1);
    if (kind === 'DNS') out.dns.push(value);
    else if (kind === 'IP Address') out.ip.push(value);
    else if (kind === 'URI') out.uri.push(value);
    else if (kind === 'email') out.email.push(value);
  }
  return out;
}

const canonicalIp = (s: string) => (isIP(s) === 6 ? new URL(`http://[${s}]/`).hostname.slice(1, -1) : s);
const sameNames = (a: Names, b: Names) => {
  const norm = (n: Names) => sortedNames({ ...n, ip: (n.ip ?? []).map(canonicalIp) });
  return norm(a) === norm(b);
};

/**
 * The current certificate when the files exist, parse, belong together, are valid now and are
 * for exactly the wanted names; otherwise undefined with the reason.
 */
export function readCurrent(prefix: string, wanted: Names, now: Date): { current?: CurrentCertificate; reason?: string } {
  const p = paths(prefix);
  let certificatePem: string;
  let keyPem: string;
  let chainPem: string;
  try {
    certificatePem = readFileSync(p.cert, 'utf8');
    keyPem = readFileSync(p.key, 'utf8');
    chainPem = readFileSync(p.chain, 'utf8');
  } catch {
    return { reason: 'files missing' };
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certificatePem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return { reason: 'key does not match the certificate' };
  } catch {
    return { reason: 'files do not parse' };
  }
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  if (now.getTime() >= notAfter.getTime()) return { reason: 'certificate expired' };
  const have = namesOf(cert);
  if (!sameNames(have, wanted)) return { reason: 'certificate is for other names' };
  let serial = cert.serialNumber.toLowerCase();
  if (serial.length > 2 && serial.startsWith('00') && parseInt(serial[2]!, 16) >= 8) serial = serial.slice(2);
  return { current: { certificatePem, keyPem, chainPem, serial, notBefore, notAfter } };
}

/** What the agent writes beside the key, the leaf and the chain. */
export interface ExtraOutputs {
  /** A trust bundle bundleProblem accepted; undefined leaves PREFIX.ca.pem as it is. */
  caBundle?: string | undefined;
  /** The PKCS#12 file and its passphrase; undefined writes none. */
  p12?: { path: string; passphrase: string } | undefined;
}

const withNewline = (pem: string) => (pem.endsWith('\n') ? pem : `${pem}\n`);
const CERTIFICATE_PEM = /-----BEGIN CERTIFICATE-----\r?\n[\s\S]*?-----END CERTIFICATE-----\r?\n?/g;

/** The certificates of a PEM text, each as its own block with a final line break. */
export const certificateBlocks = (pem: string): string[] => (pem.match(CERTIFICATE_PEM) ?? []).map(withNewline);

/** PREFIX.fullchain.pem: the leaf, then the intermediates. */
const fullchainOf = (certificatePem: string, chainPem: string) => [certificatePem, ...certificateBlocks(chainPem)].map(withNewline).join('');

type Derived = 'fullchain' | 'ca' | 'p12';

/**
 * The outputs that derive from the key, the leaf and the chain (all of them, or `only` those),
 * as writes to make in the order of the header. Every content is computed first (the PKCS#12
 * encryption takes a moment), so that the writes follow each other closely.
 */
function derivedWrites(prefix: string, c: Pick<CurrentCertificate, 'certificatePem' | 'keyPem' | 'chainPem'>, extra: ExtraOutputs, only?: Set<Derived>): (() => void)[] {
  const p = paths(prefix);
  const wanted = (d: Derived) => !only || only.has(d);
  const writes: (() => void)[] = [];
  if (wanted('fullchain')) {
    const fullchain = fullchainOf(c.certificatePem, c.chainPem);
    writes.push(() => writeFileAtomic(p.fullchain, fullchain, 0o644));
  }
  const bundle = extra.caBundle;
  if (bundle !== undefined && wanted('ca')) writes.push(() => writeFileAtomic(p.ca, bundle, 0o644));
  const p12 = extra.p12;
  if (p12 && wanted('p12')) {
    const der = encodePkcs12({ ...c, passphrase: p12.passphrase });
    writes.push(() => writeFileAtomic(p12.path, der, 0o600));
  }
  return writes;
}

export function writeIssued(prefix: string, keyPem: string, issued: Issuance, extra: ExtraOutputs = {}): CurrentCertificate {
  const p = paths(prefix);
  const chainPem = issued.chain.map(withNewline).join('');
  const derived = derivedWrites(prefix, { certificatePem: issued.certificate, keyPem, chainPem }, extra);
  writeFileAtomic(p.key, keyPem, 0o600);
  writeFileAtomic(p.chain, chainPem, 0o644);
  for (const write of derived) write();
  writeFileAtomic(p.cert, issued.certificate, 0o644);
  return { certificatePem: issued.certificate, keyPem, chainPem, serial: issued.serial, notBefore: new Date(issued.notBefore), notAfter: new Date(issued.notAfter) };
}

/**
 * Which derived outputs of the certificate in place are missing: the full chain when absent or
 * for another leaf, the trust bundle and the PKCS#12 file when absent (an agent started with new
 * options, or a bundle that could not be fetched or was refused before).
 */
export function missingOutputs(prefix: string, current: CurrentCertificate, p12Path: string | undefined): Set<Derived> {
  const p = paths(prefix);
  const missing = new Set<Derived>();
  let fullchain: string | undefined;
  try {
    fullchain = readFileSync(p.fullchain, 'utf8');
  } catch {
    fullchain = undefined;
  }
  if (fullchain !== fullchainOf(current.certificatePem, current.chainPem)) missing.add('fullchain');
  if (!existsSync(p.ca)) missing.add('ca');
  if (p12Path !== undefined && !existsSync(p12Path)) missing.add('p12');
  return missing;
}

/** Writes the derived outputs named in `which` for the certificate in place (never the key, leaf or chain). */
export function writeMissing(prefix: string, current: CurrentCertificate, extra: ExtraOutputs, which: Set<Derived>): void {
  for (const write of derivedWrites(prefix, current, extra, which)) write();
}

/**
 * Why the trust bundle the CA answered must not be written as PREFIX.ca.pem, or undefined when it
 * may: it must hold certificates only, at least one of them byte for byte a certificate of the
 * pinned root file (when there is one: --ca, SERVICE_CA_ROOT or the saved context), and the leaf
 * must chain to one of them through the intermediates, every signature checked. A bundle without
 * the pinned root would have the services trust a CA this agent was never told to trust.
 */
export function bundleProblem(bundlePem: string, pinnedPem: string | undefined, leafPem: string, chainPem: string): string | undefined {
  const parse = (pem: string) => certificateBlocks(pem).map((block) => new X509Certificate(block));
  let bundle: X509Certificate[];
  let intermediates: X509Certificate[];
  let leaf: X509Certificate;
  let pinned: Set<string> | undefined;
  try {
    bundle = parse(bundlePem);
    intermediates = parse(chainPem);
    leaf = new X509Certificate(leafPem);
  } catch {
    return 'the bundle does not parse';
  }
  try {
    pinned = pinnedPem === undefined ? undefined : new Set(parse(pinnedPem).map((c) => c.raw.toString('base64')));
  } catch {
    return 'the pinned root file does not parse';
  }
  if (bundle.length === 0) return 'the bundle holds no certificate';
  if (bundlePem.replace(CERTIFICATE_PEM, '').trim() !== '') return 'the bundle holds something other than certificates';
  if (pinned && !bundle.some((c) => pinned.has(c.raw.toString('base64')))) return 'the bundle does not hold the pinned root';
  // Walk up from the leaf: each step an issuer whose name and signature match.
  let cert = leaf;
  for (let depth = 0; depth <= intermediates.length; depth++) {
    const root = bundle.find((r) => cert.checkIssued(r) && cert.verify(r.publicKey));
    if (root) return undefined;
    const next = intermediates.find((i) => i !== cert && cert.checkIssued(i) && cert.verify(i.publicKey));
    if (!next) break;
    cert = next;
  }
  return 'the certificate does not chain to a root of the bundle';
}

/** The key and CSR of a request whose answer has not arrived (yet). */
export interface PendingRequest {
  keyPem: string;
  csrPem: string;
  /** The serial of the certificate in place when the key was made; null when there was none. */
  replaces: string | null;
}

/** One PEM block with its line break (the CSR is sent as read, so a retry is byte-identical). */
const PEM_BLOCK = /-----BEGIN ([A-Z ]+)-----\r?\n[\s\S]*?-----END \1-----\r?\n?/g;
const REPLACES = /^Replaces: (none|[0-9a-f]+)$/m;

/** Writes PREFIX.pending.key atomically, 0600; the text before the blocks is allowed by RFC 7468 §2. */
export function writePending(prefix: string, p: PendingRequest): PendingRequest {
  const pending = { ...p, keyPem: withNewline(p.keyPem), csrPem: withNewline(p.csrPem) };
  const text = `service-ca agent: the key and CSR of a request not answered yet\nReplaces: ${p.replaces ?? 'none'}\n${pending.keyPem}${pending.csrPem}`;
  writeFileAtomic(paths(prefix).pending, text, 0o600);
  return pending;
}

export function removePending(prefix: string): void {
  rmSync(paths(prefix).pending, { force: true });
}

const KEY_TYPE_OF: Record<string, ClientKeyType> = { prime256v1: 'p256', secp384r1: 'p384', rsa: 'rsa', ed25519: 'ed25519' };

/**
 * The pending request, when PREFIX.pending.key exists and is still the one to retry: it parses,
 * its CSR is for this key, these names and this key type, and the certificate in place is still
 * the one it was made to replace (a newer certificate, or one carrying this very key, means the
 * request was answered or overtaken). Otherwise undefined, with the reason when a file exists.
 */
export async function readPending(prefix: string, wanted: Names, keyType: ClientKeyType, current: CurrentCertificate | undefined): Promise<{ pending?: PendingRequest; reason?: string }> {
  let text: string;
  try {
    text = readFileSync(paths(prefix).pending, 'utf8');
  } catch {
    return {};
  }
  const blocks = [...text.matchAll(PEM_BLOCK)];
  const keyPem = blocks.find((b) => b[1] === 'PRIVATE KEY')?.[0];
  const csrPem = blocks.find((b) => b[1] === 'CERTIFICATE REQUEST')?.[0];
  const replaces = REPLACES.exec(text)?.[1];
  if (!keyPem || !csrPem || !replaces) return { reason: 'the pending file is incomplete' };
  let spki: string;
  let csr: x509.Pkcs10CertificateRequest;
  try {
    const key = createPrivateKey(keyPem);
    spki = createPublicKey(key).export({ type: 'spki', format: 'der' }).toString('hex');
    const type = KEY_TYPE_OF[key.asymmetricKeyDetails?.namedCurve ?? key.asymmetricKeyType ?? ''];
    if (type !== keyType) return { reason: 'the pending key is of another type' };
    csr = new x509.Pkcs10CertificateRequest(csrPem);
    if (!(await csr.verify())) return { reason: 'the pending CSR does not verify' };
  } catch {
    return { reason: 'the pending file does not parse' };
  }
  if (Buffer.from(csr.publicKey.rawData).toString('hex') !== spki) return { reason: 'the pending CSR is for another key' };
  const san = csr.extensions.find((e) => e.type === '2.5.29.17');
  const names: Required<Names> = { dns: [], ip: [], uri: [], email: [] };
  for (const n of san ? new x509.SubjectAlternativeNameExtension(san.rawData).names.toJSON() : []) {
    const kind = n.type === 'url' ? 'uri' : n.type;
    if (kind === 'dns' || kind === 'ip' || kind === 'uri' || kind === 'email') names[kind].push(n.value);
  }
  if (!sameNames(names, wanted)) return { reason: 'the pending CSR is for other names' };
  if (current) {
    if (createPublicKey(current.keyPem).export({ type: 'spki', format: 'der' }).toString('hex') === spki) return { reason: 'the certificate in place already carries the pending key' };
    if (current.serial !== (replaces === 'none' ? null : replaces)) return { reason: 'the pending key is older than the certificate in place' };
  }
  return { pending: { keyPem, csrPem, replaces: replaces === 'none' ? null : replaces } };
}
