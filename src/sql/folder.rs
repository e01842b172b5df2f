//! `plan --out DIR`: one folder per migration, `DIR/<seq>_<Class>_<short-hash>/`, holding
//! `plan.json`, `apply.sql`, `revert.sql`, `README.md` (and `migrate.cls` with
//! `--emit objectscript`) plus [`CHECKSUM_FILE`], which names every file with its SHA-256.
//!
//! The checksum ignores a leading UTF-8 BOM and CRLF line ends (an editor or a Windows
//! checkout may add them); any other edit, any added and any removed file is reported by name
//! by [`verify_migration_folder`]. The checksum file uses the `sha256sum` format, so
//! `sha256sum -c CHECKSUMS.sha256` works on an untouched folder. File contents are
//! deterministic: no timestamps, no absolute paths.

use super::objectscript::{render_objectscript, render_session_script};
use super::render::{render, render_revert, revert_blockers};
use super::text::comment_text;
use super::{Dialect, SqlError, SqlScript};
use crate::plan::{MigrationPlan, Severity};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The checksum file inside a migration folder.
pub const CHECKSUM_FILE: &str = "CHECKSUMS.sha256";
const PLAN_FILE: &str = "plan.json";

/// How `plan --out` writes a migration folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FolderOptions {
    /// Dialect of `apply.sql` / `revert.sql` (IRIS unless testing).
    pub dialect: Dialect,
    /// Also write `migrate.cls` (`--emit objectscript`).
    pub objectscript: bool,
}

/// A folder whose checksums match, with its plan.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderCheck {
    pub dir: PathBuf,
    pub plan: MigrationPlan,
    /// Every file the checksum file names (sorted, `/`-separated relative paths).
    pub files: Vec<String>,
}

/// SHA-256 of a file's content with a leading UTF-8 BOM dropped and CRLF read as LF.
pub fn normalized_sha256(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut h = Sha256::new();
    let mut rest = bytes;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        h.update(&rest[..i]);
        h.update(b"\n");
        rest = &rest[i + 2..];
    }
    h.update(rest);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn folder_class_part(class: &str) -> String {
    class
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A folder whose name has the shape `plan --out` gives it — `<seq>_<class>_<plan id, 8 hex>`
/// — must hold that class's plan with that id: a plan.json swapped in, or edited with its
/// `plan_id` recomputed, shows here. A folder renamed to anything else (a copy, a CI path) is
/// not checked by name; `<seq>` may be renumbered.
pub fn check_folder_name(dir: &Path, plan: &MigrationPlan) -> Result<(), SqlError> {
    let Some(name) = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
    else {
        return Ok(());
    };
    let digits = name.bytes().take_while(u8::is_ascii_digit).count();
    let Some(rest) = name[digits..].strip_prefix('_').filter(|_| digits >= 4) else {
        return Ok(());
    };
    let Some((class_part, short)) = rest.rsplit_once('_') else {
        return Ok(());
    };
    let is_short_id = short.len() == 8
        && short
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !is_short_id || class_part.is_empty() {
        return Ok(());
    }
    if short == plan.plan_id.get(..8).unwrap_or("")
        && class_part == folder_class_part(&plan.old.class)
    {
        return Ok(());
    }
    Err(SqlError::FolderNameMismatch {
        named: format!("plan {short}… of {class_part}"),
        name,
        plan_id: plan.plan_id.clone(),
        class: plan.old.class.clone(),
    })
}

/// `apply.sql` and `revert.sql` as `plan --out` writes them for `dialect`.
pub fn rendered_scripts(
    plan: &MigrationPlan,
    dialect: Dialect,
) -> Result<BTreeMap<String, String>, SqlError> {
    let mut files = BTreeMap::new();
    files.insert(
        "apply.sql".to_string(),
        render(plan, dialect)?.to_sql_text(),
    );
    let revert = match render_revert(plan, dialect) {
        Ok(r) => r.to_sql_text(),
        Err(SqlError::NotInvertible { reasons, .. }) => {
            let mut t = format!(
                "-- bplmigrate: no revert script for {} (plan {}).\n-- The mapping cannot be inverted:\n",
                comment_text(&plan.old.class),
                comment_text(&plan.plan_id)
            );
            for r in &reasons {
                t.push_str(&format!("--   - {}\n", comment_text(r)));
            }
            t.push_str(
                "-- `bplmigrate apply` (and migrate.cls) copies every row it rewrites, before and after,\n\
                 -- to BplMigrate.Undo in the same transaction; `bplmigrate apply DIR --revert` puts\n\
                 -- exactly those rows back, and refuses (changing nothing) when any of them changed\n\
                 -- since or other rows rest where the revert cannot map them. No hand-run script can\n\
                 -- do that; without undo rows, restore the rows from a backup taken before the apply.\n",
            );
            t
        }
        Err(e) => return Err(e),
    };
    files.insert("revert.sql".to_string(), revert);
    Ok(files)
}

/// The dialect a stored `apply.sql` names in its header (`…, dialect iris`).
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

/// Text with a BOM dropped and CRLF read as LF (as the checksum reads it).
fn normalized_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).replace("\r\n", "\n")
}

