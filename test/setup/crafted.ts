/**
 * Crafted inputs for error and policy tests: CSRs and certificates made by the openssl command
 * line (any key type, any extension, through a config file when -addext is not enough), and CSRs
 * edited at the byte level and re-signed. The DER walk here is deliberately independent of
 * src/x509/der.ts, so that a bug there cannot hide a bug in a test.
 */
import { execFile, execFileSync } from 'node:child_process';
import { sign as nodeSign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface OpensslReq {
  /** Key generation, e.g. ['-newkey', 'rsa:2048'], or ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384']. */
  newkey: string[];
  /** subjectAltName text, e.g. "DNS:a.b,IP:10.0.0.1"; absent: no SAN extension at all. */
  san?: string;
  subject?: string;
  /** Extra lines appended to the openssl config file (sections a SAN's dirName can point at). */
  configExtra?: string;
  /** Extra arguments, e.g. ['-sha384']. */
  args?: string[];
}

const BASE_CONFIG = `[req]
distinguished_name = dn
[dn]
`;

function reqArgs(dir: string, r: OpensslReq): string[] {
  writeFileSync(join(dir, 'openssl.cnf'), `${BASE_CONFIG}${r.configExtra ?? ''}\n`);
  const args = ['req', '-config', join(dir, 'openssl.cnf'), '-new', ...r.newkey, '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'csr.pem'), '-subj', r.subject ?? '/CN=test', ...(r.args ?? [])];
  if (r.san) args.push('-addext', `subjectAltName=${r.san}`);
  return args;
}

/** A CSR made by `openssl req` with a private config file; returns the CSR and its key. */
export function opensslReq(r: OpensslReq): { csrPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-crafted-'));
  try {
    execFileSync('openssl', reqArgs(dir, r), { stdio: 'pipe' });
    return { csrPem: readFileSync(join(dir, 'csr.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The same, without blocking the event loop (for slow keys such as RSA 8192). */
export async function opensslReqAsync(r: OpensslReq): Promise<{ csrPem: string; keyPem: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-crafted-'));
  try {
    await execFileAsync('openssl', reqArgs(dir, r));
    return { csrPem: readFileSync(join(dir, 'csr.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A CSR for an existing private key file content (e.g. one made by `openssl genpkey`). */
export function opensslReqForKey(keyPem: string, san: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-crafted-'));
  try {
    writeFileSync(join(dir, 'openssl.cnf'), BASE_CONFIG);
    writeFileSync(join(dir, 'key.pem'), keyPem);
    return execFileSync('openssl', ['req', '-config', join(dir, 'openssl.cnf'), '-new', '-key', join(dir, 'key.pem'), '-subj', '/CN=test', '-addext', `subjectAltName=${san}`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `openssl genpkey` with the given arguments; returns the PEM private key. */
export function opensslGenpkey(args: string[]): string {
  return execFileSync('openssl', ['genpkey', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * A self-signed certificate made by `openssl req -x509` whose extensions are exactly the given
 * config lines (no openssl defaults are added), with a fresh P-256 key unless keyPem is given.
 */
export function opensslSelfSigned(extensions: string[], options: { keyPem?: string; subject?: string; days?: number } = {}): { certPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-crafted-'));
  try {
    writeFileSync(join(dir, 'openssl.cnf'), `${BASE_CONFIG}[ext]\n${extensions.join('\n')}\n`);
    const keyArgs = options.keyPem
      ? (writeFileSync(join(dir, 'key.pem'), options.keyPem), ['-key', join(dir, 'key.pem')])
      : ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'key.pem')];
    execFileSync(
      'openssl',
      ['req', '-config', join(dir, 'openssl.cnf'), '-x509', ...keyArgs, '-extensions', 'ext', '-subj', options.subject ?? '/CN=crafted', '-days', String(options.days ?? 30), '-out', join(dir, 'cert.pem')],
      { stdio: 'pipe' },
    );
    return { certPem: readFileSync(join(dir, 'cert.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- PEM and a minimal, independent DER walk ----

export function pemToDer(pem: string, label = 'CERTIFICATE REQUEST'): Buffer {
  const m = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`).exec(pem);
  if (!m) throw new Error(`no ${label} block`);
  return Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64');
}

export function derToPem(der: Uint8Array, label = 'CERTIFICATE REQUEST'): string {
  const b64 = Buffer.from(der).toString('base64').match(/.{1,64}/g)!.join('\n');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

export interface Tlv {
  tag: number;
  /** Offset of the identifier octet. */
  offset: number;
  /** Offset of the first content octet. */
  start: number;
  /** Offset just past the content. */
  end: number;
}

export function tlvAt(buf: Uint8Array, offset: number): Tlv {
  const tag = buf[offset]!;
  let len = buf[offset + 1]!;
  let p = offset + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[p + i]!;
    p += n;
  }
  return { tag, offset, start: p, end: p + len };
}

function encodeLength(n: number): Buffer {
  if (n < 0x80) return Buffer.of(n);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.of(0x80 | bytes.length, ...bytes);
}

export function encodeTlv(tag: number, content: Uint8Array): Buffer {
  return Buffer.concat([Buffer.of(tag), encodeLength(content.length), content]);
}

/** The three parts of a PKCS#10 request (RFC 2986 §4.2) and the CRI's version INTEGER. */
export function csrParts(der: Uint8Array): { outer: Tlv; cri: Tlv; sigAlg: Tlv; sig: Tlv; version: Tlv } {
  const outer = tlvAt(der, 0);
  const cri = tlvAt(der, outer.start);
  const sigAlg = tlvAt(der, cri.end);
  const sig = tlvAt(der, sigAlg.end);
  const version = tlvAt(der, cri.start);
  return { outer, cri, sigAlg, sig, version };
}

/**
 * Re-signs a CertificationRequestInfo with the given key, keeping the original signature
 * algorithm identifier (ECDSA/RSA with SHA-256, or Ed25519 when hash is null).
 */
export function resignCsr(criDer: Uint8Array, sigAlgDer: Uint8Array, keyPem: string, hash: string | null): Buffer {
  const signature = nodeSign(hash, criDer, { key: keyPem, dsaEncoding: 'der' });
  const bitString = encodeTlv(0x03, Buffer.concat([Buffer.of(0), signature]));
  return encodeTlv(0x30, Buffer.concat([criDer, sigAlgDer, bitString]));
}

/** A copy of buf with the octet at index XOR-ed with mask. */
export function flipByte(buf: Uint8Array, index: number, mask = 0x01): Buffer {
  const copy = Buffer.from(buf);
  copy[index] = copy[index]! ^ mask;
  return copy;
}
