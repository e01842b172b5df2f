//! Generated thread classes exported from IRIS, read back so a user can prove the emulation
//! against their own compiler (`bplmigrate verify-numbering`).
//!
//! Input: a UDL class file (`Class P.Thread1 Extends Ens.BP.Thread [ … ] { Method S1(…) { … } }`)
//! or a Studio / `$System.OBJ.Export` XML file (`<Class name="P.Thread1"><Super>Ens.BP.Thread</Super>
//! <Method name="S1"><Implementation><![CDATA[ … ]]></Implementation></Method>`), LF or CRLF, one or
//! several classes. Classes that do not extend `Ens.BP.Thread` (the context class, the BPL class
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
//! Comments (`;`, `//`, `#;`, `/* */`) and string literals are lexed, so a `%NextState` in a
//! comment or a string does not count.

use super::model::{CompiledProcess, ThreadClass};
use crate::bpl::parse::LineIndex;
use crate::bpl::{BplError, Pos};
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
            let facts = analyze_body(file, m.body, m.body_pos)?;
            states.push(ImportedState {
                name: m.name,
                pos: m.pos,
                successors: sort_states(facts.successors),
                wait_targets: sort_states(facts.wait_targets),
                starts_threads: facts.starts,
                calls: facts.calls,
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
    /// The method body (between the braces, or the Implementation text).
    body: Cow<'a, str>,
    /// Position of the first character of `body`.
    body_pos: Pos,
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
    // Find `Class <name> [Extends <supers>] [ … ]` at the start of a line, outside comments.
    let mut off = 0;
    let mut in_block_comment = false;
    let header = loop {
        if off >= text.len() {
            return Err(BplError::at(
                file,
                Pos { line: 1, column: 1 },
                "no `Class <name> Extends …` declaration found",
            ));
        }
        let end = text[off..]
            .find('\n')
            .map(|i| off + i + 1)
            .unwrap_or(text.len());
        let line = text[off..end].trim_end();
        let t = line.trim_start();
        if in_block_comment {
            if t.contains("*/") {
                in_block_comment = false;
            }
        } else if t.starts_with("/*") {
            in_block_comment = !t.contains("*/");
        } else if starts_with_word(t, "Class") {
            break off + (line.len() - t.len());
        }
        off = end;
    };
    let pos = idx.pos(header);
    // Header runs to the `{` that opens the class body.
    let open = text[header..]
        .find('{')
        .map(|i| header + i)
        .ok_or_else(|| BplError::at(file, pos, "class declaration has no `{` body"))?;
    let head = &text[header + "Class".len()..open];
    let mut words = head.split_whitespace();
    let name = words
        .next()
        .filter(|n| !n.starts_with('['))
        .ok_or_else(|| BplError::at(file, pos, "`Class` without a class name"))?
        .to_string();
    let rest: String = words.collect::<Vec<_>>().join(" ");
    let supers = match rest
        .strip_prefix("Extends ")
        .or_else(|| rest.strip_prefix("extends "))
    {
        Some(s) => {
            let s = s.trim_start();
            if let Some(inner) = s.strip_prefix('(') {
                inner.split(')').next().unwrap_or("").to_string()
            } else {
                s.split(|c: char| c.is_whitespace() || c == '[')
                    .next()
                    .unwrap_or("")
                    .to_string()
            }
        }
        None => String::new(),
    };
    let is_thread = is_thread_super(&supers);
    let mut methods = Vec::new();
    // Members: one per line start inside the class body, up to the class's closing `}`.
    let mut i = open + 1;
    loop {
        if i >= text.len() {
            return Err(BplError::at(
                file,
                idx.pos(text.len()),
                format!("class {name} is not closed: missing `}}`"),
            ));
        }
        let line_end = text[i..]
            .find('\n')
            .map(|k| i + k + 1)
            .unwrap_or(text.len());
        let line = &text[i..line_end];
        let t = line.trim();
        if t.starts_with('}') {
            break;
        }
        let member_start = i + (line.len() - line.trim_start().len());
        let kw = t
            .split(|c: char| c.is_whitespace() || c == '(')
            .next()
            .unwrap_or("");
        let is_method = kw.eq_ignore_ascii_case("Method") || kw.eq_ignore_ascii_case("ClassMethod");
        let is_member = is_method || MEMBER_KEYWORDS.iter().any(|k| kw.eq_ignore_ascii_case(k));
        if !is_member {
            i = line_end;
            continue;
        }
        let mpos = idx.pos(member_start);
        // Members with a body open a `{`; simple ones (`Parameter P = 1;`) end with `;`.
        match find_member_open(text, member_start) {
            MemberEnd::Body(b) => {
                let close = if is_method {
                    find_code_close(file, text, &idx, b)?
                } else {
                    find_raw_close(text, b).ok_or_else(|| {
                        BplError::at(
                            file,
                            mpos,
                            format!("member of {name} is not closed: missing `}}`"),
                        )
                    })?
                };
                if is_method {
                    let after_kw = text[member_start + kw.len()..b].trim_start();
                    let mname: String = after_kw
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '%' || *c == '_')
                        .collect();
                    if mname.is_empty() {
                        return Err(BplError::at(
                            file,
                            mpos,
                            "method declaration without a name",
                        ));
                    }
                    methods.push(RawMethod {
                        name: mname,
                        pos: mpos,
                        body: Cow::Borrowed(&text[b + 1..close]),
                        body_pos: idx.pos(b + 1),
                    });
                }
                i = close + 1;
            }
            MemberEnd::Semicolon(s) => i = s + 1,
            MemberEnd::None => {
                return Err(BplError::at(
                    file,
                    mpos,
                    format!("member of {name} has neither a body nor a closing `;`"),
                ))
            }
        }
    }
    Ok(vec![RawClass {
        name,
        pos,
        is_thread,
        methods,
    }])
}

