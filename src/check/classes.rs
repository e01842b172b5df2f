//! BPL classes in changed files, paired by class name: a renamed or moved file is the same
//! class, a class that disappears was deleted, a class that appears is new.

use crate::bpl::{self, Bpl, BplError, LoadOptions};
use std::collections::BTreeMap;

/// One version of a class: where it was read from and what it holds.
#[derive(Debug, Clone)]
pub struct Version {
    /// Repository-relative path of the file, as messages show it.
    pub path: String,
    /// The path as git stores it (not always UTF-8).
    pub raw_path: Vec<u8>,
    pub bpl: Bpl,
}

/// How a class changed between the two trees.
// A handful per run, moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ClassChange {
    /// In both trees (perhaps in another file).
    Changed { old: Version, new: Version },
    /// Only in the new tree: no instance of it can be in flight.
    Added { new: Version },
    /// Only in the old tree: in-flight instances would be orphaned.
    Removed { old: Version },
    /// In the new tree, in a file whose old version could not be read (malformed, over the
    /// size cap): the change from the old version cannot be checked.
    OldUnreadable {
        new: Version,
        /// How the old version is named (`REV:path`).
        old_origin: String,
        /// Why it could not be read.
        old_error: String,
        /// Whether it was only over the size cap (it may well be a deployed version: the
        /// check must not pass without reading it), rather than not parsing.
        old_too_large: bool,
    },
}

impl ClassChange {
    pub fn class(&self) -> &str {
        match self {
            ClassChange::Changed { new, .. }
            | ClassChange::Added { new }
            | ClassChange::OldUnreadable { new, .. } => &new.bpl.class_name,
            ClassChange::Removed { old } => &old.bpl.class_name,
        }
    }
    /// The file findings point at: the new version's, else the old one's.
    pub fn path(&self) -> &str {
        match self {
            ClassChange::Changed { new, .. }
            | ClassChange::Added { new }
            | ClassChange::OldUnreadable { new, .. } => &new.path,
            ClassChange::Removed { old } => &old.path,
        }
    }
    /// [`ClassChange::path`] as git stores it.
    pub fn raw_path(&self) -> &[u8] {
        match self {
            ClassChange::Changed { new, .. }
            | ClassChange::Added { new }
            | ClassChange::OldUnreadable { new, .. } => &new.raw_path,
            ClassChange::Removed { old } => &old.raw_path,
        }
    }
    pub fn touches(&self, path: &str) -> bool {
        match self {
            ClassChange::Changed { old, new } => old.path == path || new.path == path,
            ClassChange::Added { new } | ClassChange::OldUnreadable { new, .. } => new.path == path,
            ClassChange::Removed { old } => old.path == path,
        }
    }
}

/// What kind of BPL document `bytes` hold, judged from the start of the text: a UDL class
/// with an `XData BPL` block, an `<Export>` with a class holding one, or a bare `<process>`.
/// Anything else (other classes, Markdown that mentions a process, binaries) is not BPL.
pub fn looks_like_bpl(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    let t = text.trim_start();
    if t.starts_with('<') {
        return match root_element(t) {
            Some(name) if name == "process" => true,
            Some(name) if name == "Export" => {
                t.contains("<XData name=\"BPL\"") || t.contains("<XData name='BPL'")
            }
            _ => false,
        };
    }
    // UDL: the header `Class Name` on a line of its own start (after comments and
    // Include/Import lines), and an `XData BPL` block.
    let mut header = false;
    let mut xdata = false;
    for line in t.lines() {
        let l = line.trim_start();
        let lower = l.to_ascii_lowercase();
        if lower.starts_with("class ") {
            header = true;
        }
        if header && lower.starts_with("xdata bpl") {
            let rest = &l["xdata bpl".len()..];
            if rest.is_empty() || rest.starts_with([' ', '\t', '[', '{']) {
                xdata = true;
                break;
            }
        }
    }
    header && xdata
}

