//! Stage 4 — the migration plan: state mapping, preconditions, findings, verdict.

mod model;

pub use model::*;
