//! The operator's console: `info` (what is applied here) and `repair` (close a dirty entry).

use super::db::{
    aligned, applied_by, census_text, connect, failure, history_text, human_status, json,
    quiet_text, StatusArgs, StderrProgress,
};
use super::{compile, emit, load_bpl, CmdResult, Exit, Failure, Format};
use crate::apply::{
    self, Fate, InfoLine, InfoOptions, InfoReport, InfoState, LiveCensus, Migration, PlanImpact,
    Refusal, Resolution, StatusReport, StatusSubject,
};
use crate::states::SqlTable;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    /// `apply --revert` undoes it when the plan is invertible or its run recorded undo rows).
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
fn info_code(r: &InfoReport) -> Exit {
    if r.dirty > 0 {
        Exit::Refused
    } else if r.edited > 0 {
        Exit::Input
    } else if r.pending > 0 {
        Exit::Found
    } else {
        Exit::Clean
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
    out.push_str(&aligned(
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
                    "  {what} is dirty: {}\n",
                    apply::repair_advice(&l.class, e.seq)
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
            r.seq,
            r.class,
            r.plan_id,
            r.outcome.as_str(),
            r.note
        ))?,
    }
    Ok(Exit::Clean)
}

/// `status`: a census of the running BPL, or with `--plan` the impact per group (and with
/// `--watch` the drain watch).
pub fn status(a: StatusArgs) -> CmdResult {
    let Some(dir) = &a.plan else {
        let Some(old) = &a.old else {
            return Err(Failure::input(anyhow::anyhow!(
                "give --plan DIR or the running BPL"
            )));
        };
        let bpl = load_bpl(old, &a.class)?;
        let process = compile(&bpl, a.compiler.into())?;
        let db = connect(&a.connect)?;
        let progress = StderrProgress::new();
        let report = apply::status(&db, StatusSubject::Process(&process), &progress)
            .map_err(status_failure)?;
        let tables: Vec<SqlTable> = process.threads.iter().map(|t| t.table.clone()).collect();
        apply::check_target(&report, &tables).map_err(wrong_target)?;
        match a.format {
            Format::Json => emit(&json("status", &report)?)?,
            Format::Human => emit(&human_process_status(&report, &process))?,
        }
        return Ok(Exit::Clean);
    };
    let m = Migration::load(dir).map_err(failure)?;
    let db = connect(&a.connect)?;
    if !a.watch {
        let (report, impact) = read_plan_status(&db, &m, &StderrProgress::new())?;
        emit(&render(&report, &impact, a.format)?)?;
        return Ok(Exit::Clean);
    }
    watch(&a, db, &m)
}

/// Whether a failure is the connection going away (the server restarted, a network drop, an
/// administrator ending the session), which a watch survives by connecting again.
fn connection_lost(f: &Failure) -> bool {
    matches!(
        f.error.downcast_ref::<apply::ApplyError>(),
        Some(apply::ApplyError::Database { failure, .. }) if failure.connection_lost
    )
}

/// First and longest pause between two reconnection attempts of `--watch`.
const RECONNECT_FIRST: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// Connects again after a lost connection: attempts with doubling pauses (1 s up to 30 s),
/// each said on stderr, until one succeeds or `deadline` passes (then the last error, exit 4).
fn reconnect(
    a: &StatusArgs,
    lost: Failure,
    start: Instant,
    deadline: Option<Instant>,
) -> Result<apply::Db, Failure> {
    let say = |line: String| {
        let t = start.elapsed().as_secs_f64();
        let _ = writeln!(std::io::stderr().lock(), "[{t:7.1}s] {line}");
    };
    let during = match lost.error.downcast_ref::<apply::ApplyError>() {
        Some(apply::ApplyError::Database { failure, .. }) => failure.to_string(),
        _ => lost.error.to_string(),
    };
    say(format!(
        "connection lost during {}; reconnecting",
        crate::input::printable_message(&during)
    ));
    let mut pause = RECONNECT_FIRST;
    let mut last = lost;
    let mut attempt = 0u64;
    loop {
        attempt += 1;
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Failure::new(
                        Exit::Database,
                        anyhow::anyhow!(
                            "the connection was lost and could not be re-established before --timeout ({} attempts): {:#}",
                            attempt - 1,
                            last.error
                        ),
                    ));
                }
                pause.min(left)
            }
            None => pause,
        };
        std::thread::sleep(wait);
        match connect(&a.connect) {
            Ok(db) => {
                say(format!("reconnected (attempt {attempt})"));
                return Ok(db);
            }
            Err(f) => {
                say(format!(
                    "reconnect attempt {attempt} failed ({}); next in {} s",
                    crate::input::printable_message(&f.error.to_string()),
                    (pause * 2).min(RECONNECT_MAX).as_secs()
                ));
                last = f;
            }
        }
        pause = (pause * 2).min(RECONNECT_MAX);
    }
}

