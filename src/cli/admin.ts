/** `service-ca status`, `revoke` and `list`: the API's certificate records from the command line. */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CertificateRecord, ServiceCaClient } from '../client/index.js';
import { callApi, collectPages, connect, parseOptions, type Command } from './command.js';
import { CONNECTION_OPTIONS, CONNECTION_USAGE } from './context.js';

const COMMON = `${CONNECTION_USAGE}
  --json                JSON output
  --help                this text

The token is the certificate's owner's identity token, or an admin's.`;

const common = { ...CONNECTION_OPTIONS, json: { type: 'boolean', default: false } } as const;

const line = (r: CertificateRecord) =>
  `${r.serial}  ${r.status.padEnd(7)}  ${r.notAfter}  ${r.identity}  ${[...r.sans.dns, ...r.sans.ip, ...r.sans.uri, ...r.sans.email].join(',')}`;

const STATUS_USAGE = `Usage: service-ca status (--serial SERIAL | --cert FILE) [options]

Shows a certificate's record.

Options:
  --serial SERIAL       the certificate's serial (hex)
  --cert FILE           or the certificate itself (PEM or DER; the first of a chain)
${COMMON}`;

/** The serial of the first certificate in FILE (PEM or DER), as the API writes serials. */
function serialOfFile(file: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch {
    throw new Error(`${file} cannot be read`);
  }
  try {
    return new X509Certificate(bytes).serialNumber.toLowerCase();
  } catch {
    throw new Error(`${file} holds no certificate (PEM or DER)`);
  }
}

export const statusCommand: Command = {
  name: 'status',
  summary: 'show a certificate record',
  async run(argv) {
    const v = parseOptions(argv, { ...common, serial: { type: 'string' }, cert: { type: 'string' } }, STATUS_USAGE);
    if (typeof v === 'number') return v;
    if (Boolean(v.serial) === Boolean(v.cert)) {
      console.error(`service-ca: exactly one of --serial or --cert is required\n\n${STATUS_USAGE}`);
      return 2;
    }
    const c = connect(v, STATUS_USAGE);
    if (typeof c === 'number') return c;
    const serial = v.serial ?? serialOfFile(v.cert!);
    return callApi(
      () => c.client.getCertificate(c.token, serial),
      (r) => console.log(v.json ? JSON.stringify(r, null, 2) : `${line(r)}${r.revokedAt ? `\nrevoked ${r.revokedAt} (${r.revocationReason})` : ''}`),
    );
  },
};

const REVOKE_USAGE = `Usage: service-ca revoke (--serial SERIAL | --identity IDENTITY) --reason REASON [options]

Revokes one certificate (its owner or an admin), or every valid certificate of an identity (admin).
Reasons: unspecified, keyCompromise, caCompromise, affiliationChanged, superseded,
cessationOfOperation, privilegeWithdrawn.

Options:
  --serial SERIAL     the certificate to revoke
  --identity ID       revoke all of this identity's valid certificates (admin)
  --reason REASON     the RFC 5280 reason
${COMMON}`;

export const revokeCommand: Command = {
  name: 'revoke',
  summary: 'revoke a certificate, or every certificate of an identity',
  async run(argv) {
    const v = parseOptions(argv, { ...common, serial: { type: 'string' }, identity: { type: 'string' }, reason: { type: 'string' } }, REVOKE_USAGE);
    if (typeof v === 'number') return v;
    if (!v.reason || Boolean(v.serial) === Boolean(v.identity)) {
      console.error(`service-ca: --reason and exactly one of --serial or --identity are required\n\n${REVOKE_USAGE}`);
      return 2;
    }
    const c = connect(v, REVOKE_USAGE);
    if (typeof c === 'number') return c;
    if (v.serial) {
      return callApi(() => c.client.revoke(c.token, v.serial!, v.reason!), (r) => console.log(v.json ? JSON.stringify(r, null, 2) : `revoked ${r.serial} at ${r.revokedAt} (${r.revocationReason})`));
    }
    return callApi(
      () => c.client.revokeIdentity(c.token, v.identity!, v.reason!),
      (r) => console.log(v.json ? JSON.stringify(r, null, 2) : r.revoked.length ? r.revoked.map((s) => `revoked ${s}`).join('\n') : 'nothing to revoke'),
    );
  },
};

const LIST_USAGE = `Usage: service-ca list [filters] [options]

Lists certificates, newest first (admin). Follows every page unless --limit is given.

Options:
  --identity ID       only this identity
  --status STATUS     valid, revoked or expired
  --dns NAME          only certificates for this DNS name
  --expires-before T  RFC 3339 time (exclusive)
  --limit N           one page of at most N (1-1000)
${COMMON}`;

export const listCommand: Command = {
  name: 'list',
  summary: 'list certificates (admin)',
  async run(argv) {
    const v = parseOptions(
      argv,
      { ...common, identity: { type: 'string' }, status: { type: 'string' }, dns: { type: 'string' }, 'expires-before': { type: 'string' }, limit: { type: 'string' } },
      LIST_USAGE,
    );
    if (typeof v === 'number') return v;
    const c = connect(v, LIST_USAGE);
    if (typeof c === 'number') return c;
    const query = {
      identity: v.identity,
      status: v.status as 'valid' | 'revoked' | 'expired' | undefined,
      dns: v.dns,
      expiresBefore: v['expires-before'],
      limit: v.limit === undefined ? undefined : Number(v.limit),
    };
    return callApi(
      () => collectPages((cursor) => c.client.list(c.token, { ...query, ...(cursor ? { cursor } : {}) } as Parameters<ServiceCaClient['list']>[1]), v.limit !== undefined),
      (items) => console.log(v.json ? JSON.stringify(items, null, 2) : items.map(line).join('\n')),
    );
  },
};
