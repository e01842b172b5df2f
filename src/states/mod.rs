//! Stage 2 — the compiler emulation: activity tree → generated thread classes, states,
//! successor edges, stacks and response handlers (spec/state-numbering.md).

mod model;

pub use model::*;
