//! The command line: the only layer that prints, reads the environment or picks an exit code.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;

mod analysis;
mod check_cmd;
mod console;
mod db;
mod states_cmd;
mod verify_cmd;

/// Exit codes (design.md): named so no bare number appears elsewhere.
pub mod exit {
    /// Success; `check`: every changed class passes (`--fail-on`) or is covered.
    pub const OK: i32 = 0;
    /// `check` / `verify-numbering`: a difference that needs attention was found; `plan`: the
    /// plan is blocked.
    pub const FOUND: i32 = 1;
    /// Usage or input error (bad arguments, malformed BPL, edited plan folder).
    pub const INPUT: i32 = 2;
    /// A guard or precondition refused; nothing was changed.
    pub const REFUSED: i32 = 3;
    /// The database failed; nothing was changed (rolled back, or no transaction was open).
    pub const DATABASE: i32 = 4;
    /// `apply`: the migration committed — the rows are migrated — but the check after commit
    /// failed (the history row says applied; a dirty marker is written where possible).
    pub const COMMITTED_UNVERIFIED: i32 = 5;
    /// `apply`: the connection was lost during COMMIT; the server committed all or nothing,
    /// `status --plan DIR` tells which (the history row is part of the transaction).
    pub const OUTCOME_UNKNOWN: i32 = 6;
}

/// How a command ended. Commands return it (or a [`Failure`] carrying it); [`Exit::code`] is
/// the one place it becomes a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success; `check`: every changed class passes or is covered.
    Clean,
    /// Something that needs attention was found (`check` fails, `plan` is blocked,
    /// `verify-numbering` differs, `info`: a folder is pending).
    Found,
    /// Usage or input error, including a failed write to standard output.
    Input,
    /// A guard or precondition refused; nothing was changed.
    Refused,
    /// The database failed; nothing was changed.
    Database,
    /// `apply`: the migration committed but the check after commit failed.
    CommittedUnverified,
    /// `apply`: the connection was lost during COMMIT; `status --plan DIR` tells the outcome.
    OutcomeUnknown,
}

impl Exit {
    pub fn code(self) -> i32 {
        match self {
            Exit::Clean => exit::OK,
            Exit::Found => exit::FOUND,
            Exit::Input => exit::INPUT,
            Exit::Refused => exit::REFUSED,
            Exit::Database => exit::DATABASE,
            Exit::CommittedUnverified => exit::COMMITTED_UNVERIFIED,
            Exit::OutcomeUnknown => exit::OUTCOME_UNKNOWN,
        }
    }
}

