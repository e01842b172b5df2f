//! Typed errors of the write path. Each maps to one exit-code class (`ErrorClass`): the CLI
//! turns them into 2 (input), 3 (refused, nothing changed) or 4 (database failed, rolled back).

use crate::states::SqlTable;
use serde::Serialize;
use std::fmt;

/// Which exit code an error stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The migration folder or the command's input is wrong (exit 2).
    Input,
    /// A guard or precondition refused, or a lock could not be had; nothing was changed (exit 3).
    Refused,
    /// The database failed; nothing was changed (rolled back, or never started) (exit 4).
    Database,
    /// The migration committed (the rows *are* migrated) but checking it afterwards failed (exit 5).
    CommittedUnverified,
    /// The connection was lost during COMMIT: the server either committed all or nothing (exit 6).
    OutcomeUnknown,
}

/// A statement that failed on the server (or the connection that went away under it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DbFailure {
    /// What the executor was doing (`census of Demo_X.Thread1`, `rewrite Demo_X.Thread1`, …).
    pub step: String,
    /// The driver's message, password removed.
    pub message: String,
    pub sqlstate: Option<String>,
    /// The driver's native error code (IRIS: the SQLCODE, e.g. -110 for a lock timeout).
    pub native: Option<i32>,
    pub connection_lost: bool,
}

impl DbFailure {
    /// A statement the `sql` stage refused to build (a name that fails validation): the step
    /// fails before anything reaches the server.
    pub(crate) fn refused_sql(step: &str, e: &crate::sql::SqlError) -> DbFailure {
        DbFailure {
            step: step.to_string(),
            message: e.to_string(),
            sqlstate: None,
            native: None,
            connection_lost: false,
        }
    }

    /// A failure the executor itself detects (no driver diagnostics).
    pub(crate) fn local(step: &str, message: String) -> DbFailure {
        DbFailure {
            step: step.to_string(),
            message,
            sqlstate: None,
            native: None,
            connection_lost: false,
        }
    }
}

impl fmt::Display for DbFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.step, self.message)?;
        if let Some(s) = &self.sqlstate {
            write!(f, " (SQLSTATE {s})")?;
        }
        Ok(())
    }
}

