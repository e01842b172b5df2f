//! `check`: the CI gate. Arguments are resolved first into the classes to check (two files,
//! or every BPL class changed between two git trees), then each class gets a verdict
//! (its plan's, or `covered` by a reviewed migration folder), then the reports are written.

use super::states_cmd::CompilerArg;
use super::{emit_keeping, pretty_json, CmdResult, Exit, Failure};
use crate::bpl::Bpl;
use crate::check::classes::ClassChange;
use crate::check::cover::{self, Cover, Mismatch};
use crate::check::git::{self, Repo};
use crate::check::{self as gate, FailOn};
use crate::plan::reports::{self, Checked};
use crate::plan::{self, Finding, MigrationPlan, Overrides, Severity, Verdict};
use crate::states::Compiler;
use anyhow::{anyhow, Context as _};
use clap::{Args, ValueEnum};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const CHECK_AFTER_HELP: &str = "\
Exit codes: the highest that applies wins (2 over 1 over 0)
  0  every class is identical, compatible, new, covered by a reviewed migration folder,
     below the --fail-on threshold, a deletion acknowledged in --overrides, or a change
     from an old version that does not parse (BPM0409, a warning)
  1  a class needs action (its verdict reaches --fail-on), or a BPL class was deleted
  2  usage or input error: bad arguments, a hostile or unknown revision, not inside a git
     repository, bad overrides, a report file that would overwrite something else, a write
     error on standard output; or a changed BPL file that cannot be checked (malformed, over
     --max-input-size, refused by the emulation): that file is a BPM0408 result and every
     other class is still checked, reported and written to the requested reports
A closed standard output (`check … | head -1`) keeps the verdict's exit code.

Examples:
  bplmigrate check old/Loan.cls src/Loan.cls
  bplmigrate check --git-base origin/main --migrations migrations --report-gitlab gl-code-quality-report.json
  bplmigrate check --git-base HEAD~1 --git-head HEAD --format sarif > check.sarif";

#[derive(Debug, Args)]
#[command(after_help = CHECK_AFTER_HELP)]
pub struct CheckArgs {
    /// Without --git-base: OLD and NEW BPL (a path or REV:path each). With --git-base: check
    /// only the classes in these files or folders (default: every changed BPL class; a file
    /// or folder without a changed BPL class selects nothing).
    #[arg(value_name = "PATHS")]
    pub paths: Vec<String>,
    /// Compare with this git revision: every BPL class changed since the merge base of REV
    /// and the head, by class name (renamed and moved files are followed).
    #[arg(long, value_name = "REV")]
    pub git_base: Option<String>,
    /// The new side: this revision instead of the working tree.
    #[arg(long, value_name = "REV", requires = "git_base")]
    pub git_head: Option<String>,
    /// Folder of reviewed migration folders (written by `plan --out`): a committed folder made
    /// from exactly this old→new change, with intact checksums, makes the class `covered`.
    /// Read from the working tree, or with --git-head from that commit.
    #[arg(long, value_name = "DIR")]
    pub migrations: Option<PathBuf>,
    /// Overrides file of a change (repeatable). A file naming old_sha256/new_sha256 applies to
    /// the change with those sources; one without applies when a single class is checked.
    #[arg(long, value_name = "FILE")]
    pub overrides: Vec<PathBuf>,
    /// The lowest verdict that fails the check (exit 1).
    #[arg(
        long,
        value_enum,
        default_value_t,
        ignore_case = true,
        value_name = "VERDICT"
    )]
    pub fail_on: FailOnArg,
    /// Output on standard output (`-`).
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub format: CheckFormat,
    /// Also write a GitLab Code Quality report to FILE (only over a file that is one; `-`:
    /// standard output, instead of --format).
    /// `--gitlab` is the old name.
    #[arg(long = "report-gitlab", alias = "gitlab", value_name = "FILE")]
    pub report_gitlab: Option<PathBuf>,
    /// Also write a SARIF 2.1.0 report to FILE (only over a file that is one; `-`: standard
    /// output, instead of --format). `--sarif` is the old name.
    #[arg(long = "report-sarif", alias = "sarif", value_name = "FILE")]
    pub report_sarif: Option<PathBuf>,
    /// The IRIS compiler generation that numbers both versions (spec 2.5).
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub compiler: CompilerArg,
    /// The BPL class: picks one of several in an export, names a bare <process> document;
    /// with --git-base, checks only this class.
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum CheckFormat {
    /// Per class: verdict, findings as file:line:col, then a summary.
    #[default]
    Human,
    /// The whole result, with every plan.
    Json,
    /// GitLab Code Quality report.
    Gitlab,
    /// SARIF 2.1.0 log.
    Sarif,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum FailOnArg {
    /// Fail on anything beyond compatible.
    #[default]
    Drain,
    /// Fail when rows must be rewritten, or blocked.
    Migratable,
    /// Fail only when blocked (or a class was deleted).
    Blocked,
}

impl From<FailOnArg> for FailOn {
    fn from(a: FailOnArg) -> FailOn {
        match a {
            FailOnArg::Drain => FailOn::Drain,
            FailOnArg::Migratable => FailOn::Migratable,
            FailOnArg::Blocked => FailOn::Blocked,
        }
    }
}

impl FailOnArg {
    fn as_str(self) -> &'static str {
        match self {
            FailOnArg::Drain => "drain",
            FailOnArg::Migratable => "migratable",
            FailOnArg::Blocked => "blocked",
        }
    }
}

