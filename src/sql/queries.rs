//! The statements `apply` runs besides a script's guards and rewrites: the census, the
//! existence probes, the host and job reads, the history reads and the history row.
//!
//! They are built like every other statement of this stage: names validated and quoted by
//! [`text`](super::text), every value a `?` parameter the executor binds, and the text
//! parsed back into a [`CheckedSql`] of an allowed shape.

use super::check::{check, Expect, Shape};
use super::render::job_enumerate_call;
use super::text::{quote_ident, quote_ident_list, quote_table};
use super::{CheckedSql, Dialect, SqlError};
use crate::states::SqlTable;

/// `BplMigrate.History`, the tool's record of every apply and revert (DDL:
/// `migrations/0001_history.sql`), written by `apply` and by the ObjectScript runner.
pub fn history_table() -> SqlTable {
    SqlTable {
        schema: "BplMigrate".into(),
        table: "History".into(),
    }
}

/// The history DDL (one statement, comment lines included).
pub const HISTORY_DDL: &str = include_str!("../../migrations/0001_history.sql");
/// The size of `RowCounts` in [`HISTORY_DDL`] (`VARCHAR(30000)`): what the ODBC apply and the
/// ObjectScript runner record there never exceeds it (they summarize when the groups do not
/// fit).
pub const ROW_COUNTS_MAX: usize = 30000;

/// The columns of a history row, in the one order every writer binds them and every reader
/// reads them (`apply`, `status`, `info`, `repair` and the ObjectScript runner).
pub const HISTORY_COLUMNS: &[&str] = &[
    "Seq",
    "PlanId",
    "PlanSha256",
    "BplClass",
    "OldSha256",
    "NewSha256",
    "Direction",
    "AppliedAt",
    "AppliedBy",
    "Outcome",
    "ToolVersion",
    "RowCounts",
    "Note",
];

/// The 1-based position of a history column in [`HISTORY_COLUMNS`] (what a reader of a row
/// selected with that list passes to `%GetData`); None for a name not in the list.
pub fn history_column(name: &str) -> Option<usize> {
    HISTORY_COLUMNS
        .iter()
        .position(|c| *c == name)
        .map(|i| i + 1)
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

/// What a statement reading `table` may name: `columns` (and the optional extras), the
/// `functions`, `params` bound values.
fn expect(
    shape: Shape,
    table: &SqlTable,
    columns: Vec<String>,
    functions: &[&str],
    params: usize,
) -> Expect {
    Expect {
        shape,
        tables: vec![table.clone()],
        columns,
        functions: owned(functions),
        params,
    }
}

/// ` WHERE "f" = ?`: the rows whose `filter` column equals the one bound value (nothing
/// without a filter).
fn where_bound(filter: Option<&str>, dialect: Dialect) -> Result<String, SqlError> {
    Ok(match filter {
        Some(f) => format!(" WHERE {} = ?", quote_ident(f, dialect)?),
        None => String::new(),
    })
}

/// `SELECT k1, …, COUNT(*) FROM t GROUP BY k1, …`: rows per key. A script's census groups by
/// one key; the executor's thread census by state, status and both stacks.
pub fn census_query(
    dialect: Dialect,
    table: &SqlTable,
    keys: &[&str],
) -> Result<CheckedSql, SqlError> {
    let k = quote_ident_list(keys, dialect)?;
    let sql = format!(
        "SELECT {k}, COUNT(*) FROM {} GROUP BY {k}",
        quote_table(table, dialect)?
    );
    let shape = Shape::Census {
        keys: owned(keys),
        flagged: false,
    };
    check(
        &sql,
        dialect,
        &expect(shape, table, owned(keys), &["COUNT"], 0),
    )
}

/// A census that also counts, per group, the rows a guard's condition holds for:
/// `SELECT k…, COUNT(*), SUM(CASE WHEN <condition> THEN 1 ELSE 0 END) FROM t GROUP BY k…`. The
/// condition is a guard's WHERE clause from `render` ([`super::ForeignRows`]), parse-checked
/// again here with its columns and functions.
pub fn flagged_census_query(
    dialect: Dialect,
    table: &SqlTable,
    keys: &[&str],
    condition: &super::ForeignRows,
) -> Result<CheckedSql, SqlError> {
    let k = quote_ident_list(keys, dialect)?;
    let sql = format!(
        "SELECT {k}, COUNT(*), SUM(CASE WHEN {} THEN 1 ELSE 0 END) FROM {} GROUP BY {k}",
        condition.condition,
        quote_table(table, dialect)?
    );
    let shape = Shape::Census {
        keys: owned(keys),
        flagged: true,
    };
    let mut columns = owned(keys);
    columns.extend(condition.columns.iter().cloned());
    let mut functions = vec!["COUNT", "SUM"];
    functions.extend(condition.functions.iter().map(String::as_str));
    check(&sql, dialect, &expect(shape, table, columns, &functions, 0))
}

/// `SELECT c1, … FROM t WHERE 1 = 0` (`SELECT 1 …` without columns): runs only when the table
/// and the columns exist, and reads nothing.
pub fn probe_table(
    dialect: Dialect,
    table: &SqlTable,
    columns: &[&str],
) -> Result<CheckedSql, SqlError> {
    let cols = if columns.is_empty() {
        "1".to_string()
    } else {
        quote_ident_list(columns, dialect)?
    };
    let sql = format!(
        "SELECT {cols} FROM {} WHERE 1 = 0",
        quote_table(table, dialect)?
    );
    let shape = Shape::Probe {
        columns: owned(columns),
    };
    check(&sql, dialect, &expect(shape, table, owned(columns), &[], 0))
}

/// `SELECT COUNT(*) FROM t WHERE c IS NULL`: the rows a default fill is to set (and, after
/// it, must no longer find).
pub fn null_count(
    dialect: Dialect,
    table: &SqlTable,
    column: &str,
) -> Result<CheckedSql, SqlError> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {} IS NULL",
        quote_table(table, dialect)?,
        quote_ident(column, dialect)?
    );
    check(
        &sql,
        dialect,
        &expect(Shape::Count, table, owned(&[column]), &["COUNT"], 0),
    )
}

