//! BPM03xx: how activities were matched — ambiguous, positional, limited matches, `disabled`
//! toggles, and arguments that look reversed.

use super::{Context, Findings, Scope};
use crate::diff::tree::Tree;
use crate::diff::{self, Analysis, MatchIssue};
use crate::plan::findings::{finding, Code, FindingExt};
use crate::plan::model::*;
use crate::plan::safety::{self, owners, sref, subtree_owns};
use crate::states::CompiledProcess;
use std::cell::OnceCell;
use std::collections::BTreeSet;

pub(super) fn run(cx: &Context, out: &mut Findings) {
    issues(cx, out);
    out.findings.extend(toggles(cx));
    arguments_reversed(cx, out);
}

fn issues(cx: &Context, out: &mut Findings) {
    let (to, tn) = (&cx.a.old, &cx.a.new);
    let (oo, no) = (safety::owners(to, cx.old_c), safety::owners(tn, cx.new_c));
    // (owner position, thread index, state index) of every old state, sorted; made on
    // first use.
    let by_owner: OnceCell<Vec<(usize, usize, usize)>> = OnceCell::new();
    let owned_states = |ids: &[crate::states::ActivityRef]| -> Vec<String> {
        let by_owner = by_owner.get_or_init(|| {
            let mut v = Vec::new();
            for (ti, t) in cx.old_c.threads.iter().enumerate() {
                for (si, s) in t.states.iter().enumerate() {
                    if let Some(q) = to.pos(s.activity.id) {
                        v.push((q, ti, si));
                    }
                }
            }
            v.sort_unstable();
            v
        });
        let mut v = Vec::new();
        for r in ids {
            let Some(p) = to.pos(r.id) else { continue };
            // Owned by `p` or a descendant: owners `p ..= end[p]`, in thread then state
            // order.
            let from = by_owner.partition_point(|&(q, _, _)| q < p);
            let upto = by_owner.partition_point(|&(q, _, _)| q <= to.end(p));
            let mut hits: Vec<(usize, usize)> = by_owner[from..upto]
                .iter()
                .map(|&(_, ti, si)| (ti, si))
                .collect();
            hits.sort_unstable();
            for (ti, si) in hits {
                let t = &cx.old_c.threads[ti];
                v.push(sref(&t.class, &t.states[si].name.to_string()));
            }
        }
        v
    };
    for issue in &cx.a.diff.issues {
        match issue {
            MatchIssue::Ambiguous {
                old,
                new,
                chosen,
                reason,
            } => {
                let owns = old.iter().any(|r| {
                    to.pos(r.id)
                        .is_some_and(|p| safety::subtree_owns(to, &oo, p))
                }) || new.iter().any(|r| {
                    tn.pos(r.id)
                        .is_some_and(|p| safety::subtree_owns(tn, &no, p))
                });
                let choice = match chosen {
                    Some((o, n)) => format!("; paired {} with {}", o.label(), n.label()),
                    None => String::new(),
                };
                let labels = |v: &[crate::states::ActivityRef]| {
                    v.iter().map(|r| r.label()).collect::<Vec<_>>().join(", ")
                };
                // More old copies than new ones: a pin pairs one of them, never two.
                let remedy = if chosen.is_none() && old.len() > new.len() {
                    "pin the right pair (a pin pairs one old activity with one new one); rows at the states of an old one left unpaired need a [[map]] each, and once every such state is mapped, this finding can be acknowledged ([[ack]] code = \"ambiguous-match\")"
                } else {
                    "pin the right pair"
                };
                let mut f = finding(
                    Code::AmbiguousMatch,
                    format!(
                        "{reason} (old: {}; new: {}){choice}; {remedy}",
                        labels(old),
                        labels(new)
                    ),
                )
                .states(owned_states(old))
                .old_acts(old.iter().cloned())
                .new_acts(new.iter().cloned());
                if !owns {
                    f = f.severity(Severity::Info);
                }
                out.findings.push(f);
            }
            MatchIssue::Positional { old, new } => {
                let owns = to.pos(old.id).is_some_and(|p| oo.contains(p));
                if owns {
                    out.findings.push(
                        finding(Code::PositionalMatch, format!("{} was matched to {} only by its position (its key attributes changed)", old.label(), new.label()))
                            .states(owned_states(std::slice::from_ref(old)))
                            .old_acts([old.clone()])
                            .new_acts([new.clone()]),
                    );
                }
            }
            MatchIssue::LimitHit {
                limit,
                fallback,
                at,
            } => {
                let place = at
                    .as_ref()
                    .map(|r| format!(" in {}", r.label()))
                    .unwrap_or_default();
                out.findings.push(
                    finding(
                        Code::MatcherLimit,
                        format!("{limit} reached{place}: {fallback}"),
                    )
                    .old_acts(at.iter().cloned()),
                );
            }
        }
    }
}