/// One class to check, resolved from the arguments.
struct Item {
    class: String,
    /// Repository-relative (or, outside a repository, as given) path findings point at, as
    /// messages show it.
    path: String,
    /// That path as git stores it (the SARIF uri is made from these bytes).
    path_bytes: Vec<u8>,
    /// The old file when the class moved.
    old_path: Option<String>,
    kind: ItemKind,
}

// A handful per run, moved once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum ItemKind {
    Changed {
        old: Bpl,
        new: Bpl,
    },
    Added {
        new: Bpl,
    },
    Removed {
        old: Bpl,
    },
    /// The old version of the file could not be read (BPM0409, or BPM0408 when it was only
    /// over the size cap).
    OldUnreadable {
        new: Bpl,
        old_origin: String,
        old_error: String,
        too_large: bool,
    },
    /// A changed file whose BPL could not be read at all.
    Unreadable {
        /// `REV:path` or the path of the version that failed.
        origin: String,
        /// The message, without the place.
        reason: String,
        pos: Option<(u32, u32)>,
        /// A new version that cannot be read (or an old one over the size cap): exit 2.
        /// Otherwise an old version that does not parse, whose file was deleted or holds no
        /// BPL class now: a warning.
        fatal: bool,
    },
}

/// What `check` found for one class.
#[derive(serde::Serialize)]
struct ClassResult {
    class: String,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_path: Option<String>,
    /// `identical`, `compatible`, …, `covered`, `new`, `deleted`, `not-checked` (the class
    /// could not be checked: `error` says why; exit 2) or `old-unreadable` (the old version
    /// of its file could not be read).
    outcome: String,
    /// The verdict of the change itself (also when covered). None for a new class.
    verdict: Option<Verdict>,
    /// Whether this class fails the check at the chosen threshold.
    fails: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    covered_by: Option<String>,
    /// Migration folders of this change that do not cover it, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    not_covering: Vec<Mismatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<String>,
    findings: Vec<Finding>,
    /// Where findings without a new-version activity point (line, column).
    #[serde(skip)]
    fallback: (u32, u32),
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<MigrationPlan>,
    /// Why the class could not be checked (outcome `not-checked`).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip)]
    path_bytes: Vec<u8>,
}

#[derive(serde::Serialize)]
struct CheckReport {
    /// The worst outcome among classes not covered (`covered` when every changed class is,
    /// `identical` when nothing changed, `not-checked` when a class could not be checked).
    verdict: String,
    fail_on: &'static str,
    /// Whether the check fails (exit 1).
    fails: bool,
    results: Vec<ClassResult>,
}

/// What goes to standard output: `--format`, or a report given as `-`.
fn stdout_format(a: &CheckArgs) -> Result<CheckFormat, Failure> {
    let dash = |p: &Option<PathBuf>| p.as_deref() == Some(Path::new("-"));
    let wanted = match (dash(&a.report_gitlab), dash(&a.report_sarif)) {
        (true, true) => {
            return Err(Failure::input(anyhow!(
                "--report-gitlab - and --report-sarif - both ask for standard output: write one of them to a file"
            )))
        }
        (true, false) => CheckFormat::Gitlab,
        (false, true) => CheckFormat::Sarif,
        (false, false) => return Ok(a.format),
    };
    if a.format != CheckFormat::Human && a.format != wanted {
        return Err(Failure::input(anyhow!(
            "standard output cannot carry both --format {} and a report given as `-`",
            a.format
                .to_possible_value()
                .map(|v| v.get_name().to_string())
                .unwrap_or_default()
        )));
    }
    Ok(wanted)
}

