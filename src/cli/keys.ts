/** Key pairs and PKCS#10 requests made on the client: the private key never leaves this machine. */
import { webcrypto, createPrivateKey } from 'node:crypto';
import { isIP } from 'node:net';
import { x509 } from '../x509/library.js';

export type ClientKeyType = 'p256' | 'p384' | 'rsa' | 'ed25519';

const ALGORITHMS: Record<ClientKeyType, { gen: webcrypto.AlgorithmIdentifier | webcrypto.EcKeyGenParams | webcrypto.RsaHashedKeyGenParams; sign: webcrypto.AlgorithmIdentifier | webcrypto.EcdsaParams }> = {
  p256: { gen: { name: 'ECDSA', namedCurve: 'P-256' }, sign: { name: 'ECDSA', hash: 'SHA-256' } },
  p384: { gen: { name: 'ECDSA', namedCurve: 'P-384' }, sign: { name: 'ECDSA', hash: 'SHA-384' } },
  rsa: { gen: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } },
  ed25519: { gen: { name: 'Ed25519' }, sign: { name: 'Ed25519' } },
};

export interface Names {
  dns?: string[];
  ip?: string[];
  uri?: string[];
  email?: string[];
}

/** A fresh key pair and a CSR for the names; the key is returned as PKCS#8 PEM. */
export async function createKeyAndCsr(keyType: ClientKeyType, names: Names): Promise<{ keyPem: string; csrPem: string }> {
  const alg = ALGORITHMS[keyType];
  const keys = (await webcrypto.subtle.generateKey(alg.gen as webcrypto.EcKeyGenParams, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const sans: x509.JsonGeneralName[] = [
    ...(names.dns ?? []).map((v) => ({ type: 'dns' as const, value: v })),
    ...(names.ip ?? []).map((v) => {
      if (!isIP(v)) throw new Error(`${v} is not an IP address`);
      return { type: 'ip' as const, value: v };
    }),
    ...(names.uri ?? []).map((v) => ({ type: 'url' as const, value: v })),
    ...(names.email ?? []).map((v) => ({ type: 'email' as const, value: v })),
  ];
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: names.dns?.[0] ? `CN=${names.dns[0]}` : '',
    keys: keys as unknown as CryptoKeyPair,
    signingAlgorithm: alg.sign as Algorithm,
    extensions: sans.length ? [new x509.SubjectAlternativeNameExtension(sans)] : [],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ type: 'pkcs8', format: 'pem' }) as string;
  return { keyPem, csrPem: csr.toString('pem') };
}
