/**
 * The connection to a PKCS#11 token: one initialised module per library path, shared by every
 * key and secret of the process, and one logged-in session per opened object.
 *
 * Recovery: a token loses sessions and logins (it is unplugged, an HSM fails over, another user
 * of the module closes every session). An operation that fails with such an error reconnects —
 * new session, login, the object looked up again — and runs once more; a second failure, or any
 * other refusal, becomes CaError('unavailable') with the Cryptoki return code, so the API answers
 * 503 while the token is gone and the next call tries again. A refused PIN is latched and never
 * retried: HSMs lock the user PIN after a few wrong tries, and a locked CA token needs its
 * security officer.
 */
import { endianness } from 'node:os';
import { isAbsolute } from 'node:path';
import { CaError } from '../errors.js';
import { isTokenError, loadBinding, tokenErrorName, type Attribute, type Cryptoki, type Handle } from './pkcs11-binding.js';
import { CKF, CKR, CKU_USER } from './pkcs11-constants.js';
import { describePkcs11Uri, type Pkcs11Uri } from './pkcs11-uri.js';

interface Module {
  readonly path: string;
  readonly cryptoki: Cryptoki;
  users: number;
  /** C_Initialize was ours: C_Finalize is ours too. Another user of the library may have done it. */
  initialised: boolean;
}

const modules = new Map<string, Module>();

function acquireModule(path: string): Module {
  let module = modules.get(path);
  if (!module) {
    if (!isAbsolute(path)) throw new CaError('serverInternal', `the PKCS#11 module path ${path} is not absolute`);
    const cryptoki = new (loadBinding().PKCS11)();
    try {
      cryptoki.load(path);
    } catch (err) {
      throw new CaError('serverInternal', `cannot load the PKCS#11 module ${path} (${(err as Error).message.split('\n')[0]})`);
    }
    module = { path, cryptoki, users: 0, initialised: false };
    modules.set(path, module);
  }
  module.users++;
  return module;
}

function releaseModule(module: Module): void {
  if (--module.users > 0) return;
  modules.delete(module.path);
  try {
    if (module.initialised) module.cryptoki.C_Finalize();
  } catch {
    // Another user of the library may have finalised it already: nothing is left to release.
  }
  module.cryptoki.close();
}

function initialise(module: Module): void {
  try {
    // Node calls from one thread, but the module may run threads of its own (p11-kit's client
    // does, and refuses CKR_CANT_LOCK without this); every module in use supports OS locking.
    module.cryptoki.C_Initialize({ flags: CKF.OS_LOCKING_OK });
    module.initialised = true;
  } catch (err) {
    if (!(isTokenError(err) && err.code === CKR.CRYPTOKI_ALREADY_INITIALIZED)) throw err;
  }
}

/** Cryptoki pads text fields with blanks (some tokens with NULs). */
const unpad = (s: string): string => s.replace(/[ \0]+$/, '');

/** A CK_ULONG (an attribute value, a slot id) as the binding returns it: in the host's byte order. */
export function ulong(value: Buffer): bigint {
  const bytes = endianness() === 'LE' ? [...value].reverse() : [...value];
  return bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n);
}

