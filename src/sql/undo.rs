//! Exact undo of a mapping that cannot be inverted (two old states onto one new one, a state
//! removed by an override, …): the statements around `BplMigrate.Undo`
//! (`migrations/0002_undo.sql`).
//!
//! - [`capture`]: before a rewrite's UPDATE, in the same transaction, `INSERT … SELECT` copies
//!   every row the UPDATE will change — its ID, the key column and both stacks before, and the
//!   same CASE expressions the UPDATE sets, so the values after — keyed by the history entry.
//! - `apply --revert` then counts the recorded rows ([`undo_rows`]), those that still hold
//!   exactly the values the apply wrote ([`undo_unchanged`]), the rows of the table the entry
//!   did not write that rest where the revert cannot map back ([`undo_strangers`]), and
//!   restores the old values of exactly the recorded rows ([`undo_restore`]).
//!
//! Every value is a `?` parameter (class, entry number, table name), bound in the order the
//! function documents. The row identity is `CAST("ID" AS VARCHAR(64))` on both sides (IRIS
//! child-table IDs are text, `parent||key`).

use super::check::{check, Expect, Shape};
use super::render::{ELEMENT_KEY, HANDLER_STACK, ID_COLUMN, SUBROUTINE_STACK};
use super::text::{quote_ident, quote_table};
use super::{CheckedSql, Dialect, SqlError};
use crate::states::SqlTable;

/// `BplMigrate.Undo`.
pub fn undo_table() -> SqlTable {
    SqlTable {
        schema: "BplMigrate".into(),
        table: "Undo".into(),
    }
}

/// The DDL (one statement, comments kept) with the stack type of `dialect`.
pub fn undo_ddl(dialect: Dialect) -> String {
    const DDL: &str = include_str!("../../migrations/0002_undo.sql");
    let list = match dialect {
        Dialect::Postgres => "bytea",
        Dialect::Iris => "VARBINARY(32000)",
    };
    DDL.replace("{list}", list)
}

/// The columns of an undo row, in the order [`capture`] fills them.
pub const UNDO_COLUMNS: &[&str] = &[
    "BplClass",
    "Seq",
    "TableName",
    "RowId",
    "OldValue",
    "NewValue",
    "OldHandlerStack",
    "NewHandlerStack",
    "OldSubroutineStack",
    "NewSubroutineStack",
];

/// The key of one history entry's rows of one table, each a `?`: class, entry, table name.
const KEY: [&str; 3] = ["BplClass", "Seq", "TableName"];

/// How a table's rows are told apart in the undo table.
pub fn undo_table_name(t: &SqlTable) -> String {
    t.to_string()
}

/// The stack columns (old, new) of the undo table for each stack column of a thread row.
const STACKS: [(&str, &str, &str); 2] = [
    (HANDLER_STACK, "OldHandlerStack", "NewHandlerStack"),
    (SUBROUTINE_STACK, "OldSubroutineStack", "NewSubroutineStack"),
];

fn q(name: &str, d: Dialect) -> Result<String, SqlError> {
    quote_ident(name, d)
}

/// `CAST(<table>."ID" AS VARCHAR(64))`.
fn row_id(table: &SqlTable, d: Dialect) -> Result<String, SqlError> {
    Ok(format!(
        "CAST({}.{} AS VARCHAR(64))",
        quote_table(table, d)?,
        q(ID_COLUMN, d)?
    ))
}

/// `"BplMigrate"."Undo"."BplClass" = ? AND … "TableName" = ?`.
fn key_filter(d: Dialect) -> Result<String, SqlError> {
    let u = quote_table(&undo_table(), d)?;
    Ok(KEY
        .iter()
        .map(|k| q(k, d).map(|c| format!("{u}.{c} = ?")))
        .collect::<Result<Vec<_>, _>>()?
        .join(" AND "))
}

fn names(table: &SqlTable, key: &str, stacks: bool) -> Vec<String> {
    let mut c: Vec<String> = UNDO_COLUMNS.iter().map(|s| s.to_string()).collect();
    c.push(ID_COLUMN.into());
    c.push(key.into());
    if stacks {
        c.extend(STACKS.iter().map(|s| s.0.to_string()));
    } else {
        c.push(ELEMENT_KEY.into());
        c.push(parent_column(table).into());
    }
    c
}

