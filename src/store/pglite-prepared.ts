/**
 * Named prepared statements on PGlite, for the hot path's few statements (Database.hot).
 *
 * Why by hand: PGlite's query() has no prepared statements. Each call parses and plans its SQL
 * again and crosses into WebAssembly five times (Parse, Describe, Bind, Describe, Execute, then
 * Sync); for the issuance statement (a CTE of three inserts) that was ~590 µs against ~270-330 µs
 * for Bind/Execute/Sync of a statement parsed once (measured on this machine, 2,000 runs each),
 * and PGlite runs on the service's own thread. This uses PGlite's own wire-protocol serializer,
 * its type serializers and parsers, and its locks, so a statement here cannot run inside another
 * caller's transaction.
 */
import { protocol, types, type PGlite } from '@electric-sql/pglite';
import type { HotOptions } from './database.js';

interface Prepared {
  text: string;
  /** Parameter type OIDs, as Postgres inferred them at Parse. */
  paramTypes: number[];
  /** Result columns: name and type OID (none for a statement without rows). */
  fields: { name: string; dataTypeID: number }[];
}

type Message = { name: string } & Record<string, unknown>;

const BYTEA = types.BYTEA;

export function pglitePrepared(client: PGlite) {
  const serialize = protocol.serialize;
  const prepared = new Map<string, Prepared>();

  /** Parse and Describe once per name, under the caller's lock. */
  async function prepare(name: string, text: string): Promise<Prepared> {
    const known = prepared.get(name);
    if (known) {
      if (known.text !== text) throw new Error(`prepared statement ${name} already holds other SQL`);
      return known;
    }
    const messages = (await client.execProtocolStream(Buffer.concat([serialize.parse({ name, text, types: [] }), serialize.describe({ type: 'S', name }), serialize.sync()]), {
      syncToFs: false,
    })) as unknown as Message[];
    const params = messages.find((m) => m.name === 'parameterDescription') as { dataTypeIDs: number[] } | undefined;
    const row = messages.find((m) => m.name === 'rowDescription') as { fields: { name: string; dataTypeID: number }[] } | undefined;
    const statement = { text, paramTypes: params?.dataTypeIDs ?? [], fields: row?.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID })) ?? [] };
    prepared.set(name, statement);
    return statement;
  }

  /** Around a statement that must be planned for its parameters each time (store/database.ts CUSTOM_PLANS), in the same call. */
  const customPlanOn = serialize.query('set plan_cache_mode = force_custom_plan');
  const customPlanOff = serialize.query('reset plan_cache_mode');

  return async function hot<T>(name: string, text: string, params: unknown[], options?: HotOptions): Promise<T[]> {
    // The transaction lock first (as PGlite's own query() does): outside any open transaction.
    return client._runExclusiveTransaction(() =>
      client._runExclusiveQuery(async () => {
        // As PGlite's own query() does: a closed or closing database says so ("PGlite is closed"),
        // which the store maps to 503, instead of failing inside WebAssembly.
        await client._checkReady();
        const statement = await prepare(name, text);
        const values = params.map((v, i) => {
          if (v === null || v === undefined) return null;
          // bytea goes in binary format as it is (the serializer writes it as hex text).
          if (statement.paramTypes[i] === BYTEA && v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
          const serializer = client.serializers[statement.paramTypes[i]!];
          return serializer ? serializer(v) : String(v);
        });
        const run = [serialize.bind({ statement: name, values }), serialize.execute({}), serialize.sync()];
        const messages = (await client.execProtocolStream(Buffer.concat(options?.customPlan ? [customPlanOn, ...run, customPlanOff] : run), {
          syncToFs: false,
        })) as unknown as Message[];
        await client.syncToFs();
        const rows: T[] = [];
        for (const m of messages) {
          if (m.name !== 'dataRow') continue;
          const fields = m.fields as (string | null)[];
          const row: Record<string, unknown> = {};
          statement.fields.forEach((f, i) => {
            row[f.name] = types.parseType(fields[i] ?? null, f.dataTypeID, client.parsers);
          });
          rows.push(row as T);
        }
        return rows;
      }),
    );
  };
}
