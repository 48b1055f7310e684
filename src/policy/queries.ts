/** What the admin read endpoints (the certificate listing, the audit trail) read the same way. */
import { CaError } from '../errors.js';

const malformed = (detail: string) => new CaError('malformed', detail);

/** `limit`: a whole number from 1 to 1000, default 100. */
export function pageLimit(text: string | undefined): number {
  const limit = text === undefined ? 100 : /^\d{1,7}$/.test(text) ? Number(text) : NaN;
  if (!(limit >= 1 && limit <= 1000)) throw malformed('limit must be a whole number from 1 to 1000');
  return limit;
}

/** An RFC 3339 time filter (a four-digit year: what Postgres can compare), or undefined. */
export function queryTime(name: string, text: string | undefined): Date | undefined {
  if (text === undefined) return undefined;
  const d = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(text) || Number.isNaN(d.getTime())) throw malformed(`${name} must be an RFC 3339 time`);
  return d;
}

/** The filters a read used, for its audit row (the cursor is only a position). */
export function usedFilters(query: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(query).filter(([k, v]) => v !== undefined && k !== 'cursor'));
}