/// The census of a running BPL, each group with the role and activity of its state.
fn human_process_status(r: &StatusReport, process: &crate::states::CompiledProcess) -> String {
    let mut out = human_status(&StatusReport {
        census: LiveCensus::default(),
        ..r.clone()
    });
    // `human_status` printed the hosts, an empty census and the history: put the thread rows
    // with their activities where its empty census line is.
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = r
        .census
        .threads
        .iter()
        .map(|g| {
            let state = process
                .threads
                .iter()
                .find(|t| t.table == g.key.table)
                .and_then(|t| {
                    t.states
                        .iter()
                        .find(|s| g.key.next_state.as_ref().is_some_and(|n| s.name == *n))
                });
            vec![
                g.key.table.to_string(),
                g.key.next_state.clone().unwrap_or_else(|| "NULL".into()),
                apply::status_name(g.key.status),
                state.map_or_else(dash, |s| s.role.to_string()),
                state.map_or_else(
                    || {
                        if g.key.next_state.as_deref() == Some("Stop") {
                            "(finished)".into()
                        } else {
                            "(no such state in this BPL)".into()
                        }
                    },
                    |s| s.activity.label(),
                ),
                g.key.handler_stack.label(),
                g.key.subroutine_stack.label(),
                g.rows.to_string(),
            ]
        })
        .collect();
    let threads = if rows.is_empty() {
        "Thread rows: none\n".to_string()
    } else {
        format!(
            "Thread rows\n{}",
            aligned(
                &[
                    "table",
                    "state",
                    "status",
                    "role",
                    "activity",
                    "handler stack",
                    "subroutine stack",
                    "rows"
                ],
                &rows,
            )
        )
    };
    let rest = census_text(&LiveCensus {
        threads: Vec::new(),
        ..r.census.clone()
    });
    let rest = rest.strip_prefix("Thread rows: none\n").unwrap_or(&rest);
    out = out.replacen("Thread rows: none\n", &format!("{threads}{rest}"), 1);
    out
}

/// A `status` error; a namespace whose `Ens_Config.Item` cannot be read is the wrong target.
fn status_failure(e: apply::ApplyError) -> Failure {
    if let apply::ApplyError::Database { failure: f, .. } = &e {
        if f.step == "read Ens_Config.Item" && !f.connection_lost {
            return wrong_target(format!(
                "cannot read Ens_Config.Item ({}): is --connect pointing at the interoperability namespace where \
                 the production runs?",
                f.message
            ));
        }
    }
    failure(e)
}

fn wrong_target(message: String) -> Failure {
    Failure::input(anyhow::anyhow!("wrong target: {message}"))
}

/// One read of the plan's status and its impact; a wrong target is an error.
fn read_plan_status(
    db: &apply::Db,
    m: &Migration,
    progress: &dyn apply::Progress,
) -> Result<(StatusReport, PlanImpact), Failure> {
    let report = apply::status(db, StatusSubject::Plan(m), progress).map_err(status_failure)?;
    let tables: Vec<SqlTable> = m.plan.threads.iter().map(|t| t.old_table.clone()).collect();
    apply::check_target(&report, &tables).map_err(wrong_target)?;
    let impact = apply::impact(m, &report).ok_or_else(|| {
        Failure::new(
            Exit::Database,
            anyhow::anyhow!("the status report has no plan section"),
        )
    })?;
    Ok((report, impact))
}

