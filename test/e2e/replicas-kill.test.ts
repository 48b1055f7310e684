/**
 * Three `service-ca serve` processes (one worker each) on one Postgres database under concurrent
 * issuance, revocation and CRL regeneration through all three, one of them SIGKILLed mid-load
 * (issue #7). Tokens are one-time (requireJti: true).
 *
 * Asserts: no serial twice, in the database or among the 201 answers, and every 201 recorded;
 * the CRL numbers each replica serves never go back and never stand for two different CRLs (nor
 * differ from the database's CRL of that number); every acknowledged revocation is in the CRL of
 * every surviving replica within crl.maxDelay plus one poll, and stays there; in the end every
 * survivor's CRL holds exactly the database's revocations (the killed replica's included); a
 * token replayed across replicas is refused with 401 by all but the first; the survivors answer
 * 201 and 200 throughout. replicas-crl.test.ts proves CRL propagation between two quiet
 * in-process replicas; this file proves it under load and across a crash.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ADMIN, workload } from '../setup/app.js';
import { sha256, waitForCrl, watchCrls, type CrlObservation, type OpensslCrl, type ReasonName } from '../setup/crl-check.js';
import { createKeyAndCsr } from '../setup/csr.js';
import { testDatabaseUrl, type TestDatabase } from '../setup/database.js';
import { allOf, call, certificateRows, describeOutcome, pemSerial, pemToDer, query, sample, sleep, until, type Outcome } from '../setup/load.js';
import { startFleet, type Fleet, type FleetMember } from '../setup/fleet.js';
import type { TestIssuer } from '../setup/tokens.js';

const NAMES = ['a', 'b', 'c'] as const;
type Name = (typeof NAMES)[number];
const VICTIM: Name = 'c';
const SURVIVORS = NAMES.filter((n) => n !== VICTIM);
const MAX_DELAY_S = 2;
/** The watcher's poll (100 ms) and its openssl reading, on a busy machine. */
const POLL_SLACK_MS = 1000;
const ISSUERS_PER_REPLICA = 2;
const REASONS: ReasonName[] = ['keyCompromise', 'superseded', 'unspecified', 'cessationOfOperation', 'affiliationChanged'];

type Replica = FleetMember<Name>;

type Observation = CrlObservation<Name>;