impl From<crate::apply::ErrorClass> for Exit {
    fn from(c: crate::apply::ErrorClass) -> Self {
        use crate::apply::ErrorClass;
        match c {
            ErrorClass::Input => Exit::Input,
            ErrorClass::Refused => Exit::Refused,
            ErrorClass::Database => Exit::Database,
            ErrorClass::CommittedUnverified => Exit::CommittedUnverified,
            ErrorClass::OutcomeUnknown => Exit::OutcomeUnknown,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
}

/// The exit codes, as `--help` lists them.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success; check: every changed class is identical, compatible, new, covered or below --fail-on
  1  check: a class needs action (verdict at or above --fail-on, or a deleted class);
     plan: the plan is blocked; verify-numbering: the emulation differs
  2  usage or input error (bad arguments, malformed BPL, edited migration folder, hostile or
     unknown git revision, not in a git repository, write error on standard output);
     check: also when one changed class cannot be checked (2 wins over 1; the other
     classes are still reported)
  3  a guard, lock timeout or precondition refused (or the counts changed after a confirmation,
     a history row holds a value bplmigrate does not write, or the plan is blocked by more
     than rows that must drain); nothing was changed
  4  the database failed; nothing was changed (rolled back, or no transaction was open)
  5  apply: committed (the rows are migrated) but the check after commit failed; a dirty
     history entry is written where possible (bplmigrate repair closes it)
  6  apply: the connection was lost during COMMIT (status --plan DIR tells whether it
     committed), or the history row is missing after it and the row counts cannot tell
info: 0 all applied, 1 a folder pending, 2 a folder edited, 3 a history entry dirty (highest wins).
status --plan --watch: 0 ready, 3 timed out or cannot become ready by draining, 4 the connection
was lost and not back before --timeout.
A closed standard output (`… | head`) keeps the exit code the command would have had.";

#[derive(Debug, Parser)]
#[command(name = "bplmigrate", version, about = "Migrate in-flight IRIS BPL instances across a BPL change", long_about = None, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Size cap for every input file, git blobs and `check --git-base`'s changed files
    /// included, e.g. 256M (defaults: BPL 16M, exported class 64M, overrides 16M, migration
    /// folder file 64M). For the rare giant.
    #[arg(long, global = true, value_name = "SIZE", value_parser = crate::input::parse_size)]
    pub max_input_size: Option<u64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The emulated compiled states of a BPL, per thread class.
    States(states_cmd::StatesArgs),
    /// Compare the emulation with thread classes exported from IRIS.
    VerifyNumbering(verify_cmd::VerifyArgs),
    /// Activity changes between two BPL versions and their effect on every state.
    Diff(analysis::DiffArgs),
    /// The migration plan: state mapping, findings, SQL files.
    Plan(analysis::PlanArgs),
    /// CI gate: is this BPL change safe for in-flight instances?
    Check(check_cmd::CheckArgs),
    /// Read-only census of the live rows of a process.
    Status(db::StatusArgs),
    /// Apply a migration folder to a database over ODBC.
    Apply(db::ApplyArgs),
    /// Print a shell completion script (e.g. `bplmigrate completions bash > /etc/bash_completion.d/bplmigrate`).
    Completions {
        #[arg(value_enum, ignore_case = true)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) of bplmigrate or of one command (`bplmigrate man check | man -l -`).
    Man {
        /// A command; the main page when omitted.
        command: Option<String>,
    },
    /// What is applied here: every history entry beside every migration folder (read-only).
    Info(console::InfoArgs),
    /// Mark a dirty history entry resolved after checking the rows (who and why are recorded).
    Repair(console::RepairArgs),
}

/// An error with the exit code the CLI should use.
#[derive(Debug)]
pub struct Failure {
    pub code: Exit,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn input(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: Exit::Input,
            error: error.into(),
        }
    }
    pub fn new(code: Exit, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code,
            error: error.into(),
        }
    }
}

/// Commands return how a successful run ended (clean, or found something).
pub type CmdResult = Result<Exit, Failure>;

/// `value` as pretty-printed JSON with a final newline; a value that cannot be serialized
/// fails the command with `code`.
fn pretty_json<T: serde::Serialize>(value: &T, code: Exit) -> Result<String, Failure> {
    let mut s = serde_json::to_string_pretty(value).map_err(|e| Failure::new(code, e))?;
    s.push('\n');
    Ok(s)
}

/// Reads a BPL source (a path or `REV:path`); `class` picks or names the process. An
/// unreadable or malformed source is an input error.
fn load_bpl(source: &str, class: &Option<String>) -> Result<crate::bpl::Bpl, Failure> {
    let options = crate::bpl::LoadOptions {
        class: class.clone(),
    };
    crate::bpl::load(source, &options).map_err(Failure::input)
}

/// The emulated compiled states of a BPL; a process the emulation refuses is an input error.
fn compile(
    bpl: &crate::bpl::Bpl,
    compiler: crate::states::Compiler,
) -> Result<crate::states::CompiledProcess, Failure> {
    crate::states::compile(bpl, compiler).map_err(Failure::input)
}

pub fn main() -> i32 {
    return_large_buffers_to_the_system();
    run().code()
}