/// `status --plan --watch`: re-reads until the rows are ready (`--until-ready`), the timeout,
/// or forever. One stderr line whenever the blocking counts change.
/// A lost connection is connected again (with backoff, said on stderr), within `--timeout`.
fn watch(a: &StatusArgs, mut db: apply::Db, m: &Migration) -> CmdResult {
    let start = Instant::now();
    let deadline = a.timeout.and_then(|t| start.checked_add(t));
    // --interval is validated when parsed (finite, 0.05 to 86400 s).
    let interval = Duration::try_from_secs_f64(a.interval).unwrap_or(Duration::from_secs(5));
    let mut last = String::new();
    let mut warned = false;
    loop {
        let (report, impact) = match read_plan_status(&db, m, &apply::Silent) {
            Ok(r) => r,
            Err(f) if connection_lost(&f) => {
                db = reconnect(a, f, start, deadline)?;
                continue;
            }
            Err(f) => return Err(f),
        };
        // What draining cannot fix: fail now rather than wait for the timeout.
        let stuck = if impact.drained {
            Vec::new()
        } else {
            stuck_reasons(&report, &impact)
        };
        let line = if stuck.is_empty() {
            watch_line(&impact)
        } else {
            "not ready, and draining cannot help (see below)".to_string()
        };
        let t = start.elapsed().as_secs_f64();
        if line != last {
            let _ = writeln!(std::io::stderr().lock(), "[{t:7.1}s] {line}");
            last = line;
        }
        if !impact.drained {
            if !stuck.is_empty() {
                emit(&render(&report, &impact, a.format)?)?;
                return Err(Failure::new(
                    Exit::Refused,
                    anyhow::anyhow!(
                        "the rows cannot become ready by draining:\n  - {}",
                        stuck.join("\n  - ")
                    ),
                ));
            }
            if !warned
                && !report.quiet.items.is_empty()
                && report.quiet.items.iter().all(|i| i.enabled == Some(false))
            {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "warning: no production item running {} is enabled: waiting instances cannot finish \
                     while the process is disabled; enable it (and disable its callers) to drain",
                    report.class
                );
                warned = true;
            }
        }
        if a.until_ready && impact.drained {
            emit(&render(&report, &impact, a.format)?)?;
            return Ok(Exit::Clean);
        }
        let mut pause = interval;
        if let Some(limit) = a.timeout {
            let left = limit.saturating_sub(start.elapsed());
            if left.is_zero() {
                emit(&render(&report, &impact, a.format)?)?;
                if impact.drained {
                    return Ok(Exit::Clean);
                }
                return Err(Failure::new(
                    Exit::Refused,
                    anyhow::anyhow!(
                        "timed out after {}: {}",
                        humantime::format_duration(Duration::from_secs(limit.as_secs())),
                        impact.answer
                    ),
                ));
            }
            pause = pause.min(left);
        }
        std::thread::sleep(pause);
    }
}

/// `ready: …` or `not ready: <failing precondition> (n rows); …`.
fn watch_line(i: &PlanImpact) -> String {
    if i.drained {
        return format!("ready: {}", i.answer);
    }
    let blocking = || i.preconditions.iter().filter(|c| !c.ok && c.unit == "rows");
    let failing: Vec<String> = blocking()
        .map(|c| format!("{} ({})", c.description, counted(c.count, &c.unit)))
        .collect();
    let rows: i64 = blocking().map(|c| c.count).sum();
    if failing.is_empty() {
        format!("not ready: {}", i.answer)
    } else {
        format!(
            "not ready: {} to drain before these hold: {}",
            counted(rows, "rows"),
            failing.join("; ")
        )
    }
}

/// Refusals that no amount of draining resolves (history, missing tables, unknown states).
fn stuck_reasons(report: &StatusReport, impact: &PlanImpact) -> Vec<String> {
    let mut out: Vec<String> = report
        .plan
        .iter()
        .flat_map(|p| p.refusals.iter())
        .filter(|r| {
            !matches!(
                r,
                Refusal::Precondition { .. }
                    | Refusal::HostEnabled { .. }
                    | Refusal::ActorPool { .. }
                    | Refusal::HostUnknown { .. }
                    | Refusal::LiveJob { .. }
            )
        })
        .map(|r| r.to_string())
        .collect();
    out.extend(
        impact
            .groups
            .iter()
            .filter(|g| g.fate == Fate::Unknown)
            .map(|g| g.summary.clone()),
    );
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| seen.insert(r.clone()));
    out
}

