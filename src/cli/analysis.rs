//! `diff`, `plan` and `check`.

use super::states_cmd::CompilerArg;
use super::{compile, emit, exit, load_bpl, pretty_json, CmdResult, Failure, Format};
use crate::bpl::Bpl;
use crate::diff;
use crate::plan::render::{self, RenderOptions};
use crate::plan::reports::{self, Checked};
use crate::plan::{self, MigrationPlan, Overrides, Verdict};
use crate::states::{CompiledProcess, Compiler};
use anyhow::Context as _;
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The options `diff`, `plan` and `check` share: output format, compiler generation, class.
#[derive(Debug, Args)]
pub struct AnalysisArgs {
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// The IRIS compiler generation that numbers both versions (spec 2.5).
    #[arg(long, value_enum, default_value_t)]
    pub compiler: CompilerArg,
    /// The BPL class: picks one of several in an export, names a bare <process> document.
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Old BPL: a .cls (UDL), an XML export, a bare <process> file, or REV:path.
    pub old: String,
    /// New BPL (same forms).
    pub new: String,
    #[command(flatten)]
    pub common: AnalysisArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Old BPL: a .cls (UDL), an XML export, a bare <process> file, or REV:path.
    #[arg(required_unless_present = "verify")]
    pub old: Option<String>,
    /// New BPL (same forms).
    #[arg(required_unless_present = "verify")]
    pub new: Option<String>,
    /// Check a migration folder written by --out against its checksum file and plan, and
    /// exit (0: intact, 2: edited, added or removed file).
    #[arg(long, value_name = "MIGRATION_DIR", conflicts_with_all = ["old", "new", "out", "overrides"])]
    pub verify: Option<PathBuf>,
    /// Also emit the migration as an ObjectScript class (for sites without ODBC): written as
    /// migrate.cls into the --out folder, or printed when there is no --out.
    #[arg(long, value_enum, value_name = "KIND")]
    pub emit: Option<EmitArg>,
    #[command(flatten)]
    pub common: AnalysisArgs,
    /// Reviewed overrides (TOML): state maps, activity pins, context defaults,
    /// acknowledged findings. See fixtures/changes/README.md.
    #[arg(long, value_name = "FILE")]
    pub overrides: Option<PathBuf>,
    /// Write the migration folder (plan.json, apply.sql, revert.sql, README.md, checksums)
    /// under DIR.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// SQL dialect of the scripts written by --out.
    #[arg(long, value_enum, default_value_t)]
    pub dialect: DialectArg,
    /// With --out: replace an existing folder of the same plan whose files differ (edited by
    /// hand, or written by another version or dialect) instead of refusing.
    #[arg(long, requires = "out")]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmitArg {
    /// An ObjectScript class method: disable host, guards, TSTART, updates, verify, TCOMMIT.
    Objectscript,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum DialectArg {
    /// InterSystems IRIS SQL.
    #[default]
    Iris,
    /// PostgreSQL (the test stand-in).
    Postgres,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Old BPL (or, with --git-base, the BPL paths to check; all changed ones when none).
    pub old: Option<String>,
    /// New BPL.
    pub new: Option<String>,
    /// More paths (with --git-base).
    pub more: Vec<String>,
    #[command(flatten)]
    pub common: AnalysisArgs,
    /// Compare each path with its version at this git revision (REV:path).
    #[arg(long, value_name = "REV")]
    pub git_base: Option<String>,
    /// Write a GitLab Code Quality report.
    #[arg(long, value_name = "FILE")]
    pub gitlab: Option<PathBuf>,
    /// Write a SARIF 2.1.0 report.
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,
}

fn load_pair(
    old: &str,
    new: &str,
    class: &Option<String>,
    compiler: Compiler,
) -> Result<(Bpl, Bpl, CompiledProcess, CompiledProcess), Failure> {
    let (o, n) = (load_bpl(old, class)?, load_bpl(new, class)?);
    let (oc, nc) = (compile(&o, compiler)?, compile(&n, compiler)?);
    Ok((o, n, oc, nc))
}

pub fn diff(a: DiffArgs) -> CmdResult {
    let (o, n, oc, nc) = load_pair(&a.old, &a.new, &a.common.class, a.common.compiler.into())?;
    let d = diff::diff(&o, &n, &oc, &nc, &[]).map_err(Failure::input)?;
    match a.common.format {
        Format::Human => emit(&render::diff_human(&d, RenderOptions::default()))?,
        Format::Json => emit(&pretty_json(&d, exit::INPUT)?)?,
    }
    Ok(exit::OK)
}

fn read_overrides(path: &Path) -> Result<Overrides, Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read overrides file {}", path.display()))
        .map_err(Failure::input)?;
    Overrides::parse(&path.display().to_string(), &text).map_err(Failure::input)
}

