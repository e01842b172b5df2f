//! The read-only and bookkeeping SQL the executor writes itself (census, host checks,
//! history). Identifiers come from the plan (validated by `plan`/`sql`) or are constants, and
//! are always delimited here; values always travel as `?` parameters, never in the text.
//! The rewrite statements themselves only come from `sql` as `CheckedSql`.

use crate::states::SqlTable;

/// A delimited identifier: `"%NextState"`. An embedded `"` is doubled (standard SQL), so no
/// name can end the identifier early.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"Schema"."Table"`.
pub fn table(t: &SqlTable) -> String {
    format!("{}.{}", ident(&t.schema), ident(&t.table))
}

/// `SELECT "a", "b" FROM t WHERE 1 = 0`: fails when the table or a column is missing, reads
/// nothing.
pub fn probe_sql(t: &SqlTable, columns: &[&str]) -> String {
    let cols = if columns.is_empty() {
        "1".to_string()
    } else {
        columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("SELECT {cols} FROM {} WHERE 1 = 0", table(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_delimited_and_quotes_doubled() {
        assert_eq!(ident("%NextState"), "\"%NextState\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        let t = SqlTable {
            schema: "Demo_X".into(),
            table: "Thread1".into(),
        };
        assert_eq!(
            probe_sql(&t, &["%Status"]),
            "SELECT \"%Status\" FROM \"Demo_X\".\"Thread1\" WHERE 1 = 0"
        );
    }
}
