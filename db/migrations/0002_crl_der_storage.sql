-- A CRL's DER is mostly random serials: compressing it (TOAST's default for bytea) costs
-- seconds at a million entries and saves little. Store it out of line, uncompressed.
ALTER TABLE "crls" ALTER COLUMN "der" SET STORAGE EXTERNAL;
