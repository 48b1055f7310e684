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

export async function createTestPki(keyType: AuthorityKeyType = 'p256', options: { intermediatePassphrase?: string; intermediateDays?: number } = {}): Promise<TestPki> {
  const dir = mkdtempSync(join(tmpdir(), `service-ca-pki-${keyType}-`));
  removeAtExit(dir);
  const paths = await createAuthority({ dir, keyType, intermediatePassphrase: options.intermediatePassphrase, intermediateDays: options.intermediateDays });
  return { ...paths, dir, keyType };
}
