//! The one audited place where names and values become SQL (and comment) text.
//!
//! Every identifier and literal in a generated statement goes through [`quote_ident`] or
//! [`quote_literal`]; every free text in a comment goes through [`comment_text`]. Nothing
//! else in `sql` may splice user-controlled text into a statement.
//!
//! # Identifier rules
//! An identifier (schema, table, column) is accepted when it
//! - is 1 to 128 characters long (the IRIS limit), at most 63 bytes in the `postgres` dialect
//!   (PostgreSQL silently truncates longer names);
//! - starts with an ASCII letter, `_` or `%` (`%` only as the first character: IRIS system
//!   properties such as `%NextState`);
//! - continues with ASCII letters, digits and `_` only.
//!
//! This covers every name IRIS projects from a class: packages become `A_B_C` schemas,
//! child tables `Thread1__PendingResponses`, `%`-properties keep their `%`. Anything else —
//! quotes, semicolons, `--`, `/*`, spaces, control characters, NUL, non-ASCII letters — is
//! refused, not escaped: a name like that cannot have come from a compiled class. The quoted
//! form doubles `"` all the same, so the quoting is correct even without the validation.
//!
//! # Literal rules
//! A string literal is single-quoted with `'` doubled. NUL and every other control character
//! (including CR/LF) is refused. In the `postgres` dialect a backslash is refused as well: a
//! server with `standard_conforming_strings = off` would read it as an escape.

use super::{Dialect, SqlError};

/// IRIS limit on identifier length (characters).
pub const IRIS_MAX_IDENT: usize = 128;
/// PostgreSQL `NAMEDATALEN - 1` (bytes).
pub const POSTGRES_MAX_IDENT: usize = 63;

