//! From matched activities to matched states, thread classes and response handlers.
//!
//! A state is identified by (owning activity, role) (design "Mapping semantics"). An old
//! state maps to the new state whose owner is the matched activity and whose role is equal —
//! except for roles that carry an index or a name that can shift: `CATCH(i)` follows the
//! matched `<catch>`, `SWITCH_CASE(i)` the matched case, `COMP_HANDLER(n)` the matched
//! `<compensationhandler>`.

use super::matcher::Matching;
use super::model::{DeltaKind, HandlerDelta, MatchVia, StateDelta, ThreadDelta};
use super::tree::{does_nothing, same_expr, xml_attr, Tree};
use crate::bpl::ActivityId;
use crate::states::{CompiledProcess, Role, State, ThreadClass};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::collections::{BTreeMap, BTreeSet};

/// The state-level result, with lookups the plan needs.
pub(crate) struct StateMap {
    pub threads: Vec<ThreadDelta>,
    pub handlers: Vec<HandlerDelta>,
}

pub(crate) fn map_states(
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    t_old: &Tree,
    t_new: &Tree,
    m: &Matching,
) -> StateMap {
    let ix = NewIndex::new(new_c);
    let mut thread_map = BTreeMap::new();
    for t in &old_c.threads {
        thread_map.insert(t.number, counterpart_thread(t, &ix, t_old, t_new, m));
    }
    // Exact capacities: these lists hold a delta per state, the largest part of a diff.
    let mut threads = Vec::with_capacity(old_c.threads.len() + new_c.threads.len());
    let mut used_threads = BTreeSet::new();
    for t in &old_c.threads {
        let nt = thread_map
            .get(&t.number)
            .copied()
            .flatten()
            .and_then(|n| ix.by_number.get(&n).copied());
        let nt_class = nt.map(|i| &new_c.threads[i]);
        if let Some(nt) = nt_class {
            used_threads.insert(nt.number);
        }
        let mut targeted = HashSet::with_capacity(t.states.len());
        let mut states = Vec::with_capacity(t.states.len());
        for s in &t.states {
            let d = map_state(s, t, nt, &ix, t_old, t_new, m);
            if let Some(n) = d.new {
                targeted.insert(n);
            }
            states.push(d);
        }
        if let Some(nt) = nt_class {
            states.reserve_exact(nt.states.len().saturating_sub(targeted.len()));
            states.extend(
                nt.states
                    .iter()
                    .filter(|s| !targeted.contains(&s.name))
                    .map(added_state),
            );
        }
        threads.push(ThreadDelta {
            old: Some(t.number),
            new: nt_class.map(|x| x.number),
            old_class: Some(t.class.clone()),
            new_class: nt_class.map(|x| x.class.clone()),
            change: match nt_class {
                None => DeltaKind::Removed,
                Some(x) if x.number == t.number => DeltaKind::Unchanged,
                Some(_) => DeltaKind::Renumbered,
            },
            states,
        });
    }
    for nt in &new_c.threads {
        if !used_threads.contains(&nt.number) {
            threads.push(ThreadDelta {
                old: None,
                new: Some(nt.number),
                old_class: None,
                new_class: Some(nt.class.clone()),
                change: DeltaKind::Added,
                states: nt.states.iter().map(added_state).collect(),
            });
        }
    }
    threads.shrink_to_fit();
    StateMap {
        threads,
        handlers: map_handlers(old_c, new_c, t_old, t_new, m),
    }
}

/// Lookups into the new compiled process, built once (each keeps the first match, like a
/// linear search would).
struct NewIndex<'c> {
    c: &'c CompiledProcess,
    /// Thread number → index in `c.threads`.
    by_number: HashMap<u32, usize>,
    /// The number of the first thread class without a parent.
    main: Option<u32>,
    /// Root activity → the number of the first flow-branch thread class rooted there.
    by_root: HashMap<ActivityId, u32>,
    /// Owner → (thread index, state index) of every state it owns, in thread then state
    /// order.
    by_owner: HashMap<ActivityId, Vec<(usize, usize)>>,
}

