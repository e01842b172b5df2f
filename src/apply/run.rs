//! `status` (read-only) and `apply` (one guarded transaction).

use super::census::{
    census, CensusTargets, LiveCensus, Renaming, HANDLER_COLUMNS, PENDING_COLUMNS, THREAD_COLUMNS,
};
use super::conn::Db;
use super::error::{counted, shown, ApplyError, DbFailure, Refusal};
use super::folder::Migration;
use super::history::{self, HistoryEntry, NewEntry, Outcome};
use super::lock::{self, Attempt};
use super::progress::{Event, Progress};
use super::quiet::{self, Quiet};
use crate::plan::{MigrationPlan, Precondition};
use crate::sql::{
    self, DefaultFill, Dialect, Direction, GuardKind, SqlScript, NEXT_STATE,
    RESPONSE_HANDLER_COLUMN,
};
use crate::states::{SqlTable, StateName};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOptions {
    /// Run everything inside the transaction, then roll back.
    pub dry_run: bool,
    pub direction: Direction,
    /// Recorded in the history (`user@host`); the CLI fills it in.
    pub applied_by: String,
    /// How long to wait, in all, for the exclusive table locks before refusing.
    pub lock_timeout_ms: u64,
    /// What the operator confirmed (the CLI's prompt after a dry run): the apply refuses,
    /// changing nothing, when the census under its locks or a statement's row count differs.
    pub confirmed: Option<Confirmed>,
}

/// The counts a confirmation was given for: the dry run's census and the rows each write
/// statement was to change, in order ([`Confirmed::of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmed {
    pub before: LiveCensus,
    pub statements: Vec<(String, i64)>,
}

impl Confirmed {
    /// The counts a (dry-run) report showed.
    pub fn of(report: &ApplyReport) -> Confirmed {
        let mut before = report.before.clone();
        before.foreign.clear();
        Confirmed {
            before,
            statements: report
                .statements
                .iter()
                .map(|s| {
                    (
                        s.description.clone(),
                        s.rows.or(s.expected_rows).unwrap_or(0),
                    )
                })
                .collect(),
        }
    }

    /// How the counts found under the locks (`before`, and the rows each statement is about
    /// to change) differ from the confirmed ones; empty when they are the same.
    pub(super) fn differences(
        &self,
        before: &LiveCensus,
        statements: &[(String, i64)],
    ) -> Vec<String> {
        let mut now = before.clone();
        now.foreign.clear();
        let mut out = self.before.differences(&now);
        if out.is_empty() && now != self.before {
            out.push("the census differs".into());
        }
        if self.statements.len() != statements.len() {
            out.push(format!(
                "{} write statements were confirmed, {} would run",
                self.statements.len(),
                statements.len()
            ));
        } else {
            for ((what, x), (_, y)) in self.statements.iter().zip(statements) {
                if x != y {
                    out.push(format!(
                        "{what}: expected {}, found {y}",
                        super::error::counted(*x, "row", "rows")
                    ));
                }
            }
        }
        out
    }
}

/// The default `--lock-timeout`: long enough for a short writer to finish, short enough that
/// nobody waits for a forgotten session.
pub const DEFAULT_LOCK_TIMEOUT_MS: u64 = 5000;

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            dry_run: false,
            direction: Direction::Apply,
            applied_by: "unknown".into(),
            lock_timeout_ms: DEFAULT_LOCK_TIMEOUT_MS,
            confirmed: None,
        }
    }
}

/// Rows that move from one state to another (or keep the state and get new stacks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMove {
    /// `thread` (a thread table's rows at one state) or `handler` (context rows naming one
    /// response handler).
    pub kind: String,
    pub table: SqlTable,
    pub from: Option<String>,
    pub to: Option<String>,
    pub status: Option<i64>,
    pub rows: i64,
    /// What happens: `rewrite`, `stacks` (same state, new stacks), `keep`, `blocked`.
    pub action: String,
}

/// One write statement and the rows it changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementOutcome {
    pub description: String,
    pub table: SqlTable,
    pub expected_rows: Option<i64>,
    pub rows: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyReport {
    pub plan_id: String,
    pub class: String,
    pub direction: Direction,
    pub dry_run: bool,
    pub dialect: Dialect,
    pub before: LiveCensus,
    /// The census the rewrite left, read back inside the transaction before commit (equal to
    /// what the plan predicts from `before`, else the apply rolled back).
    pub after: LiveCensus,
    pub moves: Vec<GroupMove>,
    pub statements: Vec<StatementOutcome>,
    pub quiet: Quiet,
    /// The history entry written (None for a dry run).
    pub history_seq: Option<i64>,
    pub notes: Vec<String>,
}

impl ApplyReport {
    /// Rows the write statements changed (thread rows, handler rows, filled defaults), as
    /// the driver counted them; the census prediction where it did not.
    pub fn rows_changed(&self) -> i64 {
        self.statements
            .iter()
            .map(|s| s.rows.or(s.expected_rows).unwrap_or(0))
            .sum()
    }

    /// Thread rows that move to another state or get new stacks.
    pub fn thread_rows_moved(&self) -> i64 {
        self.moves
            .iter()
            .filter(|m| m.kind == "thread" && (m.action == "rewrite" || m.action == "stacks"))
            .map(|m| m.rows)
            .sum()
    }
}

/// A precondition (plan or guard) and whether it holds now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckResult {
    pub description: String,
    pub ok: bool,
    pub rows: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanStatus {
    pub plan_id: String,
    pub direction: Direction,
    /// From the history (`not applied` when there is none).
    pub state: PlanState,
    pub moves: Vec<GroupMove>,
    pub checks: Vec<CheckResult>,
    /// What `apply` would refuse now (empty: it would run).
    pub refusals: Vec<Refusal>,
}

/// Where the history leaves a plan: its last committed entry (resolved entries do not count;
/// see [`Outcome`]), or undecided when a dirty entry of it follows that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PlanState {
    #[serde(rename = "not applied")]
    NotApplied,
    #[serde(rename = "applied")]
    Applied,
    #[serde(rename = "reverted")]
    Reverted,
    /// A dirty entry of this plan follows its last committed one: whether its rows are
    /// migrated is undecided until `bplmigrate repair` records it.
    #[serde(rename = "dirty")]
    Dirty,
}

impl PlanState {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanState::NotApplied => "not applied",
            PlanState::Applied => "applied",
            PlanState::Reverted => "reverted",
            PlanState::Dirty => "dirty: undecided until bplmigrate repair",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub dbms: String,
    pub dialect: Dialect,
    pub class: String,
    pub census: LiveCensus,
    pub quiet: Quiet,
    /// False when `BplMigrate.History` does not exist yet (no apply ever ran here).
    pub history_table: bool,
    pub history: Vec<HistoryEntry>,
    pub plan: Option<PlanStatus>,
}

