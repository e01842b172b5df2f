//! `<process>` XML → typed activity tree (spec section 2).
//!
//! The input is the *whole original file* plus the byte range holding the `<process>`
//! document, so every position reported is a position in the file the user has open.

use super::model::*;
use super::BplError;
use crate::states::SharedStr;
use foldhash::HashSet;
use roxmltree::{Node, NodeType};
use std::ops::Range;

/// The 30 activity element names of spec 2.2.
pub const ACTIVITY_ELEMENTS: [&str; 30] = [
    "alert",
    "assign",
    "branch",
    "break",
    "call",
    "code",
    "compensate",
    "continue",
    "delay",
    "empty",
    "flow",
    "foreach",
    "if",
    "label",
    "milestone",
    "receive",
    "reply",
    "rule",
    "scope",
    "sequence",
    "sql",
    "switch",
    "sync",
    "throw",
    "trace",
    "transform",
    "until",
    "while",
    "xpath",
    "xslt",
];

/// Attributes that only place the activity on the graphical canvas.
const LAYOUT_ATTRS: [&str; 4] = ["xpos", "ypos", "xend", "yend"];

/// Attributes whose omission means a value, per element: written out, that value means what
/// leaving it out means, so it is not kept (an explicit `action='set'` compares equal to none
/// everywhere: hashes, keys, handler comparisons). `disabled` is parsed apart (spec 2.4);
/// `async` is not here: its meaning depends on the compiler generation (spec 2.5).
/// - `<assign action>`: `set` (the IRIS BPL reference; `append`, `clear`, `insert`, `remove`
///   must be written);
/// - `<sync type>`: `all` (spec 3.4.4a).
const DEFAULT_ATTRS: [(&str, &str, &[&str]); 2] =
    [("assign", "action", &["set"]), ("sync", "type", &["all"])];

/// Is `value` of attribute `name` of `element` the value its omission means?
fn is_default_attr(element: &str, name: &str, value: &str) -> bool {
    DEFAULT_ATTRS
        .iter()
        .any(|(e, a, v)| *e == element && *a == name && v.contains(&value))
}

/// Maps byte offsets of the original file to 1-based line/column (columns count characters).
/// Each lookup costs O(log lines + 64): a character count every 64 bytes means a column is
/// never found by rescanning its line (a minified file is one long line).
pub struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
    /// `chars_before[k]`: the characters in `text[..k * CHUNK]`. Empty when the text is
    /// ASCII: a column is then a byte count.
    chars_before: Vec<usize>,
}

const CHUNK: usize = 64;

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        let bytes = text.as_bytes();
        for (i, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'\n') {
            line_starts.push(i + 1);
        }
        let mut chars_before = Vec::new();
        if !text.is_ascii() {
            chars_before.reserve_exact(text.len() / CHUNK + 2);
            let mut chars = 0usize;
            for chunk in bytes.chunks(CHUNK) {
                chars_before.push(chars);
                // A character starts at every byte that is not a UTF-8 continuation byte.
                chars += chunk.iter().filter(|&&b| b & 0xC0 != 0x80).count();
            }
            // The entry for `text.len()` itself when the length is a multiple of CHUNK.
            chars_before.push(chars);
        }
        LineIndex {
            text,
            line_starts,
            chars_before,
        }
    }

    /// The characters in `text[..offset]`.
    fn chars_to(&self, offset: usize) -> usize {
        if self.chars_before.is_empty() {
            return offset;
        }
        let k = offset / CHUNK;
        let base = self.chars_before.get(k).copied().unwrap_or(0);
        let tail = self.text.as_bytes().get(k * CHUNK..offset).unwrap_or(&[]);
        base + tail.iter().filter(|&&b| b & 0xC0 != 0x80).count()
    }

    /// The 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> u32 {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset);
        u32::try_from(line).unwrap_or(u32::MAX)
    }

    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1) - 1;
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let col = self.chars_to(offset).saturating_sub(self.chars_to(start));
        Pos {
            line: u32::try_from(line + 1).unwrap_or(u32::MAX),
            column: u32::try_from(col + 1).unwrap_or(u32::MAX),
        }
    }

    /// The inverse of `pos`: the byte offset of a 1-based line/column. Out-of-range lines
    /// clamp to the end of the text, out-of-range columns to the end of their line.
    pub fn offset(&self, pos: Pos) -> usize {
        let Some(&start) = self.line_starts.get(pos.line.max(1) as usize - 1) else {
            return self.text.len();
        };
        let end = self
            .line_starts
            .get(pos.line as usize)
            .copied()
            .unwrap_or(self.text.len());
        let line = self.text.get(start..end).unwrap_or("");
        let skip = pos.column.max(1) as usize - 1;
        start
            + line
                .char_indices()
                .nth(skip)
                .map(|(i, _)| i)
                .unwrap_or(line.len())
    }
}

/// One `<process>` document inside a file.
pub struct XmlSource<'a> {
    /// File name for messages (as the user wrote it, or `REV:path`).
    pub file: &'a str,
    /// The whole original file.
    pub text: &'a str,
    /// Byte range of the XML document (the `<process>` element, possibly with a prolog).
    pub range: Range<usize>,
}

/// How deeply activities may nest. Real processes stay far below; the limit keeps the
/// recursive reader (and every later tree walk) off the end of the stack on hostile input.
pub const MAX_NESTING: u32 = 100;

struct Ctx<'a> {
    file: &'a str,
    base: usize,
    lines: LineIndex<'a>,
    next_id: u32,
    depth: u32,
    /// Attribute names and values read so far: equal strings share one allocation.
    strings: HashSet<SharedStr>,
}

