//! `info` and `repair`: what has been applied here, Flyway style.
//!
//! `info` lists every history entry of `BplMigrate.History` beside every migration folder of a
//! `--migrations` directory: applied (when, by whom, rows), reverted, dirty, resolved, pending
//! (a folder whose plan is not applied), edited (a folder that fails its checksums), and
//! history entries whose folder is missing. Read-only: a database without the history table
//! has nothing applied, and `info` never creates the table.
//!
//! `repair` closes a dirty entry after a human decision, in place (history is never deleted):
//! - `Resolution::NotApplied` sets `Outcome` to `resolved`: the entry no longer blocks and does
//!   not count as applied — the rows were put back where the plan starts, so the plan may be
//!   applied again, and the chain of sources continues from the entry before it;
//! - `Resolution::Applied` sets `Outcome` to `applied`: the rows are as the plan leaves them;
//!   applying the plan again is refused as "already applied", and `apply --revert` may undo it.
//!
//! Either way `Note` records who decided, when and why, followed by the entry's earlier note.

use super::conn::Db;
use super::error::{ApplyError, DbFailure, Refusal};
use super::folder::Migration;
use super::history::{self, history_table, HistoryEntry, Outcome};
use crate::sql::{self, Direction, CHECKSUM_FILE};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Room for the note column (`VARCHAR(2000)`), kept under it.
const NOTE_MAX: usize = 1990;

/// A folder of a `--migrations` directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FolderEntry {
    /// The folder's name (`0001_Demo.Loan_3c6cef19`).
    pub name: String,
    pub path: PathBuf,
    /// From `plan.json`, even when the folder fails verification (when readable).
    pub plan_id: Option<String>,
    pub class: Option<String>,
    /// Why the folder cannot be applied (edited, added or removed file, bad plan); None when
    /// it verifies.
    pub problem: Option<String>,
}

/// Where a line of `info` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InfoState {
    /// A committed apply.
    Applied,
    /// A committed revert.
    Reverted,
    /// Committed, but the check after commit disagreed: every apply of the class refuses
    /// until `repair`.
    Dirty,
    /// A dirty entry a human resolved as not applied.
    Resolved,
    /// A folder whose plan is not applied here.
    Pending,
    /// A folder that fails verification and has no history entry.
    Edited,
}

impl InfoState {
    pub fn as_str(self) -> &'static str {
        match self {
            InfoState::Applied => "applied",
            InfoState::Reverted => "reverted",
            InfoState::Dirty => "dirty",
            InfoState::Resolved => "resolved",
            InfoState::Pending => "pending",
            InfoState::Edited => "edited",
        }
    }
}

/// One line of `info`: a history entry (with its folder, when `--migrations` was given), or a
/// folder without history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfoLine {
    pub class: String,
    pub plan_id: String,
    pub state: InfoState,
    /// The history entry (None for a folder without history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<HistoryEntry>,
    /// The folder's name, when found under `--migrations`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// `missing` (no folder holds the plan) or why the folder fails verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder_problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InfoReport {
    pub dbms: String,
    /// False when `BplMigrate.History` does not exist: nothing was ever applied here.
    pub history_table: bool,
    /// The classes shown (every class of the history when no filter applies).
    pub classes: Vec<String>,
    pub lines: Vec<InfoLine>,
    pub dirty: usize,
    pub pending: usize,
    pub edited: usize,
    pub missing_folders: usize,
}

/// What `info` looks at.
#[derive(Debug, Clone, Default)]
pub struct InfoOptions {
    /// A directory of migration folders written by `plan --out` (or one such folder).
    pub migrations: Option<PathBuf>,
    /// Only this class (else: the classes of the folders, or every class of the history).
    pub class: Option<String>,
}

