//! The analyses behind the findings about in-flight instances (raised in
//! [`checks`](super::checks)): resume points, what a thread resting at one skips or runs
//! again, first access to a context property along the paths from it, state owners.

use super::model::StateMapping;
use crate::bpl::ActivityKind;
use crate::diff::tree::Tree;
use crate::diff::Analysis;
use crate::states::{CompiledProcess, Role, StateName, ThreadClass};
use foldhash::{HashMap, HashMapExt};

/// `Thread1:S4` for a state of the old version, `new:Thread1:S6` for the new one.
pub(crate) fn sref(class: &str, state: &(impl std::fmt::Display + ?Sized)) -> String {
    format!("{}:{state}", short(class))
}

pub(crate) fn new_sref(class: &str, state: &(impl std::fmt::Display + ?Sized)) -> String {
    format!("new:{}:{state}", short(class))
}

pub(crate) fn short(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

/// `build::find_thread` for many look-ups: the first thread class matching by class, short class
/// or number is the first of the first matches of each kind.
pub(super) struct ThreadFinder<'c> {
    c: &'c CompiledProcess,
    class: HashMap<&'c str, usize>,
    short: HashMap<&'c str, usize>,
    number: HashMap<u32, usize>,
}

impl<'c> ThreadFinder<'c> {
    pub(super) fn new(c: &'c CompiledProcess) -> ThreadFinder<'c> {
        let mut f = ThreadFinder {
            c,
            class: HashMap::new(),
            short: HashMap::new(),
            number: HashMap::new(),
        };
        for (i, t) in c.threads.iter().enumerate() {
            f.class.entry(t.class.as_str()).or_insert(i);
            f.short.entry(short(&t.class)).or_insert(i);
            f.number.entry(t.number).or_insert(i);
        }
        f
    }

    pub(super) fn find(&self, s: &str) -> Option<&'c ThreadClass> {
        let s = s.trim();
        [
            self.class.get(s),
            self.short.get(s),
            s.parse::<u32>().ok().and_then(|n| self.number.get(&n)),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|&i| &self.c.threads[i])
    }
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
    /// The `<compensationhandler>` (new position) a thread resting at `w_new` runs as a
    /// subroutine: it returns to its `<compensate>` when the handler ends, so what it skips
    /// or re-runs here lies inside the handler; the rest is its return point's (`returns`).
    pub within: Option<usize>,
    /// The return point of a thread resting inside a compensation handler: `w_old`/`w_new`
    /// are the `<compensate>`s of its old and new `%SubroutineStack` tops (spec 4.4 kind 4,
    /// runtime 4.3); `old_ref`/`new_ref` are the states it rests at.
    pub returns: bool,
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
        let mut roles: HashMap<StateName, &Role> = HashMap::with_capacity(nt.states.len());
        for x in &nt.states {
            roles.entry(x.name).or_insert(&x.role);
        }
        for sm in states {
            // Rows rest at wait and join states; a state the overrides file maps is one the
            // reviewer expects rows at, so what they skip or enter there is reported too.
            if !(sm.wait || sm.join || sm.change == crate::plan::model::StateChange::Overridden) {
                continue;
            }
            let (Some(new_state), Some(na)) = (&sm.new, &sm.new_activity) else {
                continue;
            };
            let Some(w_new) = a.new.pos(na.id) else {
                continue;
            };
            let enters = roles.get(new_state).and_then(|role| entered_slot(role));
            let (within, returns) = return_points(a, ot, nt, states, sm, w_new);
            out.push(Resume {
                old_ref: sref(&ot.class, &sm.old),
                new_ref: new_sref(&nt.class, new_state),
                w_old: a.old.pos(sm.old_activity.id),
                w_new,
                join: sm.join,
                enters,
                within,
                returns: false,
            });
            for (r_old, r_new) in returns {
                out.push(Resume {
                    old_ref: sref(&ot.class, &sm.old),
                    new_ref: new_sref(&nt.class, new_state),
                    w_old: Some(r_old),
                    w_new: r_new,
                    join: false,
                    enters: None,
                    within: None,
                    returns: true,
                });
            }
        }
    }
    out
}

/// For a thread resting inside a compensation handler (new position `w_new`): the innermost
/// `<compensationhandler>` around it, and the `<compensate>`s (old, new positions) it may
/// return to when that handler ends: the owners of the tops of its `%SubroutineStack`. The
/// first value (the one the plan writes) returns where its new stack says; a handler that
/// several `<compensate>`s run has more old values, each returning where its top is mapped.
fn return_points(
    a: &Analysis,
    ot: &ThreadClass,
    nt: &ThreadClass,
    states: &[StateMapping],
    sm: &StateMapping,
    w_new: usize,
) -> (Option<usize>, Vec<(usize, usize)>) {
    let Some(h) = a
        .new
        .ancestors(w_new)
        .find(|&q| a.new.element(q) == "compensationhandler")
    else {
        return (None, Vec::new());
    };
    let owner = |t: &Tree, c: &ThreadClass, state: &StateName| {
        let p = t.pos(c.state(state)?.activity.id)?;
        (t.element(p) == "compensate").then_some(p)
    };
    let mut out: Vec<(usize, usize)> = Vec::new();
    let mut add = |r_old: Option<&StateName>, r_new: Option<&StateName>| {
        let pair = (owner(&a.old, ot, r_old?)?, owner(&a.new, nt, r_new?)?);
        if !out.contains(&pair) {
            out.push(pair);
        }
        Some(())
    };
    add(
        sm.old_subroutine_stack.last(),
        sm.new_subroutine_stack.last(),
    );
    for alt in ot
        .state(&sm.old)
        .map_or(&[][..], |s| s.subroutine_stack_alternatives())
    {
        let top = alt.last();
        let mapped = top.and_then(|r| states.iter().find(|x| x.old == *r)?.new.as_ref());
        add(top, mapped);
    }
    match out.is_empty() {
        true => (None, out),
        false => (Some(h), out),
    }
}

/// What to report of a set of qualifying activities: the outermost ones whose whole
/// (generated) subtree qualifies. A new `<if>` wrapped around activities that ran already is
/// not itself "skipped"; a new `<if>` with new contents is reported as one.
///
/// `set` is in ascending order without repeats. `full` is scratch space of `t.len()` entries,
/// all `false` on entry and on return; the work is proportional to the set and the children
/// of its members, not to the tree.
pub(super) fn outermost(t: &Tree, set: &[usize], full: &mut [bool]) -> Vec<usize> {
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
            covered_to = Some(t.end(p));
        }
    }
    for &p in set {
        full[p] = false;
    }
    top
}

/// Does the thread rooted at `tr` run `p`, itself or through the branches of a `<flow>` in
/// it (spec 3.4.14: the join waits for every branch, so a thread past a flow ran all of them)?
/// A branch thread does not run its sibling branches: they are not in its subtree.
pub(super) fn runs_in_thread(t: &Tree, p: usize, tr: usize) -> bool {
    tr <= p && p <= t.end(tr)
}

/// Does a thread resting at `w` run code at `p` only on a fault path it is not on?
fn in_foreign_handler(t: &Tree, p: usize, w: usize) -> bool {
    t.handler(p).is_some_and(|h| !(h == w || t.is_desc(w, h)))
}

