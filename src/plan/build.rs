//! Diff + overrides → `MigrationPlan`.

use super::findings::{finding, lookup, Code, FindingExt};
use super::model::*;
use super::overrides::{Overrides, OverridesError};
use super::safety::{self, new_sref, short, sref};
use crate::bpl::Bpl;
use crate::diff::tree::Tree;
use crate::diff::MatchLimits;
use crate::diff::{
    self, Analysis, ContextChangeKind, DeltaKind, DiffError, MatchIssue, Pin, ProcessDiff,
};
use crate::states::{CompiledProcess, ThreadClass};
use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Overrides(#[from] OverridesError),
    #[error(transparent)]
    Diff(#[from] DiffError),
    #[error("cannot serialize the plan: {0}")]
    Serialize(String),
}

/// The diff and the plan built from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub diff: ProcessDiff,
    pub plan: MigrationPlan,
}

/// Build the migration plan for `old` → `new` (both already compiled with the same compiler
/// generation), steered by an optional overrides file.
pub fn build(
    old: &Bpl,
    new: &Bpl,
    old_c: &CompiledProcess,
    new_c: &CompiledProcess,
    overrides: Option<&Overrides>,
) -> Result<Planned, PlanError> {
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
) -> Result<Planned, PlanError> {
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
    let pins = resolve_pins(old, new, ov)?;
    let a = diff::analyze(old, new, old_c, new_c, &pins, limits)?;
    let mut b = Builder {
        a: &a,
        old_c,
        new_c,
        ov,
        findings: Vec::new(),
        pre: Vec::new(),
        applied: Vec::new(),
        default_suggestions: Vec::new(),
    };
    let plan = b.plan(old, new)?;
    // Moved out, not copied: the diff of a large process is tens of megabytes.
    Ok(Planned { diff: a.diff, plan })
}

fn resolve_pins(old: &Bpl, new: &Bpl, ov: &Overrides) -> Result<Vec<Pin>, OverridesError> {
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

/// [`find_thread`] for many look-ups: the first thread class matching by class, short class
/// or number is the first of the first matches of each kind.
struct ThreadFinder<'c> {
    c: &'c CompiledProcess,
    class: HashMap<&'c str, usize>,
    short: HashMap<&'c str, usize>,
    number: HashMap<u32, usize>,
}

