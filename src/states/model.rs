//! The emulated compiler output: thread classes, their states, and response handlers.
//! This is the data handed from `states` to `diff`, `plan` and `apply`; it is also the
//! `bplmigrate states --format json` document (documented in README.md).

pub use super::names::{join_names, name_or, AsStateName, StateName, StateNames};
use crate::bpl::{ActivityId, Pos};
use foldhash::{HashMap, HashMapExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which IRIS compiler generation numbers the process. Only one rule differs (spec 2.5):
/// whether `<call async="false">` (or any value other than `0`/`1`/`true`) is synchronous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Compiler {
    /// Ensemble / IRIS up to 2021.x: a call is synchronous only for `async="0"`.
    #[serde(rename = "legacy")]
    Legacy,
    /// IRIS 2022.1 and later (the default): synchronous unless `async` is `true` or `1`.
    #[default]
    #[serde(rename = "current")]
    Current,
}

impl Compiler {
    pub fn as_str(self) -> &'static str {
        match self {
            Compiler::Legacy => "legacy",
            Compiler::Current => "current",
        }
    }
    pub fn describe(self) -> &'static str {
        match self {
            Compiler::Legacy => {
                "legacy (Ensemble / IRIS up to 2021.x: only async=\"0\" is synchronous)"
            }
            Compiler::Current => {
                "current (IRIS 2022.1+: async other than \"true\"/\"1\" is synchronous)"
            }
        }
    }
}

/// The whole compile of one BPL class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompiledProcess {
    /// BPL class, e.g. `Demo.Loan.BankUS`.
    pub class: String,
    /// Package of the generated classes: `P` or `P.V<n>`.
    pub package: String,
    pub version: Option<u64>,
    pub compiler: Compiler,
    pub context_class: String,
    pub context_table: SqlTable,
    /// Child table holding `%ResponseHandlers` (`<Context>__ResponseHandlers`).
    pub response_handler_table: SqlTable,
    pub threads: Vec<ThreadClass>,
    /// `OnResponse<n>` on the context class, in allocation order.
    pub response_handlers: Vec<ResponseHandler>,
    /// The `<compensate>`s whose target the compensation registry did not hold when they were
    /// generated (spec 3.4.11): IRIS compiles a `GoSub` to an empty state, a runtime error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unresolved_compensates: Vec<UnresolvedCompensate>,
}

/// A `<compensate>` whose target was not in the compensation registry at generation time
/// (spec 3.4.11, Q-8), in generation order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnresolvedCompensate {
    /// Number of the thread class holding it.
    pub thread: u32,
    pub compensate: ActivityRef,
    pub target: String,
    /// Its return state (allocated all the same).
    pub return_state: StateName,
    /// The `<compensationhandler>` named `target` that was registered before it, when the
    /// registry was reset after that (by `cleared_by`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped: Option<ActivityRef>,
    /// The `<scope>` whose `<compensationhandlers>` reset the registry and so dropped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleared_by: Option<ActivityRef>,
}

/// An SQL table projected from a class (spec 6.2): schema = package with `.` → `_`.
/// Serialized as the string `schema.table` (the schema never contains a dot).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SqlTable {
    pub schema: String,
    pub table: String,
}

impl std::fmt::Display for SqlTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

impl Serialize for SqlTable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SqlTable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.split_once('.') {
            Some((schema, table))
                if !schema.is_empty() && !table.is_empty() && !table.contains('.') =>
            {
                Ok(SqlTable {
                    schema: schema.to_string(),
                    table: table.to_string(),
                })
            }
            _ => Err(serde::de::Error::custom(format!(
                "table {s:?} is not of the form schema.table"
            ))),
        }
    }
}

impl SqlTable {
    /// Projection of a full class name: `A.B.C.Thread1` → `A_B_C`.`Thread1`.
    pub fn for_class(class: &str) -> SqlTable {
        match class.rsplit_once('.') {
            Some((pkg, name)) => SqlTable {
                schema: pkg.replace('.', "_"),
                table: name.to_string(),
            },
            None => SqlTable {
                schema: "SQLUser".into(),
                table: class.to_string(),
            },
        }
    }
    /// A child table of an array property: `<table>__<Property without %>`.
    pub fn child(&self, property: &str) -> SqlTable {
        SqlTable {
            schema: self.schema.clone(),
            table: format!("{}__{}", self.table, property.trim_start_matches('%')),
        }
    }
}

