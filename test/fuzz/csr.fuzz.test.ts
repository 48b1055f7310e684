/**
 * Properties of the CSR parser (src/x509/csr.ts, RFC 2986 and RFC 5280 §4.2.1.6) on arbitrary
 * and mutated input: it throws nothing but CaError (badCSR or badPublicKey); a mutated request it
 * accepts says exactly what the original said (the signature covers it); requests built here
 * from chosen GeneralNames and signed with real keys are read back name for name, or refused
 * when one name is not well formed; the PEM presentation does not matter.
 */
import assert from 'node:assert/strict';
import { isIP } from 'node:net';
import { before, describe, it } from 'node:test';
import fc from 'fast-check';
import { CaError } from '../../src/errors.js';
import { MAX_SANS, parseCsr, parseCsrOffThread, type ParsedCsr } from '../../src/x509/csr.js';
import {
  applyByteMutations, applyTreeMutations, armour, buildCri, byteMutations, decodeTree, encodeTree, nonDerSpkis, randomTree, sampleCsrs, signCri, treeMutations,
  type GeneralName, type SampleCsr,
} from './mutations.js';
import { ipText, isDnsName, isStrictDer } from './oracles.js';
import { checkAsync, checkSync, traceInput } from './support.js';

const NAMES = {
  dns: ['web.shop.svc', 'api.shop.svc.cluster.local'],
  ip: ['10.1.2.3', 'fd00::1'],
  uri: ['spiffe://example.org/ns/shop/sa/web'],
  email: ['web@shop.example.org'],
};

/** parseCsr's answer: the result, or the CaError it threw; any other throw fails the property. */
function parse(pem: string): ParsedCsr | CaError {
  traceInput(pem);
  try {
    return parseCsr(pem);
  } catch (err) {
    assert.ok(err instanceof CaError, `parseCsr threw ${(err as Error)?.constructor?.name ?? typeof err}, not a CaError: ${(err as Error)?.stack ?? String(err)}`);
    assert.ok(err.kind === 'badCSR' || err.kind === 'badPublicKey', `parseCsr threw CaError ${err.kind}: ${err.detail}`);
    assert.ok(err.detail.length > 0);
    return err;
  }
}

const sameRequest = (a: ParsedCsr, b: ParsedCsr) => {
  assert.equal(Buffer.from(a.spki).toString('hex'), Buffer.from(b.spki).toString('hex'), 'the same public key');
  assert.equal(a.keyType, b.keyType);
  assert.deepEqual(a.sans, b.sans, 'the same names');
};

function assertSaneResult(r: ParsedCsr): void {
  const { dns, ip, uri, email } = r.sans;
  const count = dns.length + ip.length + uri.length + email.length;
  assert.ok(count >= 1 && count <= MAX_SANS, `1 to ${MAX_SANS} names, got ${count}`);
  for (const list of [dns, ip, uri, email]) assert.equal(new Set(list).size, list.length, `no duplicates in ${JSON.stringify(list)}`);
  for (const d of dns) assert.ok(d === d.toLowerCase() && isDnsName(d), `a canonical DNS name: ${JSON.stringify(d)}`);
  for (const a of ip) assert.ok(isIP(a) !== 0 && a === a.toLowerCase(), `an IP address: ${JSON.stringify(a)}`);
  for (const s of [...uri, ...email]) assert.match(s, /^[\x21-\x7e]+$/, 'printable ASCII without spaces');
  assert.ok(['ecdsa-p256', 'ecdsa-p384', 'rsa', 'ed25519'].includes(r.keyType));
  // The SubjectPublicKeyInfo is copied unchanged into the certificate, which is DER (RFC 5280 §4.1).
  assert.ok(isStrictDer(r.spki), `the accepted SubjectPublicKeyInfo is DER: ${Buffer.from(r.spki).toString('hex')}`);
}

// ---- GeneralNames, each tagged with whether it is well formed ----

interface TaggedName {
  name: GeneralName;
  /** The name in the result, for a well-formed one. */
  expect?: { kind: 'dns' | 'ip' | 'uri' | 'email'; text: string };
}

const ascii = (tag: number) => (s: string) => ({ tag, value: Buffer.from(s, 'latin1') });
const good = (kind: 'dns' | 'ip' | 'uri' | 'email', tag: number, text: string, expected = text): TaggedName => ({ name: ascii(tag)(text), expect: { kind, text: expected } });
const bad = (tag: number) => (s: string): TaggedName => ({ name: ascii(tag)(s) });
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);

