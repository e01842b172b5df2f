//! The command line: the only layer that prints, reads the environment or picks an exit code.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;

mod analysis;
mod console;
mod db;
mod states_cmd;
mod verify_cmd;

/// Exit codes (design.md): named so no bare number appears elsewhere.
pub mod exit {
    /// Success; `check`: the change is identical or compatible.
    pub const OK: i32 = 0;
    /// `check` / `verify-numbering`: a difference that needs attention was found.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
}

#[derive(Debug, Parser)]
#[command(name = "bplmigrate", version, about = "Migrate in-flight IRIS BPL instances across a BPL change", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
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
    Check(analysis::CheckArgs),
    /// Read-only census of the live rows of a process.
    Status(db::StatusArgs),
    /// Apply a migration folder to a database over ODBC.
    Apply(db::ApplyArgs),
    /// What is applied here: every history entry beside every migration folder (read-only).
    Info(console::InfoArgs),
    /// Mark a dirty history entry resolved after checking the rows (who and why are recorded).
    Repair(console::RepairArgs),
}

/// An error with the exit code the CLI should use.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn input(error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code: exit::INPUT,
            error: error.into(),
        }
    }
    pub fn new(code: i32, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code,
            error: error.into(),
        }
    }
}

/// Commands return the exit code of a successful run (0, or 1 for "found something").
pub type CmdResult = Result<i32, Failure>;

/// `value` as pretty-printed JSON with a final newline; a value that cannot be serialized
/// fails the command with `code`.
fn pretty_json<T: serde::Serialize>(value: &T, code: i32) -> Result<String, Failure> {
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
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::INPUT
            } else {
                exit::OK
            };
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::States(a) => states_cmd::states(a),
        Command::VerifyNumbering(a) => verify_cmd::verify(a),
        Command::Diff(a) => analysis::diff(a),
        Command::Plan(a) => analysis::plan(a),
        Command::Check(a) => analysis::check(a),
        Command::Status(a) => db::status(a),
        Command::Apply(a) => db::apply(a),
        Command::Info(a) => console::info(a),
        Command::Repair(a) => console::repair(a),
    };
    match result {
        Ok(code) => code,
        Err(f) => {
            if is_broken_pipe(&f.error) {
                return exit::OK;
            }
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "error: {}", f.error);
            for cause in f.error.chain().skip(1) {
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

/// Write to stdout; a closed pipe (`| head`) is reported as an io error that `main` treats as
/// success.
pub fn emit(text: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Failure::new(exit::OK, e))
}
