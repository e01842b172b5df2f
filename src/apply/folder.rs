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
    /// Every file the folder's checksum file names (empty for a plan in memory).
    pub files: Vec<String>,
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Migration {
    /// Reads a folder written by `plan --out` and runs every check a folder must pass — the
    /// one check `apply`, `status --plan` and `plan --verify` share: the checksum file covers
    /// exactly the files present, unchanged; `plan.json` has this tool's `schema_version`,
    /// SHA-256 source hashes and the `plan_id` its content hashes to; `apply.sql` and
    /// `revert.sql` are present and are what `plan.json` renders in the dialect `apply.sql`'s
    /// header names.
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
            files: checked.files,
        };
        m.check().map_err(folder_err)?;
        crate::sql::check_folder_name(dir, &m.plan).map_err(|e| folder_err(e.to_string()))?;
        crate::sql::check_scripts(dir, &m.plan).map_err(|e| folder_err(e.to_string()))?;
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
            files: Vec::new(),
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

    /// The script for `dialect`, rendered from the plan (a loaded folder's stored scripts were
    /// checked against the plan by [`Migration::load`]).
    pub fn script(&self, dialect: Dialect, direction: Direction) -> Result<SqlScript, ApplyError> {
        let r = match direction {
            Direction::Apply => crate::sql::render(&self.plan, dialect),
            Direction::Revert => crate::sql::render_revert(&self.plan, dialect),
        };
        r.map_err(|e| match e {
            crate::sql::SqlError::NotInvertible { .. } => ApplyError::Unsupported(e.to_string()),
            other => ApplyError::Folder {
                dir: self.origin(),
                message: other.to_string(),
            },
        })
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
