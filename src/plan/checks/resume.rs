//! BPM02xx: what in-flight instances experience when they resume under the new version —
//! skipped and re-run activities, new enclosing conditions or another branch, calls and
//! `<sync>`s they wait on that changed, context properties they read.

use super::{Context, Findings};
use crate::bpl::{Activity, ActivityId, ActivityKind};
use crate::diff::tree::{does_nothing, same_expr, xml_attr, Order, Tree};
use crate::diff::{Analysis, ContextChangeKind};
use crate::plan::findings::{finding, Code, FindingExt};
use crate::plan::model::*;
use crate::plan::safety::{
    act_label, awaited, awaited_in_new, outermost, response_handler, resume_points, run_items,
    run_len, runs_in_thread, same_branch, scalar_type, sql_literal, sref, unkept_conditional,
    Access, Dataflow, Moved, Resume, Runs, SiblingRuns, ThreadFinder,
};
use crate::states::{ActivityRef, CompiledProcess, Role, StateName};
use foldhash::{HashMap, HashMapExt, HashSet};
use std::collections::{BTreeMap, BTreeSet};

pub(super) fn run(cx: &Context, out: &mut Findings) {
    let (findings, pre) = call_changes(cx.a, cx.old_c);
    out.findings.extend(findings);
    out.pre.extend(pre);
    out.findings.extend(sync_changes(cx.a, cx.old_c));
    let tm: Vec<(u32, Option<u32>, &[StateMapping])> = {
        // The finders' maps are freed before the analysis below (the peak of a large plan).
        let (old_f, new_f) = (ThreadFinder::new(cx.old_c), ThreadFinder::new(cx.new_c));
        cx.scope
            .threads
            .iter()
            .filter_map(|t| {
                let o = old_f.find(&t.old_class)?.number;
                let n = t
                    .new_class
                    .as_deref()
                    .and_then(|c| new_f.find(c))
                    .map(|x| x.number);
                Some((o, n, t.states.as_slice()))
            })
            .collect()
    };
    let mut resumes = resume_points(cx.a, cx.old_c, cx.new_c, &tm);
    // Kept through the analysis: at its exact size.
    resumes.shrink_to_fit();
    drop(tm);
    out.findings
        .extend(resume_findings(cx.a, cx.old_c, cx.new_c, &resumes));
    context(cx, &resumes, out);
}

/// How many skipped or re-run activities a finding names (and lists in its activities);
/// it counts the others ("…, and 12 more").
const NAMED: usize = 10;

