//! `<process>` XML → typed activity tree (spec section 2).
//!
//! The input is the *whole original file* plus the byte range holding the `<process>`
//! document, so every position reported is a position in the file the user has open.

use super::model::*;
use super::BplError;
use roxmltree::{Node, NodeType};
use std::collections::BTreeMap;
use std::ops::Range;

/// The 30 activity element names of spec 2.2.
pub const ACTIVITY_ELEMENTS: [&str; 30] = [
    "alert", "assign", "branch", "break", "call", "code", "compensate", "continue", "delay", "empty", "flow", "foreach", "if", "label",
    "milestone", "receive", "reply", "rule", "scope", "sequence", "sql", "switch", "sync", "throw", "trace", "transform", "until",
    "while", "xpath", "xslt",
];

/// Attributes that only place the activity on the graphical canvas.
const LAYOUT_ATTRS: [&str; 4] = ["xpos", "ypos", "xend", "yend"];

/// Maps byte offsets of the original file to 1-based line/column (columns count characters).
pub struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut line_starts = vec![0];
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                line_starts.push(i + 1);
            }
        }
        LineIndex { text, line_starts }
    }
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self.text.get(start..offset).map(|s| s.chars().count()).unwrap_or(offset - start);
        Pos { line: line as u32 + 1, column: col as u32 + 1 }
    }

    /// The inverse of `pos`: the byte offset of a 1-based line/column. Out-of-range lines
    /// clamp to the end of the text, out-of-range columns to the end of their line.
    pub fn offset(&self, pos: Pos) -> usize {
        let Some(&start) = self.line_starts.get((pos.line.max(1) - 1) as usize) else {
            return self.text.len();
        };
        let end = self.line_starts.get(pos.line as usize).copied().unwrap_or(self.text.len());
        let line = self.text.get(start..end).unwrap_or("");
        let skip = (pos.column.max(1) - 1) as usize;
        start + line.char_indices().nth(skip).map(|(i, _)| i).unwrap_or(line.len())
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

struct Ctx<'a> {
    file: &'a str,
    base: usize,
    lines: LineIndex<'a>,
    next_id: u32,
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
}

/// Parse the `<process>` document at `src.range` of `src.text`.
pub fn parse_process(src: &XmlSource) -> Result<Process, BplError> {
    let lines = LineIndex::new(src.text);
    let Some(xml) = src.text.get(src.range.clone()) else {
        return Err(BplError::file(src.file, format!("internal error: byte range {:?} is not inside the file", src.range)));
    };
    let doc = parse_xml(src.file, &lines, src.range.start, xml)?;
    let mut cx = Ctx { file: src.file, base: src.range.start, lines, next_id: 0 };
    let root = doc.root_element();
    if root.tag_name().name() != "process" {
        return Err(cx.err(root, format!("expected a <process> element, found <{}>", root.tag_name().name())));
    }
    read_process(&mut cx, root)
}

/// Parse `xml`, which starts at byte `base` of the file `lines` indexes, reporting XML
/// errors at their position in the file.
pub(crate) fn parse_xml<'x>(file: &str, lines: &LineIndex, base: usize, xml: &'x str) -> Result<roxmltree::Document<'x>, BplError> {
    use roxmltree::Error as E;
    let opts = roxmltree::ParsingOptions { allow_dtd: false, ..Default::default() };
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

/// Whether `offset` lies inside a `<code>` or `<sql>` element whose text is not in CDATA:
/// the usual cause of a malformed BPL.
fn inside_unwrapped_code(xml: &str, offset: usize) -> bool {
    let before = xml.get(..offset).unwrap_or(xml);
    let open = ["<code>", "<code ", "<sql>", "<sql "].iter().filter_map(|t| before.rfind(t)).max();
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
    node.children().filter(|c| c.node_type() == NodeType::Element)
}

fn name_of(node: Node) -> &'static str {
    // Elements are unqualified (spec 2.1): match by local name.
    let n = node.tag_name().name();
    ACTIVITY_ELEMENTS.iter().copied().find(|x| *x == n).unwrap_or("")
}

fn attr<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    node.attributes().find(|a| a.name() == name).map(|a| a.value())
}

fn required<'a>(cx: &Ctx, node: Node<'a, '_>, name: &str) -> Result<&'a str, BplError> {
    attr(node, name).ok_or_else(|| cx.err(node, format!("<{}> is missing the required attribute '{}'", node.tag_name().name(), name)))
}

