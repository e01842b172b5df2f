//! `diff` and `plan` (`check` is in `check_cmd`).

use super::states_cmd::CompilerArg;
use super::{
    compile, emit, emit_json, emit_json_keeping, emit_keeping, load_bpl, pretty_json, CmdResult,
    Exit, Failure, Format,
};
use crate::bpl::Bpl;
use crate::diff;
use crate::picture;
use crate::plan::render::{self, RenderOptions};
use crate::plan::{self, MigrationPlan, Overrides, Verdict};
use crate::states::{CompiledProcess, Compiler};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

/// The options `diff` and `plan` share: output format, compiler generation, class.
#[derive(Debug, Args)]
pub struct AnalysisArgs {
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub format: AnalysisFormat,
    /// The IRIS compiler generation that numbers both versions (spec 2.5).
    #[arg(long, value_enum, default_value_t, ignore_case = true)]
    pub compiler: CompilerArg,
    /// The BPL class: picks one of several in an export, names a bare <process> document.
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
}

/// Output formats of `diff` and `plan` (a superset of the common `Format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum AnalysisFormat {
    #[default]
    Human,
    Json,
    /// The change drawn side by side: old and new state graphs per thread class, each old
    /// state coloured by its fate (`diff` and `plan` only).
    Svg,
    /// The same picture as a Mermaid flowchart (`diff` and `plan` only).
    Mermaid,
}

