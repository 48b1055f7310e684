/**
 * A reader of the files a rotation agent writes (PREFIX.pem, PREFIX.key, PREFIX.chain.pem),
 * polling every few milliseconds the way a service reloading its TLS files would: every read
 * must be a whole PEM that parses (X509Certificate, createPrivateKey), and once a file has
 * appeared it never disappears. It records each certificate it sees, with when it first saw it.
 */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';

export interface SeenCertificate {
  serial: string;
  pem: string;
  cert: X509Certificate;
  notBefore: number;
  notAfter: number;
  /** Date.now() when the reader first read it. */
  seenAt: number;
}

export interface PemWatch {
  /** Every distinct certificate in PREFIX.pem, in the order they appeared. */
  readonly certificates: SeenCertificate[];
  /** Reads that did not parse or files that vanished, with what was read. */
  readonly failures: string[];
  /** Completed rounds (each reads all three files). */
  readonly rounds: number;
  /** The latest certificate seen, if any. */
  current(): SeenCertificate | undefined;
  /** Resolves with the first certificate seen after `after` (a serial) within timeoutMs. */
  next(afterSerial: string | undefined, timeoutMs: number): Promise<SeenCertificate>;
  stop(): Promise<void>;
}

const serialOf = (cert: X509Certificate) => cert.serialNumber.toLowerCase().replace(/^00(?=[89a-f])/, '');

function blocks(text: string, label: string): number {
  const begin = text.split(`-----BEGIN ${label}-----`).length - 1;
  const end = text.split(`-----END ${label}-----`).length - 1;
  return begin === end ? begin : -1;
}

export function watchPemFiles(prefix: string, intervalMs = 3): PemWatch {
  const certificates: SeenCertificate[] = [];
  const failures: string[] = [];
  const appeared = new Set<string>();
  let rounds = 0;
  let stopped = false;

  const read = async (path: string): Promise<string | undefined> => {
    try {
      return await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failures.push(`${path}: ${(err as Error).message}`);
      else if (appeared.has(path)) failures.push(`${path} vanished after it had appeared`);
      return undefined;
    }
  };

  const check = (path: string, text: string, parse: () => void) => {
    appeared.add(path);
    try {
      parse();
    } catch (err) {
      failures.push(`${path} did not parse (${(err as Error).message}); ${text.length} bytes: ${JSON.stringify(text.slice(-80))}`);
    }
  };

  const loop = (async () => {
    while (!stopped) {
      const [pem, key, chain] = await Promise.all([read(`${prefix}.pem`), read(`${prefix}.key`), read(`${prefix}.chain.pem`)]);
      if (pem !== undefined) {
        check(`${prefix}.pem`, pem, () => {
          if (blocks(pem, 'CERTIFICATE') !== 1) throw new Error('not exactly one whole certificate');
          const cert = new X509Certificate(pem);
          const serial = serialOf(cert);
          if (certificates.at(-1)?.serial !== serial) {
            certificates.push({ serial, pem, cert, notBefore: Date.parse(cert.validFrom), notAfter: Date.parse(cert.validTo), seenAt: Date.now() });
          }
        });
      }
      if (key !== undefined) {
        check(`${prefix}.key`, key, () => {
          if (blocks(key, 'PRIVATE KEY') !== 1) throw new Error('not exactly one whole private key');
          createPrivateKey(key);
        });
      }
      if (chain !== undefined) {
        check(`${prefix}.chain.pem`, chain, () => {
          if (blocks(chain, 'CERTIFICATE') < 1) throw new Error('no whole certificate');
          for (const part of chain.split(/(?<=-----END CERTIFICATE-----\n?)/).filter((p) => p.includes('BEGIN'))) new X509Certificate(part);
        });
      }
      rounds += 1;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();

  return {
    certificates,
    failures,
    get rounds() {
      return rounds;
    },
    current: () => certificates.at(-1),
    async next(afterSerial, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = afterSerial === undefined ? 0 : certificates.findIndex((c) => c.serial === afterSerial) + 1;
        if (afterSerial !== undefined && i === 0) throw new Error(`serial ${afterSerial} was never seen`);
        if (certificates[i]) return certificates[i]!;
        if (Date.now() > deadline) throw new Error(`no certificate after ${afterSerial ?? 'none'} within ${timeoutMs} ms; seen: ${certificates.map((c) => c.serial).join(', ')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}