pub fn check(a: CheckArgs) -> CmdResult {
    let compiler: Compiler = a.compiler.into();
    let fail_on: FailOn = a.fail_on.into();
    let format = stdout_format(&a)?;
    let cwd = std::env::current_dir()
        .context("cannot read the current directory")
        .map_err(Failure::input)?;
    let (items, repo) = match &a.git_base {
        Some(base) => {
            let repo = Repo::discover(&cwd).map_err(Failure::input)?;
            let items = git_items(&repo, base, a.git_head.as_deref(), &a.paths, &a.class)?;
            (items, Some(repo))
        }
        None => {
            let repo = Repo::discover(&cwd).ok();
            (file_items(&a.paths, &a.class, repo.as_ref())?, repo)
        }
    };
    let migrations = match &a.migrations {
        Some(dir) => Some(Migrations::open(
            dir,
            repo.as_ref(),
            a.git_base.as_ref().and(a.git_head.as_deref()),
        )?),
        None => None,
    };
    let overrides = read_overrides(&a.overrides)?;
    // The classes an overrides file may apply to: changed and deleted ones.
    let changed = items
        .iter()
        .filter(|i| matches!(i.kind, ItemKind::Changed { .. } | ItemKind::Removed { .. }))
        .count();
    let mut used = vec![false; overrides.len()];
    let mut results = Vec::new();
    for item in items {
        results.push(check_item(
            item,
            compiler,
            fail_on,
            &overrides,
            &mut used,
            changed,
            migrations.as_ref(),
        )?);
    }
    let errors: Vec<String> = results.iter().filter_map(|r| r.error.clone()).collect();
    // An overrides file may be meant for a class that could not be checked.
    if let (Some(i), true) = (used.iter().position(|u| !u), errors.is_empty()) {
        let (file, ov) = &overrides[i];
        let why = if ov.old_sha256.is_some() || ov.new_sha256.is_some() {
            "its old_sha256/new_sha256 name another change"
        } else {
            "it names no old_sha256/new_sha256, and no changed or deleted BPL class is checked here"
        };
        return Err(Failure::input(anyhow!(
            "overrides file {} applies to no class checked here ({why})",
            file.display()
        )));
    }
    // Exit code precedence: 2 (a class could not be checked) over 1 (a class fails) over 0.
    let fails = results.iter().any(|r| r.fails);
    let code = match (errors.is_empty(), fails) {
        (false, _) => Exit::Input,
        (true, true) => Exit::Found,
        (true, false) => Exit::Clean,
    };
    let report = CheckReport {
        verdict: if errors.is_empty() {
            overall(&results)
        } else {
            "not-checked".into()
        },
        fail_on: a.fail_on.as_str(),
        fails,
        results,
    };
    let checked: Vec<Checked> = report
        .results
        .iter()
        .filter(|r| !r.findings.is_empty())
        .map(|r| Checked {
            class: &r.class,
            path: &r.path,
            path_bytes: &r.path_bytes,
            findings: &r.findings,
            fallback: r.fallback,
            covered_by: r.covered_by.as_deref(),
        })
        .collect();
    let to_file = |p: &Option<PathBuf>| p.clone().filter(|p| p != Path::new("-"));
    if let Some(f) = to_file(&a.report_gitlab) {
        write_report(&f, &reports::gitlab(&checked), ReportKind::Gitlab)?;
    }
    if let Some(f) = to_file(&a.report_sarif) {
        write_report(&f, &reports::sarif(&checked), ReportKind::Sarif)?;
    }
    if std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true") {
        // Workflow commands are read from both streams; stderr keeps stdout's format clean.
        let mut err = std::io::stderr().lock();
        let _ = std::io::Write::write_all(&mut err, github_annotations(&checked).as_bytes());
    }
    let text = match format {
        CheckFormat::Human => human(&report),
        CheckFormat::Json => pretty_json(&report, Exit::Input)?,
        CheckFormat::Gitlab => pretty_json(&reports::gitlab(&checked), Exit::Input)?,
        CheckFormat::Sarif => pretty_json(&reports::sarif(&checked), Exit::Input)?,
    };
    emit_keeping(&text, code)?;
    if let Some((first, rest)) = errors.split_first() {
        // Reports and the output above carry every other class's result; this says why the
        // exit code is 2.
        let more = if rest.is_empty() {
            String::new()
        } else {
            format!("\n  {}", rest.join("\n  "))
        };
        let others = if report.results.len() > errors.len() {
            "; every other class was checked and reported"
        } else {
            ""
        };
        return Err(Failure::input(anyhow!(
            "{first}{more}\n  ({} not checked{others})",
            counted(errors.len(), "changed BPL file")
        )));
    }
    Ok(code)
}