/// The folder's `apply.sql` and `revert.sql` must be exactly what `plan` renders in the
/// dialect `apply.sql`'s header names: what a reviewer read is what `apply` runs (checksums
/// alone do not show an edit whose checksum was recomputed). Both files must be present.
pub fn check_scripts(dir: &Path, plan: &MigrationPlan) -> Result<Dialect, SqlError> {
    let read = |f: &str| -> Result<String, SqlError> {
        let p = dir.join(f);
        if !p.is_file() {
            return Err(SqlError::Removed { file: f.into() });
        }
        read_folder_file(&p).map(|b| normalized_text(&b))
    };
    let apply = read("apply.sql")?;
    let dialect = script_dialect(&apply).ok_or_else(|| SqlError::ScriptMismatch {
        file: "apply.sql".into(),
        why: "its header names no dialect (`-- created by bplmigrate …, dialect iris`)".into(),
    })?;
    for (file, expected) in rendered_scripts(plan, dialect)? {
        if read(&file)? != expected {
            return Err(SqlError::ScriptMismatch {
                file,
                why: format!(
                    "it differs from what plan.json renders for the {} dialect",
                    match dialect {
                        Dialect::Iris => "iris",
                        Dialect::Postgres => "postgres",
                    }
                ),
            });
        }
    }
    Ok(dialect)
}

/// Files a caller adds to a migration folder, computed from the folder's own files (e.g.
/// `review.html`, which shows the exact `apply.sql`). They are checksummed like the others.
pub type ExtraFiles<'a> = &'a dyn Fn(&BTreeMap<String, String>) -> Vec<(String, String)>;

/// The folder's files, name → content (without the checksum file).
fn folder_files(
    plan: &MigrationPlan,
    folder: &str,
    opts: &FolderOptions,
    extra: ExtraFiles,
) -> Result<BTreeMap<String, String>, SqlError> {
    let script = render(plan, opts.dialect)?;
    let mut files = rendered_scripts(plan, opts.dialect)?;
    let json = serde_json::to_string_pretty(plan).map_err(|e| SqlError::Plan {
        reason: format!("cannot serialize the plan: {e}"),
    })?;
    files.insert(PLAN_FILE.to_string(), json + "\n");
    if opts.objectscript {
        files.insert("migrate.cls".to_string(), render_objectscript(plan)?);
        files.insert("migrate.script".to_string(), render_session_script(plan)?);
    }
    let added = extra(&files);
    let names: Vec<&str> = added.iter().map(|(n, _)| n.as_str()).collect();
    let readme = readme(plan, &script, folder, opts, &names);
    files.insert("README.md".to_string(), readme);
    for (name, body) in added {
        if name == CHECKSUM_FILE || name.contains(['/', '\\']) || files.contains_key(&name) {
            return Err(SqlError::Plan {
                reason: format!("cannot add {name:?} to the migration folder"),
            });
        }
        files.insert(name, body);
    }
    Ok(files)
}

