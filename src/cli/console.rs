//! The operator's console: `info` (what is applied here) and `repair` (close a dirty entry).

use super::db::{applied_by, connect, failure, json};
use super::{emit, exit, CmdResult, Format};
use crate::apply::{self, InfoLine, InfoOptions, InfoReport, InfoState, Resolution};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 everything applied, nothing dirty; 1 a migration folder is pending \
    (not applied here); 2 a migration folder fails verification (edited); 3 a history entry is dirty \
    (every apply of its class refuses until `bplmigrate repair`); 4 the database failed. When several hold, \
    the highest wins."
)]
pub struct InfoArgs {
    /// ODBC connection string (or BPLMIGRATE_CONNECT); the password is never printed.
    #[arg(long, env = "BPLMIGRATE_CONNECT", hide_env_values = true)]
    pub connect: String,
    /// The directory `plan --out` writes migration folders into (or one migration folder):
    /// each folder is shown beside the history (pending, edited; history entries without a
    /// folder are marked missing).
    #[arg(long, value_name = "DIR")]
    pub migrations: Option<PathBuf>,
    /// Only this BPL class (default: the classes of the folders, else every class in the history).
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
#[command(
    after_help = "The entry is changed in place, never deleted: its Outcome becomes `applied` \
    (--applied) or `resolved` (--not-applied) and its Note records who, when and why. Exit codes: 0 marked; \
    2 no such entry, not dirty, or no reason; 3 an apply of the class is running; 4 the database failed."
)]
pub struct RepairArgs {
    /// ODBC connection string (or BPLMIGRATE_CONNECT); the password is never printed.
    #[arg(long, env = "BPLMIGRATE_CONNECT", hide_env_values = true)]
    pub connect: String,
    /// The BPL class of the dirty entry.
    #[arg(long, value_name = "NAME")]
    pub class: String,
    /// The entry number (`seq` in `bplmigrate info`).
    #[arg(long, value_name = "N")]
    pub entry: i64,
    /// You checked the rows: they are as the plan leaves them (the entry counts as applied;
    /// `apply --revert` can undo it).
    #[arg(
        long,
        conflicts_with = "not_applied",
        required_unless_present = "not_applied"
    )]
    pub applied: bool,
    /// You checked the rows: they are where the plan starts (e.g. put back by hand); the entry
    /// no longer counts and the plan may be applied again.
    #[arg(long)]
    pub not_applied: bool,
    /// Why: recorded in the history entry with your user name.
    #[arg(long, value_name = "TEXT")]
    pub reason: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn info(a: InfoArgs) -> CmdResult {
    // Folder mistakes are input errors before any connection is made.
    if let Some(d) = &a.migrations {
        apply::scan_migrations(d).map_err(failure)?;
    }
    let db = connect(&a.connect)?;
    let opts = InfoOptions {
        migrations: a.migrations.clone(),
        class: a.class.clone(),
    };
    let report = apply::info(&db, &opts).map_err(failure)?;
    match a.format {
        Format::Json => emit(&json("info", &report)?)?,
        Format::Human => emit(&human_info(&report))?,
    }
    Ok(info_code(&report))
}

/// The documented exit code of an `info` report.
fn info_code(r: &InfoReport) -> i32 {
    if r.dirty > 0 {
        exit::REFUSED
    } else if r.edited > 0 {
        exit::INPUT
    } else if r.pending > 0 {
        exit::FOUND
    } else {
        exit::OK
    }
}

fn line_row(l: &InfoLine) -> Vec<String> {
    let dash = || "-".to_string();
    let e = l.entry.as_ref();
    let folder = match (&l.folder, &l.folder_problem) {
        (Some(f), Some(_)) => format!("{f} (edited)"),
        (Some(f), None) => f.clone(),
        (None, Some(p)) => format!("({p})"),
        (None, None) => dash(),
    };
    vec![
        l.class.clone(),
        e.map_or_else(dash, |e| e.seq.to_string()),
        l.plan_id.clone(),
        l.state.as_str().to_string(),
        e.map_or_else(dash, |e| e.applied_at.clone()),
        e.map_or_else(dash, |e| e.applied_by.clone()),
        e.and_then(|e| e.rows_changed)
            .map_or_else(dash, |n| n.to_string()),
        folder,
    ]
}

fn human_info(r: &InfoReport) -> String {
    let mut out = String::new();
    if !r.history_table {
        out.push_str(&format!(
            "{} does not exist on this {} database: nothing was ever applied here\n",
            apply::history_table(),
            r.dbms
        ));
    }
    if r.lines.is_empty() {
        out.push_str("no history entry and no migration folder\n");
        return out;
    }
    let rows: Vec<Vec<String>> = r.lines.iter().map(line_row).collect();
    out.push_str(&super::db::aligned(
        &[
            "class", "seq", "plan", "state", "at (UTC)", "by", "rows", "folder",
        ],
        &rows,
    ));
    for l in &r.lines {
        let what = match (&l.entry, &l.folder) {
            (Some(e), _) => format!("entry {} of {}", e.seq, l.class),
            (None, Some(f)) => format!("folder {f}"),
            (None, None) => continue,
        };
        if let (Some(p), Some(_)) = (&l.folder_problem, &l.folder) {
            out.push_str(&format!("  {what}: the folder fails verification: {p}\n"));
        }
        if let Some(e) = &l.entry {
            if !e.note.is_empty() {
                out.push_str(&format!("  {what}: {}\n", e.note));
            }
            if l.state == InfoState::Dirty {
                out.push_str(&format!(
                    "  {what} is dirty: check the rows, then `bplmigrate repair --class {} --entry {} \
                     (--applied | --not-applied) --reason TEXT`\n",
                    l.class, e.seq
                ));
            }
        }
    }
    let mut summary = Vec::new();
    for (n, what) in [
        (r.dirty, "dirty"),
        (r.edited, "edited"),
        (r.pending, "pending"),
        (r.missing_folders, "without a folder"),
    ] {
        if n > 0 {
            summary.push(format!("{n} {what}"));
        }
    }
    if summary.is_empty() {
        out.push_str("everything applied, nothing dirty\n");
    } else {
        out.push_str(&format!("{}\n", summary.join(", ")));
    }
    out
}

pub fn repair(a: RepairArgs) -> CmdResult {
    let resolution = if a.applied {
        Resolution::Applied
    } else {
        Resolution::NotApplied
    };
    let mut db = connect(&a.connect)?;
    let r = apply::repair(
        &mut db,
        &a.class,
        a.entry,
        resolution,
        &applied_by(),
        &a.reason,
    )
    .map_err(failure)?;
    match a.format {
        Format::Json => emit(&json("repair", &r)?)?,
        Format::Human => emit(&format!(
            "history entry {} of {} (plan {}) is now {}\n  note: {}\n",
            r.seq, r.class, r.plan_id, r.outcome, r.note
        ))?,
    }
    Ok(exit::OK)
}
