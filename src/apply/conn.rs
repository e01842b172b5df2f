//! The ODBC connection: connect, run a statement, read rows, transactions. Every message that
//! leaves this file has the password removed.

use super::error::{ApplyError, DbFailure};
use crate::sql::Dialect;
use odbc_api::{ConnectionOptions, Cursor, DataType, IntoParameter, ResultSetMetadata};

/// One field of a result row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Null,
    Text(String),
    Bytes(Vec<u8>),
}

impl Value {
    pub fn text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    /// An integer read from a text field (`COUNT(*)`, `%Status`, `PoolSize`).
    pub fn int(&self) -> Option<i64> {
        self.text()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|f| f.fract() == 0.0)
            .map(|f| f as i64)
    }
    /// A boolean (`Enabled`): `1`, `true`, `t`, `yes` are true; NULL is None.
    pub fn flag(&self) -> Option<bool> {
        let s = self.text()?.trim().to_ascii_lowercase();
        Some(matches!(s.as_str(), "1" | "true" | "t" | "yes" | "y"))
    }
}

/// The trimmed text of a row's field; NULL, binary and a missing field read as empty.
pub(super) fn text(v: Option<&Value>) -> String {
    v.and_then(Value::text)
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Removes passwords from connection strings and from messages that might echo them.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

/// Connection-string keys whose value is a secret.
const SECRET_KEYS: &[&str] = &["pwd", "password", "passwd"];

impl Redactor {
    pub fn for_connection_string(connect: &str) -> Redactor {
        let secrets = connection_pairs(connect)
            .into_iter()
            .filter(|(k, _)| SECRET_KEYS.contains(&k.to_ascii_lowercase().as_str()))
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty())
            .collect();
        Redactor { secrets }
    }

    /// The text with every `Pwd=…` value and every occurrence of a known password replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = redact_connection_string(text);
        for s in &self.secrets {
            out = out.replace(s.as_str(), "***");
        }
        out
    }
}

/// What a connection string points at, for a human to check before a write: server and port,
/// database (IRIS: namespace), user, or the DSN — never the password. `the connection string's
/// target` when it names none of these.
pub fn connection_target(connect: &str) -> String {
    let pairs = connection_pairs(connect);
    let get = |keys: &[&str]| {
        pairs
            .iter()
            .find(|(k, v)| keys.contains(&k.to_ascii_lowercase().as_str()) && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    let mut parts = Vec::new();
    if let Some(dsn) = get(&["dsn"]) {
        parts.push(format!("DSN {dsn}"));
    }
    if let Some(server) = get(&["server", "servername", "host", "hostname", "address"]) {
        match get(&["port"]) {
            Some(port) => parts.push(format!("server {server}:{port}")),
            None => parts.push(format!("server {server}")),
        }
    }
    if let Some(db) = get(&["database", "namespace", "dbname"]) {
        parts.push(format!("database {db}"));
    }
    if let Some(user) = get(&["uid", "user", "username"]) {
        parts.push(format!("user {user}"));
    }
    if parts.is_empty() {
        "the connection string's target".to_string()
    } else {
        redact_connection_string(&parts.join(", "))
    }
}

/// `key=value` pairs of an ODBC connection string; `{…}` values may contain `;` (`}}` escapes `}`).
fn connection_pairs(connect: &str) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    let mut rest = connect;
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().trim_start_matches(';').trim().to_string();
        let after = &rest[eq + 1..];
        let (value, next) = split_value(after);
        pairs.push((key, value));
        rest = next;
    }
    pairs
}

/// Splits the value at the start of `s` from the rest of the string (after its `;`).
fn split_value(s: &str) -> (String, &str) {
    let trimmed = s.trim_start();
    if let Some(inner) = trimmed.strip_prefix('{') {
        let mut value = String::new();
        let mut chars = inner.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '}' {
                if matches!(chars.peek(), Some((_, '}'))) {
                    value.push('}');
                    chars.next();
                    continue;
                }
                let rest = &inner[i + 1..];
                let rest = rest.find(';').map_or("", |p| &rest[p + 1..]);
                return (value, rest);
            }
            value.push(c);
        }
        (value, "")
    } else {
        match s.find(';') {
            Some(p) => (s[..p].trim().to_string(), &s[p + 1..]),
            None => (s.trim().to_string(), ""),
        }
    }
}

