//! A migration as `apply` takes it: the verified folder's plan, and the script rendered for
//! the connected database.

use super::error::ApplyError;
use crate::plan::{MigrationPlan, PLAN_SCHEMA_VERSION};
use crate::sql::{Dialect, Direction, SqlScript};
use std::path::{Path, PathBuf};

/// A plan ready to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct Migration {
    /// The folder it came from (None for a plan built in memory).
    pub dir: Option<PathBuf>,
    pub plan: MigrationPlan,
    /// SHA-256 of `plan.json` as stored (recorded in the history).
    pub plan_sha256: String,
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Migration {
    /// Reads a folder written by `plan --out`: the checksum file must cover exactly the files
    /// present, unchanged; then `plan.json` is read and checked.
    pub fn load(dir: &Path) -> Result<Migration, ApplyError> {
        let origin = dir.display().to_string();
        let folder_err = |message: String| ApplyError::Folder {
            dir: origin.clone(),
            message,
        };
        if let Some(mistake) = super::info::migration_dir_mistake(dir) {
            return Err(folder_err(mistake));
        }
        let checked =
            crate::sql::verify_migration_folder(dir).map_err(|e| folder_err(e.to_string()))?;
        let path = dir.join("plan.json");
        let bytes = crate::input::read(&path, crate::input::Kind::PlanFolder)
            .map_err(|e| folder_err(format!("plan.json: {}", e.reason())))?;
        let m = Migration {
            dir: Some(dir.to_path_buf()),
            plan: checked.plan,
            plan_sha256: normalized_sha256(&bytes),
        };
        m.check().map_err(folder_err)?;
        Ok(m)
    }

    /// A plan held in memory (library users, tests). Its SHA-256 is taken over its JSON.
    pub fn from_plan(plan: MigrationPlan) -> Result<Migration, ApplyError> {
        let json = serde_json::to_vec_pretty(&plan).map_err(|e| ApplyError::Folder {
            dir: "(plan in memory)".into(),
            message: e.to_string(),
        })?;
        let m = Migration {
            dir: None,
            plan,
            plan_sha256: crate::bpl::sha256_hex(&json),
        };
        m.check().map_err(|message| ApplyError::Folder {
            dir: m.origin(),
            message,
        })?;
        Ok(m)
    }

    /// Where the plan came from, for messages.
    pub fn origin(&self) -> String {
        self.dir.as_ref().map_or_else(
            || "(plan in memory)".to_string(),
            |d| d.display().to_string(),
        )
    }

    /// The plan's own consistency: format version and the recorded BPL source hashes.
    fn check(&self) -> Result<(), String> {
        let p = &self.plan;
        if p.schema_version != PLAN_SCHEMA_VERSION {
            return Err(format!(
                "plan.json has schema version {}, this bplmigrate reads version {PLAN_SCHEMA_VERSION}",
                p.schema_version
            ));
        }
        for (which, s) in [("old", &p.old.sha256), ("new", &p.new.sha256)] {
            if !is_sha256(s) {
                return Err(format!(
                    "the {which} BPL source hash {s:?} is not a SHA-256"
                ));
            }
        }
        if p.old.class != p.new.class {
            return Err(format!(
                "the plan migrates {} to another class {}",
                p.old.class, p.new.class
            ));
        }
        // The id is the content hash: a plan.json edited by hand (and re-checksummed) shows.
        match crate::plan::plan_id(p) {
            Ok(id) if id == p.plan_id => {}
            Ok(id) => {
                return Err(format!(
                    "plan_id {} does not match the plan's content (which hashes to {id}); the plan was edited \
                     after it was made: regenerate it with `bplmigrate plan --out`",
                    p.plan_id
                ))
            }
            Err(e) => return Err(e.to_string()),
        }
        Ok(())
    }

    /// The script for `dialect`, rendered from the plan. When the folder holds the script
    /// for the same dialect (`apply.sql` / `revert.sql`, checksummed), the rendered text must
    /// be that text: what runs is what was reviewed.
    pub fn script(&self, dialect: Dialect, direction: Direction) -> Result<SqlScript, ApplyError> {
        let r = match direction {
            Direction::Apply => crate::sql::render(&self.plan, dialect),
            Direction::Revert => crate::sql::render_revert(&self.plan, dialect),
        };
        let script = r.map_err(|e| match e {
            crate::sql::SqlError::NotInvertible { .. } => ApplyError::Unsupported(e.to_string()),
            other => ApplyError::Folder {
                dir: self.origin(),
                message: other.to_string(),
            },
        })?;
        if let Some(dir) = &self.dir {
            let file = match direction {
                Direction::Apply => "apply.sql",
                Direction::Revert => "revert.sql",
            };
            if let Ok(bytes) = crate::input::read(&dir.join(file), crate::input::Kind::PlanFolder) {
                let stored = normalized_text(&bytes);
                if script_dialect(&stored) == Some(dialect)
                    && stored != normalized_text(script.to_sql_text().as_bytes())
                {
                    return Err(ApplyError::Folder {
                        dir: self.origin(),
                        message: format!(
                            "{file} differs from what this bplmigrate renders for plan.json; regenerate the folder \
                             with `bplmigrate plan --out` using this version"
                        ),
                    });
                }
            }
        }
        Ok(script)
    }
}

/// The dialect a stored script names in its header (`…, dialect iris`).
fn script_dialect(text: &str) -> Option<Dialect> {
    let line = text
        .lines()
        .take(12)
        .find(|l| l.starts_with("--") && l.contains(", dialect "))?;
    let word = line.rsplit(", dialect ").next()?.trim();
    if word.starts_with("iris") {
        Some(Dialect::Iris)
    } else if word.starts_with("postgres") {
        Some(Dialect::Postgres)
    } else {
        None
    }
}

/// Text with a BOM dropped and CRLF read as LF (as the folder checksum reads it).
fn normalized_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).replace("\r\n", "\n")
}

fn normalized_sha256(bytes: &[u8]) -> String {
    crate::bpl::sha256_hex(normalized_text(bytes).as_bytes())
}