/// One generated thread class (`P.Thread<k>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadClass {
    /// k in `Thread<k>` (1 = main thread).
    pub number: u32,
    pub class: String,
    pub table: SqlTable,
    /// The activity the thread runs: the top-level sequence for Thread1, the flow child
    /// `<sequence>` otherwise.
    pub root: ActivityRef,
    /// For flow children: the parent thread number and the `<flow>` that starts it.
    pub parent: Option<ThreadParent>,
    /// States in allocation order: `S1`, `S2`, …
    pub states: Vec<State>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadParent {
    pub thread: u32,
    pub flow: ActivityRef,
    /// 0-based index of the child `<sequence>` inside the flow.
    pub child_index: u32,
}

/// A reference to the activity that owns something, stable within one `Bpl`.
///
/// Every state, state delta and state mapping of an activity carries one, so its strings are
/// shared ([`SharedStr`]): cloning a reference copies two pointers, not two strings. Serialized
/// exactly like plain strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRef {
    pub id: ActivityId,
    /// Element name (`call`, `if`, `scope`, …).
    #[serde(rename = "type")]
    pub element: crate::bpl::Element,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<SharedStr>,
    pub line: u32,
    pub column: u32,
}

impl ActivityRef {
    /// The reference to `a`: its id, element, name (shared with the activity) and position.
    pub fn of(a: &crate::bpl::Activity) -> ActivityRef {
        ActivityRef {
            id: a.id,
            element: a.element,
            name: a.name.clone(),
            line: a.pos.line,
            column: a.pos.column,
        }
    }

    pub fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }
    /// `call "Lookup"` or `assign@12:5`; control characters and bidi overrides in the name are
    /// escaped (as `Activity::label` does), so a name cannot forge or reorder output lines.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!(
                "{} \"{}\"",
                self.element,
                crate::input::printable_max(n, usize::MAX)
            ),
            None => format!("{}@{}:{}", self.element, self.line, self.column),
        }
    }
}

impl UnresolvedCompensate {
    /// Why the lookup failed: `the <compensationhandlers> of scope "Inner" at 11:5 reset the
    /// registry after compensationhandler "Undo" at 20:7 registered it`, or that no handler of
    /// that name was registered before it.
    pub fn reason(&self) -> String {
        match (&self.dropped, &self.cleared_by) {
            (Some(h), Some(s)) => format!(
                "the <compensationhandlers> of {} at {} reset the registry after {} at {} registered it",
                s.label(),
                s.pos(),
                h.label(),
                h.pos()
            ),
            _ => format!(
                "no compensationhandler named \"{}\" was registered before it",
                crate::input::printable_max(&self.target, usize::MAX)
            ),
        }
    }
}

/// Makes the [`ActivityRef`]s of one activity tree and interns its other names (slots and the
/// like). A reference copies the activity's one-byte element and shares its name, so it is made
/// afresh each time rather than cached.
#[derive(Debug, Default)]
pub(crate) struct ActivityRefs {
    elements: HashMap<String, SharedStr>,
}

impl ActivityRefs {
    /// The reference to `a`.
    pub fn get(&mut self, a: &crate::bpl::Activity) -> ActivityRef {
        ActivityRef::of(a)
    }

    /// An interned string (slot names and the like): equal strings share one allocation.
    pub fn intern(&mut self, s: &str) -> SharedStr {
        match self.elements.get(s) {
            Some(e) => e.clone(),
            None => {
                let e = SharedStr::from(s);
                self.elements.insert(s.to_string(), e.clone());
                e
            }
        }
    }
}

