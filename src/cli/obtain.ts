/**
 * One certificate for the agent: a key and CSR, the request with the identity token (or with the
 * current certificate), and the files written. The key and CSR are kept in PREFIX.pending.key
 * until the answer arrives, so that a retry after a lost answer (timeout, reset, 5xx), also by a
 * restarted agent, is the idempotent one: the CA answers the same key with the renewal it already
 * made (docs/api.md "Certificate holder") and the same token with a byte-identical CSR with the
 * certificate it issued then ("Retries"), where a new key would be a second renewal, refused as a
 * reuse, or a second certificate.
 *
 * Beside the key, the leaf and the chain it writes the derived outputs (cert-files.ts): the full
 * chain, the CA's trust bundle (fetched from /v1/ca/root.pem and written only when it holds the
 * pinned root) and the PKCS#12 file, whose passphrase is read when it is written.
 */
import { readFileSync } from 'node:fs';
import { decodeJwt } from 'jose';
import type { Logger } from 'pino';
import { ServiceCaError, holderToken, isRenewalReuse, type Issuance, type ServiceCaClient } from '../client/index.js';
import {
  bundleProblem,
  missingOutputs,
  paths,
  readPending,
  removePending,
  writeIssued,
  writeMissing,
  writePending,
  type CurrentCertificate,
  type ExtraOutputs,
  type PendingRequest,
} from './cert-files.js';
import { createKeyAndCsr, type ClientKeyType, type Names } from './keys.js';

export interface ObtainOptions {
  client: ServiceCaClient;
  tokenFile: string | undefined;
  names: Names;
  /** The requested lifetime in seconds (the command line reads 1h30m; the API takes seconds). */
  ttl: number | undefined;
  keyType: ClientKeyType;
  out: string;
  logger: Logger;
  /** The root(s) to trust, PEM (--ca, SERVICE_CA_ROOT or the saved context): PREFIX.ca.pem must hold one. */
  pinnedRoot: string | undefined;
  /** --p12 FILE and the reader of its passphrase (throws with a message that never holds it). */
  p12: { path: string; passphrase: () => string } | undefined;
}

/** What the agent remembers between attempts (in memory; the pending key is on disk). */
export interface AgentState {
  /** The identity token of an attempt whose answer was lost, with the CSR it was sent with. */
  lost?: { token: string; csr: string };
  /** The serial of a certificate whose renewal was refused as a reuse: never presented again. */
  reused?: string;
  /**
   * Outputs that still hold an older certificate's content because they could not be rewritten
   * with the one in place (trust bundle unreachable or refused, no PKCS#12 passphrase): retried at
   * each poll by completeOutputs.
   */
  stale?: Set<'ca' | 'p12'>;
}

