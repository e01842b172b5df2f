//! What in-flight instances will experience when they resume under the new version:
//! skipped and re-run activities, new enclosing conditions, renamed or removed calls they wait
//! on, new context properties they read, `disabled` toggles.

use super::findings::{finding, Code, FindingExt};
use super::model::{Finding, Precondition, Severity, StateMapping};
use crate::bpl::ActivityKind;
use crate::diff::tree::{Order, Tree};
use crate::diff::Analysis;
use crate::states::{ActivityRef, CompiledProcess, Role};
use std::collections::{BTreeMap, BTreeSet};

/// `Thread1:S4` for a state of the old version, `new:Thread1:S6` for the new one.
pub(crate) fn sref(class: &str, state: &str) -> String {
    format!("{}:{state}", short(class))
}

pub(crate) fn new_sref(class: &str, state: &str) -> String {
    format!("new:{}:{state}", short(class))
}

pub(crate) fn short(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

/// A resume point: an old wait/join state and where it resumes in the new version.
pub(crate) struct Resume {
    pub old_ref: String,
    pub new_ref: String,
    /// Old owner position (None for an override whose old owner is gone).
    pub w_old: Option<usize>,
    pub w_new: usize,
    /// A flow join: the parent rests while the flow's children run.
    pub join: bool,
}

pub(crate) fn resume_points(
    a: &Analysis,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    threads: &[(u32, Option<u32>, Vec<StateMapping>)],
) -> Vec<Resume> {
    let mut out = Vec::new();
    for (old_no, new_no, states) in threads {
        let (Some(ot), Some(nt)) = (old_c.thread(*old_no), new_no.and_then(|n| new_c.thread(n)))
        else {
            continue;
        };
        for sm in states {
            if !(sm.wait || sm.join) {
                continue;
            }
            let (Some(new_state), Some(na)) = (&sm.new, &sm.new_activity) else {
                continue;
            };
            let Some(w_new) = a.new.pos(na.id) else {
                continue;
            };
            out.push(Resume {
                old_ref: sref(&ot.class, &sm.old),
                new_ref: new_sref(&nt.class, new_state),
                w_old: a.old.pos(sm.old_activity.id),
                w_new,
                join: sm.join,
            });
        }
    }
    out
}

/// What to report of a set of qualifying activities: the outermost ones whose whole
/// (generated) subtree qualifies. A new `<if>` wrapped around activities that ran already is
/// not itself "skipped"; a new `<if>` with new contents is reported as one.
fn outermost(t: &Tree, set: &BTreeSet<usize>) -> Vec<usize> {
    let mut full = vec![false; t.len()];
    for p in (0..t.len()).rev() {
        full[p] = set.contains(&p)
            && t.slots[p]
                .iter()
                .flat_map(|(_, l)| l.iter())
                .all(|&c| full[c] || !t.effective[c]);
    }
    (0..t.len())
        .filter(|&p| full[p] && !t.ancestors(p).any(|q| full[q]))
        .collect()
}

/// Does a thread resting at `w` run code at `p` only on a fault path it is not on?
fn in_foreign_handler(t: &Tree, p: usize, w: usize) -> bool {
    t.handler[p].is_some_and(|h| !(h == w || t.is_desc(w, h)))
}

/// Skipped, re-run and newly enclosing activities, one finding per distinct set of activities.
pub(crate) fn resume_findings(a: &Analysis, resumes: &[Resume]) -> Vec<Finding> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let was_before = |n: usize, w_old: Option<usize>| -> bool {
        match (m.n2o[n], w_old) {
            (Some(o), Some(w)) => to.effective[o] && to.order(o, w) == Order::Before,
            _ => false,
        }
    };
    let mut skipped: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut rerun: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut enclosing: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut branches: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    for r in resumes {
        let w = r.w_new;
        let mut sk = BTreeSet::new();
        let mut re = BTreeSet::new();
        for n in 0..tn.len() {
            if !tn.effective[n]
                || tn.thread_root[n] != tn.thread_root[w]
                || in_foreign_handler(tn, n, w)
            {
                continue;
            }
            match tn.order(n, w) {
                Order::Before if !was_before(n, r.w_old) => {
                    sk.insert(n);
                }
                Order::After if was_before(n, r.w_old) => {
                    re.insert(n);
                }
                _ => {}
            }
        }
        // A parent resting at a flow join started its branches already: a new branch never
        // runs, and a branch that finished never runs what was added to it.
        let mut branch = BTreeSet::new();
        if r.join && tn.element(w) == "flow" {
            for c in w + 1..=tn.end[w] {
                let was_inside = match (m.n2o[c], r.w_old) {
                    (Some(o), Some(wo)) => to.effective[o] && to.is_desc(o, wo),
                    _ => false,
                };
                if tn.effective[c] && !was_inside {
                    branch.insert(c);
                }
            }
        }
        // New conditions around the resume point.
        let enc: Vec<usize> = tn
            .ancestors(w)
            .filter(|&p| {
                matches!(
                    tn.element(p),
                    "if" | "switch" | "while" | "until" | "foreach"
                )
            })
            .filter(|&p| match (m.n2o[p], r.w_old) {
                (Some(o), Some(wo)) => !to.is_desc(wo, o),
                _ => true,
            })
            .collect();
        for (set, into) in [
            (sk, &mut skipped),
            (re, &mut rerun),
            (branch, &mut branches),
        ] {
            let top = outermost(tn, &set);
            if !top.is_empty() {
                into.entry(top).or_default().push(r);
            }
        }
        if !enc.is_empty() {
            enclosing.entry(enc).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    let states = |rs: &[&Resume]| {
        rs.iter()
            .flat_map(|r| [r.old_ref.clone(), r.new_ref.clone()])
            .collect::<Vec<_>>()
    };
    let names = |ps: &[usize]| {
        ps.iter()
            .map(|&p| tn.label(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let at = |rs: &[&Resume]| {
        rs.iter()
            .map(|r| r.old_ref.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (ps, rs) in &skipped {
        out.push(
            finding(
                Code::SkippedActivities,
                format!("instances resting at {} will skip {} that the new version runs before that point: {}", at(rs), count(ps.len(), "activity", "activities"), names(ps)),
            )
            .states(states(rs))
            .new_acts(ps.iter().map(|&p| tn.aref(p))),
        );
    }
    for (ps, rs) in &branches {
        out.push(
            finding(
                Code::SkippedActivities,
                format!(
                    "instances resting at {} (flow join) started their branches under the old version: a new branch never runs, and a branch that already finished never runs what was added to it: {}",
                    at(rs),
                    names(ps)
                ),
            )
            .states(states(rs))
            .new_acts(ps.iter().map(|&p| tn.aref(p))),
        );
    }
    for (ps, rs) in &rerun {
        let old_refs: Vec<ActivityRef> = ps
            .iter()
            .filter_map(|&p| m.n2o[p])
            .map(|o| to.aref(o))
            .collect();
        out.push(
            finding(
                Code::RerunActivities,
                format!("instances resting at {} will run again {} that moved from before to after that point: {}", at(rs), count(ps.len(), "activity", "activities"), names(ps)),
            )
            .states(states(rs))
            .old_acts(old_refs)
            .new_acts(ps.iter().map(|&p| tn.aref(p))),
        );
    }
    for (ps, rs) in &enclosing {
        out.push(
            finding(
                Code::NewEnclosingActivity,
                format!("instances resting at {} will resume inside {} without having evaluated its condition", at(rs), names(ps)),
            )
            .states(states(rs))
            .new_acts(ps.iter().map(|&p| tn.aref(p))),
        );
    }
    out
}

fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Does `text` read `context.<prop>` (as a whole name, possibly followed by `.sub` / `(`)?
pub(crate) fn mentions(text: &str, prop: &str) -> bool {
    let needle = format!("context.{prop}");
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(&needle) {
        let s = from + i;
        let e = s + needle.len();
        let before_ok = s == 0
            || !(bytes[s - 1].is_ascii_alphanumeric()
                || bytes[s - 1] == b'.'
                || bytes[s - 1] == b'%');
        let after_ok = e == bytes.len() || !(bytes[e].is_ascii_alphanumeric() || bytes[e] == b'%');
        if before_ok && after_ok {
            return true;
        }
        from = e;
    }
    false
}

/// New context properties read after a resume point. Returns one finding per property, and
/// for each property the suggested default.
pub(crate) fn context_reads(
    a: &Analysis,
    resumes: &[Resume],
    added: &[(String, Option<String>)],
) -> Vec<(String, Finding)> {
    let tn = &a.new;
    let mut out = Vec::new();
    for (prop, initial) in added {
        let readers: Vec<usize> = (0..tn.len())
            .filter(|&p| tn.effective[p])
            .filter(|&p| {
                let node = tn.nodes[p];
                node.attrs.iter().any(|(k, v)| {
                    // `<assign property="context.P">` writes P; its value may still read it.
                    let write_target = k == "property" && node.element == "assign";
                    !write_target && mentions(v, prop)
                })
            })
            .collect();
        let mut hit_states = BTreeSet::new();
        let mut hit_readers = BTreeSet::new();
        for r in resumes {
            let w = r.w_new;
            for &p in &readers {
                let after = match tn.order(p, w) {
                    Order::After | Order::Inside => true,
                    Order::Unordered => {
                        tn.thread_root[p] != tn.thread_root[w] || tn.handler[p].is_some()
                    }
                    _ => false,
                } || tn.common_loop(p, w);
                if after {
                    hit_states.insert(r.old_ref.clone());
                    hit_readers.insert(p);
                }
            }
        }
        if hit_states.is_empty() {
            continue;
        }
        let suggestion = match initial {
            Some(i) => format!("its initialexpression is {i}"),
            None => "it has no initialexpression".to_string(),
        };
        let f = finding(
            Code::NewContextProperty,
            format!(
                "new context property {prop} is read after the resume point of {} (by {}); in-flight rows hold NULL — {suggestion}; set a [[default]] for in-flight rows",
                hit_states.iter().cloned().collect::<Vec<_>>().join(", "),
                hit_readers.iter().map(|&p| tn.label(p)).collect::<Vec<_>>().join(", ")
            ),
        )
        .states(hit_states)
        .new_acts(hit_readers.iter().map(|&p| tn.aref(p)));
        out.push((prop.clone(), f));
    }
    out
}

/// Renamed or removed calls that a thread may still wait on, with the preconditions.
pub(crate) fn call_changes(
    a: &Analysis,
    old_c: &CompiledProcess,
) -> (Vec<Finding>, Vec<Precondition>, BTreeSet<String>) {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut findings = Vec::new();
    let mut pre = Vec::new();
    let mut removed_calls = BTreeSet::new();
    for o in 0..to.len() {
        let node = to.nodes[o];
        if node.element != "call" || !to.effective[o] {
            continue;
        }
        let Some(name) = &node.name else { continue };
        let ActivityKind::Call { response, .. } = &node.kind else {
            continue;
        };
        let thread = thread_of(to, o, old_c);
        let Some(thread) = thread else { continue };
        // Which wait states wait on it: its own (synchronous call) and every <sync> naming it.
        let mut waits: Vec<String> = Vec::new();
        for s in &thread.states {
            if s.role != Role::SyncWait {
                continue;
            }
            let Some(sp) = to.pos(s.activity.id) else {
                continue;
            };
            let waits_here = sp == o
                || (to.element(sp) == "sync"
                    && to.nodes[sp]
                        .attrs
                        .get("calls")
                        .is_some_and(|c| c.split(',').any(|x| x.trim() == name.as_str())));
            if waits_here {
                waits.push(sref(&thread.class, &s.name));
            }
        }
        if waits.is_empty() && response.is_none() {
            // Asynchronous, no response requested, nobody waits: nothing can be pending.
            continue;
        }
        let table = thread.table.clone();
        let (code, what) = match m.o2n[o] {
            Some(n) if tn.effective[n] && tn.nodes[n].name.as_deref() == Some(name.as_str()) => {
                continue
            }
            Some(n) if tn.effective[n] => (
                Code::PendingCallRenamed,
                format!(
                    "was renamed to {:?}",
                    tn.nodes[n].name.as_deref().unwrap_or("")
                ),
            ),
            Some(_) => (Code::PendingCallRemoved, "was disabled".to_string()),
            None => (Code::PendingCallRemoved, "was removed".to_string()),
        };
        if code == Code::PendingCallRemoved {
            removed_calls.insert(name.clone());
        }
        let waiting = if waits.is_empty() {
            String::new()
        } else {
            format!(" (waited on at {})", waits.join(", "))
        };
        let mut f = finding(code, format!("call {name:?}{waiting} {what}: a response still pending under {name:?} cannot be matched")).states(waits).old_acts([to.aref(o)]);
        if let Some(n) = m.o2n[o] {
            f = f.new_acts([tn.aref(n)]);
        }
        findings.push(f);
        pre.push(Precondition::NoPendingResponse {
            table,
            call: name.clone(),
            reason: format!("call {name:?} {what}; wait until no instance waits on it"),
        });
    }
    (findings, pre, removed_calls)
}

/// The thread class running activity `p`.
pub(crate) fn thread_of<'c>(
    t: &Tree,
    p: usize,
    c: &'c CompiledProcess,
) -> Option<&'c crate::states::ThreadClass> {
    let root = t.thread_root[p];
    if root == 0 {
        return c.threads.iter().find(|x| x.parent.is_none());
    }
    let id = t.id(root);
    c.threads
        .iter()
        .find(|x| x.parent.is_some() && x.root.id == id)
}

/// Positions (in `t`) of every activity that owns a state, a thread or a response handler.
pub(crate) fn owners(t: &Tree, c: &CompiledProcess) -> BTreeSet<usize> {
    let mut s = BTreeSet::new();
    for th in &c.threads {
        s.extend(t.pos(th.root.id));
        for st in &th.states {
            s.extend(t.pos(st.activity.id));
        }
    }
    for h in &c.response_handlers {
        s.extend(t.pos(h.activity.id));
    }
    s
}

/// Does the subtree at `p` hold an owner?
pub(crate) fn subtree_owns(t: &Tree, owners: &BTreeSet<usize>, p: usize) -> bool {
    owners.range(p..=t.end[p]).next().is_some()
}

/// `disabled` toggles: a warning when the toggled subtree allocates anything.
pub(crate) fn toggles(
    a: &Analysis,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
) -> Vec<Finding> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let (oo, no) = (owners(to, old_c), owners(tn, new_c));
    let mut out = Vec::new();
    for o in 0..to.len() {
        let Some(n) = m.o2n[o] else { continue };
        let (was, now) = (to.nodes[o].disabled, tn.nodes[n].disabled);
        if was == now {
            continue;
        }
        // Flow children and catches still allocate when disabled (spec 2.4), but their
        // contents do not: the owners inside tell.
        let allocates = subtree_owns(to, &oo, o) || subtree_owns(tn, &no, n);
        let verb = if now { "disabled" } else { "enabled" };
        let (sev, effect) = if allocates {
            (Severity::Warning, "it allocates states, threads or response handlers, so everything generated after it is renumbered")
        } else {
            (
                Severity::Info,
                "it allocates nothing, so no state is renumbered",
            )
        };
        out.push(
            finding(
                Code::DisabledToggled,
                format!("{} was {verb}: {effect}", tn.label(n)),
            )
            .severity(sev)
            .old_acts([to.aref(o)])
            .new_acts([tn.aref(n)]),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mentions;

    #[test]
    fn mentions_whole_names_only() {
        assert!(mentions("context.Total+1", "Total"));
        assert!(mentions("context.Total", "Total"));
        assert!(mentions("context.Total.Count", "Total"));
        assert!(!mentions("context.TotalX", "Total"));
        assert!(!mentions("xcontext.Total", "Total"));
        assert!(!mentions("..context.Total2", "Total"));
        assert!(mentions("(context.A=1)&&context.Total", "Total"));
    }
}