/// An immutable string that is cheap to clone (reference-counted): activity names and element
/// names inside the pipeline, shared by everything that refers to the same activity. Reads as
/// a `&str` (`Deref`, `as_str`, comparisons with `str`/`String`); serialized as a string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> SharedStr {
        SharedStr(Arc::from(s))
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> SharedStr {
        SharedStr(Arc::from(s))
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> String {
        s.0.to_string()
    }
}

impl std::fmt::Display for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&*self.0, f)
    }
}

impl std::fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        self == &*other.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == &*other.0
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl Serialize for SharedStr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SharedStr::from)
    }
}

/// The part an owning activity plays in a state (spec Appendix A). Serialized as the
/// Appendix-A spelling: `SYNC_WAIT`, `SWITCH_CASE(2)`, `COMP_HANDLER(Undo)`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Entry,
    IfPost,
    IfTrue,
    IfFalse,
    SwitchPost,
    /// 1-based position of the case among the switch's user cases.
    SwitchCase(u32),
    SwitchDefault,
    WhileTest,
    WhilePost,
    WhileBody,
    UntilTest,
    UntilPost,
    UntilBody,
    ForeachTest,
    ForeachBody,
    ForeachPost,
    SyncWait,
    SyncAfter,
    ScopeBody,
    ScopeFault,
    ScopeEnd,
    FaultPost,
    /// 1-based position of the `<catch>` among the scope's catches.
    Catch(u32),
    /// Synthesized transfer default of a scope without `<catchall>`.
    CatchDefault,
    Catchall,
    CompHandler(String),
    CompensateReturn,
    Label,
    LabelAfter,
    Branch,
    BranchAfter,
    FlowJoin,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use Role::*;
        let s = match self {
            Entry => "ENTRY",
            IfPost => "IF_POST",
            IfTrue => "IF_TRUE",
            IfFalse => "IF_FALSE",
            SwitchPost => "SWITCH_POST",
            SwitchCase(i) => return write!(f, "SWITCH_CASE({i})"),
            SwitchDefault => "SWITCH_DEFAULT",
            WhileTest => "WHILE_TEST",
            WhilePost => "WHILE_POST",
            WhileBody => "WHILE_BODY",
            UntilTest => "UNTIL_TEST",
            UntilPost => "UNTIL_POST",
            UntilBody => "UNTIL_BODY",
            ForeachTest => "FOREACH_TEST",
            ForeachBody => "FOREACH_BODY",
            ForeachPost => "FOREACH_POST",
            SyncWait => "SYNC_WAIT",
            SyncAfter => "SYNC_AFTER",
            ScopeBody => "SCOPE_BODY",
            ScopeFault => "SCOPE_FAULT",
            ScopeEnd => "SCOPE_END",
            FaultPost => "FAULT_POST",
            Catch(i) => return write!(f, "CATCH({i})"),
            CatchDefault => "CATCH_DEFAULT",
            Catchall => "CATCHALL",
            CompHandler(n) => return write!(f, "COMP_HANDLER({n})"),
            CompensateReturn => "COMPENSATE_RETURN",
            Label => "LABEL",
            LabelAfter => "LABEL_AFTER",
            Branch => "BRANCH",
            BranchAfter => "BRANCH_AFTER",
            FlowJoin => "FLOW_JOIN",
        };
        f.write_str(s)
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use Role::*;
        if let Some(inner) = s.strip_suffix(')') {
            let (head, arg) = inner
                .split_once('(')
                .ok_or_else(|| format!("unknown role {s:?}"))?;
            let num = || {
                arg.parse::<u32>()
                    .map_err(|_| format!("bad index in role {s:?}"))
            };
            return match head {
                "SWITCH_CASE" => Ok(SwitchCase(num()?)),
                "CATCH" => Ok(Catch(num()?)),
                "COMP_HANDLER" => Ok(CompHandler(arg.to_string())),
                _ => Err(format!("unknown role {s:?}")),
            };
        }
        Ok(match s {
            "ENTRY" => Entry,
            "IF_POST" => IfPost,
            "IF_TRUE" => IfTrue,
            "IF_FALSE" => IfFalse,
            "SWITCH_POST" => SwitchPost,
            "SWITCH_DEFAULT" => SwitchDefault,
            "WHILE_TEST" => WhileTest,
            "WHILE_POST" => WhilePost,
            "WHILE_BODY" => WhileBody,
            "UNTIL_TEST" => UntilTest,
            "UNTIL_POST" => UntilPost,
            "UNTIL_BODY" => UntilBody,
            "FOREACH_TEST" => ForeachTest,
            "FOREACH_BODY" => ForeachBody,
            "FOREACH_POST" => ForeachPost,
            "SYNC_WAIT" => SyncWait,
            "SYNC_AFTER" => SyncAfter,
            "SCOPE_BODY" => ScopeBody,
            "SCOPE_FAULT" => ScopeFault,
            "SCOPE_END" => ScopeEnd,
            "FAULT_POST" => FaultPost,
            "CATCH_DEFAULT" => CatchDefault,
            "CATCHALL" => Catchall,
            "COMPENSATE_RETURN" => CompensateReturn,
            "LABEL" => Label,
            "LABEL_AFTER" => LabelAfter,
            "BRANCH" => Branch,
            "BRANCH_AFTER" => BranchAfter,
            "FLOW_JOIN" => FlowJoin,
            _ => return Err(format!("unknown role {s:?}")),
        })
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One generated state method `S<n>`.
///
/// State names are numbers ([`StateName`], spelled `S<n>`/`Stop` only when printed). The facts
/// most states lack (dead and return successors, stacks, `GoSub`, started threads, sends) are
/// kept in one optional box and read through methods; a 100k-activity class has ~100k states.
/// Serialized exactly as the field list below (the `states --format json` document).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(from = "StateWire")]
pub struct State {
    /// `S<n>`.
    pub name: StateName,
    pub role: Role,
    /// The activity that owns the state (spec Appendix A: a sync call owns its W and C).
    pub activity: ActivityRef,
    /// A Waiting thread can rest here (sync / synchronous call / delay wait state).
    pub wait: bool,
    /// A parent thread rests here while flow children wait (join state).
    pub join: bool,
    /// This state pops `%HandlerStack` (the last body state of a scope).
    pub pops_handler: bool,
    /// The F state an error here jumps to (spec 4.4 kind 3): the innermost scope whose body
    /// holds the state; a scope's body entry A is protected by its own F; E, F, the fault-switch
    /// post, catch and compensation-handler states belong to the enclosing scope.
    pub error_target: Option<StateName>,
    /// The F this state pushes onto `%HandlerStack` (a scope's A state).
    pub pushes_handler: Option<StateName>,
    /// Every value the state's method can assign to `%NextState`: code edges including the
    /// wait self-loop, dead edges and `Stop`. Sorted by state number, `Stop` last.
    pub successors: StateNames,
    /// The rarer facts; `None` when all are empty.
    pub(super) more: Option<Box<StateMore>>,
}