/// Skipped, re-run and newly enclosing activities, one finding per distinct set of activities.
fn resume_findings(
    a: &Analysis,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    resumes: &[Resume],
) -> Vec<Finding> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut moved = Moved::new(a);
    let arrivals = loop_arrivals(a);
    let mut full = vec![false; tn.len()];
    let (mut sk, mut re, mut branch) = (Vec::new(), Vec::new(), Vec::new());
    // Keyed by the activities and, for each, whether it is data-dependent (so a group never
    // mixes a certain skip with a possible one).
    // The key is run-length encoded: `(first, last, may)` stands for the consecutive
    // siblings from `first` to `last` (each next one starts right after the previous one's
    // subtree), so a long stretch of moved siblings costs one entry, not one per activity.
    let mut skipped: BTreeMap<Runs, Vec<&Resume>> = BTreeMap::new();
    let mut rerun: BTreeMap<Runs, Vec<&Resume>> = BTreeMap::new();
    // Skipped activities in the branches of the flows (before the resume point) named first.
    let mut flowed: BTreeMap<(Vec<usize>, Runs), Vec<&Resume>> = BTreeMap::new();
    // Skipped in the earlier iterations of the loops named first (see `ran_after_loops`).
    let mut earlier: BTreeMap<(Vec<usize>, Runs), Vec<&Resume>> = BTreeMap::new();
    // With what continuing in their branch forces on them, for each conditional (see
    // `forced_branch`).
    let mut enclosing: BTreeMap<(Vec<usize>, Vec<String>), Vec<&Resume>> = BTreeMap::new();
    let mut evaluated: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut switched: BTreeMap<Vec<Switched>, Vec<&Resume>> = BTreeMap::new();
    let mut branches: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    // The same for what their branches ran only on some paths: a finished one may have not.
    let mut maybe_branches: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    let mut maybe_branch = Vec::new();
    // New `<sync>`s whose answers the old waits they stand for surely had (see `Awaited`):
    // not new to any row that passed those waits.
    let mut sync_waits = vec![false; tn.len()];
    for aw in crate::plan::safety::awaited_syncs(a) {
        sync_waits[aw.sync] = aw.answered(|_| true) == Some(true);
    }
    let old_earlier = old_earlier_siblings(a);
    let added_to_handlers = added_to_fault_handlers(a, &sync_waits, &mut full);
    let crossed_branches = moved_between_branches(a, &mut full);
    // (what happens, flow, activities): rows in a branch thread, for activities that moved
    // between the branches of that flow.
    let mut crossed: BTreeMap<(Crossed, usize, Vec<usize>), Vec<&Resume>> = BTreeMap::new();
    // (index into `added_to_handlers`, the flow whose join they rest at, for rows whose branch
    // threads ran the handler's scope).
    let mut faulted: BTreeMap<(usize, Option<usize>), Vec<&Resume>> = BTreeMap::new();
    let added_to_comp = added_to_comp_handlers(a, old_c, new_c, &sync_waits, &mut full);
    // (index into `added_to_comp`, the fault handler the compensate lies in for a row that
    // passed its scope, data-dependent): rows that ran the compensate before their resume
    // point ran its handler without what was added to it.
    let mut compensated: BTreeMap<(usize, Option<usize>, bool), Vec<&Resume>> = BTreeMap::new();
    // Index into `added_to_comp` of a retargeted compensate: rows resting inside the handler
    // it ran under the old version return to it when that handler ends and go on, never
    // running what the handler it runs now adds.
    let mut returned: BTreeMap<usize, Vec<&Resume>> = BTreeMap::new();
    // (index into `added_to_comp`, flow): rows resting at that flow's join, whose branches
    // may have run the compensate (in a branch) before the deploy.
    // The fault handler in that branch the compensate lies in, if any.
    let mut joined: BTreeMap<(usize, usize, Option<usize>), Vec<&Resume>> = BTreeMap::new();
    // The `<compensate>`s that ran a handler under the old version and run none now, with the
    // rows that can still reach them, by the outer compensate they reach it through (None:
    // themselves; see `CompAdded::through`).
    let mut uncompensated: Uncompensated = BTreeMap::new();
    // Scopes whose fault handler holds the resume point (in both versions), with what was
    // added to their body: rows there ran some prefix of it before the fault.
    let mut body_added: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut prefixed: BTreeMap<usize, Vec<&Resume>> = BTreeMap::new();
    // (scope, activities): rows in its fault handlers (in both versions), for activities that
    // moved out of its body to after their resume point: a fault at or after one of them had
    // run it already.
    let mut left_body: BTreeMap<(usize, Vec<usize>), Vec<&Resume>> = BTreeMap::new();
    // Old loops that held the wait and do not hold the new resume point.
    let mut left: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    // (new loop, old loop of the same name it replaced), both around the wait.
    let mut replaced: BTreeMap<Vec<(usize, usize)>, Vec<&Resume>> = BTreeMap::new();
    // Old loops that held the wait and now come after the new resume point.
    let mut reentered: BTreeMap<Vec<usize>, Vec<&Resume>> = BTreeMap::new();
    for r in resumes {
        let w = r.w_new;
        moved.compute(w, r.w_old, r.enters.as_deref(), &mut sk, &mut re);
        // A skipped `<if>`/`<switch>` does no work itself: a row would have run one of its
        // branches, so its contents are named, each "may", depending on the branch.
        open_conditionals(tn, &mut sk);
        // What lies in a branch other than the one they chose (an `<if>`/`<switch>` around their
        // old wait) they would not have run under the new version either: not skipped.
        drop_items(tn, &mut sk, |p| {
            tn.ancestors(p)
                .any(|par| chose_branch(a, par, p, r) == Some(false))
        });
        // `<break>`, `<continue>`, `<label>` and `<branch>` steer, they do no work: not
        // skipped or re-run activities (where the rows go is what the mapping says).
        for runs in [&mut sk, &mut re] {
            drop_items(tn, runs, |p| is_jump(tn, p));
        }
        // A new `<sync>` whose answers a wait they passed under the old version may have let
        // them go on without (a timeout, `type="any"`): whether they skip it depends on that
        // (see `depending`), so it is a run of its own.
        let unanswered = |p: usize| {
            awaited(a, p).is_some_and(|aw| aw.answered(|o| moved.passed(o)) == Some(false))
        };
        isolate_items(tn, &mut sk, unanswered);
        // In the body of a loop they were iterating in, after their resume point, what ran
        // after that loop under the old version: the iterations they went through never ran it.
        let mut looped = ran_after_loops(a, &arrivals, r, &mut full);
        if let Some(h) = r.within {
            // It returns when the handler ends: the rest is its return point's.
            for runs in [&mut sk, &mut re] {
                runs.retain(|&(first, _)| tn.is_desc(first, h));
            }
            for (_, items) in &mut looped {
                items.retain(|&p| tn.is_desc(p, h));
            }
        }
        // Activities that moved between the branches of its flow: whether they ran, and
        // will run, depends on how far the other branch threads got (other rows).
        if let (Some(wo), false) = (r.w_old, r.join) {
            let (tr, tro) = (tn.thread_root(w), to.thread_root(wo));
            let mut found: BTreeMap<(Crossed, usize), Vec<usize>> = BTreeMap::new();
            for &n in &crossed_branches {
                let Some(o) = m.n2o[n] else { continue };
                let into = tn.thread_root(n) == tr;
                let out_of = to.thread_root(o) == tro;
                let how = match (into, out_of) {
                    (true, false) if tn.order(n, w) == Order::Before => Crossed::IntoBefore,
                    (true, false) if tn.order(n, w) == Order::After => Crossed::IntoAfter,
                    (false, true) if to.order(o, wo) == Order::Before => Crossed::OutBefore,
                    (false, true) if to.order(o, wo) == Order::After => Crossed::OutAfter,
                    _ => continue,
                };
                if let Some(f) = tn.parent(tn.thread_root(n)) {
                    found.entry((how, f)).or_default().push(n);
                }
            }
            // The walk counts one moved into its branch before the resume point as surely
            // skipped: the branch it came from may have run it.
            drop_items(tn, &mut sk, |p| {
                found
                    .get(&(
                        Crossed::IntoBefore,
                        tn.parent(tn.thread_root(p)).unwrap_or(p),
                    ))
                    .is_some_and(|v| v.contains(&p))
            });
            for ((how, f), ns) in found {
                crossed.entry((how, f, ns)).or_default().push(r);
            }
        }
        // Whether each lies in a branch (or loop body) that does not hold the resume point:
        // then whether the instance ran it depends on data.
        // Siblings share the answer, so it is asked once per run.
        let runs_of = |set: &[(usize, usize)]| Runs {
            runs: set
                .iter()
                .map(|&(first, last)| {
                    let may = conditional_between(a, first, r)
                        || decided_by_old(a, first, r).is_some()
                        || !faults_left_before(a, &old_earlier, first, r).is_empty()
                        || left_body_of(a, first, r).is_some()
                        || unanswered(first);
                    (first, last, may)
                })
                .collect(),
            end: tn.ends(),
        };
        // Skipped activities in the branches of a flow the thread passed (every branch ran
        // before the join let it go on) are reported with that flow; rows at the join itself
        // are the flow-join finding's.
        let tr = tn.thread_root(w);
        let (own, in_flows): (SiblingRuns, SiblingRuns) = sk
            .iter()
            .partition(|&&(first, _)| tn.thread_root(first) == tr);
        if !in_flows.is_empty() {
            let mut flows: Vec<usize> = in_flows
                .iter()
                .filter_map(|&(first, _)| {
                    tn.ancestors(first)
                        .find(|&f| tn.element(f) == "flow" && tn.thread_root(f) == tr)
                })
                .collect();
            flows.dedup();
            flowed
                .entry((flows, runs_of(&in_flows)))
                .or_default()
                .push(r);
        }
        if !own.is_empty() {
            skipped.entry(runs_of(&own)).or_default().push(r);
        }
        if !re.is_empty() {
            rerun.entry(runs_of(&re)).or_default().push(r);
        }
        for (loops, items) in looped {
            let mut runs: SiblingRuns = Vec::new();
            for p in items {
                match runs.last_mut() {
                    Some(x) if tn.end(x.1) + 1 == p && tn.list_first(x.1) == tn.list_first(p) => {
                        x.1 = p
                    }
                    _ => runs.push((p, p)),
                }
            }
            if !runs.is_empty() {
                earlier.entry((loops, runs_of(&runs))).or_default().push(r);
            }
        }
        if let Some(wo) = r.w_old {
            // A `<compensate>` that ran before the resume point in both versions (in the
            // handler the row rests in, if any): it ran its handler without what was added.
            for (i, ca) in added_to_comp.iter().enumerate() {
                let (c, oc) = (ca.site, ca.site_old);
                if ca.handler.is_none() {
                    // It runs no handler now: rows that can still reach it (in both
                    // versions) error there where they would have run the old one. What a
                    // row resting in a compensation handler runs after it is its return
                    // point's.
                    if r.within.is_none_or(|h| tn.is_desc(c, h))
                        && reaches_later(tn, c, w)
                        && reaches_later(to, oc, wo)
                    {
                        let outer = (!ca.through.is_empty()).then_some(c);
                        let rs = uncompensated
                            .entry(ca.last())
                            .or_default()
                            .entry(outer)
                            .or_default();
                        if !rs.iter().any(|x| std::ptr::eq(*x, r)) {
                            rs.push(r);
                        }
                    }
                    continue;
                }
                if r.returns {
                    // Its `%SubroutineStack` top is this compensate, which ran the old handler
                    // (the one it rests in): it goes on past the compensate.
                    if ca.was.is_some() && ca.through.is_empty() && c == w && oc == wo {
                        returned.entry(i).or_default().push(r);
                        continue;
                    }
                }
                let (on, oo) = (tn.order(c, w), to.order(oc, wo));
                // In a branch of the flow whose join it rests at (in both versions): the
                // branch threads may have run it before the deploy.
                // (What was added to a handler inside the flow is the flow-join finding's.)
                if r.join
                    && tn.element(w) == "flow"
                    && on == Order::Inside
                    && oo == Order::Inside
                    && r.within.is_none()
                {
                    if ca.was.is_none() && ca.handler.is_some_and(|h| tn.is_desc(h, w)) {
                        continue;
                    }
                    let f = in_handler_off_path(tn, c, w);
                    joined.entry((i, w, f)).or_default().push(r);
                    continue;
                }
                if !runs_in_thread(tn, c, tn.thread_root(w))
                    || !runs_in_thread(to, oc, to.thread_root(wo))
                    || !ran_some(on)
                    || !ran_some(oo)
                    || r.within.is_some_and(|h| !tn.is_desc(c, h))
                {
                    continue;
                }
                match (
                    in_handler_off_path(tn, c, w),
                    in_handler_off_path(to, oc, wo),
                ) {
                    // (A `<compensate>` lies in a `<catch>`/`<catchall>`, spec 2.13: on the
                    // path to the resume point only when that handler holds it.)
                    (None, None) if on == Order::Before && oo == Order::Before => {
                        let may = ca.via_fault.is_some()
                            || conditional_between(a, c, r)
                            || !faults_left_before(a, &old_earlier, c, r).is_empty();
                        compensated.entry((i, None, may)).or_default().push(r);
                    }
                    // In a fault handler of a scope it passed (in both versions): only rows
                    // that a fault took through it ran the compensate.
                    (Some(f), Some(of)) if r.within.is_none() => {
                        let (Some(s), Some(os)) = (tn.parent(f), to.parent(of)) else {
                            continue;
                        };
                        // A fault handler inside a compensation handler it is not in runs
                        // only under a compensate of that handler (its own entry).
                        if tn
                            .ancestors(f)
                            .any(|x| tn.element(x) == "compensationhandler" && !tn.is_desc(w, x))
                        {
                            continue;
                        }
                        if matches!(tn.element(f), "catch" | "catchall")
                            && ran_some(tn.order(s, w))
                            && ran_some(to.order(os, wo))
                        {
                            compensated.entry((i, Some(f), true)).or_default().push(r);
                        }
                    }
                    _ => {}
                }
            }
        }
        // A fault handler of a scope it passed, in both versions: rows that took that fault
        // path (and only those) ran it without what was added to it; for a new handler, rows
        // that passed the scope its faults went to. (Not for a return point: the conditions
        // around it are its resume point's.)
        if let Some(wo) = r.w_old {
            for (i, fa) in added_to_handlers.iter().enumerate().filter(|_| !r.returns) {
                let (s, os) = fa.passed;
                if runs_in_thread(tn, s, tn.thread_root(w))
                    && ran_some(tn.order(s, w))
                    && ran_some(to.order(os, wo))
                {
                    faulted.entry((i, None)).or_default().push(r);
                } else if r.join
                    && tn.element(w) == "flow"
                    && tn.is_desc(s, w)
                    && to.is_desc(os, wo)
                {
                    // In a branch of the flow whose join they rest at (in both versions): a
                    // branch thread may have passed the scope, through that handler, before
                    // the deploy.
                    faulted.entry((i, Some(w))).or_default().push(r);
                }
            }
            // In a fault handler of a scope (in both versions): it ran some prefix of the
            // scope's body before the fault took it there, so it may have skipped what was
            // added to the body. So did a row in a compensation handler that returns to a
            // `<compensate>` there (spec 2.13: only a fault handler holds one): the fault
            // that took it there is the same.
            for s in tn.ancestors(w).filter(|&s| tn.element(s) == "scope") {
                let Some((_, "faulthandlers", _)) = tn.child_towards(s, w) else {
                    continue;
                };
                let Some(os) = m.n2o[s].filter(|&os| to.effective[os]) else {
                    continue;
                };
                if !matches!(to.child_towards(os, wo), Some((_, "faulthandlers", _))) {
                    continue;
                }
                let items = body_added
                    .entry(s)
                    .or_insert_with(|| added_to_body(a, s, &sync_waits, &mut full));
                if !items.is_empty() {
                    prefixed.entry(s).or_default().push(r);
                }
                let out_of_body = moved_out_of_body(a, os, r, &mut full);
                if !out_of_body.is_empty() {
                    left_body.entry((s, out_of_body)).or_default().push(r);
                }
            }
        }
        if r.returns {
            // The conditions around its return point are its resume point's.
            continue;
        }
        // A parent resting at a flow join started its branches already: a new branch never
        // runs, and a branch that finished never runs what was added to it. What they ran
        // under the old version, in a branch or before the flow (moved into a branch), is not
        // added to them; what they ran only on some paths ([`decided_by_old`]) they may skip.
        branch.clear();
        maybe_branch.clear();
        if r.join && tn.element(w) == "flow" {
            for c in (w + 1..=tn.end(w)).filter(|&c| tn.effective[c]) {
                let ran = match (m.n2o[c], r.w_old) {
                    (Some(o), Some(wo)) => {
                        to.effective[o] && (to.is_desc(o, wo) || to.order(o, wo) == Order::Before)
                    }
                    _ => false,
                };
                if !ran {
                    branch.push(c);
                } else if decided_by_old(a, c, r).is_some() {
                    maybe_branch.push(c);
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
                            sw.push((
                                p,
                                branch_name(to, o, os),
                                branch_name(tn, p, ns),
                                condition_changed(a, o, os, p, ns),
                            ));
                        }
                    }
                }
                (Some(o), Some(wo)) if to.effective[o] && to.order(o, wo) == Order::Before => {
                    eval.push(p)
                }
                _ => enc.push(p),
            }
        }
        // Loops that held the wait under the old version but not now: the instance leaves
        // them, unless one was replaced by a new loop of the same name around the wait (then
        // it goes on iterating in that one).
        let mut gone: Vec<usize> = match r.w_old {
            Some(wo) => to
                .ancestors(wo)
                .filter(|&o| is_loop(to.element(o)) && to.effective[o])
                .filter(|&o| m.o2n[o].is_none_or(|n| !tn.is_desc(w, n)))
                .collect(),
            None => Vec::new(),
        };
        let mut swapped = Vec::new();
        enc.retain(|&p| {
            let same = gone.iter().position(|&o| {
                is_loop(tn.element(p))
                    && m.o2n[o].is_none()
                    && to.nodes[o].name.is_some()
                    && to.nodes[o].name == tn.nodes[p].name
            });
            match same {
                Some(i) => {
                    swapped.push((p, gone.remove(i)));
                    false
                }
                None => true,
            }
        });
        // A loop that now comes after the resume point is entered again from its start.
        let (mut ahead, gone): (Vec<usize>, Vec<usize>) = gone.into_iter().partition(|&o| {
            m.o2n[o].is_some_and(|n| tn.effective[n] && tn.order(n, w) == Order::After)
        });
        // Entering an `<until>` goes straight to its body (spec 3.4.7): it tests nothing and
        // resets nothing, so what they ran of the body before their wait (the walk's re-runs)
        // is all they do again; the test after the body is the one they were heading for.
        ahead.retain(|&o| m.o2n[o].is_some_and(|n| tn.element(n) != "until"));
        if !gone.is_empty() {
            left.entry(gone).or_default().push(r);
        }
        if !ahead.is_empty() {
            reentered.entry(ahead).or_default().push(r);
        }
        if !swapped.is_empty() {
            replaced.entry(swapped).or_default().push(r);
        }
        if !eval.is_empty() {
            evaluated.entry(eval).or_default().push(r);
        }
        if !sw.is_empty() {
            switched.entry(sw).or_default().push(r);
        }
        for (set, into) in [
            (&branch, &mut branches),
            (&maybe_branch, &mut maybe_branches),
        ] {
            let mut top = outermost(tn, set, &mut full);
            // What lies in a fault or compensation handler runs only on a fault or a
            // compensate, not on the path a finished branch took: not skipped by it (a new
            // branch, or a new scope, is reported whole, handlers included).
            top.retain(|&p| tn.handler(p).is_none());
            if !top.is_empty() {
                into.entry(top).or_default().push(r);
            }
        }
        if !enc.is_empty() {
            // Rows that never evaluated a conditional's test continue in the branch they
            // resume in whatever their data: what that forces on them.
            let forced: Vec<String> = enc
                .iter()
                .filter(|&&p| matches!(tn.element(p), "if" | "switch"))
                .filter_map(|&p| crate::diff::statemap::forced_branch(tn, p, w))
                .map(|f| f.text(tn))
                .collect();
            enclosing.entry((enc, forced)).or_default().push(r);
        }
    }
    let mut out = Vec::new();
    let states = |rs: &[&Resume]| {
        rs.iter()
            .flat_map(|r| [r.old_ref.clone(), r.new_ref.clone()])
            .collect::<Vec<_>>()
    };
    // A finding about the rows resting at `rs` and the (new) activities `ps`.
    let about = |code: Code, text: String, rs: &[&Resume], ps: &[usize]| {
        finding(code, text)
            .states(states(rs))
            .new_acts(ps.iter().map(|&p| tn.aref(p)))
    };
    let names = |ps: &[usize]| {
        ps.iter()
            .map(|&p| act_label(tn, p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // A long list of skipped or re-run activities names the first ones and counts the rest.
    let total = |ps: &[(usize, usize)]| ps.iter().map(|&run| run_len(tn, run)).sum::<usize>();
    let named = |ps: &[(usize, usize)]| -> Vec<usize> {
        ps.iter()
            .flat_map(|&run| run_items(tn, run))
            .take(NAMED)
            .collect()
    };
    // Such a finding lists the named ones and carries the count.
    let counted = |f: Finding, ps: &[(usize, usize)]| match total(ps) {
        n if n > NAMED => f.counting(n),
        _ => f,
    };
    let some_names = |ps: &[(usize, usize)]| {
        let mut s = names(&named(ps));
        if total(ps) > NAMED {
            s.push_str(&format!(", and {} more", total(ps) - NAMED));
        }
        s
    };
    let at = |rs: &[&Resume]| resting_at(tn, rs);
    // Rows at `rs` skip (`verb`) activities added to a handler or body (`items`), `how` it
    // depends on what they did, `why` they are skipped; traces and `<empty>` only: info.
    let skips = |rs: &[&Resume], verb: &str, how: &str, items: &[usize], why: &str| {
        let quiet = quiet_note(tn, items.iter().copied());
        quieted(
            about(
                Code::SkippedActivities,
                format!(
                    "instances resting at {} {verb} {}{how}: {} ({why}{})",
                    at(rs),
                    count(items.len(), "activity", "activities"),
                    names(items),
                    quiet.map(|q| format!("; {q}")).unwrap_or_default(),
                ),
                rs,
                items,
            ),
            quiet,
        )
    };
    // Certain and data-dependent activities go into separate findings ("will …" / "may …,
    // depending on the branch they took"), so each finding's activities share one answer.
    let parts = |ps: &Runs| -> Vec<(bool, SiblingRuns)> {
        [false, true]
            .into_iter()
            .map(|may| {
                let part: SiblingRuns = ps
                    .runs
                    .iter()
                    .filter(|x| x.2 == may)
                    .map(|x| (x.0, x.1))
                    .collect();
                (may, part)
            })
            .filter(|(_, v)| !v.is_empty())
            .collect()
    };
    // Skips and re-runs: the same sentence with other words.
    // The flows or loops a group's activities lie in, when that is what the sentence says.
    #[derive(Clone, Copy)]
    enum Around<'g> {
        /// In the branches of these flows, which they passed.
        Flows(&'g [usize]),
        /// In the body of these loops, after the resume point; under the old version they
        /// ran after them (see `ran_after_loops`).
        Earlier(&'g [usize]),
    }
    let groups = skipped
        .iter()
        .map(|(ps, rs)| (ps, rs, Code::SkippedActivities, None))
        .chain(
            flowed
                .iter()
                .map(|((fs, ps), rs)| (ps, rs, Code::SkippedActivities, Some(Around::Flows(fs)))),
        )
        .chain(
            earlier
                .iter()
                .map(|((ls, ps), rs)| (ps, rs, Code::SkippedActivities, Some(Around::Earlier(ls)))),
        )
        .chain(
            rerun
                .iter()
                .map(|(ps, rs)| (ps, rs, Code::RerunActivities, None)),
        );
    for (ps, rs, code, around) in groups {
        let skip = code == Code::SkippedActivities;
        let flows = match around {
            Some(Around::Flows(fs)) => fs,
            _ => &[][..],
        };
        for (may, part) in parts(ps) {
            let (verb, why) = match (skip, may) {
                (true, false) => ("will skip", "the new version runs them before that point"),
                (true, true) => ("may skip", "the new version runs them before that point"),
                (false, false) => (
                    "will run again",
                    "they moved from before to after that point",
                ),
                (false, true) => (
                    "may run again",
                    "they moved from before to after that point",
                ),
            };
            // In the branches of a flow they passed: every branch ran before its join.
            let why = match flows {
                [] => why.to_string(),
                fs => {
                    let ran = fs.iter().all(|&f| {
                        m.n2o[f].is_some_and(|o| {
                            to.effective[o]
                                && rs.iter().all(|r| {
                                    r.w_old.is_some_and(|wo| to.order(o, wo) == Order::Before)
                                })
                        })
                    });
                    format!(
                        "in {}, which {}",
                        names(fs),
                        if ran && may {
                            "they may have run under the old version"
                        } else if ran {
                            "they ran under the old version"
                        } else {
                            "the new version runs before that point"
                        }
                    )
                }
            };
            let how = match (may, skip) {
                (true, true) => format!(
                    "{}{}",
                    this_iteration(a, &part, rs, true),
                    depending(a, &old_earlier, &part, rs)
                ),
                (true, false) => depending(a, &old_earlier, &part, rs),
                (false, true) => this_iteration(a, &part, rs, false).to_string(),
                (false, false) => String::new(),
            };
            // Skipped in the iterations they went through, of which there may be none.
            let (verb, why, how) = match around {
                Some(Around::Earlier(ls)) => {
                    let (its, the) = match ls.len() {
                        1 => ("its body", "the loop"),
                        _ => ("their bodies", "those loops"),
                    };
                    let gone: Vec<String> = ls
                        .iter()
                        .map(|&l| match tn.element(l) {
                            "foreach" => {
                                format!("for the items {} already went through", tn.label(l))
                            }
                            _ => format!(
                                "in the iterations of {} they already went through",
                                tn.label(l)
                            ),
                        })
                        .collect();
                    let data = match may {
                        true => depending(a, &old_earlier, &part, rs),
                        false => String::new(),
                    };
                    (
                        "may skip",
                        format!(
                            "moved from after {} into {its}, after that point: the old version ran them after {the}, the new one in each iteration",
                            names(ls)
                        ),
                        format!(" {}{data}", gone.join(" and ")),
                    )
                }
                _ => (verb, why, how),
            };
            // A re-run activity ran under the old version: it has an old counterpart; so does
            // one skipped in earlier iterations (it ran after the loop).
            let old_refs: Vec<ActivityRef> = if skip && !matches!(around, Some(Around::Earlier(_)))
            {
                Vec::new()
            } else {
                named(&part)
                    .into_iter()
                    .filter_map(|p| m.n2o[p])
                    .map(|o| to.aref(o))
                    .collect()
            };
            // Traces change nothing but the event log, `<empty>` nothing at all: worth
            // knowing, not worth a warning.
            let quiet = quiet_note(tn, part.iter().flat_map(|&run| run_items(tn, run)));
            let negated = match may {
                true => negation_unproven(a, &part, rs, skip),
                false => String::new(),
            };
            let f = finding(
                code,
                format!(
                    "instances resting at {} {verb} {}{how}: {} ({why}{negated}{})",
                    at(rs),
                    how_many(tn, &part, may),
                    some_names(&part),
                    quiet.map(|q| format!("; {q}")).unwrap_or_default()
                ),
            )
            .states(states(rs))
            .old_acts(old_refs)
            .new_acts(named(&part).into_iter().map(|p| tn.aref(p)));
            out.push(counted(quieted(f, quiet), &part));
        }
    }
    for ((how, f, ps), rs) in &crossed {
        let flow = act_label(tn, *f);
        let (code, verb, why) = match how {
            Crossed::IntoBefore => (Code::SkippedActivities, "may skip", "moved into their branch, before that point, from another branch, which may not have reached it yet"),
            Crossed::OutAfter => (Code::SkippedActivities, "may skip", "moved out of their branch, after that point, into another branch, which may have passed it already"),
            Crossed::IntoAfter => (Code::RerunActivities, "may run again", "moved into their branch, after that point, from another branch, which may have run it already"),
            Crossed::OutBefore => (Code::RerunActivities, "may run again", "moved out of their branch, which ran it, into another branch, which may not have passed it yet"),
        };
        out.push(
            finding(
                code,
                format!(
                    "instances resting at {} {verb} {}, depending on how far the other branches of {flow} got: {} ({why})",
                    at(rs),
                    count(ps.len(), "activity", "activities"),
                    names(ps)
                ),
            )
            .states(states(rs))
            .old_acts(ps.iter().filter_map(|&p| m.n2o[p]).map(|o| to.aref(o)))
            .new_acts(ps.iter().map(|&p| tn.aref(p))),
        );
    }
    for (&(i, join), rs) in &faulted {
        let FaultAdded {
            handler: c,
            was,
            ref items,
            ..
        } = added_to_handlers[i];
        let scope = tn.parent(c).map(|s| act_label(tn, s)).unwrap_or_default();
        let mut through = tn.handler_tag(c);
        let (new, why) = match was {
            HandlerWas::Removed(oc) => {
                through = format!("{} (removed)", to.handler_tag(oc));
                (
                    "",
                    format!(
                        "such a fault now goes through the {} of {scope}",
                        tn.handler_tag(c)
                    ),
                )
            }
            HandlerWas::Same => (
                "",
                "added to that fault handler, which lies before that point".to_string(),
            ),
            HandlerWas::Superseded(oc) => (
                "",
                format!(
                    "under the old version such a fault went through {}, which {}",
                    to.describe(oc),
                    match m.o2n[oc].filter(|&x| tn.effective[x]) {
                        None => "was removed",
                        Some(_) => "no longer catches it first",
                    }
                ),
            ),
            HandlerWas::Disabled => (
                "",
                "that fault handler was disabled under the old version: they ran it empty"
                    .to_string(),
            ),
            HandlerWas::New(oc) => (
                "new ",
                format!(
                    "a new fault handler: under the old version such a fault went through the {} of {scope}",
                    to.handler_tag(oc)
                ),
            ),
            HandlerWas::NewTransferred(e) => (
                "new ",
                format!(
                    "a new fault handler: under the old version {scope} had no <catchall>, so such a fault went on to the fault handlers of {}, and what follows {scope} in that scope did not run",
                    act_label(tn, e)
                ),
            ),
        };
        let branches = join
            .map(|f| {
                format!(
                    " how far their branches of {} got (flow join) and on",
                    act_label(tn, f)
                )
            })
            .unwrap_or_default();
        out.push(skips(
            rs,
            "may skip",
            &format!(
                ", depending on{branches} whether a fault took them through the {new}{through} of {scope}"
            ),
            items,
            &why,
        ));
    }
    for (&s, rs) in &prefixed {
        let items = &body_added[&s];
        let scope = act_label(tn, s);
        out.push(skips(
            rs,
            "may skip",
            &format!(", depending on where in the body of {scope} the fault happened"),
            items,
            &format!("added to the body of {scope}, which they left for its fault handlers"),
        ));
    }
    for ((s, items), rs) in &left_body {
        let scope = act_label(tn, *s);
        out.push(
            about(
                Code::RerunActivities,
                format!(
                    "instances resting at {} may run again {}, depending on where in the body of {scope} the fault happened: {} (moved out of the body of {scope} to after that point; they left that body for its fault handlers, and a fault at or after it came once it had run)",
                    at(rs),
                    count(items.len(), "activity", "activities"),
                    names(items)
                ),
                rs,
                items,
            )
            .old_acts(items.iter().filter_map(|&p| m.n2o[p]).map(|o| to.aref(o))),
        );
    }
    // Why rows skip what a compensation handler runs: added to the handler the compensate
    // ran (`place` says where the compensate is, `ran` whether they surely ran it), or in
    // the handler a retargeted compensate now runs instead of the one they ran.
    let comp_why = |ca: &CompAdded, place: &str, ran: bool| {
        let handler_of = |t: &Tree, h: usize| {
            format!(
                "{} of {}",
                act_label(t, h),
                t.parent(h).map(|s| act_label(t, s)).unwrap_or_default()
            )
        };
        let what = ca.handler.map_or_else(
            || "no compensation handler".to_string(),
            |h| handler_of(tn, h),
        );
        let site = act_label(tn, ca.site);
        let thr = match ca.through.is_empty() {
            true => String::new(),
            false => {
                let inner: Vec<String> = ca.through.iter().map(|&c| act_label(tn, c)).collect();
                format!(" through {}", inner.join(", then "))
            }
        };
        match (ca.was, ran) {
            (None, false) => format!("added to {what}, which {site} {place} runs{thr}"),
            (None, true) => format!("added to {what}, which {site} ran {place}{thr}"),
            (Some(oh), false) => format!(
                "{site} {place} now runs {what}{thr}; under the old version it ran {}",
                handler_of(to, oh)
            ),
            (Some(oh), true) => {
                // Name the compensate as they ran it: its target may be what changed.
                let old_site = act_label(to, ca.site_old);
                let now = match old_site == site {
                    true => "it now runs".to_string(),
                    false => format!("it is now {site} and runs"),
                };
                format!(
                    "they ran {old_site} {place}, which ran {} under the old version; {now} {what}{thr}",
                    handler_of(to, oh)
                )
            }
        }
    };
    let handler_in = |h: usize| {
        format!(
            "the {} of {}",
            tn.handler_tag(h),
            tn.parent(h).map(|s| act_label(tn, s)).unwrap_or_default()
        )
    };
    for (&(i, fault, may), rs) in &compensated {
        let ca = &added_to_comp[i];
        // A fault inside the handler the compensate runs takes it to the nested compensate.
        let via = ca
            .via_fault
            .map(|v| format!(" and then through {}", handler_in(v)));
        let (verb, how, why) = match fault {
            Some(f) => (
                "may skip",
                format!(
                    ", depending on whether a fault took them through {}{}",
                    handler_in(f),
                    via.unwrap_or_default()
                ),
                comp_why(ca, "in that fault handler", false),
            ),
            None if may => {
                let data = rs.iter().any(|r| {
                    conditional_between(a, ca.site, r)
                        || !faults_left_before(a, &old_earlier, ca.site, r).is_empty()
                });
                let how = match (ca.via_fault, data) {
                    (Some(v), false) => format!(
                        ", depending on whether a fault took them through {}",
                        handler_in(v)
                    ),
                    (Some(v), true) => format!(
                        "{}, and on whether a fault took them through {}",
                        depending(a, &old_earlier, &[(ca.site, ca.site)], rs),
                        handler_in(v)
                    ),
                    (None, _) => depending(a, &old_earlier, &[(ca.site, ca.site)], rs),
                };
                ("may skip", how, comp_why(ca, "before that point", false))
            }
            None => (
                "will skip",
                String::new(),
                comp_why(ca, "before that point", true),
            ),
        };
        out.push(skips(rs, verb, &how, &ca.items, &why));
    }
    for (&i, rs) in &returned {
        let ca = &added_to_comp[i];
        let Some(oh) = ca.was else { continue };
        let old_site = act_label(to, ca.site_old);
        let what = ca.handler.map_or_else(String::new, |h| {
            format!(
                "{} of {}",
                act_label(tn, h),
                tn.parent(h).map(|s| act_label(tn, s)).unwrap_or_default()
            )
        });
        let now = match old_site == act_label(tn, ca.site) {
            true => "it now runs".to_string(),
            false => format!("it is now {} and runs", act_label(tn, ca.site)),
        };
        out.push(skips(
            rs,
            "will skip",
            "",
            &ca.items,
            &format!(
                "they rest inside {} of {}, which {old_site} ran under the old version: when it ends they return to that compensate and go on, but {now} {what}",
                act_label(to, oh),
                to.parent(oh).map(|s| act_label(to, s)).unwrap_or_default()
            ),
        ));
    }
    for (&(i, f, fault), rs) in &joined {
        let ca = &added_to_comp[i];
        let flow = act_label(tn, f);
        let through: String = fault
            .into_iter()
            .chain(ca.via_fault)
            .map(|h| format!(" and whether a fault took them through {}", handler_in(h)))
            .collect();
        out.push(skips(
            rs,
            "may skip",
            &format!(", depending on how far their branches of {flow} got (flow join){through}"),
            &ca.items,
            &comp_why(ca, &format!("in a branch of {flow}"), false),
        ));
    }
    for (ps, rs) in &branches {
        out.push(
            about(
                Code::SkippedActivities,
                format!(
                    "instances resting at {} (flow join) started their branches under the old version: a new branch never runs, and a branch that already finished never runs what was added to it: {}",
                    at(rs),
                    names(ps)
                ),
                rs,
                ps,
            ),
        );
    }
    for (ps, rs) in &maybe_branches {
        let flows: Vec<usize> = rs
            .iter()
            .map(|r| r.w_new)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let runs: SiblingRuns = ps.iter().map(|&p| (p, p)).collect();
        out.push(about(
            Code::SkippedActivities,
            format!(
                "instances resting at {} (flow join) may skip {}{}: {} (in {}, whose branches they started under the old version: a branch that already finished never runs them now, and it ran them only on some paths)",
                at(rs),
                how_many(tn, &runs, true),
                depending(a, &old_earlier, &runs, rs),
                names(ps),
                names(&flows),
            ),
            rs,
            ps,
        ));
    }
    for (gs, rs) in &left {
        let it = if gs.len() == 1 { "it" } else { "them" };
        out.push(
            finding(
                Code::SkippedActivities,
                format!(
                    "instances resting at {} will resume outside {}, which held their wait under the old version: they leave {it} without running {} remaining iterations",
                    at(rs),
                    gs.iter().map(|&o| to.label(o)).collect::<Vec<_>>().join(", "),
                    if gs.len() == 1 { "its" } else { "their" },
                ),
            )
            .states(states(rs))
            .old_acts(gs.iter().map(|&o| to.aref(o)))
            .new_acts(gs.iter().filter_map(|&o| m.o2n[o]).map(|n| tn.aref(n))),
        );
    }
    for (gs, rs) in &reentered {
        let what = gs
            .iter()
            .map(|&o| {
                let n = m.o2n[o].unwrap_or(o);
                let again = if tn.element(n) == "foreach" {
                    "a foreach resets its key on entry: its body runs again for every item"
                } else {
                    "its condition is tested anew"
                };
                format!("{} ({again})", tn.label(n))
            })
            .collect::<Vec<_>>()
            .join(", ");
        out.push(
            finding(
                Code::RerunActivities,
                format!(
                    "instances resting at {} will resume before the loop that held their wait under the old version, and run it again from its start: {what}",
                    at(rs)
                ),
            )
            .states(states(rs))
            .old_acts(gs.iter().map(|&o| to.aref(o)))
            .new_acts(gs.iter().filter_map(|&o| m.o2n[o]).map(|n| tn.aref(n))),
        );
    }
    for (ps, rs) in &replaced {
        let what = ps
            .iter()
            .map(|&(p, o)| {
                format!(
                    "{} replaces {} they were iterating in: {}",
                    tn.label(p),
                    to.label(o),
                    loop_goes_on(tn, p, false)
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        out.push(
            finding(
                Code::NewEnclosingActivity,
                format!(
                    "instances resting at {} will resume inside another loop: {what}",
                    at(rs)
                ),
            )
            .states(states(rs))
            .old_acts(ps.iter().map(|&(_, o)| to.aref(o)))
            .new_acts(ps.iter().map(|&(p, _)| tn.aref(p))),
        );
    }
    let evaluated = evaluated.into_iter().map(|(ps, rs)| ((ps, Vec::new()), rs));
    for (group, ran) in [
        (evaluated.collect::<Vec<_>>(), true),
        (enclosing.into_iter().collect(), false),
    ] {
        for ((ps, forced), rs) in &group {
            let loops: Vec<usize> = ps
                .iter()
                .copied()
                .filter(|&p| is_loop(tn.element(p)))
                .collect();
            let it = if ps.len() == 1 { "it" } else { "them" };
            let then = match (ran, loops.is_empty()) {
                (true, true) => ", whose condition they evaluated before reaching that point under the old version: whatever the outcome was, they now continue inside it".to_string(),
                (false, true) => " without having evaluated its condition".to_string(),
                (true, false) => format!(", which they ran before reaching that point under the old version: they now continue inside {it}"),
                (false, false) => format!(" without having entered {it} under the old version"),
            };
            let how: String = loops
                .iter()
                .map(|&p| format!("; {}", loop_goes_on(tn, p, ran)))
                .chain(forced.iter().map(|f| format!("; {f}")))
                .collect();
            out.push(about(
                Code::NewEnclosingActivity,
                format!(
                    "instances resting at {} will resume inside {}{then}{how}",
                    at(rs),
                    names(ps)
                ),
                rs,
                ps,
            ));
        }
    }
    for (sw, rs) in &switched {
        let what = sw
            .iter()
            .map(|(p, ob, nb, cond)| format!("{} ({ob} before, {nb} now{cond})", tn.label(*p)))
            .collect::<Vec<_>>()
            .join(", ");
        out.push(
            finding(
                Code::BranchSwitched,
                format!("instances resting at {} chose another branch than the one they resume in: {what}", at(rs)),
            )
            .states(states(rs))
            .new_acts(sw.iter().map(|(p, _, _, _)| tn.aref(*p))),
        );
    }
    out.extend(unresolved_compensates(a, old_c, new_c, &uncompensated));
    out
}

/// For each `<compensate>` that lost its handler (new position), the rows that can still
/// reach it, grouped by the `<compensate>` of the handler holding it that they reach it
/// through (None: they reach it directly).
type Uncompensated<'r> = BTreeMap<usize, BTreeMap<Option<usize>, Vec<&'r Resume>>>;

/// The rows resting at `rs`, for a finding's text; a row inside a compensation handler for
/// what it runs once the handler returns.
fn resting_at(tn: &Tree, rs: &[&Resume]) -> String {
    rs.iter()
        .map(|r| match r.returns {
            true => format!(
                "{} (once its compensation handler returns to {})",
                r.old_ref,
                act_label(tn, r.w_new)
            ),
            false => r.old_ref.clone(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// BPM0215: every `<compensate>` of the new version that runs no compensation handler (the
/// registry did not hold its target when it was generated, spec 3.4.11, Q-8): IRIS compiles a
/// `GoSub` to an empty state, so every instance that reaches it, new or in flight, errors there.
/// Why the lookup failed is said (the scope whose `<compensationhandlers>` reset the registry),
/// and what it ran under the old version; `rows` are those that ran a handler there under the
/// old version and can still reach it (by `CompAdded` with no handler).
pub(super) fn unresolved_compensates(
    a: &Analysis,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    rows: &Uncompensated,
) -> Vec<Finding> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    if new_c.unresolved_compensates.is_empty() {
        return Vec::new();
    }
    let old_sites: HashMap<usize, Option<usize>> =
        compensated_handlers(to, old_c).into_iter().collect();
    let handler_of = |t: &Tree, h: usize| {
        format!(
            "{} of {}",
            act_label(t, h),
            t.parent(h).map(|s| act_label(t, s)).unwrap_or_default()
        )
    };
    let mut out = Vec::new();
    for u in &new_c.unresolved_compensates {
        let Some(c) = tn.pos(u.compensate.id) else {
            continue;
        };
        // A `<compensate>` is a direct child of a `<catch>`/`<catchall>` (spec 2.8).
        let place = match tn.parent(c).and_then(|f| Some((f, tn.parent(f)?))) {
            Some((f, s)) => format!(" in the {} of {}", tn.handler_tag(f), act_label(tn, s)),
            None => String::new(),
        };
        // Without a reset: is a handler of that name generated at all (later)?
        let later = match u.cleared_by {
            Some(_) => String::new(),
            None => match (0..tn.len()).find(|&h| {
                tn.effective[h]
                    && tn.element(h) == "compensationhandler"
                    && tn.nodes[h].name.as_deref() == Some(u.target.as_str())
            }) {
                Some(h) => format!(" ({} is generated after it)", handler_of(tn, h)),
                None => " (no compensation handler has that name)".to_string(),
            },
        };
        let was = m.n2o[c]
            .filter(|&o| to.effective[o])
            .and_then(|o| old_sites.get(&o).copied());
        let old = match was {
            Some(Some(oh)) => format!("; under the old version it ran {}", handler_of(to, oh)),
            Some(None) => "; it found none under the old version either".to_string(),
            None => String::new(),
        };
        let by_outer = rows.get(&c);
        let lose = by_outer.map_or_else(String::new, |by| {
            let who: Vec<String> = by
                .iter()
                .map(|(outer, rs)| match outer {
                    None => format!("at {}", resting_at(tn, rs)),
                    Some(o) => format!("at {} (through {})", resting_at(tn, rs), act_label(tn, *o)),
                })
                .collect();
            format!(
                ", which instances resting {} lose if they reach it",
                who.join(" and ")
            )
        });
        let mut states: Vec<String> = Vec::new();
        for r in by_outer.into_iter().flat_map(|by| by.values()).flatten() {
            for x in [&r.old_ref, &r.new_ref] {
                if !states.contains(x) {
                    states.push(x.clone());
                }
            }
        }
        out.push(
            finding(
                Code::CompensateUnresolved,
                format!(
                    "{}{place} runs no compensation handler in the new version: {}{later} (spec 3.4.11, Q-8), so IRIS compiles a GoSub to an empty state and an instance that reaches it errors there instead of compensating{old}{lose}",
                    act_label(tn, c),
                    u.reason()
                ),
            )
            .states(states)
            .new_acts(
                std::iter::once(u.compensate.clone()).chain(u.cleared_by.clone()),
            )
            .old_acts(match was {
                Some(Some(oh)) => vec![to.aref(oh)],
                _ => Vec::new(),
            }),
        );
    }
    out
}

/// Can a thread resting at `w` still run the `<compensate>` `c` (a direct child of a
/// `<catch>`/`<catchall>` `f` of a scope `s`, spec 2.8)? When it rests in `f` before `c`; in
/// the body of `s` (a fault takes it to `f`); before `s`; or in a loop around `s`, whose next
/// iteration runs `s` again. Only in the thread `w` runs in: a flow's branches are threads of
/// their own, whose rows answer for them.
fn reaches_later(t: &Tree, c: usize, w: usize) -> bool {
    let Some((f, s)) = t.parent(c).and_then(|f| Some((f, t.parent(f)?))) else {
        return false;
    };
    if !matches!(t.element(f), "catch" | "catchall") || !runs_in_thread(t, c, t.thread_root(w)) {
        return false;
    }
    if f == w || t.is_desc(w, f) {
        return t.order(c, w) == Order::After;
    }
    matches!(t.child_towards(s, w), Some((_, "body", _)))
        || t.order(s, w) == Order::After
        || t.ancestors(w)
            .any(|l| is_loop(t.element(l)) && t.is_desc(s, l))
}

/// A conditional around the resume point whose branch changed: (its new position, the old
/// branch, the new branch, what changed in its condition (see [`condition_changed`])).
type Switched = (usize, String, String, String);

/// Where an activity that moved between the branches of a flow lies for a row in one of
/// them: moved into its branch or out of it, before or after its resume point.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Crossed {
    IntoBefore,
    IntoAfter,
    OutBefore,
    OutAfter,
}

/// The outermost activities (new positions) whose old counterpart ran in another branch of
/// the same flow: each branch is its own thread (spec 3.4.14), and rows of one branch thread
/// cannot tell how far the others got.
fn moved_between_branches(a: &Analysis, full: &mut [bool]) -> Vec<usize> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let set: Vec<usize> = (0..tn.len())
        .filter(|&n| {
            let Some(o) = m.n2o[n] else { return false };
            let (nt, ot) = (tn.thread_root(n), to.thread_root(o));
            tn.effective[n]
                && to.effective[o]
                && matches!(
                    (tn.parent(nt), to.parent(ot)),
                    (Some(f), Some(fo)) if m.o2n[fo] == Some(f) && m.o2n[ot] != Some(nt)
                )
        })
        .collect();
    outermost(tn, &set, full)
}

/// Removes the activities `drop` names from sibling runs (splitting the runs around them).
/// Replaces each `<if>`/`<switch>` in the runs by the runs of its branches (recursively), in
/// pre-order: what lies in a branch is data-dependent ([`conditional_between`]).
fn open_conditionals(t: &Tree, runs: &mut SiblingRuns) {
    let cond = |p: usize| matches!(t.element(p), "if" | "switch");
    if !runs.iter().any(|&run| run_items(t, run).any(cond)) {
        return;
    }
    fn open(t: &Tree, run: (usize, usize), out: &mut SiblingRuns) {
        let mut cur: Option<(usize, usize)> = None;
        for p in run_items(t, run) {
            if !matches!(t.element(p), "if" | "switch") {
                cur = Some(cur.map_or((p, p), |(f, _)| (f, p)));
                continue;
            }
            out.extend(cur.take());
            for (_, l) in &t.slots[p] {
                let live: Vec<usize> = l.iter().copied().filter(|&c| t.effective[c]).collect();
                if let (Some(&f), Some(&e)) = (live.first(), live.last()) {
                    // Disabled children between them stay out of the run's count.
                    let mut from = f;
                    for (i, &c) in live.iter().enumerate() {
                        let next = live.get(i + 1).copied();
                        if next.is_some_and(|n| n != t.end(c) + 1) || c == e {
                            open(t, (from, c), out);
                            if let Some(n) = next {
                                from = n;
                            }
                        }
                    }
                }
            }
        }
        out.extend(cur);
    }
    let mut out: SiblingRuns = Vec::with_capacity(runs.len());
    for &run in runs.iter() {
        open(t, run, &mut out);
    }
    *runs = out;
}

/// Makes each activity `alone` names a run of its own (splitting the runs around it).
fn isolate_items(t: &Tree, runs: &mut SiblingRuns, alone: impl Fn(usize) -> bool) {
    split_items(t, runs, |p| alone(p).then_some(true));
}

/// Takes the activities `drop` names out of the runs (splitting the runs around them).
fn drop_items(t: &Tree, runs: &mut SiblingRuns, drop: impl Fn(usize) -> bool) {
    split_items(t, runs, |p| drop(p).then_some(false));
}

/// Splits the runs around the activities `at` names: `Some(true)` keeps one as a run of its
/// own, `Some(false)` drops it; the others stay in runs of consecutive siblings.
fn split_items(t: &Tree, runs: &mut SiblingRuns, at: impl Fn(usize) -> Option<bool>) {
    let mut out: SiblingRuns = Vec::with_capacity(runs.len());
    for &run in runs.iter() {
        let mut open: Option<(usize, usize)> = None;
        for p in run_items(t, run) {
            match at(p) {
                Some(keep) => {
                    out.extend(open.take());
                    if keep {
                        out.push((p, p));
                    }
                }
                None => open = Some(open.map_or((p, p), |(f, _)| (f, p))),
            }
        }
        out.extend(open);
    }
    *runs = out;
}

/// What a fault handler of the new version was under the old one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HandlerWas {
    /// The same handler, generated: what was added to it did not run.
    Same,
    /// The same handler, disabled: it caught its faults and ran nothing (spec 2.4 exception 2).
    Disabled,
    /// No such handler: its faults went through the old scope's `<catchall>` (this old
    /// position).
    New(usize),
    /// No such handler and no `<catchall>`: its faults went on to the handlers of the
    /// enclosing scope (this new position; spec 3.4.10, the transfer default).
    NewTransferred(usize),
    /// The `<catchall>` (this handler) now catches the faults of an old `<catch>` (this old
    /// position) that was removed: rows that took that path ran that catch, not it.
    Removed(usize),
    /// The same handler, but the old version sent its faults to another handler of the scope
    /// (this old position): an earlier `<catch>` of the same fault, since removed or moved
    /// after it (the first catch of a fault wins, spec 3.4.10). Rows that took that path ran
    /// that one, not this one.
    Superseded(usize),
}

/// A fault handler (`<catch>`/`<catchall>`) of a scope both versions generate, with the
/// outermost activities added to it (new ones, or ones the old version did not generate;
/// activities of a handler nested in one count for that one), and the scope (new and old
/// positions) a row must have passed in both versions to have come through it: its own, or
/// for a new handler of a scope without `<catchall>` the enclosing one its faults went on to
/// (a row that took that path under the old version left that enclosing scope through its
/// handlers). A new handler of a scope nothing encloses in its thread caught faults that
/// made the old thread fail: no row after it took that path, so it is not listed.
struct FaultAdded {
    handler: usize,
    was: HandlerWas,
    items: Vec<usize>,
    passed: (usize, usize),
}

fn added_to_fault_handlers(a: &Analysis, replaced: &[bool], full: &mut [bool]) -> Vec<FaultAdded> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut out = Vec::new();
    for c in 0..tn.len() {
        if !matches!(tn.element(c), "catch" | "catchall") || !tn.effective[c] {
            continue;
        }
        let Some(s) = tn.parent(c) else { continue };
        let Some(os) = m.n2o[s].filter(|&os| to.effective[os] && to.element(os) == "scope") else {
            continue;
        };
        // A handler no fault reaches never ran and never will: nothing in it is skipped.
        if first_handler(tn, s, tn.nodes[c]) != Some(c) {
            continue;
        }
        let was = match m.n2o[c] {
            // The old version sent such a fault to another handler of the scope (an earlier
            // `<catch>` of the same fault, since removed or moved after this one): rows that
            // took that path ran that one, not this one.
            Some(o) if to.element(o) == tn.element(c) && to.parent(o) == Some(os) => {
                match first_handler(to, os, tn.nodes[c]) {
                    Some(oc) if oc != o => HandlerWas::Superseded(oc),
                    _ if to.effective[o] => HandlerWas::Same,
                    _ => HandlerWas::Disabled,
                }
            }
            _ => match first_handler(to, os, tn.nodes[c]).or_else(|| last_catchall(to, os)) {
                Some(oc) => HandlerWas::New(oc),
                None => {
                    let tr = tn.thread_root(s);
                    let Some(e) = tn
                        .ancestors(s)
                        .find(|&q| tn.element(q) == "scope" && tn.thread_root(q) == tr)
                    else {
                        continue;
                    };
                    HandlerWas::NewTransferred(e)
                }
            },
        };
        let passed = match was {
            HandlerWas::NewTransferred(e) => {
                match m.n2o[e].filter(|&oe| to.effective[oe] && to.is_desc(os, oe)) {
                    Some(oe) => (e, oe),
                    None => continue,
                }
            }
            _ => (s, os),
        };
        // Under another handler, rows ran none of this one. A `<catch>` widened to this
        // `<catchall>` (paired with it) ran its contents for its own fault only: rows that
        // took another fault's path (the enclosing scope's handlers) ran none of them.
        let widened = m.n2o[c].is_some_and(|o| to.element(o) != tn.element(c));
        let other = matches!(was, HandlerWas::Superseded(_)) || widened;
        let added: Vec<usize> = (c + 1..=tn.end(c))
            .filter(|&p| {
                tn.effective[p]
                    && tn.handler(p) == Some(c)
                    && (other || !m.n2o[p].is_some_and(|o| to.effective[o]))
                    && !replaced[p]
            })
            .collect();
        let mut items = outermost(tn, &added, full);
        if let HandlerWas::New(oc) | HandlerWas::Superseded(oc) = was {
            // What the old `<catchall>` ran as well (identical, moved from it into the new
            // handler: the matcher does not match across handlers) is not skipped.
            let ran: HashSet<_> = (oc + 1..=to.end(oc))
                .filter(|&q| to.effective[q] && to.handler(q) == Some(oc))
                .map(|q| &to.hash[q])
                .collect();
            items.retain(|&p| !ran.contains(&tn.hash[p]));
        }
        if !items.is_empty() {
            out.push(FaultAdded {
                handler: c,
                was,
                items,
                passed,
            });
        }
    }
    // An old `<catch>` whose fault no new one catches, of a scope whose new version has a
    // `<catchall>`: such a fault now goes through that, which rows past the scope that took
    // that path did not run (what the old catch ran as well aside).
    for oc in 0..to.len() {
        if to.element(oc) != "catch" {
            continue;
        }
        let Some(os) = to.parent(oc).filter(|&os| to.effective[os]) else {
            continue;
        };
        let Some(s) = m.o2n[os].filter(|&s| tn.effective[s] && tn.element(s) == "scope") else {
            continue;
        };
        // A catch whose fault was renamed (paired with a catch of the new fault) still takes
        // that fault, renamed with its `<throw>`s.
        if first_handler(to, os, to.nodes[oc]) != Some(oc)
            || first_handler(tn, s, to.nodes[oc]).is_some()
            || m.o2n[oc].is_some_and(|n| tn.element(n) == "catch")
        {
            continue;
        }
        let Some(c) = last_catchall(tn, s).filter(|&c| tn.effective[c]) else {
            continue;
        };
        let set: Vec<usize> = (c + 1..=tn.end(c))
            .filter(|&p| tn.effective[p] && tn.handler(p) == Some(c) && !replaced[p])
            .collect();
        let mut items = outermost(tn, &set, full);
        let ran: HashSet<_> = (oc + 1..=to.end(oc))
            .filter(|&q| to.effective[q] && to.handler(q) == Some(oc))
            .map(|q| &to.hash[q])
            .collect();
        items.retain(|&p| !ran.contains(&tn.hash[p]));
        if !items.is_empty() {
            out.push(FaultAdded {
                handler: c,
                was: HandlerWas::Removed(oc),
                items,
                passed: (s, os),
            });
        }
    }
    out
}

/// Did a thread resting at `w` run `p`, or may it have, with `order(p, w)`: before it, or in
/// the body of a scope whose fault handler holds it (see [`Order::Faulted`]).
fn ran_some(o: Order) -> bool {
    matches!(o, Order::Before | Order::Faulted)
}

/// The outermost activities added to the body of `scope` (new, or not generated under the old
/// version), outside the fault handlers nested in it.
///
/// Only those before some activity the old body ran too: a fault under the old version
/// happened at an old activity, so what was added after the last of them was never reached by
/// one (an insertion at the end of the body is not skipped by rows in its handlers).
fn added_to_body(a: &Analysis, scope: usize, replaced: &[bool], full: &mut [bool]) -> Vec<usize> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let body: Vec<(usize, usize)> = tn.slots[scope]
        .iter()
        .filter(|(slot, _)| slot == "body")
        .filter_map(|(_, l)| Some((*l.first()?, tn.end(*l.last()?))))
        .collect();
    let old_in_body = |p: usize| {
        tn.effective[p]
            && tn.handler(p) == tn.handler(scope)
            && m.n2o[p].is_some_and(|o| to.effective[o])
    };
    let set: Vec<usize> = body
        .iter()
        .flat_map(|&(first, last)| first..=last)
        .filter(|&p| {
            tn.effective[p]
                && tn.handler(p) == tn.handler(scope)
                && !m.n2o[p].is_some_and(|o| to.effective[o])
                && !replaced[p]
        })
        .collect();
    let mut items = outermost(tn, &set, full);
    items.retain(|&x| {
        body.iter().any(|&(_, last)| {
            (tn.end(x) + 1..=last).any(|p| old_in_body(p) && tn.order(p, x) == Order::After)
        })
    });
    items
}

/// The fault handler of `scope` (in `t`) that catches the faults the handler `h` of the new
/// version names: for a `<catch>`, the first `<catch>` of the same fault in document order
/// (the fault dispatch is a `<switch>` with a case per catch, disabled ones included: spec
/// 3.4.10, 3.4.5); for a `<catchall>`, the last one. `None` when `scope` has none.
fn first_handler(t: &Tree, scope: usize, h: &Activity) -> Option<usize> {
    match &h.kind {
        ActivityKind::Catch { fault, .. } => t.catches(scope).into_iter().find(
            |&c| matches!(&t.nodes[c].kind, ActivityKind::Catch { fault: f, .. } if same_expr(f.as_deref(), fault.as_deref())),
        ),
        _ => last_catchall(t, scope),
    }
}

/// The `<catchall>` a scope uses: the last one (spec 3.4.10, Q-16).
fn last_catchall(t: &Tree, scope: usize) -> Option<usize> {
    t.slots[scope]
        .iter()
        .filter(|(s, _)| s == "faulthandlers")
        .flat_map(|(_, l)| l.iter().copied())
        .rfind(|&c| t.element(c) == "catchall")
}

/// A `<compensate>` both versions generate, with the outermost activities of the
/// `<compensationhandler>` it runs (as the compiler resolved it) that a row which ran it under
/// the old version did not run: those added to that handler, or for a compensate that ran
/// another handler under the old version (retargeted), those that handler did not run too.
/// A compensate that ran a handler under the old version and runs none now (the registry lost
/// its target, spec 3.4.11) is one too, with no handler and no items: what matters there is
/// not the rows that ran it but those that can still reach it (they error where they ran the
/// old handler).
/// A compensate inside another compensation handler runs when that one does: it is listed
/// again under each compensate that runs that handler (`through`).
#[derive(Clone)]
struct CompAdded {
    /// The `<compensate>` a row passes, new and old positions.
    site: usize,
    site_old: usize,
    /// The `<compensationhandler>` (new position) that runs the items; None when the
    /// compensate runs no handler in the new version (`was` is then the one it ran).
    handler: Option<usize>,
    /// The handler (old position) the compensate ran under the old version, when another.
    was: Option<usize>,
    /// The `<compensate>`s (new positions) by which `site` runs `handler`, from the one in
    /// `site`'s handler inwards; empty when `site` runs it itself.
    through: Vec<usize>,
    /// The `<catch>`/`<catchall>` (new position) inside the handler `site` runs that holds the
    /// first of `through` (a `<compensate>` is a direct child of one, spec 2.8): it runs only
    /// when a fault takes that handler there.
    via_fault: Option<usize>,
    items: Vec<usize>,
}

impl CompAdded {
    /// The `<compensate>` that runs `handler` (or would have run `was`) itself.
    fn last(&self) -> usize {
        self.through.last().copied().unwrap_or(self.site)
    }
}

fn added_to_comp_handlers(
    a: &Analysis,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    replaced: &[bool],
    full: &mut [bool],
) -> Vec<CompAdded> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let new_sites = compensated_handlers(tn, new_c);
    if new_sites.is_empty() {
        return Vec::new();
    }
    let old_sites: HashMap<usize, Option<usize>> =
        compensated_handlers(to, old_c).into_iter().collect();
    // The items of each handler, computed once per handler and old handler.
    let mut added: HashMap<(usize, Option<usize>), Vec<usize>> = HashMap::new();
    let mut out = Vec::new();
    for &(site, h) in &new_sites {
        let Some(site_old) = m.n2o[site].filter(|&o| to.effective[o]) else {
            continue;
        };
        // (A compensate that found no handler under the old version ran nothing.)
        let Some(&Some(oh)) = old_sites.get(&site_old) else {
            continue;
        };
        let Some(h) = h else {
            // It ran `oh` under the old version and runs nothing now.
            out.push(CompAdded {
                site,
                site_old,
                handler: None,
                was: Some(oh),
                through: Vec::new(),
                via_fault: None,
                items: Vec::new(),
            });
            continue;
        };
        // Another handler under the old version (a retargeted compensate): they ran that one.
        let was = (m.o2n[oh] != Some(h)).then_some(oh);
        let items = added.entry((h, was)).or_insert_with(|| {
            let set: Vec<usize> = (h + 1..=tn.end(h))
                .filter(|&p| {
                    tn.effective[p]
                        && tn.handler(p) == Some(h)
                        && (was.is_some() || !m.n2o[p].is_some_and(|o| to.effective[o]))
                        && !replaced[p]
                })
                .collect();
            let mut items = outermost(tn, &set, full);
            if let Some(oh) = was {
                // What the old handler ran as well is not skipped.
                let ran: HashSet<_> = (oh + 1..=to.end(oh))
                    .filter(|&q| to.effective[q] && to.handler(q) == Some(oh))
                    .map(|q| &to.hash[q])
                    .collect();
                items.retain(|&p| !ran.contains(&tn.hash[p]));
            }
            items
        });
        if !items.is_empty() {
            out.push(CompAdded {
                site,
                site_old,
                handler: Some(h),
                was,
                through: Vec::new(),
                via_fault: None,
                items: items.clone(),
            });
        }
    }
    // A compensate in a compensation handler ran wherever a compensate of that handler did
    // (the same handler in both versions), and so on outwards.
    let direct = out.len();
    for k in 0..direct {
        let mut todo = vec![(out[k].site, out[k].site_old, Vec::new())];
        let mut seen: HashSet<usize> = HashSet::default();
        while let Some((s, so, through)) = todo.pop() {
            if !seen.insert(s) {
                continue;
            }
            let Some(hh) = tn
                .ancestors(s)
                .find(|&x| tn.element(x) == "compensationhandler")
            else {
                continue;
            };
            let via_fault = tn.handler(s).filter(|&x| x != hh);
            for &(outer, h2) in &new_sites {
                let Some(outer_old) = m.n2o[outer].filter(|&o| to.effective[o]) else {
                    continue;
                };
                let old_hh = to
                    .ancestors(so)
                    .find(|&x| to.element(x) == "compensationhandler");
                if h2 != Some(hh)
                    || old_hh.is_none()
                    || old_sites.get(&outer_old).copied().flatten() != old_hh
                {
                    continue;
                }
                let mut t2 = vec![s];
                t2.extend(&through);
                out.push(CompAdded {
                    site: outer,
                    site_old: outer_old,
                    through: t2.clone(),
                    via_fault,
                    ..out[k].clone()
                });
                todo.push((outer, outer_old, t2));
            }
        }
    }
    out
}

/// Every `<compensate>` (position) the compiler generated, with the `<compensationhandler>`
/// (position) it runs, None when the lookup failed (an empty `GoSub` target): read from the
/// compiled states, not matched by name (spec 3.4.11: the registry is global, reset by every
/// scope with handlers, and read at generation time). The site state's `gosub` is (H, R); R is
/// owned by the `<compensate>`, H by the scope, and a scope's k-th handler state is its k-th
/// enabled, named handler.
fn compensated_handlers(t: &Tree, c: &CompiledProcess) -> Vec<(usize, Option<usize>)> {
    let mut out = Vec::new();
    for th in &c.threads {
        if !th.states.iter().any(|s| s.gosub_states().is_some()) {
            continue;
        }
        // The handler states of each scope, in allocation order.
        let mut of_scope: HashMap<ActivityId, Vec<StateName>> = HashMap::new();
        for s in &th.states {
            if matches!(s.role, Role::CompHandler(_)) {
                of_scope.entry(s.activity.id).or_default().push(s.name);
            }
        }
        for s in &th.states {
            let Some((h, r)) = s.gosub_states() else {
                continue;
            };
            let Some(h) = h else {
                if let Some(site) = th.state(&r).and_then(|rs| t.pos(rs.activity.id)) {
                    out.push((site, None));
                }
                continue;
            };
            let (Some(hs), Some(rs)) = (th.state(&h), th.state(&r)) else {
                continue;
            };
            let (Some(site), Some(scope)) = (t.pos(rs.activity.id), t.pos(hs.activity.id)) else {
                continue;
            };
            let Some(k) = of_scope
                .get(&hs.activity.id)
                .and_then(|v| v.iter().position(|&n| n == h))
            else {
                continue;
            };
            let handler = t
                .comp_handlers(scope)
                .into_iter()
                .filter(|&x| !t.nodes[x].disabled && t.nodes[x].name.is_some())
                .nth(k);
            if let Some(handler) = handler {
                out.push((site, Some(handler)));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// "2 activities", or for data-dependent ones in different branches of one conditional (a
/// row runs at most one branch) "one of 2 activities" / "some of 3 activities".
///
/// In pre-order, every pair is in different branches exactly when every adjacent pair is,
/// and some pair is exactly when some adjacent pair is (a conditional's branches are
/// contiguous); siblings of one run share a branch.
fn how_many(t: &Tree, ps: &[(usize, usize)], may: bool) -> String {
    let n: usize = ps.iter().map(|&run| run_len(t, run)).sum();
    let all = count(n, "activity", "activities");
    if !may || n < 2 {
        return all;
    }
    let exclusive = |a: usize, b: usize| {
        let l = t.lca(a, b);
        matches!(t.element(l), "if" | "switch")
            && matches!((t.child_towards(l, a), t.child_towards(l, b)), (Some((_, x, _)), Some((_, y, _))) if x != y)
    };
    let adjacent: Vec<bool> = ps.windows(2).map(|x| exclusive(x[0].1, x[1].0)).collect();
    let in_runs = ps.iter().any(|&run| run_len(t, run) > 1);
    if !in_runs && adjacent.iter().all(|&x| x) {
        format!("one of {all}")
    } else if adjacent.iter().any(|&x| x) {
        format!("some of {all}")
    } else {
        all
    }
}

/// For certain skips inside a loop body that also holds the resume point: only the current
/// iteration skips them; inside a loop that held the old wait but not the new one: they skip
/// them in the iteration they leave it from. (Siblings share the answer: it is asked of each
/// run's first.) For a data-dependent skip (`may`) whether later iterations run them depends
/// on the data too: that is left unsaid.
fn this_iteration(a: &Analysis, ps: &[(usize, usize)], rs: &[&Resume], may: bool) -> &'static str {
    let t = &a.new;
    let in_left = ps.iter().all(|&(p, _)| {
        rs.iter().all(|r| {
            let held = loops_held(a, r);
            t.ancestors(p)
                .any(|q| held.contains(&q) && !t.is_desc(r.w_new, q))
        })
    });
    if in_left {
        return " in the iteration of the loop they leave";
    }
    let in_loop = ps.iter().all(|&(p, _)| {
        rs.iter().all(|r| {
            let l = t.lca(p, r.w_new);
            std::iter::once(l)
                .chain(t.ancestors(l))
                .any(|q| matches!(t.element(q), "while" | "until" | "foreach"))
        })
    });
    // Moved into the body from after the loop: the iterations they went through never ran
    // them either (see `ran_after_loops_of`).
    let gone_by = ps.iter().all(|&(p, _)| {
        rs.iter().all(|r| {
            r.w_old
                .is_some_and(|wo| !ran_after_loops_of(a, &held_loops(a, r), p, wo).is_empty())
        })
    });
    match (in_loop, may, gone_by) {
        (true, true, _) => " in the current iteration of their loop",
        (true, false, true) => {
            " in the current iteration of their loop and in those they already went through (later iterations run them)"
        }
        (true, false, false) => " in the current iteration of their loop (later iterations run them)",
        (false, _, _) => "",
    }
}

/// Control flow that does no work: a jump, or a label to jump to.
fn is_jump(t: &Tree, p: usize) -> bool {
    matches!(t.element(p), "break" | "continue" | "label" | "branch")
}

/// Why a skip or re-run is data-dependent: a branch, a loop, or both, between the
/// activities and the resume points. A loop the old version did not have (or did not run)
/// is new to them: whether it would have run is not something they decided. (Siblings share
/// the answer: it is asked of each run's first.)
fn depending(a: &Analysis, old_earlier: &[bool], ps: &[(usize, usize)], rs: &[&Resume]) -> String {
    let t = &a.new;
    let (mut branch, mut looped) = (false, false);
    let mut new_loops: BTreeSet<usize> = BTreeSet::new();
    let mut scopes: BTreeSet<usize> = BTreeSet::new();
    let mut bodies: BTreeSet<usize> = BTreeSet::new();
    // Old `<sync>`s they passed that may have let them go on without the answers of these
    // calls (a new `<sync>` waits for them), see `Awaited`.
    let mut unsure: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
    // Old scopes whose body held it and whose fault handlers could take them past it.
    let mut left_scopes: BTreeSet<usize> = BTreeSet::new();
    for &(p, _) in ps {
        if let Some(aw) = awaited(a, p) {
            for (call, wait) in t.sync_calls(p).zip(&aw.waits) {
                let Some((o, false)) = *wait else { continue };
                let passed = rs.iter().any(|r| {
                    r.w_old
                        .is_some_and(|wo| a.old.order(o, wo) == Order::Before)
                });
                if passed {
                    unsure.entry(o).or_default().push(call);
                }
            }
        }
        for r in rs {
            // An old conditional that no longer decides it: one they took or did not.
            match decided_by_old(a, p, r).map(|c| (c, a.old.element(c))) {
                Some((_, "if" | "switch")) => branch = true,
                // Moved out of the body of a scope with fault handlers they passed.
                Some((c, "scope")) => {
                    left_scopes.insert(c);
                }
                Some(_) => looped = true,
                None => {}
            }
            scopes.extend(faults_left_before(a, old_earlier, p, r));
            bodies.extend(left_body_of(a, p, r));
            let held = loops_held(a, r);
            let l = t.lca(p, r.w_new);
            for par in std::iter::once(p)
                .chain(t.ancestors(p))
                .take_while(|&q| q != l)
                .filter_map(|q| t.parent(q))
                .filter(|&par| par != l)
            {
                match t.element(par) {
                    "if" | "switch" if chose_branch(a, par, p, r).is_some() => {}
                    "if" | "switch" => branch = true,
                    "while" | "foreach" if held.contains(&par) => {}
                    "while" | "foreach" if a.m.n2o[par].is_none_or(|o| !a.old.effective[o]) => {
                        new_loops.insert(par);
                    }
                    "while" | "foreach" => looped = true,
                    _ => {}
                }
            }
        }
    }
    let new_loop = (!new_loops.is_empty()).then(|| {
        // A new loop around activities the rows ran before their resume point under the old
        // version (a label/branch retry rewritten as a loop): they ran its body, not in it.
        let ran_body = |q: usize| {
            (q + 1..=t.end(q)).any(|n| {
                a.m.n2o[n].is_some_and(|o| {
                    a.old.effective[o]
                        && rs.iter().any(|r| {
                            r.w_old
                                .is_some_and(|wo| a.old.order(o, wo) == Order::Before)
                        })
                })
            })
        };
        let (ran, never): (Vec<usize>, Vec<usize>) = new_loops.iter().partition(|&&q| ran_body(q));
        let label = |qs: &[usize]| qs.iter().map(|&q| t.label(q)).collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        if !never.is_empty() {
            parts.push(format!(
                "{}, which they never ran (new to them; it runs 0 or more times)",
                label(&never)
            ));
        }
        if !ran.is_empty() {
            parts.push(format!(
                "{}, new around activities they ran before that point under the old version, outside any loop (how often it runs is new to them)",
                label(&ran)
            ));
        }
        parts.join(", and in ")
    });
    let fault = (!scopes.is_empty() || !left_scopes.is_empty()).then(|| {
        let names: Vec<String> = scopes
            .iter()
            .map(|&q| t.label(q))
            .chain(left_scopes.iter().map(|&q| a.old.label(q)))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        format!(
            "whether a fault took them out of the body of {} before it reached them (its fault handlers ran instead)",
            names.join(", ")
        )
    });
    // Moved out of the body of a scope whose fault handler holds their old wait: whether they
    // ran it depends on where in the body the fault happened.
    let body = (!bodies.is_empty()).then(|| {
        let names: Vec<String> = bodies.iter().map(|&q| a.old.label(q)).collect();
        format!(
            "where in the body of {} the fault happened",
            names.join(", ")
        )
    });
    let fault = match (fault, body) {
        (Some(f), Some(b)) => Some(format!("{f}, and on {b}")),
        (f, b) => f.or(b),
    };
    let answers: Vec<String> = unsure
        .iter()
        .map(|(&o, calls)| {
            let n = a.old.nodes[o];
            let why = match n.attrs.contains_key("timeout") {
                true => "it has a timeout",
                false => "it is of type any",
            };
            let calls: Vec<String> = calls.iter().map(|c| format!("\"{c}\"")).collect();
            format!(
                "whether {} ({why}) let them go on without the answer of {}",
                a.old.label(o),
                calls.join(", ")
            )
        })
        .collect();
    let mut on: Vec<&str> = Vec::new();
    match (branch, looped, &new_loop) {
        (_, true, Some(_)) | (true, true, None) => {
            on.push("the branches they took and whether a loop ran")
        }
        (false, true, None) => on.push("whether the loop ran (it may have run 0 times)"),
        (true, false, _) => on.push("the branch they took"),
        (false, false, None) if fault.is_none() && answers.is_empty() => {
            on.push("the branch they took")
        }
        (false, false, _) => {}
    }
    on.extend(fault.as_deref());
    on.extend(answers.iter().map(String::as_str));
    match (on.is_empty(), new_loop) {
        (true, Some(n)) => format!(", in {n}"),
        (false, Some(n)) => format!(", depending on {}, and in {n}", on.join(", and on ")),
        (_, None) => format!(", depending on {}", on.join(", and on ")),
    }
}

/// For each new position: does an earlier sibling in its list (with its subtree) hold an
/// activity the old version generated? A fault under the old version happened at such an
/// activity.
fn old_earlier_siblings(a: &Analysis) -> Vec<bool> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut holds = vec![false; tn.len()];
    for p in (0..tn.len()).rev() {
        holds[p] = (tn.effective[p] && m.n2o[p].is_some_and(|o| to.effective[o]))
            || tn.slots[p].iter().flat_map(|(_, l)| l).any(|&c| holds[c]);
    }
    let mut out = vec![false; tn.len()];
    for l in tn.slots.iter().flat_map(|s| s.iter().map(|(_, l)| l)) {
        let mut seen = false;
        for &c in l {
            out[c] = seen;
            seen |= holds[c];
        }
    }
    out
}

/// The scopes a thread resting at `r` passed (in both versions) whose body holds `p` after
/// some activity the old version ran, and that had a fault handler under the old version: a
/// row that faulted there before reaching `p` and recovered in a handler would not have run
/// `p` under the new version either, so whether it skips `p` depends on that. (Scopes below
/// the lowest common ancestor of `p` and the resume point only: a scope around both was
/// not left.)
fn faults_left_before(a: &Analysis, old_earlier: &[bool], p: usize, r: &Resume) -> Vec<usize> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let Some(wo) = r.w_old else {
        return Vec::new();
    };
    let l = tn.lca(p, r.w_new);
    let mut out = Vec::new();
    let (mut y, mut earlier) = (p, false);
    while let Some(par) = tn.parent(y).filter(|&q| q != l) {
        earlier |= old_earlier[y];
        if earlier
            && tn.element(par) == "scope"
            && tn.slot[y].as_str() == "body"
            && tn.order(par, r.w_new) == Order::Before
        {
            let handled = m.n2o[par]
                .filter(|&os| to.effective[os] && to.element(os) == "scope")
                .filter(|&os| to.order(os, wo) == Order::Before)
                .is_some_and(|os| {
                    to.slots[os]
                        .iter()
                        .filter(|(slot, _)| slot == "faulthandlers")
                        .flat_map(|(_, l)| l.iter())
                        .any(|&c| matches!(to.element(c), "catch" | "catchall"))
                });
            if handled {
                out.push(par);
            }
        }
        y = par;
    }
    out
}

/// For rows resting at `r` in a fault handler of the old scope `os` (and of its counterpart):
/// the outermost activities (new positions) whose old counterparts lay in the body of `os`
/// and that now run after their resume point, in their thread and outside foreign handlers.
/// A fault anywhere in the body took them to the handler: one that came at or after such an
/// activity came once it had run, and they run it again.
fn moved_out_of_body(a: &Analysis, os: usize, r: &Resume, full: &mut [bool]) -> Vec<usize> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let w = r.w_new;
    let tr = tn.thread_root(w);
    let mut set: Vec<usize> = to.slots[os]
        .iter()
        .filter(|(slot, _)| slot.as_str() == "body")
        .flat_map(|(_, l)| l.iter().flat_map(|&c| c..=to.end(c)))
        .filter(|&o| to.effective[o])
        .filter_map(|o| m.o2n[o])
        .filter(|&n| {
            tn.effective[n]
                && runs_in_thread(tn, n, tr)
                && tn.order(n, w) == Order::After
                && tn.handler(n).is_none_or(|h| h == w || tn.is_desc(w, h))
        })
        .collect();
    set.sort_unstable();
    set.dedup();
    let mut top = outermost(tn, &set, full);
    top.retain(|&p| !is_jump(tn, p));
    top
}

/// The loops a thread resting at `r` is iterating in, in both versions: (old loop around its
/// old wait, its new counterpart, which holds the resume point), innermost first.
fn held_loops(a: &Analysis, r: &Resume) -> Vec<(usize, usize)> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let Some(wo) = r.w_old else {
        return Vec::new();
    };
    to.ancestors(wo)
        .filter(|&o| is_loop(to.element(o)) && to.effective[o])
        .filter_map(|o| m.o2n[o].map(|n| (o, n)))
        .filter(|&(_, n)| tn.effective[n] && tn.is_desc(r.w_new, n))
        .collect()
}

/// Of the loops `held` (see [`held_loops`]) of a thread that rested at `wo`, those (new
/// positions) whose body holds `p` while the old counterpart of `p` ran after the old loop
/// (outside it, after `wo`): the iterations the thread already went through never ran `p`
/// (the new version runs it in each), and what the old version would have run after the loop
/// is gone. Something new in the body is not one: the old version never ran it either.
fn ran_after_loops_of(a: &Analysis, held: &[(usize, usize)], p: usize, wo: usize) -> Vec<usize> {
    let (to, tn) = (&a.old, &a.new);
    let Some(o) = a.m.n2o[p].filter(|&o| to.effective[o]) else {
        return Vec::new();
    };
    if to.order(o, wo) != Order::After {
        return Vec::new();
    }
    let mut loops: Vec<usize> = held
        .iter()
        .filter(|&&(ol, nl)| tn.is_desc(p, nl) && !to.is_desc(o, ol))
        .map(|&(_, nl)| nl)
        .collect();
    loops.sort_unstable();
    loops
}

/// For rows resting at `r`: the outermost activities (new positions) after their resume point
/// in the body of a loop they are iterating in that ran after that loop under the old version
/// (see [`ran_after_loops_of`]), in their thread and outside foreign handlers, grouped by
/// those loops: for the iterations they went through they skip them. (Those before the resume
/// point they skip in the current iteration too: the walk's, see [`this_iteration`].)
fn ran_after_loops(
    a: &Analysis,
    arrivals: &HashMap<usize, Vec<usize>>,
    r: &Resume,
    full: &mut [bool],
) -> Vec<(Vec<usize>, Vec<usize>)> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let (w, Some(wo)) = (r.w_new, r.w_old) else {
        return Vec::new();
    };
    let held = held_loops(a, r);
    let Some(outer) = held.iter().map(|&(_, n)| n).min() else {
        return Vec::new();
    };
    let (tr, tro) = (tn.thread_root(w), to.thread_root(wo));
    let (mut before, mut after) = (Vec::new(), Vec::new());
    tn.order_ranges(w, &mut before, &mut after);
    let mut found: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
    // Only what arrived in a held loop's body from outside it can qualify ([`loop_arrivals`]):
    // not a scan of the body per resume point (a process wrapped in one loop has most of its
    // states inside it).
    let mut candidates: Vec<usize> = held
        .iter()
        .filter_map(|(_, nl)| arrivals.get(nl))
        .flatten()
        .copied()
        .filter(|&p| {
            after
                .iter()
                .any(|&(s, e)| outer < s && e <= tn.end(outer) && s <= p && p <= e)
        })
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    for p in candidates {
        if !tn.effective[p]
            || !runs_in_thread(tn, p, tr)
            || in_handler_off_path(tn, p, w).is_some()
            || m.n2o[p].is_none_or(|o| {
                !runs_in_thread(to, o, tro) || in_handler_off_path(to, o, wo).is_some()
            })
        {
            continue;
        }
        let loops = ran_after_loops_of(a, &held, p, wo);
        if !loops.is_empty() {
            found.entry(loops).or_default().push(p);
        }
    }
    found
        .into_iter()
        .map(|(loops, set)| {
            let mut top = outermost(tn, &set, full);
            top.retain(|&p| !is_jump(tn, p));
            (loops, top)
        })
        .filter(|(_, top)| !top.is_empty())
        .collect()
}

/// For each new loop with an old counterpart, the activities of its body whose old counterpart
/// lay outside the old loop (ascending): the only candidates of [`ran_after_loops_of`]. Moves
/// into a loop are few, so this is small; built once per plan, O(activities · depth).
fn loop_arrivals(a: &Analysis) -> HashMap<usize, Vec<usize>> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut out: HashMap<usize, Vec<usize>> = HashMap::new();
    for p in 0..tn.len() {
        let Some(o) = m.n2o[p].filter(|&o| to.effective[o]) else {
            continue;
        };
        for nl in tn.ancestors(p).filter(|&x| is_loop(tn.element(x))) {
            if m.n2o[nl].is_some_and(|ol| !to.is_desc(o, ol)) {
                out.entry(nl).or_default().push(p);
            }
        }
    }
    out
}