impl<'a> Ctx<'a> {
    fn pos(&self, node: Node) -> Pos {
        self.lines.pos(self.base + node.range().start)
    }
    /// Position of the first non-whitespace character of a text node (its range starts at
    /// the whitespace that usually precedes stray text).
    fn text_pos(&self, node: Node) -> Pos {
        let r = node.range();
        let raw = node.document().input_text().get(r.clone()).unwrap_or("");
        let skip = raw.len() - raw.trim_start().len();
        self.lines.pos(self.base + r.start + skip)
    }
    fn err(&self, node: Node, msg: impl Into<String>) -> BplError {
        let p = self.pos(node);
        BplError::at(self.file, p, msg)
    }
    fn id(&mut self) -> ActivityId {
        let id = ActivityId(self.next_id);
        self.next_id += 1;
        id
    }
    /// `s` as a shared string, the one already made for an equal string if any.
    fn intern(&mut self, s: &str) -> SharedStr {
        if let Some(x) = self.strings.get(s) {
            return x.clone();
        }
        let x = SharedStr::from(s);
        self.strings.insert(x.clone());
        x
    }
    /// The attribute `name` of `node`, interned.
    fn attr(&mut self, node: Node, name: &str) -> Option<SharedStr> {
        attr(node, name).map(|v| self.intern(v))
    }
}

/// Parse the `<process>` document at `src.range` of `src.text`.
pub fn parse_process(src: &XmlSource) -> Result<Process, BplError> {
    let lines = LineIndex::new(src.text);
    let Some(xml) = src.text.get(src.range.clone()) else {
        return Err(BplError::file(
            src.file,
            format!(
                "internal error: byte range {:?} is not inside the file",
                src.range
            ),
        ));
    };
    let doc = parse_xml(src.file, &lines, src.range.start, xml)?;
    let mut cx = Ctx {
        file: src.file,
        base: src.range.start,
        lines,
        next_id: 0,
        depth: 0,
        strings: HashSet::default(),
    };
    let root = doc.root_element();
    if root.tag_name().name() != "process" {
        return Err(cx.err(
            root,
            format!(
                "expected a <process> element, found <{}>",
                root.tag_name().name()
            ),
        ));
    }
    read_process(&mut cx, root)
}

/// Parse `xml`, which starts at byte `base` of the file `lines` indexes, reporting XML
/// errors at their position in the file.
pub(crate) fn parse_xml<'x>(
    file: &str,
    lines: &LineIndex,
    base: usize,
    xml: &'x str,
) -> Result<roxmltree::Document<'x>, BplError> {
    use roxmltree::Error as E;
    if let Some(at) = crowded_tag(xml) {
        return Err(BplError::at(
            file,
            lines.pos(base + at),
            too_many_attributes(),
        ));
    }
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(xml, opts).map_err(|e| {
        let (pos, message) = match e {
            // roxmltree places these at 1:1; the end of the input is where they happen.
            E::UnexpectedEndOfStream | E::UnclosedRootNode => (
                lines.pos(base + xml.len()),
                "malformed XML: the input ends before every element is closed; is the file truncated?".to_string(),
            ),
            _ => {
                // roxmltree positions are relative to the XML slice; shift to the file.
                let tp = e.pos();
                let here = Pos { line: tp.row.max(1), column: tp.col.max(1) };
                let offset = LineIndex::new(xml).offset(here);
                let hint = if inside_unwrapped_code(xml, offset) {
                    "; code containing '<' or '&' must be wrapped in <![CDATA[ … ]]>"
                } else {
                    ""
                };
                (lines.pos(base + offset), format!("malformed XML: {}{hint}", strip_xml_pos(&e.to_string())))
            }
        };
        BplError::at(file, pos, message)
    })
}

/// The most attributes one element may have. BPL elements have a dozen at most; the XML
/// parser checks every attribute against the element's others, so an element with very many
/// would cost quadratic time before any other check could refuse it.
pub const MAX_ATTRIBUTES: usize = 256;

pub(crate) fn too_many_attributes() -> String {
    format!("malformed input: an element with more than {MAX_ATTRIBUTES} attributes")
}

/// The offset of the first tag with more than [`MAX_ATTRIBUTES`] attributes, found by one
/// linear scan (comments, CDATA, processing instructions and quoted values are skipped).
pub(crate) fn crowded_tag(xml: &str) -> Option<usize> {
    let b = xml.as_bytes();
    let skip_past = |from: usize, end: &str| {
        xml.get(from..)
            .and_then(|rest| rest.find(end))
            .map_or(b.len(), |k| from + k + end.len())
    };
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = skip_past(i + 4, "-->");
        } else if rest.starts_with(b"<![CDATA[") {
            i = skip_past(i + 9, "]]>");
        } else if rest.starts_with(b"<?") {
            i = skip_past(i + 2, "?>");
        } else {
            let start = i;
            let mut n = 0usize;
            i += 1;
            while i < b.len() && b[i] != b'>' && b[i] != b'<' {
                match b[i] {
                    q @ (b'"' | b'\'') => {
                        i += 1;
                        while i < b.len() && b[i] != q {
                            i += 1;
                        }
                    }
                    b'=' => n += 1,
                    _ => {}
                }
                i += 1;
            }
            if n > MAX_ATTRIBUTES {
                return Some(start);
            }
        }
    }
    None
}

/// Whether `offset` lies inside a `<code>` or `<sql>` element whose text is not in CDATA:
/// the usual cause of a malformed BPL.
fn inside_unwrapped_code(xml: &str, offset: usize) -> bool {
    let before = xml.get(..offset).unwrap_or(xml);
    let open = ["<code>", "<code ", "<sql>", "<sql "]
        .iter()
        .filter_map(|t| before.rfind(t))
        .max();
    let Some(open) = open else { return false };
    let between = &before[open..];
    !between.contains("</code") && !between.contains("</sql") && !between.contains("<![CDATA[")
}

fn strip_xml_pos(s: &str) -> String {
    // roxmltree appends " at 3:5"; we report our own file position.
    match s.rfind(" at ") {
        Some(i) if s[i + 4..].chars().all(|c| c.is_ascii_digit() || c == ':') => s[..i].to_string(),
        _ => s.to_string(),
    }
}

fn elements<'a, 'i>(node: Node<'a, 'i>) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children()
        .filter(|c| c.node_type() == NodeType::Element)
}

/// The activity element `node` is, if it is one (not a handler).
fn activity_of(node: Node) -> Option<Element> {
    // Elements are unqualified (spec 2.1): match by local name.
    Element::from_name(node.tag_name().name()).filter(|e| e.is_activity())
}

/// A class member name as IRIS accepts one (and SQL can name a column after): an ASCII letter
/// or `%` first, then ASCII letters and digits.
fn is_member_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '%')
        && c.all(|c| c.is_ascii_alphanumeric())
}