/// `disabled` toggles: a warning when the toggled subtree allocates anything.
fn toggles(cx: &Context) -> Vec<Finding> {
    let (a, old_c, new_c) = (cx.a, cx.old_c, cx.new_c);
    let (to, tn, m) = (&a.old, &a.new, &a.m);
    let (oo, no) = (owners(to, old_c), owners(tn, new_c));
    let mut out = Vec::new();
    for o in 0..to.len() {
        let Some(n) = m.o2n[o] else { continue };
        let (was, now) = (to.nodes[o].disabled, tn.nodes[n].disabled);
        if was == now {
            continue;
        }
        let verb = if now { "disabled" } else { "enabled" };
        let (sev, effect) = if tn.parent(n).is_some_and(|f| tn.element(f) == "flow") {
            flow_branch_toggled(a, old_c, o, new_c, n, now)
        } else if subtree_owns(to, &oo, o) || subtree_owns(tn, &no, n) {
            // Catches still allocate their dispatch state when disabled (spec 2.4), but
            // their contents do not: the owners inside tell.
            let (effect, them) = match (tn.element(n), now) {
                ("catch" | "catchall", false) => ("its dispatch state was allocated while it was disabled too (spec 2.4, exception 2), but what is inside it now allocates states, threads or response handlers", "them"),
                ("catch" | "catchall", true) => ("it keeps its dispatch state (spec 2.4, exception 2), but what is inside it no longer allocates its states, threads or response handlers", "them"),
                _ => ("it allocates states, threads or response handlers", "it"),
            };
            // Where it is enabled, the states and handlers generated after it: whether they
            // moved is what the plan says, not what the toggle alone would do (another toggle
            // or removal at the same time can make up for it).
            let mut after = After::default();
            if now {
                after.states(cx.scope, to, old_c, o, true);
                after.handlers(a, to, old_c, o, true);
            } else {
                after.states(cx.scope, tn, new_c, n, false);
                after.handlers(a, tn, new_c, n, false);
            }
            let outcome = after.says(them, None);
            (Severity::Warning, format!("{effect}, {outcome}"))
        } else {
            (
                Severity::Info,
                "it allocates nothing, so no state is renumbered".to_string(),
            )
        };
        out.push(
            finding(
                Code::DisabledToggled,
                format!("{} was {verb}: {effect}", tn.describe(n)),
            )
            .severity(sev)
            .old_acts([to.aref(o)])
            .new_acts([tn.aref(n)]),
        );
    }
    out
}

/// Renumbering after a toggled subtree, from the plan's deltas: how many of the states,
/// handlers or thread classes generated after it are renumbered, how many keep their number,
/// and whether the first of them (in some sequence) is renumbered. Added or removed ones do
/// not count.
#[derive(Default)]
struct After {
    moved: usize,
    kept: usize,
    first_moved: bool,
}

impl After {
    /// One numbered sequence: (number where the subtree is enabled, renumbered?).
    fn tally(&mut self, mut seq: Vec<(u32, bool)>) {
        seq.sort_unstable();
        if let Some((_, m)) = seq.first() {
            self.first_moved |= *m;
        }
        for (_, m) in seq {
            if m {
                self.moved += 1;
            } else {
                self.kept += 1;
            }
        }
    }

    /// `here`'s number (`k` of S<k>, OnResponse<k>, T<k>) after `last` with its old and new
    /// names: (number, renumbered?).
    fn pair<T: PartialEq>(
        here: Option<u32>,
        o: &Option<T>,
        n: &Option<T>,
        last: u32,
    ) -> Option<(u32, bool)> {
        let k = here?;
        match (o, n) {
            (Some(o), Some(n)) if k > last => Some((k, o != n)),
            _ => None,
        }
    }

