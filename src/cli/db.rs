//! `status` and `apply`: the commands that talk to a database.

use super::{emit, emit_keeping, pretty_json, CmdResult, Exit, Failure, Format};
use crate::apply::{
    self, ApplyError, ApplyOptions, ApplyReport, Direction, Event, GroupMove, LiveCensus,
    Migration, Progress, Quiet, StatusReport,
};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the census was read (with --watch --until-ready: the rows meet every \
    precondition of the plan); 2 bad arguments, an unusable migration folder, or the wrong target (no table \
    of the class in this namespace, or no production item runs it); 3 --watch reached --timeout before the \
    rows were ready; 4 the database failed (with --watch: a lost connection is connected again, with pauses \
    from 1 s doubling to 30 s, each attempt said on stderr; exit 4 when --timeout passes before it is back)."
)]
pub struct StatusArgs {
    /// ODBC connection string (or BPLMIGRATE_CONNECT); the password is never printed.
    #[arg(long, env = "BPLMIGRATE_CONNECT", hide_env_values = true)]
    pub connect: String,
    /// A migration folder written by `plan --out`: show what it would do and which of its
    /// preconditions fail now.
    #[arg(long, value_name = "DIR", conflicts_with = "old")]
    pub plan: Option<PathBuf>,
    /// The running BPL (a path or REV:path), when there is no plan: a census of its tables.
    #[arg(required_unless_present = "plan")]
    pub old: Option<String>,
    /// The IRIS compiler generation that numbered the running BPL (spec 2.5).
    #[arg(long, value_enum, default_value_t, conflicts_with = "plan")]
    pub compiler: super::states_cmd::CompilerArg,
    /// The BPL class: picks one of several in an export, names a bare <process> document.
    #[arg(long, value_name = "NAME", conflicts_with = "plan")]
    pub class: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Re-read the census every --interval seconds, reporting on stderr how many rows still
    /// block the plan's preconditions (drain, then migrate). Needs --plan.
    #[arg(long, requires = "plan")]
    pub watch: bool,
    /// With --watch: stop as soon as the rows meet every precondition of the plan (exit 0),
    /// whether or not the hosts still run.
    #[arg(long, requires = "watch")]
    pub until_ready: bool,
    /// Seconds between two census reads with --watch (0.05 to 86400).
    #[arg(long, value_name = "S", default_value_t = 5.0, requires = "watch", value_parser = interval)]
    pub interval: f64,
    /// Give up after this long (`90s`, `10m`, `2h`; at most a year): exit 3 when the rows are
    /// not ready.
    #[arg(long, value_name = "D", requires = "watch", value_parser = timeout)]
    pub timeout: Option<std::time::Duration>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A migration folder written by `plan --out`.
    pub plan: PathBuf,
    /// ODBC connection string (or BPLMIGRATE_CONNECT); the password is never printed.
    #[arg(long, env = "BPLMIGRATE_CONNECT", hide_env_values = true)]
    pub connect: String,
    /// Run every check and statement inside the transaction, report, and roll back.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required when stdin is not a terminal). Without it, on a
    /// terminal, a dry run first counts the rows that will change and the prompt names them,
    /// the class and the database.
    #[arg(long)]
    pub yes: bool,
    /// Go back to the old numbering: the folder's reverse migration (revert.sql), or, for a
    /// mapping that cannot be inverted, exactly the rows the apply recorded in
    /// BplMigrate.Undo (refused, exit 3, when any of them changed since).
    #[arg(long)]
    pub revert: bool,
    /// Seconds to wait, in all, for the exclusive locks on the tables the plan writes (another
    /// session writing them holds them). While waiting, who holds them is reported on stderr;
    /// when the time is up, apply refuses (exit 3) and nothing is changed. Every other wait for
    /// another session's lock (reading Ens_Config.Item, the history) is bounded by it too.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0, value_parser = lock_timeout)]
    pub lock_timeout: f64,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

/// A number of seconds in `min..=max`. Every flag given in (fractional) seconds is read
/// here, so NaN, infinities and values no `Duration` holds are refused (exit 2) before any
/// conversion could panic.
fn seconds_between(s: &str, min: f64, max: f64) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "{:?} is not a number of seconds between {min} and {max}",
            crate::input::printable(s)
        )),
    }
}

fn lock_timeout(s: &str) -> Result<f64, String> {
    seconds_between(s, 0.0, 86_400.0)
}

fn interval(s: &str) -> Result<f64, String> {
    seconds_between(s, 0.05, 86_400.0)
}

