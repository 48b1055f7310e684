/**
 * Identity templates: `{claim}` placeholders filled from the token's claims, e.g. `{sub}` or
 * `k8s:{kubernetes.io.namespace}/{kubernetes.io.serviceaccount.name}`. A dotted path walks nested
 * objects; a key that itself contains dots (`kubernetes.io`) is matched before splitting further.
 */
import type { JWTPayload } from 'jose';
import { CaError } from '../errors.js';
import { RESERVED_IDENTITY_PREFIX } from '../model.js';

function lookup(value: unknown, parts: string[]): unknown {
  if (parts.length === 0) return value;
  if (!value || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const obj = value as Record<string, unknown>;
  // Longest key first, so "kubernetes.io" wins over "kubernetes".
  for (let n = parts.length; n >= 1; n--) {
    const key = parts.slice(0, n).join('.');
    if (Object.prototype.hasOwnProperty.call(obj, key)) {
      const found = lookup(obj[key], parts.slice(n));
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

export function claimAt(claims: JWTPayload, path: string): unknown {
  return lookup(claims, path.split('.'));
}

export function renderIdentity(template: string, claims: JWTPayload): string {
  const identity = template.replace(/\{([^{}]+)\}/g, (_m, path: string) => {
    const v = claimAt(claims, path);
    if (typeof v === 'string' && v.length > 0) return v;
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
    throw new CaError('unauthorized', `the token has no usable "${path}" claim for the identity`);
  });
  // eslint-disable-next-line no-control-regex
  if (identity.length === 0 || identity.length > 1024 || /[\x00-\x1f\x7f]/.test(identity)) {
    throw new CaError('unauthorized', 'the identity built from the token is empty, too long or has control characters');
  }
  if (identity.startsWith(RESERVED_IDENTITY_PREFIX)) {
    throw new CaError('unauthorized', `the identity built from the token is in the namespace the CA keeps for itself (${RESERVED_IDENTITY_PREFIX})`);
  }
  return identity;
}
