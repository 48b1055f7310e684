/**
 * Several `service-ca serve` processes on one fresh Postgres database, with one throwaway CA and
 * identity provider: the set-up the replica tests share. Each member is a child process on its
 * own ports; start resolves once every member answers /readyz and serves the same CA chain.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { createTestDatabase, type TestDatabase } from './database.js';
import { createTestPki } from './pki.js';
import { CLI, TSX_LOADER, cleanEnv, freePort, killAll, spawnService, waitForStatus, type ChildService } from './processes.js';
import { writeServiceConfig, type ServiceConfigOptions } from './service-config.js';
import { createTestIssuer, type TestIssuer } from './tokens.js';

export interface FleetMember<N extends string> {
  name: N;
  service: ChildService;
  /** Base URL of the API listener (plain HTTP). */
  api: string;
  /** Base URL of the public listener. */
  pub: string;
}

export interface Fleet<N extends string> {
  issuer: TestIssuer;
  database: TestDatabase;
  members: Map<N, FleetMember<N>>;
  /** The CA chain every member serves. */
  chainPem: string;
  /** Kills every child process, drops the database and removes the folders. */
  stop(): Promise<void>;
}

export async function startFleet<N extends string>(names: readonly N[], config: Omit<ServiceConfigOptions, 'pki' | 'issuer' | 'database' | 'apiPort' | 'publicPort'>): Promise<Fleet<N>> {
  const [pki, issuer, database] = await Promise.all([createTestPki('p256'), createTestIssuer(), createTestDatabase()]);
  const folders = [pki.dir, dirname(issuer.jwksPath)];
  const members = new Map<N, FleetMember<N>>();
  const stop = async () => {
    await killAll();
    await database.drop();
    folders.forEach((d) => rmSync(d, { recursive: true, force: true }));
  };
  try {
    for (const name of names) {
      const [apiPort, publicPort] = [await freePort(), await freePort()];
      const file = writeServiceConfig({ pki, issuer, database, apiPort, publicPort, ...config });
      folders.push(dirname(file));
      const service = spawnService(process.execPath, ['--import', TSX_LOADER, CLI, 'serve', '--config', file], { cwd: database.dataDir, env: cleanEnv() });
      members.set(name, { name, service, api: `http://127.0.0.1:${apiPort}`, pub: `http://127.0.0.1:${publicPort}` });
    }
    await Promise.all([...members.values()].map((m) => waitForStatus(`${m.pub}/readyz`, 200, m.service, 90_000)));
    const chains = await Promise.all([...members.values()].map(async (m) => (await fetch(`${m.pub}/v1/ca/chain.pem`)).text()));
    for (const chain of chains) assert.equal(chain, chains[0], 'every member serves the same CA chain');
    return { issuer, database, members, chainPem: chains[0]!, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
