/**
 * The PKCS#11 binding, pkcs11js: a native module and an optional dependency, so that an
 * installation without a token never needs a compiler. It is loaded on first use, when a key is
 * configured as a PKCS#11 URI; a missing or unbuilt binding is a start-up refusal that says how
 * to install it. Only the part of its API this back end calls is typed here, so that the
 * project still type-checks where the optional dependency could not be installed.
 */
import { createRequire } from 'node:module';
import { CaError } from '../errors.js';

export type Handle = Buffer;

export interface Attribute {
  type: number;
  value?: number | boolean | string | Buffer;
}

/** The part of pkcs11js's PKCS11 class used here (its own typings describe the whole API). */
export interface Cryptoki {
  load(path: string): void;
  close(): void;
  C_Initialize(options?: { flags?: number }): void;
  C_Finalize(): void;
  C_GetInfo(): { manufacturerID: string; libraryDescription: string; libraryVersion: { major: number; minor: number } };
  C_GetSlotList(tokenPresent?: boolean): Handle[];
  C_GetSlotInfo(slot: Handle): { slotDescription: string; manufacturerID: string };
  C_GetTokenInfo(slot: Handle): { label: string; manufacturerID: string; model: string; serialNumber: string; flags: number };
  C_GetMechanismList(slot: Handle): number[];
  C_GetMechanismInfo(slot: Handle, mechanism: number): { flags: number };
  C_OpenSession(slot: Handle, flags: number): Handle;
  C_CloseSession(session: Handle): void;
  C_Login(session: Handle, userType: number, pin?: string): void;
  C_FindObjectsInit(session: Handle, template: Attribute[]): void;
  C_FindObjects(session: Handle, maxObjectCount: number): Handle[];
  C_FindObjectsFinal(session: Handle): void;
  C_GetAttributeValue(session: Handle, object: Handle, template: Attribute[]): { type: number; value: Buffer }[];
  C_SignInit(session: Handle, mechanism: { mechanism: number }, key: Handle): void;
  C_Sign(session: Handle, data: Buffer, out: Buffer): Buffer;
  C_SignFinal(session: Handle, out: Buffer): Buffer;
}

interface Binding {
  PKCS11: new () => Cryptoki;
  /** Base class of every error the binding throws; Pkcs11Error (with a CKR code) extends it. */
  NativeError: abstract new (...args: never[]) => Error;
}

const requireCjs = createRequire(import.meta.url);
let binding: Binding | undefined;

/** Loads pkcs11js on first use. `name` is for the test of the message when it is missing. */
export function loadBinding(name = 'pkcs11js'): Binding {
  if (binding && name === 'pkcs11js') return binding;
  try {
    const loaded = requireCjs(name) as Binding;
    if (name === 'pkcs11js') binding = loaded;
    return loaded;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'MODULE_NOT_FOUND' && e.message.includes(`'${name}'`)) {
      throw new CaError('serverInternal', `a PKCS#11 URI needs the ${name} module, which is not installed; run npm install ${name}`);
    }
    // Installed without its native part (the build failed or install scripts were skipped).
    throw new CaError('serverInternal', `a PKCS#11 URI needs the ${name} module, which does not load (${e.message.split('\n')[0]}); run npm rebuild ${name}`);
  }
}

/** True for an error the binding raised: the token or module answered, not a bug here. */
export function isTokenError(err: unknown): err is Error & { code?: number } {
  return binding !== undefined && err instanceof binding.NativeError;
}

/** The Cryptoki return code's name (CKR_…) of a token error, for messages. */
export function tokenErrorName(err: Error & { code?: number }): string {
  if (/^CKR_[A-Z0-9_]+$/.test(err.message)) return err.message;
  return err.code ? `CKR 0x${err.code.toString(16)}` : `module error: ${err.message.split('\n')[0]}`;
}