/// What `status` looks at: a plan, or the tables of a compiled process.
#[derive(Debug, Clone, Copy)]
pub enum StatusSubject<'a> {
    Plan(&'a Migration),
    Process(&'a crate::states::CompiledProcess),
}

/// What [`probe_tables`] says of a table that does not exist (the other answer names the
/// missing columns of a table that does).
pub(super) const ABSENT: &str = "does not exist";

/// The tables of `missing` that do not exist at all (not those lacking a column): only these
/// can make a database the wrong target.
pub(super) fn absent_tables(missing: &BTreeMap<SqlTable, String>) -> BTreeSet<SqlTable> {
    missing
        .iter()
        .filter(|(_, why)| why.as_str() == ABSENT)
        .map(|(t, _)| t.clone())
        .collect()
}

/// The tables and columns the plan's pending-response preconditions read: the child table
/// (parent column and key) and the thread table's ID.
pub(super) fn pending_columns(plan: &MigrationPlan) -> Vec<(SqlTable, Vec<String>)> {
    let mut out = Vec::new();
    for p in &plan.preconditions {
        if let Precondition::NoPendingResponse { table, .. } = p {
            out.push((
                CensusTargets::pending_table(table),
                vec![table.table.clone(), crate::sql::ELEMENT_KEY.to_string()],
            ));
            out.push((table.clone(), vec![crate::sql::ID_COLUMN.to_string()]));
        }
    }
    out
}

/// Probes every table (and the columns the executor uses); returns the missing ones with why.
/// Read-only; run outside a transaction. A probe that timed out waiting for another
/// session's lock fails (the table is there, just locked), it does not make the table missing.
pub(super) fn probe_tables(
    db: &Db,
    targets: &CensusTargets,
    extra: &[(SqlTable, Vec<String>)],
) -> Result<BTreeMap<SqlTable, String>, DbFailure> {
    let runs = |sql: &str| match db.probe(sql) {
        Ok(()) => Ok(true),
        Err(f) if lock::is_lock_timeout(db.dialect(), &f) => Err(f),
        Err(_) => Ok(false),
    };
    let mut wanted: BTreeMap<SqlTable, BTreeSet<String>> = BTreeMap::new();
    for t in &targets.thread_tables {
        wanted
            .entry(t.clone())
            .or_default()
            .extend(THREAD_COLUMNS.iter().map(|c| c.to_string()));
        if targets.counts_pending(t) {
            wanted
                .entry(CensusTargets::pending_table(t))
                .or_default()
                .extend(PENDING_COLUMNS.iter().map(|c| c.to_string()));
        }
    }
    if let Some(h) = &targets.handler_table {
        wanted
            .entry(h.clone())
            .or_default()
            .extend(HANDLER_COLUMNS.iter().map(|c| c.to_string()));
    }
    for (t, cols) in extra {
        wanted
            .entry(t.clone())
            .or_default()
            .extend(cols.iter().cloned());
    }
    let d = db.dialect();
    let mut missing = BTreeMap::new();
    for (t, cols) in wanted {
        match sql::probe_table(d, &t, &[]) {
            // A name the sql stage refuses cannot be probed (nor counted).
            Err(e) => {
                missing.insert(t, e.to_string());
                continue;
            }
            Ok(probe) if !runs(probe.as_str())? => {
                missing.insert(t, ABSENT.to_string());
                continue;
            }
            Ok(_) => {}
        }
        let mut absent: Vec<&str> = Vec::new();
        for c in cols.iter().map(String::as_str) {
            let there = match sql::probe_table(d, &t, &[c]) {
                Ok(probe) => runs(probe.as_str())?,
                Err(_) => false,
            };
            if !there {
                absent.push(c);
            }
        }
        if !absent.is_empty() {
            missing.insert(t, format!("{MISSING_COLUMNS}{}", absent.join(", ")));
        }
    }
    Ok(missing)
}

/// The refusal for a table [`probe_tables`] found missing or short of columns (`why`). When
/// the missing columns are all context properties the new BPL adds (a default fill writes
/// them), the hint says the new class is not compiled yet instead of blaming the old one.
fn missing_table(plan: &MigrationPlan, table: &SqlTable, why: &str) -> Refusal {
    let added = |c: &str| {
        plan.context_properties
            .iter()
            .any(|p| p.change == crate::plan::PropertyChange::Added && p.name == c)
    };
    let new_properties: Vec<String> = match why.strip_prefix(MISSING_COLUMNS) {
        Some(cols) if *table == plan.context_table => {
            let cols: Vec<&str> = cols.split(", ").collect();
            if cols.iter().all(|c| added(c)) {
                cols.into_iter().map(str::to_string).collect()
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    };
    Refusal::MissingTable {
        table: table.clone(),
        detail: why.to_string(),
        new_properties,
    }
}

/// The context columns the plan's default fills write (new properties with a default).
fn default_columns(plan: &MigrationPlan) -> Option<(SqlTable, Vec<String>)> {
    let cols: Vec<String> = plan
        .context_properties
        .iter()
        .filter(|p| p.change == crate::plan::PropertyChange::Added && p.default.is_some())
        .map(|p| p.name.clone())
        .collect();
    (!cols.is_empty()).then(|| (plan.context_table.clone(), cols))
}

/// How [`probe_tables`] begins the reason of a table that lacks columns.
const MISSING_COLUMNS: &str = "has no column ";

/// The tables and columns the script writes (they must exist).
pub(super) fn written_columns(script: &SqlScript) -> Vec<(SqlTable, Vec<String>)> {
    let mut out: Vec<(SqlTable, Vec<String>)> = script
        .rewrites
        .iter()
        .map(|r| {
            let mut cols = r.columns.clone();
            cols.push(r.key_column.clone());
            (r.table.clone(), cols)
        })
        .collect();
    out.extend(
        script
            .defaults
            .iter()
            .map(|d| (d.table.clone(), vec![d.column.clone()])),
    );
    out
}

/// Census-based evaluation of the plan's row preconditions (host and job preconditions are
/// checked by `quiet`).
fn plan_checks(plan: &MigrationPlan, before: &LiveCensus) -> Vec<CheckResult> {
    let mut out = Vec::new();
    for p in &plan.preconditions {
        let with = |base: String, reason: &str| {
            if reason.is_empty() {
                base
            } else {
                format!("{base}: {reason}")
            }
        };
        let (description, rows) = match p {
            Precondition::NoRowsAtState {
                table,
                state,
                reason,
            } => (
                with(format!("no row rests at state {state} of {table}"), reason),
                before.rows_at(table, state),
            ),
            Precondition::NoRowsInTable { table, reason } => (
                with(format!("{table} holds no unfinished row"), reason),
                before.rows_in(table),
            ),
            Precondition::NoPendingResponse {
                table,
                call,
                reason,
                ..
            } => (
                with(
                    format!("no thread of {table} waits on a response to call {call:?}"),
                    reason,
                ),
                before.pending_for(table, call),
            ),
            Precondition::HostDisabled { .. } | Precondition::NoLiveJob { .. } => continue,
        };
        out.push(CheckResult {
            description,
            ok: rows == 0,
            rows,
        });
    }
    out
}

/// Classes whose hosts must be quiet: the plan's class and any named by a precondition.
pub(super) fn quiet_classes(plan: &MigrationPlan) -> Vec<String> {
    let mut c = BTreeSet::new();
    c.insert(plan.old.class.clone());
    c.insert(plan.new.class.clone());
    for p in &plan.preconditions {
        if let Precondition::HostDisabled { class } | Precondition::NoLiveJob { class } = p {
            c.insert(class.clone());
        }
    }
    c.into_iter().collect()
}

pub(super) fn quiet_all(db: &Db, classes: &[String]) -> Result<Quiet, DbFailure> {
    let mut q = Quiet::default();
    for c in classes {
        let one = quiet::check(db, c)?;
        q.items.extend(one.items);
        q.live_jobs.extend(one.live_jobs);
    }
    Ok(q)
}

/// Thread groups and what the renaming does to them (blocked: removed states).
fn moves(
    plan: &MigrationPlan,
    renaming: &Renaming,
    before: &LiveCensus,
    direction: Direction,
) -> Vec<GroupMove> {
    let mut removed: BTreeSet<(SqlTable, String)> = BTreeSet::new();
    let mut moved_tables: BTreeSet<SqlTable> = BTreeSet::new();
    if direction == Direction::Apply {
        for t in &plan.threads {
            if t.new_table.as_ref() != Some(&t.old_table) {
                moved_tables.insert(t.old_table.clone());
            }
            for s in &t.states {
                if s.new.is_none() {
                    removed.insert((t.old_table.clone(), s.old.to_string()));
                }
            }
        }
        // States the new version keeps but a precondition forbids (rows there could still
        // read a stale response-handler entry, `plan::stale_handlers`): drained, not moved.
        for p in &plan.preconditions {
            if let Precondition::NoRowsAtState { table, state, .. } = p {
                removed.insert((table.clone(), state.clone()));
            }
        }
    }
    type Key = (
        SqlTable,
        (u8, u64, String),
        Option<String>,
        Option<String>,
        Option<i64>,
        String,
    );
    let mut acc: BTreeMap<Key, i64> = BTreeMap::new();
    for g in &before.threads {
        let state = g.key.next_state.clone();
        let mv = renaming
            .states
            .get(&g.key.table)
            .and_then(|m| state.as_ref().and_then(|s| m.get(s)));
        let forbidden = state
            .as_ref()
            .is_some_and(|s| removed.contains(&(g.key.table.clone(), s.clone())));
        let (to, action) = match mv {
            _ if forbidden => (state.clone(), "blocked"),
            Some(mv) if Some(&mv.to) != state.as_ref() => (Some(mv.to.clone()), "rewrite"),
            Some(_) => (state.clone(), "stacks"),
            None => {
                let blocked = moved_tables.contains(&g.key.table)
                    || state
                        .as_ref()
                        .is_some_and(|s| removed.contains(&(g.key.table.clone(), s.clone())));
                (state.clone(), if blocked { "blocked" } else { "keep" })
            }
        };
        let order = super::census::state_order(state.as_deref());
        *acc.entry((
            g.key.table.clone(),
            order,
            state,
            to,
            g.key.status,
            action.to_string(),
        ))
        .or_default() += g.rows;
    }
    let mut out: Vec<GroupMove> = acc
        .into_iter()
        .map(|((table, _, from, to, status, action), rows)| GroupMove {
            kind: "thread".into(),
            table,
            from,
            to,
            status,
            rows,
            action,
        })
        .collect();
    // Context rows naming a response handler (no status: they are not threads).
    for g in &before.handlers {
        let renamed = renaming
            .handlers
            .get(&g.key.table)
            .and_then(|m| g.key.handler.as_ref().and_then(|h| m.get(h)));
        out.push(GroupMove {
            kind: "handler".into(),
            table: g.key.table.clone(),
            from: g.key.handler.clone(),
            to: renamed.cloned().or_else(|| g.key.handler.clone()),
            status: None,
            rows: g.rows,
            action: if renamed.is_some() { "rewrite" } else { "keep" }.to_string(),
        });
    }
    out
}

/// Whether `entries` hold a dirty entry of `plan` after entry `since` (None: any).
fn dirty_after(entries: &[HistoryEntry], plan: &MigrationPlan, since: Option<i64>) -> bool {
    entries.iter().any(|e| {
        e.outcome == Outcome::Dirty && e.plan_id == plan.plan_id && since.is_none_or(|s| e.seq > s)
    })
}

/// A guard of the forward script as the condition that must hold (its description names the
/// rows that break it): what `status` lists, `ok` or `FAIL`, with the live count.
fn guard_requirement(
    plan: &MigrationPlan,
    g: &crate::sql::Guard,
    foreign_table: Option<&SqlTable>,
    handler_pairs: bool,
) -> String {
    let old = &plan.old.class;
    match (g.kind, foreign_table) {
        (GuardKind::Unmapped, Some(t)) => {
            let class = plan
                .threads
                .iter()
                .find(|th| &th.old_table == t)
                .map_or_else(|| t.to_string(), |th| th.old_class.clone());
            format!(
                "every row of {class} rests at a state the old {old} has (none NULL) and holds a \
                 %HandlerStack / %SubroutineStack value the plan can map"
            )
        }
        (GuardKind::Unmapped, None) if handler_pairs => {
            let runtime: Vec<&str> = plan
                .response_handlers
                .iter()
                .filter(|h| h.call.starts_with('@'))
                .map(|h| h.old.as_str())
                .collect();
            let any_key = match runtime.as_slice() {
                [] => String::new(),
                [one] => format!("; {one}, of a call named at runtime (@…), under any name"),
                many => format!(
                    "; {}, of calls named at runtime (@…), under any name",
                    many.join(", ")
                ),
            };
            format!(
                "every context row pairs a call name with the response handler the old {old} \
                 registers for that call (none NULL){any_key}"
            )
        }
        _ => format!("no row found where {}", g.description),
    }
}

/// Where the history leaves this plan, plus the refusals it gives for `direction`.
pub(super) fn history_checks(
    plan: &MigrationPlan,
    entries: &[HistoryEntry],
    direction: Direction,
) -> (PlanState, Vec<Refusal>) {
    let mut refusals = Vec::new();
    for e in entries {
        if e.outcome == Outcome::Dirty {
            refusals.push(Refusal::DirtyHistory {
                class: e.class.clone(),
                seq: e.seq,
                plan_id: e.plan_id.clone(),
            });
        }
    }
    let committed: Vec<&HistoryEntry> = entries.iter().filter(|e| e.committed()).collect();
    let last_of_plan = committed.iter().rev().find(|e| e.plan_id == plan.plan_id);
    let state = match last_of_plan {
        _ if dirty_after(entries, plan, last_of_plan.map(|e| e.seq)) => PlanState::Dirty,
        Some(e) if e.direction == Direction::Apply => PlanState::Applied,
        Some(_) => PlanState::Reverted,
        None => PlanState::NotApplied,
    };
    match (direction, last_of_plan) {
        (Direction::Apply, Some(e)) if e.direction == Direction::Apply => {
            refusals.push(Refusal::AlreadyApplied {
                plan_id: plan.plan_id.clone(),
                seq: e.seq,
            })
        }
        // A dirty entry of this plan after its last committed one: whether it is applied is
        // undecided (the rows may well be migrated), so "not applied" would be false; the
        // dirty refusal says what to do (`repair`, then revert when it was applied).
        (Direction::Revert, _) if dirty_after(entries, plan, last_of_plan.map(|e| e.seq)) => {}
        (Direction::Revert, None) => refusals.push(Refusal::NotApplied {
            plan_id: plan.plan_id.clone(),
        }),
        (Direction::Revert, Some(e)) if e.direction != Direction::Apply => {
            refusals.push(Refusal::NotApplied {
                plan_id: plan.plan_id.clone(),
            })
        }
        _ => {}
    }
    // The chain: the source the rows were last migrated to must be where this plan starts.
    if let Some(last) = committed.last() {
        let current = if last.direction == Direction::Apply {
            &last.new_sha256
        } else {
            &last.old_sha256
        };
        let expected = match direction {
            Direction::Apply => &plan.old.sha256,
            Direction::Revert => &plan.new.sha256,
        };
        // Undecided (a dirty entry of this plan): the chain is not what the dirty refusal is about.
        let already = matches!(
            refusals.last(),
            Some(Refusal::AlreadyApplied { .. } | Refusal::NotApplied { .. })
        ) || dirty_after(entries, plan, last_of_plan.map(|e| e.seq));
        if current != expected && !already {
            let revert = direction == Direction::Revert;
            let later =
                (revert && last.direction == Direction::Apply && last.plan_id != plan.plan_id)
                    .then(|| last.plan_id.clone());
            refusals.push(Refusal::SourceMismatch {
                class: plan.old.class.clone(),
                expected: expected.clone(),
                found: current.clone(),
                revert,
                later,
            });
        }
    }
    (state, refusals)
}

/// Read-only census of a plan's or a process's tables, with what a plan would do and which
/// of its preconditions fail. Never writes: no bookkeeping table, no lock.
pub fn status(
    db: &Db,
    subject: StatusSubject<'_>,
    progress: &dyn Progress,
) -> Result<StatusReport, ApplyError> {
    within_lock_timeout(db, DEFAULT_LOCK_TIMEOUT_MS, false, |db| {
        status_bounded(db, subject, progress)
    })
}

fn status_bounded(
    db: &Db,
    subject: StatusSubject<'_>,
    progress: &dyn Progress,
) -> Result<StatusReport, ApplyError> {
    let (class, targets, plan) = match subject {
        StatusSubject::Plan(m) => (
            m.plan.old.class.clone(),
            CensusTargets::for_plan(&m.plan),
            Some(m),
        ),
        StatusSubject::Process(p) => (p.class.clone(), CensusTargets::for_process(p), None),
    };
    progress.event(&Event::Step("checking tables"));
    // The columns the plan's guards read and its default fills write: a missing one is a
    // refusal `apply` gives (before it locks anything), so `status` gives it too.
    let extra: Vec<(SqlTable, Vec<String>)> = plan
        .map(|m| {
            let mut v = pending_columns(&m.plan);
            v.extend(default_columns(&m.plan));
            v
        })
        .unwrap_or_default();
    let probed = probe_tables(db, &targets, &extra)?;
    let missing: BTreeSet<SqlTable> = probed.keys().cloned().collect();
    let mut census = census(db, &targets, &missing, progress)?;
    // Only a table that does not exist makes this the wrong target; one that lacks a column
    // is refused below, by name.
    let absent = absent_tables(&probed);
    census.missing_tables.retain(|t| absent.contains(t));
    progress.event(&Event::Step("checking hosts and jobs"));
    let classes = match plan {
        Some(m) => quiet_classes(&m.plan),
        None => vec![class.clone()],
    };
    let quiet = quiet_all(db, &classes)?;
    let history_table = history::exists(db).map_err(ApplyError::db)?;
    let history = if history_table {
        history::entries_for_class(db, &class)?
    } else {
        Vec::new()
    };
    let plan_status = match plan {
        None => None,
        Some(m) => {
            let direction = Direction::Apply;
            let renaming = Renaming::of_plan(&m.plan, false).unwrap_or_default();
            let (state, mut refusals) = history_checks(&m.plan, &history, direction);
            refusals.extend(plan_blocked(&m.plan));
            let mut checks = plan_checks(&m.plan, &census);
            // The refusal of each failing guard below, in the words of the failure (the check
            // itself is listed as the condition that must hold).
            let mut failures: BTreeMap<usize, String> = BTreeMap::new();
            let unknown = unknown_rows(&m.plan, &census);
            // Checks whose rows a refusal of their own already names.
            let mut named: BTreeSet<usize> = BTreeSet::new();
            // The script's own guards, where it renders for this database (read-only counts).
            if let Ok(script) = m.script(db.dialect(), direction) {
                progress.event(&Event::Step("evaluating guards"));
                // The guard on the context's (call name, handler) pairs.
                let handler_guard = script.handler_rows.as_ref().map(|f| f.guard);
                for (i, g) in script.guards.iter().enumerate() {
                    if matches!(
                        g.kind,
                        GuardKind::HostEnabled | GuardKind::LiveJob | GuardKind::Precondition
                    ) {
                        continue; // evaluated above from the census and Ens_Config.Item
                    }
                    // A missing table holds no row (and is reported as missing below).
                    let on_missing = script
                        .foreign_rows
                        .iter()
                        .any(|f| f.guard == i && missing.contains(&f.table))
                        || handler_guard == Some(i)
                            && missing.contains(&m.plan.response_handler_table);
                    if on_missing {
                        continue;
                    }
                    let rows =
                        db.count(&format!("guard: {}", g.description), g.sql.as_str(), &[])?;
                    // Rows the unknown-state refusal below already names, in status's words:
                    // listed as a failing check all the same, refused once.
                    let foreign_table = script
                        .foreign_rows
                        .iter()
                        .find(|f| f.guard == i)
                        .map(|f| &f.table);
                    if rows != 0
                        && foreign_table.is_some_and(|t| unknown_count(&unknown, t) == rows)
                    {
                        named.insert(checks.len());
                    }
                    // What must hold, with the states that break it when it does not.
                    let mut full = with_foreign_states(&m.plan, &census, direction, g);
                    if rows != 0 {
                        full = with_handler_pairs(db, &script, i, full)?;
                    }
                    let at = if rows == 0 {
                        ""
                    } else {
                        full.strip_prefix(g.description.as_str()).unwrap_or("")
                    };
                    if rows != 0 {
                        failures.insert(checks.len(), full.clone());
                    }
                    checks.push(CheckResult {
                        description: format!(
                            "{}{at}",
                            guard_requirement(&m.plan, g, foreign_table, handler_guard == Some(i))
                        ),
                        ok: rows == 0,
                        rows,
                    });
                }
            }
            // Already applied: apply answers with the history alone (its rows are at the new
            // states, which every guard would refuse); so does status.
            let applied = refusals
                .iter()
                .any(|r| matches!(r, Refusal::AlreadyApplied { .. }));
            if !applied {
                refusals.extend(quiet.refusals());
                refusals.extend(unknown.values().flatten().cloned());
            }
            for (i, c) in checks
                .iter()
                .enumerate()
                .filter(|(i, c)| !c.ok && !applied && !named.contains(i))
            {
                refusals.push(Refusal::Precondition {
                    description: failures
                        .get(&i)
                        .cloned()
                        .unwrap_or_else(|| c.description.clone()),
                    rows: c.rows,
                });
            }
            let pending: BTreeSet<SqlTable> = extra.iter().map(|(t, _)| t.clone()).collect();
            for (t, why) in &probed {
                if m.plan.threads.iter().any(|th| &th.old_table == t)
                    || t == &m.plan.response_handler_table
                    || pending.contains(t)
                {
                    refusals.push(missing_table(&m.plan, t, why));
                }
            }
            Some(PlanStatus {
                plan_id: m.plan.plan_id.clone(),
                direction,
                state,
                moves: moves(&m.plan, &renaming, &census, direction),
                checks,
                refusals,
            })
        }
    };
    Ok(StatusReport {
        dbms: db.dbms_name().to_string(),
        dialect: db.dialect(),
        class,
        census,
        quiet,
        history_table,
        history,
        plan: plan_status,
    })
}

/// The row counts recorded in the history: per table/state/status, before and after, the
/// rows the write statements changed (`changed`, shown by `info`) and, when the apply
/// recorded them, the rows copied to `BplMigrate.Undo` (`undo`; `apply --revert` restores
/// from them and refuses an entry without). Always fits `RowCounts`
/// ([`history::ROW_COUNTS_MAX`] characters): when the groups do not, `before` / `after` hold
/// per-table totals instead and `detail` says so; when even those do not, only the totals of
/// all tables. `changed` and `undo` are always there.
pub(super) fn row_counts_json(
    before: &LiveCensus,
    after: &LiveCensus,
    changed: i64,
    undo: Option<i64>,
) -> String {
    #[derive(Serialize)]
    struct Count<'a> {
        table: String,
        state: Option<&'a str>,
        status: Option<i64>,
        rows: i64,
    }
    #[derive(Serialize)]
    struct Total {
        table: String,
        rows: i64,
    }
    fn counts(c: &LiveCensus) -> Vec<Count<'_>> {
        type Key<'a> = (String, (u8, u64, String), Option<&'a str>, Option<i64>);
        let mut acc: BTreeMap<Key<'_>, i64> = BTreeMap::new();
        for g in &c.threads {
            let s = g.key.next_state.as_deref();
            *acc.entry((
                g.key.table.to_string(),
                super::census::state_order(s),
                s,
                g.key.status,
            ))
            .or_default() += g.rows;
        }
        acc.into_iter()
            .map(|((table, _, state, status), rows)| Count {
                table,
                state,
                status,
                rows,
            })
            .collect()
    }
    fn totals(c: &LiveCensus) -> Vec<Total> {
        let mut acc: BTreeMap<String, i64> = BTreeMap::new();
        for g in &c.threads {
            *acc.entry(g.key.table.to_string()).or_default() += g.rows;
        }
        acc.into_iter()
            .map(|(table, rows)| Total { table, rows })
            .collect()
    }
    let with_counts = |mut v: serde_json::Value| {
        v["changed"] = changed.into();
        if let Some(n) = undo {
            v["undo"] = n.into();
        }
        v.to_string()
    };
    let (b, a) = (counts(before), counts(after));
    let (groups_before, groups_after) = (b.len(), a.len());
    let full = with_counts(serde_json::json!({ "before": b, "after": a }));
    if full.chars().count() <= history::ROW_COUNTS_MAX {
        return full;
    }
    let detail = format!(
        "the {groups_before} groups before and {groups_after} after (table, state, status) do not fit \
         RowCounts ({} characters): {}",
        history::ROW_COUNTS_MAX,
        "per-table totals only"
    );
    let summary = with_counts(serde_json::json!({
        "before": totals(before),
        "after": totals(after),
        "detail": detail,
    }));
    if summary.chars().count() <= history::ROW_COUNTS_MAX {
        return summary;
    }
    let all = |c: &LiveCensus| c.threads.iter().map(|g| g.rows).sum::<i64>();
    with_counts(serde_json::json!({
        "before": [{ "table": "(all)", "rows": all(before) }],
        "after": [{ "table": "(all)", "rows": all(after) }],
        "detail": format!(
            "the {groups_before} groups before and {groups_after} after do not fit RowCounts ({} characters), \
             nor do per-table totals: the totals of all tables only",
            history::ROW_COUNTS_MAX
        ),
    }))
}

