//! The migration plan: the reviewed contract between analysis (`diff`/`plan`) and the write
//! path (`sql`/`apply`). Serialized as `plan.json`; `schema_version` guards the format.

use crate::states::{ActivityRef, Role, SqlTable, StateName, StateNames};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub const PLAN_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationPlan {
    pub schema_version: u32,
    /// Stable, content-addressed id: first 16 hex digits of SHA-256 over the JSON of the plan
    /// with `plan_id`, the source paths and the tool version blanked.
    pub plan_id: String,
    pub tool_version: String,
    pub compiler: String,
    pub old: PlanSource,
    pub new: PlanSource,
    pub verdict: Verdict,
    /// One entry per old thread class.
    pub threads: Vec<ThreadMapping>,
    /// Old → new `OnResponse<n>` (context `%ResponseHandlers` values).
    pub response_handlers: Vec<HandlerMapping>,
    pub response_handler_table: SqlTable,
    pub context_table: SqlTable,
    pub context_properties: Vec<ContextPropertyChange>,
    /// Conditions that must hold on the live rows before the rewrite may run.
    pub preconditions: Vec<Precondition>,
    pub findings: Vec<Finding>,
    /// Suggested `[[map]]` overrides for removed wait states: shown for review, never applied
    /// on their own (optional in JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suggestions: Vec<Suggestion>,
    /// Removed wait states no override can help, with why (optional in JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub no_suggestions: Vec<NoSuggestion>,
    /// Suggested `[[default]]` entries for new scalar context properties in-flight rows read
    /// before writing (optional in JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_suggestions: Vec<DefaultSuggestion>,
    /// Overrides that were applied (for the record; empty when none).
    #[serde(default)]
    pub overrides: Vec<String>,
}

impl MigrationPlan {
    /// Why a `blocked` plan can never be applied as it is (empty: it is not blocked, or it is
    /// blocked only by errors whose remedy is draining — a removed wait state, an awaited call
    /// that changed — and becomes applicable once those rows drained: its preconditions, which
    /// every write path checks under its locks, refuse until then; a removed stack entry's
    /// rows are refused by their own guard likewise). One rule for `apply`, the ObjectScript
    /// runner and `check`: an ambiguous match, a changed or removed class need overrides and
    /// a new plan.
    ///
    /// Derived from the findings and the classes, never from the stored `verdict`: a plan.json
    /// whose verdict was edited (its checksums recomputed) is blocked all the same.
    pub fn blocked_for_good(&self) -> Vec<String> {
        let open: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Error && !f.acknowledged)
            .collect();
        // A removed stack entry (BPM0110) is resolved by draining too: its own guard refuses
        // while a row holds the value (`sql`'s dead-stack guard, on every path).
        let mut why: Vec<String> = open
            .iter()
            .filter(|f| !f.code.drainable() && f.code != super::findings::Code::StackEntryRemoved)
            .map(|f| format!("{} {}", f.code, f.message))
            .collect();
        if self.old.class != self.new.class {
            why.push(format!(
                "{CLASS_CHANGED}{} to {}",
                self.old.class, self.new.class
            ));
        }
        if why.is_empty() && open.is_empty() && self.verdict == Verdict::Blocked {
            why.push(
                "the plan is blocked, and no finding says it is only a matter of draining".into(),
            );
        }
        why
    }
}

/// What to do about a plan blocked for good, given its [`MigrationPlan::blocked_for_good`]
/// reasons: overrides resolve an ambiguous match, nothing resolves a changed class.
pub fn blocked_remedy(reasons: &[String]) -> &'static str {
    if reasons.iter().any(|r| r.starts_with(CLASS_CHANGED)) {
        "no override resolves a changed class: the rows of the old class cannot become rows of the new one; \
         let its instances finish under the old class"
    } else if reasons.len() == 1 {
        "resolve it with overrides and generate the migration again"
    } else {
        "resolve them with overrides and generate the migration again"
    }
}

