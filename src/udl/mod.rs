//! The one reader of UDL class text (`Class Pkg.Name Extends … { … }`), built on
//! InterSystems' ObjectScript/UDL grammar (`tree-sitter-objectscript`). Both the BPL loader
//! (`bpl::load`, which needs the class header and its `XData BPL` block) and the reader of
//! exported generated thread classes (`states::import`, which needs the state methods and what
//! their code says) read classes through [`read_class`]; generated code held in an XML export
//! is read through [`read_code`].
//!
//! What is checked here, with `file:line:column`:
//! * the class name: letters and digits in `.`-separated pieces, an optional leading `%`
//!   (a quote, a space, a non-ASCII letter or a NUL inside it is refused, never cut);
//! * the class structure: anything the grammar cannot parse outside method code (a missing
//!   closing `}`, a broken member header) is an error. Syntax errors inside method code are
//!   kept per method ([`Member::code_error`]): the thread reader refuses them in the state
//!   methods it analyses; the BPL loader ignores them (compiling that code is IRIS's job).
//!
//! Text: line breaks are `\n`, `\r\n` or a lone `\r` (classic Mac), all counted as one line
//! ([`normalize_line_breaks`] turns a lone `\r` into `\n`, keeping every byte offset).

mod code;
mod grammar;

pub use code::{read_code, CallMarker, CodeFacts};

use crate::bpl::parse::LineIndex;
use crate::bpl::{BplError, Pos};
use std::borrow::Cow;
use std::ops::Range;
use tree_sitter::{Node, Parser, Tree};

/// Turn every lone `\r` into `\n` (same length, so offsets are unchanged and lines count as
/// editors count them). CRLF stays as it is.
pub fn normalize_line_breaks(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let lone = |i: usize| b[i] == b'\r' && b.get(i + 1) != Some(&b'\n');
    if !(0..b.len()).any(lone) {
        return Cow::Borrowed(text);
    }
    let out: Vec<u8> = (0..b.len())
        .map(|i| if lone(i) { b'\n' } else { b[i] })
        .collect();
    // Only an ASCII byte was replaced by another ASCII byte.
    Cow::Owned(String::from_utf8(out).unwrap_or_else(|_| text.to_string()))
}

/// A class read from UDL text. Offsets are byte offsets into the text given to [`read_class`].
#[derive(Debug, Clone)]
pub struct UdlClass {
    pub name: String,
    /// Offset of the `Class` keyword.
    pub keyword: usize,
    pub name_range: Range<usize>,
    /// The classes after `Extends`, as written.
    pub supers: Vec<String>,
    pub members: Vec<Member>,
    /// The first syntax error outside method code (None: the class structure is sound).
    pub structure_error: Option<BplError>,
    /// Every `XData <name> … {` opening found, also inside a class the grammar could not
    /// parse: (name, offset of the `{`). Lets the BPL loader report an XML error in a block
    /// that never closes instead of a vaguer structure error.
    pub xdata_opens: Vec<(String, Result<usize, usize>)>,
}

/// One member of the class body.
#[derive(Debug, Clone)]
pub struct Member {
    /// The grammar's node kind: `method`, `classmethod`, `xdata`, `property`, `parameter`, …
    pub kind: String,
    pub name: String,
    /// Offset of the member keyword.
    pub start: usize,
    /// The body between its braces (methods, XData, Storage), if it has one.
    pub body: Option<Range<usize>>,
    /// What the code of a method says (methods only).
    pub facts: Option<CodeFacts>,
    /// The first syntax error inside the method's code.
    pub code_error: Option<BplError>,
}

impl Member {
    pub fn is_method(&self) -> bool {
        matches!(self.kind.as_str(), "method" | "classmethod")
    }
}

/// A parser for the UDL grammar.
pub(crate) fn parser() -> Parser {
    let mut p = Parser::new();
    p.set_language(&grammar::language())
        // The grammar is compiled into this binary: a version mismatch is a build defect.
        .expect("the bundled ObjectScript UDL grammar matches the tree-sitter runtime");
    p
}