fn starts_with_word(t: &str, word: &str) -> bool {
    // `get`: the text may hold a multi-byte character where the word would end.
    t.get(..word.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(word))
        && t.get(word.len()..)
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_whitespace()))
}

/// From a member keyword: the offset of the `{` opening its body and of a terminating `;`,
/// whichever come first outside quotes and `[ … ]` keyword lists.
fn find_member_open(text: &str, from: usize) -> MemberEnd {
    let mut in_str = false;
    let mut bracket = 0i32;
    let mut paren = 0i32;
    for (k, c) in text[from..].char_indices() {
        let at = from + k;
        match c {
            '"' => in_str = !in_str,
            _ if in_str => {}
            '[' => bracket += 1,
            ']' => bracket -= 1,
            '(' => paren += 1,
            ')' => paren -= 1,
            '{' if bracket <= 0 && paren <= 0 => return MemberEnd::Body(at),
            ';' if bracket <= 0 && paren <= 0 => return MemberEnd::Semicolon(at),
            _ => {}
        }
    }
    MemberEnd::None
}

enum MemberEnd {
    Body(usize),
    Semicolon(usize),
    None,
}

/// Member keywords other than methods, whose bodies are skipped.
const MEMBER_KEYWORDS: [&str; 9] = [
    "Property",
    "Parameter",
    "Storage",
    "XData",
    "Index",
    "Query",
    "Trigger",
    "ForeignKey",
    "Projection",
];

/// The `}` matching the `{` at `open`, counting raw braces (Storage, XData, Property bodies).
fn find_raw_close(text: &str, open: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (k, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + k);
                }
            }
            _ => {}
        }
    }
    None
}

/// The `}` matching the `{` at `open` of a method body, skipping ObjectScript strings and
/// comments. In UDL a method ends at a line whose first character is `}`; braces of the code
/// itself are balanced, which is checked.
fn find_code_close(
    file: &str,
    text: &str,
    idx: &LineIndex,
    open: usize,
) -> Result<usize, BplError> {
    let mut depth = 0i32;
    let mut lexer = Lexer::default();
    let mut off = open;
    while off < text.len() {
        let end = text[off..]
            .find('\n')
            .map(|k| off + k + 1)
            .unwrap_or(text.len());
        let line = &text[off..end];
        let toks = lexer
            .line(line)
            .map_err(|(col, msg)| BplError::at(file, idx.pos(off + col), msg))?;
        for t in toks {
            match t.kind {
                Tok::Punct('{') => depth += 1,
                Tok::Punct('}') => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(off + t.at);
                    }
                }
                _ => {}
            }
        }
        off = end;
    }
    Err(BplError::at(
        file,
        idx.pos(open),
        "method body is not closed: missing `}`",
    ))
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
                body,
                body_pos,
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
// ObjectScript lexing

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A run of characters that are not blanks, quotes or punctuation.
    Word(String),
    Str(String),
    Punct(char),
    Space,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    /// Byte offset within the line.
    at: usize,
}