/// The old scope whose body held the old counterpart of `p` while one of its fault handlers
/// holds the old wait of `r` ([`Order::Faulted`]): rows there left that body at a fault, before
/// or after it, so whether they ran it depends on where the fault happened.
fn left_body_of(a: &Analysis, p: usize, r: &Resume) -> Option<usize> {
    let wo = r.w_old?;
    let o = a.m.n2o[p].filter(|&o| a.old.effective[o])?;
    (a.old.order(o, wo) == Order::Faulted).then(|| a.old.lca(o, wo))
}

/// The old conditional that decided whether a thread resting at `r` ran the counterpart of
/// `p`, which it ran before its old wait (or, resting at a flow join, in a branch of that
/// flow) only on some paths, while the new version no longer decides `p` by it
/// ([`unkept_conditional`]; one that holds the old wait is the branch the thread is in):
/// whether the thread ran it depends on the data it held.
fn decided_by_old(a: &Analysis, p: usize, r: &Resume) -> Option<usize> {
    let (to, wo) = (&a.old, r.w_old?);
    let o = a.m.n2o[p].filter(|&o| to.effective[o])?;
    let ran = to.order(o, wo) == Order::Before || (r.join && to.is_desc(o, wo));
    // The cheap test first: most activities asked about did not run before the wait.
    ran.then(|| unkept_conditional(a, p))
        .flatten()
        .filter(|&c| !to.is_desc(wo, c))
}

