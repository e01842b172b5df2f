//! `diff`, `plan` and `check`.

use super::{CmdResult, Failure, Format};
use clap::Args;

#[derive(Debug, Args)]
pub struct DiffArgs {
    pub old: String,
    pub new: String,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    pub old: Option<String>,
    pub new: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    pub old: Option<String>,
    pub new: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

pub fn diff(_a: DiffArgs) -> CmdResult {
    Err(Failure::input(anyhow::anyhow!("diff: not built yet")))
}

pub fn plan(_a: PlanArgs) -> CmdResult {
    Err(Failure::input(anyhow::anyhow!("plan: not built yet")))
}

pub fn check(_a: CheckArgs) -> CmdResult {
    Err(Failure::input(anyhow::anyhow!("check: not built yet")))
}
