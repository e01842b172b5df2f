//! Entries of `%ResponseHandlers` that name a removed response handler (spec 5.2).
//!
//! The entries of a context are never removed during an instance's life, and a completed but
//! unpurged instance keeps them too: a context that ever sent call `C` holds `C → OnResponse<n>`
//! for good. When the new version has no counterpart for `OnResponse<n>`, the migration leaves
//! those entries as they are — no guard refuses them, which would make the apply impossible
//! until every such instance is purged. That is safe exactly when the entry is never read again:
//!
//! - a response already pending under the key would be dispatched through it: the plan's
//!   `NoPendingResponse` precondition for the removed handler's call forbids those, whether or
//!   not a `<sync>` waits on the call (`checks::mapping::stale_keys`, the one rule);
//! - a later response under the key needs a call of the new version sent under it first. A
//!   call *with* a handler registers it when it is sent, overwriting the entry before any
//!   response can arrive. A call *without* one registers nothing (spec 5.2), so its response
//!   would be handed to the stale `OnResponse<n>` — now another call's handler, or no method
//!   at all.
//!
//! So for each removed handler this module finds the new states that send a call under the
//! same key without a handler of its own (a key `@…` is a runtime value: it may be any key),
//! and every old state whose new state can reach one (code, wait, error and gosub/return
//! edges, and into the flow threads it starts). Of those, only the rows whose context can hold
//! the entry: the old call-site state writes it when it runs, so a row resting before it (no
//! loop back to it, no other thread class sending it: [`may_hold_entry`]) has none. Rows may
//! not rest there: a `NoRowsAtState` precondition each, which the plan lists and the apply
//! guards like any other.
//!
//! A renamed call is the one exception: its entry keeps naming its own handler (renumbered
//! with it), so a call that the old version sent without a handler as well read that entry
//! then exactly as it would now (the same handler of the same call): no new risk, and no
//! precondition for it. Only a call that had a handler of its own under the old version, or
//! is new, makes one.

use super::checks::Scope;
use super::model::Precondition;
use crate::states::{CompiledProcess, StateName, ThreadClass};
use foldhash::{HashMap, HashMapExt, HashSet};
use std::collections::VecDeque;

/// A completion key the stale entry may have: the call's name, or any key for `@expr`.
fn may_share_key(a: &str, b: &str) -> bool {
    a == b || a.starts_with('@') || b.starts_with('@')
}

/// The preconditions described in the module documentation (none when no handler is removed
/// or no call of the new version could read a stale entry).
pub(super) fn preconditions(
    scope: &Scope,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
) -> Vec<Precondition> {
    // (the value the entry holds after the rewrite, the key it stays under, renamed): a
    // removed handler's entries keep their name; a renamed call's entries get its handler's
    // new name under the old call name, which that call no longer registers either.
    // With the old handler, whose call-site state wrote the entry.
    let removed: Vec<(&str, &str, bool, &str)> = scope
        .handlers
        .iter()
        .filter_map(|h| match (&h.new, &h.new_call) {
            (None, _) => Some((h.old.as_str(), h.call.as_str(), false, h.old.as_str())),
            (Some(n), Some(c)) if *c != h.call => {
                Some((n.as_str(), h.call.as_str(), true, h.old.as_str()))
            }
            _ => None,
        })
        .collect();
    if removed.is_empty() {
        return Vec::new();
    }
    let ((_, bare), (old_sent, old_bare)) = (bare_calls(new_c), bare_calls(old_c));
    let graph = Senders::new(new_c);
    let mut out = Vec::new();
    for (handler, call, renamed, old_handler) in removed {
        // A renamed call's entry names its own handler still: a call the old version sent
        // without a handler too read it then as it would now.
        let reads: Vec<&str> = bare
            .iter()
            .copied()
            .filter(|c| may_share_key(c, call) && !(renamed && old_bare.contains(c)))
            .collect();
        if reads.is_empty() {
            continue;
        }
        let nearest = graph.nearest(&reads);
        for t in &scope.threads {
            let (Some(new_class), Some(new_table)) = (&t.new_class, &t.new_table) else {
                continue;
            };
            if *new_table != t.old_table {
                continue; // its rows are refused as a whole (NoRowsInTable)
            }
            let Some(&nt) = graph.index.get(new_class.as_str()) else {
                continue;
            };
            let holds = may_hold_entry(old_c, &t.old_class, old_handler);
            for s in &t.states {
                let Some(n) = &s.new else { continue };
                if holds.as_ref().is_some_and(|h| !h.contains(&s.old)) {
                    continue; // the old call never ran before a row rests here
                }
                let Some(sender) =
                    graph.first_sender(&nearest, nt, *n, &reads, &old_sent, &old_bare)
                else {
                    continue;
                };
                out.push(Precondition::NoRowsAtState {
                    table: t.old_table.clone(),
                    state: s.old.to_string(),
                    reason: format!(
                        "call {sender}: an entry {call:?} → {handler} left in the context by \
                         the old version would hand its response to {handler}{}",
                        new_owner(new_c, handler)
                    ),
                });
            }
        }
    }
    out
}

