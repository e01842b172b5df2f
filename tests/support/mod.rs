//! Shared helpers of the database tests (`tests/db_*.rs`).
//!
//! The database comes from `BPLMIGRATE_TEST_CONNECT` (an ODBC connection string; `bash
//! scripts/test.sh` starts a throwaway PostgreSQL and sets it). Without it a database test
//! prints a loud SKIP and passes — unless `CI` or `BPLMIGRATE_REQUIRE_DB=1` is set, then it
//! fails, so CI can never skip silently.
//!
//! Isolation: every test names its own BPL class `Demo.T<name>.BP`, whose tables live in the
//! schema `Demo_T<name>_BP` (dropped and re-created by [`Fixture::new`]). The shared objects —
//! `Ens_Config.Item`, `Ens.Job` / `Ens.Job_Enumerate()`, `Ens.BusinessProcess`, the
//! `bplm_listbuild` / `bplm_listsame` functions — are created once under an advisory lock
//! with `IF NOT EXISTS` / `OR REPLACE`; a test only touches their rows for its own class and
//! item names (`T<name>…`), so tests run in parallel.
#![allow(dead_code)]

use bplmigrate::apply::{
    self, ApplyError, ApplyOptions, ApplyReport, Direction, Migration, Silent,
};
use bplmigrate::plan::{MigrationPlan, Precondition, PLAN_SCHEMA_VERSION};
use bplmigrate::states::SqlTable;
use odbc_api::{Connection, ConnectionOptions, Cursor, ResultSetMetadata};
use std::path::PathBuf;

pub const CONNECT_ENV: &str = "BPLMIGRATE_TEST_CONNECT";

/// Whether a missing database must fail the test instead of skipping it.
pub fn database_required() -> bool {
    let set = |k: &str| {
        std::env::var(k)
            .is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    };
    set("CI") || set("BPLMIGRATE_REQUIRE_DB")
}

/// The connection string, or None (after a loud message) when the test should skip.
pub fn connect_string(test: &str) -> Option<String> {
    match std::env::var(CONNECT_ENV) {
        Ok(s) if !s.trim().is_empty() => Some(s),
        _ => {
            if database_required() {
                panic!(
                    "{test}: {CONNECT_ENV} is not set but a database is required (CI or BPLMIGRATE_REQUIRE_DB); \
                     run `bash scripts/test.sh`"
                );
            }
            // Straight to the process's stderr: the test harness captures `eprintln!`, and a
            // skip must be seen.
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!(
                    "\n*** SKIPPED {test}: {CONNECT_ENV} is not set. Database tests need PostgreSQL + psqlODBC: \
                     run `bash scripts/test.sh` (or `eval \"$(bash scripts/pg.sh start)\"`). ***\n"
                )
                .as_bytes(),
            );
            None
        }
    }
}

/// Opens a raw ODBC connection (autocommit on).
pub fn raw_connect(connect: &str) -> Connection<'static> {
    let env = odbc_api::environment().expect("ODBC environment");
    match env.connect_with_connection_string(connect, ConnectionOptions::default()) {
        Ok(c) => c,
        Err(e) => panic!(
            "cannot connect to the test database: {}",
            apply::redact_connection_string(&e.to_string())
        ),
    }
}

/// Runs one statement; panics with the SQL on error.
pub fn exec(conn: &Connection<'_>, sql: &str) {
    if let Err(e) = conn.execute(sql, (), None) {
        panic!("{sql}\nfailed: {e}");
    }
}

/// Every row of a query, every field as text (NULL as None).
pub fn rows(conn: &Connection<'_>, sql: &str) -> Vec<Vec<Option<String>>> {
    let mut out = Vec::new();
    let cursor = match conn.execute(sql, (), None) {
        Ok(c) => c,
        Err(e) => panic!("{sql}\nfailed: {e}"),
    };
    let Some(mut cursor) = cursor else { return out };
    let cols = cursor.num_result_cols().expect("columns") as u16;
    let mut buf = Vec::new();
    while let Some(mut row) = cursor.next_row().expect("fetch") {
        let mut r = Vec::new();
        for c in 1..=cols {
            buf.clear();
            let present = row.get_text(c, &mut buf).expect("get_text");
            r.push(present.then(|| String::from_utf8_lossy(&buf).into_owned()));
        }
        out.push(r);
    }
    out
}