const goodDns = fc.oneof(
  fc.mixedCase(fc.domain()).map((d) => good('dns', 0x82, d, d.toLowerCase())),
  fc.domain().map((d) => good('dns', 0x82, `*.${d}`)),
);
const badDns = fc.oneof(
  fc.domain().map((d) => `${d}.`),
  fc.domain().map((d) => `_${d}`),
  fc.domain().map((d) => `-${d}`),
  fc.domain().map((d) => `${'a'.repeat(64)}.${d}`),
  fc.domain().map((d) => `${`${'b'.repeat(60)}.`.repeat(5)}${d}`),
  fc.domain().map((d) => `${d} `),
  fc.domain().map((d) => `a.*.${d}`),
  label.map((l) => `*.${l}`),
  fc.domain().map((d) => `${d}\u00e9`),
  fc.domain().map((d) => `${d}\u0000`),
  fc.constant(''),
).map(bad(0x82));
const goodIp = fc.oneof(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.uint8Array({ minLength: 16, maxLength: 16 })).map(
  (b): TaggedName => ({ name: { tag: 0x87, value: b }, expect: { kind: 'ip', text: ipText(b) } }),
);
const badIp = fc.uint8Array({ maxLength: 20 }).filter((b) => b.length !== 4 && b.length !== 16).map((b): TaggedName => ({ name: { tag: 0x87, value: b } }));
const goodUri = fc.oneof(
  fc.webUrl(),
  fc.tuple(label, label).map(([ns, sa]) => `spiffe://example.org/ns/${ns}/sa/${sa}`),
).map((u) => good('uri', 0x86, u));
const badUri = fc.oneof(
  label,
  label.map((l) => `1${l}:x`),
  fc.webUrl().map((u) => `${u} x`),
  fc.webUrl().map((u) => `${u}\u00ff`),
  fc.constant(''),
).map(bad(0x86));
const goodEmail = fc.emailAddress().map((e) => good('email', 0x81, e));
const badEmail = fc.oneof(fc.domain(), fc.emailAddress().map((e) => `${e}@x`), fc.emailAddress().map((e) => ` ${e}`), fc.domain().map((d) => `@${d}`), fc.emailAddress().map((e) => `${e}\u00e9`)).map(bad(0x81));
const otherName = fc
  .tuple(fc.constantFrom(0x80, 0x83, 0x84, 0x85, 0x88, 0xa0, 0xa4, 0x30, 0x04), fc.uint8Array({ maxLength: 12 }))
  .map(([tag, value]): TaggedName => ({ name: { tag, value } }));

const anyName = fc.oneof(
  { arbitrary: goodDns, weight: 6 },
  { arbitrary: goodIp, weight: 3 },
  { arbitrary: goodUri, weight: 3 },
  { arbitrary: goodEmail, weight: 3 },
  { arbitrary: badDns, weight: 1 },
  { arbitrary: badIp, weight: 1 },
  { arbitrary: badUri, weight: 1 },
  { arbitrary: badEmail, weight: 1 },
  { arbitrary: otherName, weight: 1 },
);

const nameLists = fc.oneof(
  { arbitrary: fc.array(anyName, { maxLength: 8 }), weight: 8 },
  { arbitrary: fc.array(anyName, { minLength: 1, maxLength: 3 }).chain((xs) => fc.shuffledSubarray([...xs, ...xs])), weight: 1 },
  {
    arbitrary: fc.integer({ min: MAX_SANS - 3, max: MAX_SANS + 3 }).map((n) => Array.from({ length: n }, (_, i) => good('dns', 0x82, `n${i}.example.org`))),
    weight: 1,
  },
);

/** An unrelated extension (basicConstraints CA:FALSE, keyUsage, or any OID with any value). */
const otherExtension = fc.oneof(
  fc.constant(Buffer.from('300c0603551d130101ff04023000', 'hex')),
  fc.constant(Buffer.from('300e0603551d0f0101ff040403020780', 'hex')),
  fc.uint8Array({ maxLength: 10 }).map((v) => Buffer.concat([Buffer.of(0x30, v.length + 8, 0x06, 0x04, 0x2a, 0x03, 0x04, 0x05, 0x04, v.length), v])),
);

