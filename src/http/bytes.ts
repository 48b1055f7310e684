/** A view of a Buffer's bytes for a response body, not a copy: a CRL can be tens of MB and is served often. */
export const bytesOf = (b: Buffer) => new Uint8Array(b.buffer as ArrayBuffer, b.byteOffset, b.byteLength);
