//! Lock, then look; and what `apply` says happened. Each test acts at a named step of a real
//! apply (through its progress events) from another session: rows arriving, a host enabled,
//! the connection terminated before or after COMMIT, the dirty marker failing.

mod support;

use bplmigrate::apply::{
    self, ApplyError, ApplyOptions, ErrorClass, Event, Migration, Progress, Refusal, StatusSubject,
};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};
use support::{exec, raw_connect, refusals, scalar, swap_s5_s7, Fixture};

/// Calls `f` with every event name (`Step` text) and remembers the session id.
struct Hook<F: Fn(&str, Option<i64>)> {
    f: F,
    session: Mutex<Option<i64>>,
}

impl<F: Fn(&str, Option<i64>)> Hook<F> {
    fn new(f: F) -> Self {
        Hook {
            f,
            session: Mutex::new(None),
        }
    }
}

impl<F: Fn(&str, Option<i64>)> Progress for Hook<F> {
    fn event(&self, e: &Event<'_>) {
        match e {
            Event::Session { id } => *self.session.lock().unwrap() = *id,
            Event::Step(s) => (self.f)(s, *self.session.lock().unwrap()),
            _ => {}
        }
    }
}

fn opts(fx: &Fixture) -> ApplyOptions {
    ApplyOptions {
        applied_by: format!("test {}", fx.name),
        ..ApplyOptions::default()
    }
}

fn apply_with(
    fx: &Fixture,
    m: &Migration,
    hook: &dyn Progress,
) -> Result<apply::ApplyReport, ApplyError> {
    let mut db = apply::Db::connect(&fx.connect)?;
    apply::apply(&mut db, m, &opts(fx), hook)
}

fn insert_row(conn: &odbc_api::Connection<'_>, fx: &Fixture, state: &str) {
    exec(
        conn,
        &format!(
            r#"INSERT INTO "{}"."Thread1" ("%NextState", "%Status", "%Process") VALUES ('{state}', 3, 99)"#,
            fx.schema
        ),
    );
}

fn terminate(fx: &Fixture, pid: i64) {
    let c = raw_connect(&fx.connect);
    exec(&c, &format!("SELECT pg_terminate_backend({pid})"));
}

fn states(fx: &Fixture) -> Vec<String> {
    fx.states(1).into_iter().map(|r| r.0).collect()
}

/// A row committed by another session while apply starts (before its locks) is in the census
/// taken under the lock and is migrated with the others — never left at an old number.
#[test]
fn a_row_inserted_before_the_locks_is_migrated() {
    let Some((fx, p)) = swap_s5_s7("InsertEarly") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    let other = raw_connect(&fx.connect);
    let hook = Hook::new(|step, _| {
        if step == "locking the tables" {
            insert_row(&other, &fx, "S5");
        }
    });
    let report = apply_with(&fx, &m, &hook).unwrap();
    assert_eq!(report.thread_rows_moved(), 3);
    assert_eq!(states(&fx), ["S7", "S5", "S7"]);
}

/// A row another session inserts once apply holds its locks waits for the commit: it is not
/// counted half-way, not lost, and lands as written after the migration.
#[test]
fn a_row_inserted_under_the_locks_waits_for_the_commit() {
    let Some((fx, p)) = swap_s5_s7("InsertLate") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    let connect = fx.connect.clone();
    let schema = fx.schema.clone();
    let inserter: Mutex<Option<thread::JoinHandle<()>>> = Mutex::new(None);
    let watcher = raw_connect(&fx.connect);
    let hook = Hook::new(|step, _| {
        if step == "checking hosts and jobs" {
            let (connect, schema) = (connect.clone(), schema.clone());
            *inserter.lock().unwrap() = Some(thread::spawn(move || {
                let c = raw_connect(&connect);
                exec(
                    &c,
                    &format!(
                        r#"INSERT INTO "{schema}"."Thread1" ("%NextState", "%Status", "%Process") VALUES ('S9', 3, 99)"#
                    ),
                );
            }));
        }
        if step == "committing" {
            // The insert must be waiting for apply's lock (bounded poll, no timing assertion).
            let sql = format!(
                r#"SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
                   AND query LIKE '%INSERT INTO "{schema}"."Thread1"%'"#
            );
            let start = Instant::now();
            while scalar(&watcher, &sql) == 0 {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "the insert never waited for the lock"
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
    });
    let report = apply_with(&fx, &m, &hook).unwrap();
    assert_eq!(
        report.thread_rows_moved(),
        2,
        "only the rows there under the lock"
    );
    inserter
        .lock()
        .unwrap()
        .take()
        .expect("inserter started")
        .join()
        .unwrap();
    assert_eq!(
        states(&fx),
        ["S7", "S5", "S9"],
        "the late row is kept as written"
    );
}

/// A host enabled while apply starts is seen by the check that runs under the lock.
#[test]
fn a_host_enabled_during_apply_refuses_and_nothing_changes() {
    let Some((fx, p)) = swap_s5_s7("EnabledMid") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    let before = states(&fx);
    let hook = Hook::new(|step, _| {
        if step == "locking the tables" {
            fx.set_enabled(true);
        }
    });
    let r = refusals(apply_with(&fx, &m, &hook));
    assert!(
        r.iter().any(|x| matches!(x, Refusal::HostEnabled { .. })),
        "{r:?}"
    );
    assert_eq!(states(&fx), before);
}

/// The connection dies right after COMMIT: the rows are migrated, apply says so (exit 5, never
/// "nothing changed"), the history row written in the transaction says applied, and a re-run
/// finds it.
#[test]
fn a_connection_terminated_after_commit_reports_committed_and_a_rerun_finds_it() {
    let Some((fx, p)) = swap_s5_s7("KilledAfter") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    let hook = Hook::new(|step, session| {
        if step == "reading back" {
            terminate(&fx, session.expect("a PostgreSQL session id"));
        }
    });
    let e = apply_with(&fx, &m, &hook).unwrap_err();
    assert_eq!(e.class(), ErrorClass::CommittedUnverified, "{e}");
    let msg = e.to_string();
    println!("{msg}");
    assert!(
        msg.contains("COMMITTED") && msg.contains("status --plan"),
        "{msg}"
    );
    assert!(!msg.contains("nothing changed"), "{msg}");
    assert_eq!(states(&fx), ["S7", "S5"]);
    let h = fx.history();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0][3].as_deref(), Some("applied"));
    let r = refusals(fx.apply_plan(&m));
    assert!(matches!(r[..], [Refusal::AlreadyApplied { .. }]), "{r:?}");
    let db = apply::Db::connect(&fx.connect).unwrap();
    let s = apply::status(&db, StatusSubject::Plan(&m), &apply::Silent).unwrap();
    assert_eq!(s.plan.unwrap().state, bplmigrate::apply::PlanState::Applied);
}

/// The connection dies as COMMIT is sent: apply cannot know the outcome and says so (exit 6)
/// with how to find out; the history (part of the transaction) tells, and a re-run acts on it.
#[test]
fn a_connection_lost_during_commit_reports_an_unknown_outcome() {
    let Some((fx, p)) = swap_s5_s7("KilledCommit") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    let before = states(&fx);
    let hook = Hook::new(|step, session| {
        if step == "committing" {
            terminate(&fx, session.expect("a PostgreSQL session id"));
        }
    });
    let e = apply_with(&fx, &m, &hook).unwrap_err();
    assert_eq!(e.class(), ErrorClass::OutcomeUnknown, "{e}");
    let msg = e.to_string();
    println!("{msg}");
    assert!(
        msg.contains("outcome is unknown") && msg.contains("status --plan"),
        "{msg}"
    );
    // Here the server never got the COMMIT: status finds the plan not applied…
    assert_eq!(states(&fx), before);
    let db = apply::Db::connect(&fx.connect).unwrap();
    let s = apply::status(&db, StatusSubject::Plan(&m), &apply::Silent).unwrap();
    assert_eq!(
        s.plan.unwrap().state,
        bplmigrate::apply::PlanState::NotApplied
    );
    // …and a re-run applies it.
    fx.apply_plan(&m).unwrap();
    assert_eq!(states(&fx), ["S7", "S5"]);
}

/// The check after commit finds the history row gone and cannot write the dirty marker
/// either: both are reported, and the rows are said to be migrated.
#[test]
fn a_failing_dirty_marker_is_reported() {
    let Some((fx, p)) = swap_s5_s7("DirtyFails") else {
        return;
    };
    // Unequal counts, so the rows tell that the rewrite committed.
    fx.seed(1, &[support::row("S5", 3)]);
    let m = Migration::from_plan(p).unwrap();
    let class = fx.class.clone();
    let other = raw_connect(&fx.connect);
    let trigger = format!("bplm_refuse_{}", fx.name.to_lowercase());
    let hook = Hook::new(|step, _| {
        if step == "reading back" {
            exec(
                &other,
                &format!(
                    r#"CREATE OR REPLACE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $f$
                       BEGIN RAISE EXCEPTION 'history is read-only in this test'; END $f$"#
                ),
            );
            exec(
                &other,
                &format!(
                    r#"CREATE TRIGGER {trigger} BEFORE INSERT ON "BplMigrate"."History" FOR EACH ROW
                       WHEN (NEW."BplClass" = '{class}') EXECUTE FUNCTION {trigger}()"#
                ),
            );
            exec(
                &other,
                &format!(r#"DELETE FROM "BplMigrate"."History" WHERE "BplClass" = '{class}'"#),
            );
        }
    });
    let e = apply_with(&fx, &m, &hook);
    exec(
        &other,
        &format!(r#"DROP TRIGGER IF EXISTS {trigger} ON "BplMigrate"."History""#),
    );
    let e = e.unwrap_err();
    assert_eq!(e.class(), ErrorClass::CommittedUnverified, "{e}");
    let msg = e.to_string();
    println!("{msg}");
    assert!(msg.contains("dirty marker FAILED"), "{msg}");
    assert!(msg.contains("history is read-only in this test"), "{msg}");
    assert_eq!(states(&fx), ["S7", "S5", "S7"]);
    assert!(fx.history().is_empty());
}

/// When the check after commit finds the history row missing but can write, a dirty marker
/// stops every later apply of the class until someone looks.
#[test]
fn a_missing_history_row_after_commit_writes_a_dirty_marker() {
    let Some((fx, p)) = swap_s5_s7("DirtyMarker") else {
        return;
    };
    fx.seed(1, &[support::row("S5", 3)]);
    let m = Migration::from_plan(p).unwrap();
    let class = fx.class.clone();
    let other = raw_connect(&fx.connect);
    let hook = Hook::new(|step, _| {
        if step == "reading back" {
            exec(
                &other,
                &format!(r#"DELETE FROM "BplMigrate"."History" WHERE "BplClass" = '{class}'"#),
            );
        }
    });
    let e = apply_with(&fx, &m, &hook).unwrap_err();
    assert_eq!(e.class(), ErrorClass::CommittedUnverified, "{e}");
    assert!(e.to_string().contains("marks the class dirty"), "{e}");
    let h = fx.history();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0][3].as_deref(), Some("dirty"));
    let r = refusals(fx.apply_plan(&m));
    assert!(
        r.iter().any(|x| matches!(x, Refusal::DirtyHistory { .. })),
        "{r:?}"
    );
}

/// A history value this bplmigrate does not know exactly is refused (exit 3: a precondition,
/// not a failing database), never guessed: not `"applied "` read as applied (review 13, D7),
/// not `"APPLIED"`, not a class spelled `"Demo.X "` or `"demo.x"`, not a plan id of another
/// length. apply, the dry run, status, info and the
/// revert stop alike and name the row; nothing changes.
#[test]
fn an_unknown_history_value_is_refused_by_every_reader() {
    let Some((fx, p)) = swap_s5_s7("UnknownOutcome") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    fx.apply_plan(&m).unwrap();
    let before = states(&fx);
    let class = fx.class.clone();
    for (set, shown) in [
        ("\"Outcome\" = 'undone'", r#"has Outcome "undone""#),
        ("\"Outcome\" = 'applied '", r#"has Outcome "applied ""#),
        ("\"Outcome\" = 'APPLIED'", r#"has Outcome "APPLIED""#),
        ("\"Direction\" = 'apply '", r#"has Direction "apply ""#),
        ("\"PlanId\" = upper(\"PlanId\")", "has PlanId"),
        // Hex, but not a plan id's 16 digits (review 15, D1).
        ("\"PlanId\" = \"PlanId\" || '0'", "has PlanId"),
        // The class in another case: IRIS class names are unique ignoring case (review 15, D2).
        (
            "\"BplClass\" = lower(\"BplClass\")",
            &format!("has BplClass \"{}\", which", class.to_lowercase()) as &str,
        ),
        (
            &format!("\"BplClass\" = '{class} '") as &str,
            &format!("has BplClass \"{class} \", which") as &str,
        ),
    ] {
        fx.exec(&format!(
            r#"UPDATE "BplMigrate"."History" SET {set} WHERE "BplClass" = '{class}' AND "Seq" = 1"#
        ));
        let check = |what: &str, e: ApplyError| {
            assert_eq!(e.class(), ErrorClass::Refused, "{what}, {set}: {e}");
            let text = e.to_string();
            assert!(
                text.contains(shown) && text.contains("which this bplmigrate does not know"),
                "{what}, {set}: {text}"
            );
        };
        check("apply", fx.apply_plan(&m).unwrap_err());
        check("dry run", fx.dry_run(&m).unwrap_err());
        check("revert", fx.revert_plan(&m).unwrap_err());
        let db = apply::Db::connect(&fx.connect).unwrap();
        check(
            "status",
            apply::status(&db, StatusSubject::Plan(&m), &apply::Silent).unwrap_err(),
        );
        let info = apply::info(
            &db,
            &apply::InfoOptions {
                migrations: None,
                class: Some(class.clone()),
            },
        );
        check("info", info.unwrap_err());
        assert_eq!(states(&fx), before, "{set}");
        // Put the row back as the apply wrote it.
        fx.exec(&format!(
            r#"UPDATE "BplMigrate"."History" SET "Outcome" = 'applied', "Direction" = 'apply',
               "PlanId" = lower(substr("PlanId", 1, 16)), "BplClass" = '{class}'
               WHERE rtrim(lower("BplClass")) = lower('{class}') AND "Seq" = 1"#
        ));
    }
    // As written, the row reads: the plan is applied, nothing to do.
    let r = refusals(fx.apply_plan(&m));
    assert!(
        matches!(&r[..], [Refusal::AlreadyApplied { seq: 1, .. }]),
        "{r:?}"
    );
}
