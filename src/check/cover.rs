//! Does a reviewed migration folder cover this exact change?
//!
//! A folder under `--migrations DIR` covers the change of a class when
//! * its `plan.json` was made from exactly these two sources (old and new SHA-256),
//! * its checksum file holds (nothing edited, added or removed),
//! * its plan is the plan of this change: the content hash of its `plan.json` equals the
//!   plan id `check` computes now from the same sources (and the same overrides file), so a
//!   hand-edited plan with regenerated checksums does not pass,
//! * its plan is not `blocked`, and
//! * it is committed (the caller says which files are not).
//!
//! Folders of the same class made from only one of the two sources are reported with why
//! they do not cover; folders of earlier changes of the class (history) are not mentioned.

use crate::plan::{self, MigrationPlan};
use std::path::{Path, PathBuf};

/// The answer for one class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cover {
    Covered { folder: PathBuf },
    NotCovered { mismatches: Vec<Mismatch> },
}

/// A folder that was close but does not cover the change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    pub folder: PathBuf,
    pub why: String,
}

#[derive(serde::Deserialize)]
struct Head {
    old: Side,
    new: Side,
}

#[derive(serde::Deserialize)]
struct Side {
    class: String,
    sha256: String,
}

fn short(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// Look for a folder under `dir` covering `plan` (the plan `check` built for the change).
/// `overrides_given`: whether `plan` was built with an overrides file. `uncommitted` lists
/// the files of a folder that are not committed. A missing `dir` holds no folder; an
/// unreadable one is an error.
pub fn find(
    dir: &Path,
    plan: &MigrationPlan,
    overrides_given: bool,
    uncommitted: &dyn Fn(&Path) -> Vec<String>,
) -> Result<Cover, std::io::Error> {
    // No folder yet (no migration was ever written): nothing covers the change.
    let listing = match std::fs::read_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Cover::NotCovered { mismatches: vec![] })
        }
        r => r?,
    };
    let mut entries: Vec<PathBuf> = listing
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    let mut mismatches = Vec::new();
    for folder in entries {
        let Ok(bytes) =
            crate::input::read(&folder.join("plan.json"), crate::input::Kind::PlanFolder)
        else {
            continue;
        };
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
        let Ok(head) = serde_json::from_slice::<Head>(bytes) else {
            continue;
        };
        if head.old.class != plan.old.class && head.new.class != plan.new.class {
            continue;
        }
        let (old_ok, new_ok) = (
            head.old.sha256.eq_ignore_ascii_case(&plan.old.sha256),
            head.new.sha256.eq_ignore_ascii_case(&plan.new.sha256),
        );
        let miss = |why: String| Mismatch {
            folder: folder.clone(),
            why,
        };
        match (old_ok, new_ok) {
            (false, false) => continue, // an earlier change of the class
            (true, false) => {
                mismatches.push(miss(format!(
                    "made for another new version (new sha256 {}…, this change's is {}…): regenerate it from the new version with `bplmigrate plan --out`",
                    short(&head.new.sha256),
                    short(&plan.new.sha256)
                )));
                continue;
            }
            (false, true) => {
                mismatches.push(miss(format!(
                    "made from another old version (old sha256 {}…, this change's is {}…): regenerate it from the base version with `bplmigrate plan --out`",
                    short(&head.old.sha256),
                    short(&plan.old.sha256)
                )));
                continue;
            }
            (true, true) => {}
        }
        let checked = match crate::sql::verify_migration_folder(&folder) {
            Ok(c) => c,
            Err(e) => {
                mismatches.push(miss(format!("its checksums do not hold: {e}")));
                continue;
            }
        };
        let content_id = plan::plan_id(&checked.plan).unwrap_or_default();
        if content_id != checked.plan.plan_id {
            mismatches.push(miss(format!(
                "its plan.json was edited (it claims plan {} but its content is plan {content_id})",
                checked.plan.plan_id
            )));
            continue;
        }
        if checked.plan.plan_id != plan.plan_id {
            let why = if !checked.plan.overrides.is_empty() && !overrides_given {
                format!(
                    "it was planned with an overrides file ({} entries applied); pass that file with --overrides so check can reproduce plan {}",
                    checked.plan.overrides.len(),
                    checked.plan.plan_id
                )
            } else {
                format!(
                    "its plan {} is not the plan of this change ({}{}): regenerate the folder with `bplmigrate plan --out`",
                    checked.plan.plan_id,
                    plan.plan_id,
                    if overrides_given { " with these overrides" } else { ", without overrides" }
                )
            };
            mismatches.push(miss(why));
            continue;
        }
        // Blocked only by rows that must drain: the folder applies once they did (its
        // preconditions refuse until then), on every path. Anything else never applies.
        let blockers = checked.plan.blocked_for_good();
        if !blockers.is_empty() {
            mismatches.push(miss(format!(
                "its plan is blocked ({}): it cannot be applied; {}",
                blockers.join("; "),
                crate::plan::blocked_remedy(&blockers)
            )));
            continue;
        }
        let loose = uncommitted(&folder);
        if !loose.is_empty() {
            let more = if loose.len() > 3 { ", …" } else { "" };
            mismatches.push(miss(format!(
                "it is not committed ({} file{} untracked or modified: {}{more}); commit the folder",
                loose.len(),
                if loose.len() == 1 { "" } else { "s" },
                loose[..loose.len().min(3)].join(", ")
            )));
            continue;
        }
        return Ok(Cover::Covered { folder });
    }
    Ok(Cover::NotCovered { mismatches })
}