/// Whether the first bytes of a file too large to read could start a BPL document: an XML
/// document whose root is `<process>` or `<Export>`, or text with a UDL `Class` header line.
pub fn may_start_bpl(prefix: &[u8]) -> bool {
    let prefix = prefix.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(prefix);
    let text = match std::str::from_utf8(prefix) {
        Ok(t) => t,
        // Cut inside a character at the end: the valid part.
        Err(e) if e.error_len().is_none() => {
            std::str::from_utf8(&prefix[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return false,
    };
    let t = text.trim_start();
    if t.starts_with('<') {
        return matches!(
            root_element(t).as_deref(),
            Some("process" | "Export") | None
        );
    }
    t.lines()
        .any(|l| l.trim_start().to_ascii_lowercase().starts_with("class "))
}

/// The local name of the root element, skipping the prolog, comments and doctype.
fn root_element(t: &str) -> Option<String> {
    let mut rest = t;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("<?") {
            rest = &r[r.find("?>")? + 2..];
        } else if let Some(r) = rest.strip_prefix("<!--") {
            rest = &r[r.find("-->")? + 3..];
        } else if let Some(r) = rest.strip_prefix("<!") {
            rest = &r[r.find('>')? + 1..];
        } else if let Some(r) = rest.strip_prefix('<') {
            let name: String = r
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '>' && *c != '/')
                .collect();
            return Some(name.rsplit(':').next().unwrap_or("").to_string());
        } else {
            return None;
        }
    }
}

/// The BPL classes held in `bytes` (several for an export with several BPL classes; none when
/// the file is no BPL). A file that looks like BPL but cannot be read is an error.
pub fn bpl_classes(origin: &str, bytes: &[u8]) -> Result<Vec<Bpl>, BplError> {
    if !looks_like_bpl(bytes) {
        return Ok(vec![]);
    }
    let names = export_bpl_classes(bytes);
    if names.len() > 1 {
        return names
            .into_iter()
            .map(|class| bpl::load_bytes(origin, bytes, &LoadOptions { class: Some(class) }))
            .collect();
    }
    Ok(vec![bpl::load_bytes(
        origin,
        bytes,
        &LoadOptions::default(),
    )?])
}

/// Names of the classes with an `XData BPL` block in an `<Export>` document (empty for other
/// documents and for exports that do not parse: the loader reports those).
fn export_bpl_classes(bytes: &[u8]) -> Vec<String> {
    let Ok(text) = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)) else {
        return vec![];
    };
    if root_element(text.trim_start()).as_deref() != Some("Export") {
        return vec![];
    }
    let Ok(doc) = roxmltree::Document::parse(text) else {
        return vec![];
    };
    doc.root_element()
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "Class")
        .filter(|c| {
            c.children().any(|x| {
                x.is_element()
                    && x.tag_name().name() == "XData"
                    && x.attribute("name") == Some("BPL")
            })
        })
        .filter_map(|c| c.attribute("name").map(str::to_string))
        .collect()
}

/// Pair the classes of the old and new versions of the changed files by class name.
/// `old`/`new` list every class found, with its file. Result in class-name order.
///
/// A class found twice on one side (two files define it) is an error naming both files.
pub fn pair(old: Vec<Version>, new: Vec<Version>) -> Result<Vec<ClassChange>, String> {
    let index = |v: Vec<Version>| -> Result<BTreeMap<String, Version>, String> {
        let mut m: BTreeMap<String, Version> = BTreeMap::new();
        for ver in v {
            if let Some(prev) = m.get(&ver.bpl.class_name) {
                return Err(format!(
                    "class {} is defined twice ({} and {}): keep one definition",
                    ver.bpl.class_name, prev.path, ver.path
                ));
            }
            m.insert(ver.bpl.class_name.clone(), ver);
        }
        Ok(m)
    };
    let mut old = index(old)?;
    let new = index(new)?;
    let mut out = Vec::new();
    for (class, n) in new {
        match old.remove(&class) {
            Some(o) => out.push(ClassChange::Changed { old: o, new: n }),
            None => out.push(ClassChange::Added { new: n }),
        }
    }
    for (_, o) in old {
        out.push(ClassChange::Removed { old: o });
    }
    out.sort_by(|a, b| a.class().cmp(b.class()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bpl_is_told_from_other_files_by_content() {
        assert!(looks_like_bpl(
            b"/// doc\nClass Demo.A Extends Ens.BusinessProcessBPL\n{\nXData BPL\n{\n<process/>\n}\n}\n"
        ));
        assert!(looks_like_bpl(
            b"<?xml version=\"1.0\"?>\n<!-- c -->\n<process request='x'/>"
        ));
        assert!(looks_like_bpl(
            b"<Export><Class name=\"A\"><XData name=\"BPL\"><Data/></XData></Class></Export>"
        ));
        // A class without BPL, an export without BPL, Markdown that talks about BPL.
        assert!(!looks_like_bpl(
            b"Class Demo.B Extends %RegisteredObject\n{\n}\n"
        ));
        assert!(!looks_like_bpl(b"<Export><Class name=\"A\"/></Export>"));
        assert!(!looks_like_bpl(
            b"# Notes\nThe class has an XData BPL block with a <process> element.\n"
        ));
        assert!(!looks_like_bpl(b"\xff\xfe\x00"));
    }

    #[test]
    fn the_start_of_a_large_file_tells_whether_it_could_be_bpl() {
        assert!(may_start_bpl(
            b"/// x\nClass Demo.Big Extends Ens.BusinessProcessBPL\n{"
        ));
        assert!(may_start_bpl(
            b"<?xml version='1.0'?><Export generator='IRIS'>"
        ));
        assert!(may_start_bpl(b"<process request='A'>"));
        // A prefix cut inside a comment: the root is not known yet, so it could be.
        assert!(may_start_bpl(b"<!-- long comment"));
        // Cut inside a multi-byte character: still text.
        assert!(may_start_bpl(b"Class Demo.\xC3"));
        assert!(!may_start_bpl(b"\x89PNG\r\n\x1a\n\x00\x00"));
        assert!(!may_start_bpl(b"<svg xmlns='http://www.w3.org/2000/svg'>"));
        assert!(!may_start_bpl(b"id,amount\n1,2\n"));
    }
}
