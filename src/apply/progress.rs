//! Progress of long work, reported through a trait so that only the CLI prints.

use crate::states::SqlTable;

/// Something the executor is about to do.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A named step (`checking hosts`, `evaluating guards`, `committing`).
    Step(&'a str),
    /// Counting the rows of one table: `done` of `total` tables.
    Census {
        table: &'a SqlTable,
        done: usize,
        total: usize,
    },
    /// Running the rewrite of one table, expected to touch `rows` rows (when known).
    Rewrite {
        table: &'a SqlTable,
        column: &'a str,
        rows: Option<i64>,
    },
    /// A rewrite finished: how many rows it changed.
    Rewritten {
        table: &'a SqlTable,
        rows: Option<usize>,
    },
    /// Connected; the server's id of this session where the database has one (PostgreSQL pid).
    Session { id: Option<i64> },
    /// Still waiting for the exclusive locks: who holds them, as far as the database can say.
    Waiting {
        tables: &'a [SqlTable],
        holders: &'a [String],
        waited_ms: u64,
        timeout_ms: u64,
    },
}

pub trait Progress {
    fn event(&self, event: &Event<'_>);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn event(&self, _: &Event<'_>) {}
}
