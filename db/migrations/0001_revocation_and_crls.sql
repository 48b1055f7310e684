CREATE TABLE "crl_state" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"revision" bigint DEFAULT 0 NOT NULL,
	CONSTRAINT "crl_state_single_row" CHECK ("crl_state"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE "crls" (
	"number" bigint PRIMARY KEY NOT NULL,
	"issuer_key_id" text NOT NULL,
	"this_update" timestamp with time zone NOT NULL,
	"next_update" timestamp with time zone NOT NULL,
	"entries" integer NOT NULL,
	"source_revision" bigint NOT NULL,
	"der" "bytea" NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "crls_update_order" CHECK ("crls"."this_update" < "crls"."next_update")
);
--> statement-breakpoint
CREATE INDEX "certificates_revoked_idx" ON "certificates" USING btree ("serial") WHERE "certificates"."status" = 'revoked';--> statement-breakpoint
INSERT INTO "crl_state" ("id", "revision") VALUES (1, 0) ON CONFLICT DO NOTHING;