/// For skips (`skip`) or re-runs decided by an old `<if>` ([`decided_by_old`]) whose condition
/// changed too: both conditions. The tool does not prove negation: with the new one the old
/// one negated and the branches swapped, the path their data takes kept its contents. Empty
/// otherwise. (Siblings share the answer: it is asked of each run's first.)
fn negation_unproven(a: &Analysis, ps: &[(usize, usize)], rs: &[&Resume], skip: bool) -> String {
    let (to, tn) = (&a.old, &a.new);
    let cond = |t: &Tree, x: usize| t.nodes[x].attrs.get("condition").map(str::to_string);
    let ifs: BTreeSet<(usize, usize)> = ps
        .iter()
        .flat_map(|&(p, _)| rs.iter().filter_map(move |r| decided_by_old(a, p, r)))
        .filter(|&c| to.element(c) == "if")
        .filter_map(|c| Some((c, a.m.o2n[c].filter(|&n| tn.element(n) == "if")?)))
        .filter(|&(c, n)| !same_expr(cond(to, c).as_deref(), cond(tn, n).as_deref()))
        .collect();
    let what = if skip {
        "they skip none of them"
    } else {
        "they run none of them again"
    };
    ifs.iter()
        .map(|&(c, n)| {
            format!(
                "; the condition of {} changed too, condition={} → condition={}: if the new one is the old one negated, the path their data takes kept its contents and {what}",
                tn.label(n),
                xml_attr(&cond(to, c).unwrap_or_default()),
                xml_attr(&cond(tn, n).unwrap_or_default()),
            )
        })
        .collect()
}

