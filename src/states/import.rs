//! Generated thread classes exported from IRIS, read back so a user can prove the emulation
//! against their own compiler (`bplmigrate verify-numbering`).
//!
//! Input: a UDL class file (`Class P.Thread1 Extends Ens.BP.Thread [ … ] { Method S1(…) { … } }`)
//! or a Studio / `$System.OBJ.Export` XML file (`<Class name="P.Thread1"><Super>Ens.BP.Thread</Super>
//! <Method name="S1"><Implementation><![CDATA[ … ]]></Implementation></Method>`), LF or CRLF, one or
//! several classes (CR-only line breaks too). Classes that do not extend `Ens.BP.Thread` (the context class, the BPL class
//! itself) are listed in [`ImportedFile::skipped`], not read.
//!
//! What is read from each state method `S<n>` (spec 8.1; methods are listed in string order,
//! Q-15, so order is never relied on):
//! * successors: every literal value of `Set ..%NextState="X"` (any case of `Set`/`S`, spaces
//!   around `=`, a postconditional, several assignments in one `Set`), plus the first argument
//!   of `..GoSub("H","R")` should the compiler jump to a compensation handler that way. The
//!   dynamic `Return()` of a compensation handler has no literal and is not a successor;
//! * wait markers: a `Set` that assigns both `..%NextState="W"` and `..%Wait=1` parks the thread
//!   at W, so W is a wait state of the class;
//! * `StartThread("<class>")` calls, in code order;
//! * calls: each `#; --- Begin Call <name> ---` comment opens a call whose response handler is
//!   the `"OnResponse<n>"` literal before the matching `End Call` (none: no handler).
//!
//! The classes and their code are read with InterSystems' ObjectScript/UDL grammar
//! ([`crate::udl`]), so a `%NextState` in a comment or a string does not count, and code the
//! grammar cannot parse in a state method is a located error. Line breaks: LF, CRLF or CR.

use super::model::{CompiledProcess, ThreadClass};
use crate::bpl::parse::LineIndex;
use crate::bpl::{BplError, Pos};
use crate::udl;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The thread classes (and the skipped other classes) of one exported file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedFile {
    pub file: String,
    pub threads: Vec<ImportedThread>,
    /// Classes in the file that do not extend `Ens.BP.Thread`.
    pub skipped: Vec<String>,
}

/// One generated thread class as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedThread {
    pub class: String,
    /// The file it was read from.
    pub file: String,
    /// Position of the class declaration.
    pub pos: Pos,
    /// State methods, sorted by number (not in file order).
    pub states: Vec<ImportedState>,
}

/// One state method `S<n>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportedState {
    pub name: String,
    /// Position of the method declaration.
    pub pos: Pos,
    /// Every literal `%NextState` value (and `GoSub` target), sorted by number, `Stop` last.
    pub successors: Vec<String>,
    /// States this method parks the thread at (`Set ..%NextState="W",..%Wait=1`).
    pub wait_targets: Vec<String>,
    /// `StartThread("…")` arguments in code order.
    pub starts_threads: Vec<String>,
    /// Calls sent from this state, in code order.
    pub calls: Vec<ImportedCall>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedCall {
    /// The name in `#; --- Begin Call <name> ---`.
    pub name: String,
    /// The `OnResponse<n>` passed with the call, if any.
    pub handler: Option<String>,
    pub pos: Pos,
}

impl ImportedThread {
    /// The states any method of the class parks the thread at.
    pub fn wait_states(&self) -> BTreeSet<String> {
        self.states
            .iter()
            .flat_map(|s| s.wait_targets.iter().cloned())
            .collect()
    }
    pub fn state(&self, name: &str) -> Option<&ImportedState> {
        self.states.iter().find(|s| s.name == name)
    }
}

