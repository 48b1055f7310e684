-- CRL generation reads every revoked, unexpired certificate's serial, revocation time and
-- reason. A covering partial index lets Postgres answer from the index alone (an index-only
-- scan) instead of visiting each row of the table, which holds the DER and is ten times larger.
-- drizzle's index builder has no INCLUDE, so this index lives here (see db/schema.ts).
CREATE INDEX IF NOT EXISTS "certificates_crl_entries_idx" ON "certificates" USING btree ("not_after") INCLUDE ("serial", "revoked_at", "revocation_reason") WHERE "status" = 'revoked';