/// The grammar stopped before the end of the text: its error recovery used up the CPU time
/// [`parse_budget`] allows for a text of this size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GaveUp {
    /// How far it had read.
    pub offset: usize,
    pub budget: std::time::Duration,
}

impl GaveUp {
    /// The located refusal, `what` naming the text ("this file", "this method").
    pub(crate) fn error(self, file: &str, pos: Pos, what: &str) -> BplError {
        BplError::at(
            file,
            pos,
            format!(
                "the ObjectScript grammar gave up on {what} after {} s of CPU time recovering from syntax errors (it had read up to here); fix the syntax before this point",
                self.budget.as_secs()
            ),
        )
    }
}

/// The CPU time the grammar may spend on `len` bytes: 5 s, plus 5 s per MiB. A well-formed
/// class parses at about 2 MiB/s; tree-sitter's error recovery on some broken shapes (many
/// unclosed `[` in member headers) grows faster than the square of the input, and would run
/// for hours on a few hundred KiB without this bound.
pub(crate) fn parse_budget(len: usize) -> std::time::Duration {
    std::time::Duration::from_secs(5) + std::time::Duration::from_secs(5 * len as u64 / (1 << 20))
}

/// Parse `text` with the UDL grammar within [`parse_budget`].
///
/// The grammar does not accept a CR before the LF after an argumentless command (`Quit\r\n`),
/// so it is given a copy where the CR of a CRLF is a blank and a lone CR a LF: same length,
/// so every offset in the tree is an offset in `text`.
pub(crate) fn parse_tree(text: &str) -> Result<Tree, GaveUp> {
    parse_tree_within(text, parse_budget(text.len()))
}

