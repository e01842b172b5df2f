//! What a change picture shows, derived from a [`MigrationPlan`] or a [`ProcessDiff`] and the
//! two compiled versions: thread classes paired old → new, every old state's fate, findings.

use crate::diff::{DeltaKind, ProcessDiff};
use crate::plan::{Finding, MigrationPlan, Precondition, Severity, StateChange, Verdict};
use crate::states::{CompiledProcess, StateName};
use std::collections::{HashMap, HashSet};

/// What happens to instances resting at an old state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Same name, same meaning: nothing to rewrite.
    Unchanged,
    /// Same meaning under a new name: the plan rewrites `%NextState`.
    Renumbered,
    /// Mapped by the overrides file.
    Overridden,
    /// No row may rest here when the plan applies (a guard checks it): let instances finish.
    Drained,
    /// No counterpart, and the plan is blocked on it (an open error) or nothing guards it.
    Removed,
}

impl Fate {
    pub fn as_str(self) -> &'static str {
        match self {
            Fate::Unchanged => "unchanged",
            Fate::Renumbered => "renumbered",
            Fate::Overridden => "overridden",
            Fate::Drained => "drained",
            Fate::Removed => "removed",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StateFate {
    pub old: String,
    pub new: Option<String>,
    pub fate: Fate,
    /// A rest state (wait or join) of the old version.
    pub rest: bool,
}

/// One old thread class and its counterpart (either may be missing).
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadPair {
    pub old: Option<u32>,
    pub new: Option<u32>,
    /// Every old state of `old`, in allocation order.
    pub states: Vec<StateFate>,
    /// Why there is no new column for an old thread class.
    pub note: Option<String>,
}

/// Where a finding applies, parsed from its `Thread1:S7` / `new:Thread1:S3` / `Thread2:*` refs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRef {
    pub new_side: bool,
    /// `Thread<k>` number.
    pub thread: u32,
    /// None for the whole thread (`*`).
    pub state: Option<String>,
}

impl StateRef {
    pub fn parse(s: &str) -> Option<StateRef> {
        let (new_side, rest) = match s.strip_prefix("new:") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (t, st) = rest.split_once(':')?;
        let thread = t.strip_prefix("Thread")?.parse().ok()?;
        Some(StateRef {
            new_side,
            thread,
            state: (st != "*").then(|| st.to_string()),
        })
    }
}

/// The change, ready to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeView {
    pub class: String,
    /// `plan 0123abcd… · verdict blocked` or `diff · 3 activities changed`.
    pub headline: String,
    pub old_label: String,
    pub new_label: String,
    pub compiler: String,
    pub pairs: Vec<ThreadPair>,
    pub findings: Vec<Finding>,
}

impl ChangeView {
    /// Findings that apply to `(new_side, thread, state)` (`state` None: the whole thread), as
    /// (1-based index, finding). For many look-ups use [`finding_index`](Self::finding_index).
    pub fn findings_at(
        &self,
        new_side: bool,
        thread: u32,
        state: Option<&str>,
    ) -> Vec<(usize, &Finding)> {
        self.finding_index().at(new_side, thread, state)
    }

    /// Every finding by the states it names, built once.
    pub fn finding_index(&self) -> FindingIndex<'_> {
        let mut by_ref: HashMap<(bool, u32, Option<String>), Vec<usize>> = HashMap::new();
        for (i, f) in self.findings.iter().enumerate() {
            for r in f.states.iter().filter_map(|s| StateRef::parse(s)) {
                let v = by_ref.entry((r.new_side, r.thread, r.state)).or_default();
                if v.last() != Some(&i) {
                    v.push(i);
                }
            }
        }
        FindingIndex {
            findings: &self.findings,
            by_ref,
        }
    }

    /// Old rest states without a counterpart: `(thread, state)`.
    pub fn removed_rest_states(&self) -> Vec<(u32, &str)> {
        self.pairs
            .iter()
            .filter_map(|p| p.old.map(|t| (t, p)))
            .flat_map(|(t, p)| {
                p.states
                    .iter()
                    .filter(|s| s.rest && s.new.is_none())
                    .map(move |s| (t, s.old.as_str()))
            })
            .collect()
    }
}

/// Findings by the states they name (see [`ChangeView::finding_index`]).
pub struct FindingIndex<'a> {
    findings: &'a [Finding],
    by_ref: HashMap<(bool, u32, Option<String>), Vec<usize>>,
}

impl<'a> FindingIndex<'a> {
    pub fn at(
        &self,
        new_side: bool,
        thread: u32,
        state: Option<&str>,
    ) -> Vec<(usize, &'a Finding)> {
        self.by_ref
            .get(&(new_side, thread, state.map(str::to_string)))
            .map(|v| v.iter().map(|&i| (i + 1, &self.findings[i])).collect())
            .unwrap_or_default()
    }
}

/// Thread class name → number (the first class of that name), built once: a process may have
/// thousands of thread classes.
fn numbers_by_class(cp: &CompiledProcess) -> HashMap<&str, u32> {
    let mut m = HashMap::with_capacity(cp.threads.len());
    for t in &cp.threads {
        m.entry(t.class.as_str()).or_insert(t.number);
    }
    m
}

fn source_label(origin: &str, version: Option<u64>) -> String {
    match version {
        Some(v) => format!("{origin} (version {v})"),
        None => origin.to_string(),
    }
}

