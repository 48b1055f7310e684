/**
 * The agent's pending request (src/cli/cert-files.ts, PREFIX.pending.key): written 0600 and read
 * back byte for byte (a retry must send the same CSR, docs/api.md "Retries"), and discarded, with the
 * reason, when it is no longer the request to retry: for other names or another key type, a key
 * that does not match its CSR, a certificate in place newer than the one it was made to replace,
 * or a certificate in place that already carries its key.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readPending, removePending, writePending, type CurrentCertificate } from '../../src/cli/cert-files.js';
import { createKeyAndCsr, type Names } from '../setup/csr.js';

const NAMES: Names = { dns: ['api.payments.svc'], ip: ['fd00::1'], uri: ['spiffe://example.org/ns/payments/sa/api'] };
const dir = mkdtempSync(join(tmpdir(), 'service-ca-pending-'));
let n = 0;
const prefix = () => join(dir, `p${++n}`);
/** A certificate in place, as readCurrent gives it; only its key and serial matter here. */
const inPlace = (serial: string, keyPem: string): CurrentCertificate => ({ certificatePem: '', chainPem: '', keyPem, serial, notBefore: new Date(0), notAfter: new Date(0) });

describe('the agent pending request file', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is written 0600 and read back byte for byte, with the serial it replaces', async () => {
    const p = prefix();
    const made = await createKeyAndCsr('p256', NAMES);
    const written = writePending(p, { ...made, replaces: 'abc123' });
    assert.equal(statSync(`${p}.pending.key`).mode & 0o777, 0o600);
    // The same names written another way (IPv6 spelling, order, DNS case) are the same names.
    const wanted: Names = { uri: NAMES.uri, ip: ['fd00:0:0::1'], dns: ['API.payments.svc'] };
    const read = await readPending(p, wanted, 'p256', inPlace('abc123', (await createKeyAndCsr('p256', NAMES)).keyPem));
    assert.deepEqual(read, { pending: { keyPem: made.keyPem, csrPem: `${made.csrPem}\n`, replaces: 'abc123' } });
    assert.equal(read.pending!.csrPem, written.csrPem, 'the CSR that is sent the first time is the one sent again');
    removePending(p);
    assert.deepEqual(await readPending(p, NAMES, 'p256', undefined), {}, 'no file, nothing to retry');
  });

  it('with no certificate in place it stays the request to retry (first issuance, or the old one expired)', async () => {
    const p = prefix();
    writePending(p, { ...(await createKeyAndCsr('ed25519', NAMES)), replaces: 'abc123' });
    assert.equal((await readPending(p, NAMES, 'ed25519', undefined)).pending?.replaces, 'abc123');
  });

  const discarded: [string, (p: string) => Promise<{ reason?: string }>][] = [
    ['other names', async (p) => {
      writePending(p, { ...(await createKeyAndCsr('p256', NAMES)), replaces: null });
      return readPending(p, { ...NAMES, dns: ['other.payments.svc'] }, 'p256', undefined);
    }],
    ['another key type', async (p) => {
      writePending(p, { ...(await createKeyAndCsr('p256', NAMES)), replaces: null });
      return readPending(p, NAMES, 'p384', undefined);
    }],
    ['a key that is not its CSR\'s', async (p) => {
      writePending(p, { keyPem: (await createKeyAndCsr('p256', NAMES)).keyPem, csrPem: (await createKeyAndCsr('p256', NAMES)).csrPem, replaces: null });
      return readPending(p, NAMES, 'p256', undefined);
    }],
    ['a newer certificate in place', async (p) => {
      writePending(p, { ...(await createKeyAndCsr('p256', NAMES)), replaces: 'abc123' });
      return readPending(p, NAMES, 'p256', inPlace('def456', (await createKeyAndCsr('p256', NAMES)).keyPem));
    }],
    ['a certificate in place when it replaced none', async (p) => {
      writePending(p, { ...(await createKeyAndCsr('p256', NAMES)), replaces: null });
      return readPending(p, NAMES, 'p256', inPlace('def456', (await createKeyAndCsr('p256', NAMES)).keyPem));
    }],
    ['a certificate in place with its key (the answer arrived)', async (p) => {
      const made = await createKeyAndCsr('p256', NAMES);
      writePending(p, { ...made, replaces: 'abc123' });
      return readPending(p, NAMES, 'p256', inPlace('def456', made.keyPem));
    }],
    ['a truncated file', async (p) => {
      writePending(p, { ...(await createKeyAndCsr('p256', NAMES)), replaces: null });
      const text = readFileSync(`${p}.pending.key`, 'utf8');
      writeFileSync(`${p}.pending.key`, text.slice(0, text.indexOf('-----BEGIN CERTIFICATE REQUEST')));
      return readPending(p, NAMES, 'p256', undefined);
    }],
  ];
  for (const [what, make] of discarded) {
    it(`is discarded for ${what}`, async () => {
      const read = await make(prefix());
      assert.equal('pending' in read, false);
      assert.equal(typeof read.reason, 'string', 'with a reason for the log');
    });
  }
});