/// One way the emulation and the exported classes disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NumberingDifference {
    /// The emulation generates this thread class; no export of it was given.
    MissingThreadClass { class: String },
    /// An exported thread class the emulation does not generate.
    ExtraThreadClass { class: String, file: String },
    /// The emulation has this state; the exported class has no such method.
    MissingState { class: String, state: String },
    /// The exported class has a state method the emulation does not generate.
    ExtraState { class: String, state: String },
    Successors {
        class: String,
        state: String,
        emulated: Vec<String>,
        exported: Vec<String>,
    },
    Wait {
        class: String,
        state: String,
        emulated: bool,
        exported: bool,
    },
    StartThreads {
        class: String,
        state: String,
        emulated: Vec<String>,
        exported: Vec<String>,
    },
    /// The response handler registered by a call (`None`: no handler).
    ResponseHandler {
        class: String,
        call: String,
        emulated: Vec<String>,
        exported: Vec<String>,
    },
}

impl fmt::Display for NumberingDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use NumberingDifference::*;
        let list = |v: &[String]| {
            if v.is_empty() {
                "(none)".to_string()
            } else {
                v.join(" ")
            }
        };
        match self {
            MissingThreadClass { class } => write!(
                f,
                "{class}: the emulation generates this thread class, but no export of it was given"
            ),
            ExtraThreadClass { class, file } => write!(
                f,
                "{class} ({file}): exported thread class that the emulation does not generate"
            ),
            MissingState { class, state } => write!(
                f,
                "{class} {state}: the emulation has this state, the export has no method {state}"
            ),
            ExtraState { class, state } => write!(
                f,
                "{class} {state}: exported method that the emulation does not generate"
            ),
            Successors {
                class,
                state,
                emulated,
                exported,
            } => {
                write!(
                    f,
                    "{class} {state}: successors differ: emulated {}, exported {}",
                    list(emulated),
                    list(exported)
                )
            }
            Wait {
                class,
                state,
                emulated,
                exported,
            } => {
                let w = |b: &bool| {
                    if *b {
                        "a wait state"
                    } else {
                        "not a wait state"
                    }
                };
                write!(
                    f,
                    "{class} {state}: emulated {}, exported {}",
                    w(emulated),
                    w(exported)
                )
            }
            StartThreads {
                class,
                state,
                emulated,
                exported,
            } => {
                write!(
                    f,
                    "{class} {state}: started threads differ: emulated {}, exported {}",
                    list(emulated),
                    list(exported)
                )
            }
            ResponseHandler {
                class,
                call,
                emulated,
                exported,
            } => {
                write!(
                    f,
                    "{class}: call \"{call}\" response handlers differ: emulated {}, exported {}",
                    list(emulated),
                    list(exported)
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading files

/// Read an exported class file from disk (UDL or XML, detected by content).
pub fn load_generated(path: &str) -> Result<ImportedFile, BplError> {
    let bytes = crate::input::read(std::path::Path::new(path), crate::input::Kind::ThreadClass)
        .map_err(|e| BplError::file(path, e.reason()))?;
    if let Some(encoding) = crate::input::sniff_encoding(&bytes) {
        return Err(BplError::at(
            path,
            Pos { line: 1, column: 1 },
            crate::input::encoding_message(encoding),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let pos = pos_of_bytes(e.as_bytes(), e.utf8_error().valid_up_to());
        BplError::at(path, pos, "the file is not UTF-8 text")
    })?;
    parse_generated(path, &text)
}

/// Parse an exported class file held in memory. `file` names it in messages.
pub fn parse_generated(file: &str, text: &str) -> Result<ImportedFile, BplError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = &*udl::normalize_line_breaks(text);
    let first = text.trim_start();
    let classes = if first.starts_with('<') {
        read_xml(file, text)?
    } else {
        read_udl(file, text)?
    };
    let mut out = ImportedFile {
        file: file.to_string(),
        threads: Vec::new(),
        skipped: Vec::new(),
    };
    for c in classes {
        if !c.is_thread {
            out.skipped.push(c.name);
            continue;
        }
        let mut states: Vec<ImportedState> = Vec::new();
        let mut seen: BTreeMap<String, Pos> = BTreeMap::new();
        for m in c.methods {
            if state_number(&m.name).is_none() {
                continue;
            }
            if let Some(first) = seen.get(&m.name) {
                return Err(BplError::at(
                    file,
                    m.pos,
                    format!(
                        "method {} of {} is defined twice (first at line {})",
                        m.name, c.name, first.line
                    ),
                ));
            }
            seen.insert(m.name.clone(), m.pos);
            let facts = match m.code {
                MethodCode::Read { error: Some(e), .. } => return Err(e),
                MethodCode::Read { facts, .. } => facts,
                MethodCode::Text { body, body_pos } => udl::read_code(file, &body, body_pos)?,
            };
            states.push(ImportedState {
                name: m.name,
                pos: m.pos,
                successors: sort_states(facts.successors),
                wait_targets: sort_states(facts.wait_targets),
                starts_threads: facts.starts,
                calls: facts
                    .calls
                    .into_iter()
                    .map(|c| ImportedCall {
                        name: c.name,
                        handler: c.handler,
                        pos: c.pos,
                    })
                    .collect(),
            });
        }
        states.sort_by_key(|s| state_number(&s.name));
        out.threads.push(ImportedThread {
            class: c.name,
            file: file.to_string(),
            pos: c.pos,
            states,
        });
    }
    if out.threads.is_empty() && out.skipped.is_empty() {
        return Err(BplError::at(
            file,
            Pos { line: 1, column: 1 },
            "no class definition found (expected a UDL `Class …` or an XML export)",
        ));
    }
    Ok(out)
}

/// `S12` → 12; anything else (`S0`, `S01`, `Stop`, `OnResponse1`) → None.
fn state_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix('S')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Deduplicate and sort state names by number; `Stop` and anything else after them.
fn sort_states(names: Vec<String>) -> Vec<String> {
    let set: BTreeSet<String> = names.into_iter().collect();
    let mut v: Vec<String> = set.into_iter().collect();
    v.sort_by(|a, b| match (state_number(a), state_number(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => (a != "Stop").cmp(&(b != "Stop")).then_with(|| a.cmp(b)),
    });
    v
}

/// Position of a byte offset in raw (possibly invalid UTF-8) bytes.
fn pos_of_bytes(bytes: &[u8], offset: usize) -> Pos {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|b| **b == b'\n').count();
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let column = String::from_utf8_lossy(&before[start..]).chars().count();
    Pos {
        line: line as u32 + 1,
        column: column as u32 + 1,
    }
}

/// A class found in a file, before its methods are analysed.
struct RawClass<'a> {
    name: String,
    pos: Pos,
    is_thread: bool,
    methods: Vec<RawMethod<'a>>,
}

struct RawMethod<'a> {
    name: String,
    pos: Pos,
    code: MethodCode<'a>,
}

enum MethodCode<'a> {
    /// Read with its class (UDL): the facts, and the first syntax error in the code.
    Read {
        facts: udl::CodeFacts,
        error: Option<BplError>,
    },
    /// The `<Implementation>` text of an XML export, read when the method is a state.
    Text {
        body: Cow<'a, str>,
        /// Position of the first character of `body`.
        body_pos: Pos,
    },
}