/// How [`MigrationPlan::blocked_for_good`] begins a changed class's reason.
const CLASS_CHANGED: &str = "the class changed from ";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSource {
    pub origin: String,
    pub sha256: String,
    pub class: String,
    pub package: String,
    pub version: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Same states, same meaning, same handlers: nothing to do.
    Identical,
    /// No persisted identifier changes meaning (e.g. states appended after all existing ones,
    /// or a versioned process).
    Compatible,
    /// Nothing to rewrite, but some states (or pending responses) must be empty first: deploy
    /// once no instance rests there.
    Drain,
    /// A plan exists: rewriting the rows makes in-flight instances resume correctly.
    Migratable,
    /// Needs overrides or drained states before a plan can apply.
    Blocked,
}

impl Verdict {
    /// The verdict as reports and scripts name it (the same word it serializes as).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Identical => "identical",
            Verdict::Compatible => "compatible",
            Verdict::Drain => "drain",
            Verdict::Migratable => "migratable",
            Verdict::Blocked => "blocked",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadMapping {
    pub old_class: String,
    pub old_table: SqlTable,
    /// None when the thread class has no counterpart in the new version.
    pub new_class: Option<String>,
    pub new_table: Option<SqlTable>,
    /// Every old state of the thread, in old allocation order, plus `Stop`-free.
    pub states: Vec<StateMapping>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateMapping {
    pub old: StateName,
    /// New state name, or None when removed.
    pub new: Option<StateName>,
    pub role: Role,
    pub old_activity: ActivityRef,
    pub new_activity: Option<ActivityRef>,
    /// A waiting thread rests here (wait state of a sync, synchronous call or delay).
    pub wait: bool,
    /// A parent thread rests here while its flow children wait (added after the first
    /// contract; optional in JSON).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub join: bool,
    pub change: StateChange,
    /// Old and new `%HandlerStack` / `%SubroutineStack` for rows resting here.
    #[serde(default, skip_serializing_if = "StateNames::is_empty")]
    pub old_handler_stack: StateNames,
    #[serde(default, skip_serializing_if = "StateNames::is_empty")]
    pub new_handler_stack: StateNames,
    #[serde(default, skip_serializing_if = "StateNames::is_empty")]
    pub old_subroutine_stack: StateNames,
    #[serde(default, skip_serializing_if = "StateNames::is_empty")]
    pub new_subroutine_stack: StateNames,
    /// The other `%SubroutineStack` values rows resting here can hold (a compensation handler
    /// run by several `<compensate>`s: one value per site, `old_subroutine_stack` is the
    /// first), each with its element-wise image. Empty, without allocation, for nearly every
    /// state (added after the first contract; optional in JSON).
    #[serde(default, skip_serializing_if = "StackAlternatives::is_empty")]
    pub other_subroutine_stacks: StackAlternatives,
    /// Why this mapping was chosen (`exact`, `aligned`, `renamed`, `override`, …): one of a few
    /// fixed words, borrowed rather than allocated per state.
    pub via: Cow<'static, str>,
    /// Why a removed state has no counterpart, or the reason given for an override (added
    /// after the first contract; optional in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What changed about the owning activity's identity (name, target, message types,
    /// condition …) when it was matched anyway (optional in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<Box<str>>,
}

impl StateMapping {
    /// Every `%SubroutineStack` value rows resting here can hold, the first first.
    pub fn old_subroutine_stacks(&self) -> impl Iterator<Item = &StateNames> {
        std::iter::once(&self.old_subroutine_stack)
            .chain(self.other_subroutine_stacks.iter().map(|a| &a.old))
    }
}

/// A `%SubroutineStack` value rows at a state can hold besides
/// [`StateMapping::old_subroutine_stack`]. `new` is `old` with every element mapped through
/// the thread's state map (spec 4.3: an entry is the return state of one `<compensate>` and
/// follows it), None when an element has no counterpart (BPM0110: rows holding it are refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackAlternative {
    pub old: StateNames,
    pub new: Option<StateNames>,
}

/// The [`StackAlternative`]s of one state: one pointer, no allocation when empty (a plan holds
/// a [`StateMapping`] per old state, and nearly none has alternatives). Serialized as a list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackAlternatives(Option<Box<AlternativeList>>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlternativeList(Vec<StackAlternative>);

impl StackAlternatives {
    /// No alternatives (inherent, so serde's `skip_serializing_if` can name it).
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl From<Vec<StackAlternative>> for StackAlternatives {
    fn from(v: Vec<StackAlternative>) -> StackAlternatives {
        StackAlternatives((!v.is_empty()).then(|| Box::new(AlternativeList(v))))
    }
}

impl std::ops::Deref for StackAlternatives {
    type Target = [StackAlternative];
    fn deref(&self) -> &[StackAlternative] {
        self.0.as_deref().map_or(&[], |l| &l.0)
    }
}

impl std::ops::DerefMut for StackAlternatives {
    fn deref_mut(&mut self) -> &mut [StackAlternative] {
        self.0.as_deref_mut().map_or(&mut [], |l| &mut l.0)
    }
}

impl Serialize for StackAlternatives {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for StackAlternatives {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<StackAlternative>::deserialize(d).map(StackAlternatives::from)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateChange {
    Unchanged,
    Renumbered,
    Removed,
    /// Mapped by an override to a state of a different activity/role.
    Overridden,
}

impl StateChange {
    /// The word users see (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            StateChange::Unchanged => "unchanged",
            StateChange::Renumbered => "renumbered",
            StateChange::Removed => "removed",
            StateChange::Overridden => "overridden",
        }
    }
}

/// A candidate new state for a removed wait state, with why it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    /// Short thread class name (`Thread1`).
    pub thread: String,
    pub old: String,
    pub new: String,
    pub reason: String,
}

/// A `[[default]]` to review for a new context property: the value new instances get (its
/// initialexpression as a SQL literal), or none when it has none (the reviewer chooses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DefaultSuggestion {
    pub property: String,
    pub value: Option<String>,
    pub type_name: String,
    pub reason: String,
}