/** The one initialised token the URI names: every token, slot and library attribute it gives must match. */
function findSlot(c: Cryptoki, uri: Pkcs11Uri): Handle {
  if (uri.libraryManufacturer !== undefined || uri.libraryDescription !== undefined || uri.libraryVersion !== undefined) {
    const info = c.C_GetInfo();
    const version = uri.libraryVersion;
    if ((uri.libraryManufacturer !== undefined && unpad(info.manufacturerID) !== uri.libraryManufacturer)
      || (uri.libraryDescription !== undefined && unpad(info.libraryDescription) !== uri.libraryDescription)
      || (version && (info.libraryVersion.major !== version.major || info.libraryVersion.minor !== version.minor))) {
      throw new CaError('serverInternal', 'the PKCS#11 module is not the library the URI names (library-manufacturer, library-description, library-version)');
    }
  }
  const matches = c.C_GetSlotList(true).filter((slot) => {
    if (uri.slotId !== undefined && ulong(slot) !== uri.slotId) return false;
    try {
      if (uri.slotDescription !== undefined || uri.slotManufacturer !== undefined) {
        const info = c.C_GetSlotInfo(slot);
        if (uri.slotDescription !== undefined && unpad(info.slotDescription) !== uri.slotDescription) return false;
        if (uri.slotManufacturer !== undefined && unpad(info.manufacturerID) !== uri.slotManufacturer) return false;
      }
      const token = c.C_GetTokenInfo(slot);
      return (token.flags & CKF.TOKEN_INITIALIZED) !== 0
        && (uri.token === undefined || unpad(token.label) === uri.token)
        && (uri.manufacturer === undefined || unpad(token.manufacturerID) === uri.manufacturer)
        && (uri.model === undefined || unpad(token.model) === uri.model)
        && (uri.serial === undefined || unpad(token.serialNumber) === uri.serial);
    } catch (err) {
      // A slot whose token cannot be read (being removed, unrecognised) is not the one named.
      if (isTokenError(err)) return false;
      throw err;
    }
  });
  if (matches.length === 0) throw new CaError('serverInternal', `no initialised token matches ${describePkcs11Uri(uri)}`);
  if (matches.length > 1) throw new CaError('serverInternal', `${matches.length} tokens match ${describePkcs11Uri(uri)}: name one with token= or serial=`);
  return matches[0]!;
}

/** Handles of the objects matching `template`; at most `max` (enough to tell one from several). */
export function findObjects(c: Cryptoki, session: Handle, template: Attribute[], max = 2): Handle[] {
  c.C_FindObjectsInit(session, template);
  try {
    return c.C_FindObjects(session, max);
  } finally {
    c.C_FindObjectsFinal(session);
  }
}

/** One attribute's value, or undefined when the object does not have it. */
export function attribute(c: Cryptoki, session: Handle, object: Handle, type: number): Buffer | undefined {
  try {
    return c.C_GetAttributeValue(session, object, [{ type }])[0]?.value;
  } catch (err) {
    if (isTokenError(err) && err.code === CKR.ATTRIBUTE_TYPE_INVALID) return undefined;
    throw err;
  }
}

/** Finds the object in a fresh logged-in session and checks it; throws CaError to refuse it. */
export type Locate<T> = (c: Cryptoki, session: Handle, slot: Handle) => T;

const RECONNECT_ON = new Set<number>([
  CKR.SESSION_HANDLE_INVALID, CKR.SESSION_CLOSED, CKR.USER_NOT_LOGGED_IN, CKR.DEVICE_REMOVED, CKR.DEVICE_ERROR,
  CKR.TOKEN_NOT_PRESENT, CKR.TOKEN_NOT_RECOGNIZED, CKR.CRYPTOKI_NOT_INITIALIZED,
  // Private objects vanish from a session that lost its login: their handles become invalid.
  CKR.OBJECT_HANDLE_INVALID, CKR.KEY_HANDLE_INVALID,
]);
const PIN_REFUSED = new Set<number>([CKR.PIN_INCORRECT, CKR.PIN_LOCKED, CKR.PIN_EXPIRED]);

export interface Connected<T> {
  readonly cryptoki: Cryptoki;
  readonly session: Handle;
  readonly slot: Handle;
  readonly found: T;
}

/**
 * One object in a token, reached through its own logged-in session. `subject` names it in the
 * messages an API client may read ("the CA key"). The PIN is kept in a private field (util.inspect
 * and JSON do not show those) and only ever passed to C_Login.
 */
export class TokenConnection<T> {
  private readonly module: Module;
  private current: Connected<T> | undefined;
  private pinRefused: string | undefined;
  readonly #pin: string;
  private closed = false;

