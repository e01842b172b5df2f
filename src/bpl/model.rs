//! The typed activity tree of a BPL document: the data handed from the reader to the
//! compiler emulation (`states`) and to the activity matcher (`diff`).
//!
//! The tree keeps exactly what the IRIS BPL parser keeps (spec 2.x), plus positions in the
//! *original* file and the raw attributes the diff needs as matching keys. Nothing here knows
//! about state numbering.

use crate::states::SharedStr;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// 1-based line and column in the original input file (class file, export or bare XML).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// Pre-order index of an activity inside one `Bpl` (0 = the compiled top-level sequence).
/// Ids are dense, so `Bpl::activity(id)` is a slice index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ActivityId(pub u32);

/// Where a BPL came from: enough to name it in messages and to prove it unchanged later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    /// What the user passed: a path, or `REV:path`.
    pub origin: String,
    /// Lower-case hex SHA-256 of the raw bytes of the whole input file.
    pub sha256: String,
    pub format: SourceFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// `Class X Extends Ens.BusinessProcessBPL { XData BPL { <process> } }`
    Udl,
    /// Studio / `$System.OBJ.Export` XML holding `<Class><XData name="BPL"><Data><![CDATA[…]]>`
    Export,
    /// A document whose root element is `<process>`.
    Bare,
}

/// A parsed BPL business process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bpl {
    /// Full class name, e.g. `Demo.Loan.BankUS`. For a bare `<process>` document it comes from
    /// the caller (`--class`) or defaults to the file stem.
    pub class_name: String,
    /// The class name is not in the file: it was taken from the file name (a bare document
    /// read without `--class`), or from the other version by [`settle_class_names`](crate::bpl::settle_class_names).
    /// Such a name is no evidence of which class the process is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub class_from_file_name: bool,
    pub source: SourceInfo,
    pub process: Process,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pos: Pos,
    /// Raw `version` attribute, if present (spec 6.1). Validated by the reader: digits only.
    pub version: Option<String>,
    pub language: Option<String>,
    pub request: Option<String>,
    pub response: Option<String>,
    /// `<context><property name= type= initialexpression=>` in document order.
    pub context: Vec<ContextProperty>,
    /// How many top-level `<sequence>` elements there were; only the last is compiled (Q-12).
    pub top_level_sequences: u32,
    /// The last top-level `<sequence>` (the only one the compiler generates). Always
    /// `ActivityKind::Sequence`, with id 0.
    pub sequence: Activity,
    /// Every activity of the compiled tree, indexed by `ActivityId` (pre-order). Filled by
    /// `Process::index()`; the reader calls it.
    #[serde(skip)]
    pub flat: Vec<FlatEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContextProperty {
    pub name: String,
    pub type_name: Option<String>,
    pub initial_expression: Option<String>,
    pub pos: Pos,
}

/// The attributes of an activity, sorted by name, names unique: the part of a `BTreeMap`'s
/// interface the pipeline uses, in an exact-size slice (an activity has a handful of
/// attributes, and a map node per activity was the largest item of a loaded 100k-activity
/// process). Names and values are [`SharedStr`]s the reader interns per load, so the
/// attribute names and the many repeated values (`async="0"`, `property="context.x"`) of a
/// process are stored once. Serialized as a JSON object, like the map it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attrs(Box<[(SharedStr, SharedStr)]>);

impl Attrs {
    pub fn get<Q: AsRef<str> + ?Sized>(&self, name: &Q) -> Option<&str> {
        self.get_shared(name).map(SharedStr::as_str)
    }
    /// The value as the shared string it is stored as (a clone copies a pointer).
    pub fn get_shared<Q: AsRef<str> + ?Sized>(&self, name: &Q) -> Option<&SharedStr> {
        let name = name.as_ref();
        // A handful of entries: equality (which rejects on length) beats ordering them.
        let at = if self.0.len() <= 8 {
            self.0.iter().position(|(k, _)| k.as_str() == name)
        } else {
            self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)).ok()
        };
        at.map(|i| &self.0[i].1)
    }
    pub fn contains_key<Q: AsRef<str> + ?Sized>(&self, name: &Q) -> bool {
        self.get(name).is_some()
    }
    /// (name, value) in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorted by name; of repeated names the last value wins (as in a map). `v` holds the
    /// attributes in document order.
    pub(crate) fn from_vec(mut v: Vec<(SharedStr, SharedStr)>) -> Self {
        if v.len() > 1 {
            v.reverse();
            // Stable: among equal names the last one written comes first and is kept.
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v.dedup_by(|later, kept| later.0 == kept.0);
        }
        Attrs(v.into_boxed_slice())
    }
}

