//! Parse-back check: the only constructor of [`CheckedSql`].
//!
//! Every generated statement is parsed with sqlparser (`IrisDialect` for `iris`,
//! `PostgreSqlDialect` for `postgres`) and must
//! - be exactly one statement, with no `;` and no comment in the text;
//! - have one of the allowed shapes ([`Shape`]): a guard `SELECT COUNT(*)`, a census
//!   `SELECT key, …, COUNT(*) … GROUP BY key, …`, a rewrite `UPDATE … WHERE key IN (…)` whose
//!   IN list is exactly the mapped values, a default fill `UPDATE … SET c = literal WHERE c IS
//!   NULL`, the history `INSERT … VALUES (?, …)`, or one of the executor's reads: an existence
//!   probe `SELECT c, … FROM t WHERE 1 = 0`, a row read `SELECT c, … FROM t [WHERE f = ?]
//!   [ORDER BY o]` and `SELECT MAX(c) FROM t [WHERE f = ?]`;
//! - reference only the expected tables, columns and functions, through a whitelist of
//!   expression forms (anything else — subqueries where none is expected, aliases, unknown
//!   functions, operators other than AND/OR/=/<> — is refused);
//! - hold exactly the expected number of `?` parameter markers (values the executor binds)
//!   and no other placeholder;
//! - print back to text that parses to the same tree.

use super::{CheckedSql, Dialect, SqlError};
use crate::states::SqlTable;
use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, CastKind, DataType, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, Ident, JoinConstraint, JoinOperator, ObjectName, OrderByKind,
    OrderBySort, Query, SelectItem, SetExpr, Statement, TableFactor, TableObject, TableWithJoins,
    UnaryOperator, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, Whitespace};
use std::collections::BTreeSet;

/// InterSystems IRIS SQL as far as bplmigrate generates it: `%` may start an identifier
/// (`%NextState`; not inside one, so `a % 3` stays a modulo — without the space sqlparser
/// reads `%3` as a name, which generated text never contains) and `$` may start one
/// (`$LISTBUILD`, `$LISTSAME`). Double quotes delimit identifiers.
#[derive(Debug, Default, Clone, Copy)]
pub struct IrisDialect;

impl sqlparser::dialect::Dialect for IrisDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '"'
    }
    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_ascii_alphabetic() || ch == '_' || ch == '%' || ch == '$'
    }
    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_ascii_alphanumeric() || ch == '_'
    }
}

pub(super) fn parser_dialect(d: Dialect) -> Box<dyn sqlparser::dialect::Dialect> {
    match d {
        Dialect::Iris => Box::new(IrisDialect),
        Dialect::Postgres => Box::new(PostgreSqlDialect {}),
    }
}

/// Tokenize and refuse comments and semicolons (generated text never holds either).
fn plain_tokens(text: &str, dialect: Dialect) -> Result<(), String> {
    let d = parser_dialect(dialect);
    let tokens = Tokenizer::new(d.as_ref(), text)
        .tokenize()
        .map_err(|e| e.to_string())?;
    for t in tokens {
        match t {
            Token::Whitespace(
                Whitespace::SingleLineComment { .. } | Whitespace::MultiLineComment(_),
            ) => return Err("a comment is not allowed here".into()),
            Token::SemiColon => return Err("`;` is not allowed here".into()),
            _ => {}
        }
    }
    Ok(())
}

/// Parse `text` as exactly one expression (used for override-supplied default literals).
pub(super) fn parse_single_expr(text: &str, dialect: Dialect) -> Result<Expr, String> {
    plain_tokens(text, dialect)?;
    let d = parser_dialect(dialect);
    let mut p = Parser::new(d.as_ref())
        .try_with_sql(text)
        .map_err(|e| e.to_string())?;
    let e = p.parse_expr().map_err(|e| e.to_string())?;
    if p.peek_token().token != Token::EOF {
        return Err("unexpected text after the value".into());
    }
    Ok(e)
}

/// Parse `text` into statements (for tests and the round-trip check).
pub fn parse(text: &str, dialect: Dialect) -> Result<Vec<Statement>, String> {
    let d = parser_dialect(dialect);
    Parser::parse_sql(d.as_ref(), text).map_err(|e| e.to_string())
}

/// What a statement must look like.
#[derive(Debug, Clone)]
pub(super) enum Shape {
    /// `SELECT COUNT(*) FROM t [JOIN t2 ON …] [WHERE …]`.
    Count,
    /// `SELECT k1, …, COUNT(*) FROM t GROUP BY k1, …` (the keys in this order); `flagged`: one
    /// more item, `SUM(CASE WHEN <condition> THEN 1 ELSE 0 END)` (rows per group a guard
    /// condition holds for, so one scan gives the census and the guard).
    Census { keys: Vec<String>, flagged: bool },
    /// `SELECT c1, … FROM t WHERE 1 = 0` (`SELECT 1 …` without columns): fails when the table
    /// or a column is missing, reads nothing.
    Probe { columns: Vec<String> },
    /// `SELECT c1, … FROM t [WHERE f = ?] [ORDER BY o]`: named columns of one table (or the
    /// job enumeration), filtered by a bound parameter.
    Read {
        columns: Vec<String>,
        filter: Option<String>,
        order_by: Option<String>,
    },
    /// `SELECT MAX(c) FROM t [WHERE f = ?]`.
    Max {
        column: String,
        filter: Option<String>,
    },
    /// `UPDATE t SET c = … [, …] WHERE key IN (keys…)`; the IN list must be exactly `keys`.
    Rewrite { key: String, keys: Vec<String> },
    /// `UPDATE t SET c = <literal> WHERE c IS NULL`.
    Fill { column: String },
    /// `INSERT INTO t (columns…) VALUES (?, …)`.
    Insert { columns: Vec<String> },
    /// `UPDATE t SET s1 = ?, … WHERE k1 = ? AND k2 = ? …`: one bookkeeping row changed in
    /// place, every value bound (`repair`).
    Mark { set: Vec<String>, keys: Vec<String> },
    /// `INSERT INTO t (columns…) SELECT … FROM t2 WHERE …`: the undo rows of a rewrite, one
    /// select item per column (`sql::undo`).
    InsertSelect { columns: Vec<String> },
    /// `UPDATE t SET c = (SELECT …), … WHERE … IN (SELECT …)`: the undo restore, whose SET
    /// values are single-column subqueries (`sql::undo`).
    Restore,
}