impl<'c> ThreadFinder<'c> {
    fn new(c: &'c CompiledProcess) -> ThreadFinder<'c> {
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

    fn find(&self, s: &str) -> Option<&'c ThreadClass> {
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

struct Builder<'x, 'a> {
    a: &'x Analysis<'a>,
    old_c: &'x CompiledProcess,
    new_c: &'x CompiledProcess,
    ov: &'x Overrides,
    findings: Vec<Finding>,
    pre: Vec<Precondition>,
    applied: Vec<String>,
    default_suggestions: Vec<DefaultSuggestion>,
}

impl Builder<'_, '_> {
    fn plan(&mut self, old: &Bpl, new: &Bpl) -> Result<MigrationPlan, PlanError> {
        let (old_c, new_c) = (self.old_c, self.new_c);
        let versioned = old_c.package != new_c.package && old_c.class == new_c.class;
        let class_changed = old_c.class != new_c.class;
        let mut threads = if versioned {
            self.versioned_threads()
        } else {
            self.threads()
        };
        let mut handlers = self.handlers(versioned);
        let mut context = self.context();
        if class_changed {
            self.findings.push(finding(
                Code::ClassChanged,
                format!(
                    "old is {} but new is {}: their instances live in different tables",
                    old_c.class, new_c.class
                ),
            ));
        }
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
                return Err(self
                    .ov
                    .error(line, format!("{what} does not apply: {why}"))
                    .into());
            }
        }
        if versioned {
            self.findings.push(finding(
                Code::VersionedProcess,
                format!("{} compiles into {} (old) and {} (new): in-flight instances keep running on the old classes", old_c.class, old_c.package, new_c.package),
            ));
            if old_c.version.is_none() || new_c.version.is_none() {
                self.findings.push(finding(
                    Code::UnversionedToVersioned,
                    format!(
                        "{} changed from {} to {}",
                        old_c.class,
                        describe_version(old_c.version),
                        describe_version(new_c.version)
                    ),
                ));
            }
        } else {
            self.apply_maps(&mut threads)?;
            self.matching_findings();
            self.thread_findings(&threads);
            self.state_findings(&threads);
            self.handler_findings(&handlers);
            let (cf, cp, _removed) = safety::call_changes(self.a, old_c);
            self.findings.extend(cf);
            self.pre.extend(cp);
            self.findings.extend(safety::sync_changes(self.a, old_c));
            let (old_f, new_f) = (ThreadFinder::new(old_c), ThreadFinder::new(new_c));
            let tm: Vec<(u32, Option<u32>, &[StateMapping])> = threads
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
                .collect();
            let resumes = safety::resume_points(self.a, old_c, new_c, &tm);
            self.findings
                .extend(safety::resume_findings(self.a, &resumes));
            self.context_findings(&resumes, &mut context)?;
            self.findings.extend(safety::toggles(self.a, old_c, new_c));
            self.process_findings(old, new);
        }
        self.apply_acks()?;
        // Verdict. Errors whose remedy is letting instances drain (a removed wait state, an
        // awaited call that now expects another response) do not block a plan that has
        // nothing to rewrite: such a plan is `drain`.
        let drainable =
            |f: &Finding| f.code == Code::RemovedWaitState || f.code == Code::AwaitedCallChanged;
        let open_errors: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error && !f.acknowledged)
            .collect();
        let hard_block = open_errors.iter().any(|f| !drainable(f));
        let rewrite = threads.iter().any(|t| {
            t.new_class.is_some()
                && Some(short(&t.old_class)) == t.new_class.as_deref().map(short)
                && t.states.iter().any(|s| {
                    s.new.is_some()
                        && matches!(s.change, StateChange::Renumbered | StateChange::Overridden)
                })
        }) || handlers
            .iter()
            .any(|h| h.new.as_deref().is_some_and(|n| n != h.old.as_str()))
            || context.iter().any(|c| c.default.is_some());
        let must_drain = self.pre.iter().any(|p| {
            matches!(
                p,
                Precondition::NoRowsAtState { .. }
                    | Precondition::NoRowsInTable { .. }
                    | Precondition::NoPendingResponse { .. }
            )
        });
        let verdict = if class_changed || hard_block {
            Verdict::Blocked
        } else if versioned {
            Verdict::Compatible
        } else if self.a.diff.identical {
            Verdict::Identical
        } else if rewrite && !open_errors.is_empty() {
            Verdict::Blocked
        } else if rewrite {
            Verdict::Migratable
        } else if must_drain {
            Verdict::Drain
        } else {
            Verdict::Compatible
        };
        if matches!(
            verdict,
            Verdict::Migratable | Verdict::Blocked | Verdict::Drain
        ) && !class_changed
        {
            self.findings.push(finding(
                Code::ActorPool,
                format!("if {} runs with PoolSize = 0 (the shared actor pool) it cannot be disabled on its own: stop the production before applying", old_c.class),
            ));
            let mut pre = vec![
                Precondition::HostDisabled {
                    class: old_c.class.clone(),
                },
                Precondition::NoLiveJob {
                    class: old_c.class.clone(),
                },
            ];
            pre.append(&mut self.pre);
            self.pre = pre;
        } else {
            // Nothing will be applied: preconditions would only be noise.
            self.pre.clear();
        }
        // A hash set: the Debug strings share long prefixes, which an ordered set compares.
        let mut seen = HashSet::new();
        let mut preconditions: Vec<Precondition> = std::mem::take(&mut self.pre)
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
        let mut findings = std::mem::take(&mut self.findings);
        // States compare numerically (S9 before S11).
        let skey = |f: &Finding| {
            f.states
                .iter()
                .map(|s| super::render::state_key(s))
                .collect::<Vec<_>>()
        };
        findings.sort_by(|x, y| {
            (std::cmp::Reverse(x.severity), &x.code, skey(x), &x.message).cmp(&(
                std::cmp::Reverse(y.severity),
                &y.code,
                skey(y),
                &y.message,
            ))
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
            default_suggestions: std::mem::take(&mut self.default_suggestions),
            overrides: std::mem::take(&mut self.applied),
        };
        plan.plan_id = plan_id_of_own(&mut plan)?;
        Ok(plan)
    }

    fn threads(&self) -> Vec<ThreadMapping> {
        let mut out = Vec::new();
        let (old_t, new_t) = (
            self.old_c.threads_by_number(),
            self.new_c.threads_by_number(),
        );
        for td in &self.a.diff.threads {
            let Some(ot) = td.old.and_then(|n| old_t.get(&n).copied()) else {
                continue;
            };
            let nt = td.new.and_then(|n| new_t.get(&n).copied());
            let states = td
                .states
                .iter()
                .filter_map(|sd| {
                    let os = ot.state(sd.old.as_deref()?)?;
                    let ns = sd.new.as_deref().and_then(|n| nt?.state(n));
                    Some(StateMapping {
                        old: os.name.clone(),
                        new: ns.map(|s| s.name.clone()),
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
                        old_handler_stack: os.handler_stack.clone(),
                        new_handler_stack: ns.map(|s| s.handler_stack.clone()).unwrap_or_default(),
                        old_subroutine_stack: os.subroutine_stack.clone(),
                        new_subroutine_stack: ns
                            .map(|s| s.subroutine_stack.clone())
                            .unwrap_or_default(),
                        via: match (ns, sd.via) {
                            (Some(_), Some(v)) => v.as_str().to_string(),
                            (Some(_), None) => "matched".to_string(),
                            (None, _) => "removed".to_string(),
                        },
                        note: sd.note.clone(),
                        modified: ns.and_then(|_| {
                            let (o, n) = (
                                self.a.old.pos(os.activity.id)?,
                                self.a.new.pos(ns?.activity.id)?,
                            );
                            let ch = crate::diff::tree::key_changes(
                                self.a.old.nodes[o],
                                self.a.new.nodes[n],
                            );
                            (!ch.is_empty()).then(|| ch.join(", "))
                        }),
                    })
                })
                .collect();
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
                        old: s.name.clone(),
                        new: Some(s.name.clone()),
                        role: s.role.clone(),
                        old_activity: s.activity.clone(),
                        new_activity: Some(s.activity.clone()),
                        wait: s.wait,
                        join: s.join,
                        change: StateChange::Unchanged,
                        old_handler_stack: s.handler_stack.clone(),
                        new_handler_stack: s.handler_stack.clone(),
                        old_subroutine_stack: s.subroutine_stack.clone(),
                        new_subroutine_stack: s.subroutine_stack.clone(),
                        via: "versioned".to_string(),
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
                },
                old_type: c.old_type.clone(),
                new_type: c.new_type.clone(),
                default: None,
            })
            .collect()
    }

    fn apply_maps(&mut self, threads: &mut [ThreadMapping]) -> Result<(), OverridesError> {
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
            if !seen.insert((ot.number, os.name.clone())) {
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
            sm.new = Some(ns.name.clone());
            sm.new_activity = Some(ns.activity.clone());
            sm.change = StateChange::Overridden;
            sm.new_handler_stack = ns.handler_stack.clone();
            sm.new_subroutine_stack = ns.subroutine_stack.clone();
            sm.via = format!("override (line {})", mo.line);
            sm.note = mo.reason.clone();
            let rests = os.wait || os.join;
            let lands = ns.wait || ns.join;
            let mut f = finding(
                Code::StateOverridden,
                format!(
                    "{} ({} of {}) is mapped by the overrides file to {} ({} of {}){}",
                    sref(&ot.class, &os.name),
                    os.role,
                    os.activity.label(),
                    new_sref(&nt.class, &ns.name),
                    ns.role,
                    ns.activity.label(),
                    if rests && !lands { "; it is not a wait state: waiting rows run it as soon as what they wait for arrives" } else { "" }
                ),
            )
            .states([sref(&ot.class, &os.name), new_sref(&nt.class, &ns.name)])
            .old_acts([os.activity.clone()])
            .new_acts([ns.activity.clone()]);
            if rests && !lands {
                f = f.severity(Severity::Warning);
            }
            self.findings.push(f);
            self.applied.push(format!(
                "line {}: map {} {} → {}",
                mo.line,
                short(&ot.class),
                os.name,
                ns.name
            ));
        }
        Ok(())
    }

    fn matching_findings(&mut self) {
        let (to, tn) = (&self.a.old, &self.a.new);
        let (oo, no) = (
            safety::owners(to, self.old_c),
            safety::owners(tn, self.new_c),
        );
        // (owner position, thread index, state index) of every old state, sorted; made on
        // first use.
        let by_owner: OnceCell<Vec<(usize, usize, usize)>> = OnceCell::new();
        let owned_states = |ids: &[crate::states::ActivityRef]| -> Vec<String> {
            let by_owner = by_owner.get_or_init(|| {
                let mut v = Vec::new();
                for (ti, t) in self.old_c.threads.iter().enumerate() {
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
                let upto = by_owner.partition_point(|&(q, _, _)| q <= to.end[p]);
                let mut hits: Vec<(usize, usize)> = by_owner[from..upto]
                    .iter()
                    .map(|&(_, ti, si)| (ti, si))
                    .collect();
                hits.sort_unstable();
                for (ti, si) in hits {
                    let t = &self.old_c.threads[ti];
                    v.push(sref(&t.class, &t.states[si].name));
                }
            }
            v
        };
        for issue in &self.a.diff.issues {
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
                    let mut f = finding(
                        Code::AmbiguousMatch,
                        format!(
                            "{reason} (old: {}; new: {}){choice}; pin the right pair",
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
                    self.findings.push(f);
                }
                MatchIssue::Positional { old, new } => {
                    let owns = to.pos(old.id).is_some_and(|p| oo.contains(&p));
                    if owns {
                        self.findings.push(
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
                    self.findings.push(
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

    fn thread_findings(&mut self, threads: &[ThreadMapping]) {
        for t in threads {
            let old_short = short(&t.old_class);
            match t.new_class.as_deref() {
                Some(nc) if short(nc) == old_short => {}
                Some(nc) => {
                    self.findings.push(
                        finding(
                            Code::ThreadRenumbered,
                            format!("flow branch thread {} became {}: rows of {} would run another branch's code", t.old_class, nc, t.old_table),
                        )
                        .states([format!("{old_short}:*")]),
                    );
                    self.pre.push(Precondition::NoRowsInTable {
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
                    self.findings.push(
                        finding(
                            Code::ThreadRemoved,
                            format!(
                                "thread class {} has no counterpart in the new version: the stale class stays compiled, and a row left unfinished in it would keep running the old code",
                                t.old_class
                            ),
                        )
                        .states([format!("{old_short}:*")]),
                    );
                    self.pre.push(Precondition::NoRowsInTable {
                        table: t.old_table.clone(),
                        reason: format!("{old_short} has no counterpart in the new version; no row of a running instance may remain in {}", t.old_table),
                    });
                }
            }
        }
    }

    fn state_findings(&mut self, threads: &[ThreadMapping]) {
        for t in threads {
            // A renumbered or removed thread class is guarded as a whole (empty table).
            if t.new_class.as_deref().map(short) != Some(short(&t.old_class)) {
                continue;
            }
            let map: BTreeMap<&str, Option<&str>> = t
                .states
                .iter()
                .map(|s| (s.old.as_str(), s.new.as_deref()))
                .collect();
            let mut renumbered = Vec::new();
            let mut stack_changed = Vec::new();
            // One finding per removed activity, listing its states.
            let mut removed: Vec<(crate::states::ActivityRef, Vec<&StateMapping>, String)> =
                Vec::new();
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
                        self.pre.push(Precondition::NoRowsAtState {
                            table: t.old_table.clone(),
                            state: s.old.clone(),
                            // The same words for every state of one removed activity, so a
                            // review groups them into one line.
                            reason: s.note.clone().unwrap_or_else(|| {
                                format!("{} has no counterpart", s.old_activity.label())
                            }),
                        });
                    }
                    (Some(n), StateChange::Renumbered) => {
                        renumbered.push(format!("{}→{}", s.old, n))
                    }
                    _ => {}
                }
                if s.new.is_some() {
                    // The old stack, each state mapped, is the new stack: nothing to rewrite.
                    let maps_onto = |old: &[String], new: &[String]| {
                        old.len() == new.len()
                            && old
                                .iter()
                                .zip(new)
                                .all(|(o, n)| map.get(o.as_str()).copied().flatten() == Some(n))
                    };
                    if !maps_onto(&s.old_handler_stack, &s.new_handler_stack)
                        || !maps_onto(&s.old_subroutine_stack, &s.new_subroutine_stack)
                    {
                        stack_changed.push(format!(
                            "{} [{}]→[{}]",
                            s.old,
                            s.old_handler_stack
                                .iter()
                                .chain(s.old_subroutine_stack.iter())
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(","),
                            s.new_handler_stack
                                .iter()
                                .chain(s.new_subroutine_stack.iter())
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(",")
                        ));
                    }
                }
            }
            for (act, states, why) in &removed {
                let rests = states.iter().any(|s| s.wait || s.join);
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
                let what = if rests {
                    "instances can wait there"
                } else {
                    "no instance waits there"
                };
                self.findings.push(
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
                self.findings.push(
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
            if !stack_changed.is_empty() {
                self.findings.push(finding(
                    Code::StackChanged,
                    format!(
                        "{old_short}: rows get a different handler/subroutine stack at {}",
                        stack_changed.join("; ")
                    ),
                ));
            }
        }
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
                        old: s.old.clone(),
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
                    "call" => node.name.iter().cloned().collect(),
                    "sync" => node
                        .attrs
                        .get("calls")
                        .map(|c| {
                            c.split(',')
                                .map(|x| x.trim().to_string())
                                .filter(|x| !x.is_empty())
                                .collect()
                        })
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                if pending.is_empty() {
                    if let Some(sg) = self.by_predecessor(t, ot, nt, s) {
                        out.push(sg);
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
                        "sync" => nn.attrs.get("calls").is_some_and(|cs| {
                            cs.split(',').any(|y| pending.iter().any(|c| c == y.trim()))
                        }),
                        _ => false,
                    };
                    hit.then_some(p)
                };
                let candidates: Vec<(&crate::states::State, usize)> = nt
                    .states
                    .iter()
                    .filter_map(|x| waits_on(x).map(|p| (x, p)))
                    .collect();
                let reachable = candidates.iter().find(|(_, n)| {
                    diff::crossing_ok(to, tn, &self.a.m, o, *n, diff::Crossing::Similar)
                });
                match (reachable, handler_gone) {
                    (Some((x, _)), None) => out.push(Suggestion {
                        thread: thread.clone(),
                        old: s.old.clone(),
                        new: x.name.clone(),
                        reason: format!(
                            "{} still waits on call {calls} in the new version ({} of {}); the pending response completes that wait",
                            x.name,
                            x.role,
                            x.activity.label()
                        ),
                    }),
                    (Some(_), Some(gone)) => refuse(format!(
                        "{what}, and {gone}: the response would arrive unhandled, whatever state they are mapped to: let them drain"
                    )),
                    (None, gone) => {
                        let elsewhere = candidates
                            .iter()
                            .map(|(x, n)| {
                                let why = if to.handler[o].is_some() != tn.handler[*n].is_some() {
                                    "inside a fault handler"
                                } else {
                                    "in a branch that is not the counterpart of theirs"
                                };
                                format!("{} ({} of {}, {why})", x.name, x.role, x.activity.label())
                            })
                            .collect::<Vec<_>>();
                        let mut reason = what.clone();
                        if let Some(g) = gone {
                            reason.push_str(&format!(", and {g}"));
                        }
                        if elsewhere.is_empty() {
                            reason.push_str("; no state of the new version waits on it");
                        } else {
                            reason.push_str(&format!(
                                "; the new version waits on it only where they cannot be: {}",
                                elsewhere.join(", ")
                            ));
                        }
                        reason.push_str(": mapped anywhere else, no wait would take that response; let them drain");
                        refuse(reason);
                    }
                }
            }
        }
        (out, none)
    }

    /// The nearest surviving predecessor of a removed wait state that waits for an alarm,
    /// with what a row mapped there runs again.
    fn by_predecessor(
        &self,
        t: &ThreadMapping,
        ot: &ThreadClass,
        nt: &ThreadClass,
        s: &StateMapping,
    ) -> Option<Suggestion> {
        let act = &s.old_activity;
        // Back through removed states to the nearest one that still has a counterpart.
        let mut at = s.old.clone();
        let mut seen = BTreeSet::new();
        let mut via = Vec::new();
        let (pred, mapped) = loop {
            if !seen.insert(at.clone()) {
                return None;
            }
            let pred = ot
                .states
                .iter()
                .find(|p| p.name != at && p.successors.contains(&at))?;
            match t.states.iter().find(|m| m.old == pred.name)?.new.clone() {
                Some(n) => break (pred, n),
                None => {
                    let l = pred.activity.label();
                    if l != act.label() && !via.contains(&l) {
                        via.push(l);
                    }
                    at = pred.name.clone();
                }
            }
        };
        let ns = nt.states.iter().find(|x| x.name == mapped)?;
        let w_new = self.a.new.pos(ns.activity.id)?;
        let r = safety::Resume {
            old_ref: sref(&ot.class, &s.old),
            new_ref: new_sref(&nt.class, &mapped),
            w_old: self.a.old.pos(act.id),
            w_new,
            join: false,
            enters: safety::entered_slot(&ns.role),
        };
        let again: Vec<String> = safety::reruns(self.a, &r)
            .into_iter()
            .map(|p| safety::act_label(&self.a.new, p))
            .collect();
        via.reverse();
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
        Some(Suggestion {
            thread: short(&t.old_class).to_string(),
            old: s.old.clone(),
            new: mapped.clone(),
            reason: format!(
                "{} ({} of {}) {led} {} in the old version; {then}",
                pred.name,
                pred.role,
                pred.activity.label(),
                act.label(),
            ),
        })
    }

    /// The process's own request/response classes, and a hint when the arguments look
    /// swapped.
    fn process_findings(&mut self, old: &Bpl, new: &Bpl) {
        for (what, o, n) in [
            ("request", &old.process.request, &new.process.request),
            ("response", &old.process.response, &new.process.response),
        ] {
            if o != n {
                self.findings.push(finding(
                    Code::ProcessMessageChanged,
                    format!(
                        "the process {what} class changed from {} to {}: in-flight instances hold a {what} of the old class",
                        o.as_deref().unwrap_or("(none)"),
                        n.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
        }
        let changes = &self.a.diff.activities;
        // Removed activities that own states (a removed wrapper's handlers do not count).
        let owners = safety::owners(&self.a.old, self.old_c);
        // Counted once per removed subtree: a removed flow branch and its delay are one removal.
        let gone: BTreeSet<usize> = changes
            .iter()
            .filter(|c| c.change == diff::ActivityChangeKind::Removed)
            .filter_map(|c| c.old.as_ref().and_then(|r| self.a.old.pos(r.id)))
            .collect();
        let removed = gone
            .iter()
            .filter(|p| owners.contains(p))
            .filter(|&&p| !self.a.old.ancestors(p).any(|q| gone.contains(&q)))
            .count();
        let inserted = changes
            .iter()
            .filter(|c| c.change == diff::ActivityChangeKind::Inserted)
            .count();
        let removed_states: usize = self
            .a
            .diff
            .threads
            .iter()
            .flat_map(|t| &t.states)
            .filter(|s| s.change == DeltaKind::Removed)
            .count();
        if inserted == 0 && removed >= 2 && removed_states >= 2 {
            self.findings.push(finding(
                Code::ArgumentsReversed,
                format!(
                    "{removed} activities that own states were removed and none was inserted: if the first file given is the newer version, the arguments are reversed (bplmigrate plan OLD NEW)"
                ),
            ));
        }
    }

    fn handler_findings(&mut self, handlers: &[HandlerMapping]) {
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
            self.findings.push(finding(
                Code::HandlerRenumbered,
                format!(
                    "{} renumbered: {}",
                    plural(renumbered.len(), "response handler"),
                    renumbered.join(", ")
                ),
            ));
        }
        if handlers.iter().all(|h| h.new.is_some()) {
            return;
        }
        // Old handlers whose counterpart is gone, names of removed calls, old handlers by name
        // (the first of each) and thread classes by number.
        let gone: HashSet<&str> = self
            .a
            .diff
            .handlers
            .iter()
            .filter(|d| d.new_activity.is_none())
            .filter_map(|d| d.old.as_deref())
            .collect();
        let removed_calls: HashSet<&str> = self
            .a
            .diff
            .activities
            .iter()
            .filter(|c| c.new.is_none())
            .filter_map(|c| c.old.as_ref())
            .filter(|o| o.element == "call")
            .filter_map(|o| o.name.as_deref())
            .collect();
        let mut old_handlers = HashMap::new();
        for x in &self.old_c.response_handlers {
            old_handlers.entry(x.name.as_str()).or_insert(x);
        }
        let old_threads = self.old_c.threads_by_number();
        for h in handlers.iter().filter(|h| h.new.is_none()) {
            // Removed calls are reported (with their precondition) by the call analysis,
            // unless their name is still awaited in the new version (it then requires
            // nothing of a pending response, but this handler is gone all the same).
            let call_gone = gone.contains(h.old.as_str())
                && removed_calls.contains(h.call.as_str())
                && !safety::awaited_in_new(&self.a.new, &h.call);
            if call_gone {
                continue;
            }
            let Some(hd) = old_handlers.get(h.old.as_str()).copied() else {
                continue;
            };
            let table = old_threads.get(&hd.thread).map(|t| t.table.clone());
            self.findings.push(
                finding(
                    Code::HandlerRemoved,
                    format!(
                        "{} (response handler of call {:?}) has no counterpart",
                        h.old, h.call
                    ),
                )
                .old_acts([hd.activity.clone()]),
            );
            if let Some(table) = table {
                self.pre.push(Precondition::NoPendingResponse {
                    table,
                    call: h.call.clone(),
                    reason: format!("{} of call {:?} has no counterpart; wait until no response for it is pending", h.old, h.call),
                });
            }
        }
    }

    fn context_findings(
        &mut self,
        resumes: &[safety::Resume],
        context: &mut [ContextPropertyChange],
    ) -> Result<(), OverridesError> {
        // Defaults from the overrides file.
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
                        "[[default]] property {:?} is not new (it was {:?})",
                        d.property, c.change
                    ),
                ));
            }
            c.default = Some(d.value.clone());
            self.applied.push(format!(
                "line {}: default {} = {}",
                d.line, d.property, d.value
            ));
        }
        let added: Vec<safety::NewProperty> = self
            .a
            .diff
            .context
            .iter()
            .filter(|c| c.change == ContextChangeKind::Added)
            .map(|c| safety::NewProperty {
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
        for (prop, mut f) in safety::context_reads(self.a, resumes, &added, default_of) {
            if context
                .iter()
                .any(|c| c.name == prop && c.default.is_some())
            {
                f.acknowledged = true;
            } else if let Some(np) = added
                .iter()
                .find(|x| x.name == prop)
                .filter(|x| safety::scalar_type(x.type_name.as_deref()))
            {
                let ty = np
                    .type_name
                    .clone()
                    .unwrap_or_else(|| "%String".to_string());
                let value = np.initial.as_deref().and_then(safety::sql_literal);
                let reason = match (&value, &np.initial) {
                    (Some(v), Some(i)) => format!(
                        "new instances get {v} (initialexpression {i}); rows resting at {} read {prop} before writing it",
                        f.states.join(", ")
                    ),
                    _ => format!(
                        "rows resting at {} read {prop} before writing it; choose a SQL literal of type {ty} for them and uncomment the value line",
                        f.states.join(", ")
                    ),
                };
                self.default_suggestions.push(DefaultSuggestion {
                    property: prop.clone(),
                    value,
                    type_name: ty,
                    reason,
                });
            }
            self.findings.push(f);
        }
        for c in &self.a.diff.context {
            match c.change {
                ContextChangeKind::Removed => {
                    self.findings.push(finding(
                        Code::ContextPropertyRemoved,
                        format!("context property {} was removed", c.name),
                    ));
                }
                ContextChangeKind::Retyped => self.findings.push(finding(
                    Code::ContextPropertyRetyped,
                    format!(
                        "context property {} changed type from {} to {}",
                        c.name,
                        c.old_type.as_deref().unwrap_or("(none)"),
                        c.new_type.as_deref().unwrap_or("(none)")
                    ),
                )),
                ContextChangeKind::Added => {}
            }
        }
        Ok(())
    }

    /// Mark acknowledged findings; every `[[ack]]` must match one.
    fn apply_acks(&mut self) -> Result<(), OverridesError> {
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
            for f in self.findings.iter_mut().filter(|f| f.code == code) {
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

fn describe_version(v: Option<u64>) -> String {
    match v {
        Some(n) => format!("version {n}"),
        None => "unversioned".to_string(),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
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
    let mut h = sha2::Sha256::default();
    let written = serde_json::to_writer(&mut h, &*p);
    (p.plan_id, p.old.origin, p.new.origin, p.tool_version) = kept;
    written.map_err(|e| PlanError::Serialize(e.to_string()))?;
    let d = sha2::Digest::finalize(h);
    Ok(d.iter().take(8).map(|b| format!("{b:02x}")).collect())
}