/// Where each new activity was in the old version, and which stretches of siblings moved
/// whole, built once for every resume point.
struct Alignment {
    /// The old position of a matched new activity the old version generated; `None` when it
    /// cannot have run before any old resume point (new, or disabled in the old version).
    old: Vec<Option<usize>>,
    /// For an activity whose subtree moved whole: its block and its index there. A subtree
    /// moved whole when every activity in it is generated in both versions and matched to the
    /// same offset in an old subtree of the same size: for a resume point outside it (in both
    /// versions) all of it ran before or none of it did. What such a thread runs of it is the
    /// same whatever the resume point: the branches of a `<flow>` in it (see
    /// `runs_in_thread`), not the fault handlers inside it.
    block_of: Vec<Option<(usize, usize)>>,
    /// A subtree that moved whole and holds no fault handler of its own: such a thread runs
    /// all of it, so it is reported as one.
    pure: Vec<bool>,
    /// Consecutive siblings that moved whole, in new order, whose old subtrees are disjoint
    /// and in ascending or in descending old order (a stretch moved together, or reversed).
    /// A long list of moved siblings is a few blocks, so a resume point costs O(blocks ·
    /// log), not O(activities).
    blocks: Vec<Vec<usize>>,
    /// The new `<sync>`s whose answers an old wait may have received already (see
    /// [`Awaited`]), sorted by the sync. A thread that passed those waits with every answer
    /// did not skip the sync. (It does not count as run for re-runs: a thread reaching it
    /// again after the answer came finds nothing to wait for.)
    waited: Vec<Awaited>,
    /// For each new activity, [`unkept_conditional`]: the old conditional that decided
    /// whether its counterpart ran, and that the new version no longer decides it by.
    unkept: Vec<Option<usize>>,
    /// For each member of a block, how many members before it in its block have an
    /// `unkept` conditional: a stretch of members holds one exactly when the counts differ.
    unkept_before: Vec<u32>,
}

impl Alignment {
    fn new(a: &Analysis) -> Alignment {
        let (to, tn, m) = (&a.old, &a.new, &a.m);
        let old: Vec<Option<usize>> = (0..tn.len())
            .map(|n| m.n2o[n].filter(|&o| to.effective[o]))
            .collect();
        let mut whole = vec![false; tn.len()];
        let mut pure = vec![false; tn.len()];
        for p in (0..tn.len()).rev() {
            whole[p] = tn.effective[p]
                && old[p].is_some_and(|o| {
                    to.end(o) - o == tn.end(p) - p
                        && tn.slots[p]
                            .iter()
                            .flat_map(|(_, l)| l)
                            .all(|&c| whole[c] && old[c] == Some(o + (c - p)))
                });
            pure[p] = whole[p]
                && tn.slots[p]
                    .iter()
                    .flat_map(|(_, l)| l)
                    .all(|&c| pure[c] && tn.handler(c) == tn.handler(p));
        }
        let lo = |x: usize| old[x].unwrap_or(0);
        let mut block_of = vec![None; tn.len()];
        let mut blocks: Vec<Vec<usize>> = Vec::new();
        for l in tn.slots.iter().flat_map(|s| s.iter().map(|(_, l)| l)) {
            // The open block and its direction (None while it has one member).
            let mut open: Option<(usize, Option<bool>)> = None;
            for &c in l {
                if !whole[c] {
                    open = None;
                    continue;
                }
                let joins = open.and_then(|(b, dir)| {
                    let prev = *blocks[b].last()?;
                    let same = tn.thread_root(c) == tn.thread_root(prev)
                        && tn.handler(c) == tn.handler(prev);
                    let up = lo(c) > to.end(lo(prev));
                    let down = to.end(lo(c)) < lo(prev);
                    let step = if up {
                        Some(true)
                    } else if down {
                        Some(false)
                    } else {
                        None
                    };
                    match (same, step, dir) {
                        (true, Some(s), None) => Some((b, s)),
                        (true, Some(s), Some(d)) if s == d => Some((b, s)),
                        _ => None,
                    }
                });
                match joins {
                    Some((b, s)) => {
                        block_of[c] = Some((b, blocks[b].len()));
                        blocks[b].push(c);
                        open = Some((b, Some(s)));
                    }
                    None => {
                        block_of[c] = Some((blocks.len(), 0));
                        open = Some((blocks.len(), None));
                        blocks.push(vec![c]);
                    }
                }
            }
        }
        let waited = awaited_syncs(a);
        let unkept: Vec<Option<usize>> = (0..tn.len())
            .map(|n| old[n].and_then(|_| unkept_conditional(a, n)))
            .collect();
        let mut unkept_before = vec![0; tn.len()];
        for b in &blocks {
            let mut k = 0;
            for &x in b {
                unkept_before[x] = k;
                k += u32::from(unkept[x].is_some());
            }
        }
        Alignment {
            old,
            block_of,
            blocks,
            pure,
            waited,
            unkept,
            unkept_before,
        }
    }
}

/// The innermost old `<if>`/`<switch>`, `<while>`/`<foreach>`, or `<scope>` with a
/// `<catch>`/`<catchall>` around the old counterpart of the new activity `n` that the new
/// version no longer decides `n` by: its counterpart does not hold `n` (in the corresponding
/// branch, or in its body), and no merged copy of `n` (see `Matching::merged`) lies on every
/// path through it. A thread that passed it under the old version ran `n`'s counterpart only
/// if its data took that branch (or ran that body at least once, or no fault took it out of
/// the scope's body before it): an unwrapped `<if>`, content hoisted out of a branch or a
/// loop, moved into another branch or out of a scope's body. `None` for a new activity, or
/// when every conditional around it is kept.
///
/// Whether it decides for a thread resting at an old position `wo` is the caller's question:
/// only when it does not hold `wo` (one that holds it is a branch the thread is in).
pub(super) fn unkept_conditional(a: &Analysis, n: usize) -> Option<usize> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let o = m.n2o[n]?;
    let mut y = o;
    while let Some(c) = to.parent(y) {
        let element = to.element(c);
        // A scope decides its body the same way when a fault handler can end a fault there:
        // a thread past it ran all of the body, or a prefix of it and then that handler.
        let decides = match element {
            "if" | "switch" | "while" | "foreach" => true,
            "scope" => {
                to.slot[y].as_str() == "body" && recovers(to, c) && ran_before_in_body(to, c, o)
            }
            _ => false,
        };
        if decides {
            let kept = m.o2n[c]
                .filter(|&cn| tn.effective[cn] && tn.is_desc(n, cn))
                .and_then(|cn| tn.child_towards(cn, n))
                .is_some_and(|(_, ns, _)| match element {
                    "if" | "switch" => same_branch(a, c, &to.slot[y], ns),
                    "scope" => ns == "body",
                    _ => true,
                });
            if !kept && !copies_on_every_path(a, c, o, n) {
                return Some(c);
            }
        }
        y = c;
    }
    None
}

/// Does the body of scope `c` run an activity before `o` (which it holds) or before the end of
/// `o`'s own contents? A fault happens at an activity: only one before `o`, or inside it
/// before its last activity, can take a thread out of the body before `o` ran whole (a moved
/// `<sequence>` first in the body may have run only its first call).
fn ran_before_in_body(t: &Tree, c: usize, o: usize) -> bool {
    let Some(first) = t.slots[c]
        .iter()
        .find(|(slot, _)| slot == "body")
        .and_then(|(_, l)| l.first().copied())
    else {
        return false;
    };
    // Every effective position from the body's first activity up to `o` (a sequence: up to its
    // last activity), but `o` and its ancestors (O(depth) with the tree's prefix counts: a long
    // body costs nothing more).
    let ancestors = std::iter::successors(Some(o), |&x| t.parent(x))
        .take_while(|&x| x >= first)
        .filter(|&x| t.effective[x])
        .count();
    // (A `<sequence>` only: its activities run one after the other, so its last one is the
    // last it runs; a branch's or a loop's last position is not.)
    let last = t.end(o);
    let end = match t.element(o) {
        "sequence" if last > o && t.effective[last] => last,
        "sequence" => last + 1,
        _ => o + 1,
    };
    t.effective_in(first..end) > ancestors
}

