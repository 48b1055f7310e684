-- Several issuers (a rollover): each issuer's CRLs are numbered on their own, so the key is the
-- issuer and its number. Postgres named the old single-column primary key crls_pkey.
ALTER TABLE "crls" DROP CONSTRAINT "crls_pkey";--> statement-breakpoint
ALTER TABLE "crls" ADD CONSTRAINT "crls_pkey" PRIMARY KEY("issuer_key_id","number");