/// Reject stray text: BPL elements hold only elements (and whitespace/comments), except
/// `<code>`, `<sql>` and `<annotation>`.
fn check_no_text(cx: &Ctx, node: Node) -> Result<(), BplError> {
    for c in node.children() {
        if c.is_text() && !c.text().unwrap_or("").trim().is_empty() {
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
                    return Err(cx.err(child, "<process> has more than one <context>; merge their properties into one"));
                }
                seen_context = true;
                check_no_text(cx, child)?;
                for p in elements(child) {
                    match p.tag_name().name() {
                        "property" => {}
                        "annotation" => continue,
                        other => {
                            return Err(cx.err(p, format!("unexpected <{other}> inside <context>; expected <property>")));
                        }
                    }
                    check_no_text(cx, p)?;
                    context.push(ContextProperty {
                        name: required(cx, p, "name")?.to_string(),
                        type_name: attr(p, "type").map(str::to_string),
                        initial_expression: attr(p, "initialexpression").map(str::to_string),
                        pos: cx.pos(p),
                    });
                }
            }
            "sequence" => sequences.push(child),
            "annotation" | "pyFromImport" => {}
            other => {
                return Err(cx.err(child, format!("unexpected <{other}> inside <process>; expected <context> or <sequence>")));
            }
        }
    }
    let Some(last) = sequences.last().copied() else {
        return Err(cx.err(node, "<process> has no <sequence>: IRIS refuses to compile it (spec 2.12)"));
    };
    // Earlier top-level sequences are never compiled but IRIS still validates them
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
    p.index();
    Ok(p)
}

/// Read an activity list: the element children of `node`, skipping a leading `<annotation>`.
/// `stop_at` names the non-activity elements that legitimately end the list (scope parts).
/// Returns the activities and the remaining element nodes.
fn read_list<'a, 'i>(cx: &mut Ctx, node: Node<'a, 'i>, stop_at: &[&str]) -> Result<(Vec<Activity>, Vec<Node<'a, 'i>>), BplError> {
    check_no_text_except_code(cx, node)?;
    let mut out = Vec::new();
    let mut rest = Vec::new();
    let mut first = true;
    let mut stopped = false;
    for child in elements(node) {
        let local = child.tag_name().name();
        if first && local == "annotation" {
            first = false;
            continue;
        }
        first = false;
        if stopped {
            rest.push(child);
            continue;
        }
        if local == "compensate" && !matches!(node.tag_name().name(), "catch" | "catchall") {
            return Err(cx.err(
                child,
                format!("<compensate> is allowed only directly inside <catch> or <catchall>, not inside <{}> (spec 2.8)", node.tag_name().name()),
            ));
        }
        if !name_of(child).is_empty() {
            out.push(read_activity(cx, child)?);
        } else if stop_at.contains(&local) {
            stopped = true;
            rest.push(child);
        } else if local == "annotation" {
            return Err(cx.err(child, format!("<annotation> must be the first child of <{}>", node.tag_name().name())));
        } else {
            return Err(cx.err(child, format!("unknown element <{local}> inside <{}>; expected an activity", node.tag_name().name())));
        }
    }
    Ok((out, rest))
}

fn check_no_text_except_code(cx: &Ctx, node: Node) -> Result<(), BplError> {
    check_no_text(cx, node)
}

fn leading_annotation(node: Node) -> Option<String> {
    let first = elements(node).next()?;
    (first.tag_name().name() == "annotation").then(|| first.text().unwrap_or("").trim().to_string())
}

fn read_activity(cx: &mut Ctx, node: Node) -> Result<Activity, BplError> {
    let element = name_of(node);
    let local = node.tag_name().name();
    let id = cx.id();
    let pos = cx.pos(node);
    let disabled = parse_disabled(cx, node)?;
    let attrs: BTreeMap<String, String> =
        node.attributes().filter(|a| !LAYOUT_ATTRS.contains(&a.name())).map(|a| (a.name().to_string(), a.value().to_string())).collect();
    let name = attr(node, "name").map(str::to_string);
    let annotation = leading_annotation(node);
    let element = if element.is_empty() { local } else { element };
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
                        format!("unexpected <{}> inside <{local}>; wrap code that contains '<' in <![CDATA[ … ]]>", c.tag_name().name()),
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
        "sequence" => ActivityKind::Sequence { children: read_list(cx, node, &[])?.0 },
        "call" => read_call(cx, node)?,
        "sync" => {
            required(cx, node, "calls")?;
            let any = match attr(node, "type") {
                None | Some("all") => false,
                Some("any") => true,
                Some(v) => return Err(cx.err(node, format!("<sync type=\"{v}\"> is not valid: use all or any"))),
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
        "if" => read_if(cx, node)?,
        "switch" => read_switch(cx, node)?,
        "while" | "until" => {
            required(cx, node, "condition")?;
            let body = read_list(cx, node, &[])?.0;
            if element == "while" {
                ActivityKind::While { body }
            } else {
                ActivityKind::Until { body }
            }
        }
        "foreach" => {
            required(cx, node, "property")?;
            required(cx, node, "key")?;
            ActivityKind::Foreach { body: read_list(cx, node, &[])?.0 }
        }
        "break" => {
            check_no_children(cx, node)?;
            ActivityKind::Break
        }
        "continue" => {
            check_no_children(cx, node)?;
            ActivityKind::Continue
        }
        "scope" => read_scope(cx, node)?,
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
        "flow" => {
            let (children, _) = read_list(cx, node, &[])?;
            if let Some(bad) = children.iter().find(|c| c.element != "sequence") {
                return Err(BplError::at(cx.file, bad.pos, format!("<flow> may only contain <sequence> children, found <{}>", bad.element)));
            }
            ActivityKind::Flow { children }
        }
        other => return Err(cx.err(node, format!("unknown activity <{other}>"))),
    };
    Ok(Activity { id, element: element.to_string(), name, disabled, pos, attrs, annotation, kind })
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
                        return Err(cx.err(p, format!("unexpected <{}> inside <parameters>; expected <parameter>", p.tag_name().name())));
                    }
                    required(cx, p, "name")?;
                }
            }
            other => return Err(cx.err(c, format!("unexpected <{other}> inside <xslt>; expected one <parameters>"))),
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
        return Err(cx.err(c, format!("unexpected <{}> inside <{}>", c.tag_name().name(), node.tag_name().name())));
    }
    Ok(())
}

