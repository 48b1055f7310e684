-- A CRL lists only its own intermediate's certificates (after a key rollover the table holds
-- two intermediates' rows), so the covering index for CRL entries leads with issuer_key_id.
-- Custom SQL: drizzle's index builder has no INCLUDE (see db/schema.ts and migration 0003).
DROP INDEX IF EXISTS "certificates_crl_entries_idx";--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "certificates_crl_entries_idx" ON "certificates" USING btree ("issuer_key_id", "not_after") INCLUDE ("serial", "revoked_at", "revocation_reason") WHERE "status" = 'revoked';