    /// The states generated after the subtree at `p` (per thread, numbered after the last
    /// state it owns) in the version where it is enabled (`old`: the old version), as the
    /// plan's state mappings pair them.
    fn states(&mut self, scope: &Scope, t: &Tree, c: &CompiledProcess, p: usize, old: bool) {
        let inside = |id| t.pos(id).is_some_and(|q| (p..=t.end(p)).contains(&q));
        // Each thread's mappings by class name (a scan per thread would be quadratic in a
        // process of thousands of thread classes).
        let mut mappings: foldhash::HashMap<&str, &crate::plan::ThreadMapping> =
            foldhash::HashMap::default();
        for m in &scope.threads {
            let class = if old {
                Some(&m.old_class)
            } else {
                m.new_class.as_ref()
            };
            if let Some(c) = class {
                mappings.entry(c.as_str()).or_insert(m);
            }
        }
        for th in &c.threads {
            let Some(last) = th
                .states
                .iter()
                .filter(|s| inside(s.activity.id))
                .filter_map(|s| s.name.number())
                .max()
            else {
                continue;
            };
            let m = mappings.get(th.class.as_str());
            self.tally(
                m.iter()
                    .flat_map(|m| &m.states)
                    .filter_map(|sm| {
                        let old_name = Some(sm.old);
                        let here = if old { old_name } else { sm.new };
                        Self::pair(here.and_then(|h| h.number()), &old_name, &sm.new, last)
                    })
                    .collect(),
            );
        }
    }

    /// The response handlers numbered after the last one the subtree at `p` owns.
    fn handlers(&mut self, a: &Analysis, t: &Tree, c: &CompiledProcess, p: usize, old: bool) {
        let inside = |id| t.pos(id).is_some_and(|q| (p..=t.end(p)).contains(&q));
        let last = c
            .response_handlers
            .iter()
            .filter(|h| inside(h.activity.id))
            .filter_map(|h| h.name.strip_prefix("OnResponse")?.parse::<u32>().ok())
            .max();
        if let Some(last) = last {
            self.tally(
                a.diff
                    .handlers
                    .iter()
                    .filter_map(|hd| {
                        let here = if old { &hd.old } else { &hd.new };
                        let k = here
                            .as_deref()
                            .and_then(|h| h.strip_prefix("OnResponse")?.parse::<u32>().ok());
                        Self::pair(k, &hd.old, &hd.new, last)
                    })
                    .collect(),
            );
        }
    }

    /// The thread classes numbered after the last one whose root lies inside the subtree at
    /// `p` (its own, a flow branch's, does not count).
    fn threads(&mut self, a: &Analysis, t: &Tree, c: &CompiledProcess, p: usize, old: bool) {
        let last = c
            .threads
            .iter()
            .filter(|th| t.pos(th.root.id).is_some_and(|q| p < q && q <= t.end(p)))
            .map(|th| th.number)
            .max();
        let Some(last) = last else { return };
        self.tally(
            a.diff
                .threads
                .iter()
                .filter_map(|d| {
                    let here = if old { d.old } else { d.new };
                    Self::pair(here, &d.old, &d.new, last)
                })
                .collect(),
        );
    }

    /// What became of what is generated after `them`: everything (`what` None) or the
    /// `what`s ("response handler", "thread class").
    fn says(&self, them: &str, what: Option<&str>) -> String {
        let make_up = "other changes at the same time make up for it";
        let (m, k) = (self.moved, self.kept);
        match what {
            None => match (m, k) {
                (_, 0) => format!("so everything generated after {them} is renumbered"),
                (0, _) => format!("yet nothing generated after {them} is renumbered: {make_up}"),
                _ if !self.first_moved => format!(
                    "yet what is generated right after {them} keeps its numbers: {make_up} \
                     ({m} renumbered further on move because of other changes)"
                ),
                _ => {
                    format!(
                    "so what is generated after {them} is renumbered, except where other changes \
                     make up for it ({k} of {} {})",
                    m + k,
                    if k == 1 { "keeps its number" } else { "keep their numbers" }
                )
                }
            },
            Some(w) => {
                match (m, k) {
                    (0, 0) => format!("and no {w} is generated after {them}"),
                    (_, 0) => format!("so later {w}s are renumbered"),
                    (0, _) => format!("yet no later {w} is renumbered: {make_up}"),
                    _ if !self.first_moved => format!(
                    "yet the {w}s right after {them} keep their numbers: {make_up} ({m} renumbered \
                     further on move because of other changes)"
                ),
                    _ => format!(
                    "so later {w}s are renumbered, except where other changes make up for it ({k} \
                     of {} {})",
                    m + k,
                    if k == 1 { "keeps its number" } else { "keep their numbers" }
                ),
                }
            }
        }
    }
}