/// The names a statement may reference. The first table is the target of an UPDATE,
/// INSERT or census.
#[derive(Debug, Clone)]
pub(super) struct Expect {
    pub shape: Shape,
    pub tables: Vec<SqlTable>,
    pub columns: Vec<String>,
    pub functions: Vec<String>,
    /// How many `?` parameter markers the statement holds (0: none may appear).
    pub params: usize,
}

fn shape_err(sql: &str, reason: impl Into<String>) -> SqlError {
    SqlError::Shape {
        sql: sql.to_string(),
        reason: reason.into(),
    }
}

/// Parse `sql` back and check it against `expect`; on success it becomes a [`CheckedSql`].
pub(super) fn check(sql: &str, dialect: Dialect, expect: &Expect) -> Result<CheckedSql, SqlError> {
    // PostgreSqlDialect reads `?` as an operator; the `?` are ODBC parameter markers
    // (psqlODBC rewrites them), and a statement that binds parameters holds nothing
    // dialect-specific, so it is checked with the IRIS dialect in both.
    let dialect = if expect.params > 0 {
        Dialect::Iris
    } else {
        dialect
    };
    plain_tokens(sql, dialect).map_err(|m| shape_err(sql, m))?;
    let stmts = parse(sql, dialect).map_err(|m| SqlError::Parse {
        sql: sql.to_string(),
        message: m,
    })?;
    if stmts.len() != 1 {
        return Err(shape_err(
            sql,
            format!("expected exactly one statement, found {}", stmts.len()),
        ));
    }
    let stmt = &stmts[0];
    let mut w = Walker {
        expect,
        sql,
        tables_seen: Vec::new(),
        params_seen: 0,
    };
    w.statement(stmt)?;
    if w.params_seen != expect.params {
        return Err(shape_err(
            sql,
            format!(
                "expected {} `?` parameters, found {}",
                expect.params, w.params_seen
            ),
        ));
    }
    // Round trip: sqlparser's printed form must parse to the same tree.
    let printed = stmt.to_string();
    match parse(&printed, dialect) {
        Ok(again) if again.len() == 1 && &again[0] == stmt => {}
        _ => {
            return Err(shape_err(
                sql,
                format!("does not survive a print/parse round trip (printed as {printed})"),
            ))
        }
    }
    Ok(CheckedSql(sql.to_string()))
}

struct Walker<'a> {
    expect: &'a Expect,
    sql: &'a str,
    tables_seen: Vec<Vec<String>>,
    /// `?` markers met so far.
    params_seen: usize,
}

fn name_parts(n: &ObjectName) -> Option<Vec<String>> {
    n.0.iter()
        .map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect()
}

fn table_parts(t: &SqlTable) -> Vec<String> {
    vec![t.schema.clone(), t.table.clone()]
}

fn single_ident(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::Identifier(i) => Some(i),
        _ => None,
    }
}

/// `e` is the plain column `name`.
fn is_column(e: &Expr, name: &str) -> bool {
    single_ident(e).is_some_and(|i| i.value == name)
}

/// The select list is exactly `names`, as plain columns, in this order.
fn projects_columns(items: &[SelectItem], names: &[String]) -> bool {
    items.len() == names.len()
        && items
            .iter()
            .zip(names)
            .all(|(item, n)| matches!(item, SelectItem::UnnamedExpr(e) if is_column(e, n)))
}

/// `e` is a `?` parameter marker.
fn is_placeholder(e: &Expr) -> bool {
    matches!(e, Expr::Value(v) if matches!(&v.value, Value::Placeholder(p) if p == "?"))
}

/// `e` is the number literal `n`.
fn is_number(e: &Expr, n: &str) -> bool {
    matches!(e, Expr::Value(v) if matches!(&v.value, Value::Number(x, _) if x == n))
}

/// The WHERE clause is absent (`filter` None) or exactly `filter = ?`.
fn filters_on(selection: Option<&Expr>, filter: Option<&String>) -> bool {
    match (selection, filter) {
        (None, None) => true,
        (
            Some(Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            }),
            Some(f),
        ) => {
            is_column(left, f)
                && matches!(right.as_ref(), Expr::Value(v) if matches!(&v.value, Value::Placeholder(p) if p == "?"))
        }
        _ => false,
    }
}

/// `e` is `FUNCTION(column)` with one plain column argument.
fn is_call_of(e: &Expr, function: &str, column: &str) -> bool {
    let Expr::Function(f) = e else { return false };
    let name_ok =
        name_parts(&f.name).is_some_and(|n| n.len() == 1 && n[0].eq_ignore_ascii_case(function));
    name_ok
        && matches!(&f.args, FunctionArguments::List(l)
            if l.args.len() == 1
                && matches!(&l.args[0], FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) if is_column(x, column)))
}

/// The GROUP BY list is empty.
fn no_grouping(g: &GroupByExpr) -> bool {
    matches!(g, GroupByExpr::Expressions(g, m) if g.is_empty() && m.is_empty())
}

/// `SUM(CASE WHEN <condition> THEN 1 ELSE 0 END)` (the condition is checked by the walker).
fn is_flag_sum(e: &Expr) -> bool {
    let Expr::Function(f) = e else { return false };
    let name_ok =
        name_parts(&f.name).is_some_and(|n| n.len() == 1 && n[0].eq_ignore_ascii_case("SUM"));
    let FunctionArguments::List(l) = &f.args else {
        return false;
    };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Case {
        operand: None,
        conditions,
        else_result: Some(else_result),
        ..
    }))] = l.args.as_slice()
    else {
        return false;
    };
    name_ok
        && l.duplicate_treatment.is_none()
        && conditions.len() == 1
        && is_number(&conditions[0].result, "1")
        && is_number(else_result, "0")
}

