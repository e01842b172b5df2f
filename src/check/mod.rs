//! `check`, the CI gate: which BPL classes changed between two git trees ([`git_changes`],
//! paired by class name in [`classes`]), whether a reviewed migration folder covers a change
//! ([`cover`]), and which verdicts fail the gate ([`FailOn`]). Nothing here prints.

pub mod classes;
pub mod cover;
pub mod git;

use crate::bpl::BplError;
use crate::input::{self, InputError, Kind};
use crate::plan::Verdict;
use classes::{ClassChange, Version};
use git::{GitError, Repo};

/// The lowest verdict that fails the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailOn {
    /// Anything beyond `compatible` fails: states to drain, rows to rewrite, blocked.
    #[default]
    Drain,
    /// Only rows to rewrite, or blocked.
    Migratable,
    /// Only blocked changes (and deleted classes).
    Blocked,
}

impl FailOn {
    /// Whether a class with verdict `v` (not covered by a migration folder) fails the gate.
    /// Written with the verdict order, so a verdict between `compatible` and `migratable`
    /// (`drain`) fails at `drain` only.
    pub fn fails(self, v: Verdict) -> bool {
        match self {
            FailOn::Drain => v > Verdict::Compatible,
            FailOn::Migratable => v >= Verdict::Migratable,
            FailOn::Blocked => v >= Verdict::Blocked,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Bpl(#[from] BplError),
    #[error("{0}")]
    Pairing(String),
    /// Over the `--max-input-size` cap of a BPL source, and it starts like BPL.
    #[error("{0}; it starts like a BPL document, so it is not skipped")]
    TooLarge(InputError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

impl CheckError {
    /// Where in the file the problem is (line, column), when it is tied to a place.
    pub fn pos(&self) -> Option<(u32, u32)> {
        match self {
            CheckError::Bpl(e) => e.pos.map(|p| (p.line, p.column)),
            _ => None,
        }
    }
    /// The message without the `file:line:col: ` a BPL error starts with (reports name the
    /// file and place themselves).
    pub fn reason(&self) -> String {
        match self {
            CheckError::Bpl(e) => e.message.clone(),
            CheckError::TooLarge(e) => {
                format!(
                    "{}; it starts like a BPL document, so it is not skipped",
                    e.reason()
                )
            }
            CheckError::Read { source, .. } => format!("cannot read the file: {source}"),
            other => other.to_string(),
        }
    }
}

/// How much of a changed file over the cap is read to tell whether it could be BPL (memory
/// stays bounded whatever was committed).
const SNIFF_BYTES: u64 = 64 << 10;

/// The BPL classes of a file read with a limit.
fn classes_of(origin: String, bytes: git::Limited) -> Result<Vec<crate::bpl::Bpl>, CheckError> {
    match bytes {
        git::Limited::Whole(b) => Ok(classes::bpl_classes(&origin, &b)?),
        git::Limited::Head { prefix, size } if classes::may_start_bpl(&prefix) => {
            Err(CheckError::TooLarge(InputError::TooLarge {
                path: origin.into(),
                size,
                cap: input::cap(Kind::Bpl),
                kind: Kind::Bpl,
            }))
        }
        git::Limited::Head { .. } => Ok(vec![]),
    }
}

impl Unreadable {
    /// Whether this file stops the check (exit 2): its new version cannot be read, or its old
    /// version could not be read for a reason other than not parsing (over the size cap: a
    /// version that may be deployed). An old version that does not parse only warns (see
    /// [`ClassChange::OldUnreadable`]).
    pub fn is_error(&self) -> bool {
        self.side == Side::New || !matches!(self.error, CheckError::Bpl(_))
    }
}

/// Which version of a changed file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Old,
    New,
}

/// One version of a changed file: its classes go to `into`; a file-level error (it does not
/// parse, is too large, cannot be read) makes it an [`Unreadable`] of that side, so every other
/// class is still checked; any other error ends the check.
fn sort_version(
    read: Result<Vec<crate::bpl::Bpl>, CheckError>,
    (path, raw_path, origin, classes): (&str, &[u8], String, Vec<String>),
    side: Side,
    into: &mut Vec<Version>,
    unreadable: &mut Vec<Unreadable>,
) -> Result<(), CheckError> {
    match read {
        Ok(v) => into.extend(v.into_iter().map(|bpl| Version {
            path: path.to_string(),
            raw_path: raw_path.to_vec(),
            bpl,
        })),
        Err(error) if of_one_file(&error) => unreadable.push(Unreadable {
            path: path.to_string(),
            raw_path: raw_path.to_vec(),
            origin,
            side,
            error,
            classes,
        }),
        Err(e) => return Err(e),
    }
    Ok(())
}

/// A changed file that holds (or starts like) BPL but could not be read: malformed, over the
/// size cap, unreadable on disk. Only this file's classes go unchecked; every other class
/// still gets its verdict.
#[derive(Debug)]
pub struct Unreadable {
    /// Repository-relative path, as messages show it ([`git::display`]).
    pub path: String,
    /// The path as git stores it.
    pub raw_path: Vec<u8>,
    /// How messages name this version (`REV:path`, or the path in the working tree).
    pub origin: String,
    pub side: Side,
    pub error: CheckError,
    /// The classes this file is known to hold: the other version's, or the names its text
    /// declares (empty when neither tells).
    pub classes: Vec<String>,
}

/// The BPL classes changed between two trees of a repository.
#[derive(Debug)]
pub struct GitChanges {
    /// Commit id the old versions were read from: the merge base of the base and the head
    /// (so changes made on the base branch meanwhile are not blamed on this change).
    pub old_commit: String,
    /// How old versions are named in messages (`REV` or the merge base's short id).
    pub old_label: String,
    /// Commit id of the head, None for the working tree.
    pub head_commit: Option<String>,
    pub changes: Vec<ClassChange>,
    /// Changed files that could not be read as BPL, in path order. A new version that cannot
    /// be read leaves its classes unchecked (an input error); an old one only means the
    /// change from it cannot be checked (see [`ClassChange::OldUnreadable`]).
    pub unreadable: Vec<Unreadable>,
}

/// Whether an error reading one changed file concerns only that file (it is reported for the
/// file and the other classes are still checked), rather than the repository or git.
fn of_one_file(e: &CheckError) -> bool {
    matches!(
        e,
        CheckError::Bpl(_) | CheckError::TooLarge(_) | CheckError::Read { .. }
    )
}

/// Find every BPL class that changed between `base` and `head` (None: the working tree,
/// untracked files included), by class name. Files are read up to the `--max-input-size` cap
/// of a BPL source ([`input::cap`]); a larger file is only sniffed, and refused (for that
/// file) when it could be BPL.
pub fn git_changes(repo: &Repo, base: &str, head: Option<&str>) -> Result<GitChanges, CheckError> {
    let base_id = repo.resolve(base)?;
    let head_id = head.map(|h| repo.resolve(h)).transpose()?;
    let tip = match &head_id {
        Some(h) => h.clone(),
        None => repo.resolve("HEAD")?,
    };
    let old_commit = repo.merge_base(&base_id, &tip)?;
    let old_label = if old_commit == base_id {
        base.to_string()
    } else {
        old_commit[..12.min(old_commit.len())].to_string()
    };
    let head_label = head.map(str::to_string);
    let limit = input::cap(Kind::Bpl);
    let (mut olds, mut news, mut unreadable) = (Vec::new(), Vec::new(), Vec::new());
    for c in repo.changed(&old_commit, head_id.as_deref())? {
        let path = git::display(&c.path);
        if matches!(c.status, 'M' | 'T' | 'D' | 'U') {
            let bytes = repo.blob_limited(&old_commit, &c.path, limit, SNIFF_BYTES)?;
            let origin = format!("{old_label}:{path}");
            let hint = declared_classes(&bytes);
            let read = classes_of(origin.clone(), bytes);
            sort_version(
                read,
                (&path, &c.path, origin, hint),
                Side::Old,
                &mut olds,
                &mut unreadable,
            )?;
        }
        if c.status != 'D' {
            let read = match (&head_id, &head_label) {
                (Some(id), Some(label)) => Some((
                    Ok(repo.blob_limited(id, &c.path, limit, SNIFF_BYTES)?),
                    format!("{label}:{path}"),
                )),
                _ => {
                    let file = repo.top.join(git::os_name(&c.path)?);
                    if !file.is_file() {
                        // Deleted from the working tree but not from the index, or a folder
                        // (a submodule).
                        None
                    } else {
                        let bytes =
                            git::read_limited(&file, limit, SNIFF_BYTES).map_err(|source| {
                                CheckError::Read {
                                    path: path.clone(),
                                    source,
                                }
                            });
                        Some((bytes, path.clone()))
                    }
                }
            };
            if let Some((bytes, origin)) = read {
                let hint = bytes.as_ref().map(declared_classes).unwrap_or_default();
                let read = bytes.and_then(|b| classes_of(origin.clone(), b));
                sort_version(
                    read,
                    (&path, &c.path, origin, hint),
                    Side::New,
                    &mut news,
                    &mut unreadable,
                )?;
            }
        }
    }
    let changes = classes::pair(olds, news).map_err(CheckError::Pairing)?;
    let (changes, unreadable) = settle_unreadable(changes, unreadable);
    Ok(GitChanges {
        old_commit,
        old_label,
        head_commit: head_id,
        changes,
        unreadable,
    })
}

/// Fold the unreadable files into the class changes:
/// - a class whose old version is in a file whose new version cannot be read is not
///   `Removed`: it belongs to that file, which is reported unreadable (its classes named);
/// - a class that appears in a file whose old version could not be read is not `Added`: it
///   is [`ClassChange::OldUnreadable`] (the change from the old version cannot be checked);
/// - an old version that cannot be read is not reported on its own when the new version of
///   the file cannot be read either (the new version's error is the one to fix).
fn settle_unreadable(
    changes: Vec<ClassChange>,
    mut unreadable: Vec<Unreadable>,
) -> (Vec<ClassChange>, Vec<Unreadable>) {
    let new_bad: Vec<Vec<u8>> = unreadable
        .iter()
        .filter(|u| u.side == Side::New)
        .map(|u| u.raw_path.clone())
        .collect();
    unreadable.retain(|u| u.side == Side::New || !new_bad.contains(&u.raw_path));
    let mut out = Vec::with_capacity(changes.len());
    let mut old_taken: Vec<usize> = Vec::new();
    for change in changes {
        match change {
            ClassChange::Removed { old } if new_bad.contains(&old.raw_path) => {
                if let Some(u) = unreadable
                    .iter_mut()
                    .find(|u| u.side == Side::New && u.raw_path == old.raw_path)
                {
                    if !u.classes.contains(&old.bpl.class_name) {
                        u.classes.push(old.bpl.class_name.clone());
                    }
                }
            }
            ClassChange::Added { new } => {
                match unreadable
                    .iter()
                    .position(|u| u.side == Side::Old && u.raw_path == new.raw_path)
                {
                    Some(i) => {
                        old_taken.push(i);
                        out.push(ClassChange::OldUnreadable {
                            old_origin: unreadable[i].origin.clone(),
                            old_error: unreadable[i].error.to_string(),
                            old_too_large: !matches!(unreadable[i].error, CheckError::Bpl(_)),
                            new,
                        });
                    }
                    None => out.push(ClassChange::Added { new }),
                }
            }
            other => out.push(other),
        }
    }
    let mut i = 0;
    unreadable.retain(|_| {
        i += 1;
        !old_taken.contains(&(i - 1))
    });
    unreadable.sort_by(|a, b| a.raw_path.cmp(&b.raw_path));
    (out, unreadable)
}

/// The class names a BPL file's text declares (a UDL `Class` header, the `<Class name>` of an
/// export), read without parsing, for a file that cannot be loaded: messages and `--class`
/// can still name its class.
fn declared_classes(bytes: &git::Limited) -> Vec<String> {
    let b = match bytes {
        git::Limited::Whole(b) => b.as_slice(),
        git::Limited::Head { prefix, .. } => prefix.as_slice(),
    };
    let text = String::from_utf8_lossy(b);
    let mut names: Vec<String> = Vec::new();
    let trimmed = text.trim_start_matches('\u{feff}').trim_start();
    if trimmed.starts_with('<') {
        for part in trimmed.split("<Class name=").skip(1) {
            let mut chars = part.chars();
            if let Some(q @ ('"' | '\'')) = chars.next() {
                let name: String = chars.take_while(|c| *c != q).collect();
                if !name.is_empty() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    } else if let Some(name) = trimmed.lines().find_map(|l| {
        let l = l.trim_start();
        l.get(..6)
            .filter(|h| h.eq_ignore_ascii_case("class "))
            .and_then(|_| l[6..].split_whitespace().next())
    }) {
        names.push(name.trim_end_matches('{').to_string());
    }
    names.retain(|n| !n.is_empty() && n.len() <= 256);
    names
}

/// The finding for a deleted BPL class.
pub fn removed_finding(class: &str) -> crate::plan::Finding {
    crate::plan::findings::finding(
        crate::plan::findings::Code::ClassRemoved,
        format!("in-flight instances of {class} would be orphaned: the class was deleted"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_on_thresholds_follow_the_verdict_order() {
        use Verdict::*;
        for v in [Identical, Compatible] {
            assert!(!FailOn::Drain.fails(v));
        }
        assert!(FailOn::Drain.fails(Migratable) && FailOn::Drain.fails(Blocked));
        assert!(!FailOn::Migratable.fails(Compatible));
        assert!(FailOn::Migratable.fails(Migratable) && FailOn::Migratable.fails(Blocked));
        assert!(!FailOn::Blocked.fails(Migratable));
        assert!(FailOn::Blocked.fails(Blocked));
    }
}
