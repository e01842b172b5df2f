//! Stage 6 — the only module that touches a database (odbc-api): census, guards, the rewrite
//! in one transaction, verification, history.
//!
//! # `apply`
//! 1. The migration folder is verified (checksum file, `sql::verify_migration_folder`) and
//!    `plan.json` read; the script is rendered for the connected database's dialect and must
//!    belong to the plan.
//! 2. Outside any transaction: every table and column the census and the rewrite use is
//!    probed (a missing one refuses); `BplMigrate.History` is created on the first real apply
//!    (`migrations/0001_history.sql`, embedded). `--dry-run` and `status` never create it.
//! 3. One transaction (autocommit off):
//!    - the **lock**: PostgreSQL `pg_try_advisory_xact_lock(<key of the BPL class>)`, which
//!      never waits and ends with the transaction; IRIS `LOCK TABLE "BplMigrate"."History"
//!      IN EXCLUSIVE MODE WAIT 0`, released by `UNLOCK` after commit/rollback (or when the
//!      connection drops). A held lock refuses ("another apply is running");
//!    - the **history**: a dirty entry for the class, this plan already applied (or, for a
//!      revert, not applied), or rows last migrated to another BPL source than the plan starts
//!      from — each refuses;
//!    - the **hosts**: every `Ens_Config.Item` whose `ClassName` is the class must be disabled
//!      and not in the actor pool (`PoolSize = 0`: stop the production instead); no job of
//!      those items may be `Alive` or `Starting` in `Ens.Job_Enumerate()`;
//!    - the **census** before, the plan's row preconditions against it, and every guard query
//!      of the script; all refusals are collected and reported together (exit 3);
//!    - the **rewrite** statements, each checked against the row count the census predicts;
//!      the census again, compared with the census the plan predicts; any difference rolls
//!      back (exit 4);
//!    - the history row (numbered per class), in the same transaction; then commit (or, for
//!      `--dry-run`, rollback).
//! 4. After commit the rows are read back (rig.md pitfall 1): nothing committed is an error
//!    that says so; anything else than predicted marks a `dirty` history entry.
//!
//! Any error inside the transaction rolls back and stops; a lost connection leaves the
//! server to roll back. Messages never contain the password.
//!
//! The census, guards and rewrite run the same on both dialects. Tested on PostgreSQL (the
//! stand-in) only; on IRIS these are unverified: `LOCK TABLE … WAIT 0` as the lock, `GROUP BY`
//! over the `%List` stack columns in the census, and reading those columns as binary.
//!
//! # `status`
//! The same census, host/job check, history and (with a plan) the plan's preconditions and
//! read-only guard counts — in autocommit, SELECTs only: no lock, no bookkeeping table.

mod census;
mod conn;
mod error;
mod folder;
mod history;
mod impact;
mod info;
mod listcodec;
mod lock;
mod progress;
mod quiet;
mod run;

pub use crate::sql::Direction;
pub use census::{
    census, CensusTargets, Group, HandlerGroup, HandlerKey, LiveCensus, PendingGroup, PendingKey,
    Renaming, Stack, StateMove, ThreadGroup, ThreadKey,
};
pub use conn::{redact_connection_string, Db, Redactor, Value};
pub use error::{ApplyError, DbFailure, ErrorClass, Refusal};
pub use folder::Migration;
pub use history::{history_table, HistoryEntry, MIGRATIONS};
pub use impact::{
    check_target, impact, status_name, Fate, GroupFinding, GroupImpact, PlanImpact, Precheck,
};
pub use info::{
    info, is_migration_folder, migration_dir_mistake, read_history, repair, scan_migrations,
    FolderEntry, HistoryRow, InfoLine, InfoOptions, InfoReport, InfoState, RepairReport,
    Resolution, OUTCOME_RESOLVED,
};
pub use listcodec::{decode_list, encode_list};
pub use progress::{Event, Progress, Silent};
pub use quiet::{HostItem, LiveJob, Quiet};
pub use run::{
    apply, status, ApplyOptions, ApplyReport, CheckResult, GroupMove, PlanStatus, StatementOutcome,
    StatusReport, StatusSubject, DEFAULT_LOCK_TIMEOUT_MS,
};
