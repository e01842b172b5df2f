//! The typed activity tree of a BPL document: the data handed from the reader to the
//! compiler emulation (`states`) and to the activity matcher (`diff`).
//!
//! The tree keeps exactly what the IRIS BPL parser keeps (spec 2.x), plus positions in the
//! *original* file and the raw attributes the diff needs as matching keys. Nothing here knows
//! about state numbering.

use serde::{Deserialize, Serialize};
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
    /// How many top-level `<sequence>` elements there were; only the last is compiled.
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
/// interface the pipeline uses, in a plain vector (an activity has a handful of attributes, and a
/// map node per activity was the largest item of a loaded 100k-activity process). Serialized as
/// a JSON object, like the map it replaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attrs(Vec<(String, String)>);

impl Attrs {
    pub fn get<Q: AsRef<str> + ?Sized>(&self, name: &Q) -> Option<&String> {
        let name = name.as_ref();
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| &self.0[i].1)
    }
    pub fn contains_key<Q: AsRef<str> + ?Sized>(&self, name: &Q) -> bool {
        self.get(name).is_some()
    }
    /// (name, value) in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.0.iter().map(|(k, _)| k)
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for Attrs {
    /// Sorted by name; of repeated names the last value wins (as in a map).
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let mut v: Vec<(String, String)> = iter.into_iter().collect();
        v.reverse();
        // Stable: among equal names the last one written comes first and is kept.
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|later, kept| later.0 == kept.0);
        v.shrink_to_fit();
        Attrs(v)
    }
}

impl<'a> IntoIterator for &'a Attrs {
    type Item = (&'a String, &'a String);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (String, String)>,
        fn(&'a (String, String)) -> (&'a String, &'a String),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
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

/// One node of the activity tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub id: ActivityId,
    /// Local element name as written (`call`, `if`, `catch`, `compensationhandler`, …).
    pub element: String,
    /// The `name` attribute.
    pub name: Option<String>,
    /// `disabled` is exactly `true` or `1` (spec 2.4).
    pub disabled: bool,
    pub pos: Pos,
    /// Every attribute as written (after XML decoding), for matching keys and messages.
    /// Layout-only attributes (`xpos`, `ypos`, `xend`, `yend`) are dropped by the reader.
    pub attrs: Attrs,
    /// Text of a leading `<annotation>`, if any.
    pub annotation: Option<String>,
    /// The code of a `<code>` or `<sql>` element (its text, CDATA decoded), for finding what
    /// it reads and writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
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
        children: Vec<Activity>,
    },
    Call {
        /// Raw `async` attribute (None when absent = asynchronous, spec 2.5).
        async_attr: Option<String>,
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
        body: Vec<Activity>,
    },
    Until {
        body: Vec<Activity>,
    },
    Foreach {
        body: Vec<Activity>,
    },
    Break,
    Continue,
    Scope {
        body: Vec<Activity>,
        /// `Some` iff a `<compensationhandlers>` element is present (it may be empty).
        compensation_handlers: Option<Vec<Activity>>,
        /// `<catch>` and `<catchall>` in document order (`Catch` / `Catchall` kinds).
        fault_handlers: Vec<Activity>,
    },
    /// `<compensationhandler name=…>` (only inside `compensation_handlers`).
    CompensationHandler {
        body: Vec<Activity>,
    },
    /// `<catch fault=…>` (only inside `fault_handlers`).
    Catch {
        fault: Option<String>,
        body: Vec<Activity>,
    },
    Catchall {
        body: Vec<Activity>,
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
        children: Vec<Activity>,
    },
}

/// `<true>` / `<false>` of an `<if>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    pub pos: Pos,
    pub activities: Vec<Activity>,
}

/// `<case>` / `<default>` of a `<switch>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub pos: Pos,
    pub name: Option<String>,
    /// None for `<default>`.
    pub condition: Option<String>,
    pub activities: Vec<Activity>,
}

/// `<request>` / `<response>` of a `<call>` (spec 2.11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub pos: Pos,
    pub type_name: Option<String>,
    /// Activity elements inside (assign, code, trace), disabled ones included. They never
    /// allocate states; they only decide whether the call gets a response handler (5.1).
    pub activities: Vec<Activity>,
}

