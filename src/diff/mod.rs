//! Stage 3 — match old and new activities and derive per-state changes.
//!
//! [`diff`] takes both activity trees and both emulated compiles and returns a
//! [`ProcessDiff`]: every activity matched, removed or inserted (with what changed about it),
//! every thread class, state and response handler old → new, context property changes, and
//! the cases the matcher could not decide alone ([`MatchIssue`]). How activities are matched
//! is described in `matcher.rs`; every weight and limit is in [`costs`].

pub mod costs;
pub use costs::MatchLimits;
mod matcher;
mod model;
pub(crate) mod statemap;
pub(crate) mod tree;

pub use model::*;

use crate::bpl::{ActivityId, Bpl};
use crate::states::CompiledProcess;
pub(crate) use matcher::{crossing_ok, Crossing};
use matcher::{increasing_chain, Matching};
use std::collections::BTreeSet;
use tree::Tree;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiffError {
    #[error("pinned activity {0:?} does not exist in the {1} version")]
    UnknownActivity(ActivityId, &'static str),
    #[error("{0} is pinned more than once")]
    PinnedTwice(String),
}

/// A match fixed by the user (overrides `[[pin]]`): `new = None` means "no counterpart".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pin {
    pub old: ActivityId,
    pub new: Option<ActivityId>,
    /// The line of the `[[pin]]` in the overrides file, for messages (None: not from a file).
    pub line: Option<u32>,
}

/// Match the activities of two versions and derive every state change.
pub fn diff(
    old: &Bpl,
    new: &Bpl,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    pins: &[Pin],
) -> Result<ProcessDiff, DiffError> {
    diff_with_limits(old, new, old_c, new_c, pins, &MatchLimits::default())
}

/// [`diff`] with other matcher limits than the defaults of [`costs`].
pub fn diff_with_limits(
    old: &Bpl,
    new: &Bpl,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    pins: &[Pin],
    limits: &MatchLimits,
) -> Result<ProcessDiff, DiffError> {
    Ok(analyze(old, new, old_c, new_c, pins, limits)?.diff)
}

/// The diff plus the indexes behind it, for the plan's safety analysis.
pub(crate) struct Analysis<'a> {
    pub old: Tree<'a>,
    pub new: Tree<'a>,
    pub m: Matching,
    /// Its thread and handler lists are the state map (`statemap::map_states`), moved in.
    pub diff: ProcessDiff,
}

pub(crate) fn analyze<'a>(
    old: &'a Bpl,
    new: &'a Bpl,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    pins: &[Pin],
    limits: &MatchLimits,
) -> Result<Analysis<'a>, DiffError> {
    let (mut t_old, mut t_new) = crate::pair::side_by_side(|| Tree::new(old), || Tree::new(new));
    let mut pin_pos = Vec::new();
    let (mut seen_o, mut seen_n) = (BTreeSet::new(), BTreeSet::new());
    for p in pins {
        let o = t_old
            .pos(p.old)
            .ok_or(DiffError::UnknownActivity(p.old, "old"))?;
        if !seen_o.insert(o) {
            return Err(DiffError::PinnedTwice(format!("old {}", t_old.label(o))));
        }
        let n = match p.new {
            Some(id) => {
                let n = t_new.pos(id).ok_or(DiffError::UnknownActivity(id, "new"))?;
                if !seen_n.insert(n) {
                    return Err(DiffError::PinnedTwice(format!("new {}", t_new.label(n))));
                }
                Some(n)
            }
            None => None,
        };
        pin_pos.push((o, n));
    }
    let mut m = matcher::match_trees(&t_old, &t_new, &pin_pos, limits);
    m.pins = pins
        .iter()
        .zip(&pin_pos)
        .filter(|(_, (_, n))| n.is_some())
        .map(|(p, &(o, _))| (o, p.line))
        .collect();
    let map = statemap::map_states(old_c, new_c, &t_old, &t_new, &m);
    let activities = classify(&t_old, &t_new, &m);
    let cases = m
        .cases
        .iter()
        .flat_map(|(&o, pairs)| {
            let n = m.o2n[o];
            pairs
                .iter()
                .filter_map(move |&(i, j)| n.map(|n| (o, n, i, j)))
        })
        .map(|(o, n, i, j)| CaseMatch {
            old_switch: t_old.aref(o),
            new_switch: t_new.aref(n),
            old_case: i,
            new_case: j,
        })
        .collect();
    t_old.release_matching_data();
    t_new.release_matching_data();
    let context = context_deltas(old, new);
    let identical = t_old.hash[0] == t_new.hash[0]
        && context.is_empty()
        && old.process.request == new.process.request
        && old.process.response == new.process.response
        && old_c.class == new_c.class
        && old_c.package == new_c.package;
    let diff = ProcessDiff {
        schema_version: DIFF_SCHEMA_VERSION,
        compiler: new_c.compiler.as_str().to_string(),
        old: source(old, old_c),
        new: source(new, new_c),
        identical,
        activities,
        cases,
        threads: map.threads,
        handlers: map.handlers,
        context,
        issues: m.issues.clone(),
    };
    Ok(Analysis {
        old: t_old,
        new: t_new,
        m,
        diff,
    })
}