/// Tables `apply` locks before it looks ([`sql::tables_to_lock`], shared with the
/// ObjectScript runner): the ones that exist.
fn tables_to_lock(
    plan: &MigrationPlan,
    script: &SqlScript,
    missing: &BTreeSet<SqlTable>,
) -> Vec<SqlTable> {
    sql::tables_to_lock(plan, script)
        .into_iter()
        .filter(|x| !missing.contains(x))
        .collect()
}

/// Refuses a database that is not where the plan's class runs, before anything is locked or
/// written (the same test `status` makes): none of the plan's thread tables exists, or no
/// production item (`Ens_Config.Item`) runs the class. `missing`: the tables that do not
/// exist ([`absent_tables`]; a table lacking a column is a refusal of its own).
pub(super) fn check_apply_target(
    db: &Db,
    plan: &MigrationPlan,
    missing: &BTreeSet<SqlTable>,
) -> Result<(), ApplyError> {
    let tables: Vec<SqlTable> = plan.threads.iter().map(|t| t.old_table.clone()).collect();
    let missing: Vec<SqlTable> = missing.iter().cloned().collect();
    let class = &plan.old.class;
    let wrong = |no_item: bool| {
        super::impact::wrong_target(class, db.dbms_name(), &tables, &missing, no_item)
            .map_or(Ok(()), |why| Err(ApplyError::WrongTarget(why)))
    };
    wrong(false)?;
    let items = match quiet_all(db, std::slice::from_ref(class)) {
        Ok(q) => q,
        // No interoperability here at all (not a lost connection): the wrong namespace.
        Err(f)
            if f.step == "read Ens_Config.Item"
                && !f.connection_lost
                && !lock::is_lock_timeout(db.dialect(), &f) =>
        {
            return Err(ApplyError::WrongTarget(format!(
                "cannot read Ens_Config.Item ({}): is --connect pointing at the interoperability namespace \
                 where the production runs?",
                f.message
            )))
        }
        Err(f) => return Err(f.into()),
    };
    wrong(items.items.is_empty())
}

