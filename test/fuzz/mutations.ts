/**
 * Mutations and hand-built requests for the fuzz tests: byte-level edits of any buffer, edits of
 * a DER tree that keep every enclosing length right (so that an edit deep inside a CSR reaches
 * the code that reads that depth), and PKCS#10 requests (RFC 2986) built from chosen
 * GeneralNames and signed with real keys. The DER here is written with test/setup/crafted.ts,
 * independently of src/x509/der.ts.
 */
import { createPrivateKey, createPublicKey, sign as nodeSign, type KeyObject } from 'node:crypto';
import fc from 'fast-check';
import { createKeyAndCsr, type ClientKeyType } from '../setup/csr.js';
import { csrParts, encodeTlv, pemToDer, tlvAt } from '../setup/crafted.js';

// ---- byte mutations ----

export type ByteMutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'delete'; at: number; length: number }
  | { op: 'truncate'; at: number }
  | { op: 'duplicate'; at: number; length: number };

export const byteMutation: fc.Arbitrary<ByteMutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.oneof(fc.nat(255), fc.constantFrom(0x00, 0x7f, 0x80, 0x81, 0x84, 0xff)) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 8 }) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }),
);

export const byteMutations = fc.array(byteMutation, { minLength: 1, maxLength: 5 });

export function applyByteMutations(input: Uint8Array, mutations: ByteMutation[]): Buffer {
  let buf = Buffer.from(input);
  for (const m of mutations) {
    const at = buf.length === 0 ? 0 : m.at % buf.length;
    switch (m.op) {
      case 'flip':
        if (buf.length) buf[at] = buf[at]! ^ (1 << m.bit);
        break;
      case 'set':
        if (buf.length) buf[at] = m.value;
        break;
      case 'insert':
        buf = Buffer.concat([buf.subarray(0, at), m.bytes, buf.subarray(at)]);
        break;
      case 'delete':
        buf = Buffer.concat([buf.subarray(0, at), buf.subarray(at + m.length)]);
        break;
      case 'truncate':
        buf = buf.subarray(0, at);
        break;
      case 'duplicate':
        buf = Buffer.concat([buf.subarray(0, at + m.length), buf.subarray(at)]);
        break;
    }
  }
  return buf;
}

// ---- DER trees ----

export interface DerNode {
  tag: number;
  /** Content octets of a primitive node (or of a constructed one that did not parse as TLVs). */
  content: Buffer;
  /** Children of a constructed node. */
  children: DerNode[] | undefined;
  /** How the length is written: shortest (DER), a 4-octet long form, or indefinite (BER). */
  length?: 'long' | 'indefinite';
}

function children(content: Buffer): DerNode[] | undefined {
  const out: DerNode[] = [];
  for (let p = 0; p < content.length; ) {
    if (p + 2 > content.length || (content[p]! & 0x1f) === 0x1f) return undefined;
    const n = content[p + 1]! & 0x80 ? content[p + 1]! & 0x7f : 0;
    if ((content[p + 1]! & 0x80 && (n === 0 || n > 4)) || p + 2 + n > content.length) return undefined;
    const t = tlvAt(content, p);
    if (t.end > content.length) return undefined;
    out.push(decodeTree(content.subarray(p, t.end)));
    p = t.end;
  }
  return out;
}

/** A DER value as a tree (constructed tags whose content is a run of TLVs get children). */
export function decodeTree(der: Uint8Array): DerNode {
  const t = tlvAt(der, 0);
  const content = Buffer.from(der.subarray(t.start, t.end));
  return { tag: t.tag, content, children: t.tag & 0x20 ? children(content) : undefined };
}

export function encodeTree(node: DerNode): Buffer {
  const content = node.children ? Buffer.concat(node.children.map(encodeTree)) : node.content;
  if (node.length === 'indefinite') return Buffer.concat([Buffer.of(node.tag, 0x80), content, Buffer.of(0, 0)]);
  if (node.length === 'long') {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(content.length);
    return Buffer.concat([Buffer.of(node.tag, 0x84), len, content]);
  }
  return encodeTlv(node.tag, content);
}

const clone = (n: DerNode): DerNode => ({ ...n, content: Buffer.from(n.content), children: n.children?.map(clone) });

function walk(node: DerNode, parent: DerNode | undefined, out: { node: DerNode; parent: DerNode | undefined }[]): void {
  out.push({ node, parent });
  for (const c of node.children ?? []) walk(c, node, out);
}

