//! Loaders: read a BPL from a path or from `REV:path` in git, detect its format by content
//! (never by extension), find the `<process>` document inside it and hand that byte range of
//! the *original* text to [`parse::parse_process`], so every position points into the file
//! the user has open.
//!
//! Formats:
//! * **UDL class file**: `Class Pkg.Name Extends … [ … ] { … XData BPL [ … ] { <process …> } … }`,
//!   read with the ObjectScript/UDL grammar ([`crate::udl`]): the class name is validated, the
//!   class must be well formed up to its closing `}` (code inside methods is not checked).
//!   The class name comes from the header. Comments (`///`, `//`, `#;`, `/* */`) and
//!   `Include`/`Import` lines may precede it. The `XData` keyword is matched without regard
//!   to case, the block name must be exactly `BPL`. The end of the `<process>` element is
//!   found by an XML token scan (comments, CDATA and quoted attribute values are skipped), so
//!   a `}` or a `</process>` inside a `<code>` block does not end it early.
//! * **Studio / `$System.OBJ.Export` XML**: `<Export><Class name=…><XData name="BPL"><Data>`.
//!   The class is the one with an `XData` named `BPL`; when several classes have one,
//!   [`LoadOptions::class`] must name it. When `<Data>` holds a single CDATA section its
//!   content is parsed in place. Otherwise (entity-escaped text, or CDATA split around a
//!   `]]>`) the content is decoded and parsed from the decoded copy, and every position is
//!   mapped back through a byte map of the decoding, so positions are still exact: a
//!   position inside an entity reference points at its `&`.
//! * **Bare document** whose root element is `<process>` (an `<?xml ?>` prolog, comments and
//!   processing instructions are fine). The class name is [`LoadOptions::class`], else the
//!   file stem (`Demo.Loan.xml` → `Demo.Loan`).
//!
//! Text: input must be UTF-8. A UTF-8 byte-order mark is dropped; line 1 column 1 is the
//! first character after it. Lines end at `\n` (so CRLF files count lines as editors do);
//! columns count characters from 1. The SHA-256 in [`SourceInfo`] covers the raw bytes,
//! BOM included.
//!
//! `REV:path` reads the blob with `git cat-file blob REV:path` (the raw committed bytes,
//! a `REV` starting with `-` refused,
//! like `git show REV:path` for a file, but refusing a directory) run in the current
//! directory (or the directory given to [`load_in`]). As in git, `path` is relative to the
//! repository root; write `REV:./path` for a path relative to the current directory. A
//! source that names an existing file is always read as a file, so `a:b.cls` on disk wins
//! over revision `a`; a one-letter "revision" followed by `\` or `/` is a Windows drive.

use super::parse::{self, LineIndex, XmlSource};
use super::{sha256_hex, Bpl, BplError, Pos, Process, SourceFormat, SourceInfo};
use crate::udl;
use roxmltree::Node;
use std::ops::Range;
use std::path::Path;

/// Options for [`load`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The BPL class to read. Picks one of several BPL classes in an export; names the class
    /// of a bare `<process>` document (default: the file stem); when given for a UDL file or
    /// a single-class export it must match the class found there.
    pub class: Option<String>,
}

/// Load a BPL from `source`: a path, or `REV:path` read from the git repository around the
/// current directory. See the module documentation for the formats and the rules.
pub fn load(source: &str, options: &LoadOptions) -> Result<Bpl, BplError> {
    load_in(Path::new("."), source, options)
}

/// [`load`], with relative paths and git resolved from `dir` instead of the current directory.
/// Messages still name the source exactly as given.
pub fn load_in(dir: &Path, source: &str, options: &LoadOptions) -> Result<Bpl, BplError> {
    let (bytes, path) = match classify_source(dir, source) {
        SourceRef::File(path) => (read_file(source, &dir.join(path))?, path),
        SourceRef::Git { rev, path } => (read_git(source, dir, rev, path)?, path),
    };
    load_bytes_with_stem(source, &bytes, options, &file_stem(path))
}

/// Load a BPL from bytes already in memory. `origin` names them in messages and in
/// [`SourceInfo::origin`]; the default class name of a bare document is its file stem (for
/// `REV:path`, the stem of `path`).
pub fn load_bytes(origin: &str, bytes: &[u8], options: &LoadOptions) -> Result<Bpl, BplError> {
    let path = origin
        .rsplit_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
        .unwrap_or(origin);
    load_bytes_with_stem(origin, bytes, options, &file_stem(path))
}