fn checksum_text(files: &BTreeMap<String, String>) -> String {
    files
        .iter()
        .map(|(name, body)| format!("{}  {name}\n", normalized_sha256(body.as_bytes())))
        .collect()
}

fn next_seq(dir: &Path) -> Result<u32, SqlError> {
    let mut max = 0;
    for e in fs::read_dir(dir).map_err(SqlError::io("read", dir))? {
        let e = e.map_err(SqlError::io("read", dir))?;
        let name = e.file_name().to_string_lossy().to_string();
        let digits: String = name.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.len() >= 4 && name[digits.len()..].starts_with('_') {
            max = max.max(digits.parse().unwrap_or(0));
        }
    }
    Ok(max + 1)
}

/// Write the migration folder for `plan` into `out_dir` (created if missing) and return its
/// path. Writing the same plan again returns the existing folder when it verifies and holds
/// the same content; a different folder for the same plan id is refused.
pub fn write_migration_folder(
    plan: &MigrationPlan,
    out_dir: &Path,
    opts: &FolderOptions,
) -> Result<PathBuf, SqlError> {
    write_migration_folder_with(plan, out_dir, opts, &|_| Vec::new())
}

/// [`write_migration_folder`] with files added by the caller (see [`ExtraFiles`]).
pub fn write_migration_folder_with(
    plan: &MigrationPlan,
    out_dir: &Path,
    opts: &FolderOptions,
    extra: ExtraFiles,
) -> Result<PathBuf, SqlError> {
    fs::create_dir_all(out_dir).map_err(SqlError::io("create", out_dir))?;
    let short: String = plan.plan_id.chars().take(8).collect();
    let suffix = format!("_{}_{}", folder_class_part(&plan.old.class), short);
    for e in fs::read_dir(out_dir).map_err(SqlError::io("read", out_dir))? {
        let e = e.map_err(SqlError::io("read", out_dir))?;
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(&suffix) && name.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            let path = e.path();
            let wanted = folder_files(plan, &name, opts, extra)?;
            let same = verify_migration_folder(&path).is_ok()
                && wanted.iter().all(|(f, body)| {
                    read_folder_file(&path.join(f)).is_ok_and(|b| b == body.as_bytes())
                })
                && count_files(&path)? == wanted.len() + 1;
            return if same {
                Ok(path)
            } else {
                Err(SqlError::FolderExists { path })
            };
        }
    }
    let name = format!("{:04}{suffix}", next_seq(out_dir)?);
    let files = folder_files(plan, &name, opts, extra)?;
    let tmp = out_dir.join(format!(".{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(SqlError::io("remove", &tmp))?;
    }
    fs::create_dir(&tmp).map_err(SqlError::io("create", &tmp))?;
    for (f, body) in &files {
        fs::write(tmp.join(f), body).map_err(SqlError::io("write", tmp.join(f)))?;
    }
    fs::write(tmp.join(CHECKSUM_FILE), checksum_text(&files))
        .map_err(SqlError::io("write", tmp.join(CHECKSUM_FILE)))?;
    let dest = out_dir.join(&name);
    fs::rename(&tmp, &dest).map_err(SqlError::io("rename", &tmp))?;
    Ok(dest)
}

fn count_files(dir: &Path) -> Result<usize, SqlError> {
    let mut v = Vec::new();
    list_files(dir, "", &mut v)?;
    Ok(v.len())
}

/// A migration folder holds a handful of files; more than this many entries (or this deep)
/// is not one, and is refused rather than walked.
const MAX_FOLDER_ENTRIES: usize = 1000;
const MAX_FOLDER_DEPTH: usize = 8;

