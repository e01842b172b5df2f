//! bplmigrate — migrate in-flight InterSystems IRIS BPL business-process instances across a
//! BPL change.
//!
//! Pipeline, one module per stage, plain data between stages:
//! `bpl` (activity tree) → `states` (compiled threads/states) → `diff` (old↔new matching) →
//! `plan` (migration plan) → `sql` (guarded scripts) → `apply` (ODBC executor);
//! `picture` draws compiled processes, plans and diffs for reviewers.
//! Only the `cli` module prints, reads the environment or chooses an exit code.

pub mod apply;
pub mod bpl;
pub mod check;
pub mod diff;
pub mod input;
pub(crate) mod pair;
pub mod picture;
pub mod plan;
pub mod sql;
pub mod states;
pub mod udl;

#[doc(hidden)]
pub mod cli;
