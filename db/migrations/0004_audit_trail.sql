CREATE TABLE "audit_events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "audit_events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"at" timestamp with time zone NOT NULL,
	"actor" text NOT NULL,
	"action" text NOT NULL,
	"serial" text,
	"outcome" text NOT NULL,
	"detail" jsonb NOT NULL,
	"chain_seq" bigint,
	"prev_hash" "bytea",
	"hash" "bytea",
	CONSTRAINT "audit_events_chain_seq_unique" UNIQUE("chain_seq"),
	CONSTRAINT "audit_events_sealed_check" CHECK (("audit_events"."chain_seq" is null) = ("audit_events"."hash" is null) and ("audit_events"."chain_seq" is null) = ("audit_events"."prev_hash" is null))
);
--> statement-breakpoint
CREATE TABLE "audit_head" (
	"id" integer PRIMARY KEY DEFAULT 1 NOT NULL,
	"seq" bigint NOT NULL,
	"hash" "bytea" NOT NULL,
	CONSTRAINT "audit_head_single_row" CHECK ("audit_head"."id" = 1)
);
--> statement-breakpoint
CREATE INDEX "audit_events_actor_idx" ON "audit_events" USING btree ("actor","id");--> statement-breakpoint
CREATE INDEX "audit_events_serial_idx" ON "audit_events" USING btree ("serial") WHERE "audit_events"."serial" is not null;--> statement-breakpoint
CREATE INDEX "audit_events_unsealed_idx" ON "audit_events" USING btree ("id") WHERE "audit_events"."chain_seq" is null;--> statement-breakpoint
INSERT INTO "audit_head" ("id", "seq", "hash") VALUES (1, 0, decode(repeat('00', 32), 'hex')) ON CONFLICT DO NOTHING;