fn attr<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attributes()
        .find(|a| a.name() == name)
        .map(|a| a.value())
}

fn required<'a>(cx: &Ctx, node: Node<'a, '_>, name: &str) -> Result<&'a str, BplError> {
    attr(node, name).ok_or_else(|| {
        cx.err(
            node,
            format!(
                "<{}> is missing the required attribute '{}'",
                node.tag_name().name(),
                name
            ),
        )
    })
}

/// Reject stray text: BPL elements hold only elements (and whitespace/comments), except
/// `<code>`, `<sql>` and `<annotation>`.
fn check_no_text(cx: &Ctx, node: Node) -> Result<(), BplError> {
    for c in node.children() {
        if c.is_text() && !is_blank(c.text().unwrap_or("")) {
            let p = cx.text_pos(c);
            return Err(BplError::at(
                cx.file,
                p,
                format!("unexpected text inside <{}>; expected only elements (code belongs in <code> or <sql>)", node.tag_name().name()),
            ));
        }
    }
    Ok(())
}

/// Only white space (as `str::trim` takes it), checked byte-wise first: the text between
/// elements is nearly always a line break and indentation.
fn is_blank(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_whitespace()) || text.trim().is_empty()
}

fn parse_disabled(cx: &Ctx, node: Node) -> Result<bool, BplError> {
    match attr(node, "disabled") {
        None => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) if matches!(v.trim(), "true" | "false" | "1" | "0") => Err(cx.err(
            node,
            format!("disabled=\"{v}\" is padded with whitespace; IRIS may read it either way (spec Open Q3): write it without spaces"),
        )),
        Some(v) => Err(cx.err(node, format!("disabled=\"{v}\" is not a boolean: use true, false, 1 or 0"))),
    }
}

fn read_process(cx: &mut Ctx, node: Node) -> Result<Process, BplError> {
    let pos = cx.pos(node);
    let version = attr(node, "version").map(str::to_string);
    if let Some(v) = &version {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(cx.err(node, format!("version=\"{v}\" is not a plain non-negative integer (spec 6.1): write digits only, e.g. version=\"2\"")));
        }
        if v.parse::<u64>().is_err() {
            return Err(cx.err(node, format!("version=\"{v}\" is too large")));
        }
    }
    check_no_text(cx, node)?;
    let mut context = Vec::new();
    let mut seen_context = false;
    let mut sequences = Vec::new();
    for child in elements(node) {
        match child.tag_name().name() {
            "context" => {
                if seen_context {
                    return Err(cx.err(
                        child,
                        "<process> has more than one <context>; merge their properties into one",
                    ));
                }
                seen_context = true;
                check_no_text(cx, child)?;
                for p in elements(child) {
                    match p.tag_name().name() {
                        "property" => {}
                        "annotation" => continue,
                        other => {
                            return Err(cx.err(
                                p,
                                format!(
                                    "unexpected <{other}> inside <context>; expected <property>"
                                ),
                            ));
                        }
                    }
                    check_no_text(cx, p)?;
                    let name = required(cx, p, "name")?;
                    if !is_member_name(name) {
                        return Err(cx.err(
                            p,
                            format!(
                                "context property name \"{}\" is not a class member name (an ASCII letter or `%`, then ASCII letters and digits): IRIS cannot compile it, and it cannot name a column",
                                crate::input::printable(name)
                            ),
                        ));
                    }
                    context.push(ContextProperty {
                        name: name.to_string(),
                        type_name: attr(p, "type").map(str::to_string),
                        initial_expression: attr(p, "initialexpression").map(str::to_string),
                        pos: cx.pos(p),
                    });
                }
            }
            "sequence" => sequences.push(child),
            "annotation" | "pyFromImport" => {}
            other => {
                return Err(cx.err(
                    child,
                    format!(
                        "unexpected <{other}> inside <process>; expected <context> or <sequence>"
                    ),
                ));
            }
        }
    }
    let Some(last) = sequences.last().copied() else {
        return Err(cx.err(
            node,
            "<process> has no <sequence>: IRIS refuses to compile it (spec 2.12)",
        ));
    };
    // Earlier top-level sequences are never compiled (Q-12) but IRIS still validates them
    // against the schema, so they must be valid too.
    for &earlier in &sequences[..sequences.len() - 1] {
        read_activity(cx, earlier)?;
    }
    let sequence = read_activity(cx, last)?;
    let mut p = Process {
        pos,
        version,
        language: attr(node, "language").map(str::to_string),
        request: attr(node, "request").map(str::to_string),
        response: attr(node, "response").map(str::to_string),
        context,
        top_level_sequences: sequences.len() as u32,
        sequence,
        flat: Vec::new(),
    };
    p.index_within(cx.next_id as usize);
    Ok(p)
}

/// Read an activity list: the element children of `node`, skipping a leading `<annotation>`.
/// `stop_at` names the non-activity elements that legitimately end the list (scope parts).
/// Returns the activities and the remaining element nodes.
fn read_list<'a, 'i>(
    cx: &mut Ctx,
    node: Node<'a, 'i>,
    stop_at: &[&str],
) -> Result<(Box<[Activity]>, Vec<Node<'a, 'i>>), BplError> {
    check_no_text(cx, node)?;
    // Exact capacity: the tree keeps these vectors for the whole run.
    let mut out = Vec::with_capacity(elements(node).count());
    let mut rest = Vec::new();
    for (i, child) in elements(node).enumerate() {
        let local = child.tag_name().name();
        let activity = activity_of(child);
        if !rest.is_empty() || (activity.is_none() && stop_at.contains(&local)) {
            rest.push(child);
        } else if i == 0 && local == "annotation" {
            continue;
        } else if activity.is_none()
            || (activity == Some(Element::Compensate)
                && !matches!(node.tag_name().name(), "catch" | "catchall"))
        {
            return Err(list_error(cx, node, child));
        } else {
            out.push(read_activity(cx, child)?);
        }
    }
    Ok((out.into_boxed_slice(), rest))
}