fn is_thread_super(supers: &str) -> bool {
    supers
        .split(',')
        .map(|s| s.trim().trim_start_matches('%'))
        .any(|s| s.eq_ignore_ascii_case("Ens.BP.Thread"))
}

// ----- UDL ---------------------------------------------------------------------------------

fn read_udl<'a>(file: &str, text: &'a str) -> Result<Vec<RawClass<'a>>, BplError> {
    let idx = LineIndex::new(text);
    let Some(class) = udl::read_class(file, text)? else {
        return Err(BplError::at(
            file,
            Pos { line: 1, column: 1 },
            "no `Class <name> Extends …` declaration found",
        ));
    };
    if let Some(e) = class.structure_error {
        return Err(e);
    }
    let methods = class
        .members
        .into_iter()
        .filter(|m| m.is_method())
        .map(|m| RawMethod {
            name: m.name,
            pos: idx.pos(m.start),
            code: MethodCode::Read {
                facts: m.facts.unwrap_or_default(),
                error: m.code_error,
            },
        })
        .collect();
    Ok(vec![RawClass {
        name: class.name,
        pos: idx.pos(class.keyword),
        is_thread: class.supers.iter().any(|s| {
            s.trim_start_matches('%')
                .eq_ignore_ascii_case("Ens.BP.Thread")
        }),
        methods,
    }])
}

// ----- XML export --------------------------------------------------------------------------

