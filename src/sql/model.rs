//! The rendered script: what `sql` hands to `apply` and writes as `apply.sql` / `revert.sql`.
//!
//! `CheckedSql` can only be built inside this module, after the statement was parsed back
//! with sqlparser and matched one of the allowed shapes, so an unchecked string cannot reach
//! the executor by accident.

use crate::states::SqlTable;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// InterSystems IRIS SQL (the default): `$LISTBUILD`, `Ens.Job_Enumerate()`.
    #[default]
    Iris,
    /// PostgreSQL, the test stand-in with the same schema/table/column names.
    Postgres,
}

/// One SQL statement that passed the parse-back check. Only `sql` constructs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedSql(pub(super) String);

impl CheckedSql {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A query that must return a single count; the guard passes when the count is 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guard {
    /// What a refusal means, e.g. `rows rest at removed state S6 of Demo.BP.Thread1`.
    pub description: String,
    pub sql: CheckedSql,
    /// Which check this is (lets `apply` name an opt-out flag for one kind, e.g. a stopped
    /// production instead of disabled items).
    pub kind: GuardKind,
}

/// The kinds of guard a script holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardKind {
    /// `Ens_Config.Item`: an item running the class is enabled.
    HostEnabled,
    /// `Ens.Job_Enumerate()`: a job not `Dead` runs an item of the class.
    LiveJob,
    /// A plan precondition (removed state, renumbered thread class, pending response, …).
    Precondition,
    /// Rows hold a `%HandlerStack` / `%SubroutineStack` the rewrite cannot map: another than
    /// the predicted one at a state the new version nests differently, or a value naming a
    /// state without counterpart (BPM0110).
    StackMismatch,
    /// Revert only: rows rest at states (or name handlers) the revert cannot map back.
    Unmapped,
}

/// One rewrite statement (a single swap-safe UPDATE … CASE … WHERE … IN (…)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rewrite {
    pub table: SqlTable,
    /// The column whose values select the rows (`%NextState`, `_ResponseHandlers`, …).
    pub key_column: String,
    /// Old value → new value for that column; rows with other values are not touched.
    /// Identity pairs (`S4` → `S4`) appear when only a stack of rows at that state changes:
    /// the keys are exactly the statement's `IN (…)` list, so the expected row count is the
    /// sum of the before-census counts of these keys.
    pub mapping: Vec<(String, String)>,
    /// Columns the statement sets (`%NextState`, `%HandlerStack`, …).
    pub columns: Vec<String>,
    /// One line for the script comment: `Demo.BP.Thread1: S5 -> S7, S7 -> S5`.
    pub description: String,
    pub sql: CheckedSql,
    /// The undo capture run just before `sql` when the plan cannot be inverted: `INSERT INTO
    /// "BplMigrate"."Undo" … SELECT` of the rows `sql` changes, before and after (binds the
    /// class and the history entry; see `sql::undo`). Not part of the script files.
    #[serde(skip)]
    pub undo: CheckedSql,
    /// Values of the key column the UPDATE leaves as they are but `undo` records (unchanged)
    /// too: response-handler entries naming a removed handler. The capture copies the rows of
    /// `mapping`'s keys and of these.
    #[serde(skip)]
    pub recorded: Vec<String>,
}

/// `UPDATE <context> SET "Prop" = <literal> WHERE "Prop" IS NULL` for a new context property.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DefaultFill {
    pub table: SqlTable,
    pub column: String,
    /// The rendered SQL literal.
    pub literal: String,
    pub description: String,
    pub sql: CheckedSql,
}

/// Whether a script moves rows from the old version to the new one or back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Apply,
    Revert,
}

/// A census query: `SELECT key, COUNT(*) … GROUP BY key` for one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Census {
    pub table: SqlTable,
    pub key_column: String,
    pub sql: CheckedSql,
}

/// The condition of a thread table's "rows the source version cannot have written" guard, so
/// `apply` can count those rows in the same scan as its census (the guard at `guard` of
/// [`SqlScript::guards`] is the same condition as `SELECT COUNT(*) … WHERE <condition>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForeignRows {
    pub table: SqlTable,
    pub guard: usize,
    /// The WHERE clause, rendered and parse-checked with the guard.
    pub condition: String,
    pub columns: Vec<String>,
    pub functions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqlScript {
    pub dialect: Dialect,
    /// Comment block: class, source hashes, plan id, generator.
    pub header: String,
    pub guards: Vec<Guard>,
    pub census: Vec<Census>,
    pub rewrites: Vec<Rewrite>,
    /// Context defaults, run after `rewrites` in the same transaction (see
    /// [`SqlScript::writes`] for the execution order).
    pub defaults: Vec<DefaultFill>,
    /// One per rewritable thread table.
    pub foreign_rows: Vec<ForeignRows>,
    /// The condition of the context `%ResponseHandlers` guard (rows whose call name and
    /// handler the source version never pairs), so `apply` and `status` can list those pairs
    /// when it fails. `columns` are `element_key` and `_ResponseHandlers`.
    pub handler_rows: Option<ForeignRows>,
    pub direction: Direction,
    pub plan_id: String,
    /// The BPL class, e.g. `Demo.Loan.BankUS`.
    pub class: String,
}

/// The tables a migration locks (`IN EXCLUSIVE MODE`) before it looks at the rows — the ODBC
/// `apply` and the ObjectScript runner alike: every thread table of the plan (rewritten or
/// guarded), its pending-response child table, the response-handler table and every table a
/// statement of `script` writes. Sorted; each once. A path skips those that do not exist.
pub fn tables_to_lock(
    plan: &crate::plan::MigrationPlan,
    script: &SqlScript,
) -> Vec<crate::states::SqlTable> {
    let mut t = std::collections::BTreeSet::new();
    for th in &plan.threads {
        t.insert(th.old_table.clone());
        t.insert(th.old_table.child("PendingResponses"));
    }
    t.insert(plan.response_handler_table.clone());
    t.extend(script.rewrites.iter().map(|r| r.table.clone()));
    t.extend(script.defaults.iter().map(|d| d.table.clone()));
    t.into_iter().collect()
}

/// The tables a migration locks `IN SHARE MODE` with [`tables_to_lock`]: the ones whose rows
/// its host guard reads (`Ens_Config.Item`). SHARE lets readers and other migrations (SHARE
/// too) go on but makes a writer — an item being enabled — wait until the migration's
/// transaction ends, so the guard "every item is disabled" still holds at COMMIT. Live jobs
/// (`Ens.Job_Enumerate()`, a class query on IRIS) cannot be locked: both paths count them
/// again right before COMMIT.
pub fn tables_to_share() -> Vec<crate::states::SqlTable> {
    vec![super::render::config_item_table()]
}