fn is_count_star(e: &Expr) -> bool {
    let Expr::Function(f) = e else { return false };
    let Some(name) = name_parts(&f.name) else {
        return false;
    };
    if name.len() != 1 || !name[0].eq_ignore_ascii_case("COUNT") {
        return false;
    }
    match &f.args {
        FunctionArguments::List(l) => {
            l.duplicate_treatment.is_none()
                && l.clauses.is_empty()
                && l.args.len() == 1
                && matches!(l.args[0], FunctionArg::Unnamed(FunctionArgExpr::Wildcard))
        }
        _ => false,
    }
}

impl Walker<'_> {
    fn err(&self, reason: impl Into<String>) -> SqlError {
        shape_err(self.sql, reason)
    }

    fn statement(&mut self, stmt: &Statement) -> Result<(), SqlError> {
        match (&self.expect.shape, stmt) {
            (
                Shape::Count
                | Shape::Census { .. }
                | Shape::Probe { .. }
                | Shape::Read { .. }
                | Shape::Max { .. },
                Statement::Query(q),
            ) => self.top_query(q),
            (
                Shape::Rewrite { .. } | Shape::Fill { .. } | Shape::Mark { .. } | Shape::Restore,
                Statement::Update(u),
            ) => {
                if !u.optimizer_hints.is_empty()
                    || u.from.is_some()
                    || u.returning.is_some()
                    || u.output.is_some()
                    || u.or.is_some()
                    || !u.order_by.is_empty()
                    || u.limit.is_some()
                {
                    return Err(self.err("UPDATE may only have SET and WHERE"));
                }
                self.target(&u.table)?;
                let mut assigned = BTreeSet::new();
                for a in &u.assignments {
                    let AssignmentTarget::ColumnName(n) = &a.target else {
                        return Err(self.err("tuple assignment is not allowed"));
                    };
                    let col = match n.0.as_slice() {
                        [p] => p.as_ident().ok_or_else(|| self.err("bad SET target"))?,
                        _ => return Err(self.err("SET target must be a plain column")),
                    };
                    self.column(col)?;
                    if !assigned.insert(col.value.clone()) {
                        return Err(self.err(format!("column {} is set twice", col.value)));
                    }
                    self.expr(&a.value)?;
                }
                let sel = u
                    .selection
                    .as_ref()
                    .ok_or_else(|| self.err("UPDATE without WHERE"))?;
                match &self.expect.shape {
                    Shape::Rewrite { key, keys } => {
                        let Expr::InList {
                            expr,
                            list,
                            negated: false,
                        } = sel
                        else {
                            return Err(self.err("WHERE must be `key IN (…)`"));
                        };
                        match single_ident(expr) {
                            Some(i) if &i.value == key => self.column(i)?,
                            _ => return Err(self.err(format!("WHERE must select on {key}"))),
                        }
                        let mut got = BTreeSet::new();
                        for e in list {
                            match e {
                                Expr::Value(v) => match &v.value {
                                    Value::SingleQuotedString(s) => {
                                        got.insert(s.clone());
                                    }
                                    _ => return Err(self.err("IN list must hold string literals")),
                                },
                                _ => return Err(self.err("IN list must hold string literals")),
                            }
                        }
                        let want: BTreeSet<String> = keys.iter().cloned().collect();
                        if got != want || list.len() != keys.len() {
                            return Err(self.err("IN list differs from the mapped values"));
                        }
                    }
                    Shape::Fill { column } => {
                        let Expr::IsNull(inner) = sel else {
                            return Err(self.err("WHERE must be `column IS NULL`"));
                        };
                        match single_ident(inner) {
                            Some(i) if &i.value == column => self.column(i)?,
                            _ => return Err(self.err(format!("WHERE must test {column}"))),
                        }
                        if assigned.len() != 1 || !assigned.contains(column) {
                            return Err(self.err(format!("only {column} may be set")));
                        }
                        if !matches!(
                            &u.assignments[0].value,
                            Expr::Value(_)
                                | Expr::UnaryOp {
                                    op: UnaryOperator::Minus,
                                    ..
                                }
                        ) {
                            return Err(self.err("a default must be a literal"));
                        }
                    }
                    Shape::Mark { set, keys } => {
                        let want: BTreeSet<String> = set.iter().cloned().collect();
                        if assigned != want || u.assignments.len() != set.len() {
                            return Err(self.err("SET list differs from the expected columns"));
                        }
                        if !u.assignments.iter().all(|a| is_placeholder(&a.value)) {
                            return Err(self.err("every SET value must be a `?` parameter"));
                        }
                        let mut tested = Vec::new();
                        self.equalities(sel, &mut tested)?;
                        tested.sort();
                        let mut want: Vec<String> = keys.clone();
                        want.sort();
                        if tested != want {
                            return Err(
                                self.err(format!("WHERE must be `{} = ?`", keys.join(" = ? AND ")))
                            );
                        }
                    }
                    Shape::Restore => {
                        if !matches!(sel, Expr::InSubquery { negated: false, .. }) {
                            return Err(self.err("WHERE must be `id IN (SELECT …)`"));
                        }
                        self.expr(sel)?;
                    }
                    _ => unreachable!(),
                }
                Ok(())
            }
            (
                Shape::Insert { columns } | Shape::InsertSelect { columns },
                Statement::Insert(ins),
            ) => {
                let TableObject::TableName(n) = &ins.table else {
                    return Err(self.err("INSERT target must be a table"));
                };
                if name_parts(n) != self.expect.tables.first().map(table_parts) {
                    return Err(self.err("INSERT into an unexpected table"));
                }
                if ins.or.is_some()
                    || ins.ignore
                    || !ins.into
                    || ins.table_alias.is_some()
                    || ins.overwrite
                    || !ins.assignments.is_empty()
                    || ins.partitioned.is_some()
                    || !ins.after_columns.is_empty()
                    || ins.on.is_some()
                    || ins.returning.is_some()
                    || ins.output.is_some()
                    || ins.replace_into
                    || ins.insert_alias.is_some()
                    || ins.settings.is_some()
                    || ins.format_clause.is_some()
                {
                    return Err(self.err("INSERT may only name columns and VALUES"));
                }
                let cols: Option<Vec<String>> = ins
                    .columns
                    .iter()
                    .map(|c| {
                        name_parts(c)
                            .filter(|p| p.len() == 1)
                            .map(|mut p| p.remove(0))
                    })
                    .collect();
                if cols.as_ref() != Some(columns) {
                    return Err(self.err("INSERT column list differs from the expected one"));
                }
                let src = ins
                    .source
                    .as_ref()
                    .ok_or_else(|| self.err("INSERT without VALUES"))?;
                if matches!(self.expect.shape, Shape::InsertSelect { .. }) {
                    let s = self.query(src, None)?;
                    if s.projection.len() != columns.len() || !no_grouping(&s.group_by) {
                        return Err(self.err("INSERT … SELECT must select one value per column"));
                    }
                    return Ok(());
                }
                let SetExpr::Values(v) = src.body.as_ref() else {
                    return Err(self.err("INSERT source must be VALUES"));
                };
                if v.rows.len() != 1
                    || v.rows[0].len() != columns.len()
                    || !v.rows[0].iter().all(
                        |e| matches!(e, Expr::Value(x) if matches!(x.value, Value::Placeholder(_))),
                    )
                {
                    return Err(self.err("INSERT must take one row of `?` parameters"));
                }
                self.params_seen += columns.len();
                Ok(())
            }
            _ => Err(self.err("statement kind not allowed here")),
        }
    }

    /// `c1 = ? AND c2 = ? …`: collects the tested columns (each a plain, expected column; each
    /// `?` counted).
    fn equalities(&mut self, e: &Expr, out: &mut Vec<String>) -> Result<(), SqlError> {
        match e {
            Expr::BinaryOp {
                left,
                op: BinaryOperator::And,
                right,
            } => {
                self.equalities(left, out)?;
                self.equalities(right, out)
            }
            Expr::BinaryOp {
                left,
                op: BinaryOperator::Eq,
                right,
            } if is_placeholder(right) => {
                let col =
                    single_ident(left).ok_or_else(|| self.err("WHERE must test plain columns"))?;
                self.column(col)?;
                self.expr(right)?;
                out.push(col.value.clone());
                Ok(())
            }
            _ => Err(self.err("WHERE must be `column = ?` tests joined by AND")),
        }
    }

    fn target(&mut self, t: &TableWithJoins) -> Result<(), SqlError> {
        if !t.joins.is_empty() {
            return Err(self.err("no join allowed here"));
        }
        let TableFactor::Table {
            name,
            alias: None,
            args: None,
            ..
        } = &t.relation
        else {
            return Err(self.err("target must be a plain table"));
        };
        if name_parts(name) != self.expect.tables.first().map(table_parts) {
            return Err(self.err(format!("unexpected target table {name}")));
        }
        self.tables_seen.push(name_parts(name).unwrap_or_default());
        Ok(())
    }

    fn table_factor(&mut self, f: &TableFactor) -> Result<(), SqlError> {
        let TableFactor::Table {
            name,
            alias,
            args,
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_hints,
        } = f
        else {
            return Err(self.err("only plain tables are allowed in FROM"));
        };
        if alias.is_some()
            || !with_hints.is_empty()
            || version.is_some()
            || *with_ordinality
            || !partitions.is_empty()
            || json_path.is_some()
            || sample.is_some()
            || !index_hints.is_empty()
        {
            return Err(self.err("table decorations are not allowed"));
        }
        let parts = name_parts(name).ok_or_else(|| self.err("bad table name"))?;
        if !self.expect.tables.iter().any(|t| table_parts(t) == parts) {
            return Err(self.err(format!("unexpected table {name}")));
        }
        if let Some(a) = args {
            // Only the job enumeration is a table-valued function, and it takes no argument.
            if !a.args.is_empty()
                || a.settings.is_some()
                || parts.last().map(String::as_str) != Some("Job_Enumerate")
            {
                return Err(self.err("table function arguments are not allowed"));
            }
        }
        self.tables_seen.push(parts);
        Ok(())
    }

    fn top_query(&mut self, q: &Query) -> Result<(), SqlError> {
        let order_by = match &self.expect.shape {
            Shape::Read { order_by, .. } => order_by.clone(),
            _ => None,
        };
        let s = self.query(q, order_by.as_deref())?;
        let single_table = s.from.len() == 1 && s.from[0].joins.is_empty();
        match &self.expect.shape {
            Shape::Count => {
                if s.projection.len() != 1
                    || !matches!(&s.projection[0], SelectItem::UnnamedExpr(e) if is_count_star(e))
                {
                    return Err(self.err("a guard must select exactly COUNT(*)"));
                }
                if !no_grouping(&s.group_by) {
                    return Err(self.err("a guard must not group"));
                }
            }
            Shape::Census { keys, flagged } => {
                let items: &[SelectItem] = if *flagged {
                    match s.projection.split_last() {
                        Some((SelectItem::UnnamedExpr(e), rest)) if is_flag_sum(e) => rest,
                        _ => {
                            return Err(self.err(
                                "a flagged census ends with SUM(CASE WHEN … THEN 1 ELSE 0 END)",
                            ))
                        }
                    }
                } else {
                    &s.projection
                };
                let (count, key_items) = items.split_last().unzip();
                let ok_proj = key_items.is_some_and(|k| projects_columns(k, keys))
                    && matches!(count, Some(SelectItem::UnnamedExpr(e)) if is_count_star(e));
                let ok_group = matches!(&s.group_by, GroupByExpr::Expressions(g, m)
                    if m.is_empty() && g.len() == keys.len() && g.iter().zip(keys).all(|(e, k)| is_column(e, k)));
                if keys.is_empty()
                    || !ok_proj
                    || !ok_group
                    || !single_table
                    || s.selection.is_some()
                {
                    let k = keys.join(", ");
                    return Err(self.err(format!(
                        "a census must be `SELECT {k}, COUNT(*) FROM t GROUP BY {k}`"
                    )));
                }
                self.single_expected_table(s, "census")?;
            }
            Shape::Probe { columns } => {
                let ok_proj = if columns.is_empty() {
                    matches!(s.projection.as_slice(), [SelectItem::UnnamedExpr(e)] if is_number(e, "1"))
                } else {
                    projects_columns(&s.projection, columns)
                };
                let reads_nothing = matches!(&s.selection, Some(Expr::BinaryOp { left, op: BinaryOperator::Eq, right })
                    if is_number(left, "1") && is_number(right, "0"));
                if !ok_proj || !reads_nothing || !single_table || !no_grouping(&s.group_by) {
                    return Err(self.err("a probe must be `SELECT <columns> FROM t WHERE 1 = 0`"));
                }
                self.single_expected_table(s, "probe")?;
            }
            Shape::Read {
                columns, filter, ..
            } => {
                if !projects_columns(&s.projection, columns)
                    || !filters_on(s.selection.as_ref(), filter.as_ref())
                    || !single_table
                    || !no_grouping(&s.group_by)
                {
                    return Err(self.err(
                        "a read must be `SELECT <columns> FROM t [WHERE column = ?] [ORDER BY column]`",
                    ));
                }
                self.single_expected_table(s, "read")?;
            }
            Shape::Max { column, filter } => {
                if !matches!(s.projection.as_slice(), [SelectItem::UnnamedExpr(e)] if is_call_of(e, "MAX", column))
                    || !filters_on(s.selection.as_ref(), filter.as_ref())
                    || !single_table
                    || !no_grouping(&s.group_by)
                {
                    return Err(self.err(format!(
                        "a maximum must be `SELECT MAX({column}) FROM t [WHERE column = ?]`"
                    )));
                }
                self.single_expected_table(s, "maximum")?;
            }
            _ => unreachable!(),
        }
        Ok(())
    }

    /// The statement reads the first expected table (a plain table or the job enumeration).
    fn single_expected_table(
        &self,
        s: &sqlparser::ast::Select,
        what: &str,
    ) -> Result<(), SqlError> {
        let TableFactor::Table { name, .. } = &s.from[0].relation else {
            return Err(self.err(format!("{what} of something other than a table")));
        };
        if name_parts(name) != self.expect.tables.first().map(table_parts) {
            return Err(self.err(format!("{what} of an unexpected table")));
        }
        Ok(())
    }

    /// Check a query (top level or subquery) and return its SELECT. `order_by`: the one
    /// column it may be ordered by (ascending), if any.
    fn query<'q>(
        &mut self,
        q: &'q Query,
        order_by: Option<&str>,
    ) -> Result<&'q sqlparser::ast::Select, SqlError> {
        match (&q.order_by, order_by) {
            (None, None) => {}
            (Some(o), Some(col)) => {
                let key = match (&o.kind, o.interpolate.is_none()) {
                    (OrderByKind::Expressions(e), true) => match e.as_slice() {
                        [x] if x.with_fill.is_none()
                            && x.options.nulls_first.is_none()
                            && matches!(x.options.sort, None | Some(OrderBySort::Asc)) =>
                        {
                            single_ident(&x.expr).filter(|i| i.value == col)
                        }
                        _ => None,
                    },
                    _ => None,
                };
                let key = key.ok_or_else(|| self.err(format!("must be ordered by {col} only")))?;
                self.column(key)?;
            }
            (None, Some(col)) => return Err(self.err(format!("must be ordered by {col}"))),
            (Some(_), None) => return Err(self.err("ORDER BY is not allowed here")),
        }
        if q.with.is_some()
            || q.limit_clause.is_some()
            || q.fetch.is_some()
            || !q.locks.is_empty()
            || q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            return Err(self.err("only a plain SELECT is allowed"));
        }
        let SetExpr::Select(s) = q.body.as_ref() else {
            return Err(self.err("only a plain SELECT is allowed"));
        };
        if s.distinct.is_some()
            || s.top.is_some()
            || s.into.is_some()
            || s.exclude.is_some()
            || !s.lateral_views.is_empty()
            || s.prewhere.is_some()
            || !s.connect_by.is_empty()
            || !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
            || !s.sort_by.is_empty()
            || s.having.is_some()
            || !s.named_window.is_empty()
            || s.qualify.is_some()
            || s.value_table_mode.is_some()
            || !s.optimizer_hints.is_empty()
            || s.select_modifiers.is_some()
        {
            return Err(self.err("only SELECT … FROM … WHERE … GROUP BY is allowed"));
        }
        if s.from.is_empty() {
            return Err(self.err("SELECT without FROM"));
        }
        for twj in &s.from {
            self.table_factor(&twj.relation)?;
            for j in &twj.joins {
                if j.global {
                    return Err(self.err("join modifiers are not allowed"));
                }
                let (JoinOperator::Join(JoinConstraint::On(on))
                | JoinOperator::Inner(JoinConstraint::On(on))) = &j.join_operator
                else {
                    return Err(self.err("only `JOIN … ON` is allowed"));
                };
                self.table_factor(&j.relation)?;
                self.expr(on)?;
            }
        }
        for item in &s.projection {
            match item {
                SelectItem::UnnamedExpr(e) => self.expr(e)?,
                _ => return Err(self.err("only plain select items are allowed")),
            }
        }
        if let Some(w) = &s.selection {
            self.expr(w)?;
        }
        match &s.group_by {
            GroupByExpr::Expressions(g, m) if m.is_empty() => {
                for e in g {
                    self.expr(e)?;
                }
            }
            _ => return Err(self.err("GROUP BY modifiers are not allowed")),
        }
        Ok(s)
    }

    fn column(&self, i: &Ident) -> Result<(), SqlError> {
        if i.quote_style != Some('"') {
            return Err(self.err(format!("column {} is not quoted", i.value)));
        }
        if !self.expect.columns.iter().any(|c| c == &i.value) {
            return Err(self.err(format!("unexpected column {}", i.value)));
        }
        Ok(())
    }

    fn expr(&mut self, e: &Expr) -> Result<(), SqlError> {
        match e {
            Expr::Identifier(i) => self.column(i),
            Expr::CompoundIdentifier(parts) => {
                let (col, qual) = parts.split_last().ok_or_else(|| self.err("empty name"))?;
                let qual: Vec<String> = qual.iter().map(|i| i.value.clone()).collect();
                let known = self.expect.tables.iter().any(|t| {
                    let tp = table_parts(t);
                    qual == tp || (qual.len() == 1 && qual[0] == tp[1])
                });
                if !known {
                    return Err(self.err(format!(
                        "column qualifier {} names no expected table",
                        qual.join(".")
                    )));
                }
                self.column(col)
            }
            Expr::Value(v) => match &v.value {
                Value::SingleQuotedString(_) | Value::Number(_, _) | Value::Null => Ok(()),
                Value::Placeholder(p) if p == "?" && self.params_seen < self.expect.params => {
                    self.params_seen += 1;
                    Ok(())
                }
                _ => Err(self.err("only string and number literals are allowed")),
            },
            Expr::Nested(inner) => self.expr(inner),
            Expr::Cast {
                kind: CastKind::Cast,
                expr,
                data_type: DataType::Varchar(_) | DataType::Integer(_),
                format: None,
            } => self.expr(expr),
            Expr::Subquery(q) if matches!(self.expect.shape, Shape::Restore) => {
                let s = self.query(q, None)?;
                if s.projection.len() != 1 || !no_grouping(&s.group_by) {
                    return Err(self.err("a subquery must select one column"));
                }
                Ok(())
            }
            Expr::UnaryOp {
                op: UnaryOperator::Not | UnaryOperator::Minus,
                expr,
            } => self.expr(expr),
            Expr::IsNull(inner) | Expr::IsNotNull(inner) => self.expr(inner),
            Expr::BinaryOp { left, op, right } => match op {
                BinaryOperator::And
                | BinaryOperator::Or
                | BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::StringConcat => {
                    self.expr(left)?;
                    self.expr(right)
                }
                _ => Err(self.err(format!("operator {op} is not allowed"))),
            },
            Expr::InList { expr, list, .. } => {
                self.expr(expr)?;
                for x in list {
                    self.expr(x)?;
                }
                Ok(())
            }
            Expr::InSubquery { expr, subquery, .. } => {
                self.expr(expr)?;
                let s = self.query(subquery, None)?;
                if s.projection.len() != 1
                    || !matches!(&s.group_by, GroupByExpr::Expressions(g, _) if g.is_empty())
                {
                    return Err(self.err("a subquery must select one column"));
                }
                Ok(())
            }
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                if let Some(o) = operand {
                    self.expr(o)?;
                }
                for c in conditions {
                    self.expr(&c.condition)?;
                    self.expr(&c.result)?;
                }
                if let Some(e) = else_result {
                    self.expr(e)?;
                }
                Ok(())
            }
            Expr::Function(f) => {
                let name = name_parts(&f.name).ok_or_else(|| self.err("bad function name"))?;
                let known = name.len() == 1
                    && self
                        .expect
                        .functions
                        .iter()
                        .any(|k| k.eq_ignore_ascii_case(&name[0]));
                if !known {
                    return Err(self.err(format!("function {} is not allowed", f.name)));
                }
                if f.uses_odbc_syntax
                    || !matches!(f.parameters, FunctionArguments::None)
                    || !f.within_group.is_empty()
                    || f.filter.is_some()
                    || f.null_treatment.is_some()
                    || f.over.is_some()
                {
                    return Err(self.err("function modifiers are not allowed"));
                }
                let FunctionArguments::List(l) = &f.args else {
                    return Err(self.err("function arguments must be a list"));
                };
                if l.duplicate_treatment.is_some() || !l.clauses.is_empty() {
                    return Err(self.err("function argument clauses are not allowed"));
                }
                for a in &l.args {
                    match a {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => self.expr(x)?,
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard)
                            if name[0].eq_ignore_ascii_case("COUNT") => {}
                        _ => return Err(self.err("only plain function arguments are allowed")),
                    }
                }
                Ok(())
            }
            other => Err(self.err(format!("expression form not allowed: {other}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(schema: &str, table: &str) -> SqlTable {
        SqlTable {
            schema: schema.into(),
            table: table.into(),
        }
    }

    fn rewrite_expect(keys: &[&str]) -> Expect {
        Expect {
            shape: Shape::Rewrite {
                key: "%NextState".into(),
                keys: keys.iter().map(|s| s.to_string()).collect(),
            },
            tables: vec![t("Demo_BP", "Thread1")],
            columns: vec!["%NextState".into(), "%HandlerStack".into()],
            functions: vec!["$LISTBUILD".into()],
            params: 0,
        }
    }

    #[test]
    fn iris_dialect_reads_percent_and_dollar_names() {
        let sql = "UPDATE \"Demo_BP\".\"Thread1\" SET \"%NextState\" = CASE \"%NextState\" WHEN 'S5' THEN 'S7' \
                   ELSE \"%NextState\" END, \"%HandlerStack\" = CASE \"%NextState\" WHEN 'S5' THEN $LISTBUILD('S3', 'S5') \
                   ELSE \"%HandlerStack\" END WHERE \"%NextState\" IN ('S5')";
        check(sql, Dialect::Iris, &rewrite_expect(&["S5"])).unwrap();
        // Unquoted `%` names parse too (InterSystems' own style), and `a % 3` stays a modulo.
        let stmts = parse("SELECT %NextState, a % 3 FROM x", Dialect::Iris).unwrap();
        assert_eq!(stmts.len(), 1);
        assert!(stmts[0].to_string().contains("a % 3"), "{}", stmts[0]);
    }

    #[test]
    fn refuses_second_statement_comment_and_other_shapes() {
        let e = rewrite_expect(&["S5"]);
        let base = "UPDATE \"Demo_BP\".\"Thread1\" SET \"%NextState\" = 'S7' WHERE \"%NextState\" IN ('S5')";
        assert!(check(base, Dialect::Iris, &e).is_ok());
        for bad in [
            format!("{base}; DELETE FROM \"Demo_BP\".\"Thread1\""),
            format!("{base};"),
            format!("{base} -- hi"),
            format!("{base} OR 1 = 1"),
            base.replace("IN ('S5')", "IN ('S5', 'S6')"),
            base.replace("\"Thread1\"", "\"Thread2\""),
            base.replace("SET \"%NextState\"", "SET \"%Status\""),
            base.replace(
                "SET \"%NextState\" = 'S7'",
                "SET \"%NextState\" = (SELECT 'S7' FROM \"Demo_BP\".\"Thread1\")",
            ),
            base.replace("WHERE", "RETURNING \"%NextState\" WHERE"),
            "DELETE FROM \"Demo_BP\".\"Thread1\" WHERE \"%NextState\" IN ('S5')".to_string(),
            base.replace(" WHERE \"%NextState\" IN ('S5')", ""),
            base.replace("'S7'", "UPPER('s7')"),
        ] {
            assert!(check(&bad, Dialect::Iris, &e).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn count_and_census_shapes() {
        let e = Expect {
            shape: Shape::Count,
            tables: vec![t("Demo_BP", "Thread1")],
            columns: vec!["%NextState".into()],
            functions: vec!["COUNT".into()],
            params: 0,
        };
        let sql = "SELECT COUNT(*) FROM \"Demo_BP\".\"Thread1\" WHERE \"%NextState\" = 'S6'";
        check(sql, Dialect::Postgres, &e).unwrap();
        assert!(check(
            "SELECT COUNT(*), 1 FROM \"Demo_BP\".\"Thread1\"",
            Dialect::Postgres,
            &e
        )
        .is_err());
        assert!(check(
            "SELECT COUNT(*) FROM \"Demo_BP\".\"Thread1\" x",
            Dialect::Postgres,
            &e
        )
        .is_err());
        let c = Expect {
            shape: Shape::Census {
                keys: vec!["%NextState".into()],
                flagged: false,
            },
            ..e
        };
        let sql =
            "SELECT \"%NextState\", COUNT(*) FROM \"Demo_BP\".\"Thread1\" GROUP BY \"%NextState\"";
        check(sql, Dialect::Postgres, &c).unwrap();
        check(sql, Dialect::Iris, &c).unwrap();
    }

    #[test]
    fn insert_shape() {
        let e = Expect {
            shape: Shape::Insert {
                columns: vec!["PlanId".into(), "Outcome".into()],
            },
            tables: vec![t("BplMigrate", "History")],
            columns: vec!["PlanId".into(), "Outcome".into()],
            functions: vec![],
            params: 2,
        };
        check(
            "INSERT INTO \"BplMigrate\".\"History\" (\"PlanId\", \"Outcome\") VALUES (?, ?)",
            Dialect::Postgres,
            &e,
        )
        .unwrap();
        assert!(check(
            "INSERT INTO \"BplMigrate\".\"History\" (\"PlanId\", \"Outcome\") VALUES (?, 'x')",
            Dialect::Postgres,
            &e
        )
        .is_err());
    }

    fn expect(shape: Shape, table: SqlTable, columns: &[&str], functions: &[&str]) -> Expect {
        Expect {
            shape,
            tables: vec![table],
            columns: columns.iter().map(|c| c.to_string()).collect(),
            functions: functions.iter().map(|f| f.to_string()).collect(),
            params: 0,
        }
    }

    #[test]
    fn flagged_census_holds_one_guarded_sum() {
        let mut e = expect(
            Shape::Census {
                keys: vec!["%NextState".into()],
                flagged: true,
            },
            t("Demo_BP", "Thread1"),
            &["%NextState", "%HandlerStack"],
            &["COUNT", "SUM"],
        );
        let sql = "SELECT \"%NextState\", COUNT(*), SUM(CASE WHEN \"%NextState\" NOT IN ('S1', 'Stop') OR \
                   (\"%HandlerStack\" IS NOT NULL AND \"%HandlerStack\" <> '') THEN 1 ELSE 0 END) \
                   FROM \"Demo_BP\".\"Thread1\" GROUP BY \"%NextState\"";
        for d in [Dialect::Iris, Dialect::Postgres] {
            check(sql, d, &e).unwrap();
            for bad in [
                sql.replace("THEN 1 ELSE 0", "THEN 2 ELSE 0"),
                sql.replace("SUM(", "MAX("),
                sql.replace(", SUM(CASE", ", COUNT(*), SUM(CASE"),
                sql.replace("'S1'", "(SELECT 1)"),
                sql.replace("\"%HandlerStack\" IS NOT", "\"%Other\" IS NOT"),
            ] {
                assert!(check(&bad, d, &e).is_err(), "{bad}");
            }
        }
        e.shape = Shape::Census {
            keys: vec!["%NextState".into()],
            flagged: false,
        };
        assert!(check(sql, Dialect::Postgres, &e).is_err());
    }

    #[test]
    fn census_over_several_keys() {
        let e = expect(
            Shape::Census {
                keys: vec!["%NextState".into(), "%Status".into()],
                flagged: false,
            },
            t("Demo_BP", "Thread1"),
            &["%NextState", "%Status"],
            &["COUNT"],
        );
        let sql = "SELECT \"%NextState\", \"%Status\", COUNT(*) FROM \"Demo_BP\".\"Thread1\" GROUP BY \"%NextState\", \"%Status\"";
        for d in [Dialect::Iris, Dialect::Postgres] {
            check(sql, d, &e).unwrap();
            for bad in [
                sql.replace(
                    "GROUP BY \"%NextState\", \"%Status\"",
                    "GROUP BY \"%Status\", \"%NextState\"",
                ),
                sql.replace(", \"%Status\", COUNT(*)", ", COUNT(*)"),
                sql.replace(" GROUP BY", " WHERE \"%Status\" = 1 GROUP BY"),
            ] {
                assert!(check(&bad, d, &e).is_err(), "accepted: {bad}");
            }
        }
    }

    #[test]
    fn probe_shape_reads_nothing() {
        let table = t("Demo_BP", "Thread1");
        let e = expect(
            Shape::Probe {
                columns: vec!["%Status".into()],
            },
            table.clone(),
            &["%Status"],
            &[],
        );
        let sql = "SELECT \"%Status\" FROM \"Demo_BP\".\"Thread1\" WHERE 1 = 0";
        check(sql, Dialect::Postgres, &e).unwrap();
        check(sql, Dialect::Iris, &e).unwrap();
        for bad in [
            sql.replace("1 = 0", "1 = 1"),
            sql.replace(" WHERE 1 = 0", ""),
            sql.replace("\"%Status\"", "\"%Status\", \"%Status\""),
            sql.replace("\"%Status\"", "1"),
        ] {
            assert!(
                check(&bad, Dialect::Postgres, &e).is_err(),
                "accepted: {bad}"
            );
        }
        let bare = expect(Shape::Probe { columns: vec![] }, table, &[], &[]);
        check(
            "SELECT 1 FROM \"Demo_BP\".\"Thread1\" WHERE 1 = 0",
            Dialect::Postgres,
            &bare,
        )
        .unwrap();
        assert!(check(
            "SELECT 2 FROM \"Demo_BP\".\"Thread1\" WHERE 1 = 0",
            Dialect::Postgres,
            &bare
        )
        .is_err());
    }

    #[test]
    fn read_shape_binds_its_filter_and_orders_by_one_column() {
        let mut e = expect(
            Shape::Read {
                columns: vec!["Seq".into(), "Outcome".into()],
                filter: Some("BplClass".into()),
                order_by: Some("Seq".into()),
            },
            t("BplMigrate", "History"),
            &["Seq", "Outcome", "BplClass"],
            &[],
        );
        e.params = 1;
        let sql = "SELECT \"Seq\", \"Outcome\" FROM \"BplMigrate\".\"History\" WHERE \"BplClass\" = ? ORDER BY \"Seq\"";
        // Checked with the IRIS dialect in both (PostgreSqlDialect reads `?` as an operator).
        check(sql, Dialect::Postgres, &e).unwrap();
        check(sql, Dialect::Iris, &e).unwrap();
        for bad in [
            sql.replace("= ?", "= 'Demo.A'"),
            sql.replace("= ?", "= ? OR 1 = 1"),
            sql.replace(" ORDER BY \"Seq\"", ""),
            sql.replace("ORDER BY \"Seq\"", "ORDER BY \"Seq\" DESC"),
            sql.replace("ORDER BY \"Seq\"", "ORDER BY \"Outcome\""),
            format!("{sql} LIMIT 1"),
            sql.replace("\"Seq\", \"Outcome\"", "\"Outcome\", \"Seq\""),
        ] {
            assert!(check(&bad, Dialect::Iris, &e).is_err(), "accepted: {bad}");
        }
        // No parameter expected: a `?` is refused.
        let plain = expect(
            Shape::Read {
                columns: vec!["Job".into()],
                filter: None,
                order_by: None,
            },
            t("Ens", "Job_Enumerate"),
            &["Job"],
            &[],
        );
        check(
            "SELECT \"Job\" FROM Ens.Job_Enumerate()",
            Dialect::Iris,
            &plain,
        )
        .unwrap();
        check(
            "SELECT \"Job\" FROM \"Ens\".\"Job_Enumerate\"()",
            Dialect::Postgres,
            &plain,
        )
        .unwrap();
        assert!(check(
            "SELECT \"Job\" FROM Ens.Job_Enumerate() WHERE \"Job\" = ?",
            Dialect::Iris,
            &plain
        )
        .is_err());
    }

    #[test]
    fn max_shape() {
        let mut e = expect(
            Shape::Max {
                column: "Seq".into(),
                filter: Some("BplClass".into()),
            },
            t("BplMigrate", "History"),
            &["Seq", "BplClass"],
            &["MAX"],
        );
        e.params = 1;
        let sql = "SELECT MAX(\"Seq\") FROM \"BplMigrate\".\"History\" WHERE \"BplClass\" = ?";
        check(sql, Dialect::Postgres, &e).unwrap();
        for bad in [
            sql.replace("MAX", "MIN"),
            sql.replace("MAX(\"Seq\")", "MAX(\"Seq\"), 1"),
            sql.replace(" WHERE \"BplClass\" = ?", ""),
        ] {
            assert!(check(&bad, Dialect::Iris, &e).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn parameters_are_counted() {
        let mut e = expect(
            Shape::Count,
            t("information_schema", "tables"),
            &["table_schema", "table_name"],
            &["COUNT"],
        );
        e.params = 2;
        let sql = "SELECT COUNT(*) FROM \"information_schema\".\"tables\" WHERE \"table_schema\" = ? AND \"table_name\" = ?";
        check(sql, Dialect::Postgres, &e).unwrap();
        assert!(check(&sql.replace("= ?", "= 'x'"), Dialect::Postgres, &e).is_err());
        e.params = 1;
        assert!(check(sql, Dialect::Postgres, &e).is_err());
        e.params = 0;
        assert!(check(sql, Dialect::Iris, &e).is_err());
    }
}
