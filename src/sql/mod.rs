//! Stage 5 — render a plan to guarded, parse-checked SQL scripts.

mod model;

pub use model::*;