/// `1 changed BPL file`, `2 changed BPL files`.
fn counted(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// `check OLD NEW`: one class, from two files (or `REV:path`s).
fn file_items(
    paths: &[String],
    class: &Option<String>,
    repo: Option<&Repo>,
) -> Result<Vec<Item>, Failure> {
    let [old, new] = paths else {
        return Err(Failure::input(anyhow!(
            "check needs OLD and NEW, or --git-base REV [PATHS…] (got {} path{})",
            paths.len(),
            if paths.len() == 1 { "" } else { "s" }
        )));
    };
    // Findings point at the new file, named relative to the repository root when there is one.
    let display = |src: &str| -> String {
        if Path::new(src).exists() {
            if let Some(p) = repo.and_then(|r| r.relative(src)) {
                return p;
            }
            return src.trim_start_matches("./").to_string();
        }
        match src.split_once(':') {
            Some((_, p)) if p.starts_with("./") || p.starts_with("../") => repo
                .and_then(|r| r.relative(p))
                .unwrap_or_else(|| p.to_string()),
            Some((_, p)) => p.to_string(),
            None => src.to_string(),
        }
    };
    let (path, old_path) = (display(new), display(old));
    let options = crate::bpl::LoadOptions {
        class: class.clone(),
    };
    let loaded = crate::bpl::load(old, &options)
        .map_err(|e| (e, true))
        .and_then(|o| {
            crate::bpl::load(new, &options)
                .map(|n| (o, n))
                .map_err(|e| (e, false))
        });
    let (mut o, mut n) = match loaded {
        Ok(v) => v,
        // A malformed file is still a result, so the requested reports are written; it
        // points at the file that failed.
        Err((e, in_old)) => {
            let (path, old_path) = if in_old {
                (old_path, None)
            } else {
                let moved = (old_path != path).then_some(old_path);
                (path, moved)
            };
            return Ok(vec![Item {
                class: class.clone().unwrap_or_else(|| path.clone()),
                path_bytes: path.as_bytes().to_vec(),
                old_path,
                path,
                kind: ItemKind::Unreadable {
                    pos: e.pos.map(|p| (p.line, p.column)),
                    origin: e.file.clone(),
                    reason: e.message.clone(),
                    fatal: true,
                },
            }]);
        }
    };
    crate::bpl::settle_class_names(&mut o, &mut n);
    Ok(vec![Item {
        class: n.class_name.clone(),
        path_bytes: path.as_bytes().to_vec(),
        old_path: (old_path != path).then_some(old_path),
        path,
        kind: ItemKind::Changed { old: o, new: n },
    }])
}

/// `check --git-base`: every changed BPL class, by class name, limited to `paths` and `class`.
fn git_items(
    repo: &Repo,
    base: &str,
    head: Option<&str>,
    paths: &[String],
    class: &Option<String>,
) -> Result<Vec<Item>, Failure> {
    let changes = gate::git_changes(repo, base, head).map_err(Failure::input)?;
    let bad_path = |u: &gate::Unreadable, f: &str| {
        f.is_empty() || u.path == f || u.path.starts_with(&format!("{f}/"))
    };
    let mut filters = Vec::new();
    for p in paths {
        let rel = repo.relative(p).ok_or_else(|| {
            Failure::input(anyhow!(
                "{p} is outside the repository {}",
                repo.top.display()
            ))
        })?;
        let touched = changes.changes.iter().any(|c| under(c, &rel))
            || changes.unreadable.iter().any(|u| bad_path(u, &rel));
        // A path that exists but holds no changed BPL class (a changed class without BPL, an
        // untouched file) selects nothing, as a folder without one does: CI jobs pass the
        // list of every changed `.cls` file. Only a path that names nothing is a typo.
        if !touched && !Path::new(p).exists() {
            return Err(Failure::input(anyhow!(
                "{p}: no such file or folder, and no BPL class changed there"
            )));
        }
        filters.push(rel);
    }
    let mut items = Vec::new();
    for u in changes.unreadable {
        if !filters.is_empty() && !filters.iter().any(|f| bad_path(&u, f)) {
            continue;
        }
        // A file whose classes are not known is kept whatever --class names.
        if class
            .as_ref()
            .is_some_and(|k| !u.classes.is_empty() && !u.classes.contains(k))
        {
            continue;
        }
        let fatal = u.is_error();
        let reason = u.error.reason();
        items.push(Item {
            class: if u.classes.is_empty() {
                u.path.clone()
            } else {
                u.classes.join(", ")
            },
            path: u.path,
            path_bytes: u.raw_path,
            old_path: None,
            kind: ItemKind::Unreadable {
                pos: u.error.pos(),
                origin: u.origin,
                reason,
                fatal,
            },
        });
    }
    for c in changes.changes {
        if !filters.is_empty() && !filters.iter().any(|f| under(&c, f)) {
            continue;
        }
        if class.as_ref().is_some_and(|k| k != c.class()) {
            continue;
        }
        let class = c.class().to_string();
        let path = c.path().to_string();
        let path_bytes = c.raw_path().to_vec();
        items.push(match c {
            ClassChange::Changed { old, new } => Item {
                class,
                old_path: (old.path != new.path).then_some(old.path),
                path,
                path_bytes,
                kind: ItemKind::Changed {
                    old: old.bpl,
                    new: new.bpl,
                },
            },
            ClassChange::Added { new } => Item {
                class,
                path,
                path_bytes,
                old_path: None,
                kind: ItemKind::Added { new: new.bpl },
            },
            ClassChange::Removed { old } => Item {
                class,
                path,
                path_bytes,
                old_path: None,
                kind: ItemKind::Removed { old: old.bpl },
            },
            ClassChange::OldUnreadable {
                new,
                old_origin,
                old_error,
                old_too_large,
            } => Item {
                class,
                path,
                path_bytes,
                old_path: None,
                kind: ItemKind::OldUnreadable {
                    new: new.bpl,
                    old_origin,
                    old_error,
                    too_large: old_too_large,
                },
            },
        });
    }
    // In class-name order; a file that cannot be read sorts by the classes it declares, or
    // its path.
    items.sort_by(|a, b| a.class.cmp(&b.class));
    Ok(items)
}

/// Whether a change touches `filter` (a repository-relative file or folder; empty = all).
fn under(c: &ClassChange, filter: &str) -> bool {
    if filter.is_empty() || c.touches(filter) {
        return true;
    }
    let dir = format!("{filter}/");
    match c {
        ClassChange::Changed { old, new } => {
            old.path.starts_with(&dir) || new.path.starts_with(&dir)
        }
        ClassChange::Added { new: v }
        | ClassChange::Removed { old: v }
        | ClassChange::OldUnreadable { new: v, .. } => v.path.starts_with(&dir),
    }
}

fn read_overrides(files: &[PathBuf]) -> Result<Vec<(PathBuf, Overrides)>, Failure> {
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read overrides file {}", f.display()))
                .map_err(Failure::input)?;
            let ov = Overrides::parse(&f.display().to_string(), &text).map_err(Failure::input)?;
            Ok((f.clone(), ov))
        })
        .collect()
}