/// Does scope `c` have a `<catch>`/`<catchall>`, so a fault in its body may end in a handler
/// and the thread go on past the scope?
pub(super) fn recovers(t: &Tree, c: usize) -> bool {
    t.slots[c]
        .iter()
        .filter(|(slot, _)| slot == "faulthandlers")
        .flat_map(|(_, l)| l.iter())
        .any(|&h| t.effective[h] && matches!(t.element(h), "catch" | "catchall"))
}

/// Does every path through the old `<if>`/`<switch>` `c` run a copy of the new activity `n`
/// (its counterpart `o`, or its place in a copy merged into `n` or into an ancestor of it,
/// at the same offset): a branch for every outcome (`<false>`, `<default>`), each holding
/// one?
fn copies_on_every_path(a: &Analysis, c: usize, o: usize, n: usize) -> bool {
    let (to, tn) = (&a.old, &a.new);
    let copies: Vec<usize> = std::iter::once(o)
        .chain(
            a.m.merged
                .iter()
                .filter(|&&(_, x)| x <= n && n <= tn.end(x))
                .map(|&(k, x)| k + (n - x)),
        )
        .collect();
    if copies.len() < 2 {
        return false;
    }
    let slots = &to.slots[c];
    let every_outcome = match to.element(c) {
        "if" => ["true", "false"]
            .iter()
            .all(|b| slots.iter().any(|(s, _)| s == b)),
        "switch" => slots.iter().any(|(s, _)| s == "default"),
        _ => false,
    };
    every_outcome
        && slots.iter().all(|(_, l)| {
            l.iter()
                .any(|&k| copies.iter().any(|&x| k <= x && x <= to.end(k)))
        })
}

/// Do the old branch `os` of the old `<if>`/`<switch>` `o` and the new branch `ns` of its
/// counterpart correspond?
pub(super) fn same_branch(a: &Analysis, o: usize, os: &str, ns: &str) -> bool {
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

/// A new `<sync>` (no activity the old version generated became it) and, for each call it
/// lists, the old wait that received that call's answer: the old counterpart of the call it
/// collects (the nearest earlier call of that name in its list) when that one was synchronous
/// (spec 3.4.4a: a synchronous call compiles as a sync on it alone), or else the first old
/// `<sync>` after it in its list that lists it. A thread that passed those waits with the
/// answers finds nothing pending at the sync (spec 3.4.4a: `cur -> C`), so the sync is neither
/// new to it nor skipped by it.
pub(crate) struct Awaited {
    pub sync: usize,
    /// `type="any"`: one answer completes it; otherwise it waits for every call it lists.
    any: bool,
    /// For each call it lists: its old wait (position), and whether a thread past that wait
    /// surely has the answer — false for a `<sync>` or synchronous `<call>` with a `timeout`,
    /// or a `<sync>` of `type="any"` with other calls, which may have let the thread go on
    /// without it.
    pub waits: Vec<Option<(usize, bool)>>,
}

impl Awaited {
    /// For a thread that passed the old waits `passed` says it passed: whether it has the
    /// answers the sync waits for (`Some(true)`), may have them (`Some(false)`: a wait it
    /// passed may have let it go on without one), or not (`None`).
    pub(crate) fn answered(&self, passed: impl Fn(usize) -> bool) -> Option<bool> {
        let got = self
            .waits
            .iter()
            .map(|w| w.filter(|&(o, _)| passed(o)).map(|(_, sure)| sure));
        if self.any {
            got.flatten().reduce(|x, y| x || y)
        } else {
            got.reduce(|x, y| Some(x? && y?)).flatten()
        }
    }
}

/// The [`Awaited`] of the new `<sync>` at `s`, when it is new and lists some call.
pub(crate) fn awaited(a: &Analysis, s: usize) -> Option<Awaited> {
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    if tn.element(s) != "sync" || !tn.effective[s] || m.n2o[s].is_some_and(|o| to.effective[o]) {
        return None;
    }
    let named = |t: &Tree, x: usize, name: &str| {
        t.element(x) == "call" && t.nodes[x].name.as_deref() == Some(name)
    };
    let wait_of = |name: &str| -> Option<(usize, bool)> {
        // The nearest earlier sibling of that name: backwards from the sync.
        let q = tn.parent(s)?;
        let (_, list) = tn.slots[q].iter().find(|(slot, _)| *slot == tn.slot[s])?;
        let call = *list[..tn.index[s] as usize]
            .iter()
            .rev()
            .find(|&&x| named(tn, x, name))?;
        let o = m.n2o[call].filter(|&o| to.effective[o] && named(to, o, name))?;
        if !is_async_call(to.nodes[o]) {
            // A synchronous call's `timeout` may let the thread go on without the answer.
            return Some((o, !to.nodes[o].attrs.contains_key("timeout")));
        }
        let sync = siblings(to, to.end(o) + 1, to.list_end(o))
            .find(|&x| to.effective[x] && to.sync_calls(x).any(|c| c == name))?;
        let n = to.nodes[sync];
        let any = n
            .attrs
            .get("type")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("any"));
        let sure =
            !n.attrs.contains_key("timeout") && (!any || to.sync_calls(sync).all(|c| c == name));
        Some((sync, sure))
    };
    let waits: Vec<Option<(usize, bool)>> = tn.sync_calls(s).map(wait_of).collect();
    if waits.is_empty() {
        return None;
    }
    let any = tn.nodes[s]
        .attrs
        .get("type")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("any"));
    Some(Awaited {
        sync: s,
        any,
        waits,
    })
}

/// The siblings from `from` (a position in a child list) whose subtrees start by `last`.
fn siblings<'t>(t: &'t Tree, from: usize, last: usize) -> impl Iterator<Item = usize> + 't {
    let next = move |&x: &usize| Some(t.end(x) + 1).filter(|&n| n <= last);
    std::iter::successors(Some(from).filter(|&f| f <= last), next)
}

/// Every new `<sync>`'s [`Awaited`], ascending by the sync.
pub(crate) fn awaited_syncs(a: &Analysis) -> Vec<Awaited> {
    (0..a.new.len()).filter_map(|s| awaited(a, s)).collect()
}

/// Ascending maximal runs of consecutive siblings, `(first, last)`: `first`, then each next
/// sibling (`end[p] + 1` in the same child list) up to `last`.
pub(super) type SiblingRuns = Vec<(usize, usize)>;

/// The number of activities in a run of siblings.
pub(super) fn run_len(t: &Tree, (first, last): (usize, usize)) -> usize {
    (t.index[last] - t.index[first]) as usize + 1
}

/// The activities of a run of siblings, in order.
pub(super) fn run_items<'t>(
    t: &'t Tree,
    (first, last): (usize, usize),
) -> impl Iterator<Item = usize> + 't {
    std::iter::successors(Some(first), move |&p| (p < last).then(|| t.end(p) + 1))
}

/// One resume point's walk over the new tree: the outermost activities whose whole
/// (generated) subtree a thread resting at `w` runs (its thread and the branches of the flows
/// in it, no foreign fault handler) and that ran before the old resume point (`ran`) or did
/// not (`!ran`), as sibling runs.
struct Walk<'w, 'a> {
    tn: &'w Tree<'a>,
    to: &'w Tree<'a>,
    align: &'w Alignment,
    w: usize,
    tr: usize,
    w_old: Option<usize>,
    old_before: &'w [(usize, usize)],
    ran: bool,
    out: &'w mut SiblingRuns,
    /// The runs before this index are not extended (the last of them stands alone).
    sealed: usize,
}

/// Whether a thread ran an activity's counterpart before its old resume point.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ran {
    No,
    /// Before it, on the path its data chose: an old conditional the new version no longer
    /// decides it by lay between ([`unkept_conditional`]).
    Maybe,
    Yes,
}