function readToken(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    const t = readFileSync(file, 'utf8').trim();
    return t.length > 0 ? t : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a token's `exp` is still at least 30 s away (it is only decoded: the CA checks it). */
function stillValid(token: string): boolean {
  try {
    const { exp } = decodeJwt(token);
    return typeof exp === 'number' && exp * 1000 > Date.now() + 30_000;
  } catch {
    return false;
  }
}

/** No answer, or one that says nothing about the request (5xx): it may have been issued anyway. */
const answerLost = (err: unknown) => !(err instanceof ServiceCaError) || err.status >= 500;

/** A 4xx that decides the request (408 and 429 ask for a retry; they decide nothing). */
const refused = (err: unknown) => err instanceof ServiceCaError && err.status >= 400 && err.status < 500 && err.status !== 408 && err.status !== 429;

/** Thrown instead of presenting again a certificate whose renewal was refused as a reuse. */
export class RenewalReused extends Error {}

/** The request to send: the pending one when it is still the one to retry, else a new key and CSR, kept on disk first. */
async function pendingRequest(o: ObtainOptions, current: CurrentCertificate | undefined): Promise<{ request: PendingRequest; retry: boolean }> {
  const read = await readPending(o.out, o.names, o.keyType, current);
  if (read.pending) return { request: read.pending, retry: true };
  if (read.reason) {
    o.logger.info({ reason: read.reason }, 'discarding the pending key; making a new one');
    removePending(o.out);
  }
  const { keyPem, csrPem } = await createKeyAndCsr(o.keyType, o.names);
  return { request: writePending(o.out, { keyPem, csrPem, replaces: current?.serial ?? null }), retry: false };
}

/**
 * Obtains a certificate: with the identity token when there is one, else (or when it is
 * refused) by renewing `current` when `canRenew`. The key and CSR stay on disk until the answer:
 * a lost answer keeps them (and the token) for the retry; a refusal discards them, except a
 * refused reuse, whose key was never certified.
 */
export async function obtain(o: ObtainOptions, state: AgentState, current: CurrentCertificate | undefined, canRenew: boolean): Promise<CurrentCertificate> {
  const { request: pending, retry } = await pendingRequest(o, current);
  if (retry) o.logger.info({ replaces: pending.replaces }, 'retrying the unanswered request with the same key and CSR');
  const request = { csr: pending.csrPem, ...(o.ttl ? { ttl: o.ttl } : {}) };
  // docs/api.md "Retries": only the same token with the byte-identical CSR gets the certificate issued then.
  const resend = state.lost && state.lost.csr === pending.csrPem && stillValid(state.lost.token) ? state.lost.token : undefined;
  const token = resend ?? readToken(o.tokenFile);
  state.lost = undefined;
  let issued: Issuance | undefined;
  try {
    if (token) {
      try {
        issued = await o.client.issue(token, request);
      } catch (err) {
        if (answerLost(err)) state.lost = { token, csr: pending.csrPem };
        if (!(err instanceof ServiceCaError && err.status === 401 && current && canRenew)) throw err;
        o.logger.warn({ problem: err.problem?.detail }, 'the identity token was refused; renewing with the current certificate');
      }
    }
    if (!issued) {
      if (!current || !canRenew) throw new Error(o.tokenFile ? `no usable token in ${o.tokenFile} and no current certificate` : 'no --token-file and no current certificate');
      if (state.reused === current.serial) {
        throw new RenewalReused(`certificate ${current.serial} was refused as already renewed; only a new identity token${o.tokenFile ? ` in ${o.tokenFile}` : ''} can replace it`);
      }
      try {
        issued = await o.client.renew(await holderToken(current.certificatePem, current.keyPem), request);
      } catch (err) {
        if (isRenewalReuse(err)) state.reused = current.serial;
        throw err;
      }
    }
  } catch (err) {
    if (refused(err) && !isRenewalReuse(err)) removePending(o.out);
    throw err;
  }
  const extra = await extraOutputs(o, issued.certificate, issued.chain.join('\n'));
  const written = writeIssued(o.out, pending.keyPem, issued, extra);
  removePending(o.out);
  state.stale = unwritten(o, extra);
  o.logger.info({ serial: issued.serial, notAfter: issued.notAfter, renewalStart: issued.renewalInfo.start }, 'certificate written');
  return written;
}

/** The CA's trust bundle when bundleProblem accepts it; otherwise undefined, after saying why at level error. */
async function trustBundle(o: ObtainOptions, leafPem: string, chainPem: string): Promise<string | undefined> {
  const file = paths(o.out).ca;
  let bundle: string;
  try {
    bundle = await o.client.rootPem();
  } catch (err) {
    o.logger.error({ file, err: (err as Error).message }, 'could not fetch the CA root for the trust bundle; the file is left as it is');
    return undefined;
  }
  const problem = bundleProblem(bundle, o.pinnedRoot, leafPem, chainPem);
  if (problem !== undefined) {
    o.logger.error({ file, problem }, 'refusing the trust bundle the CA answered: it is not written, and the file is left as it is');
    return undefined;
  }
  return bundle;
}

function p12Output(o: ObtainOptions): ExtraOutputs['p12'] {
  if (!o.p12) return undefined;
  try {
    return { path: o.p12.path, passphrase: o.p12.passphrase() };
  } catch (err) {
    o.logger.error({ file: o.p12.path, err: (err as Error).message }, 'no PKCS#12 passphrase: the PKCS#12 file is not written');
    return undefined;
  }
}

const extraOutputs = async (o: ObtainOptions, leafPem: string, chainPem: string): Promise<ExtraOutputs> => ({ caBundle: await trustBundle(o, leafPem, chainPem), p12: p12Output(o) });

/** The outputs the extra outputs leave out: their files keep older content, or none. */
const unwritten = (o: ObtainOptions, extra: ExtraOutputs) =>
  new Set<'ca' | 'p12'>([...(extra.caBundle === undefined ? ['ca' as const] : []), ...(o.p12 && !extra.p12 ? ['p12' as const] : [])]);

/**
 * Writes the derived outputs of the certificate in place that are missing or stale (an agent
 * started with --p12 for the first time; a trust bundle refused or unreachable, or a PKCS#12
 * passphrase unreadable, at the last renewal). True when every output is in place afterwards.
 * Errors are logged, never thrown: the certificate in place stays usable.
 */
export async function completeOutputs(o: ObtainOptions, state: AgentState, current: CurrentCertificate): Promise<boolean> {
  const missing = missingOutputs(o.out, current, o.p12?.path);
  for (const s of state.stale ?? []) missing.add(s);
  if (missing.size === 0) return true;
  const extra: ExtraOutputs = {
    caBundle: missing.has('ca') ? await trustBundle(o, current.certificatePem, current.chainPem) : undefined,
    p12: missing.has('p12') ? p12Output(o) : undefined,
  };
  try {
    writeMissing(o.out, current, extra, missing);
  } catch (err) {
    o.logger.error({ err: (err as Error).message }, 'could not write the outputs of the certificate in place');
    return false;
  }
  const failed = unwritten(o, extra);
  state.stale = new Set([...(state.stale ?? [])].filter((s) => failed.has(s)));
  const still = missingOutputs(o.out, current, o.p12?.path);
  for (const s of state.stale) still.add(s);
  const wrote = [...missing].filter((m) => !still.has(m));
  if (wrote.length > 0) o.logger.info({ serial: current.serial, outputs: wrote }, 'wrote the missing outputs of the certificate in place');
  return still.size === 0;
}