/// Why `child` cannot be in the activity list of `node`.
#[cold]
#[inline(never)]
fn list_error(cx: &Ctx, node: Node, child: Node) -> BplError {
    let parent = node.tag_name().name();
    let message = match child.tag_name().name() {
        "compensate" => format!("<compensate> is allowed only directly inside <catch> or <catchall>, not inside <{parent}> (spec 2.8)"),
        "annotation" => format!("<annotation> must be the first child of <{parent}>"),
        local => format!("unknown element <{local}> inside <{parent}>; expected an activity"),
    };
    cx.err(child, message)
}

fn leading_annotation(node: Node) -> Option<Box<str>> {
    let first = elements(node).next()?;
    (first.tag_name().name() == "annotation").then(|| first.text().unwrap_or("").trim().into())
}

fn read_activity(cx: &mut Ctx, node: Node) -> Result<Activity, BplError> {
    cx.depth += 1;
    if cx.depth > MAX_NESTING {
        return Err(cx.err(
            node,
            format!("activities are nested more than {MAX_NESTING} levels deep"),
        ));
    }
    let result = read_activity_inner(cx, node);
    cx.depth -= 1;
    result
}

fn read_activity_inner(cx: &mut Ctx, node: Node) -> Result<Activity, BplError> {
    let Some(element) = activity_of(node) else {
        let local = node.tag_name().name();
        return Err(cx.err(node, format!("unknown activity <{local}>")));
    };
    let id = cx.id();
    let pos = cx.pos(node);
    let disabled = parse_disabled(cx, node)?;
    let kind = read_kind(cx, node, element.as_str())?;
    let attrs = kept_attrs(cx, node);
    Ok(Activity {
        id,
        element,
        name: attrs.get_shared("name").cloned(),
        disabled,
        pos,
        attrs,
        annotation: leading_annotation(node),
        code: matches!(element, Element::Code | Element::Sql).then(|| code_text(node)),
        kind,
    })
}

/// The text of a `<code>`/`<sql>` element (text and CDATA children, not its annotation).
fn code_text(node: Node) -> Box<str> {
    let mut texts = node
        .children()
        .filter(|c| c.is_text())
        .filter_map(|c| c.text());
    match (texts.next(), texts.next()) {
        (None, _) => "".into(),
        (Some(one), None) => one.into(),
        (Some(a), Some(b)) => {
            let mut s = String::from(a);
            s.push_str(b);
            texts.for_each(|t| s.push_str(t));
            s.into_boxed_str()
        }
    }
}

/// Attributes as written, without the layout-only ones and those written with the value
/// their omission means ([`DEFAULT_ATTRS`]).
fn kept_attrs(cx: &mut Ctx, node: Node) -> Attrs {
    let element = node.tag_name().name();
    let kept = node.attributes().filter(|a| {
        !LAYOUT_ATTRS.contains(&a.name()) && !is_default_attr(element, a.name(), a.value())
    });
    let mut v = Vec::with_capacity(kept.clone().count());
    for a in kept {
        let value = if a.name() == "name" {
            // Names are mostly unique: looking them up would only cost time.
            SharedStr::from(a.value())
        } else {
            cx.intern(a.value())
        };
        v.push((cx.intern(a.name()), value));
    }
    Attrs::from_vec(v)
}

/// The kind of an activity. Containers recurse through this function, so it only
/// dispatches: every check lives in a callee whose frame is gone before the recursion (a
/// debug build otherwise reserves stack for every arm at every nesting level).
fn read_kind(cx: &mut Ctx, node: Node, element: &str) -> Result<ActivityKind, BplError> {
    match element {
        "sequence" => Ok(ActivityKind::Sequence {
            children: read_body(cx, node)?,
        }),
        "call" => read_call(cx, node),
        "if" => read_if(cx, node),
        "switch" => read_switch(cx, node),
        "while" | "until" | "foreach" => read_loop(cx, node, element),
        "scope" => read_scope(cx, node),
        "flow" => read_flow(cx, node),
        _ => read_leaf(cx, node, element),
    }
}

/// The activity list of `node` (no scope parts).
fn read_body(cx: &mut Ctx, node: Node) -> Result<Box<[Activity]>, BplError> {
    Ok(read_list(cx, node, &[])?.0)
}

fn read_loop(cx: &mut Ctx, node: Node, element: &str) -> Result<ActivityKind, BplError> {
    if element == "foreach" {
        required(cx, node, "property")?;
        required(cx, node, "key")?;
    } else {
        required(cx, node, "condition")?;
    }
    let body = read_body(cx, node)?;
    Ok(match element {
        "while" => ActivityKind::While { body },
        "until" => ActivityKind::Until { body },
        _ => ActivityKind::Foreach { body },
    })
}

fn read_flow(cx: &mut Ctx, node: Node) -> Result<ActivityKind, BplError> {
    let children = read_body(cx, node)?;
    if let Some(bad) = children.iter().find(|c| c.element != Element::Sequence) {
        return Err(BplError::at(
            cx.file,
            bad.pos,
            format!(
                "<flow> may only contain <sequence> children, found <{}>",
                bad.element
            ),
        ));
    }
    Ok(ActivityKind::Flow { children })
}

