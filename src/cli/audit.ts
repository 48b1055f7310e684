/**
 * `service-ca audit verify`: walks the audit hash chain straight from the database named by the
 * service's own configuration (not through the service, which an attacker may control), and
 * reports the first row that was altered, removed or inserted after sealing, or the seals cut
 * from the end. Exit 0: intact; 1: broken; 2: bad usage.
 */
import { verifyChain } from '../audit/chain.js';
import { configPathFrom } from '../config.js';
import { createStore } from '../store/store.js';
import { parseOptions, readConfig, type Command } from './command.js';

const USAGE = `Usage: service-ca audit verify [--config FILE] [--json]

Walks the audit trail's hash chain in the database of the configuration (--config FILE, else
SERVICE_CA_CONFIG) and reports the first row that was altered, removed or inserted after sealing,
and rows removed from the end. Rows appended in the last second or so, or after a transaction
that is still open, are not sealed into the chain yet; they are counted, not checked.

Options:
  --config FILE   the service's YAML configuration
  --json          the verdict as JSON
  --help          this text

Exit status: 0 the chain is intact, 1 it is broken (or the database cannot be read), 2 bad usage.`;

export const auditCommand: Command = {
  name: 'audit',
  summary: 'verify the audit trail\'s hash chain (audit verify)',
  async run(argv) {
    const [sub, ...rest] = argv;
    if (sub === '--help' || sub === '-h') {
      console.log(USAGE);
      return 0;
    }
    if (sub !== 'verify') {
      console.error(`service-ca: audit needs the subcommand verify\n\n${USAGE}`);
      return 2;
    }
    const values = parseOptions(rest, { config: { type: 'string' }, json: { type: 'boolean', default: false } }, USAGE);
    if (typeof values === 'number') return values;
    const path = configPathFrom(values.config ? ['--config', values.config] : []);
    if (!path) {
      console.error(`service-ca: --config FILE or SERVICE_CA_CONFIG is required\n\n${USAGE}`);
      return 2;
    }
    const config = readConfig(path);
    if (config === 1) return 1;
    const store = await createStore({ url: config.database.url, dataDir: config.dataDir, poolSize: 2 });
    try {
      const head = await store.auditHead();
      const verdict = await verifyChain(store.auditChain(head.seal), head, head.unsealed);
      if (values.json) console.log(JSON.stringify(verdict));
      else if (verdict.ok) console.log(`audit chain intact: ${verdict.rows} rows, head #${verdict.headSeq} ${verdict.headHash} (seal ${verdict.seals})${verdict.unsealed ? `; ${verdict.unsealed} rows not sealed yet` : ''}`);
      else console.log(`audit chain BROKEN at row #${verdict.firstBadSeq}: ${verdict.problem} (${verdict.rows} rows verified before it)`);
      return verdict.ok ? 0 : 1;
    } finally {
      await store.close();
    }
  },
};