/// Is there a conditional branch or loop body between `p` and its lowest common ancestor
/// with the resume point that does not hold it? Then whether a thread resting there ran (or
/// will run) `p` depends on the data it held. A loop whose old counterpart held the old
/// wait is not one of them: the thread was in its body.
fn conditional_between(a: &Analysis, p: usize, r: &Resume) -> bool {
    let t = &a.new;
    let l = t.lca(p, r.w_new);
    let held = loops_held(a, r);
    std::iter::once(p)
        .chain(t.ancestors(p))
        .take_while(|&q| q != l)
        .filter_map(|q| t.parent(q))
        .any(|par| {
            par != l
                && matches!(t.element(par), "if" | "switch" | "while" | "foreach")
                && !held.contains(&par)
                && chose_branch(a, par, p, r).is_none()
        })
}

/// For an `<if>`/`<switch>` `par` (new position) around `p`: whether the rows resting at `r`
/// chose the branch that holds `p` (`Some(true)`) or another one (`Some(false)`), when its
/// old counterpart held their old wait (they evaluated its test and are, or were, in that
/// branch); `None` when their data has not told. Resuming inside `par`, they are in the branch
/// that holds their resume point, whichever they chose (an override may put them elsewhere).
fn chose_branch(a: &Analysis, par: usize, p: usize, r: &Resume) -> Option<bool> {
    if !matches!(a.new.element(par), "if" | "switch") {
        return None;
    }
    let wo = r.w_old?;
    let o = a.m.n2o[par].filter(|&o| a.old.effective[o] && a.old.is_desc(wo, o))?;
    let (_, ns, _) = a.new.child_towards(par, p)?;
    if a.new.is_desc(r.w_new, par) {
        let (_, now, _) = a.new.child_towards(par, r.w_new)?;
        return Some(now == ns);
    }
    let (_, os, _) = a.old.child_towards(o, wo)?;
    Some(same_branch(a, o, os, ns))
}