/// One reason a guard refused. Refusals are collected, so a user sees all of them at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Refusal {
    /// A production item running the class is enabled.
    HostEnabled {
        production: String,
        item: String,
    },
    /// A production item running the class has a NULL `Enabled` or `PoolSize`: whether it is
    /// quiet is unknown.
    HostUnknown {
        production: String,
        item: String,
        field: String,
    },
    /// A production item running the class is in the actor pool (`PoolSize = 0`) and the
    /// production runs (`live_jobs` live jobs).
    ActorPool {
        production: String,
        item: String,
        live_jobs: usize,
    },
    /// A job of a host running the class is live (its `State` is not `Dead`; None: NULL).
    LiveJob {
        job: String,
        config_name: String,
        state: Option<String>,
    },
    /// A plan precondition or a guard query of the script found rows.
    Precondition {
        description: String,
        rows: i64,
    },
    /// Rows the plan does not understand (a state the old BPL does not have, or NULL), in
    /// the words `status` uses for them.
    UnknownRows {
        description: String,
        rows: i64,
    },
    /// The plan is blocked by findings draining does not resolve
    /// ([`crate::plan::MigrationPlan::blocked_for_good`]): no write path applies it.
    PlanBlocked {
        plan_id: String,
        reasons: Vec<String>,
    },
    /// The counts found under the locks differ from the ones the operator confirmed (rows
    /// arrived, left or moved between the prompt and the answer).
    ConfirmedCountsChanged {
        differences: Vec<String>,
        /// The confirmed run was a revert (`apply --revert` shows the new counts).
        revert: bool,
    },
    /// The history says this plan was already applied (or, for a revert, is not applied).
    AlreadyApplied {
        plan_id: String,
        seq: i64,
    },
    NotApplied {
        plan_id: String,
    },
    /// The history has a dirty entry for the class: a migration committed but its
    /// verification disagreed. Someone must look before anything else runs.
    DirtyHistory {
        class: String,
        seq: i64,
        plan_id: String,
    },
    /// The database was last migrated to a different BPL source than the plan starts from.
    SourceMismatch {
        class: String,
        expected: String,
        found: String,
        /// A revert: `expected` is the plan's new source, and `later` the plan of the last
        /// committed apply when it is another one (it must be reverted first).
        revert: bool,
        later: Option<String>,
    },
    /// Another apply holds the lock.
    Locked {
        class: String,
    },
    /// A history row holds a value this bplmigrate does not know exactly (`column` = `value`,
    /// where it writes `expected`): it is not guessed (as applied or not), the row is refused.
    UnreadableHistory {
        class: String,
        seq: String,
        column: String,
        value: String,
        expected: String,
    },
    /// Counted again right before COMMIT, the hosts were no longer quiet: an item was enabled
    /// or a job came alive while the apply ran (`found`: the host refusals, in their words).
    QuietLost {
        found: Vec<String>,
        /// `apply`, `dry run` or `revert`.
        run: &'static str,
    },
    /// A statement outside the table locks (reading `Ens_Config.Item`, probing a table, the
    /// history) waited for another session's lock for the whole `--lock-timeout` (`step`).
    WaitTimeout {
        step: String,
        timeout_ms: u64,
        /// The bound is `--lock-timeout` (apply), not the fixed one of status, info, repair.
        option: bool,
    },
    /// A table the plan writes stayed locked by another session for the whole `--lock-timeout`.
    LockTimeout {
        tables: Vec<SqlTable>,
        timeout_ms: u64,
        holders: Vec<String>,
    },
    /// A table the plan reads or writes is missing, or lacks a column.
    MissingTable {
        table: SqlTable,
        detail: String,
        /// The missing columns are context properties only the new BPL has (the plan fills
        /// their default): the new class is not compiled yet, rather than a wrong target.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        new_properties: Vec<String>,
    },
    /// A revert of a non-invertible plan whose apply recorded no undo rows (or lost them).
    NoUndo {
        plan_id: String,
        seq: i64,
        reason: String,
    },
    /// Rows the apply rewrote (and recorded) no longer hold what it wrote.
    UndoChanged {
        table: SqlTable,
        seq: i64,
        changed: i64,
        recorded: i64,
    },
    /// Rows the apply did not rewrite rest where the revert cannot map them back.
    UndoStrangers {
        table: SqlTable,
        seq: i64,
        rows: i64,
        /// Where they rest, each with its rows and why the apply did not keep that state as
        /// it was (`S5 (1 row; old S3, S4 all became it: … ambiguous)`).
        states: Vec<String>,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::HostEnabled { production, item } => write!(
                f,
                "host {item} of production {production} is enabled; disable it \
                 (Ens.Director.EnableConfigItem(\"{item}\", 0)) and retry"
            ),
            Refusal::HostUnknown { production, item, field } => write!(
                f,
                "host {item} of production {production} has no {field} (NULL): whether it runs is unknown; \
                 set {field} in the production definition (Ens_Config.Item) and retry"
            ),
            Refusal::ActorPool { production, item, live_jobs } => write!(
                f,
                "host {item} of production {production} runs in the actor pool (PoolSize = 0), which cannot be \
                 disabled on its own, and the production is running ({}); stop the production \
                 (Ens.Director.StopProduction()) and retry",
                counted(*live_jobs as i64, "live job", "live jobs")
            ),
            Refusal::LiveJob { job, config_name, state } => match state {
                Some(state) => write!(
                    f,
                    "job {job} of host {config_name} is {} (not Dead); wait until it has stopped",
                    shown(state)
                ),
                None => write!(
                    f,
                    "job {job} of host {config_name} has no State (NULL), so it may be running; wait until it \
                     is Dead or gone"
                ),
            },
            Refusal::Precondition { description, rows } => {
                write!(f, "{description} ({})", counted(*rows, "row", "rows"))
            }
            Refusal::UnknownRows { description, .. } => write!(f, "{description}"),
            Refusal::PlanBlocked { plan_id, reasons } => write!(
                f,
                "plan {plan_id} is blocked by {}, which draining does not resolve: it cannot be applied as it \
                 is; {}",
                reasons.join("; "),
                crate::plan::blocked_remedy(reasons)
            ),
            Refusal::ConfirmedCountsChanged {
                differences,
                revert,
            } => write!(
                f,
                "the rows changed after you confirmed their counts ({}; expected: the dry run you confirmed, \
                 found: now, under the locks); run `{}` again to see the new counts and confirm them",
                differences.join("; "),
                if *revert { "apply --revert" } else { "apply" }
            ),
            Refusal::AlreadyApplied { plan_id, seq } => {
                write!(f, "plan {plan_id} was already applied (history entry {seq})")
            }
            Refusal::NotApplied { plan_id } => {
                write!(f, "plan {plan_id} is not applied, so there is nothing to revert")
            }
            Refusal::DirtyHistory { class, seq, plan_id } => write!(
                f,
                "history entry {seq} (plan {plan_id}) of {class} is dirty: a migration committed but its \
                 verification disagreed, so whether its rows are migrated is undecided and every apply and revert \
                 of the class refuses; {}",
                repair_advice(class, *seq)
            ),
            Refusal::SourceMismatch {
                class,
                expected,
                found,
                revert: false,
                ..
            } => write!(
                f,
                "the rows of {class} were last migrated to BPL source {found}, but this plan starts from \
                 {expected}; apply the plans in order"
            ),
            Refusal::SourceMismatch {
                class,
                expected,
                found,
                revert: true,
                later,
            } => match later {
                Some(later) => write!(
                    f,
                    "the rows of {class} were last migrated to BPL source {found} by plan {later}, applied \
                     after this one; reverting this plan needs them at its new source {expected}: revert plan \
                     {later} first"
                ),
                None => write!(
                    f,
                    "the rows of {class} were last migrated to BPL source {found}, but reverting this plan needs \
                     them at its new source {expected}; revert the plans in the reverse order they were applied"
                ),
            },
            Refusal::Locked { class } => {
                write!(f, "another bplmigrate apply of {class} is running; retry when it has finished")
            }
            Refusal::MissingTable {
                table,
                detail,
                new_properties,
            } if new_properties.is_empty() => write!(
                f,
                "the schema is not what the plan expects: table {table} {detail} (is the class compiled \
                 as the plan's old BPL, and --connect pointing at its namespace?)"
            ),
            Refusal::MissingTable {
                table,
                detail,
                new_properties,
            } => write!(
                f,
                "the schema is not what the plan expects: table {table} {detail}: {} {} only the new \
                 BPL has, and this plan fills {} in the rows in flight, so the new class must be \
                 compiled first: deploy it while its items are still disabled, then apply (or is \
                 --connect pointing at another namespace?)",
                new_properties.join(", "),
                if new_properties.len() == 1 {
                    "is a context property"
                } else {
                    "are context properties"
                },
                if new_properties.len() == 1 { "it" } else { "them" }
            ),
            Refusal::NoUndo { plan_id, seq, reason } => write!(
                f,
                "plan {plan_id} cannot be inverted, and history entry {seq} that applied it {reason}: the rows \
                 cannot be put back exactly; restore them from a backup taken before the apply"
            ),
            Refusal::UndoChanged { table, seq, changed, recorded } => write!(
                f,
                "{changed} of the {recorded} rows of {table} that history entry {seq} rewrote changed since \
                 (another state or stack, or deleted): restoring them would overwrite that"
            ),
            Refusal::UndoStrangers { table, seq, rows, states } => {
                write!(
                    f,
                    "{} of {table} {} not rewritten by history entry {seq} and {} at states the apply did not keep as \
                     they were",
                    counted(*rows, "row", "rows"),
                    if *rows == 1 { "was" } else { "were" },
                    if *rows == 1 { "rests" } else { "rest" },
                )?;
                if !states.is_empty() {
                    write!(f, " ({})", states.join("; "))?;
                }
                write!(
                    f,
                    ": they reached them after the apply, and the revert puts back only the rows the apply \
                     rewrote; let these finish first"
                )
            }
            Refusal::UnreadableHistory {
                class,
                seq,
                column,
                value,
                expected,
            } => write!(
                f,
                "history entry {} of {} has {column} {value:?}, which this bplmigrate does not know (it writes \
                 {expected}; written by hand, or by a newer version?): it does not guess whether that plan is \
                 applied; correct the row in {} by hand, then retry",
                shown(seq),
                shown(class),
                crate::sql::history_table()
            ),
            Refusal::QuietLost { found, run } => write!(
                f,
                "the hosts stopped being quiet while the {run} ran (counted again at its end, inside its \
                 transaction): {}; {}; quiesce the production again and retry",
                found.join("; "),
                if *run == "dry run" {
                    "an apply would have been refused the same way"
                } else {
                    "the transaction was rolled back instead of committed"
                }
            ),
            Refusal::WaitTimeout {
                step,
                timeout_ms,
                option,
            } => write!(
                f,
                "timed out after {} s ({}) waiting for another session's lock during {step}: \
                 that session holds a lock on a table this step reads or writes; retry when it has finished",
                *timeout_ms as f64 / 1000.0,
                if *option {
                    "--lock-timeout"
                } else {
                    "status, info and repair wait that long"
                }
            ),
            Refusal::LockTimeout {
                tables,
                timeout_ms,
                holders,
            } => {
                let seconds = *timeout_ms as f64 / 1000.0;
                let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
                write!(
                    f,
                    "could not lock {} within {seconds} s (--lock-timeout)",
                    names.join(", ")
                )?;
                if holders.is_empty() {
                    write!(f, "; another session holds a conflicting lock")
                } else {
                    write!(f, "; held by {}", holders.join("; "))
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The migration folder cannot be used (unreadable, edited, malformed plan).
    #[error("migration folder {dir}: {message}")]
    Folder { dir: String, message: String },
    /// The command was asked for something the plan cannot do (e.g. a revert of a plan
    /// without a reverse script).
    #[error("{0}")]
    Unsupported(String),
    #[error("cannot connect, nothing was changed: {message}")]
    Connect { message: String },
    /// The database is not where the class runs: none of its tables exists, or no production
    /// item runs it (the message names what was looked for). Nothing was changed.
    #[error("wrong target, nothing was changed: {0}")]
    WrongTarget(String),
    #[error("refused, nothing was changed:\n  - {}", join(refusals))]
    Refused { refusals: Vec<Refusal> },
    /// A statement failed. `in_transaction`: it failed inside the apply transaction (which
    /// was then rolled back, see `rolled_back`); otherwise no transaction was open.
    #[error("{}", describe_db(failure, *in_transaction, *rolled_back))]
    Database {
        failure: DbFailure,
        in_transaction: bool,
        rolled_back: bool,
    },
    /// The connection was lost while COMMIT was on its way: the server committed everything
    /// or nothing, and this client cannot tell which.
    #[error("the connection was lost during COMMIT ({failure}); the outcome is unknown: the server either \
             committed the whole migration or none of it. Find out with `bplmigrate status --plan DIR`: \
             plan {plan_id} shows as applied (its history row is written in the same transaction) when it \
             committed, as not applied when it did not; `bplmigrate apply` checks the same before it runs again")]
    OutcomeUnknown { failure: DbFailure, plan_id: String },
    /// The driver reported the commit, but the history row this apply wrote in its
    /// transaction is missing afterwards and counting the rows cannot tell whether the rewrite
    /// committed (a census that looks the same before and after): a dirty entry records it.
    #[error("the driver reported the COMMIT, but the history row of this apply is missing afterwards and the \
             row counts cannot tell whether the rewrite committed: {message}")]
    CommitUndetermined { message: String },
    /// The rows after the rewrite differ from what the plan predicts; rolled back.
    #[error("the rewrite did not produce the predicted rows, rolled back, nothing changed:\n  - {}", mismatches.join("\n  - "))]
    Mismatch { mismatches: Vec<String> },
    /// The driver reported a commit, but reading back shows nothing was committed (rig.md
    /// pitfall 1): the rows are as they were.
    #[error("the driver reported the commit, but nothing was committed: {message}; the rows are as they were, nothing changed")]
    NotCommitted { message: String },
    /// The migration committed — the rows are migrated — but checking it afterwards failed.
    #[error("the migration COMMITTED (the rows are migrated{}), but the check after commit failed: {message}",
        seq.map_or_else(String::new, |s| format!("; history entry {s} says applied")))]
    CommittedUnverified { message: String, seq: Option<i64> },
}

