/**
 * Inputs the fuzz properties found to crash the whole process, replayed against a real app in a
 * child process each (test/fuzz/crash-probe.ts), so that a crash fails one test instead of
 * killing the test file. The app must answer with a problem document and keep running.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { TSX_LOADER } from '../setup/processes.js';

const PROBE = new URL('./crash-probe.ts', import.meta.url).pathname;

interface ProbeRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  answer: { status: number; contentType: string | null; type: unknown } | undefined;
  healthz: number | undefined;
  stderr: string;
}

function runProbe(name: string): Promise<ProbeRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', TSX_LOADER, PROBE, name], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`probe ${name} did not finish within 120 s (a hang):\n${stdout}\n${stderr}`));
    }, 120_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const lines = stdout.trim().split('\n').filter((l) => l.startsWith('{'));
      const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const answer = parsed.find((p) => 'status' in p) as ProbeRun['answer'];
      const healthz = parsed.find((p) => 'healthz' in p)?.healthz as number | undefined;
      resolve({ code, signal, answer, healthz, stderr });
    });
  });
}

function assertSurvived(r: ProbeRun, status: number, code: string): void {
  const native = /Assertion failed[^\n]*|Native stack trace/.exec(r.stderr)?.[0];
  assert.equal(r.signal, null, `the process running the app was killed by ${r.signal}${native ? ` (${native})` : ''}:\n${r.stderr.slice(0, 1500)}`);
  assert.equal(r.code, 0, `the probe exited with ${r.code}:\n${r.stderr.slice(0, 1500)}`);
  assert.ok(r.answer, 'the app answered');
  assert.equal(r.answer.status, status);
  assert.equal(r.answer.contentType?.split(';')[0], 'application/problem+json');
  assert.equal(r.answer.type, `urn:service-ca:error:${code}`);
  assert.equal(r.healthz, 200, 'the app still answers /healthz');
}

describe('defects found by the fuzz properties that crash the process (they fail until src/ is fixed)', { concurrency: 2 }, () => {
  it('DEFECT-6a: a CSR whose EC public key is the point at infinity gets 400 badPublicKey, and the CA keeps running', async () => {
    // Found by csr.fuzz.test.ts (a structural mutation of a P-256 request killed the test process
    // with SIGABRT). createPublicKey accepts the point at infinity (BIT STRING 00 00); reading
    // asymmetricKeyDetails on that key then fails a CHECK in node (crypto_ec.cc GetEcKeyDetail:
    // "Assertion failed: (ec) != nullptr") and aborts the process: keyTypeOfKeyObject in
    // src/x509/public-keys.ts, reached from parseCsr before the CSR's signature is checked.
    assertSurvived(await runProbe('csr-infinity'), 400, 'badPublicKey');
  });

  it('DEFECT-6b: a renewal token whose x5c certificate holds an EC key at infinity gets 401, and the CA keeps running', async () => {
    // The same abort, without any credential: algorithmsFor() in src/auth/holder-token.ts reads
    // cert.publicKey.asymmetricKeyDetails of the x5c certificate before any signature is checked.
    assertSurvived(await runProbe('renew-infinity'), 401, 'unauthorized');
  });
});
