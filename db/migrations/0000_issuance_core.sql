CREATE TABLE "certificates" (
	"serial" text PRIMARY KEY NOT NULL,
	"issuer_key_id" text NOT NULL,
	"identity" text NOT NULL,
	"sans" jsonb NOT NULL,
	"dns_names" text[] NOT NULL,
	"not_before" timestamp with time zone NOT NULL,
	"not_after" timestamp with time zone NOT NULL,
	"status" text DEFAULT 'valid' NOT NULL,
	"revoked_at" timestamp with time zone,
	"revocation_reason" text,
	"revoked_by" text,
	"der" "bytea" NOT NULL,
	"fingerprint" text NOT NULL,
	"token_issuer" text,
	"token_jti" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "certificates_fingerprint_unique" UNIQUE("fingerprint"),
	CONSTRAINT "certificates_status_check" CHECK ("certificates"."status" in ('valid', 'revoked')),
	CONSTRAINT "certificates_revocation_check" CHECK (("certificates"."status" = 'revoked') = ("certificates"."revoked_at" is not null and "certificates"."revocation_reason" is not null)),
	CONSTRAINT "certificates_validity_check" CHECK ("certificates"."not_before" < "certificates"."not_after")
);
--> statement-breakpoint
CREATE TABLE "used_tokens" (
	"issuer" text NOT NULL,
	"jti" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"used_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "used_tokens_issuer_jti_pk" PRIMARY KEY("issuer","jti")
);
--> statement-breakpoint
CREATE INDEX "certificates_identity_idx" ON "certificates" USING btree ("identity","not_before");--> statement-breakpoint
CREATE INDEX "certificates_not_after_idx" ON "certificates" USING btree ("not_after");--> statement-breakpoint
CREATE INDEX "certificates_status_not_after_idx" ON "certificates" USING btree ("status","not_after");--> statement-breakpoint
CREATE INDEX "certificates_listing_idx" ON "certificates" USING btree ("not_before" DESC NULLS LAST,"serial" DESC NULLS LAST);--> statement-breakpoint
CREATE INDEX "certificates_dns_names_idx" ON "certificates" USING gin ("dns_names");--> statement-breakpoint
CREATE INDEX "used_tokens_expires_at_idx" ON "used_tokens" USING btree ("expires_at");