impl<K: Into<SharedStr>, V: Into<SharedStr>> FromIterator<(K, V)> for Attrs {
    /// Sorted by name; of repeated names the last value wins (as in a map).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Attrs::from_vec(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (SharedStr, SharedStr)>,
        fn(&'a (SharedStr, SharedStr)) -> (&'a str, &'a str),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl Serialize for Attrs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Attrs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

macro_rules! elements {
    ($($variant:ident = $name:literal,)*) => {
        /// The element of an activity: one of the 30 activity elements of spec 2.2 or a fault
        /// or compensation handler (`catch`, `catchall`, `compensationhandler`). One byte in
        /// the tree; reads as its name (`Deref<Target = str>`, `as_str`, comparisons with
        /// `str`), orders and hashes as its name, serialized as the name.
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum Element {
            $($variant,)*
        }

        impl Element {
            /// Every element, in name order.
            pub const ALL: &'static [Element] = &[$(Element::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Element::$variant => $name,)*
                }
            }

            /// The element named `name` (exactly, as written), if it is one.
            pub fn from_name(name: &str) -> Option<Element> {
                match name {
                    $($name => Some(Element::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

elements! {
    Alert = "alert",
    Assign = "assign",
    Branch = "branch",
    Break = "break",
    Call = "call",
    Catch = "catch",
    Catchall = "catchall",
    Code = "code",
    Compensate = "compensate",
    CompensationHandler = "compensationhandler",
    Continue = "continue",
    Delay = "delay",
    Empty = "empty",
    Flow = "flow",
    Foreach = "foreach",
    If = "if",
    Label = "label",
    Milestone = "milestone",
    Receive = "receive",
    Reply = "reply",
    Rule = "rule",
    Scope = "scope",
    Sequence = "sequence",
    Sql = "sql",
    Switch = "switch",
    Sync = "sync",
    Throw = "throw",
    Trace = "trace",
    Transform = "transform",
    Until = "until",
    While = "while",
    Xpath = "xpath",
    Xslt = "xslt",
}

impl Element {
    /// One of the 30 activity elements of spec 2.2 (not a handler).
    pub fn is_activity(self) -> bool {
        !matches!(
            self,
            Element::Catch | Element::Catchall | Element::CompensationHandler
        )
    }
}

impl std::ops::Deref for Element {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Element {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Element {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl std::hash::Hash for Element {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl std::fmt::Display for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq<str> for Element {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Element {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Element {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Element> for str {
    fn eq(&self, other: &Element) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<Element> for &str {
    fn eq(&self, other: &Element) -> bool {
        *self == other.as_str()
    }
}

impl From<Element> for String {
    fn from(e: Element) -> String {
        e.as_str().to_string()
    }
}

impl From<Element> for SharedStr {
    fn from(e: Element) -> SharedStr {
        SharedStr::from(e.as_str())
    }
}

impl Serialize for Element {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Element::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown BPL element <{name}>")))
    }
}

/// One node of the activity tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: ActivityId,
    /// Local element name as written (`call`, `if`, `catch`, `compensationhandler`, …).
    pub element: Element,
    /// The `name` attribute (the string `attrs` holds for it).
    pub name: Option<SharedStr>,
    /// `disabled` is exactly `true` or `1` (spec 2.4).
    pub disabled: bool,
    pub pos: Pos,
    /// Every attribute as written (after XML decoding), for matching keys and messages.
    /// Layout-only attributes (`xpos`, `ypos`, `xend`, `yend`) are dropped by the reader.
    pub attrs: Attrs,
    /// Text of a leading `<annotation>`, if any.
    pub annotation: Option<Box<str>>,
    /// The code of a `<code>` or `<sql>` element (its text, CDATA decoded), for finding what
    /// it reads and writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Box<str>>,
    pub kind: ActivityKind,
}

/// What the compiler does with an element. Variants mirror spec 3.4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ActivityKind {
    /// assign, code, sql, trace, alert, milestone, rule, transform, xslt, xpath, reply, empty,
    /// receive, throw: code appended to the current state, no allocation (3.4.1).
    Simple,
    Sequence {
        children: Box<[Activity]>,
    },
    Call {
        /// Raw `async` attribute (None when absent = asynchronous, spec 2.5).
        async_attr: Option<SharedStr>,
        request: Option<Message>,
        response: Option<Message>,
    },
    Sync {
        /// `type="any"`: the wait state has no self-loop.
        any: bool,
    },
    Delay,
    If {
        true_branch: Option<Branch>,
        false_branch: Option<Branch>,
    },
    Switch {
        /// User cases in document order. The reader does NOT synthesize the default.
        cases: Vec<Case>,
        default: Option<Case>,
    },
    While {
        body: Box<[Activity]>,
    },
    Until {
        body: Box<[Activity]>,
    },
    Foreach {
        body: Box<[Activity]>,
    },
    Break,
    Continue,
    Scope {
        body: Box<[Activity]>,
        /// `Some` iff a `<compensationhandlers>` element is present (it may be empty).
        compensation_handlers: Option<Box<[Activity]>>,
        /// `<catch>` and `<catchall>` in document order (`Catch` / `Catchall` kinds).
        fault_handlers: Box<[Activity]>,
    },
    /// `<compensationhandler name=…>` (only inside `compensation_handlers`).
    CompensationHandler {
        body: Box<[Activity]>,
    },
    /// `<catch fault=…>` (only inside `fault_handlers`).
    Catch {
        fault: Option<Box<str>>,
        body: Box<[Activity]>,
    },
    Catchall {
        body: Box<[Activity]>,
    },
    Compensate {
        target: String,
    },
    Label,
    Branch {
        label: String,
    },
    Flow {
        /// Each child is a `<sequence>` (enforced by the reader).
        children: Box<[Activity]>,
    },
}

/// `<true>` / `<false>` of an `<if>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    pub pos: Pos,
    pub activities: Box<[Activity]>,
}

/// `<case>` / `<default>` of a `<switch>`: a pointer to its [`CaseParts`] (read through
/// `Deref`), so a switch, and with it every activity, stays small.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Case(Box<CaseParts>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseParts {
    pub pos: Pos,
    pub name: Option<String>,
    /// None for `<default>`.
    pub condition: Option<String>,
    pub activities: Box<[Activity]>,
}

/// `<request>` / `<response>` of a `<call>` (spec 2.11): a pointer to its [`MessageParts`]
/// (read through `Deref`), so a call, and with it every activity, stays small.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Message(Box<MessageParts>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageParts {
    pub pos: Pos,
    pub type_name: Option<String>,
    /// Activity elements inside (assign, code, trace), disabled ones included. They never
    /// allocate states; they only decide whether the call gets a response handler (5.1).
    pub activities: Box<[Activity]>,
}

macro_rules! boxed_parts {
    ($outer:ident, $parts:ident) => {
        impl From<$parts> for $outer {
            fn from(parts: $parts) -> $outer {
                $outer(Box::new(parts))
            }
        }
        impl std::ops::Deref for $outer {
            type Target = $parts;
            fn deref(&self) -> &$parts {
                &self.0
            }
        }
        impl std::ops::DerefMut for $outer {
            fn deref_mut(&mut self) -> &mut $parts {
                &mut self.0
            }
        }
        impl std::fmt::Debug for $outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

boxed_parts!(Case, CaseParts);
boxed_parts!(Message, MessageParts);

/// A flattened view of one activity: its parent and where it sits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlatEntry {
    pub id: ActivityId,
    pub parent: Option<ActivityId>,
    /// Slot inside the parent (`body`, `true`, `false`, `case[2]`, `default`, `handlers`,
    /// `faulthandlers`, `children`, `request`, `response`); shared by the entries of one slot
    /// name.
    pub slot: SharedStr,
    /// Index within that slot.
    pub index: u32,
}

impl Activity {
    /// Display form used in listings and messages: `call "Lookup"` or `assign@12:5`. A
    /// control character or bidi override in the name is escaped (`\u{a}`), so a name cannot
    /// forge an output line or reorder it on the terminal.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!(
                "{} \"{}\"",
                self.element,
                crate::input::printable_max(n, usize::MAX)
            ),
            None => format!("{}@{}", self.element, self.pos),
        }
    }

    /// Child activity lists in generation-relevant order with their slot names. Handy for
    /// generic tree walks (diff, indexing). Message contents are included last. Slot names
    /// are static strings except `case[i]`.
    pub fn child_slots(&self) -> Vec<(Cow<'static, str>, &[Activity])> {
        let mut v = Vec::new();
        for_each_slot(self, |slot, list| v.push((slot.name(), list)));
        v
    }
}

/// The name of a child list of an activity: `case[i]` or one of a fixed few.
#[derive(Clone, Copy)]
enum Slot {
    Named(&'static str),
    Case(usize),
}

impl Slot {
    fn name(self) -> Cow<'static, str> {
        match self {
            Slot::Named(n) => Cow::Borrowed(n),
            Slot::Case(i) => Cow::Owned(format!("case[{i}]")),
        }
    }
}

impl Process {
    /// Renumber every activity in pre-order (document order, slots as in `child_slots`) and
    /// rebuild `flat`. The reader calls this once; callers that build trees by hand must too.
    pub fn index(&mut self) {
        let n = self.count();
        self.index_within(n);
    }

    /// [`index`](Self::index) for a tree of at most `most` activities (the reader knows how
    /// many it read).
    pub(crate) fn index_within(&mut self, most: usize) {
        /// One shared string per slot name.
        #[derive(Default)]
        struct Names {
            named: Vec<SharedStr>,
            cases: Vec<SharedStr>,
        }
        impl Names {
            fn get(&mut self, slot: Slot) -> SharedStr {
                match slot {
                    Slot::Named(n) => {
                        if let Some(s) = self.named.iter().find(|s| s.as_str() == n) {
                            return s.clone();
                        }
                        let s = SharedStr::from(n);
                        self.named.push(s.clone());
                        s
                    }
                    Slot::Case(i) => {
                        while self.cases.len() <= i {
                            let k = self.cases.len();
                            self.cases.push(SharedStr::from(format!("case[{k}]")));
                        }
                        self.cases[i].clone()
                    }
                }
            }
        }
        fn walk(
            a: &mut Activity,
            parent: Option<ActivityId>,
            slot: SharedStr,
            index: u32,
            flat: &mut Vec<FlatEntry>,
            names: &mut Names,
        ) {
            a.id = ActivityId(flat.len() as u32);
            flat.push(FlatEntry {
                id: a.id,
                parent,
                slot,
                index,
            });
            let me = a.id;
            for_each_slot_mut(a, |slot, list| {
                let slot = names.get(slot);
                for (i, c) in list.iter_mut().enumerate() {
                    walk(c, Some(me), slot.clone(), i as u32, flat, names);
                }
            });
        }
        let mut flat = Vec::with_capacity(most);
        let mut names = Names::default();
        let process = names.get(Slot::Named("process"));
        walk(&mut self.sequence, None, process, 0, &mut flat, &mut names);
        flat.shrink_to_fit();
        self.flat = flat;
    }

    /// All activities in pre-order, by id.
    pub fn activities(&self) -> Vec<&Activity> {
        let mut out = Vec::with_capacity(self.flat.len());
        fn walk<'a>(a: &'a Activity, out: &mut Vec<&'a Activity>) {
            out.push(a);
            for_each_slot(a, |_, list| {
                for c in list {
                    walk(c, out);
                }
            });
        }
        walk(&self.sequence, &mut out);
        out
    }

    /// How many activities the tree holds.
    fn count(&self) -> usize {
        fn walk(a: &Activity) -> usize {
            let mut n = 1;
            for_each_slot(a, |_, list| n += list.iter().map(walk).sum::<usize>());
            n
        }
        walk(&self.sequence)
    }
}

impl Process {
    /// Apply `f` to every position held by the process: the process itself, its context
    /// properties, every activity, and the `<true>`/`<false>`, `<case>`/`<default>` and
    /// `<request>`/`<response>` parts. The reader uses it to map positions parsed from a
    /// decoded copy of the XML back into the original file.
    pub fn map_positions(&mut self, f: &mut dyn FnMut(Pos) -> Pos) {
        fn walk(a: &mut Activity, f: &mut dyn FnMut(Pos) -> Pos) {
            a.pos = f(a.pos);
            match &mut a.kind {
                ActivityKind::If {
                    true_branch,
                    false_branch,
                } => {
                    for b in [true_branch, false_branch].into_iter().flatten() {
                        b.pos = f(b.pos);
                    }
                }
                ActivityKind::Switch { cases, default } => {
                    for c in cases.iter_mut().chain(default.iter_mut()) {
                        c.pos = f(c.pos);
                    }
                }
                ActivityKind::Call {
                    request, response, ..
                } => {
                    for m in [request, response].into_iter().flatten() {
                        m.pos = f(m.pos);
                    }
                }
                _ => {}
            }
            for_each_slot_mut(a, |_, list| {
                for c in list.iter_mut() {
                    walk(c, f);
                }
            });
        }
        self.pos = f(self.pos);
        for c in &mut self.context {
            c.pos = f(c.pos);
        }
        walk(&mut self.sequence, f);
    }
}

/// `f(slot, list)` for every child list of `a`, in `child_slots` order.
fn for_each_slot<'a>(a: &'a Activity, mut f: impl FnMut(Slot, &'a [Activity])) {
    use ActivityKind::*;
    use Slot::Named;
    match &a.kind {
        Simple
        | Sync { .. }
        | Delay
        | Break
        | Continue
        | Compensate { .. }
        | Label
        | Branch { .. } => {}
        Sequence { children } | Flow { children } => f(Named("children"), children),
        Call {
            request, response, ..
        } => {
            if let Some(m) = request {
                f(Named("request"), &m.activities);
            }
            if let Some(m) = response {
                f(Named("response"), &m.activities);
            }
        }
        If {
            true_branch,
            false_branch,
        } => {
            if let Some(b) = true_branch {
                f(Named("true"), &b.activities);
            }
            if let Some(b) = false_branch {
                f(Named("false"), &b.activities);
            }
        }
        Switch { cases, default } => {
            for (i, c) in cases.iter().enumerate() {
                f(Slot::Case(i), &c.activities);
            }
            if let Some(d) = default {
                f(Named("default"), &d.activities);
            }
        }
        While { body }
        | Until { body }
        | Foreach { body }
        | CompensationHandler { body }
        | Catch { body, .. }
        | Catchall { body } => f(Named("body"), body),
        Scope {
            body,
            compensation_handlers,
            fault_handlers,
        } => {
            f(Named("body"), body);
            if let Some(h) = compensation_handlers {
                f(Named("handlers"), h);
            }
            f(Named("faulthandlers"), fault_handlers);
        }
    }
}

/// [`for_each_slot`] for a mutable tree.
fn for_each_slot_mut(a: &mut Activity, mut f: impl FnMut(Slot, &mut [Activity])) {
    use ActivityKind::*;
    use Slot::Named;
    match &mut a.kind {
        Simple
        | Sync { .. }
        | Delay
        | Break
        | Continue
        | Compensate { .. }
        | Label
        | Branch { .. } => {}
        Sequence { children } | Flow { children } => f(Named("children"), children),
        Call {
            request, response, ..
        } => {
            if let Some(m) = request {
                f(Named("request"), &mut m.activities);
            }
            if let Some(m) = response {
                f(Named("response"), &mut m.activities);
            }
        }
        If {
            true_branch,
            false_branch,
        } => {
            if let Some(b) = true_branch {
                f(Named("true"), &mut b.activities);
            }
            if let Some(b) = false_branch {
                f(Named("false"), &mut b.activities);
            }
        }
        Switch { cases, default } => {
            for (i, c) in cases.iter_mut().enumerate() {
                f(Slot::Case(i), &mut c.activities);
            }
            if let Some(d) = default {
                f(Named("default"), &mut d.activities);
            }
        }
        While { body }
        | Until { body }
        | Foreach { body }
        | CompensationHandler { body }
        | Catch { body, .. }
        | Catchall { body } => f(Named("body"), body),
        Scope {
            body,
            compensation_handlers,
            fault_handlers,
        } => {
            f(Named("body"), body);
            if let Some(h) = compensation_handlers {
                f(Named("handlers"), h);
            }
            f(Named("faulthandlers"), fault_handlers);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_read_order_and_serialize_as_their_names() {
        let names: Vec<&str> = Element::ALL.iter().map(|e| e.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(
            names, sorted,
            "declared in name order, so Ord is name order"
        );
        for &e in Element::ALL {
            assert_eq!(Element::from_name(e.as_str()), Some(e));
            assert_eq!(serde_json::to_string(&e).unwrap(), format!("\"{e}\""));
            assert_eq!(format!("{e:?}"), format!("{:?}", e.as_str()));
        }
        let activities: Vec<&str> = Element::ALL
            .iter()
            .filter(|e| e.is_activity())
            .map(|e| e.as_str())
            .collect();
        assert_eq!(activities, crate::bpl::parse::ACTIVITY_ELEMENTS);
        assert_eq!(Element::from_name("Call"), None);
        assert_eq!(Element::Call, "call");
        assert_eq!("call", Element::Call);
    }

    #[test]
    fn attrs_keep_the_last_of_repeated_names_in_name_order() {
        let a: Attrs = [("b", "1"), ("a", "2"), ("b", "3")].into_iter().collect();
        assert_eq!(a.iter().collect::<Vec<_>>(), [("a", "2"), ("b", "3")]);
        assert_eq!(a.get("b"), Some("3"));
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"a":"2","b":"3"}"#);
    }

    /// An activity is held by value in its parent's list: every byte here is paid 100 000
    /// times by a large process. Box what is rare rather than grow this.
    #[test]
    fn an_activity_stays_small() {
        assert!(std::mem::size_of::<Activity>() <= 136);
        assert!(std::mem::size_of::<ActivityKind>() <= 56);
        assert!(std::mem::size_of::<FlatEntry>() <= 32);
    }
}