impl AnalysisFormat {
    /// The text format of a command that draws no pictures.
    fn text_only(self, command: &str) -> Result<Format, Failure> {
        match self {
            AnalysisFormat::Human => Ok(Format::Human),
            AnalysisFormat::Json => Ok(Format::Json),
            AnalysisFormat::Svg | AnalysisFormat::Mermaid => Err(Failure::input(anyhow::anyhow!(
                "{command} draws no picture: use `diff` or `plan OLD NEW` with --format svg or mermaid"
            ))),
        }
    }
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
    /// exit (0: intact, 2: edited, added or removed file). With OLD and NEW (and the
    /// --overrides, --compiler and --class the plan was made with), also plan again from those
    /// sources and require the folder's plan to be that plan: the check against a plan.json
    /// edited on purpose, checksums and plan id recomputed.
    #[arg(long, value_name = "MIGRATION_DIR", conflicts_with_all = ["out", "emit", "force"])]
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
    /// Write the migration folder (plan.json, apply.sql, revert.sql, README.md, review.html,
    /// checksums) under DIR.
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

/// Old and new read, given one class name (`bpl::settle_class_names`) and compiled.
struct Pair {
    old: Bpl,
    new: Bpl,
    old_c: CompiledProcess,
    new_c: CompiledProcess,
    /// Neither file names its class and their file names differ: the new one's, dropped
    /// for the old one's.
    dropped_name: Option<String>,
}

/// The command's large values (parsed and compiled processes, diffs, plans) are used until the
/// process exits: dropping them would only walk hundreds of thousands of nodes to free memory
/// the exit frees at once (10–15 % of a large `plan`'s time). Only the CLI layer does this.
fn kept_until_exit<T>(value: T) -> std::mem::ManuallyDrop<T> {
    std::mem::ManuallyDrop::new(value)
}

fn load_pair(
    old: &str,
    new: &str,
    class: &Option<String>,
    compiler: Compiler,
) -> Result<std::mem::ManuallyDrop<Pair>, Failure> {
    let (o, n) = crate::pair::side_by_side(|| load_bpl(old, class), || load_bpl(new, class));
    let (mut o, mut n) = (o?, n?);
    let dropped_name = crate::bpl::settle_class_names(&mut o, &mut n);
    let (oc, nc) = crate::pair::side_by_side(|| compile(&o, compiler), || compile(&n, compiler));
    let (oc, nc) = (oc?, nc?);
    Ok(kept_until_exit(Pair {
        old: o,
        new: n,
        old_c: oc,
        new_c: nc,
        dropped_name,
    }))
}

pub fn diff(a: DiffArgs) -> CmdResult {
    let Pair {
        old: o,
        new: n,
        old_c: oc,
        new_c: nc,
        ..
    } = &*load_pair(&a.old, &a.new, &a.common.class, a.common.compiler.into())?;
    let d = kept_until_exit(diff::diff(o, n, oc, nc, &[]).map_err(Failure::input)?);
    match a.common.format {
        AnalysisFormat::Human => emit(&render::diff_human(&d, RenderOptions::default()))?,
        AnalysisFormat::Json => emit_json(&*d)?,
        AnalysisFormat::Svg => emit(&picture::change_svg(
            &picture::from_diff(&d, oc, nc),
            oc,
            nc,
        ))?,
        AnalysisFormat::Mermaid => emit(&picture::change_mermaid(
            &picture::from_diff(&d, oc, nc),
            oc,
            nc,
        ))?,
    }
    Ok(Exit::Clean)
}

fn read_overrides(path: &Path) -> Result<Overrides, Failure> {
    let bytes = crate::input::read(path, crate::input::Kind::Overrides).map_err(Failure::input)?;
    Overrides::parse_bytes(&path.display().to_string(), &bytes).map_err(Failure::input)
}

pub fn plan(a: PlanArgs) -> CmdResult {
    if let Some(dir) = &a.verify {
        let format = a.common.format.text_only("plan --verify")?;
        let sources = match (&a.old, &a.new) {
            (Some(o), Some(n)) => Some((o.as_str(), n.as_str())),
            (None, None) if a.overrides.is_none() => None,
            (None, None) => {
                return Err(Failure::input(anyhow::anyhow!(
                "plan --verify DIR --overrides FILE needs OLD and NEW too: the overrides are used \
                     to plan again from those sources"
            )))
            }
            _ => {
                return Err(Failure::input(anyhow::anyhow!(
                "plan --verify DIR takes both OLD and NEW (to plan again and compare), or neither"
            )))
            }
        };
        return verify_folder(dir, format, sources.map(|s| (s, &a)));
    }
    let (Some(old), Some(new)) = (&a.old, &a.new) else {
        return Err(Failure::input(anyhow::anyhow!(
            "plan needs OLD and NEW (or --verify DIR)"
        )));
    };
    let Pair {
        old: o,
        new: n,
        old_c: oc,
        new_c: nc,
        dropped_name,
    } = &*load_pair(old, new, &a.common.class, a.common.compiler.into())?;
    let objectscript = a.emit == Some(EmitArg::Objectscript);
    if let Some(dropped) = dropped_name
        .as_ref()
        .filter(|_| a.out.is_some() || objectscript)
    {
        // The SQL names the class's tables and checks its host: not from a pick.
        return Err(Failure::input(anyhow::anyhow!(
            "neither {old} nor {new} names its class, and their file names disagree ({} and {}): \
             the migration names the class's tables, so pass --class NAME",
            crate::input::printable(&o.class_name),
            crate::input::printable(dropped)
        )));
    }
    let ov = a.overrides.as_deref().map(read_overrides).transpose()?;
    let plan = kept_until_exit(plan::build(o, n, oc, nc, ov.as_ref()).map_err(Failure::input)?);
    let view = || picture::from_plan(&plan, oc, nc);
    let locate =
        |e: crate::sql::SqlError| Failure::input(locate_sql_refusal(e, [o, n], ov.as_ref()));
    let written = match &a.out {
        Some(dir) => Some(write_migration(
            &plan,
            (&view(), oc, nc),
            dir,
            a.dialect,
            objectscript,
            a.force,
            &locate,
        )?),
        None => None,
    };
    // A blocked plan cannot be applied as it is: exit 1, like `check`.
    let code = if plan.verdict == Verdict::Blocked {
        Exit::Found
    } else {
        Exit::Clean
    };
    if objectscript && written.is_none() {
        let text = crate::sql::render_objectscript(&plan).map_err(locate)?;
        emit_keeping(&text, code)?;
        return Ok(code);
    }
    match a.common.format {
        AnalysisFormat::Human => {
            let mut text = render::plan_human(&plan, RenderOptions::default());
            if let Some(p) = &written {
                text.push_str(&format!("\nmigration written to {}\n", p.display()));
            }
            emit_keeping(&text, code)?
        }
        AnalysisFormat::Json => emit_json_keeping(&*plan, code)?,
        AnalysisFormat::Svg => emit_keeping(&picture::change_svg(&view(), oc, nc), code)?,
        AnalysisFormat::Mermaid => emit_keeping(&picture::change_mermaid(&view(), oc, nc), code)?,
    }
    Ok(code)
}

/// A refusal of the SQL layer, located where its value came from: a default at its line in
/// the overrides file, a name at the BPL element that declares it (a context property), or
/// else the BPL source it came from.
fn locate_sql_refusal(
    e: crate::sql::SqlError,
    bpls: [&Bpl; 2],
    overrides: Option<&Overrides>,
) -> anyhow::Error {
    use crate::sql::SqlError as E;
    let at = match &e {
        E::InvalidDefault { property, .. } => overrides.and_then(|ov| {
            ov.defaults
                .iter()
                .find(|d| &d.property == property)
                .map(|d| format!("{}:{}", ov.file, d.line))
        }),
        E::InvalidIdentifier { name, .. } => bpls
            .iter()
            .rev()
            .find_map(|b| {
                b.process
                    .context
                    .iter()
                    .find(|p| &p.name == name)
                    .map(|p| format!("{}:{}:{}", b.source.origin, p.pos.line, p.pos.column))
            })
            .or_else(|| {
                bpls.iter()
                    .rev()
                    .find(|b| {
                        name.contains(&b.class_name.replace('.', "_"))
                            || b.class_name.contains(name.as_str())
                    })
                    .map(|b| b.source.origin.clone())
            }),
        _ => None,
    };
    match at {
        Some(at) => anyhow::anyhow!("{at}: {e}"),
        None => anyhow::Error::new(e),
    }
}

/// Hook for `plan --out DIR`: the migration folder is the `sql` stage's business
/// (`sql::write_migration_folder_with`); this chooses its options and adds `review.html`
/// (drawn from the same plan, with the exact `apply.sql` / `revert.sql` of the folder).
fn write_migration(
    plan: &MigrationPlan,
    (view, oc, nc): (&picture::ChangeView, &CompiledProcess, &CompiledProcess),
    dir: &Path,
    dialect: DialectArg,
    objectscript: bool,
    force: bool,
    locate: &dyn Fn(crate::sql::SqlError) -> Failure,
) -> Result<PathBuf, Failure> {
    let opts = crate::sql::FolderOptions {
        dialect: match dialect {
            DialectArg::Iris => crate::sql::Dialect::Iris,
            DialectArg::Postgres => crate::sql::Dialect::Postgres,
        },
        objectscript,
    };
    // review.html: drawn from the same plan, showing the folder's exact SQL.
    let review = |files: &std::collections::BTreeMap<String, String>| {
        let listings: Vec<picture::Listing> = ["apply.sql", "revert.sql", "migrate.cls"]
            .iter()
            .filter_map(|name| {
                files.get(*name).map(|text| picture::Listing {
                    name,
                    text: text.as_str(),
                })
            })
            .collect();
        let svg = picture::change_svg(view, oc, nc);
        vec![(
            "review.html".to_string(),
            picture::review_html(plan, view, &svg, &listings),
        )]
    };
    match crate::sql::write_migration_folder_with(plan, dir, &opts, &review) {
        Err(crate::sql::SqlError::FolderExists { path }) if force => {
            std::fs::remove_dir_all(&path).map_err(|e| {
                Failure::input(anyhow::anyhow!("cannot remove {}: {e}", path.display()))
            })?;
            crate::sql::write_migration_folder_with(plan, dir, &opts, &review).map_err(locate)
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
        other => other.map_err(locate),
    }
}

/// `plan --verify DIR [OLD NEW]`: exactly the folder check `apply` runs (`Migration::load`);
/// with the sources, also the plan they give (same overrides, compiler and class) must be the
/// folder's, plan id for plan id.
fn verify_folder(
    dir: &Path,
    format: Format,
    sources: Option<((&str, &str), &PlanArgs)>,
) -> CmdResult {
    // Exactly the folder check `apply` runs (folder mistakes, checksums, plan, SQL files).
    let check = crate::apply::Migration::load(dir).map_err(Failure::input)?;
    let dir = dir.to_path_buf();
    let replanned = match sources {
        Some(((old, new), a)) => Some(replan_matches(&dir, &check.plan, old, new, a)?),
        None => None,
    };
    match format {
        Format::Human => emit(&format!(
            "{}: intact ({} files, plan {} for {}){}\n",
            dir.display(),
            check.files.len(),
            check.plan.plan_id,
            check.plan.old.class,
            match &replanned {
                Some((old, new)) => format!("; it is the plan {old} and {new} give"),
                None => String::new(),
            }
        ))?,
        Format::Json => emit(&pretty_json(
            &serde_json::json!({
                "dir": dir,
                "intact": true,
                "files": check.files,
                "plan_id": check.plan.plan_id,
                "class": check.plan.old.class,
                "replanned": replanned.is_some(),
            }),
            Exit::Input,
        )?)?,
    }
    Ok(Exit::Clean)
}

/// Plans `old` → `new` again with `a`'s overrides, compiler and class, and requires the
/// folder's plan to be that plan (its id: the content hash without origins and tool
/// version). Returns the two origins as given. A source that is not the one the plan was
/// made from is named first (its SHA-256 is in the plan), then any other difference.
fn replan_matches(
    dir: &Path,
    plan: &MigrationPlan,
    old: &str,
    new: &str,
    a: &PlanArgs,
) -> Result<(String, String), Failure> {
    let Pair {
        old: o,
        new: n,
        old_c: oc,
        new_c: nc,
        ..
    } = &*load_pair(old, new, &a.common.class, a.common.compiler.into())?;
    let folder = dir.display();
    for (which, given, bpl, recorded) in [
        ("old", old, o, &plan.old.sha256),
        ("new", new, n, &plan.new.sha256),
    ] {
        if &bpl.source.sha256 != recorded {
            return Err(Failure::input(anyhow::anyhow!(
                "migration folder {folder}: {given} is not the {which} BPL its plan was made from \
                 (sha256 {}, the plan records {recorded}); pass the sources the plan was made from",
                bpl.source.sha256
            )));
        }
    }
    let ov = a.overrides.as_deref().map(read_overrides).transpose()?;
    let again = kept_until_exit(plan::build(o, n, oc, nc, ov.as_ref()).map_err(Failure::input)?);
    if again.plan_id != plan.plan_id {
        if !plan.overrides.is_empty() && a.overrides.is_none() {
            return Err(Failure::input(anyhow::anyhow!(
                "migration folder {folder}: plan.json is plan {}, made with overrides; {old} and \
                 {new} without overrides give plan {}: pass the overrides file it was made with \
                 (--overrides FILE)",
                plan.plan_id,
                again.plan_id
            )));
        }
        let hint = if plan.overrides.is_empty() && a.overrides.is_some() {
            " (the folder's plan was made without overrides)"
        } else {
            ""
        };
        return Err(Failure::input(anyhow::anyhow!(
            "migration folder {folder}: plan.json is plan {}, but {old} and {new} give plan {}{hint}: \
             the plan was edited after `plan --out` wrote it (checksums and plan id recomputed), or \
             made with other overrides or --compiler; do not apply it: regenerate the folder with \
             `bplmigrate plan OLD NEW --out DIR --force` and review it",
            plan.plan_id,
            again.plan_id
        )));
    }
    Ok((old.to_string(), new.to_string()))
}
