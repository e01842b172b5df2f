//! Diff + overrides → `MigrationPlan`.

use super::checks;
use super::findings::lookup;
use super::model::*;
use super::overrides::{Overrides, OverridesError};
use super::safety::{self, new_sref, short, sref, ThreadFinder};
use crate::bpl::Bpl;
use crate::diff::tree::Tree;
use crate::diff::MatchLimits;
use crate::diff::{self, Analysis, ContextChangeKind, DeltaKind, DiffError, Pin, StateDelta};
use crate::states::{CompiledProcess, Role, StateNames, ThreadClass};
use foldhash::{HashMap, HashMapExt, HashSet, HashSetExt};
use std::borrow::Cow;
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Overrides(#[from] OverridesError),
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error("cannot serialize the plan: {0}")]
    Serialize(String),
}

/// Build the migration plan for `old` → `new` (both already compiled with the same compiler
/// generation), steered by an optional overrides file.
pub fn build(
    old: &Bpl,
    new: &Bpl,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    overrides: Option<&Overrides>,
) -> Result<MigrationPlan, PlanError> {
    build_with_limits(old, new, old_c, new_c, overrides, &MatchLimits::default())
}

/// [`build`] with other matcher limits than the defaults of `diff::costs` (tests use tiny ones
/// to reach every fallback).
pub fn build_with_limits(
    old: &Bpl,
    new: &Bpl,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    overrides: Option<&Overrides>,
    limits: &MatchLimits,
) -> Result<MigrationPlan, PlanError> {
    let empty = Overrides::default();
    let ov = overrides.unwrap_or(&empty);
    for (which, want, bpl) in [
        ("old_sha256", &ov.old_sha256, old),
        ("new_sha256", &ov.new_sha256, new),
    ] {
        if let Some((line, h)) = want {
            if *h != bpl.source.sha256 {
                return Err(ov
                    .error(*line, format!("{which} = {h} does not match {} (sha256 {}): these overrides were written for another version", bpl.source.origin, bpl.source.sha256))
                    .into());
            }
        }
    }
    let pins = pins(old, new, ov)?;
    let mut a = diff::analyze(old, new, old_c, new_c, &pins, limits)?;
    // The per-state deltas become the plan's state mappings and are dropped thread by thread
    // as they do (a delta and a mapping per state are tens of megabytes in a large process).
    let deltas = a
        .diff
        .threads
        .iter_mut()
        .map(|t| std::mem::take(&mut t.states))
        .collect();
    let mut b = Builder {
        a: &a,
        deltas: Some(deltas),
        old_c,
        new_c,
        ov,
        applied: Vec::new(),
    };
    b.plan(old, new)
}

/// The `[[pin]]`s of an overrides file as the diff takes them: `diff::diff(…, &pins)` is the
/// diff a plan built with these overrides rests on.
pub fn pins(old: &Bpl, new: &Bpl, ov: &Overrides) -> Result<Vec<Pin>, OverridesError> {
    if ov.pins.is_empty() {
        return Ok(Vec::new());
    }
    let (to, tn) = (Tree::new(old), Tree::new(new));
    let mut out = Vec::new();
    for p in &ov.pins {
        let o = to
            .select(&p.old)
            .map_err(|e| ov.error(p.line, format!("[[pin]] old: {e}")))?;
        let n = match &p.new {
            Some(s) => Some(
                tn.select(s)
                    .map_err(|e| ov.error(p.line, format!("[[pin]] new: {e}")))?,
            ),
            None => None,
        };
        out.push(Pin {
            old: to.id(o),
            new: n.map(|n| tn.id(n)),
            line: Some(p.line),
        });
    }
    Ok(out)
}

/// `OnResponse<n>` by name (the first of each name).
fn handlers_by_name(c: &CompiledProcess) -> HashMap<&str, &crate::states::ResponseHandler> {
    let mut m = HashMap::with_capacity(c.response_handlers.len());
    for x in &c.response_handlers {
        m.entry(x.name.as_str()).or_insert(x);
    }
    m
}

/// `Thread1`, `1` or the full class name.
fn find_thread<'c>(c: &'c CompiledProcess, s: &str) -> Option<&'c ThreadClass> {
    let s = s.trim();
    c.threads
        .iter()
        .find(|t| t.class == s || short(&t.class) == s || s.parse::<u32>().ok() == Some(t.number))
}

struct Builder<'x, 'a> {
    /// The diff, its per-state deltas moved out into `deltas`.
    a: &'x Analysis<'a>,
    /// The states of each of `a.diff.threads`, until `threads` turns them into mappings.
    deltas: Option<Vec<Vec<StateDelta>>>,
    old_c: &'x CompiledProcess,
    new_c: &'x CompiledProcess,
    ov: &'x Overrides,
    /// What the overrides file applied, in its order (maps, defaults, acknowledgements).
    applied: Vec<String>,
}