describe('parseCsr on arbitrary input', () => {
  it('throws only CaError (badCSR) for arbitrary text, armoured or not', () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }),
      fc.string({ unit: 'binary-ascii', maxLength: 200 }).map((s) => `-----BEGIN CERTIFICATE REQUEST-----\n${s}\n-----END CERTIFICATE REQUEST-----\n`),
      fc.base64String({ maxLength: 400 }).map((s) => `-----BEGIN NEW CERTIFICATE REQUEST-----\n${s}\n-----END NEW CERTIFICATE REQUEST-----\n`),
      fc.uint8Array({ maxLength: 300 }).map((b) => armour(b)),
    );
    checkSync(
      fc.property(text, (s) => {
        const r = parse(s);
        assert.ok(r instanceof CaError, 'random text is not a signed request');
      }),
      4000,
    );
  });

  it('throws only CaError for random DER trees in a PEM block', () => {
    checkSync(
      fc.property(randomTree, (tree) => {
        const r = parse(armour(encodeTree(tree)));
        assert.ok(r instanceof CaError, 'a random tree is not a signed request');
      }),
      3000,
    );
  });
});

describe('parseCsr on mutated requests', () => {
  let samples: SampleCsr[];
  const originals = new Map<SampleCsr, ParsedCsr>();
  before(async () => {
    samples = await sampleCsrs(NAMES);
    for (const s of samples) originals.set(s, parseCsr(s.pem));
  });
  /** Which sample (p256, p384, ed25519, rsa): an index, so that a counterexample stays short; RSA, the slowest to sign and verify, less often. */
  const sample = () => fc.oneof({ arbitrary: fc.constantFrom(0, 1, 2), weight: 6 }, { arbitrary: fc.constant(3), weight: 1 });

  /** A mutated request is refused with a CaError, or, accepted, says what its original said. */
  const refusedOrUnchanged = (s: SampleCsr, der: Uint8Array) => {
    const r = parse(armour(der));
    if (!(r instanceof CaError)) {
      sameRequest(r, originals.get(s)!);
      assertSaneResult(r);
    }
  };

  it('byte-level mutations: CaError only; anything accepted carries the original key and names', () => {
    checkSync(fc.property(sample(), byteMutations, (i, m) => refusedOrUnchanged(samples[i]!, applyByteMutations(samples[i]!.der, m))), 4000);
  });

  it('structural mutations (lengths kept right): CaError only; anything accepted carries the original key and names', () => {
    checkSync(fc.property(sample(), treeMutations, (i, m) => refusedOrUnchanged(samples[i]!, encodeTree(applyTreeMutations(decodeTree(samples[i]!.der), m)))), 2500);
  });

  it('structural mutations of the signed part, re-signed with the key: CaError only; anything accepted is sane (its SubjectPublicKeyInfo DER)', () => {
    checkSync(
      fc.property(sample(), treeMutations, (i, m) => {
        const s = samples[i]!;
        const cri = encodeTree(applyTreeMutations(decodeTree(s.cri), m));
        const r = parse(armour(signCri(cri, s.key, s.type)));
        if (!(r instanceof CaError)) assertSaneResult(r);
      }),
      2000,
    );
  });

  it('parseCsrOffThread (the signature checked on the thread pool) answers every byte-mutated request exactly as parseCsr does', async () => {
    const answer = async (f: () => ParsedCsr | Promise<ParsedCsr>) => {
      try {
        return await f();
      } catch (err) {
        assert.ok(err instanceof CaError, `threw ${String(err)}`);
        return { kind: err.kind, detail: err.detail };
      }
    };
    await checkAsync(
      fc.asyncProperty(sample(), byteMutations, async (i, m) => {
        const pem = armour(applyByteMutations(samples[i]!.der, m));
        traceInput(pem);
        const sync = await answer(() => parseCsr(pem));
        assert.deepEqual(await answer(() => parseCsrOffThread(pem)), sync);
      }),
      1500,
    );
    // The unmutated samples too: both accept them, with the same result.
    for (const s of samples) assert.deepEqual(await parseCsrOffThread(s.pem), originals.get(s));
  });

  it('DEFECT-5: refuses a SubjectPublicKeyInfo that is not DER (a long-form length, an indefinite length)', () => {
    // Found by the property above. readPublicKey (src/x509/public-keys.ts importDer) checks
    // only the outer TLV and lets OpenSSL read the rest, which accepts BER. The SPKI is then
    // copied unchanged into the certificate: a long-form outer length gives a certificate that is
    // not DER (201), an indefinite inner length a RangeError in src/signer/leaf-profile.ts (500;
    // see http-issuance.fuzz.test.ts).
    const s = samples[0]!;
    for (const spki of nonDerSpkis(s.spki)) {
      const r = parse(armour(signCri(buildCri(spki, [{ tag: 0x82, value: Buffer.from('web.shop.svc') }]), s.key, s.type)));
      assert.ok(r instanceof CaError, `refused: ${spki.toString('hex')}`);
    }
  });
});

