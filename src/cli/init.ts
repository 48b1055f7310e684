/**
 * `service-ca init`: create a root and an intermediate, ready to be the `ca` section of a
 * configuration; `init --intermediate`: a new intermediate under the existing root (a rollover),
 * with the `ca.issuers` list that runs the current and the new one side by side.
 */
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import { CaError } from '../errors.js';
import { createAuthority, createIntermediate, type AuthorityKeyType, type IntermediateRollover } from '../signer/bootstrap.js';
import { KEY_TYPES, parseOptions, type Command } from './command.js';

const USAGE = `Usage: service-ca init --dir DIR [options]
       service-ca init --intermediate --dir DIR --root-certificate ROOT.pem --root-key ROOT.key [options]

Creates root.pem, root.key, intermediate.pem, intermediate.key and chain.pem in DIR
(keys PKCS#8, mode 0600), and prints the "ca" configuration section that uses them.

With --intermediate (rolling the intermediate over): reads the existing root and its key from
where they are kept offline, checks that the key is the root's and that the root is a CA valid
now, and writes a new intermediate signed by it (the same profile as above) into DIR, a new
folder such as ./ca/2027: intermediate.pem, intermediate.key (0600) and chain.pem (the root).
The new intermediate ends no later than the root. Prints its key id, its validity, the root's
fingerprint and the "ca.issuers" list that runs the current and the new intermediate side by
side, the new one active. Existing files in DIR are never overwritten (nor are they by init).

Options:
  --dir DIR                    where to write (required)
  --key-type TYPE              p256 (default), p384, rsa or ed25519; with --intermediate the
                               default is the current intermediate's type, else the root's
  --root-name DN               default "CN=service-ca Root CA"
  --intermediate-name DN       default "CN=service-ca Intermediate CA"; with --intermediate and
                               --current-certificate, the current intermediate's name
  --root-days N                root validity in days (default 3650)
  --intermediate-days N        intermediate validity in days (default 1825)
  --root-key-dir DIR           write root.key here instead, to keep it apart (offline)
  --root-passphrase-env VAR    encrypt root.key with the passphrase in environment variable VAR
                               (with --intermediate: the passphrase that opens --root-key)
  --intermediate-passphrase-env VAR
                               encrypt intermediate.key likewise (then set ca.keyPassphrase)
  --json                       print the paths and fingerprint as JSON
  --help                       this text

Options of --intermediate:
  --root-certificate FILE      the existing root (PEM)
  --root-key FILE              its private key (PEM, PKCS#8, encrypted or not)
  --current-certificate FILE   the intermediate in use now: it must be the root's, and it is
                               listed in the printed configuration
  --public-key FILE            the public key (PEM) of a key made in an HSM: the intermediate
                               is made for it, and no key file is written (docs/hsm.md)
  --key-uri URI                with --public-key: the key's PKCS#11 URI, for the printed
                               configuration
  --json                       print {dir, intermediateCertificate, intermediateKey, chain,
                               keyId, notBefore, notAfter, rootFingerprint}`;