impl<'x> Builder<'x, '_> {
    fn plan(&mut self, old: &Bpl, new: &Bpl) -> Result<MigrationPlan, PlanError> {
        let (old_c, new_c) = (self.old_c, self.new_c);
        // 1. The scope: mappings with the overrides applied.
        let scope = self.scope()?;
        // 2. The findings and the preconditions they need, acknowledged by the overrides.
        let cx = checks::Context {
            a: self.a,
            old,
            new,
            old_c,
            new_c,
            scope: &scope,
        };
        let mut out = checks::Findings::default();
        checks::run(&cx, &mut out);
        out.pre
            .extend(super::stale_handlers::preconditions(&scope, old_c, new_c));
        self.apply_acks(&mut out.findings)?;
        // 3. The verdict.
        let verdict = verdict(&scope, &out, self.a.diff.identical);
        if matches!(
            verdict,
            Verdict::Migratable | Verdict::Blocked | Verdict::Drain
        ) && !scope.class_changed
        {
            checks::actor_pool(&cx, &mut out);
            let mut pre = vec![
                Precondition::HostDisabled {
                    class: old_c.class.clone(),
                },
                Precondition::NoLiveJob {
                    class: old_c.class.clone(),
                },
            ];
            pre.append(&mut out.pre);
            out.pre = pre;
        } else {
            // Nothing will be applied: preconditions would only be noise.
            out.pre.clear();
        }
        let checks::Scope {
            versioned,
            class_changed,
            threads,
            mut handlers,
            mut context,
            ..
        } = scope;
        // A hash set: the Debug strings share long prefixes, which an ordered set compares.
        let mut seen = HashSet::new();
        let mut preconditions: Vec<Precondition> = std::mem::take(&mut out.pre)
            .into_iter()
            .filter(|p| seen.insert(format!("{p:?}")))
            .collect();
        // Host guards first, then whole tables, states (numerically), pending responses.
        preconditions.sort_by_cached_key(|p| match p {
            Precondition::HostDisabled { .. } => (0, String::new(), (String::new(), vec![])),
            Precondition::NoLiveJob { .. } => (1, String::new(), (String::new(), vec![])),
            Precondition::NoRowsInTable { table, .. } => {
                (2, table.to_string(), (String::new(), vec![]))
            }
            Precondition::NoRowsAtState { table, state, .. } => {
                (3, table.to_string(), super::render::state_key(state))
            }
            Precondition::NoPendingResponse { table, call, .. } => {
                (4, table.to_string(), (call.clone(), vec![]))
            }
        });
        let mut findings = std::mem::take(&mut out.findings);
        // States compare numerically (S9 before S11).
        let skey = |f: &Finding| {
            f.states
                .iter()
                .map(|s| super::render::state_key(s))
                .collect::<Vec<_>>()
        };
        findings.sort_by_cached_key(|f| {
            (
                std::cmp::Reverse(f.severity),
                f.code,
                skey(f),
                f.message.clone(),
            )
        });
        let (suggestions, no_suggestions) = if versioned || class_changed {
            (Vec::new(), Vec::new())
        } else {
            self.suggestions(&threads, &handlers, &preconditions)
        };
        handlers.sort_by_key(|h| handler_number(&h.old));
        context.sort_by(|x, y| x.name.cmp(&y.name));
        let mut plan = MigrationPlan {
            schema_version: PLAN_SCHEMA_VERSION,
            plan_id: String::new(),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            compiler: new_c.compiler.as_str().to_string(),
            old: source(old, old_c),
            new: source(new, new_c),
            verdict,
            threads,
            response_handlers: handlers,
            response_handler_table: old_c.response_handler_table.clone(),
            context_table: old_c.context_table.clone(),
            context_properties: context,
            preconditions,
            findings,
            suggestions,
            no_suggestions,
            default_suggestions: std::mem::take(&mut out.default_suggestions),
            overrides: std::mem::take(&mut self.applied),
        };
        plan.plan_id = plan_id_of_own(&mut plan)?;
        Ok(plan)
    }

    /// The scope of the plan, decided before any finding: thread, state and handler mappings
    /// (with the overrides file's `[[map]]`s) and context changes (with its `[[default]]`s).
    /// An override that cannot apply is an error.
    fn scope(&mut self) -> Result<checks::Scope<'x>, OverridesError> {
        let (old_c, new_c) = (self.old_c, self.new_c);
        let versioned = old_c.package != new_c.package && old_c.class == new_c.class;
        let class_changed = old_c.class != new_c.class;
        let mut threads = if versioned {
            self.versioned_threads()
        } else {
            self.threads()
        };
        let handlers = self.handlers(versioned);
        let mut context = self.context();
        let mut overridden = Vec::new();
        if versioned || class_changed {
            // Nothing is migrated: state maps, pins and defaults have nothing to apply to.
            let why = if versioned {
                "the new version compiles into another package, so nothing is migrated"
            } else {
                "old and new are different classes"
            };
            let first = self
                .ov
                .maps
                .iter()
                .map(|m| (m.line, "[[map]]"))
                .chain(self.ov.pins.iter().map(|p| (p.line, "[[pin]]")))
                .chain(self.ov.defaults.iter().map(|d| (d.line, "[[default]]")))
                .min();
            if let Some((line, what)) = first {
                return Err(self.ov.error(line, format!("{what} does not apply: {why}")));
            }
        }
        if !versioned {
            overridden = self.apply_maps(&mut threads)?;
            self.apply_defaults(&mut context)?;
            for t in &mut threads {
                return_states_follow_their_compensate(t);
            }
        }
        Ok(checks::Scope {
            versioned,
            class_changed,
            threads,
            handlers,
            context,
            overridden,
        })
    }

    fn threads(&mut self) -> Vec<ThreadMapping> {
        let mut out = Vec::new();
        let (old_t, new_t) = (
            self.old_c.threads_by_number(),
            self.new_c.threads_by_number(),
        );
        let deltas = self.deltas.take().unwrap_or_default();
        for (td, deltas) in self.a.diff.threads.iter().zip(deltas) {
            let Some(ot) = td.old.and_then(|n| old_t.get(&n).copied()) else {
                continue;
            };
            let nt = td.new.and_then(|n| new_t.get(&n).copied());
            // Exact capacity: a mapping per old state is most of a plan's memory.
            let mut states = Vec::with_capacity(deltas.len());
            states.extend(deltas.into_iter().filter_map(|sd| {
                let os = ot.state(&sd.old?)?;
                let ns = sd.new.and_then(|n| nt?.state(&n));
                Some(StateMapping {
                    old: os.name,
                    new: ns.map(|s| s.name),
                    role: os.role.clone(),
                    old_activity: os.activity.clone(),
                    new_activity: ns.map(|s| s.activity.clone()),
                    wait: os.wait,
                    join: os.join,
                    change: match sd.change {
                        DeltaKind::Unchanged => StateChange::Unchanged,
                        DeltaKind::Renumbered => StateChange::Renumbered,
                        DeltaKind::Removed | DeltaKind::Added => StateChange::Removed,
                    },
                    old_handler_stack: os.handler_stack().clone(),
                    new_handler_stack: ns.map(|s| s.handler_stack().clone()).unwrap_or_default(),
                    old_subroutine_stack: os.subroutine_stack().clone(),
                    new_subroutine_stack: ns
                        .map(|s| s.subroutine_stack().clone())
                        .unwrap_or_default(),
                    // Mapped with the first one, once the state map is final.
                    other_subroutine_stacks: other_subroutine_stacks(os, |_| None),
                    via: match (ns, sd.via) {
                        (Some(_), Some(v)) => Cow::Borrowed(v.as_str()),
                        (Some(_), None) => Cow::Borrowed("matched"),
                        (None, _) => Cow::Borrowed("removed"),
                    },
                    note: sd.note,
                    modified: ns.and_then(|ns| {
                        // The owner's counterpart (a call whose wait is now a `<sync>`'s
                        // compares with that call); owners of another element compare
                        // with nothing (the note says what became of them).
                        let mut o = self.a.old.pos(os.activity.id)?;
                        // A fault dispatch state belongs to the scope, but what identifies it
                        // is its `<catch>` (a fault renamed with its `<throw>`s).
                        if let crate::states::Role::Catch(i) = os.role {
                            o = *self.a.old.catches(o).get(i as usize - 1)?;
                        }
                        let n = self.a.m.o2n[o].or_else(|| self.a.new.pos(ns.activity.id))?;
                        if self.a.old.element(o) != self.a.new.element(n) {
                            return None;
                        }
                        let ch = crate::diff::tree::key_changes(
                            self.a.old.nodes[o],
                            self.a.new.nodes[n],
                            self.a.m.cases.get(&o).map_or(&[], Vec::as_slice),
                        );
                        (!ch.is_empty()).then(|| ch.join(", ").into_boxed_str())
                    }),
                })
            }));
            states.shrink_to_fit();
            out.push(ThreadMapping {
                old_class: ot.class.clone(),
                old_table: ot.table.clone(),
                new_class: nt.map(|t| t.class.clone()),
                new_table: nt.map(|t| t.table.clone()),
                states,
            });
        }
        out
    }

    /// A new version number: old instances keep their classes, so every state is itself.
    fn versioned_threads(&self) -> Vec<ThreadMapping> {
        self.old_c
            .threads
            .iter()
            .map(|t| ThreadMapping {
                old_class: t.class.clone(),
                old_table: t.table.clone(),
                new_class: Some(t.class.clone()),
                new_table: Some(t.table.clone()),
                states: t
                    .states
                    .iter()
                    .map(|s| StateMapping {
                        old: s.name,
                        new: Some(s.name),
                        role: s.role.clone(),
                        old_activity: s.activity.clone(),
                        new_activity: Some(s.activity.clone()),
                        wait: s.wait,
                        join: s.join,
                        change: StateChange::Unchanged,
                        old_handler_stack: s.handler_stack().clone(),
                        new_handler_stack: s.handler_stack().clone(),
                        old_subroutine_stack: s.subroutine_stack().clone(),
                        new_subroutine_stack: s.subroutine_stack().clone(),
                        other_subroutine_stacks: other_subroutine_stacks(s, |v| Some(v.clone())),
                        via: Cow::Borrowed("versioned"),
                        note: None,
                        modified: None,
                    })
                    .collect(),
            })
            .collect()
    }

    fn handlers(&self, versioned: bool) -> Vec<HandlerMapping> {
        if versioned {
            return self
                .old_c
                .response_handlers
                .iter()
                .map(|h| HandlerMapping {
                    old: h.name.clone(),
                    new: Some(h.name.clone()),
                    call: h.call.clone(),
                    new_call: None,
                    body_changed: false,
                })
                .collect();
        }
        // `OnResponse<n>` by name (the first of each name), built once: a process may have
        // tens of thousands of response handlers.
        let (old_by_name, new_by_name) =
            (handlers_by_name(self.old_c), handlers_by_name(self.new_c));
        self.a
            .diff
            .handlers
            .iter()
            .filter_map(|h| {
                Some(HandlerMapping {
                    old: h.old.clone()?,
                    new: h.new.clone(),
                    call: h.old_call.clone().unwrap_or_default(),
                    // The call now owning the handler: the renamed call, or for a removed
                    // handler, whichever call the new version gave that name to.
                    new_call: match &h.new {
                        Some(_) => h
                            .new_call
                            .clone()
                            .filter(|n| Some(n) != h.old_call.as_ref()),
                        None => h
                            .old
                            .as_deref()
                            .and_then(|o| new_by_name.get(o))
                            .map(|x| x.call.clone()),
                    },
                    body_changed: match (h.old.as_ref(), h.new.as_ref()) {
                        (Some(o), Some(n)) => {
                            match (
                                old_by_name
                                    .get(o.as_str())
                                    .and_then(|r| self.a.old.pos(r.activity.id)),
                                new_by_name
                                    .get(n.as_str())
                                    .and_then(|r| self.a.new.pos(r.activity.id)),
                            ) {
                                (Some(x), Some(y)) => {
                                    safety::response_body_changed(&self.a.old, x, &self.a.new, y)
                                }
                                _ => false,
                            }
                        }
                        _ => false,
                    },
                })
            })
            .collect()
    }

    fn context(&self) -> Vec<ContextPropertyChange> {
        self.a
            .diff
            .context
            .iter()
            .map(|c| ContextPropertyChange {
                name: c.name.clone(),
                change: match c.change {
                    ContextChangeKind::Added => PropertyChange::Added,
                    ContextChangeKind::Removed => PropertyChange::Removed,
                    ContextChangeKind::Retyped => PropertyChange::Retyped,
                    ContextChangeKind::InitialChanged => PropertyChange::InitialChanged,
                },
                old_type: c.old_type.clone(),
                new_type: c.new_type.clone(),
                default: None,
            })
            .collect()
    }

    fn apply_maps(
        &mut self,
        threads: &mut [ThreadMapping],
    ) -> Result<Vec<checks::Overridden<'x>>, OverridesError> {
        let mut overridden = Vec::new();
        let mut seen = BTreeSet::new();
        for mo in &self.ov.maps {
            let ot = find_thread(self.old_c, &mo.thread).ok_or_else(|| {
                self.ov.error(
                    mo.line,
                    format!(
                        "[[map]] thread {:?} is not a thread class of the old {}",
                        mo.thread, self.old_c.class
                    ),
                )
            })?;
            let os = ot.state(&mo.old).ok_or_else(|| {
                self.ov.error(
                    mo.line,
                    format!(
                        "[[map]] old state {:?} does not exist in {} (S1…S{})",
                        mo.old,
                        ot.class,
                        ot.states.len()
                    ),
                )
            })?;
            if !seen.insert((ot.number, os.name)) {
                return Err(self
                    .ov
                    .error(mo.line, format!("{} {} is mapped twice", ot.class, os.name)));
            }
            let tm = threads
                .iter_mut()
                .find(|t| t.old_class == ot.class)
                .ok_or_else(|| {
                    self.ov
                        .error(mo.line, format!("{} is not in the plan", ot.class))
                })?;
            let nt = tm.new_class.as_deref().and_then(|c| find_thread(self.new_c, c)).ok_or_else(|| {
                self.ov.error(mo.line, format!("{} has no counterpart in the new version, so its states cannot be mapped (rows cannot change thread class)", ot.class))
            })?;
            let ns = nt.state(&mo.new).ok_or_else(|| {
                self.ov.error(
                    mo.line,
                    format!(
                        "[[map]] new state {:?} does not exist in the new {} (S1…S{})",
                        mo.new,
                        nt.class,
                        nt.states.len()
                    ),
                )
            })?;
            let Some(sm) = tm.states.iter_mut().find(|s| s.old == os.name) else {
                continue;
            };
            sm.new = Some(ns.name);
            sm.new_activity = Some(ns.activity.clone());
            sm.change = StateChange::Overridden;
            sm.new_handler_stack = ns.handler_stack().clone();
            sm.new_subroutine_stack = ns.subroutine_stack().clone();
            sm.via = Cow::Owned(format!("override (line {})", mo.line));
            sm.note = mo.reason.clone();
            overridden.push(checks::Overridden {
                old_class: &ot.class,
                old: os,
                new_class: &nt.class,
                new: ns,
            });
            self.applied.push(format!(
                "line {}: map {} {} → {}",
                mo.line,
                short(&ot.class),
                os.name,
                ns.name
            ));
        }
        Ok(overridden)
    }

    /// The overrides file's `[[default]]`s onto the new context properties.
    fn apply_defaults(
        &mut self,
        context: &mut [ContextPropertyChange],
    ) -> Result<(), OverridesError> {
        for d in &self.ov.defaults {
            let Some(c) = context.iter_mut().find(|c| c.name == d.property) else {
                return Err(self.ov.error(
                    d.line,
                    format!(
                        "[[default]] property {:?} is not a new context property of {}",
                        d.property, self.new_c.class
                    ),
                ));
            };
            if c.change != PropertyChange::Added {
                return Err(self.ov.error(
                    d.line,
                    format!(
                        "[[default]] property {:?} is not new (it was {})",
                        d.property,
                        c.change.as_str()
                    ),
                ));
            }
            c.default = Some(d.value.clone());
            self.applied.push(format!(
                "line {}: default {} = {}",
                d.line, d.property, d.value
            ));
        }
        Ok(())
    }

    /// For every removed wait state left unmapped, the best candidate to map it to: the same
    /// call elsewhere, a new wait on that call, or the state that started the removed activity
    /// (it now goes straight on to what followed).
    /// A candidate for every removed wait state, or why none can be offered.
    ///
    /// A row waiting for a call's response holds that pending response and the handler it
    /// registered: only a new state that waits on the same call where the row can be (no
    /// fault-handler or branch boundary crossed, the same rules as the matcher) and whose
    /// handler is still that call's can take it; anywhere else the response would arrive
    /// unhandled (or at another call's handler), so those rows must drain. A row waiting for
    /// an alarm (`<delay>`) can continue where its nearest surviving predecessor leads; the
    /// reason says what that re-runs.
    fn suggestions(
        &self,
        threads: &[ThreadMapping],
        handlers: &[HandlerMapping],
        pre: &[Precondition],
    ) -> (Vec<Suggestion>, Vec<NoSuggestion>) {
        let (mut out, mut none) = (Vec::new(), Vec::new());
        let (old_f, new_f) = (ThreadFinder::new(self.old_c), ThreadFinder::new(self.new_c));
        let (to, tn) = (&self.a.old, &self.a.new);
        for t in threads {
            let (Some(ot), Some(nt)) = (
                old_f.find(&t.old_class),
                t.new_class.as_deref().and_then(|c| new_f.find(c)),
            ) else {
                continue;
            };
            if short(&ot.class) != short(&nt.class) {
                continue;
            }
            for s in t
                .states
                .iter()
                .filter(|s| s.new.is_none() && (s.wait || s.join))
            {
                let act = &s.old_activity;
                let thread = short(&t.old_class).to_string();
                let mut refuse = |reason: String| {
                    none.push(NoSuggestion {
                        thread: thread.clone(),
                        old: s.old.to_string(),
                        reason,
                    })
                };
                let Some(o) = to.pos(act.id) else { continue };
                if s.join {
                    refuse(format!(
                        "a parent resting at the join of {} waits for its child threads, which a map cannot move: let them drain",
                        act.label()
                    ));
                    continue;
                }
                // The calls whose responses a row resting here waits for.
                let node = to.nodes[o];
                let pending: Vec<String> = match node.element.as_str() {
                    "call" => node.name.iter().map(|n| n.to_string()).collect(),
                    "sync" => to.sync_calls(o).map(str::to_string).collect(),
                    _ => Vec::new(),
                };
                if pending.is_empty() {
                    if let Some(sg) = self.switched_wait(t, ot, nt, s, o) {
                        out.push(sg);
                        continue;
                    }
                    match self.by_predecessor(t, ot, nt, s) {
                        Some(Ok(sg)) => out.push(sg),
                        Some(Err(why)) => refuse(why),
                        None => {}
                    }
                    continue;
                }
                let calls = pending
                    .iter()
                    .map(|c| format!("{c:?}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let what = format!("rows there wait for the response to call {calls}");
                if let Some(c) = pending.iter().find(|c| {
                    pre.iter().any(|p| {
                        matches!(p, Precondition::NoPendingResponse { table, call, .. }
                            if *table == ot.table && call == *c)
                    })
                }) {
                    refuse(format!(
                        "{what}; the plan requires that no response is pending for {c:?} (see the preconditions), so a map would never apply to them: let them drain"
                    ));
                    continue;
                }
                // The handler each pending response was registered with, in the new version.
                let handler_gone = pending.iter().find_map(|c| {
                    let h = handlers.iter().find(|h| h.call == *c)?;
                    match &h.new {
                        None => match self
                            .new_c
                            .response_handlers
                            .iter()
                            .find(|x| x.name == h.old)
                        {
                            Some(x) if x.call == *c => None,
                            Some(x) => Some(format!(
                                "its handler {} now belongs to call {:?}",
                                h.old, x.call
                            )),
                            None => Some(format!("its handler {} was removed", h.old)),
                        },
                        Some(n) => self
                            .new_c
                            .response_handlers
                            .iter()
                            .find(|x| x.name == *n)
                            .filter(|x| x.call != *c)
                            .map(|x| {
                                format!(
                                    "its handler {} ({n} now) belongs to call {:?}",
                                    h.old, x.call
                                )
                            }),
                    }
                });
                let waits_on = |x: &crate::states::State| -> Option<usize> {
                    if x.role != crate::states::Role::SyncWait {
                        return None;
                    }
                    let p = tn.pos(x.activity.id)?;
                    let nn = tn.nodes[p];
                    let hit = match nn.element.as_str() {
                        "call" => nn
                            .name
                            .as_deref()
                            .is_some_and(|n| pending.iter().any(|c| c == n)),
                        "sync" => tn.sync_calls(p).any(|y| pending.iter().any(|c| c == y)),
                        _ => false,
                    };
                    hit.then_some(p)
                };
                let candidates: Vec<(&crate::states::State, usize)> = nt
                    .states
                    .iter()
                    .filter_map(|x| waits_on(x).map(|p| (x, p)))
                    .collect();
                // Its own counterpart, moved into another branch of a conditional they chose
                // (why it was not mapped is the note): offered, for an engineer who knows
                // those rows belong there.
                let switched = diff::statemap::branch_switch(to, tn, &self.a.m, o).is_some();
                let reachable = candidates.iter().find(|(_, n)| {
                    diff::crossing_ok(to, tn, &self.a.m, o, *n, diff::Crossing::Similar)
                        || (switched && self.a.m.o2n[o] == Some(*n))
                });
                match (reachable, handler_gone) {
                    (Some((x, w_new)), None) => {
                        // Why their own state went, and what a row resumed there skips or runs
                        // again on the way (the new version may send more before that wait).
                        let r = safety::Resume {
                            old_ref: sref(&ot.class, &s.old),
                            new_ref: new_sref(&nt.class, &x.name),
                            w_old: Some(o),
                            w_new: *w_new,
                            join: false,
                            enters: safety::entered_slot(&x.role),
                            within: None,
                            returns: false,
                        };
                        let labels = |ps: Vec<usize>| -> Vec<String> {
                            ps.into_iter()
                                .map(|p| safety::act_label(&self.a.new, p))
                                .collect()
                        };
                        let (skipped, again) =
                            (labels(safety::skips(self.a, &r)), labels(safety::reruns(self.a, &r)));
                        let why = match &s.note {
                            Some(n) => format!("old {} was removed: {n}; ", s.old),
                            None => String::new(),
                        };
                        // Into another branch than the one they chose: what follows the wait
                        // is not theirs either.
                        let after = (self.a.m.o2n[o] == Some(*w_new))
                            .then(|| diff::statemap::switched_after(to, tn, &self.a.m, o))
                            .flatten()
                            .map(|a| format!("; {a}"))
                            .unwrap_or_default();
                        let then = format!(
                            "; mapped there, {}{after}",
                            on_the_way(&skipped, &again)
                        );
                        out.push(Suggestion {
                            thread: thread.clone(),
                            old: s.old.to_string(),
                            new: x.name.to_string(),
                            reason: format!(
                                "{why}new {} still waits on call {calls} ({} of {}), and the pending response completes that wait{then}",
                                x.name,
                                x.role,
                                x.activity.label()
                            ),
                        })
                    }
                    (Some(_), Some(gone)) => refuse(format!(
                        "{what}, and {gone}: the response would arrive unhandled, whatever state they are mapped to: let them drain"
                    )),
                    (None, gone) => {
                        let elsewhere = candidates
                            .iter()
                            .map(|(x, n)| {
                                let handler_label = |t: &Tree, h: usize| {
                                    let parent = t.parent(h).map(|s| format!(" of {}", t.label(s)));
                                    format!("{}{}", t.element(h), parent.unwrap_or_default())
                                };
                                let why = match (to.handler(o), tn.handler(*n)) {
                                    (Some(h), None) => format!(
                                        "on the normal path, while they wait inside the {}",
                                        handler_label(to, h)
                                    ),
                                    (None, Some(h)) => format!(
                                        "inside the {}, while they wait on the normal path",
                                        handler_label(tn, h)
                                    ),
                                    (Some(ho), Some(hn)) if self.a.m.o2n[ho] != Some(hn) => {
                                        let (mut a, mut b) = (tn.describe(hn), to.describe(ho));
                                        // Named alike (a catch that kept its name, not its
                                        // fault): told apart by what they catch.
                                        if a == b {
                                            a = format!("{a} {}", tn.handler_tag(hn));
                                            b = format!("{b} {}", to.handler_tag(ho));
                                        }
                                        format!(
                                            "inside {a}, while they wait inside {b}, another fault handler"
                                        )
                                    }
                                    _ => "in a branch that is not the counterpart of theirs"
                                        .to_string(),
                                };
                                format!("{} ({} of {}, {why})", x.name, x.role, x.activity.label())
                            })
                            .collect::<Vec<_>>();
                        let mut reason = what.clone();
                        if let Some(g) = gone {
                            reason.push_str(&format!(", and {g}"));
                        }
                        let mut elsewhere_thread = false;
                        if elsewhere.is_empty() {
                            // Waits of other thread classes are no place for these rows (a row
                            // cannot move to another thread class): say so, not that nothing waits.
                            let others: Vec<String> = self
                                .new_c
                                .threads
                                .iter()
                                .filter(|x| x.number != nt.number)
                                .flat_map(|x| {
                                    x.states
                                        .iter()
                                        .filter(|st| waits_on(st).is_some())
                                        .map(|st| format!("{}:{}", short(&x.class), st.name))
                                })
                                .collect();
                            let own = short(&nt.class);
                            if others.is_empty() {
                                reason.push_str("; no state of the new version waits on it");
                            } else {
                                elsewhere_thread = true;
                                reason.push_str(&format!(
                                    "; no state of {own} waits on it in the new version (only {} of another thread class, where rows of {own} cannot move)",
                                    others.join(", ")
                                ));
                            }
                        } else {
                            reason.push_str(&format!(
                                "; the new version waits on it only where they cannot be: {}",
                                elsewhere.join(", ")
                            ));
                        }
                        reason.push_str(&format!(
                            ": mapped anywhere else{}, no wait would take that response; let them drain",
                            if elsewhere_thread { format!(" in {}", short(&nt.class)) } else { String::new() }
                        ));
                        refuse(reason);
                    }
                }
            }
        }
        (out, none)
    }

    /// The nearest surviving predecessor of a removed wait state that waits for an alarm,
    /// with what a row mapped there runs again; `Err` says why none is offered (the
    /// predecessor dispatches a fault: a row mapped there would dispatch it again and run
    /// whatever handler the new version chooses).
    /// A wait state (not a call's: those are offered with the pending response checked) whose
    /// activity moved into another branch of a conditional the rows chose: its own state
    /// there, with why it was not mapped (the note) and what a row mapped there skips or runs
    /// again.
    fn switched_wait(
        &self,
        t: &ThreadMapping,
        ot: &ThreadClass,
        nt: &ThreadClass,
        s: &StateMapping,
        o: usize,
    ) -> Option<Suggestion> {
        let (to, tn, m) = (&self.a.old, &self.a.new, &self.a.m);
        diff::statemap::branch_switch(to, tn, m, o)?;
        let (n, role) = diff::statemap::counterpart_key(o, &s.role, to, tn, m).ok()?;
        let x = nt
            .states
            .iter()
            .find(|x| x.role == role && tn.pos(x.activity.id) == Some(n))?;
        let r = safety::Resume {
            old_ref: sref(&ot.class, &s.old),
            new_ref: new_sref(&nt.class, &x.name.to_string()),
            w_old: Some(o),
            w_new: n,
            join: false,
            enters: safety::entered_slot(&x.role),
            within: None,
            returns: false,
        };
        let labels = |ps: Vec<usize>| -> Vec<String> {
            ps.into_iter().map(|p| safety::act_label(tn, p)).collect()
        };
        let (skipped, again) = (
            labels(safety::skips(self.a, &r)),
            labels(safety::reruns(self.a, &r)),
        );
        let after = diff::statemap::switched_after(to, tn, m, o)
            .map(|a| format!("; {a}"))
            .unwrap_or_default();
        let then = format!("{}{after}", on_the_way(&skipped, &again));
        Some(Suggestion {
            thread: short(&t.old_class).to_string(),
            old: s.old.to_string(),
            new: x.name.to_string(),
            reason: format!(
                "old {} was removed: {}; new {} is the same wait ({} of {}): mapped there, {then}",
                s.old,
                s.note.as_deref().unwrap_or_default(),
                x.name,
                x.role,
                x.activity.label()
            ),
        })
    }

    fn by_predecessor(
        &self,
        t: &ThreadMapping,
        ot: &ThreadClass,
        nt: &ThreadClass,
        s: &StateMapping,
    ) -> Option<Result<Suggestion, String>> {
        let act = &s.old_activity;
        // Back through removed states to the nearest one that still has a counterpart.
        let mut at = s.old;
        let mut seen = BTreeSet::new();
        let mut via = Vec::new();
        let (pred, mapped) = loop {
            if !seen.insert(at) {
                return None;
            }
            let pred = ot
                .states
                .iter()
                .find(|p| p.name != at && p.successors.contains(&at))?;
            match t.states.iter().find(|m| m.old == pred.name)?.new {
                Some(n) => break (pred, n),
                None => {
                    if pred.activity.label() != act.label() {
                        via.push(format!(
                            "{} ({} of {})",
                            pred.name,
                            pred.role,
                            pred.activity.label()
                        ));
                    }
                    at = pred.name;
                }
            }
        };
        let ns = nt.states.iter().find(|x| x.name == mapped)?;
        via.reverse();
        if matches!(ns.role, Role::ScopeFault | Role::CatchDefault) {
            let path = if via.is_empty() {
                String::new()
            } else {
                format!(" through removed {}", via.join(", "))
            };
            return Some(Err(format!(
                "the nearest surviving state before {} is {} ({} of {}){path}, which dispatches the fault: rows mapped there \
                 would dispatch it again to whatever handler the new version has for it and run that handler, not continue \
                 where {} was; map them by hand after checking that handler, or let them drain",
                act.label(),
                mapped,
                ns.role,
                ns.activity.label(),
                act.label()
            )));
        }
        let w_new = self.a.new.pos(ns.activity.id)?;
        let r = safety::Resume {
            old_ref: sref(&ot.class, &s.old),
            new_ref: new_sref(&nt.class, &mapped),
            w_old: self.a.old.pos(act.id),
            w_new,
            join: false,
            enters: safety::entered_slot(&ns.role),
            within: None,
            returns: false,
        };
        let again: Vec<String> = safety::reruns(self.a, &r)
            .into_iter()
            .map(|p| safety::act_label(&self.a.new, p))
            .collect();
        let led = if via.is_empty() {
            "led to".to_string()
        } else {
            format!("led (via removed {}) to", via.join(", "))
        };
        let when = if act.element == "delay" {
            "once the alarm they still hold fires"
        } else {
            "once what they wait for arrives"
        };
        let then = if again.is_empty() {
            format!(
                "mapped to {mapped}, they continue where {} was {when}, and nothing runs again",
                act.label()
            )
        } else {
            format!(
                "mapped to {mapped}, they start it over {when}: they run again {} before reaching where {} was",
                again.join(", "),
                act.label()
            )
        };
        Some(Ok(Suggestion {
            thread: short(&t.old_class).to_string(),
            old: s.old.to_string(),
            new: mapped.to_string(),
            reason: format!(
                "{} ({} of {}) {led} {} in the old version; {then}",
                pred.name,
                pred.role,
                pred.activity.label(),
                act.label(),
            ),
        }))
    }

    /// Mark acknowledged findings; every `[[ack]]` must match one.
    fn apply_acks(&mut self, findings: &mut [Finding]) -> Result<(), OverridesError> {
        for ack in &self.ov.acks {
            let code = lookup(&ack.code).ok_or_else(|| {
                self.ov.error(
                    ack.line,
                    format!(
                        "[[ack]] code {:?} is not a finding code (see `plan::findings`)",
                        ack.code
                    ),
                )
            })?;
            let want_state: Option<String> = match (&ack.thread, &ack.state) {
                (_, Some(s)) if s.contains(':') => Some(s.clone()),
                (Some(t), Some(s)) => Some(format!(
                    "{}:{s}",
                    find_thread(self.old_c, t)
                        .map(|x| short(&x.class).to_string())
                        .unwrap_or_else(|| t.clone())
                )),
                (None, Some(s)) => Some(format!(":{s}")),
                (Some(t), None) => Some(format!(
                    "{}:",
                    find_thread(self.old_c, t)
                        .map(|x| short(&x.class).to_string())
                        .unwrap_or_else(|| t.clone())
                )),
                (None, None) => None,
            };
            let mut hit = false;
            for f in findings.iter_mut().filter(|f| f.code == code) {
                let ok = match &want_state {
                    None => true,
                    Some(w) if w.starts_with(':') => f
                        .states
                        .iter()
                        .any(|s| !s.starts_with("new:") && s.ends_with(w.as_str())),
                    Some(w) if w.ends_with(':') => {
                        f.states.iter().any(|s| s.starts_with(w.as_str()))
                    }
                    Some(w) => f.states.iter().any(|s| s == w),
                };
                if ok {
                    f.acknowledged = true;
                    hit = true;
                }
            }
            if !hit {
                let which = want_state
                    .map(|w| format!(" at {}", w.trim_matches(':')))
                    .unwrap_or_default();
                return Err(self.ov.error(
                    ack.line,
                    format!(
                        "[[ack]] {}{which}: no such finding in this plan",
                        code.rule().code
                    ),
                ));
            }
            let reason = ack
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default();
            self.applied.push(format!(
                "line {}: ack {}{}{reason}",
                ack.line,
                code.rule().code,
                ack.state
                    .as_deref()
                    .map(|s| format!(" {s}"))
                    .unwrap_or_default()
            ));
        }
        Ok(())
    }
}

/// The verdict of a plan: what its scope rewrites and what its findings and preconditions
/// say. Errors whose remedy is letting instances drain (a removed wait state, an awaited call
/// that now expects another response) do not block a plan that has nothing to rewrite: such
/// a plan is `drain`.
fn verdict(scope: &checks::Scope, out: &checks::Findings, identical: bool) -> Verdict {
    let drainable = |f: &Finding| f.code.drainable();
    let open_errors: Vec<&Finding> = out
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error && !f.acknowledged)
        .collect();
    let hard_block = open_errors.iter().any(|f| !drainable(f));
    let rewrite = scope.threads.iter().any(|t| {
        t.new_class.is_some()
            && Some(short(&t.old_class)) == t.new_class.as_deref().map(short)
            && t.states.iter().any(|s| {
                s.new.is_some()
                    && matches!(s.change, StateChange::Renumbered | StateChange::Overridden)
            })
    }) || scope
        .handlers
        .iter()
        .any(|h| h.new.as_deref().is_some_and(|n| n != h.old.as_str()))
        || scope.context.iter().any(|c| c.default.is_some());
    let must_drain = out.pre.iter().any(|p| {
        matches!(
            p,
            Precondition::NoRowsAtState { .. }
                | Precondition::NoRowsInTable { .. }
                | Precondition::NoPendingResponse { .. }
        )
    });
    if scope.class_changed || hard_block {
        Verdict::Blocked
    } else if scope.versioned {
        Verdict::Compatible
    } else if identical {
        Verdict::Identical
    } else if rewrite && !open_errors.is_empty() {
        Verdict::Blocked
    } else if rewrite {
        Verdict::Migratable
    } else if must_drain {
        Verdict::Drain
    } else {
        Verdict::Compatible
    }
}