describe('parseCsr on requests built from chosen names', () => {
  let samples: SampleCsr[];
  before(async () => {
    samples = await sampleCsrs({ dns: ['a.b.c'] });
  });

  it('reads every well-formed name back, deduplicated and in canonical form, and refuses a request with one bad name', () => {
    checkSync(
      fc.property(
        fc.oneof({ arbitrary: fc.constantFrom(0, 1, 2), weight: 6 }, { arbitrary: fc.constant(3), weight: 1 }),
        nameLists,
        fc.boolean(),
        fc.array(otherExtension, { maxLength: 2 }),
        fc.array(otherExtension, { maxLength: 2 }),
        (i, names, critical, beforeSan, afterSan) => {
          const s = samples[i]!;
          const der = signCri(buildCri(s.spki, names.map((n) => n.name), { critical, before: beforeSan, after: afterSan }), s.key, s.type);
          const r = parse(armour(der));
          const expected = { dns: [] as string[], ip: [] as string[], uri: [] as string[], email: [] as string[] };
          for (const n of names) if (n.expect && !expected[n.expect.kind].includes(n.expect.text)) expected[n.expect.kind].push(n.expect.text);
          const count = expected.dns.length + expected.ip.length + expected.uri.length + expected.email.length;
          const wellFormed = names.every((n) => n.expect !== undefined);
          if (!wellFormed || count === 0 || count > MAX_SANS) {
            assert.ok(r instanceof CaError && r.kind === 'badCSR', `refused as badCSR (well formed: ${wellFormed}, ${count} names); got ${r instanceof CaError ? r.kind : JSON.stringify(r.sans)}`);
            return;
          }
          assert.ok(!(r instanceof CaError), `accepted; got ${r instanceof CaError ? `${r.kind}: ${r.detail}` : ''}`);
          assert.deepEqual(r.sans, expected);
          assert.equal(Buffer.from(r.spki).toString('hex'), s.spki.toString('hex'), 'the SPKI is copied unchanged');
        },
      ),
      1500,
    );
  });

  it('refuses a request without any subjectAltName extension', () => {
    checkSync(
      fc.property(fc.nat(3), fc.array(otherExtension, { maxLength: 2 }), (i, exts) => {
        const s = samples[i]!;
        const cri = exts.length ? buildCri(s.spki, [], { before: exts }) : buildCri(s.spki, undefined);
        const r = parse(armour(signCri(cri, s.key, s.type)));
        assert.ok(r instanceof CaError && r.kind === 'badCSR');
      }),
      200,
    );
  });
});

describe('parseCsr and PEM presentation', () => {
  let samples: SampleCsr[];
  before(async () => {
    samples = await sampleCsrs(NAMES);
  });
  const junk = fc.string({ unit: 'binary-ascii', maxLength: 30 }).map((s) => s.replace(/-/g, ''));

  it('reads the same request whatever the line width, line ends, label variant, whitespace and surrounding text', () => {
    checkSync(
      fc.property(
        fc.nat(3),
        fc.integer({ min: 1, max: 200 }),
        fc.boolean(),
        fc.constantFrom('CERTIFICATE REQUEST', 'NEW CERTIFICATE REQUEST'),
        junk,
        junk,
        fc.array(fc.tuple(fc.nat(), fc.constantFrom(' ', '\t', '\n', '\r\n')), { maxLength: 4 }),
        (i, width, crlf, label, head, tail, spaces) => {
          const s = samples[i]!;
          let pem = armour(s.der, { width, crlf, label });
          const bodyStart = pem.indexOf('\n') + 1;
          const bodyEnd = pem.indexOf('-----END');
          for (const [at, space] of spaces) {
            const p = bodyStart + (at % Math.max(1, bodyEnd - bodyStart));
            pem = pem.slice(0, p) + space + pem.slice(p);
          }
          const r = parse(head + pem + tail);
          assert.ok(!(r instanceof CaError), `accepted; got ${r instanceof CaError ? r.detail : ''}`);
          sameRequest(r, parseCsr(s.pem));
        },
      ),
      800,
    );
  });

  it('refuses two request blocks, and a request under another label', () => {
    checkSync(
      fc.property(fc.nat(3), fc.nat(3), fc.constantFrom('CERTIFICATE', 'X509 CRL', 'PUBLIC KEY', 'CERTIFICATE  REQUEST', 'certificate request'), (i, j, other) => {
        const twice = parse(samples[i]!.pem + samples[j]!.pem);
        assert.ok(twice instanceof CaError && twice.kind === 'badCSR');
        const relabelled = parse(armour(samples[i]!.der, { label: other }));
        assert.ok(relabelled instanceof CaError && relabelled.kind === 'badCSR');
      }),
      200,
    );
  });
});