pub fn plan(a: PlanArgs) -> CmdResult {
    if let Some(dir) = &a.verify {
        return verify_folder(dir, a.common.format);
    }
    let (Some(old), Some(new)) = (&a.old, &a.new) else {
        return Err(Failure::input(anyhow::anyhow!(
            "plan needs OLD and NEW (or --verify DIR)"
        )));
    };
    let (o, n, oc, nc) = load_pair(old, new, &a.common.class, a.common.compiler.into())?;
    let ov = a.overrides.as_deref().map(read_overrides).transpose()?;
    let planned = plan::build(&o, &n, &oc, &nc, ov.as_ref()).map_err(Failure::input)?;
    let objectscript = a.emit == Some(EmitArg::Objectscript);
    let written = match &a.out {
        Some(dir) => Some(write_migration(
            &planned.plan,
            dir,
            a.dialect,
            objectscript,
            a.force,
        )?),
        None => None,
    };
    if objectscript && written.is_none() {
        let text = crate::sql::render_objectscript(&planned.plan).map_err(Failure::input)?;
        emit(&text)?;
        return Ok(exit::OK);
    }
    match a.common.format {
        Format::Human => {
            let mut text = render::plan_human(&planned.plan, RenderOptions::default());
            if let Some(p) = &written {
                text.push_str(&format!("\nmigration written to {}\n", p.display()));
            }
            emit(&text)?
        }
        Format::Json => emit(&pretty_json(&planned.plan, exit::INPUT)?)?,
    }
    Ok(exit::OK)
}

/// Hook for `plan --out DIR`: the migration folder is the `sql` stage's business
/// (`sql::write_migration_folder`); this only chooses its options.
fn write_migration(
    plan: &MigrationPlan,
    dir: &Path,
    dialect: DialectArg,
    objectscript: bool,
    force: bool,
) -> Result<PathBuf, Failure> {
    let opts = crate::sql::FolderOptions {
        dialect: match dialect {
            DialectArg::Iris => crate::sql::Dialect::Iris,
            DialectArg::Postgres => crate::sql::Dialect::Postgres,
        },
        objectscript,
    };
    match crate::sql::write_migration_folder(plan, dir, &opts) {
        Err(crate::sql::SqlError::FolderExists { path }) if force => {
            std::fs::remove_dir_all(&path).map_err(|e| {
                Failure::input(anyhow::anyhow!("cannot remove {}: {e}", path.display()))
            })?;
            crate::sql::write_migration_folder(plan, dir, &opts).map_err(Failure::input)
        }
        Err(crate::sql::SqlError::FolderExists { path }) => {
            // Say what differs, and how to regenerate.
            let why = match crate::sql::verify_migration_folder(&path) {
                Err(crate::sql::SqlError::Edited { file }) => {
                    format!("its {file} was edited after it was written")
                }
                Err(crate::sql::SqlError::Added { file }) => {
                    format!("{file} was added to it after it was written")
                }
                Err(crate::sql::SqlError::Removed { file }) => {
                    format!("its {file} was removed after it was written")
                }
                Err(e) => format!("it fails verification: {e}"),
                Ok(_) => "its files differ from what this version writes for this plan (another \
                          bplmigrate version, dialect or --emit)"
                    .to_string(),
            };
            Err(Failure::input(anyhow::anyhow!(
                "{} already holds a migration for plan {}, and {why}; to regenerate it, pass --force \
                 (replaces the folder) or remove the folder first",
                path.display(),
                plan.plan_id
            )))
        }
        other => other.map_err(Failure::input),
    }
}

/// One compared pair of `check`.
#[derive(serde::Serialize)]
struct CheckResult {
    /// The file findings point at (the new version's path).
    path: String,
    old: String,
    new: String,
    verdict: Verdict,
    plan: MigrationPlan,
}

#[derive(serde::Serialize)]
struct CheckReport {
    /// The worst verdict of all results (`identical` when nothing was compared).
    verdict: Verdict,
    results: Vec<CheckResult>,
    /// Paths that were not compared, with why (e.g. a new file).
    skipped: Vec<Skipped>,
}

#[derive(serde::Serialize)]
struct Skipped {
    path: String,
    reason: String,
}

