-- The fleet view reads each certificate's issuer (a retiring issuer's renewBy closes its windows
-- early) from its index alone, as it reads the rest.
DROP INDEX "certificates_fleet_idx";--> statement-breakpoint
CREATE INDEX "certificates_fleet_idx" ON "certificates" USING btree ("identity" collate "C","not_before" DESC NULLS LAST,"serial" DESC NULLS LAST,"not_after","revoked_at","issuer_key_id");