/// The overrides file for a change: one whose hashes name these sources, or, when a single
/// class changed, one that names none.
fn overrides_for<'o>(
    overrides: &'o [(PathBuf, Overrides)],
    used: &mut [bool],
    old: &Bpl,
    new: &Bpl,
    changed: usize,
) -> Result<Option<&'o Overrides>, Failure> {
    let mut found: Option<usize> = None;
    for (i, (file, ov)) in overrides.iter().enumerate() {
        let named = ov.old_sha256.is_some() || ov.new_sha256.is_some();
        let matches = ov
            .old_sha256
            .as_ref()
            .is_none_or(|(_, h)| h.eq_ignore_ascii_case(&old.source.sha256))
            && ov
                .new_sha256
                .as_ref()
                .is_none_or(|(_, h)| h.eq_ignore_ascii_case(&new.source.sha256));
        if !named && changed > 1 {
            return Err(Failure::input(anyhow!(
                "overrides file {} names no old_sha256/new_sha256, but {changed} classes changed: add the hashes of its change (printed by `bplmigrate plan`)",
                file.display()
            )));
        }
        if matches {
            if let Some(j) = found {
                return Err(Failure::input(anyhow!(
                    "overrides files {} and {} both apply to {}: give one",
                    overrides[j].0.display(),
                    file.display(),
                    new.class_name
                )));
            }
            found = Some(i);
        }
    }
    Ok(found.map(|i| {
        used[i] = true;
        &overrides[i].1
    }))
}

#[allow(clippy::too_many_arguments)]
fn check_item(
    item: Item,
    compiler: Compiler,
    fail_on: FailOn,
    overrides: &[(PathBuf, Overrides)],
    used: &mut [bool],
    changed: usize,
    migrations: Option<&Migrations>,
) -> Result<ClassResult, Failure> {
    let mut r = ClassResult {
        class: item.class,
        path: item.path,
        old_path: item.old_path,
        outcome: String::new(),
        verdict: None,
        fails: false,
        covered_by: None,
        not_covering: vec![],
        old: None,
        new: None,
        findings: vec![],
        fallback: (1, 1),
        plan: None,
        error: None,
        path_bytes: item.path_bytes,
    };
    match item.kind {
        ItemKind::Added { new } => {
            r.outcome = "new".into();
            r.new = Some(new.source.origin);
            r.fallback = (new.process.pos.line, new.process.pos.column);
        }
        ItemKind::Removed { old } => {
            r.outcome = "deleted".into();
            r.verdict = Some(Verdict::Blocked);
            r.fails = true;
            r.findings = vec![gate::removed_finding(&r.class)];
            r.fallback = (old.process.pos.line, old.process.pos.column);
            if let Some(ov) = overrides_for_removed(overrides, used, &old, changed)? {
                if acknowledge_removal(ov, &mut r.findings)? {
                    // Reviewed: no instance is left to orphan.
                    r.fails = false;
                    r.verdict = None;
                }
            }
            r.old = Some(old.source.origin);
        }
        ItemKind::OldUnreadable {
            new,
            old_origin,
            old_error,
            too_large,
        } => {
            r.fallback = (new.process.pos.line, new.process.pos.column);
            r.new = Some(new.source.origin);
            r.old = Some(old_origin.clone());
            if too_large {
                // Over the cap is not "never compiled": the old version may be deployed.
                let message = format!("not checked: the old version {old_error}");
                r.error = Some(format!("{}: {message}", r.path));
                r.outcome = "not-checked".into();
                r.fails = true;
                r.findings = vec![not_checked(&message)];
            } else {
                r.outcome = "old-unreadable".into();
                r.findings = vec![old_unreadable(&r.class, &old_error)];
            }
        }
        ItemKind::Unreadable {
            origin,
            reason,
            pos,
            fatal,
        } => {
            r.fallback = pos.unwrap_or((1, 1));
            let place = pos
                .map(|(l, c)| format!("{origin}:{l}:{c}"))
                .unwrap_or(origin.clone());
            if fatal {
                r.outcome = "not-checked".into();
                r.fails = true;
                r.error = Some(format!("{place}: {reason}"));
                r.findings = vec![not_checked(&reason)];
                r.new = Some(origin);
            } else {
                // The file no longer holds a BPL class (deleted, or not BPL now).
                r.outcome = "old-unreadable".into();
                r.findings = vec![old_unreadable(&r.class, &format!("{place}: {reason}"))];
                r.old = Some(origin);
            }
        }
        ItemKind::Changed { old, new } => {
            r.fallback = (new.process.pos.line, new.process.pos.column);
            r.old = Some(old.source.origin.clone());
            r.new = Some(new.source.origin.clone());
            let ov = overrides_for(overrides, used, &old, &new, changed)?;
            let planned = crate::states::compile(&old, compiler)
                .and_then(|oc| crate::states::compile(&new, compiler).map(|nc| (oc, nc)))
                .map_err(|e| {
                    let at_new = e.file == new.source.origin;
                    (
                        e.to_string(),
                        e.pos.filter(|_| at_new).map(|p| (p.line, p.column)),
                        e.message,
                    )
                })
                .and_then(|(oc, nc)| {
                    plan::build(&old, &new, &oc, &nc, ov).map_err(|e| {
                        let text = e.to_string();
                        (text.clone(), None, text)
                    })
                });
            let p = match planned {
                Ok(plan) => plan,
                // This class cannot be checked; the others still are.
                Err((full, pos, reason)) => {
                    r.outcome = "not-checked".into();
                    r.fails = true;
                    r.error = Some(full);
                    if let Some(pos) = pos {
                        r.fallback = pos;
                    }
                    r.findings = vec![not_checked(&reason)];
                    return Ok(r);
                }
            };
            r.verdict = Some(p.verdict);
            r.outcome = p.verdict.as_str().to_string();
            r.fails = fail_on.fails(p.verdict);
            if let (Some(m), true) = (migrations, p.verdict > Verdict::Compatible) {
                let uncommitted = |folder: &Path| m.uncommitted(folder);
                let found = cover::find(&m.dir, &p, ov.is_some(), &uncommitted)
                    .with_context(|| format!("cannot read the migrations folder {}", m.shown))
                    .map_err(Failure::input)?;
                match found {
                    Cover::Covered { folder } => {
                        r.outcome = "covered".into();
                        r.fails = false;
                        r.covered_by = Some(m.show(&folder));
                    }
                    Cover::NotCovered { mismatches } => {
                        r.not_covering = mismatches
                            .into_iter()
                            .map(|x| Mismatch {
                                folder: PathBuf::from(m.show(&x.folder)),
                                why: x.why,
                            })
                            .collect();
                    }
                }
            }
            r.findings = p.findings.clone();
            r.plan = Some(p);
        }
    }
    Ok(r)
}

