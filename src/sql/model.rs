//! The rendered script: what `sql` hands to `apply` and writes as `apply.sql` / `revert.sql`.
//!
//! `CheckedSql` can only be built inside this module, after the statement was parsed back
//! with sqlparser and matched one of the allowed shapes, so an unchecked string cannot reach
//! the executor by accident.

use crate::states::SqlTable;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// InterSystems IRIS SQL (the default): `$LISTBUILD`, `Ens.Job_Enumerate()`.
    #[default]
    Iris,
    /// PostgreSQL, the test stand-in with the same schema/table/column names.
    Postgres,
}

/// One SQL statement that passed the parse-back check. Only `sql` constructs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedSql(pub(super) String);

impl CheckedSql {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A query that must return a single count; the guard passes when the count is 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guard {
    /// What a refusal means, e.g. `rows rest at removed state S6 of Demo.BP.Thread1`.
    pub description: String,
    pub sql: CheckedSql,
}

/// One rewrite statement (a single swap-safe UPDATE … CASE … WHERE … IN (…)).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rewrite {
    pub table: SqlTable,
    /// The column whose values select the rows (`%NextState`, `_ResponseHandlers`, …).
    pub key_column: String,
    /// Old value → new value for that column; rows with other values are not touched.
    pub mapping: Vec<(String, String)>,
    pub sql: CheckedSql,
}

/// A census query: `SELECT key, COUNT(*) … GROUP BY key` for one table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Census {
    pub table: SqlTable,
    pub key_column: String,
    pub sql: CheckedSql,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqlScript {
    pub dialect: Dialect,
    /// Comment block: class, source hashes, plan id, generator.
    pub header: String,
    pub guards: Vec<Guard>,
    pub census: Vec<Census>,
    pub rewrites: Vec<Rewrite>,
}