/// Opens the transaction and locks the tables of `plan` its `script` reads or writes (see
/// [`tables_to_lock`] and [`lock_tables`]).
pub(super) fn lock_plan_tables(
    db: &mut Db,
    plan: &MigrationPlan,
    script: &SqlScript,
    missing: &BTreeSet<SqlTable>,
    pg_version: i64,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<Vec<String>, ApplyError> {
    let tables = tables_to_lock(plan, script, missing);
    lock_tables(
        db,
        &tables,
        &sql::tables_to_share(),
        opts.lock_timeout_ms,
        pg_version,
        progress,
    )
}

/// Opens the transaction and locks `tables` (exclusive) and `shared` (share mode), waiting at
/// most `timeout_ms` in all, reporting who holds them while it waits. On success the
/// transaction is open and locked; returns the IRIS `UNLOCK` statements. A timeout refuses
/// (nothing was written).
fn lock_tables(
    db: &mut Db,
    tables: &[SqlTable],
    shared: &[SqlTable],
    timeout_ms: u64,
    pg_version: i64,
    progress: &dyn Progress,
) -> Result<Vec<String>, ApplyError> {
    // A short first try, so a wait is reported soon; then one-second slices.
    const FIRST_MS: u64 = 200;
    const SLICE_MS: u64 = 1000;
    let start = std::time::Instant::now();
    let mut wait = FIRST_MS.min(timeout_ms);
    progress.event(&Event::Step("locking the tables"));
    loop {
        db.begin("begin transaction").map_err(ApplyError::db)?;
        let attempt = lock::protect_transaction(db, pg_version)
            .and_then(|()| lock::try_lock(db, tables, shared, wait, timeout_ms));
        match attempt {
            Ok(Attempt::Locked(unlocks)) => return Ok(unlocks),
            Ok(Attempt::Busy) => {
                let _ = db.rollback();
            }
            Err(failure) => {
                let rolled_back = db.rollback().is_ok();
                return Err(ApplyError::Database {
                    failure,
                    in_transaction: true,
                    rolled_back,
                });
            }
        }
        let waited = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let all: Vec<SqlTable> = tables.iter().chain(shared).cloned().collect();
        let found = lock::holders(db, &all);
        // Name the tables someone holds (all of them when the database cannot say).
        let mut contested: Vec<SqlTable> = found.iter().map(|(t, _)| t.clone()).collect();
        contested.dedup();
        if contested.is_empty() {
            contested = all;
        }
        let holders: Vec<String> = found.into_iter().map(|(_, h)| h).collect();
        if waited >= timeout_ms {
            return Err(ApplyError::Refused {
                refusals: vec![Refusal::LockTimeout {
                    tables: contested,
                    timeout_ms,
                    holders,
                }],
            });
        }
        progress.event(&Event::Waiting {
            tables: &contested,
            holders: &holders,
            waited_ms: waited,
            timeout_ms,
        });
        wait = SLICE_MS.min(timeout_ms - waited).max(1);
    }
}

/// The refusal of a plan blocked for good ([`MigrationPlan::blocked_for_good`]).
fn plan_blocked(plan: &MigrationPlan) -> Option<Refusal> {
    let reasons = plan.blocked_for_good();
    (!reasons.is_empty()).then(|| Refusal::PlanBlocked {
        plan_id: plan.plan_id.clone(),
        reasons,
    })
}

/// Applies (or reverts, or dry-runs) a migration: see the module documentation of `apply`.
/// Every wait for another session's lock is bounded by `--lock-timeout`
/// ([`lock::bound_waits`], before the first statement reads a table); a statement that timed
/// out is refused as such (exit 3), never reported as a failing database.
pub fn apply(
    db: &mut Db,
    m: &Migration,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, ApplyError> {
    let ms = opts.lock_timeout_ms;
    within_lock_timeout(db, ms, true, |db| apply_bounded(db, m, opts, progress))
}

/// Runs `f` with every lock wait of the session bounded by `timeout_ms`
/// ([`lock::bound_waits`]); a statement that timed out is refused as such (exit 3), naming the
/// step, never reported as a failing database. `option`: the bound is `--lock-timeout` (apply)
/// rather than the fixed [`DEFAULT_LOCK_TIMEOUT_MS`] of `status`, `info` and `repair`.
pub(super) fn within_lock_timeout<D: std::ops::Deref<Target = Db>, T>(
    db: D,
    timeout_ms: u64,
    option: bool,
    f: impl FnOnce(D) -> Result<T, ApplyError>,
) -> Result<T, ApplyError> {
    lock::bound_waits(&db, timeout_ms).map_err(ApplyError::db)?;
    let dialect = db.dialect();
    f(db).map_err(|e| match e {
        ApplyError::Database { failure, .. }
            if !failure.connection_lost && lock::is_lock_timeout(dialect, &failure) =>
        {
            ApplyError::Refused {
                refusals: vec![Refusal::WaitTimeout {
                    step: failure.step,
                    timeout_ms,
                    option,
                }],
            }
        }
        other => other,
    })
}

fn apply_bounded(
    db: &mut Db,
    m: &Migration,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, ApplyError> {
    let plan = &m.plan;
    // A plan blocked by more than rows that must drain is applied by no path (the
    // ObjectScript runner's Blocked() and `check` follow the same rule).
    if opts.direction == Direction::Apply {
        if let Some(r) = plan_blocked(plan) {
            return Err(ApplyError::Refused { refusals: vec![r] });
        }
    }
    if opts.direction == Direction::Revert && !sql::revert_blockers(plan).is_empty() {
        // Not invertible: put back exactly what the apply recorded in BplMigrate.Undo.
        return super::undo::revert(db, m, opts, progress);
    }
    let script = m.script(db.dialect(), opts.direction)?;
    if script.plan_id != plan.plan_id {
        return Err(ApplyError::Folder {
            dir: m.origin(),
            message: format!(
                "the script belongs to plan {}, not {}",
                script.plan_id, plan.plan_id
            ),
        });
    }
    let reverse = opts.direction == Direction::Revert;
    let renaming = Renaming::of_plan(plan, reverse).ok_or_else(|| {
        ApplyError::Unsupported(format!(
            "plan {} maps two states onto one and cannot be reverted",
            plan.plan_id
        ))
    })?;
    let mut targets = CensusTargets::for_plan(plan);
    // Stacks are grouped only where the plan rewrites them (the guards check the rest).
    targets.stack_tables = Some(
        renaming
            .states
            .iter()
            .filter(|(t, moves)| {
                renaming.stacks.contains_key(*t)
                    || moves
                        .values()
                        .any(|mv| mv.handler_stack.is_some() || mv.subroutine_stack.is_some())
            })
            .map(|(t, _)| t.clone())
            .collect(),
    );
    // Child tables are counted only where a precondition or a rewrite needs them: every
    // table read costs a scan inside the transaction.
    targets.pending_tables = Some(
        plan.preconditions
            .iter()
            .filter_map(|p| match p {
                Precondition::NoPendingResponse { table, .. } => Some(table.clone()),
                _ => None,
            })
            .collect(),
    );
    if renaming.handlers.is_empty() {
        targets.handler_table = None;
    }
    // The "rows the old BPL cannot have written" guard of each thread table is counted in the
    // census scan instead of a scan of its own.
    targets.foreign = script
        .foreign_rows
        .iter()
        .map(|f| (f.table.clone(), f.clone()))
        .collect();
    progress.event(&Event::Session {
        id: lock::session_id(db),
    });

    // Outside the transaction: probe the tables (a failing statement must never happen inside).
    progress.event(&Event::Step("checking tables"));
    // Also every table the guards read or the lock takes.
    let mut probed = written_columns(&script);
    probed.push((
        plan.response_handler_table.clone(),
        vec![RESPONSE_HANDLER_COLUMN.to_string()],
    ));
    for t in &plan.threads {
        probed.push((CensusTargets::pending_table(&t.old_table), Vec::new()));
    }
    // The pending-response guards read these: a missing one is a schema problem, refused
    // here, not a failing statement inside the transaction.
    let pending = pending_columns(plan);
    probed.extend(pending.iter().cloned());
    let missing = probe_tables(db, &targets, &probed)?;
    check_apply_target(db, plan, &absent_tables(&missing))?;
    let mut required: BTreeSet<SqlTable> =
        plan.threads.iter().map(|t| t.old_table.clone()).collect();
    required.insert(plan.response_handler_table.clone());
    required.extend(written_columns(&script).into_iter().map(|(t, _)| t));
    required.extend(pending.into_iter().map(|(t, _)| t));
    let refusals: Vec<Refusal> = missing
        .iter()
        .filter(|(t, _)| required.contains(*t))
        .map(|(t, why)| missing_table(plan, t, why))
        .collect();
    if !refusals.is_empty() {
        return Err(ApplyError::Refused { refusals });
    }
    let missing: BTreeSet<SqlTable> = missing.into_keys().collect();
    let pg_version = lock::pg_version(db);
    let mut history_exists = history::exists(db).map_err(ApplyError::db)?;
    let mut notes = Vec::new();
    // A mapping that cannot be inverted records what it overwrites (`BplMigrate.Undo`).
    let wants_undo = opts.direction == Direction::Apply
        && !sql::revert_blockers(plan).is_empty()
        && !script.rewrites.is_empty();
    let mut undo_exists = wants_undo && history::undo_exists(db).map_err(ApplyError::db)?;
    let mut create: Vec<usize> = Vec::new();
    // A dry run creates them too where DDL is transactional (rolled back with the rest), so it
    // writes the history and undo rows a real apply writes.
    if !opts.dry_run || history::transactional_ddl(db.dialect()) {
        if !history_exists {
            create.push(0);
        }
        if wants_undo && !undo_exists {
            create.push(1);
        }
    }
    if !create.is_empty() && !history::transactional_ddl(db.dialect()) {
        // IRIS: DDL commits by itself. Refuse before that first write (read-only checks), then
        // create the tables; they stay even if the apply then fails.
        check_guards(
            db,
            m,
            &script,
            &targets,
            &missing,
            history_exists,
            opts,
            progress,
        )?;
        progress.event(&Event::Step("creating the bookkeeping tables"));
        history::create(db, &create).map_err(ApplyError::db)?;
        notes.push(
            "the bookkeeping tables were created outside the transaction (IRIS DDL commits by itself)"
                .to_string(),
        );
        history_exists = true;
        undo_exists = wants_undo;
        create.clear();
    }
    if wants_undo && opts.dry_run && !undo_exists && !history::transactional_ddl(db.dialect()) {
        notes.push(
            "dry run: BplMigrate.Undo does not exist yet, so the undo rows a real apply records were not written"
                .to_string(),
        );
    }

    // Lock, then look: everything below sees rows no other writer can change until commit.
    let unlocks = lock_plan_tables(db, plan, &script, &missing, pg_version, opts, progress)?;
    let release = |db: &Db| {
        lock::unlock(db, &unlocks);
        if history_exists {
            history::unlock(db);
        }
    };
    let body = in_transaction(
        db,
        m,
        &script,
        &renaming,
        &targets,
        &missing,
        Bookkeeping {
            history: history_exists || create.contains(&0),
            undo: wants_undo && (undo_exists || create.contains(&1)),
            create,
        },
        opts,
        progress,
    );
    conclude(
        db, m, body, notes, &targets, &missing, &release, opts, progress,
    )
}

/// The end of an apply or revert whose transaction body ran (`body`): roll back on error or
/// for a dry run, else commit and verify (see the module documentation). `release` frees the
/// locks that outlive the transaction (IRIS).
#[allow(clippy::too_many_arguments)]
pub(super) fn conclude(
    db: &mut Db,
    m: &Migration,
    body: Result<ApplyReport, ApplyError>,
    notes: Vec<String>,
    targets: &CensusTargets,
    missing: &BTreeSet<SqlTable>,
    release: &dyn Fn(&Db),
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, ApplyError> {
    // The host and job guards once more, right before COMMIT: `Ens_Config.Item` is locked in
    // share mode (nobody enables an item meanwhile), but a job cannot be locked.
    let run = match (opts.dry_run, opts.direction) {
        (true, _) => "dry run",
        (false, Direction::Revert) => "revert",
        (false, Direction::Apply) => "apply",
    };
    let body = body.and_then(|r| recheck_quiet(db, &m.plan, run).map(|()| r));
    let mut report = match body {
        Ok(r) => r,
        Err(e) => {
            let rolled_back = db.rollback().is_ok();
            release(db);
            return Err(match e {
                ApplyError::Database { failure, .. } => ApplyError::Database {
                    failure,
                    in_transaction: true,
                    rolled_back,
                },
                other => other,
            });
        }
    };
    report.notes.splice(0..0, notes);
    if opts.dry_run {
        let rolled_back = db.rollback();
        release(db);
        rolled_back.map_err(|failure| ApplyError::Database {
            failure,
            in_transaction: true,
            rolled_back: false,
        })?;
        report.notes.push(
            "dry run: every statement ran inside the transaction, which was rolled back".into(),
        );
        return Ok(report);
    }
    progress.event(&Event::Step("committing"));
    if let Err(failure) = db.commit() {
        if failure.connection_lost {
            return Err(ApplyError::OutcomeUnknown {
                failure,
                plan_id: m.plan.plan_id.clone(),
            });
        }
        // The server answered: the commit failed, so the transaction is gone.
        let rolled_back = db.rollback().is_ok();
        release(db);
        return Err(ApplyError::Database {
            failure,
            in_transaction: true,
            rolled_back,
        });
    }
    release(db);
    verify_after_commit(db, m, targets, missing, &mut report, opts, progress)?;
    Ok(report)
}

/// Counts the hosts and jobs again inside the transaction (after the rewrite, before COMMIT or
/// the dry run's rollback): the host guards checked before the rewrite must still hold.
fn recheck_quiet(db: &Db, plan: &MigrationPlan, run: &'static str) -> Result<(), ApplyError> {
    let found: Vec<String> = quiet_all(db, &quiet_classes(plan))?
        .refusals()
        .iter()
        .map(ToString::to_string)
        .collect();
    if found.is_empty() {
        return Ok(());
    }
    Err(ApplyError::Refused {
        refusals: vec![Refusal::QuietLost { found, run }],
    })
}

/// What the transaction does about the bookkeeping tables.
#[derive(Debug, Clone)]
struct Bookkeeping {
    /// `BplMigrate.History` exists (or is created below).
    history: bool,
    /// Tables to create inside the transaction (indexes into `history::MIGRATIONS`; a first
    /// real apply on a dialect with transactional DDL).
    create: Vec<usize>,
    /// Record each rewritten row's previous values in `BplMigrate.Undo` (which exists, or is
    /// created below).
    undo: bool,
}

#[allow(clippy::too_many_arguments)]
fn in_transaction(
    db: &Db,
    m: &Migration,
    script: &SqlScript,
    renaming: &Renaming,
    targets: &CensusTargets,
    missing: &BTreeSet<SqlTable>,
    hist: Bookkeeping,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<ApplyReport, ApplyError> {
    let plan = &m.plan;
    let class = plan.old.class.clone();
    if !hist.create.is_empty() {
        progress.event(&Event::Step("creating the bookkeeping tables"));
        history::create_in_transaction(db, &hist.create)?;
    }
    let history_exists = hist.history;
    if history_exists || db.dialect() == crate::sql::Dialect::Postgres {
        progress.event(&Event::Step("taking the apply lock"));
        if !history::try_lock(db, &class)? {
            return Err(ApplyError::Refused {
                refusals: vec![Refusal::Locked { class }],
            });
        }
    }
    let (before, quiet) = check_guards(
        db,
        m,
        script,
        targets,
        missing,
        history_exists,
        opts,
        progress,
    )?;

    // Rows each default fill should touch.
    let mut fill_before = Vec::new();
    for d in &script.defaults {
        fill_before.push(null_rows(db, d)?);
    }
    // Confirmed on a prompt: the counts under the locks must be the ones the operator saw.
    if let Some(c) = &opts.confirmed {
        let now: Vec<(String, i64)> = script
            .rewrites
            .iter()
            .map(|rw| {
                (
                    rw.description.clone(),
                    expected_rows(&before, rw).unwrap_or(0),
                )
            })
            .chain(
                script
                    .defaults
                    .iter()
                    .zip(&fill_before)
                    .map(|(d, n)| (d.description.clone(), *n)),
            )
            .collect();
        let differences = c.differences(&before, &now);
        if !differences.is_empty() {
            return Err(ApplyError::Refused {
                refusals: vec![Refusal::ConfirmedCountsChanged {
                    differences,
                    revert: opts.direction == Direction::Revert,
                }],
            });
        }
    }

    // With the tables locked, the census above plus each statement's row count is exact:
    // nothing else can change these rows until commit.
    let mut statements = Vec::new();
    let mut mismatches = Vec::new();
    // The entry this apply writes; the undo rows are keyed by it.
    let seq = if history_exists {
        Some(history::next_seq(db, &plan.old.class)?)
    } else {
        None
    };
    let mut undo_rows: Option<i64> = None;
    for rw in &script.rewrites {
        let expected = expected_rows(&before, rw);
        if let (true, Some(seq)) = (hist.undo, seq) {
            // The capture also copies the rows the UPDATE leaves alone but the revert must
            // know (`Rewrite::recorded`).
            let expected = expected.map(|e| e + recorded_rows(&before, rw));
            // Before the UPDATE, in the same transaction: the rows it will change, before and
            // after (the same CASE expressions).
            progress.event(&Event::Step("recording the undo rows"));
            let n = db
                .execute(
                    &format!("record undo rows of {}", rw.table),
                    rw.undo.as_str(),
                    &[&class, &seq.to_string()],
                )?
                .map(|n| n as i64);
            if n != expected {
                mismatches.push(format!(
                    "{}: the undo record copied {n:?} rows, the census predicted {expected:?}",
                    rw.description
                ));
            }
            *undo_rows.get_or_insert(0) += n.unwrap_or(0);
        }
        progress.event(&Event::Rewrite {
            table: &rw.table,
            column: &rw.key_column,
            rows: expected,
        });
        let n = db
            .execute(&format!("rewrite {}", rw.table), rw.sql.as_str(), &[])?
            .map(|n| n as i64);
        progress.event(&Event::Rewritten {
            table: &rw.table,
            rows: n.map(|n| n as usize),
        });
        match (expected, n) {
            (Some(e), Some(n)) if e != n => mismatches.push(format!(
                "{}: the UPDATE changed {n} rows, the census predicted {e}",
                rw.description
            )),
            (_, None) => mismatches.push(format!(
                "{}: the driver did not report how many rows the UPDATE changed",
                rw.description
            )),
            _ => {}
        }
        statements.push(StatementOutcome {
            description: rw.description.clone(),
            table: rw.table.clone(),
            expected_rows: expected,
            rows: n,
        });
    }
    for (d, expected) in script.defaults.iter().zip(fill_before) {
        progress.event(&Event::Rewrite {
            table: &d.table,
            column: &d.column,
            rows: Some(expected),
        });
        let n = db
            .execute(
                &format!("default {}.{}", d.table, d.column),
                d.sql.as_str(),
                &[],
            )?
            .map(|n| n as i64);
        progress.event(&Event::Rewritten {
            table: &d.table,
            rows: n.map(|n| n as usize),
        });
        if n != Some(expected) {
            mismatches.push(format!(
                "{}: changed {n:?} rows, {expected} were NULL",
                d.description
            ));
        }
        statements.push(StatementOutcome {
            description: d.description.clone(),
            table: d.table.clone(),
            expected_rows: Some(expected),
            rows: n,
        });
    }
    if !mismatches.is_empty() {
        return Err(ApplyError::Mismatch { mismatches });
    }
    // Read the rows back, inside the transaction: a trigger, a rule or a driver can make an
    // UPDATE change the expected number of rows but write other values. The census the plan
    // predicts must be the one found; the history records what was found.
    progress.event(&Event::Step("reading the rows back"));
    let mut expected = renaming.predict(&before);
    expected.foreign.clear();
    let reread = CensusTargets {
        foreign: BTreeMap::new(),
        ..targets.clone()
    };
    let after = census(db, &reread, missing, &super::progress::Silent)?;
    // The guard counts of the scan are not part of what the rewrite changes.
    let mut before = before;
    before.foreign.clear();
    let differences = expected.differences(&after);
    if !differences.is_empty() || after != expected {
        let mut mismatches: Vec<String> = differences
            .into_iter()
            .map(|d| format!("read back after the rewrite: {d}"))
            .collect();
        if mismatches.is_empty() {
            mismatches
                .push("read back after the rewrite: the census differs from the prediction".into());
        }
        return Err(ApplyError::Mismatch { mismatches });
    }

    let mut history_seq = None;
    // A dry run writes the history row too (rolled back with the rest), so it runs every
    // statement a real apply runs and fails where that would (IRIS: only when the history
    // table exists; a dry run never creates it there).
    if let Some(seq) = seq {
        let changed = statements
            .iter()
            .map(|s| s.rows.or(s.expected_rows).unwrap_or(0))
            .sum();
        let counts = row_counts_json(&before, &after, changed, undo_rows);
        history::insert(db, &new_entry(m, opts, seq, &counts, Outcome::Applied, ""))?;
        history_seq = (!opts.dry_run).then_some(seq);
    }
    let mut notes = Vec::new();
    if quiet.items.is_empty() {
        notes.push(format!("no production item runs {}", plan.old.class));
    }
    Ok(ApplyReport {
        plan_id: plan.plan_id.clone(),
        class: plan.old.class.clone(),
        direction: opts.direction,
        dry_run: opts.dry_run,
        dialect: db.dialect(),
        moves: moves(plan, renaming, &before, opts.direction),
        before,
        after,
        statements,
        quiet,
        history_seq,
        notes,
    })
}

/// Every refusal that the live rows, hosts, jobs, history and the script's guards give, or the
/// census the rewrite starts from. Read-only: it runs inside the apply transaction (where it is
/// authoritative) and, before a first apply creates `BplMigrate.History`, on its own, so a
/// refused apply writes nothing at all.
#[allow(clippy::too_many_arguments)]
fn check_guards(
    db: &Db,
    m: &Migration,
    script: &SqlScript,
    targets: &CensusTargets,
    missing: &BTreeSet<SqlTable>,
    history_exists: bool,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<(LiveCensus, Quiet), ApplyError> {
    let plan = &m.plan;
    let class = plan.old.class.clone();
    let mut refusals = Vec::new();
    if history_exists {
        let entries = history::entries_for_class(db, &class)?;
        refusals.extend(history_checks(plan, &entries, opts.direction).1);
        // Already applied (or, for a revert, not applied): the rows are where the script
        // does not start, so every guard below would refuse them as "not written by" that
        // version. The history is the answer.
        // A dirty entry is the answer too: until a human decided, the rows' state is unknown.
        if refusals.iter().any(|r| {
            matches!(
                r,
                Refusal::AlreadyApplied { .. }
                    | Refusal::NotApplied { .. }
                    | Refusal::DirtyHistory { .. }
                    // A revert while a later plan is applied: the rows are where that plan
                    // left them; the answer is to revert it first.
                    | Refusal::SourceMismatch { later: Some(_), .. }
            )
        }) {
            return Err(ApplyError::Refused { refusals });
        }
    }
    progress.event(&Event::Step("checking hosts and jobs"));
    let quiet = quiet_all(db, &quiet_classes(plan))?;
    refusals.extend(quiet.refusals());
    let before = census(db, targets, missing, progress)?;
    // The plan's row preconditions, from the census (a revert has its own `Unmapped` guards).
    let mut plan_failed = false;
    if opts.direction == Direction::Apply {
        for c in plan_checks(plan, &before) {
            if !c.ok {
                plan_failed = true;
                refusals.push(Refusal::Precondition {
                    description: c.description,
                    rows: c.rows,
                });
            }
        }
    }
    // Rows at a state the old BPL does not have (or NULL), in the words `status` uses.
    let unknown = if opts.direction == Direction::Apply {
        unknown_rows(plan, &before)
    } else {
        BTreeMap::new()
    };
    refusals.extend(unknown.values().flatten().cloned());
    // The script's guards: the reviewed SQL. Kinds already reported above are not repeated.
    progress.event(&Event::Step("evaluating guards"));
    let quiet_refused = !quiet.refusals().is_empty();
    for (i, g) in script.guards.iter().enumerate() {
        let foreign_table = script
            .foreign_rows
            .iter()
            .find(|f| f.guard == i)
            .map(|f| &f.table);
        // A guard the census scan already counted (same condition, same transaction).
        let counted = foreign_table
            .filter(|t| targets.foreign.contains_key(*t))
            .map(|t| before.foreign.get(t).copied().unwrap_or(0));
        let rows = match counted {
            Some(n) => n,
            None => db.count(&format!("guard: {}", g.description), g.sql.as_str(), &[])?,
        };
        let repeated = match g.kind {
            GuardKind::HostEnabled | GuardKind::LiveJob => quiet_refused,
            GuardKind::Precondition => plan_failed,
            GuardKind::Unmapped => {
                foreign_table.is_some_and(|t| unknown_count(&unknown, t) == rows)
            }
            _ => false,
        };
        if rows != 0 && !repeated {
            let description = with_foreign_states(plan, &before, opts.direction, g);
            refusals.push(Refusal::Precondition {
                description: with_handler_pairs(db, script, i, description)?,
                rows,
            });
        }
    }
    if !refusals.is_empty() {
        return Err(ApplyError::Refused { refusals });
    }
    Ok((before, quiet))
}

/// Per thread table, the refusals for rows the plan does not understand: at a state the old
/// BPL does not have, or NULL (`impact`'s `Fate::Unknown`, in the words `status` shows).
fn unknown_rows(plan: &MigrationPlan, census: &LiveCensus) -> BTreeMap<SqlTable, Vec<Refusal>> {
    let mut out: BTreeMap<SqlTable, Vec<Refusal>> = BTreeMap::new();
    let groups = moves(plan, &Renaming::default(), census, Direction::Apply);
    for (table, description, rows) in super::impact::unknown_groups(plan, &groups) {
        out.entry(table)
            .or_default()
            .push(Refusal::UnknownRows { description, rows });
    }
    out
}

/// The rows of `table` that [`unknown_rows`] refused.
fn unknown_count(unknown: &BTreeMap<SqlTable, Vec<Refusal>>, table: &SqlTable) -> i64 {
    unknown
        .get(table)
        .into_iter()
        .flatten()
        .map(|r| match r {
            Refusal::UnknownRows { rows, .. } => *rows,
            _ => 0,
        })
        .sum()
}

/// A failed "rows rest at states the old version does not have" guard, with the states and
/// their row counts from the census (`…: S13 (4 rows), S14 (1 row)`).
fn with_foreign_states(
    plan: &MigrationPlan,
    census: &LiveCensus,
    direction: Direction,
    g: &crate::sql::Guard,
) -> String {
    if g.kind != GuardKind::Unmapped {
        return g.description.clone();
    }
    let Some(t) = plan.threads.iter().find(|t| {
        g.description
            .starts_with(&format!("rows of {} rest at states ", t.old_class))
    }) else {
        return g.description.clone();
    };
    let mut known: BTreeSet<StateName> = BTreeSet::from([StateName::STOP]);
    for s in &t.states {
        match direction {
            Direction::Apply => known.insert(s.old),
            Direction::Revert => s.new.is_some_and(|n| known.insert(n)),
        };
    }
    let mut found: BTreeMap<(u8, u64, String), (String, i64)> = BTreeMap::new();
    for grp in census.threads.iter().filter(|x| x.key.table == t.old_table) {
        let st = grp.key.next_state.as_deref();
        // A value that is no state name (`S01`) is no state of either version.
        if st.is_none_or(|st| StateName::parse(st).is_none_or(|n| !known.contains(&n))) {
            found
                .entry(super::census::state_order(st))
                .or_insert_with(|| (st.map_or_else(|| "NULL".into(), shown), 0))
                .1 += grp.rows;
        }
    }
    if found.is_empty() {
        return g.description.clone();
    }
    // The refusal adds the total (`(3 rows)`): one state is named, several are counted each.
    if found.len() == 1 {
        let (st, _) = found.into_values().next().unwrap_or_default();
        return format!("{} [at {st}]", g.description);
    }
    let list: Vec<String> = found
        .into_values()
        .map(|(st, n)| format!("{st} ({})", counted(n, "row", "rows")))
        .collect();
    format!("{} [{}]", g.description, list.join(", "))
}

/// A failed `%ResponseHandlers` guard, with the (call name, handler) pairs that break it and
/// their rows (`…: [Audit → OnResponse1 (1 row), Bogus → OnResponse1 (2 rows)]`), read by one
/// more census of the table grouped by both columns, flagged by the guard's own condition.
/// Other guards are returned as they are.
fn with_handler_pairs(
    db: &Db,
    script: &SqlScript,
    index: usize,
    description: String,
) -> Result<String, DbFailure> {
    let Some(f) = script.handler_rows.as_ref().filter(|f| f.guard == index) else {
        return Ok(description);
    };
    let step = format!("unknown response-handler pairs of {}", f.table);
    let keys = [crate::sql::ELEMENT_KEY, RESPONSE_HANDLER_COLUMN];
    let q = sql::flagged_census_query(db.dialect(), &f.table, &keys, f)
        .map_err(|e| DbFailure::refused_sql(&step, &e))?;
    let mut pairs: Vec<(Option<String>, Option<String>, i64)> = Vec::new();
    for row in db.query(&step, q.as_str(), &[])? {
        if let [key, handler, _, n] = row.as_slice() {
            let n = n.int().unwrap_or(0);
            if n > 0 {
                pairs.push((
                    key.text().map(str::to_string),
                    handler.text().map(str::to_string),
                    n,
                ));
            }
        }
    }
    if pairs.is_empty() {
        return Ok(description);
    }
    pairs.sort();
    const SHOWN: usize = 10;
    let text = |v: &Option<String>| v.as_deref().map_or_else(|| "NULL".to_string(), shown);
    let mut list: Vec<String> = pairs
        .iter()
        .take(SHOWN)
        .map(|(k, h, n)| format!("{} → {} ({})", text(k), text(h), counted(*n, "row", "rows")))
        .collect();
    if pairs.len() > SHOWN {
        list.push(format!("{} more pairs", pairs.len() - SHOWN));
    }
    Ok(format!("{description} [{}]", list.join(", ")))
}

/// The history row of migration `m` run with `opts`.
pub(super) fn new_entry<'a>(
    m: &'a Migration,
    opts: &'a ApplyOptions,
    seq: i64,
    row_counts: &'a str,
    outcome: Outcome,
    note: &'a str,
) -> NewEntry<'a> {
    NewEntry {
        seq,
        plan_id: &m.plan.plan_id,
        plan_sha256: &m.plan_sha256,
        class: &m.plan.old.class,
        old_sha256: &m.plan.old.sha256,
        new_sha256: &m.plan.new.sha256,
        direction: opts.direction,
        applied_by: &opts.applied_by,
        row_counts,
        outcome,
        note,
    }
}

/// Rows whose column a default fill sets (NULL ones).
fn null_rows(db: &Db, d: &DefaultFill) -> Result<i64, DbFailure> {
    let step = format!("count NULL {}.{}", d.table, d.column);
    let sql = sql::null_count(db.dialect(), &d.table, &d.column)
        .map_err(|e| DbFailure::refused_sql(&step, &e))?;
    db.count(&step, sql.as_str(), &[])
}

/// Rows a rewrite's undo capture copies besides those it changes (`Rewrite::recorded`).
fn recorded_rows(before: &LiveCensus, rw: &crate::sql::Rewrite) -> i64 {
    if rw.key_column != RESPONSE_HANDLER_COLUMN {
        return 0;
    }
    before
        .handlers
        .iter()
        .filter(|g| {
            g.key.table == rw.table
                && g.key
                    .handler
                    .as_deref()
                    .is_some_and(|h| rw.recorded.iter().any(|r| r == h))
        })
        .map(|g| g.rows)
        .sum()
}

/// Rows a rewrite must touch: the before-census rows whose key is in its `IN (…)` list.
fn expected_rows(before: &LiveCensus, rw: &crate::sql::Rewrite) -> Option<i64> {
    let keys: BTreeSet<&str> = rw.mapping.iter().map(|(k, _)| k.as_str()).collect();
    match rw.key_column.as_str() {
        NEXT_STATE => Some(
            before
                .threads
                .iter()
                .filter(|g| {
                    g.key.table == rw.table
                        && g.key
                            .next_state
                            .as_deref()
                            .is_some_and(|s| keys.contains(s))
                })
                .map(|g| g.rows)
                .sum(),
        ),
        RESPONSE_HANDLER_COLUMN => Some(
            before
                .handlers
                .iter()
                .filter(|g| {
                    g.key.table == rw.table
                        && g.key.handler.as_deref().is_some_and(|s| keys.contains(s))
                })
                .map(|g| g.rows)
                .sum(),
        ),
        _ => None,
    }
}

/// After commit: the history row written in the same transaction must be there (rig.md
/// pitfall 1: a driver may report a commit that did not happen). One indexed read, immune to
/// writers that were waiting for the locks. When the row is missing the rows are counted: as
/// they were → nothing was committed; otherwise a `dirty` marker is written. Any failure here
/// is reported as "committed, not verified" — the data *is* migrated.
pub(super) fn verify_after_commit(
    db: &mut Db,
    m: &Migration,
    targets: &CensusTargets,
    missing: &BTreeSet<SqlTable>,
    report: &mut ApplyReport,
    opts: &ApplyOptions,
    progress: &dyn Progress,
) -> Result<(), ApplyError> {
    progress.event(&Event::Step("reading back"));
    let seq = report.history_seq;
    let unverified = |message: String| ApplyError::CommittedUnverified { message, seq };
    let entries = history::entries_for_class(db, &m.plan.old.class).map_err(|e| {
        // The statement's failure, not the error's "nothing changed" (the commit did happen).
        let f = match e {
            ApplyError::Database { failure, .. } => failure.to_string(),
            other => other.to_string(),
        };
        unverified(format!(
            "reading the history back failed ({f}); run `bplmigrate status --plan DIR` to see history entry {} \
             and the rows",
            seq.map_or_else(|| "?".into(), |s| s.to_string())
        ))
    })?;
    let recorded = entries.iter().any(|e| {
        Some(e.seq) == seq && e.plan_id == m.plan.plan_id && e.outcome == Outcome::Applied
    });
    if recorded {
        return Ok(());
    }
    let mut now = census(db, targets, missing, progress).map_err(|f| {
        unverified(format!(
            "the history row is missing and counting the rows failed ({f})"
        ))
    })?;
    // Compared with the report's censuses, which hold no guard counts.
    now.foreign.clear();
    // A plan whose census before and after look alike (a swap of equally many rows) cannot be
    // told apart by counting.
    let distinguishable = report.before != report.after;
    if distinguishable && now == report.before {
        return Err(ApplyError::NotCommitted {
            message: "the history row is missing and the rows are counted as before".into(),
        });
    }
    let committed = distinguishable && now == report.after;
    let differences = report.after.differences(&now);
    let mut note = "after commit the history row of this apply was missing".to_string();
    if !differences.is_empty() {
        note.push_str(&format!("; rows: {}", differences.join("; ")));
    } else if !committed {
        note.push_str("; the row counts cannot tell whether the rewrite committed");
    }
    let note: String = note.chars().take(1900).collect();
    let marker = history::next_seq(db, &m.plan.old.class).and_then(|dirty_seq| {
        let counts = row_counts_json(&report.before, &now, report.rows_changed(), None);
        history::insert(
            db,
            &new_entry(m, opts, dirty_seq, &counts, Outcome::Dirty, &note),
        )
        .map(|()| dirty_seq)
    });
    let message = match marker {
        Ok(dirty_seq) => format!(
            "{note}; history entry {dirty_seq} marks the class dirty: {}",
            super::error::repair_advice(&m.plan.old.class, dirty_seq)
        ),
        Err(f) => format!(
            "{note}; writing the dirty marker FAILED too ({f}): record what happened by hand before \
             anything else runs"
        ),
    };
    if !committed {
        // The connection did not fail: say what did (not "lost during COMMIT").
        return Err(ApplyError::CommitUndetermined { message });
    }
    // The entry this apply wrote is gone: the message names the dirty entry, not it.
    Err(ApplyError::CommittedUnverified { message, seq: None })
}