fn expect(
    shape: Shape,
    table: &SqlTable,
    columns: Vec<String>,
    fns: &[&str],
    params: usize,
) -> Expect {
    Expect {
        shape,
        tables: vec![undo_table(), table.clone()],
        columns,
        functions: fns.iter().map(|s| s.to_string()).collect(),
        params,
    }
}

/// `INSERT INTO "BplMigrate"."Undo" (…) SELECT CAST(? AS VARCHAR(220)), CAST(? AS INTEGER),
/// '<table>', <row id>, <key>, <new key>, <stack>, <new stack>, … FROM <table> WHERE <key> IN
/// (<keys>)`: binds class, entry. `new` holds the expression the rewrite sets for each column
/// it sets (`key` and, for thread rows, the stacks); a column it does not set keeps its value.
/// `stacks`: the table is a thread table (handler rows have none).
pub(super) fn capture(
    d: Dialect,
    table: &SqlTable,
    key: &str,
    keys: &[String],
    new: &[(&str, String)],
    stacks: bool,
    functions: &[&str],
) -> Result<CheckedSql, SqlError> {
    let t = quote_table(table, d)?;
    let col = |c: &str| -> Result<String, SqlError> { Ok(format!("{t}.{}", q(c, d)?)) };
    let after = |c: &str| -> Result<String, SqlError> {
        match new.iter().find(|(n, _)| *n == c) {
            Some((_, e)) => Ok(e.clone()),
            None => col(c),
        }
    };
    let mut items = vec![
        "CAST(? AS VARCHAR(220))".to_string(),
        "CAST(? AS INTEGER)".to_string(),
        super::text::quote_literal(&undo_table_name(table), d)?,
        row_id(table, d)?,
        col(key)?,
        after(key)?,
    ];
    if stacks {
        for (c, _, _) in STACKS {
            items.push(col(c)?);
            items.push(after(c)?);
        }
    } else {
        // A handler row has no stacks: its identity (call-name key, parent row) goes into the
        // handler-stack pair, so the revert can check the whole row it restores.
        let identity = handler_identity(table, d)?;
        items.push(identity.clone());
        items.push(identity);
        items.push("NULL".into());
        items.push("NULL".into());
    }
    let in_list = keys
        .iter()
        .map(|k| super::text::quote_literal(k, d))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    let cols = UNDO_COLUMNS
        .iter()
        .map(|c| q(c, d))
        .collect::<Result<Vec<_>, _>>()?
        .join(", ");
    let sql = format!(
        "INSERT INTO {} ({cols})\nSELECT {}\nFROM {t}\nWHERE {} IN ({in_list})",
        quote_table(&undo_table(), d)?,
        items.join(",\n    "),
        col(key)?
    );
    let shape = Shape::InsertSelect {
        columns: UNDO_COLUMNS.iter().map(|s| s.to_string()).collect(),
    };
    check(
        &sql,
        d,
        &expect(shape, table, names(table, key, stacks), functions, 2),
    )
}

/// `SELECT COUNT(*) FROM "BplMigrate"."Undo" WHERE <key>`: the rows an entry recorded for a
/// table. Binds class, entry, table name.
pub fn undo_rows(d: Dialect) -> Result<CheckedSql, SqlError> {
    undo_count(d, None)
}

/// `SELECT COUNT(*)` of an entry's recorded rows for a table, narrowed by `and` if given.
fn undo_count(d: Dialect, and: Option<String>) -> Result<CheckedSql, SqlError> {
    let u = undo_table();
    let mut sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {}",
        quote_table(&u, d)?,
        key_filter(d)?
    );
    if let Some(and) = and {
        sql.push_str(" AND ");
        sql.push_str(&and);
    }
    let mut e = expect(
        Shape::Count,
        &u,
        UNDO_COLUMNS.iter().map(|s| s.to_string()).collect(),
        &["COUNT"],
        3,
    );
    e.tables.truncate(1);
    check(&sql, d, &e)
}

/// The recorded rows whose restore changes something: the key column's old value differs from
/// the one the apply wrote, or one of `stacks` (the stack columns the apply's rewrite set)
/// does. A row the apply left as it was (recorded unchanged, e.g. a stale handler entry) is
/// not written back and not counted.
fn changes(d: Dialect, stacks: &[&str]) -> Result<String, SqlError> {
    let u = quote_table(&undo_table(), d)?;
    let col = |c: &str| q(c, d).map(|c| format!("{u}.{c}"));
    let mut differ = vec![format!(
        "NOT {}",
        same(&col("OldValue")?, &col("NewValue")?)
    )];
    for (_, old, new) in STACKS.iter().filter(|(c, _, _)| stacks.contains(c)) {
        differ.push(format!("NOT {}", same(&col(old)?, &col(new)?)));
    }
    Ok(format!("({})", differ.join(" OR ")))
}

