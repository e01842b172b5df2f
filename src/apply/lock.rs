//! Table locks: `apply` locks every table it writes (and every thread table whose rows it
//! guards) against other writers *before* it looks at the rows, so nothing can arrive between
//! the census/guards and the rewrite. The wait is bounded (`--lock-timeout`) and reported.
//!
//! - PostgreSQL: `LOCK TABLE a, b IN EXCLUSIVE MODE` inside the transaction (readers go on;
//!   writers wait) and `LOCK TABLE "Ens_Config"."Item" IN SHARE MODE` (the host guard's rows:
//!   nobody enables an item until COMMIT), bounded by `SET LOCAL lock_timeout`; released by
//!   COMMIT/ROLLBACK. Before its first statement, `apply` bounds every other wait of the
//!   session by the same `--lock-timeout` ([`bound_waits`]). A timeout
//!   (SQLSTATE 55P03) aborts the transaction, so each wait slice is its own transaction.
//! - IRIS: `LOCK TABLE t IN EXCLUSIVE MODE WAIT n` (`IN SHARE MODE` for `Ens_Config.Item`),
//!   one table at a time; a timeout is SQLCODE
//!   -110. IRIS table locks are not transactional: they are held until `UNLOCK TABLE … IN
//!   EXCLUSIVE MODE` (issued after commit/rollback) or until the server process of the
//!   connection ends (which IRIS notices when the TCP connection drops).
//!
//! After a client dies mid-apply: PostgreSQL ends an open transaction when the connection
//! closes; for a client that hangs, the transaction sets `idle_in_transaction_session_timeout`
//! (and, on PostgreSQL 14 and later, `client_connection_check_interval`, so a dead client is
//! noticed during a long statement too).

use super::conn::Db;
use super::error::DbFailure;
use crate::sql::text::quote_table;
use crate::sql::Dialect;
use crate::states::SqlTable;

/// An idle transaction of a vanished client is ended by the server after this long.
const IDLE_IN_TRANSACTION: &str = "30s";
/// How often a long statement checks that the client is still there (PostgreSQL ≥ 14).
const CLIENT_CHECK: &str = "5s";

/// SQLSTATE of a PostgreSQL lock timeout (`lock_not_available`).
const PG_LOCK_NOT_AVAILABLE: &str = "55P03";
/// IRIS SQLCODE of a lock timeout. Only this code means "someone else holds the lock".
pub const IRIS_LOCK_TIMEOUT: i32 = -110;

fn quoted(db: &Db, t: &SqlTable, step: &str) -> Result<String, DbFailure> {
    quote_table(t, db.dialect()).map_err(|e| DbFailure::refused_sql(step, &e))
}

/// Whether a failure is a lock timeout (and nothing else).
pub fn is_lock_timeout(d: Dialect, f: &DbFailure) -> bool {
    match d {
        Dialect::Postgres => f.sqlstate.as_deref() == Some(PG_LOCK_NOT_AVAILABLE),
        Dialect::Iris => {
            f.native == Some(IRIS_LOCK_TIMEOUT)
                || f.message
                    .contains(&format!("SQLCODE: <{IRIS_LOCK_TIMEOUT}>"))
                || f.message.contains(&format!("SQLCODE={IRIS_LOCK_TIMEOUT}"))
        }
    }
}

/// Server-side limits for this transaction (PostgreSQL; IRIS: see the module docs). Run as the
/// first statements of the transaction; `SET LOCAL` ends with it.
pub fn protect_transaction(db: &Db, pg_version: i64) -> Result<(), DbFailure> {
    if db.dialect() != Dialect::Postgres {
        return Ok(());
    }
    let step = "set transaction limits";
    db.execute(
        step,
        &format!("SET LOCAL idle_in_transaction_session_timeout = '{IDLE_IN_TRANSACTION}'"),
        &[],
    )?;
    if pg_version >= 140_000 {
        db.execute(
            step,
            &format!("SET LOCAL client_connection_check_interval = '{CLIENT_CHECK}'"),
            &[],
        )?;
    }
    Ok(())
}

/// The server version number (PostgreSQL `server_version_num`; 0 elsewhere). Outside a
/// transaction.
pub fn pg_version(db: &Db) -> i64 {
    if db.dialect() != Dialect::Postgres {
        return 0;
    }
    db.count(
        "server version",
        "SELECT CAST(current_setting('server_version_num') AS integer)",
        &[],
    )
    .unwrap_or(0)
}

/// What one attempt to lock got.
#[derive(Debug)]
pub enum Attempt {
    /// Every table is locked. IRIS: the `UNLOCK` statements to run after commit/rollback.
    Locked(Vec<String>),
    /// Another session held a lock for the whole slice; IRIS: the tables taken so far were
    /// released again. PostgreSQL: the transaction is aborted, roll it back.
    Busy,
}

