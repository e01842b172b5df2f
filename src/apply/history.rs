//! The tool's own bookkeeping table, `BplMigrate.History` (DDL in `migrations/`, embedded).
//! Created by the first real apply; `status` and `--dry-run` only read it when it exists.

use super::conn::{text, Db, Value};
use super::error::{ApplyError, DbFailure};
use crate::sql::text::{quote_ident, quote_table};
use crate::sql::{self, CheckedSql, Dialect, Direction, SqlError};
use crate::states::SqlTable;
use serde::Serialize;

/// A bookkeeping table and the statement that creates it (for a dialect).
pub struct BookkeepingTable {
    pub name: &'static str,
    pub table: fn() -> SqlTable,
    /// The columns an existence probe names.
    pub probe: &'static [&'static str],
    pub ddl: fn(Dialect) -> String,
}

/// The bookkeeping migrations, in order. One statement each: the history
/// (`migrations/0001_history.sql`) and the undo rows of non-invertible applies
/// (`migrations/0002_undo.sql`).
pub const MIGRATIONS: &[BookkeepingTable] = &[
    BookkeepingTable {
        name: "0001_history",
        table: history_table,
        probe: &["Seq", "Outcome"],
        ddl: |_| sql::HISTORY_DDL.to_string(),
    },
    BookkeepingTable {
        name: "0002_undo",
        table: sql::undo_table,
        probe: &["Seq", "RowId", "NewSubroutineStack"],
        ddl: sql::undo_ddl,
    },
];

pub use crate::sql::history_table;

pub use crate::sql::ROW_COUNTS_MAX;

/// Advisory-lock key (PostgreSQL) that serializes creating the bookkeeping tables.
const CREATE_LOCK_KEY: i64 = 0x6270_6c6d_0000_0001;

/// What a history entry says happened, parsed where it is read: a value this bplmigrate does
/// not know is an error, never a silent "not applied".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Committed (a repaired dirty entry that was found applied reads the same).
    Applied,
    /// A commit whose check afterwards disagreed: every apply of the class refuses.
    Dirty,
    /// A dirty entry repaired as not applied (`repair --not-applied`): the rows were put back
    /// where the plan starts, so it does not count — not as "already applied", and not in the
    /// chain of sources, which continues from the committed entry before it.
    Resolved,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Applied, Outcome::Dirty, Outcome::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Dirty => "dirty",
            Outcome::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
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

/// One row of `BplMigrate.History`, typed where it is read.
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
    pub tool_version: String,
    /// Rows the migration changed (`RowCounts.changed`; entries written before that field
    /// existed have none).
    pub rows_changed: Option<i64>,
    /// Rows whose previous values the apply recorded in `BplMigrate.Undo` (`RowCounts.undo`;
    /// None: it recorded none — an invertible plan, the ObjectScript runner, an older version).
    pub undo_rows: Option<i64>,
    pub note: String,
}

impl HistoryEntry {
    /// A committed apply or revert (not dirty, not resolved).
    pub fn committed(&self) -> bool {
        self.outcome == Outcome::Applied
    }
}

/// The entry number column (numbered per class) and the class column.
const SEQ: &str = "Seq";
const CLASS: &str = "BplClass";

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
pub fn exists(db: &Db) -> Result<bool, DbFailure> {
    table_exists(db, &MIGRATIONS[0])
}

/// Whether the undo table exists. Runs a probe: call outside a transaction.
pub fn undo_exists(db: &Db) -> Result<bool, DbFailure> {
    table_exists(db, &MIGRATIONS[1])
}

/// A probe that timed out waiting for another session's lock fails: the table is there, only
/// locked (taking it for missing would say something untrue, and wait a second time later).
fn table_exists(db: &Db, m: &BookkeepingTable) -> Result<bool, DbFailure> {
    let Ok(probe) = sql::probe_table(db.dialect(), &(m.table)(), m.probe) else {
        return Ok(false);
    };
    match db.probe(probe.as_str()) {
        Ok(()) => Ok(true),
        Err(f) if super::lock::is_lock_timeout(db.dialect(), &f) => Err(f),
        Err(_) => Ok(false),
    }
}