impl<'c> NewIndex<'c> {
    fn new(c: &'c CompiledProcess) -> NewIndex<'c> {
        let mut ix = NewIndex {
            c,
            by_number: HashMap::new(),
            main: c
                .threads
                .iter()
                .find(|x| x.parent.is_none())
                .map(|x| x.number),
            by_root: HashMap::new(),
            by_owner: HashMap::new(),
        };
        for (ti, t) in c.threads.iter().enumerate() {
            ix.by_number.entry(t.number).or_insert(ti);
            if t.parent.is_some() {
                ix.by_root.entry(t.root.id).or_insert(t.number);
            }
            for (si, s) in t.states.iter().enumerate() {
                ix.by_owner.entry(s.activity.id).or_default().push((ti, si));
            }
        }
        ix
    }

    /// The first state owned by `id` with role `role`: in thread `in_thread` only, or in any.
    fn state(
        &self,
        id: ActivityId,
        role: &Role,
        in_thread: Option<usize>,
    ) -> Option<(usize, &'c State)> {
        self.by_owner
            .get(&id)?
            .iter()
            .filter(|&&(ti, _)| in_thread.is_none_or(|x| x == ti))
            .map(|&(ti, si)| (ti, &self.c.threads[ti].states[si]))
            .find(|(_, s)| s.role == *role)
    }
}

/// Thread1 is Thread1; a flow child thread follows its matched root `<sequence>`.
fn counterpart_thread(
    t: &ThreadClass,
    ix: &NewIndex,
    t_old: &Tree,
    t_new: &Tree,
    m: &Matching,
) -> Option<u32> {
    if t.parent.is_none() {
        return ix.main;
    }
    let root = t_old.pos(t.root.id)?;
    let n = m.o2n[root]?;
    ix.by_root.get(&t_new.id(n)).copied()
}

fn added_state(s: &State) -> StateDelta {
    StateDelta {
        old: None,
        new: Some(s.name),
        role: s.role.clone(),
        new_role: None,
        old_activity: None,
        new_activity: Some(s.activity.clone()),
        wait: s.wait,
        join: s.join,
        change: DeltaKind::Added,
        via: None,
        note: None,
    }
}

/// Why old activity `o` has no counterpart: removed, or its counterpart (a new activity of
/// its element and name) was taken by a `[[pin]]` of another old activity.
fn removed(o: usize, t_old: &Tree, t_new: &Tree, m: &Matching) -> String {
    let name = t_old.nodes[o].name.as_deref();
    let taken = m.pins.iter().find_map(|&(p, line)| {
        let n = m.o2n[p]?;
        (p != o
            && name.is_some()
            && t_new.nodes[n].name.as_deref() == name
            && t_new.element(n) == t_old.element(o))
        .then_some((p, n, line))
    });
    match taken {
        Some((p, n, line)) => format!(
            "its counterpart {} was taken by the [[pin]] of {}{}",
            t_new.label(n),
            t_old.label(p),
            line.map(|l| format!(", overrides line {l}"))
                .unwrap_or_default()
        ),
        None => match (removed_around(o, t_old, m), other_fault_catch(o, t_old, t_new, m)) {
            (_, Some(nc)) => format!(
                "{} has no counterpart: {}",
                t_old.describe(o),
                other_fault(o, nc, t_old, t_new)
            ),
            (Some((around, a)), None) => match other_fault_catch(a, t_old, t_new, m) {
                Some(nc) => {
                    let name = t_old.nodes[o].name.as_deref();
                    let inside = (nc + 1..=t_new.end(nc)).any(|y| {
                        t_new.element(y) == t_old.element(o) && t_new.nodes[y].name.as_deref() == name
                    });
                    format!(
                        "{} lies in {around}, which has no counterpart: {}; the new {} of that name lies {}",
                        t_old.describe(o),
                        other_fault(a, nc, t_old, t_new),
                        t_old.element(o),
                        if inside { "in that handler" } else { "elsewhere" }
                    )
                }
                None => format!(
                    "{} lies in {around}, which was removed; the new {} of that name lies elsewhere",
                    t_old.describe(o),
                    t_old.element(o)
                ),
            },
            (None, None) => format!("{} was removed", t_old.describe(o)),
        },
    }
}

/// For an old `<catch>` `c` without counterpart: the unmatched new catch at its place in the
/// counterpart of its scope (the same name, or both unnamed at the same index among the
/// scope's catches), which catches another fault. "Removed" would read wrong: a catch of that
/// name is still there, but a handler of another fault is another handler.
fn other_fault_catch(c: usize, t_old: &Tree, t_new: &Tree, m: &Matching) -> Option<usize> {
    if t_old.element(c) != "catch" || m.o2n[c].is_some() {
        return None;
    }
    let s = t_old.parent(c)?;
    let sn = m.o2n[s]?;
    let i = t_old.catches(s).iter().position(|&x| x == c)?;
    let name = t_old.nodes[c].name.as_deref();
    let news = t_new.catches(sn);
    news.iter().enumerate().find_map(|(j, &nc)| {
        let here = match (name, t_new.nodes[nc].name.as_deref()) {
            (Some(a), Some(b)) => a == b,
            (None, None) => i == j,
            _ => false,
        };
        (here
            && m.n2o[nc].is_none()
            && !same_expr(
                t_old.nodes[c].attrs.get("fault"),
                t_new.nodes[nc].attrs.get("fault"),
            ))
        .then_some(nc)
    })
}

/// `the new catch "OnInvalid" at its place catches "X", not "Y" (…)`, for
/// [`other_fault_catch`].
fn other_fault(c: usize, nc: usize, t_old: &Tree, t_new: &Tree) -> String {
    let fault = |t: &Tree, p: usize| {
        t.nodes[p]
            .attrs
            .get("fault")
            .unwrap_or("(none)")
            .to_string()
    };
    let who = match t_new.nodes[nc].name {
        Some(_) => t_new.label(nc),
        None => "catch".to_string(),
    };
    format!(
        "the new {who} at its place catches {}, not {} (a catch of another fault is another handler, unless every <throw> of the fault was renamed with it)",
        fault(t_new, nc),
        fault(t_old, c)
    )
}

/// When the new version still has an activity of `o`'s element and name (so "was removed"
/// would read wrong) and `o` lies in a fault handler, case or branch that has no
/// counterpart: that container, described.
fn removed_around(o: usize, t_old: &Tree, m: &Matching) -> Option<(String, usize)> {
    let name = t_old.nodes[o].name.as_deref()?;
    if !m
        .new_names
        .contains(&format!("{}\u{1e}{name}", t_old.element(o)))
    {
        return None;
    }
    let mut c = o;
    while let Some(a) = t_old.parent(c) {
        let slot = t_old.slot[c].as_str();
        match t_old.element(a) {
            "catch" | "catchall" | "compensationhandler" if m.o2n[a].is_none() => {
                return Some((t_old.describe(a), a))
            }
            "if" | "switch" if m.o2n[a].is_none() => return Some((t_old.label(a), a)),
            "switch" => {
                if let Some(i) = super::case_index(slot) {
                    let kept = m
                        .cases
                        .get(&a)
                        .is_some_and(|v| v.iter().any(|&(x, _)| x == i + 1));
                    if !kept {
                        return Some((
                            format!("{} of {}", case_label(t_old, a, i), t_old.label(a)),
                            a,
                        ));
                    }
                }
            }
            _ => {}
        }
        c = a;
    }
    None
}

/// Why the states of matched old activity `o` are not mapped, when its counterpart lies in a
/// branch of an `<if>` or a case of a `<switch>` that the rows resting at them would not take
/// by their own test:
///
/// - `o` lies in another branch or case of that conditional's counterpart (the activity moved
///   there): the rows chose their branch by the test, which they do not evaluate again;
///   mapped, they would continue in a branch they did not choose (and skip what the one they
///   chose still runs).
/// - `o` lies before that conditional's counterpart (it moved into one of its branches, see
///   [`moved_into_ahead`]): the rows have not chosen yet; mapped, they would continue in that
///   branch whatever their data, when the conditional holds other work (after it in that
///   branch, or in another branch) that their data decides.
///
/// Either way a mapping makes a choice the rows' data makes: a `[[map]]` onto the state is
/// offered, for an engineer who knows the rows belong there. Not when `o` or a container
/// between it and that conditional is pinned (the engineer said it is the same place), as a
/// `[[map]]` can.
pub(crate) fn branch_switch(t_old: &Tree, t_new: &Tree, m: &Matching, o: usize) -> Option<String> {
    let n = m.o2n[o]?;
    match switched_branches(t_old, t_new, m, o) {
        Switched::Pinned => None,
        Switched::At(a, a2) => {
            let (os, ns) = switched_slots(t_old, t_new, a, a2, o, n)?;
            let (ob, nb) = (branch_label(t_old, a, os), branch_label(t_new, a2, ns));
            Some(format!(
                "{} moved from {ob} to {nb} of {}: rows resting there chose {ob} and would continue in {nb}, which they did not choose{}",
                t_old.describe(o),
                t_new.label(a2),
                test_changed(t_old, a, os, t_new, a2, ns, m)
            ))
        }
        Switched::No => moved_into_ahead(t_old, t_new, m, o, n),
    }
}

/// For [`branch_switch`]: the conditional whose branch `o` left for another one.
enum Switched {
    /// `o` or a container up to that conditional is pinned: the engineer said it is the same place.
    Pinned,
    /// The old conditional and its counterpart.
    At(usize, usize),
    No,
}

fn switched_branches(t_old: &Tree, t_new: &Tree, m: &Matching, o: usize) -> Switched {
    let Some(n) = m.o2n[o] else {
        return Switched::No;
    };
    let mut c = o;
    while let Some(a) = t_old.parent(c) {
        if m.via[c] == Some(MatchVia::Pinned) {
            return Switched::Pinned;
        }
        if matches!(t_old.element(a), "if" | "switch") {
            if let Some(a2) = m.o2n[a].filter(|&a2| t_new.is_desc(n, a2)) {
                if let Some((os, ns)) = switched_slots(t_old, t_new, a, a2, o, n) {
                    let same = match (super::case_index(os), super::case_index(ns)) {
                        (Some(i), Some(j)) => {
                            m.cases.get(&a).is_some_and(|v| v.contains(&(i + 1, j + 1)))
                        }
                        _ => os == ns,
                    };
                    if !same {
                        return Switched::At(a, a2);
                    }
                }
            }
        }
        c = a;
    }
    Switched::No
}

/// The slots (branch or case) of old conditional `a` holding `o` and of new `a2` holding `n`.
fn switched_slots<'t>(
    t_old: &'t Tree,
    t_new: &'t Tree,
    a: usize,
    a2: usize,
    o: usize,
    n: usize,
) -> Option<(&'t str, &'t str)> {
    let (_, os, _) = t_old.child_towards(a, o)?;
    let (_, ns, _) = t_new.child_towards(a2, n)?;
    Some((os, ns))
}

