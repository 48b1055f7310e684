/**
 * The development CA that `npm start` runs when there is no configuration: a root, an
 * intermediate and a development token issuer under ./data, an embedded database there, and a
 * configuration file (data/service-ca.yaml) that the same schema reads. Created once, reused after.
 */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { exportJWK, generateKeyPair } from 'jose';
import { stringify } from 'yaml';
import { createAuthority } from './signer/bootstrap.js';

export const DEV_ISSUER = 'service-ca-dev';
export const DEV_AUDIENCE = 'service-ca';
export const DEV_TRUST_DOMAIN = 'dev.local';

export interface DevFiles {
  dataDir: string;
  configPath: string;
  rootPem: string;
  chainPem: string;
  issuerKeyPath: string;
  created: boolean;
}

export async function ensureDevCa(dataDir: string): Promise<DevFiles> {
  const dir = resolve(dataDir);
  const caDir = join(dir, 'ca');
  const files: DevFiles = {
    dataDir: dir,
    configPath: join(dir, 'service-ca.yaml'),
    rootPem: join(caDir, 'root.pem'),
    chainPem: join(caDir, 'chain.pem'),
    issuerKeyPath: join(dir, 'dev-issuer.key.json'),
    created: false,
  };
  if (existsSync(files.configPath)) return files;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  await createAuthority({ dir: caDir, keyType: 'p256', rootName: 'CN=service-ca Development Root CA', intermediateName: 'CN=service-ca Development Intermediate CA' });

  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const kid = `dev-${Date.now().toString(36)}`;
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  writeFileSync(files.issuerKeyPath, JSON.stringify({ issuer: DEV_ISSUER, audience: DEV_AUDIENCE, key: privateJwk }, null, 2), { mode: 0o600 });
  writeFileSync(join(dir, 'dev-issuer.jwks.json'), JSON.stringify({ keys: [publicJwk] }, null, 2));

  const config = {
    server: { host: '127.0.0.1', port: 8443, tls: { mode: 'auto', names: ['localhost', '127.0.0.1'] } },
    public: { host: '127.0.0.1', port: 8080 },
    publicUrl: 'http://127.0.0.1:8080',
    dataDir: '.',
    ca: { certificate: './ca/intermediate.pem', key: './ca/intermediate.key', chain: './ca/root.pem' },
    issuance: { defaultTtl: '24h', maxTtl: '72h', backdate: '60s' },
    auth: {
      issuers: [
        {
          name: 'dev',
          issuer: DEV_ISSUER,
          audience: DEV_AUDIENCE,
          jwks: { file: './dev-issuer.jwks.json' },
          algorithms: ['ES256'],
          identity: '{sub}',
          maxTokenAge: '1h',
          requireJti: true,
        },
      ],
      // Bound to the development issuer: no other issuer added later can mint the admin identity.
      admins: { identities: [{ issuer: 'dev', identity: `spiffe://${DEV_TRUST_DOMAIN}/admin` }] },
    },
    policies: [
      {
        identity: `spiffe://${DEV_TRUST_DOMAIN}/ns/{ns}/sa/{sa}`,
        // Not localhost: the API listener's names (server.tls.names) are never issued.
        dns: ['{sa}.{ns}.svc', '{sa}.{ns}.svc.cluster.local', '{sa}.{ns}'],
        uri: ['{identity}'],
        ip: ['127.0.0.0/8', '::1'],
        maxTtl: '72h',
      },
    ],
  };
  writeFileSync(
    files.configPath,
    [
      '# The development CA\'s configuration, written by npm start. Edit freely.',
      '# The API listener\'s own names (server.tls.names) are never issued to a workload, whatever a',
      '# policy says; auth.admins entries { issuer, identity } are admins only with that issuer\'s tokens.',
      stringify(config),
    ].join('\n'),
  );
  return { ...files, created: true };
}

export function devBanner(files: DevFiles, fingerprint: string, apiUrl: string): string {
  const rel = (p: string) => (p.startsWith(process.cwd() + '/') ? p.slice(process.cwd().length + 1) : p);
  return [
    '',
    `service-ca development CA ${files.created ? 'created' : 'loaded'} under ${rel(files.dataDir)} (configuration: ${rel(files.configPath)})`,
    `Root certificate SHA-256 fingerprint: ${fingerprint.match(/../g)!.join(':').toUpperCase()}`,
    '',
    'Get a first certificate, in another shell from this folder:',
    `  npm run -s service-ca -- token --data ${rel(files.dataDir)} --sub spiffe://${DEV_TRUST_DOMAIN}/ns/default/sa/web > token.jwt`,
    `  npm run -s service-ca -- request --server ${apiUrl} --ca ${rel(files.rootPem)} --token-file token.jwt --dns web.default.svc --out web`,
    `  openssl verify -CAfile ${rel(files.rootPem)} -untrusted web.chain.pem web.pem`,
    '',
  ].join('\n');
}
