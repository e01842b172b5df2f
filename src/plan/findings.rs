//! The finding catalogue: every code the analysis can report, defined here and only here.
//!
//! Codes are stable (`BPM` + four digits); a code is never reused for another meaning.
//! Groups: `01xx` state and thread mapping, `02xx` behaviour of instances resuming,
//! `03xx` activity matching, `04xx` runtime environment and process identity.

use super::model::{Finding, Severity};
use crate::states::ActivityRef;

/// One catalogue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub code: &'static str,
    /// Short kebab-case name (SARIF `name`, GitLab `check_name`).
    pub name: &'static str,
    /// Default severity; a finding may be raised or lowered where the entry says so.
    pub severity: Severity,
    pub description: &'static str,
    /// What to do about it.
    pub help: &'static str,
}

macro_rules! catalogue {
    ($( $id:ident = $code:literal, $name:literal, $sev:ident, $desc:literal, $help:literal; )*) => {
        /// Finding codes (see [`RULES`] for what each means).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $( $id, )* }

        /// Every rule, in code order.
        pub static RULES: &[Rule] = &[ $( Rule { code: $code, name: $name, severity: Severity::$sev, description: $desc, help: $help }, )* ];

        impl Code {
            pub const ALL: &'static [Code] = &[ $( Code::$id, )* ];
            pub fn rule(self) -> &'static Rule {
                &RULES[self as usize]
            }
        }
    };
}

impl Code {
    /// An error whose remedy is letting instances drain: the plan carries a precondition for
    /// it (no row at the removed state, no pending response to the changed call), which every
    /// write path enforces under its locks, so once the rows drained the plan may apply.
    pub fn drainable(self) -> bool {
        matches!(self, Code::RemovedWaitState | Code::AwaitedCallChanged)
    }

    /// The stable code text, e.g. `BPM0101`.
    pub fn as_str(self) -> &'static str {
        self.rule().code
    }
    /// The kebab-case rule name, e.g. `removed-wait-state`.
    pub fn name(self) -> &'static str {
        self.rule().name
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialised as its code text (`"BPM0101"`), as plans and reports have always carried it.
impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown finding code {text:?}")))
    }
}