/// For a row at matched old `o` whose activity moved into another branch of a conditional it
/// chose ([`branch_switch`]) and that is mapped there by an override: what happens after that
/// wait, which a suggestion must say (it sends them down a branch their data did not choose).
/// None when `o` did not switch branches.
pub(crate) fn switched_after(t_old: &Tree, t_new: &Tree, m: &Matching, o: usize) -> Option<String> {
    let n = m.o2n[o]?;
    let Switched::At(a, a2) = switched_branches(t_old, t_new, m, o) else {
        return None;
    };
    let (os, ns) = switched_slots(t_old, t_new, a, a2, o, n)?;
    let (ob, nb) = (branch_label(t_old, a, os), branch_label(t_new, a2, ns));
    let after_new = work_after(t_new, a2, n);
    // What followed it in their branch and follows it in the new one too is not lost.
    let after_old: Vec<usize> = work_after(t_old, a, o)
        .into_iter()
        .filter(|&x| {
            !m.o2n[x].is_some_and(|y| after_new.iter().any(|&q| y == q || t_new.is_desc(y, q)))
        })
        .collect();
    let mut parts = Vec::new();
    if !after_new.is_empty() {
        parts.push(format!("they run {} of {nb}", labels(t_new, &after_new)));
    }
    if !after_old.is_empty() {
        parts.push(format!(
            "they never run {}, which followed it in {ob}",
            labels(t_old, &after_old)
        ));
    }
    let what = if parts.is_empty() {
        format!("neither {ob} nor {nb} runs more work after it")
    } else {
        parts.join(", and ")
    };
    Some(format!(
        "after that wait they continue in {nb}, which they did not choose: {what}"
    ))
}