/// A `%SubroutineStack` entry is the return state of one `<compensate>`: it may only become
/// the return state of that same (matched) `<compensate>`, never the one a fresh instance at
/// the new state would hold (which may belong to another compensate, e.g. one in another fault
/// handler). So the new subroutine stack is the old one mapped element-wise; when an element has
/// no counterpart it stays as it is here (nothing is rewritten) and the rows holding it are
/// refused by a precondition guard (`sql`), reported by BPM0110.
///
/// The other values rows can hold there (a handler run by several `<compensate>`s) follow the
/// same rule, at every state: `new` None when an element has no counterpart.
fn return_states_follow_their_compensate(t: &mut ThreadMapping) {
    let map = t.state_map();
    for s in &mut t.states {
        for a in s.other_subroutine_stacks.iter_mut() {
            a.new = ThreadMapping::map_stack(&map, &a.old).ok();
        }
        if s.new.is_none() {
            continue;
        }
        s.new_subroutine_stack = ThreadMapping::map_stack(&map, &s.old_subroutine_stack)
            .unwrap_or_else(|_| s.old_subroutine_stack.clone());
    }
}

/// The `%SubroutineStack` values of `s` besides the first, each with `new(value)`.
fn other_subroutine_stacks(
    s: &crate::states::State,
    new: impl Fn(&StateNames) -> Option<StateNames>,
) -> StackAlternatives {
    match s.subroutine_stack_alternatives() {
        [] | [_] => StackAlternatives::default(),
        [_, others @ ..] => others
            .iter()
            .map(|v| StackAlternative {
                old: v.clone(),
                new: new(v),
            })
            .collect::<Vec<_>>()
            .into(),
    }
}

