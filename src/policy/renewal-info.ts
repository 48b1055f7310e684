/** Renewal information for rotation agents (API.md "Renewal window"; RFC 9773 shape). */
import type { Clock } from '../clock.js';
import { CaError } from '../errors.js';
import type { Store } from '../store/store.js';
import { renewalWindow, retryAfterSeconds, type RenewalWindow } from './renewal.js';
import { normalizeSerial } from './serials.js';

export interface RenewalInfo {
  window: RenewalWindow;
  retryAfter: number;
}

export function createRenewalInfo(deps: { store: Store; clock: Clock }) {
  return {
    async get(serialText: string): Promise<RenewalInfo> {
      const record = await deps.store.getCertificate(normalizeSerial(serialText));
      if (!record) throw new CaError('notFound', 'no certificate has this serial');
      const now = deps.clock.now();
      return { window: renewalWindow(record, now), retryAfter: retryAfterSeconds(record) };
    },
  };
}

export type RenewalInfoService = ReturnType<typeof createRenewalInfo>;