catalogue! {
    RemovedWaitState = "BPM0101", "removed-wait-state", Error,
        "a state where instances wait (sync/call/delay wait, or a flow join) has no counterpart in the new version: \
         rows resting there would resume in a method that no longer exists or means something else",
        "let those instances finish before deploying (the plan then checks that no row rests there), map the state \
         to a new one with [[map]] in the overrides file, or acknowledge this finding with [[ack]]";
    RemovedState = "BPM0102", "removed-state", Warning,
        "a state without waiting has no counterpart in the new version; only an interrupted or errored instance can \
         rest there",
        "the plan checks that no row rests there; map it with [[map]] if such rows exist";
    ThreadRenumbered = "BPM0103", "thread-renumbered", Warning,
        "a flow branch thread class changed number (Thread2 → Thread3): a row cannot change its thread class, so \
         its rows would run another branch's code",
        "the plan requires the old table to hold no row of a running instance; let those instances finish first";
    ThreadRemoved = "BPM0104", "thread-removed", Warning,
        "a thread class has no counterpart in the new version: the stale class stays compiled and its rows would \
         keep running the old code (spec Q-14)",
        "the plan requires the table to hold no row of a running instance; let those instances finish first";
    StatesRenumbered = "BPM0105", "states-renumbered", Info,
        "states keep their meaning but changed name; the plan rewrites %NextState (and the stacks) of rows resting there",
        "review the mapping; nothing else to do";
    HandlerRenumbered = "BPM0106", "handler-renumbered", Info,
        "response handlers changed number (OnResponse2 → OnResponse3); the plan rewrites %ResponseHandlers",
        "review the mapping; nothing else to do";
    HandlerRemoved = "BPM0107", "handler-removed", Warning,
        "a response handler has no counterpart: a response still pending for its call would find no handler",
        "the plan requires no pending response for that call";
    StateOverridden = "BPM0108", "state-overridden", Info,
        "a state was mapped by the overrides file instead of by its owning activity",
        "make sure the chosen state is where those instances should resume; a non-waiting target is a warning";
    StackChanged = "BPM0109", "stack-changed", Info,
        "rows resting at a state get a different %HandlerStack or %SubroutineStack than the mapped old one \
         (re-nested into or out of a <scope>, or a compensation handler)",
        "the plan writes the new stack for those rows; review which fault handlers they will now reach";
    StackEntryRemoved = "BPM0110", "stack-entry-removed", Error,
        "rows hold a %HandlerStack or %SubroutineStack naming a state that has no counterpart in the new version \
         (a removed <scope>, or a <compensate> removed or moved to another fault handler): no value can be written \
         that keeps their meaning (a compensation handler would return into another handler's code); warning when \
         no instance can wait while holding it",
        "the plan refuses to run while a row holds such a value; let those instances finish first";
    SkippedActivities = "BPM0201", "skipped-activities", Warning,
        "instances resting at a state will skip activities that the new version runs before that resume point \
         (inserted there, moved there, or enabled; or added to a fault handler, new or not, or to a compensation \
         handler that a fault or a <compensate> before that point took them through), or the remaining iterations \
         of a loop their wait moved out of, or what moved from after a loop they are iterating in into its body \
         after their resume point (the iterations they went through never ran it); info when they are only traces or activities that do nothing (<empty>, <receive>)",
        "check that skipping them is harmless for in-flight instances, or let those instances finish first";
    RerunActivities = "BPM0202", "rerun-activities", Warning,
        "instances resting at a state will run again activities that moved from before to after their resume point; \
         info when they are only traces",
        "check that running them twice is harmless (calls are sent again!), or let those instances finish first";
    PendingCallRenamed = "BPM0203", "pending-call-renamed", Warning,
        "a <call> was renamed: its completion key changed, so a response still pending under the old name cannot \
         be matched by the new code",
        "the plan requires no pending response for the old name; let those instances receive it first";
    PendingCallRemoved = "BPM0204", "pending-call-removed", Warning,
        "a <call> was removed: a response still pending for it would arrive at a process that no longer expects it",
        "the plan requires no pending response for that call";
    NewContextProperty = "BPM0205", "new-context-property", Warning,
        "a new context property is read after a resume point: it is NULL for in-flight rows (initialexpression \
         applies to new instances only)",
        "set a default for in-flight rows with [[default]] in the overrides file, or acknowledge it with [[ack]]";
    NewEnclosingActivity = "BPM0206", "new-enclosing-activity", Warning,
        "a resume point was moved into a new <if>, <switch> or loop: in-flight instances resume inside it, which \
         they never entered or had already passed under the old version; after the body a <while>/<until> tests \
         its condition as usual and a <foreach> goes on from the key it holds (empty: from its first key)",
        "check that this path is right for every in-flight instance";
    ContextPropertyRemoved = "BPM0207", "context-property-removed", Info,
        "a context property was removed; its values in in-flight rows are no longer visible",
        "nothing to do unless later activities relied on it";
    ContextPropertyRetyped = "BPM0208", "context-property-retyped", Warning,
        "a context property changed type; in-flight rows keep values of the old type",
        "convert the values yourself if the types are incompatible";
    AwaitedCallChanged = "BPM0209", "awaited-call-changed", Warning,
        "a <call> that in-flight instances wait on kept its name but changed its target, request type, response \
         type or response handler: the response they wait for comes from the old call; an error when the response \
         type changed (the new handler reads the old answer as another class)",
        "check that the new response handler can handle the old call's answer, or let those instances finish first \
         (the plan then checks that no row waits there)";
    HandlerNotRegistered = "BPM0210", "handler-not-registered", Warning,
        "a <call> that in-flight instances wait on gained a <response> handler: they sent the request under the old \
         code and never registered it, so it will not run for them",
        "give in-flight rows what the handler would have set (a [[default]] for a new property), or let them finish first";
    BranchSwitched = "BPM0211", "branch-switched", Warning,
        "a resume point moved into another branch or case of the same <if>/<switch>: in-flight instances took the \
         old branch but continue in the new one (when the <if>'s condition changed too, or the condition of the \
         <switch> case they chose or resume in, both conditions are named)",
        "check that the rest of the new branch is right for instances that chose the old one";
    AwaitedSyncChanged = "BPM0212", "awaited-sync-changed", Warning,
        "a <sync> that in-flight instances wait at changed its calls, type or timeout: they were parked under the \
         old attributes, so they keep the old timer (a removed timeout still fires, a new one never starts) and the \
         responses they have pending are those of the old call list",
        "check that the new <sync> completes correctly for them, or let those instances finish first";
    AwaitedDelayChanged = "BPM0213", "awaited-delay-changed", Warning,
        "a <delay> that in-flight instances wait at changed its duration or until: the runtime armed their alarm \
         when they reached it, so they keep the old timer and wake when the old value says",
        "check that the old wake-up time is acceptable for them, or let those instances finish first";
    ContextInitialChanged = "BPM0214", "context-initial-changed", Info,
        "a context property kept its type but changed its initialexpression: in-flight rows keep the value they \
         were created with; only new instances get the new one",
        "if in-flight rows should get the new value, update their context rows yourself ([[default]] fills new \
         properties only)";
    CompensateUnresolved = "BPM0215", "compensate-unresolved", Warning,
        "a <compensate> of the new version runs no compensation handler: the compiler's registry did not hold \
         its target when it was generated (a scope with <compensationhandlers> generated in between reset it, or \
         none of that name came before; spec 3.4.11, Q-8), so IRIS compiles a GoSub to an empty state and every \
         instance that reaches it, new or in flight, errors there instead of compensating; the finding names the \
         in-flight instances that ran a handler there under the old version and can still reach it",
        "fix the new BPL: keep scopes with <compensationhandlers> out of what is generated between the handler and \
         its <compensate> (the scope's body, its later handlers, its earlier catches), or give the inner scope's \
         handlers to the outer one; let the instances it names finish first if they must keep their compensation";
    AmbiguousMatch = "BPM0301", "ambiguous-match", Error,
        "several activities looked alike and the matcher could not tell which old one is which new one; \
         an error when they own states, a warning otherwise",
        "pin the right pair with [[pin]] in the overrides file, or acknowledge this finding with [[ack]]";
    PositionalMatch = "BPM0302", "positional-match", Info,
        "an activity changed its key attributes and was matched only by its position between unchanged neighbours",
        "if it is really a different activity, pin it to nothing with [[pin]] (new = \"\")";
    MatcherLimit = "BPM0303", "matcher-limit", Warning,
        "a matcher limit (diff::costs) was hit and a simpler method was used",
        "review the activity matches; pin what is wrong";
    DisabledToggled = "BPM0304", "disabled-toggled", Warning,
        "an activity was enabled or disabled; when it allocates states, threads or handlers this renumbers \
         what is generated after it unless other changes make up for it (a warning; the message says which), \
         otherwise it only changes behaviour (info); a flow branch \
         keeps its thread class either way, so only what is inside it changes",
        "review the renumbering in the mapping";
    ArgumentsReversed = "BPM0305", "arguments-reversed", Info,
        "many activities that own states were removed and none was inserted: the older version may have been \
         given as NEW",
        "check the order: bplmigrate plan OLD NEW";
    ActorPool = "BPM0401", "actor-pool", Info,
        "whether the process runs in the shared actor pool (PoolSize = 0) cannot be known from the BPL: such a \
         host cannot be disabled on its own",
        "`bplmigrate status` and `apply` check the production; stop the production if the host uses the actor pool";
    VersionedProcess = "BPM0402", "versioned-process", Info,
        "the new version compiles into a different package (<process version>): old classes stay compiled and \
         in-flight instances keep running on them, so nothing needs migrating",
        "keep the old version's classes deployed until its instances finish";
    UnversionedToVersioned = "BPM0403", "unversioned-to-versioned", Warning,
        "the process changed between unversioned and versioned: whether IRIS keeps the unversioned classes for \
         in-flight instances is not verified",
        "let in-flight instances finish before deploying, or test on a copy";
    ClassChanged = "BPM0404", "class-changed", Error,
        "old and new are different BPL classes: their instances live in different tables",
        "compare two versions of the same class";
    ProcessMessageChanged = "BPM0405", "process-message-changed", Warning,
        "the process's request or response class changed: in-flight instances hold a request of the old class, and \
         the new code reads it (and builds its response) as the new one",
        "check that every property the new version reads exists in the old class, or let in-flight instances finish";
    ClassRemoved = "BPM0406", "class-removed", Error,
        "a BPL class was deleted (reported by `check`): its in-flight instances would be orphaned, with no class \
         left to resume them",
        "let every instance of the process finish before deploying the deletion (keep the class deployed until \
         then), or restore the class";
    ClassNameFromFileName = "BPM0407", "class-name-from-file-name", Info,
        "a bare <process> document does not name its class: its class name was taken from the other version, or \
         from its file name when neither names one; that name is what the plan and the SQL call the class",
        "pass --class with the real class name when it is not the one shown";
    ClassNotChecked = "BPM0408", "class-not-checked", Error,
        "a changed file holds BPL that cannot be checked (reported by `check`): it does not parse, it is over the \
         --max-input-size cap, it cannot be read, or the emulation refuses it. The classes of every other file \
         are still checked and reported; `check` exits 2",
        "fix the file at the place the message names";
    OldVersionUnreadable = "BPM0409", "old-version-unreadable", Warning,
        "the old version of a changed BPL file cannot be read (reported by `check`), so the change cannot be \
         checked against it. A version that does not parse was never compiled by IRIS and has no instance in \
         flight, but instances of the version deployed before it are not compared",
        "compare with the version that is deployed: bplmigrate check REV:path path";
}