/// Every regular file under `dir`, as `/`-separated relative paths (directories recursed).
fn list_files(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), SqlError> {
    let too_many = |what: String| SqlError::Io {
        action: "read",
        path: dir.to_path_buf(),
        source: std::io::Error::other(what),
    };
    if prefix.matches('/').count() >= MAX_FOLDER_DEPTH {
        return Err(too_many(format!(
            "directories nested deeper than {MAX_FOLDER_DEPTH} levels: not a migration folder"
        )));
    }
    for e in fs::read_dir(dir).map_err(SqlError::io("read", dir))? {
        let e = e.map_err(SqlError::io("read", dir))?;
        if out.len() >= MAX_FOLDER_ENTRIES {
            return Err(too_many(format!(
                "more than {MAX_FOLDER_ENTRIES} files: not a migration folder"
            )));
        }
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        let ft = e.file_type().map_err(SqlError::io("read", e.path()))?;
        if ft.is_dir() {
            list_files(&e.path(), &format!("{name}/"), out)?;
        } else {
            out.push(name);
        }
    }
    Ok(())
}

fn read_folder_file(path: &Path) -> Result<Vec<u8>, SqlError> {
    Ok(crate::input::read(path, crate::input::Kind::PlanFolder)?)
}

/// Check a migration folder against its checksum file and read its plan. The first problem,
/// in file-name order, is returned as [`SqlError::Edited`], [`SqlError::Added`] or
/// [`SqlError::Removed`] (a missing checksum file is `Removed`).
pub fn verify_migration_folder(dir: &Path) -> Result<FolderCheck, SqlError> {
    let sums_path = dir.join(CHECKSUM_FILE);
    if !dir.is_dir() {
        return Err(SqlError::Io {
            action: "open",
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a migration folder"),
        });
    }
    if !sums_path.is_file() {
        return Err(SqlError::Removed {
            file: CHECKSUM_FILE.into(),
        });
    }
    let raw = read_folder_file(&sums_path)?;
    let raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&raw);
    let text = String::from_utf8_lossy(raw);
    let mut listed: BTreeMap<String, String> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || SqlError::BadChecksumFile {
            file: CHECKSUM_FILE.into(),
            line: i + 1,
        };
        let (hash, name) = line.split_once("  ").ok_or_else(bad)?;
        if hash.len() != 64
            || !hash.bytes().all(|b| b.is_ascii_hexdigit())
            || name.is_empty()
            || name.contains("..")
        {
            return Err(bad());
        }
        if listed
            .insert(name.to_string(), hash.to_ascii_lowercase())
            .is_some()
        {
            return Err(bad());
        }
    }
    // An empty (or comment-only) checksum file would report every file as added.
    if listed.is_empty() {
        return Err(SqlError::EmptyChecksumFile {
            file: CHECKSUM_FILE.into(),
        });
    }
    let mut present = Vec::new();
    list_files(dir, "", &mut present)?;
    present.retain(|f| f != CHECKSUM_FILE);
    let present: std::collections::BTreeSet<String> = present.into_iter().collect();
    let mut problems: BTreeMap<String, SqlError> = BTreeMap::new();
    for (name, hash) in &listed {
        if !present.contains(name) {
            problems.insert(name.clone(), SqlError::Removed { file: name.clone() });
            continue;
        }
        let p = dir.join(name);
        let bytes = read_folder_file(&p)?;
        if &normalized_sha256(&bytes) != hash {
            problems.insert(name.clone(), SqlError::Edited { file: name.clone() });
        }
    }
    for f in &present {
        if !listed.contains_key(f) {
            problems.insert(f.clone(), SqlError::Added { file: f.clone() });
        }
    }
    if let Some((_, e)) = problems.into_iter().next() {
        return Err(e);
    }
    if !listed.contains_key(PLAN_FILE) {
        return Err(SqlError::Removed {
            file: PLAN_FILE.into(),
        });
    }
    let plan_path = dir.join(PLAN_FILE);
    let body = read_folder_file(&plan_path)?;
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&body);
    let plan: MigrationPlan =
        serde_json::from_slice(body).map_err(|source| SqlError::PlanJson {
            // Named inside the folder: the messages around it name the folder.
            path: PathBuf::from(PLAN_FILE),
            source,
        })?;
    Ok(FolderCheck {
        dir: dir.to_path_buf(),
        plan,
        files: listed.into_keys().collect(),
    })
}

