/**
 * `service-ca fleet`: the fleet view (docs/api.md "Fleet") in a terminal: every identity's state
 * and severity, needing attention first, as a table (severity written out, never shown by colour
 * alone) or JSON; `--summary` for the counts. Admin only.
 */
import type { FleetItem, FleetQuery, FleetSeverity, FleetState, FleetSummary } from '../client/index.js';
import { callApi, collectPages, connect, parseOptions, type Command } from './command.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE } from './context.js';
import { textTable } from './table.js';

const STATES: readonly FleetState[] = ['healthy', 'renewalDue', 'missedRenewal', 'expired', 'revoked'];
const SEVERITIES: readonly FleetSeverity[] = ['critical', 'warning', 'none'];

const USAGE = `Usage: service-ca fleet [filters] [options]

Every identity's state and severity, needing attention first (admin). Follows every page
unless --limit is given.

States: healthy, renewalDue, missedRenewal, expired, revoked. Severities: critical, warning, none.

Options:
  --state STATE            only identities in this state
  --severity SEVERITY      only identities of this severity
  --identity-prefix TEXT   only identities starting with TEXT
  --limit N                one page of at most N (1-1000)
  --summary                the counts by state and by severity instead
${CONNECTION_USAGE}
  --json                   JSON output
  --help                   this text`;

const OPTIONS = {
  ...CONNECTION_OPTIONS,
  json: { type: 'boolean', default: false },
  summary: { type: 'boolean', default: false },
  state: { type: 'string' },
  severity: { type: 'string' },
  'identity-prefix': { type: 'string' },
  limit: { type: 'string' },
} as const;

/** "1d2h", "3h5m", "42s", with a sign for the past: how far `to` lies from `now`. */
export function timeLeft(to: Date, now: Date): string {
  const ms = to.getTime() - now.getTime();
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const text = d > 0 ? `${d}d${h}h` : h > 0 ? `${h}h${m}m` : m > 0 ? `${m}m${s}s` : `${s}s`;
  return ms < 0 ? `-${text}` : text;
}

/** The table: one line per identity, the identity last. */
export function fleetTable(items: FleetItem[], now: Date): string {
  const header = ['SEVERITY', 'STATE', 'NOT AFTER', 'LEFT', 'SERIAL', 'LAST POLL', 'LAST REFUSAL', 'IDENTITY'];
  const rows = items.map((i) => [
    i.severity,
    i.state,
    i.certificate?.notAfter ?? '-',
    i.certificate ? timeLeft(new Date(i.certificate.notAfter), now) : '-',
    i.certificate?.serial ?? '-',
    i.lastPoll ? `${i.lastPoll.at} ${i.lastPoll.address ?? ''}`.trim() : '-',
    i.lastRefusal ? `${i.lastRefusal.code} ${i.lastRefusal.at}` : '-',
    i.identity,
  ]);
  return textTable(header, rows);
}

export function summaryText(s: FleetSummary): string {
  const total = STATES.reduce((n, k) => n + (s.states[k] ?? 0), 0);
  return [
    `identities: ${total}`,
    `states:     ${STATES.map((k) => `${k} ${s.states[k] ?? 0}`).join('  ')}`,
    `severities: ${SEVERITIES.map((k) => `${k} ${s.severities[k] ?? 0}`).join('  ')}`,
  ].join('\n');
}

function bad(message: string): number {
  console.error(`service-ca: ${message}\n\n${USAGE}`);
  return 2;
}

export const fleetCommand: Command = {
  name: 'fleet',
  summary: 'every identity\'s state and severity, needing attention first (admin)',
  async run(argv) {
    const v = parseOptions(argv, OPTIONS, USAGE);
    if (typeof v === 'number') return v;
    if (v.state !== undefined && !(STATES as readonly string[]).includes(v.state)) return bad(`--state must be one of ${STATES.join(', ')}`);
    if (v.severity !== undefined && !(SEVERITIES as readonly string[]).includes(v.severity)) return bad(`--severity must be one of ${SEVERITIES.join(', ')}`);
    if (v.limit !== undefined && !/^\d{1,4}$/.test(v.limit)) return bad('--limit must be a whole number from 1 to 1000');
    if (v.summary && (v.state || v.severity || v['identity-prefix'] || v.limit)) return bad('--summary takes no filter');
    const c = connect(v, USAGE);
    if (typeof c === 'number') return c;
    if (v.summary) {
      return callApi(
        () => c.client.fleetSummary(c.token),
        (summary) => console.log(v.json ? JSON.stringify(summary, null, 2) : summaryText(summary)),
      );
    }
    const query: FleetQuery = {
      ...(v.state ? { state: v.state as FleetState } : {}),
      ...(v.severity ? { severity: v.severity as FleetSeverity } : {}),
      ...(v['identity-prefix'] ? { identityPrefix: v['identity-prefix'] } : {}),
      ...(v.limit !== undefined ? { limit: Number(v.limit) } : {}),
    };
    return callApi(
      () => collectPages((cursor) => c.client.fleet(c.token, { ...query, ...(cursor ? { cursor } : {}) }), v.limit !== undefined),
      (items: FleetItem[]) => console.log(v.json ? JSON.stringify(items, null, 2) : items.length ? fleetTable(items, new Date()) : 'no identity matches'),
    );
  },
};