/// `SELECT COUNT(*) FROM "BplMigrate"."Undo" WHERE <key> AND <changes>`: the recorded rows of
/// a table that [`undo_restore`] writes back (those whose value it changes). Binds class,
/// entry, table name.
pub fn undo_changing(d: Dialect, stacks: &[&str]) -> Result<CheckedSql, SqlError> {
    undo_count(d, Some(changes(d, stacks)?))
}

/// The parent-row column of a child table (`Context` of `Context__ResponseHandlers`).
fn parent_column(table: &SqlTable) -> &str {
    table.table.split("__").next().unwrap_or(&table.table)
}

/// `$LISTBUILD(<table>."element_key", CAST(<table>."<parent>" AS VARCHAR(64)))`: what makes a
/// response-handler row the row it is besides its handler value — the call name it answers
/// and the context row it belongs to. Recorded (in `Old/NewHandlerStack`) for handler rows.
fn handler_identity(table: &SqlTable, d: Dialect) -> Result<String, SqlError> {
    let t = quote_table(table, d)?;
    Ok(format!(
        "{}({t}.{}, CAST({t}.{} AS VARCHAR(64)))",
        super::render::listbuild_function(d),
        q(ELEMENT_KEY, d)?,
        q(parent_column(table), d)?
    ))
}

/// `a = b OR (a IS NULL AND b IS NULL)`.
fn same(a: &str, b: &str) -> String {
    format!("({a} = {b} OR ({a} IS NULL AND {b} IS NULL))")
}

/// The recorded rows of a table that still exist and hold exactly the values the apply wrote
/// (key column and, for thread rows, both stacks). Binds class, entry, table name.
pub fn undo_unchanged(
    d: Dialect,
    table: &SqlTable,
    key: &str,
    stacks: bool,
) -> Result<CheckedSql, SqlError> {
    let u = quote_table(&undo_table(), d)?;
    let t = quote_table(table, d)?;
    let mut conds = vec![
        key_filter(d)?,
        format!("{t}.{} = {u}.{}", q(key, d)?, q("NewValue", d)?),
    ];
    if stacks {
        for (c, _, new) in STACKS {
            conds.push(same(
                &format!("{t}.{}", q(c, d)?),
                &format!("{u}.{}", q(new, d)?),
            ));
        }
    } else {
        // The same call-name key and parent row (an entry recorded before the identity was
        // kept has NULL there: its rows count as changed, refused).
        conds.push(same(
            &handler_identity(table, d)?,
            &format!("{u}.{}", q(STACKS[0].2, d)?),
        ));
    }
    let sql = format!(
        "SELECT COUNT(*) FROM {u} JOIN {t} ON {u}.{} = {}\nWHERE {}",
        q("RowId", d)?,
        row_id(table, d)?,
        conds.join("\n  AND ")
    );
    check(
        &sql,
        d,
        &expect(
            Shape::Count,
            table,
            names(table, key, stacks),
            &["COUNT", super::render::listbuild_function(d)],
            3,
        ),
    )
}

/// Rows of a table the entry did not record whose key is NULL or not one of `keep` (values
/// that mean the same in both versions): the revert restores only recorded rows and cannot
/// tell where these came from. Binds class, entry, table name.
pub fn undo_strangers(
    d: Dialect,
    table: &SqlTable,
    key: &str,
    keep: &[String],
) -> Result<CheckedSql, SqlError> {
    let t = quote_table(table, d)?;
    let k = format!("{t}.{}", q(key, d)?);
    // A NULL key is no value the revert can map back either.
    let mut conds = Vec::new();
    if !keep.is_empty() {
        let list = keep
            .iter()
            .map(|v| super::text::quote_literal(v, d))
            .collect::<Result<Vec<_>, _>>()?
            .join(", ");
        conds.push(format!("({k} IS NULL OR {k} NOT IN ({list}))"));
    }
    conds.push(format!(
        "{} NOT IN (SELECT {} FROM {} WHERE {})",
        row_id(table, d)?,
        q("RowId", d)?,
        quote_table(&undo_table(), d)?,
        key_filter(d)?
    ));
    let sql = format!("SELECT COUNT(*) FROM {t} WHERE {}", conds.join(" AND "));
    check(
        &sql,
        d,
        &expect(Shape::Count, table, names(table, key, false), &["COUNT"], 3),
    )
}