fn source(b: &Bpl, c: &CompiledProcess) -> DiffSource {
    DiffSource {
        origin: b.source.origin.clone(),
        sha256: b.source.sha256.clone(),
        class: c.class.clone(),
        package: c.package.clone(),
        version: c.version,
    }
}

/// The child lists of a matched pair that correspond: same slot name, or paired cases.
pub(crate) fn corresponding_slots(
    t_old: &Tree,
    t_new: &Tree,
    m: &Matching,
    o: usize,
    n: usize,
) -> Vec<(Vec<usize>, Vec<usize>)> {
    let find = |t: &Tree, p: usize, slot: &str| {
        t.slots[p]
            .iter()
            .find(|(s, _)| s == slot)
            .map(|(_, l)| l.clone())
    };
    let mut out = Vec::new();
    if let Some(pairs) = m.cases.get(&o) {
        for &(i, j) in pairs {
            if let (Some(a), Some(b)) = (
                find(t_old, o, &format!("case[{}]", i - 1)),
                find(t_new, n, &format!("case[{}]", j - 1)),
            ) {
                out.push((a, b));
            }
        }
        if let (Some(a), Some(b)) = (find(t_old, o, "default"), find(t_new, n, "default")) {
            out.push((a, b));
        }
        return out;
    }
    for (slot, l) in &t_old.slots[o] {
        if let Some(b) = find(t_new, n, slot) {
            out.push((l.clone(), b));
        }
    }
    out
}

/// Did the matched pair keep its place (matched parent, corresponding list)?
pub(crate) fn same_place(t_old: &Tree, t_new: &Tree, m: &Matching, o: usize, n: usize) -> bool {
    match (t_old.parent(o), t_new.parent(n)) {
        (None, None) => true,
        (Some(po), Some(pn)) if m.o2n[po] == Some(pn) => {
            let (so, sn) = (&t_old.slot[o], &t_new.slot[n]);
            match (case_index(so), case_index(sn)) {
                (Some(i), Some(j)) => m
                    .cases
                    .get(&po)
                    .is_some_and(|v| v.contains(&(i + 1, j + 1))),
                _ => so == sn,
            }
        }
        _ => false,
    }
}

pub(crate) fn case_index(slot: &str) -> Option<u32> {
    slot.strip_prefix("case[")?.strip_suffix(']')?.parse().ok()
}

/// The matched pairs between two sibling lists, as `(i, j)` with `o2n[ol[i]] == Some(nl[j])`, in
/// `ol` order. `nl` is looked up through a sorted index, so long lists (a flat sequence of tens of
/// thousands of activities) cost O(n log n), not O(n²).
pub(crate) fn matched_pairs(
    o2n: &[Option<usize>],
    ol: &[usize],
    nl: &[usize],
) -> Vec<(usize, usize)> {
    let mut at: Vec<(usize, usize)> = nl.iter().enumerate().map(|(j, &y)| (y, j)).collect();
    // Stable, so a repeated position keeps its first index, like a linear `position` would.
    at.sort_by_key(|&(y, _)| y);
    at.dedup_by_key(|&mut (y, _)| y);
    ol.iter()
        .enumerate()
        .filter_map(|(i, &x)| {
            let y = o2n[x]?;
            let k = at.binary_search_by_key(&y, |&(y, _)| y).ok()?;
            Some((i, at[k].1))
        })
        .collect()
}