/// BPM0408 for a class (or file) that could not be checked (reports put the class in front).
fn not_checked(reason: &str) -> Finding {
    plan::findings::finding(
        plan::findings::Code::ClassNotChecked,
        format!("cannot be checked: {reason}"),
    )
}

/// BPM0409 for a class whose file's old version could not be read.
fn old_unreadable(class: &str, why: &str) -> Finding {
    plan::findings::finding(
        plan::findings::Code::OldVersionUnreadable,
        format!(
            "the change to {class} cannot be checked: its old version cannot be read ({why}). IRIS cannot have \
             compiled that version, so no instance of it is in flight; instances of the version deployed before \
             it were not compared (bplmigrate check REV:path path compares with that one)"
        ),
    )
}

/// The overrides file for a deleted class: one whose old_sha256 names the deleted source (and
/// that names no new_sha256), or, when a single class changed, one that names neither.
fn overrides_for_removed<'o>(
    overrides: &'o [(PathBuf, Overrides)],
    used: &mut [bool],
    old: &Bpl,
    changed: usize,
) -> Result<Option<&'o Overrides>, Failure> {
    let mut found: Option<usize> = None;
    for (i, (file, ov)) in overrides.iter().enumerate() {
        let named = ov.old_sha256.is_some() || ov.new_sha256.is_some();
        if !named && changed > 1 {
            return Err(Failure::input(anyhow!(
                "overrides file {} names no old_sha256/new_sha256, but {changed} classes changed or were deleted: add the hashes of its change (for a deleted class old_sha256 alone, the SHA-256 of its last version: sha256sum FILE)",
                file.display()
            )));
        }
        let matches = ov.new_sha256.is_none()
            && ov
                .old_sha256
                .as_ref()
                .is_none_or(|(_, h)| h.eq_ignore_ascii_case(&old.source.sha256));
        if matches {
            if let Some(j) = found {
                return Err(Failure::input(anyhow!(
                    "overrides files {} and {} both apply to the deleted class {}: give one",
                    overrides[j].0.display(),
                    file.display(),
                    old.class_name
                )));
            }
            found = Some(i);
        }
    }
    Ok(found.map(|i| {
        used[i] = true;
        &overrides[i].1
    }))
}

/// Apply the `[[ack]]` entries of `ov` to the findings of a deleted class: only
/// `class-removed` (BPM0406) occurs, and a deleted class has no plan, so any other entry is an
/// error naming its line. Whether the deletion was acknowledged.
fn acknowledge_removal(ov: &Overrides, findings: &mut [Finding]) -> Result<bool, Failure> {
    use plan::findings::{lookup, Code};
    let no_plan = |line: u32, what: &str| {
        Failure::input(ov.error(
            line,
            format!("{what} does not apply to a deleted class: it has no plan (only [[ack]] code = \"class-removed\" does)"),
        ))
    };
    if let Some(m) = ov.maps.first() {
        return Err(no_plan(m.line, "[[map]]"));
    }
    if let Some(p) = ov.pins.first() {
        return Err(no_plan(p.line, "[[pin]]"));
    }
    if let Some(d) = ov.defaults.first() {
        return Err(no_plan(d.line, "[[default]]"));
    }
    let mut acked = false;
    for a in &ov.acks {
        match lookup(&a.code) {
            Some(Code::ClassRemoved) if a.thread.is_none() && a.state.is_none() => acked = true,
            Some(Code::ClassRemoved) => {
                return Err(Failure::input(ov.error(
                    a.line,
                    "[[ack]] BPM0406: a deleted class has no threads or states: drop thread/state",
                )))
            }
            Some(c) => {
                return Err(Failure::input(ov.error(
                    a.line,
                    format!(
                        "[[ack]] {}: no such finding for a deleted class (only BPM0406 class-removed occurs)",
                        c.as_str()
                    ),
                )))
            }
            None => {
                return Err(Failure::input(ov.error(
                    a.line,
                    format!(
                        "[[ack]] {:?}: unknown finding code",
                        crate::input::printable(&a.code)
                    ),
                )))
            }
        }
    }
    if acked {
        for f in findings.iter_mut() {
            f.acknowledged = true;
        }
    }
    Ok(acked)
}