fn is_loop(element: &str) -> bool {
    matches!(element, "while" | "until" | "foreach")
}

/// The new counterparts of the old loops around the old wait of `r`: loops the thread was
/// iterating in.
fn loops_held(a: &Analysis, r: &Resume) -> Vec<usize> {
    let Some(wo) = r.w_old else {
        return Vec::new();
    };
    a.old
        .ancestors(wo)
        .filter(|&o| is_loop(a.old.element(o)))
        .filter_map(|o| a.m.o2n[o])
        .collect()
}

/// What a loop does for a thread that resumes in its body without having come through its
/// test (spec 3.4.6-3.4.8): a `<while>`/`<until>` evaluates its condition at the test after
/// the body as usual; a `<foreach>` takes the next key after the one in its key property,
/// which is empty after the loop ended (`ran`) and, unless something set it, before it
/// started: it iterates from its first key.
fn loop_goes_on(t: &Tree, p: usize, ran: bool) -> String {
    let label = t.label(p);
    match t.element(p) {
        "foreach" => {
            let key = t.nodes[p].attrs.get("key").unwrap_or("its key");
            let (why, again) = if ran {
                ("empty since that loop ended", " again")
            } else {
                ("empty unless something set it", "")
            };
            format!(
                "after the body, {label} takes the key after the one in {key} ({why}), so it iterates from its first key: what is in its body runs{again} for every item"
            )
        }
        "until" => format!(
            "after the body, {label} evaluates its condition at its test as usual: the body runs again until it holds"
        ),
        _ => format!(
            "after the body, {label} evaluates its condition at its test as usual: the body runs again while it holds"
        ),
    }
}

