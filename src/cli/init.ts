/** `service-ca init`: create a root and an intermediate, ready to be the `ca` section of a configuration. */
import { resolve } from 'node:path';
import { createAuthority, type AuthorityKeyType } from '../signer/bootstrap.js';
import { KEY_TYPES, parseOptions, type Command } from './command.js';

const USAGE = `Usage: service-ca init --dir DIR [options]

Creates root.pem, root.key, intermediate.pem, intermediate.key and chain.pem in DIR
(keys PKCS#8, mode 0600), and prints the "ca" configuration section that uses them.

Options:
  --dir DIR                    where to write (required)
  --key-type TYPE              p256 (default), p384, rsa or ed25519
  --root-name DN               default "CN=service-ca Root CA"
  --intermediate-name DN       default "CN=service-ca Intermediate CA"
  --root-days N                root validity in days (default 3650)
  --intermediate-days N        intermediate validity in days (default 1825)
  --root-key-dir DIR           write root.key here instead, to keep it apart (offline)
  --root-passphrase-env VAR    encrypt root.key with the passphrase in environment variable VAR
  --intermediate-passphrase-env VAR
                               encrypt intermediate.key likewise (then set ca.keyPassphrase)
  --json                       print the paths and fingerprint as JSON
  --help                       this text`;


export const initCommand: Command = {
  name: 'init',
  summary: 'create a root and an intermediate CA as files',
  async run(argv) {
    const v = parseOptions(
      argv,
      {
        dir: { type: 'string' },
        'key-type': { type: 'string', default: 'p256' },
        'root-name': { type: 'string' },
        'intermediate-name': { type: 'string' },
        'root-days': { type: 'string' },
        'intermediate-days': { type: 'string' },
        'root-key-dir': { type: 'string' },
        'root-passphrase-env': { type: 'string' },
        'intermediate-passphrase-env': { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      USAGE,
    );
    if (typeof v === 'number') return v;
    if (!v.dir) {
      console.error(`service-ca: --dir is required\n\n${USAGE}`);
      return 2;
    }
    if (!KEY_TYPES.includes(v['key-type']!)) {
      console.error(`service-ca: --key-type must be one of ${KEY_TYPES.join(', ')}`);
      return 2;
    }
    const passphrase = (name: string | undefined) => {
      if (!name) return undefined;
      const value = process.env[name];
      if (!value) throw new Error(`environment variable ${name} is empty`);
      return value;
    };
    const days = (s: string | undefined) => (s === undefined ? undefined : Number.parseInt(s, 10));
    const paths = await createAuthority({
      dir: resolve(v.dir),
      keyType: v['key-type'] as AuthorityKeyType,
      rootName: v['root-name'],
      intermediateName: v['intermediate-name'],
      rootDays: days(v['root-days']),
      intermediateDays: days(v['intermediate-days']),
      rootKeyDir: v['root-key-dir'] ? resolve(v['root-key-dir']) : undefined,
      rootPassphrase: passphrase(v['root-passphrase-env']),
      intermediatePassphrase: passphrase(v['intermediate-passphrase-env']),
    } as Parameters<typeof createAuthority>[0]);
    if (v.json) {
      console.log(JSON.stringify(paths, null, 2));
    } else {
      console.log(`Root SHA-256 fingerprint: ${paths.rootFingerprint}
Root key: ${paths.rootKey} (keep it offline)

ca:
  certificate: ${paths.intermediateCertificate}
  key: ${paths.intermediateKey}${v['intermediate-passphrase-env'] ? `\n  keyPassphrase: \${${v['intermediate-passphrase-env']}}` : ''}
  chain: ${paths.rootCertificate}`);
    }
    return 0;
  },
};