const OPTIONS = {
  dir: { type: 'string' },
  'key-type': { type: 'string' },
  'root-name': { type: 'string' },
  'intermediate-name': { type: 'string' },
  'root-days': { type: 'string' },
  'intermediate-days': { type: 'string' },
  'root-key-dir': { type: 'string' },
  'root-passphrase-env': { type: 'string' },
  'intermediate-passphrase-env': { type: 'string' },
  intermediate: { type: 'boolean', default: false },
  'root-certificate': { type: 'string' },
  'root-key': { type: 'string' },
  'current-certificate': { type: 'string' },
  'public-key': { type: 'string' },
  'key-uri': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

type Values = Partial<Record<Exclude<keyof typeof OPTIONS, 'intermediate' | 'json'>, string>> & { intermediate?: boolean; json?: boolean };

/** Options that belong to only one of the two modes. */
const NEW_ROOT_ONLY = ['root-name', 'root-days', 'root-key-dir'] as const;
const ROLLOVER_ONLY = ['root-certificate', 'root-key', 'current-certificate', 'public-key', 'key-uri'] as const;

function usageError(message: string): number {
  console.error(`service-ca: ${message}\n\n${USAGE}`);
  return 2;
}

/** What is wrong with the options, or undefined. */
function problemOf(v: Values): string | undefined {
  if (!v.dir) return '--dir is required';
  if (v['key-type'] !== undefined && !KEY_TYPES.includes(v['key-type'])) return `--key-type must be one of ${KEY_TYPES.join(', ')}`;
  for (const name of ['root-days', 'intermediate-days'] as const) {
    if (v[name] !== undefined && !/^[1-9][0-9]*$/.test(v[name]!)) return `--${name} must be a whole number of days above 0`;
  }
  const given = (names: readonly (keyof Values)[]) => names.filter((n) => v[n] !== undefined).map((n) => `--${n}`);
  if (v.intermediate) {
    const misplaced = given(NEW_ROOT_ONLY);
    if (misplaced.length > 0) return `${misplaced.join(', ')} ${misplaced.length > 1 ? 'are' : 'is'} for a new root, not for --intermediate`;
    const missing = ['root-certificate', 'root-key'].filter((n) => v[n as keyof Values] === undefined).map((n) => `--${n}`);
    if (missing.length > 0) return `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} required with --intermediate`;
    if (v['public-key'] !== undefined && v['intermediate-passphrase-env'] !== undefined) return '--intermediate-passphrase-env is for a key file; with --public-key the key stays in the HSM';
    if (v['public-key'] !== undefined && v['key-type'] !== undefined) return '--key-type comes from --public-key\'s key; leave it out';
    if (v['key-uri'] !== undefined && v['public-key'] === undefined) return '--key-uri is for --public-key';
    if (v['key-uri'] !== undefined && !/^pkcs11:/i.test(v['key-uri'])) return '--key-uri must be a PKCS#11 URI (pkcs11:token=…;object=…)';
  } else {
    const misplaced = given(ROLLOVER_ONLY);
    if (misplaced.length > 0) return `${misplaced.join(', ')} ${misplaced.length > 1 ? 'are' : 'is'} only for --intermediate`;
  }
  return undefined;
}

function passphrase(name: string | undefined): string | undefined {
  if (!name) return undefined;
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is empty`);
  return value;
}

const days = (s: string | undefined) => (s === undefined ? undefined : Number.parseInt(s, 10));

export const initCommand: Command = {
  name: 'init',
  summary: 'create a root and an intermediate CA as files, or a new intermediate (--intermediate)',
  async run(argv) {
    const v = parseOptions(argv, OPTIONS, USAGE);
    if (typeof v === 'number') return v;
    const problem = problemOf(v);
    if (problem) return usageError(problem);
    try {
      if (v.intermediate) await rollOver(v);
      else await initialize(v);
      return 0;
    } catch (err) {
      // The signer's refusals name the file and the reason, never key material or a passphrase.
      if (err instanceof CaError) {
        console.error(`service-ca: ${err.detail}`);
        return 1;
      }
      throw err;
    }
  },
};

async function initialize(v: Values): Promise<void> {
  const paths = await createAuthority({
    dir: resolve(v.dir!),
    keyType: (v['key-type'] ?? 'p256') as AuthorityKeyType,
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
}

async function rollOver(v: Values): Promise<void> {
  const current = v['current-certificate'] === undefined ? undefined : resolve(v['current-certificate']);
  const made = await createIntermediate({
    dir: resolve(v.dir!),
    rootCertificate: resolve(v['root-certificate']!),
    rootKey: resolve(v['root-key']!),
    rootPassphrase: passphrase(v['root-passphrase-env']),
    currentCertificate: current,
    keyType: v['key-type'] as AuthorityKeyType | undefined,
    intermediateName: v['intermediate-name'],
    intermediateDays: days(v['intermediate-days']),
    intermediatePassphrase: passphrase(v['intermediate-passphrase-env']),
    publicKey: v['public-key'] === undefined ? undefined : resolve(v['public-key']),
    now: new Date(),
  });
  if (v.json) {
    const { dir, intermediateCertificate, intermediateKey, chain, keyId, notBefore, notAfter, rootFingerprint } = made;
    console.log(JSON.stringify({ dir, intermediateCertificate, intermediateKey, chain, keyId, notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(), rootFingerprint }, null, 2));
    return;
  }
  const capped = made.cappedFrom ? `\n  capped at the root's notAfter: ${v['intermediate-days'] ?? 1825} days would have run to ${made.cappedFrom.toISOString()}` : '';
  console.log(`New intermediate CA: ${made.subject} (${made.keyType})
Key id: ${made.keyId}
Valid from ${made.notBefore.toISOString()} to ${made.notAfter.toISOString()}${capped}
Root SHA-256 fingerprint: ${made.rootFingerprint}
Written: ${made.intermediateCertificate}, ${made.intermediateKey ? `${made.intermediateKey} (0600${v['intermediate-passphrase-env'] ? ', encrypted' : ''}), ` : ''}${made.chain} (the root)${made.intermediateKey ? '' : '\nThe key stays in the HSM: no key file was written.'}

In the configuration, the ca section's certificate, key, keyPassphrase and chain give way to
this list of issuers (the section's other settings stay):

${issuersYaml(made, current, v['intermediate-passphrase-env'], v['key-uri'])}

Next steps: restart every replica with both issuers, the new one active: it signs every new
certificate from then on, and relying parties need no change since the root is the same. Keep
the old issuer until its last certificate has expired (\`service-ca ca status\` shows it), then
remove it from the list and restart the replicas again. To move holders of the old issuer's
certificates over sooner, give it \`renewBy:\` (an RFC 3339 time): renewal-info then tells them to
renew by then. docs/rollover.md walks through it.`);
}

/** A YAML scalar: a path is written plain when it can be, quoted when it must be. */
const scalar = (s: string) => stringify(s).trimEnd();

/** The `ca:` section listing the current issuer (a placeholder where its files are unknown) and the new one. */
function issuersYaml(made: IntermediateRollover, current: string | undefined, passphraseVar: string | undefined, keyUri: string | undefined): string {
  const currentLines = current
    ? [
        `    - certificate: ${scalar(current)}  # the current issuer`,
        '      # key: its key file, and keyPassphrase if it has one, as configured today',
        `      chain: ${scalar(made.chain)}`,
      ]
    : ['    # - the current issuer: its certificate, key, keyPassphrase and chain as configured today'];
  return [
    'ca:',
    '  issuers:',
    ...currentLines,
    `    - certificate: ${scalar(made.intermediateCertificate)}`,
    made.intermediateKey ? `      key: ${scalar(made.intermediateKey)}` : `      key: ${keyUri ? scalar(keyUri) : '"pkcs11:token=…;object=…"  # the key\'s PKCS#11 URI'}`,
    ...(passphraseVar ? [`      keyPassphrase: \${${passphraseVar}}`] : []),
    `      chain: ${scalar(made.chain)}`,
    '      active: true',
    // A key in a token needs the module and the PIN (docs/hsm.md).
    ...(made.intermediateKey ? [] : ['  pkcs11:', '    module: /usr/lib/softhsm/libsofthsm2.so  # the HSM vendor\'s PKCS#11 module', '    pin: ${CA_TOKEN_PIN}']),
  ].join('\n');
}
