//! `check`, the CI gate: which BPL classes changed between two git trees ([`git_changes`],
//! paired by class name in [`classes`]), whether a reviewed migration folder covers a change
//! ([`cover`]), and which verdicts fail the gate ([`FailOn`]). Nothing here prints.

pub mod classes;
pub mod cover;
pub mod git;

use crate::bpl::BplError;
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
    #[error("{origin}: {size} bytes, over the {} MiB a BPL source may have; it starts like a BPL document, so it is not skipped", MAX_SOURCE_BYTES >> 20)]
    TooLarge { origin: String, size: u64 },
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
}

/// The largest changed file read whole while looking for BPL classes; a larger one is only
/// sniffed (its first [`SNIFF_BYTES`]) and refused if it could be BPL, so memory stays bounded.
pub const MAX_SOURCE_BYTES: u64 = 32 << 20;
const SNIFF_BYTES: u64 = 64 << 10;

/// The BPL classes of a file read with a limit.
fn classes_of(origin: String, bytes: git::Limited) -> Result<Vec<crate::bpl::Bpl>, CheckError> {
    match bytes {
        git::Limited::Whole(b) => Ok(classes::bpl_classes(&origin, &b)?),
        git::Limited::Head { prefix, size } if classes::may_start_bpl(&prefix) => {
            Err(CheckError::TooLarge { origin, size })
        }
        git::Limited::Head { .. } => Ok(vec![]),
    }
}

/// The BPL classes changed between two trees of a repository.
#[derive(Debug, Clone)]
pub struct GitChanges {
    /// Commit id the old versions were read from: the merge base of the base and the head
    /// (so changes made on the base branch meanwhile are not blamed on this change).
    pub old_commit: String,
    /// How old versions are named in messages (`REV` or the merge base's short id).
    pub old_label: String,
    /// Commit id of the head, None for the working tree.
    pub head_commit: Option<String>,
    pub changes: Vec<ClassChange>,
}

/// Find every BPL class that changed between `base` and `head` (None: the working tree,
/// untracked files included), by class name.
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
    let (mut olds, mut news) = (Vec::new(), Vec::new());
    for c in repo.changed(&old_commit, head_id.as_deref())? {
        if matches!(c.status, 'M' | 'T' | 'D' | 'U') {
            let bytes = repo.blob_limited(&old_commit, &c.path, MAX_SOURCE_BYTES, SNIFF_BYTES)?;
            let origin = format!("{old_label}:{}", c.path);
            for bpl in classes_of(origin, bytes)? {
                olds.push(Version {
                    path: c.path.clone(),
                    bpl,
                });
            }
        }
        if c.status != 'D' {
            let (bytes, origin) = match (&head_id, &head_label) {
                (Some(id), Some(label)) => (
                    repo.blob_limited(id, &c.path, MAX_SOURCE_BYTES, SNIFF_BYTES)?,
                    format!("{label}:{}", c.path),
                ),
                _ => {
                    let file = repo.top.join(&c.path);
                    if !file.is_file() {
                        // Deleted from the working tree but not from the index, or a folder
                        // (a submodule).
                        continue;
                    }
                    let bytes = git::read_limited(&file, MAX_SOURCE_BYTES, SNIFF_BYTES).map_err(
                        |source| CheckError::Read {
                            path: c.path.clone(),
                            source,
                        },
                    )?;
                    (bytes, c.path.clone())
                }
            };
            for bpl in classes_of(origin, bytes)? {
                news.push(Version {
                    path: c.path.clone(),
                    bpl,
                });
            }
        }
    }
    let changes = classes::pair(olds, news).map_err(CheckError::Pairing)?;
    Ok(GitChanges {
        old_commit,
        old_label,
        head_commit: head_id,
        changes,
    })
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