/// A flow branch keeps its thread class whether disabled or not (spec 2.4 exception 1: a
/// disabled one's `S1` only leads to `Stop`): what the toggle changes is what is inside it —
/// its own states, the thread classes of flows nested in it and the response handlers of
/// its calls (the last two numbered across the process, so later ones are renumbered).
fn flow_branch_toggled(
    a: &Analysis,
    old_c: &CompiledProcess,
    o: usize,
    new_c: &CompiledProcess,
    n: usize,
    now: bool,
) -> (Severity, String) {
    let (to, tn) = (&a.old, &a.new);
    // Where the branch's contents are enabled: the old version when it was disabled now.
    let later = |f: fn(&mut After, &Analysis, &Tree, &CompiledProcess, usize, bool), what: &str| {
        let mut after = After::default();
        if now {
            f(&mut after, a, to, old_c, o, true);
        } else {
            f(&mut after, a, tn, new_c, n, false);
        }
        after.says("them", Some(what))
    };
    let inside = |t: &Tree, q: Option<usize>, p: usize| q.is_some_and(|q| p < q && q <= t.end(p));
    let (mut states, mut threads, mut handlers) = (false, false, false);
    for (t, c, p) in [(to, old_c, o), (tn, new_c, n)] {
        for th in &c.threads {
            let root = t.pos(th.root.id);
            states |= root == Some(p) && th.states.len() > 1;
            threads |= inside(t, root, p);
        }
        handlers |= c.response_handlers.iter().any(|h| {
            let q = t.pos(h.activity.id);
            q == Some(p) || inside(t, q, p)
        });
    }
    let mut what = Vec::new();
    if states {
        what.push(if now {
            "the states inside it go (its S1 now leads straight to Stop)".to_string()
        } else {
            "its thread class gains the states inside it (its S1 led straight to Stop)".to_string()
        });
    }
    if threads {
        let later = later(After::threads, "thread class");
        what.push(if now {
            format!("the thread classes of the flows inside it go, {later}")
        } else {
            format!("the flows inside it get thread classes, {later}")
        });
    }
    if handlers {
        let later = later(After::handlers, "response handler");
        what.push(if now {
            format!("the response handlers of the calls inside it go, {later}")
        } else {
            format!("the calls inside it get response handlers, {later}")
        });
    }
    let keeps = "it is a flow branch, which keeps its thread class either way (spec 2.4)";
    match (what.is_empty(), threads || handlers) {
        (true, _) => (
            Severity::Info,
            format!("{keeps}, and it allocates nothing else, so nothing is renumbered"),
        ),
        (false, false) => (
            Severity::Warning,
            format!(
                "{keeps}: {}; no other thread class or response handler is renumbered",
                what.join("; ")
            ),
        ),
        (false, true) => (Severity::Warning, format!("{keeps}: {}", what.join("; "))),
    }
}

/// BPM0305: many removed state owners and nothing inserted.
fn arguments_reversed(cx: &Context, out: &mut Findings) {
    let changes = &cx.a.diff.activities;
    // Removed activities that own states (a removed wrapper's handlers do not count).
    let owners = safety::owners(&cx.a.old, cx.old_c);
    // Counted once per removed subtree: a removed flow branch and its delay are one removal.
    let gone: BTreeSet<usize> = changes
        .iter()
        .filter(|c| c.change == diff::ActivityChangeKind::Removed)
        .filter_map(|c| c.old.as_ref().and_then(|r| cx.a.old.pos(r.id)))
        .collect();
    let removed = gone
        .iter()
        .filter(|&&p| owners.contains(p))
        .filter(|&&p| !cx.a.old.ancestors(p).any(|q| gone.contains(&q)))
        .count();
    let inserted = changes
        .iter()
        .filter(|c| c.change == diff::ActivityChangeKind::Inserted)
        .count();
    let removed_states: usize = cx
        .scope
        .threads
        .iter()
        .flat_map(|t| &t.states)
        .filter(|s| s.change == StateChange::Removed)
        .count();
    if inserted == 0 && removed >= 2 && removed_states >= 2 {
        out.findings.push(finding(
            Code::ArgumentsReversed,
            format!(
                "{removed} activities that own states were removed and none was inserted: if the first file given is the newer version, the arguments are reversed (bplmigrate plan OLD NEW)"
            ),
        ));
    }
}