/// The plan's view: fates from the state mapping, its guards and its open errors.
pub fn from_plan(plan: &MigrationPlan, old: &CompiledProcess, new: &CompiledProcess) -> ChangeView {
    // A removed state blocks the plan when an open error names it and the verdict is blocked;
    // otherwise its guard only asks that instances drain first.
    // Indexes built once (a plan may map hundreds of thousands of states): the states named by
    // an open error, the tables that must drain, the states that must drain.
    let blocked: HashSet<&str> = if plan.verdict == Verdict::Blocked {
        plan.findings
            .iter()
            .filter(|f| f.severity == Severity::Error && !f.acknowledged)
            .flat_map(|f| f.states.iter().map(String::as_str))
            .collect()
    } else {
        HashSet::new()
    };
    let blocking = |r: &str| blocked.contains(r);
    let mut drained_tables = HashSet::new();
    let mut drained_states = HashSet::new();
    for p in &plan.preconditions {
        match p {
            Precondition::NoRowsInTable { table, .. } => {
                drained_tables.insert(table);
            }
            Precondition::NoRowsAtState { table, state, .. } => {
                // A state that is no state name guards nothing the plan maps.
                if let Some(state) = StateName::parse(state) {
                    drained_states.insert((table, state));
                }
            }
            _ => {}
        }
    }
    let (old_numbers, new_numbers) = (numbers_by_class(old), numbers_by_class(new));
    let mut pairs = Vec::new();
    let mut paired_new = Vec::new();
    for t in &plan.threads {
        let old_n = old_numbers.get(t.old_class.as_str()).copied();
        let new_n = t
            .new_class
            .as_deref()
            .and_then(|c| new_numbers.get(c).copied());
        paired_new.extend(new_n);
        let short = t.old_class.rsplit('.').next().unwrap_or(&t.old_class);
        let table_drained = drained_tables.contains(&t.old_table);
        let states = t
            .states
            .iter()
            .map(|s| {
                let guarded = table_drained || drained_states.contains(&(&t.old_table, s.old));
                let fate = match (&s.new, s.change) {
                    (None, _) | (_, StateChange::Removed) => {
                        if guarded && !blocking(&format!("{short}:{}", s.old)) {
                            Fate::Drained
                        } else {
                            Fate::Removed
                        }
                    }
                    _ if table_drained => Fate::Drained,
                    (_, StateChange::Unchanged) => Fate::Unchanged,
                    (_, StateChange::Renumbered) => Fate::Renumbered,
                    (_, StateChange::Overridden) => Fate::Overridden,
                };
                StateFate {
                    old: s.old.to_string(),
                    new: s.new.map(|n| n.to_string()),
                    fate,
                    rest: s.wait || s.join,
                }
            })
            .collect();
        let note = match (&t.new_class, new_n) {
            (_, Some(_)) => None,
            // A versioned process: the old classes stay compiled and keep their rows.
            (Some(c), None) => Some(format!("rows keep running on {c} (the old classes stay)")),
            (None, None) => Some("no counterpart: no row may remain".to_string()),
        };
        pairs.push(ThreadPair {
            old: old_n,
            new: new_n,
            states,
            note,
        });
    }
    add_new_only(&mut pairs, &paired_new, new);
    ChangeView {
        class: plan.old.class.clone(),
        headline: format!("plan {} · verdict {}", plan.plan_id, plan.verdict.as_str()),
        old_label: source_label(&plan.old.origin, plan.old.version),
        new_label: source_label(&plan.new.origin, plan.new.version),
        compiler: plan.compiler.clone(),
        pairs,
        findings: plan.findings.clone(),
    }
}

/// The diff's view: fates from the state deltas alone (a diff has no guards or overrides).
pub fn from_diff(d: &ProcessDiff, old: &CompiledProcess, new: &CompiledProcess) -> ChangeView {
    let mut pairs = Vec::new();
    let mut paired_new = Vec::new();
    let old_threads = old.threads_by_number();
    for t in d.threads.iter().filter(|t| t.old.is_some()) {
        let old_t = t.old.and_then(|n| old_threads.get(&n).copied());
        paired_new.extend(t.new);
        let states = t
            .states
            .iter()
            .filter_map(|s| {
                let name = s.old?;
                let fate = match (s.change, &s.new) {
                    (DeltaKind::Unchanged, Some(_)) => Fate::Unchanged,
                    (_, Some(_)) => Fate::Renumbered,
                    _ => Fate::Removed,
                };
                let rest = old_t
                    .and_then(|ot| ot.state(&name))
                    .map_or(s.wait || s.join, |st| st.wait || st.join);
                Some(StateFate {
                    old: name.to_string(),
                    new: s.new.map(|n| n.to_string()),
                    fate,
                    rest,
                })
            })
            .collect();
        pairs.push(ThreadPair {
            old: t.old,
            new: t.new,
            states,
            note: t
                .new
                .is_none()
                .then(|| "no counterpart in the new version".to_string()),
        });
    }
    add_new_only(&mut pairs, &paired_new, new);
    let changed = d
        .activities
        .iter()
        .filter(|a| a.change != crate::diff::ActivityChangeKind::Unchanged)
        .count();
    ChangeView {
        class: d.old.class.clone(),
        headline: if d.identical {
            "diff · identical".to_string()
        } else {
            format!(
                "diff · {changed} activit{} changed",
                if changed == 1 { "y" } else { "ies" }
            )
        },
        old_label: source_label(&d.old.origin, d.old.version),
        new_label: source_label(&d.new.origin, d.new.version),
        compiler: d.compiler.clone(),
        pairs,
        findings: Vec::new(),
    }
}

/// New thread classes no old one maps to, as new-only pairs.
fn add_new_only(pairs: &mut Vec<ThreadPair>, paired: &[u32], new: &CompiledProcess) {
    let paired: HashSet<u32> = paired.iter().copied().collect();
    for t in &new.threads {
        if !paired.contains(&t.number) {
            pairs.push(ThreadPair {
                old: None,
                new: Some(t.number),
                states: Vec::new(),
                note: None,
            });
        }
    }
}