/// For an `<if>` whose condition changed too: says so, with both conditions (whether the
/// new one is the old one negated, making the branch they resume in the one it chooses for
/// them, is the reader's to judge). For a `<switch>` (old case `os` of `o`, new case `ns` of
/// `p`), the same of the two cases' conditions (see [`case_conditions_changed`]). Empty
/// otherwise.
fn condition_changed(a: &Analysis, o: usize, os: &str, p: usize, ns: &str) -> String {
    let (to, tn) = (&a.old, &a.new);
    if tn.element(p) == "switch" {
        return case_conditions_changed(a, o, os, p, ns);
    }
    let cond = |t: &Tree, x: usize| t.nodes[x].attrs.get("condition").map(str::to_string);
    match (tn.element(p), cond(to, o), cond(tn, p)) {
        ("if", Some(before), Some(now)) if !same_expr(Some(&before), Some(&now)) => format!(
            "; its condition changed too, condition={} → condition={}: if the new one is the old one negated, the branch they resume in is the one it chooses for them",
            xml_attr(&before),
            xml_attr(&now)
        ),
        _ => String::new(),
    }
}

/// For a `<switch>` whose old case `os` (the one the rows chose) or new case `ns` (the one they
/// resume in) had its condition edited (or has no counterpart in the other version): both
/// conditions, for the reader to judge whether the new case holds for exactly the rows the
/// old one chose. Empty when both kept their conditions.
fn case_conditions_changed(a: &Analysis, o: usize, os: &str, p: usize, ns: &str) -> String {
    let (to, tn) = (&a.old, &a.new);
    let idx =
        |s: &str| -> Option<usize> { s.strip_prefix("case[")?.strip_suffix(']')?.parse().ok() };
    let conds = |t: &Tree, x: usize| -> Vec<Option<String>> {
        match &t.nodes[x].kind {
            ActivityKind::Switch { cases, .. } => {
                cases.iter().map(|c| c.condition.clone()).collect()
            }
            _ => Vec::new(),
        }
    };
    let (co, cn) = (conds(to, o), conds(tn, p));
    // Compared as expressions: a re-spaced condition is the same test.
    let same_case = |x: Option<&Option<String>>, y: Option<&Option<String>>| {
        x.is_some() == y.is_some()
            && same_expr(
                x.cloned().flatten().as_deref(),
                y.cloned().flatten().as_deref(),
            )
    };
    // Paired cases, 0-based (old, new).
    let pairs: Vec<(usize, usize)> =
        a.m.cases
            .get(&o)
            .into_iter()
            .flatten()
            .map(|&(i, j)| (i as usize - 1, j as usize - 1))
            .collect();
    let (i, j) = (idx(os), idx(ns));
    // Some(true): its counterpart tests something else; None: it has no counterpart.
    let edited_old = i.map(|i| {
        pairs
            .iter()
            .find(|x| x.0 == i)
            .map(|&(_, jj)| !same_case(cn.get(jj), co.get(i)))
    });
    let edited_new = j.map(|j| {
        pairs
            .iter()
            .find(|x| x.1 == j)
            .map(|&(ii, _)| !same_case(co.get(ii), cn.get(j)))
    });
    let changed = edited_old == Some(Some(true)) || edited_new == Some(Some(true));
    let (gone, added) = (edited_old == Some(None), edited_new == Some(None));
    if !(changed || gone || added) {
        return String::new();
    }
    let show = |t: &Tree, x: usize, slot: &str, conds: &[Option<String>], k: Option<usize>| match k
        .and_then(|k| conds.get(k).cloned().flatten())
    {
        Some(c) => format!("{} condition={}", branch_name(t, x, slot), xml_attr(&c)),
        None => format!("{} (no condition)", branch_name(t, x, slot)),
    };
    let what = if gone {
        format!("{} has no counterpart", branch_name(to, o, os))
    } else if added {
        format!("{} is a new case", branch_name(tn, p, ns))
    } else {
        "the case conditions changed too".to_string()
    };
    format!(
        "; {what}, {} → {}: if the new case holds for exactly the rows the old one chose, the case they resume in is the one it chooses for them",
        show(to, o, os, &co, i),
        show(tn, p, ns, &cn, j)
    )
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

/// A new context property as the finding needs it: name, type, initialexpression.
struct NewProperty {
    pub name: String,
    pub type_name: Option<String>,
    pub initial: Option<String>,
}

/// New context properties that some path from a resume point reads before anything writes
/// them. Returns one finding per property.
fn context_reads(
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
        let mut hit_at: Vec<usize> = Vec::new();
        for r in resumes {
            if df.after_resume(r.w_new, r.join) == Access::Read {
                hit_states.push(r.old_ref.clone());
                hit_at.push(r.w_new);
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
        // A loop keyed on it, around a resume point: what its next iteration does.
        let keyed: Vec<String> = readers
            .iter()
            .filter(|&&p| {
                default_of(&prop.name).is_none()
                    && df.is_key(p)
                    && hit_at.iter().any(|&w| tn.is_desc(w, p))
            })
            .map(|&p| act_label(tn, p))
            .collect();
        let loops = match keyed.is_empty() {
            true => String::new(),
            false => format!(
                "; rows inside {}: after the body it takes the key after the one in {} (NULL for them), so it iterates from its first key: what is in its body runs again for every item",
                keyed.join(", "),
                df.needle
            ),
        };
        let f = finding(
            Code::NewContextProperty,
            format!(
                "new context property {} is read before it is written on a path from the resume point of {} (read by {}){loops}; in-flight rows hold NULL ({initial}): {remedy}",
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
        let root = t.thread_root(p);
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
            for x in t.sync_calls(sp) {
                w.by_call.entry(x).or_default().push(i);
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

/// Calls an old state can be waiting on (a synchronous call's wait, or a `<sync>` listing
/// it) that were renamed, removed or changed, with the preconditions.
fn call_changes(a: &Analysis, old_c: &CompiledProcess) -> (Vec<Finding>, Vec<Precondition>) {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut findings = Vec::new();
    let mut pre = Vec::new();
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
            .map(|&i| sref(&thread.class, &thread.states[i].name.to_string()))
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
                let attr = |x: &Activity, k: &str| x.attrs.get(k).unwrap_or_default().to_string();
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
                            state: thread.states[i].name.to_string(),
                            reason: format!("call {name:?} now expects another response type"),
                        });
                    }
                }
                continue;
            }
            _ => {}
        }
        // A renamed call: the rows at its waits hold a response pending under the old name,
        // and the waits they resume at now ask for the new one, whatever other call still
        // bears the old name (iris-runtime: `__PendingResponses` is keyed by call name).
        let renamed = n_eff.is_some();
        if !renamed && awaited_in_new(tn, name) {
            // A removed call whose name is still awaited in the new version: a pending
            // response under it still completes a wait (its handler is recorded in the row).
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
            (Some(n), None) => {
                // The call itself, or the activity around it that was disabled.
                let mut off = n;
                while !tn.nodes[off].disabled {
                    match tn.parent(off) {
                        Some(p) => off = p,
                        None => break,
                    }
                }
                let what = if off == n || !tn.nodes[off].disabled {
                    "was disabled".to_string()
                } else {
                    format!("lies in {}, which was disabled", tn.describe(off))
                };
                (Code::PendingCallRemoved, what)
            }
            (None, None) => (Code::PendingCallRemoved, "was removed".to_string()),
        };
        // A removed synchronous call waited on only in its own state: its removed wait state
        // (BPM0101) says it already; keep only the precondition.
        let own_only = wait_idx
            .iter()
            .all(|&i| thread.states[i].activity.id == node.id);
        if m.o2n[o].is_none() && own_only {
            pre.push(Precondition::NoPendingResponse {
                table,
                call: name.to_string(),
                reason: format!("call {name:?} {what}; wait until no instance waits on it"),
                new_call: None,
            });
            continue;
        }
        // Another call of this thread class still named `name` (old version): its rows hold
        // responses pending under the same key.
        let twin = (0..to.len()).any(|p| {
            p != o
                && to.effective[p]
                && to.nodes[p].element == "call"
                && to.nodes[p].name.as_deref() == Some(name.as_str())
                && thread_of.of(to, p) == Some(ti)
        });
        let also = if renamed && awaited_in_new(tn, name) {
            format!(
                " (a call still named {name:?} remains in the new version, but the wait these rows resume at is not its wait)"
            )
        } else {
            String::new()
        };
        let mut f = finding(
            code,
            format!(
                "call {name:?} (waited on at {}) {what}: a response still pending under {name:?} cannot be matched{also}",
                waits.join(", ")
            ),
        )
        .states(waits)
        .old_acts([to.aref(o)]);
        if let Some(n) = m.o2n[o] {
            f = f.new_acts([tn.aref(n)]);
        }
        findings.push(f);
        if twin && own_only {
            // A synchronous call: the rows holding its pending response are exactly the rows
            // at its wait, so the guard need not wait for the rows of the other call still
            // named `name` (their responses match as before).
            for &i in &wait_idx {
                pre.push(Precondition::NoRowsAtState {
                    table: table.clone(),
                    state: thread.states[i].name.to_string(),
                    reason: format!(
                        "rows there wait on call {name:?}, which {what}; wait until they have moved on"
                    ),
                });
            }
            continue;
        }
        let reason = if twin {
            format!(
                "call {name:?} {what}; wait until no instance waits on it (this counts the responses pending for every call named {name:?}, including the one that kept the name)"
            )
        } else {
            format!("call {name:?} {what}; wait until no instance waits on it")
        };
        pre.push(Precondition::NoPendingResponse {
            table,
            call: name.to_string(),
            reason,
            new_call: n_eff.and_then(|n| tn.nodes[n].name.as_deref().map(str::to_string)),
        });
    }
    (findings, pre)
}