/// Activities without child activities.
#[inline(never)]
fn read_leaf(cx: &mut Ctx, node: Node, element: &str) -> Result<ActivityKind, BplError> {
    let kind = match element {
        "assign" => {
            required(cx, node, "property")?;
            simple(cx, node)?
        }
        "code" | "sql" => {
            // Text (usually CDATA) is the code itself; only a leading annotation may precede it.
            for (i, c) in elements(node).enumerate() {
                if !(i == 0 && c.tag_name().name() == "annotation") {
                    return Err(cx.err(
                        c,
                        format!("unexpected <{}> inside <{element}>; wrap code that contains '<' in <![CDATA[ … ]]>", c.tag_name().name()),
                    ));
                }
            }
            ActivityKind::Simple
        }
        "alert" | "milestone" | "trace" => {
            required(cx, node, "value")?;
            simple(cx, node)?
        }
        "throw" => {
            required(cx, node, "fault")?;
            simple(cx, node)?
        }
        "rule" => {
            required(cx, node, "rule")?;
            simple(cx, node)?
        }
        "transform" => {
            required(cx, node, "class")?;
            required(cx, node, "source")?;
            required(cx, node, "target")?;
            simple(cx, node)?
        }
        "xslt" => {
            required(cx, node, "xslurl")?;
            required(cx, node, "source")?;
            required(cx, node, "target")?;
            read_xslt_parameters(cx, node)?;
            ActivityKind::Simple
        }
        "xpath" => {
            for a in ["source", "property", "context", "expression"] {
                required(cx, node, a)?;
            }
            simple(cx, node)?
        }
        "reply" | "empty" | "receive" => simple(cx, node)?,
        "sync" => {
            required(cx, node, "calls")?;
            let any = match attr(node, "type") {
                None | Some("all") => false,
                Some("any") => true,
                Some(v) => {
                    return Err(cx.err(
                        node,
                        format!("<sync type=\"{v}\"> is not valid: use all or any"),
                    ))
                }
            };
            check_no_children(cx, node)?;
            ActivityKind::Sync { any }
        }
        "delay" => {
            if attr(node, "duration").is_none() && attr(node, "until").is_none() {
                return Err(cx.err(node, "<delay> needs a 'duration' or an 'until' attribute"));
            }
            check_no_children(cx, node)?;
            ActivityKind::Delay
        }
        "break" => {
            check_no_children(cx, node)?;
            ActivityKind::Break
        }
        "continue" => {
            check_no_children(cx, node)?;
            ActivityKind::Continue
        }
        "compensate" => {
            let target = required(cx, node, "target")?.to_string();
            check_no_children(cx, node)?;
            ActivityKind::Compensate { target }
        }
        "label" => {
            required(cx, node, "name")?;
            check_no_children(cx, node)?;
            ActivityKind::Label
        }
        "branch" => {
            let label = required(cx, node, "label")?.to_string();
            check_no_children(cx, node)?;
            ActivityKind::Branch { label }
        }
        other => return Err(cx.err(node, format!("unknown activity <{other}>"))),
    };
    Ok(kind)
}

/// A simple activity may hold only a leading annotation (and text for code/sql).
fn simple(cx: &Ctx, node: Node) -> Result<ActivityKind, BplError> {
    check_no_children(cx, node)?;
    Ok(ActivityKind::Simple)
}

/// `<xslt>` may hold a leading annotation and one `<parameters>` of `<parameter name= value=>`.
fn read_xslt_parameters(cx: &Ctx, node: Node) -> Result<(), BplError> {
    check_no_text(cx, node)?;
    let mut seen = false;
    for (i, c) in elements(node).enumerate() {
        match c.tag_name().name() {
            "annotation" if i == 0 => {}
            "parameters" if !seen => {
                seen = true;
                check_no_text(cx, c)?;
                for p in elements(c) {
                    if p.tag_name().name() != "parameter" {
                        return Err(cx.err(
                            p,
                            format!(
                                "unexpected <{}> inside <parameters>; expected <parameter>",
                                p.tag_name().name()
                            ),
                        ));
                    }
                    required(cx, p, "name")?;
                }
            }
            other => {
                return Err(cx.err(
                    c,
                    format!("unexpected <{other}> inside <xslt>; expected one <parameters>"),
                ))
            }
        }
    }
    Ok(())
}

fn check_no_children(cx: &Ctx, node: Node) -> Result<(), BplError> {
    check_no_text(cx, node)?;
    for (i, c) in elements(node).enumerate() {
        if i == 0 && c.tag_name().name() == "annotation" {
            continue;
        }
        return Err(cx.err(
            c,
            format!(
                "unexpected <{}> inside <{}>",
                c.tag_name().name(),
                node.tag_name().name()
            ),
        ));
    }
    Ok(())
}

fn read_call(cx: &mut Ctx, node: Node) -> Result<ActivityKind, BplError> {
    required(cx, node, "name")?;
    required(cx, node, "target")?;
    let async_attr = cx.attr(node, "async");
    match async_attr.as_deref() {
        None => return Err(cx.err(node, "<call> is missing the required attribute 'async' (use async=\"0\" or async=\"1\")")),
        Some("0" | "1" | "true" | "false") => {}
        Some(v) if matches!(v.trim(), "0" | "1" | "true" | "false") => {
            return Err(cx.err(node, format!("async=\"{v}\" is padded with whitespace; IRIS may read it either way (spec Open Q3): write it without spaces")))
        }
        Some(v) => return Err(cx.err(node, format!("async=\"{v}\" is not a boolean: use 0 or 1"))),
    }
    check_no_text(cx, node)?;
    let mut request = None;
    let mut response = None;
    for (i, c) in elements(node).enumerate() {
        match c.tag_name().name() {
            "annotation" if i == 0 => {}
            "request" if request.is_none() => request = Some(read_message(cx, c)?),
            "response" if request.is_some() && response.is_none() => response = Some(read_message(cx, c)?),
            other => return Err(cx.err(c, format!("unexpected <{other}> inside <call>; expected <request> then an optional <response>"))),
        }
    }
    if request.is_none() {
        return Err(cx.err(
            node,
            "<call> is missing its required <request type=…> element",
        ));
    }
    Ok(ActivityKind::Call {
        async_attr,
        request,
        response,
    })
}

fn read_message(cx: &mut Ctx, node: Node) -> Result<Message, BplError> {
    required(cx, node, "type")?;
    check_no_text(cx, node)?;
    let mut activities = Vec::with_capacity(elements(node).count());
    for (i, c) in elements(node).enumerate() {
        match c.tag_name().name() {
            "annotation" if i == 0 => {}
            "assign" | "code" | "trace" => activities.push(read_activity(cx, c)?),
            "empty" | "milestone" => {
                return Err(cx.err(
                    c,
                    format!("<{}> inside <{}> is not handled by the IRIS BPL parser (spec Open Q4): remove it", c.tag_name().name(), node.tag_name().name()),
                ))
            }
            other => {
                return Err(cx.err(c, format!("unexpected <{other}> inside <{}>; expected <assign>, <code> or <trace>", node.tag_name().name())))
            }
        }
    }
    Ok(MessageParts {
        pos: cx.pos(node),
        type_name: attr(node, "type").map(str::to_string),
        activities: activities.into_boxed_slice(),
    }
    .into())
}