/// glibc raises its mmap threshold each time a large mmapped block is freed, so after loading
/// one big file the next file's large buffers come from the heap and, once freed, stay
/// resident: a fixed threshold returns them. The binary's Rust allocations go to jemalloc
/// (`src/main.rs`); what still comes from glibc is the C heap of the UDL grammar (tree-sitter's
/// parse trees). Only the process's own allocator is tuned.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Parse the arguments, run the command, report an error: how it all ended.
fn run() -> Exit {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                Exit::Input
            } else {
                Exit::Clean
            };
            let _ = e.print();
            return code;
        }
    };
    crate::input::set_max_size(cli.max_input_size);
    let result = match cli.command {
        Command::States(a) => states_cmd::states(a),
        Command::VerifyNumbering(a) => verify_cmd::verify(a),
        Command::Diff(a) => analysis::diff(a),
        Command::Plan(a) => analysis::plan(a),
        Command::Check(a) => check_cmd::check(a),
        Command::Status(a) => db::status(a),
        Command::Apply(a) => db::apply(a),
        Command::Completions { shell } => completions(shell),
        Command::Man { command } => man(command.as_deref()),
        Command::Info(a) => console::info(a),
        Command::Repair(a) => console::repair(a),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            if is_broken_pipe(&f.error) {
                // The reader went away: say nothing, keep the code the command chose.
                return f.code;
            }
            let mut err = std::io::stderr().lock();
            // A message's own indented continuation lines (a list of refusals: `\n  - …`)
            // stay line breaks; any other control character, a newline inside an echoed
            // value included, is escaped, so no line can pass for one of ours.
            let message: Vec<String> = f
                .error
                .to_string()
                .split("\n  ")
                .map(crate::input::printable_message)
                .collect();
            let _ = write!(err, "error: {}", message.join("\n  "));
            for cause in f.error.chain().skip(1) {
                let cause = crate::input::printable_message(&cause.to_string());
                let _ = write!(err, "\n  caused by: {cause}");
            }
            let _ = writeln!(err);
            f.code
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `value` as pretty-printed JSON with a final newline (the bytes of [`pretty_json`]),
/// serialized straight into buffered stdout: no intermediate string, which for a large
/// process or plan would be tens of megabytes. Write errors are handled like [`emit`]'s.
pub fn emit_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    emit_json_keeping(value, Exit::Clean)
}

/// [`emit_json`]; a closed pipe keeps `code` (see [`emit_keeping`]). A value that cannot be
/// serialized is an input error, as with [`pretty_json`].
pub fn emit_json_keeping<T: serde::Serialize>(value: &T, code: Exit) -> Result<(), Failure> {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value).map_err(|e| {
        if e.is_io() {
            write_failure(std::io::Error::from(e), code)
        } else {
            Failure::new(Exit::Input, e)
        }
    })?;
    out.write_all(b"\n")
        .and_then(|_| out.flush())
        .map_err(|e| write_failure(e, code))
}

/// Write to stdout; a closed pipe (`| head`) ends the command quietly with exit 0.
pub fn emit(text: &str) -> Result<(), Failure> {
    emit_keeping(text, Exit::Clean)
}

/// Write to stdout. A closed pipe (`| head`) ends the command quietly with `code`, the exit
/// code the command decided before printing, so a failing verdict piped into `head` still
/// fails. Any other write error (a full disk, `> /dev/full`) is an error, exit 2.
pub fn emit_keeping(text: &str, code: Exit) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| write_failure(e, code))
}

/// A failed write to stdout: a closed pipe keeps `code` (and is not reported), anything else
/// is an input/output error.
fn write_failure(e: std::io::Error, code: Exit) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Failure::new(code, e)
    } else {
        Failure::input(anyhow::Error::new(e).context("cannot write to standard output"))
    }
}

fn completions(shell: clap_complete::Shell) -> CmdResult {
    use clap::CommandFactory;
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "bplmigrate", &mut buf);
    emit(&String::from_utf8_lossy(&buf))?;
    Ok(Exit::Clean)
}

fn man(command: Option<&str>) -> CmdResult {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    cmd.build();
    let page = match command {
        None => cmd,
        Some(name) => {
            let names: Vec<String> = cmd
                .get_subcommands()
                .map(|s| s.get_name().to_string())
                .collect();
            let sub = cmd.find_subcommand(name).cloned().ok_or_else(|| {
                Failure::input(anyhow::anyhow!(
                    "no command {name:?}; commands: {}",
                    names.join(", ")
                ))
            })?;
            // The page title names the full command (bplmigrate-check).
            let title = format!("bplmigrate-{}", sub.get_name());
            sub.name(title)
        }
    };
    let mut buf = Vec::new();
    clap_mangen::Man::new(page).render(&mut buf).map_err(|e| {
        Failure::input(anyhow::Error::new(e).context("cannot render the manual page"))
    })?;
    emit(&String::from_utf8_lossy(&buf))?;
    Ok(Exit::Clean)
}
