//! Stage 5 — render a plan to guarded, parse-checked SQL scripts.
//!
//! - [`render`] / [`render_revert`]: plan → [`SqlScript`] (guards, census, one swap-safe
//!   UPDATE per affected table, context defaults) for [`Dialect::Iris`] or
//!   [`Dialect::Postgres`] (the test stand-in; its helper functions are in
//!   [`POSTGRES_TEST_SUPPORT_DDL`]).
//! - [`predict_after`]: the census a table should show after a rewrite.
//! - [`write_migration_folder`] / [`verify_migration_folder`]: `plan --out DIR` and the
//!   checksum check `apply` runs before it trusts a folder.
//! - [`render_objectscript`]: the same migration as an ObjectScript class.
//!
//! - [`census_query`], [`probe_table`], [`read_rows`], [`job_rows`], [`max_of`],
//!   [`null_count`], [`catalog_table_count`], [`history_insert`]: the statements `apply` runs
//!   besides a script's own (census, existence probes, host/job and history reads, the
//!   history row).
//!
//! Names and values become SQL text only in [`text`]; statements become [`CheckedSql`] only
//! in `check` (parsed back with sqlparser and matched against an allowed shape).

mod check;
mod folder;
mod model;
mod objectscript;
mod pg;
mod queries;
mod render;
pub mod text;
mod undo;

pub use check::{parse, IrisDialect};

/// Whether a pending-response precondition for `call` counts every key: an `@expr` call is
/// sent under the expression's runtime value, which may be any key (spec 5.2).
pub fn pending_any_key(call: &str) -> bool {
    call.starts_with('@')
}

/// Whether a response pending under `key` counts for a precondition on `call`.
pub fn pending_key_matches(call: &str, key: Option<&str>) -> bool {
    if pending_any_key(call) {
        key.is_some()
    } else {
        key == Some(call)
    }
}
pub use folder::{
    check_folder_name, check_scripts, normalized_sha256, rendered_scripts, verify_migration_folder,
    write_migration_folder, write_migration_folder_with, ExtraFiles, FolderCheck, FolderOptions,
    CHECKSUM_FILE,
};
pub use model::*;
pub use objectscript::{
    objectscript_class_name, render_objectscript, render_session_script, runner_stack_checks,
    runner_statements,
};
pub use pg::{list_build, POSTGRES_TEST_SUPPORT_DDL};
pub use queries::{
    catalog_table_count, census_query, flagged_census_query, history_column, history_insert,
    history_table, history_update, job_rows, max_of, null_count, probe_table, read_rows,
    HISTORY_COLUMNS, HISTORY_DDL, ROW_COUNTS_MAX,
};
pub use render::{
    config_item_table, job_enumerate_table, listbuild_function, listsame_function, predict_after,
    render, render_revert, revert_blockers, revert_guards, revert_preconditions, ELEMENT_KEY,
    HANDLER_STACK, ID_COLUMN, NEXT_STATE, RESPONSE_HANDLER_COLUMN, SUBROUTINE_STACK, THREAD_STATUS,
};
pub use undo::{
    undo_changing, undo_ddl, undo_restore, undo_rows, undo_strangers, undo_table, undo_table_name,
    undo_unchanged, UNDO_COLUMNS,
};

use std::path::PathBuf;

/// Everything that can go wrong while rendering, writing or verifying a migration.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("identifier \"{name}\" is refused: {reason}")]
    InvalidIdentifier { name: String, reason: String },
    #[error("literal \"{value}\" is refused: {reason}")]
    InvalidLiteral { value: String, reason: String },
    #[error("default \"{value}\" for context property {property} is refused: {reason}; write a number or a quoted string in the overrides file")]
    InvalidDefault {
        property: String,
        value: String,
        reason: String,
    },
    #[error("the plan cannot be rendered: {reason}")]
    Plan { reason: String },
    #[error("generated statement does not parse ({message}): {sql}")]
    Parse { sql: String, message: String },
    #[error("generated statement refused ({reason}): {sql}")]
    Shape { sql: String, reason: String },
    #[error("the mapping of {class} cannot be inverted by a script ({}); `bplmigrate apply DIR --revert` restores the rows its apply recorded in BplMigrate.Undo instead", reasons.join("; "))]
    NotInvertible { class: String, reasons: Vec<String> },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("{} is not a valid plan: {source}", path.display())]
    PlanJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{file} was edited after the migration folder was written; regenerate the folder with `bplmigrate plan OLD NEW --out DIR --force` (or remove it and run `plan --out` again), then review it")]
    Edited { file: String },
    #[error("{file} was added to the migration folder after it was written; remove it")]
    Added { file: String },
    #[error("{file} is missing from the migration folder; regenerate the folder with `bplmigrate plan OLD NEW --out DIR --force` (or remove it and run `plan --out` again), then review it")]
    Removed { file: String },
    #[error("{file} does not belong to plan.json: {why}; regenerate the folder with `bplmigrate plan --out`")]
    ScriptMismatch { file: String, why: String },
    #[error("line {line} of {file} is not `<sha256>  <file>`")]
    BadChecksumFile { file: String, line: usize },
    #[error("{file} lists no file: the checksums of the migration folder are gone; regenerate the folder with `bplmigrate plan OLD NEW --out DIR --force` (or remove it and run `plan --out` again), then review it")]
    EmptyChecksumFile { file: String },
    #[error("the folder name {name} says {named}, but plan.json is plan {plan_id} of {class}: plan.json was replaced, or edited with its plan_id recomputed, after `plan --out` wrote the folder; regenerate the folder with `bplmigrate plan --out`, or compare it with the BPL sources: `bplmigrate plan --verify DIR OLD NEW`")]
    FolderNameMismatch {
        name: String,
        named: String,
        plan_id: String,
        class: String,
    },
    #[error("{} already holds a different migration for this plan; pass --force to replace it, remove it, or write to another folder", path.display())]
    FolderExists { path: PathBuf },
}

impl SqlError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> SqlError {
        let path = path.into();
        move |source| SqlError::Io {
            action,
            path,
            source,
        }
    }
}