/// Build a finding with the catalogue's severity.
pub fn finding(code: Code, message: impl Into<String>) -> Finding {
    let r = code.rule();
    Finding {
        code,
        severity: r.severity,
        message: message.into(),
        states: vec![],
        activities: vec![],
        new_activities: vec![],
        activity_count: None,
        acknowledged: false,
    }
}

/// Builder helpers.
pub trait FindingExt {
    fn severity(self, s: Severity) -> Self;
    fn states(self, s: impl IntoIterator<Item = String>) -> Self;
    fn old_acts(self, a: impl IntoIterator<Item = ActivityRef>) -> Self;
    fn new_acts(self, a: impl IntoIterator<Item = ActivityRef>) -> Self;
    /// The finding is about `n` activities; its lists name fewer.
    fn counting(self, n: usize) -> Self;
}

impl FindingExt for Finding {
    fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }
    fn states(mut self, s: impl IntoIterator<Item = String>) -> Self {
        self.states.extend(s);
        self
    }
    fn old_acts(mut self, a: impl IntoIterator<Item = ActivityRef>) -> Self {
        self.activities.extend(a);
        self
    }
    fn new_acts(mut self, a: impl IntoIterator<Item = ActivityRef>) -> Self {
        self.new_activities.extend(a);
        self
    }
    fn counting(mut self, n: usize) -> Self {
        self.activity_count = Some(n);
        self
    }
}

/// Look a code up by its text (`BPM0101`) or name (`removed-wait-state`).
pub fn lookup(code: &str) -> Option<Code> {
    Code::ALL
        .iter()
        .copied()
        .find(|c| c.rule().code.eq_ignore_ascii_case(code) || c.rule().name == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_indexed() {
        for (i, c) in Code::ALL.iter().enumerate() {
            assert_eq!(c.rule(), &RULES[i]);
            assert_eq!(Code::ALL[i], *c);
        }
        for w in RULES.windows(2) {
            assert!(w[0].code < w[1].code, "{} before {}", w[0].code, w[1].code);
            assert_ne!(w[0].name, w[1].name);
        }
        assert_eq!(lookup("bpm0101"), Some(Code::RemovedWaitState));
        assert_eq!(lookup("ambiguous-match"), Some(Code::AmbiguousMatch));
    }
}
