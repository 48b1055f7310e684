/**
 * `service-ca acme eab` against a running CA: a binding for the token's identity, one for an
 * identity an admin names, the API's refusal passed on (exit 1, the problem on stderr) for a
 * non-admin naming another identity, and 404 when ACME is off. The binding printed is in the audit
 * trail under the identity it binds.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ADMIN, startTestApp, workload, type TestApp } from '../setup/app.js';
import { runCli } from '../setup/cli-run.js';

describe('service-ca acme eab', () => {
  let app: TestApp;
  let off: TestApp;
  let dir: string;
  const token: Record<'owner' | 'admin', string> = { owner: '', admin: '' };
  before(async () => {
    app = await startTestApp({ config: { acme: { enabled: true } } });
    off = await startTestApp({ issuer: app.issuer });
    dir = mkdtempSync(join(tmpdir(), 'service-ca-acme-cli-'));
    for (const [k, sub] of [['owner', workload('shop', 'web')], ['admin', ADMIN]] as const) {
      token[k] = join(dir, `${k}.jwt`);
      writeFileSync(token[k], await app.issuer.mint({ sub }, { ttl: 3600 }));
    }
  });
  after(async () => {
    await app?.stop();
    await off?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('prints a binding for the token\'s identity, and with --json the API\'s answer', async () => {
    const text = await runCli(['acme', 'eab', '--server', app.api, '--token-file', token.owner]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^identity {2}spiffe:\/\/example\.org\/ns\/shop\/sa\/web\nkid {7}[A-Za-z0-9_-]{22}\nhmacKey {3}[A-Za-z0-9_-]{43}\n/);
    const json = await runCli(['acme', 'eab', '--json', '--server', app.api, '--token-file', token.owner]);
    assert.equal(json.code, 0, json.stderr);
    const binding = JSON.parse(json.stdout) as { kid: string; hmacKey: string; identity: string; expires: string };
    assert.equal(binding.identity, workload('shop', 'web'));
    assert.equal(Buffer.from(binding.hmacKey, 'base64url').length, 32);
    const audit = await fetch(`${app.api}/v1/audit?action=acme.binding`, { headers: { Authorization: `Bearer ${await app.token(ADMIN)}` } });
    const items = ((await audit.json()) as { items: { actor: string; detail: { kid: string; identity: string } }[] }).items;
    assert.deepEqual(
      items.filter((i) => i.detail.kid === binding.kid).map((i) => [i.actor, i.detail.identity]),
      [[workload('shop', 'web'), workload('shop', 'web')]],
      'the binding is recorded in the audit trail, for its identity',
    );
  });

  it('binds an identity an admin names; a non-admin naming one exits 1 with the 403 problem', async () => {
    const named = await runCli(['acme', 'eab', '--json', '--identity', workload('pay', 'api'), '--server', app.api, '--token-file', token.admin]);
    assert.equal(named.code, 0, named.stderr);
    assert.equal((JSON.parse(named.stdout) as { identity: string }).identity, workload('pay', 'api'));
    const refused = await runCli(['acme', 'eab', '--identity', workload('pay', 'api'), '--server', app.api, '--token-file', token.owner]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /forbidden/);
    assert.match(refused.stderr, /only an admin may name the identity/);
  });

  it('exits 1 with notFound when the CA does not serve ACME', async () => {
    const r = await runCli(['acme', 'eab', '--server', off.api, '--token-file', token.owner]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /notFound/);
    assert.match(r.stderr, /ACME is not enabled/);
  });
});