enum SourceRef<'a> {
    File(&'a str),
    Git { rev: &'a str, path: &'a str },
}

fn classify_source<'a>(dir: &Path, source: &'a str) -> SourceRef<'a> {
    if dir.join(source).exists() {
        return SourceRef::File(source);
    }
    if let Some((rev, path)) = source.split_once(':') {
        let drive = rev.len() == 1
            && rev.as_bytes()[0].is_ascii_alphabetic()
            && (path.starts_with('\\') || path.starts_with('/'));
        if !rev.is_empty() && !path.is_empty() && !drive {
            return SourceRef::Git { rev, path };
        }
    }
    SourceRef::File(source)
}

fn file_stem(path: &str) -> String {
    Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

fn read_file(origin: &str, path: &Path) -> Result<Vec<u8>, BplError> {
    crate::input::read(path, crate::input::Kind::Bpl)
        .map_err(|e| BplError::file(origin, e.reason()))
}

fn read_git(origin: &str, dir: &Path, rev: &str, path: &str) -> Result<Vec<u8>, BplError> {
    crate::input::read_git(dir, rev, path, crate::input::Kind::Bpl)
        .map_err(|e| BplError::file(origin, e.reason()))
}

fn load_bytes_with_stem(
    origin: &str,
    bytes: &[u8],
    options: &LoadOptions,
    stem: &str,
) -> Result<Bpl, BplError> {
    let sha256 = sha256_hex(bytes);
    let text = udl::normalize_line_breaks(decode_utf8(origin, bytes)?);
    let (class_name, format, process) = read_text(origin, &text, options, stem)?;
    // A name the file or `--class` gives that is not a class name is refused, never cut: it
    // names the tables the SQL rewrites. (The readers locate the ones they can.) A bare
    // document's default name, its file stem, is only checked where SQL is made from it.
    let from_stem = format == SourceFormat::Bare && options.class.is_none();
    if !from_stem {
        if let Err(why) = super::check_class_name(&class_name) {
            return Err(BplError::file(origin, why));
        }
    }
    Ok(Bpl {
        class_name,
        class_from_file_name: from_stem,
        source: SourceInfo {
            origin: origin.to_string(),
            sha256,
            format,
        },
        process,
    })
}

/// The text of the file without its UTF-8 byte-order mark.
fn decode_utf8<'b>(origin: &str, bytes: &'b [u8]) -> Result<&'b str, BplError> {
    if let Some(encoding) = crate::input::sniff_encoding(bytes) {
        return Err(BplError::at(
            origin,
            Pos { line: 1, column: 1 },
            crate::input::encoding_message(encoding),
        ));
    }
    let body = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    std::str::from_utf8(body).map_err(|e| {
        let good = e.valid_up_to();
        let prefix = std::str::from_utf8(&body[..good]).unwrap_or("");
        let byte = body.get(good).copied().unwrap_or(0);
        BplError::at(
            origin,
            LineIndex::new(prefix).pos(good),
            format!("invalid UTF-8 (byte 0x{byte:02X}); bplmigrate reads UTF-8 only: convert the file (e.g. iconv -f latin1 -t utf-8)"),
        )
    })
}

fn at(file: &str, text: &str, offset: usize, msg: impl Into<String>) -> BplError {
    BplError::at(file, LineIndex::new(text).pos(offset), msg)
}

fn read_text(
    file: &str,
    t: &str,
    options: &LoadOptions,
    stem: &str,
) -> Result<(String, SourceFormat, Process), BplError> {
    let first = skip_ws(t, 0);
    if first >= t.len() {
        return Err(BplError::at(
            file,
            Pos { line: 1, column: 1 },
            "the file is empty; expected a UDL class (Class Pkg.Name Extends Ens.BusinessProcessBPL { … }), an <Export> XML file or a <process> document",
        ));
    }
    if t.as_bytes()[first] == b'<' {
        let scan = scan_xml(t, first);
        if scan.root.as_ref().is_some_and(|(_, name)| name == "Export") {
            return read_export(file, t, options);
        }
        let class = options.class.clone().unwrap_or_else(|| stem.to_string());
        let process = parse::parse_process(&XmlSource {
            file,
            text: t,
            range: first..t.len(),
        })?;
        return Ok((class, SourceFormat::Bare, process));
    }
    if let Some(class) = udl::read_class(file, t)? {
        return read_udl(file, t, options, class);
    }
    Err(at(
        file,
        t,
        first,
        "cannot tell what this file is: expected a UDL class (Class Pkg.Name Extends …), an <Export> XML file or a <process> document",
    ))
}