/// Line-by-line lexer; carries `/* … */` comments across lines.
#[derive(Default)]
struct Lexer {
    in_block_comment: bool,
}

impl Lexer {
    /// Tokens of one line (comments dropped). Err: (byte offset, message) of an unterminated
    /// string literal.
    fn line(&mut self, line: &str) -> Result<Vec<Token>, (usize, String)> {
        let mut out = Vec::new();
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        let mut i = 0;
        let n = chars.len();
        let at = |k: usize| chars.get(k).map(|c| c.1);
        // `#;` / `##;` and `;` or `//` at the start of a line are whole-line comments.
        let first = chars.iter().position(|(_, c)| !c.is_whitespace());
        if !self.in_block_comment {
            if let Some(f) = first {
                let rest: String = chars[f..].iter().map(|c| c.1).take(3).collect();
                if rest.starts_with("#;")
                    || rest.starts_with("##;")
                    || rest.starts_with(';')
                    || rest.starts_with("//")
                {
                    return Ok(out);
                }
            }
        }
        while i < n {
            let (off, c) = chars[i];
            if self.in_block_comment {
                if c == '*' && at(i + 1) == Some('/') {
                    self.in_block_comment = false;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            match c {
                '/' if at(i + 1) == Some('*') => {
                    self.in_block_comment = true;
                    i += 2;
                }
                '/' if at(i + 1) == Some('/') => break,
                ';' => break,
                '#' if at(i + 1) == Some(';') => break,
                '"' => {
                    let mut s = String::new();
                    let mut k = i + 1;
                    loop {
                        match at(k) {
                            None => return Err((off, "unterminated string literal".to_string())),
                            Some('"') if at(k + 1) == Some('"') => {
                                s.push('"');
                                k += 2;
                            }
                            Some('"') => break,
                            Some(ch) => {
                                s.push(ch);
                                k += 1;
                            }
                        }
                    }
                    out.push(Token {
                        kind: Tok::Str(s),
                        at: off,
                    });
                    i = k + 1;
                }
                c if c.is_whitespace() => {
                    if !matches!(
                        out.last(),
                        Some(Token {
                            kind: Tok::Space,
                            ..
                        })
                    ) {
                        out.push(Token {
                            kind: Tok::Space,
                            at: off,
                        });
                    }
                    i += 1;
                }
                '(' | ')' | '{' | '}' | ',' | '=' | ':' => {
                    out.push(Token {
                        kind: Tok::Punct(c),
                        at: off,
                    });
                    i += 1;
                }
                _ => {
                    let mut w = String::new();
                    let mut k = i;
                    while let Some(ch) = at(k) {
                        if ch.is_whitespace()
                            || matches!(ch, '"' | '(' | ')' | '{' | '}' | ',' | '=' | ':' | ';')
                        {
                            break;
                        }
                        if ch == '/' && matches!(at(k + 1), Some('/') | Some('*')) {
                            break;
                        }
                        if ch == '#' && at(k + 1) == Some(';') {
                            break;
                        }
                        w.push(ch);
                        k += 1;
                    }
                    out.push(Token {
                        kind: Tok::Word(w),
                        at: off,
                    });
                    i = k;
                }
            }
        }
        Ok(out)
    }
}

/// What one method body says about numbering.
#[derive(Default)]
struct BodyFacts {
    successors: Vec<String>,
    wait_targets: Vec<String>,
    starts: Vec<String>,
    calls: Vec<ImportedCall>,
}

fn analyze_body(file: &str, body: Cow<'_, str>, body_pos: Pos) -> Result<BodyFacts, BplError> {
    let mut facts = BodyFacts::default();
    let mut lexer = Lexer::default();
    let mut open_call: Option<usize> = None;
    for (ln, line) in body.split('\n').enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let line_pos = |byte: usize| {
            let col = line.get(..byte).map(|s| s.chars().count()).unwrap_or(byte) as u32;
            if ln == 0 {
                Pos {
                    line: body_pos.line,
                    column: body_pos.column + col,
                }
            } else {
                Pos {
                    line: body_pos.line + ln as u32,
                    column: col + 1,
                }
            }
        };
        // Call markers live in comments, so look at them before lexing.
        if !lexer.in_block_comment {
            let t = line.trim_start();
            if let Some(rest) = t.strip_prefix("#;") {
                let rest = rest.trim();
                if let Some(name) = marker(rest, "Begin Call") {
                    facts.calls.push(ImportedCall {
                        name,
                        handler: None,
                        pos: line_pos(line.len() - t.len()),
                    });
                    open_call = Some(facts.calls.len() - 1);
                } else if marker(rest, "End Call").is_some() {
                    open_call = None;
                }
            }
        }
        let toks = lexer
            .line(line)
            .map_err(|(byte, msg)| BplError::at(file, line_pos(byte), msg))?;
        scan_tokens(&toks, &mut facts, open_call);
    }
    Ok(facts)
}

/// `--- Begin Call Lookup ---` → `Lookup`.
fn marker(comment: &str, what: &str) -> Option<String> {
    let s = comment.trim_start_matches('-').trim_start();
    let s = s.strip_prefix(what)?;
    let name = s.trim().trim_end_matches('-').trim();
    Some(name.to_string())
}

fn is_word(t: &Token, pred: impl Fn(&str) -> bool) -> bool {
    matches!(&t.kind, Tok::Word(w) if pred(w))
}

fn scan_tokens(toks: &[Token], facts: &mut BodyFacts, open_call: Option<usize>) {
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        // Set commands: `Set`/`S` (any case), optional postconditional, then assignments.
        if is_word(t, |w| {
            w.eq_ignore_ascii_case("set") || w.eq_ignore_ascii_case("s")
        }) && (i == 0
            || matches!(
                toks[i - 1].kind,
                Tok::Space | Tok::Punct('{') | Tok::Punct('}')
            ))
        {
            // The arguments are scanned again below for calls (`Set status=..StartThread(…)`).
            scan_set(toks, i + 1, facts);
            i += 1;
            continue;
        }
        if let Tok::Word(w) = &t.kind {
            let lw = w.to_ascii_lowercase();
            let call_args = || string_args(toks, i + 1);
            if lw.ends_with("startthread") {
                if let Some(first) = call_args().into_iter().next() {
                    facts.starts.push(first);
                }
            } else if lw.ends_with("gosub") {
                if let Some(first) = call_args().into_iter().next() {
                    facts.successors.push(first);
                }
            }
        }
        if let (Tok::Str(s), Some(c)) = (&t.kind, open_call) {
            if s.strip_prefix("OnResponse")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            {
                if let Some(call) = facts.calls.get_mut(c) {
                    call.handler.get_or_insert_with(|| s.clone());
                }
            }
        }
        i += 1;
    }
}

