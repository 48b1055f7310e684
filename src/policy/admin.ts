/** The one admin check (docs/api.md "Admin"): whether the caller's identity is listed under auth.admins. */
import type { Principal } from '../auth/principal.js';
import { CaError } from '../errors.js';

export function requireAdmin(principal: Principal): void {
  if (!principal.admin) throw new CaError('forbidden', 'this operation is for admins');
}