/// `SELECT c1, … FROM t [WHERE f = ?] [ORDER BY o]`: named columns of the rows whose `filter`
/// column equals the one bound value.
pub fn read_rows(
    dialect: Dialect,
    table: &SqlTable,
    columns: &[&str],
    filter: Option<&str>,
    order_by: Option<&str>,
) -> Result<CheckedSql, SqlError> {
    let mut sql = format!(
        "SELECT {} FROM {}{}",
        quote_ident_list(columns, dialect)?,
        quote_table(table, dialect)?,
        where_bound(filter, dialect)?
    );
    if let Some(o) = order_by {
        sql.push_str(&format!(" ORDER BY {}", quote_ident(o, dialect)?));
    }
    let mut names = owned(columns);
    names.extend(filter.into_iter().chain(order_by).map(str::to_string));
    let shape = Shape::Read {
        columns: owned(columns),
        filter: filter.map(str::to_string),
        order_by: order_by.map(str::to_string),
    };
    check(
        &sql,
        dialect,
        &expect(shape, table, names, &[], usize::from(filter.is_some())),
    )
}

/// `SELECT c1, … FROM Ens.Job_Enumerate()`: the live jobs (the `"Ens"."Job_Enumerate"()`
/// function of the postgres test schema).
pub fn job_rows(dialect: Dialect, columns: &[&str]) -> Result<CheckedSql, SqlError> {
    let sql = format!(
        "SELECT {} FROM {}",
        quote_ident_list(columns, dialect)?,
        job_enumerate_call(dialect)?
    );
    let shape = Shape::Read {
        columns: owned(columns),
        filter: None,
        order_by: None,
    };
    let jobs = super::job_enumerate_table();
    check(&sql, dialect, &expect(shape, &jobs, owned(columns), &[], 0))
}