/// The longest `--timeout`: a year (a longer one is a typo, and `now + timeout` must exist).
const MAX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

fn timeout(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d > MAX_TIMEOUT {
        return Err(format!(
            "{:?} is longer than the longest timeout, 366 days",
            crate::input::printable(s)
        ));
    }
    Ok(d)
}

/// Progress on stderr, one line per step: always on a terminal, otherwise only once the work
/// has taken longer than [`QUIET_FOR`] (a big census or rewrite in a script's log).
pub(super) struct StderrProgress {
    start: Instant,
    tty: bool,
}

const QUIET_FOR: std::time::Duration = std::time::Duration::from_secs(2);

impl StderrProgress {
    pub(super) fn new() -> Self {
        StderrProgress {
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
        }
    }
}

impl Progress for StderrProgress {
    fn event(&self, event: &Event<'_>) {
        // A wait is always reported: never wait silently.
        let waiting = matches!(event, Event::Waiting { .. });
        if !waiting && !self.tty && self.start.elapsed() < QUIET_FOR {
            return;
        }
        let t = self.start.elapsed().as_secs_f64();
        let line = match event {
            Event::Step(s) => s.to_string(),
            Event::Census { table, done, total } => format!("census {done}/{total}: {table}"),
            Event::Rewrite {
                table,
                column,
                rows,
            } => match rows {
                Some(n) => format!("rewriting {table} ({column}): {n} rows"),
                None => format!("rewriting {table} ({column})"),
            },
            Event::Rewritten { table, rows } => match rows {
                Some(n) => format!("rewrote {table}: {n} rows"),
                None => format!("rewrote {table}"),
            },
            Event::Session { id } => match id {
                Some(id) => format!("connected (server session {id})"),
                None => "connected".to_string(),
            },
            Event::Waiting {
                tables,
                holders,
                waited_ms,
                timeout_ms,
            } => {
                let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
                let who = if holders.is_empty() {
                    "held by another session".to_string()
                } else {
                    format!("held by {}", holders.join("; "))
                };
                format!(
                    "waiting for an exclusive lock on {}, {who} ({:.1} of {:.1} s)",
                    names.join(", "),
                    *waited_ms as f64 / 1000.0,
                    *timeout_ms as f64 / 1000.0
                )
            }
        };
        let _ = writeln!(std::io::stderr().lock(), "[{t:6.2}s] {line}");
    }
}

pub(super) fn failure(e: ApplyError) -> Failure {
    Failure::new(Exit::from(e.class()), e)
}

pub(super) fn connect(s: &str) -> Result<apply::Db, Failure> {
    if s.trim().is_empty() {
        return Err(Failure::input(anyhow::anyhow!(
            "--connect is empty; pass an ODBC connection string or set BPLMIGRATE_CONNECT"
        )));
    }
    apply::Db::connect(s).map_err(failure)
}

pub(super) fn json<T: serde::Serialize>(kind: &str, value: &T) -> Result<String, Failure> {
    pretty_json(
        &serde_json::json!({ "type": kind, "data": value }),
        Exit::Database,
    )
}

/// `status`: the census, and with `--plan` the impact per group and the drain watch
/// (`cli::console`).
pub fn status(a: StatusArgs) -> CmdResult {
    super::console::status(a)
}

pub fn apply(a: ApplyArgs) -> CmdResult {
    let m = match Migration::load(&a.plan) {
        Ok(m) => m,
        Err(e) => return apply_failure(failure(e), None, a.format),
    };
    let direction = if a.revert {
        Direction::Revert
    } else {
        Direction::Apply
    };
    let confirm = !a.dry_run && !a.yes;
    if confirm && !std::io::stdin().is_terminal() {
        return Err(Failure::input(anyhow::anyhow!(
            "apply changes rows of {} on {}: pass --yes to confirm (stdin is not a terminal), or --dry-run to see what it would do",
            m.plan.old.class,
            apply::connection_target(&a.connect)
        )));
    }
    let opts = ApplyOptions {
        dry_run: a.dry_run,
        direction,
        applied_by: applied_by(),
        lock_timeout_ms: (a.lock_timeout * 1000.0).round() as u64,
        confirmed: None,
    };
    let result = connect(&a.connect).and_then(|mut db| {
        let mut opts = opts;
        if confirm {
            // The apply refuses (exit 3, nothing changed) unless it finds the counts confirmed.
            opts.confirmed = Some(confirmed(&mut db, &m, &opts, &a.connect)?);
        }
        let progress = StderrProgress::new();
        apply::apply(&mut db, &m, &opts, &progress).map_err(failure)
    });
    let report = match result {
        Ok(r) => r,
        Err(f) => return apply_failure(f, Some(&m), a.format),
    };
    match a.format {
        Format::Json => emit(&json("apply", &report)?)?,
        Format::Human => emit(&human_apply(&report))?,
    }
    Ok(Exit::Clean)
}

/// Asks before a write, naming what it touches: the database (never the password), the class,
/// and the rows that will change — from a dry run just now (the same checks and statements,
/// rolled back; the apply then checks everything again under its locks, and refuses when the
/// counts it finds there are not the ones confirmed). A refusal of the dry run is the answer,
/// without asking. Returns what was confirmed.
fn confirmed(
    db: &mut apply::Db,
    m: &Migration,
    opts: &ApplyOptions,
    connect: &str,
) -> Result<apply::Confirmed, Failure> {
    let dry = ApplyOptions {
        dry_run: true,
        ..opts.clone()
    };
    let preview = apply::apply(db, m, &dry, &apply::Silent).map_err(failure)?;
    let what = match opts.direction {
        Direction::Apply => "apply",
        Direction::Revert => "revert",
    };
    let mut text = format!(
        "About to {what} plan {} to the rows of {} on {} ({}):\n",
        m.plan.plan_id,
        m.plan.old.class,
        apply::connection_target(connect),
        db.dbms_name()
    );
    for s in &preview.statements {
        text.push_str(&format!(
            "  {}: {} rows\n",
            s.description,
            s.rows.or(s.expected_rows).unwrap_or(0)
        ));
    }
    text.push_str(&format!(
        "{} rows will change (counted by a dry run just now; if the counts differ when it runs, nothing is \
         changed and it stops, exit 3).\n{what} now? [y/N] ",
        preview.rows_changed()
    ));
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        return Err(Failure::input(anyhow::anyhow!(
            "not confirmed; nothing was changed"
        )));
    }
    Ok(apply::Confirmed::of(&preview))
}

/// How a failed `apply` ends. "Already applied" alone is not a failure: nothing is pending,
/// exit 0 with a message saying so. With `--format json` every other failure is reported on
/// stdout too (`{"type": "refused" | "error", "data": …}`), with the same exit code.
fn apply_failure(f: Failure, m: Option<&Migration>, format: Format) -> CmdResult {
    let refusals = f
        .error
        .downcast_ref::<ApplyError>()
        .map(ApplyError::refusals)
        .unwrap_or_default();
    if let (Some(m), [apply::Refusal::AlreadyApplied { plan_id, seq }]) = (m, refusals) {
        let message = format!(
            "plan {plan_id} is already applied to {} here (history entry {seq}); nothing to do",
            m.plan.old.class
        );
        match format {
            Format::Json => emit(&json(
                "already_applied",
                &serde_json::json!({ "plan_id": plan_id, "class": m.plan.old.class, "seq": seq, "message": message }),
            )?)?,
            Format::Human => emit(&format!("{message}\n"))?,
        }
        return Ok(Exit::Clean);
    }
    if format == Format::Json {
        let kind = if refusals.is_empty() {
            "error"
        } else {
            "refused"
        };
        let class = f.error.downcast_ref::<ApplyError>().map(ApplyError::class);
        emit_keeping(
            &json(
                kind,
                &serde_json::json!({
                    "plan_id": m.map(|m| &m.plan.plan_id),
                    "class": m.map(|m| &m.plan.old.class),
                    "error_class": class,
                    "exit_code": f.code.code(),
                    "message": format!("{:#}", f.error),
                    "refusals": refusals,
                }),
            )?,
            f.code,
        )?;
    }
    Err(f)
}

/// `user@host` for the history row.
pub(super) fn applied_by() -> String {
    let user = ["USER", "USERNAME", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .map(|u| u.trim().to_string())
        .find(|u| !u.is_empty())
        .or_else(account_name)
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into());
    let who = format!("{user}@{host}");
    // `AppliedBy` is VARCHAR(220): a longer name is recorded shortened, marked, rather than
    // failing every write of the history.
    if who.chars().count() > 220 {
        who.chars().take(219).chain(['…']).collect()
    } else {
        who
    }
}

/// The process's account from its real uid (`/proc/self/status`, `/etc/passwd`), for a
/// history row written where the environment names no user (cron, containers); `uid N` when
/// the uid has no entry.
fn account_name() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let name = passwd.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        (f.nth(1)? == uid).then(|| name.to_string())
    });
    Some(name.unwrap_or_else(|| format!("uid {uid}")))
}

/// Left-aligned columns under `headers`, two spaces apart, indented by two.
pub(super) fn aligned(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut all = vec![headers.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    all.extend_from_slice(rows);
    crate::plan::render::table(&all, "  ")
}

/// The status by name (`waiting`), never the bare code.
fn status_word(s: Option<i64>) -> String {
    apply::status_name(s)
}

pub(super) fn census_text(c: &LiveCensus) -> String {
    let mut out = String::new();
    if c.threads.is_empty() {
        out.push_str("Thread rows: none\n");
    } else {
        out.push_str("Thread rows\n");
        let rows: Vec<Vec<String>> = c
            .threads
            .iter()
            .map(|g| {
                vec![
                    g.key.table.to_string(),
                    g.key.next_state.clone().unwrap_or_else(|| "NULL".into()),
                    status_word(g.key.status),
                    g.key.handler_stack.label(),
                    g.key.subroutine_stack.label(),
                    g.rows.to_string(),
                ]
            })
            .collect();
        out.push_str(&aligned(
            &[
                "table",
                "state",
                "status",
                "handler stack",
                "subroutine stack",
                "rows",
            ],
            &rows,
        ));
    }
    if !c.pending.is_empty() {
        out.push_str("Pending responses\n");
        let rows: Vec<Vec<String>> = c
            .pending
            .iter()
            .map(|g| {
                vec![
                    g.key.table.to_string(),
                    g.key.key.clone().unwrap_or_else(|| "NULL".into()),
                    g.rows.to_string(),
                ]
            })
            .collect();
        out.push_str(&aligned(&["thread table", "waits on", "rows"], &rows));
    }
    if !c.handlers.is_empty() {
        out.push_str("Response handlers\n");
        let rows: Vec<Vec<String>> = c
            .handlers
            .iter()
            .map(|g| {
                vec![
                    g.key.table.to_string(),
                    g.key.handler.clone().unwrap_or_else(|| "NULL".into()),
                    g.rows.to_string(),
                ]
            })
            .collect();
        out.push_str(&aligned(&["table", "handler", "rows"], &rows));
    }
    for t in &c.missing_tables {
        out.push_str(&format!("note: table {t} does not exist\n"));
    }
    out
}

pub(super) fn quiet_text(q: &Quiet) -> String {
    let mut out = String::new();
    if q.items.is_empty() {
        out.push_str("Hosts: no production item runs this class\n");
    } else {
        out.push_str("Hosts\n");
        let rows: Vec<Vec<String>> = q
            .items
            .iter()
            .map(|i| {
                vec![
                    i.production.clone(),
                    i.name.clone(),
                    i.pool_size.map_or("NULL".into(), |p| p.to_string()),
                    match i.enabled {
                        Some(true) => "yes".into(),
                        Some(false) => "no".into(),
                        None => "NULL".into(),
                    },
                ]
            })
            .collect();
        out.push_str(&aligned(
            &["production", "item", "pool size", "enabled"],
            &rows,
        ));
    }
    if q.live_jobs.is_empty() {
        out.push_str("Live jobs: none\n");
    } else {
        out.push_str("Live jobs\n");
        let rows: Vec<Vec<String>> = q
            .live_jobs
            .iter()
            .map(|j| {
                vec![
                    j.job.clone(),
                    j.config_name.clone(),
                    j.state
                        .as_deref()
                        .map_or_else(|| "NULL".into(), apply::shown),
                ]
            })
            .collect();
        out.push_str(&aligned(&["job", "item", "state"], &rows));
    }
    out
}

fn moves_text(moves: &[GroupMove]) -> String {
    let rows: Vec<Vec<String>> = moves
        .iter()
        .map(|m| {
            vec![
                m.table.to_string(),
                m.from.clone().unwrap_or_else(|| "NULL".into()),
                m.to.clone().unwrap_or_else(|| "NULL".into()),
                m.status
                    .map_or_else(|| "-".to_string(), |s| status_word(Some(s))),
                m.rows.to_string(),
                m.action.clone(),
            ]
        })
        .collect();
    aligned(
        &["table", "state", "new state", "status", "rows", "action"],
        &rows,
    )
}

/// The history section of `status`.
pub(super) fn history_text(r: &StatusReport) -> String {
    let mut out = String::new();
    if !r.history_table {
        out.push_str(
            "History: BplMigrate.History does not exist (no apply ran on this database)\n",
        );
    } else if r.history.is_empty() {
        out.push_str("History: no entry for this class\n");
    } else {
        out.push_str("History\n");
        let rows: Vec<Vec<String>> = r
            .history
            .iter()
            .map(|e| {
                vec![
                    e.seq.to_string(),
                    e.plan_id.clone(),
                    match e.direction {
                        Direction::Apply => "apply".to_string(),
                        Direction::Revert => "revert".to_string(),
                    },
                    e.outcome.as_str().to_string(),
                    e.applied_at.clone(),
                    e.applied_by.clone(),
                ]
            })
            .collect();
        out.push_str(&aligned(
            &["seq", "plan", "direction", "outcome", "at", "by"],
            &rows,
        ));
    }
    out
}

pub(super) fn human_status(r: &StatusReport) -> String {
    let dialect = match r.dialect {
        crate::sql::Dialect::Iris => "iris",
        crate::sql::Dialect::Postgres => "postgres",
    };
    let mut out = format!("{} on {} ({dialect} dialect)\n\n", r.class, r.dbms);
    out.push_str(&quiet_text(&r.quiet));
    out.push('\n');
    out.push_str(&census_text(&r.census));
    out.push('\n');
    out.push_str(&history_text(r));
    if let Some(p) = &r.plan {
        out.push_str(&format!("\nPlan {} ({})\n", p.plan_id, p.state.as_str()));
        if p.moves.is_empty() {
            out.push_str("  no rows in the plan's tables\n");
        } else {
            out.push_str(&moves_text(&p.moves));
        }
        if !p.checks.is_empty() {
            out.push_str("Checks\n");
            for c in &p.checks {
                let mark = if c.ok { "ok  " } else { "FAIL" };
                let rows = if c.ok {
                    String::new()
                } else {
                    format!(" ({} rows)", c.rows)
                };
                out.push_str(&format!("  {mark} {}{rows}\n", c.description));
            }
        }
        if p.refusals.is_empty() {
            out.push_str("apply would run now\n");
        } else {
            out.push_str("apply would refuse now:\n");
            for rf in &p.refusals {
                out.push_str(&format!("  - {rf}\n"));
            }
        }
    }
    out
}

fn human_apply(r: &ApplyReport) -> String {
    let verb = match (r.dry_run, r.direction) {
        (true, Direction::Apply) => "dry run of plan",
        (true, Direction::Revert) => "dry run of the revert of plan",
        (false, Direction::Apply) => "applied plan",
        (false, Direction::Revert) => "reverted plan",
    };
    let mut out = format!("{verb} {} to {}\n\n", r.plan_id, r.class);
    // The groups the plan touches; the census itself is `status`'s (not repeated here).
    let (kept, touched): (Vec<GroupMove>, Vec<GroupMove>) =
        r.moves.iter().cloned().partition(|m| m.action == "keep");
    if !touched.is_empty() {
        out.push_str(&moves_text(&touched));
    }
    if !kept.is_empty() {
        let rows: i64 = kept.iter().map(|m| m.rows).sum();
        out.push_str(&format!(
            "{rows} other row{} in {} group{} keep{} their state\n",
            if rows == 1 { "" } else { "s" },
            kept.len(),
            if kept.len() == 1 { "" } else { "s" },
            if rows == 1 { "s" } else { "" },
        ));
    }
    if r.moves.is_empty() && r.statements.is_empty() {
        out.push_str("no rows in the plan's tables\n");
    }
    if !r.statements.is_empty() {
        out.push_str("Statements\n");
        // The description last: a statement of a large plan lists its whole mapping, and a
        // column after it would pad every line (and the header) to that width.
        let rows: Vec<Vec<String>> = r
            .statements
            .iter()
            .map(|s| {
                vec![
                    s.rows.map_or("?".into(), |n| n.to_string()),
                    s.description.clone(),
                ]
            })
            .collect();
        out.push_str(&aligned(&["rows", "statement"], &rows));
    }
    let changed = r.rows_changed();
    match (r.dry_run, r.history_seq) {
        (true, _) => out.push_str(&format!(
            "{changed} rows would change; rolled back, nothing was changed\n"
        )),
        (false, Some(seq)) => {
            out.push_str(&format!("{changed} rows changed; history entry {seq}\n"))
        }
        (false, None) => out.push_str(&format!("{changed} rows changed\n")),
    }
    for n in &r.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