impl Walk<'_, '_> {
    /// Did the counterpart of `q` run before the old resume point? (For a new `<sync>` in the
    /// skip walk: did the old waits it stands for, with every answer it waits for.) One that
    /// ran only if a conditional the new version no longer has decided so, for a thread not
    /// inside that conditional, may have run.
    fn ran_before(&self, q: usize) -> Ran {
        let before = match self.align.old[q] {
            Some(o) => self.passed(o),
            None if !self.ran => {
                let w = &self.align.waited;
                w.binary_search_by_key(&q, |x| x.sync)
                    .is_ok_and(|k| w[k].answered(|o| self.passed(o)) == Some(true))
            }
            None => false,
        };
        match (before, self.w_old, self.align.unkept[q]) {
            (false, _, _) => Ran::No,
            (true, Some(wo), Some(c)) if !self.to.is_desc(wo, c) => Ran::Maybe,
            (true, _, _) => Ran::Yes,
        }
    }

    /// Did the old activity at `o` run before the old resume point?
    fn passed(&self, o: usize) -> bool {
        in_ranges(self.old_before, o)
    }

    /// Does an activity that ran so qualify? One that may have run qualifies both ways (it
    /// may be skipped, it may run again).
    fn qualifies(&self, ran: Ran) -> bool {
        match ran {
            Ran::No => !self.ran,
            Ran::Maybe => true,
            Ran::Yes => self.ran,
        }
    }

    /// Appends a run, extending the last one when `first` follows it; one that may have run
    /// (`alone`) is a run of its own, neither extended nor extending: whether it is data-
    /// dependent is asked of each run's first activity.
    fn push(&mut self, first: usize, last: usize, alone: bool) {
        let t = self.tn;
        if !alone && self.out.len() > self.sealed {
            if let Some(x) = self.out.last_mut() {
                if t.end(x.1) + 1 == first && t.list_first(x.1) == t.list_first(first) {
                    x.1 = last;
                    return;
                }
            }
        }
        self.out.push((first, last));
        if alone {
            self.sealed = self.out.len();
        }
    }

    /// The subtree at `p`; whether all of it qualifies the same way (then it is reported as
    /// one, and its parent may be).
    fn walk(&mut self, p: usize) -> bool {
        let t = self.tn;
        // Another thread, a disabled activity or a foreign fault handler: none of it runs.
        if !runs_in_thread(t, p, self.tr) || !t.effective[p] || in_foreign_handler(t, p, self.w) {
            return false;
        }
        let (mark, sealed) = (self.out.len(), self.sealed);
        let mut all = true;
        for (_, l) in &t.slots[p] {
            if let (Some(&first), Some(&last)) = (l.first(), l.last()) {
                all &= self.siblings(first, t.end(last));
            }
        }
        let ran = self.ran_before(p);
        if !(all && self.qualifies(ran)) {
            return false;
        }
        self.out.truncate(mark);
        self.sealed = sealed;
        self.push(p, p, ran == Ran::Maybe);
        // A parent of one that may have run is not reported whole: that would make the parent
        // data-dependent, or this one certain — unless the same old conditional decided the
        // parent (a call and its response): then the parent is, whole.
        ran != Ran::Maybe
            || t.parent(p).is_some_and(|par| {
                self.align.unkept[par].is_some()
                    && self.align.unkept[par] == self.align.unkept[p]
                    && self.ran_before(par) == Ran::Maybe
            })
    }

    /// The siblings from `c` whose subtrees end by `bound`; whether every generated one
    /// qualifies whole.
    fn siblings(&mut self, mut c: usize, bound: usize) -> bool {
        let (t, align) = (self.tn, self.align);
        let mut all = true;
        while c <= bound {
            if let Some((b, i)) = align.block_of[c] {
                let members = &align.blocks[b][i..];
                let k = members.partition_point(|&x| x <= bound);
                all &= self.block(&members[..k]);
                c = t.end(members[k - 1]) + 1;
            } else {
                all &= self.walk(c) || !t.effective[c];
                c = t.end(c) + 1;
            }
        }
        all
    }

    /// Consecutive members of a block; whether all of them qualify.
    fn block(&mut self, b: &[usize]) -> bool {
        let (t, to) = (self.tn, self.to);
        let Some(&first) = b.first() else {
            return true;
        };
        let lo = |x: usize| self.align.old[x].unwrap_or(0);
        let ascending = b.len() < 2 || lo(b[0]) < lo(b[1]);
        // The one whose old subtree holds the old resume point is walked on its own.
        if let Some(wo) = self.w_old {
            let k = if ascending {
                b.partition_point(|&x| to.end(lo(x)) < wo)
            } else {
                b.partition_point(|&x| lo(x) > wo)
            };
            if let Some(&x) = b.get(k) {
                if lo(x) <= wo && wo <= to.end(lo(x)) {
                    let before = self.block(&b[..k]);
                    let at = self.walk(x);
                    let after = self.block(&b[k + 1..]);
                    return before && at && after;
                }
            }
        }
        if !runs_in_thread(t, first, self.tr) || in_foreign_handler(t, first, self.w) {
            return false;
        }
        // Stretches whose old positions lie in one range of `old_before`, or between two.
        let mut all = true;
        let mut k = 0;
        while k < b.len() {
            let o = lo(b[k]);
            let r = self.old_before.partition_point(|&(_, e)| e < o);
            let (inside, from, to_) = match self.old_before.get(r) {
                Some(&(s, e)) if s <= o => (true, s, e),
                next => (
                    false,
                    r.checked_sub(1).map_or(0, |q| self.old_before[q].1 + 1),
                    next.map_or(usize::MAX, |&(s, _)| s - 1),
                ),
            };
            let len = b[k..].partition_point(|&x| (from..=to_).contains(&lo(x)));
            let (head, tail) = (b[k], b[k + len - 1]);
            let unkept = |x: usize| self.align.unkept_before[x];
            let some_unkept = inside
                && unkept(tail) + u32::from(self.align.unkept[tail].is_some()) > unkept(head);
            if some_unkept {
                // Some of them may not have run (an old conditional decided): each on its own.
                for &x in &b[k..k + len] {
                    all &= self.walk(x);
                }
            } else if inside != self.ran {
                all = false;
            } else if b[k..k + len].iter().all(|&x| self.align.pure[x]) {
                self.push(head, tail, false);
            } else {
                // Each qualifies but for the fault handlers inside it: what is outside them.
                for &x in &b[k..k + len] {
                    all &= self.walk(x);
                }
            }
            k += len;
        }
        all
    }
}

/// Does `o` lie in one of the ascending disjoint inclusive `ranges`?
fn in_ranges(ranges: &[(usize, usize)], o: usize) -> bool {
    let k = ranges.partition_point(|&(_, e)| e < o);
    ranges.get(k).is_some_and(|&(s, _)| s <= o)
}

/// What a thread resting at a resume point skips or runs again, with its indexes and buffers
/// made once for every resume point.
pub(super) struct Moved<'x, 'a> {
    a: &'x Analysis<'a>,
    align: Alignment,
    new_before: Vec<(usize, usize)>,
    new_after: Vec<(usize, usize)>,
    old_before: Vec<(usize, usize)>,
    old_after: Vec<(usize, usize)>,
}

impl<'x, 'a> Moved<'x, 'a> {
    pub(super) fn new(a: &'x Analysis<'a>) -> Moved<'x, 'a> {
        Moved {
            a,
            align: Alignment::new(a),
            new_before: Vec::new(),
            new_after: Vec::new(),
            old_before: Vec::new(),
            old_after: Vec::new(),
        }
    }

