//! What a plan would do to the instances resting in the database right now, group by group:
//! the fate of every live group (table × state × status), the findings that concern *those*
//! rows, the preconditions with live counts, and a one-line answer — can apply now, or what
//! blocks it. Plain data built from a [`StatusReport`]; only the CLI prints it.
//!
//! Also the check that `status` looks at the right target: a namespace without the class's
//! tables, or without a production item running the class, is an error naming what was looked
//! for — never an empty census.

use super::error::{shown, Refusal};
use super::folder::Migration;
use super::run::{CheckResult, GroupMove, StatusReport};
use crate::plan::findings::Code;
use crate::plan::{Finding, MigrationPlan, Precondition, StateMapping};
use crate::states::{SqlTable, StateName};
use serde::Serialize;

/// What happens to the rows of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fate {
    /// `%NextState` is rewritten: they resume at another state.
    Resume,
    /// Same state, new `%HandlerStack` / `%SubroutineStack`.
    NewStacks,
    /// Nothing to rewrite: they resume where they are.
    Stay,
    /// Finished (`Stop`): never resumes.
    Finished,
    /// They rest where the new version has nothing: apply refuses while they remain; let them
    /// finish (drain).
    Drain,
    /// A state the old BPL does not have: the plan does not understand these rows.
    Unknown,
}

/// A finding of the plan that concerns a group's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupFinding {
    pub code: Code,
    pub severity: String,
    pub message: String,
    pub acknowledged: bool,
}

/// One live group and what the plan does to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupImpact {
    pub table: SqlTable,
    /// `Thread1`: the thread class's short name, as findings name states.
    pub thread: String,
    pub state: Option<String>,
    pub status: Option<i64>,
    /// `ready`, `completed`, `waiting`, `errored` (or the number when unknown).
    pub status_name: String,
    pub rows: i64,
    /// The role and owning activity of the state in the old BPL (None when unknown).
    pub role: Option<String>,
    pub activity: Option<String>,
    pub fate: Fate,
    pub new_state: Option<String>,
    pub new_activity: Option<String>,
    pub findings: Vec<GroupFinding>,
    /// `37 instances waiting at Thread1:S11 (call "Notify") will resume at S13 and skip delay "Settle"`.
    pub summary: String,
}

/// A precondition of the plan and how far the live database is from meeting it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Precheck {
    pub description: String,
    pub ok: bool,
    /// How many violate it now…
    pub count: i64,
    /// …counted in `rows`, `enabled items` or `live jobs`.
    pub unit: String,
}

/// The plan against the live rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanImpact {
    pub plan_id: String,
    pub class: String,
    pub groups: Vec<GroupImpact>,
    /// Host and job preconditions, then row preconditions and guard counts, each with how
    /// many violate it now.
    pub preconditions: Vec<Precheck>,
    /// Every reason `apply` would refuse now.
    pub blockers: Vec<String>,
    /// `apply` would run now.
    pub can_apply: bool,
    /// The rows meet every precondition (what draining waits for); hosts may still run.
    pub drained: bool,
    /// The one-line answer.
    pub answer: String,
}

/// `Demo.X.Thread1` → `Thread1`.
fn short(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

pub fn status_name(s: Option<i64>) -> String {
    match s {
        Some(1) => "ready".into(),
        Some(2) => "completed".into(),
        Some(3) => "waiting".into(),
        Some(4) => "errored".into(),
        Some(n) => format!("status {n}"),
        None => "status NULL".into(),
    }
}

/// Whether a refusal is about hosts and jobs (expected while draining: the process must keep
/// running for its instances to finish).
fn is_quiet_refusal(r: &Refusal) -> bool {
    matches!(
        r,
        Refusal::HostEnabled { .. }
            | Refusal::HostUnknown { .. }
            | Refusal::ActorPool { .. }
            | Refusal::LiveJob { .. }
    )
}

/// Findings of `plan` that name `thread:state` (or the whole thread, `thread:*`).
fn findings_for<'a>(
    plan: &'a MigrationPlan,
    thread: &str,
    state: &str,
) -> impl Iterator<Item = &'a Finding> + 'a {
    let exact = format!("{thread}:{state}");
    let whole = format!("{thread}:*");
    plan.findings
        .iter()
        .filter(move |f| f.states.iter().any(|s| *s == exact || *s == whole))
}