/// `SELECT MAX(c) FROM t [WHERE f = ?]`.
pub fn max_of(
    dialect: Dialect,
    table: &SqlTable,
    column: &str,
    filter: Option<&str>,
) -> Result<CheckedSql, SqlError> {
    let sql = format!(
        "SELECT MAX({}) FROM {}{}",
        quote_ident(column, dialect)?,
        quote_table(table, dialect)?,
        where_bound(filter, dialect)?
    );
    let mut names = owned(&[column]);
    names.extend(filter.map(str::to_string));
    let shape = Shape::Max {
        column: column.to_string(),
        filter: filter.map(str::to_string),
    };
    check(
        &sql,
        dialect,
        &expect(shape, table, names, &["MAX"], usize::from(filter.is_some())),
    )
}

/// `information_schema.tables`, the catalog view of the tables (PostgreSQL).
fn catalog_tables() -> SqlTable {
    SqlTable {
        schema: "information_schema".into(),
        table: "tables".into(),
    }
}

/// `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?`:
/// whether a table exists, asked of the catalog (schema and table name are bound).
pub fn catalog_table_count(dialect: Dialect) -> Result<CheckedSql, SqlError> {
    let t = catalog_tables();
    let (schema, name) = ("table_schema", "table_name");
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {} = ? AND {} = ?",
        quote_table(&t, dialect)?,
        quote_ident(schema, dialect)?,
        quote_ident(name, dialect)?
    );
    check(
        &sql,
        dialect,
        &expect(Shape::Count, &t, owned(&[schema, name]), &["COUNT"], 2),
    )
}

/// `INSERT INTO <table> (<columns>) VALUES (?, …)`: the bookkeeping row `apply` writes, with
/// every value bound as a parameter.
pub fn history_insert(
    dialect: Dialect,
    table: &SqlTable,
    columns: &[&str],
) -> Result<CheckedSql, SqlError> {
    if columns.is_empty() {
        return Err(SqlError::Plan {
            reason: "a history row needs at least one column".into(),
        });
    }
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote_table(table, dialect)?,
        quote_ident_list(columns, dialect)?,
        vec!["?"; columns.len()].join(", ")
    );
    let shape = Shape::Insert {
        columns: owned(columns),
    };
    check(
        &sql,
        dialect,
        &expect(shape, table, owned(columns), &[], columns.len()),
    )
}

