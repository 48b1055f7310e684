/** Temporary folders a test process made, removed when it exits. */
import { rmSync } from 'node:fs';

const folders = new Set<string>();
process.on('exit', () => {
  for (const f of folders) rmSync(f, { recursive: true, force: true });
});

export function removeAtExit(folder: string): void {
  folders.add(folder);
}
