/**
 * The package as users get it: `npm run build` compiles, the built command line runs, and the
 * typed client is importable as `service-ca/client` (package self-reference through "exports").
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { it } from 'node:test';

const ROOT = new URL('../../', import.meta.url).pathname;

function run(command: string, args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

it('builds, and the built CLI and service-ca/client work', async () => {
  const build = await run('npm', ['run', '-s', 'build']);
  assert.equal(build.code, 0, build.out);
  assert.ok(existsSync(`${ROOT}dist/src/client/index.d.ts`), 'the client ships its types');
  assert.ok(existsSync(`${ROOT}dist/db/migrations`), 'the migrations ship with the build');
  const help = await run(process.execPath, ['dist/src/cli/index.js', '--help']);
  assert.equal(help.code, 0, help.out);
  assert.match(help.out, /agent/);
  const client = await run(process.execPath, [
    '--input-type=module',
    '-e',
    "import { ServiceCaClient, holderToken } from 'service-ca/client'; const c = new ServiceCaClient({ baseUrl: 'http://127.0.0.1:9' }); console.log(typeof c.issue, typeof c.renewalInfo, typeof holderToken);",
  ]);
  assert.equal(client.code, 0, client.out);
  assert.equal(client.out.trim(), 'function function function');
});