fn parse_tree_within(text: &str, budget: std::time::Duration) -> Result<Tree, GaveUp> {
    let copy: Option<Vec<u8>> = text.contains('\r').then(|| {
        let b = text.as_bytes();
        (0..b.len())
            .map(|i| match b[i] {
                b'\r' if b.get(i + 1) == Some(&b'\n') => b' ',
                b'\r' => b'\n',
                c => c,
            })
            .collect()
    });
    let bytes = copy.as_deref().unwrap_or(text.as_bytes());
    let start = cpu_time();
    let mut offset = 0;
    let mut progress = |state: &tree_sitter::ParseState| {
        offset = state.current_byte_offset();
        if cpu_time().saturating_sub(start) > budget {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    };
    let options = tree_sitter::ParseOptions::new().progress_callback(&mut progress);
    let tree = parser().parse_with_options(
        &mut |i, _| bytes.get(i..).unwrap_or_default(),
        None,
        Some(options),
    );
    tree.ok_or(GaveUp {
        offset: offset.min(text.len()),
        budget,
    })
}

/// The CPU time this thread has used (wall time where there is no such clock): a busy
/// machine slows the parse without using up its budget.
fn cpu_time() -> std::time::Duration {
    #[cfg(unix)]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write into.
        if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0 {
            return std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
        }
    }
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

/// Whether `n` (below the nodes of kinds `above`) lies inside a member's or the class's
/// keyword list (`[ Language = cache ]`). The grammar knows only some values of some keywords
/// (not the `cache` language of older exports); the reader reads no keyword, so a keyword it
/// cannot parse is not an error.
fn inside_keywords(n: Node, above: &[Node]) -> bool {
    n.kind().ends_with("_keywords") || above.iter().any(|a| a.kind().ends_with("_keywords"))
}

/// Node kinds that are comments or lines before the class (`Include`, `Import`, doc lines).
fn is_preamble(kind: &str) -> bool {
    kind.starts_with("line_comment")
        || matches!(
            kind,
            "block_comment"
                | "documatic_line"
                | "include_code"
                | "import_code"
                | "include_generator"
                | "inline_comment"
        )
}

/// Member kinds whose code is ObjectScript the grammar parses statement by statement.
fn has_code(kind: &str) -> bool {
    matches!(
        kind,
        "method" | "classmethod" | "query" | "trigger" | "clientmethod"
    )
}

/// Read the class defined in `text` (already free of a byte-order mark; lone CRs already
/// normalized). `Ok(None)`: the text does not start like a class definition (after comments
/// and `Include`/`Import` lines), so it is not UDL. Errors in the header are returned;
/// errors further on are in [`UdlClass::structure_error`] / [`Member::code_error`].
pub fn read_class(file: &str, text: &str) -> Result<Option<UdlClass>, BplError> {
    let idx = LineIndex::new(text);
    let tree = parse_tree(text).map_err(|g| g.error(file, idx.pos(g.offset), "this file"))?;
    let at = |off: usize, msg: String| BplError::at(file, idx.pos(off), msg);
    let root = tree.root_node();
    // One walk over the leaves (no list of them: a class of method code has millions).
    let mut first: Option<(Node, Option<Node>)> = None;
    let mut has_open = false;
    let mut xdata = XdataOpens::default();
    walk(root, |n, above| {
        if n.child_count() != 0 {
            return Walk::Descend;
        }
        if first.is_none()
            && !n.is_extra()
            && !is_preamble(n.kind())
            && !above.iter().any(|a| is_preamble(a.kind()))
        {
            first = Some((n, above.last().copied()));
        }
        has_open |= n.kind() == "{";
        let in_comment = above.iter().any(|a| a.kind() == "block_comment");
        xdata.leaf(text, n, in_comment);
        Walk::Skip
    });
    // The first leaf that is not a comment or preamble line must be the `Class` keyword,
    // followed by blank space (the grammar also matches the `Class` of `Classic`).
    let Some((kw, kw_parent)) = first else {
        return Ok(None);
    };
    if kw.kind() != "keyword_class"
        || !text
            .as_bytes()
            .get(kw.end_byte())
            .is_some_and(|b| b.is_ascii_whitespace())
    {
        return Ok(None);
    }
    let keyword = kw.start_byte();
    let name_range = class_name_at(file, text, &idx, kw.end_byte())?;
    let name = text[name_range.clone()].to_string();

    // The class_definition node (the keyword's parent when the header parsed).
    let def = kw_parent.filter(|p| p.kind() == "class_definition");
    let mut supers = Vec::new();
    let mut members = Vec::new();
    if let Some(def) = def {
        if let Some(ext) = child_of_kind(def, "class_extends") {
            let mut c = ext.walk();
            for n in ext.children(&mut c).filter(|n| n.kind() == "class_name") {
                supers.push(text[n.byte_range()].to_string());
            }
        }
        if let Some(body) = child_of_kind(def, "class_body") {
            let mut c = body.walk();
            for st in body.children(&mut c) {
                if st.kind() != "class_statement" {
                    continue;
                }
                let Some(m) = st.named_child(0) else { continue };
                members.push(member(file, text, &idx, m));
            }
        }
    }
    // Body opens: the header must reach a `{`.
    if !has_open {
        return Err(at(
            text.len(),
            format!("unexpected end of file: expected '{{' to open the body of class {name}"),
        ));
    }
    let structure_error = first_error(root, |n, above| {
        !above.iter().any(|a| has_code(a.kind())) && !inside_keywords(n, above)
    })
    .map(|n| diagnose(file, text, &|o| idx.pos(o), root, n, &name));
    let xdata_opens = xdata.finish();
    Ok(Some(UdlClass {
        name,
        keyword,
        name_range,
        supers,
        members,
        structure_error,
        xdata_opens,
    }))
}

/// Validate the class name after the `Class` keyword ending at `from`: the name runs to the
/// next blank, `[`, `{` or `(`; every character must belong to a class name.
fn class_name_at(
    file: &str,
    text: &str,
    idx: &LineIndex,
    from: usize,
) -> Result<Range<usize>, BplError> {
    let b = text.as_bytes();
    let mut start = from;
    while start < b.len() && matches!(b[start], b' ' | b'\t') {
        start += 1;
    }
    let end = text[start..]
        .find(|c: char| c.is_ascii_whitespace() || matches!(c, '[' | '{' | '('))
        .map(|k| start + k)
        .unwrap_or(text.len());
    let name = &text[start..end];
    let missing = || {
        BplError::at(
            file,
            idx.pos(start),
            "expected a class name such as Demo.Loan.Process after 'Class'",
        )
    };
    if name.is_empty() || name.eq_ignore_ascii_case("extends") {
        return Err(missing());
    }
    for (k, c) in name.char_indices() {
        let ok = c.is_ascii_alphanumeric() || c == '.' || (c == '%' && k == 0);
        if !ok {
            return Err(BplError::at(
                file,
                idx.pos(start + k),
                format!(
                    "class name {} contains {}; a class name holds only ASCII letters and digits in '.'-separated pieces, with an optional leading '%'",
                    crate::udl::shown(name),
                    describe_char(c)
                ),
            ));
        }
    }
    let pieces_ok = name
        .trim_start_matches('%')
        .split('.')
        .all(|p| p.chars().next().is_some_and(|c| c.is_ascii_alphabetic()));
    if !pieces_ok {
        return Err(BplError::at(
            file,
            idx.pos(start),
            format!(
                "class name {} is not valid: every '.'-separated piece must start with a letter",
                shown(name)
            ),
        ));
    }
    Ok(start..end)
}

/// A value for a message, quoted: at most 80 characters, control characters escaped.
pub(crate) fn shown(s: &str) -> String {
    format!("'{}'", crate::input::printable_max(s, 80))
}

fn describe_char(c: char) -> String {
    match c {
        '\0' => "a NUL character".to_string(),
        ' ' | '\t' => "a blank".to_string(),
        '\'' => "a quote (')".to_string(),
        '"' => "a double quote (\")".to_string(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c if !c.is_ascii() => format!("the non-ASCII character '{c}' (U+{:04X})", c as u32),
        c => format!("the character '{c}'"),
    }
}

fn member(file: &str, text: &str, idx: &LineIndex, m: Node) -> Member {
    let kind = m.kind().to_string();
    // The member name: the first named descendant whose kind ends in `_name` (method_name,
    // xdata_name, property_name, …), searched breadth-first within the member header.
    let name = name_node(m)
        .map(|n| text[n.byte_range()].to_string())
        .unwrap_or_default();
    // The body: the first `{` … last `}` pair among the member's (or its definition's) tokens.
    let holder = child_of_kind(m, "method_definition").unwrap_or(m);
    let mut c = holder.walk();
    let toks: Vec<Node> = holder.children(&mut c).collect();
    let open = toks.iter().position(|n| n.kind() == "{");
    let close = toks
        .iter()
        .rposition(|n| n.kind() == "}" && !n.is_missing());
    let body = match (open, close) {
        (Some(o), Some(cl)) if o < cl => Some(toks[o].end_byte()..toks[cl].start_byte()),
        _ => None,
    };
    let (facts, code_error) = if matches!(kind.as_str(), "method" | "classmethod") {
        let error = first_error(holder, |n, above| !inside_keywords(n, above))
            .map(|n| diagnose(file, text, &|o| idx.pos(o), holder, n, ""));
        let facts = code::facts(text, idx, holder);
        (Some(facts), error)
    } else {
        (None, None)
    };
    Member {
        kind,
        name,
        start: m.start_byte(),
        body,
        facts,
        code_error,
    }
}

fn name_node(m: Node) -> Option<Node> {
    let mut queue = std::collections::VecDeque::from([m]);
    while let Some(n) = queue.pop_front() {
        let mut c = n.walk();
        for ch in n.named_children(&mut c) {
            let k = ch.kind();
            if k.ends_with("_name") && k != "class_name" {
                return Some(ch);
            }
            if !matches!(k, "arguments" | "return_type") && !k.ends_with("keywords") {
                queue.push_back(ch);
            }
        }
    }
    None
}

fn child_of_kind<'t>(n: Node<'t>, kind: &str) -> Option<Node<'t>> {
    let mut c = n.walk();
    let found = n.children(&mut c).find(|ch| ch.kind() == kind);
    found
}