/// Replaces the value of every `Pwd=`/`PWD=`/`Password=` in `text` with `***`, wherever a
/// connection string appears inside it.
pub fn redact_connection_string(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < text.len() {
        for key in SECRET_KEYS {
            let at_boundary = i == 0 || !lower.as_bytes()[i - 1].is_ascii_alphanumeric();
            if at_boundary && lower[i..].starts_with(key) {
                let after_key = i + key.len();
                let rest = &lower[after_key..];
                let spaces = rest.len() - rest.trim_start().len();
                if rest.trim_start().starts_with('=') {
                    let value_start = after_key + spaces + 1;
                    out.push_str(&text[i..value_start]);
                    out.push_str("***");
                    let value = &text[value_start..];
                    let (_, next) = split_value(value);
                    let consumed = value.len() - next.len();
                    i = value_start + consumed;
                    if consumed > 0 && text[..i].ends_with(';') {
                        out.push(';');
                    }
                    continue 'outer;
                }
            }
        }
        let c = text[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8().max(1);
    }
    out
}

/// An open connection to the target database.
pub struct Db {
    conn: odbc_api::Connection<'static>,
    dialect: Dialect,
    dbms: String,
    redactor: Redactor,
    in_transaction: bool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("dialect", &self.dialect)
            .field("dbms", &self.dbms)
            .finish()
    }
}

