-- bplmigrate bookkeeping, migration 0002: what a non-invertible apply overwrote.
-- Embedded in the binary and created by the first `bplmigrate apply` of a plan whose mapping
-- cannot be inverted (two old states onto one, a state removed by an override, …).
-- `{list}` is the stack column type: bytea on PostgreSQL, VARBINARY on IRIS (unverified).
-- One row per row a rewrite changed, written in the apply's transaction before its UPDATE:
--   BplClass, Seq  the history entry of that apply
--   TableName      the rewritten table, `Schema.Table`
--   RowId          the row's ID, as text
--   OldValue/NewValue                 the key column (`%NextState` or `_ResponseHandlers`)
--   Old/NewHandlerStack, Old/NewSubroutineStack   thread rows' stacks; for a response-handler row
--               Old/NewHandlerStack hold $LISTBUILD(element_key, parent row id), its identity
-- `apply --revert` restores the Old values of exactly these rows, refusing when any row no
-- longer holds its New values.
CREATE TABLE "BplMigrate"."Undo" (
    "BplClass" VARCHAR(220) NOT NULL,
    "Seq" INTEGER NOT NULL,
    "TableName" VARCHAR(256) NOT NULL,
    "RowId" VARCHAR(64) NOT NULL,
    "OldValue" VARCHAR(128),
    "NewValue" VARCHAR(128),
    "OldHandlerStack" {list},
    "NewHandlerStack" {list},
    "OldSubroutineStack" {list},
    "NewSubroutineStack" {list},
    CONSTRAINT "BplMigrateUndoPK" PRIMARY KEY ("BplClass", "Seq", "TableName", "RowId")
)
