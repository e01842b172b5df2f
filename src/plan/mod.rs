//! Stage 4 — the migration plan: state mapping, preconditions, findings, verdict.
//!
//! [`build`] turns two parsed and compiled BPL versions (plus an optional reviewed
//! [`Overrides`] file) into a [`MigrationPlan`] and the [`ProcessDiff`](crate::diff::ProcessDiff)
//! behind it: first the scope (mappings, overrides applied), then the findings (raised by
//! the check modules, grouped like the catalogue), then the verdict. Findings are data, with
//! codes from the one catalogue in [`findings`];
//! [`render`] formats plans and diffs for people, [`reports`] for CI (GitLab Code Quality,
//! SARIF 2.1.0). Nothing here prints.

mod build;
mod checks;
pub mod findings;
mod model;
pub mod overrides;
pub mod render;
pub mod reports;
mod safety;
mod stale_handlers;

pub use build::{build, build_with_limits, pins, plan_id, PlanError};
pub use model::*;
pub use overrides::{Overrides, OverridesError};