/// Check `name` against the identifier rules (see the module documentation).
pub fn validate_ident(name: &str, dialect: Dialect) -> Result<(), SqlError> {
    let refuse = |reason: &str| {
        Err(SqlError::InvalidIdentifier {
            name: crate::input::printable(name),
            reason: reason.to_string(),
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.chars().any(|c| c == '\0') {
        return refuse("it contains NUL");
    }
    if name.chars().any(char::is_control) {
        return refuse("it contains a control character");
    }
    let max = match dialect {
        Dialect::Iris => IRIS_MAX_IDENT,
        Dialect::Postgres => POSTGRES_MAX_IDENT,
    };
    if name.chars().count() > max || (dialect == Dialect::Postgres && name.len() > max) {
        return refuse(&format!("it is longer than {max} characters"));
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or(' ');
    if !(first.is_ascii_alphabetic() || first == '_' || first == '%') {
        return refuse("it must start with an ASCII letter, `_` or `%`");
    }
    if first == '%' && name.len() == 1 {
        return refuse("`%` alone is not a name");
    }
    if let Some(bad) = chars.find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return refuse(&format!(
            "{bad:?} is not allowed (only ASCII letters, digits and `_`; `%` only first)"
        ));
    }
    Ok(())
}

/// A validated, double-quoted identifier: `"%NextState"`, `"Demo_Loan_BankUS"`.
pub fn quote_ident(name: &str, dialect: Dialect) -> Result<String, SqlError> {
    validate_ident(name, dialect)?;
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// `"a", "b", …`: each name validated and quoted as by [`quote_ident`].
pub fn quote_ident_list<S: AsRef<str>>(names: &[S], dialect: Dialect) -> Result<String, SqlError> {
    Ok(names
        .iter()
        .map(|n| quote_ident(n.as_ref(), dialect))
        .collect::<Result<Vec<_>, _>>()?
        .join(", "))
}

/// `"schema"."table"`.
pub fn quote_table(table: &crate::states::SqlTable, dialect: Dialect) -> Result<String, SqlError> {
    Ok(format!(
        "{}.{}",
        quote_ident(&table.schema, dialect)?,
        quote_ident(&table.table, dialect)?
    ))
}

/// A single-quoted string literal with `'` doubled (see the module documentation).
pub fn quote_literal(value: &str, dialect: Dialect) -> Result<String, SqlError> {
    let refuse = |reason: &str| {
        Err(SqlError::InvalidLiteral {
            value: crate::input::printable(value),
            reason: reason.to_string(),
        })
    };
    if value.contains('\0') {
        return refuse("it contains NUL");
    }
    if value.chars().any(char::is_control) {
        return refuse("it contains a control character");
    }
    if dialect == Dialect::Postgres && value.contains('\\') {
        return refuse("a backslash is not accepted in the postgres dialect");
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

/// Free text made safe for a one-line comment (`-- …` in SQL, `// …` in ObjectScript):
/// control characters (CR, LF, …) become `\u{…}` escapes, so the text can never end the
/// comment line.
pub fn comment_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// An ObjectScript string literal: `"…"` with `"` doubled. Refuses control characters
/// (an ObjectScript string literal cannot span lines).
pub fn objectscript_string(value: &str) -> Result<String, SqlError> {
    if value.chars().any(char::is_control) {
        return Err(SqlError::InvalidLiteral {
            value: crate::input::printable(value),
            reason: "it contains a control character".into(),
        });
    }
    Ok(format!("\"{}\"", value.replace('"', "\"\"")))
}

/// The SQL literal text an override chose as a context property default, parsed and
/// re-rendered: a number (`42`, `-1.5`) or a single-quoted string. Anything else — an
/// expression, a second statement, a comment — is refused.
pub fn default_literal(property: &str, text: &str, dialect: Dialect) -> Result<String, SqlError> {
    use sqlparser::ast::{Expr, UnaryOperator, Value};
    let refuse = |reason: &str| {
        Err(SqlError::InvalidDefault {
            property: property.to_string(),
            value: crate::input::printable(text),
            reason: reason.to_string(),
        })
    };
    if text.chars().any(char::is_control) {
        return refuse("it contains a control character");
    }
    let parsed = super::check::parse_single_expr(text, dialect);
    let expr = match parsed {
        Ok(e) => e,
        Err(msg) => return refuse(&msg),
    };
    let (negative, value) = match &expr {
        Expr::Value(v) => (false, &v.value),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => (true, &v.value),
            _ => return refuse("only a number or a quoted string is accepted"),
        },
        _ => return refuse("only a number or a quoted string is accepted"),
    };
    match value {
        Value::Number(n, _) => {
            let plain = {
                let (int, frac) = n.split_once('.').unwrap_or((n.as_str(), "0"));
                !int.is_empty()
                    && int.chars().all(|c| c.is_ascii_digit())
                    && !frac.is_empty()
                    && frac.chars().all(|c| c.is_ascii_digit())
            };
            if !plain {
                return refuse("write a plain decimal number (`42`, `-1.5`)");
            }
            Ok(if negative { format!("-{n}") } else { n.clone() })
        }
        Value::SingleQuotedString(s) if !negative => {
            quote_literal(s, dialect).or_else(|e| match e {
                SqlError::InvalidLiteral { reason, .. } => refuse(&reason),
                other => Err(other),
            })
        }
        Value::Boolean(_) => refuse("write 1 or 0 for a boolean property"),
        Value::Null => refuse("NULL is what in-flight rows already hold; omit the default"),
        _ => refuse("only a number or a quoted string is accepted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_projected_names() {
        assert_eq!(
            quote_ident("%NextState", Dialect::Iris).unwrap(),
            "\"%NextState\""
        );
        assert_eq!(
            quote_ident("_ResponseHandlers", Dialect::Postgres).unwrap(),
            "\"_ResponseHandlers\""
        );
        assert_eq!(
            quote_ident("Thread1__PendingResponses", Dialect::Iris).unwrap(),
            "\"Thread1__PendingResponses\""
        );
    }

    #[test]
    fn refuses_names_that_could_break_out() {
        for bad in [
            "",
            "%",
            "a\"b",
            "a;b",
            "a--b",
            "a/*b",
            "a b",
            "a\0b",
            "a\nb",
            "1abc",
            "a%b",
            "Grö\u{df}e",
            "x\"; DROP TABLE t; --",
            "a'b",
            "a.b",
        ] {
            for d in [Dialect::Iris, Dialect::Postgres] {
                assert!(quote_ident(bad, d).is_err(), "{bad:?} accepted in {d:?}");
            }
        }
    }

    #[test]
    fn identifier_lists_validate_every_name() {
        assert_eq!(
            quote_ident_list(&["%NextState", "%Status"], Dialect::Iris).unwrap(),
            "\"%NextState\", \"%Status\""
        );
        assert!(quote_ident_list(&["ok", "a\"b"], Dialect::Postgres).is_err());
    }

    #[test]
    fn postgres_identifier_length_limit() {
        let n64 = "a".repeat(64);
        assert!(quote_ident(&n64, Dialect::Iris).is_ok());
        assert!(quote_ident(&n64, Dialect::Postgres).is_err());
        assert!(quote_ident(&"a".repeat(129), Dialect::Iris).is_err());
    }

    #[test]
    fn literals_double_quotes_and_refuse_controls() {
        assert_eq!(quote_literal("S5", Dialect::Iris).unwrap(), "'S5'");
        assert_eq!(quote_literal("it's", Dialect::Postgres).unwrap(), "'it''s'");
        assert_eq!(
            quote_literal("'; DROP TABLE x; --", Dialect::Iris).unwrap(),
            "'''; DROP TABLE x; --'"
        );
        assert!(quote_literal("a\0", Dialect::Iris).is_err());
        assert!(quote_literal("a\nb", Dialect::Iris).is_err());
        assert!(quote_literal("a\\", Dialect::Postgres).is_err());
        assert_eq!(quote_literal("a\\", Dialect::Iris).unwrap(), "'a\\'");
    }

    #[test]
    fn comment_text_cannot_end_the_line() {
        assert_eq!(comment_text("a\nDROP TABLE x"), "a\\u{a}DROP TABLE x");
        assert_eq!(comment_text("a\r\n"), "a\\u{d}\\u{a}");
        assert_eq!(comment_text("plain -- text */"), "plain -- text */");
    }

    #[test]
    fn objectscript_strings() {
        assert_eq!(
            objectscript_string("SELECT \"x\"").unwrap(),
            "\"SELECT \"\"x\"\"\""
        );
        assert!(objectscript_string("a\nb").is_err());
    }

    #[test]
    fn defaults_are_single_literals() {
        let d = Dialect::Iris;
        assert_eq!(default_literal("P", "42", d).unwrap(), "42");
        assert_eq!(default_literal("P", "-1.5", d).unwrap(), "-1.5");
        assert_eq!(default_literal("P", "'it''s'", d).unwrap(), "'it''s'");
        assert_eq!(default_literal("P", " 'x' ", d).unwrap(), "'x'");
        for bad in [
            "1; DROP TABLE x",
            "'a' || 'b'",
            "1 -- c",
            "(SELECT 1)",
            "NULL",
            "TRUE",
            "x",
            "1e5",
            "'a'; DELETE FROM t",
            "",
            "'a\nb'",
        ] {
            assert!(default_literal("P", bad, d).is_err(), "{bad:?} accepted");
            assert!(
                default_literal("P", bad, Dialect::Postgres).is_err(),
                "{bad:?} accepted"
            );
        }
    }
}
