/** Readiness: the database answers and the signing key signs. */
import type { Signer } from '../signer/signer.js';
import type { Store } from '../store/store.js';

export interface HealthCheck {
  ready(): Promise<{ database: boolean; signer: boolean }>;
}

export function createHealthCheck(store: Store, signer: Signer, timeoutMs = 2000): HealthCheck {
  return {
    async ready() {
      const database = await Promise.race([
        store.ping().then(() => true, () => false),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), timeoutMs).unref()),
      ]);
      return { database, signer: signer.selfTest() };
    },
  };
}