/// The facts of a [`State`] that most states do not have (see its methods): one in three
/// states sends a call, is inside a scope or starts a flow.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct StateMore {
    pub handler_stack: StateNames,
    pub starts_threads: Box<[String]>,
    pub sends: Box<[SharedStr]>,
    pub rare: Option<Box<StateRare>>,
}

/// The facts only states around compensation handlers, jumps and transfers have.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct StateRare {
    pub dead_successors: StateNames,
    pub return_successors: StateNames,
    pub subroutine_stack: StateNames,
    pub subroutine_stack_alternatives: Box<[StateNames]>,
    pub gosub: Option<(Option<StateName>, StateName)>,
}

impl StateMore {
    fn is_empty(&self) -> bool {
        *self == StateMore::default()
    }
}

impl StateRare {
    /// `None` when every fact is empty.
    pub(super) fn boxed(self) -> Option<Box<StateRare>> {
        (self != StateRare::default()).then(|| Box::new(self))
    }
}

impl State {
    /// A state with no edges, stacks or other facts.
    pub fn new(name: StateName, role: Role, activity: ActivityRef) -> State {
        State {
            name,
            role,
            activity,
            wait: false,
            join: false,
            pops_handler: false,
            error_target: None,
            pushes_handler: None,
            successors: StateNames::EMPTY,
            more: None,
        }
    }