fn read_xml<'a>(file: &str, text: &'a str) -> Result<Vec<RawClass<'a>>, BplError> {
    let idx = LineIndex::new(text);
    if let Some(at) = crate::bpl::parse::crowded_tag(text) {
        return Err(BplError::at(
            file,
            idx.pos(at),
            crate::bpl::parse::too_many_attributes(),
        ));
    }
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(text, opts).map_err(|e| {
        let p = e.pos();
        let msg = e.to_string();
        let msg = match msg.rfind(" at ") {
            Some(i) if msg[i + 4..].chars().all(|c| c.is_ascii_digit() || c == ':') => {
                msg[..i].to_string()
            }
            _ => msg,
        };
        BplError::at(
            file,
            Pos {
                line: p.row,
                column: p.col,
            },
            format!("malformed XML: {msg}"),
        )
    })?;
    let root = doc.root_element();
    let class_nodes: Vec<roxmltree::Node> = if root.has_tag_name("Class") {
        vec![root]
    } else if root.has_tag_name("Export") {
        root.children()
            .filter(|n| n.has_tag_name("Class"))
            .collect()
    } else {
        return Err(BplError::at(
            file,
            idx.pos(root.range().start),
            format!(
                "expected an <Export> or <Class> element, found <{}>",
                root.tag_name().name()
            ),
        ));
    };
    let mut out = Vec::new();
    for c in class_nodes {
        let cpos = idx.pos(c.range().start);
        let name = c
            .attribute("name")
            .ok_or_else(|| BplError::at(file, cpos, "<Class> without a name attribute"))?
            .to_string();
        let supers = c
            .children()
            .find(|n| n.has_tag_name("Super"))
            .and_then(|n| n.text())
            .unwrap_or("");
        let mut methods = Vec::new();
        for m in c.children().filter(|n| n.has_tag_name("Method")) {
            let mpos = idx.pos(m.range().start);
            let mname = m.attribute("name").ok_or_else(|| {
                BplError::at(
                    file,
                    mpos,
                    format!("<Method> of {name} without a name attribute"),
                )
            })?;
            let imp = m.children().find(|n| n.has_tag_name("Implementation"));
            let (body, body_pos) = match imp {
                None => (Cow::Borrowed(""), mpos),
                Some(imp) => implementation_text(text, &idx, imp),
            };
            methods.push(RawMethod {
                name: mname.to_string(),
                pos: mpos,
                code: MethodCode::Text { body, body_pos },
            });
        }
        out.push(RawClass {
            name,
            pos: cpos,
            is_thread: is_thread_super(supers),
            methods,
        });
    }
    if out.is_empty() {
        return Err(BplError::at(
            file,
            idx.pos(root.range().start),
            "the export holds no <Class>",
        ));
    }
    Ok(out)
}

/// The code of an `<Implementation>`: borrowed from the file when it is one CDATA section (so
/// positions are exact), else the decoded text positioned at the element.
fn implementation_text<'a>(
    text: &'a str,
    idx: &LineIndex,
    imp: roxmltree::Node,
) -> (Cow<'a, str>, Pos) {
    let r = imp.range();
    let raw = &text[r.start..r.end];
    if let Some(gt) = raw.find('>') {
        let inner = &raw[gt + 1..];
        let inner_trim = inner.trim_start();
        if let Some(after) = inner_trim.strip_prefix("<![CDATA[") {
            if let Some(end) = after.find("]]>") {
                let rest = &after[end + 3..];
                if !rest.contains("<![CDATA[") {
                    let start =
                        r.start + gt + 1 + (inner.len() - inner_trim.len()) + "<![CDATA[".len();
                    return (Cow::Borrowed(&text[start..start + end]), idx.pos(start));
                }
            }
        }
        let decoded: String = imp.children().filter_map(|n| n.text()).collect();
        return (Cow::Owned(decoded), idx.pos(r.start + gt + 1));
    }
    (Cow::Borrowed(""), idx.pos(r.start))
}

// ---------------------------------------------------------------------------------------------
// Comparison