fn labels(acts: &[crate::states::ActivityRef]) -> String {
    acts.iter()
        .map(|a| a.label())
        .collect::<Vec<_>>()
        .join(", ")
}

fn instances(n: i64) -> String {
    if n == 1 {
        "1 instance".into()
    } else {
        format!("{n} instances")
    }
}

/// The impact of the plan of `m` on the rows `report` counted (a `status` of that plan).
/// None when the report has no plan section.
pub fn impact(m: &Migration, report: &StatusReport) -> Option<PlanImpact> {
    let ps = report.plan.as_ref()?;
    let plan = &m.plan;
    let groups: Vec<GroupImpact> = ps
        .moves
        .iter()
        .filter(|g| g.kind == "thread")
        .map(|g| group(plan, g))
        .collect();
    let blockers: Vec<String> = ps.refusals.iter().map(|r| r.to_string()).collect();
    let unknown: Vec<String> = groups
        .iter()
        .filter(|g| g.fate == Fate::Unknown)
        .map(|g| g.summary.clone())
        .collect();
    let drained = ps.refusals.iter().all(is_quiet_refusal) && unknown.is_empty();
    let can_apply = ps.refusals.is_empty() && unknown.is_empty();
    // `status` already refuses unknown rows in these words; older reports may not.
    let mut all_blockers = blockers;
    for u in unknown {
        if !all_blockers.contains(&u) {
            all_blockers.push(u);
        }
    }
    let answer = if can_apply {
        format!(
            "can apply now: every precondition holds and no host of {} runs",
            plan.old.class
        )
    } else if drained {
        format!(
            "the rows are ready (every precondition holds); apply is blocked only by the running process: {}",
            all_blockers.join("; ")
        )
    } else {
        let n = all_blockers.len();
        format!(
            "cannot apply now: {n} blocker{}: {}",
            if n == 1 { "" } else { "s" },
            all_blockers.join("; ")
        )
    };
    Some(PlanImpact {
        plan_id: plan.plan_id.clone(),
        class: plan.old.class.clone(),
        groups,
        preconditions: prechecks(plan, report, &ps.checks),
        blockers: all_blockers,
        can_apply,
        drained,
        answer,
    })
}

fn prechecks(plan: &MigrationPlan, report: &StatusReport, checks: &[CheckResult]) -> Vec<Precheck> {
    let mut out = Vec::new();
    for p in &plan.preconditions {
        let (description, count, unit) = match p {
            Precondition::HostDisabled { class } => (
                format!(
                    "every production item running {class} is disabled (an actor-pool item: the production is stopped)"
                ),
                report
                    .quiet
                    .refusals()
                    .iter()
                    .filter(|r| {
                        matches!(
                            r,
                            Refusal::HostEnabled { .. }
                                | Refusal::HostUnknown { .. }
                                | Refusal::ActorPool { .. }
                        )
                    })
                    .count(),
                "enabled items",
            ),
            Precondition::NoLiveJob { class } => (
                format!("no live job runs a production item of {class}"),
                report.quiet.live_jobs.len(),
                "live jobs",
            ),
            _ => continue,
        };
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        out.push(Precheck {
            description,
            ok: count == 0,
            count,
            unit: unit.into(),
        });
    }
    out.extend(checks.iter().map(|c| Precheck {
        description: c.description.clone(),
        ok: c.ok,
        count: c.rows,
        unit: "rows".into(),
    }));
    out
}