    /// Keep the box only when it holds something.
    pub(super) fn set_more(&mut self, more: StateMore) {
        self.more = (!more.is_empty()).then(|| Box::new(more));
    }

    fn rare(&self) -> Option<&StateRare> {
        self.more.as_deref()?.rare.as_deref()
    }

    fn names_of(&self, f: impl Fn(&StateRare) -> &StateNames) -> &StateNames {
        self.rare().map_or(&StateNames::EMPTY, f)
    }

    /// The subset of `successors` that is dead code (after break/continue/throw, transfer
    /// defaults): present in the generated method, never taken.
    pub fn dead_successors(&self) -> &StateNames {
        self.names_of(|m| &m.dead_successors)
    }
    /// Runtime-only successors that the method does not assign literally: the dynamic
    /// `Return()` of a compensation handler to each return state R (spec 4.4 kind 4).
    pub fn return_successors(&self) -> &StateNames {
        self.names_of(|m| &m.return_successors)
    }
    /// `%HandlerStack` of a thread resting here, i.e. at entry to the state (outermost first),
    /// per spec 4.3: the F states of the enclosing scopes of this thread whose body holds the
    /// state. A scope's body entry A does not list its own F yet (A pushes it).
    pub fn handler_stack(&self) -> &StateNames {
        self.more
            .as_deref()
            .map_or(&StateNames::EMPTY, |m| &m.handler_stack)
    }
    /// `%SubroutineStack` of a thread resting here (outermost first). When a compensation
    /// handler is the target of several `<compensate>`s, the possible values are all listed in
    /// [`subroutine_stack_alternatives`](Self::subroutine_stack_alternatives) and this holds
    /// the first.
    pub fn subroutine_stack(&self) -> &StateNames {
        self.names_of(|m| &m.subroutine_stack)
    }
    pub fn subroutine_stack_alternatives(&self) -> &[StateNames] {
        self.rare()
            .map_or(&[], |m| &m.subroutine_stack_alternatives)
    }
    /// `GoSub(H, R)` of a `<compensate>`: (handler state, return state). H is `None` when the
    /// compensation registry had no entry for the target at generation time (spec 3.4.11).
    pub fn gosub_states(&self) -> Option<(Option<StateName>, StateName)> {
        self.rare().and_then(|m| m.gosub)
    }
    /// [`gosub_states`](Self::gosub_states) spelled out; H is empty when there was no entry.
    pub fn gosub(&self) -> Option<(String, String)> {
        self.gosub_states()
            .map(|(h, r)| (h.map(String::from).unwrap_or_default(), r.to_string()))
    }
    /// Thread classes this state starts (a flow's M0), in start order (string-sorted, Q-9).
    pub fn starts_threads(&self) -> &[String] {
        self.more.as_deref().map_or(&[], |m| &m.starts_threads)
    }
    /// Calls sent from this state (call names), in code order.
    pub fn sends(&self) -> &[SharedStr] {
        self.more.as_deref().map_or(&[], |m| &m.sends)
    }
}

/// `H` of a `GoSub`: the handler state or, when the lookup failed, the empty string.
struct GoSubHandler(Option<StateName>);

impl Serialize for GoSubHandler {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => n.serialize(s),
            None => s.serialize_str(""),
        }
    }
}

