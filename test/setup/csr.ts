/** CSRs for tests: made by @peculiar/x509 (the client's path) or by the openssl command line. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKeyAndCsr, type ClientKeyType, type Names } from '../../src/cli/keys.js';

export { createKeyAndCsr, type ClientKeyType, type Names };

export async function csrFor(names: Names, keyType: ClientKeyType = 'p256'): Promise<string> {
  return (await createKeyAndCsr(keyType, names)).csrPem;
}

/**
 * A CSR made by `openssl req` with the given -newkey argument (e.g. "rsa:1024", "ec" with
 * -pkeyopt ec_paramgen_curve:P-521) and subjectAltName text (e.g. "DNS:a.b,IP:10.0.0.1").
 */
export function opensslCsr(newkey: string[], san: string | undefined, subject = '/CN=test'): { csrPem: string; keyPem: string } {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-csr-'));
  try {
    const args = ['req', '-new', ...newkey, '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'csr.pem'), '-subj', subject];
    if (san) args.push('-addext', `subjectAltName=${san}`);
    execFileSync('openssl', args, { stdio: 'pipe' });
    return { csrPem: readFileSync(join(dir, 'csr.pem'), 'utf8'), keyPem: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