/// The states of old thread class `class` at which a row's context can hold the entry that
/// `handler`'s call wrote: the entry is written when the call-site state runs (spec 5.2), so a
/// row holds it only at a state reached from that state (by at least one edge: a row resting
/// at the call site has not run it yet) — after the call, or anywhere in a loop around it.
/// `None` (every state) when the call is sent in another thread class (a flow shares one
/// context: a sibling or child branch may have sent it at any time) or is not found.
fn may_hold_entry(
    old_c: &CompiledProcess,
    class: &str,
    handler: &str,
) -> Option<HashSet<StateName>> {
    let h = old_c.response_handlers.iter().find(|h| h.name == handler)?;
    let mut threads = old_c.threads.iter().filter(|t| t.number == h.thread);
    let t = threads.next().filter(|t| t.class == class)?;
    if threads.next().is_some() {
        return None;
    }
    let mut todo: Vec<StateName> = Vec::new();
    let next = |s: &crate::states::State, todo: &mut Vec<StateName>| {
        todo.extend(s.successors.as_slice());
        todo.extend(s.return_successors().as_slice());
        todo.extend(s.error_target);
        if let Some((g, r)) = s.gosub_states() {
            todo.extend(g);
            todo.push(r);
        }
    };
    let mut any = false;
    for s in &t.states {
        if s.sends().iter().any(|c| c.as_ref() == h.call.as_str()) {
            any = true;
            next(s, &mut todo);
        }
    }
    if !any {
        return None;
    }
    let mut seen: HashSet<StateName> = HashSet::default();
    while let Some(n) = todo.pop() {
        let Some(s) = t.state(&n) else { continue };
        if seen.insert(n) {
            next(s, &mut todo);
        }
    }
    Some(seen)
}

/// The calls a version sends, and those it sends without a handler: a name sent more often
/// than it has handlers (each generated call is sent from exactly one state and holds at
/// most one).
fn bare_calls(c: &CompiledProcess) -> (HashSet<&str>, HashSet<&str>) {
    let mut sent: HashMap<&str, usize> = HashMap::new();
    for t in &c.threads {
        for s in &t.states {
            for c in s.sends() {
                *sent.entry(c.as_str()).or_default() += 1;
            }
        }
    }
    let mut handled: HashMap<&str, usize> = HashMap::new();
    for h in &c.response_handlers {
        *handled.entry(h.call.as_str()).or_default() += 1;
    }
    let bare = sent
        .iter()
        .filter(|(c, n)| **n > handled.get(*c).copied().unwrap_or(0))
        .map(|(c, _)| *c)
        .collect();
    (sent.into_keys().collect(), bare)
}

/// `, now the handler of call "X"` or that no such method exists.
pub(super) fn new_owner(new_c: &CompiledProcess, handler: &str) -> String {
    match new_c.response_handlers.iter().find(|h| h.name == handler) {
        Some(h) => format!(", now the handler of call {:?}", h.call),
        None => ", a method the new version does not have".to_string(),
    }
}

/// The states of the new version as a graph a row can move in (code, wait, error, gosub/return
/// edges, and into the flow threads a state starts), walked backwards: for every state, the
/// nearest state (fewest edges) that sends one of some calls, in one breadth-first walk from
/// all senders at once. (A walk forward from every state was quadratic in a long thread: 8,000
/// delays before such a call took 14 s.) Built once; `nearest` runs per set of calls.
struct Senders<'c> {
    threads: &'c [ThreadClass],
    /// Thread index by class name.
    index: HashMap<&'c str, usize>,
    /// The global index of each thread class's first state.
    base: Vec<usize>,
    /// Predecessor lists, compact: `preds[first[g] .. first[g + 1]]` lead to state `g`.
    first: Vec<u32>,
    preds: Vec<u32>,
}

