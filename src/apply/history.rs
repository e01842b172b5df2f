//! The tool's own bookkeeping table, `BplMigrate.History` (DDL in `migrations/`, embedded).
//! Created by the first real apply; `status` and `--dry-run` only read it when it exists.

use super::conn::{text, Db, Value};
use super::error::DbFailure;
use crate::sql::text::{quote_ident, quote_table};
use crate::sql::{self, CheckedSql, Dialect, Direction, SqlError};
use crate::states::SqlTable;
use serde::Serialize;

/// The bookkeeping migrations, in order: (name, SQL). One statement each.
pub const MIGRATIONS: &[(&str, &str)] = &[(
    "0001_history",
    include_str!("../../migrations/0001_history.sql"),
)];

pub fn history_table() -> SqlTable {
    SqlTable {
        schema: "BplMigrate".into(),
        table: "History".into(),
    }
}

/// Advisory-lock key (PostgreSQL) that serializes creating the history table.
const CREATE_LOCK_KEY: i64 = 0x6270_6c6d_0000_0001;

pub const OUTCOME_APPLIED: &str = "applied";
pub const OUTCOME_DIRTY: &str = "dirty";
/// Written by `repair --not-applied` (see `info`).
const OUTCOME_RESOLVED: &str = "resolved";

/// What a history entry says happened, parsed where it is read: a value this bplmigrate does
/// not know is an error, never a silent "not applied".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Committed (a repaired dirty entry that was found applied reads the same).
    Applied,
    /// A commit whose check afterwards disagreed: every apply of the class refuses.
    Dirty,
    /// A dirty entry repaired as not applied: it does not count.
    Resolved,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => OUTCOME_APPLIED,
            Outcome::Dirty => OUTCOME_DIRTY,
            Outcome::Resolved => OUTCOME_RESOLVED,
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Applied, Outcome::Dirty, Outcome::Resolved]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

fn parse_direction(s: &str) -> Option<Direction> {
    [Direction::Apply, Direction::Revert]
        .into_iter()
        .find(|d| direction_str(*d) == s)
}

/// How a direction is written in the history.
pub fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::Apply => "apply",
        Direction::Revert => "revert",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub seq: i64,
    pub plan_id: String,
    pub plan_sha256: String,
    pub class: String,
    pub old_sha256: String,
    pub new_sha256: String,
    pub direction: Direction,
    pub applied_at: String,
    pub applied_by: String,
    pub outcome: Outcome,
}

/// The entry number column (numbered per class) and the class column.
const SEQ: &str = "Seq";
const CLASS: &str = "BplClass";