/// A flattened view of one activity: its parent and where it sits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlatEntry {
    pub id: ActivityId,
    pub parent: Option<ActivityId>,
    /// Slot inside the parent (`body`, `true`, `false`, `case[2]`, `default`, `handlers`,
    /// `faulthandlers`, `children`, `request`, `response`).
    pub slot: String,
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
    /// generic tree walks (diff, indexing). Message contents are included last.
    pub fn child_slots(&self) -> Vec<(String, &Vec<Activity>)> {
        use ActivityKind::*;
        match &self.kind {
            Simple
            | Sync { .. }
            | Delay
            | Break
            | Continue
            | Compensate { .. }
            | Label
            | Branch { .. } => vec![],
            Sequence { children } | Flow { children } => vec![("children".into(), children)],
            Call {
                request, response, ..
            } => {
                let mut v = vec![];
                if let Some(m) = request {
                    v.push(("request".into(), &m.activities));
                }
                if let Some(m) = response {
                    v.push(("response".into(), &m.activities));
                }
                v
            }
            If {
                true_branch,
                false_branch,
            } => {
                let mut v = vec![];
                if let Some(b) = true_branch {
                    v.push(("true".into(), &b.activities));
                }
                if let Some(b) = false_branch {
                    v.push(("false".into(), &b.activities));
                }
                v
            }
            Switch { cases, default } => {
                let mut v: Vec<(String, &Vec<Activity>)> = cases
                    .iter()
                    .enumerate()
                    .map(|(i, c)| (format!("case[{i}]"), &c.activities))
                    .collect();
                if let Some(d) = default {
                    v.push(("default".into(), &d.activities));
                }
                v
            }
            While { body }
            | Until { body }
            | Foreach { body }
            | CompensationHandler { body }
            | Catch { body, .. }
            | Catchall { body } => {
                vec![("body".into(), body)]
            }
            Scope {
                body,
                compensation_handlers,
                fault_handlers,
            } => {
                let mut v = vec![("body".into(), body)];
                if let Some(h) = compensation_handlers {
                    v.push(("handlers".into(), h));
                }
                v.push(("faulthandlers".into(), fault_handlers));
                v
            }
        }
    }
}

impl Process {
    /// Renumber every activity in pre-order (document order, slots as in `child_slots`) and
    /// rebuild `flat`. The reader calls this once; callers that build trees by hand must too.
    pub fn index(&mut self) {
        fn walk(
            a: &mut Activity,
            parent: Option<ActivityId>,
            slot: &str,
            index: u32,
            next: &mut u32,
            flat: &mut Vec<FlatEntry>,
        ) {
            a.id = ActivityId(*next);
            *next += 1;
            flat.push(FlatEntry {
                id: a.id,
                parent,
                slot: slot.to_string(),
                index,
            });
            let me = a.id;
            for_each_slot_mut(a, |slot, list| {
                for (i, c) in list.iter_mut().enumerate() {
                    walk(c, Some(me), slot, i as u32, next, flat);
                }
            });
        }
        let mut next = 0;
        let mut flat = Vec::new();
        walk(&mut self.sequence, None, "process", 0, &mut next, &mut flat);
        self.flat = flat;
    }

    /// All activities in pre-order, by id.
    pub fn activities(&self) -> Vec<&Activity> {
        let mut out = Vec::with_capacity(self.flat.len());
        fn walk<'a>(a: &'a Activity, out: &mut Vec<&'a Activity>) {
            out.push(a);
            for (_, list) in a.child_slots() {
                for c in list {
                    walk(c, out);
                }
            }
        }
        walk(&self.sequence, &mut out);
        out
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

fn for_each_slot_mut(a: &mut Activity, mut f: impl FnMut(&str, &mut Vec<Activity>)) {
    use ActivityKind::*;
    match &mut a.kind {
        Simple
        | Sync { .. }
        | Delay
        | Break
        | Continue
        | Compensate { .. }
        | Label
        | Branch { .. } => {}
        Sequence { children } | Flow { children } => f("children", children),
        Call {
            request, response, ..
        } => {
            if let Some(m) = request {
                f("request", &mut m.activities);
            }
            if let Some(m) = response {
                f("response", &mut m.activities);
            }
        }
        If {
            true_branch,
            false_branch,
        } => {
            if let Some(b) = true_branch {
                f("true", &mut b.activities);
            }
            if let Some(b) = false_branch {
                f("false", &mut b.activities);
            }
        }
        Switch { cases, default } => {
            for (i, c) in cases.iter_mut().enumerate() {
                f(&format!("case[{i}]"), &mut c.activities);
            }
            if let Some(d) = default {
                f("default", &mut d.activities);
            }
        }
        While { body }
        | Until { body }
        | Foreach { body }
        | CompensationHandler { body }
        | Catch { body, .. }
        | Catchall { body } => f("body", body),
        Scope {
            body,
            compensation_handlers,
            fault_handlers,
        } => {
            f("body", body);
            if let Some(h) = compensation_handlers {
                f("handlers", h);
            }
            f("faulthandlers", fault_handlers);
        }
    }
}
