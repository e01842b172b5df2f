//! BPM01xx: how states, threads and response handlers map, and what a mapping leaves behind
//! (removed states, renumbered or removed thread classes and handlers, overridden states,
//! changed stacks).

use super::{Context, Findings};
use crate::plan::findings::{finding, Code, FindingExt};
use crate::plan::model::*;
use crate::plan::safety::{self, new_sref, short, sref};
use crate::states::{join_names, ActivityRef, StateName};
use foldhash::{HashMap, HashMapExt};

pub(super) fn run(cx: &Context, out: &mut Findings) {
    overridden(cx, out);
    threads(cx, out);
    states(cx, out);
    handlers(cx, out);
}

/// BPM0108: each state the overrides file mapped.
fn overridden(cx: &Context, out: &mut Findings) {
    for o in &cx.scope.overridden {
        let (os, ns) = (o.old, o.new);
        let rests = os.wait || os.join;
        let lands = ns.wait || ns.join;
        let mut f = finding(
            Code::StateOverridden,
            format!(
                "{} ({} of {}) is mapped by the overrides file to {} ({} of {}){}",
                sref(o.old_class, &os.name.to_string()),
                os.role,
                os.activity.label(),
                new_sref(o.new_class, &ns.name.to_string()),
                ns.role,
                ns.activity.label(),
                if rests && !lands { "; it is not a wait state: waiting rows run it as soon as what they wait for arrives" } else { "" }
            ),
        )
        .states([sref(o.old_class, &os.name.to_string()), new_sref(o.new_class, &ns.name.to_string())])
        .old_acts([os.activity.clone()])
        .new_acts([ns.activity.clone()]);
        if rests && !lands {
            f = f.severity(Severity::Warning);
        }
        out.findings.push(f);
        never_sent(cx, o, out);
    }
}