/// Where the reviewed migration folders are read from: the working tree (each folder must be
/// committed), or, with `--git-head REV`, that commit (extracted to a temporary folder).
struct Migrations<'r> {
    /// The folder searched on disk.
    dir: PathBuf,
    /// How `dir` is named in output (repository-relative when in a repository).
    shown: String,
    repo: Option<&'r Repo>,
    /// Set when the folders were extracted from a commit (and so are committed).
    _extracted: Option<tempfile::TempDir>,
}

impl<'r> Migrations<'r> {
    fn open(dir: &Path, repo: Option<&'r Repo>, head: Option<&str>) -> Result<Self, Failure> {
        let text = dir.to_string_lossy();
        let rel = repo.and_then(|r| r.relative(&text));
        let shown = rel
            .clone()
            .unwrap_or_else(|| text.trim_start_matches("./").to_string());
        let (Some(repo), Some(head)) = (repo, head) else {
            return Ok(Migrations {
                dir: dir.to_path_buf(),
                shown,
                repo,
                _extracted: None,
            });
        };
        let rel = rel.ok_or_else(|| {
            Failure::input(anyhow!(
                "--migrations {text} is outside the repository {}",
                repo.top.display()
            ))
        })?;
        let commit = repo.resolve(head).map_err(Failure::input)?;
        let tmp = tempfile::Builder::new()
            .prefix("bplmigrate-migrations-")
            .tempdir()
            .context("cannot create a temporary folder for the migration folders of --git-head")
            .map_err(Failure::input)?;
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        for file in repo.tree_files(&commit, &rel).map_err(Failure::input)? {
            let Some(inner) = file.strip_prefix(prefix.as_bytes()) else {
                continue;
            };
            // The cap of a migration folder file, as when the folder is read from disk.
            let cap = crate::input::cap(crate::input::Kind::PlanFolder);
            let bytes = match repo
                .blob_limited(&commit, &file, cap, 0)
                .map_err(Failure::input)?
            {
                git::Limited::Whole(b) => b,
                git::Limited::Head { size, .. } => {
                    return Err(Failure::input(crate::input::InputError::TooLarge {
                        path: format!("{head}:{}", git::display(&file)).into(),
                        size,
                        cap,
                        kind: crate::input::Kind::PlanFolder,
                    }))
                }
            };
            let to = tmp
                .path()
                .join(git::os_name(inner).map_err(Failure::input)?);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent)
                    .and_then(|_| std::fs::write(&to, bytes))
                    .with_context(|| format!("cannot extract {} of {head}", git::display(&file)))
                    .map_err(Failure::input)?;
            }
        }
        Ok(Migrations {
            dir: tmp.path().to_path_buf(),
            shown,
            repo: Some(repo),
            _extracted: Some(tmp),
        })
    }

    /// A folder under `dir` as output names it.
    fn show(&self, folder: &Path) -> String {
        match folder.strip_prefix(&self.dir) {
            Ok(inner) if !self.shown.is_empty() => {
                format!("{}/{}", self.shown, inner.to_string_lossy())
            }
            Ok(inner) => inner.to_string_lossy().into_owned(),
            Err(_) => folder.to_string_lossy().into_owned(),
        }
    }

    /// Files of `folder` that are not committed (none when read from a commit, or outside a
    /// repository where nothing can be committed).
    fn uncommitted(&self, folder: &Path) -> Vec<String> {
        if self._extracted.is_some() {
            return vec![];
        }
        let Some(repo) = self.repo else {
            return vec![];
        };
        let text = folder.to_string_lossy();
        match repo.relative(&text) {
            Some(rel) => repo
                .uncommitted(&rel)
                .unwrap_or_else(|e| vec![format!("(git status failed: {e})")]),
            None => vec![format!("{text} (outside the repository)")],
        }
    }
}

/// The worst outcome of the classes that are not covered.
fn overall(results: &[ClassResult]) -> String {
    let worst = results
        .iter()
        .filter(|r| r.covered_by.is_none())
        .filter_map(|r| r.verdict)
        .max();
    match worst {
        Some(v) => v.as_str().to_string(),
        None if results.iter().any(|r| r.outcome == "old-unreadable") => "old-unreadable".into(),
        // Only acknowledged deletions (and perhaps new classes).
        None if results.iter().any(|r| r.outcome == "deleted") => "deleted".into(),
        None if results.iter().any(|r| r.covered_by.is_some()) => "covered".into(),
        None => Verdict::Identical.as_str().to_string(),
    }
}

