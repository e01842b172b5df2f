//! Stage 1 — read a BPL from a UDL class file, a Studio/`$System.OBJ.Export` XML file, a bare
//! `<process>` document, or `REV:path` from git, into a typed activity tree with positions.
//!
//! Entry point: [`load`] (format detection, git, class selection; see the `load` module
//! docs). [`parse::parse_process`] reads one `<process>` document given its byte range in the
//! original file and enforces the input rules of spec 2.13 that are local to the tree;
//! `<break>`/`<continue>` outside a loop and unresolved `<branch>` labels are left to the
//! compiler emulation (`states`).

mod load;
mod model;
pub mod parse;

pub use load::{load, load_bytes, load_in, LoadOptions};
pub use model::*;

use sha2::{Digest, Sha256};
use std::fmt;

/// A located input error: `file:line:column: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BplError {
    pub file: String,
    /// None when the problem is not tied to a place in the file (e.g. it cannot be read).
    pub pos: Option<Pos>,
    pub message: String,
}

impl BplError {
    pub fn at(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        BplError {
            file: file.to_string(),
            pos: Some(pos),
            message: message.into(),
        }
    }
    pub fn file(file: &str, message: impl Into<String>) -> Self {
        BplError {
            file: file.to_string(),
            pos: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for BplError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.pos {
            Some(p) => write!(f, "{}:{}:{}: {}", self.file, p.line, p.column, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A class name as IRIS accepts one: dot-separated parts of ASCII letters and digits, each
/// starting with a letter (the first part may start with `%`). Err: why not, for a message.
pub fn check_class_name(name: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "\"{}\" is not a class name: {why}",
            crate::input::printable(name)
        ))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    for (i, part) in name.split('.').enumerate() {
        let mut c = part.chars();
        match c.next() {
            None => return bad("it has an empty package part"),
            Some(f) if f.is_ascii_alphabetic() || (i == 0 && f == '%') => {}
            Some(_) => return bad("each part must start with an ASCII letter"),
        }
        if !c.all(|c| c.is_ascii_alphanumeric()) {
            return bad(
                "only ASCII letters and digits may follow (no spaces, quotes or punctuation)",
            );
        }
    }
    Ok(())
}

/// Give two versions of one process one class name when a name came only from a file name
/// ([`Bpl::class_from_file_name`]): a bare `<process>` document read without `--class` takes
/// the class the other version names, and when neither names one both take the old one's
/// file stem. A file name is no evidence of another class, so it must not make the two look
/// like different classes (BPM0404) nor name the tables of another class in the SQL. Names
/// both files give are left as they are.
///
/// Returns the new version's own file-name class when it differed from the old one's and was
/// dropped for it (`old.xml`, `new.xml`): the shared name is then only a pick between two
/// file names.
pub fn settle_class_names(old: &mut Bpl, new: &mut Bpl) -> Option<String> {
    match (old.class_from_file_name, new.class_from_file_name) {
        (true, false) => old.class_name = new.class_name.clone(),
        (false, true) => new.class_name = old.class_name.clone(),
        (true, true) if old.class_name != new.class_name => {
            return Some(std::mem::replace(
                &mut new.class_name,
                old.class_name.clone(),
            ));
        }
        _ => {}
    }
    None
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parse a bare `<process>` document held in memory. `class_name` names the BPL class.
pub fn parse_bare(file: &str, text: &str, class_name: &str) -> Result<Bpl, BplError> {
    let process = parse::parse_process(&parse::XmlSource {
        file,
        text,
        range: 0..text.len(),
    })?;
    Ok(Bpl {
        class_name: class_name.to_string(),
        class_from_file_name: false,
        source: SourceInfo {
            origin: file.to_string(),
            sha256: sha256_hex(text.as_bytes()),
            format: SourceFormat::Bare,
        },
        process,
    })
}
