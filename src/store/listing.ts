/**
 * The admin listing: filters and keyset pagination ordered by notBefore then serial, newest
 * first. A cursor is the last row's (notBefore, serial), so pages never repeat or skip a row
 * while inserts go on (new rows sort before any cursor already handed out).
 */
import { and, arrayContains, desc, eq, gt, lt, lte, or, type SQL } from 'drizzle-orm';
import { certificates } from '../../db/schema.js';
import type { CertificateRecord, CertificateStatus } from '../model.js';
import type { Db } from './database.js';
import { toRecord } from './rows.js';

export interface ListFilter {
  identity?: string | undefined;
  status?: CertificateStatus | undefined;
  dns?: string | undefined;
  expiresBefore?: Date | undefined;
  after?: { notBefore: Date; serial: string } | undefined;
  limit: number;
}

export async function listCertificates(db: Db, filter: ListFilter, now: Date): Promise<CertificateRecord[]> {
  const where: SQL[] = [];
  if (filter.identity !== undefined) where.push(eq(certificates.identity, filter.identity));
  if (filter.status === 'revoked') where.push(eq(certificates.status, 'revoked'));
  if (filter.status === 'valid') where.push(and(eq(certificates.status, 'valid'), gt(certificates.notAfter, now))!);
  if (filter.status === 'expired') where.push(and(eq(certificates.status, 'valid'), lte(certificates.notAfter, now))!);
  if (filter.dns !== undefined) where.push(arrayContains(certificates.dnsNames, [filter.dns.toLowerCase()]));
  if (filter.expiresBefore !== undefined) where.push(lt(certificates.notAfter, filter.expiresBefore));
  if (filter.after) {
    const { notBefore, serial } = filter.after;
    where.push(or(lt(certificates.notBefore, notBefore), and(eq(certificates.notBefore, notBefore), lt(certificates.serial, serial)))!);
  }
  const rows = await db
    .select()
    .from(certificates)
    .where(where.length ? and(...where) : undefined)
    .orderBy(desc(certificates.notBefore), desc(certificates.serial))
    .limit(filter.limit);
  return rows.map(toRecord);
}