/// BPM0201 for a state mapped by hand onto the wait of a call the rows never sent: the
/// request goes out in the state before the wait (spec 3.4.3), which they do not run, so the
/// wait finds nothing pending under that name and continues at once (3.4.4a): the call does
/// not run for them.
fn never_sent(cx: &Context, o: &super::Overridden, out: &mut Findings) {
    use crate::states::Role;
    let (to, tn) = (&cx.a.old, &cx.a.new);
    let (os, ns) = (o.old, o.new);
    if ns.role != Role::SyncWait {
        return;
    }
    let (Some(n), Some(wo)) = (tn.pos(ns.activity.id), to.pos(os.activity.id)) else {
        return;
    };
    let held = if os.role == Role::SyncWait {
        safety::awaited_names(to, wo)
    } else {
        Vec::new()
    };
    // A row may also hold the response of an asynchronous call of its thread it sent
    // earlier (or in an earlier iteration): any such call of that name counts as sent.
    let maybe_pending = |name: &str| {
        held.contains(&name)
            || (0..to.len()).any(|p| {
                let node = to.nodes[p];
                to.effective[p]
                    && node.element == "call"
                    && node.name.as_deref() == Some(name)
                    && safety::is_async_call(node)
                    && to.thread_root(p) == to.thread_root(wo)
            })
    };
    let unsent: Vec<&str> = safety::awaited_names(tn, n)
        .into_iter()
        .filter(|c| !maybe_pending(c))
        .collect();
    if unsent.is_empty() {
        return;
    }
    let calls = unsent
        .iter()
        .map(|c| format!("call {c:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (old_ref, new_ref) = (
        sref(o.old_class, &os.name.to_string()),
        new_sref(o.new_class, &ns.name.to_string()),
    );
    out.findings.push(
        finding(
            Code::SkippedActivities,
            format!(
                "instances resting at {old_ref} are mapped by the overrides file onto {new_ref} ({} of {}), but they never sent {calls}: its request goes out in the state before that wait, which they do not run, so the wait finds nothing pending under that name and continues at once: {calls} does not run for them",
                ns.role,
                ns.activity.label(),
            ),
        )
        .states([old_ref, new_ref])
        .old_acts([os.activity.clone()])
        .new_acts([ns.activity.clone()]),
    );
}

/// BPM0103/0104: flow branch thread classes renumbered or removed (their tables must be empty).
/// Each thread class's root activity by class name.
fn thread_roots(c: &crate::states::CompiledProcess) -> HashMap<&str, &ActivityRef> {
    c.threads
        .iter()
        .map(|th| (th.class.as_str(), &th.root))
        .collect()
}

fn threads(cx: &Context, out: &mut Findings) {
    let threads = &cx.scope.threads;
    // Looked up by class name for each thread that moved (a map: a large process has
    // thousands of thread classes, and a scan per thread would be quadratic).
    let (old_roots, new_roots) = (thread_roots(cx.old_c), thread_roots(cx.new_c));
    let root = |r: &HashMap<&str, &ActivityRef>, class: &str| r.get(class).map(|a| a.label());
    // What a row left in an old thread class's table runs after the deploy: the class of that
    // name, regenerated with another branch's code, or the stale class the new version no
    // longer generates (spec Q-14).
    let left_in = |t: &ThreadMapping| {
        match root(&new_roots, &t.old_class) {
        Some(other) => format!(
            "the new version generates {} with the code of {other}: a row left in {} would run that branch's code from a state of the old one",
            t.old_class, t.old_table
        ),
        None => format!(
            "the new version no longer generates {}: the stale class stays compiled (spec Q-14), and a row left in {} would keep running the old code",
            t.old_class, t.old_table
        ),
    }
    };
    for t in threads {
        let old_short = short(&t.old_class);
        let was = || {
            root(&old_roots, &t.old_class)
                .map(|l| format!(" ({l})"))
                .unwrap_or_default()
        };
        match t.new_class.as_deref() {
            Some(nc) if short(nc) == old_short => {}
            Some(nc) => {
                out.findings.push(
                    finding(
                        Code::ThreadRenumbered,
                        format!(
                            "flow branch thread {}{} became {}; {}",
                            t.old_class,
                            was(),
                            nc,
                            left_in(t)
                        ),
                    )
                    .states([format!("{old_short}:*")]),
                );
                out.pre.push(Precondition::NoRowsInTable {
                    table: t.old_table.clone(),
                    reason: format!(
                        "{} became {}; no row of a running instance may remain in {}",
                        old_short,
                        short(nc),
                        t.old_table
                    ),
                });
            }
            None => {
                out.findings.push(
                    finding(
                        Code::ThreadRemoved,
                        format!(
                            "thread class {}{} has no counterpart in the new version; {}",
                            t.old_class,
                            was(),
                            left_in(t)
                        ),
                    )
                    .states([format!("{old_short}:*")]),
                );
                out.pre.push(Precondition::NoRowsInTable {
                    table: t.old_table.clone(),
                    reason: format!("{old_short} has no counterpart in the new version; no row of a running instance may remain in {}", t.old_table),
                });
            }
        }
    }
}

/// BPM0101/0102 (one per removed activity, with the preconditions), 0105 (renumbered
/// states), 0109 (changed stacks).
fn states(cx: &Context, out: &mut Findings) {
    let threads = &cx.scope.threads;
    for t in threads {
        // A renumbered or removed thread class is guarded as a whole (empty table).
        if t.new_class.as_deref().map(short) != Some(short(&t.old_class)) {
            continue;
        }
        let map = t.state_map();
        let mut renumbered = Vec::new();
        let mut stack_changed = Vec::new();
        // One finding per removed activity, listing its states.
        let mut removed: Vec<(crate::states::ActivityRef, Vec<&StateMapping>, String)> = Vec::new();
        for s in &t.states {
            match (&s.new, s.change) {
                (None, _) => {
                    let why = s
                        .note
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default();
                    match removed.iter_mut().find(
                        |(a, _, _): &&mut (
                            crate::states::ActivityRef,
                            Vec<&StateMapping>,
                            String,
                        )| a.id == s.old_activity.id,
                    ) {
                        Some((_, v, _)) => v.push(s),
                        None => removed.push((s.old_activity.clone(), vec![s], why.clone())),
                    }
                    out.pre.push(Precondition::NoRowsAtState {
                        table: t.old_table.clone(),
                        state: s.old.to_string(),
                        // The same words for every state of one removed activity, so a
                        // review groups them into one line.
                        reason: s.note.clone().unwrap_or_else(|| {
                            format!("{} has no counterpart", s.old_activity.label())
                        }),
                    });
                }
                (Some(n), StateChange::Renumbered) => renumbered.push(format!("{}→{}", s.old, n)),
                _ => {}
            }
            let unmappable =
                |v: &[StateName]| v.iter().any(|e| map.get(e).copied().flatten().is_none());
            if s.new.is_some()
                && !unmappable(&s.old_handler_stack)
                && !unmappable(&s.old_subroutine_stack)
            {
                // The old stack, each state mapped, is the new stack: nothing to rewrite.
                let maps_onto = |old: &[StateName], new: &[StateName]| {
                    old.len() == new.len()
                        && old
                            .iter()
                            .zip(new)
                            .all(|(o, n)| map.get(o).copied().flatten() == Some(*n))
                };
                if !maps_onto(&s.old_handler_stack, &s.new_handler_stack)
                    || !maps_onto(&s.old_subroutine_stack, &s.new_subroutine_stack)
                {
                    stack_changed.push(format!(
                        "{} [{}]→[{}]",
                        s.old,
                        join_names(
                            &[&s.old_handler_stack[..], &s.old_subroutine_stack].concat(),
                            ","
                        ),
                        join_names(
                            &[&s.new_handler_stack[..], &s.new_subroutine_stack].concat(),
                            ","
                        )
                    ));
                }
            }
        }
        for (act, states, why) in &removed {
            // No row rests in a fault handler no fault reaches.
            let unreached =
                cx.a.old
                    .pos(act.id)
                    .and_then(|p| cx.a.old.unreached_handler(p));
            let rests = unreached.is_none() && states.iter().any(|s| s.wait || s.join);
            let listed = states
                .iter()
                .map(|s| {
                    let what = if s.join {
                        ", join"
                    } else if s.wait {
                        ", wait"
                    } else {
                        ""
                    };
                    format!("{} ({}{what})", s.old, s.role)
                })
                .collect::<Vec<_>>()
                .join(", ");
            let code = if rests {
                Code::RemovedWaitState
            } else {
                Code::RemovedState
            };
            let what = match unreached {
                Some(h) => format!(
                    "no fault reaches {}: no instance waits there",
                    cx.a.old.describe(h)
                ),
                None if rests => "instances can wait there".to_string(),
                None => "no instance waits there".to_string(),
            };
            out.findings.push(
                finding(
                    code,
                    format!(
                        "{}: {} {listed} {} no counterpart{why} ({what})",
                        act.label(),
                        if states.len() == 1 { "state" } else { "states" },
                        if states.len() == 1 { "has" } else { "have" }
                    ),
                )
                .states(states.iter().map(|s| sref(&t.old_class, &s.old)))
                .old_acts([act.clone()]),
            );
        }
        let old_short = short(&t.old_class);
        if !renumbered.is_empty() {
            let states = t
                .states
                .iter()
                .filter(|s| s.change == StateChange::Renumbered)
                .map(|s| sref(&t.old_class, &s.old))
                .collect::<Vec<_>>();
            out.findings.push(
                finding(
                    Code::StatesRenumbered,
                    format!(
                        "{old_short}: {} renumbered: {}",
                        plural(renumbered.len(), "state"),
                        renumbered.join(", ")
                    ),
                )
                .states(states),
            );
        }
        stack_entries_removed(t, out);
        if !stack_changed.is_empty() {
            out.findings.push(finding(
                Code::StackChanged,
                format!(
                    "{old_short}: rows get a different handler/subroutine stack at {}",
                    stack_changed.join("; ")
                ),
            ));
        }
    }
}

/// BPM0110: stack values naming a state without counterpart, held by rows at states that are
/// kept (rows at removed states are refused anyway). One finding per value.
fn stack_entries_removed(t: &ThreadMapping, out: &mut Findings) {
    let old_short = short(&t.old_class);
    for (subroutine, column) in [(false, "%HandlerStack"), (true, "%SubroutineStack")] {
        for v in t.stack_values(subroutine) {
            if v.new.is_some() {
                continue;
            }
            let holders: Vec<&StateMapping> = t
                .states
                .iter()
                .filter(|s| {
                    s.new.is_some()
                        && if subroutine {
                            s.old_subroutine_stacks().any(|x| *x == v.old)
                        } else {
                            s.old_handler_stack == v.old
                        }
                })
                .collect();
            let entries = v
                .unmapped
                .iter()
                .map(|e| match t.states.iter().find(|s| s.old == *e) {
                    Some(s) => format!(
                        "{e} ({} of {}{})",
                        s.role,
                        s.old_activity.label(),
                        s.note
                            .as_deref()
                            .map(|n| format!(": {n}"))
                            .unwrap_or_default()
                    ),
                    None => format!("{e} (not a state of {old_short})"),
                })
                .collect::<Vec<_>>()
                .join(", ");
            // A handler stack is rewritten per state where it is the predicted one (the new
            // nesting): only stale copies elsewhere are refused.
            let holders: Vec<&StateMapping> = if subroutine { holders } else { Vec::new() };
            let rests = holders.iter().any(|s| s.wait || s.join);
            let at = if holders.is_empty() {
                "rows at states that do not predict it (stale entries left by a <break>/<continue> or a transfer default)".to_string()
            } else {
                format!(
                    "rows at {}",
                    join_names(&holders.iter().map(|s| s.old).collect::<Vec<_>>(), ", ")
                )
            };
            let what = if subroutine {
                "their compensation handler would return to a state of another activity, or to none"
            } else {
                "a fault would jump to a state of another activity, or to none"
            };
            let f = finding(
                Code::StackEntryRemoved,
                format!(
                    "{old_short}: {at} hold {column} [{}]: {entries} has no counterpart in the new version, so no \
                     rewrite keeps its meaning ({what}); the plan refuses to run while a row holds it",
                    v.old.join(",")
                ),
            )
            .states(holders.iter().map(|s| sref(&t.old_class, &s.old)))
            .states(v.unmapped.iter().map(|e| sref(&t.old_class, e)));
            out.findings.push(if rests {
                f
            } else {
                f.severity(Severity::Warning)
            });
        }
    }
}

/// BPM0106/0107: response handlers renumbered or removed.
fn handlers(cx: &Context, out: &mut Findings) {
    let handlers = &cx.scope.handlers;
    let renumbered: Vec<String> = handlers
        .iter()
        .filter_map(|h| {
            h.new
                .as_ref()
                .filter(|n| **n != h.old)
                .map(|n| format!("{}→{} ({:?})", h.old, n, h.call))
        })
        .collect();
    if !renumbered.is_empty() {
        out.findings.push(finding(
            Code::HandlerRenumbered,
            format!(
                "{} renumbered: {}",
                plural(renumbered.len(), "response handler"),
                renumbered.join(", ")
            ),
        ));
    }
}

/// BPM0107/0203: the one rule for the `%ResponseHandlers` entries a migration leaves stale.
/// Every old handler that has no counterpart, or whose counterpart belongs to a call of
/// another name (a renamed call), keeps its entry under the old call's key: a response still
/// pending under that key would be dispatched through it (spec 5.2), whether or not a `<sync>`
/// waits on it — to a handler number that is now another call's, or no method at all. So no
/// response may be pending under the key (for an `@expr` call: under any key) when the
/// migration runs: a `NoPendingResponse` precondition each, unless the call analysis already
/// made one for the same table and call (a call a `<sync>` waits on).
pub(super) fn stale_keys(cx: &Context, out: &mut Findings) {
    let old_threads = cx.old_c.threads_by_number();
    let mut old_handlers = HashMap::new();
    for x in &cx.old_c.response_handlers {
        old_handlers.entry(x.name.as_str()).or_insert(x);
    }
    for h in &cx.scope.handlers {
        let renamed_to = match (&h.new, &h.new_call) {
            (None, _) => None,
            (Some(_), Some(c)) if *c != h.call => Some(c.clone()),
            _ => continue,
        };
        let Some(hd) = old_handlers.get(h.old.as_str()).copied() else {
            continue;
        };
        let Some(table) = old_threads.get(&hd.thread).map(|t| t.table.clone()) else {
            continue;
        };
        let covered = out.pre.iter().any(|p| {
            matches!(p, Precondition::NoPendingResponse { table: t, call, .. }
                if *t == table && *call == h.call)
        });
        if covered {
            continue;
        }
        let key = if h.call.starts_with('@') {
            format!(
                "the key it was sent under (call {:?} is sent under a runtime value: any key counts)",
                h.call
            )
        } else {
            format!("{:?}", h.call)
        };
        let (f, reason) = match (&renamed_to, &h.new) {
            (Some(nc), Some(n)) => (
                finding(
                    Code::PendingCallRenamed,
                    format!(
                        "call {:?} was renamed to {nc:?}: a response still pending under {key} is dispatched through the context's entry {:?} → {n}, a key the new version no longer sends",
                        h.call, h.call
                    ),
                )
                .old_acts([hd.activity.clone()]),
                format!(
                    "call {:?} was renamed to {nc:?}; wait until no response under {key} is pending",
                    h.call
                ),
            ),
            _ => (
                finding(
                    Code::HandlerRemoved,
                    format!(
                        "{} (response handler of call {:?}) has no counterpart: a response still pending under {key} would be handed to {}{}",
                        h.old,
                        h.call,
                        h.old,
                        crate::plan::stale_handlers::new_owner(cx.new_c, &h.old)
                    ),
                )
                .old_acts([hd.activity.clone()]),
                format!(
                    "{} of call {:?} has no counterpart; wait until no response under {key} is pending",
                    h.old, h.call
                ),
            ),
        };
        out.findings.push(f);
        out.pre.push(Precondition::NoPendingResponse {
            table,
            call: h.call.clone(),
            reason,
            new_call: renamed_to,
        });
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
