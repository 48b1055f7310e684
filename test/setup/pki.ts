/** Throwaway CAs for tests, one folder each, made by the same code as `service-ca init`. */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeAtExit } from './cleanup.js';
import { createAuthority, type AuthorityKeyType, type AuthorityPaths } from '../../src/signer/bootstrap.js';

export interface TestPki extends AuthorityPaths {
  dir: string;
  keyType: AuthorityKeyType;
}

/** `now`: when the CA is made (its certificates start a few minutes before), for apps on a clock set in the past. */
export async function createTestPki(keyType: AuthorityKeyType = 'p256', options: { intermediatePassphrase?: string; intermediateDays?: number; now?: Date } = {}): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), `service-ca-pki-${keyType}-`));
  removeAtExit(dir);
  const paths = await createAuthority({ dir, keyType, intermediatePassphrase: options.intermediatePassphrase, intermediateDays: options.intermediateDays, ...(options.now ? { now: options.now } : {}) });
  return { ...paths, dir, keyType };
}
