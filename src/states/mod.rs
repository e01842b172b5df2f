//! Stage 2 — the compiler emulation: activity tree → generated thread classes, states,
//! successor edges, stacks and response handlers (spec/state-numbering.md).

mod compile;
mod graph;
pub mod import;
mod listing;
mod model;
mod names;

pub use compile::{compile, is_synchronous, version_number};
pub use graph::{check_invariants, graph, to_dot, to_mermaid, EdgeKind, Node, StateGraph};
pub use listing::{flags, listing, state_line};
pub use model::*;
