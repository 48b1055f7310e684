/**
 * `service-ca ca status`: every configured issuer for a rollover (docs/api.md "Several issuers"):
 * which one is active, its validity and time left, its certificates not yet expired, its CRL's
 * number and age, and whether it can leave the configuration. Admin only.
 */
import type { IssuerInfo } from '../client/index.js';
import { callApi, connect, parseOptions, type Command } from './command.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE } from './context.js';
import { textTable } from './table.js';
import { timeLeft } from './fleet.js';

const USAGE = `Usage: service-ca ca status [options]

Every configured issuer (admin): ACTIVE signs new certificates; a retiring issuer only signs
its CRL until its last certificate expires. REMOVABLE: not active and nothing of it left
unexpired, so it can leave ca.issuers.

Options:
${CONNECTION_USAGE}
  --json                   JSON output
  --help                   this text`;

const OPTIONS = { ...CONNECTION_OPTIONS, json: { type: 'boolean', default: false } } as const;

/** One line per issuer, the subject last. */
export function issuerTable(issuers: IssuerInfo[], now: Date): string {
  const header = ['KEY ID', 'ROLE', 'NOT AFTER', 'LEFT', 'UNEXPIRED', 'REVOKED', 'CRL', 'CRL AGE', 'RENEW BY', 'REMOVABLE', 'SUBJECT'];
  const rows = issuers.map((i) => [
    i.keyId,
    i.active ? 'active' : 'retiring',
    i.notAfter,
    timeLeft(new Date(i.notAfter), now),
    String(i.certificates.unexpired),
    String(i.certificates.revoked),
    i.crl ? `#${i.crl.number}` : 'none yet',
    i.crl ? timeLeft(now, new Date(i.crl.thisUpdate)) : '-',
    i.renewBy ?? '-',
    i.removable ? 'yes' : 'no',
    i.subject,
  ]);
  return textTable(header, rows);
}

export const caCommand: Command = {
  name: 'ca',
  summary: 'the configured issuers: active, retiring, certificates left, CRL age (ca status; admin)',
  async run(argv) {
    if (argv[0] !== 'status') {
      const help = argv[0] === '--help' || argv[0] === '-h';
      (help ? console.log : console.error)(help ? USAGE : `service-ca: ca needs a subcommand: status\n\n${USAGE}`);
      return help ? 0 : 2;
    }
    const v = parseOptions(argv.slice(1), OPTIONS, USAGE);
    if (typeof v === 'number') return v;
    const c = connect(v, USAGE);
    if (typeof c === 'number') return c;
    return callApi(
      () => c.client.issuers(c.token),
      (issuers) => console.log(v.json ? JSON.stringify(issuers, null, 2) : issuerTable(issuers, new Date())),
    );
  },
};