pub fn check(a: CheckArgs) -> CmdResult {
    let compiler: Compiler = a.common.compiler.into();
    let mut pairs: Vec<(String, String, String)> = Vec::new(); // (path, old, new)
    let mut skipped = Vec::new();
    match &a.git_base {
        Some(rev) => {
            let mut paths: Vec<String> = a
                .old
                .iter()
                .chain(a.new.iter())
                .chain(a.more.iter())
                .cloned()
                .collect();
            let explicit = !paths.is_empty();
            if !explicit {
                paths = changed_files(rev)?;
            }
            for p in paths {
                let text = match std::fs::read(&p) {
                    Ok(t) => t,
                    Err(_) if !explicit => continue,
                    Err(e) => return Err(Failure::input(anyhow::anyhow!("cannot read {p}: {e}"))),
                };
                if !looks_like_bpl(&text) {
                    if explicit {
                        return Err(Failure::input(anyhow::anyhow!(
                            "{p} holds no BPL (no XData BPL block or <process> document)"
                        )));
                    }
                    continue;
                }
                let old = at_rev(rev, &p);
                if !exists_at(rev, &p) {
                    skipped.push(Skipped {
                        path: p.clone(),
                        reason: format!(
                            "not present at {rev}: a new process has no in-flight instances"
                        ),
                    });
                    continue;
                }
                pairs.push((p.clone(), old, p));
            }
        }
        None => {
            let (Some(old), Some(new)) = (&a.old, &a.new) else {
                return Err(Failure::input(anyhow::anyhow!(
                    "check needs OLD and NEW, or --git-base REV [PATHS…]"
                )));
            };
            if !a.more.is_empty() {
                return Err(Failure::input(anyhow::anyhow!("unexpected extra arguments {:?}: give OLD and NEW, or use --git-base REV PATHS…", a.more)));
            }
            let path = new
                .rsplit_once(':')
                .filter(|(rev, _)| !Path::new(new).exists() && rev.len() > 1)
                .map(|(_, p)| p)
                .unwrap_or(new);
            pairs.push((
                path.trim_start_matches("./").to_string(),
                old.clone(),
                new.clone(),
            ));
        }
    }
    let mut results = Vec::new();
    for (path, old, new) in pairs {
        let (o, n, oc, nc) = load_pair(&old, &new, &a.common.class, compiler)?;
        let planned = plan::build(&o, &n, &oc, &nc, None).map_err(Failure::input)?;
        results.push(CheckResult {
            path,
            old,
            new,
            verdict: planned.plan.verdict,
            plan: planned.plan,
        });
    }
    let verdict = results
        .iter()
        .map(|r| r.verdict)
        .max()
        .unwrap_or(Verdict::Identical);
    let checked: Vec<Checked> = results
        .iter()
        .map(|r| Checked {
            plan: &r.plan,
            path: &r.path,
        })
        .collect();
    if let Some(f) = &a.gitlab {
        write_report(f, &reports::gitlab(&checked))?;
    }
    if let Some(f) = &a.sarif {
        write_report(f, &reports::sarif(&checked))?;
    }
    let report = CheckReport {
        verdict,
        results,
        skipped,
    };
    match a.common.format {
        Format::Json => emit(&pretty_json(&report, exit::INPUT)?)?,
        Format::Human => emit(&check_human(&report))?,
    }
    Ok(match verdict {
        Verdict::Identical | Verdict::Compatible => exit::OK,
        Verdict::Migratable | Verdict::Blocked => exit::FOUND,
    })
}

fn check_human(r: &CheckReport) -> String {
    let mut out = String::new();
    for res in &r.results {
        let p = &res.plan;
        out.push_str(&format!(
            "{}: {} ({} → {})\n",
            res.path,
            res.verdict.as_str(),
            res.old,
            res.new
        ));
        out.push_str(&render::findings_human(&p.findings));
    }
    for sk in &r.skipped {
        out.push_str(&format!("{}: skipped ({})\n", sk.path, sk.reason));
    }
    if r.results.is_empty() && r.skipped.is_empty() {
        out.push_str("no BPL changed\n");
    }
    out.push_str(&format!("verdict: {}\n", r.verdict.as_str()));
    out
}

fn write_report(path: &Path, v: &serde_json::Value) -> Result<(), Failure> {
    let text = pretty_json(v, exit::INPUT)?;
    std::fs::write(path, text)
        .with_context(|| format!("cannot write report {}", path.display()))
        .map_err(Failure::input)
}

fn looks_like_bpl(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let lower = text.to_ascii_lowercase();
    lower.contains("xdata bpl")
        || lower.contains("<xdata name=\"bpl\"")
        || lower.contains("<process")
}

/// Files changed since `rev` (relative to the current directory), modified only: a new file
/// has no in-flight instances.
fn changed_files(rev: &str) -> Result<Vec<String>, Failure> {
    let out = Command::new("git")
        .args([
            "diff",
            "--name-only",
            "--relative",
            "--no-renames",
            "--diff-filter=M",
            rev,
            "--",
        ])
        .output()
        .with_context(|| "cannot run git")
        .map_err(Failure::input)?;
    if !out.status.success() {
        return Err(Failure::input(anyhow::anyhow!(
            "git diff {rev} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    Ok(v)
}

/// `REV:./path`, the source of `path` at git revision `rev` (relative to the working directory).
fn at_rev(rev: &str, path: &str) -> String {
    format!("{rev}:./{}", path.trim_start_matches("./"))
}

fn exists_at(rev: &str, path: &str) -> bool {
    Command::new("git")
        .args(["cat-file", "-e", &at_rev(rev, path)])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `plan --verify DIR`: exactly the folder check `apply` runs (`Migration::load`).
fn verify_folder(dir: &Path, format: Format) -> CmdResult {
    let check = crate::apply::Migration::load(dir).map_err(Failure::input)?;
    let dir = dir.to_path_buf();
    match format {
        Format::Human => emit(&format!(
            "{}: intact ({} files, plan {} for {})\n",
            dir.display(),
            check.files.len(),
            check.plan.plan_id,
            check.plan.old.class
        ))?,
        Format::Json => emit(&pretty_json(
            &serde_json::json!({
                "dir": dir,
                "intact": true,
                "files": check.files,
                "plan_id": check.plan.plan_id,
                "class": check.plan.old.class,
            }),
            exit::INPUT,
        )?)?,
    }
    Ok(exit::OK)
}