/// The labels of `ps` in `t`, comma-separated.
fn labels(t: &Tree, ps: &[usize]) -> String {
    ps.iter()
        .map(|&p| t.label(p))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The work after `n` in the branch of the conditional at `c` that holds it (later siblings of
/// `n` and of each container up to that branch, inner ones first).
fn work_after(t: &Tree, c: usize, n: usize) -> Vec<usize> {
    let mut after = Vec::new();
    let mut x = n;
    while x != c {
        let mut s = t.end(x) + 1;
        while s <= t.list_end(x) {
            if does_work(t, s) {
                after.push(s);
            }
            s = t.end(s) + 1;
        }
        let Some(p) = t.parent(x) else { break };
        x = p;
    }
    after
}

/// Does the subtree at `q` do work (traces, jumps and what does nothing, see
/// [`does_nothing`], do none)?
fn does_work(t: &Tree, q: usize) -> bool {
    t.effective[q]
        && (q..=t.end(q)).any(|x| {
            t.effective[x]
                && !does_nothing(t.element(x))
                && !matches!(
                    t.element(x),
                    "trace" | "sequence" | "break" | "continue" | "label" | "branch"
                )
        })
}

/// For [`branch_switch`]: `o` (new position `n`) moved into a branch of an `<if>`/`<switch>`
/// whose old counterpart lay after it, so rows resting at `o` had not evaluated its test yet,
/// and that conditional holds work their data decides (see [`forced_branch`]): why they are not
/// mapped there. A new conditional is not one: the old version made no choice there (BPM0206
/// says what it forces); nor one they evaluated before (BPM0206 too).
fn moved_into_ahead(
    t_old: &Tree,
    t_new: &Tree,
    m: &Matching,
    o: usize,
    n: usize,
) -> Option<String> {
    let mut c = n;
    while let Some(a2) = t_new.parent(c) {
        // A container that moved in with it, pinned: the engineer said it is the same place.
        if m.n2o[c].is_some_and(|x| m.via[x] == Some(MatchVia::Pinned)) {
            return None;
        }
        let ahead = m.n2o[a2]
            .filter(|&a| t_old.effective[a] && t_old.order(a, o) == super::tree::Order::After);
        if let (true, Some(a)) = (matches!(t_new.element(a2), "if" | "switch"), ahead) {
            if let Some(forced) = forced_branch(t_new, a2, n) {
                return Some(format!(
                    "{} moved from before {} into {}: rows resting there have not evaluated its test yet, and mapped there {}",
                    t_old.describe(o),
                    t_old.label(a),
                    forced.branch,
                    forced.text(t_new)
                ));
            }
        }
        c = a2;
    }
    None
}

/// What continuing in the branch of the `<if>`/`<switch>` at `c` that holds `n` forces on a row
/// that resumes at `n` without having evaluated its test: the work after `n` in that branch
/// runs whatever its data, and the work of each other branch never runs for the rows whose
/// data chooses that branch. Traces, `<empty>` and jumps do no work. None when there is none.
pub(crate) fn forced_branch(t: &Tree, c: usize, n: usize) -> Option<ForcedBranch> {
    let (_, ns, _) = t.child_towards(c, n)?;
    // Later siblings of `n` and of each container up to the branch, inner ones first (pre-order).
    let after = work_after(t, c, n);
    let others: Vec<(String, Vec<usize>)> = t.slots[c]
        .iter()
        .filter(|(slot, _)| slot.as_str() != ns)
        .map(|(slot, l)| {
            let work: Vec<usize> = l.iter().copied().filter(|&q| does_work(t, q)).collect();
            (branch_label(t, c, slot), work)
        })
        .filter(|(_, w)| !w.is_empty())
        .collect();
    if after.is_empty() && others.is_empty() {
        return None;
    }
    Some(ForcedBranch {
        branch: branch_label(t, c, ns),
        after,
        others,
    })
}

/// See [`forced_branch`]; displayed, what it means for the rows.
pub(crate) struct ForcedBranch {
    /// The branch they continue in: `case "Core"`, `<true>`.
    pub branch: String,
    /// The work after the resume point in that branch (outermost activities).
    pub after: Vec<usize>,
    /// The other branches holding work, with that work (outermost activities).
    pub others: Vec<(String, Vec<usize>)>,
}

impl ForcedBranch {
    /// The text, with the activities labelled by `t` (the new tree).
    pub(crate) fn text(&self, t: &Tree) -> String {
        let mut parts = Vec::new();
        if !self.after.is_empty() {
            parts.push(format!("they all run {}", labels(t, &self.after)));
        }
        for (b, ps) in &self.others {
            parts.push(format!(
                "rows whose data chooses {b} never run {}",
                labels(t, ps)
            ));
        }
        format!(
            "they continue in {} whatever their data: {}",
            self.branch,
            parts.join("; ")
        )
    }
}

/// For [`branch_switch`]: when the test that chose the rows' branch changed too (the
/// `<if>`'s condition; the condition of the case they chose or of the one they would continue
/// in), both tests, for the reader to judge whether the new one chooses the new branch for
/// exactly those rows (a negated condition with swapped branches does). Empty otherwise.
fn test_changed(
    t_old: &Tree,
    a: usize,
    os: &str,
    t_new: &Tree,
    a2: usize,
    ns: &str,
    m: &Matching,
) -> String {
    use crate::bpl::ActivityKind;
    let cond = |t: &Tree, p: usize| t.nodes[p].attrs.get("condition").map(str::to_string);
    if t_old.element(a) == "if" {
        let (before, now) = (cond(t_old, a), cond(t_new, a2));
        if same_expr(before.as_deref(), now.as_deref()) {
            return String::new();
        }
        return format!(
            "; its condition changed too, condition={} → condition={}: if the new one is the old one negated, {} is the branch it chooses for them",
            xml_attr(before.as_deref().unwrap_or_default()),
            xml_attr(now.as_deref().unwrap_or_default()),
            branch_label(t_new, a2, ns)
        );
    }
    let conds = |t: &Tree, p: usize| -> Vec<Option<String>> {
        match &t.nodes[p].kind {
            ActivityKind::Switch { cases, .. } => {
                cases.iter().map(|c| c.condition.clone()).collect()
            }
            _ => Vec::new(),
        }
    };
    let (co, cn) = (conds(t_old, a), conds(t_new, a2));
    let pairs = m.cases.get(&a).cloned().unwrap_or_default();
    let (i, j) = (super::case_index(os), super::case_index(ns));
    let get = |v: &[Option<String>], k: u32| v.get(k as usize).cloned().flatten();
    // A case whose counterpart tests something else (Some(true)), or that has none (None).
    let edited_old = i.map(|i| {
        pairs
            .iter()
            .find(|x| x.0 == i + 1)
            .map(|&(_, jj)| !same_expr(get(&co, i).as_deref(), get(&cn, jj - 1).as_deref()))
    });
    let edited_new = j.map(|j| {
        pairs
            .iter()
            .find(|x| x.1 == j + 1)
            .map(|&(ii, _)| !same_expr(get(&co, ii - 1).as_deref(), get(&cn, j).as_deref()))
    });
    let changed = edited_old == Some(Some(true)) || edited_new == Some(Some(true));
    let unpaired = edited_old == Some(None) || edited_new == Some(None);
    if !(changed || unpaired) {
        return String::new();
    }
    let show = |t: &Tree, p: usize, slot: &str, v: &[Option<String>], k: Option<u32>| match k
        .and_then(|k| get(v, k))
    {
        Some(c) => format!("{} condition={}", branch_label(t, p, slot), xml_attr(&c)),
        None => format!("{} (no condition)", branch_label(t, p, slot)),
    };
    let what = match (edited_old == Some(None), edited_new == Some(None), changed) {
        (true, _, _) => format!("{} has no counterpart", branch_label(t_old, a, os)),
        (_, true, _) => format!("{} is a new case", branch_label(t_new, a2, ns)),
        _ => "the case conditions changed too".to_string(),
    };
    format!(
        "; {what}, {} → {}: if the new case holds for exactly the rows the old one chose, it is the one that chooses them",
        show(t_old, a, os, &co, i),
        show(t_new, a2, ns, &cn, j)
    )
}

/// A branch of an `<if>` or a case of a `<switch>`: `<true>`, `case "Fast"`, `<default>`.
fn branch_label(t: &Tree, p: usize, slot: &str) -> String {
    match (t.element(p), super::case_index(slot)) {
        ("if", _) => format!("<{slot}>"),
        (_, Some(i)) => case_label(t, p, i),
        _ => format!("<{slot}>"),
    }
}

/// A user case of a switch as the source names it: `case "Fast"`, or `case #2` unnamed.
fn case_label(t: &Tree, sw: usize, i: u32) -> String {
    match &t.nodes[sw].kind {
        crate::bpl::ActivityKind::Switch { cases, .. } => {
            match cases.get(i as usize).and_then(|c| c.name.as_deref()) {
                Some(n) => format!("case {n:?}"),
                None => format!("case #{}", i + 1),
            }
        }
        _ => format!("case #{}", i + 1),
    }
}

/// The (new owner position, new role) an old (owner, role) corresponds to, or why none.
pub(crate) fn counterpart_key(
    owner: usize,
    role: &Role,
    t_old: &Tree,
    t_new: &Tree,
    m: &Matching,
) -> Result<(usize, Role), String> {
    let Some(n_owner) = m.state_counterpart(t_old, owner) else {
        return Err(removed(owner, t_old, t_new, m));
    };
    let role = match role {
        Role::Catch(i) => {
            let catches = t_old.catches(owner);
            let Some(&oc) = (*i as usize).checked_sub(1).and_then(|k| catches.get(k)) else {
                return Err(format!("{} has no catch {i}", t_old.label(owner)));
            };
            let Some(nc) = m.o2n[oc] else {
                return Err(removed(oc, t_old, t_new, m));
            };
            match t_new.catches(n_owner).iter().position(|&c| c == nc) {
                Some(j) => Role::Catch(j as u32 + 1),
                // Widened to the scope's catchall (the matcher pairs it only with its own).
                None if t_new.element(nc) == "catchall" && t_new.parent(nc) == Some(n_owner) => {
                    Role::Catchall
                }
                None => return Err(format!("{} moved to another scope", t_old.describe(oc))),
            }
        }
        Role::SwitchCase(i) => match m
            .cases
            .get(&owner)
            .and_then(|v| v.iter().find(|(a, _)| a == i))
        {
            Some(&(_, j)) => Role::SwitchCase(j),
            None => {
                return Err(format!(
                "{} of {} was removed: no case of the new version keeps its condition or its name",
                case_label(t_old, owner, i - 1),
                t_old.label(owner)
            ))
            }
        },
        Role::CompHandler(name) => {
            let old_h = t_old
                .comp_handlers(owner)
                .into_iter()
                .find(|&h| t_old.nodes[h].name.as_deref() == Some(name.as_str()));
            match old_h.and_then(|h| m.o2n[h]) {
                Some(nh) if t_new.parent(nh) == Some(n_owner) => match &t_new.nodes[nh].name {
                    Some(nn) => Role::CompHandler(nn.to_string()),
                    None => return Err(format!("compensation handler {name} lost its name")),
                },
                Some(_) => {
                    return Err(format!(
                        "compensation handler {name} moved to another scope"
                    ))
                }
                None => return Err(format!("compensation handler {name} was removed")),
            }
        }
        other => other.clone(),
    };
    Ok((n_owner, role))
}

fn map_state(
    s: &State,
    t: &ThreadClass,
    nt: Option<usize>,
    ix: &NewIndex,
    t_old: &Tree,
    t_new: &Tree,
    m: &Matching,
) -> StateDelta {
    let mut d = StateDelta {
        old: Some(s.name),
        new: None,
        role: s.role.clone(),
        new_role: None,
        old_activity: Some(s.activity.clone()),
        new_activity: None,
        wait: s.wait,
        join: s.join,
        change: DeltaKind::Removed,
        via: None,
        note: None,
    };
    let Some(owner) = t_old.pos(s.activity.id) else {
        d.note = Some(format!(
            "owner {} is not in the activity tree",
            s.activity.label()
        ));
        return d;
    };
    d.via = if m.is_merged(t_old, owner) {
        Some(MatchVia::Merged)
    } else {
        m.via[owner]
    };
    let (n_owner, role) = match counterpart_key(owner, &s.role, t_old, t_new, m) {
        Ok(x) => x,
        Err(why) => {
            // A `<sync>` on one call removed, its call made synchronous: the call's own wait.
            if let Some(ns) =
                nt.and_then(|nt| sync_to_call(owner, &s.role, t, nt, ix, t_old, t_new, m))
            {
                mapped(&mut d, s, ns, s.role.clone());
                d.via = Some(MatchVia::SameWait);
                d.note = Some(format!(
                    "{} became call \"{}\" made synchronous: the same wait on the same call",
                    t_old.label(owner),
                    ns.activity.name.as_deref().unwrap_or_default()
                ));
            } else {
                d.note = Some(why);
            }
            return d;
        }
    };
    // Moved into another branch of a conditional the rows already chose: not theirs.
    if let Some(why) = branch_switch(t_old, t_new, m, owner) {
        d.note = Some(why);
        return d;
    }
    let n_id = t_new.id(n_owner);
    let Some(nt) = nt else {
        d.note = Some(format!("{} has no counterpart in the new version", t.class));
        return d;
    };
    if let Some((_, ns)) = ix.state(n_id, &role, Some(nt)) {
        mapped(&mut d, s, ns, role);
        return d;
    }
    // A synchronous call made asynchronous, with a `<sync>` on it alone right after it.
    if let Some(ns) = call_to_sync(n_owner, &role, nt, ix, t_new, m) {
        mapped(&mut d, s, ns, role);
        d.via = Some(MatchVia::SameWait);
        d.note = Some(format!(
            "{} is now asynchronous and {} waits on it: the same wait on the same call",
            t_new.label(n_owner),
            ns.activity.label()
        ));
        return d;
    }
    // The first thread class (in order) holding such a state.
    let elsewhere = ix.state(n_id, &role, None).map(|(ti, _)| &ix.c.threads[ti]);
    d.note = Some(match (elsewhere, unlike_call_wait(n_owner, &role, t_new)) {
        (Some(x), _) => format!(
            "{} now runs in {} (rows cannot change thread class)",
            t_new.label(n_owner),
            x.class
        ),
        (None, Some(why)) => why,
        (None, None) if is_wait_role(&role) && made_async(t_old, t_new, owner, n_owner) => format!(
            "{} was made asynchronous (async='1'): it has no {role} state any more",
            t_new.label(n_owner)
        ),
        (None, None) => format!("{} has no {role} state any more", t_new.label(n_owner)),
    });
    d
}

/// A `<call>` synchronous in the old version (`o`) and asynchronous in the new one (`n`).
fn made_async(t_old: &Tree, t_new: &Tree, o: usize, n: usize) -> bool {
    let is_async = |t: &Tree, p: usize| {
        t.element(p) == "call" && matches!(t.nodes[p].attrs.get("async"), Some("1" | "true"))
    };
    t_old.element(o) == "call" && !is_async(t_old, o) && is_async(t_new, n)
}

/// Fills in the new side of an old state's delta.
fn mapped(d: &mut StateDelta, s: &State, ns: &State, role: Role) {
    d.new = Some(ns.name);
    d.new_activity = Some(ns.activity.clone());
    d.change = if ns.name == s.name {
        DeltaKind::Unchanged
    } else {
        DeltaKind::Renumbered
    };
    if role != s.role {
        d.new_role = Some(role);
    }
}

/// The wait roles a synchronous `<call>` shares with a `<sync>` (spec 3.4.4a: a synchronous
/// call behaves like `<sync calls="<its name>" type="all">` placed right after it).
fn is_wait_role(role: &Role) -> bool {
    matches!(role, Role::SyncWait | Role::SyncAfter)
}

/// Whether the `<sync>` at `p` waits exactly like a synchronous call named `name`: it lists
/// that call alone and has no `timeout` (a synchronous call has none).
fn waits_like_call(t: &Tree, p: usize, name: &str) -> bool {
    let n = t.nodes[p];
    let mut calls = t.sync_calls(p);
    calls.next() == Some(name) && calls.next().is_none() && !n.attrs.contains_key("timeout")
}

/// The first of `sibs` that is a `<sync>` listing `name`.
fn first_sync_on(t: &Tree, mut sibs: impl Iterator<Item = usize>, name: &str) -> Option<usize> {
    sibs.find(|&x| t.sync_calls(x).any(|c| c == name))
}

/// The siblings after `p` in its list (same parent, same slot).
fn later_siblings<'t>(t: &'t Tree, p: usize) -> impl Iterator<Item = usize> + 't {
    let list = t
        .parent(p)
        .and_then(|q| t.slots[q].iter().map(|(_, l)| l).find(|l| l.contains(&p)));
    list.into_iter()
        .flat_map(move |l| l.iter().copied().skip_while(move |&x| x != p).skip(1))
}