export interface TreeMutation {
  /** Which node, in pre-order, modulo the number of nodes. */
  at: number;
  op: 'content' | 'flip' | 'retag' | 'remove' | 'duplicate' | 'insert' | 'truncate' | 'long' | 'indefinite' | 'swap';
  n: number;
  bytes: Uint8Array;
}

export const treeMutation: fc.Arbitrary<TreeMutation> = fc.record({
  at: fc.nat(),
  op: fc.constantFrom('content', 'flip', 'retag', 'remove', 'duplicate', 'insert', 'truncate', 'long', 'indefinite', 'swap'),
  n: fc.nat(),
  bytes: fc.oneof(fc.uint8Array({ maxLength: 12 }), fc.uint8Array({ minLength: 100, maxLength: 300 })),
});

export const treeMutations = fc.array(treeMutation, { minLength: 1, maxLength: 4 });

/** A copy of the tree with the mutations applied; enclosing lengths follow when re-encoded. */
export function applyTreeMutations(tree: DerNode, mutations: TreeMutation[]): DerNode {
  const root = clone(tree);
  for (const m of mutations) {
    const nodes: { node: DerNode; parent: DerNode | undefined }[] = [];
    walk(root, undefined, nodes);
    const { node, parent } = nodes[m.at % nodes.length]!;
    const siblings = parent?.children;
    const index = siblings ? siblings.indexOf(node) : -1;
    switch (m.op) {
      case 'content':
        node.children = undefined;
        node.content = Buffer.from(m.bytes);
        break;
      case 'flip':
        if (node.children || node.content.length === 0) node.tag ^= 1 << (m.n % 8);
        else node.content[m.n % node.content.length] = node.content[m.n % node.content.length]! ^ (1 << (m.n % 8));
        break;
      case 'retag':
        node.tag = m.n % 256;
        break;
      case 'remove':
        if (siblings) siblings.splice(index, 1);
        break;
      case 'duplicate':
        if (siblings) siblings.splice(index, 0, clone(node));
        break;
      case 'insert':
        if (node.children) node.children.splice(m.n % (node.children.length + 1), 0, { tag: m.bytes[0] ?? 0x05, content: Buffer.from(m.bytes.subarray(1)), children: undefined });
        else node.content = Buffer.concat([node.content, m.bytes]);
        break;
      case 'truncate':
        if (node.children) node.children = node.children.slice(0, m.n % (node.children.length + 1));
        else node.content = node.content.subarray(0, m.n % (node.content.length + 1));
        break;
      case 'long':
      case 'indefinite':
        node.length = m.op;
        break;
      case 'swap':
        if (siblings && siblings.length > 1) {
          const j = m.n % siblings.length;
          [siblings[index], siblings[j]] = [siblings[j]!, siblings[index]!];
        }
        break;
    }
  }
  return root;
}

/** A random DER-ish tree: primitive and constructed nodes with any tags. */
export const randomTree: fc.Arbitrary<DerNode> = fc.letrec<{ node: DerNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ tag: fc.nat(255), content: fc.uint8Array({ maxLength: 20 }).map((b) => Buffer.from(b)), children: fc.constant(undefined) }),
    fc.record({
      tag: fc.constantFrom(0x30, 0x31, 0xa0, 0xa3, 0x04 | 0x20),
      content: fc.constant(Buffer.alloc(0)),
      children: fc.array(tie('node'), { maxLength: 4 }),
    }),
  ),
})).node;

// ---- PKCS#10 requests built by hand ----

/** The signature AlgorithmIdentifier and digest for each key type (RFC 5758 §3.2, RFC 4055, RFC 8410). */
export const SIGNATURE_ALGORITHM: Record<ClientKeyType, { der: Buffer; hash: string | null }> = {
  p256: { der: Buffer.from('300a06082a8648ce3d040302', 'hex'), hash: 'sha256' },
  p384: { der: Buffer.from('300a06082a8648ce3d040303', 'hex'), hash: 'sha384' },
  rsa: { der: Buffer.from('300d06092a864886f70d01010b0500', 'hex'), hash: 'sha256' },
  ed25519: { der: Buffer.from('300506032b6570', 'hex'), hash: null },
};

const OID_EXTENSION_REQUEST = Buffer.from('06092a864886f70d01090e', 'hex');
const OID_SUBJECT_ALT_NAME = Buffer.from('0603551d11', 'hex');

/** A GeneralName (RFC 5280 §4.2.1.6) as its tag and content octets. */
export interface GeneralName {
  tag: number;
  value: Uint8Array;
}

