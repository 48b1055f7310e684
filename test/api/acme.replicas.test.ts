/**
 * ACME across replicas (docs/api.md "ACME"; the brief's rule 5): two instances of the CA on one
 * Postgres database with the same CA key, and a client that talks to either. A nonce handed out
 * by one is accepted by the other and then refused by both (its use is a row, its MAC a key both
 * derive from the CA key); an account made on one signs on the other; an order made on one is
 * read, authorized and finalized on the other. Postgres only: the embedded database serves one
 * process.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AcmeClient, assertAcmeProblem, eabJws, expectStatus, newAcmeKey, requestEab, type Eab } from '../setup/acme-client.js';
import { defaultPolicies, startTestApp, workload, type TestApp } from '../setup/app.js';
import { csrFor } from '../setup/csr.js';
import { createTestDatabase, type TestDatabase } from '../setup/database.js';

const postgres = Boolean(process.env.TEST_DATABASE_URL);

describe('ACME on two replicas of one database', { skip: postgres ? false : 'Postgres only (TEST_DATABASE_URL): PGlite serves one process' }, () => {
  let database: TestDatabase;
  let one: TestApp;
  let two: TestApp;
  const identity = workload('payments', 'api');
  before(async () => {
    database = await createTestDatabase();
    const policies = [{ ...defaultPolicies()[0], acme: { challenges: 'none' } }];
    one = await startTestApp({ database, config: { acme: { enabled: true }, policies } });
    two = await startTestApp({ database, pki: one.pki, issuer: one.issuer, config: { acme: { enabled: true }, policies } });
  });
  after(async () => {
    await one?.stop();
    await two?.stop();
    await database?.drop();
  });

  it('takes a nonce of one replica on the other, once', async () => {
    const client = await AcmeClient.open(`${one.api}/acme/directory`);
    const nonce = (await fetch(`${two.api}/acme/new-nonce`, { method: 'HEAD' })).headers.get('replay-nonce')!;
    const eab = (await (await requestEab(one.api, await one.token(identity))).json()) as Eab;
    const key = await newAcmeKey();
    expectStatus(await client.post(client.directory.newAccount, { termsOfServiceAgreed: true, externalAccountBinding: await eabJws(eab, key.jwk, client.directory.newAccount) }, { key, nonce }), 201, 'newAccount on one with two\'s nonce');
    const again = await AcmeClient.open(`${two.api}/acme/directory`);
    assertAcmeProblem(await again.post(again.directory.newAccount, { onlyReturnExisting: true }, { key, nonce }), 400, 'badNonce', 'the same nonce on two');
    assertAcmeProblem(await client.post(client.directory.newAccount, { onlyReturnExisting: true }, { key, nonce }), 400, 'badNonce', 'the same nonce on one');
  });

  it('signs on one replica with an account made on the other, and finalizes there an order made on the first', async () => {
    const onOne = await AcmeClient.open(`${one.api}/acme/directory`);
    const onTwo = await AcmeClient.open(`${two.api}/acme/directory`);
    const eab = (await (await requestEab(two.api, await two.token(identity))).json()) as Eab;
    const account = await onOne.createAccount(eab);
    const order = await onOne.newOrder(account, ['api.payments.svc']);
    expectStatus(order, 201, 'newOrder on one');
    const orderId = order.location!.slice(order.location!.lastIndexOf('/') + 1);
    // The same account and order, named by two's URLs (the kid's path names the account on any origin).
    const onTwoAccount = { ...account, url: `${two.api}/acme/account/${account.id}` };
    const read = expectStatus(await onTwo.postAsGet(onTwoAccount, `${two.api}/acme/order/${orderId}`), 200, 'the order on two');
    assert.equal(read.status, 'ready', 'challenges none: ready at once');
    const finalized = expectStatus(await onTwo.finalize(onTwoAccount, `${two.api}/acme/order/${orderId}/finalize`, await csrFor({ dns: ['api.payments.svc'] })), 200, 'finalize on two');
    assert.equal(finalized.status, 'valid');
    const serial = (finalized.certificate as string).split('/').pop()!;
    const record = (await (await fetch(`${one.api}/v1/certificates/${serial}`, { headers: { Authorization: `Bearer ${await one.token(identity)}` } })).json()) as { identity: string };
    assert.equal(record.identity, identity, 'one reads the certificate two issued, for the bound identity');
  });
});