/// The siblings before `p` in its list, nearest first.
fn earlier_siblings<'t>(t: &'t Tree, p: usize) -> impl Iterator<Item = usize> + 't {
    let list = t
        .parent(p)
        .and_then(|q| t.slots[q].iter().map(|(_, l)| l).find(|l| l.contains(&p)));
    list.into_iter()
        .flat_map(move |l| l.iter().rev().copied().skip_while(move |&x| x != p).skip(1))
}

/// Old synchronous call → new asynchronous call `n_call` plus a new `<sync>` that waits on it
/// alone, later in the same list: the sync's state with the same role. The sync must be new
/// (no old activity became it), enabled, and the first sync after the call that lists it.
fn call_to_sync<'c>(
    n_call: usize,
    role: &Role,
    nt: usize,
    ix: &NewIndex<'c>,
    t_new: &Tree,
    m: &Matching,
) -> Option<&'c State> {
    if !is_wait_role(role) || t_new.element(n_call) != "call" {
        return None;
    }
    let sync = same_wait_sync(t_new, m, n_call)?;
    ix.state(t_new.id(sync), role, Some(nt)).map(|(_, ns)| ns)
}

/// The new `<sync>` that waits on the call at `n_call` (new position) alone, later in the
/// same list, as its own wait did when it was synchronous: new (no old activity became it),
/// enabled, without a timeout, and the first sync after the call that lists it.
pub(crate) fn same_wait_sync(t_new: &Tree, m: &Matching, n_call: usize) -> Option<usize> {
    let name = t_new.nodes[n_call].name.as_deref()?;
    let sync = first_sync_on(t_new, later_siblings(t_new, n_call), name)?;
    if !waits_like_call(t_new, sync, name) || m.n2o[sync].is_some() || !t_new.effective[sync] {
        return None;
    }
    Some(sync)
}