fn readme(
    plan: &MigrationPlan,
    script: &SqlScript,
    folder: &str,
    opts: &FolderOptions,
    extra: &[&str],
) -> String {
    let class = &plan.old.class;
    let c = comment_text;
    let mut r = String::new();
    let mut l = |s: &str| {
        r.push_str(s);
        r.push('\n');
    };
    l(&format!("# Migration {folder}"));
    l("");
    l(&format!(
        "In-flight instances of `{}`: plan `{}`, verdict **{:?}**.",
        c(class),
        c(&plan.plan_id),
        plan.verdict
    ));
    l("");
    l(&format!(
        "- old BPL: `{}` (sha256 `{}`)",
        c(&plan.old.origin),
        c(&plan.old.sha256)
    ));
    l(&format!(
        "- new BPL: `{}` (sha256 `{}`)",
        c(&plan.new.origin),
        c(&plan.new.sha256)
    ));
    l(&format!(
        "- created by bplmigrate {} (compiler {})",
        c(&plan.tool_version),
        c(&plan.compiler)
    ));
    l(&format!(
        "- SQL dialect of `apply.sql` / `revert.sql`: {}",
        match opts.dialect {
            Dialect::Iris => "IRIS",
            Dialect::Postgres => "PostgreSQL (test stand-in)",
        }
    ));
    l("");
    l("Files: `plan.json` (the reviewed plan `bplmigrate apply` executes), `apply.sql` (the same");
    l("statements for reading or running by hand), `revert.sql`, `CHECKSUMS.sha256`");
    if opts.objectscript {
        l("and `migrate.cls` + `migrate.script` (the migration as an ObjectScript class, and the");
        l("`iris session` script that runs it with a non-zero exit status on failure).");
    } else {
        l("(`bplmigrate apply` refuses the folder when any file was edited, added or removed).");
    }
    if extra.contains(&"review.html") {
        l("`review.html` is the review report (verdict, state mapping, findings, the change");
        l("drawn side by side, the SQL): one self-contained file to attach to a merge request.");
    }
    l("");

    l("## What changes");
    l("");
    if script.rewrites.is_empty() && script.defaults.is_empty() {
        l("Nothing in the stored rows: no state name, stack or response handler changes meaning.");
    }
    for rw in &script.rewrites {
        l(&format!("- {}", c(&rw.description)));
    }
    for d in &script.defaults {
        l(&format!("- {}", c(&d.description)));
    }
    for h in plan.response_handlers.iter().filter(|h| h.new.is_none()) {
        l(&format!(
            "- {}: entries naming {} (call {:?}, whose handler was removed) stay as they are, in \
             completed instances too: with no response pending under their key, no call of the \
             new version reads them (the checks below refuse rows that could still send one \
             without a handler)",
            c(&plan.response_handler_table.to_string()),
            c(&h.old),
            c(&h.call)
        ));
    }
    l("");
    let findings: Vec<_> = plan
        .findings
        .iter()
        .filter(|f| f.severity >= Severity::Warning)
        .collect();
    if !findings.is_empty() {
        l("## Findings to review");
        l("");
        for f in findings {
            let sev = if f.severity == Severity::Error {
                "error"
            } else {
                "warning"
            };
            let ack = if f.acknowledged {
                " (acknowledged)"
            } else {
                ""
            };
            l(&format!(
                "- {} {sev}{ack}: {}",
                c(f.code.as_str()),
                c(&f.message)
            ));
        }
        l("");
    }

    l("## Checks before the rewrite");
    l("");
    l("`bplmigrate apply` refuses (and changes nothing) when any of these holds:");
    l("");
    for g in &script.guards {
        l(&format!("- {}", c(&g.description)));
    }
    l("");

    l("## Steps");
    l("");
    l("Set `BPLMIGRATE_CONNECT` to the ODBC connection string of the namespace, e.g.");
    l("`Driver={InterSystems IRIS ODBC35};Server=HOST;Port=1972;Database=NAMESPACE;UID=USER;PWD=…`,");
    l("or pass it with `--connect`. Run the commands from the folder that holds this one.");
    l("");
    l(&format!(
        "1. Disable every production item whose class is `{}`, in every production that runs it:",
        c(class)
    ));
    l("   list them with");
    l(&format!(
        "   `SELECT Production, Name, PoolSize, Enabled FROM Ens_Config.Item WHERE ClassName = '{}'`",
        c(class).replace('\'', "''")
    ));
    l("   and, in a terminal in that namespace, run `do ##class(Ens.Director).EnableConfigItem(\"NAME\", 0, 1)`");
    l("   for each. An item with `PoolSize = 0` runs in the actor pool and cannot be disabled on its own:");
    l("   stop the production instead. Its queue keeps the incoming messages until it is enabled again.");
    l(&format!("2. Take the census of the live rows: `bplmigrate status --plan {folder} --connect \"$BPLMIGRATE_CONNECT\"`."));
    l(&format!("3. Rehearse: `bplmigrate apply {folder} --connect \"$BPLMIGRATE_CONNECT\" --dry-run` checks every guard"));
    l("   and shows the census the rewrite must produce, without changing anything.");
    l(&format!("4. Apply: `bplmigrate apply {folder} --connect \"$BPLMIGRATE_CONNECT\"`. It runs the rewrite in one"));
    l("   transaction, verifies the census against the prediction and records the run in");
    l("   `BplMigrate.History`; on any failure it rolls back and nothing is changed.");
    l("5. Compile and deploy the new version of the BPL class (the same source whose sha256 is above),");
    l("   while the items are still disabled.");
    l("6. Enable the items again: `do ##class(Ens.Director).EnableConfigItem(\"NAME\", 1, 1)` (or start the");
    l("   production).");
    l("");
    if opts.objectscript {
        l("Without an ODBC path, load `migrate.cls` into the namespace; then quiesce with");
        l("`do ##class(BplMigrate.Plan.P<plan id>).Quiesce()`, compile the new BPL, dry-run with `.Run(1)` and");
        l("migrate and enable with `.Run(0, 1)` — or `BPLMIGRATE_DIR=<this folder> iris session IRIS -U NAMESPACE");
        l("< migrate.script` (exit status 0 migrated or already applied, 1 refused or failed, 2 not loaded).");
        l("The run is recorded in `BplMigrate.History` like `bplmigrate apply`'s; see the class comment.");
        l("");
    }
    l("## Going back");
    l("");
    let blockers = revert_blockers(plan);
    if blockers.is_empty() {
        l("`revert.sql` maps the rows back (run it the same way, with the items disabled, before");
        l("recompiling the old BPL). It refuses when rows reached states the old version does not have.");
    } else {
        l("There is no revert script; the mapping cannot be inverted:");
        l("");
        for b in blockers {
            l(&format!("- {}", c(&b)));
        }
        l("");
        l("Take a backup of the thread and context tables before step 4.");
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_ignores_bom_and_crlf_only() {
        let a = normalized_sha256(b"x\ny\n");
        assert_eq!(a, normalized_sha256(b"\xEF\xBB\xBFx\r\ny\r\n"));
        assert_ne!(a, normalized_sha256(b"x\ny \n"));
        assert_ne!(a, normalized_sha256(b"x\ry\n"));
    }
}
