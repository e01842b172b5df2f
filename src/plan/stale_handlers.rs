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
//! edges, and into the flow threads it starts). Rows may not rest there: a `NoRowsAtState`
//! precondition each, which the plan lists and the apply guards like any other.
//!
//! A renamed call is the one exception: its entry keeps naming its own handler (renumbered
//! with it), so a call that the old version sent without a handler as well read that entry
//! then exactly as it would now (the same handler of the same call): no new risk, and no
//! precondition for it. Only a call that had a handler of its own under the old version, or
//! is new, makes one.

use super::checks::Scope;
use super::model::Precondition;
use crate::states::{CompiledProcess, StateName, ThreadClass};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

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
    let removed: Vec<(&str, &str, bool)> = scope
        .handlers
        .iter()
        .filter_map(|h| match (&h.new, &h.new_call) {
            (None, _) => Some((h.old.as_str(), h.call.as_str(), false)),
            (Some(n), Some(c)) if *c != h.call => Some((n.as_str(), h.call.as_str(), true)),
            _ => None,
        })
        .collect();
    if removed.is_empty() {
        return Vec::new();
    }
    let ((_, bare), (old_sent, old_bare)) = (bare_calls(new_c), bare_calls(old_c));
    let by_class: HashMap<&str, &ThreadClass> = new_c
        .threads
        .iter()
        .map(|t| (t.class.as_str(), t))
        .collect();
    let mut out = Vec::new();
    for (handler, call, renamed) in removed {
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
        let mut reach = Reach {
            by_class: &by_class,
            reads: &reads,
            old_sent: &old_sent,
            old_bare: &old_bare,
            memo: BTreeMap::new(),
        };
        for t in &scope.threads {
            let (Some(new_class), Some(new_table)) = (&t.new_class, &t.new_table) else {
                continue;
            };
            if *new_table != t.old_table {
                continue; // its rows are refused as a whole (NoRowsInTable)
            }
            let Some(nt) = by_class.get(new_class.as_str()) else {
                continue;
            };
            for s in &t.states {
                let Some(n) = &s.new else { continue };
                let Some(sender) = reach.first_sender(nt, *n) else {
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

/// Reachability in the new version, memoised per (thread class, state).
struct Reach<'c, 'f> {
    by_class: &'f HashMap<&'c str, &'c ThreadClass>,
    /// The calls (sent without a handler) that read the stale entry.
    reads: &'f [&'c str],
    /// The calls the old version sent, and those it sent without a handler (for the
    /// wording: "now without").
    old_sent: &'f HashSet<&'c str>,
    old_bare: &'f HashSet<&'c str>,
    memo: BTreeMap<(String, StateName), Option<String>>,
}

impl Reach<'_, '_> {
    /// The first sending state found from `from` (breadth first), as `"X" (Thread1:S4) can
    /// still be sent from here, now without a response handler` (or `without a response
    /// handler, as under the old version` when it had none then either, or `a call new in this
    /// version, can be sent …`).
    fn first_sender(&mut self, t: &ThreadClass, from: StateName) -> Option<String> {
        let key = (t.class.clone(), from);
        if let Some(v) = self.memo.get(&key) {
            return v.clone();
        }
        let found = self.search(t, from);
        self.memo.insert(key, found.clone());
        found
    }

    fn search(&self, t: &ThreadClass, from: StateName) -> Option<String> {
        let mut seen: HashSet<(&str, StateName)> = HashSet::new();
        let mut queue: VecDeque<(&ThreadClass, StateName)> = VecDeque::new();
        queue.push_back((t, from));
        while let Some((tc, name)) = queue.pop_front() {
            if !seen.insert((tc.class.as_str(), name)) {
                continue;
            }
            let Some(s) = tc.state(&name) else {
                continue; // Stop
            };
            if let Some(c) = s.sends().iter().find(|c| self.reads.contains(&c.as_str())) {
                let short = tc.class.rsplit('.').next().unwrap_or(&tc.class);
                let (c, at) = (c.as_str(), format!("{short}:{}", s.name));
                return Some(if !self.old_sent.contains(c) {
                    format!("{c:?} ({at}), new in this version, can be sent from here without a response handler")
                } else if self.old_bare.contains(c) {
                    format!("{c:?} ({at}) can still be sent from here without a response handler, as under the old version")
                } else {
                    format!(
                        "{c:?} ({at}) can still be sent from here, now without a response handler"
                    )
                });
            }
            let mut next: Vec<StateName> = s.successors.as_slice().to_vec();
            next.extend(s.return_successors().as_slice());
            next.extend(s.error_target);
            if let Some((h, r)) = s.gosub_states() {
                next.extend(h);
                next.push(r);
            }
            for n in next {
                queue.push_back((tc, n));
            }
            for child in s.starts_threads() {
                if let Some(ct) = self.by_class.get(child.as_str()) {
                    queue.push_back((ct, StateName::s(1)));
                }
            }
        }
        None
    }
}