/// `<sync>` activities that rows can rest at whose calls, type or timeout changed (BPM0212),
/// `<delay>`s whose duration or until changed (BPM0213).
fn sync_changes(a: &Analysis, old_c: &CompiledProcess) -> Vec<Finding> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let mut out = Vec::new();
    for th in &old_c.threads {
        for st in th.states.iter().filter(|s| s.role == Role::SyncWait) {
            let Some(o) = to.pos(st.activity.id) else {
                continue;
            };
            let Some(n) = m.o2n[o] else { continue };
            let element = to.element(o);
            if !matches!(element, "sync" | "delay") || tn.element(n) != element || !tn.effective[n]
            {
                continue;
            }
            let attr =
                |t: &Tree, p: usize, k: &str| t.nodes[p].attrs.get(k).map(|v| v.trim().to_string());
            let at = sref(&th.class, &st.name.to_string());
            if element == "delay" {
                // The runtime arms the alarm when the row reaches the wait (a `_Delay` key in its
                // pending responses): rows parked there wake when the old value says.
                let timer = |t: &Tree, p: usize| {
                    ["duration", "until"]
                        .iter()
                        .find_map(|k| attr(t, p, k).map(|v| format!("{k} {v}")))
                        .unwrap_or_else(|| "(no duration or until)".to_string())
                };
                let (w_o, w_n) = (timer(to, o), timer(tn, n));
                if w_o != w_n {
                    out.push(
                        finding(
                            Code::AwaitedDelayChanged,
                            format!(
                                "{} (waited at {at}) changed: {w_o} → {w_n}; rows parked at {} keep the timer armed with \
                                 the old {w_o} and wake when it expires; only rows reaching the delay after the deploy use the new value",
                                to.label(o),
                                st.name
                            ),
                        )
                        .states([at])
                        .old_acts([to.aref(o)])
                        .new_acts([tn.aref(n)]),
                    );
                }
                continue;
            }
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
                    .find(|&p| {
                        to.element(p) == "call"
                            && to.nodes[p].name.as_deref() == Some(name.as_str())
                    })
                    .and_then(|p| m.o2n[p])
                    .and_then(|q| tn.nodes[q].name.as_deref().map(str::to_string))
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

/// BPM0205 (new context properties read before written on a path from a resume point,
/// with a suggested `[[default]]`), BPM0207/0208 (removed or retyped properties).
fn context(cx: &Context, resumes: &[Resume], out: &mut Findings) {
    let context = &cx.scope.context;
    let added: Vec<NewProperty> =
        cx.a.diff
            .context
            .iter()
            .filter(|c| c.change == ContextChangeKind::Added)
            .map(|c| NewProperty {
                name: c.name.clone(),
                type_name: c.new_type.clone(),
                initial: c.initial_expression.clone(),
            })
            .collect();
    let default_of = |p: &str| {
        context
            .iter()
            .find(|c| c.name == p)
            .and_then(|c| c.default.clone())
    };
    for (prop, mut f) in context_reads(cx.a, resumes, &added, default_of) {
        let renamed = renamed_property(cx.a, &prop);
        if let Some(old) = &renamed {
            f.message.push_str(&format!(
                "; it looks like {old} renamed (removed, same type, and every activity that used {old} now uses {prop}): \
                 in-flight rows keep their value in column {old} of {}, which the new class no longer projects, so a \
                 [[default]] cannot restore it: copy each row's {old} into {prop} yourself (read it before deploying), \
                 or keep the old name",
                cx.old_c.context_table
            ));
        }
        if context
            .iter()
            .any(|c| c.name == prop && c.default.is_some())
        {
            f.acknowledged = true;
        } else if let Some(np) = added
            .iter()
            .find(|x| x.name == prop)
            .filter(|x| scalar_type(x.type_name.as_deref()))
        {
            let ty = np
                .type_name
                .clone()
                .unwrap_or_else(|| "%String".to_string());
            let value = np.initial.as_deref().and_then(sql_literal);
            let mut reason = match (&value, &np.initial) {
                (Some(v), Some(i)) => format!(
                    "new instances get {v} (initialexpression {i}); rows resting at {} read {prop} before writing it",
                    f.states.join(", ")
                ),
                _ => format!(
                    "rows resting at {} read {prop} before writing it; choose a SQL literal of type {ty} for them and uncomment the value line",
                    f.states.join(", ")
                ),
            };
            if let Some(old) = &renamed {
                reason.push_str(&format!(
                    " (one value for every row: their own values are in column {old}, see the finding)"
                ));
            }
            out.default_suggestions.push(DefaultSuggestion {
                property: prop.clone(),
                value,
                type_name: ty,
                reason,
            });
        }
        out.findings.push(f);
    }
    for c in &cx.a.diff.context {
        match c.change {
            ContextChangeKind::Removed => {
                out.findings.push(finding(
                    Code::ContextPropertyRemoved,
                    format!("context property {} was removed", c.name),
                ));
            }
            ContextChangeKind::Retyped => out.findings.push(finding(
                Code::ContextPropertyRetyped,
                format!(
                    "context property {} changed type from {} to {}",
                    c.name,
                    c.old_type.as_deref().unwrap_or("(none)"),
                    c.new_type.as_deref().unwrap_or("(none)")
                ),
            )),
            ContextChangeKind::InitialChanged => {
                let show = |x: &Option<String>| x.as_deref().unwrap_or("(none)").to_string();
                let (old, new) = (show(&c.old_initial_expression), show(&c.initial_expression));
                out.findings.push(finding(
                    Code::ContextInitialChanged,
                    format!(
                        "context property {} changed its initialexpression from {old} to {new}: in-flight rows keep \
                         the value they were created with ({old}, unless the process set another), only new \
                         instances start with {new}; if in-flight rows should get {new}, UPDATE column {} of {} \
                         yourself ([[default]] fills new properties only)",
                        c.name, c.name, cx.old_c.context_table
                    ),
                ))
            }
            ContextChangeKind::Added => {}
        }
    }
}

/// The removed context property that `added` looks renamed from: the only removed one of the
/// same type such that every effective old activity using it is matched to a new activity
/// using `added` (and at least one does). `None` when none or several qualify.
fn renamed_property(a: &Analysis, added: &str) -> Option<String> {
    let (to, tn) = (&a.old, &a.new);
    let new_type = a
        .diff
        .context
        .iter()
        .find(|c| c.name == added && c.change == ContextChangeKind::Added)?
        .new_type
        .clone();
    let df_new = Dataflow {
        t: tn,
        needle: format!("context.{added}"),
    };
    let uses = |df: &Dataflow, p: usize| !matches!(df.own(p), Access::Neither);
    let mut found = a
        .diff
        .context
        .iter()
        .filter(|c| c.change == ContextChangeKind::Removed && c.old_type == new_type)
        .filter(|c| {
            let df_old = Dataflow {
                t: to,
                needle: format!("context.{}", c.name),
            };
            let users: Vec<usize> = (0..to.len())
                .filter(|&o| to.effective[o] && uses(&df_old, o))
                .collect();
            !users.is_empty()
                && users
                    .iter()
                    .all(|&o| a.m.o2n[o].is_some_and(|n| uses(&df_new, n)))
        })
        .map(|c| c.name.clone());
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// Why skipping or re-running these activities (and everything inside them) cannot change
/// data: traces only write the event log, and the rest does nothing (`<empty>`, `<receive>`:
/// see [`does_nothing`]), nor does a `<sequence>` of them. `None` when something else is among
/// them.
fn quiet_note(t: &Tree, items: impl IntoIterator<Item = usize>) -> Option<&'static str> {
    let (mut traces, mut empties, mut receives) = (false, false, false);
    for p in items {
        for q in p..=t.end(p) {
            match t.element(q) {
                "trace" => traces = true,
                "empty" => empties = true,
                "receive" => receives = true,
                "sequence" => {}
                e => {
                    debug_assert!(!does_nothing(e), "{e}");
                    return None;
                }
            }
        }
    }
    Some(match (traces, empties, receives) {
        (true, false, false) => "only traces: no effect on data",
        (true, true, false) => "only traces and <empty>: no effect on data",
        (true, false, true) => {
            "only traces and <receive> (IRIS generates only a comment for a <receive>): no effect on data"
        }
        (true, true, true) => {
            "only traces, <empty> and <receive> (IRIS generates only a comment for a <receive>): no effect on data"
        }
        (false, _, false) => "only <empty>: they do nothing",
        (false, false, true) => {
            "only <receive> (IRIS generates only a comment for it): they do nothing"
        }
        (false, true, true) => {
            "only <empty> and <receive> (IRIS generates only a comment for a <receive>): they do nothing"
        }
    })
}

/// A skip or re-run of quiet activities (see [`quiet_note`]) is an info, not a warning.
fn quieted(f: Finding, quiet: Option<&str>) -> Finding {
    match quiet {
        Some(_) => f.severity(Severity::Info),
        None => f,
    }
}

/// The fault or compensation handler `p` lies in, when a thread resting at `w` is not in it
/// (it runs `p` only on a path that took it through that handler).
fn in_handler_off_path(t: &Tree, p: usize, w: usize) -> Option<usize> {
    t.handler(p).filter(|&h| !(h == w || t.is_desc(w, h)))
}

#[cfg(test)]
mod tests {
    use super::how_many;
    use crate::bpl::{load, LoadOptions};
    use crate::diff::tree::Tree;
    use crate::plan::safety::{outermost, SiblingRuns};

    /// `how_many` reads adjacent pairs of sibling runs; the definition is every pair of
    /// activities. Both agree on random sets of activities of every change fixture.
    #[test]
    fn how_many_over_runs_agrees_with_every_pair() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/changes");
        let mut dirs: Vec<_> = std::fs::read_dir(root)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path().join("new.cls")))
            .filter(|p| p.exists())
            .collect();
        dirs.sort();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut shown = std::collections::BTreeSet::new();
        for path in &dirs {
            let bpl = load(&path.to_string_lossy(), &LoadOptions::default()).unwrap();
            let t = Tree::new(&bpl);
            let mut full = vec![false; t.len()];
            for _ in 0..60 {
                let set: Vec<usize> = (0..t.len()).filter(|_| rnd(3) == 0).collect();
                let top = outermost(&t, &set, &mut full);
                let mut runs: SiblingRuns = Vec::new();
                for &p in &top {
                    match runs.last_mut() {
                        Some(x) if t.end(x.1) + 1 == p && t.list_first(x.1) == t.list_first(p) => {
                            x.1 = p
                        }
                        _ => runs.push((p, p)),
                    }
                }
                let exclusive = |a: usize, b: usize| {
                    let l = t.lca(a, b);
                    matches!(t.element(l), "if" | "switch")
                        && t.child_towards(l, a).map(|x| x.1) != t.child_towards(l, b).map(|x| x.1)
                };
                let pairs: Vec<bool> = top
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &a)| top[i + 1..].iter().map(move |&b| (a, b)))
                    .map(|(a, b)| exclusive(a, b))
                    .collect();
                let n = top.len();
                let all = if n == 1 {
                    "1 activity".to_string()
                } else {
                    format!("{n} activities")
                };
                let want = if n < 2 || !pairs.iter().any(|&x| x) {
                    all
                } else if pairs.iter().all(|&x| x) {
                    format!("one of {all}")
                } else {
                    format!("some of {all}")
                };
                let got = how_many(&t, &runs, true);
                assert_eq!(got, want, "{path:?}: {top:?}");
                shown.insert(want.split(' ').next().unwrap_or("").to_string());
            }
        }
        // Every answer occurred.
        assert!(shown.contains("one") && shown.contains("some"), "{shown:?}");
    }

    use crate::plan::findings::Code;
    use crate::plan::model::MigrationPlan;

    fn call(name: &str) -> String {
        format!("<call name='{name}' target='T' async='0'><request type='Ens.Request'/></call>")
    }

    /// Scope `Txn` (body: call Book, delay Hold; handler Undo: call Cancel; catchall: delay
    /// Pause, compensate Undo, call Report), then `after`; `inner` wraps Hold in a scope with
    /// its own compensation handler, which resets the registry before the catchall is generated.
    fn txn(inner: bool, around: (&str, &str), after: &str, version: &str) -> String {
        let hold = "<delay name='Hold' duration='\"PT1M\"'/>";
        let hold = match inner {
            true => format!(
                "<scope name='Inner'>{hold}<compensationhandlers><compensationhandler name='UndoInner'>{}</compensationhandler></compensationhandlers><faulthandlers><catchall/></faulthandlers></scope>",
                call("CancelInner")
            ),
            false => hold.to_string(),
        };
        format!(
            "<process request='Ens.Request' response='Ens.Response'{version}>\n<context></context>\n<sequence>\n{}<scope name='Txn'>{}{hold}<compensationhandlers><compensationhandler name='Undo'>{}</compensationhandler></compensationhandlers><faulthandlers><catchall><delay name='Pause' duration='\"PT1M\"'/><compensate target='Undo'/>{}</catchall></faulthandlers></scope>{}{after}\n</sequence>\n</process>\n",
            around.0,
            call("Book"),
            call("Cancel"),
            call("Report"),
            around.1,
        )
    }

    fn plan_of(old: &str, new: &str) -> MigrationPlan {
        // The same file name: a bare `<process>` takes its class name from it.
        let (to, tn) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (po, pn) = (to.path().join("Trip.xml"), tn.path().join("Trip.xml"));
        std::fs::write(&po, old).unwrap();
        std::fs::write(&pn, new).unwrap();
        let opts = LoadOptions::default();
        let (o, n) = (
            load(&po.to_string_lossy(), &opts).unwrap(),
            load(&pn.to_string_lossy(), &opts).unwrap(),
        );
        assert_eq!(o.class_name, n.class_name);
        let c = crate::states::Compiler::Current;
        let (oc, nc) = (
            crate::states::compile(&o, c).unwrap(),
            crate::states::compile(&n, c).unwrap(),
        );
        crate::plan::build(&o, &n, &oc, &nc, None).unwrap()
    }

    /// The old wait state of an activity (by label) in Thread1, as findings name it.
    fn old_wait(plan: &MigrationPlan, label: &str) -> String {
        let s = plan.threads[0]
            .states
            .iter()
            .find(|s| s.wait && s.old_activity.label() == label)
            .unwrap_or_else(|| panic!("no wait of {label}"));
        format!("Thread1:{}", s.old)
    }

    fn unresolved(plan: &MigrationPlan) -> Vec<&crate::plan::model::Finding> {
        plan.findings
            .iter()
            .filter(|f| f.code == Code::CompensateUnresolved)
            .collect()
    }

    /// A compensate that ran a handler and runs none now names the scope that reset the
    /// registry and the rows that can still reach it: in the scope's body and in the catchall
    /// before it; not those past it (after it in the catchall, after the scope) nor those in
    /// the handler it ran (they return after it).
    #[test]
    fn compensate_losing_its_handler_names_the_rows_ahead_of_it() {
        let plan = plan_of(
            &txn(false, ("", ""), &call("Done"), ""),
            &txn(true, ("", ""), &call("Done"), ""),
        );
        let f = unresolved(&plan);
        assert_eq!(f.len(), 1, "{:#?}", plan.findings);
        let f = f[0];
        assert_eq!(f.severity, crate::plan::model::Severity::Warning);
        assert!(
            f.message
                .contains("<compensationhandlers> of scope \"Inner\"")
                && f.message.contains(
                    "under the old version it ran compensationhandler \"Undo\" of scope \"Txn\""
                ),
            "{}",
            f.message
        );
        for ahead in ["call \"Book\"", "delay \"Hold\"", "delay \"Pause\""] {
            assert!(
                f.states.contains(&old_wait(&plan, ahead)),
                "{ahead}: {:?}",
                f.states
            );
        }
        for past in ["call \"Cancel\"", "call \"Report\"", "call \"Done\""] {
            assert!(
                !f.states.contains(&old_wait(&plan, past)),
                "{past}: {:?}",
                f.states
            );
        }
    }

    /// A loop around the scope runs it again: rows after it in the loop body can reach the
    /// compensate in the next iteration, rows after the loop cannot.
    #[test]
    fn rows_later_in_a_loop_around_the_scope_can_reach_it() {
        let around = (
            "<while name='Again' condition='1'>",
            &*format!("{}</while>", call("Next")),
        );
        let plan = plan_of(
            &txn(false, around, &call("Done"), ""),
            &txn(true, around, &call("Done"), ""),
        );
        let f = unresolved(&plan);
        assert_eq!(f.len(), 1, "{:#?}", plan.findings);
        assert!(
            f[0].states.contains(&old_wait(&plan, "call \"Next\"")),
            "{:?}",
            f[0].states
        );
        assert!(
            !f[0].states.contains(&old_wait(&plan, "call \"Done\"")),
            "{:?}",
            f[0].states
        );
    }

    /// Unresolved in both versions: still a defect of the new BPL (a warning), but no row
    /// loses anything by the deploy, so none is named.
    #[test]
    fn compensate_unresolved_in_both_versions_names_no_rows() {
        let plan = plan_of(
            &txn(true, ("", ""), "", ""),
            &txn(true, ("", ""), &call("Done"), ""),
        );
        let f = unresolved(&plan);
        assert_eq!(f.len(), 1, "{:#?}", plan.findings);
        assert!(
            f[0].message
                .contains("found none under the old version either"),
            "{}",
            f[0].message
        );
        assert!(f[0].states.is_empty(), "{:?}", f[0].states);
    }

    /// A resolving compensate is quiet, and so is one whose scope with handlers comes after it.
    #[test]
    fn resolved_compensates_are_quiet() {
        let later = format!(
            "<scope name='Later'>{}<compensationhandlers><compensationhandler name='UndoLater'>{}</compensationhandler></compensationhandlers><faulthandlers><catchall><compensate target='UndoLater'/></catchall></faulthandlers></scope>",
            call("Done"),
            call("Refund")
        );
        let plan = plan_of(
            &txn(false, ("", ""), "", ""),
            &txn(false, ("", ""), &later, ""),
        );
        assert!(unresolved(&plan).is_empty(), "{:#?}", plan.findings);
    }

    /// A versioned new version migrates nothing, but new instances run its compensates.
    #[test]
    fn versioned_new_version_still_warns() {
        let plan = plan_of(
            &txn(false, ("", ""), "", " version='1'"),
            &txn(true, ("", ""), "", " version='2'"),
        );
        assert!(plan
            .findings
            .iter()
            .any(|f| f.code == Code::VersionedProcess));
        let f = unresolved(&plan);
        assert_eq!(f.len(), 1, "{:#?}", plan.findings);
        assert!(f[0].states.is_empty(), "{:?}", f[0].states);
    }

    /// Without a reset: a handler of that name generated later, or none at all.
    #[test]
    fn unregistered_target_says_why() {
        let base = txn(false, ("", ""), "", "");
        let later = base.replace("<compensate target='Undo'/>", "<compensate target='UndoLater'/>")
            .replace(
                "</scope>\n</sequence>",
                &format!(
                    "</scope><scope name='Later'>{}<compensationhandlers><compensationhandler name='UndoLater'>{}</compensationhandler></compensationhandlers><faulthandlers><catchall/></faulthandlers></scope>\n</sequence>",
                    call("Done"),
                    call("Refund")
                ),
            );
        let plan = plan_of(&base, &later);
        let f = unresolved(&plan);
        assert_eq!(f.len(), 1, "{:#?}", plan.findings);
        assert!(
            f[0].message.contains("no compensationhandler named \"UndoLater\" was registered before it (compensationhandler \"UndoLater\" of scope \"Later\" is generated after it)"),
            "{}",
            f[0].message
        );
        let none = base.replace("<compensate target='Undo'/>", "<compensate target='Nope'/>");
        let plan = plan_of(&base, &none);
        let f = unresolved(&plan);
        assert_eq!(f.len(), 1, "{:#?}", plan.findings);
        assert!(
            f[0].message
                .contains("(no compensation handler has that name)"),
            "{}",
            f[0].message
        );
    }

    /// A compensate inside a compensation handler that loses its target runs wherever a
    /// compensate of that handler does (`CompAdded::through`): rows ahead of that one are named.
    /// `comp_nested_in_handler`, with a scope with handlers added to UndoBook: it resets the
    /// registry after UndoBook is registered and before UndoAll is, so Unwind's `<compensate
    /// target='UndoBook'>` (in UndoAll) finds nothing while the catchall's `<compensate
    /// target='UndoAll'>` still does.
    #[test]
    fn nested_compensate_losing_its_target_names_rows_ahead_of_the_outer_one() {
        let cls = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/changes/comp_nested_in_handler/old.cls"
        ))
        .unwrap();
        let start = cls.find("<process").unwrap();
        let end = cls.find("</process>").unwrap() + "</process>".len();
        let old = format!("{}\n", &cls[start..end]);
        let cancel =
            "<call name='Cancel' target='BookOp' async='0'><request type='Ens.Request'/></call>";
        assert!(old.contains(cancel));
        let new = old.replacen(
            cancel,
            &format!(
                "<scope name='Audit'>{cancel}<compensationhandlers><compensationhandler name='UndoAudit'>{}</compensationhandler></compensationhandlers><faulthandlers><catchall/></faulthandlers></scope>",
                call("Unaudit")
            ),
            1,
        );
        let plan = plan_of(&old, &new);
        let f = unresolved(&plan);
        assert_eq!(f.len(), 1, "{:#?}", plan.findings);
        assert!(
            f[0].message
                .starts_with("compensate \"UndoBook\" in the <catchall> of scope \"Unwind\"")
                && f[0]
                    .message
                    .contains("<compensationhandlers> of scope \"Audit\"")
                && f[0]
                    .message
                    .contains("(through compensate \"UndoAll\") lose if they reach it"),
            "{}",
            f[0].message
        );
        for ahead in ["call \"Book\"", "call \"Charge\"", "call \"Refund\""] {
            assert!(
                f[0].states.contains(&old_wait(&plan, ahead)),
                "{ahead}: {:?}",
                f[0].states
            );
        }
        for past in ["call \"Report\"", "call \"Done\"", "call \"Cancel\""] {
            assert!(
                !f[0].states.contains(&old_wait(&plan, past)),
                "{past}: {:?}",
                f[0].states
            );
        }
    }
}