fn classify(t_old: &Tree, t_new: &Tree, m: &Matching) -> Vec<ActivityChange> {
    // Reordered: matched siblings of corresponding lists that fall outside the longest
    // in-order chain.
    let mut reordered = vec![false; t_old.len()];
    for o in 0..t_old.len() {
        let Some(n) = m.o2n[o] else { continue };
        for (ol, nl) in corresponding_slots(t_old, t_new, m, o, n) {
            let pairs = matched_pairs(&m.o2n, &ol, &nl);
            let chain: BTreeSet<usize> = increasing_chain(pairs.clone())
                .into_iter()
                .map(|(i, _)| i)
                .collect();
            for (i, _) in pairs {
                if !chain.contains(&i) {
                    reordered[ol[i]] = true;
                }
            }
        }
    }
    // Exact capacity: an entry per activity of either version (inserted ones last).
    let inserted = m.n2o.iter().filter(|o| o.is_none()).count();
    let mut out = Vec::with_capacity(t_old.len() + inserted);
    for (o, &was_reordered) in reordered.iter().enumerate() {
        let Some(n) = m.o2n[o] else {
            // A copy merged into a new activity paired with another copy (`MatchVia::Merged`):
            // its states map there; the copy itself moved there.
            if let Some(n) = m.state_counterpart(t_old, o) {
                let root = m.merged.iter().any(|&(x, _)| x == o);
                out.push(ActivityChange {
                    change: if root {
                        ActivityChangeKind::Changed
                    } else {
                        ActivityChangeKind::Unchanged
                    },
                    aspects: if root { vec![Aspect::Moved] } else { vec![] },
                    old: Some(t_old.aref(o)),
                    new: Some(t_new.aref(n)),
                    via: Some(MatchVia::Merged),
                });
                continue;
            }
            out.push(ActivityChange {
                change: ActivityChangeKind::Removed,
                aspects: vec![],
                old: Some(t_old.aref(o)),
                new: None,
                via: None,
            });
            continue;
        };
        let (a, b) = (t_old.nodes[o], t_new.nodes[n]);
        let mut aspects = Vec::new();
        if !same_place(t_old, t_new, m, o, n) {
            aspects.push(Aspect::Moved);
        } else if was_reordered {
            aspects.push(Aspect::Reordered);
        }
        if a.name != b.name {
            aspects.push(Aspect::Renamed);
        }
        if t_old.own[o] != t_new.own[n] || a.element != b.element {
            aspects.push(Aspect::Modified);
        }
        match (a.disabled, b.disabled) {
            (true, false) => aspects.push(Aspect::Enabled),
            (false, true) => aspects.push(Aspect::Disabled),
            _ => {}
        }
        if t_old.inner[o] != t_new.inner[n] {
            aspects.push(Aspect::Contents);
        }
        out.push(ActivityChange {
            change: if aspects.is_empty() {
                ActivityChangeKind::Unchanged
            } else {
                ActivityChangeKind::Changed
            },
            aspects,
            old: Some(t_old.aref(o)),
            new: Some(t_new.aref(n)),
            via: m.via[o],
        });
    }
    for n in 0..t_new.len() {
        if m.n2o[n].is_none() {
            out.push(ActivityChange {
                change: ActivityChangeKind::Inserted,
                aspects: vec![],
                old: None,
                new: Some(t_new.aref(n)),
                via: None,
            });
        }
    }
    out
}

fn context_deltas(old: &Bpl, new: &Bpl) -> Vec<ContextDelta> {
    let mut out = Vec::new();
    // Name lookups through maps: a process may declare very many properties.
    let by_name = |bpl: &'_ Bpl| -> foldhash::HashMap<String, usize> {
        let mut m = foldhash::HashMap::default();
        for (i, p) in bpl.process.context.iter().enumerate() {
            m.entry(p.name.clone()).or_insert(i);
        }
        m
    };
    let (old_names, new_names) = (by_name(old), by_name(new));
    for p in &old.process.context {
        match new_names.get(&p.name).map(|&i| &new.process.context[i]) {
            None => out.push(ContextDelta {
                name: p.name.clone(),
                change: ContextChangeKind::Removed,
                old_type: p.type_name.clone(),
                new_type: None,
                initial_expression: None,
                old_initial_expression: p.initial_expression.clone(),
            }),
            Some(q) if q.type_name != p.type_name => out.push(ContextDelta {
                name: p.name.clone(),
                change: ContextChangeKind::Retyped,
                old_type: p.type_name.clone(),
                new_type: q.type_name.clone(),
                initial_expression: q.initial_expression.clone(),
                old_initial_expression: p.initial_expression.clone(),
            }),
            Some(q)
                if q.initial_expression.as_deref().map(str::trim)
                    != p.initial_expression.as_deref().map(str::trim) =>
            {
                out.push(ContextDelta {
                    name: p.name.clone(),
                    change: ContextChangeKind::InitialChanged,
                    old_type: p.type_name.clone(),
                    new_type: q.type_name.clone(),
                    initial_expression: q.initial_expression.clone(),
                    old_initial_expression: p.initial_expression.clone(),
                })
            }
            Some(_) => {}
        }
    }
    for q in &new.process.context {
        if !old_names.contains_key(&q.name) {
            out.push(ContextDelta {
                name: q.name.clone(),
                change: ContextChangeKind::Added,
                old_type: None,
                new_type: q.type_name.clone(),
                initial_expression: q.initial_expression.clone(),
                old_initial_expression: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests;
