CREATE TABLE "acme_accounts" (
	"id" text PRIMARY KEY NOT NULL,
	"thumbprint" text NOT NULL,
	"jwk" jsonb NOT NULL,
	"status" text NOT NULL,
	"contact" jsonb NOT NULL,
	"identity" text NOT NULL,
	"issuer" text,
	"token_sans" jsonb,
	"binding_kid" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "acme_accounts_status" CHECK ("acme_accounts"."status" in ('valid', 'deactivated', 'revoked'))
);
--> statement-breakpoint
CREATE TABLE "acme_authorizations" (
	"id" text PRIMARY KEY NOT NULL,
	"account_id" text NOT NULL,
	"identifier_type" text NOT NULL,
	"identifier_value" text NOT NULL,
	"wildcard" boolean NOT NULL,
	"status" text NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	CONSTRAINT "acme_authorizations_status" CHECK ("acme_authorizations"."status" in ('pending', 'valid', 'invalid', 'deactivated', 'revoked'))
);
--> statement-breakpoint
CREATE TABLE "acme_bindings" (
	"kid" text PRIMARY KEY NOT NULL,
	"identity" text NOT NULL,
	"issuer" text,
	"token_sans" jsonb,
	"created_by" text NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"account_id" text
);
--> statement-breakpoint
CREATE TABLE "acme_challenges" (
	"id" text PRIMARY KEY NOT NULL,
	"authorization_id" text NOT NULL,
	"type" text NOT NULL,
	"token" text NOT NULL,
	"status" text NOT NULL,
	"validated_at" timestamp with time zone,
	"processing_until" timestamp with time zone,
	"error" jsonb,
	CONSTRAINT "acme_challenges_status" CHECK ("acme_challenges"."status" in ('pending', 'processing', 'valid', 'invalid'))
);
--> statement-breakpoint
CREATE TABLE "acme_order_authorizations" (
	"order_id" text NOT NULL,
	"authorization_id" text NOT NULL,
	"position" integer NOT NULL,
	CONSTRAINT "acme_order_authorizations_order_id_authorization_id_pk" PRIMARY KEY("order_id","authorization_id")
);
--> statement-breakpoint
CREATE TABLE "acme_orders" (
	"id" text PRIMARY KEY NOT NULL,
	"account_id" text NOT NULL,
	"status" text NOT NULL,
	"identifiers" jsonb NOT NULL,
	"not_before" timestamp with time zone,
	"not_after" timestamp with time zone,
	"expires_at" timestamp with time zone NOT NULL,
	"error" jsonb,
	"certificate_serial" text,
	"created_at" timestamp with time zone NOT NULL,
	"processing_until" timestamp with time zone,
	CONSTRAINT "acme_orders_status" CHECK ("acme_orders"."status" in ('pending', 'processing', 'valid', 'invalid'))
);
--> statement-breakpoint
CREATE TABLE "acme_used_nonces" (
	"nonce" "bytea" PRIMARY KEY NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
ALTER TABLE "acme_authorizations" ADD CONSTRAINT "acme_authorizations_account_id_acme_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."acme_accounts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "acme_challenges" ADD CONSTRAINT "acme_challenges_authorization_id_acme_authorizations_id_fk" FOREIGN KEY ("authorization_id") REFERENCES "public"."acme_authorizations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "acme_order_authorizations" ADD CONSTRAINT "acme_order_authorizations_order_id_acme_orders_id_fk" FOREIGN KEY ("order_id") REFERENCES "public"."acme_orders"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "acme_order_authorizations" ADD CONSTRAINT "acme_order_authorizations_authorization_id_acme_authorizations_id_fk" FOREIGN KEY ("authorization_id") REFERENCES "public"."acme_authorizations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "acme_orders" ADD CONSTRAINT "acme_orders_account_id_acme_accounts_id_fk" FOREIGN KEY ("account_id") REFERENCES "public"."acme_accounts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "acme_accounts_thumbprint_idx" ON "acme_accounts" USING btree ("thumbprint");--> statement-breakpoint
CREATE UNIQUE INDEX "acme_accounts_binding_idx" ON "acme_accounts" USING btree ("binding_kid");--> statement-breakpoint
CREATE INDEX "acme_authorizations_reuse_idx" ON "acme_authorizations" USING btree ("account_id","identifier_type","identifier_value","expires_at");--> statement-breakpoint
CREATE INDEX "acme_authorizations_expires_idx" ON "acme_authorizations" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "acme_bindings_expires_idx" ON "acme_bindings" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "acme_challenges_authz_idx" ON "acme_challenges" USING btree ("authorization_id");--> statement-breakpoint
CREATE INDEX "acme_order_authorizations_authz_idx" ON "acme_order_authorizations" USING btree ("authorization_id");--> statement-breakpoint
CREATE INDEX "acme_orders_account_idx" ON "acme_orders" USING btree ("account_id","created_at");--> statement-breakpoint
CREATE INDEX "acme_orders_expires_idx" ON "acme_orders" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "acme_used_nonces_expires_idx" ON "acme_used_nonces" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "audit_events_acme_order_idx" ON "audit_events" USING btree (("detail" #>> '{acme,order}')) WHERE ("audit_events"."detail" #>> '{acme,order}') is not null;