if (!testDatabaseUrl) {
  it('replicas killed under load need a real Postgres server', (t) => {
    t.skip('TEST_DATABASE_URL is not set: several service-ca processes cannot share one embedded PGlite database, so this test runs only against Postgres');
  });
} else {
  describe('three replicas on one database, one SIGKILLed under load', () => {
    let fleet: Fleet<Name> | undefined;
    let database: TestDatabase;
    let issuer: TestIssuer;
    let chainPem: string;
    let replicas: Map<Name, Replica>;

    before(async () => {
      fleet = await startFleet(NAMES, { tls: 'off', logLevel: 'warn', workers: 1, requireJti: true, crl: { maxDelay: `${MAX_DELAY_S}s` } });
      ({ issuer, database, chainPem, members: replicas } = fleet);
    });
    after(() => fleet?.stop());

    const rep = (n: Name) => replicas.get(n)!;

    const issueWith = async (via: Name, token: string, sa: string, what: string): Promise<Outcome> => {
      const { csrPem } = await createKeyAndCsr('p256', { dns: [`${sa}.kill.svc`] });
      return call(what, `${rep(via).api}/v1/certificates`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ csr: csrPem, ttl: '1h' }),
      });
    };
    const issue = async (via: Name, sa: string) => issueWith(via, await issuer.mint({ sub: workload('kill', sa) }), sa, `issue via ${via} (${sa})`);
    const revoke = async (via: Name, serial: string, reason: ReasonName): Promise<Outcome> =>
      call(`revoke ${serial} via ${via} (${reason})`, `${rep(via).api}/v1/certificates/${serial}/revoke`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${await issuer.mint({ sub: ADMIN })}` },
        body: JSON.stringify({ reason }),
      });

    /** One token sent to several replicas, in order (or all at once); returns the outcomes in the order sent. */
    const replay = async (order: Name[], together: boolean): Promise<Outcome[]> => {
      const token = await issuer.mint({ sub: workload('kill', 'replay') });
      const send = (via: Name) => issueWith(via, token, 'replay', `replayed token via ${via}`);
      if (together) return Promise.all(order.map(send));
      const out: Outcome[] = [];
      for (const via of order) out.push(await send(via));
      return out;
    };

    it('keeps serials unique, CRL numbers monotonic, acknowledged revocations in every survivor\'s CRL, and one-time tokens one-time', async (t) => {
      const watcher = watchCrls([...replicas.values()].map((r) => ({ name: r.name, url: r.pub, alive: () => r.service.running })), chainPem, 100);
      const issued: Outcome[] = [];
      const revocations: Outcome[] = [];
      const toRevoke: { serial: string; reason: ReasonName }[] = [];
      const replays: { when: string; order: Name[]; together: boolean; outcomes: Outcome[] }[] = [];
      let killedAt = Number.POSITIVE_INFINITY;
      let stop = false;
      let issuedCount = 0;

      /** A client bound to one replica; it ends when that replica was killed and stops answering. */
      const clientLoop = (via: Name, work: () => Promise<Outcome | undefined>) => async () => {
        while (!stop) {
          const o = await work();
          if (o === undefined) {
            await sleep(20);
            continue;
          }
          if (o.status === undefined && via === VICTIM && o.ended >= killedAt) return;
        }
      };
      const loops = NAMES.flatMap((via) => [
        ...Array.from({ length: ISSUERS_PER_REPLICA }, (_, k) =>
          clientLoop(via, async () => {
            const o = await issue(via, `${via}${k}`);
            issued.push(o);
            if (o.status === 201) toRevoke.push({ serial: o.body?.serial as string, reason: REASONS[issuedCount++ % REASONS.length]! });
            return o;
          }),
        ),
        clientLoop(via, async () => {
          // Every other certificate is revoked, each once, by whichever replica's revoker takes it.
          const next = toRevoke.shift();
          toRevoke.shift();
          if (!next) return undefined;
          const o = await revoke(via, next.serial, next.reason);
          revocations.push(o);
          await sleep(50);
          return o;
        }),
      ]).map((loop) => loop());

      try {
        await sleep(1500);
        replays.push({ when: 'before the kill', order: ['a', 'b', 'c'], together: false, outcomes: await replay(['a', 'b', 'c'], false) });
        replays.push({ when: 'before the kill', order: ['c', 'b', 'a'], together: true, outcomes: await replay(['c', 'b', 'a'], true) });
        await until('60 issuances and 10 acknowledged revocations before the kill', () => issued.filter((o) => o.status === 201).length >= 60 && revocations.filter((o) => o.status === 200).length >= 10, 30_000);
        killedAt = Date.now();
        await rep(VICTIM).service.kill();
        replays.push({ when: 'after the kill', order: ['b', 'a'], together: false, outcomes: await replay(['b', 'a'], false) });
        replays.push({ when: 'after the kill', order: ['a', 'b'], together: true, outcomes: await replay(['a', 'b'], true) });
        await sleep(4000);
      } finally {
        stop = true;
        await Promise.all(loops);
      }
      const lastAnswer = Math.max(...revocations.map((o) => o.ended));
      // Every survivor's CRL comes to hold every revocation in the database (the victim's too).
      const dbRevoked = new Set((await query<{ serial: string }>(database.url!, `select serial from certificates where status = 'revoked'`)).map((r) => r.serial));
      const finals = new Map<Name, OpensslCrl | string>();
      for (const n of SURVIVORS) {
        try {
          const seen = await waitForCrl(rep(n).pub, chainPem, (c) => [...dbRevoked].every((s) => c.entries.has(s)), { since: lastAnswer, timeoutMs: MAX_DELAY_S * 1000 + POLL_SLACK_MS + 2000, intervalMs: 50 });
          finals.set(n, seen.crl);
        } catch (err) {
          finals.set(n, (err as Error).message);
        }
      }
      await sleep(500);
      await watcher.stop();

      const obs = watcher.observations;
      const ok = issued.filter((o) => o.status === 201);
      const serials = ok.map((o) => o.body?.serial as string);
      const rows = await certificateRows(database.url!, serials);
      const acked = revocations.filter((o) => o.status === 200).map((o) => ({ o, serial: o.what.split(' ')[1]!, via: o.what.split(' ')[3] as Name }));
      const ackedRows = await certificateRows(database.url!, acked.map((a) => a.serial));
      const duplicates = await query<{ serial: string; n: number }>(database.url!, 'select serial, count(*)::int as n from certificates group by serial having count(*) > 1');
      const fingerprints = await query<{ all: number; distinct: number }>(database.url!, 'select count(*)::int as all, count(distinct fingerprint)::int as distinct from certificates');
      const storedCrls = await query<{ number: string; der: Buffer }>(database.url!, 'select number::text, der from crls');
      const crlOf = (o: Observation) => watcher.byDigest.get(o.digest)!;
      const byVictimAfterKill = (o: Outcome) => o.what.includes(`via ${VICTIM}`) && o.ended >= killedAt;

      const delays = acked.flatMap(({ o, serial }) =>
        SURVIVORS.map((n) => (obs.find((x) => x.replica === n && x.at >= o.started && crlOf(x).entries.has(serial))?.at ?? Number.NaN) - o.ended),
      );
      t.diagnostic(
        `${ok.length} issued, ${acked.length} revocations acknowledged, ${dbRevoked.size} revoked in the database, ${watcher.byDigest.size} CRLs, ` +
          `${issued.length + revocations.length - ok.length - acked.length} requests failed with the killed replica; slowest revocation to a survivor's CRL ${Math.max(...delays)} ms`,
      );
      assert.ok(ok.length >= 60 && acked.length >= 10, `load: ${ok.length} issuances and ${acked.length} acknowledged revocations`);
      allOf(
        // Serials.
        () => assert.deepEqual(duplicates, [], 'a serial twice in the database'),
        () => assert.equal(fingerprints[0]!.all, fingerprints[0]!.distinct, 'a certificate twice in the database'),
        () => assert.equal(new Set(serials).size, serials.length, `every 201 has its own serial (${serials.length} answers)`),
        () => {
          const bad = ok.filter((o) => pemSerial(o.body?.certificate as string) !== o.body?.serial || !rows.get(o.body?.serial as string)?.der.equals(pemToDer(o.body?.certificate as string)));
          assert.deepEqual(bad.map(describeOutcome), [], 'every 201 is recorded with its certificate and serial');
        },
        // The survivors answered throughout; the victim only failed by dying.
        () => {
          const bad = issued.filter((o) => o.status !== 201 && !(byVictimAfterKill(o) && o.status === undefined)).map(describeOutcome);
          assert.deepEqual(bad, [], `issuances not answered 201 (other than the killed replica's after the kill): ${sample(bad)}`);
        },
        () => {
          const bad = revocations.filter((o) => o.status !== 200 && !(byVictimAfterKill(o) && o.status === undefined)).map(describeOutcome);
          assert.deepEqual(bad, [], `revocations not answered 200 (other than the killed replica's after the kill): ${sample(bad)}`);
        },
        () => assert.ok(ok.some((o) => o.started > killedAt + 1000 && SURVIVORS.some((n) => o.what.includes(`via ${n}`))), 'the survivors issued after the kill'),
        // One-time tokens.
        () => {
          const bad = replays.flatMap((r) => {
            const statuses = r.outcomes.map((o) => o.status);
            const wins = statuses.filter((s) => s === 201).length;
            const expectFirst = !r.together && statuses[0] !== 201;
            const wrong401 = r.outcomes.filter((o) => o.status === 401 && (o.body?.type !== 'urn:service-ca:error:unauthorized' || !/^Bearer\b.*error="invalid_token"/.test(o.wwwAuthenticate ?? '')));
            return wins !== 1 || expectFirst || statuses.some((s) => s !== 201 && s !== 401) || wrong401.length > 0
              ? [`${r.when}, ${r.together ? 'at once' : 'in turn'} via ${r.order.join(', ')}: ${r.outcomes.map(describeOutcome).join(' | ')}`]
              : [];
          });
          assert.deepEqual(bad, [], 'a token replayed across replicas: 201 from the first, 401 invalid_token from every other');
        },
        // CRL numbers.
        () => {
          const unverified = [...watcher.byDigest.values()].filter((c) => !c.verified || c.number === undefined).map((c) => c.output);
          assert.deepEqual(unverified, [], 'every CRL served verifies and has a number');
        },
        () => {
          const digestOf = new Map<number, string>();
          const numberOf = new Map<string, number>();
          const clashes: string[] = [];
          for (const o of obs) {
            if ((digestOf.get(o.number) ?? o.digest) !== o.digest) clashes.push(`number ${o.number} is two CRLs (seen from ${o.replica})`);
            if ((numberOf.get(o.digest) ?? o.number) !== o.number) clashes.push(`one CRL with numbers ${numberOf.get(o.digest)} and ${o.number}`);
            digestOf.set(o.number, o.digest);
            numberOf.set(o.digest, o.number);
          }
          for (const c of storedCrls) {
            const d = digestOf.get(Number(c.number));
            if (d !== undefined && d !== sha256(c.der)) clashes.push(`number ${c.number} served differs from the database's CRL ${c.number}`);
          }
          assert.deepEqual(clashes, [], 'one number, one CRL');
        },
        () => {
          const back: string[] = [];
          for (const n of NAMES) {
            const seq = obs.filter((o) => o.replica === n);
            for (let i = 1; i < seq.length; i++) {
              const [p, q] = [seq[i - 1]!, seq[i]!];
              if (q.number < p.number || (q.number === p.number && q.digest !== p.digest)) back.push(`${n}: CRL ${p.number} then ${q.number} (${q.at - p.at} ms later)`);
            }
          }
          assert.deepEqual(back, [], 'the CRL numbers each replica serves strictly increase over time');
          for (const n of SURVIVORS) {
            const distinct = new Set(obs.filter((o) => o.replica === n && o.at > killedAt).map((o) => o.number)).size;
            assert.ok(distinct >= 3, `survivor ${n} served ${distinct} CRLs after the kill`);
          }
        },
        // Acknowledged revocations in every survivor's CRL, within maxDelay plus a poll, and for good.
        () => {
          const late: string[] = [];
          for (const { o, serial } of acked) {
            for (const n of SURVIVORS) {
              const seq = obs.filter((x) => x.replica === n && x.at >= o.started);
              const first = seq.findIndex((x) => crlOf(x).entries.has(serial));
              if (first < 0) late.push(`${serial} (acknowledged ${o.what.split(' ')[3]} at ${o.ended}) never in ${n}'s CRL`);
              else if (seq[first]!.at - o.ended > MAX_DELAY_S * 1000 + POLL_SLACK_MS) late.push(`${serial} in ${n}'s CRL ${seq[first]!.at - o.ended} ms after the 200 (CRL ${seq[first]!.number})`);
              const gone = seq.slice(first + 1).find((x) => !crlOf(x).entries.has(serial));
              if (first >= 0 && gone) late.push(`${serial} left ${n}'s CRL again (CRL ${gone.number})`);
            }
          }
          assert.deepEqual(late, [], `acknowledged revocations in every survivor's CRL within ${MAX_DELAY_S} s + ${POLL_SLACK_MS} ms: ${sample(late)}`);
        },
        () => {
          const bad = acked.filter((a) => ackedRows.get(a.serial)?.status !== 'revoked').map((a) => a.serial);
          assert.deepEqual(bad, [], 'acknowledged revocations revoked in the database');
        },
        () => {
          const bad = SURVIVORS.flatMap((n) => {
            const f = finals.get(n)!;
            if (typeof f === 'string') return [`${n}: ${f}`];
            const entries = new Set(f.entries.keys());
            const extra = [...entries].filter((s) => !dbRevoked.has(s));
            return extra.length ? [`${n}: entries not revoked in the database: ${extra.join(', ')}`] : [];
          });
          assert.deepEqual(bad, [], `every survivor's CRL holds exactly the ${dbRevoked.size} revocations in the database`);
        },
        () => {
          for (const n of SURVIVORS) assert.ok(rep(n).service.running, `survivor ${n} is running:\n${rep(n).service.output()}`);
        },
      );
    });
  });
}