fn handler_number(name: &str) -> u64 {
    name.trim_start_matches("OnResponse")
        .parse()
        .unwrap_or(u64::MAX)
}

fn source(b: &Bpl, c: &CompiledProcess) -> PlanSource {
    PlanSource {
        origin: b.source.origin.clone(),
        sha256: b.source.sha256.clone(),
        class: c.class.clone(),
        package: c.package.clone(),
        version: c.version,
    }
}

/// First 16 hex digits of SHA-256 over the canonical JSON of the plan with `plan_id` empty.
pub fn plan_id(plan: &MigrationPlan) -> Result<String, PlanError> {
    plan_id_of_own(&mut plan.clone())
}

/// What a row mapped onto a wait by a suggestion skips or runs again on its way there (only
/// up to that wait: what follows it in a branch they did not choose is said by
/// [`diff::statemap::switched_after`]).
fn on_the_way(skipped: &[String], again: &[String]) -> String {
    let mut then = Vec::new();
    if !skipped.is_empty() {
        then.push(format!(
            "they skip {}, which the new version runs before that wait",
            skipped.join(", ")
        ));
    }
    if !again.is_empty() {
        then.push(format!("they run {} again", again.join(", ")));
    }
    if then.is_empty() {
        "on the way to that wait they skip nothing and run nothing again".to_string()
    } else {
        then.join(", and ")
    }
}