/// The folders of a `--migrations` directory, by name. The directory itself may be one
/// migration folder. A path that does not exist is an error that says so.
pub fn scan_migrations(dir: &Path) -> Result<Vec<FolderEntry>, ApplyError> {
    let origin = dir.display().to_string();
    let err = |message: String| ApplyError::Folder {
        dir: origin.clone(),
        message,
    };
    if !dir.exists() {
        return Err(err("does not exist".into()));
    }
    if !dir.is_dir() {
        return Err(err("is not a directory".into()));
    }
    if is_migration_folder(dir) {
        return Ok(vec![folder_entry(dir)]);
    }
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| err(format!("cannot read: {e}")))?;
    for e in entries {
        let e = e.map_err(|e| err(format!("cannot read: {e}")))?;
        let name = e.file_name().to_string_lossy().to_string();
        let path = e.path();
        // `.NAME.tmp` folders are half-written by `plan --out`; anything else without a
        // checksum file or plan is not a migration.
        if name.starts_with('.') || !path.is_dir() {
            continue;
        }
        if is_migration_folder(&path) || path.join("plan.json").is_file() {
            out.push(folder_entry(&path));
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Whether `dir` holds a migration folder's checksum file.
pub fn is_migration_folder(dir: &Path) -> bool {
    dir.join(CHECKSUM_FILE).is_file()
}

/// Why `dir` is not a migration folder when the mistake is a common one: it does not exist,
/// or it is the directory that holds migration folders. None otherwise (the folder check then
/// says what is wrong with it).
pub fn migration_dir_mistake(dir: &Path) -> Option<String> {
    if !dir.exists() {
        return Some("does not exist".into());
    }
    if !dir.is_dir() || is_migration_folder(dir) {
        return None;
    }
    let mut inner: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| is_migration_folder(&e.path()))
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    if inner.is_empty() {
        return None;
    }
    inner.sort();
    let shown: Vec<String> = inner.iter().take(5).cloned().collect();
    let more = if inner.len() > shown.len() {
        ", …"
    } else {
        ""
    };
    Some(format!(
        "is a directory of migration folders, not one migration folder; name one of them: {}{more}",
        shown
            .iter()
            .map(|n| dir.join(n).display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn folder_entry(path: &Path) -> FolderEntry {
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().to_string(),
    );
    match Migration::load(path) {
        Ok(m) => FolderEntry {
            name,
            path: path.to_path_buf(),
            plan_id: Some(m.plan.plan_id.clone()),
            class: Some(m.plan.old.class.clone()),
            problem: None,
        },
        Err(e) => {
            // Name the plan from its plan.json when it can still be read.
            let raw: Option<serde_json::Value> =
                crate::input::read(&path.join("plan.json"), crate::input::Kind::PlanFolder)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
            let field = |v: &serde_json::Value| v.as_str().map(str::to_string);
            let problem = match &e {
                ApplyError::Folder { message, .. } => message.clone(),
                other => other.to_string(),
            };
            FolderEntry {
                name,
                path: path.to_path_buf(),
                plan_id: raw.as_ref().and_then(|v| field(&v["plan_id"])),
                class: raw.as_ref().and_then(|v| field(&v["old"]["class"])),
                problem: Some(problem),
            }
        }
    }
}

fn state_of(e: &HistoryEntry) -> InfoState {
    match (e.outcome, e.direction) {
        (Outcome::Dirty, _) => InfoState::Dirty,
        (Outcome::Resolved, _) => InfoState::Resolved,
        (Outcome::Applied, Direction::Apply) => InfoState::Applied,
        (Outcome::Applied, Direction::Revert) => InfoState::Reverted,
    }
}

/// Whether the plan is applied now: its last committed entry is an apply.
fn is_applied(entries: &[&HistoryEntry], plan_id: &str) -> bool {
    entries
        .iter()
        .rev()
        .find(|e| e.plan_id == plan_id && e.committed())
        .is_some_and(|e| e.direction == Direction::Apply)
}

/// The `info` report. Read-only (SELECTs in autocommit; the history table is only probed).
pub fn info(db: &Db, opts: &InfoOptions) -> Result<InfoReport, ApplyError> {
    super::run::within_lock_timeout(db, super::run::DEFAULT_LOCK_TIMEOUT_MS, false, |db| {
        info_bounded(db, opts)
    })
}

fn info_bounded(db: &Db, opts: &InfoOptions) -> Result<InfoReport, ApplyError> {
    let folders = match &opts.migrations {
        Some(d) => scan_migrations(d)?,
        None => Vec::new(),
    };
    let history_table = history::exists(db).map_err(ApplyError::db)?;
    let history = if history_table {
        // A folder's class read the way `apply` reads it: a row naming it in another spelling
        // is refused here too (not taken for another class, leaving the folder "pending").
        let named: Vec<&str> = folders.iter().filter_map(|f| f.class.as_deref()).collect();
        history::read_spelled(db, opts.class.as_deref(), &named)?
    } else {
        Vec::new()
    };
    let classes: BTreeSet<String> = match (&opts.class, &opts.migrations) {
        (Some(c), _) => [c.clone()].into(),
        (None, Some(_)) => folders.iter().filter_map(|f| f.class.clone()).collect(),
        (None, None) => history.iter().map(|e| e.class.clone()).collect(),
    };
    let by_plan: BTreeMap<&str, &FolderEntry> = folders
        .iter()
        .filter_map(|f| f.plan_id.as_deref().map(|p| (p, f)))
        .collect();
    let mut lines = Vec::new();
    let mut report = InfoReport {
        dbms: db.dbms_name().to_string(),
        history_table,
        classes: classes.iter().cloned().collect(),
        lines: Vec::new(),
        dirty: 0,
        pending: 0,
        edited: 0,
        missing_folders: 0,
    };
    for class in &classes {
        let entries: Vec<&HistoryEntry> = history.iter().filter(|e| &e.class == class).collect();
        for e in &entries {
            let state = state_of(e);
            if state == InfoState::Dirty {
                report.dirty += 1;
            }
            let folder = by_plan.get(e.plan_id.as_str());
            let folder_problem = match folder {
                Some(f) => f.problem.clone(),
                None if opts.migrations.is_some() => {
                    report.missing_folders += 1;
                    Some("missing".into())
                }
                None => None,
            };
            lines.push(InfoLine {
                class: class.clone(),
                plan_id: e.plan_id.clone(),
                state,
                entry: Some((*e).clone()),
                folder: folder.map(|f| f.name.clone()),
                folder_problem,
            });
        }
        for f in folders.iter().filter(|f| f.class.as_ref() == Some(class)) {
            let plan_id = f.plan_id.clone().unwrap_or_default();
            if f.problem.is_some() {
                report.edited += 1;
            }
            let in_history = entries.iter().any(|e| e.plan_id == plan_id);
            let dirty = entries
                .iter()
                .any(|e| e.plan_id == plan_id && e.outcome == Outcome::Dirty);
            if in_history && (is_applied(&entries, &plan_id) || dirty || f.problem.is_some()) {
                continue; // shown on its history lines
            }
            let state = if f.problem.is_some() {
                InfoState::Edited
            } else {
                report.pending += 1;
                InfoState::Pending
            };
            lines.push(InfoLine {
                class: class.clone(),
                plan_id,
                state,
                entry: None,
                folder: Some(f.name.clone()),
                folder_problem: f.problem.clone(),
            });
        }
    }
    // Folders whose plan names no class (plan.json unreadable): still shown, as edited.
    if opts.class.is_none() {
        for f in folders.iter().filter(|f| f.class.is_none()) {
            report.edited += 1;
            lines.push(InfoLine {
                class: String::new(),
                plan_id: f.plan_id.clone().unwrap_or_default(),
                state: InfoState::Edited,
                entry: None,
                folder: Some(f.name.clone()),
                folder_problem: f.problem.clone(),
            });
        }
    }
    report.lines = lines;
    Ok(report)
}

/// A human's decision about a dirty entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The rows are as the plan leaves them: the entry counts as applied.
    Applied,
    /// The rows are where the plan starts (put back by hand): the entry does not count.
    NotApplied,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    pub class: String,
    pub seq: i64,
    pub plan_id: String,
    pub resolution: Resolution,
    /// The entry's new outcome (`applied` or `resolved`).
    pub outcome: Outcome,
    pub note: String,
}

/// Marks dirty entry `seq` of `class` resolved: see the module documentation. Runs in one
/// transaction under the apply lock of the class, and changes exactly that one row.
pub fn repair(
    db: &mut Db,
    class: &str,
    seq: i64,
    resolution: Resolution,
    by: &str,
    reason: &str,
) -> Result<RepairReport, ApplyError> {
    super::run::within_lock_timeout(db, super::run::DEFAULT_LOCK_TIMEOUT_MS, false, |db| {
        repair_bounded(db, class, seq, resolution, by, reason)
    })
}

fn repair_bounded(
    db: &mut Db,
    class: &str,
    seq: i64,
    resolution: Resolution,
    by: &str,
    reason: &str,
) -> Result<RepairReport, ApplyError> {
    if reason.trim().is_empty() {
        return Err(ApplyError::Unsupported(
            "repair needs a reason (--reason): it is recorded in the history".into(),
        ));
    }
    // The note holds the record of the repair (time, who — up to 220 characters —, what) and
    // the reason: a reason it cannot hold whole is refused, not cut.
    let room = NOTE_MAX - 300;
    let len = reason.trim().chars().count();
    if len > room {
        return Err(ApplyError::Unsupported(format!(
            "the reason (--reason) is {len} characters; the history note keeps at most {room} of it: shorten it"
        )));
    }
    if !history::exists(db).map_err(ApplyError::db)? {
        return Err(ApplyError::Unsupported(format!(
            "{} does not exist on this database: no apply ran here, so there is nothing to repair",
            history_table()
        )));
    }
    db.begin("begin transaction")?;
    let r = repair_in_transaction(db, class, seq, resolution, by, reason);
    match r {
        Ok(report) => {
            let committed = db.commit();
            history::unlock(db);
            committed.map_err(|failure| ApplyError::Database {
                failure,
                in_transaction: true,
                rolled_back: false,
            })?;
            Ok(report)
        }
        Err(e) => {
            let rolled_back = db.rollback().is_ok();
            history::unlock(db);
            Err(match e {
                ApplyError::Database { failure, .. } => ApplyError::Database {
                    failure,
                    in_transaction: true,
                    rolled_back,
                },
                other => other,
            })
        }
    }
}

fn repair_in_transaction(
    db: &Db,
    class: &str,
    seq: i64,
    resolution: Resolution,
    by: &str,
    reason: &str,
) -> Result<RepairReport, ApplyError> {
    if !history::try_lock(db, class)? {
        return Err(ApplyError::Refused {
            refusals: vec![Refusal::Locked {
                class: class.to_string(),
            }],
        });
    }
    let entries = history::read(db, Some(class))?;
    let Some(e) = entries.iter().find(|e| e.seq == seq) else {
        let known: Vec<String> = entries.iter().map(|e| e.seq.to_string()).collect();
        return Err(ApplyError::Unsupported(format!(
            "{class} has no history entry {seq} (entries: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    if e.outcome != Outcome::Dirty {
        return Err(ApplyError::Unsupported(format!(
            "history entry {seq} of {class} is {}, not dirty: there is nothing to repair",
            e.outcome.as_str()
        )));
    }
    let (outcome, meaning) = match resolution {
        Resolution::Applied => (Outcome::Applied, "the rows are as the plan leaves them"),
        Resolution::NotApplied => (Outcome::Resolved, "the rows are where the plan starts"),
    };
    let at = history::utc_now();
    let mut note = format!(
        "repaired {at} by {by} as {} ({meaning}): {}",
        outcome.as_str(),
        reason.trim()
    );
    if !e.note.is_empty() {
        note.push_str(" | was: ");
        note.push_str(&e.note);
    }
    // The earlier note may not fit beside it: cut, and marked as cut.
    let note: String = if note.chars().count() > NOTE_MAX {
        note.chars().take(NOTE_MAX - 1).chain(['…']).collect()
    } else {
        note
    };
    let step = "mark the history entry";
    let q = sql::history_update(
        db.dialect(),
        &history_table(),
        &["Outcome", "Note"],
        &["BplClass", "Seq", "Outcome"],
    )
    .map_err(|e| DbFailure::refused_sql(step, &e))?;
    let seq_text = seq.to_string();
    let n = db.execute(
        step,
        q.as_str(),
        &[
            outcome.as_str(),
            &note,
            class,
            &seq_text,
            Outcome::Dirty.as_str(),
        ],
    )?;
    if n.is_some_and(|n| n != 1) {
        return Err(ApplyError::db(DbFailure::local(
            step,
            format!("the update changed {n:?} rows instead of 1"),
        )));
    }
    Ok(RepairReport {
        class: class.to_string(),
        seq,
        plan_id: e.plan_id.clone(),
        resolution,
        outcome,
        note,
    })
}