/// Creates the bookkeeping tables `wanted` (indexes into [`MIGRATIONS`]) that are missing, in
/// the open apply transaction where the dialect has transactional DDL (PostgreSQL: a refused
/// or failed apply rolls the tables back with everything else; an advisory lock serializes
/// two first applies).
pub fn create_in_transaction(db: &Db, wanted: &[usize]) -> Result<(), DbFailure> {
    let step = "create bookkeeping tables";
    let count = statement_for(step, sql::catalog_table_count(Dialect::Postgres))?;
    db.execute(
        step,
        &format!("SELECT pg_advisory_xact_lock({CREATE_LOCK_KEY})"),
        &[],
    )?;
    for m in wanted.iter().filter_map(|i| MIGRATIONS.get(*i)) {
        let t = (m.table)();
        let schema = quote_ident(&t.schema, Dialect::Postgres)
            .map_err(|e| DbFailure::refused_sql(step, &e))?;
        db.execute(step, &format!("CREATE SCHEMA IF NOT EXISTS {schema}"), &[])?;
        if db.count(step, count.as_str(), &[&t.schema, &t.table])? == 0 {
            db.execute(step, &statement(&(m.ddl)(Dialect::Postgres)), &[])?;
        }
    }
    Ok(())
}

/// Whether the dialect can create the bookkeeping tables inside the apply transaction.
pub fn transactional_ddl(d: Dialect) -> bool {
    d == Dialect::Postgres
}

