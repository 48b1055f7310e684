/**
 * @peculiar/x509, ready to use: its dependency injection needs the reflect-metadata polyfill
 * loaded first, and its crypto provider is Node's native WebCrypto (never @peculiar/webcrypto).
 * Import x509 from here, never from the package directly. This is the one file of src/x509/ that
 * imports @peculiar/x509 and reflect-metadata; the rest of the folder is hand-written DER on
 * node:crypto, so a module that only parses CSRs or DER never loads the ASN.1 object model.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };
