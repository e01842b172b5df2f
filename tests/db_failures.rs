//! Failures mid-apply and concurrency, on a real database: a connection killed while the
//! rewrite runs, two applies at once.

mod support;

use bplmigrate::apply::{self, ApplyError, ApplyOptions, ErrorClass, Migration, Refusal, Silent};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use support::{exec, plan, raw_connect, refusals, row, rows, st, swap_s5_s7, Fixture};

/// Creates `BplMigrate.History` when no apply has yet (serialized like the tool does it).
fn ensure_history(fx: &Fixture) {
    let c = raw_connect(&fx.connect);
    c.set_autocommit(false).unwrap();
    exec(&c, "SELECT pg_advisory_xact_lock(7093288628515766273)");
    exec(&c, r#"CREATE SCHEMA IF NOT EXISTS "BplMigrate""#);
    let n = support::scalar(
        &c,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'BplMigrate' AND table_name = 'History'",
    );
    if n == 0 {
        let ddl: String = (apply::MIGRATIONS[0].ddl)(bplmigrate::sql::Dialect::Postgres)
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        exec(&c, ddl.trim().trim_end_matches(';'));
    }
    c.commit().unwrap();
}

/// Holds `LOCK TABLE "BplMigrate"."History" IN SHARE MODE`: an apply runs its rewrite (its own
/// tables are locked by it) and then waits to write its history row, inside its transaction.
/// Other tests' applies wait too while it is held, so hold it briefly.
fn block_history(fx: &Fixture) -> odbc_api::Connection<'static> {
    ensure_history(fx);
    let c = raw_connect(&fx.connect);
    c.set_autocommit(false).unwrap();
    exec(&c, r#"LOCK TABLE "BplMigrate"."History" IN SHARE MODE"#);
    c
}

/// The backend id of an apply session that waits on a lock while writing its history row
/// for the fixture's class (after its rewrite ran).
fn waiting_update(fx: &Fixture) -> i64 {
    let conn = raw_connect(&fx.connect);
    // The statement is parameterized: match the session through its locks on our tables.
    let sql = format!(
        r#"SELECT a.pid FROM pg_stat_activity a WHERE a.pid <> pg_backend_pid() AND a.wait_event_type = 'Lock'
           AND a.query LIKE '%INSERT INTO "BplMigrate"."History"%'
           AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE l.pid = a.pid AND l.granted AND n.nspname = '{}')"#,
        fx.schema
    );
    let start = Instant::now();
    loop {
        if let Some(pid) = rows(&conn, &sql).first().and_then(|r| r[0].clone()) {
            return pid.parse().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no UPDATE of {} started waiting within 30 s",
            fx.schema
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn opts(name: &str) -> ApplyOptions {
    ApplyOptions {
        applied_by: format!("test {name}"),
        ..ApplyOptions::default()
    }
}

fn apply_in_thread(
    fx: &Fixture,
    m: &Migration,
) -> thread::JoinHandle<Result<apply::ApplyReport, ApplyError>> {
    let connect = fx.connect.clone();
    let m = m.clone();
    let o = opts(&fx.name);
    thread::spawn(move || {
        let mut db = apply::Db::connect(&connect)?;
        apply::apply(&mut db, &m, &o, &Silent)
    })
}

#[test]
fn a_connection_killed_mid_apply_changes_nothing_and_a_rerun_works() {
    let Some(fx) = Fixture::new("Killed", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3), row("S7", 3), row("S5", 3)]);
    fx.add_context(&[("BankUS", "OnResponse1")]);
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S7")), st("S7", Some("S5"))])],
        &[("OnResponse1", Some("OnResponse2"), "BankUS")],
    );
    let m = Migration::from_plan(p).unwrap();
    // The history table exists before the race (its creation is not the subject).
    fx.dry_run(&m).unwrap();
    let before = fx.snapshot();
    let blocker = block_history(&fx);
    let handle = apply_in_thread(&fx, &m);
    let pid = waiting_update(&fx);
    let killer = raw_connect(&fx.connect);
    exec(&killer, &format!("SELECT pg_terminate_backend({pid})"));
    blocker.rollback().unwrap();
    let result = handle.join().expect("apply thread");
    match &result {
        Err(ApplyError::Database { failure, .. }) => {
            assert!(failure.connection_lost, "{failure:?}")
        }
        other => panic!("expected a database failure, got {other:?}"),
    }
    let e = result.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Database);
    assert!(e.to_string().contains("nothing changed"), "{e}");
    assert_eq!(
        fx.snapshot(),
        before,
        "a killed apply must leave every row as it was"
    );
    // The same plan runs cleanly afterwards.
    let report = fx.apply_plan(&m).unwrap();
    assert_eq!(report.thread_rows_moved(), 3);
    assert_eq!(report.rows_changed(), 4, "3 thread rows and 1 handler row");
    assert_eq!(
        fx.states(1).into_iter().map(|r| r.0).collect::<Vec<_>>(),
        ["S7", "S5", "S7"]
    );
}

/// Records every lock-wait report.
#[derive(Default)]
struct Waits(std::sync::Mutex<Vec<String>>);

impl apply::Progress for Waits {
    fn event(&self, e: &apply::Event<'_>) {
        if let apply::Event::Waiting {
            tables, holders, ..
        } = e
        {
            let t: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
            self.0
                .lock()
                .unwrap()
                .push(format!("{} | {}", t.join(","), holders.join("; ")));
        }
    }
}

#[test]
fn a_second_apply_waits_a_bounded_time_names_the_holder_and_refuses() {
    let Some((fx, p)) = swap_s5_s7("Locked") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    // Make sure the history table exists before the race (its creation is not the subject).
    fx.dry_run(&m).unwrap();
    let blocker = block_history(&fx);
    let first = apply_in_thread(&fx, &m);
    // The first apply holds its table locks and waits to write its history row.
    let holder = waiting_update(&fx);
    let before = fx.states(1);
    let waits = Waits::default();
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    let o = ApplyOptions {
        lock_timeout_ms: 1500,
        ..opts(&fx.name)
    };
    let r = refusals(apply::apply(&mut db, &m, &o, &waits));
    match &r[..] {
        [Refusal::LockTimeout {
            tables,
            timeout_ms,
            holders,
        }] => {
            assert_eq!(*timeout_ms, 1500);
            assert!(tables.contains(&fx.table(1)), "{tables:?}");
            assert!(
                holders.iter().any(|h| h.starts_with(&format!(
                    "session {holder} (ExclusiveLock) on {}",
                    fx.table(1)
                ))),
                "{holders:?}"
            );
        }
        other => panic!("expected a lock timeout, got {other:?}"),
    }
    let reported = waits.0.lock().unwrap().clone();
    assert!(!reported.is_empty(), "the wait was not reported");
    assert!(
        reported[0].contains(&format!("session {holder} ")),
        "{reported:?}"
    );
    assert_eq!(fx.states(1), before, "a refused apply changed rows");
    blocker.rollback().unwrap();
    let report = first.join().expect("apply thread").unwrap();
    assert_eq!(report.rows_changed(), 2);
    assert_eq!(
        fx.states(1).into_iter().map(|r| r.0).collect::<Vec<_>>(),
        ["S7", "S5"]
    );
    let r = refusals(fx.apply_plan(&m));
    assert!(matches!(r[..], [Refusal::AlreadyApplied { .. }]), "{r:?}");
}

#[test]
fn two_applies_started_together_one_wins_one_is_refused() {
    let Some((fx, p)) = swap_s5_s7("Race") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    fx.dry_run(&m).unwrap();
    let barrier = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (connect, m, b, o) = (
                fx.connect.clone(),
                m.clone(),
                barrier.clone(),
                opts(&fx.name),
            );
            thread::spawn(move || {
                let mut db = apply::Db::connect(&connect)?;
                b.wait();
                apply::apply(&mut db, &m, &o, &Silent)
            })
        })
        .collect();
    let results: Vec<_> = handles
        .into_iter()
        .map(|h| h.join().expect("apply thread"))
        .collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 1, "{results:?}");
    for r in &results {
        if let Err(e) = r {
            assert!(
                matches!(
                    e.refusals(),
                    [Refusal::Locked { .. }] | [Refusal::AlreadyApplied { .. }]
                ),
                "unexpected error: {e}"
            );
        }
    }
    // Applied exactly once: the swap did not run twice.
    assert_eq!(
        fx.states(1).into_iter().map(|r| r.0).collect::<Vec<_>>(),
        ["S7", "S5"]
    );
    assert_eq!(fx.history().len(), 1);
}

#[test]
fn a_wrong_password_is_never_printed() {
    let Some(fx) = Fixture::new("BadPwd", 1) else {
        return;
    };
    let secret = "NotThePassword-91x";
    let mut parts: Vec<String> = fx
        .connect
        .split(';')
        .filter(|p| !p.trim().is_empty() && !p.to_ascii_lowercase().starts_with("pwd="))
        .map(str::to_string)
        .collect();
    parts.push(format!("Pwd={secret}"));
    let bad = parts.join(";") + ";";
    let e = apply::Db::connect(&bad).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Database);
    assert!(!e.to_string().contains(secret), "{e}");
    assert!(!format!("{e:?}").contains(secret), "{e:?}");
}

/// The first apply on a database creates `BplMigrate.History`, but only once every guard has
/// passed: a refused first apply leaves the database exactly as it was, bookkeeping included.
#[test]
fn a_refused_first_apply_creates_no_history_table() {
    let Some(base) = support::connect_string("a_refused_first_apply_creates_no_history_table")
    else {
        return;
    };
    let db_name = format!("bplm_first_{}", std::process::id());
    let connect = support::fresh_database(&base, &db_name);
    let fx = Fixture::new_in("FirstApply", 1, connect);
    fx.seed(1, &[row("S5", 3)]);
    fx.set_enabled(true);
    let history_tables = || {
        support::scalar(
            &fx.conn,
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'BplMigrate'",
        )
    };
    assert_eq!(history_tables(), 0);
    let before = fx.snapshot();
    let m = Migration::from_plan(plan(&fx, "a", &[(1, vec![st("S5", Some("S7"))])], &[])).unwrap();
    let r = refusals(fx.apply_plan(&m));
    assert!(matches!(&r[..], [Refusal::HostEnabled { .. }]), "{r:?}");
    assert_eq!(
        history_tables(),
        0,
        "a refused first apply created the history table"
    );
    assert_eq!(fx.snapshot(), before);
    // Once the host is disabled the same apply runs and records itself.
    fx.set_enabled(false);
    fx.apply_plan(&m).unwrap();
    assert_eq!(history_tables(), 1);
    drop(fx);
    support::drop_database(&base, &db_name);
}

/// Waits (at most 30 s) until a session other than `conn`'s runs `pg_sleep` (a slow trigger
/// holding an apply's transaction open).
fn wait_for_sleeper(conn: &odbc_api::Connection<'_>) {
    let start = Instant::now();
    while rows(
        conn,
        "SELECT pid FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()",
    )
    .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no apply reached its slow rewrite within 30 s"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// The host guards hold at COMMIT (review round 13, D2). `Ens_Config.Item` is locked in share
/// mode with the plan's tables, so a session enabling the item while the rewrite runs waits for
/// the apply; a job cannot be locked, so one that comes alive meanwhile is found by the count
/// right before COMMIT: the apply rolls back and refuses (exit 3) saying so, nothing changed.
/// Runs in a database of its own: its apply holds `Ens_Config.Item` for seconds.
#[test]
fn hosts_that_wake_up_during_the_apply_roll_it_back() {
    let Some(base) = support::connect_string("hosts_that_wake_up_during_the_apply_roll_it_back")
    else {
        return;
    };
    let db_name = format!("bplm_wake_{}", std::process::id());
    let connect = support::fresh_database(&base, &db_name);
    let fx = Fixture::new_in("Wake", 1, connect);
    fx.seed(1, &[row("S5", 3), row("S7", 3)]);
    let m = Migration::from_plan(plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S7")), st("S7", Some("S5"))])],
        &[],
    ))
    .unwrap();
    // A slow rewrite (a large table, README: ~10 s for 1M rows): the apply's transaction stays
    // open while the trigger sleeps.
    fx.exec(
        "CREATE FUNCTION slow_rewrite() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN PERFORM pg_sleep(2); RETURN NULL; END$$",
    );
    fx.exec(&format!(
        r#"CREATE TRIGGER slow AFTER UPDATE ON "{}"."Thread1" FOR EACH STATEMENT EXECUTE FUNCTION slow_rewrite()"#,
        fx.schema
    ));
    let before = fx.snapshot();
    let handle = apply_in_thread(&fx, &m);
    let other = raw_connect(&fx.connect);
    wait_for_sleeper(&other);
    // Enabling the item waits for the apply (its share lock): here it gives up after 300 ms.
    exec(&other, "SET lock_timeout = '300ms'");
    let enable = format!(
        r#"UPDATE "Ens_Config"."Item" SET "Enabled" = 1 WHERE "ClassName" = {}"#,
        support::lit(&fx.class)
    );
    let e = match other.execute(&enable, (), None) {
        Ok(_) => panic!("the item was enabled while the apply held Ens_Config.Item"),
        Err(e) => e,
    };
    assert!(e.to_string().contains("lock timeout"), "{e}");
    // A job comes alive meanwhile (no lock stops that).
    fx.add_job("4711", "Alive");
    let e = handle.join().expect("apply thread").unwrap_err();
    assert_eq!(e.class(), ErrorClass::Refused, "{e}");
    let text = e.to_string();
    assert!(
        matches!(e.refusals(), [Refusal::QuietLost { found, run: "apply" }] if found.len() == 1 && found[0].contains("job 4711")),
        "{text}"
    );
    assert!(
        text.contains("stopped being quiet while the apply ran")
            && text.contains("rolled back instead of committed"),
        "{text}"
    );
    assert_eq!(fx.snapshot(), before, "a refused apply changed rows");
    assert!(fx.history().is_empty(), "{:?}", fx.history());
    // Once the job is gone the same apply commits.
    fx.exec(r#"DELETE FROM "Ens"."Job" WHERE "Job" = '4711'"#);
    fx.apply_plan(&m).unwrap();
    assert_eq!(
        fx.states(1).into_iter().map(|r| r.0).collect::<Vec<_>>(),
        ["S7", "S5"]
    );
    drop(other);
    drop(fx);
    support::drop_database(&base, &db_name);
}

/// Every wait is bounded by `--lock-timeout` (review round 13, D5): while another session holds
/// `Ens_Config.Item`, the apply's first read of it (before any lock of its own) gives up after
/// the timeout and says so (exit 3), instead of waiting without limit. A database of its own:
/// the holder blocks every reader of the table.
#[test]
fn the_lock_timeout_bounds_the_first_read_of_the_items() {
    let Some(base) = support::connect_string("the_lock_timeout_bounds_the_first_read_of_the_items")
    else {
        return;
    };
    let db_name = format!("bplm_itemwait_{}", std::process::id());
    let connect = support::fresh_database(&base, &db_name);
    let fx = Fixture::new_in("ItemWait", 1, connect);
    fx.seed(1, &[row("S5", 3)]);
    let m = Migration::from_plan(plan(&fx, "a", &[(1, vec![st("S5", Some("S7"))])], &[])).unwrap();
    let holder = raw_connect(&fx.connect);
    holder.set_autocommit(false).unwrap();
    exec(
        &holder,
        r#"LOCK TABLE "Ens_Config"."Item" IN ACCESS EXCLUSIVE MODE"#,
    );
    for dry_run in [true, false] {
        let start = Instant::now();
        let e = fx
            .apply(
                &m,
                &ApplyOptions {
                    dry_run,
                    lock_timeout_ms: 600,
                    ..opts(&fx.name)
                },
            )
            .unwrap_err();
        let waited = start.elapsed();
        assert!(waited < Duration::from_secs(5), "waited {waited:?}");
        assert_eq!(e.class(), ErrorClass::Refused, "{e}");
        let text = e.to_string();
        assert!(
            text.contains("timed out after 0.6 s (--lock-timeout) waiting for another session's lock during read Ens_Config.Item"),
            "{text}"
        );
    }
    holder.rollback().unwrap();
    fx.apply_plan(&m).unwrap();
    drop(holder);
    drop(fx);
    support::drop_database(&base, &db_name);
}

/// Review 15, D3/D4: with the history table locked by another session, `status`, `info` and
/// `repair` give up after their fixed bound (`DEFAULT_LOCK_TIMEOUT_MS`) with a lock-timeout
/// refusal instead of waiting without limit, and `apply` after its `--lock-timeout` once (the
/// probe whether the table exists no longer takes a timeout for a missing table). Nothing
/// changes.
#[test]
fn a_locked_history_table_bounds_every_reader() {
    let Some(base) = support::connect_string("a_locked_history_table_bounds_every_reader") else {
        return;
    };
    let db_name = format!("bplm_historywait_{}", std::process::id());
    let connect = support::fresh_database(&base, &db_name);
    let fx = Fixture::new_in("HistoryWait", 1, connect);
    fx.seed(1, &[row("S5", 3)]);
    let m = Migration::from_plan(plan(&fx, "a", &[(1, vec![st("S5", Some("S7"))])], &[])).unwrap();
    fx.apply_plan(&m).unwrap();
    let holder = raw_connect(&fx.connect);
    holder.set_autocommit(false).unwrap();
    exec(
        &holder,
        r#"LOCK TABLE "BplMigrate"."History" IN ACCESS EXCLUSIVE MODE"#,
    );
    let bound = Duration::from_millis(apply::DEFAULT_LOCK_TIMEOUT_MS);
    let timed_out = |what: &str, r: Result<(), ApplyError>| {
        let e = r.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Refused, "{what}: {e}");
        let text = e.to_string();
        assert!(
            text.contains("waiting for another session's lock during"),
            "{what}: {text}"
        );
        assert!(!text.contains("no history"), "{what}: {text}");
    };
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    let start = Instant::now();
    let r = apply::info(
        &db,
        &apply::InfoOptions {
            migrations: None,
            class: Some(fx.class.clone()),
        },
    )
    .map(|_| ());
    timed_out("info", r);
    let r = apply::status(&db, apply::StatusSubject::Plan(&m), &Silent).map(|_| ());
    timed_out("status", r);
    let r = apply::repair(
        &mut db,
        &fx.class,
        1,
        apply::Resolution::Applied,
        "test",
        "locked",
    )
    .map(|_| ());
    timed_out("repair", r);
    // Three bounded waits, not one without limit.
    assert!(start.elapsed() < bound * 6, "waited {:?}", start.elapsed());
    let start = Instant::now();
    let r = fx
        .apply(
            &m,
            &ApplyOptions {
                lock_timeout_ms: 600,
                ..opts(&fx.name)
            },
        )
        .map(|_| ());
    timed_out("apply", r);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "waited {:?}",
        start.elapsed()
    );
    holder.rollback().unwrap();
    drop(holder);
    assert_eq!(fx.history().len(), 1);
    drop(db);
    drop(fx);
    support::drop_database(&base, &db_name);
}