/// What [`walk`] does after visiting a node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Walk {
    Descend,
    Skip,
    Stop,
}

/// Visit `root` and its descendants in document order with one cursor (no recursion on deep
/// trees, and no `Node::parent`, which tree-sitter answers by descending from the root: a
/// parent per node would be quadratic in a class of many members). `visit` gets each node and
/// the nodes above it, from `root` down (none for `root`).
fn walk<'t>(root: Node<'t>, mut visit: impl FnMut(Node<'t>, &[Node<'t>]) -> Walk) {
    let mut c = root.walk();
    let mut above: Vec<Node<'t>> = Vec::new();
    'outer: loop {
        let n = c.node();
        match visit(n, &above) {
            Walk::Stop => return,
            Walk::Descend if c.goto_first_child() => {
                above.push(n);
                continue;
            }
            _ => {}
        }
        loop {
            if c.goto_next_sibling() {
                continue 'outer;
            }
            if above.pop().is_none() || !c.goto_parent() {
                return;
            }
        }
    }
}

/// Every leaf under `root` in document order.
fn leaves(root: Node) -> Vec<Node> {
    let mut out = Vec::new();
    walk(root, |n, _| {
        if n.child_count() == 0 {
            out.push(n);
        }
        Walk::Descend
    });
    out
}