fn render(report: &StatusReport, impact: &PlanImpact, format: Format) -> Result<String, Failure> {
    match format {
        Format::Json => {
            let mut data =
                serde_json::to_value(report).map_err(|e| Failure::new(Exit::Database, e))?;
            data["impact"] =
                serde_json::to_value(impact).map_err(|e| Failure::new(Exit::Database, e))?;
            json("status", &data)
        }
        Format::Human => Ok(human_impact(report, impact)),
    }
}

fn human_impact(r: &StatusReport, i: &PlanImpact) -> String {
    let dialect = match r.dialect {
        crate::sql::Dialect::Iris => "iris",
        crate::sql::Dialect::Postgres => "postgres",
    };
    let mut out = format!("{} on {} ({dialect} dialect)\n\n", r.class, r.dbms);
    out.push_str(&quiet_text(&r.quiet));
    let state = r.plan.as_ref().map_or("", |p| p.state.as_str());
    out.push_str(&format!(
        "\nPlan {} ({state}): live groups and their fate\n",
        i.plan_id
    ));
    if i.groups.is_empty() {
        out.push_str("  no rows in the plan's tables\n");
    } else {
        let rows: Vec<Vec<String>> = i
            .groups
            .iter()
            .map(|g| {
                let dash = || "-".to_string();
                vec![
                    g.table.to_string(),
                    g.state.clone().unwrap_or_else(|| "NULL".into()),
                    g.status_name.clone(),
                    g.role.clone().unwrap_or_else(dash),
                    g.activity.clone().unwrap_or_else(dash),
                    g.rows.to_string(),
                    fate_word(g.fate).to_string(),
                    g.new_state.clone().unwrap_or_else(dash),
                ]
            })
            .collect();
        out.push_str(&aligned(
            &[
                "table",
                "state",
                "status",
                "role",
                "activity",
                "rows",
                "fate",
                "new state",
            ],
            &rows,
        ));
        for g in &i.groups {
            let plain = g.fate == Fate::Finished || (g.fate == Fate::Stay && g.findings.is_empty());
            if plain {
                continue;
            }
            out.push_str(&format!("  - {}\n", g.summary));
            for f in &g.findings {
                let ack = if f.acknowledged {
                    " (acknowledged)"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "      {} {}{ack}: {}\n",
                    f.severity, f.code, f.message
                ));
            }
        }
    }
    // Pending responses and response handlers, as the census shows them.
    let rest = LiveCensus {
        threads: Vec::new(),
        ..r.census.clone()
    };
    let rest = census_text(&rest);
    let rest = rest.strip_prefix("Thread rows: none\n").unwrap_or(&rest);
    if !rest.is_empty() {
        out.push('\n');
        out.push_str(rest);
    }
    out.push_str("\nPreconditions (live counts)\n");
    if i.preconditions.is_empty() {
        out.push_str("  none\n");
    }
    for c in &i.preconditions {
        let mark = if c.ok { "ok  " } else { "FAIL" };
        out.push_str(&format!(
            "  {mark} {} ({})\n",
            c.description,
            counted(c.count, &c.unit)
        ));
    }
    out.push('\n');
    out.push_str(&history_text(r));
    out.push('\n');
    out.push_str(&i.answer);
    out.push('\n');
    out
}

/// `1 row`, `3 rows`, `1 enabled item` (units are given in the plural).
fn counted(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {}", unit.strip_suffix('s').unwrap_or(unit))
    } else {
        format!("{n} {unit}")
    }
}

fn fate_word(f: Fate) -> &'static str {
    match f {
        Fate::Resume => "resume",
        Fate::NewStacks => "new stacks",
        Fate::Stay => "stay",
        Fate::Finished => "finished",
        Fate::Drain => "drain first",
        Fate::Unknown => "UNKNOWN STATE",
    }
}