pub fn scalar(conn: &Connection<'_>, sql: &str) -> i64 {
    rows(conn, sql)
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("{sql}: no number"))
}

/// A `'…'` literal (test data only).
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A `$List` of `items` as a SQL bytea literal (NULL for an empty stack, as the rewrite writes).
pub fn stack_sql(items: &[&str]) -> String {
    if items.is_empty() {
        "NULL".into()
    } else {
        let hex: String = apply::encode_list(items)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("decode('{hex}', 'hex')")
    }
}

/// The shared objects (created once per database; harmless to repeat).
fn ensure_shared(conn: &Connection<'_>) {
    conn.set_autocommit(false).expect("autocommit off");
    exec(conn, "SELECT pg_advisory_xact_lock(746162)");
    for ddl in bplmigrate::sql::POSTGRES_TEST_SUPPORT_DDL {
        exec(conn, ddl);
    }
    exec(
        conn,
        r#"CREATE TABLE IF NOT EXISTS "Ens"."BusinessProcess" ("ID" serial PRIMARY KEY, "%ConfigName" varchar(128),
           "%IsCompleted" integer NOT NULL DEFAULT 0, "%SessionId" integer, "%TimeCreated" timestamp DEFAULT now())"#,
    );
    conn.commit().expect("commit shared DDL");
    conn.set_autocommit(true).expect("autocommit on");
}

/// One test's IRIS-shaped process: class `Demo.T<name>.BP`, schema `Demo_T<name>_BP`.
pub struct Fixture {
    pub name: String,
    pub class: String,
    pub schema: String,
    pub threads: u32,
    pub connect: String,
    pub conn: Connection<'static>,
}

/// One thread row to seed.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub state: &'a str,
    pub status: i64,
    pub handler_stack: &'a [&'a str],
    pub subroutine_stack: &'a [&'a str],
}

pub fn row<'a>(state: &'a str, status: i64) -> Row<'a> {
    Row {
        state,
        status,
        handler_stack: &[],
        subroutine_stack: &[],
    }
}

impl Fixture {
    /// A fresh schema with `threads` thread tables, their `__PendingResponses` child tables,
    /// the context and `Context__ResponseHandlers`; one disabled production item
    /// `T<name>Host` (PoolSize 1) running the class; no jobs; no history rows for the class.
    /// None when the test should skip (see [`connect_string`]).
    pub fn new(name: &str, threads: u32) -> Option<Fixture> {
        Some(Fixture::new_in(name, threads, connect_string(name)?))
    }

    /// Like [`Fixture::new`], in the database `connect` names (e.g. one made by
    /// [`fresh_database`]).
    pub fn new_in(name: &str, threads: u32, connect: String) -> Fixture {
        let conn = raw_connect(&connect);
        ensure_shared(&conn);
        let class = format!("Demo.T{name}.BP");
        let schema = format!("Demo_T{name}_BP");
        let fx = Fixture {
            name: name.to_string(),
            class,
            schema,
            threads,
            connect,
            conn,
        };
        fx.reset();
        fx
    }