    /// Did the old activity at `o` run before the old resume point of the last [`compute`]
    /// (as the walk counts it: a call the thread rests at was sent)?
    ///
    /// [`compute`]: Moved::compute
    pub(super) fn passed(&self, o: usize) -> bool {
        in_ranges(&self.old_before, o)
    }

    /// For a thread resting at `w` (new) that rested at `w_old` (old), the activities it runs
    /// (generated, its thread and the branches of its flows, no foreign fault handler) that
    /// are skipped — before `w` in the new version but not before `w_old` in the old one (or
    /// new) — into `sk`, and those run
    /// again — after `w` now but before `w_old` then — into `re`: the outermost ones whose
    /// whole subtree qualifies (a new `<if>` wrapped around activities that ran already is
    /// not itself "skipped"; a new `<if>` with new contents is reported as one), as sibling
    /// runs in ascending order.
    pub(super) fn compute(
        &mut self,
        w: usize,
        w_old: Option<usize>,
        enters: Option<&str>,
        sk: &mut SiblingRuns,
        re: &mut SiblingRuns,
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
                .filter_map(|(_, l)| Some((*l.first()?, tn.end(*l.last()?))))
                .collect();
            self.new_after.splice(0..0, inner);
        }
        match w_old {
            Some(wo) => {
                to.order_ranges(wo, &mut self.old_before, &mut self.old_after);
                if sent_before_resting(to, wo) {
                    // Its request ranges lie inside it: the whole call replaces them.
                    self.old_before.retain(|&(s, _)| s < wo);
                    let (m, old_before) = (&self.a.m, &mut self.old_before);
                    let wn = m.state_counterpart(to, wo);
                    push_sent_call(to, tn, wn, wo, |p| m.state_counterpart(to, p), old_before);
                    // A copy merged into a call paired with another copy (`MatchVia::Merged`):
                    // what it sent is what that copy would have, the new call's counterpart.
                    if let Some(first) = wn.and_then(|n| m.n2o[n]).filter(|&o| o != wo) {
                        old_before.push((first, to.end(first)));
                        old_before.sort_unstable();
                    }
                }
            }
            None => self.old_before.clear(),
        }
        let tr = tn.thread_root(w);
        sk.clear();
        re.clear();
        for (ranges, ran, out) in [
            (&self.new_before, false, &mut *sk),
            (&self.new_after, true, &mut *re),
        ] {
            let mut walk = Walk {
                tn,
                to,
                align: &self.align,
                w,
                tr,
                w_old,
                old_before: &self.old_before,
                ran,
                out,
                sealed: 0,
            };
            // A range (whole sibling subtrees of one list) lies wholly inside the thread's
            // subtree or wholly outside it.
            for &(s, e) in ranges.iter().filter(|&&(s, e)| s >= tr && e <= tn.end(tr)) {
                walk.siblings(s, e);
            }
        }
        if let Some(wo) = w_old {
            same_request_sent(to, wo, tn, w, sk);
        }
    }
}

/// A thread resting at old call `wo` and resumed at the wait of new call `w` has sent its
/// call: what `w`'s `<request>` runs identically to `wo`'s (the same assign, the same
/// transform) built that request too, so it is not skipped (another call's request that the
/// matching does not pair with `wo`'s, e.g. a copy merged into it or the wait a `[[map]]`
/// chose). Whatever differs stays skipped.
fn same_request_sent(to: &Tree, wo: usize, tn: &Tree, w: usize, sk: &mut SiblingRuns) {
    if to.element(wo) != "call" || tn.element(w) != "call" {
        return;
    }
    let request = |t: &Tree, c: usize| -> Vec<usize> {
        t.slots[c]
            .iter()
            .filter(|(name, _)| &**name == "request")
            .flat_map(|(_, l)| l.iter().copied())
            .collect()
    };
    let mut sent: Vec<_> = request(to, wo).into_iter().map(|p| to.hash[p]).collect();
    if sent.is_empty() {
        return;
    }
    let mut out: SiblingRuns = Vec::with_capacity(sk.len());
    for &run in sk.iter() {
        let mut open: Option<(usize, usize)> = None;
        for p in run_items(tn, run) {
            // Each old request item accounts for one new one.
            let k = (tn.parent(p) == Some(w) && &*tn.slot[p] == "request")
                .then(|| sent.iter().position(|h| *h == tn.hash[p]))
                .flatten();
            if let Some(k) = k {
                sent.swap_remove(k);
                out.extend(open.take());
            } else {
                open = Some(open.map_or((p, p), |(f, _)| (f, p)));
            }
        }
        out.extend(open);
    }
    *sk = out;
}

/// A thread resting at a state of the (old) call at `wo` has sent that call: the call — its
/// request, and its response, which runs when the answer arrives whatever state the thread is
/// mapped to — counts as run before the resume point. It matters when the call's wait moves
/// to another activity (a `<sync>` after the call made asynchronous, an override): the call
/// is then not "skipped", and mapped before it, it runs again.
fn sent_before_resting(to: &Tree, wo: usize) -> bool {
    to.element(wo) == "call"
}

/// Pushes onto `before` (ascending ranges of old positions) the old call at `wo` that a thread
/// resting at it has sent, as run: its request, and of its `<response>` what the answer still
/// runs, the activities whose new counterparts lie in the `<response>` of the call's new
/// counterpart `wn` (the response handler that runs is the new version's). An activity moved
/// out of the response has not run for that thread and never runs in the handler: before the
/// new resume point it is skipped, after it it runs once (not again).
fn push_sent_call(
    to: &Tree,
    tn: &Tree,
    wn: Option<usize>,
    wo: usize,
    o2n: impl Fn(usize) -> Option<usize>,
    before: &mut Vec<(usize, usize)>,
) {
    let response = |t: &Tree, c: usize| {
        t.slots[c]
            .iter()
            .find(|(name, _)| &**name == "response")
            .and_then(|(_, l)| Some((*l.first()?, t.end(*l.last()?))))
    };
    let (Some(wn), Some((rs, re))) = (wn, response(to, wo)) else {
        // No counterpart: the call is the mapping's concern (a removed call's rows drain).
        before.push((wo, to.end(wo)));
        return;
    };
    let kept = response(tn, wn);
    let runs = |o: usize| o2n(o).is_some_and(|n| kept.is_some_and(|(s, e)| (s..=e).contains(&n)));
    let mut push = |p: usize| match before.last_mut() {
        Some((_, e)) if *e + 1 == p => *e = p,
        _ => before.push((p, p)),
    };
    for p in wo..=to.end(wo) {
        if !(rs..=re).contains(&p) || runs(p) {
            push(p);
        }
    }
}

/// What a thread resumed at `r` skips (never ran, and the new version runs before that
/// point): the outermost such activities (new positions).
pub(crate) fn skips(a: &Analysis, r: &Resume) -> Vec<usize> {
    let mut moved = Moved::new(a);
    let (mut sk, mut re) = (Vec::new(), Vec::new());
    moved.compute(r.w_new, r.w_old, r.enters.as_deref(), &mut sk, &mut re);
    sk.into_iter()
        .flat_map(|run| run_items(&a.new, run))
        .collect()
}

/// What a thread resumed at `r` runs again: the outermost such activities (new positions).
pub(crate) fn reruns(a: &Analysis, r: &Resume) -> Vec<usize> {
    let mut moved = Moved::new(a);
    let (mut sk, mut re) = (Vec::new(), Vec::new());
    moved.compute(r.w_new, r.w_old, r.enters.as_deref(), &mut sk, &mut re);
    re.into_iter()
        .flat_map(|run| run_items(&a.new, run))
        .collect()
}