/// Per state (global index): the nearest sending state (thread index, state index), if any.
type Nearest = Vec<Option<(u32, u32)>>;

impl<'c> Senders<'c> {
    fn new(new_c: &'c CompiledProcess) -> Senders<'c> {
        let threads = &new_c.threads[..];
        let index: HashMap<&str, usize> = threads
            .iter()
            .enumerate()
            .map(|(i, t)| (t.class.as_str(), i))
            .collect();
        let mut base = Vec::with_capacity(threads.len());
        let mut total = 0;
        for t in threads {
            base.push(total);
            total += t.states.len();
        }
        // Every edge a row can take (global indexes), handed to `f(from, to)`.
        let edges = |f: &mut dyn FnMut(u32, u32)| {
            for (ti, t) in threads.iter().enumerate() {
                for (si, s) in t.states.iter().enumerate() {
                    let from = (base[ti] + si) as u32;
                    let mut next: Vec<StateName> = s.successors.as_slice().to_vec();
                    next.extend(s.return_successors().as_slice());
                    next.extend(s.error_target);
                    if let Some((h, r)) = s.gosub_states() {
                        next.extend(h);
                        next.push(r);
                    }
                    for n in next {
                        // Stop has no state.
                        if let Some(k) = n.number().filter(|_| t.state(&n).is_some()) {
                            f(from, (base[ti] + k as usize - 1) as u32);
                        }
                    }
                    for child in s.starts_threads() {
                        if let Some(&ci) = index.get(child.as_str()) {
                            if !threads[ci].states.is_empty() {
                                f(from, base[ci] as u32);
                            }
                        }
                    }
                }
            }
        };
        let mut first = vec![0u32; total + 1];
        edges(&mut |_, to| first[to as usize + 1] += 1);
        for g in 0..total {
            first[g + 1] += first[g];
        }
        let mut fill = first.clone();
        let mut preds = vec![0u32; first[total] as usize];
        edges(&mut |from, to| {
            preds[fill[to as usize] as usize] = from;
            fill[to as usize] += 1;
        });
        Senders {
            threads,
            index,
            base,
            first,
            preds,
        }
    }

    /// For every state, the nearest state that sends one of `reads`.
    fn nearest(&self, reads: &[&str]) -> Nearest {
        let mut nearest: Nearest = vec![None; self.first.len() - 1];
        let mut queue: VecDeque<u32> = VecDeque::new();
        for (ti, t) in self.threads.iter().enumerate() {
            for (si, s) in t.states.iter().enumerate() {
                if s.sends().iter().any(|c| reads.contains(&c.as_str())) {
                    let g = self.base[ti] + si;
                    nearest[g] = Some((ti as u32, si as u32));
                    queue.push_back(g as u32);
                }
            }
        }
        while let Some(g) = queue.pop_front() {
            let at = nearest[g as usize];
            let (lo, hi) = (
                self.first[g as usize] as usize,
                self.first[g as usize + 1] as usize,
            );
            for &p in &self.preds[lo..hi] {
                if nearest[p as usize].is_none() {
                    nearest[p as usize] = at;
                    queue.push_back(p);
                }
            }
        }
        nearest
    }

    /// The sender nearest to state `from` of the thread class at `t` (an index into the new
    /// version's threads), as `"X" (Thread1:S4) can still be sent from here, now without a
    /// response handler` (or `without a response handler, as under the old version` when it
    /// had none then either, or `a call new in this version, can be sent …`).
    fn first_sender(
        &self,
        nearest: &Nearest,
        t: usize,
        from: StateName,
        reads: &[&str],
        old_sent: &HashSet<&str>,
        old_bare: &HashSet<&str>,
    ) -> Option<String> {
        let k = from.number()? as usize;
        self.threads[t].state(&from)?;
        let (ti, si) = nearest[self.base[t] + k - 1]?;
        let tc = &self.threads[ti as usize];
        let s = &tc.states[si as usize];
        let c = s.sends().iter().find(|c| reads.contains(&c.as_str()))?;
        let short = tc.class.rsplit('.').next().unwrap_or(&tc.class);
        let (c, at) = (c.as_str(), format!("{short}:{}", s.name));
        Some(if !old_sent.contains(c) {
            format!("{c:?} ({at}), new in this version, can be sent from here without a response handler")
        } else if old_bare.contains(c) {
            format!("{c:?} ({at}) can still be sent from here without a response handler, as under the old version")
        } else {
            format!("{c:?} ({at}) can still be sent from here, now without a response handler")
        })
    }
}
