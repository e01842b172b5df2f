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
    /// The new state starts a child list of `w_new` over (an override onto an ENTRY,
    /// IF_TRUE, loop body … state): that slot (`*` for every body slot) runs from its start.
    pub enters: Option<String>,
}

/// The child list of its activity that a thread resting at a state of this role runs from
/// its start, if any (see [`Resume::enters`]).
pub(crate) fn entered_slot(role: &crate::states::Role) -> Option<String> {
    use crate::states::Role::*;
    match role {
        Entry | ScopeBody | WhileTest | WhileBody | UntilBody | ForeachTest | ForeachBody => {
            Some("*".to_string())
        }
        IfTrue => Some("true".to_string()),
        IfFalse => Some("false".to_string()),
        SwitchCase(i) => Some(format!("case[{}]", i.saturating_sub(1))),
        SwitchDefault => Some("default".to_string()),
        _ => None,
    }
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
            let enters = nt.state(new_state).and_then(|x| entered_slot(&x.role));
            out.push(Resume {
                old_ref: sref(&ot.class, &sm.old),
                new_ref: new_sref(&nt.class, new_state),
                w_old: a.old.pos(sm.old_activity.id),
                w_new,
                join: sm.join,
                enters,
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
        enters: Option<&str>,
        sk: &mut Vec<usize>,
        re: &mut Vec<usize>,
    ) {
        let (to, tn) = (&self.a.old, &self.a.new);
        tn.order_ranges(w, &mut self.new_before, &mut self.new_after);
        if let Some(slot) = enters {
            // The entered child lists run after the resume point; they precede every
            // later sibling in pre-order.
            let inner: Vec<(usize, usize)> = tn.slots[w]
                .iter()
                .filter(|(name, _)| {
                    if slot == "*" {
                        !matches!(
                            name.as_str(),
                            "request" | "response" | "handlers" | "faulthandlers"
                        )
                    } else {
                        name == slot
                    }
                })
                .filter_map(|(_, l)| Some((*l.first()?, tn.end[*l.last()?])))
                .collect();
            self.new_after.splice(0..0, inner);
        }
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

/// What a thread resumed at `r` runs again: the outermost such activities (new positions).
pub(crate) fn reruns(a: &Analysis, r: &Resume) -> Vec<usize> {
    let mut moved = Moved::new(a);
    let (mut sk, mut re) = (Vec::new(), Vec::new());
    moved.compute(r.w_new, r.w_old, r.enters.as_deref(), &mut sk, &mut re);
    let mut full = vec![false; a.new.len()];
    outermost(&a.new, &re, &mut full)
}

/// A run-length encoded ascending list of `(position, may)`: `(first, last, may)` stands for
/// `first`, then each next position right after the previous one's subtree (`end[p] + 1`)
/// up to `last`. Runs are maximal, so equal lists have equal encodings; the order is the
/// lexicographic order of the decoded lists, computed run by run.
struct Runs<'t> {
    runs: Vec<(usize, usize, bool)>,
    end: &'t [usize],
}

impl<'t> Runs<'t> {
    /// Encodes ascending positions that do not hold one another.
    fn encode(end: &'t [usize], items: impl IntoIterator<Item = (usize, bool)>) -> Runs<'t> {
        let mut runs: Vec<(usize, usize, bool)> = Vec::new();
        for (p, may) in items {
            match runs.last_mut() {
                Some((_, last, m)) if *m == may && end[*last] + 1 == p => *last = p,
                _ => runs.push((p, p, may)),
            }
        }
        Runs { runs, end }
    }

    /// The encoded list.
    fn decode(&self) -> Vec<(usize, bool)> {
        let mut out = Vec::new();
        for &(first, last, may) in &self.runs {
            let mut p = first;
            loop {
                out.push((p, may));
                if p >= last {
                    break;
                }
                p = self.end[p] + 1;
            }
        }
        out
    }
}

impl Ord for Runs<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering::*;
        let (a, b) = (&self.runs, &other.runs);
        let (mut i, mut j) = (0, 0);
        // The current position in run i of a and run j of b.
        let (mut pa, mut pb) = (a.first().map(|x| x.0), b.first().map(|x| x.0));
        loop {
            let (Some(x), Some(y)) = (pa, pb) else {
                return pa.is_some().cmp(&pb.is_some());
            };
            let o = (x, a[i].2).cmp(&(y, b[j].2));
            if o != Equal {
                return o;
            }
            // Both follow the same chain of positions up to the nearer run end.
            let (la, lb) = (a[i].1, b[j].1);
            let next =
                |runs: &Vec<(usize, usize, bool)>, k: &mut usize, last: usize, stop: usize| {
                    if last == stop {
                        *k += 1;
                        runs.get(*k).map(|r| r.0)
                    } else {
                        Some(self.end[stop] + 1)
                    }
                };
            let stop = la.min(lb);
            pa = next(a, &mut i, la, stop);
            pb = next(b, &mut j, lb, stop);
        }
    }
}

impl PartialEq for Runs<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.runs == other.runs
    }
}

