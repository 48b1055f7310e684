/**
 * Real ACME clients as child processes, for end-to-end tests: Debian's certbot (2.1) and lego
 * (4.9). Each runner keeps everything of its client (account, keys, certificates, logs) in a
 * folder of its own under the system's temp folder, trusts only the given root for the ACME
 * server's HTTPS, and kills the client's whole process group when a run outlives its timeout.
 * Commands are argument lists (no shell); the result carries the exit, the output and, after an
 * issuance, the paths of the PEM files the client wrote.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeAtExit } from './cleanup.js';

export interface ClientRun {
  /** The command and its arguments, as run. */
  argv: string[];
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Whether the run was killed for outliving its timeout. */
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** stdout and stderr, interleaved as they came. */
  output: string;
  ms: number;
}

/** External account binding, as `POST /v1/acme/eab` (or Pebble's configuration) gives it. */
export interface Eab {
  kid: string;
  /** base64url, no padding. */
  hmacKey: string;
}

/** What a client wrote for an issued certificate. */
export interface IssuedFiles {
  /** The leaf followed by the intermediate(s). */
  fullchain: string;
  /** The intermediate(s) only. */
  chain: string;
  /** The certificate's private key. */
  key: string;
}

const groups = new Set<number>();
// A test that fails or is cut short leaves no client running behind it.
process.once('exit', () => {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // Gone already.
    }
  }
});

/** Whether command runs (`command --version` exits 0); the reason to skip when it does not. */
export function missingClient(command: 'certbot' | 'lego'): string | false {
  const r = spawnSync(command, ['--version'], { stdio: 'ignore', timeout: 30_000 });
  return r.status === 0 ? false : `${command} is not installed (Debian: apt-get install -y ${command})`;
}

/**
 * The test's environment for a client: no proxy (everything it talks to is on 127.0.0.1), no
 * variable of the test runner, and the given ones.
 */
function clientEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(https?|all|no|ftp)_proxy$/i.test(k) || k.startsWith('NODE_') || k.startsWith('LEGO_') || k.startsWith('EXEC_') || k === 'REQUESTS_CA_BUNDLE' || k === 'CURL_CA_BUNDLE') delete env[k];
  }
  return { ...env, NO_PROXY: '127.0.0.1,localhost', ...extra };
}