/// What to do about dirty history entry `seq` of `class` — the one procedure `apply`, `info`
/// and the ObjectScript runner name (`bplmigrate repair`, never an edit of the table by hand:
/// `resolved` means "not applied", which is wrong for rows that were migrated).
pub fn repair_advice(class: &str, seq: i64) -> String {
    format!(
        "check the rows, then record what you found: `bplmigrate repair --class {class} --entry {seq} --applied \
         --reason TEXT` when they are as the plan leaves them (the plan then counts as applied; `apply \
         --revert` undoes it by its inverse script, or, for a plan that cannot be inverted, from the undo rows \
         its run wrote to BplMigrate.Undo, and refuses, saying so, when there are none), or `--not-applied` when they are back where it starts (the plan may then be \
         applied again)"
    )
}

/// `1 row`, `3 rows`.
pub(crate) fn counted(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// A value read from the database as a message shows it: as it is when it is a plain name
/// (letters, digits, `_`, `.`, `%`), else quoted with escapes (`"S5 "`, `"a\"b"`), so
/// spaces and control characters are visible.
pub fn shown(v: &str) -> String {
    let plain = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '%' | '-'));
    if plain {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

fn join(refusals: &[Refusal]) -> String {
    refusals
        .iter()
        .map(|r| r.to_string())
        .collect::<Vec<_>>()
        .join("\n  - ")
}

fn describe_db(f: &DbFailure, in_transaction: bool, rolled_back: bool) -> String {
    let tail = if !in_transaction {
        "no transaction was open and nothing had been written; nothing changed"
    } else if f.connection_lost {
        "the connection was lost; the server rolls back an open transaction, nothing changed"
    } else if rolled_back {
        "rolled back, nothing changed"
    } else {
        "the rollback failed too; the server rolls back an unfinished transaction when the connection closes"
    };
    format!("database failed during {f}; {tail}")
}

impl ApplyError {
    pub fn class(&self) -> ErrorClass {
        match self {
            ApplyError::Folder { .. } | ApplyError::Unsupported(_) | ApplyError::WrongTarget(_) => {
                ErrorClass::Input
            }
            ApplyError::Refused { .. } => ErrorClass::Refused,
            ApplyError::Connect { .. }
            | ApplyError::Database { .. }
            | ApplyError::Mismatch { .. }
            | ApplyError::NotCommitted { .. } => ErrorClass::Database,
            ApplyError::CommittedUnverified { .. } => ErrorClass::CommittedUnverified,
            ApplyError::OutcomeUnknown { .. } | ApplyError::CommitUndetermined { .. } => {
                ErrorClass::OutcomeUnknown
            }
        }
    }

    pub fn refusals(&self) -> &[Refusal] {
        match self {
            ApplyError::Refused { refusals } => refusals,
            _ => &[],
        }
    }

    /// A failure outside any transaction (nothing was written).
    pub(crate) fn db(failure: DbFailure) -> ApplyError {
        ApplyError::Database {
            failure,
            in_transaction: false,
            rolled_back: false,
        }
    }
}

impl From<DbFailure> for ApplyError {
    fn from(failure: DbFailure) -> Self {
        ApplyError::db(failure)
    }
}