/// Why the `<sync>` that now waits on the call at `n_call` (made asynchronous) is not the
/// same wait as the call's own was, if one does.
fn unlike_call_wait(n_call: usize, role: &Role, t_new: &Tree) -> Option<String> {
    if !is_wait_role(role) || t_new.element(n_call) != "call" {
        return None;
    }
    let name = t_new.nodes[n_call].name.as_deref()?;
    let sync = first_sync_on(t_new, later_siblings(t_new, n_call), name)?;
    let what = format!(
        "{} is now asynchronous and {} waits on it",
        t_new.label(n_call),
        t_new.label(sync)
    );
    Some(if let Some(t) = t_new.nodes[sync].attrs.get("timeout") {
        format!("{what} with a timeout ({t}) that instances waiting now never armed")
    } else if t_new.sync_calls(sync).count() > 1 {
        let calls: Vec<&str> = t_new.sync_calls(sync).collect();
        format!("{what} together with other calls ({})", calls.join(", "))
    } else {
        format!("{what}, but not as the same wait (it is not new, or not generated)")
    })
}

/// Old `<sync>` on one asynchronous call, removed → that call, matched and now synchronous
/// in the new version: the call's state with the same role. The old call must have had no
/// wait of its own (it was asynchronous), and the sync must be the first after it on it.
#[allow(clippy::too_many_arguments)]
fn sync_to_call<'c>(
    o_sync: usize,
    role: &Role,
    t: &ThreadClass,
    nt: usize,
    ix: &NewIndex<'c>,
    t_old: &Tree,
    t_new: &Tree,
    m: &Matching,
) -> Option<&'c State> {
    if !is_wait_role(role) || m.o2n[o_sync].is_some() || m.blocked[o_sync] {
        return None;
    }
    let name = t_old.sync_calls(o_sync).next()?;
    if !waits_like_call(t_old, o_sync, name) {
        return None;
    }
    let o_call = earlier_siblings(t_old, o_sync)
        .find(|&x| t_old.element(x) == "call" && t_old.nodes[x].name.as_deref() == Some(name))?;
    // This sync is the first on that call after it.
    if first_sync_on(t_old, later_siblings(t_old, o_call), name) != Some(o_sync) {
        return None;
    }
    let o_call_id = t_old.id(o_call);
    if t.states.iter().any(|s| s.activity.id == o_call_id) {
        return None;
    }
    let n_call = m.o2n[o_call]?;
    ix.state(t_new.id(n_call), role, Some(nt)).map(|(_, ns)| ns)
}

