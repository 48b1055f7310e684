/**
 * Requests that have crashed the whole process (a native abort, which no try/catch and no
 * onError can turn into an answer), each sent to a real app (startTestApp) in a process of its
 * own, so that a crash takes down only this probe. crashes.fuzz.test.ts runs
 * `node --import tsx test/fuzz/crash-probe.ts <probe>` and reads the last line of its stdout:
 * `{"status":..., "type":...}` for the answer, then `{"healthz":...}` when the app still answers.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { startTestApp, workload } from '../setup/app.js';
import { opensslSelfSigned } from '../setup/crafted.js';
import { signJws } from './jws.js';
import { armour, buildCri, decodeTree, encodeTree, signCri } from './mutations.js';

/** A P-256 SubjectPublicKeyInfo whose point is the point at infinity (SEC 1 §2.3.3: the octet 00). */
export const INFINITY_SPKI = Buffer.from('3019301306072a8648ce3d020106082a8648ce3d030107030200' + '00', 'hex');

/** A self-signed certificate whose SubjectPublicKeyInfo is replaced by spki (its signature no longer verifies; it still parses). */
export function certificateWithKey(spki: Buffer): Buffer {
  const tree = decodeTree(new X509Certificate(opensslSelfSigned(['basicConstraints=critical,CA:FALSE']).certPem).raw);
  // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, subjectPublicKeyInfo (RFC 5280 §4.1).
  tree.children![0]!.children![6] = decodeTree(spki);
  return encodeTree(tree);
}

const PROBES: Record<string, (app: Awaited<ReturnType<typeof startTestApp>>) => Promise<Response>> = {
  /** An identity-token holder asks for a certificate for a key at infinity (the CSR's signature is never reached). */
  'csr-infinity': async (app) => {
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const csr = armour(signCri(buildCri(INFINITY_SPKI, [{ tag: 0x82, value: Buffer.from('web.shop.svc') }]), key, 'p256'));
    return app.issue(workload('shop', 'web'), { csr });
  },
  /** Anyone sends a renewal token whose x5c certificate holds a key at infinity; no signature needs to verify. */
  'renew-infinity': async (app) => {
    const token = signJws({ alg: 'ES256', x5c: [certificateWithKey(INFINITY_SPKI).toString('base64')] }, { aud: 'service-ca:renew' }, { garbage: true });
    return fetch(`${app.api}/v1/certificates/renew`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` }, body: '{}' });
  },
};

const probe = PROBES[process.argv[2] ?? ''];
if (!probe) {
  console.error(`usage: crash-probe.ts ${Object.keys(PROBES).join('|')}`);
  process.exit(2);
}
const app = await startTestApp();
try {
  const res = await probe(app);
  const text = await res.text();
  let type: unknown;
  try {
    type = (JSON.parse(text) as { type?: unknown }).type;
  } catch {
    type = undefined;
  }
  console.log(JSON.stringify({ status: res.status, contentType: res.headers.get('content-type'), type }));
  const health = await fetch(`${app.public}/healthz`);
  console.log(JSON.stringify({ healthz: health.status }));
} finally {
  await app.stop();
}