fn read_call(cx: &mut Ctx, node: Node) -> Result<ActivityKind, BplError> {
    required(cx, node, "name")?;
    required(cx, node, "target")?;
    let async_attr = attr(node, "async").map(str::to_string);
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
        return Err(cx.err(node, "<call> is missing its required <request type=…> element"));
    }
    Ok(ActivityKind::Call { async_attr, request, response })
}

fn read_message(cx: &mut Ctx, node: Node) -> Result<Message, BplError> {
    required(cx, node, "type")?;
    check_no_text(cx, node)?;
    let mut activities = Vec::new();
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
    Ok(Message { pos: cx.pos(node), type_name: attr(node, "type").map(str::to_string), activities })
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
            other => return Err(cx.err(c, format!("unexpected <{other}> inside <if>; expected <true> and/or <false>"))),
        };
        if slot.is_some() {
            return Err(cx.err(c, format!("<if> has more than one <{}>", c.tag_name().name())));
        }
        let pos = cx.pos(c);
        *slot = Some(Branch { pos, activities: read_list(cx, c, &[])?.0 });
    }
    if true_branch.is_none() && false_branch.is_none() {
        return Err(cx.err(node, "<if> needs a <true> or a <false> branch"));
    }
    Ok(ActivityKind::If { true_branch, false_branch })
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
                let condition = if local == "case" { Some(required(cx, c, "condition")?.to_string()) } else { None };
                let case = Case { pos: cx.pos(c), name: attr(c, "name").map(str::to_string), condition, activities: read_list(cx, c, &[])?.0 };
                if local == "case" {
                    cases.push(case);
                } else {
                    default = Some(case);
                }
            }
            other => return Err(cx.err(c, format!("unexpected <{other}> inside <switch>; expected <case> or <default>"))),
        }
    }
    if cases.is_empty() {
        return Err(cx.err(node, "<switch> needs at least one <case>"));
    }
    Ok(ActivityKind::Switch { cases, default })
}

fn read_scope(cx: &mut Ctx, node: Node) -> Result<ActivityKind, BplError> {
    let (body, rest) = read_list(cx, node, &["compensationhandlers", "faulthandlers"])?;
    let mut compensation_handlers: Option<Vec<Activity>> = None;
    let mut fault_handlers: Option<Vec<Activity>> = None;
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
                compensation_handlers = Some(hs);
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
                fault_handlers = Some(hs);
            }
            other => {
                return Err(cx.err(part, format!("unexpected <{other}> inside <scope>; expected activities, then <compensationhandlers>, then <faulthandlers>")))
            }
        }
    }
    let Some(fault_handlers) = fault_handlers else {
        return Err(cx.err(node, "<scope> is missing its mandatory <faulthandlers>"));
    };
    Ok(ActivityKind::Scope { body, compensation_handlers, fault_handlers })
}

/// `<catch>`, `<catchall>`, `<compensationhandler>`: parsed like activities (spec 2.2).
fn read_handler(cx: &mut Ctx, node: Node) -> Result<Activity, BplError> {
    let id = cx.id();
    let pos = cx.pos(node);
    let disabled = parse_disabled(cx, node)?;
    let local = node.tag_name().name();
    let attrs = node.attributes().filter(|a| !LAYOUT_ATTRS.contains(&a.name())).map(|a| (a.name().to_string(), a.value().to_string())).collect();
    let annotation = leading_annotation(node);
    let fault = attr(node, "fault").map(str::to_string);
    if local == "catch" && fault.is_none() {
        return Err(cx.err(node, "<catch> is missing the required attribute 'fault'"));
    }
    let (body, _) = read_list(cx, node, &[])?;
    // <compensate> is allowed only as a direct child of catch/catchall (spec 2.8); <flow> not
    // directly in any handler.
    if let Some(bad) = body.iter().find(|a| a.element == "flow") {
        return Err(BplError::at(cx.file, bad.pos, format!("<flow> is not allowed directly inside <{local}>: wrap it in a <sequence>")));
    }
    let kind = match local {
        "catch" => ActivityKind::Catch { fault, body },
        "catchall" => ActivityKind::Catchall { body },
        _ => ActivityKind::CompensationHandler { body },
    };
    Ok(Activity { id, element: local.to_string(), name: attr(node, "name").map(str::to_string), disabled, pos, attrs, annotation, kind })
}