/** Runs a command in its own process group; kills the group after timeoutMs. */
export function runClient(command: string, args: string[], options: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs: number }): Promise<ClientRun> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: string[] = [];
    const stderr: string[] = [];
    const output: string[] = [];
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout.push(d);
      output.push(d);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr.push(d);
      output.push(d);
    });
    let timedOut = false;
    const killGroup = () => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup();
    }, options.timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${command}: ${err.message}`));
    });
    if (child.pid !== undefined) groups.add(child.pid);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      // Nothing the client started (a challenge server, a hook) outlives it.
      killGroup();
      if (child.pid !== undefined) groups.delete(child.pid);
      resolve({ argv: [command, ...args], code, signal, timedOut, stdout: stdout.join(''), stderr: stderr.join(''), output: output.join(''), ms: Date.now() - started });
    });
  });
}

/** The PEM certificates in a text, in order. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g)?.map((p) => (p.endsWith('\n') ? p : `${p}\n`)) ?? [];
}

/** A fullchain file split: the leaf, and the intermediates as one PEM text (openssl's -untrusted). */
export function readFullchain(path: string): { leaf: string; intermediates: string; count: number } {
  const pems = pemCertificates(readFileSync(path, 'utf8'));
  if (pems.length === 0) throw new Error(`no certificate in ${path}`);
  return { leaf: pems[0]!, intermediates: pems.slice(1).join(''), count: pems.length };
}

/** A certificate's serial as the CA's API spells it: lower-case hex (openssl's, lower-cased). */
export function serialOf(pem: string): string {
  const r = spawnSync('openssl', ['x509', '-noout', '-serial'], { input: pem, encoding: 'utf8' });
  const m = /^serial=([0-9A-Fa-f]+)\s*$/.exec(r.stdout);
  if (r.status !== 0 || !m) throw new Error(`openssl could not read the serial: ${r.stderr}`);
  return m[1]!.toLowerCase();
}

// ---------------------------------------------------------------------------------------------
// certbot

export interface CertbotOptions {
  /** The ACME directory URL. */
  server: string;
  /** Path of the PEM root that the ACME server's HTTPS certificate chains to. */
  rootPem: string;
  /** Longest run of one command; default 120 s. */
  timeoutMs?: number;
}

export interface CertbotRun extends ClientRun {
  /** certbot's own log of this run (logs-dir/letsencrypt.log, rotated at each start). */
  log: string;
  /** live/<cert-name>/ after a successful certonly or renew. */
  files?: IssuedFiles & { cert: string };
}

export interface Certbot {
  /** The folder holding --config-dir, --work-dir and --logs-dir. */
  dir: string;
  /** `certonly --standalone --preferred-challenges http` for domains (the first names the lineage). */
  obtain(options: { domains: string[]; httpPort: number; eab?: Eab; certName?: string; extraArgs?: string[] }): Promise<CertbotRun>;
  /** `renew --cert-name N --force-renewal`: a new certificate for the lineage, whatever its age. */
  renew(options: { certName: string; httpPort: number; extraArgs?: string[] }): Promise<CertbotRun>;
  /** `revoke --cert-path P`, signed with the account key, the files kept. */
  revoke(options: { certPath: string; reason?: 'unspecified' | 'keycompromise' | 'affiliationchanged' | 'superseded' | 'cessationofoperation' }): Promise<CertbotRun>;
  remove(): void;
}

export function createCertbot(options: CertbotOptions): Certbot {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-certbot-'));
  removeAtExit(dir);
  const configDir = join(dir, 'config');
  const logsDir = join(dir, 'logs');
  const common = [
    '--non-interactive',
    '--config-dir', configDir,
    '--work-dir', join(dir, 'work'),
    '--logs-dir', logsDir,
    '--server', options.server,
  ];
  const env = clientEnv({ REQUESTS_CA_BUNDLE: options.rootPem });
  const timeoutMs = options.timeoutMs ?? 120_000;
  const run = async (args: string[], certName?: string): Promise<CertbotRun> => {
    const r = await runClient('certbot', args, { env, cwd: dir, timeoutMs });
    const logPath = join(logsDir, 'letsencrypt.log');
    const log = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
    const live = certName ? join(configDir, 'live', certName) : undefined;
    const files =
      r.code === 0 && live && existsSync(join(live, 'fullchain.pem'))
        ? { cert: join(live, 'cert.pem'), chain: join(live, 'chain.pem'), fullchain: join(live, 'fullchain.pem'), key: join(live, 'privkey.pem') }
        : undefined;
    return { ...r, log, files };
  };
  return {
    dir,
    obtain({ domains, httpPort, eab, certName = domains[0]!, extraArgs = [] }) {
      return run(
        [
          'certonly', ...common,
          '--agree-tos', '--register-unsafely-without-email',
          ...(eab ? ['--eab-kid', eab.kid, '--eab-hmac-key', eab.hmacKey] : []),
          '--standalone', '--preferred-challenges', 'http',
          '--http-01-address', '127.0.0.1', '--http-01-port', String(httpPort),
          '--cert-name', certName,
          ...domains.flatMap((d) => ['-d', d]),
          ...extraArgs,
        ],
        certName,
      );
    },
    renew({ certName, httpPort, extraArgs = [] }) {
      return run(
        [
          'renew', ...common,
          '--cert-name', certName, '--force-renewal', '--no-random-sleep-on-renew',
          '--http-01-address', '127.0.0.1', '--http-01-port', String(httpPort),
          ...extraArgs,
        ],
        certName,
      );
    },
    revoke({ certPath, reason }) {
      return run(['revoke', ...common, '--cert-path', certPath, '--no-delete-after-revoke', ...(reason ? ['--reason', reason] : [])]);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------------------------
// lego

export interface LegoOptions {
  /** The ACME directory URL. */
  server: string;
  /** Path of the PEM root that the ACME server's HTTPS certificate chains to. */
  rootPem: string;
  /** The account's contact; lego 4.9 refuses to run without one. */
  email?: string;
  /** Longest run of one command; default 120 s. */
  timeoutMs?: number;
}

export type LegoChallenge =
  | { type: 'http-01'; port: number }
  | { type: 'tls-alpn-01'; port: number }
  /** lego's exec provider against the test DNS server (test/setup/dns-server.ts). */
  | { type: 'dns-01'; execScript: string; resolver: string };

export interface LegoRun extends ClientRun {
  /** certificates/<first domain>.* after a successful run. */
  files?: IssuedFiles;
}

export interface Lego {
  /** lego's --path. */
  dir: string;
  /**
   * `lego run`: registers the account (with EAB when given) on first use, then orders. The EAB
   * is kept for later commands: lego 4.9 refuses any command (revoke too) without --eab when the
   * directory says externalAccountRequired, even for an account it has registered already.
   */
  run(options: { domains: string[]; challenge: LegoChallenge; eab?: Eab; extraArgs?: string[] }): Promise<LegoRun>;
  /** `lego revoke --keep` of the certificate stored for domains (its first one names the files). */
  revoke(options: { domains: string[]; reason?: number }): Promise<LegoRun>;
  remove(): void;
}

/** The file name lego gives a domain's certificate (a wildcard's `*` becomes `_`). */
const legoFileName = (domain: string) => domain.replace(/\*/g, '_');

export function createLego(options: LegoOptions): Lego {
  const dir = mkdtempSync(join(tmpdir(), 'service-ca-lego-'));
  removeAtExit(dir);
  const email = options.email ?? 'acme-test@example.org';
  const timeoutMs = options.timeoutMs ?? 120_000;
  const global = ['--server', options.server, '--accept-tos', '--email', email, '--path', dir];
  const baseEnv = { LEGO_CA_CERTIFICATES: options.rootPem };
  let lastEab: Eab | undefined;
  const eabArgs = (eab: Eab | undefined) => (eab ? ['--eab', '--kid', eab.kid, '--hmac', eab.hmacKey] : []);
  const go = async (args: string[], extraEnv: Record<string, string>, domain: string | undefined): Promise<LegoRun> => {
    const r = await runClient('lego', args, { env: clientEnv({ ...baseEnv, ...extraEnv }), cwd: dir, timeoutMs });
    const base = domain ? join(dir, 'certificates', legoFileName(domain)) : undefined;
    const files = r.code === 0 && base && existsSync(`${base}.crt`) ? { fullchain: `${base}.crt`, chain: `${base}.issuer.crt`, key: `${base}.key` } : undefined;
    return { ...r, files };
  };
  return {
    dir,
    run({ domains, challenge, eab = lastEab, extraArgs = [] }) {
      lastEab = eab;
      const env: Record<string, string> = {};
      let solver: string[];
      switch (challenge.type) {
        case 'http-01':
          solver = ['--http', '--http.port', `127.0.0.1:${challenge.port}`];
          break;
        case 'tls-alpn-01':
          solver = ['--tls', '--tls.port', `127.0.0.1:${challenge.port}`];
          break;
        case 'dns-01':
          // --dns.disable-cp: lego would otherwise ask the zone's authoritative servers on port 53
          // (the NS records' hosts), where nothing answers; it still asks the resolver once.
          solver = ['--dns', 'exec', '--dns.resolvers', challenge.resolver, '--dns.disable-cp'];
          env.EXEC_PATH = challenge.execScript;
          // Seconds: lego waits one polling interval before its check, then polls until the timeout.
          env.EXEC_POLLING_INTERVAL = '1';
          env.EXEC_PROPAGATION_TIMEOUT = '30';
          // The exec provider solves one name at a time and waits this long (default 60 s) between two.
          env.EXEC_SEQUENCE_INTERVAL = '1';
          break;
      }
      return go(
        [...global, ...eabArgs(eab), ...domains.flatMap((d) => ['--domains', d]), ...solver, 'run', ...extraArgs],
        env,
        domains[0],
      );
    },
    revoke({ domains, reason }) {
      return go([...global, ...eabArgs(lastEab), ...domains.flatMap((d) => ['--domains', d]), 'revoke', '--keep', ...(reason === undefined ? [] : ['--reason', String(reason)])], {}, undefined);
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