/// A removed wait state for which no `[[map]]` is offered, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoSuggestion {
    /// Short thread class name (`Thread1`).
    pub thread: String,
    pub old: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandlerMapping {
    pub old: String,
    pub new: Option<String>,
    pub call: String,
    /// The call the new handler belongs to, when it is named differently (optional in JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_call: Option<String>,
    /// The handler's code (the call's `<response>`) changed (optional in JSON).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub body_changed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextPropertyChange {
    pub name: String,
    pub change: PropertyChange,
    pub old_type: Option<String>,
    pub new_type: Option<String>,
    /// SQL literal text chosen by an override for in-flight rows (new properties).
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyChange {
    Added,
    Removed,
    Retyped,
    /// Same type, another `initialexpression`.
    InitialChanged,
}

impl PropertyChange {
    /// The word users see (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            PropertyChange::Added => "added",
            PropertyChange::Removed => "removed",
            PropertyChange::Retyped => "retyped",
            PropertyChange::InitialChanged => "initial_changed",
        }
    }
}

/// A condition on live rows, checked by a guard query before the rewrite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Precondition {
    /// No row of `table` rests at `state` (removed, unmapped).
    NoRowsAtState {
        table: SqlTable,
        state: String,
        reason: String,
    },
    /// `table` holds no unfinished row: every row is at Stop (completed rows stay until purged),
    /// e.g. a flow thread class that was renumbered.
    NoRowsInTable { table: SqlTable, reason: String },
    /// No thread of `table` waits on a response for `call` (renamed or removed call). A
    /// `call` starting with `@` is a runtime key: it may be any key (every pending response
    /// but the timers counts).
    NoPendingResponse {
        table: SqlTable,
        call: String,
        reason: String,
        /// The call's name in the new version when it was renamed: a revert requires that no
        /// thread of the new table waits on a response under it (optional in JSON).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        new_call: Option<String>,
    },
    /// Every production item running `class` is disabled.
    HostDisabled { class: String },
    /// No live job runs a config item of `class`.
    NoLiveJob { class: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    /// The word users see (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A fact the reviewer must see. Findings are data; only the CLI prints them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Catalogue code, serialised as its text, e.g. `BPM0101`.
    pub code: super::findings::Code,
    pub severity: Severity,
    pub message: String,
    /// `Thread1:S7` style state references (old version unless prefixed `new:`).
    #[serde(default)]
    pub states: Vec<String>,
    /// Activities of the old version involved.
    #[serde(default)]
    pub activities: Vec<ActivityRef>,
    /// Activities of the new version involved (added after the first contract; optional in
    /// JSON).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_activities: Vec<ActivityRef>,
    /// How many activities the finding is about when `activities` / `new_activities` hold
    /// only the first of them (a skip or re-run of more than 10 activities: the message names
    /// those and counts the rest, "…, and 12 more"); absent when the lists are complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_count: Option<usize>,
    /// Set when an override acknowledged it.
    #[serde(default)]
    pub acknowledged: bool,
}

