CREATE TABLE "fleet_summary" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"computed_at" timestamp with time zone NOT NULL,
	"counts" jsonb,
	CONSTRAINT "fleet_summary_single_row" CHECK ("fleet_summary"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "renewal_info_polls" (
	"serial" text PRIMARY KEY NOT NULL,
	"polled_at" timestamp with time zone NOT NULL,
	"address" text
);
--> statement-breakpoint
CREATE INDEX "audit_events_refusals_idx" ON "audit_events" USING btree ("actor","id") WHERE "audit_events"."outcome" <> 'success';--> statement-breakpoint
CREATE INDEX "certificates_fleet_idx" ON "certificates" USING btree ("identity" collate "C","not_before" DESC NULLS LAST,"serial" DESC NULLS LAST,"not_after","revoked_at");