  /** Connects once: a failure here is a configuration error (CaError serverInternal, thrown). */
  constructor(modulePath: string, private readonly uri: Pkcs11Uri, pin: string, private readonly subject: string, private readonly locate: Locate<T>) {
    this.#pin = pin;
    this.module = acquireModule(modulePath);
    try {
      this.current = this.connect();
    } catch (err) {
      this.close();
      if (isTokenError(err)) throw new CaError('serverInternal', `the token answered ${tokenErrorName(err)}`, { cause: err });
      throw err;
    }
  }

  get connected(): Connected<T> {
    if (!this.current) throw new CaError('serverInternal', `${this.subject} is not connected`);
    return this.current;
  }

  /** Runs `op` on the session; reconnects once on a lost session or login, else CaError('unavailable'). */
  run<R>(op: (connected: Connected<T>) => R): R {
    if (this.closed) throw new CaError('serverInternal', `${this.subject} was closed`);
    if (this.pinRefused !== undefined) throw this.unavailable(this.pinRefused);
    let fresh = false;
    if (!this.current) {
      this.reconnect();
      fresh = true;
    }
    try {
      return op(this.current!);
    } catch (err) {
      if (!isTokenError(err)) throw err;
      this.drop();
      if (fresh || err.code === undefined || !RECONNECT_ON.has(err.code)) throw this.unavailable(tokenErrorName(err), err);
    }
    this.reconnect();
    try {
      return op(this.current!);
    } catch (err) {
      if (!isTokenError(err)) throw err;
      this.drop();
      throw this.unavailable(tokenErrorName(err), err);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.drop();
    releaseModule(this.module);
  }

  private connect(): Connected<T> {
    const c = this.module.cryptoki;
    initialise(this.module);
    const slot = findSlot(c, this.uri);
    const session = c.C_OpenSession(slot, CKF.SERIAL_SESSION);
    try {
      try {
        c.C_Login(session, CKU_USER, this.#pin);
      } catch (err) {
        // Login state belongs to the application, not the session: another session may hold it.
        if (!(isTokenError(err) && err.code === CKR.USER_ALREADY_LOGGED_IN)) {
          if (isTokenError(err) && err.code !== undefined && PIN_REFUSED.has(err.code)) {
            this.pinRefused = tokenErrorName(err);
            throw new CaError('serverInternal', `the token refused the PIN (${this.pinRefused})`, { cause: err });
          }
          throw err;
        }
      }
      return { cryptoki: c, session, slot, found: this.locate(c, session, slot) };
    } catch (err) {
      closeQuietly(c, session);
      throw err;
    }
  }

  private reconnect(): void {
    this.drop();
    try {
      this.current = this.connect();
    } catch (err) {
      if (isTokenError(err)) throw this.unavailable(tokenErrorName(err), err);
      if (err instanceof CaError) throw this.unavailable(this.pinRefused ?? err.detail, err);
      throw err;
    }
  }

  private drop(): void {
    if (this.current) closeQuietly(this.current.cryptoki, this.current.session);
    this.current = undefined;
  }

  private unavailable(reason: string, cause?: unknown): CaError {
    const detail = this.pinRefused !== undefined
      ? `${this.subject}'s PKCS#11 token refuses the PIN (${this.pinRefused}); it is not tried again before a restart`
      : /^CKR[_ ]/.test(reason) ? `${this.subject}'s PKCS#11 token does not answer (${reason})` : `${this.subject}'s PKCS#11 token is unavailable: ${reason}`;
    return new CaError('unavailable', detail, { retryAfter: 5, ...(cause === undefined ? {} : { cause }) });
  }
}

function closeQuietly(c: Cryptoki, session: Handle): void {
  try {
    c.C_CloseSession(session);
  } catch {
    // The session is already gone with the token, the module or a C_CloseAllSessions.
  }
}
