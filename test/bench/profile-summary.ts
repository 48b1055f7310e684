/**
 * Summarises V8 CPU profiles (.cpuprofile, from `node --cpu-prof`): self time by function and
 * by package or source folder, over every profile in the given files or folders.
 *
 *   npx tsx test/bench/profile-summary.ts DIR_OR_FILE... [--top 30] [--callers writev]
 *
 * --callers NAME: the heaviest call stacks (five frames up) that end in functions named NAME.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' }, callers: { type: 'string' } } });
const files = positionals.flatMap((p) => (statSync(p).isDirectory() ? readdirSync(p).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(p, f)) : [p]));

/** Where a frame's code lives: a package, a folder of ours, or node's internals. */
function area(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const ours = /\/(src|test|db)\/(.*\/)?/.exec(url);
  if (ours) return `${ours[1]}/${ours[2] ?? ''}`;
  if (url.startsWith('node:')) return url;
  return url;
}

const byFunction = new Map<string, number>();
const byArea = new Map<string, number>();
const byStack = new Map<string, number>();
/** Inclusive time: each sample counts once for every distinct function on its stack. */
const inclusive = new Map<string, number>();
let total = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const label = (n: ProfileNode) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/.*\/(node_modules\/)?/, '')}:${n.callFrame.lineNumber + 1}`;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = nodes.get(profile.samples[i]!)!;
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const { functionName, url, lineNumber } = node.callFrame;
    const fn = `${functionName || '(anonymous)'} ${url.replace(/.*\/(node_modules\/)?/, '')}:${lineNumber + 1}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + dt);
    if (values.callers && functionName === values.callers) {
      const frames: string[] = [];
      for (let id: number | undefined = node.id, k = 0; id !== undefined && k < 14; id = parent.get(id), k++) frames.push(label(nodes.get(id)!));
      const key = frames.join(' < ');
      byStack.set(key, (byStack.get(key) ?? 0) + dt);
    }
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) seen.add(label(nodes.get(id)!));
    for (const f of seen) inclusive.set(f, (inclusive.get(f) ?? 0) + dt);
    const a = area(url, functionName);
    byArea.set(a, (byArea.get(a) ?? 0) + dt);
  }
}

const top = Number(values.top);
const show = (title: string, m: Map<string, number>) => {
  console.log(`\n${title}`);
  for (const [k, v] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${((v / total) * 100).toFixed(1).padStart(5)}%  ${(v / 1e6).toFixed(2).padStart(7)} s  ${k}`);
};
console.log(`${files.length} profiles, ${(total / 1e6).toFixed(1)} s sampled`);
show('self time by area', byArea);
show('self time by function', byFunction);
show('inclusive time by function', inclusive);
if (values.callers) show(`stacks ending in ${values.callers}`, byStack);