/// `UPDATE <table> SET <key> = (SELECT "OldValue" FROM "BplMigrate"."Undo" WHERE <key> AND
/// "RowId" = <row id>), <stacks> … WHERE <row id> IN (SELECT "RowId" … WHERE <key> AND
/// <changes>)`: puts back exactly the recorded rows whose value the apply changed (the others
/// already hold it). `stacks`: the stack columns the apply's rewrite set (the
/// others it left as they were). Binds class, entry, table name once per SET column, then once
/// more for the WHERE: 3 × (2 + stacks) values.
pub fn undo_restore(
    d: Dialect,
    table: &SqlTable,
    key: &str,
    stacks: &[&str],
) -> Result<CheckedSql, SqlError> {
    let u = quote_table(&undo_table(), d)?;
    let t = quote_table(table, d)?;
    let rid = row_id(table, d)?;
    let filter = key_filter(d)?;
    let old_of = |old: &str| -> Result<String, SqlError> {
        Ok(format!(
            "(SELECT {u}.{} FROM {u} WHERE {filter} AND {u}.{} = {rid})",
            q(old, d)?,
            q("RowId", d)?
        ))
    };
    let mut sets = vec![format!("{} = {}", q(key, d)?, old_of("OldValue")?)];
    for (c, old, _) in STACKS.iter().filter(|(c, _, _)| stacks.contains(c)) {
        sets.push(format!("{} = {}", q(c, d)?, old_of(old)?));
    }
    let sql = format!(
        "UPDATE {t}\nSET {}\nWHERE {rid} IN (SELECT {u}.{} FROM {u} WHERE {filter} AND {})",
        sets.join(",\n    "),
        q("RowId", d)?,
        changes(d, stacks)?
    );
    let params = 3 * (sets.len() + 1);
    let mut e = expect(
        Shape::Restore,
        table,
        names(table, key, !stacks.is_empty()),
        &[],
        params,
    );
    e.tables.reverse(); // the UPDATE's target comes first
    check(&sql, d, &e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{HANDLER_STACK, NEXT_STATE, SUBROUTINE_STACK};

    fn t() -> SqlTable {
        SqlTable {
            schema: "Demo_BP".into(),
            table: "Thread1".into(),
        }
    }

    #[test]
    fn every_undo_statement_passes_the_check_in_both_dialects() {
        for d in [Dialect::Iris, Dialect::Postgres] {
            let keys = vec!["S3".to_string(), "S4".to_string()];
            let new = vec![(
                NEXT_STATE,
                "CASE \"%NextState\" WHEN 'S3' THEN 'S5' WHEN 'S4' THEN 'S5' ELSE \"%NextState\" END"
                    .to_string(),
            )];
            capture(d, &t(), NEXT_STATE, &keys, &new, true, &[]).unwrap();
            undo_rows(d).unwrap();
            undo_changing(d, &[HANDLER_STACK]).unwrap();
            undo_changing(d, &[]).unwrap();
            undo_unchanged(d, &t(), NEXT_STATE, true).unwrap();
            undo_unchanged(d, &t(), "_ResponseHandlers", false).unwrap();
            undo_strangers(d, &t(), NEXT_STATE, &["Stop".into(), "S1".into()]).unwrap();
            let r = undo_restore(d, &t(), NEXT_STATE, &[HANDLER_STACK, SUBROUTINE_STACK]).unwrap();
            assert_eq!(r.as_str().matches('?').count(), 12, "{}", r.as_str());
            let r = undo_restore(d, &t(), NEXT_STATE, &[SUBROUTINE_STACK]).unwrap();
            assert!(!r.as_str().contains("OldHandlerStack"), "{}", r.as_str());
            assert_eq!(r.as_str().matches('?').count(), 9);
            undo_restore(d, &t(), "_ResponseHandlers", &[]).unwrap();
        }
        assert!(undo_ddl(Dialect::Postgres).contains("\"NewSubroutineStack\" bytea"));
        assert!(!undo_ddl(Dialect::Iris).contains("{list}"));
    }
}