/// The human report. Every value that comes from the inputs (class, path, message, folder)
/// is escaped with [`crate::input::printable_cell`], as the tables of the other commands are:
/// a file name or activity name holding a newline cannot forge a line.
fn human(r: &CheckReport) -> String {
    use crate::input::printable_cell as cell;
    let mut out = String::new();
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut sev = [0usize; 3];
    for res in &r.results {
        *counts.entry(res.outcome.as_str()).or_default() += 1;
        let moved = res
            .old_path
            .as_ref()
            .map(|p| format!(", was {}", cell(p)))
            .unwrap_or_default();
        let path = cell(&res.path);
        let _ = write!(out, "{} ({path}{moved}): ", cell(&res.class));
        match res.outcome.as_str() {
            "new" => out.push_str("new class, no instance can be in flight\n"),
            "deleted" if !res.fails => out.push_str("deleted (acknowledged)\n"),
            "deleted" => out.push_str("deleted\n"),
            "not-checked" => out.push_str("not checked (exit 2)\n"),
            "old-unreadable" => {
                out.push_str("not compared: the old version of the file cannot be read\n")
            }
            "covered" => {
                let _ = writeln!(
                    out,
                    "covered by {} (verdict {})",
                    cell(res.covered_by.as_deref().unwrap_or("")),
                    res.verdict.map(Verdict::as_str).unwrap_or("")
                );
            }
            o => {
                let _ = writeln!(out, "{o}");
            }
        }
        let c = Checked {
            class: &res.class,
            path: &res.path,
            path_bytes: &res.path_bytes,
            findings: &res.findings,
            fallback: res.fallback,
            covered_by: res.covered_by.as_deref(),
        };
        for f in &res.findings {
            sev[f.severity as usize] += 1;
            let (line, col) = c.location(f);
            let ack = if f.acknowledged {
                " (acknowledged)"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "  {path}:{line}:{col}: {} {} {}{ack}: {}",
                f.severity.as_str(),
                f.code,
                f.code.name(),
                cell(&f.message)
            );
            if !f.states.is_empty() {
                let _ = writeln!(out, "      states: {}", cell(&f.states.join(", ")));
            }
        }
        for m in &res.not_covering {
            let _ = writeln!(
                out,
                "  {}: does not cover this change: {}",
                cell(&m.folder.to_string_lossy()),
                cell(&m.why)
            );
        }
    }
    if r.results.is_empty() {
        out.push_str("no BPL class changed\n");
    }
    let classes = r.results.len();
    let by_outcome: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let _ = writeln!(
        out,
        "\n{classes} class{} checked{}{}; {} finding{} ({} error{}, {} warning{}, {} info)",
        if classes == 1 { "" } else { "es" },
        if by_outcome.is_empty() { "" } else { ": " },
        by_outcome.join(", "),
        sev.iter().sum::<usize>(),
        if sev.iter().sum::<usize>() == 1 {
            ""
        } else {
            "s"
        },
        sev[2],
        if sev[2] == 1 { "" } else { "s" },
        sev[1],
        if sev[1] == 1 { "" } else { "s" },
        sev[0],
    );
    let _ = writeln!(
        out,
        "verdict: {} ({} --fail-on {})",
        r.verdict,
        if r.fails { "fails" } else { "passes" },
        r.fail_on
    );
    out
}

/// GitHub workflow commands, one per finding (`::error file=…,line=…,col=…,title=…::…`).
fn github_annotations(checked: &[Checked]) -> String {
    fn data(s: &str) -> String {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }
    fn prop(s: &str) -> String {
        data(s).replace(':', "%3A").replace(',', "%2C")
    }
    let mut out = String::new();
    for c in checked {
        for f in c.findings {
            let level = match (f.severity, f.acknowledged || c.covered_by.is_some()) {
                (_, true) | (Severity::Info, _) => "notice",
                (Severity::Warning, _) => "warning",
                (Severity::Error, _) => "error",
            };
            let (line, col) = c.location(f);
            let _ = writeln!(
                out,
                "::{level} file={},line={line},col={col},title={}::{}",
                prop(c.path),
                prop(&format!("{} {}", f.code, f.code.name())),
                data(&format!("{}: {}", c.class, f.message))
            );
        }
    }
    out
}

#[derive(Clone, Copy)]
enum ReportKind {
    Gitlab,
    Sarif,
}

/// Write a report, but never over a file that is not already a report of that kind (a
/// mistyped path must not destroy a source file).
fn write_report(path: &Path, v: &serde_json::Value, kind: ReportKind) -> Result<(), Failure> {
    let (name, is_kind): (&str, fn(&[u8]) -> bool) = match kind {
        ReportKind::Gitlab => ("a GitLab Code Quality report", reports::is_gitlab_report),
        ReportKind::Sarif => ("a SARIF 2.1.0 log", reports::is_sarif_report),
    };
    if path.is_dir() {
        return Err(Failure::input(anyhow!(
            "cannot write the report to {}: it is a folder",
            path.display()
        )));
    }
    if let Ok(existing) = std::fs::read(path) {
        if !existing.is_empty() && !is_kind(&existing) {
            return Err(Failure::input(anyhow!(
                "refusing to overwrite {}: it is not {name}; remove it or choose another file",
                path.display()
            )));
        }
    }
    let text = pretty_json(v, Exit::Input)?;
    std::fs::write(path, text)
        .with_context(|| format!("cannot write report {}", path.display()))
        .map_err(Failure::input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotation_text_is_escaped() {
        let f = crate::plan::findings::finding(
            crate::plan::findings::Code::RemovedWaitState,
            "50% of rows\nwait, here: S3",
        );
        let findings = [f];
        let c = Checked {
            class: "Demo.A",
            path: "src/a,b:c.cls",
            path_bytes: b"src/a,b:c.cls",
            findings: &findings,
            fallback: (3, 4),
            covered_by: None,
        };
        assert_eq!(
            github_annotations(&[c]),
            "::error file=src/a%2Cb%3Ac.cls,line=3,col=4,title=BPM0101 removed-wait-state::Demo.A: 50%25 of rows%0Await, here: S3\n"
        );
    }
}