/// The columns of a history row, in the order `insert` binds them. The first ten are the ones
/// `entries_for_class` reads back, in the order of [`HistoryEntry`].
const COLUMNS: &[&str] = &[
    SEQ,
    "PlanId",
    "PlanSha256",
    CLASS,
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
const READ_COLUMNS: &[&str] = COLUMNS.split_at(10).0;

/// A history statement from the `sql` stage; a refusal fails `step`.
fn statement_for(step: &str, built: Result<CheckedSql, SqlError>) -> Result<CheckedSql, DbFailure> {
    built.map_err(|e| DbFailure::refused_sql(step, &e))
}

/// `"BplMigrate"."History"` for IRIS's `LOCK TABLE` / `UNLOCK TABLE` (syntax sqlparser does
/// not read, so these two are not parse-checked; the name still goes through `sql::text`).
fn quoted_history_table(step: &str) -> Result<String, DbFailure> {
    quote_table(&history_table(), Dialect::Iris).map_err(|e| DbFailure::refused_sql(step, &e))
}

/// The statement text of a migration file: comment lines removed, no trailing `;`.
fn statement(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string()
}

/// Whether the history table exists. Runs a probe: call outside a transaction.
pub fn exists(db: &Db) -> bool {
    sql::probe_table(db.dialect(), &history_table(), &[SEQ, "Outcome"])
        .is_ok_and(|probe| db.probe(probe.as_str()).is_ok())
}

/// Creates the history table on a first real apply, in the open apply transaction where the
/// dialect has transactional DDL (PostgreSQL: a refused or failed apply rolls the table back
/// with everything else; an advisory lock serializes two first applies). Safe to call when it
/// exists.
pub fn create_in_transaction(db: &Db) -> Result<(), DbFailure> {
    let step = "create history table";
    let t = history_table();
    let schema =
        quote_ident(&t.schema, Dialect::Postgres).map_err(|e| DbFailure::refused_sql(step, &e))?;
    let count = statement_for(step, sql::catalog_table_count(Dialect::Postgres))?;
    db.execute(
        step,
        &format!("SELECT pg_advisory_xact_lock({CREATE_LOCK_KEY})"),
        &[],
    )?;
    db.execute(step, &format!("CREATE SCHEMA IF NOT EXISTS {schema}"), &[])?;
    if db.count(step, count.as_str(), &[&t.schema, &t.table])? == 0 {
        for (_, sql) in MIGRATIONS {
            db.execute(step, &statement(sql), &[])?;
        }
    }
    Ok(())
}

/// Whether the dialect can create the history table inside the apply transaction.
pub fn transactional_ddl(d: Dialect) -> bool {
    d == Dialect::Postgres
}

/// Creates the history table outside any transaction (IRIS, whose DDL commits by itself). A
/// concurrent creator makes the second CREATE fail, after which the table exists and that is
/// all we need.
pub fn create(db: &Db) -> Result<(), DbFailure> {
    let step = "create history table";
    for (_, sql) in MIGRATIONS {
        if let Err(e) = db.execute(step, &statement(sql), &[]) {
            if !exists(db) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Every entry of a class, oldest first.
pub fn entries_for_class(db: &Db, class: &str) -> Result<Vec<HistoryEntry>, DbFailure> {
    let step = "read history";
    let sql = statement_for(
        step,
        sql::read_rows(
            db.dialect(),
            &history_table(),
            READ_COLUMNS,
            Some(CLASS),
            Some(SEQ),
        ),
    )?;
    let rows = db.query(step, sql.as_str(), &[class])?;
    rows.iter()
        .map(|r| {
            let seq = r.first().and_then(Value::int).unwrap_or(0);
            let unknown = |what: &str, v: String| {
                DbFailure::local(
                    step,
                    format!(
                        "history entry {seq} of {class} has {what} {v:?}, which this bplmigrate does not know \
                         (written by a newer version?)"
                    ),
                )
            };
            let direction = text(r.get(6));
            let outcome = text(r.get(9));
            Ok(HistoryEntry {
                seq,
                plan_id: text(r.get(1)),
                plan_sha256: text(r.get(2)),
                class: text(r.get(3)),
                old_sha256: text(r.get(4)),
                new_sha256: text(r.get(5)),
                direction: parse_direction(&direction)
                    .ok_or_else(|| unknown("Direction", direction.clone()))?,
                applied_at: text(r.get(7)),
                applied_by: text(r.get(8)),
                outcome: Outcome::parse(&outcome).ok_or_else(|| unknown("Outcome", outcome.clone()))?,
            })
        })
        .collect()
}

/// The next entry number of a class (entries are numbered per class; the apply lock is per
/// class too).
pub fn next_seq(db: &Db, class: &str) -> Result<i64, DbFailure> {
    let step = "read history";
    let sql = statement_for(
        step,
        sql::max_of(db.dialect(), &history_table(), SEQ, Some(CLASS)),
    )?;
    Ok(db.count(step, sql.as_str(), &[class])? + 1)
}

/// What a new history row records.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub seq: i64,
    pub plan_id: &'a str,
    pub plan_sha256: &'a str,
    pub class: &'a str,
    pub old_sha256: &'a str,
    pub new_sha256: &'a str,
    pub direction: Direction,
    pub applied_by: &'a str,
    pub row_counts: &'a str,
    pub outcome: &'a str,
    pub note: &'a str,
}

/// Writes a history row. The statement is `sql::history_insert` (parse-checked, every value
/// a `?` parameter), so no write the executor issues is free text.
pub fn insert(db: &Db, e: &NewEntry<'_>) -> Result<(), DbFailure> {
    let sql = statement_for(
        "write history",
        sql::history_insert(db.dialect(), &history_table(), COLUMNS),
    )?;
    let seq = e.seq.to_string();
    let at = utc_timestamp(std::time::SystemTime::now());
    let n = db.execute(
        "write history",
        sql.as_str(),
        &[
            &seq,
            e.plan_id,
            e.plan_sha256,
            e.class,
            e.old_sha256,
            e.new_sha256,
            direction_str(e.direction),
            &at,
            e.applied_by,
            e.outcome,
            env!("CARGO_PKG_VERSION"),
            e.row_counts,
            e.note,
        ],
    )?;
    if n.is_some_and(|n| n != 1) {
        return Err(DbFailure::local(
            "write history",
            format!("the insert reported {n:?} rows instead of 1"),
        ));
    }
    Ok(())
}

/// The current time as the history writes it.
pub fn utc_now() -> String {
    utc_timestamp(std::time::SystemTime::now())
}

/// `YYYY-MM-DD HH:MM:SS` in UTC (the history's `AppliedAt`).
fn utc_timestamp(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The lock that serializes applies of a class, taken after the table locks (IRIS: only when
/// the history table exists; a first `--dry-run` has nothing to lock there).
/// PostgreSQL: `pg_try_advisory_xact_lock` on a key derived from the class (released by
/// commit/rollback, never waits). IRIS: `LOCK TABLE "BplMigrate"."History" IN EXCLUSIVE MODE
/// WAIT 0` (held until `UNLOCK`, which `unlock` issues after commit/rollback; a dropped
/// connection releases it too). `Ok(false)`: someone else holds it.
pub fn try_lock(db: &Db, class: &str) -> Result<bool, DbFailure> {
    match db.dialect() {
        Dialect::Postgres => {
            let sql = format!(
                "SELECT CASE WHEN pg_try_advisory_xact_lock({}) THEN 1 ELSE 0 END",
                lock_key(class)
            );
            Ok(db.count("take the apply lock", &sql, &[])? == 1)
        }
        Dialect::Iris => {
            let step = "take the apply lock";
            let sql = format!(
                "LOCK TABLE {} IN EXCLUSIVE MODE WAIT 0",
                quoted_history_table(step)?
            );
            match db.execute(step, &sql, &[]) {
                Ok(_) => Ok(true),
                // Only a lock timeout means another apply holds it; anything else is an error.
                Err(e) if super::lock::is_lock_timeout(Dialect::Iris, &e) => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Releases the IRIS table lock (PostgreSQL's transaction lock is already gone).
pub fn unlock(db: &Db) {
    if db.dialect() == Dialect::Iris {
        let step = "release the apply lock";
        if let Ok(t) = quoted_history_table(step) {
            let _ = db.execute(step, &format!("UNLOCK TABLE {t} IN EXCLUSIVE MODE"), &[]);
        }
    }
}

/// A stable 63-bit key for the class (first 8 bytes of its SHA-256).
fn lock_key(class: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("bplmigrate apply {class}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    (u64::from_be_bytes(b) >> 1) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_migration_is_one_statement() {
        let s = statement(MIGRATIONS[0].1);
        assert!(
            s.starts_with("CREATE TABLE \"BplMigrate\".\"History\""),
            "{s}"
        );
        assert!(!s.contains(';'));
        assert!(!s.contains("--"));
    }

    #[test]
    fn timestamps_are_utc_civil_time() {
        use std::time::{Duration, UNIX_EPOCH};
        assert_eq!(utc_timestamp(UNIX_EPOCH), "1970-01-01 00:00:00");
        assert_eq!(
            utc_timestamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00"
        );
        assert_eq!(
            utc_timestamp(UNIX_EPOCH + Duration::from_secs(1_790_000_000)),
            "2026-09-21 14:13:20"
        );
    }

    #[test]
    fn lock_keys_are_stable_and_positive() {
        assert_eq!(lock_key("Demo.A"), lock_key("Demo.A"));
        assert_ne!(lock_key("Demo.A"), lock_key("Demo.B"));
        assert!(lock_key("Demo.A") >= 0);
    }
}
