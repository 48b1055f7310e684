/**
 * @peculiar/x509, ready to use: its dependency injection needs the reflect-metadata polyfill
 * loaded first, and its crypto provider is Node's native WebCrypto (never @peculiar/webcrypto).
 * Import x509 from here, never from the package directly.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
