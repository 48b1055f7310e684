/** The openssl command line as an independent verifier of what the CA writes. */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Runs openssl with the named files written to a temp folder; returns status and output. */
export function openssl(args: (string | { file: string; content: string | Buffer })[]): { status: number; stdout: string; stderr: string } {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-openssl-'));
  try {
    const argv = args.map((a) => {
      if (typeof a === 'string') return a;
      const p = join(dir, a.file);
      writeFileSync(p, a.content);
      return p;
    });
    // A CRL of 100,000 entries prints about 10 MB of text: far past spawnSync's 1 MiB default.
    const r = spawnSync('openssl', argv, { encoding: 'utf8', maxBuffer: 512 * 1024 * 1024 });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function x509Text(pem: string): string {
  const r = openssl(['x509', '-noout', '-text', '-in', { file: 'c.pem', content: pem }]);
  if (r.status !== 0) throw new Error(`openssl x509 failed: ${r.stderr}`);
  return r.stdout;
}

/** `openssl verify -x509_strict -CAfile root -untrusted chain leaf` */
export function verifyChain(leafPem: string, rootPem: string, untrustedPem: string, purpose?: string): { ok: boolean; output: string } {
  const r = openssl([
    'verify', '-x509_strict', ...(purpose ? ['-purpose', purpose] : []),
    '-CAfile', { file: 'root.pem', content: rootPem },
    '-untrusted', { file: 'chain.pem', content: untrustedPem },
    { file: 'leaf.pem', content: leafPem },
  ]);
  return { ok: r.status === 0 && r.stdout.includes(': OK'), output: r.stdout + r.stderr };
}

export const opensslVersion = () => execFileSync('openssl', ['version'], { encoding: 'utf8' }).trim();