fn map_handlers(
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    t_old: &Tree,
    t_new: &Tree,
    m: &Matching,
) -> Vec<HandlerDelta> {
    let mut out = Vec::new();
    let mut used = BTreeSet::new();
    // Owner → the first new response handler of that call.
    let mut by_owner = HashMap::new();
    for x in &new_c.response_handlers {
        by_owner.entry(x.activity.id).or_insert(x);
    }
    for h in &old_c.response_handlers {
        let n = t_old
            .pos(h.activity.id)
            .and_then(|p| m.state_counterpart(t_old, p))
            .map(|p| t_new.id(p));
        let nh = n.and_then(|id| by_owner.get(&id).copied());
        if let Some(nh) = nh {
            used.insert(nh.name.clone());
        }
        out.push(HandlerDelta {
            old: Some(h.name.clone()),
            new: nh.map(|x| x.name.clone()),
            old_call: Some(h.call.clone()),
            new_call: nh.map(|x| x.call.clone()),
            old_activity: Some(h.activity.clone()),
            new_activity: nh.map(|x| x.activity.clone()),
            change: match nh {
                None => DeltaKind::Removed,
                Some(x) if x.name == h.name => DeltaKind::Unchanged,
                Some(_) => DeltaKind::Renumbered,
            },
        });
    }
    for nh in &new_c.response_handlers {
        if !used.contains(&nh.name) {
            out.push(HandlerDelta {
                old: None,
                new: Some(nh.name.clone()),
                old_call: None,
                new_call: Some(nh.call.clone()),
                old_activity: None,
                new_activity: Some(nh.activity.clone()),
                change: DeltaKind::Added,
            });
        }
    }
    out
}
