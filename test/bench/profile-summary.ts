/**
 * Summarises V8 CPU profiles (.cpuprofile, from `node --cpu-prof`): self time by function and
 * by package or source folder, over every profile in the given files or folders.
 *
 *   npx tsx test/bench/profile-summary.ts DIR_OR_FILE... [--top 30] [--callers writev] [--layers MS]
 *
 * --callers NAME: the heaviest call stacks (five frames up) that end in functions named NAME.
 * --layers MS: the busy samples (not idle, not module loading at start-up) split by the layer of
 * an issuance they belong to (parseCsr or issueLeaf anywhere on the stack, else the nearest
 * frame that names one: LAYERS), as shares and as µs of MS, the server's measured CPU ms per
 * issuance in a run without the profiler.
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

const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '30' }, callers: { type: 'string' }, layers: { type: 'string' } } });
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
const byLayer = new Map<string, number>();

/**
 * The layers of an issuance, tried on each frame from the sampled one up to the root; the first
 * frame that matches names the sample's layer. Node's own crypto, buffer and stream frames match
 * nothing, so they count for the caller that needed them (a signature for the signer, a socket
 * write for whoever wrote).
 */
const LAYERS: [string, (url: string, fn: string) => boolean][] = [
  ['start-up (module loading)', (u, f) => /node_modules\/tsx|esm\/(hooks|worker|utils|loader|translators)|cjs\/loader/.test(u) || f === 'compileSourceTextModule'],
  ['garbage collection', (_, f) => f === '(garbage collector)'],
  ['JWT verification (jose, src/auth)', (u) => u.includes('/src/auth/') || u.includes('node_modules/jose')],
  ['signer, other (src/signer, src/x509)', (u) => /\/src\/(signer|x509)\//.test(u)],
  ['logging (pino)', (u) => /node_modules\/(pino|@pinojs|sonic-boom)/.test(u)],
  ['metrics (prom-client)', (u) => u.includes('node_modules/prom-client')],
  ['validation (zod, request schemas)', (u) => u.includes('node_modules/zod') || u.includes('/src/http/schemas')],
  ['database: driver and batch (pg, src/store)', (u) => /node_modules\/pg|\/src\/store\//.test(u)],
  ['policy: names, validity, issuance (src/policy)', (u) => u.includes('/src/policy/')],
  ['framework (hono, its node adapter, src/http)', (u) => /node_modules\/(hono|@hono)|\/src\/http\//.test(u)],
  ['HTTP parsing and sockets (node:http, node:net)', (u) => /^node:(_http|net|internal\/stream_base_commons|internal\/streams)/.test(u)],
];
const STARTUP = LAYERS[0]![0];
/** Functions that are a layer wherever their module lives: parsing a CSR, signing a leaf (LAYERS otherwise). */
const OPERATIONS = new Map([
  ['parseCsr', 'CSR: parsing, key import, signature check'],
  ['issueLeaf', 'leaf'],
]);
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
    if (functionName !== '(idle)' && functionName !== '(program)') {
      let layer = 'other (event loop, promises, node internals)';
      // The two operations whose code moved between folders are found by name, wherever they live.
      let operation: string | undefined;
      for (let id: number | undefined = node.id; id !== undefined && !operation; id = parent.get(id)) operation = OPERATIONS.get(nodes.get(id)!.callFrame.functionName);
      if (operation === 'leaf') layer = functionName === 'signOneShot' ? 'leaf signature (ECDSA)' : 'leaf encoding: TBS, DER, PEM (signer)';
      else if (operation) layer = operation;
      else search: for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
        const f = nodes.get(id)!.callFrame;
        for (const [name, match] of LAYERS) {
          if (match(f.url, f.functionName)) {
            layer = name;
            break search;
          }
        }
      }
      byLayer.set(layer, (byLayer.get(layer) ?? 0) + dt);
    }
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
if (values.layers) {
  const perIssuance = Number(values.layers) * 1000;
  const busy = [...byLayer].filter(([k]) => k !== STARTUP).reduce((n, [, v]) => n + v, 0);
  console.log(`\nbusy samples by layer (${(busy / 1e6).toFixed(2)} s, start-up excluded), as µs of ${values.layers} ms per issuance`);
  for (const [k, v] of [...byLayer].filter(([k]) => k !== STARTUP).sort((a, b) => b[1] - a[1])) {
    console.log(`${((v / busy) * 100).toFixed(1).padStart(5)}%  ${Math.round((v / busy) * perIssuance).toString().padStart(5)} µs  ${k}`);
  }
}