/// [`plan_id`] of a plan the caller owns, without copying it: the fields left out of the
/// identity are taken out for the hash and put back.
fn plan_id_of_own(p: &mut MigrationPlan) -> Result<String, PlanError> {
    // Content-addressed: the same change planned from another checkout (other paths) or by
    // another tool build is the same migration, so the history check still recognizes it.
    let kept = (
        std::mem::take(&mut p.plan_id),
        std::mem::take(&mut p.old.origin),
        std::mem::take(&mut p.new.origin),
        std::mem::take(&mut p.tool_version),
    );
    // Hashed as it is serialized: the JSON of a large plan is tens of megabytes.
    // Buffered: the serializer writes many short pieces, the hash wants whole blocks.
    let mut h = sha2::Sha256::default();
    let written = {
        let mut w = std::io::BufWriter::with_capacity(1 << 16, &mut h);
        serde_json::to_writer(&mut w, &*p)
            .map_err(|e| e.to_string())
            .and_then(|()| std::io::Write::flush(&mut w).map_err(|e| e.to_string()))
    };
    (p.plan_id, p.old.origin, p.new.origin, p.tool_version) = kept;
    written.map_err(PlanError::Serialize)?;
    let d = sha2::Digest::finalize(h);
    Ok(d.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use crate::bpl::{load, LoadOptions};
    use crate::plan::Overrides;
    use crate::states::{compile, Compiler};

    /// A `[[default]]` for a property that is not new names what it is, in the word the plan
    /// shows (not the enum's debug name).
    #[test]
    fn a_default_for_a_retyped_property_says_retyped() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/changes/context_property_retyped"
        );
        let opts = LoadOptions::default();
        let (o, n) = (
            load(&format!("{dir}/old.cls"), &opts).unwrap(),
            load(&format!("{dir}/new.cls"), &opts).unwrap(),
        );
        let (oc, nc) = (
            compile(&o, Compiler::Current).unwrap(),
            compile(&n, Compiler::Current).unwrap(),
        );
        let ov = Overrides::parse(
            "ov.toml",
            "[[default]]\nproperty = \"Score\"\nvalue = \"1\"\n",
        )
        .unwrap();
        let err = super::build(&o, &n, &oc, &nc, Some(&ov))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("[[default]] property \"Score\" is not new (it was retyped)"),
            "{err}"
        );
    }

    /// A removed and an added context property of the same type read as a rename only when
    /// every activity that used the old one now uses the new one.
    #[test]
    fn a_rename_hint_needs_every_old_user_to_use_the_new_property() {
        let doc = |prop: &str, set: &str, shown: &str| {
            format!(
                "<process request='Ens.Request' response='Ens.Response'><context>\
                 <property name='{prop}' type='%Integer'/><property name='Total' type='%Integer'/></context>\
                 <sequence><assign name='Set' property='context.{set}' value='42'/>\
                 <call name='Ask' target='AskOp' async='0'><request type='Ens.Request'/></call>\
                 <trace name='Show' value='context.{shown}'/></sequence></process>"
            )
        };
        let hint = |new: &str| {
            let o =
                crate::bpl::parse_bare("old", &doc("Score", "Score", "Score"), "Demo.P").unwrap();
            let n = crate::bpl::parse_bare("new", new, "Demo.P").unwrap();
            let (oc, nc) = (
                compile(&o, Compiler::Current).unwrap(),
                compile(&n, Compiler::Current).unwrap(),
            );
            let p = super::build(&o, &n, &oc, &nc, None).unwrap();
            let f = p
                .findings
                .iter()
                .find(|f| f.code == crate::plan::findings::Code::NewContextProperty)
                .expect("RiskScore is read after the wait");
            f.message.contains("looks like Score renamed")
        };
        assert!(hint(&doc("RiskScore", "RiskScore", "RiskScore")));
        // `Set` now writes another property: Score's users do not all use RiskScore.
        assert!(!hint(&doc("RiskScore", "Total", "RiskScore")));
        // Another type is no rename.
        assert!(!hint(&doc("RiskScore", "RiskScore", "RiskScore").replace(
            "name='RiskScore' type='%Integer'",
            "name='RiskScore' type='%String'"
        )));
    }
}