export interface CriOptions {
  /** The SAN extension marked critical. */
  critical?: boolean;
  /** Extensions (DER) requested before and after the SAN. */
  before?: Buffer[];
  after?: Buffer[];
}

/** A CertificationRequestInfo with an empty subject, and a SAN extension unless names is undefined. */
export function buildCri(spki: Buffer, names: GeneralName[] | undefined, options: CriOptions = {}): Buffer {
  const version = Buffer.from('020100', 'hex');
  const subject = Buffer.from('3000', 'hex');
  let attributes = encodeTlv(0xa0, Buffer.alloc(0));
  if (names) {
    const generalNames = encodeTlv(0x30, Buffer.concat(names.map((n) => encodeTlv(n.tag, n.value))));
    const san = encodeTlv(0x30, Buffer.concat([OID_SUBJECT_ALT_NAME, ...(options.critical ? [Buffer.from('0101ff', 'hex')] : []), encodeTlv(0x04, generalNames)]));
    const extensions = encodeTlv(0x30, Buffer.concat([...(options.before ?? []), san, ...(options.after ?? [])]));
    const attribute = encodeTlv(0x30, Buffer.concat([OID_EXTENSION_REQUEST, encodeTlv(0x31, extensions)]));
    attributes = encodeTlv(0xa0, attribute);
  }
  return encodeTlv(0x30, Buffer.concat([version, subject, spki, attributes]));
}

/** CertificationRequest { cri, signatureAlgorithm, signature } signed with key. */
/**
 * The same SubjectPublicKeyInfo in two BER forms that are not DER (X.690 §10.1): the outer
 * length in long form (0x84 and four octets), and the algorithm SEQUENCE with an indefinite
 * length (0x80 … 00 00).
 */
export function nonDerSpkis(spki: Buffer): Buffer[] {
  const content = spki.subarray(2);
  const longForm = Buffer.concat([Buffer.of(0x30, 0x84, 0, 0, 0, content.length), content]);
  const algorithm = spki.subarray(2, 4 + spki[3]!);
  const inner = Buffer.concat([Buffer.of(0x30, 0x80), algorithm.subarray(2), Buffer.of(0, 0), spki.subarray(4 + spki[3]!)]);
  return [longForm, Buffer.concat([Buffer.of(0x30, inner.length), inner])];
}

export function signCri(cri: Uint8Array, key: KeyObject, type: ClientKeyType): Buffer {
  const alg = SIGNATURE_ALGORITHM[type];
  const signature = nodeSign(alg.hash, cri, { key, dsaEncoding: 'der' });
  return encodeTlv(0x30, Buffer.concat([cri, alg.der, encodeTlv(0x03, Buffer.concat([Buffer.of(0), signature]))]));
}

export interface SampleCsr {
  type: ClientKeyType;
  key: KeyObject;
  keyPem: string;
  spki: Buffer;
  pem: string;
  der: Buffer;
  /** The CertificationRequestInfo's DER. */
  cri: Buffer;
}

/** A key of each accepted type with a CSR (made by the client code, @peculiar/x509) for names. */
export async function sampleCsrs(names: { dns?: string[]; ip?: string[]; uri?: string[]; email?: string[] }): Promise<SampleCsr[]> {
  const types: ClientKeyType[] = ['p256', 'p384', 'ed25519', 'rsa'];
  return Promise.all(
    types.map(async (type) => {
      const { keyPem, csrPem } = await createKeyAndCsr(type, names);
      const der = pemToDer(csrPem);
      const parts = csrParts(der);
      const key = createPrivateKey(keyPem);
      return {
        type,
        key,
        keyPem,
        spki: createPublicKey(key).export({ type: 'spki', format: 'der' }),
        pem: csrPem,
        der,
        cri: der.subarray(parts.cri.offset, parts.cri.end),
      };
    }),
  );
}

/** PEM with the given label and line length, LF or CRLF. */
export function armour(der: Uint8Array, options: { label?: string; width?: number; crlf?: boolean } = {}): string {
  const label = options.label ?? 'CERTIFICATE REQUEST';
  const eol = options.crlf ? '\r\n' : '\n';
  const b64 = Buffer.from(der).toString('base64');
  const width = Math.max(1, options.width ?? 64);
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += width) lines.push(b64.slice(i, i + width));
  return `-----BEGIN ${label}-----${eol}${lines.join(eol)}${eol}-----END ${label}-----${eol}`;
}