/// The earliest ERROR or MISSING node under `root` for which `keep(node, kinds above it)`
/// holds.
fn first_error<'t>(root: Node<'t>, keep: impl Fn(Node, &[Node]) -> bool) -> Option<Node<'t>> {
    if !root.has_error() {
        return None;
    }
    let mut found = None;
    walk(root, |n, above| {
        if (n.is_error() || n.is_missing()) && keep(n, above) {
            found = Some(n);
            return Walk::Stop;
        }
        if n.has_error() {
            Walk::Descend
        } else {
            Walk::Skip
        }
    });
    found
}

/// A located message for the syntax error node `n` inside `scope` (the tree's root, or the
/// method whose code holds it).
fn diagnose(
    file: &str,
    text: &str,
    pos: &dyn Fn(usize) -> Pos,
    scope: Node,
    n: Node,
    class: &str,
) -> BplError {
    if n.is_missing() {
        let what = n.kind();
        if what == "}" && text[n.start_byte()..].trim().is_empty() {
            let whose = if class.is_empty() {
                "the method body".to_string()
            } else {
                format!("class {class}")
            };
            return BplError::at(
                file,
                pos(text.len()),
                format!("{whose} is not closed: missing '}}' before the end of the file"),
            );
        }
        return BplError::at(file, pos(n.start_byte()), format!("expected '{what}' here"));
    }
    // A string literal never spans lines: one that does (or an unpaired `"` token inside the
    // error) is a string that never ends, reported where it starts.
    if let Some(s) = multi_line_string(text, scope, n.end_byte()) {
        return BplError::at(file, pos(s), "unterminated string literal");
    }
    if let Some(q) = leaves(n).into_iter().find(|l| l.kind() == "\"") {
        return BplError::at(file, pos(q.start_byte()), "unterminated string literal");
    }
    let snippet: String = text[n.byte_range()]
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .take(40)
        .collect();
    BplError::at(
        file,
        pos(n.start_byte()),
        format!(
            "ObjectScript syntax error: the UDL grammar cannot parse {}",
            shown(snippet.trim_end())
        ),
    )
}

/// The start of the first string literal before `before` that spans a line break.
fn multi_line_string(text: &str, scope: Node, before: usize) -> Option<usize> {
    let mut found = None;
    walk(scope, |n, _| {
        if n.start_byte() >= before {
            return Walk::Stop;
        }
        if n.kind() != "string_literal" {
            return Walk::Descend;
        }
        if text[n.byte_range()].contains('\n') {
            found = Some(n.start_byte());
            return Walk::Stop;
        }
        Walk::Skip
    });
    found
}