impl Serialize for State {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("State", 17)?;
        st.serialize_field("name", &self.name)?;
        st.serialize_field("role", &self.role)?;
        st.serialize_field("activity", &self.activity)?;
        st.serialize_field("wait", &self.wait)?;
        st.serialize_field("join", &self.join)?;
        st.serialize_field("successors", &self.successors)?;
        let lists = [
            ("dead_successors", self.dead_successors()),
            ("return_successors", self.return_successors()),
        ];
        for (key, v) in lists {
            if !v.is_empty() {
                st.serialize_field(key, v)?;
            }
        }
        if let Some(e) = &self.error_target {
            st.serialize_field("error_target", e)?;
        }
        let stacks = [
            ("handler_stack", self.handler_stack()),
            ("subroutine_stack", self.subroutine_stack()),
        ];
        for (key, v) in stacks {
            if !v.is_empty() {
                st.serialize_field(key, v)?;
            }
        }
        if !self.subroutine_stack_alternatives().is_empty() {
            st.serialize_field(
                "subroutine_stack_alternatives",
                self.subroutine_stack_alternatives(),
            )?;
        }
        if let Some(p) = &self.pushes_handler {
            st.serialize_field("pushes_handler", p)?;
        }
        if self.pops_handler {
            st.serialize_field("pops_handler", &true)?;
        }
        if let Some((h, r)) = self.gosub_states() {
            st.serialize_field("gosub", &(GoSubHandler(h), r))?;
        }
        if !self.starts_threads().is_empty() {
            st.serialize_field("starts_threads", self.starts_threads())?;
        }
        if !self.sends().is_empty() {
            st.serialize_field("sends", self.sends())?;
        }
        st.end()
    }
}

/// The serialized shape of a [`State`], read back into it.
#[derive(Deserialize)]
struct StateWire {
    name: StateName,
    role: Role,
    activity: ActivityRef,
    wait: bool,
    join: bool,
    successors: StateNames,
    #[serde(default)]
    dead_successors: StateNames,
    #[serde(default)]
    return_successors: StateNames,
    #[serde(default)]
    error_target: Option<StateName>,
    #[serde(default)]
    handler_stack: StateNames,
    #[serde(default)]
    subroutine_stack: StateNames,
    #[serde(default)]
    subroutine_stack_alternatives: Vec<StateNames>,
    #[serde(default)]
    pushes_handler: Option<StateName>,
    #[serde(default)]
    pops_handler: bool,
    #[serde(default)]
    gosub: Option<(String, StateName)>,
    #[serde(default)]
    starts_threads: Vec<String>,
    #[serde(default)]
    sends: Vec<SharedStr>,
}

impl From<StateWire> for State {
    fn from(w: StateWire) -> State {
        let mut s = State {
            wait: w.wait,
            join: w.join,
            pops_handler: w.pops_handler,
            error_target: w.error_target,
            pushes_handler: w.pushes_handler,
            successors: w.successors,
            ..State::new(w.name, w.role, w.activity)
        };
        s.set_more(StateMore {
            handler_stack: w.handler_stack,
            starts_threads: w.starts_threads.into(),
            sends: w.sends.into(),
            rare: StateRare {
                dead_successors: w.dead_successors,
                return_successors: w.return_successors,
                subroutine_stack: w.subroutine_stack,
                subroutine_stack_alternatives: w.subroutine_stack_alternatives.into(),
                // An H that is not a state name reads as the failed lookup it is written for.
                gosub: w.gosub.map(|(h, r)| (StateName::parse(&h), r)),
            }
            .boxed(),
        });
        s
    }
}

/// `OnResponse<n>` on the context class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseHandler {
    pub name: String,
    /// The call's `name` (its completion key; `@expr` names are runtime expressions).
    pub call: String,
    pub target: Option<String>,
    pub activity: ActivityRef,
    /// Thread class number whose state sends the call.
    pub thread: u32,
}

impl CompiledProcess {
    pub fn thread(&self, number: u32) -> Option<&ThreadClass> {
        self.threads.iter().find(|t| t.number == number)
    }

    /// [`thread`](Self::thread) for many look-ups: the first thread class of each number.
    pub(crate) fn threads_by_number(&self) -> HashMap<u32, &ThreadClass> {
        let mut m = HashMap::new();
        for t in &self.threads {
            m.entry(t.number).or_insert(t);
        }
        m
    }
}

impl ThreadClass {
    /// The state named `name` (`S<n>`; a `StateName`, `str` or `String`).
    pub fn state<N: AsStateName + ?Sized>(&self, name: &N) -> Option<&State> {
        let n = name.state_name()?.number()?;
        self.states
            .get((n as usize).checked_sub(1)?)
            .filter(|s| s.name.number() == Some(n))
    }
}