impl Eq for Runs<'_> {}

impl PartialOrd for Runs<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// How many skipped or re-run activities a finding names (and lists in its activities);
/// it counts the others ("…, and 12 more").
const NAMED: usize = 10;

/// Skipped, re-run and newly enclosing activities, one finding per distinct set of activities.
pub(crate) fn resume_findings(a: &Analysis, resumes: &[Resume]) -> Vec<Finding> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut moved = Moved::new(a);
    let mut full = vec![false; tn.len()];
    let (mut sk, mut re, mut branch) = (Vec::new(), Vec::new(), Vec::new());
    // Keyed by the activities and, for each, whether it is data-dependent (so a group never
    // mixes a certain skip with a possible one).
    // The key is run-length encoded: `(first, last, may)` stands for the consecutive
    // siblings from `first` to `last` (each next one starts right after the previous one's
    // subtree), so a long stretch of moved siblings costs one entry, not one per activity.
    let mut skipped: BTreeMap<Runs, Vec<&Resume>> = BTreeMap::new();
    let mut rerun: BTreeMap<Runs, Vec<&Resume>> = BTreeMap::new();
    let mut enclosing: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut evaluated: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut switched: BTreeMap<Vec<(usize, String, String)>, Vec<&Resume>> = BTreeMap::new();
    let mut branches: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    for r in resumes {
        let w = r.w_new;
        moved.compute(w, r.w_old, r.enters.as_deref(), &mut sk, &mut re);
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
            let top = Runs::encode(
                &tn.end,
                outermost(tn, set, &mut full)
                    .into_iter()
                    .map(|p| (p, conditional_between(tn, p, w))),
            );
            if !top.runs.is_empty() {
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
    // A long list of skipped or re-run activities names the first ones and counts the rest.
    let some_names = |ps: &[usize]| {
        let mut s = names(&ps[..ps.len().min(NAMED)]);
        if ps.len() > NAMED {
            s.push_str(&format!(", and {} more", ps.len() - NAMED));
        }
        s
    };
    let named = |ps: &[usize]| ps[..ps.len().min(NAMED)].to_vec();
    let at = |rs: &[&Resume]| {
        rs.iter()
            .map(|r| r.old_ref.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Certain and data-dependent activities go into separate findings ("will …" / "may …,
    // depending on the branch they took"), so each finding's activities share one answer.
    let parts = |ps: &Runs| -> Vec<(bool, Vec<usize>)> {
        let ps = ps.decode();
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
                        how_many(tn, &part, may),
                        if may { depending(tn, &part, rs) } else { this_iteration(tn, &part, rs) },
                        some_names(&part)
                    ),
                )
                .states(states(rs))
                .new_acts(named(&part).into_iter().map(|p| tn.aref(p))),
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
            let old_refs: Vec<ActivityRef> = named(&part)
                .into_iter()
                .filter_map(|p| m.n2o[p])
                .map(|o| to.aref(o))
                .collect();
            out.push(
                finding(
                    Code::RerunActivities,
                    format!(
                        "instances resting at {} {} {}{}: {} (they moved from before to after that point)",
                        at(rs),
                        if may { "may run again" } else { "will run again" },
                        how_many(tn, &part, may),
                        if may { depending(tn, &part, rs) } else { "" },
                        some_names(&part)
                    ),
                )
                .states(states(rs))
                .old_acts(old_refs)
                .new_acts(named(&part).into_iter().map(|p| tn.aref(p))),
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

/// "2 activities", or for data-dependent ones in different branches of one conditional (a
/// row runs at most one branch) "one of 2 activities" / "some of 3 activities".
fn how_many(t: &Tree, ps: &[usize], may: bool) -> String {
    let all = count(ps.len(), "activity", "activities");
    if !may || ps.len() < 2 {
        return all;
    }
    let exclusive = |a: usize, b: usize| {
        let l = t.lca(a, b);
        matches!(t.element(l), "if" | "switch")
            && matches!((t.child_towards(l, a), t.child_towards(l, b)), (Some((_, x, _)), Some((_, y, _))) if x != y)
    };
    let pairs: Vec<bool> = ps
        .iter()
        .enumerate()
        .flat_map(|(i, &a)| ps[i + 1..].iter().map(move |&b| (a, b)))
        .map(|(a, b)| exclusive(a, b))
        .collect();
    if pairs.iter().all(|&x| x) {
        format!("one of {all}")
    } else if pairs.iter().any(|&x| x) {
        format!("some of {all}")
    } else {
        all
    }
}

/// For certain skips inside a loop body that also holds the resume point: only the current
/// iteration skips them.
fn this_iteration(t: &Tree, ps: &[usize], rs: &[&Resume]) -> &'static str {
    let in_loop = ps.iter().all(|&p| {
        rs.iter().all(|r| {
            let l = t.lca(p, r.w_new);
            std::iter::once(l)
                .chain(t.ancestors(l))
                .any(|q| matches!(t.element(q), "while" | "until" | "foreach"))
        })
    });
    if in_loop {
        " in the current iteration of their loop (later iterations run them)"
    } else {
        ""
    }
}

/// Why a skip or re-run is data-dependent: a branch, a loop, or both, between the
/// activities and the resume points.
fn depending(t: &Tree, ps: &[usize], rs: &[&Resume]) -> &'static str {
    let (mut branch, mut looped) = (false, false);
    for &p in ps {
        for r in rs {
            let l = t.lca(p, r.w_new);
            for par in std::iter::once(p)
                .chain(t.ancestors(p))
                .take_while(|&q| q != l)
                .filter_map(|q| t.parent[q])
                .filter(|&par| par != l)
            {
                match t.element(par) {
                    "if" | "switch" => branch = true,
                    "while" | "foreach" => looped = true,
                    _ => {}
                }
            }
        }
    }
    match (branch, looped) {
        (true, true) => ", depending on the branches they took and whether a loop ran",
        (false, true) => ", depending on whether the loop ran (it may have run 0 times)",
        _ => ", depending on the branch they took",
    }
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
pub(crate) fn sql_literal(expr: &str) -> Option<String> {
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
pub(crate) fn scalar_type(ty: Option<&str>) -> bool {
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
    default_of: impl Fn(&str) -> Option<String>,
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
        let scalar = scalar_type(prop.type_name.as_deref());
        let initial = match &prop.initial {
            Some(i) => format!("its initialexpression ({i}) applies to new instances only"),
            // An object property may be created by instantiate="1": for new instances only.
            None if !scalar => {
                "instantiate and initialexpression create or set it for new instances only"
                    .to_string()
            }
            None => "it has no initialexpression".to_string(),
        };
        let remedy = if let Some(v) = default_of(&prop.name) {
            format!("the overrides file sets them to {v} ([[default]])")
        } else if scalar {
            match prop.initial.as_deref().and_then(sql_literal) {
                Some(_) => "to give in-flight rows the value new instances get, add the [[default]] shown under \"suggested overrides\" to the overrides file".to_string(),
                None => format!(
                    "to give in-flight rows a value, add the [[default]] shown under \"suggested overrides\" to the overrides file, with a SQL literal of type {} chosen for them",
                    prop.type_name.as_deref().unwrap_or("%String")
                ),
            }
        } else {
            format!(
                "its type {} is an object class, which a [[default]] (a SQL value) cannot create: unless it is a %SerialObject (IRIS gives an empty one on access), guard the reads (e.g. $IsObject(context.{})) or let those instances finish first",
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
/// Did the `<response>` code of call `o` (old) and call `n` (new) change?
pub(crate) fn response_body_changed(to: &Tree, o: usize, tn: &Tree, n: usize) -> bool {
    let hash = |t: &Tree, l: &[usize]| l.iter().map(|&p| t.hash[p]).collect::<Vec<_>>();
    hash(to, &response_handler(to, o)) != hash(tn, &response_handler(tn, n))
}

fn response_handler(t: &Tree, p: usize) -> Vec<usize> {
    t.slots[p]
        .iter()
        .find(|(s, _)| s == "response")
        .map(|(_, l)| l.clone())
        .unwrap_or_default()
}

/// Is `name` awaited in the new version: a synchronous call of that name, or a `<sync>`
/// listing it?
pub(crate) fn awaited_in_new(tn: &Tree, name: &str) -> bool {
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

/// `<sync>` activities that rows can rest at whose calls, type or timeout changed (BPM0212).
pub(crate) fn sync_changes(a: &Analysis, old_c: &CompiledProcess) -> Vec<Finding> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut out = Vec::new();
    for th in &old_c.threads {
        for st in th.states.iter().filter(|s| s.role == Role::SyncWait) {
            let Some(o) = to.pos(st.activity.id) else {
                continue;
            };
            let Some(n) = m.o2n[o] else { continue };
            if to.element(o) != "sync" || tn.element(n) != "sync" || !tn.effective[n] {
                continue;
            }
            let attr =
                |t: &Tree, p: usize, k: &str| t.nodes[p].attrs.get(k).map(|v| v.trim().to_string());
            let calls = |t: &Tree, p: usize| -> BTreeSet<String> {
                attr(t, p, "calls")
                    .unwrap_or_default()
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            };
            let mut changes = Vec::new();
            // Old names read through the call matching: a renamed call listed under its new
            // name is that call (its rename is BPM0203's).
            let renamed = |name: &String| -> String {
                (0..to.len())
                    .find(|&p| to.element(p) == "call" && to.nodes[p].name.as_ref() == Some(name))
                    .and_then(|p| m.o2n[p])
                    .and_then(|q| tn.nodes[q].name.clone())
                    .unwrap_or_else(|| name.clone())
            };
            let (co, cn) = (calls(to, o), calls(tn, n));
            let co: BTreeSet<String> = co.iter().map(renamed).collect();
            if co != cn {
                let added: Vec<&String> = cn.difference(&co).collect();
                let dropped: Vec<&String> = co.difference(&cn).collect();
                let mut what = format!(
                    "calls {:?} → {:?}",
                    attr(to, o, "calls").unwrap_or_default(),
                    attr(tn, n, "calls").unwrap_or_default()
                );
                // A newly listed call the old version sent before the sync (asynchronously)
                // may be pending; one it never sent before it is not.
                let sent = |name: &str| {
                    (0..to.len()).any(|p| {
                        to.effective[p]
                            && to.element(p) == "call"
                            && to.nodes[p].name.as_deref() == Some(name)
                            && to.order(p, o) == Order::Before
                    })
                };
                let (was_sent, never): (Vec<&String>, Vec<&String>) =
                    added.iter().partition(|x| sent(x));
                let names = |v: &[&String]| {
                    v.iter()
                        .map(|x| format!("{x:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if !was_sent.is_empty() {
                    what.push_str(&format!(
                        " (now also {}, which rows parked there sent before it without waiting for it)",
                        names(&was_sent)
                    ));
                }
                if !never.is_empty() {
                    what.push_str(&format!(
                        " (now also {}, which rows parked there never sent before it)",
                        names(&never)
                    ));
                }
                if !dropped.is_empty() {
                    what.push_str(&format!(
                        " (no longer {}, whose responses they may still have pending)",
                        dropped
                            .iter()
                            .map(|x| format!("{x:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                changes.push(what);
            }
            let kind = |t: &Tree, p: usize| attr(t, p, "type").unwrap_or_else(|| "all".to_string());
            if kind(to, o) != kind(tn, n) {
                changes.push(format!("type {} → {}", kind(to, o), kind(tn, n)));
            }
            let (t_o, t_n) = (attr(to, o, "timeout"), attr(tn, n, "timeout"));
            if t_o != t_n {
                let show = |x: &Option<String>| {
                    x.as_deref()
                        .map_or("(none)".to_string(), |v| format!("{v:?}"))
                };
                let effect = match (&t_o, &t_n) {
                    (Some(_), None) => ": the old timer still fires for them",
                    (None, Some(_)) => ": no timer runs for them",
                    _ => ": their timer keeps the old timeout",
                };
                changes.push(format!("timeout {} → {}{effect}", show(&t_o), show(&t_n)));
            }
            if changes.is_empty() {
                continue;
            }
            let at = sref(&th.class, &st.name);
            out.push(
                finding(
                    Code::AwaitedSyncChanged,
                    format!(
                        "{} (waited at {at}) changed: {}; rows parked there were set up under the old <sync>",
                        to.label(o),
                        changes.join(", ")
                    ),
                )
                .states([at])
                .old_acts([to.aref(o)])
                .new_acts([tn.aref(n)]),
            );
        }
    }
    out
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
    use super::{in_foreign_handler, mentions, Moved, Runs};
    use crate::bpl::{load, LoadOptions};
    use crate::diff::tree::Order;
    use crate::states::{compile, Compiler};
    use std::path::Path;

    /// Run-length encoded keys decode to what they encode, are equal exactly when the lists
    /// are, and sort like the lists (the order of the findings).
    #[test]
    fn runs_keys_order_like_the_lists_they_encode() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n) as usize
        };
        for _ in 0..200 {
            // A random tree in pre-order (a stack of open nodes), then `end` of each subtree.
            let len = 1 + rnd(30);
            let (mut parent, mut open) = (vec![0; len], vec![0]);
            for (i, p) in parent.iter_mut().enumerate().skip(1) {
                let close = rnd(open.len() as u64);
                open.truncate(open.len() - close);
                *p = *open.last().unwrap();
                open.push(i);
            }
            let mut end: Vec<usize> = (0..len).collect();
            for i in (1..len).rev() {
                end[parent[i]] = end[parent[i]].max(end[i]);
            }
            let lists: Vec<Vec<(usize, bool)>> = (0..12)
                .map(|_| {
                    let (mut out, mut p) = (Vec::new(), rnd(3));
                    while p < len {
                        if rnd(3) > 0 {
                            out.push((p, rnd(4) == 0));
                            p = end[p] + 1 + rnd(2);
                        } else {
                            p += 1;
                        }
                    }
                    out
                })
                .collect();
            for a in &lists {
                let ka = Runs::encode(&end, a.iter().copied());
                assert_eq!(&ka.decode(), a);
                for b in &lists {
                    let kb = Runs::encode(&end, b.iter().copied());
                    assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} {b:?} {end:?}");
                    assert_eq!(ka == kb, a == b);
                }
            }
        }
    }

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
            let a = crate::diff::analyze(&o, &n, &oc, &nc, &[], &Default::default()).unwrap();
            let mut moved = Moved::new(&a);
            for w in 0..a.new.len() {
                // None (an overridden state whose old owner is gone) and every old position.
                let olds = std::iter::once(None).chain((0..a.old.len()).map(Some));
                for w_old in olds {
                    moved.compute(w, w_old, None, &mut sk, &mut re);
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
