ALTER TABLE "certificates" ADD COLUMN "csr_digest" "bytea";--> statement-breakpoint
ALTER TABLE "certificates" ADD COLUMN "renewed_from" text;--> statement-breakpoint
ALTER TABLE "certificates" ADD CONSTRAINT "certificates_renewed_from_fk" FOREIGN KEY ("renewed_from") REFERENCES "certificates"("serial") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "certificates_renewed_from_idx" ON "certificates" USING btree ("renewed_from") WHERE "certificates"."renewed_from" is not null;--> statement-breakpoint
CREATE INDEX "certificates_token_idx" ON "certificates" USING btree ("token_issuer","token_jti") WHERE "certificates"."token_jti" is not null;