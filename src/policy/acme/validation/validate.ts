/**
 * One challenge's validation from the CA (docs/api.md "ACME"): by its type, with a timeout per
 * attempt and at most ATTEMPTS attempts, waiting between them (a client's responder that is a
 * moment late still passes). The outcome is the ACME problem document of the last failure.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { CaError } from '../../../errors.js';
import type { AcmeChallengeType, AcmeIdentifier } from '../../../store/store.js';
import { validateDns01 } from './dns-01.js';
import { validateHttp01 } from './http-01.js';
import type { NameResolver } from './resolve.js';
import { validateTlsAlpn01 } from './tls-alpn-01.js';

export const ATTEMPTS = 3;
const BACKOFF_MS = [500, 1500];

export interface ValidationSettings {
  resolver: NameResolver;
  ports: { http01: number; tlsalpn01: number };
  timeoutMs: number;
}

export type ValidationOutcome = { valid: true } | { valid: false; error: CaError };

async function attempt(settings: ValidationSettings, type: AcmeChallengeType, identifier: AcmeIdentifier, token: string, keyAuthorization: string, mayFollow: (host: string) => boolean) {
  switch (type) {
    case 'http-01':
      return validateHttp01({ resolver: settings.resolver, port: settings.ports.http01, httpsPort: settings.ports.tlsalpn01, timeoutMs: settings.timeoutMs, mayFollow }, identifier.value, token, keyAuthorization);
    case 'dns-01':
      return validateDns01(settings.resolver, identifier.value, keyAuthorization);
    case 'tls-alpn-01':
      return validateTlsAlpn01(settings.resolver, settings.ports.tlsalpn01, settings.timeoutMs, identifier.value, keyAuthorization);
  }
}

export async function validateChallenge(
  settings: ValidationSettings,
  challenge: { type: AcmeChallengeType; token: string },
  identifier: AcmeIdentifier,
  keyAuthorization: string,
  mayFollow: (host: string) => boolean,
): Promise<ValidationOutcome> {
  let last: CaError = new CaError('connection', 'not attempted');
  for (let i = 0; i < ATTEMPTS; i++) {
    if (i > 0) await sleep(BACKOFF_MS[i - 1] ?? 1500);
    try {
      await attempt(settings, challenge.type, identifier, challenge.token, keyAuthorization, mayFollow);
      return { valid: true };
    } catch (err) {
      last = err instanceof CaError ? err : new CaError('connection', `validation failed: ${(err as Error).message}`);
    }
  }
  return { valid: false, error: last };
}