/// Creates the bookkeeping tables `wanted` outside any transaction (IRIS, whose DDL commits by
/// itself). A concurrent creator makes the second CREATE fail, after which the table exists
/// and that is all we need.
pub fn create(db: &Db, wanted: &[usize]) -> Result<(), DbFailure> {
    let step = "create bookkeeping tables";
    for m in wanted.iter().filter_map(|i| MIGRATIONS.get(*i)) {
        if table_exists(db, m)? {
            continue;
        }
        if let Err(e) = db.execute(step, &statement(&(m.ddl)(db.dialect())), &[]) {
            if !table_exists(db, m)? {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The length of a plan id (`plan::plan_id`: 8 bytes of SHA-256, in hex).
const PLAN_ID_LEN: usize = 16;

/// Every entry (of `class`, or of every class), ordered by class and entry number, parsed
/// strictly ([`entry_of_row`]): a value this bplmigrate does not know exactly — an `Outcome`,
/// `Direction`, `PlanId` or `BplClass` it never writes, `"applied "` and `"APPLIED"` alike — is
/// refused (exit 3), never guessed. Every row is read and the class compared here, not by the
/// database (IRIS compares strings ignoring case and trailing blanks): a row naming `class`
/// in another spelling (`"Demo.A "`, `"demo.a"`) is refused too, by every reader alike.
pub fn read(db: &Db, class: Option<&str>) -> Result<Vec<HistoryEntry>, ApplyError> {
    read_spelled(db, class, &[])
}

/// [`read`], with more class names spelled as they must be (a folder's classes): a row naming
/// one of them in another spelling is refused too.
pub fn read_spelled(
    db: &Db,
    class: Option<&str>,
    spellings: &[&str],
) -> Result<Vec<HistoryEntry>, ApplyError> {
    let step = "read history";
    let sql = statement_for(
        step,
        sql::read_rows(
            db.dialect(),
            &history_table(),
            sql::HISTORY_COLUMNS,
            None,
            Some(SEQ),
        ),
    )?;
    let rows = db.query(step, sql.as_str(), &[])?;
    let mut out = Vec::new();
    // IRIS class names are unique ignoring case (and blanks around them are a hand edit): a class
    // spelled two ways — by two rows, or by a row and the caller — is a hand edit. The
    // caller's spelling, when given, is the one that counts.
    let key = |c: &str| c.trim().to_ascii_lowercase();
    // (spelling, what a row must hold) per class name.
    let mut spelled: foldhash::HashMap<String, (String, String)> = foldhash::HashMap::default();
    for c in class.iter().chain(spellings) {
        spelled.insert(key(c), (c.to_string(), format!("exactly {c}")));
    }
    for r in &rows {
        let raw = raw_text(r, CLASS);
        let (spelling, expected) = spelled.entry(key(&raw)).or_insert_with(|| {
            let why = format!("exactly {raw}, as another row spells it");
            (raw.clone(), why)
        });
        if *spelling != raw {
            return Err(unknown_value(r, "BplClass", &raw, expected));
        }
    }
    for r in &rows {
        if class.is_some_and(|class| raw_text(r, CLASS) != class) {
            continue;
        }
        out.push(entry_of_row(r)?);
    }
    out.sort_by(|a, b| (&a.class, a.seq).cmp(&(&b.class, b.seq)));
    Ok(out)
}

/// Every entry of a class, oldest first.
pub fn entries_for_class(db: &Db, class: &str) -> Result<Vec<HistoryEntry>, ApplyError> {
    read(db, Some(class))
}

/// A column of a history row as stored (not trimmed: `"applied "` is not `"applied"`).
fn raw_text(r: &[Value], name: &str) -> String {
    r.get(sql::history_column(name).map_or(usize::MAX, |i| i - 1))
        .and_then(Value::text)
        .unwrap_or_default()
        .to_string()
}

/// The refusal of a history row holding `value` in column `what` (`expected`: what it may hold).
fn unknown_value(r: &[Value], what: &str, value: &str, expected: &str) -> ApplyError {
    ApplyError::Refused {
        refusals: vec![super::error::Refusal::UnreadableHistory {
            class: raw_text(r, CLASS),
            seq: raw_text(r, SEQ),
            column: what.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }],
    }
}

/// One row selected with [`sql::HISTORY_COLUMNS`], strictly: `Direction` and `Outcome` exactly
/// as bplmigrate writes them, `PlanId` lower-case hex, `BplClass` a class name (no blanks),
/// `Seq` a positive number.
fn entry_of_row(r: &[Value]) -> Result<HistoryEntry, ApplyError> {
    let get = |name: &str| r.get(sql::history_column(name).map_or(usize::MAX, |i| i - 1));
    let raw_seq = raw_text(r, SEQ);
    let seq = get(SEQ)
        .and_then(Value::int)
        // The next entry is Seq + 1, in an INTEGER column.
        .filter(|n| *n > 0 && *n < i64::from(i32::MAX))
        .ok_or_else(|| unknown_value(r, "Seq", &raw_seq, "a positive number below 2147483647"))?;
    let class = raw_text(r, CLASS);
    let class_ok = !class.is_empty()
        && class
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '%' | '_'));
    if !class_ok {
        return Err(unknown_value(r, "BplClass", &class, "a class name"));
    }
    let direction = raw_text(r, "Direction");
    let direction = parse_direction(&direction)
        .ok_or_else(|| unknown_value(r, "Direction", &direction, "apply or revert"))?;
    let outcome = raw_text(r, "Outcome");
    let outcome = Outcome::parse(&outcome).ok_or_else(|| {
        unknown_value(
            r,
            "Outcome",
            &outcome,
            "applied, dirty or resolved, in lower case",
        )
    })?;
    let plan_id = raw_text(r, "PlanId");
    if plan_id.len() != PLAN_ID_LEN
        || !plan_id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(unknown_value(
            r,
            "PlanId",
            &plan_id,
            "a plan id (16 lower-case hex digits)",
        ));
    }
    let counts: Option<serde_json::Value> = serde_json::from_str(&text(get("RowCounts"))).ok();
    let count_of = |k: &str| counts.as_ref().and_then(|v| v[k].as_i64());
    Ok(HistoryEntry {
        seq,
        plan_id,
        plan_sha256: text(get("PlanSha256")),
        old_sha256: text(get("OldSha256")),
        new_sha256: text(get("NewSha256")),
        direction,
        applied_at: text(get("AppliedAt")),
        applied_by: text(get("AppliedBy")),
        outcome,
        tool_version: text(get("ToolVersion")),
        rows_changed: count_of("changed"),
        undo_rows: count_of("undo"),
        note: text(get("Note")),
        class,
    })
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
    pub outcome: Outcome,
    pub note: &'a str,
}

/// Writes a history row. The statement is `sql::history_insert` (parse-checked, every value
/// a `?` parameter), so no write the executor issues is free text.
pub fn insert(db: &Db, e: &NewEntry<'_>) -> Result<(), DbFailure> {
    let sql = statement_for(
        "write history",
        sql::history_insert(db.dialect(), &history_table(), sql::HISTORY_COLUMNS),
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
            e.outcome.as_str(),
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
    fn the_embedded_migrations_are_one_statement_each() {
        for (m, start) in MIGRATIONS.iter().zip([
            "CREATE TABLE \"BplMigrate\".\"History\"",
            "CREATE TABLE \"BplMigrate\".\"Undo\"",
        ]) {
            for d in [Dialect::Iris, Dialect::Postgres] {
                let s = statement(&(m.ddl)(d));
                assert!(s.starts_with(start), "{}: {s}", m.name);
                assert!(
                    !s.contains(';') && !s.contains("--") && !s.contains('{'),
                    "{s}"
                );
            }
        }
    }

    #[test]
    fn the_history_ddl_has_exactly_the_columns_every_reader_and_writer_names() {
        let ddl = statement(sql::HISTORY_DDL);
        let declared: Vec<&str> = ddl
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"'))
            .filter_map(|l| l.split('"').next())
            .collect();
        let mut a = declared.clone();
        let mut b = sql::HISTORY_COLUMNS.to_vec();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b);
    }

    #[test]
    fn an_unknown_value_is_refused_never_guessed() {
        let row = |class: &str, plan: &str, direction: &str, outcome: &str| -> Vec<Value> {
            sql::HISTORY_COLUMNS
                .iter()
                .map(|c| match *c {
                    "Seq" => Value::Text("3".into()),
                    "BplClass" => Value::Text(class.into()),
                    "PlanId" => Value::Text(plan.into()),
                    "Direction" => Value::Text(direction.into()),
                    "Outcome" => Value::Text(outcome.into()),
                    "RowCounts" => Value::Text(r#"{"changed":4,"undo":2}"#.into()),
                    _ => Value::Text(format!("{c}-value")),
                })
                .collect()
        };
        let e = entry_of_row(&row("Demo.A", "eef014ebc7366125", "revert", "resolved")).unwrap();
        assert_eq!(
            (e.direction, e.outcome),
            (Direction::Revert, Outcome::Resolved)
        );
        assert_eq!((e.rows_changed, e.undo_rows), (Some(4), Some(2)));
        assert_eq!(
            (e.class.as_str(), e.plan_id.as_str()),
            ("Demo.A", "eef014ebc7366125")
        );
        assert!(!e.committed());
        for (r, what) in [
            (
                row("Demo.A", "eef014ebc7366125", "apply", "rolled back"),
                "Outcome \"rolled back\"",
            ),
            (
                row("Demo.A", "eef014ebc7366125", "apply", "applied "),
                "Outcome \"applied \"",
            ),
            (
                row("Demo.A", "eef014ebc7366125", "apply", "APPLIED"),
                "Outcome \"APPLIED\"",
            ),
            (
                row("Demo.A", "eef014ebc7366125", "sideways", "applied"),
                "Direction \"sideways\"",
            ),
            (
                row("Demo.A ", "eef014ebc7366125", "apply", "applied"),
                "BplClass \"Demo.A \"",
            ),
            (
                row("Demo.A", "EEF014EBC7366125", "apply", "applied"),
                "PlanId \"EEF014EBC7366125\"",
            ),
            (
                row("Demo.A", "eef014ebc7366125 ", "apply", "applied"),
                "PlanId \"eef014ebc7366125 \"",
            ),
        ] {
            let err = entry_of_row(&r).unwrap_err();
            assert_eq!(err.class(), super::super::ErrorClass::Refused, "{err}");
            assert!(err.to_string().contains(what), "{what}: {err}");
        }
    }

    #[test]
    fn row_counts_max_is_the_columns_size() {
        let ddl = statement(sql::HISTORY_DDL);
        assert!(
            ddl.contains(&format!("\"RowCounts\" VARCHAR({ROW_COUNTS_MAX}) NOT NULL")),
            "{ddl}"
        );
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
