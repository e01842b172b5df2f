//! `states` and `verify-numbering`.

use super::{CmdResult, Failure, Format};
use clap::Args;

#[derive(Debug, Args)]
pub struct StatesArgs {
    /// BPL source: a .cls (UDL), an XML export, a bare <process> file, or REV:path.
    pub file: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The BPL source.
    pub bpl: String,
    /// Generated thread classes exported from IRIS (UDL .cls or XML export).
    #[arg(required = true)]
    pub thread_classes: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn states(_a: StatesArgs) -> CmdResult {
    Err(Failure::input(anyhow::anyhow!("states: not built yet")))
}

pub fn verify(_a: VerifyArgs) -> CmdResult {
    Err(Failure::input(anyhow::anyhow!("verify-numbering: not built yet")))
}