    fn reset(&self) {
        let s = &self.schema;
        exec(
            &self.conn,
            &format!(r#"DROP SCHEMA IF EXISTS "{s}" CASCADE"#),
        );
        exec(&self.conn, &format!(r#"CREATE SCHEMA "{s}""#));
        for k in 1..=self.threads {
            exec(
                &self.conn,
                &format!(
                    r#"CREATE TABLE "{s}"."Thread{k}" ("ID" serial PRIMARY KEY, "%NextState" varchar(64),
                       "%Status" integer, "%Process" integer, "%HandlerStack" bytea, "%SubroutineStack" bytea,
                       "%SyncName" varchar(128), "%PendingTimeout" varchar(32),
                       "x__ClassName" varchar(256) DEFAULT '~{class}.Thread{k}~')"#,
                    class = self.class
                ),
            );
            exec(
                &self.conn,
                &format!(
                    r#"CREATE TABLE "{s}"."Thread{k}__PendingResponses" ("ID" serial PRIMARY KEY,
                       "Thread{k}" integer NOT NULL, "element_key" varchar(128), "PendingResponses" varchar(128))"#
                ),
            );
        }
        exec(
            &self.conn,
            &format!(
                r#"CREATE TABLE "{s}"."Context" ("ID" serial PRIMARY KEY, "%Process" integer, "Amount" integer,
                   "Note" varchar(200))"#
            ),
        );
        exec(
            &self.conn,
            &format!(
                r#"CREATE TABLE "{s}"."Context__ResponseHandlers" ("ID" serial PRIMARY KEY, "Context" integer NOT NULL,
                   "element_key" varchar(128), "_ResponseHandlers" varchar(128))"#
            ),
        );
        let c = lit(&self.class);
        exec(
            &self.conn,
            &format!(
                r#"DELETE FROM "Ens"."Job" WHERE "ConfigName" LIKE {}"#,
                lit(&format!("T{}%", self.name))
            ),
        );
        exec(
            &self.conn,
            &format!(r#"DELETE FROM "Ens_Config"."Item" WHERE "ClassName" = {c}"#),
        );
        exec(
            &self.conn,
            &format!(
                r#"DELETE FROM "Ens"."BusinessProcess" WHERE "%ConfigName" LIKE {}"#,
                lit(&format!("T{}%", self.name))
            ),
        );
        if scalar(
            &self.conn,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'BplMigrate' AND table_name = 'History'",
        ) > 0
        {
            exec(&self.conn, &format!(r#"DELETE FROM "BplMigrate"."History" WHERE "BplClass" = {c}"#));
        }
        if scalar(
            &self.conn,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'BplMigrate' AND table_name = 'Undo'",
        ) > 0
        {
            exec(&self.conn, &format!(r#"DELETE FROM "BplMigrate"."Undo" WHERE "BplClass" = {c}"#));
        }
        self.add_item("Demo.Production", &self.host(), 1, false);
    }

    /// The name of the fixture's production item.
    pub fn host(&self) -> String {
        format!("T{}Host", self.name)
    }

    pub fn table(&self, k: u32) -> SqlTable {
        SqlTable {
            schema: self.schema.clone(),
            table: format!("Thread{k}"),
        }
    }

    pub fn context_table(&self) -> SqlTable {
        SqlTable {
            schema: self.schema.clone(),
            table: "Context".into(),
        }
    }

    pub fn handler_table(&self) -> SqlTable {
        SqlTable {
            schema: self.schema.clone(),
            table: "Context__ResponseHandlers".into(),
        }
    }

    pub fn exec(&self, sql: &str) {
        exec(&self.conn, sql);
    }

    pub fn add_item(&self, production: &str, name: &str, pool_size: i64, enabled: bool) {
        self.exec(&format!(
            r#"INSERT INTO "Ens_Config"."Item" ("Production", "Name", "ClassName", "PoolSize", "Enabled")
               VALUES ({}, {}, {}, {pool_size}, {})"#,
            lit(production),
            lit(name),
            lit(&self.class),
            i32::from(enabled)
        ));
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.exec(&format!(
            r#"UPDATE "Ens_Config"."Item" SET "Enabled" = {} WHERE "ClassName" = {}"#,
            i32::from(enabled),
            lit(&self.class)
        ));
    }

    pub fn add_job(&self, job: &str, state: &str) {
        self.exec(&format!(
            r#"INSERT INTO "Ens"."Job" ("Job", "ConfigName", "State") VALUES ({}, {}, {})"#,
            lit(job),
            lit(&self.host()),
            lit(state)
        ));
    }

    /// Inserts thread rows into `Thread<k>` (each with its own business-process row); returns
    /// their ids in order.
    pub fn seed(&self, k: u32, seed: &[Row<'_>]) -> Vec<i64> {
        let mut ids = Vec::new();
        for r in seed {
            let bp = scalar(
                &self.conn,
                &format!(
                    r#"INSERT INTO "Ens"."BusinessProcess" ("%ConfigName", "%IsCompleted", "%SessionId")
                       VALUES ({}, 0, 1) RETURNING "ID""#,
                    lit(&self.host())
                ),
            );
            let id = scalar(
                &self.conn,
                &format!(
                    r#"INSERT INTO "{}"."Thread{k}" ("%NextState", "%Status", "%Process", "%HandlerStack",
                       "%SubroutineStack", "%SyncName") VALUES ({}, {}, {bp}, {}, {}, NULL) RETURNING "ID""#,
                    self.schema,
                    lit(r.state),
                    r.status,
                    stack_sql(r.handler_stack),
                    stack_sql(r.subroutine_stack)
                ),
            );
            ids.push(id);
        }
        ids
    }

    /// `n` rows at each state (status 3, no stacks), inserted in one statement per state.
    pub fn seed_bulk(&self, k: u32, states: &[&str], n: i64) {
        for s in states {
            self.exec(&format!(
                r#"INSERT INTO "{}"."Thread{k}" ("%NextState", "%Status", "%Process")
                   SELECT {}, 3, g FROM generate_series(1, {n}) g"#,
                self.schema,
                lit(s)
            ));
        }
    }

    pub fn add_pending(&self, k: u32, thread_id: i64, key: &str) {
        self.exec(&format!(
            r#"INSERT INTO "{}"."Thread{k}__PendingResponses" ("Thread{k}", "element_key", "PendingResponses")
               VALUES ({thread_id}, {}, '1')"#,
            self.schema,
            lit(key)
        ));
    }

    /// A context row with one response handler per (call, handler).
    pub fn add_context(&self, handlers: &[(&str, &str)]) -> i64 {
        let id = scalar(
            &self.conn,
            &format!(
                r#"INSERT INTO "{}"."Context" ("%Process", "Amount") VALUES (1, 100) RETURNING "ID""#,
                self.schema
            ),
        );
        for (call, h) in handlers {
            self.exec(&format!(
                r#"INSERT INTO "{}"."Context__ResponseHandlers" ("Context", "element_key", "_ResponseHandlers")
                   VALUES ({id}, {}, {})"#,
                self.schema,
                lit(call),
                lit(h)
            ));
        }
        id
    }

    /// (`%NextState`, `%Status`, handler stack, subroutine stack) of every row of `Thread<k>`
    /// by id; stacks decoded from the raw bytes.
    pub fn states(&self, k: u32) -> Vec<(String, i64, Vec<String>, Vec<String>)> {
        rows(
            &self.conn,
            &format!(
                r#"SELECT "%NextState", "%Status", encode("%HandlerStack", 'hex'), encode("%SubroutineStack", 'hex')
                   FROM "{}"."Thread{k}" ORDER BY "ID""#,
                self.schema
            ),
        )
        .into_iter()
        .map(|r| {
            let decode = |h: &Option<String>| -> Vec<String> {
                let Some(h) = h else { return Vec::new() };
                let bytes: Vec<u8> =
                    (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect();
                apply::decode_list(&bytes).expect("a $List")
            };
            (
                r[0].clone().unwrap_or_default(),
                r[1].as_deref().and_then(|s| s.parse().ok()).unwrap_or(-1),
                decode(&r[2]),
                decode(&r[3]),
            )
        })
        .collect()
    }

    /// The raw stack bytes (hex) of one row: (`%HandlerStack`, `%SubroutineStack`).
    pub fn stack_hex(&self, k: u32, id: i64) -> (Option<String>, Option<String>) {
        let r = rows(
            &self.conn,
            &format!(
                r#"SELECT encode("%HandlerStack", 'hex'), encode("%SubroutineStack", 'hex') FROM "{}"."Thread{k}"
                   WHERE "ID" = {id}"#,
                self.schema
            ),
        );
        (r[0][0].clone(), r[0][1].clone())
    }

    pub fn handlers(&self) -> Vec<(String, String)> {
        rows(
            &self.conn,
            &format!(
                r#"SELECT "element_key", "_ResponseHandlers" FROM "{}"."Context__ResponseHandlers" ORDER BY "ID""#,
                self.schema
            ),
        )
        .into_iter()
        .map(|r| (r[0].clone().unwrap_or_default(), r[1].clone().unwrap_or_default()))
        .collect()
    }

    /// Every row of every table of the schema, plus the class's items and history rows: equal
    /// snapshots mean nothing changed.
    pub fn snapshot(&self) -> Vec<(String, Vec<Vec<Option<String>>>)> {
        let tables = rows(
            &self.conn,
            &format!(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = {} ORDER BY table_name",
                lit(&self.schema)
            ),
        );
        let mut out = Vec::new();
        for t in tables {
            let t = t[0].clone().unwrap_or_default();
            out.push((
                t.clone(),
                rows(
                    &self.conn,
                    &format!(r#"SELECT * FROM "{}"."{t}" ORDER BY "ID""#, self.schema),
                ),
            ));
        }
        out.push((
            "Ens_Config.Item".into(),
            rows(
                &self.conn,
                &format!(
                    r#"SELECT "Production", "Name", "PoolSize", "Enabled" FROM "Ens_Config"."Item" WHERE "ClassName" = {}
                       ORDER BY 1, 2"#,
                    lit(&self.class)
                ),
            ),
        ));
        out.push(("history".into(), self.history()));
        out
    }

    /// The history rows of the class: (Seq, PlanId, Direction, Outcome).
    pub fn history(&self) -> Vec<Vec<Option<String>>> {
        if scalar(
            &self.conn,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'BplMigrate' AND table_name = 'History'",
        ) == 0
        {
            return Vec::new();
        }
        rows(
            &self.conn,
            &format!(
                r#"SELECT "Seq", "PlanId", "Direction", "Outcome" FROM "BplMigrate"."History" WHERE "BplClass" = {}
                   ORDER BY "Seq""#,
                lit(&self.class)
            ),
        )
    }

    /// Applies `m` with its own connection.
    pub fn apply(&self, m: &Migration, opts: &ApplyOptions) -> Result<ApplyReport, ApplyError> {
        let mut db = apply::Db::connect(&self.connect)?;
        apply::apply(&mut db, m, opts, &Silent)
    }

    pub fn apply_plan(&self, m: &Migration) -> Result<ApplyReport, ApplyError> {
        self.apply(
            m,
            &ApplyOptions {
                applied_by: format!("test {}", self.name),
                ..ApplyOptions::default()
            },
        )
    }

    pub fn revert_plan(&self, m: &Migration) -> Result<ApplyReport, ApplyError> {
        self.apply(
            m,
            &ApplyOptions {
                direction: Direction::Revert,
                applied_by: format!("test {}", self.name),
                ..ApplyOptions::default()
            },
        )
    }

    pub fn dry_run(&self, m: &Migration) -> Result<ApplyReport, ApplyError> {
        self.apply(
            m,
            &ApplyOptions {
                dry_run: true,
                ..ApplyOptions::default()
            },
        )
    }

    /// Writes the plan as a migration folder (postgres dialect) under a new temp dir.
    pub fn folder(&self, plan: &MigrationPlan) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let opts = bplmigrate::sql::FolderOptions {
            dialect: bplmigrate::sql::Dialect::Postgres,
            objectscript: false,
        };
        let dir = bplmigrate::sql::write_migration_folder(plan, tmp.path(), &opts)
            .expect("write migration folder");
        (tmp, dir)
    }
}

/// One old state of a hand-built plan.
#[derive(Debug, Clone, Default)]
pub struct StateSpec {
    pub old: String,
    pub new: Option<String>,
    pub old_handler_stack: Vec<String>,
    pub new_handler_stack: Vec<String>,
    pub old_subroutine_stack: Vec<String>,
    pub new_subroutine_stack: Vec<String>,
}

/// `S5 -> S7` (or `S6 -> removed` with `None`).
pub fn st(old: &str, new: Option<&str>) -> StateSpec {
    StateSpec {
        old: old.into(),
        new: new.map(str::to_string),
        ..StateSpec::default()
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl StateSpec {
    pub fn handler_stack(mut self, old: &[&str], new: &[&str]) -> Self {
        self.old_handler_stack = strings(old);
        self.new_handler_stack = strings(new);
        self
    }
    pub fn subroutine_stack(mut self, old: &[&str], new: &[&str]) -> Self {
        self.old_subroutine_stack = strings(old);
        self.new_subroutine_stack = strings(new);
        self
    }
}

fn activity(n: u32) -> serde_json::Value {
    serde_json::json!({ "id": n, "type": "sync", "name": format!("Wait{n}"), "line": n, "column": 5 })
}

fn sha(text: &str) -> String {
    bplmigrate::bpl::sha256_hex(text.as_bytes())
}

fn table_json(t: &SqlTable) -> serde_json::Value {
    serde_json::to_value(t).expect("a table serializes")
}

/// A hand-built plan for the fixture: per thread number its state mappings, the handler
/// mappings (old, new, call). Preconditions: host disabled, no live job, no rows at removed
/// states. `variant` makes distinct plans (and source hashes) for the same fixture. Built
/// through `plan.json` so fields later added to the format (all optional) need no change here.
pub fn plan(
    fx: &Fixture,
    variant: &str,
    threads: &[(u32, Vec<StateSpec>)],
    handlers: &[(&str, Option<&str>, &str)],
) -> MigrationPlan {
    use serde_json::json;
    let mut preconditions = vec![
        serde_json::to_value(Precondition::HostDisabled {
            class: fx.class.clone(),
        })
        .expect("json"),
        serde_json::to_value(Precondition::NoLiveJob {
            class: fx.class.clone(),
        })
        .expect("json"),
    ];
    let threads: Vec<serde_json::Value> = threads
        .iter()
        .map(|(k, states)| {
            let table = fx.table(*k);
            let states: Vec<serde_json::Value> = states
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let n = u32::try_from(i).unwrap_or(0) + 1;
                    if s.new.is_none() {
                        preconditions.push(
                            serde_json::to_value(Precondition::NoRowsAtState {
                                table: table.clone(),
                                state: s.old.clone(),
                                reason: "the activity was removed".into(),
                            })
                            .expect("json"),
                        );
                    }
                    let change = match &s.new {
                        None => "removed",
                        Some(x) if x == &s.old => "unchanged",
                        Some(_) => "renumbered",
                    };
                    json!({
                        "old": s.old, "new": s.new, "role": "SYNC_WAIT",
                        "old_activity": activity(n),
                        "new_activity": s.new.as_ref().map(|_| activity(n)),
                        "wait": true, "change": change,
                        "old_handler_stack": s.old_handler_stack, "new_handler_stack": s.new_handler_stack,
                        "old_subroutine_stack": s.old_subroutine_stack, "new_subroutine_stack": s.new_subroutine_stack,
                        "via": "test"
                    })
                })
                .collect();
            json!({
                "old_class": format!("{}.Thread{k}", fx.class), "old_table": table_json(&table),
                "new_class": format!("{}.Thread{k}", fx.class), "new_table": table_json(&table),
                "states": states
            })
        })
        .collect();
    let old_sha = sha(&format!("old {} {variant}", fx.class));
    let new_sha = sha(&format!("new {} {variant}", fx.class));
    let source = |which: &str, sha256: &str| {
        json!({ "origin": format!("{which}/{}.cls", fx.class), "sha256": sha256, "class": fx.class,
                "package": fx.class, "version": null })
    };
    let handlers: Vec<serde_json::Value> = handlers
        .iter()
        .map(|(o, n, call)| json!({ "old": o, "new": n, "call": call }))
        .collect();
    let v = json!({
        "schema_version": PLAN_SCHEMA_VERSION, "plan_id": "", "tool_version": "test", "compiler": "current",
        "old": source("old", &old_sha), "new": source("new", &new_sha), "verdict": "migratable",
        "threads": threads, "response_handlers": handlers,
        "response_handler_table": table_json(&fx.handler_table()), "context_table": table_json(&fx.context_table()),
        "context_properties": [], "preconditions": preconditions, "findings": [], "overrides": []
    });
    let mut p: MigrationPlan = serde_json::from_value(v).expect("a valid plan");
    p.plan_id = bplmigrate::plan::plan_id(&p).expect("plan id");
    p
}

/// A plan that starts where `first` ends (its old hash is `first`'s new hash).
pub fn chain(first: &MigrationPlan, mut next: MigrationPlan) -> MigrationPlan {
    next.old.sha256 = first.new.sha256.clone();
    next.plan_id = bplmigrate::plan::plan_id(&next).expect("plan id");
    next
}

/// The refusals of an error (panics when it is not a refusal).
pub fn refusals(r: Result<ApplyReport, ApplyError>) -> Vec<apply::Refusal> {
    match r {
        Err(ApplyError::Refused { refusals }) => refusals,
        Err(e) => panic!("expected a refusal, got error: {e}"),
        Ok(rep) => panic!("expected a refusal, got a report: {rep:?}"),
    }
}

/// Creates every table a plan reads or writes that does not exist yet (thread tables, their
/// `__PendingResponses`, the context with its added properties, `Context__ResponseHandlers`),
/// in the schemas the plan names; schemas other than the fixture's own are dropped first.
/// For plans built from real BPL pairs whose tables were moved into the fixture's namespace.
pub fn create_plan_tables(fx: &Fixture, plan: &MigrationPlan) {
    let mut schemas: Vec<String> = Vec::new();
    let mut threads: Vec<SqlTable> = Vec::new();
    for t in &plan.threads {
        threads.push(t.old_table.clone());
        threads.extend(t.new_table.clone());
    }
    threads.sort();
    threads.dedup();
    for t in threads
        .iter()
        .chain([&plan.context_table, &plan.response_handler_table])
    {
        if t.schema != fx.schema && !schemas.contains(&t.schema) {
            schemas.push(t.schema.clone());
            fx.exec(&format!(r#"DROP SCHEMA IF EXISTS "{}" CASCADE"#, t.schema));
            fx.exec(&format!(r#"CREATE SCHEMA "{}""#, t.schema));
        }
    }
    for t in &threads {
        fx.exec(&format!(
            r#"CREATE TABLE IF NOT EXISTS "{}"."{}" ("ID" serial PRIMARY KEY, "%NextState" varchar(64),
               "%Status" integer, "%Process" integer, "%HandlerStack" bytea, "%SubroutineStack" bytea,
               "%SyncName" varchar(128), "%PendingTimeout" varchar(32))"#,
            t.schema, t.table
        ));
        fx.exec(&format!(
            r#"CREATE TABLE IF NOT EXISTS "{}"."{}__PendingResponses" ("ID" serial PRIMARY KEY,
               "{}" integer NOT NULL, "element_key" varchar(128), "PendingResponses" varchar(128))"#,
            t.schema, t.table, t.table
        ));
    }
    let c = &plan.context_table;
    fx.exec(&format!(
        r#"CREATE TABLE IF NOT EXISTS "{}"."{}" ("ID" serial PRIMARY KEY, "%Process" integer)"#,
        c.schema, c.table
    ));
    for p in &plan.context_properties {
        fx.exec(&format!(
            r#"ALTER TABLE "{}"."{}" ADD COLUMN IF NOT EXISTS "{}" varchar(200)"#,
            c.schema, c.table, p.name
        ));
    }
    let h = &plan.response_handler_table;
    fx.exec(&format!(
        r#"CREATE TABLE IF NOT EXISTS "{}"."{}" ("ID" serial PRIMARY KEY, "Context" integer NOT NULL,
           "element_key" varchar(128), "_ResponseHandlers" varchar(128))"#,
        h.schema, h.table
    ));
}

/// (`ID`, `%NextState`, `%Status`, handler stack, subroutine stack) of one thread row.
pub type ThreadRow = (i64, String, i64, Vec<String>, Vec<String>);

/// Every row of a thread table, by id.
pub fn thread_rows(fx: &Fixture, t: &SqlTable) -> Vec<ThreadRow> {
    rows(
        &fx.conn,
        &format!(
            r#"SELECT "ID", "%NextState", "%Status", encode("%HandlerStack", 'hex'), encode("%SubroutineStack", 'hex')
               FROM "{}"."{}" ORDER BY "ID""#,
            t.schema, t.table
        ),
    )
    .into_iter()
    .map(|r| {
        let decode = |h: &Option<String>| -> Vec<String> {
            let Some(h) = h else { return Vec::new() };
            let bytes: Vec<u8> = (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect();
            apply::decode_list(&bytes).expect("a $List")
        };
        let num = |v: &Option<String>| v.as_deref().and_then(|s| s.parse().ok()).unwrap_or(-1);
        (num(&r[0]), r[1].clone().unwrap_or_default(), num(&r[2]), decode(&r[3]), decode(&r[4]))
    })
    .collect()
}

/// A new, empty database next to the test database (the rig's role has CREATEDB), for tests
/// that need a database where bplmigrate never ran. Returns its connection string; the
/// database is dropped first if a previous run left it behind.
pub fn fresh_database(base: &str, name: &str) -> String {
    let admin = raw_connect(base);
    exec(&admin, &format!(r#"DROP DATABASE IF EXISTS "{name}""#));
    exec(&admin, &format!(r#"CREATE DATABASE "{name}""#));
    base.split(';')
        .map(|part| {
            if part
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("database=")
            {
                format!("Database={name}")
            } else {
                part.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

/// Drops a database made by [`fresh_database`].
pub fn drop_database(base: &str, name: &str) {
    let admin = raw_connect(base);
    exec(
        &admin,
        &format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#),
    );
}

/// The setup many tests share: one thread table with a waiting row at S5 and one at S7, and
/// plan "a", which swaps the two states. None when the test should skip.
pub fn swap_s5_s7(name: &str) -> Option<(Fixture, MigrationPlan)> {
    let fx = Fixture::new(name, 1)?;
    fx.seed(1, &[row("S5", 3), row("S7", 3)]);
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S7")), st("S7", Some("S5"))])],
        &[],
    );
    Some((fx, p))
}

/// The plan of a fixture pair, moved into the fixture's class and schema.
pub fn fixture_plan(dir: &std::path::Path, fx: &Fixture) -> MigrationPlan {
    let s = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let old = bplmigrate::bpl::load(&s("old.cls"), &bplmigrate::bpl::LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let new = bplmigrate::bpl::load(&s("new.cls"), &bplmigrate::bpl::LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let oc = bplmigrate::states::compile(&old, bplmigrate::states::Compiler::Current)
        .unwrap_or_else(|e| panic!("{e}"));
    let nc = bplmigrate::states::compile(&new, bplmigrate::states::Compiler::Current)
        .unwrap_or_else(|e| panic!("{e}"));
    let ov = dir.join("overrides.toml");
    let ov = ov.exists().then(|| {
        bplmigrate::plan::Overrides::parse(
            &s("overrides.toml"),
            &std::fs::read_to_string(&ov).unwrap(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    });
    let planned = bplmigrate::plan::build(&old, &new, &oc, &nc, ov.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let class = planned.old.class.clone();
    let json = serde_json::to_string(&planned)
        .unwrap()
        .replace(&format!("\"{class}"), &format!("\"{}", fx.class))
        .replace(
            &format!("\"{}", class.replace('.', "_")),
            &format!("\"{}", fx.schema),
        );
    let mut p: MigrationPlan = serde_json::from_str(&json).unwrap();
    p.plan_id = bplmigrate::plan::plan_id(&p).unwrap();
    p
}