/// `XData <name> [ … ] {` openings, fed leaf by leaf in document order: the offset of the
/// `{`, or `Err(offset)` where a `{` was expected (the end of the text when it ends first).
/// Openings waiting in the same place move together, so each leaf costs the same however
/// many `XData` keywords came before it.
#[derive(Default)]
struct XdataOpens {
    out: Vec<(String, Result<usize, usize>)>,
    /// Just after the keyword: the next leaf is the name.
    want_name: Vec<usize>,
    /// After the name: the next token is `{`, `[` or a mistake.
    want_first: Vec<usize>,
    /// Inside `[ … ]`, waiting for the `]`.
    want_close: Vec<usize>,
    /// After the `]`: the next token is `{` or a mistake.
    want_after: Vec<usize>,
}

impl XdataOpens {
    fn leaf(&mut self, text: &str, n: Node, in_comment: bool) {
        let kind = n.kind();
        if !n.is_extra() {
            let open = if kind == "{" {
                Ok(n.start_byte())
            } else {
                Err(n.start_byte())
            };
            for e in self.want_after.drain(..) {
                self.out[e].1 = open;
            }
            if kind == "]" {
                self.want_after.append(&mut self.want_close);
            }
            for e in self.want_first.drain(..) {
                if kind == "[" {
                    self.want_close.push(e);
                } else {
                    self.out[e].1 = open;
                }
            }
        }
        for e in self.want_name.drain(..) {
            self.out[e].0 = text[n.byte_range()].to_string();
            self.want_first.push(e);
        }
        if kind == "keyword_xdata" && !in_comment {
            self.want_name.push(self.out.len());
            self.out.push((String::new(), Err(text.len())));
        }
    }