fn read_if(cx: &mut Ctx, node: Node) -> Result<ActivityKind, BplError> {
    required(cx, node, "condition")?;
    check_no_text(cx, node)?;
    let mut true_branch = None;
    let mut false_branch = None;
    for (i, c) in elements(node).enumerate() {
        let slot = match c.tag_name().name() {
            "annotation" if i == 0 => continue,
            "true" => &mut true_branch,
            "false" => &mut false_branch,
            other => {
                return Err(cx.err(
                    c,
                    format!("unexpected <{other}> inside <if>; expected <true> and/or <false>"),
                ))
            }
        };
        if slot.is_some() {
            return Err(cx.err(
                c,
                format!("<if> has more than one <{}>", c.tag_name().name()),
            ));
        }
        let pos = cx.pos(c);
        *slot = Some(Branch {
            pos,
            activities: read_list(cx, c, &[])?.0,
        });
    }
    if true_branch.is_none() && false_branch.is_none() {
        return Err(cx.err(node, "<if> needs a <true> or a <false> branch"));
    }
    Ok(ActivityKind::If {
        true_branch,
        false_branch,
    })
}

fn read_switch(cx: &mut Ctx, node: Node) -> Result<ActivityKind, BplError> {
    check_no_text(cx, node)?;
    let mut cases = Vec::new();
    let mut default: Option<Case> = None;
    for (i, c) in elements(node).enumerate() {
        let local = c.tag_name().name();
        match local {
            "annotation" if i == 0 => continue,
            "case" | "default" => {
                if default.is_some() {
                    return Err(cx.err(c, format!("<{local}> after <default>: <default> must be the last child of <switch>")));
                }
                if let Some(first) = elements(c).next() {
                    if first.tag_name().name() == "annotation" {
                        return Err(cx.err(
                            first,
                            format!("<annotation> inside <{local}> aborts the IRIS compiler (spec 2.3, Q-17): move it to the <switch>"),
                        ));
                    }
                }
                let condition = if local == "case" {
                    Some(required(cx, c, "condition")?.to_string())
                } else {
                    None
                };
                let case = Case::from(CaseParts {
                    pos: cx.pos(c),
                    name: attr(c, "name").map(str::to_string),
                    condition,
                    activities: read_list(cx, c, &[])?.0,
                });
                if local == "case" {
                    cases.push(case);
                } else {
                    default = Some(case);
                }
            }
            other => {
                return Err(cx.err(
                    c,
                    format!("unexpected <{other}> inside <switch>; expected <case> or <default>"),
                ))
            }
        }
    }
    if cases.is_empty() {
        return Err(cx.err(node, "<switch> needs at least one <case>"));
    }
    cases.shrink_to_fit();
    Ok(ActivityKind::Switch { cases, default })
}

fn read_scope(cx: &mut Ctx, node: Node) -> Result<ActivityKind, BplError> {
    let (body, rest) = read_list(cx, node, &["compensationhandlers", "faulthandlers"])?;
    let mut compensation_handlers: Option<Box<[Activity]>> = None;
    let mut fault_handlers: Option<Box<[Activity]>> = None;
    for part in rest {
        match part.tag_name().name() {
            "compensationhandlers" if compensation_handlers.is_none() && fault_handlers.is_none() => {
                check_no_text(cx, part)?;
                let mut hs = Vec::new();
                for h in elements(part) {
                    if h.tag_name().name() != "compensationhandler" {
                        return Err(cx.err(h, format!("unexpected <{}> inside <compensationhandlers>", h.tag_name().name())));
                    }
                    hs.push(read_handler(cx, h)?);
                }
                compensation_handlers = Some(hs.into_boxed_slice());
            }
            "faulthandlers" if fault_handlers.is_none() => {
                check_no_text(cx, part)?;
                let mut hs = Vec::new();
                let mut seen_catchall = false;
                for h in elements(part) {
                    match h.tag_name().name() {
                        "catch" | "catchall" => {
                            // Spec 2.8 / Open Q14: schema-ambiguous orders are refused.
                            if seen_catchall {
                                return Err(cx.err(
                                    h,
                                    format!("<{}> after <catchall>: IRIS keeps only the last <catchall> (Q-16); put one <catchall> after every <catch>", h.tag_name().name()),
                                ));
                            }
                            seen_catchall = h.tag_name().name() == "catchall";
                            hs.push(read_handler(cx, h)?);
                        }
                        other => return Err(cx.err(h, format!("unexpected <{other}> inside <faulthandlers>; expected <catch> or <catchall>"))),
                    }
                }
                if hs.is_empty() {
                    return Err(cx.err(part, "<faulthandlers> needs at least one <catch> or <catchall>"));
                }
                fault_handlers = Some(hs.into_boxed_slice());
            }
            other => {
                return Err(cx.err(part, format!("unexpected <{other}> inside <scope>; expected activities, then <compensationhandlers>, then <faulthandlers>")))
            }
        }
    }
    let Some(fault_handlers) = fault_handlers else {
        return Err(cx.err(node, "<scope> is missing its mandatory <faulthandlers>"));
    };
    Ok(ActivityKind::Scope {
        body,
        compensation_handlers,
        fault_handlers,
    })
}