/// Compare the emulation with exported thread classes. Returns the differences in a stable
/// order: per emulated thread class (missing class, then states by number), then extra classes.
/// Return edges of compensation handlers are excluded (the generated `Return()` is dynamic).
pub fn compare(
    emulated: &CompiledProcess,
    imported: &[ImportedThread],
) -> Vec<NumberingDifference> {
    let mut out = Vec::new();
    let by_class: BTreeMap<&str, &ImportedThread> = imported
        .iter()
        .rev()
        .map(|t| (t.class.as_str(), t))
        .collect();
    for et in &emulated.threads {
        match by_class.get(et.class.as_str()) {
            None => out.push(NumberingDifference::MissingThreadClass {
                class: et.class.clone(),
            }),
            Some(it) => compare_thread(emulated, et, it, &mut out),
        }
    }
    let mut reported = BTreeSet::new();
    for it in imported {
        if emulated.threads.iter().all(|t| t.class != it.class) && reported.insert(it.class.clone())
        {
            out.push(NumberingDifference::ExtraThreadClass {
                class: it.class.clone(),
                file: it.file.clone(),
            });
        }
    }
    out
}

fn compare_thread(
    cp: &CompiledProcess,
    et: &ThreadClass,
    it: &ImportedThread,
    out: &mut Vec<NumberingDifference>,
) {
    let class = || et.class.clone();
    let waits = it.wait_states();
    let emulated_names: Vec<String> = et.states.iter().map(|s| s.name.to_string()).collect();
    let mut names: Vec<&str> = emulated_names.iter().map(String::as_str).collect();
    for s in &it.states {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    names.sort_by_key(|n| state_number(n));
    for name in names {
        let (es, is) = (et.states.iter().find(|s| s.name == name), it.state(name));
        match (es, is) {
            (Some(_), None) => out.push(NumberingDifference::MissingState {
                class: class(),
                state: name.to_string(),
            }),
            (None, Some(_)) => out.push(NumberingDifference::ExtraState {
                class: class(),
                state: name.to_string(),
            }),
            (None, None) => {}
            (Some(es), Some(is)) => {
                let emulated = sort_states(es.successors.to_strings());
                if emulated != is.successors {
                    out.push(NumberingDifference::Successors {
                        class: class(),
                        state: name.to_string(),
                        emulated,
                        exported: is.successors.clone(),
                    });
                }
                let w = waits.contains(name);
                if es.wait != w {
                    out.push(NumberingDifference::Wait {
                        class: class(),
                        state: name.to_string(),
                        emulated: es.wait,
                        exported: w,
                    });
                }
                if es.starts_threads() != is.starts_threads {
                    out.push(NumberingDifference::StartThreads {
                        class: class(),
                        state: name.to_string(),
                        emulated: es.starts_threads().to_vec(),
                        exported: is.starts_threads.clone(),
                    });
                }
            }
        }
    }
    // Response handlers, compared per call name, only when the export marks its calls.
    let imported_calls: Vec<&ImportedCall> =
        it.states.iter().flat_map(|s| s.calls.iter()).collect();
    if imported_calls.is_empty() {
        return;
    }
    let mut exported: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for c in &imported_calls {
        let e = exported.entry(c.name.as_str()).or_default();
        if let Some(h) = &c.handler {
            e.push(h.clone());
        }
    }
    let mut emulated: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for s in &et.states {
        for call in s.sends() {
            emulated.entry(call.as_str()).or_default();
        }
    }
    for h in cp
        .response_handlers
        .iter()
        .filter(|h| h.thread == et.number)
    {
        emulated
            .entry(h.call.as_str())
            .or_default()
            .push(h.name.clone());
    }
    let calls: BTreeSet<&str> = exported.keys().chain(emulated.keys()).copied().collect();
    for call in calls {
        let mut e = emulated.get(call).cloned().unwrap_or_default();
        let mut x = exported.get(call).cloned().unwrap_or_default();
        e.sort();
        e.dedup();
        x.sort();
        x.dedup();
        if e != x {
            out.push(NumberingDifference::ResponseHandler {
                class: class(),
                call: call.to_string(),
                emulated: e,
                exported: x,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_names() {
        assert_eq!(state_number("S12"), Some(12));
        assert_eq!(state_number("S0"), None);
        assert_eq!(state_number("S01"), None);
        assert_eq!(state_number("Stop"), None);
        assert_eq!(
            sort_states(vec!["Stop".into(), "S10".into(), "S2".into(), "S2".into()]),
            vec!["S2", "S10", "Stop"]
        );
    }
}