    /// The openings; one still waiting for its `{` ends at the end of the text, a keyword that
    /// is the last leaf names nothing and is left out.
    fn finish(mut self) -> Vec<(String, Result<usize, usize>)> {
        if !self.want_name.is_empty() {
            self.out.pop();
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(t: &str) -> Result<Option<UdlClass>, BplError> {
        read_class("f.cls", t)
    }

    #[test]
    fn header_members_and_supers() {
        let t = "/// doc\n// c\n/* block\n */\nInclude Ens\nClass Demo.A Extends (X.Y, %Z) [ Language = objectscript ]\n{\nParameter P = 1;\nXData BPL [ XMLNamespace = \"x\" ]\n{\n<process/>\n}\nMethod S1() As %Status\n{\n Quit 1\n}\n}\n";
        let c = class(t).unwrap().unwrap();
        assert_eq!(c.name, "Demo.A");
        assert_eq!(&t[c.name_range.clone()], "Demo.A");
        assert_eq!(c.supers, ["X.Y", "%Z"]);
        assert!(c.structure_error.is_none(), "{:?}", c.structure_error);
        let kinds: Vec<(&str, &str)> = c
            .members
            .iter()
            .map(|m| (m.kind.as_str(), m.name.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [("parameter", "P"), ("xdata", "BPL"), ("method", "S1")]
        );
        assert_eq!(c.xdata_opens.len(), 1);
        assert_eq!(t.as_bytes()[c.xdata_opens[0].1.unwrap()], b'{');
    }

    #[test]
    fn not_udl() {
        assert!(class("<process/>").unwrap().is_none());
        assert!(class("Classic rock\n").unwrap().is_none());
        assert!(class("just some text\n").unwrap().is_none());
        assert!(class("").unwrap().is_none());
    }

    #[test]
    fn class_names_are_validated_never_cut() {
        for (t, col, what) in [
            ("Class Demo.Lo'an Extends X\n{\n}\n", 14, "a quote"),
            ("Class Demo.Lo\u{e9}an Extends X\n{\n}\n", 14, "non-ASCII"),
            ("Class Demo.Lo\0an Extends X\n{\n}\n", 14, "NUL"),
            (
                "Class Demo..A Extends X\n{\n}\n",
                7,
                "must start with a letter",
            ),
            ("Class .A {\n}\n", 7, "must start with a letter"),
        ] {
            let e = class(t).unwrap_err();
            assert_eq!(
                e.pos,
                Some(Pos {
                    line: 1,
                    column: col
                }),
                "{t:?}: {e}"
            );
            assert!(e.message.contains(what), "{t:?}: {e}");
        }
        let e = class("Class Extends X\n{\n}\n").unwrap_err();
        assert!(e.message.starts_with("expected a class name"), "{e}");
        let e = class("Class A Extends B").unwrap_err();
        assert!(e.message.contains("expected '{'"), "{e}");
    }

    #[test]
    fn a_multibyte_character_before_the_class_is_fine() {
        let c = class("// \u{e9}t\u{e9}\n/* \u{263A} */ Class Demo.A Extends X\n{\n}\n")
            .unwrap()
            .unwrap();
        assert_eq!(c.name, "Demo.A");
        assert!(class("\u{e9}\u{e9}\u{e9}\u{e9} Class A {}")
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_missing_closing_brace_is_a_located_error() {
        let t = "Class Demo.A Extends X\n{\nXData BPL\n{\n<process/>\n}\n";
        let c = class(t).unwrap().unwrap();
        let e = c.structure_error.expect("error");
        assert_eq!(
            e.to_string(),
            "f.cls:7:1: class Demo.A is not closed: missing '}' before the end of the file"
        );
    }

    #[test]
    fn code_errors_stay_with_their_method_and_keywords_the_grammar_lacks_are_fine() {
        let t = "Class Demo.A Extends Ens.BP.Thread\n{\nMethod S1() [ Language = cache ]\n{\n Set ..%NextState=\"S2\"\n}\nMethod Helper()\n{\n Set x=(1\n}\n}\n";
        let c = class(t).unwrap().unwrap();
        assert!(c.structure_error.is_none(), "{:?}", c.structure_error);
        let s1 = &c.members[0];
        assert!(s1.code_error.is_none(), "{:?}", s1.code_error);
        assert_eq!(s1.facts.as_ref().unwrap().successors, ["S2"]);
        let helper = &c.members[1];
        assert_eq!(helper.name, "Helper");
        assert!(helper.code_error.is_some());
    }

    #[test]
    fn the_grammar_gives_up_within_its_budget() {
        // Unclosed `[` after many XData headers: tree-sitter's error recovery on this shape
        // costs more than the square of the input (2,000 lines ≈ 0.3 s, 50,000 > 5 min).
        let mut t = String::from("Class Demo.X Extends Ens.BusinessProcessBPL\n{\n");
        for i in 0..2000 {
            t.push_str(&format!("XData A{i} [ \n"));
        }
        t.push_str("}\n");
        let g = parse_tree_within(&t, std::time::Duration::from_millis(20)).unwrap_err();
        assert!(g.offset > 0 && g.offset < t.len(), "{g:?}");
        let e = g.error("f.cls", Pos { line: 3, column: 1 }, "this file");
        assert!(
            e.to_string().starts_with(
                "f.cls:3:1: the ObjectScript grammar gave up on this file after 0 s of CPU time"
            ),
            "{e}"
        );
        // The budget grows with the input: 5 s, plus 5 s per MiB.
        assert_eq!(parse_budget(0).as_secs(), 5);
        assert_eq!(parse_budget(64 << 20).as_secs(), 325);
        assert!(parse_tree("Class A Extends B\n{\n}\n").is_ok());
    }

    #[test]
    fn lone_carriage_returns_become_line_feeds() {
        assert_eq!(normalize_line_breaks("a\rb\r\nc\r"), "a\nb\r\nc\n");
        assert!(matches!(normalize_line_breaks("a\r\nb"), Cow::Borrowed(_)));
    }
}
