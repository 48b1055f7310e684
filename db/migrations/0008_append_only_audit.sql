CREATE TABLE "audit_seals" (
	"seq" bigint PRIMARY KEY NOT NULL,
	"first_seq" bigint NOT NULL,
	"last_seq" bigint NOT NULL,
	"from_txid" bigint NOT NULL,
	"from_id" bigint NOT NULL,
	"to_txid" bigint NOT NULL,
	"to_id" bigint NOT NULL,
	"ids" bigint[] NOT NULL,
	"hashes" "bytea" NOT NULL,
	"prev_hash" "bytea" NOT NULL,
	"hash" "bytea" NOT NULL,
	"sealed_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "audit_seals_shape" CHECK ("audit_seals"."first_seq" <= "audit_seals"."last_seq" and "audit_seals"."last_seq" - "audit_seals"."first_seq" + 1 = cardinality("audit_seals"."ids") and ("audit_seals"."from_txid", "audit_seals"."from_id") < ("audit_seals"."to_txid", "audit_seals"."to_id"))
);
--> statement-breakpoint
ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_chain_seq_unique";--> statement-breakpoint
ALTER TABLE "audit_events" DROP CONSTRAINT "audit_events_sealed_check";--> statement-breakpoint
DROP INDEX "audit_events_unsealed_idx";--> statement-breakpoint
-- Written by hand: the column comes with 0 for the rows already there (a constant default needs
-- no table rewrite), and only then takes the inserting transaction's id as its default.
ALTER TABLE "audit_events" ADD COLUMN "txid" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_events" ALTER COLUMN "txid" SET DEFAULT pg_current_xact_id()::text::bigint;--> statement-breakpoint
ALTER TABLE "audit_head" ADD COLUMN "seal" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_head" ADD COLUMN "to_txid" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "audit_head" ADD COLUMN "to_id" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
-- Written by hand: the chain sealed by the per-row columns becomes seals of its own, before those
-- columns go. Sealed rows keep txid 0 and sit at positions (0, id); rows not sealed yet get
-- txid 1, after them and before any transaction's id (3 and up), so the next seal takes them.
-- The old chain is in chain_seq order, which is id order except where a row committed after a
-- higher id was sealed; a seal may end after chain place p only where the first p rows are
-- exactly the rows with id <= the highest id among them (a "cut"), so that each seal is one
-- range of positions. Seals end at the last cut within every 5,000 places (the sealer's batch),
-- which keeps each seal's arrays, and a page of GET /v1/audit, small. Chain positions are the
-- places 1, 2, ... (chain_seq itself wherever the old chain had no gap), and each seal's
-- prev_hash is its first row's prev_hash: a link or row changed before this migration still
-- fails verification.
UPDATE "audit_events" SET "txid" = 1 WHERE "chain_seq" IS NULL;--> statement-breakpoint
INSERT INTO "audit_seals" ("seq", "first_seq", "last_seq", "from_txid", "from_id", "to_txid", "to_id", "ids", "hashes", "prev_hash", "hash")
WITH "sealed" AS (
	SELECT "id", "prev_hash", "hash",
		row_number() OVER (ORDER BY "chain_seq") AS "p",
		max("id") OVER (ORDER BY "chain_seq") AS "upto",
		row_number() OVER (ORDER BY "id") AS "r"
	FROM "audit_events" WHERE "chain_seq" IS NOT NULL
), "cuts" AS (
	SELECT "s".*, "u"."r" = "s"."p" AS "cut" FROM "sealed" "s" JOIN "sealed" "u" ON "u"."id" = "s"."upto"
), "ends" AS (
	SELECT *, coalesce("cut" AND "p" = max(CASE WHEN "cut" THEN "p" END) OVER (PARTITION BY ("p" - 1) / 5000), false) AS "ends" FROM "cuts"
), "chunked" AS (
	SELECT *, coalesce(sum("ends"::int) OVER (ORDER BY "p" ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS "chunk" FROM "ends"
)
SELECT "chunk" + 1, min("p"), max("p"), 0, coalesce(lag(max("upto")) OVER (ORDER BY "chunk"), 0), 0, max("upto"),
	array_agg("id" ORDER BY "p"), string_agg("hash", ''::bytea ORDER BY "p"),
	(array_agg("prev_hash" ORDER BY "p"))[1], (array_agg("hash" ORDER BY "p" DESC))[1]
FROM "chunked" GROUP BY "chunk";--> statement-breakpoint
UPDATE "audit_head" SET "seal" = "last"."seq", "to_txid" = "last"."to_txid", "to_id" = "last"."to_id"
FROM (SELECT "seq", "to_txid", "to_id" FROM "audit_seals" ORDER BY "seq" DESC LIMIT 1) AS "last" WHERE "audit_head"."id" = 1;--> statement-breakpoint
CREATE UNIQUE INDEX "audit_seals_to_idx" ON "audit_seals" USING btree ("to_txid","to_id");--> statement-breakpoint
CREATE INDEX "audit_events_position_idx" ON "audit_events" USING btree ("txid","id");--> statement-breakpoint
ALTER TABLE "audit_events" DROP COLUMN "chain_seq";--> statement-breakpoint
ALTER TABLE "audit_events" DROP COLUMN "prev_hash";--> statement-breakpoint
ALTER TABLE "audit_events" DROP COLUMN "hash";