/// A run-length encoded ascending list of `(position, may)`: `(first, last, may)` stands for
/// `first`, then each next position right after the previous one's subtree (`end[p] + 1`)
/// up to `last`. Runs are maximal, so equal lists have equal encodings; the order is the
/// lexicographic order of the decoded lists, computed run by run.
pub(super) struct Runs<'t> {
    pub runs: Vec<(usize, usize, bool)>,
    /// Each position's last descendant, as the tree stores it (`Tree::ends`).
    pub end: &'t [u32],
}

impl Runs<'_> {
    fn end(&self, p: usize) -> usize {
        self.end[p] as usize
    }
}

#[cfg(test)]
impl<'t> Runs<'t> {
    /// Encodes ascending positions that do not hold one another.
    fn encode(end: &'t [u32], items: impl IntoIterator<Item = (usize, bool)>) -> Runs<'t> {
        let mut runs: Vec<(usize, usize, bool)> = Vec::new();
        for (p, may) in items {
            match runs.last_mut() {
                Some((_, last, m)) if *m == may && end[*last] as usize + 1 == p => *last = p,
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
                p = self.end(p) + 1;
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
                        Some(self.end(stop) + 1)
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

/// How a reviewer finds an activity: its label, or for an unnamed one inside a call's
/// `<request>`/`<response>`, through its call (`call "Credit" response assign #1`).
pub(crate) fn act_label(t: &Tree, p: usize) -> String {
    let node = t.nodes[p];
    if node.name.is_none() && t.in_message[p] {
        if let Some(c) = t.ancestors(p).find(|&q| t.element(q) == "call") {
            let mut x = p;
            while t.parent(x) != Some(c) {
                x = t.parent(x).unwrap_or(c);
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
    // An unnamed `<compensate>` by the handler it runs (`compensate "Refund"`), with its
    // position when another one runs the same handler.
    if let (None, ActivityKind::Compensate { target }) = (&node.name, &node.kind) {
        let twin = t.nodes.iter().enumerate().any(|(q, n)| {
            q != p && matches!(&n.kind, ActivityKind::Compensate { target: o } if o == target)
        });
        return if twin {
            format!("compensate {target:?}@{}", node.pos)
        } else {
            format!("compensate {target:?}")
        };
    }
    t.label(p)
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
pub(super) enum Access {
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
pub(super) struct Dataflow<'x, 'a> {
    pub t: &'x Tree<'a>,
    pub needle: String,
}

impl Dataflow<'_, '_> {
    pub(super) fn own(&self, p: usize) -> Access {
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
                (node.element.as_str(), k),
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
        // A `<switch>` reads its cases' conditions (they are no activities of their own).
        if let ActivityKind::Switch { cases, .. } = &node.kind {
            read |= cases
                .iter()
                .filter_map(|c| c.condition.as_deref())
                .any(|c| mentions_needle(c, &self.needle));
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

    /// A `<foreach>` whose key is the property.
    pub(super) fn is_key(&self, p: usize) -> bool {
        self.t.element(p) == "foreach"
            && self.t.nodes[p]
                .attrs
                .get("key")
                .is_some_and(|k| k.trim() == self.needle)
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
            "foreach" if self.is_key(p) => {
                // Entering it resets its key before its test reads it (spec 3.4.8): a write,
                // unless its collection reads the property first.
                let node = t.nodes[p];
                match node.attrs.get("property") {
                    Some(v) if mentions_needle(v, &self.needle) => Access::Read,
                    _ => Access::Write,
                }
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
    pub(super) fn after_resume(&self, w: usize, join: bool) -> Access {
        let t = self.t;
        if !join {
            let first = match t.element(w) {
                "call" => self
                    .slot(w, "response")
                    .map_or(Access::Neither, |l| self.list(l)),
                "sync" => {
                    let calls: Vec<&str> = t.sync_calls(w).collect();
                    let tr = t.thread_root(w);
                    let paths: Vec<Access> = (0..t.len())
                        .filter(|&p| {
                            t.element(p) == "call"
                                && t.effective[p]
                                && t.thread_root(p) == tr
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
        while let Some(l) = t.parent(x) {
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
            if t.element(l) == "foreach" && self.is_key(l) {
                // The next iteration's test reads the key the thread holds (not reset).
                return Access::Read;
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

/// The activities of a call's `<response>` (a call gets a response handler only when there
/// are some, spec 5.1).
/// Did the `<response>` code of call `o` (old) and call `n` (new) change?
pub(crate) fn response_body_changed(to: &Tree, o: usize, tn: &Tree, n: usize) -> bool {
    let hash = |t: &Tree, l: &[usize]| l.iter().map(|&p| t.hash[p]).collect::<Vec<_>>();
    hash(to, &response_handler(to, o)) != hash(tn, &response_handler(tn, n))
}

pub(super) fn response_handler(t: &Tree, p: usize) -> Vec<usize> {
    t.slots[p]
        .iter()
        .find(|(s, _)| s == "response")
        .map(|(_, l)| l.clone())
        .unwrap_or_default()
}

/// Is `name` awaited in the new version: a synchronous call of that name, or a `<sync>`
/// listing it?
pub(crate) fn awaited_in_new(tn: &Tree, name: &str) -> bool {
    (0..tn.len()).any(|p| tn.effective[p] && awaited_names(tn, p).contains(&name))
}

/// The call names the activity at `p` waits on: a synchronous call's own name, a `<sync>`'s
/// list; none for anything else.
pub(crate) fn awaited_names<'a>(t: &Tree<'a>, p: usize) -> Vec<&'a str> {
    let node = t.nodes[p];
    match node.element.as_str() {
        "call" if !is_async_call(node) => node.name.as_deref().into_iter().collect(),
        "sync" => t.sync_calls(p).collect(),
        _ => Vec::new(),
    }
}

/// A `<call async="1">` (or `"true"`).
pub(crate) fn is_async_call(node: &crate::bpl::Activity) -> bool {
    matches!(node.attrs.get("async"), Some("1" | "true"))
}

/// The activities (positions in a tree) that own a state, a thread or a response handler, as
/// counts per prefix of the tree's pre-order: whether a subtree holds one is two reads.
pub(crate) struct Owners {
    /// `before[p]`: how many owners lie at positions `< p` (`t.len() + 1` entries).
    before: Vec<u32>,
}

impl Owners {
    /// Does `p` own something?
    pub(crate) fn contains(&self, p: usize) -> bool {
        self.before[p + 1] > self.before[p]
    }
}

/// Positions (in `t`) of every activity that owns a state, a thread or a response handler.
pub(crate) fn owners(t: &Tree, c: &CompiledProcess) -> Owners {
    let mut owns = vec![false; t.len()];
    for th in &c.threads {
        if let Some(p) = t.pos(th.root.id) {
            owns[p] = true;
        }
        for st in &th.states {
            if let Some(p) = t.pos(st.activity.id) {
                owns[p] = true;
            }
        }
    }
    for h in &c.response_handlers {
        if let Some(p) = t.pos(h.activity.id) {
            owns[p] = true;
        }
    }
    let mut before = Vec::with_capacity(owns.len() + 1);
    let mut n = 0u32;
    before.push(0);
    for o in owns {
        n += u32::from(o);
        before.push(n);
    }
    Owners { before }
}

/// Does the subtree at `p` hold an owner?
pub(crate) fn subtree_owns(t: &Tree, owners: &Owners, p: usize) -> bool {
    owners.before[t.end(p) + 1] > owners.before[p]
}

#[cfg(test)]
mod tests {
    use super::{in_foreign_handler, mentions, Moved, Runs, SiblingRuns};
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
            let end32: Vec<u32> = end.iter().map(|&e| e as u32).collect();
            for a in &lists {
                let ka = Runs::encode(&end32, a.iter().copied());
                assert_eq!(&ka.decode(), a);
                for b in &lists {
                    let kb = Runs::encode(&end32, b.iter().copied());
                    assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} {b:?} {end:?}");
                    assert_eq!(ka == kb, a == b);
                }
            }
        }
    }

    /// The straightforward O(activities) scan per resume point `Moved` replaces: every
    /// qualifying activity, then the outermost ones as sibling runs.
    fn moved_by_scan(
        a: &crate::diff::Analysis,
        w: usize,
        w_old: Option<usize>,
    ) -> (SiblingRuns, SiblingRuns) {
        let (to, tn, m) = (&a.old, &a.new, &a.m);
        // In the `<response>` of call `c`.
        let in_response = |t: &crate::diff::tree::Tree, c: usize, x: usize| {
            t.slots[c].iter().any(|(name, l)| {
                &**name == "response" && l.iter().any(|&r| r == x || t.is_desc(x, r))
            })
        };
        // A copy merged into a call paired with another copy sent what that copy would have.
        let merged_first = w_old.and_then(|wo| {
            m.state_counterpart(to, wo)
                .and_then(|n| m.n2o[n])
                .filter(|&o| o != wo && super::sent_before_resting(to, wo))
        });
        let was_before = |n: usize| match (m.n2o[n], w_old) {
            (Some(o), Some(wo)) => {
                to.effective[o]
                    && (to.order(o, wo) == Order::Before
                        || (super::sent_before_resting(to, wo)
                            && (o == wo || to.is_desc(o, wo))
                            // What the answer no longer runs (moved out of the response).
                            && (!in_response(to, wo, o)
                                || m
                                    .state_counterpart(to, wo)
                                    .is_none_or(|wn| in_response(tn, wn, n))))
                        || merged_first.is_some_and(|f| o == f || to.is_desc(o, f)))
            }
            _ => false,
        };
        // Before the old resume point on some paths only: an old conditional the new version
        // no longer decides it by, outside the old resume point.
        let maybe = |n: usize| {
            was_before(n)
                && w_old.is_some_and(|wo| {
                    super::unkept_conditional(a, n).is_some_and(|c| !to.is_desc(wo, c))
                })
        };
        let (mut sk, mut re) = (Vec::new(), Vec::new());
        for n in 0..tn.len() {
            if !tn.effective[n]
                || !super::runs_in_thread(tn, n, tn.thread_root(w))
                || in_foreign_handler(tn, n, w)
            {
                continue;
            }
            // A new `<sync>` whose answers the old waits it passed had ran where they did.
            let waited = || {
                super::awaited(a, n).is_some_and(|aw| {
                    aw.answered(|o| {
                        w_old.is_some_and(|wo| {
                            to.effective[o]
                                && (to.order(o, wo) == Order::Before
                                    || (super::sent_before_resting(to, wo) && o == wo)
                                    || merged_first == Some(o))
                        })
                    }) == Some(true)
                })
            };
            match tn.order(n, w) {
                Order::Before if (!was_before(n) || maybe(n)) && !waited() => sk.push(n),
                Order::After if was_before(n) => re.push(n),
                _ => {}
            }
        }
        // The outermost whole ones; one that may have run stands for itself, not for its
        // parent, in a run of its own.
        let runs = |set: &[usize]| {
            let mut full = vec![false; tn.len()];
            let mut whole = vec![false; tn.len()];
            for &p in set.iter().rev() {
                whole[p] = tn.slots[p]
                    .iter()
                    .flat_map(|(_, l)| l.iter())
                    .all(|&c| full[c] || !tn.effective[c]);
                // Unless the same old conditional decided its parent too (a call and its
                // response): the parent stands for it.
                let parent_too = tn.parent(p).is_some_and(|par| {
                    let u = super::unkept_conditional(a, par);
                    u.is_some() && u == super::unkept_conditional(a, p) && maybe(par)
                });
                full[p] = whole[p] && (!maybe(p) || parent_too);
            }
            let mut out: SiblingRuns = Vec::new();
            let mut covered_to: Option<usize> = None;
            for &p in set {
                if !whole[p] || covered_to.is_some_and(|e| p <= e) {
                    continue;
                }
                covered_to = Some(tn.end(p));
                match out.last_mut() {
                    Some(x)
                        if tn.end(x.1) + 1 == p
                            && tn.list_first(x.1) == tn.list_first(p)
                            && !maybe(x.1)
                            && !maybe(p) =>
                    {
                        x.1 = p
                    }
                    _ => out.push((p, p)),
                }
            }
            out
        };
        let mut sk = runs(&sk);
        // The post-step of `compute` (not part of the walk this scan checks).
        if let Some(wo) = w_old {
            super::same_request_sent(to, wo, tn, w, &mut sk);
        }
        (sk, runs(&re))
    }

    /// Pairs whose siblings moved whole: reversed, a stretch moved up, one moved into
    /// another, each with nested contents (so the walk uses blocks and walks into them),
    /// among them scopes with fault handlers and flows.
    fn moved_siblings(dir: &Path) -> Vec<(std::path::PathBuf, std::path::PathBuf)> {
        let call = |i: usize| {
            let c = |n: String| {
                format!("<call name='{n}' target='T' async='0'><request type='Ens.Request'><assign property='callrequest.X' value='{i}'/></request></call>")
            };
            match i % 4 {
                1 => format!("<scope name='S{i}'>{}<faulthandlers><catchall>{}</catchall></faulthandlers></scope>", c(format!("C{i}")), c(format!("F{i}"))),
                2 => format!("<flow name='W{i}'><sequence>{}</sequence><sequence>{}</sequence></flow>", c(format!("C{i}")), c(format!("B{i}"))),
                _ => c(format!("C{i}")),
            }
        };
        let seq = |inner: &str| format!("<sequence name='Q'>{inner}</sequence>");
        let doc = |body: String| {
            format!("<process request='Ens.Request' response='Ens.Response'>\n<context><property name='X' type='%String'/></context>\n<sequence>\n{body}\n</sequence>\n</process>\n")
        };
        let all = |v: &[usize]| v.iter().map(|&i| call(i)).collect::<String>();
        let order: Vec<usize> = (0..12).collect();
        let rev: Vec<usize> = (0..12).rev().collect();
        let moved_up: Vec<usize> = (6..10).chain(0..6).chain(10..12).collect();
        let versions = [
            doc(all(&order)),
            doc(all(&rev)),
            doc(all(&moved_up)),
            // Siblings moved into a new sequence (and out of it), some reversed.
            doc(format!(
                "{}{}{}",
                all(&[0, 1]),
                seq(&all(&[5, 4, 3, 2])),
                all(&(6..12).collect::<Vec<_>>())
            )),
            doc(format!(
                "{}{}",
                seq(&all(&[11, 10, 9])),
                all(&(0..9).collect::<Vec<_>>())
            )),
        ];
        let paths: Vec<_> = versions
            .iter()
            .enumerate()
            .map(|(i, text)| {
                let p = dir.join(format!("v{i}.xml"));
                std::fs::write(&p, text).unwrap();
                p
            })
            .collect();
        let mut pairs = Vec::new();
        for a in &paths {
            for b in &paths {
                if a != b {
                    pairs.push((a.clone(), b.clone()));
                }
            }
        }
        pairs
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
        let tmp = tempfile::tempdir().unwrap();
        pairs.extend(moved_siblings(tmp.path()));
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

    /// A row waiting inside a compensation handler continues at the `<compensate>` that ran
    /// it: with two callers, each old `%SubroutineStack` value is its own return point, and
    /// only the one whose continuation changed is reported.
    #[test]
    fn rows_in_a_handler_with_two_callers_skip_what_follows_each_return() {
        let tmp = tempfile::tempdir().unwrap();
        let call = |name: &str| {
            format!("<call name='{name}' target='T' async='0'><request type='Ens.Request'/></call>")
        };
        let doc = |freeze: &str| {
            format!(
                "<process request='Ens.Request' response='Ens.Response'>\n<context></context>\n<sequence>\n<scope name='Txn'>{}<compensationhandlers><compensationhandler name='Undo'>{}</compensationhandler></compensationhandlers><faulthandlers><catch fault='\"T\"'><compensate target='Undo'/>{}</catch><catchall>{freeze}<compensate target='Undo'/>{}</catchall></faulthandlers></scope>\n</sequence>\n</process>\n",
                call("Book"),
                call("Cancel"),
                call("Tell"),
                call("Report")
            )
        };
        let (po, pn) = (tmp.path().join("old.xml"), tmp.path().join("new.xml"));
        std::fs::write(&po, doc("")).unwrap();
        std::fs::write(&pn, doc(&call("Freeze"))).unwrap();
        let opts = LoadOptions::default();
        let (o, n) = (
            load(&po.to_string_lossy(), &opts).unwrap(),
            load(&pn.to_string_lossy(), &opts).unwrap(),
        );
        let (oc, nc) = (
            compile(&o, Compiler::Current).unwrap(),
            compile(&n, Compiler::Current).unwrap(),
        );
        let cancel = oc.threads[0]
            .states
            .iter()
            .find(|s| s.wait && s.activity.label() == "call \"Cancel\"")
            .unwrap();
        assert_eq!(cancel.subroutine_stack_alternatives().len(), 2);
        let plan = crate::plan::build(&o, &n, &oc, &nc, None).unwrap();
        let at_cancel = format!(
            "Thread1:{} (once its compensation handler returns",
            cancel.name
        );
        let about: Vec<&str> = plan
            .findings
            .iter()
            .map(|f| f.message.as_str())
            .filter(|m| m.contains(&at_cancel))
            .collect();
        // The catchall's return point now has Freeze before it; the catch's is unchanged.
        assert_eq!(about.len(), 1, "{about:#?}");
        assert!(
            about[0].contains("will skip 1 activity: call \"Freeze\""),
            "{}",
            about[0]
        );
        assert!(
            about[0].contains("returns to compensate \"Undo\"@"),
            "{}",
            about[0]
        );
    }

    /// A row resting at a call's wait, resumed at another call's wait (a suggested `[[map]]`
    /// across a tie), sent its request: what the new call's `<request>` runs identically is
    /// not "skipped"; an assign the new request adds is.
    #[test]
    fn a_sent_request_is_not_skipped_at_another_calls_wait() {
        let tmp = tempfile::tempdir().unwrap();
        let notify = |extra: &str| {
            format!("<call name='Notify' target='N' async='0'><request type='Ens.Request'><assign property='callrequest.A' value='1'/>{extra}</request></call>")
        };
        let doc = |t: &str, f: &str, after: &str| {
            format!(
                "<process request='Ens.Request' response='Ens.Response'>\n<context></context>\n<sequence>\n<if name='C' condition='1'><true>{t}</true><false>{f}</false></if>{after}<trace value='\"done\"'/>\n</sequence>\n</process>\n"
            )
        };
        let audit = "<call name='Audit' target='A' async='0'><request type='Ens.Request'/></call>";
        let extra = "<assign property='callrequest.B' value='2'/>";
        for (added, want) in [("", vec![]), (extra, vec!["request assign #2"])] {
            let (po, pn) = (tmp.path().join("old.xml"), tmp.path().join("new.xml"));
            // Two copies, one of them followed by Audit: a tie, nothing pairs them.
            std::fs::write(&po, doc(&notify(""), &format!("{}{audit}", notify("")), "")).unwrap();
            std::fs::write(&pn, doc("", audit, &notify(added))).unwrap();
            let opts = LoadOptions::default();
            let (o, n) = (
                load(&po.to_string_lossy(), &opts).unwrap(),
                load(&pn.to_string_lossy(), &opts).unwrap(),
            );
            let (oc, nc) = (
                compile(&o, Compiler::Current).unwrap(),
                compile(&n, Compiler::Current).unwrap(),
            );
            let a = crate::diff::analyze(&o, &n, &oc, &nc, &[], &Default::default()).unwrap();
            let wo = (0..a.old.len())
                .find(|&p| {
                    a.old.element(p) == "call" && a.old.nodes[p].name.as_deref() == Some("Notify")
                })
                .unwrap();
            let w = (0..a.new.len())
                .find(|&p| {
                    a.new.element(p) == "call" && a.new.nodes[p].name.as_deref() == Some("Notify")
                })
                .unwrap();
            assert_eq!(a.m.o2n[wo], None, "a tie, not a merge");
            let r = super::Resume {
                old_ref: String::new(),
                new_ref: String::new(),
                w_old: Some(wo),
                w_new: w,
                join: false,
                enters: None,
                within: None,
                returns: false,
            };
            let skipped: Vec<String> = super::skips(&a, &r)
                .into_iter()
                .filter(|&p| a.new.is_desc(p, w))
                .map(|p| super::act_label(&a.new, p))
                .collect();
            let want: Vec<String> = want
                .iter()
                .map(|x| format!("call \"Notify\" {x}"))
                .collect();
            assert_eq!(skipped, want, "{added}");
        }
    }

    /// A skip of more than 10 activities names 10 in its message and its activity list, and
    /// carries the exact count for machines; a shorter one carries none.
    #[test]
    fn long_skips_name_ten_and_count_all() {
        let tmp = tempfile::tempdir().unwrap();
        let call = |i: usize| {
            format!("<call name='C{i}' target='T' async='0'><request type='Ens.Request'/></call>")
        };
        let doc = |order: Vec<usize>| {
            let body: String = order.into_iter().map(call).collect();
            format!("<process request='Ens.Request' response='Ens.Response'>\n<context></context>\n<sequence>\n{body}\n</sequence>\n</process>\n")
        };
        let (po, pn) = (tmp.path().join("old.xml"), tmp.path().join("new.xml"));
        std::fs::write(&po, doc((0..14).collect())).unwrap();
        std::fs::write(&pn, doc((0..14).rev().collect())).unwrap();
        let opts = LoadOptions::default();
        let (o, n) = (
            load(&po.to_string_lossy(), &opts).unwrap(),
            load(&pn.to_string_lossy(), &opts).unwrap(),
        );
        let (oc, nc) = (
            compile(&o, Compiler::Current).unwrap(),
            compile(&n, Compiler::Current).unwrap(),
        );
        let plan = crate::plan::build(&o, &n, &oc, &nc, None).unwrap();
        let skips: Vec<_> = plan
            .findings
            .iter()
            .filter(|f| f.code == crate::plan::findings::Code::SkippedActivities)
            .collect();
        // Resting at C0 (S2) skips the 13 calls the new version runs before it, at C1 12 ….
        assert_eq!(skips.len(), 13, "{skips:#?}");
        for f in &skips {
            let n: usize = f
                .message
                .split(" will skip ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let json = serde_json::to_value(f).unwrap();
            if n > 10 {
                assert_eq!(f.activity_count, Some(n), "{}", f.message);
                assert_eq!(f.new_activities.len(), 10);
                assert!(
                    f.message.contains(&format!(", and {} more (", n - 10)),
                    "{}",
                    f.message
                );
                assert_eq!(json["activity_count"], n);
            } else {
                assert_eq!(f.activity_count, None, "{}", f.message);
                assert_eq!(f.new_activities.len(), n);
                assert!(!f.message.contains(" more ("), "{}", f.message);
                assert!(json.get("activity_count").is_none());
            }
        }
        assert!(skips.iter().any(|f| f.activity_count == Some(13)));
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
