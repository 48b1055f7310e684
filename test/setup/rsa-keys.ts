/**
 * RSA keys with a chosen public exponent, which no key generator makes (OpenSSL and WebCrypto
 * take small exponents only): two primes from node:crypto, n = p·q, and d = e⁻¹ mod λ(n)
 * (RFC 8017 §3.2), as a JWK that WebCrypto imports. With an even exponent (never invertible:
 * λ(n) is even) only the public half exists; a CSR for it is signed with another key, which the
 * CA must refuse for the key (badPublicKey) before it looks at the signature.
 */
import { generatePrimeSync, webcrypto, type JsonWebKey } from 'node:crypto';
import { x509 } from '../../src/x509/library.js';

const b64u = (v: bigint) => {
  let hex = v.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  return Buffer.from(hex, 'hex').toString('base64url');
};

const gcd = (a: bigint, b: bigint): bigint => {
  while (b) [a, b] = [b, a % b];
  return a;
};

/** The inverse of a modulo m (extended Euclid); a and m coprime. */
function inverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [((a % m) + m) % m, m];
  let [s0, s1] = [1n, 0n];
  while (r1) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new Error('not invertible');
  return ((s0 % m) + m) % m;
}

export interface RsaPrimes {
  p: bigint;
  q: bigint;
  n: bigint;
  /** Carmichael's λ(n) = lcm(p−1, q−1). */
  lambda: bigint;
}

/** Two primes whose product has exactly `bits` bits, and for which the exponent e (if given) is usable. */
export function rsaPrimes(bits = 2048, e?: bigint): RsaPrimes {
  for (;;) {
    const p = generatePrimeSync(bits / 2, { bigint: true });
    const q = generatePrimeSync(bits / 2, { bigint: true });
    const n = p * q;
    if (p === q || n.toString(2).length !== bits) continue;
    const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
    if (e !== undefined && gcd(e, lambda) !== 1n) continue;
    return { p, q, n, lambda };
  }
}

/** The nearest odd exponent at or below (direction -1) or above (+1) `from` that λ(n) admits. */
export function usableExponent(primes: RsaPrimes, from: bigint, direction: 1 | -1): bigint {
  let e = from % 2n === 0n ? from + BigInt(direction) : from;
  while (gcd(e, primes.lambda) !== 1n) e += 2n * BigInt(direction);
  return e;
}

export function publicJwk(primes: RsaPrimes, e: bigint): JsonWebKey {
  return { kty: 'RSA', n: b64u(primes.n), e: b64u(e) };
}

export function privateJwk(primes: RsaPrimes, e: bigint): JsonWebKey {
  const { p, q, n, lambda } = primes;
  const d = inverse(e, lambda);
  return { kty: 'RSA', n: b64u(n), e: b64u(e), d: b64u(d), p: b64u(p), q: b64u(q), dp: b64u(d % (p - 1n)), dq: b64u(d % (q - 1n)), qi: b64u(inverse(q, p)) };
}

const RSA = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };

/** A CSR for dnsName made by @peculiar/x509 (the client's path), for the key (n, e). */
export async function rsaCsrWithExponent(primes: RsaPrimes, e: bigint, dnsName: string): Promise<string> {
  const subtle = webcrypto.subtle;
  const publicKey = await subtle.importKey('jwk', publicJwk(primes, e), RSA, true, ['verify']);
  // An even exponent has no private key: another key signs (the signature cannot verify).
  const privateKey =
    e % 2n === 0n
      ? (await subtle.generateKey({ ...RSA, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }, true, ['sign', 'verify'])).privateKey
      : await subtle.importKey('jwk', privateJwk(primes, e), RSA, true, ['sign']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${dnsName}`,
    keys: { publicKey, privateKey } as unknown as CryptoKeyPair,
    signingAlgorithm: RSA,
    extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: dnsName }])],
  });
  return csr.toString('pem');
}