/// String literals passed directly as arguments: `(` Str (`,` Str)* …
fn string_args(toks: &[Token], mut i: usize) -> Vec<String> {
    let mut out = Vec::new();
    if !matches!(toks.get(i).map(|t| &t.kind), Some(Tok::Punct('('))) {
        return out;
    }
    i += 1;
    while let Some(Token {
        kind: Tok::Str(s), ..
    }) = toks.get(i)
    {
        out.push(s.clone());
        i += 1;
        if matches!(toks.get(i).map(|t| &t.kind), Some(Tok::Punct(','))) {
            i += 1;
        } else {
            break;
        }
    }
    out
}

/// Parse the arguments of one `Set` starting after the keyword: record `%NextState` literals and
/// whether the same `Set` raises `%Wait`.
fn scan_set(toks: &[Token], mut i: usize, facts: &mut BodyFacts) {
    // Postconditional `:expr` runs to the next blank at paren depth 0.
    if matches!(toks.get(i).map(|t| &t.kind), Some(Tok::Punct(':'))) {
        let mut depth = 0i32;
        while let Some(t) = toks.get(i) {
            match t.kind {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth -= 1,
                Tok::Space if depth <= 0 => break,
                _ => {}
            }
            i += 1;
        }
    }
    if !matches!(toks.get(i).map(|t| &t.kind), Some(Tok::Space)) {
        return;
    }
    i += 1;
    let mut next_states: Vec<String> = Vec::new();
    let mut wait = false;
    // LHS: a single word (a `(a,b)=` multiple assignment is skipped as a whole).
    while let Some(Tok::Word(lhs)) = toks.get(i).map(|t| &t.kind) {
        i += 1;
        if matches!(toks.get(i).map(|t| &t.kind), Some(Tok::Space))
            && matches!(toks.get(i + 1).map(|t| &t.kind), Some(Tok::Punct('=')))
        {
            i += 1;
        }
        if !matches!(toks.get(i).map(|t| &t.kind), Some(Tok::Punct('='))) {
            break;
        }
        i += 1;
        if matches!(toks.get(i).map(|t| &t.kind), Some(Tok::Space)) {
            i += 1;
        }
        // RHS: tokens to the next `,` or blank at paren depth 0.
        let start = i;
        let mut depth = 0i32;
        while let Some(t) = toks.get(i) {
            match t.kind {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth -= 1,
                Tok::Punct(',') | Tok::Space | Tok::Punct('}') if depth <= 0 => break,
                _ => {}
            }
            i += 1;
        }
        let rhs = &toks[start..i];
        let lhs_l = lhs.to_ascii_lowercase();
        if lhs_l == "..%nextstate" {
            if let [Token {
                kind: Tok::Str(v), ..
            }] = rhs
            {
                next_states.push(v.clone());
            }
        } else if lhs_l == "..%wait"
            && matches!(rhs, [Token { kind: Tok::Word(w), .. }] if w == "1")
        {
            wait = true;
        }
        if matches!(toks.get(i).map(|t| &t.kind), Some(Tok::Punct(','))) {
            i += 1;
            if matches!(toks.get(i).map(|t| &t.kind), Some(Tok::Space)) {
                i += 1;
            }
            continue;
        }
        break;
    }
    if wait {
        facts.wait_targets.extend(next_states.iter().cloned());
    }
    facts.successors.extend(next_states);
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
    let mut names: Vec<&str> = et.states.iter().map(|s| s.name.as_str()).collect();
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
                let emulated = sort_states(es.successors.clone());
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
                if es.starts_threads != is.starts_threads {
                    out.push(NumberingDifference::StartThreads {
                        class: class(),
                        state: name.to_string(),
                        emulated: es.starts_threads.clone(),
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
        for call in &s.sends {
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

    fn facts(body: &str) -> BodyFacts {
        analyze_body("t", Cow::Borrowed(body), Pos { line: 1, column: 1 }).expect("lexes")
    }

    #[test]
    fn set_forms_and_wait_markers() {
        let f = facts(
            " Set ..%NextState=\"S3\"\n s ..%NextState = \"S2\",..%Wait=1\n SET:x=1 ..%NextState=\"Stop\"\n If a { Set ..%NextState=\"S9\" } Else { Set ..%Wait=1,..%NextState=\"S4\" Quit }\n",
        );
        assert_eq!(
            sort_states(f.successors),
            vec!["S2", "S3", "S4", "S9", "Stop"]
        );
        assert_eq!(sort_states(f.wait_targets), vec!["S2", "S4"]);
    }

    #[test]
    fn comments_strings_and_comparisons_do_not_count() {
        let f = facts(
            " // Set ..%NextState=\"S1\"\n #; Set ..%NextState=\"S2\"\n Set x=\"Set ..%NextState=\"\"S3\"\"\" ; Set ..%NextState=\"S4\"\n If ..%NextState=\"S5\" Quit\n /* Set ..%NextState=\"S6\"\n */ Set status=..ManageStatus(status,\"S7\")\n",
        );
        assert!(f.successors.is_empty(), "{:?}", f.successors);
    }

    #[test]
    fn start_thread_calls_and_handlers() {
        let f = facts(
            " #; --- Begin Call Lookup ---\n Set status=..MakeAsyncCall(\"OnResponse2\",\"Op\",callrequest,\"Lookup\",1,0,\"Lookup\",0)\n #; --- End Call Lookup ---\n #; --- Begin Call Fire ---\n Set status=..MakeAsyncCall(\"\",\"Op\",callrequest,\"Fire\",0,0,\"Fire\",0)\n #; --- End Call Fire ---\n Set status=..StartThread(\"Demo.BP.Thread10\") Quit:$$$ISERR(status)\n Set status=..StartThread(\"Demo.BP.Thread2\")\n",
        );
        assert_eq!(f.starts, vec!["Demo.BP.Thread10", "Demo.BP.Thread2"]);
        let calls: Vec<(&str, Option<&str>)> = f
            .calls
            .iter()
            .map(|c| (c.name.as_str(), c.handler.as_deref()))
            .collect();
        assert_eq!(calls, vec![("Lookup", Some("OnResponse2")), ("Fire", None)]);
    }

    #[test]
    fn unterminated_string_is_located() {
        let e = analyze_body(
            "f.cls",
            Cow::Borrowed(" Set a=1\n Set b=\"oops\n"),
            Pos {
                line: 10,
                column: 3,
            },
        )
        .err();
        let e = e.expect("error");
        assert_eq!(
            e.pos,
            Some(Pos {
                line: 11,
                column: 8
            })
        );
    }

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
