//! `status` and `apply`.

use super::{CmdResult, Failure, Format};
use clap::Args;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// ODBC connection string (or BPLMIGRATE_CONNECT).
    #[arg(long, env = "BPLMIGRATE_CONNECT", hide_env_values = true)]
    pub connect: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A migration folder written by `plan --out`.
    pub plan: String,
    #[arg(long, env = "BPLMIGRATE_CONNECT", hide_env_values = true)]
    pub connect: String,
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub yes: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn status(_a: StatusArgs) -> CmdResult {
    Err(Failure::input(anyhow::anyhow!("status: not built yet")))
}

pub fn apply(_a: ApplyArgs) -> CmdResult {
    Err(Failure::input(anyhow::anyhow!("apply: not built yet")))
}