/// `<catch>`, `<catchall>`, `<compensationhandler>`: parsed like activities (spec 2.2).
fn read_handler(cx: &mut Ctx, node: Node) -> Result<Activity, BplError> {
    let id = cx.id();
    let pos = cx.pos(node);
    let disabled = parse_disabled(cx, node)?;
    let local = node.tag_name().name();
    let element = match local {
        "catch" => Element::Catch,
        "catchall" => Element::Catchall,
        _ => Element::CompensationHandler,
    };
    let attrs = kept_attrs(cx, node);
    let annotation = leading_annotation(node);
    let fault: Option<Box<str>> = attr(node, "fault").map(Into::into);
    if local == "catch" && fault.is_none() {
        return Err(cx.err(node, "<catch> is missing the required attribute 'fault'"));
    }
    let (body, _) = read_list(cx, node, &[])?;
    // <compensate> is allowed only as a direct child of catch/catchall (spec 2.8); <flow> not
    // directly in any handler.
    if let Some(bad) = body.iter().find(|a| a.element == Element::Flow) {
        return Err(BplError::at(
            cx.file,
            bad.pos,
            format!("<flow> is not allowed directly inside <{local}>: wrap it in a <sequence>"),
        ));
    }
    let kind = match element {
        Element::Catch => ActivityKind::Catch { fault, body },
        Element::Catchall => ActivityKind::Catchall { body },
        _ => ActivityKind::CompensationHandler { body },
    };
    Ok(Activity {
        id,
        element,
        name: attrs.get_shared("name").cloned(),
        disabled,
        pos,
        attrs,
        annotation,
        code: None,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Result<Process, BplError> {
        parse_process(&XmlSource {
            file: "t.xml",
            text: xml,
            range: 0..xml.len(),
        })
    }

    fn err(xml: &str) -> String {
        match parse(xml) {
            Ok(_) => panic!("should fail: {xml}"),
            Err(e) => e.to_string(),
        }
    }

    fn seq(inner: &str) -> String {
        format!("<process>\n<sequence>\n{inner}\n</sequence>\n</process>")
    }

    fn first(p: &Process) -> &Activity {
        match &p.sequence.kind {
            ActivityKind::Sequence { children } => &children[0],
            _ => unreachable!(),
        }
    }

    #[test]
    fn line_index_counts_characters_and_lines() {
        let t = "ab\r\nçd\n\n€x";
        let li = LineIndex::new(t);
        assert_eq!(li.pos(0), Pos { line: 1, column: 1 });
        assert_eq!(li.pos(2), Pos { line: 1, column: 3 }); // the '\r'
        assert_eq!(li.pos(4), Pos { line: 2, column: 1 });
        assert_eq!(li.pos(6), Pos { line: 2, column: 2 }); // after the two-byte ç
        assert_eq!(li.pos(8), Pos { line: 3, column: 1 }); // an empty line
        assert_eq!(li.pos(9), Pos { line: 4, column: 1 });
        assert_eq!(li.pos(12), Pos { line: 4, column: 2 }); // after the three-byte €
        assert_eq!(li.pos(999), Pos { line: 4, column: 3 }); // clamped to the end
        for off in [0, 2, 4, 6, 8, 9, 12, 13] {
            assert_eq!(li.offset(li.pos(off)), off, "offset {off}");
        }
        assert_eq!(li.offset(Pos { line: 9, column: 1 }), t.len());
        assert_eq!(
            li.offset(Pos {
                line: 1,
                column: 99
            }),
            4,
            "past the end of a line clamps to its end"
        );
    }

    #[test]
    fn positions_are_shifted_by_the_range() {
        let text = "Class X\n{\n  <process><sequence>\n<empty/></sequence></process>\n}";
        let start = text.find("<process").unwrap();
        let end = text.rfind("</process>").unwrap() + "</process>".len();
        let p = parse_process(&XmlSource {
            file: "x.cls",
            text,
            range: start..end,
        })
        .unwrap();
        assert_eq!(p.pos, Pos { line: 3, column: 3 });
        assert_eq!(
            p.sequence.pos,
            Pos {
                line: 3,
                column: 12
            }
        );
        assert_eq!(first(&p).pos, Pos { line: 4, column: 1 });
        // XML errors too, on the first line of the range and below.
        let bad = "ab <process><sequence><empty/></sequence></proc>";
        let e = parse_process(&XmlSource {
            file: "b",
            text: bad,
            range: 3..bad.len(),
        })
        .unwrap_err();
        assert_eq!(
            e.pos,
            Some(Pos {
                line: 1,
                column: 42
            })
        );
        assert!(
            parse_process(&XmlSource {
                file: "b",
                text: bad,
                range: 3..999
            })
            .is_err(),
            "a bad range is an error, not a panic"
        );
    }

    #[test]
    fn attributes_are_decoded_and_layout_is_dropped() {
        let p = parse(&seq(r#"<assign name="A &amp; B" property="context.x" value="&quot;a&lt;b&quot; &#x263A;&#65;" xpos="1" ypos="2" xend="3" yend="4"/>"#)).unwrap();
        let a = first(&p);
        assert_eq!(a.name.as_deref(), Some("A & B"));
        assert_eq!(a.attrs.get("value"), Some("\"a<b\" \u{263A}A"));
        assert_eq!(
            a.attrs.keys().collect::<Vec<_>>(),
            ["name", "property", "value"]
        );
        assert_eq!(a.label(), "assign \"A & B\"");
    }

    #[test]
    fn labels_escape_what_could_forge_or_reorder_a_line() {
        let p = parse(&seq(
            r#"<assign name="X&#10;DROP TABLE t; --&#x9B;2J&#x202E;" property="context.x" value="1"/>"#,
        ))
        .unwrap();
        let a = first(&p);
        assert_eq!(
            a.name.as_deref(),
            Some("X\nDROP TABLE t; --\u{9b}2J\u{202e}")
        );
        assert_eq!(a.label(), r#"assign "X\nDROP TABLE t; --\u{9b}2J\u{202e}""#);
        // The reference states, deltas and plans carry labels the same way.
        assert_eq!(crate::states::ActivityRef::of(a).label(), a.label());
    }

    #[test]
    fn disabled_is_exactly_true_or_1() {
        for (v, want) in [("true", true), ("1", true), ("false", false), ("0", false)] {
            let p = parse(&seq(&format!("<empty disabled=\"{v}\"/>"))).unwrap();
            assert_eq!(first(&p).disabled, want, "disabled={v}");
        }
        assert!(!first(&parse(&seq("<empty/>")).unwrap()).disabled);
        assert!(err(&seq("<empty disabled=\" 1\"/>")).contains("padded with whitespace"));
        assert!(err(&seq("<empty disabled=\"TRUE\"/>")).contains("is not a boolean"));
        // `disabled` on a non-activity element is ignored (spec 2.4).
        let p = parse(&seq(
            "<if condition='1'><true disabled='maybe'><empty/></true></if>",
        ))
        .unwrap();
        assert!(!first(&p).disabled);
    }

    #[test]
    fn annotations_comments_and_processing_instructions() {
        let xml = seq("<!-- c --><?pi x?><while condition='1'><annotation>  loop\n  </annotation><!-- c --><empty/></while>");
        let p = parse(&xml).unwrap();
        let w = first(&p);
        assert_eq!(w.annotation.as_deref(), Some("loop"));
        let ActivityKind::While { body } = &w.kind else {
            panic!()
        };
        assert_eq!(body.len(), 1);
        assert!(
            err(&seq("<while condition='1'><empty/><annotation/></while>"))
                .contains("must be the first child")
        );
    }

    #[test]
    fn structure_of_compound_activities() {
        let xml = seq(
            "<if condition='1'><false><empty/></false><true/></if>
<switch><case condition='1' name='One'/><default><empty/></default></switch>
<scope><empty/><compensationhandlers/><faulthandlers><catch fault='\"E\"'><compensate target='X'/></catch><catchall/></faulthandlers></scope>
<call name='C' target='T' async='0'><annotation>a</annotation><request type='R'><code><![CDATA[ x ]]></code></request><response type='S'/></call>
<xslt xslurl='u' source='s' target='t'><parameters><parameter name='p' value='v'/></parameters></xslt>",
        );
        let p = parse(&xml).unwrap();
        let ActivityKind::Sequence { children } = &p.sequence.kind else {
            panic!()
        };
        let ActivityKind::If {
            true_branch,
            false_branch,
        } = &children[0].kind
        else {
            panic!()
        };
        assert!(true_branch.as_ref().unwrap().activities.is_empty());
        assert_eq!(false_branch.as_ref().unwrap().activities.len(), 1);
        let ActivityKind::Switch { cases, default } = &children[1].kind else {
            panic!()
        };
        assert_eq!(
            (cases.len(), cases[0].name.as_deref(), default.is_some()),
            (1, Some("One"), true)
        );
        let ActivityKind::Scope {
            compensation_handlers,
            fault_handlers,
            ..
        } = &children[2].kind
        else {
            panic!()
        };
        assert_eq!(compensation_handlers.as_ref().map(|h| h.len()), Some(0));
        assert_eq!(
            fault_handlers
                .iter()
                .map(|h| h.element.as_str())
                .collect::<Vec<_>>(),
            ["catch", "catchall"]
        );
        let ActivityKind::Call {
            async_attr,
            request,
            response,
        } = &children[3].kind
        else {
            panic!()
        };
        assert_eq!(async_attr.as_deref(), Some("0"));
        assert_eq!(request.as_ref().unwrap().activities.len(), 1);
        assert_eq!(response.as_ref().unwrap().type_name.as_deref(), Some("S"));
        assert_eq!(children[3].annotation.as_deref(), Some("a"));
        // Ids are dense and pre-order.
        assert_eq!(p.flat.len(), p.activities().len());
        assert!(p
            .activities()
            .iter()
            .enumerate()
            .all(|(i, a)| a.id.0 as usize == i));
    }

    #[test]
    fn required_attributes() {
        for (xml, missing) in [
            (
                "<trace/>",
                "<trace> is missing the required attribute 'value'",
            ),
            (
                "<transform class='c' source='s'/>",
                "<transform> is missing the required attribute 'target'",
            ),
            (
                "<xpath source='s' property='p' context='c'/>",
                "<xpath> is missing the required attribute 'expression'",
            ),
            (
                "<xslt source='s' target='t'/>",
                "<xslt> is missing the required attribute 'xslurl'",
            ),
            (
                "<rule name='r'/>",
                "<rule> is missing the required attribute 'rule'",
            ),
            (
                "<sync/>",
                "<sync> is missing the required attribute 'calls'",
            ),
            (
                "<branch/>",
                "<branch> is missing the required attribute 'label'",
            ),
            (
                "<call target='t' async='1'><request type='r'/></call>",
                "<call> is missing the required attribute 'name'",
            ),
            (
                "<delay/>",
                "<delay> needs a 'duration' or an 'until' attribute",
            ),
        ] {
            assert!(
                err(&seq(xml)).ends_with(missing),
                "{xml}: {}",
                err(&seq(xml))
            );
        }
        // Optional attributes IRIS accepts are never refused.
        parse(&seq("<assign property='p' value='v' action='append' key='k' LanguageOverride='python'/><reply/><receive/><milestone value='1'/><alert value='1'/><throw fault='1'/><label name='L'/><branch label='L' condition='1'/>")).unwrap();
    }

    #[test]
    fn code_holds_text_but_no_elements() {
        parse(&seq(
            "<code><annotation>a</annotation><![CDATA[ if a<b { } ]]></code><sql> SELECT 1 </sql>",
        ))
        .unwrap();
        assert!(err(&seq("<code><empty/></code>")).contains("unexpected <empty> inside <code>"));
    }

    #[test]
    fn stray_text_is_located_at_its_first_character() {
        assert_eq!(
            err("<process>\n<sequence>\n<empty/>\n    oops\n</sequence>\n</process>"),
            "t.xml:4:5: unexpected text inside <sequence>; expected only elements (code belongs in <code> or <sql>)"
        );
        assert!(
            err("<process>text<sequence/></process>").contains("unexpected text inside <process>")
        );
    }

    #[test]
    fn truncated_xml_is_reported_at_the_end() {
        assert_eq!(
            err("<process>\n<sequence>\n<empty/>"),
            "t.xml:3:9: malformed XML: the input ends before every element is closed; is the file truncated?"
        );
        assert!(err("").contains("malformed XML"));
        assert!(err("<!DOCTYPE x [<!ENTITY e 'x'>]><process/>").contains("malformed XML"));
    }

    #[test]
    fn malformed_code_gets_a_cdata_hint() {
        assert!(
            err(&seq("<code> if a<b { } </code>")).ends_with("must be wrapped in <![CDATA[ … ]]>")
        );
        assert!(!err(&seq("<empty></emptyy>")).contains("CDATA"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let n = (MAX_NESTING + 5) as usize;
        let xml = format!(
            "<process>{}{}</process>",
            "<sequence>".repeat(n),
            "</sequence>".repeat(n)
        );
        assert!(err(&xml).contains("nested more than"));
        let ok = format!(
            "<process>{}{}</process>",
            "<sequence>".repeat(50),
            "</sequence>".repeat(50)
        );
        assert_eq!(parse(&ok).unwrap().flat.len(), 50);
    }

    #[test]
    fn the_root_must_be_a_process() {
        assert_eq!(
            err("<sequence/>"),
            "t.xml:1:1: expected a <process> element, found <sequence>"
        );
    }
}