/// `UPDATE <table> SET s1 = ?, … WHERE k1 = ? AND …`: one bookkeeping row changed in place
/// (`repair` marks a dirty history entry), every value bound: first the `set` values, then the
/// `keys` values.
pub fn history_update(
    dialect: Dialect,
    table: &SqlTable,
    set: &[&str],
    keys: &[&str],
) -> Result<CheckedSql, SqlError> {
    if set.is_empty() || keys.is_empty() {
        return Err(SqlError::Plan {
            reason: "a history update needs columns to set and a key".into(),
        });
    }
    let assign = |cols: &[&str], sep: &str| -> Result<String, SqlError> {
        Ok(cols
            .iter()
            .map(|c| quote_ident(c, dialect).map(|q| format!("{q} = ?")))
            .collect::<Result<Vec<_>, _>>()?
            .join(sep))
    };
    let sql = format!(
        "UPDATE {} SET {} WHERE {}",
        quote_table(table, dialect)?,
        assign(set, ", ")?,
        assign(keys, " AND ")?
    );
    let mut names = owned(set);
    names.extend(owned(keys));
    let shape = Shape::Mark {
        set: owned(set),
        keys: owned(keys),
    };
    check(
        &sql,
        dialect,
        &expect(shape, table, names, &[], set.len() + keys.len()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread() -> SqlTable {
        SqlTable {
            schema: "Demo_X".into(),
            table: "Thread1".into(),
        }
    }

    fn history() -> SqlTable {
        SqlTable {
            schema: "BplMigrate".into(),
            table: "History".into(),
        }
    }

    #[test]
    fn identifiers_are_delimited_in_probes() {
        for d in [Dialect::Iris, Dialect::Postgres] {
            assert_eq!(
                probe_table(d, &thread(), &["%Status"]).unwrap().as_str(),
                "SELECT \"%Status\" FROM \"Demo_X\".\"Thread1\" WHERE 1 = 0"
            );
            assert_eq!(
                probe_table(d, &thread(), &[]).unwrap().as_str(),
                "SELECT 1 FROM \"Demo_X\".\"Thread1\" WHERE 1 = 0"
            );
        }
    }

    #[test]
    fn names_that_could_break_out_are_refused_not_escaped() {
        let bad = SqlTable {
            schema: "Demo_X".into(),
            table: "T\"; DROP TABLE x; --".into(),
        };
        let d = Dialect::Postgres;
        assert!(probe_table(d, &bad, &[]).is_err());
        assert!(probe_table(d, &thread(), &["a\"b"]).is_err());
        assert!(census_query(d, &bad, &["%NextState"]).is_err());
        assert!(null_count(d, &thread(), "x y").is_err());
        assert!(read_rows(d, &bad, &["Seq"], None, None).is_err());
        assert!(max_of(d, &thread(), "Seq", Some("a;b")).is_err());
    }

    #[test]
    fn census_over_several_keys() {
        let sql = census_query(Dialect::Postgres, &thread(), &["%NextState", "%Status"]).unwrap();
        assert_eq!(
            sql.as_str(),
            "SELECT \"%NextState\", \"%Status\", COUNT(*) FROM \"Demo_X\".\"Thread1\" GROUP BY \"%NextState\", \"%Status\""
        );
        assert!(census_query(Dialect::Postgres, &thread(), &[]).is_err());
    }

    #[test]
    fn reads_bind_their_values() {
        for d in [Dialect::Iris, Dialect::Postgres] {
            assert_eq!(
                read_rows(d, &history(), &["Seq", "Outcome"], Some("BplClass"), Some("Seq"))
                    .unwrap()
                    .as_str(),
                "SELECT \"Seq\", \"Outcome\" FROM \"BplMigrate\".\"History\" WHERE \"BplClass\" = ? ORDER BY \"Seq\""
            );
            assert_eq!(
                max_of(d, &history(), "Seq", Some("BplClass"))
                    .unwrap()
                    .as_str(),
                "SELECT MAX(\"Seq\") FROM \"BplMigrate\".\"History\" WHERE \"BplClass\" = ?"
            );
            assert_eq!(
                null_count(d, &thread(), "Amount").unwrap().as_str(),
                "SELECT COUNT(*) FROM \"Demo_X\".\"Thread1\" WHERE \"Amount\" IS NULL"
            );
            assert!(catalog_table_count(d)
                .unwrap()
                .as_str()
                .ends_with("WHERE \"table_schema\" = ? AND \"table_name\" = ?"));
        }
    }

    #[test]
    fn history_updates_bind_every_value_and_test_every_key() {
        for d in [Dialect::Iris, Dialect::Postgres] {
            assert_eq!(
                history_update(
                    d,
                    &history(),
                    &["Outcome", "Note"],
                    &["BplClass", "Seq", "Outcome"]
                )
                .unwrap()
                .as_str(),
                "UPDATE \"BplMigrate\".\"History\" SET \"Outcome\" = ?, \"Note\" = ? \
                 WHERE \"BplClass\" = ? AND \"Seq\" = ? AND \"Outcome\" = ?"
            );
        }
        assert!(history_update(Dialect::Postgres, &history(), &[], &["Seq"]).is_err());
        assert!(history_update(Dialect::Postgres, &history(), &["Outcome"], &[]).is_err());
        assert!(history_update(Dialect::Postgres, &history(), &["Out\"come"], &["Seq"]).is_err());
    }

    #[test]
    fn job_rows_read_the_enumeration() {
        assert_eq!(
            job_rows(Dialect::Iris, &["Job", "State"]).unwrap().as_str(),
            "SELECT \"Job\", \"State\" FROM Ens.Job_Enumerate()"
        );
        assert_eq!(
            job_rows(Dialect::Postgres, &["Job", "State"])
                .unwrap()
                .as_str(),
            "SELECT \"Job\", \"State\" FROM \"Ens\".\"Job_Enumerate\"()"
        );
    }
}