/// A `%HandlerStack` / `%SubroutineStack` value the old version can leave in a row, and what
/// it becomes: every element mapped through the thread's state map (spec 4.3: stale entries
/// left by a `<break>`/`<continue>` or a transfer default are state names like any other, so a
/// row's stack is mapped whatever state the row rests at). `new` is None when an element has
/// no counterpart (a removed scope, or a `<compensate>` that is gone or moved to another fault
/// handler): such rows cannot be migrated and are refused by a guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackValue {
    pub old: StateNames,
    pub new: Option<StateNames>,
    /// The elements without a counterpart (empty when `new` is Some).
    pub unmapped: Vec<StateName>,
}

/// A thread's old → new state names (None: removed), from [`ThreadMapping::state_map`].
pub type StateMap = foldhash::HashMap<StateName, Option<StateName>>;

impl ThreadMapping {
    /// `stack`, every element mapped through the old → new state map; Err with the elements
    /// that have no counterpart.
    pub fn map_stack(map: &StateMap, stack: &[StateName]) -> Result<StateNames, Vec<StateName>> {
        let mut missing = Vec::new();
        let out: StateNames = stack
            .iter()
            .filter_map(|e| {
                let n = map.get(e).copied().flatten();
                if n.is_none() {
                    missing.push(*e);
                }
                n
            })
            .collect();
        if missing.is_empty() {
            Ok(out)
        } else {
            Err(missing)
        }
    }

    /// The old → new state names of this thread (None: removed).
    pub fn state_map(&self) -> StateMap {
        self.states.iter().map(|s| (s.old, s.new)).collect()
    }

    /// Every non-empty value some old state of this thread predicts for the handler stack
    /// (`subroutine` false) or the subroutine stack (every alternative included), in the order
    /// of their spelling (`S10` before `S9`, as the scripts list them), with its element-wise
    /// image.
    pub fn stack_values(&self, subroutine: bool) -> Vec<StackValue> {
        let map = self.state_map();
        let mut values: Vec<&StateNames> = if subroutine {
            self.states
                .iter()
                .flat_map(|s| s.old_subroutine_stacks())
                .filter(|v| !v.is_empty())
                .collect()
        } else {
            self.states
                .iter()
                .map(|s| &s.old_handler_stack)
                .filter(|v| !v.is_empty())
                .collect()
        };
        values.sort_by_cached_key(|v| v.to_strings());
        values.dedup();
        values
            .into_iter()
            .map(|v| match Self::map_stack(&map, v) {
                Ok(n) => StackValue {
                    old: v.clone(),
                    new: Some(n),
                    unmapped: Vec::new(),
                },
                Err(missing) => StackValue {
                    old: v.clone(),
                    new: None,
                    unmapped: missing,
                },
            })
            .collect()
    }
}