/// Tries to lock `tables` in exclusive mode and `shared` in share mode
/// ([`crate::sql::tables_to_share`]), waiting at most `wait_ms` (IRIS: whole seconds, at least
/// 1). Inside the transaction. PostgreSQL: once locked, every later wait of the transaction
/// is bounded by `after_ms` (`--lock-timeout`): a lock-timeout failure then refuses.
pub fn try_lock(
    db: &Db,
    tables: &[SqlTable],
    shared: &[SqlTable],
    wait_ms: u64,
    after_ms: u64,
) -> Result<Attempt, DbFailure> {
    let step = "lock the tables";
    if tables.is_empty() && shared.is_empty() {
        return Ok(Attempt::Locked(Vec::new()));
    }
    let modes = [(tables, "EXCLUSIVE"), (shared, "SHARE")];
    match db.dialect() {
        Dialect::Postgres => {
            db.execute(step, &session_bound(wait_ms), &[])?;
            for (list, mode) in modes {
                if list.is_empty() {
                    continue;
                }
                let names = list
                    .iter()
                    .map(|t| quoted(db, t, step))
                    .collect::<Result<Vec<_>, _>>()?;
                match db.execute(
                    step,
                    &format!("LOCK TABLE {} IN {mode} MODE", names.join(", ")),
                    &[],
                ) {
                    Ok(_) => {}
                    Err(e) if is_lock_timeout(Dialect::Postgres, &e) => return Ok(Attempt::Busy),
                    Err(e) => return Err(e),
                }
            }
            // Later statements wait on no table of the plan; any other wait is bounded.
            db.execute(step, &session_bound(after_ms), &[])?;
            Ok(Attempt::Locked(Vec::new()))
        }
        Dialect::Iris => {
            let secs = iris_secs(wait_ms);
            let mut unlocks = Vec::new();
            for (list, mode) in modes {
                for t in list {
                    let name = quoted(db, t, step)?;
                    match db.execute(
                        step,
                        &format!("LOCK TABLE {name} IN {mode} MODE WAIT {secs}"),
                        &[],
                    ) {
                        Ok(_) => unlocks.push(format!("UNLOCK TABLE {name} IN {mode} MODE")),
                        Err(e) => {
                            unlock(db, &unlocks);
                            return if is_lock_timeout(Dialect::Iris, &e) {
                                Ok(Attempt::Busy)
                            } else {
                                Err(e)
                            };
                        }
                    }
                }
            }
            Ok(Attempt::Locked(unlocks))
        }
    }
}

/// PostgreSQL: `SET LOCAL lock_timeout` to `ms` (at least 1 ms: 0 would mean no limit).
/// IRIS lock timeouts are whole seconds, at least one.
fn iris_secs(ms: u64) -> u64 {
    ms.div_ceil(1000).max(1)
}

fn session_bound(ms: u64) -> String {
    format!("SET LOCAL lock_timeout = '{}ms'", ms.max(1))
}

/// Bounds every lock wait of this session by `timeout_ms` (`--lock-timeout`), before its
/// first statement reads a table: a statement that would wait longer for another session's
/// lock fails with a lock timeout, which `apply` reports as such (exit 3), instead of waiting
/// without limit. PostgreSQL: `SET lock_timeout` (session); IRIS: `SET OPTION LOCK_TIMEOUT`
/// (whole seconds, at least 1; the process's default lock timeout, unverified on IRIS).
pub fn bound_waits(db: &Db, timeout_ms: u64) -> Result<(), DbFailure> {
    let step = "set the lock timeout";
    let sql = match db.dialect() {
        Dialect::Postgres => format!("SET lock_timeout = '{}ms'", timeout_ms.max(1)),
        Dialect::Iris => format!("SET OPTION LOCK_TIMEOUT = {}", iris_secs(timeout_ms)),
    };
    db.execute(step, &sql, &[]).map(|_| ())
}

/// Releases IRIS table locks (PostgreSQL's end with the transaction).
pub fn unlock(db: &Db, unlocks: &[String]) {
    for u in unlocks.iter().rev() {
        let _ = db.execute("release a table lock", u, &[]);
    }
}

/// Who holds a lock that conflicts with `EXCLUSIVE` on one of `tables`, one line per
/// session, as far as the database can say (PostgreSQL: `pg_locks` + `pg_stat_activity`).
/// Outside a transaction; empty when it cannot tell.
pub fn holders(db: &Db, tables: &[SqlTable]) -> Vec<(SqlTable, String)> {
    if db.dialect() != Dialect::Postgres {
        return Vec::new();
    }
    let sql = "SELECT a.pid, coalesce(a.usename, ''), coalesce(a.application_name, ''), \
               coalesce(CAST(a.client_addr AS text), 'local'), coalesce(a.state, ''), \
               coalesce(CAST(date_trunc('second', now() - a.xact_start) AS text), ''), l.mode \
               FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
               JOIN pg_namespace n ON n.oid = c.relnamespace \
               JOIN pg_stat_activity a ON a.pid = l.pid \
               WHERE l.granted AND l.mode <> 'AccessShareLock' AND l.pid <> pg_backend_pid() \
               AND n.nspname = ? AND c.relname = ? ORDER BY a.pid";
    let mut out = Vec::new();
    for t in tables {
        let Ok(rows) = db.query("who holds the lock", sql, &[&t.schema, &t.table]) else {
            continue;
        };
        for r in rows {
            let f = |i: usize| {
                r.get(i)
                    .and_then(|v| v.text())
                    .unwrap_or_default()
                    .to_string()
            };
            let mut line = format!("session {} ({}) on {t}", f(0), f(6));
            let who: Vec<String> = [
                ("user", f(1)),
                ("application", f(2)),
                ("from", f(3)),
                ("state", f(4)),
                ("transaction open for", f(5)),
            ]
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
            if !who.is_empty() {
                line.push_str(&format!(": {}", who.join(", ")));
            }
            let entry = (t.clone(), line);
            if !out.contains(&entry) {
                out.push(entry);
            }
        }
    }
    out
}

/// This connection's server session id (PostgreSQL backend pid), for messages and tests.
pub fn session_id(db: &Db) -> Option<i64> {
    match db.dialect() {
        Dialect::Postgres => db.count("session id", "SELECT pg_backend_pid()", &[]).ok(),
        Dialect::Iris => None,
    }
}