fn group(plan: &MigrationPlan, g: &GroupMove) -> GroupImpact {
    let thread_map = plan.threads.iter().find(|t| t.old_table == g.table);
    let thread = thread_map.map_or_else(
        || g.table.table.clone(),
        |t| short(&t.old_class).to_string(),
    );
    let state = g.from.clone();
    // A value that is no state name (`S01`, NULL) is no state of the plan.
    let name = state.as_deref().and_then(StateName::parse);
    let mapping: Option<&StateMapping> =
        thread_map.and_then(|t| t.states.iter().find(|s| Some(s.old) == name));
    let shown_state = state.as_deref().map_or_else(|| "NULL".into(), shown);
    let here = format!("{thread}:{shown_state}");
    let what = |m: Option<&StateMapping>| {
        m.map_or_else(String::new, |m| format!(" ({})", m.old_activity.label()))
    };
    let who = format!(
        "{} {} at {here}{}",
        instances(g.rows),
        status_name(g.status),
        what(mapping)
    );
    let fate = match (g.action.as_str(), state.as_deref()) {
        (_, Some("Stop")) => Fate::Finished,
        ("rewrite", _) => Fate::Resume,
        ("stacks", _) => Fate::NewStacks,
        ("blocked", _) => Fate::Drain,
        _ if mapping.is_none() && thread_map.is_some() => Fate::Unknown,
        _ => Fate::Stay,
    };
    let findings: Vec<GroupFinding> = match &state {
        Some(s) if fate != Fate::Finished => findings_for(plan, &thread, s)
            .map(|f| GroupFinding {
                code: f.code,
                severity: f.severity.as_str().to_string(),
                message: f.message.clone(),
                acknowledged: f.acknowledged,
            })
            .collect(),
        _ => Vec::new(),
    };
    // What resuming there means, in the findings' own terms: skipped and re-run activities.
    let mut also = Vec::new();
    if let Some(s) = &state {
        for f in findings_for(plan, &thread, s) {
            match f.code {
                // A skip that depends on the branch the instance took says so ("may skip").
                Code::SkippedActivities if !f.new_activities.is_empty() => {
                    let may = if f.message.contains(" may skip ") {
                        "may "
                    } else {
                        ""
                    };
                    also.push(format!("{may}skip {}", labels(&f.new_activities)))
                }
                Code::RerunActivities => {
                    let acts = if f.new_activities.is_empty() {
                        &f.activities
                    } else {
                        &f.new_activities
                    };
                    if !acts.is_empty() {
                        let may = if f.message.contains(" may run again ") {
                            "may "
                        } else {
                            ""
                        };
                        also.push(format!("{may}run {} again", labels(acts)));
                    }
                }
                // Rows at a wait on a renamed or removed call: the plan's pending-response
                // precondition refuses while their response is pending — said here too.
                Code::PendingCallRemoved | Code::PendingCallRenamed => {
                    for p in &plan.preconditions {
                        if let Precondition::NoPendingResponse { table, call, .. } = p {
                            let named = format!("{call:?}");
                            if *table == g.table
                                && f.message.contains(&named)
                                && !also.iter().any(|a: &String| a.contains(&named))
                            {
                                also.push(format!(
                                    "may wait on a response to call {named}: apply refuses while one is pending"
                                ));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let also = if also.is_empty() {
        String::new()
    } else {
        format!(" and {}", also.join(" and "))
    };
    // Only rows that resume somewhere have a new state (a drained state's name may mean
    // another activity in the new version).
    let new_state = match fate {
        Fate::Resume | Fate::NewStacks | Fate::Stay => g.to.clone(),
        Fate::Finished | Fate::Drain | Fate::Unknown => None,
    };
    let summary = match fate {
        Fate::Finished => format!(
            "{} finished at {here}: never resume, not touched",
            instances(g.rows)
        ),
        Fate::Resume => format!(
            "{who} will resume at {}{}{also}",
            new_state.as_deref().unwrap_or("?"),
            mapping
                .and_then(|m| m.new_activity.as_ref())
                .map_or_else(String::new, |a| format!(" ({})", a.label()))
        ),
        Fate::NewStacks => format!("{who} stay at {here} with new fault-handler stacks{also}"),
        Fate::Stay => format!("{who} stay at {here}: unchanged{also}"),
        Fate::Drain => {
            // A precondition that names this very state says why (a kept state can be one).
            let named = plan.preconditions.iter().find_map(|p| match p {
                Precondition::NoRowsAtState {
                    table,
                    state: s,
                    reason,
                } if *table == g.table && Some(s) == state.as_ref() && !reason.is_empty() => {
                    Some(reason.clone())
                }
                _ => None,
            });
            let why = match (thread_map, mapping) {
                _ if mapping.is_some_and(|m| m.new.is_some()) && named.is_some() => {
                    named.unwrap_or_default()
                }
                (Some(t), _) if t.new_table.as_ref() != Some(&t.old_table) => format!(
                    "{} has no counterpart under the same name in the new version",
                    short(&t.old_class)
                ),
                (_, Some(m)) => m
                    .note
                    .clone()
                    .unwrap_or_else(|| "the new version has no counterpart for this state".into()),
                _ => "the new version has no counterpart for this state".into(),
            };
            format!("{who} must finish before apply ({why})")
        }
        Fate::Unknown => format!(
            "{who}: the old BPL has no state {shown_state}; the plan does not understand these rows (is the \
             new class already running, or was this migration applied by hand?)"
        ),
    };
    GroupImpact {
        table: g.table.clone(),
        thread,
        state,
        status: g.status,
        status_name: status_name(g.status),
        rows: g.rows,
        role: mapping.map(|m| m.role.to_string()),
        activity: mapping.map(|m| m.old_activity.label()),
        fate,
        new_state,
        new_activity: mapping.and_then(|m| m.new_activity.as_ref().map(|a| a.label())),
        findings,
        summary,
    }
}

/// The thread groups of `moves` (of an apply) the plan does not understand — at a state the
/// old BPL does not have, or NULL: (table, the summary `status` shows, rows). `apply` refuses
/// them in the same words.
pub(super) fn unknown_groups(
    plan: &MigrationPlan,
    moves: &[GroupMove],
) -> Vec<(SqlTable, String, i64)> {
    moves
        .iter()
        .filter(|g| g.kind == "thread")
        .map(|g| group(plan, g))
        .filter(|g| g.fate == Fate::Unknown)
        .map(|g| (g.table, g.summary, g.rows))
        .collect()
}

/// Whether `report` looked at the right target: some thread table of the class exists, and a
/// production item runs the class. The error names what was looked for.
pub fn check_target(report: &StatusReport, thread_tables: &[SqlTable]) -> Result<(), String> {
    wrong_target(
        &report.class,
        &report.dbms,
        thread_tables,
        &report.census.missing_tables,
        report.quiet.items.is_empty(),
    )
    .map_or(Ok(()), Err)
}

/// Why a database is not where the class runs (None: it is): none of its `thread_tables`
/// exists (`missing`), or no production item runs it (`no_item`). Shared by `status` and
/// `apply`, which refuse alike.
pub(super) fn wrong_target(
    class: &str,
    dbms: &str,
    thread_tables: &[SqlTable],
    missing: &[SqlTable],
    no_item: bool,
) -> Option<String> {
    if !thread_tables.is_empty() && thread_tables.iter().all(|t| missing.contains(t)) {
        let names: Vec<String> = thread_tables.iter().map(|t| t.to_string()).collect();
        return Some(format!(
            "no table of {class} in this namespace: looked for {} on {dbms}; is --connect pointing at the \
             namespace where the production runs (Database=… in the connection string)?",
            names.join(", "),
        ));
    }
    if no_item {
        return Some(format!(
            "{class} is not configured in any production of this namespace: Ens_Config.Item has no row with \
             ClassName = '{class}' on {dbms}; is --connect pointing at the right namespace, and is the class name right?"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apply::census::LiveCensus;
    use crate::apply::quiet::{HostItem, Quiet};
    use crate::apply::run::PlanStatus;
    use crate::sql::{Dialect, Direction};

    /// The plan of change fixture `case` (as `plan OLD NEW` builds it).
    fn fixture(case: &str) -> Migration {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/changes")
            .join(case);
        let load = |f: &str| {
            crate::bpl::load(
                &dir.join(f).to_string_lossy(),
                &crate::bpl::LoadOptions::default(),
            )
            .unwrap()
        };
        let (old, new) = (load("old.cls"), load("new.cls"));
        let compile = |b| crate::states::compile(b, crate::states::Compiler::Current).unwrap();
        let (oc, nc) = (compile(&old), compile(&new));
        let planned = crate::plan::build(&old, &new, &oc, &nc, None).unwrap();
        Migration::from_plan(planned).unwrap()
    }

    fn mv(table: &SqlTable, from: &str, to: &str, action: &str, rows: i64) -> GroupMove {
        GroupMove {
            kind: "thread".into(),
            table: table.clone(),
            from: Some(from.into()),
            to: Some(to.into()),
            status: Some(3),
            rows,
            action: action.into(),
        }
    }

    /// A status report of `m` whose plan section holds `moves` and no refusal; one disabled host.
    fn report(m: &Migration, moves: Vec<GroupMove>) -> StatusReport {
        StatusReport {
            dbms: "PostgreSQL".into(),
            dialect: Dialect::Postgres,
            class: m.plan.old.class.clone(),
            census: LiveCensus::default(),
            quiet: Quiet {
                items: vec![HostItem {
                    production: "P".into(),
                    name: "Host".into(),
                    pool_size: Some(1),
                    enabled: Some(false),
                }],
                live_jobs: vec![],
            },
            history_table: false,
            history: vec![],
            plan: Some(PlanStatus {
                plan_id: m.plan.plan_id.clone(),
                direction: Direction::Apply,
                state: crate::apply::PlanState::NotApplied,
                moves,
                checks: vec![],
                refusals: vec![],
            }),
        }
    }

    #[test]
    fn rows_resuming_after_a_moved_activity_are_told_they_run_it_again() {
        let m = fixture("reorder_siblings");
        let t = m.plan.threads[0].old_table.clone();
        let r = report(&m, vec![mv(&t, "S11", "S9", "rewrite", 5)]);
        let i = impact(&m, &r).unwrap();
        let g = &i.groups[0];
        assert_eq!(g.fate, Fate::Resume);
        assert_eq!(
            g.summary,
            "5 instances waiting at Thread1:S11 (call \"Notify\") will resume at S9 (call \"Notify\") \
             and run delay \"Cool\" again"
        );
        assert!(g.findings.iter().any(|f| f.code == Code::RerunActivities));
        // The finding on S9 (skip) does not leak onto S11.
        assert!(g.findings.iter().all(|f| f.code != Code::SkippedActivities));
        assert!(i.can_apply && i.drained, "{}", i.answer);
    }

    #[test]
    fn rows_of_a_renumbered_flow_thread_must_drain_and_carry_the_thread_finding() {
        let m = fixture("flow_renumbering");
        let t = m
            .plan
            .threads
            .iter()
            .find(|t| t.old_table.table == "Thread2")
            .unwrap()
            .old_table
            .clone();
        let state = m
            .plan
            .threads
            .iter()
            .find(|x| x.old_table == t)
            .unwrap()
            .states[0]
            .old
            .to_string();
        let r = report(&m, vec![mv(&t, &state, &state, "blocked", 2)]);
        let g = &impact(&m, &r).unwrap().groups[0];
        assert_eq!(g.fate, Fate::Drain);
        assert_eq!(g.new_state, None);
        assert!(
            g.summary
                .contains("must finish before apply (Thread2 has no counterpart"),
            "{}",
            g.summary
        );
        assert!(
            g.findings.iter().any(|f| f.code == Code::ThreadRenumbered),
            "{:?}",
            g.findings
        );
    }

    #[test]
    fn a_state_the_old_bpl_lacks_blocks_and_is_named() {
        let m = fixture("insert_middle");
        let t = m.plan.threads[0].old_table.clone();
        let r = report(
            &m,
            vec![
                mv(&t, "S2", "S2", "keep", 1),
                mv(&t, "S99", "S99", "keep", 4),
            ],
        );
        let i = impact(&m, &r).unwrap();
        assert_eq!(i.groups[0].fate, Fate::Stay);
        assert_eq!(i.groups[1].fate, Fate::Unknown);
        assert!(!i.can_apply && !i.drained);
        assert!(
            i.blockers
                .iter()
                .any(|b| b.contains("4 instances waiting at Thread1:S99")
                    && b.contains("old BPL has no state S99")),
            "{:?}",
            i.blockers
        );
    }

    #[test]
    fn the_wrong_target_is_named() {
        let m = fixture("insert_middle");
        let t = m.plan.threads[0].old_table.clone();
        let mut r = report(&m, vec![]);
        assert!(check_target(&r, std::slice::from_ref(&t)).is_ok());
        r.census.missing_tables = vec![t.clone()];
        let e = check_target(&r, std::slice::from_ref(&t)).unwrap_err();
        assert!(
            e.contains("no table of Demo.Change.Loan") && e.contains(&t.to_string()),
            "{e}"
        );
        r.census.missing_tables.clear();
        r.quiet.items.clear();
        let e = check_target(&r, &[t]).unwrap_err();
        assert!(e.contains("ClassName = 'Demo.Change.Loan'"), "{e}");
    }
}
