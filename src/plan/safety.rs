//! What in-flight instances will experience when they resume under the new version:
//! skipped and re-run activities, new enclosing conditions, renamed or removed calls they wait
//! on, new context properties they read, `disabled` toggles.

use super::findings::{finding, Code, FindingExt};
use super::model::{Finding, Precondition, Severity, StateMapping};
use crate::bpl::{Activity, ActivityId, ActivityKind};
use crate::diff::tree::{Order, Tree};
use crate::diff::Analysis;
use crate::states::{ActivityRef, CompiledProcess, Role};
use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    threads: &[(u32, Option<u32>, &[StateMapping])],
) -> Vec<Resume> {
    let mut out = Vec::new();
    let (old_t, new_t) = (old_c.threads_by_number(), new_c.threads_by_number());
    for &(old_no, new_no, states) in threads {
        let (Some(ot), Some(nt)) = (
            old_t.get(&old_no).copied(),
            new_no.and_then(|n| new_t.get(&n).copied()),
        ) else {
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
///
/// `set` is in ascending order without repeats. `full` is scratch space of `t.len()` entries,
/// all `false` on entry and on return; the work is proportional to the set and the children
/// of its members, not to the tree.
fn outermost(t: &Tree, set: &[usize], full: &mut [bool]) -> Vec<usize> {
    debug_assert!(set.windows(2).all(|x| x[0] < x[1]));
    // Children come after their parent in pre-order: descending order sees them first.
    for &p in set.iter().rev() {
        full[p] = t.slots[p]
            .iter()
            .flat_map(|(_, l)| l.iter())
            .all(|&c| full[c] || !t.effective[c]);
    }
    // In ascending pre-order, a full position has a full ancestor exactly when it lies in the
    // subtree of the last one kept (that one is the topmost full ancestor).
    let mut top = Vec::new();
    let mut covered_to: Option<usize> = None;
    for &p in set {
        if full[p] && covered_to.is_none_or(|e| p > e) {
            top.push(p);
            covered_to = Some(t.end[p]);
        }
    }
    for &p in set {
        full[p] = false;
    }
    top
}

/// Does a thread resting at `w` run code at `p` only on a fault path it is not on?
fn in_foreign_handler(t: &Tree, p: usize, w: usize) -> bool {
    t.handler[p].is_some_and(|h| !(h == w || t.is_desc(w, h)))
}

/// Where each new activity was in the old version, built once for every resume point.
struct Alignment {
    /// The old position of a matched new activity the old version generated; `None` when it
    /// cannot have run before any old resume point (new, or disabled in the old version).
    old: Vec<Option<usize>>,
    /// The last position of the aligned run holding `n`: consecutive new positions matched to
    /// consecutive old ones (`old[n + i] == old[n] + i` up to it). An unchanged stretch of
    /// the document is one run, so a resume point costs O(runs), not O(activities).
    run_end: Vec<usize>,
}

impl Alignment {
    fn new(a: &Analysis) -> Alignment {
        let (to, tn, m) = (&a.old, &a.new, &a.m);
        let old: Vec<Option<usize>> = (0..tn.len())
            .map(|n| m.n2o[n].filter(|&o| to.effective[o]))
            .collect();
        let mut run_end: Vec<usize> = (0..tn.len()).collect();
        for n in (0..tn.len().saturating_sub(1)).rev() {
            if let (Some(x), Some(y)) = (old[n], old[n + 1]) {
                if y == x + 1 {
                    run_end[n] = run_end[n + 1];
                }
            }
        }
        Alignment { old, run_end }
    }

    /// Calls `f(from, to)` for new positions `lo..=hi` whose counterpart ran before the old
    /// resume point (`ran`: its old position lies in `old_before`, sorted disjoint ranges) or
    /// did not (`!ran`), as inclusive sub-ranges in ascending order.
    fn split(
        &self,
        lo: usize,
        hi: usize,
        old_before: &[(usize, usize)],
        ran: bool,
        mut f: impl FnMut(usize, usize),
    ) {
        let mut n = lo;
        while n <= hi {
            let b = self.run_end[n].min(hi);
            let Some(y0) = self.old[n] else {
                // A run of one; it never ran before anything.
                if !ran {
                    f(n, n);
                }
                n = b + 1;
                continue;
            };
            let y1 = y0 + (b - n);
            let to_new = |y: usize| n + (y - y0);
            let mut part = |from: usize, to: usize, inside: bool| {
                if inside == ran {
                    f(to_new(from), to_new(to));
                }
            };
            let mut y = y0;
            let mut k = old_before.partition_point(|&(_, e)| e < y0);
            while y <= y1 {
                match old_before.get(k) {
                    Some(&(s, e)) if s <= y1 => {
                        if s > y {
                            part(y, s - 1, false);
                        }
                        let until = e.min(y1);
                        part(y.max(s), until, true);
                        y = until + 1;
                        k += 1;
                    }
                    _ => {
                        part(y, y1, false);
                        y = y1 + 1;
                    }
                }
            }
            n = b + 1;
        }
    }
}

/// Appends to `out`, in ascending order, the positions `lo..=hi` that a thread resting at `w`
/// runs: generated, in `w`'s thread, not in a fault handler `w` is not in. Skips whole
/// subtrees that fail.
fn push_running(t: &Tree, w: usize, lo: usize, hi: usize, out: &mut Vec<usize>) {
    let tr = t.thread_root[w];
    let mut n = lo;
    while n <= hi {
        // Everything under another thread's root, a disabled activity or a foreign handler
        // fails the same way.
        let r = t.thread_root[n];
        if r != tr {
            n = t.end[r] + 1;
        } else if !t.effective[n] {
            n = t.end[n] + 1;
        } else if in_foreign_handler(t, n, w) {
            n = t.handler[n].map_or(n, |h| t.end[h]) + 1;
        } else {
            out.push(n);
            n += 1;
        }
    }
}

/// What a thread resting at a resume point skips or runs again, with its indexes and buffers
/// made once for every resume point.
struct Moved<'x, 'a> {
    a: &'x Analysis<'a>,
    align: Alignment,
    new_before: Vec<(usize, usize)>,
    new_after: Vec<(usize, usize)>,
    old_before: Vec<(usize, usize)>,
    old_after: Vec<(usize, usize)>,
}

impl<'x, 'a> Moved<'x, 'a> {
    fn new(a: &'x Analysis<'a>) -> Moved<'x, 'a> {
        Moved {
            a,
            align: Alignment::new(a),
            new_before: Vec::new(),
            new_after: Vec::new(),
            old_before: Vec::new(),
            old_after: Vec::new(),
        }
    }

    /// For a thread resting at `w` (new) that rested at `w_old` (old), the activities it runs
    /// (generated, its thread, no foreign fault handler) that are skipped — before `w` in the
    /// new version but not before `w_old` in the old one (or new) — into `sk`, and those run
    /// again — after `w` now but before `w_old` then — into `re`; both ascending.
    fn compute(
        &mut self,
        w: usize,
        w_old: Option<usize>,
        sk: &mut Vec<usize>,
        re: &mut Vec<usize>,
    ) {
        let (to, tn) = (&self.a.old, &self.a.new);
        tn.order_ranges(w, &mut self.new_before, &mut self.new_after);
        match w_old {
            Some(wo) => to.order_ranges(wo, &mut self.old_before, &mut self.old_after),
            None => self.old_before.clear(),
        }
        let tr = tn.thread_root[w];
        let in_thread = |&(s, e): &(usize, usize)| s >= tr && e <= tn.end[tr];
        // The ranges, the parts of each and the positions in a part are visited in order.
        sk.clear();
        re.clear();
        for (ranges, ran, out) in [(&self.new_before, false, sk), (&self.new_after, true, re)] {
            // A range lies wholly inside the thread's subtree or wholly outside it.
            for &(s, e) in ranges.iter().filter(|x| in_thread(x)) {
                self.align.split(s, e, &self.old_before, ran, |lo, hi| {
                    push_running(tn, w, lo, hi, out)
                });
            }
        }
    }
}

/// Skipped, re-run and newly enclosing activities, one finding per distinct set of activities.
pub(crate) fn resume_findings(a: &Analysis, resumes: &[Resume]) -> Vec<Finding> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut moved = Moved::new(a);
    let mut full = vec![false; tn.len()];
    let (mut sk, mut re, mut branch) = (Vec::new(), Vec::new(), Vec::new());
    // Keyed by the activities and, for each, whether it is data-dependent (so a group never
    // mixes a certain skip with a possible one).
    let mut skipped: BTreeMap<Vec<(usize, bool)>, Vec<&Resume>> = BTreeMap::new();
    let mut rerun: BTreeMap<Vec<(usize, bool)>, Vec<&Resume>> = BTreeMap::new();
    let mut enclosing: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut evaluated: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut switched: BTreeMap<Vec<(usize, String, String)>, Vec<&Resume>> = BTreeMap::new();
    let mut branches: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    for r in resumes {
        let w = r.w_new;
        moved.compute(w, r.w_old, &mut sk, &mut re);
        // A parent resting at a flow join started its branches already: a new branch never
        // runs, and a branch that finished never runs what was added to it.
        branch.clear();
        if r.join && tn.element(w) == "flow" {
            for c in w + 1..=tn.end[w] {
                let was_inside = match (m.n2o[c], r.w_old) {
                    (Some(o), Some(wo)) => to.effective[o] && to.is_desc(o, wo),
                    _ => false,
                };
                if tn.effective[c] && !was_inside {
                    branch.push(c);
                }
            }
        }
        // New conditions around the resume point: never evaluated, or evaluated before the
        // resume point under the old version (it now encloses it whatever the outcome was).
        let conds: Vec<usize> = tn
            .ancestors(w)
            .filter(|&p| {
                matches!(
                    tn.element(p),
                    "if" | "switch" | "while" | "until" | "foreach"
                )
            })
            .collect();
        let mut enc = Vec::new();
        let mut eval = Vec::new();
        let mut sw = Vec::new();
        for &p in &conds {
            match (m.n2o[p], r.w_old) {
                (Some(o), Some(wo)) if to.is_desc(wo, o) => {
                    // Same conditional around both: did the instance's branch change?
                    if let (Some((_, ns, _)), Some((_, os, _))) =
                        (tn.child_towards(p, w), to.child_towards(o, wo))
                    {
                        if !same_branch(a, o, os, ns) {
                            sw.push((p, branch_name(to, o, os), branch_name(tn, p, ns)));
                        }
                    }
                }
                (Some(o), Some(wo)) if to.effective[o] && to.order(o, wo) == Order::Before => {
                    eval.push(p)
                }
                _ => enc.push(p),
            }
        }
        if !eval.is_empty() {
            evaluated.entry(eval).or_default().push(r);
        }
        if !sw.is_empty() {
            switched.entry(sw).or_default().push(r);
        }
        // Whether each lies in a branch (or loop body) that does not hold the resume point:
        // then whether the instance ran it depends on data.
        for (set, into) in [(&sk, &mut skipped), (&re, &mut rerun)] {
            let top: Vec<(usize, bool)> = outermost(tn, set, &mut full)
                .into_iter()
                .map(|p| (p, conditional_between(tn, p, w)))
                .collect();
            if !top.is_empty() {
                into.entry(top).or_default().push(r);
            }
        }
        let top = outermost(tn, &branch, &mut full);
        if !top.is_empty() {
            branches.entry(top).or_default().push(r);
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
            .map(|&p| act_label(tn, p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let at = |rs: &[&Resume]| {
        rs.iter()
            .map(|r| r.old_ref.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Certain and data-dependent activities go into separate findings ("will …" / "may …,
    // depending on the branch they took"), so each finding's activities share one answer.
    let parts = |ps: &[(usize, bool)]| -> Vec<(bool, Vec<usize>)> {
        let sure: Vec<usize> = ps.iter().filter(|x| !x.1).map(|x| x.0).collect();
        let may: Vec<usize> = ps.iter().filter(|x| x.1).map(|x| x.0).collect();
        [(false, sure), (true, may)]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect()
    };
    for (ps, rs) in &skipped {
        for (may, part) in parts(ps) {
            out.push(
                finding(
                    Code::SkippedActivities,
                    format!(
                        "instances resting at {} {} {}{}: {} (the new version runs them before that point)",
                        at(rs),
                        if may { "may skip" } else { "will skip" },
                        count(part.len(), "activity", "activities"),
                        if may { ", depending on the branch they took" } else { "" },
                        names(&part)
                    ),
                )
                .states(states(rs))
                .new_acts(part.iter().map(|&p| tn.aref(p))),
            );
        }
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
        for (may, part) in parts(ps) {
            let old_refs: Vec<ActivityRef> = part
                .iter()
                .filter_map(|&p| m.n2o[p])
                .map(|o| to.aref(o))
                .collect();
            out.push(
                finding(
                    Code::RerunActivities,
                    format!(
                        "instances resting at {} {} {}{}: {} (they moved from before to after that point)",
                        at(rs),
                        if may { "may run again" } else { "will run again" },
                        count(part.len(), "activity", "activities"),
                        if may { ", depending on the branch they took" } else { "" },
                        names(&part)
                    ),
                )
                .states(states(rs))
                .old_acts(old_refs)
                .new_acts(part.iter().map(|&p| tn.aref(p))),
            );
        }
    }
    for (ps, rs) in &evaluated {
        out.push(
            finding(
                Code::NewEnclosingActivity,
                format!("instances resting at {} will resume inside {}, whose condition they evaluated before reaching that point under the old version: whatever the outcome was, they now continue inside it", at(rs), names(ps)),
            )
            .states(states(rs))
            .new_acts(ps.iter().map(|&p| tn.aref(p))),
        );
    }
    for (sw, rs) in &switched {
        let what = sw
            .iter()
            .map(|(p, ob, nb)| format!("{} ({ob} before, {nb} now)", tn.label(*p)))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(
            finding(
                Code::BranchSwitched,
                format!("instances resting at {} chose another branch than the one they resume in: {what}", at(rs)),
            )
            .states(states(rs))
            .new_acts(sw.iter().map(|(p, _, _)| tn.aref(*p))),
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

/// How a reviewer finds an activity: its label, or for an unnamed one inside a call's
/// `<request>`/`<response>`, through its call (`call "Credit" response assign #1`).
pub(crate) fn act_label(t: &Tree, p: usize) -> String {
    let node = t.nodes[p];
    if node.name.is_none() && t.in_message[p] {
        if let Some(c) = t.ancestors(p).find(|&q| t.element(q) == "call") {
            let mut x = p;
            while t.parent[x] != Some(c) {
                x = t.parent[x].unwrap_or(c);
            }
            let inner = if x == p {
                String::new()
            } else {
                format!(" {}", node.element)
            };
            return format!(
                "{} {} {} #{}{inner}",
                t.label(c),
                t.slot[x],
                t.element(x),
                t.index[x] + 1
            );
        }
    }
    t.label(p)
}

/// Is there a conditional branch or loop body between `p` and its lowest common ancestor
/// with `w` that does not hold `w`? Then whether a thread resting at `w` ran (or will run)
/// `p` depends on the data it held.
fn conditional_between(t: &Tree, p: usize, w: usize) -> bool {
    let l = t.lca(p, w);
    std::iter::once(p)
        .chain(t.ancestors(p))
        .take_while(|&q| q != l)
        .filter_map(|q| t.parent[q])
        .any(|par| par != l && matches!(t.element(par), "if" | "switch" | "while" | "foreach"))
}

/// Do the old branch `os` of `o` and the new branch `ns` of its counterpart correspond?
fn same_branch(a: &Analysis, o: usize, os: &str, ns: &str) -> bool {
    let idx = |s: &str| -> Option<u32> { s.strip_prefix("case[")?.strip_suffix(']')?.parse().ok() };
    match (idx(os), idx(ns)) {
        (Some(i), Some(j)) => {
            a.m.cases
                .get(&o)
                .is_some_and(|v| v.contains(&(i + 1, j + 1)))
        }
        _ => os == ns,
    }
}

fn branch_name(t: &Tree, p: usize, slot: &str) -> String {
    match (t.element(p), slot) {
        ("if", s) => format!("<{s}>"),
        (_, "default") => "<default>".to_string(),
        (_, s) => {
            let i: Option<usize> = s
                .strip_prefix("case[")
                .and_then(|x| x.strip_suffix(']'))
                .and_then(|x| x.parse().ok());
            match (i, &t.nodes[p].kind) {
                (Some(i), ActivityKind::Switch { cases, .. }) => {
                    match cases.get(i).and_then(|c| c.name.clone()) {
                        Some(n) => format!("case {n:?}"),
                        None => format!("case #{}", i + 1),
                    }
                }
                _ => s.to_string(),
            }
        }
    }
}

fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

/// Does `text` read `context.<prop>` (as a whole name, possibly followed by `.sub` / `(`)?
#[cfg(test)]
pub(crate) fn mentions(text: &str, prop: &str) -> bool {
    mentions_needle(text, &format!("context.{prop}"))
}

/// Does `text` read the context property `needle` names (`context.<prop>`, made once per
/// property), as a whole name, possibly followed by `.sub` / `(`?
fn mentions_needle(text: &str, needle: &str) -> bool {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = text[from..].find(needle) {
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

/// Where `needle` occurs in `text` as a whole name: for each, whether it is assigned there
/// (`context.P =`, not `==`) rather than read.
fn occurrences(text: &str, needle: &str) -> Vec<bool> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(needle) {
        let s = from + i;
        let e = s + needle.len();
        let before_ok = s == 0
            || !(bytes[s - 1].is_ascii_alphanumeric()
                || bytes[s - 1] == b'.'
                || bytes[s - 1] == b'%');
        let after_ok = e == bytes.len() || !(bytes[e].is_ascii_alphanumeric() || bytes[e] == b'%');
        if before_ok && after_ok {
            let rest = text[e..].trim_start();
            let assigned = rest.starts_with('=') && !rest.starts_with("==");
            out.push(assigned || sql_into_target(text, s));
        }
        from = e;
    }
    out
}

/// Is the occurrence at `at` an embedded-SQL host variable written by `INTO` (`SELECT … INTO
/// :context.P, …`)? The nearest SQL keyword before it decides.
fn sql_into_target(text: &str, at: usize) -> bool {
    if at == 0 || text.as_bytes()[at - 1] != b':' {
        return false;
    }
    let before = text[..at].to_ascii_uppercase();
    let last = |k: &str| {
        before
            .match_indices(k)
            .filter(|(i, _)| {
                let b = before.as_bytes();
                (*i == 0 || !b[i - 1].is_ascii_alphanumeric())
                    && b.get(i + k.len())
                        .is_none_or(|c| !c.is_ascii_alphanumeric())
            })
            .map(|(i, _)| i)
            .last()
    };
    let into = last("INTO");
    let other = [
        "WHERE", "VALUES", "SET", "FROM", "AND", "OR", "ON", "HAVING",
    ]
    .iter()
    .filter_map(|k| last(k))
    .max();
    match (into, other) {
        (Some(i), Some(o)) => i > o,
        (Some(_), None) => true,
        _ => false,
    }
}

/// What the first access to one context property along a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// Some path reads it before anything writes it.
    Read,
    /// Every path writes it before reading it.
    Write,
    /// Some path neither reads nor writes it.
    Neither,
}

/// First-access analysis of one property over the new tree: reads are attribute values
/// (conditions, values, sources, durations…) and `<code>`/`<sql>` text; writes are
/// `<assign property>`, `<transform target>`, `<xpath property>` and `context.P = …` in code.
struct Dataflow<'x, 'a> {
    t: &'x Tree<'a>,
    needle: String,
}

impl Dataflow<'_, '_> {
    fn own(&self, p: usize) -> Access {
        let node = self.t.nodes[p];
        let is_target = |v: &str| {
            let v = v.trim();
            v == self.needle
                || (v.starts_with(self.needle.as_str())
                    && !v[self.needle.len()..]
                        .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '%'))
        };
        let mut read = false;
        let mut write = false;
        for (k, v) in &node.attrs {
            let target_attr = matches!(
                (node.element.as_str(), k.as_str()),
                ("assign" | "xpath", "property")
                    | ("transform", "target")
                    | ("rule", "resultLocation")
            );
            if target_attr {
                // `context.P` as a whole is a write; `context.P.X` assigns into it (a read of P).
                if v.trim() == self.needle {
                    write = true;
                } else if is_target(v) {
                    read = true;
                }
            } else if mentions_needle(v, &self.needle) {
                read = true;
            }
        }
        if let Some(code) = &node.code {
            match occurrences(code, &self.needle).first() {
                Some(false) => read = true,
                Some(true) => write = true,
                None => {}
            }
        }
        if read {
            Access::Read
        } else if write {
            Access::Write
        } else {
            Access::Neither
        }
    }

    fn list(&self, l: &[usize]) -> Access {
        for &p in l {
            match self.scan(p) {
                Access::Neither => continue,
                x => return x,
            }
        }
        Access::Neither
    }

    fn slot(&self, p: usize, name: &str) -> Option<&Vec<usize>> {
        self.t.slots[p]
            .iter()
            .find(|(s, _)| s == name)
            .map(|(_, l)| l)
    }

    /// Alternatives: a read on one path is a read; a write only when every path writes.
    fn any_of(&self, paths: &[Access]) -> Access {
        if paths.contains(&Access::Read) {
            Access::Read
        } else if !paths.is_empty() && paths.iter().all(|&x| x == Access::Write) {
            Access::Write
        } else {
            Access::Neither
        }
    }

    fn scan(&self, p: usize) -> Access {
        let t = self.t;
        if !t.effective[p] {
            return Access::Neither;
        }
        let own = self.own(p);
        match t.element(p) {
            "if" => {
                if own == Access::Read {
                    return own;
                }
                let branch = |s: &str| self.slot(p, s).map_or(Access::Neither, |l| self.list(l));
                self.any_of(&[branch("true"), branch("false")])
            }
            "switch" => {
                if own == Access::Read {
                    return own;
                }
                let cases = match &t.nodes[p].kind {
                    ActivityKind::Switch { cases, .. } => cases,
                    _ => return own,
                };
                if cases
                    .iter()
                    .filter_map(|c| c.condition.as_deref())
                    .any(|c| mentions_needle(c, &self.needle))
                {
                    return Access::Read;
                }
                let mut paths: Vec<Access> = (0..cases.len())
                    .map(|i| {
                        self.slot(p, &format!("case[{i}]"))
                            .map_or(Access::Neither, |l| self.list(l))
                    })
                    .collect();
                paths.push(
                    self.slot(p, "default")
                        .map_or(Access::Neither, |l| self.list(l)),
                );
                self.any_of(&paths)
            }
            "while" | "foreach" => {
                if own == Access::Read {
                    return own;
                }
                // The body may not run at all.
                let body = self
                    .slot(p, "body")
                    .map_or(Access::Neither, |l| self.list(l));
                self.any_of(&[body, Access::Neither])
            }
            "until" => {
                let body = self
                    .slot(p, "body")
                    .map_or(Access::Neither, |l| self.list(l));
                if body != Access::Neither {
                    body
                } else {
                    own
                }
            }
            "flow" => {
                let paths: Vec<Access> = t.slots[p]
                    .iter()
                    .flat_map(|(_, l)| l.iter())
                    .map(|&c| self.scan(c))
                    .collect();
                if paths.contains(&Access::Read) {
                    Access::Read
                } else if paths.contains(&Access::Write) {
                    Access::Write
                } else {
                    Access::Neither
                }
            }
            "call" => {
                let req = self
                    .slot(p, "request")
                    .map_or(Access::Neither, |l| self.list(l));
                if req != Access::Neither {
                    return req;
                }
                if own != Access::Neither {
                    return own;
                }
                self.slot(p, "response")
                    .map_or(Access::Neither, |l| self.list(l))
            }
            // Sequences and scope bodies run in order; fault handlers only on a fault.
            "sequence" | "scope" => {
                if own == Access::Read {
                    return own;
                }
                let l = self.slot(p, "body").or_else(|| self.slot(p, "children"));
                l.map_or(Access::Neither, |l| self.list(l))
            }
            _ => own,
        }
    }

    /// The first access along the paths of a thread resuming at `w`: the response handlers
    /// of what it waits on (they run first), then what follows `w` level by level outwards;
    /// an enclosing loop may run its whole body again.
    fn after_resume(&self, w: usize, join: bool) -> Access {
        let t = self.t;
        if !join {
            let first = match t.element(w) {
                "call" => self
                    .slot(w, "response")
                    .map_or(Access::Neither, |l| self.list(l)),
                "sync" => {
                    let calls: Vec<&str> = t.nodes[w]
                        .attrs
                        .get("calls")
                        .map(|c| c.split(',').map(str::trim).collect())
                        .unwrap_or_default();
                    let tr = t.thread_root[w];
                    let paths: Vec<Access> = (0..t.len())
                        .filter(|&p| {
                            t.element(p) == "call"
                                && t.effective[p]
                                && t.thread_root[p] == tr
                                && t.nodes[p]
                                    .name
                                    .as_deref()
                                    .is_some_and(|n| calls.contains(&n))
                        })
                        .map(|p| {
                            self.slot(p, "response")
                                .map_or(Access::Neither, |l| self.list(l))
                        })
                        .collect();
                    self.any_of(&paths)
                }
                _ => Access::Neither,
            };
            if first != Access::Neither {
                return first;
            }
        }
        let mut x = w;
        while let Some(l) = t.parent[x] {
            if t.element(l) == "flow" {
                // A branch thread ends here; the parent goes on from its own join state.
                return Access::Neither;
            }
            if !matches!(t.slot[x].as_str(), "request" | "response") {
                let list = self.slot(l, &t.slot[x]).cloned().unwrap_or_default();
                let later: Vec<usize> = list.into_iter().filter(|&c| c > x).collect();
                match self.list(&later) {
                    Access::Neither => {}
                    a => return a,
                }
            }
            if matches!(t.element(l), "while" | "until" | "foreach") {
                let again = self.scan(l);
                if again == Access::Read {
                    return again;
                }
            }
            x = l;
        }
        Access::Neither
    }
}

/// The SQL literal for a constant ObjectScript `initialexpression` (a number or a string
/// literal); None for anything computed.
fn sql_literal(expr: &str) -> Option<String> {
    let e = expr.trim();
    if !e.is_empty()
        && e.trim_start_matches('-')
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.')
        && e.chars().any(|c| c.is_ascii_digit())
    {
        return Some(e.to_string());
    }
    let inner = e.strip_prefix('"')?.strip_suffix('"')?;
    // ObjectScript doubles a quote inside a string; a lone quote means it was not one literal.
    if inner.replace("\"\"", "").contains('"') {
        return None;
    }
    Some(format!(
        "'{}'",
        inner.replace("\"\"", "\"").replace('\'', "''")
    ))
}

/// Is the type a scalar a SQL default can stand in for?
fn scalar_type(ty: Option<&str>) -> bool {
    match ty {
        None => true,
        Some(t) => {
            let t = t.trim();
            let base = t.strip_prefix("%Library.").map(|b| format!("%{b}"));
            let t = base.as_deref().unwrap_or(t);
            matches!(
                t,
                "%String"
                    | "%Integer"
                    | "%Boolean"
                    | "%Numeric"
                    | "%Float"
                    | "%Decimal"
                    | "%Date"
                    | "%Time"
                    | "%TimeStamp"
                    | "%PosixTime"
                    | "%Double"
                    | "%SmallInt"
                    | "%TinyInt"
                    | "%BigInt"
                    | "%Name"
                    | "%Char"
                    | "%VarString"
                    | "%Status"
                    | "%Currency"
                    | "%DateTime"
                    | "%Binary"
            )
        }
    }
}

/// A new context property as the finding needs it: name, type, initialexpression.
pub(crate) struct NewProperty {
    pub name: String,
    pub type_name: Option<String>,
    pub initial: Option<String>,
}

/// New context properties that some path from a resume point reads before anything writes
/// them. Returns one finding per property.
pub(crate) fn context_reads(
    a: &Analysis,
    resumes: &[Resume],
    added: &[NewProperty],
) -> Vec<(String, Finding)> {
    let tn = &a.new;
    let mut out = Vec::new();
    for prop in added {
        let df = Dataflow {
            t: tn,
            needle: format!("context.{}", prop.name),
        };
        let mut hit_states: Vec<String> = Vec::new();
        for r in resumes {
            if df.after_resume(r.w_new, r.join) == Access::Read {
                hit_states.push(r.old_ref.clone());
            }
        }
        if hit_states.is_empty() {
            continue;
        }
        crate::plan::render::sort_states(&mut hit_states);
        hit_states.dedup();
        let readers: Vec<usize> = (0..tn.len())
            .filter(|&p| tn.effective[p] && df.own(p) == Access::Read)
            .collect();
        let initial = match &prop.initial {
            Some(i) => format!("its initialexpression ({i}) applies to new instances only"),
            None => "it has no initialexpression".to_string(),
        };
        let remedy = if scalar_type(prop.type_name.as_deref()) {
            match prop.initial.as_deref().and_then(sql_literal) {
                Some(lit) => format!(
                    "to give in-flight rows the value new instances get, add to the overrides file: [[default]] property = {:?} value = {:?}",
                    prop.name, lit
                ),
                None => format!(
                    "to give in-flight rows a value, add to the overrides file: [[default]] property = {:?} value = (a SQL literal of type {})",
                    prop.name,
                    prop.type_name.as_deref().unwrap_or("%String")
                ),
            }
        } else {
            format!(
                "its type {} is an object class, which a [[default]] (a SQL value) cannot create: guard the reads (e.g. $IsObject(context.{})) or let those instances finish first",
                prop.type_name.as_deref().unwrap_or(""),
                prop.name
            )
        };
        let f = finding(
            Code::NewContextProperty,
            format!(
                "new context property {} is read before it is written on a path from the resume point of {} (read by {}); in-flight rows hold NULL ({initial}): {remedy}",
                prop.name,
                hit_states.join(", "),
                readers.iter().map(|&p| act_label(tn, p)).collect::<Vec<_>>().join(", ")
            ),
        )
        .states(hit_states)
        .new_acts(readers.iter().map(|&p| tn.aref(p)));
        out.push((prop.name.clone(), f));
    }
    out
}

/// The thread class running each activity, looked up by the activity's thread root.
struct ThreadOf<'c> {
    c: &'c CompiledProcess,
    /// The first thread class without a parent (the main thread).
    main: Option<usize>,
    /// Root activity → the first flow-branch thread class rooted there.
    by_root: HashMap<ActivityId, usize>,
}

impl<'c> ThreadOf<'c> {
    fn new(c: &'c CompiledProcess) -> ThreadOf<'c> {
        let mut by_root = HashMap::new();
        for (i, x) in c.threads.iter().enumerate() {
            if x.parent.is_some() {
                by_root.entry(x.root.id).or_insert(i);
            }
        }
        ThreadOf {
            c,
            main: c.threads.iter().position(|x| x.parent.is_none()),
            by_root,
        }
    }

    /// The index (in `c.threads`) of the thread class running activity `p`.
    fn of(&self, t: &Tree, p: usize) -> Option<usize> {
        let root = t.thread_root[p];
        if root == 0 {
            return self.main;
        }
        self.by_root.get(&t.id(root)).copied()
    }
}

/// The `SyncWait` states of one thread class (indices into its `states`), by what they wait
/// on.
struct SyncWaits<'t> {
    /// By owner position: a synchronous `<call>` waits in its own state.
    by_owner: HashMap<usize, Vec<usize>>,
    /// By each call name a `<sync calls="…">` lists.
    by_call: HashMap<&'t str, Vec<usize>>,
}

impl<'t> SyncWaits<'t> {
    fn new(t: &Tree<'t>, thread: &crate::states::ThreadClass) -> SyncWaits<'t> {
        let mut w = SyncWaits {
            by_owner: HashMap::new(),
            by_call: HashMap::new(),
        };
        for (i, s) in thread.states.iter().enumerate() {
            if s.role != Role::SyncWait {
                continue;
            }
            let Some(sp) = t.pos(s.activity.id) else {
                continue;
            };
            w.by_owner.entry(sp).or_default().push(i);
            let node: &'t Activity = t.nodes[sp];
            if node.element == "sync" {
                if let Some(calls) = node.attrs.get("calls") {
                    for x in calls.split(',') {
                        w.by_call.entry(x.trim()).or_default().push(i);
                    }
                }
            }
        }
        w
    }

    /// The states waiting on the call at `o` named `name`, in state order.
    fn waiting_on(&self, o: usize, name: &str) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .by_owner
            .get(&o)
            .into_iter()
            .chain(self.by_call.get(name))
            .flatten()
            .copied()
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The message type of a call's request or response.
fn message_type(node: &Activity, response: bool) -> Option<String> {
    match &node.kind {
        ActivityKind::Call {
            request,
            response: r,
            ..
        } => (if response { r } else { request })
            .as_ref()
            .and_then(|m| m.type_name.clone()),
        _ => None,
    }
}

/// The activities of a call's `<response>` (a call gets a response handler only when there
/// are some, spec 5.1).
fn response_handler(t: &Tree, p: usize) -> Vec<usize> {
    t.slots[p]
        .iter()
        .find(|(s, _)| s == "response")
        .map(|(_, l)| l.clone())
        .unwrap_or_default()
}

/// Is `name` awaited in the new version: a synchronous call of that name, or a `<sync>`
/// listing it?
fn awaited_in_new(tn: &Tree, name: &str) -> bool {
    (0..tn.len()).any(|p| {
        let node = tn.nodes[p];
        tn.effective[p]
            && match node.element.as_str() {
                "call" => {
                    node.name.as_deref() == Some(name)
                        && !matches!(
                            node.attrs.get("async").map(String::as_str),
                            Some("1" | "true")
                        )
                }
                "sync" => node
                    .attrs
                    .get("calls")
                    .is_some_and(|c| c.split(',').any(|x| x.trim() == name)),
                _ => false,
            }
    })
}

/// Calls an old state can be waiting on (a synchronous call's wait, or a `<sync>` listing
/// it) that were renamed, removed or changed, with the preconditions.
pub(crate) fn call_changes(
    a: &Analysis,
    old_c: &CompiledProcess,
) -> (Vec<Finding>, Vec<Precondition>, BTreeSet<String>) {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut findings = Vec::new();
    let mut pre = Vec::new();
    let mut removed_calls = BTreeSet::new();
    let thread_of = ThreadOf::new(old_c);
    // Built on first use, by thread index.
    let mut sync_waits: HashMap<usize, SyncWaits> = HashMap::new();
    for o in 0..to.len() {
        let node = to.nodes[o];
        if node.element != "call" || !to.effective[o] {
            continue;
        }
        let Some(name) = &node.name else { continue };
        let Some(ti) = thread_of.of(to, o) else {
            continue;
        };
        let thread = &thread_of.c.threads[ti];
        // Which wait states wait on it: its own (synchronous call) and every <sync> naming it.
        let wait_idx = sync_waits
            .entry(ti)
            .or_insert_with(|| SyncWaits::new(to, thread))
            .waiting_on(o, name);
        let mut waits: Vec<String> = wait_idx
            .iter()
            .map(|&i| sref(&thread.class, &thread.states[i].name))
            .collect();
        if waits.is_empty() {
            // Nothing waits on it: a response arriving for it is handled by the handler
            // recorded in the row, whatever the call is called now.
            continue;
        }
        crate::plan::render::sort_states(&mut waits);
        let table = thread.table.clone();
        let n_eff = m.o2n[o].filter(|&n| tn.effective[n]);
        match n_eff {
            Some(n) if tn.nodes[n].name.as_deref() == Some(name.as_str()) => {
                // Same call, same name: what did the instances waiting on it not see coming?
                let nn = tn.nodes[n];
                let mut changes = Vec::new();
                let mut severity = Severity::Warning;
                let attr = |x: &Activity, k: &str| x.attrs.get(k).cloned().unwrap_or_default();
                if attr(node, "target") != attr(nn, "target") {
                    changes.push(format!(
                        "target {:?} → {:?}",
                        attr(node, "target"),
                        attr(nn, "target")
                    ));
                }
                for (resp, what) in [(false, "request type"), (true, "response type")] {
                    let (x, y) = (message_type(node, resp), message_type(nn, resp));
                    // A response type that appears with a new handler is that handler's finding.
                    if x != y && !(resp && x.is_none()) {
                        changes.push(format!(
                            "{what} {} → {}",
                            x.as_deref().unwrap_or("(none)"),
                            y.as_deref().unwrap_or("(none)")
                        ));
                        if resp && x.is_some() && y.is_some() {
                            severity = Severity::Error;
                        }
                    }
                }
                let (ho, hn) = (response_handler(to, o), response_handler(tn, n));
                let hash = |t: &Tree, l: &[usize]| l.iter().map(|&p| t.hash[p]).collect::<Vec<_>>();
                match (ho.is_empty(), hn.is_empty()) {
                    (true, false) => {
                        findings.push(
                            finding(
                                Code::HandlerNotRegistered,
                                format!(
                                    "call {name:?} gained a <response> handler, but instances waiting on it at {} sent the request under the old version without one: the new handler will not run for them",
                                    waits.join(", ")
                                ),
                            )
                            .states(waits.clone())
                            .old_acts([to.aref(o)])
                            .new_acts([tn.aref(n)]),
                        );
                    }
                    (false, false) if hash(to, &ho) != hash(tn, &hn) => {
                        changes.push("its <response> handler".to_string())
                    }
                    (false, true) => changes.push("its <response> handler was removed".to_string()),
                    _ => {}
                }
                if changes.is_empty() {
                    continue;
                }
                let only_handler = changes.len() == 1 && changes[0] == "its <response> handler";
                if only_handler {
                    // An edited handler is what a change usually means; it runs for them.
                    severity = Severity::Info;
                }
                let mut f = finding(
                    Code::AwaitedCallChanged,
                    format!(
                        "call {name:?} (waited on at {}) changed: {}; instances waiting there get the answer to the old request{}",
                        waits.join(", "),
                        changes.join(", "),
                        if severity == Severity::Error {
                            ", which the new handler reads as another class"
                        } else if only_handler {
                            " and run the new handler on it"
                        } else {
                            ""
                        }
                    ),
                )
                .states(waits.clone())
                .old_acts([to.aref(o)])
                .new_acts([tn.aref(n)]);
                f.severity = severity;
                findings.push(f);
                if severity == Severity::Error {
                    for &i in &wait_idx {
                        pre.push(Precondition::NoRowsAtState {
                            table: table.clone(),
                            state: thread.states[i].name.clone(),
                            reason: format!("call {name:?} now expects another response type"),
                        });
                    }
                }
                continue;
            }
            _ => {}
        }
        if awaited_in_new(tn, name) {
            // The name is still awaited in the new version: a pending response under it
            // still completes a wait (its handler is recorded in the row).
            continue;
        }
        let (code, what) = match (m.o2n[o], n_eff) {
            (_, Some(n)) => (
                Code::PendingCallRenamed,
                format!(
                    "was renamed to {:?}",
                    tn.nodes[n].name.as_deref().unwrap_or("")
                ),
            ),
            (Some(_), None) => (Code::PendingCallRemoved, "was disabled".to_string()),
            (None, None) => (Code::PendingCallRemoved, "was removed".to_string()),
        };
        if code == Code::PendingCallRemoved {
            removed_calls.insert(name.clone());
        }
        // A removed synchronous call waited on only in its own state: its removed wait state
        // (BPM0101) says it already; keep only the precondition.
        let own_only = wait_idx
            .iter()
            .all(|&i| thread.states[i].activity.id == node.id);
        if m.o2n[o].is_none() && own_only {
            pre.push(Precondition::NoPendingResponse {
                table,
                call: name.clone(),
                reason: format!("call {name:?} {what}; wait until no instance waits on it"),
            });
            continue;
        }
        let mut f = finding(
            code,
            format!(
                "call {name:?} (waited on at {}) {what}: a response still pending under {name:?} cannot be matched",
                waits.join(", ")
            ),
        )
        .states(waits)
        .old_acts([to.aref(o)]);
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
    use super::{in_foreign_handler, mentions, Moved};
    use crate::bpl::{load, LoadOptions};
    use crate::diff::tree::Order;
    use crate::states::{compile, Compiler};
    use std::path::Path;

    /// The straightforward O(activities) scan per resume point `Moved` replaces.
    fn moved_by_scan(
        a: &crate::diff::Analysis,
        w: usize,
        w_old: Option<usize>,
    ) -> (Vec<usize>, Vec<usize>) {
        let (to, tn, m) = (&a.old, &a.new, &a.m);
        let was_before = |n: usize| match (m.n2o[n], w_old) {
            (Some(o), Some(wo)) => to.effective[o] && to.order(o, wo) == Order::Before,
            _ => false,
        };
        let (mut sk, mut re) = (Vec::new(), Vec::new());
        for n in 0..tn.len() {
            if !tn.effective[n]
                || tn.thread_root[n] != tn.thread_root[w]
                || in_foreign_handler(tn, n, w)
            {
                continue;
            }
            match tn.order(n, w) {
                Order::Before if !was_before(n) => sk.push(n),
                Order::After if was_before(n) => re.push(n),
                _ => {}
            }
        }
        (sk, re)
    }

    #[test]
    fn skipped_and_rerun_sets_equal_a_scan_of_every_activity() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let mut pairs = Vec::new();
        let mut changes: Vec<_> = std::fs::read_dir(root.join("changes"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("old.cls").exists())
            .collect();
        changes.sort();
        for d in &changes {
            pairs.push((d.join("old.cls"), d.join("new.cls")));
            pairs.push((d.join("new.cls"), d.join("old.cls")));
        }
        // Unrelated processes too: every activity moves, is new or is gone.
        let mut states: Vec<_> = std::fs::read_dir(root.join("states"))
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path().join("process.cls")))
            .filter(|p| p.exists())
            .collect();
        states.sort();
        for w in states.windows(2) {
            pairs.push((w[0].clone(), w[1].clone()));
        }
        assert!(pairs.len() > 40);
        let (mut sk, mut re) = (Vec::new(), Vec::new());
        let mut checked = 0;
        for (old, new) in &pairs {
            let opts = LoadOptions::default();
            let (o, n) = (
                load(&old.to_string_lossy(), &opts).unwrap(),
                load(&new.to_string_lossy(), &opts).unwrap(),
            );
            let (Ok(oc), Ok(nc)) = (
                compile(&o, Compiler::Current),
                compile(&n, Compiler::Current),
            ) else {
                continue;
            };
            let a = crate::diff::analyze(&o, &n, &oc, &nc, &[]).unwrap();
            let mut moved = Moved::new(&a);
            for w in 0..a.new.len() {
                // None (an overridden state whose old owner is gone) and every old position.
                let olds = std::iter::once(None).chain((0..a.old.len()).map(Some));
                for w_old in olds {
                    moved.compute(w, w_old, &mut sk, &mut re);
                    let (want_sk, want_re) = moved_by_scan(&a, w, w_old);
                    assert_eq!(sk, want_sk, "{old:?} → {new:?}: skipped at {w} / {w_old:?}");
                    assert_eq!(re, want_re, "{old:?} → {new:?}: re-run at {w} / {w_old:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 5_000, "{checked}");
    }

    #[test]
    fn constant_initial_expressions_become_sql_literals() {
        use super::sql_literal;
        assert_eq!(sql_literal("\"EU\"").as_deref(), Some("'EU'"));
        assert_eq!(
            sql_literal("\"it's \"\"x\"\"\"").as_deref(),
            Some("'it''s \"x\"'")
        );
        assert_eq!(sql_literal("42").as_deref(), Some("42"));
        assert_eq!(sql_literal("-1.5").as_deref(), Some("-1.5"));
        assert_eq!(sql_literal("$H"), None);
        assert_eq!(sql_literal("\"a\"_\"b\""), None);
    }

    #[test]
    fn code_occurrences_tell_writes_from_reads() {
        use super::occurrences;
        assert_eq!(
            occurrences(" Set context.Risk = 1", "context.Risk"),
            vec![true]
        );
        assert_eq!(
            occurrences(" Set x = context.Risk", "context.Risk"),
            vec![false]
        );
        assert_eq!(
            occurrences("If context.Risk == 2", "context.Risk"),
            vec![false]
        );
        assert_eq!(
            occurrences(
                "SELECT Risk INTO :context.Risk FROM T WHERE Id = :context.Id",
                "context.Risk"
            ),
            vec![true]
        );
        assert_eq!(
            occurrences(
                "SELECT Risk INTO :x FROM T WHERE Id = :context.Id",
                "context.Id"
            ),
            vec![false]
        );
        assert!(occurrences("Set context.RiskX = 1", "context.Risk").is_empty());
    }

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
