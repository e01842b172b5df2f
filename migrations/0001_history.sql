-- bplmigrate bookkeeping, migration 0001: the history of applied plans.
-- Embedded in the binary and created by the first `bplmigrate apply` (never by `status`).
-- Valid as IRIS SQL and PostgreSQL (on PostgreSQL the schema is created first).
-- One row per apply or revert that committed:
--   Seq         order of the entries of one class, 1, 2, … (with BplClass the key: two writers
--               that got past the lock could not both insert the same next number)
--   Direction   'apply' or 'revert'
--   Outcome     'applied'; 'dirty' when the check after commit found this apply's history row
--               missing (later runs for the class refuse until `bplmigrate repair`); 'resolved'
--               for a dirty entry repaired as not applied. Any other value is an error on reading.
--   RowCounts   JSON: the census before and after, per table/state/status
CREATE TABLE "BplMigrate"."History" (
    "Seq" INTEGER NOT NULL,
    "PlanId" VARCHAR(64) NOT NULL,
    "PlanSha256" VARCHAR(64) NOT NULL,
    "BplClass" VARCHAR(220) NOT NULL,
    "OldSha256" VARCHAR(64) NOT NULL,
    "NewSha256" VARCHAR(64) NOT NULL,
    "Direction" VARCHAR(8) NOT NULL,
    "AppliedAt" TIMESTAMP NOT NULL,
    "AppliedBy" VARCHAR(220) NOT NULL,
    "ToolVersion" VARCHAR(32) NOT NULL,
    "RowCounts" VARCHAR(30000) NOT NULL,
    "Outcome" VARCHAR(16) NOT NULL,
    "Note" VARCHAR(2000),
    CONSTRAINT "BplMigrateHistoryPK" PRIMARY KEY ("BplClass", "Seq")
)