impl Db {
    /// Connects with an ODBC connection string. The dialect follows the server: PostgreSQL is
    /// the test stand-in, anything else is treated as IRIS.
    pub fn connect(connect: &str) -> Result<Db, ApplyError> {
        let redactor = Redactor::for_connection_string(connect);
        let env = odbc_api::environment().map_err(|e| ApplyError::Connect {
            message: redactor.redact(&e.to_string()),
        })?;
        let conn = env
            .connect_with_connection_string(connect, ConnectionOptions::default())
            .map_err(|e| ApplyError::Connect {
                message: redactor.redact(&one_line(&e.to_string())),
            })?;
        let dbms = conn.database_management_system_name().unwrap_or_default();
        let dialect = if dbms.to_ascii_lowercase().contains("postgres") {
            Dialect::Postgres
        } else {
            Dialect::Iris
        };
        Ok(Db {
            conn,
            dialect,
            dbms,
            redactor,
            in_transaction: false,
        })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The server's own name for itself (`PostgreSQL`, `InterSystems IRIS`).
    pub fn dbms_name(&self) -> &str {
        &self.dbms
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    fn failure(&self, step: &str, e: &odbc_api::Error) -> DbFailure {
        let (sqlstate, native) = match e {
            odbc_api::Error::Diagnostics { record, .. } => (
                Some(record.state.as_str().to_string()),
                Some(record.native_error),
            ),
            _ => (None, None),
        };
        let message = self.redactor.redact(&one_line(&e.to_string()));
        let lower = message.to_ascii_lowercase();
        let lost = sqlstate
            .as_deref()
            .is_some_and(|s| s.starts_with("08") || s == "57P01")
            || lower.contains("terminating connection")
            || lower.contains("server closed the connection")
            || lower.contains("connection is dead")
            || lower.contains("could not send")
            || lower.contains("no connection to the server")
            || self.conn.is_dead().unwrap_or(false);
        DbFailure {
            step: step.to_string(),
            message,
            sqlstate,
            native,
            connection_lost: lost,
        }
    }

    /// Runs a statement that returns no rows; the affected row count when the driver reports it.
    pub(super) fn execute(
        &self,
        step: &str,
        sql: &str,
        params: &[&str],
    ) -> Result<Option<usize>, DbFailure> {
        let params: Vec<_> = params.iter().map(|p| p.into_parameter()).collect();
        let mut stmt = self
            .conn
            .preallocate()
            .map_err(|e| self.failure(step, &e))?;
        let produced_rows = stmt
            .execute(sql, params.as_slice())
            .map_err(|e| self.failure(step, &e))?
            .is_some();
        if produced_rows {
            // A query (e.g. `SELECT pg_advisory_xact_lock(…)`): no row count to ask for.
            return Ok(None);
        }
        stmt.row_count().map_err(|e| self.failure(step, &e))
    }

    /// Runs a query and reads every row. Binary columns come back as bytes, all others as text.
    pub(super) fn query(
        &self,
        step: &str,
        sql: &str,
        params: &[&str],
    ) -> Result<Vec<Vec<Value>>, DbFailure> {
        let params: Vec<_> = params.iter().map(|p| p.into_parameter()).collect();
        let cursor = self
            .conn
            .execute(sql, params.as_slice(), None)
            .map_err(|e| self.failure(step, &e))?;
        let Some(mut cursor) = cursor else {
            return Ok(Vec::new());
        };
        let cols = cursor
            .num_result_cols()
            .map_err(|e| self.failure(step, &e))?;
        let cols = u16::try_from(cols).unwrap_or(0);
        let mut binary = Vec::with_capacity(usize::from(cols));
        for c in 1..=cols {
            let t = cursor
                .col_data_type(c)
                .map_err(|e| self.failure(step, &e))?;
            binary.push(matches!(
                t,
                DataType::Binary { .. }
                    | DataType::Varbinary { .. }
                    | DataType::LongVarbinary { .. }
            ));
        }
        let mut rows = Vec::new();
        let mut buf = Vec::with_capacity(256);
        while let Some(mut row) = cursor.next_row().map_err(|e| self.failure(step, &e))? {
            let mut values = Vec::with_capacity(binary.len());
            for (i, is_binary) in binary.iter().enumerate() {
                let col = u16::try_from(i + 1).unwrap_or(u16::MAX);
                buf.clear();
                let present = if *is_binary {
                    row.get_binary(col, &mut buf)
                        .map_err(|e| self.failure(step, &e))?
                } else {
                    row.get_text(col, &mut buf)
                        .map_err(|e| self.failure(step, &e))?
                };
                values.push(match (present, is_binary) {
                    (false, _) => Value::Null,
                    (true, true) => Value::Bytes(buf.clone()),
                    (true, false) => Value::Text(String::from_utf8_lossy(&buf).into_owned()),
                });
            }
            rows.push(values);
        }
        Ok(rows)
    }

    /// A single integer (`SELECT COUNT(*) …`); a query that returns no row or NULL is 0.
    pub(super) fn count(&self, step: &str, sql: &str, params: &[&str]) -> Result<i64, DbFailure> {
        let rows = self.query(step, sql, params)?;
        match rows.first().and_then(|r| r.first()) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .int()
                .ok_or_else(|| DbFailure::local(step, format!("expected a number, got {v:?}"))),
        }
    }

    /// Whether a query runs (used to probe that a table and its columns exist). Only call this
    /// outside a transaction: a failing statement inside one must abort the whole transaction.
    pub(super) fn probe(&self, sql: &str) -> Result<(), DbFailure> {
        self.query("probe", sql, &[]).map(|_| ())
    }

    /// Starts a transaction: autocommit off; the next statement opens it.
    pub(super) fn begin(&mut self, step: &str) -> Result<(), DbFailure> {
        self.conn
            .set_autocommit(false)
            .map_err(|e| self.failure(step, &e))?;
        self.in_transaction = true;
        Ok(())
    }

    pub(super) fn commit(&mut self) -> Result<(), DbFailure> {
        self.conn.commit().map_err(|e| self.failure("commit", &e))?;
        self.end_transaction()
    }

    /// Rolls back and returns to autocommit. The error of a rollback on a dead connection is
    /// returned, but the server has rolled back in that case anyway.
    pub(super) fn rollback(&mut self) -> Result<(), DbFailure> {
        let r = self
            .conn
            .rollback()
            .map_err(|e| self.failure("rollback", &e));
        let back = self.end_transaction();
        r.and(back)
    }

    fn end_transaction(&mut self) -> Result<(), DbFailure> {
        self.in_transaction = false;
        self.conn
            .set_autocommit(true)
            .map_err(|e| self.failure("autocommit on", &e))
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if self.in_transaction {
            let _ = self.conn.rollback();
        }
    }
}

/// ODBC diagnostics span lines; keep messages to one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_names_server_database_and_user_never_the_password() {
        let s = "Driver={InterSystems IRIS ODBC35};Server=iris.prod;Port=1972;Database=APP;UID=ops;PWD=s3cret";
        let t = connection_target(s);
        assert_eq!(t, "server iris.prod:1972, database APP, user ops");
        assert!(!t.contains("s3cret"));
        assert_eq!(connection_target("DSN=prod;Pwd=x"), "DSN prod");
        assert_eq!(
            connection_target("Driver=x;Pwd=s3cret"),
            "the connection string's target"
        );
    }

    #[test]
    fn redacts_pwd_values_in_any_case() {
        let s = "Driver={PostgreSQL Unicode};Server=h;Uid=u;Pwd=s3cret;Database=d";
        assert_eq!(
            redact_connection_string(s),
            "Driver={PostgreSQL Unicode};Server=h;Uid=u;Pwd=***;Database=d"
        );
        let s = "DRIVER=x;PWD={a;b}}c};UID=u";
        assert_eq!(redact_connection_string(s), "DRIVER=x;PWD=***;UID=u");
        let s = "password = hunter2";
        assert_eq!(redact_connection_string(s), "password =***");
    }

    #[test]
    fn redactor_removes_the_password_wherever_it_appears() {
        let r = Redactor::for_connection_string("Driver=x;Password={p;w}");
        assert_eq!(r.redact("login failed for p;w"), "login failed for ***");
        let r = Redactor::for_connection_string("Driver=x;Pwd=pw1;");
        assert_eq!(
            r.redact("connect Driver=x;Pwd=pw1; failed"),
            "connect Driver=x;Pwd=***; failed"
        );
    }

    #[test]
    fn keys_that_merely_end_in_pwd_are_left_alone() {
        assert_eq!(redact_connection_string("OldPwd=x"), "OldPwd=x");
    }
}
