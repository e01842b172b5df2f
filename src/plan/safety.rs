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
    let mut skipped: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut rerun: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut enclosing: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
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
            (&sk, &mut skipped),
            (&re, &mut rerun),
            (&branch, &mut branches),
        ] {
            let top = outermost(tn, set, &mut full);
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

/// New context properties read after a resume point. Returns one finding per property, and
/// for each property the suggested default.
pub(crate) fn context_reads(
    a: &Analysis,
    resumes: &[Resume],
    added: &[(String, Option<String>)],
) -> Vec<(String, Finding)> {
    let tn = &a.new;
    let mut out = Vec::new();
    if added.is_empty() {
        return out;
    }
    // The attribute values that may read a context property at all, per generated activity,
    // made once for every property.
    let texts: Vec<(usize, Vec<&str>)> = (0..tn.len())
        .filter(|&p| tn.effective[p])
        .filter_map(|p| {
            let node = tn.nodes[p];
            let vs: Vec<&str> = node
                .attrs
                .iter()
                // `<assign property="context.P">` writes P; its value may still read it.
                .filter(|(k, _)| !(*k == "property" && node.element == "assign"))
                .map(|(_, v)| v.as_str())
                .filter(|v| v.contains("context."))
                .collect();
            (!vs.is_empty()).then_some((p, vs))
        })
        .collect();
    for (prop, initial) in added {
        let needle = format!("context.{prop}");
        let readers: Vec<usize> = texts
            .iter()
            .filter(|(_, vs)| vs.iter().any(|v| mentions_needle(v, &needle)))
            .map(|&(p, _)| p)
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
                hit_readers.iter().map(|&p| act_label(tn, p)).collect::<Vec<_>>().join(", ")
            ),
        )
        .states(hit_states)
        .new_acts(hit_readers.iter().map(|&p| tn.aref(p)));
        out.push((prop.clone(), f));
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
            request, response: r, ..
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
                        && !matches!(node.attrs.get("async").map(String::as_str), Some("1" | "true"))
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
                            reason: format!(
                                "{} waits on call {name:?}, whose response type changed",
                                thread.states[i].role
                            ),
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