// ---------------------------------------------------------------------------------------
// Lexical helpers (byte-oriented; every delimiter is ASCII, so offsets stay on char
// boundaries in UTF-8 text).

fn skip_ws(t: &str, mut i: usize) -> usize {
    let b = t.as_bytes();
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn find_from(t: &str, from: usize, pat: &str) -> Option<usize> {
    t.get(from..)?.find(pat).map(|k| from + k)
}

fn starts_at(t: &str, i: usize, pat: &str) -> bool {
    t.as_bytes()
        .get(i..)
        .is_some_and(|s| s.starts_with(pat.as_bytes()))
}

// ---------------------------------------------------------------------------------------
// XML token scan

/// The root element of an XML document found by a lenient token scan.
struct XmlScan {
    /// Offset of `<` and local name of the root element.
    root: Option<(usize, String)>,
    /// Offset just past the root element's end tag (None when the input ends first).
    end: Option<usize>,
}

/// Find the root element of the XML document at `start`: skip the prolog, then count start
/// and end tags, skipping comments, CDATA sections, processing instructions and quoted
/// attribute values. Tag names are not checked: `roxmltree` reports mismatches afterwards.
fn scan_xml(t: &str, start: usize) -> XmlScan {
    let b = t.as_bytes();
    let none = XmlScan {
        root: None,
        end: None,
    };
    let mut i = start;
    loop {
        i = skip_ws(t, i);
        let skip_to = if starts_at(t, i, "<?") {
            find_from(t, i + 2, "?>").map(|j| j + 2)
        } else if starts_at(t, i, "<!--") {
            find_from(t, i + 4, "-->").map(|j| j + 3)
        } else if starts_at(t, i, "<!") {
            find_from(t, i + 2, ">").map(|j| j + 1)
        } else {
            break;
        };
        match skip_to {
            Some(j) => i = j,
            None => return none,
        }
    }
    if b.get(i) != Some(&b'<') {
        return none;
    }
    let name_start = i + 1;
    let mut name_end = name_start;
    while name_end < b.len()
        && !b[name_end].is_ascii_whitespace()
        && !matches!(b[name_end], b'>' | b'/')
    {
        name_end += 1;
    }
    let qname = &t[name_start..name_end];
    let local = qname
        .rsplit_once(':')
        .map(|(_, l)| l)
        .unwrap_or(qname)
        .to_string();
    let root = Some((i, local));
    let mut depth: i64 = 0;
    let mut j = i;
    loop {
        let Some(lt) = find_from(t, j, "<") else {
            return XmlScan { root, end: None };
        };
        let next = if starts_at(t, lt, "<!--") {
            find_from(t, lt + 4, "-->").map(|k| k + 3)
        } else if starts_at(t, lt, "<![CDATA[") {
            find_from(t, lt + 9, "]]>").map(|k| k + 3)
        } else if starts_at(t, lt, "<?") {
            find_from(t, lt + 2, "?>").map(|k| k + 2)
        } else if starts_at(t, lt, "<!") {
            find_from(t, lt + 2, ">").map(|k| k + 1)
        } else if starts_at(t, lt, "</") {
            let k = find_from(t, lt + 2, ">").map(|k| k + 1);
            if let Some(k) = k {
                depth -= 1;
                if depth <= 0 {
                    return XmlScan { root, end: Some(k) };
                }
            }
            k
        } else {
            let k = tag_end(b, lt + 1, b.len());
            if k >= b.len() {
                None
            } else if b[k - 1] == b'/' {
                if depth == 0 {
                    return XmlScan {
                        root,
                        end: Some(k + 1),
                    };
                }
                Some(k + 1)
            } else {
                depth += 1;
                Some(k + 1)
            }
        };
        match next {
            Some(k) => j = k,
            None => return XmlScan { root, end: None },
        }
    }
}

// ---------------------------------------------------------------------------------------
// UDL class files

fn read_udl(
    file: &str,
    t: &str,
    options: &LoadOptions,
    c: udl::UdlClass,
) -> Result<(String, SourceFormat, Process), BplError> {
    let class = c.name.as_str();
    if let Some(want) = &options.class {
        if want != class {
            return Err(at(
                file,
                t,
                c.name_range.start,
                format!("this file defines class {class}, not the requested class {want}"),
            ));
        }
    }
    // The member `XData BPL` (the grammar matches the keyword without regard to case; the
    // block name must be exactly `BPL`).
    let Some((_, open)) = c.xdata_opens.iter().find(|(name, _)| name == "BPL") else {
        if let Some(e) = c.structure_error {
            return Err(e);
        }
        return Err(at(file, t, c.keyword, no_bpl(class)));
    };
    let j = match *open {
        Ok(j) => j,
        Err(k) if k >= t.len() => {
            return Err(at(
                file,
                t,
                t.len(),
                "unexpected end of file: expected '{' to open XData BPL",
            ))
        }
        Err(k) => return Err(at(file, t, k, "expected '{' to open XData BPL")),
    };
    let doc = skip_ws(t, j + 1);
    match t.as_bytes().get(doc) {
        None => {
            return Err(at(
                file,
                t,
                t.len(),
                format!(
                "unexpected end of file inside XData BPL of {class}: expected a <process> element"
            ),
            ))
        }
        Some(b'}') => {
            return Err(at(
                file,
                t,
                doc,
                format!("XData BPL of {class} is empty; expected a <process> element"),
            ))
        }
        Some(b'<') => {}
        Some(_) => {
            return Err(at(
                file,
                t,
                doc,
                "expected a <process> element inside XData BPL, found text",
            ))
        }
    }
    // The end of the <process> element is found by an XML token scan, so a `}` inside a
    // <code> block does not end it early; the XML parser reports a broken document first.
    let end = scan_xml(t, doc).end.unwrap_or(t.len());
    let process = parse::parse_process(&XmlSource {
        file,
        text: t,
        range: doc..end,
    })?;
    // After the document: whitespace and XML comments, then the '}' closing the block.
    let mut k = skip_ws(t, end);
    while starts_at(t, k, "<!--") {
        k = skip_ws(
            t,
            find_from(t, k + 4, "-->").map(|x| x + 3).unwrap_or(t.len()),
        );
    }
    match t.as_bytes().get(k) {
        Some(b'}') => {}
        None => {
            return Err(at(
                file,
                t,
                t.len(),
                format!("unexpected end of file: XData BPL of {class} is not closed with '}}'"),
            ))
        }
        Some(_) => {
            return Err(at(
                file,
                t,
                k,
                "unexpected text after </process> in XData BPL; expected '}'",
            ))
        }
    }
    // The rest of the class must be sound too (its closing '}', the other members).
    if let Some(e) = c.structure_error {
        return Err(e);
    }
    Ok((c.name, SourceFormat::Udl, process))
}

// ---------------------------------------------------------------------------------------
// Studio / $System.OBJ.Export XML

fn no_bpl(class: &str) -> String {
    format!("{class} has no XData BPL block; is this a business-process class?")
}

fn read_export(
    file: &str,
    t: &str,
    options: &LoadOptions,
) -> Result<(String, SourceFormat, Process), BplError> {
    let lines = LineIndex::new(t);
    let doc = parse::parse_xml(file, &lines, 0, t)?;
    let err = |node: Node, msg: String| BplError::at(file, lines.pos(node.range().start), msg);
    let root = doc.root_element();
    struct Candidate<'a, 'i> {
        name: &'a str,
        class: Node<'a, 'i>,
        xdata: Option<Node<'a, 'i>>,
    }
    let mut all = Vec::new();
    for class in root
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "Class")
    {
        let Some(name) = class.attribute("name") else {
            return Err(err(
                class,
                "<Class> is missing the required attribute 'name'".into(),
            ));
        };
        let xdata = class.children().find(|n| {
            n.is_element() && n.tag_name().name() == "XData" && n.attribute("name") == Some("BPL")
        });
        all.push(Candidate { name, class, xdata });
    }
    let list = |only_bpl: bool| {
        all.iter()
            .filter(|c| !only_bpl || c.xdata.is_some())
            .map(|c| c.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if all.is_empty() {
        return Err(err(root, "the export holds no <Class>; expected a business-process class with an XData BPL block".into()));
    }
    let chosen = match &options.class {
        Some(want) => match all.iter().find(|c| c.name == want) {
            None => {
                return Err(err(
                    root,
                    format!("the export has no class {want}; it holds {}", list(false)),
                ))
            }
            Some(c) => c,
        },
        None => {
            let bpl: Vec<&Candidate> = all.iter().filter(|c| c.xdata.is_some()).collect();
            match bpl.as_slice() {
                [one] => *one,
                [] if all.len() == 1 => &all[0],
                [] => {
                    return Err(err(
                        root,
                        format!("none of the {} classes in this export has an XData BPL block ({}); is this a business-process export?", all.len(), list(false)),
                    ))
                }
                many => return Err(err(root, format!("the export holds {} BPL classes ({}); choose one with --class", many.len(), list(true)))),
            }
        }
    };
    let class = chosen.name;
    if let Err(why) = super::check_class_name(class) {
        return Err(err(chosen.class, why));
    }
    let Some(xdata) = chosen.xdata else {
        return Err(err(chosen.class, no_bpl(class)));
    };
    let Some(data) = xdata
        .children()
        .find(|n| n.is_element() && n.tag_name().name() == "Data")
    else {
        return Err(err(
            xdata,
            format!("XData BPL of {class} has no <Data> element holding the BPL"),
        ));
    };
    if let Some(child) = data.children().find(|n| n.is_element()) {
        return Err(err(
            child,
            format!(
                "unexpected <{}> inside <Data>; expected the BPL as CDATA or escaped text",
                child.tag_name().name()
            ),
        ));
    }
    let content = element_content(t, data.range());
    let (decoded, map) = decode_content(t, content);
    let start = skip_ws(&decoded, 0);
    if start >= decoded.len() {
        return Err(err(
            data,
            format!("XData BPL of {class} is empty; expected a <process> element"),
        ));
    }
    let contiguous = map[..decoded.len()].windows(2).all(|w| w[1] == w[0] + 1);
    let process = if contiguous {
        // One CDATA section (or plain text without references): parse it in place.
        let base = map[0];
        parse::parse_process(&XmlSource {
            file,
            text: t,
            range: base + start..base + decoded.len(),
        })?
    } else {
        let dlines = LineIndex::new(&decoded);
        let mut remap = |p: Pos| {
            let off = dlines.offset(p).min(map.len() - 1);
            lines.pos(map[off])
        };
        match parse::parse_process(&XmlSource {
            file,
            text: &decoded,
            range: start..decoded.len(),
        }) {
            Ok(mut p) => {
                p.map_positions(&mut remap);
                p
            }
            Err(mut e) => {
                e.pos = e.pos.map(&mut remap);
                return Err(e);
            }
        }
    };
    Ok((class.to_string(), SourceFormat::Export, process))
}

/// The offset of the `>` that ends a start tag, searching `b[from..end]` and skipping quoted
/// attribute values; `end` when there is none.
fn tag_end(b: &[u8], from: usize, end: usize) -> usize {
    let mut quote = None;
    for (k, &c) in b.iter().enumerate().take(end).skip(from) {
        match (quote, c) {
            (None, b'"' | b'\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, b'>') => return k,
            _ => {}
        }
    }
    end
}

/// The byte range between an element's start tag and its end tag (empty for `<x/>`).
fn element_content(t: &str, element: Range<usize>) -> Range<usize> {
    let b = t.as_bytes();
    let i = tag_end(b, element.start, element.end);
    if i >= element.end || b[i - 1] == b'/' {
        return element.end..element.end;
    }
    let open_end = i + 1;
    let close = t
        .get(open_end..element.end)
        .and_then(|s| s.rfind("</"))
        .map(|k| open_end + k)
        .unwrap_or(element.end);
    open_end..close
}

/// Decode XML character data (text, entity and character references, CDATA sections;
/// comments and processing instructions dropped). Returns the decoded text and, for every
/// decoded byte plus one past the end, the offset in `t` it came from.
fn decode_content(t: &str, range: Range<usize>) -> (String, Vec<usize>) {
    let mut out = String::new();
    let mut map = Vec::new();
    let end = range.end;
    let mut i = range.start;
    let push = |out: &mut String, map: &mut Vec<usize>, s: &str, from: Option<usize>, at: usize| {
        for (k, _) in s.bytes().enumerate() {
            map.push(from.map_or(at, |f| f + k));
        }
        out.push_str(s);
    };
    while i < end {
        if starts_at(t, i, "<![CDATA[") {
            let e = find_from(t, i + 9, "]]>")
                .filter(|&e| e <= end)
                .unwrap_or(end)
                .max(i + 9);
            push(&mut out, &mut map, &t[i + 9..e], Some(i + 9), 0);
            i = (e + 3).min(end);
        } else if starts_at(t, i, "<!--") {
            i = find_from(t, i + 4, "-->")
                .map(|e| e + 3)
                .unwrap_or(end)
                .min(end);
        } else if starts_at(t, i, "<?") {
            i = find_from(t, i + 2, "?>")
                .map(|e| e + 2)
                .unwrap_or(end)
                .min(end);
        } else if t.as_bytes()[i] == b'&' {
            let semi = find_from(t, i, ";").filter(|&s| s < end && s - i <= 12);
            let decoded = semi.and_then(|s| decode_reference(&t[i + 1..s]));
            match (semi, decoded) {
                (Some(s), Some(c)) => {
                    push(&mut out, &mut map, c.encode_utf8(&mut [0; 4]), None, i);
                    i = s + 1;
                }
                _ => {
                    push(&mut out, &mut map, "&", Some(i), 0);
                    i += 1;
                }
            }
        } else {
            let next = t[i..end]
                .find(['<', '&'])
                .map(|k| i + k.max(1))
                .unwrap_or(end);
            push(&mut out, &mut map, &t[i..next], Some(i), 0);
            i = next;
        }
    }
    map.push(end);
    (out, map)
}

fn decode_reference(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let n = name.strip_prefix('#')?;
            let code = match n.strip_prefix('x') {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => n.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_finds_the_real_end_of_the_root() {
        let t = "<process><code><![CDATA[ </process> } ]]></code><!-- </process> --><a x=\"</process>\"/></process>}";
        let s = scan_xml(t, 0);
        assert_eq!(s.root, Some((0, "process".to_string())));
        assert_eq!(s.end, Some(t.len() - 1));
    }

    #[test]
    fn scan_skips_the_prolog_and_handles_self_closing_roots() {
        let t = "<?xml version=\"1.0\"?>\n<!-- c -->\n<bpl:process a='>'/>tail";
        let s = scan_xml(t, 0);
        assert_eq!(s.root.map(|r| r.1), Some("process".to_string()));
        assert_eq!(s.end, t.find("tail"));
    }

    #[test]
    fn scan_reports_an_unclosed_root() {
        let s = scan_xml("<process><sequence>", 0);
        assert!(s.root.is_some());
        assert_eq!(s.end, None);
        assert!(scan_xml("text", 0).root.is_none());
        assert!(scan_xml("<!-- never closed", 0).root.is_none());
    }

    #[test]
    fn decoding_maps_every_byte_back() {
        let t = "<Data>a&lt;b&#x263A;<![CDATA[<x>]]>&amp;</Data>";
        let r = element_content(t, 0..t.len());
        assert_eq!(&t[r.clone()], "a&lt;b&#x263A;<![CDATA[<x>]]>&amp;");
        let (d, map) = decode_content(t, r.clone());
        assert_eq!(d, "a<b\u{263A}<x>&");
        assert_eq!(map.len(), d.len() + 1);
        assert_eq!(map[0], 6); // a
        assert_eq!(map[1], 7); // '<' from &lt;
        assert_eq!(map[2], 11); // b
        assert_eq!(&map[3..6], &[12, 12, 12]); // the three bytes of U+263A from &#x263A;
        assert_eq!(map[6], t.find("<x>").unwrap());
        assert_eq!(*map.last().unwrap(), r.end);
    }

    #[test]
    fn element_content_of_empty_elements() {
        assert!(element_content("<Data/>", 0..7).is_empty());
        let t = "<Data a=\"/>\"></Data>";
        assert!(element_content(t, 0..t.len()).is_empty());
    }

    #[test]
    fn references() {
        assert_eq!(decode_reference("#65"), Some('A'));
        assert_eq!(decode_reference("#x41"), Some('A'));
        assert_eq!(decode_reference("#xD800"), None);
        assert_eq!(decode_reference("nbsp"), None);
    }

    #[test]
    fn source_classification() {
        let dir = Path::new("/nonexistent-dir-for-bplmigrate-tests");
        assert!(matches!(
            classify_source(dir, "HEAD:a/b.cls"),
            SourceRef::Git {
                rev: "HEAD",
                path: "a/b.cls"
            }
        ));
        assert!(matches!(
            classify_source(dir, "C:\\x\\b.cls"),
            SourceRef::File(_)
        ));
        assert!(matches!(classify_source(dir, "b.cls"), SourceRef::File(_)));
        assert!(matches!(classify_source(dir, "HEAD:"), SourceRef::File(_)));
        assert_eq!(file_stem("dir/Demo.Loan.xml"), "Demo.Loan");
    }

    #[test]
    fn utf8_decoding() {
        assert_eq!(decode_utf8("f", b"\xEF\xBB\xBFabc").unwrap(), "abc");
        let e = decode_utf8("f", b"ab\ncd\xE9").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 2, column: 3 }));
        assert!(decode_utf8("f", b"\xFF\xFEa\0").is_err());
    }
}
