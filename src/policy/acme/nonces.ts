/**
 * ACME nonces (RFC 8555 §6.5) that any replica or worker can check without another's memory and
 * without a write per nonce handed out: a nonce is 6 bytes of its minting time (ms), 10 random
 * bytes and a 16-byte HMAC-SHA-256 tag over both, keyed by a secret every process derives from
 * the CA key (signer.deriveSecret). Checking one verifies the tag and the age, then records its
 * first 16 bytes in acme_used_nonces, whose primary key refuses a second use on every replica.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../clock.js';
import { CaError } from '../../errors.js';
import type { Store } from '../../store/store.js';

const ID_BYTES = 16;
const TAG_BYTES = 16;
/** How long a nonce is accepted after it was handed out. */
export const NONCE_LIFETIME_MS = 60 * 60 * 1000;

export interface Nonces {
  /** A fresh nonce for a Replay-Nonce header. */
  mint(): string;
  /** Accepts a nonce once: badNonce when it is forged, too old or used before. */
  use(nonce: string): Promise<void>;
}

export function createNonces(deps: { secret: Buffer; clock: Clock; store: Pick<Store, 'acme'> }): Nonces {
  const tag = (id: Buffer) => createHmac('sha256', deps.secret).update(id).digest().subarray(0, TAG_BYTES);
  return {
    mint() {
      const id = Buffer.alloc(ID_BYTES);
      id.writeUIntBE(deps.clock.now().getTime(), 0, 6);
      randomBytes(ID_BYTES - 6).copy(id, 6);
      return Buffer.concat([id, tag(id)]).toString('base64url');
    },
    async use(nonce) {
      const bytes = /^[A-Za-z0-9_-]{43}$/.test(nonce) ? Buffer.from(nonce, 'base64url') : Buffer.alloc(0);
      if (bytes.length !== ID_BYTES + TAG_BYTES) throw new CaError('badNonce', 'this is not a nonce of this server');
      const id = bytes.subarray(0, ID_BYTES);
      if (!timingSafeEqual(tag(id), bytes.subarray(ID_BYTES))) throw new CaError('badNonce', 'this is not a nonce of this server');
      const expiresAt = id.readUIntBE(0, 6) + NONCE_LIFETIME_MS;
      if (expiresAt <= deps.clock.now().getTime()) throw new CaError('badNonce', 'the nonce has expired: use the fresh one in this answer\'s Replay-Nonce');
      if (!(await deps.store.acme.useNonce(id, new Date(expiresAt)))) throw new CaError('badNonce', 'the nonce was used before: use the fresh one in this answer\'s Replay-Nonce');
    },
  };
}
