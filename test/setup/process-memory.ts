/**
 * Searching a live process's memory for byte strings (Linux /proc/PID/maps and /proc/PID/mem):
 * the proof that a secret never entered a process. Every readable mapping is read, anonymous and
 * file-backed, heap and stacks included; a region the kernel will not let us read (a guard page,
 * a special mapping) is counted, not skipped silently.
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

export interface MemoryScan {
  /** Readable bytes searched. */
  bytes: number;
  /** Regions that could not be read. */
  unreadable: number;
  /** For each needle, the addresses where it was found. */
  found: number[][];
}

const CHUNK = 8 * 1024 * 1024;

export function scanProcessMemory(pid: number, needles: Buffer[]): MemoryScan {
  const maps = readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n');
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  const longest = Math.max(...needles.map((n) => n.length));
  const scan: MemoryScan = { bytes: 0, unreadable: 0, found: needles.map(() => []) };
  try {
    for (const line of maps) {
      const [range, perms, , , , path] = line.split(/\s+/);
      if (!perms!.startsWith('r') || path === '[vvar]' || path === '[vsyscall]') continue;
      const [start, end] = range!.split('-').map((h) => Number.parseInt(h, 16)) as [number, number];
      // Chunks overlap by a needle's length, so that one across a boundary is still found.
      for (let at = start; at < end; at += CHUNK) {
        const length = Math.min(CHUNK + longest, end - at);
        const buffer = Buffer.alloc(length);
        let read: number;
        try {
          read = readSync(fd, buffer, 0, length, at);
        } catch {
          scan.unreadable++;
          break;
        }
        scan.bytes += Math.min(read, CHUNK);
        needles.forEach((needle, i) => {
          for (let p = buffer.indexOf(needle); p >= 0 && p < read; p = buffer.indexOf(needle, p + 1)) {
            if (p < CHUNK) scan.found[i]!.push(at + p);
          }
        });
      }
    }
  } finally {
    closeSync(fd);
  }
  return scan;
}
