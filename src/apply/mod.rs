//! Stage 6 — the only module that touches a database (odbc-api): census, guards, the rewrite
//! in one transaction, verification, history.
//!
//! # `apply`
//! 1. The folder check (`Migration::load`, the same one `plan --verify` runs): checksum file,
//!    `schema_version`, recomputed `plan_id`, source hashes, and `apply.sql` / `revert.sql`
//!    equal to what `plan.json` renders in the dialect `apply.sql`'s header names. The script
//!    run is rendered for the connected database's dialect.
//! 2. Outside any transaction: every table and column the census, the guards, the locks and
//!    the rewrite use is probed (a missing one refuses). On IRIS, whose DDL commits by itself,
//!    a first real apply runs the read-only checks and then creates `BplMigrate.History`
//!    (`migrations/0001_history.sql`); `--dry-run` and `status` never create it.
//! 3. One transaction (autocommit off) — **lock, then look**:
//!    - the **table locks** (`lock.rs`): every thread table of the plan, its pending-response
//!      table, the response-handler table and every written table, `IN EXCLUSIVE MODE`
//!      (writers wait, readers go on). The wait is bounded by `--lock-timeout`, reported with
//!      the holders while it lasts, and a timeout refuses (exit 3). Server-side limits end the
//!      transaction of a vanished client;
//!    - PostgreSQL: `BplMigrate.History` is created here on a first real apply (rolled back
//!      with everything else); the per-class apply lock (PostgreSQL advisory transaction lock;
//!      IRIS `LOCK TABLE "BplMigrate"."History" … WAIT 0`, only SQLCODE -110 means "held");
//!    - the **history**: a dirty entry for the class, this plan already applied (or, for a
//!      revert, not applied), or rows last migrated to another BPL source than the plan starts
//!      from — each refuses;
//!    - the **hosts**: every `Ens_Config.Item` whose `ClassName` is the class must be known
//!      disabled (`Enabled` 0; NULL is unknown and refuses, as does a NULL `PoolSize`); an item
//!      in the actor pool (`PoolSize = 0`) cannot be disabled on its own and passes only when
//!      the production is stopped (no live job at all); no job of those items may be live in
//!      `Ens.Job_Enumerate()` — live is any `State` but exactly `Dead` (NULL included), one
//!      definition for `status`, `apply` and the script's SQL guard (`quiet::is_live`);
//!    - one **census** (stacks grouped only where the plan rewrites them; each thread table's
//!      unknown-rows guard counted in the same scan), the plan's row preconditions against it,
//!      and the script's other guards; all refusals are collected and reported together;
//!    - the **rewrite** statements, each checked against the row count the census predicts
//!      (exact, since nothing else can write the locked tables); a difference rolls back
//!      (exit 4);
//!    - the history row (numbered per class); then COMMIT (or, for `--dry-run`, rollback).
//! 4. After COMMIT the history row is read back (rig.md pitfall 1). A connection lost during
//!    COMMIT is an unknown outcome (exit 6: the history row tells); a failed read-back after
//!    a successful COMMIT is "committed, not verified" (exit 5); a missing history row is
//!    told apart by counting the rows: as before → nothing committed (exit 4), otherwise a
//!    `dirty` entry is written (its failure is reported too).
//!
//! Any error before COMMIT rolls back and stops; a lost connection leaves the server to roll
//! back. Messages never contain the password.
//!
//! The census, guards and rewrite run the same on both dialects. Tested on PostgreSQL (the
//! stand-in) only; on IRIS these are unverified: `LOCK TABLE … IN EXCLUSIVE MODE WAIT n` per
//! table with SQLCODE -110 as the timeout, the `%List` stack columns compared with
//! `$LISTBUILD` values, and reading those columns as binary.
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
mod undo;

pub use crate::sql::Direction;
pub use census::{
    census, CensusTargets, Group, HandlerGroup, HandlerKey, LiveCensus, PendingGroup, PendingKey,
    Renaming, Stack, StateMove, ThreadGroup, ThreadKey,
};
pub use conn::{connection_target, redact_connection_string, Db, Redactor, Value};
pub use error::{repair_advice, shown, ApplyError, DbFailure, ErrorClass, Refusal};
pub use folder::Migration;
pub use history::{
    history_table, BookkeepingTable, HistoryEntry, Outcome, MIGRATIONS, ROW_COUNTS_MAX,
};
pub use impact::{
    check_target, impact, status_name, Fate, GroupFinding, GroupImpact, PlanImpact, Precheck,
};
pub use info::{
    info, is_migration_folder, migration_dir_mistake, repair, scan_migrations, FolderEntry,
    InfoLine, InfoOptions, InfoReport, InfoState, RepairReport, Resolution,
};
pub use listcodec::{decode_list, encode_list};
pub use progress::{Event, Progress, Silent};
pub use quiet::{is_live, HostItem, LiveJob, Quiet};
pub use run::{
    apply, status, ApplyOptions, ApplyReport, CheckResult, Confirmed, GroupMove, PlanState,
    PlanStatus, StatementOutcome, StatusReport, StatusSubject, DEFAULT_LOCK_TIMEOUT_MS,
};
