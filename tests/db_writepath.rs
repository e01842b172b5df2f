//! The write path against what a reviewer found on a real PostgreSQL: every guard catches NULL
//! (refused, exit 3, in the words `status` uses), the rows are read back before commit, host
//! and job guards agree with `status` (one definition of a live job, unknown values refused),
//! an actor-pool item passes once the production is stopped, a schema that lacks a column is
//! named as such, the undo revert checks the whole row, and the messages say what happened.

mod support;

use bplmigrate::apply::{
    self, ApplyError, ErrorClass, Migration, Refusal, StatusReport, StatusSubject,
};
use bplmigrate::plan::{MigrationPlan, Precondition};
use support::{lit, plan, refusals, row, st, Fixture};

fn status(fx: &Fixture, m: &Migration) -> StatusReport {
    let db = apply::Db::connect(&fx.connect).unwrap();
    apply::status(&db, StatusSubject::Plan(m), &apply::Silent).unwrap()
}

fn texts(r: &[Refusal]) -> Vec<String> {
    r.iter().map(|x| x.to_string()).collect()
}

/// A refusal (exit 3): its texts.
fn refused(e: &ApplyError) -> Vec<String> {
    assert_eq!(bplmigrate::cli::Exit::from(e.class()).code(), 3, "{e}");
    texts(e.refusals())
}

fn set_item(fx: &Fixture, set: &str) {
    fx.exec(&format!(
        r#"UPDATE "Ens_Config"."Item" SET {set} WHERE "ClassName" = {}"#,
        lit(&fx.class)
    ));
}

fn add_job(fx: &Fixture, job: &str, config: &str, state: Option<&str>) {
    fx.exec(&format!(
        r#"INSERT INTO "Ens"."Job" ("Job", "ConfigName", "State") VALUES ({}, {}, {})"#,
        lit(job),
        lit(config),
        state.map_or_else(|| "NULL".into(), lit)
    ));
}

/// A: a NULL `%NextState` is refused by apply and dry run (exit 3) in the words status uses.
#[test]
fn a_null_next_state_is_refused_in_status_words() {
    let Some((fx, p)) = support::swap_s5_s7("NullState") else {
        return;
    };
    fx.exec(&format!(
        r#"INSERT INTO "{}"."Thread1" ("%NextState", "%Status", "%Process") VALUES (NULL, 3, 1)"#,
        fx.schema
    ));
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let s = status(&fx, &m);
    let imp = apply::impact(&m, &s).unwrap();
    assert!(!imp.can_apply);
    let words = "1 instance waiting at Thread1:NULL: the old BPL has no state NULL; the plan does not understand \
                 these rows (is the new class already running, or was this migration applied by hand?)";
    assert!(
        imp.blockers.iter().any(|b| b == words),
        "{:?}",
        imp.blockers
    );
    assert_eq!(imp.blockers.len(), 1, "{:?}", imp.blockers);
    for r in [fx.dry_run(&m), fx.apply_plan(&m)] {
        let e = r.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Refused, "{e}");
        let t = texts(e.refusals());
        assert_eq!(t, vec![words.to_string()], "{t:?}");
    }
    assert_eq!(fx.snapshot(), before);
}

/// A: a NULL response handler is no handler the old BPL has.
#[test]
fn a_null_response_handler_is_refused() {
    let Some(fx) = Fixture::new("NullHandler", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3)]);
    let id = fx.add_context(&[("A", "OnResponse1")]);
    fx.exec(&format!(
        r#"INSERT INTO "{}"."Context__ResponseHandlers" ("Context", "element_key", "_ResponseHandlers")
           VALUES ({id}, 'B', NULL)"#,
        fx.schema
    ));
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S5"))])],
        &[("OnResponse1", Some("OnResponse2"), "A")],
    );
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    assert!(
        texts(&r).iter().any(|t| t
            .starts_with("context rows pair a call name with a response handler")
            && t.contains("[B → NULL (1 row)]")
            && t.ends_with("(1 row)")),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), before);
    // Review 10, D7: `status --plan` words the blocker as the failure too (the check list
    // keeps the condition that must hold).
    let st = status(&fx, &m);
    let imp = apply::impact(&m, &st).unwrap();
    assert!(!imp.can_apply);
    assert!(
        imp.blockers
            .iter()
            .any(|b| b.starts_with("context rows pair a call name with a response handler")),
        "{:?}",
        imp.blockers
    );
    assert!(
        !imp.blockers
            .iter()
            .any(|b| b.contains("every context row pairs")),
        "{:?}",
        imp.blockers
    );
}

/// B: the rows are read back before commit; a trigger that writes another state rolls the
/// apply back (exit 4) and says what it found.
#[test]
fn rows_read_back_differently_roll_back() {
    let Some((fx, p)) = support::swap_s5_s7("Trigger") else {
        return;
    };
    let s = &fx.schema;
    fx.exec(&format!(
        r#"CREATE FUNCTION "{s}".trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW."%NextState" := 'S9'; RETURN NEW; END$$"#
    ));
    fx.exec(&format!(
        r#"CREATE TRIGGER t BEFORE UPDATE ON "{s}"."Thread1" FOR EACH ROW EXECUTE FUNCTION "{s}".trg()"#
    ));
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let e = fx.apply_plan(&m).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Database, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("rolled back, nothing changed"), "{msg}");
    assert!(
        msg.contains("read back after the rewrite") && msg.contains("state S9"),
        "{msg}"
    );
    assert_eq!(fx.snapshot(), before);
    assert!(fx.history().is_empty());
}

/// B: the history records the census read back (here equal to the prediction).
#[test]
fn history_records_the_census_read_back() {
    let Some((fx, p)) = support::swap_s5_s7("ReadBack") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    let r = fx.apply_plan(&m).unwrap();
    assert_eq!(r.after.total_thread_rows(), 2);
    assert_eq!(r.after.rows_at(&fx.table(1), "S5"), 1);
    assert_eq!(fx.states(1)[0].0, "S7");
}

/// C: unknown host values are refused, and status agrees (cannot apply).
#[test]
fn unknown_enabled_or_pool_size_is_refused_and_status_agrees() {
    for (name, set, field) in [
        ("EnabledNull", r#""Enabled" = NULL"#, "Enabled"),
        ("PoolNull", r#""PoolSize" = NULL"#, "PoolSize"),
    ] {
        let Some((fx, p)) = support::swap_s5_s7(name) else {
            return;
        };
        set_item(&fx, set);
        let m = Migration::from_plan(p).unwrap();
        let before = fx.snapshot();
        let r = refusals(fx.apply_plan(&m));
        assert!(
            r.iter()
                .any(|x| matches!(x, Refusal::HostUnknown { field: f, .. } if f == field)),
            "{r:?}"
        );
        assert!(
            r.iter()
                .any(|x| x.to_string().contains(&format!("has no {field} (NULL)"))),
            "{r:?}"
        );
        let s = status(&fx, &m);
        assert!(!apply::impact(&m, &s).unwrap().can_apply);
        assert_eq!(fx.snapshot(), before);
    }
}

/// C: a job whose State is NULL, Busy or Quiescent is live for apply and for status alike.
#[test]
fn any_job_not_dead_is_live_for_apply_and_status() {
    for (name, state) in [
        ("JobNull", None),
        ("JobBusy", Some("Busy")),
        ("JobQuiescent", Some("Quiescent")),
    ] {
        let Some((fx, p)) = support::swap_s5_s7(name) else {
            return;
        };
        add_job(&fx, "77", &fx.host(), state);
        let m = Migration::from_plan(p).unwrap();
        let before = fx.snapshot();
        let r = refusals(fx.apply_plan(&m));
        assert!(
            matches!(&r[..], [Refusal::LiveJob { state: s, .. }] if s.as_deref() == state),
            "{r:?}"
        );
        let s = status(&fx, &m);
        assert_eq!(s.quiet.live_jobs.len(), 1, "{name}");
        assert!(!apply::impact(&m, &s).unwrap().can_apply);
        assert_eq!(fx.snapshot(), before);
    }
    // A dead job is not live.
    let Some((fx, p)) = support::swap_s5_s7("JobDead") else {
        return;
    };
    add_job(&fx, "78", &fx.host(), Some("Dead"));
    fx.apply_plan(&Migration::from_plan(p).unwrap()).unwrap();
}

/// D: an actor-pool item is quiet when the production is stopped (no live job at all); while
/// it runs, the refusal says to stop the production, and stopping it lets apply through.
#[test]
fn an_actor_pool_item_applies_once_the_production_is_stopped() {
    let Some(base) = support::connect_string("an_actor_pool_item_applies") else {
        return;
    };
    // Its own database: the production's jobs (any config name) must be only this test's.
    let db_name = format!("bplm_pool_{}", std::process::id());
    let connect = support::fresh_database(&base, &db_name);
    let fx = Fixture::new_in("ActorPool", 1, connect);
    fx.seed(1, &[row("S5", 3), row("S7", 3)]);
    set_item(&fx, r#""PoolSize" = 0, "Enabled" = 1"#);
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S7")), st("S7", Some("S5"))])],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    add_job(&fx, "5", "Ens.Actor", Some("Alive"));
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    assert!(
        matches!(&r[..], [Refusal::ActorPool { live_jobs: 1, .. }]),
        "{r:?}"
    );
    assert!(r[0].to_string().contains("stop the production"), "{}", r[0]);
    assert_eq!(fx.snapshot(), before);
    let s = status(&fx, &m);
    assert!(!apply::impact(&m, &s).unwrap().can_apply);
    // The production stopped: its jobs are gone.
    fx.exec(r#"DELETE FROM "Ens"."Job""#);
    let s = status(&fx, &m);
    assert!(apply::impact(&m, &s).unwrap().can_apply, "{s:?}");
    fx.apply_plan(&m).unwrap();
    assert_eq!(fx.states(1)[0].0, "S7");
    drop(fx);
    support::drop_database(&base, &db_name);
}

/// E: a column missing on an existing table is named (refused, exit 3), not "wrong target".
#[test]
fn a_missing_column_is_named() {
    for (name, ddl, column) in [
        (
            "NoSubStack",
            r#"DROP COLUMN "%SubroutineStack""#,
            "%SubroutineStack",
        ),
        (
            "NoNextState",
            r#"RENAME COLUMN "%NextState" TO "NextState""#,
            "%NextState",
        ),
    ] {
        let Some((fx, p)) = support::swap_s5_s7(name) else {
            return;
        };
        fx.exec(&format!(r#"ALTER TABLE "{}"."Thread1" {ddl}"#, fx.schema));
        let m = Migration::from_plan(p).unwrap();
        let before = fx.snapshot();
        let e = fx.apply_plan(&m).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Refused, "{e}");
        let msg = e.to_string();
        assert!(!msg.contains("wrong target"), "{msg}");
        assert!(
            msg.contains(&format!("has no column {column}")) && msg.contains("schema"),
            "{msg}"
        );
        let s = status(&fx, &m);
        assert!(s.census.missing_tables.is_empty());
        let refused = texts(&s.plan.unwrap().refusals);
        assert!(
            refused
                .iter()
                .any(|t| t.contains(&format!("has no column {column}"))),
            "{refused:?}"
        );
        assert_eq!(fx.snapshot(), before);
    }
}

fn with_pending_precondition(fx: &Fixture, mut p: MigrationPlan) -> MigrationPlan {
    p.preconditions.push(Precondition::NoPendingResponse {
        table: fx.table(1),
        call: "Notify".into(),
        reason: "the call was renamed".into(),
        new_call: None,
    });
    p.plan_id = bplmigrate::plan::plan_id(&p).unwrap();
    p
}

/// E: a missing `__PendingResponses` table or key column is a schema problem (refused), not a
/// database failure during a guard.
#[test]
fn a_missing_pending_table_or_key_is_a_schema_problem() {
    for (name, ddl, what) in [
        ("NoPending", "DROP TABLE {t}", "does not exist"),
        (
            "NoPendingKey",
            r#"ALTER TABLE {t} RENAME COLUMN "element_key" TO "ek""#,
            "has no column element_key",
        ),
    ] {
        let Some((fx, p)) = support::swap_s5_s7(name) else {
            return;
        };
        let p = with_pending_precondition(&fx, p);
        let t = format!(r#""{}"."Thread1__PendingResponses""#, fx.schema);
        fx.exec(&ddl.replace("{t}", &t));
        let m = Migration::from_plan(p).unwrap();
        let before = fx.snapshot();
        let e = fx.apply_plan(&m).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Refused, "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("Thread1__PendingResponses")
                && msg.contains(what)
                && msg.contains("schema"),
            "{msg}"
        );
        assert_eq!(fx.snapshot(), before);
    }
}

/// F: the undo revert checks the whole handler row: a changed call-name key refuses.
#[test]
fn undo_revert_checks_the_call_name_key() {
    let Some(fx) = Fixture::new("UndoKey", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3)]);
    let ctx = fx.add_context(&[("A", "OnResponse1"), ("B", "OnResponse2")]);
    let p = plan(
        &fx,
        "merge",
        &[(1, vec![st("S5", Some("S5"))])],
        &[
            ("OnResponse1", Some("OnResponse3"), "A"),
            ("OnResponse2", Some("OnResponse3"), "B"),
        ],
    );
    let m = Migration::from_plan(p).unwrap();
    fx.apply_plan(&m).unwrap();
    fx.exec(&format!(
        r#"UPDATE "{}"."Context__ResponseHandlers" SET "element_key" = 'X' WHERE "Context" = {ctx} AND "element_key" = 'B'"#,
        fx.schema
    ));
    let before = fx.snapshot();
    let r = refusals(fx.revert_plan(&m));
    assert!(
        matches!(
            &r[..],
            [Refusal::UndoChanged {
                changed: 1,
                recorded: 2,
                ..
            }]
        ),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), before);
    // Put back, the revert runs.
    fx.exec(&format!(
        r#"UPDATE "{}"."Context__ResponseHandlers" SET "element_key" = 'B' WHERE "element_key" = 'X'"#,
        fx.schema
    ));
    fx.revert_plan(&m).unwrap();
    assert_eq!(
        fx.handlers(),
        vec![
            ("A".to_string(), "OnResponse1".to_string()),
            ("B".to_string(), "OnResponse2".to_string())
        ]
    );
}

/// G: revert of a plan never applied says "not applied" (even when a table lacks a column the
/// revert would read), and a second revert says only that.
#[test]
fn revert_without_apply_or_twice_says_not_applied() {
    let Some(fx) = Fixture::new("RevertNA", 1) else {
        return;
    };
    fx.seed(1, &[row("S3", 3)]);
    let p = plan(
        &fx,
        "merge",
        &[(1, vec![st("S3", Some("S5")), st("S4", Some("S5"))])],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    fx.exec(&format!(
        r#"ALTER TABLE "{}"."Thread1" RENAME COLUMN "ID" TO "RowKey""#,
        fx.schema
    ));
    let r = refusals(fx.revert_plan(&m));
    assert!(matches!(&r[..], [Refusal::NotApplied { .. }]), "{r:?}");
    fx.exec(&format!(
        r#"ALTER TABLE "{}"."Thread1" RENAME COLUMN "RowKey" TO "ID""#,
        fx.schema
    ));
    fx.apply_plan(&m).unwrap();
    fx.revert_plan(&m).unwrap();
    let r = refusals(fx.revert_plan(&m));
    assert!(matches!(&r[..], [Refusal::NotApplied { .. }]), "{r:?}");
    // An invertible plan reverted twice: only "not applied" too.
    let Some((fx2, p2)) = support::swap_s5_s7("RevertTwice") else {
        return;
    };
    let m2 = Migration::from_plan(p2).unwrap();
    fx2.apply_plan(&m2).unwrap();
    fx2.revert_plan(&m2).unwrap();
    let r = refusals(fx2.revert_plan(&m2));
    assert!(matches!(&r[..], [Refusal::NotApplied { .. }]), "{r:?}");
}

/// G: counts are said once and in the right number; a state with a trailing space is visible.
#[test]
fn refusal_counts_once_and_shows_odd_states() {
    let Some((fx, p)) = support::swap_s5_s7("Words") else {
        return;
    };
    fx.seed(1, &[row("S5 ", 3), row("S11", 3), row("S11", 3)]);
    let m = Migration::from_plan(p).unwrap();
    let t = texts(&refusals(fx.apply_plan(&m)));
    assert!(
        t.iter()
            .any(|x| x.contains("Thread1:\"S5 \"") && x.contains("no state \"S5 \"")),
        "{t:?}"
    );
    assert!(
        t.iter()
            .any(|x| x.starts_with("2 instances waiting at Thread1:S11")),
        "{t:?}"
    );
    for x in &t {
        assert!(!x.contains("1 rows") && !x.contains(") ("), "{x}");
    }
}

/// G: a connection that fails says nothing changed.
#[test]
fn a_failed_connection_says_nothing_changed() {
    let Some(base) = support::connect_string("a_failed_connection_says_nothing_changed") else {
        return;
    };
    let bad = base
        .split(';')
        .map(|kv| {
            if kv.to_ascii_lowercase().starts_with("pwd=") {
                "Pwd=wrong".to_string()
            } else {
                kv.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(";");
    let e = match apply::Db::connect(&bad) {
        Err(e) => e,
        Ok(_) => panic!("connected with a wrong password"),
    };
    assert!(matches!(e, ApplyError::Connect { .. }));
    assert!(e.to_string().contains("nothing was changed"), "{e}");
}

/// Review 7, item 4: `%ResponseHandlers` entries are never removed during an instance's life
/// (spec 5.2), completed-but-unpurged instances keep them too. An entry naming a removed
/// handler (async `Adjudicate`, OnResponse1) does not block the apply: once no response is
/// pending under its key nothing reads it (nothing sends `Adjudicate` any more). The apply
/// refuses only what the plan lists (the pending response), leaves the stale entries, renames
/// Review's OnResponse2 → OnResponse1, and the undo revert puts every entry back.
#[test]
fn stale_entries_of_a_removed_async_call_do_not_block_the_apply() {
    let Some(fx) = Fixture::new("StaleAdj", 1) else {
        return;
    };
    let p = support::fixture_plan(
        std::path::Path::new("fixtures/changes/removed_async_call_stale_entries"),
        &fx,
    );
    support::create_plan_tables(&fx, &p);
    // What apply requires is what the plan lists: hosts, jobs, the pending response.
    let listed: Vec<&Precondition> = p
        .preconditions
        .iter()
        .filter(|c| {
            !matches!(
                c,
                Precondition::HostDisabled { .. } | Precondition::NoLiveJob { .. }
            )
        })
        .collect();
    assert!(
        matches!(&listed[..], [Precondition::NoPendingResponse { call, .. }] if call == "Adjudicate"),
        "{listed:?}"
    );
    // In flight at FirstAnswer (S2, Adjudicate still pending), at CoolingOff (S4) and at Pay
    // (S6); one completed, not purged. Every context ran both calls.
    let ids = fx.seed(
        1,
        &[row("S2", 3), row("S4", 3), row("S6", 3), row("Stop", 2)],
    );
    for _ in &ids {
        fx.add_context(&[("Adjudicate", "OnResponse1"), ("Review", "OnResponse2")]);
    }
    fx.add_pending(1, ids[0], "Adjudicate");
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let e = fx.apply_plan(&m).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Refused, "{e}");
    let t = texts(e.refusals());
    assert_eq!(t.len(), 1, "only the listed precondition refuses: {t:?}");
    assert!(t[0].contains("\"Adjudicate\""), "{t:?}");
    assert_eq!(bplmigrate::cli::Exit::from(e.class()).code(), 3);
    assert_eq!(fx.snapshot(), before, "a refused apply changed rows");
    // Review 10, D9: `status --plan` says of the group at FirstAnswer that its rows wait on
    // that response, not only "unchanged".
    let imp = apply::impact(&m, &status(&fx, &m)).unwrap();
    let s2 = imp
        .groups
        .iter()
        .find(|g| g.summary.contains("Thread1:S2"))
        .unwrap_or_else(|| panic!("{:?}", imp.groups));
    assert!(
        s2.summary.contains(
            "may wait on a response to call \"Adjudicate\": apply refuses while one is pending"
        ),
        "{}",
        s2.summary
    );

    // Adjudicate answers: the pending response goes, its entry stays (spec 5.2).
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Thread1__PendingResponses""#,
        fx.schema
    ));
    let handlers_before = fx.handlers();
    let states_before = fx.states(1);
    fx.apply_plan(&m).unwrap();
    let stale = ("Adjudicate".to_string(), "OnResponse1".to_string());
    let review = ("Review".to_string(), "OnResponse1".to_string());
    assert_eq!(
        fx.handlers(),
        [stale, review]
            .iter()
            .cycle()
            .take(2 * ids.len())
            .cloned()
            .collect::<Vec<_>>(),
        "stale entries stay, Review's handler renumbered"
    );
    assert_eq!(fx.states(1), states_before, "no state changed meaning");

    // The undo revert knows the stale entries (recorded unchanged) and restores every row.
    fx.revert_plan(&m).unwrap();
    assert_eq!(fx.handlers(), handlers_before);
}

/// Review 7, item 4, the other side: `Poll` in a loop loses its handler but is still sent.
/// It registers nothing now, so a stale `Poll → OnResponse1` entry would hand its response to
/// OnResponse1, Notify's handler in the new version. The plan forbids rows that can still send
/// Poll (the loop, listed as preconditions); the apply refuses them, in those words, while the
/// completed instance and the row after the loop (same stale entry) are no obstacle.
#[test]
fn stale_entries_a_later_send_would_read_refuse_the_rows_that_can_send() {
    let Some(fx) = Fixture::new("StaleLoop", 1) else {
        return;
    };
    let p = support::fixture_plan(
        std::path::Path::new("fixtures/changes/handler_removed_in_loop"),
        &fx,
    );
    support::create_plan_tables(&fx, &p);
    let forbidden: Vec<&str> = p
        .preconditions
        .iter()
        .filter_map(|c| match c {
            Precondition::NoRowsAtState { state, .. } => Some(state.as_str()),
            _ => None,
        })
        .collect();
    // Written out by hand: every state from which the loop body (Poll's send, S4) is reachable,
    // once a row can hold the stale entry: not S1, the entry state before the loop, which has
    // not sent Poll yet (a row there has no entry for its later sends to read).
    assert_eq!(forbidden, ["S2", "S4", "S5", "S6", "S7", "S8"]);
    // At the loop's delay (S7), at Notify (S9), completed.
    let ids = fx.seed(1, &[row("S7", 3), row("S9", 3), row("Stop", 2)]);
    for _ in &ids {
        fx.add_context(&[("Poll", "OnResponse1"), ("Notify", "OnResponse2")]);
    }
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    // `status --plan` says the same: the row in the loop must finish, the others stay.
    let imp = apply::impact(&m, &status(&fx, &m)).unwrap();
    assert!(!imp.can_apply);
    let fates: Vec<(String, apply::Fate)> = imp
        .groups
        .iter()
        .map(|g| (g.summary.clone(), g.fate))
        .collect();
    assert!(
        fates.iter().any(|(s, f)| *f == apply::Fate::Drain
            && s.contains("Thread1:S7")
            && s.contains("must finish before apply")
            && s.contains("without a response handler")),
        "{fates:?}"
    );
    assert!(
        fates
            .iter()
            .any(|(s, f)| *f == apply::Fate::Stay && s.contains("Thread1:S9")),
        "{fates:?}"
    );
    let e = fx.apply_plan(&m).unwrap_err();
    let t = refused(&e);
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(
        t[0].contains("S7") && t[0].contains("without a response handler"),
        "{t:?}"
    );
    assert_eq!(fx.snapshot(), before);

    // The row in the loop finishes; the stale entries of all three contexts stay.
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%NextState" = 'Stop', "%Status" = 2 WHERE "ID" = {}"#,
        fx.schema, ids[0]
    ));
    fx.apply_plan(&m).unwrap();
    let poll = ("Poll".to_string(), "OnResponse1".to_string());
    let notify = ("Notify".to_string(), "OnResponse1".to_string());
    assert_eq!(
        fx.handlers(),
        [poll, notify]
            .iter()
            .cycle()
            .take(2 * ids.len())
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        fx.states(1)
            .iter()
            .map(|s| s.0.as_str())
            .collect::<Vec<_>>(),
        ["Stop", "S9", "Stop"]
    );
}

/// Review 10, D1: an async call with a `<response>` that no `<sync>` waits on is removed. Its
/// pending responses are still dispatched through the context's `Auto → OnResponse1` entry,
/// and OnResponse1 is Review's handler after the rewrite: the plan requires that none is
/// pending (the same rule as for an awaited call), the apply refuses while one is (exit 3,
/// nothing changed) and runs once it is gone. A pending response of the kept call `Review`
/// is no obstacle.
#[test]
fn a_removed_unsynced_call_with_a_pending_response_is_refused() {
    let Some(fx) = Fixture::new("StaleUnsynced", 1) else {
        return;
    };
    let p = support::fixture_plan(
        std::path::Path::new("fixtures/changes/removed_unsynced_async_call"),
        &fx,
    );
    support::create_plan_tables(&fx, &p);
    assert!(
        p.preconditions.iter().any(|c| matches!(c,
            Precondition::NoPendingResponse { call, .. } if call == "Auto")),
        "{:?}",
        p.preconditions
    );
    let ids = fx.seed(1, &[row("S2", 3), row("S4", 3)]);
    for _ in &ids {
        fx.add_context(&[("Auto", "OnResponse1"), ("Review", "OnResponse2")]);
    }
    fx.add_pending(1, ids[0], "Review");
    fx.add_pending(1, ids[0], "Auto");
    fx.add_pending(1, ids[1], "Auto");
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let imp = apply::impact(&m, &status(&fx, &m)).unwrap();
    assert!(!imp.can_apply, "{:?}", imp.blockers);
    let e = fx.apply_plan(&m).unwrap_err();
    let t = refused(&e);
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(
        t[0].contains("\"Auto\"") && t[0].contains("2 rows"),
        "{t:?}"
    );
    assert_eq!(fx.snapshot(), before, "a refused apply changed rows");

    // The Auto responses arrive; Review's stays pending and does not block.
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Thread1__PendingResponses" WHERE "element_key" = 'Auto'"#,
        fx.schema
    ));
    fx.apply_plan(&m).unwrap();
    let auto = ("Auto".to_string(), "OnResponse1".to_string());
    let review = ("Review".to_string(), "OnResponse1".to_string());
    assert_eq!(
        fx.handlers(),
        vec![auto.clone(), review.clone(), auto, review]
    );
}

/// D1 with a runtime key: the removed call is sent under `@context.Key`, so its stale entry
/// may be under any key and every pending response counts (the guard cannot tell which key
/// the expression gave); with none pending the apply runs.
#[test]
fn a_removed_call_with_a_runtime_key_counts_every_pending_response() {
    let Some(fx) = Fixture::new("StaleAtKey", 1) else {
        return;
    };
    let p = support::fixture_plan(
        std::path::Path::new("fixtures/changes/removed_unsynced_async_call_at"),
        &fx,
    );
    support::create_plan_tables(&fx, &p);
    let ids = fx.seed(1, &[row("S4", 3)]);
    fx.add_context(&[("Loan42", "OnResponse1"), ("Review", "OnResponse2")]);
    fx.add_pending(1, ids[0], "Loan42");
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let e = fx.apply_plan(&m).unwrap_err();
    let t = refused(&e);
    assert!(
        t.len() == 1 && t[0].contains("@context.Key") && t[0].contains("1 row"),
        "{t:?}"
    );
    assert_eq!(fx.snapshot(), before);
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Thread1__PendingResponses""#,
        fx.schema
    ));
    fx.apply_plan(&m).unwrap();
    assert_eq!(
        fx.handlers(),
        vec![
            ("Loan42".to_string(), "OnResponse1".to_string()),
            ("Review".to_string(), "OnResponse1".to_string())
        ]
    );
}

/// Review 10, D2: `apply --revert` of a renamed call (`Notify` → `NotifyV2`, with states
/// renumbered) refuses while a thread of the new version waits on a response under the new
/// name: the old version waits on `Notify` and would never match it. Exit 3, nothing changed;
/// once the response has arrived the revert runs. The inverse-script revert.
#[test]
fn revert_of_a_renamed_call_refuses_a_response_pending_under_the_new_name() {
    let Some(fx) = Fixture::new("RevRename", 1) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("bplm-revrename-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = std::path::Path::new("fixtures/changes/insert_middle");
    std::fs::copy(src.join("old.cls"), dir.join("old.cls")).unwrap();
    let new = std::fs::read_to_string(src.join("new.cls")).unwrap();
    assert!(new.contains("name='Notify'"));
    std::fs::write(
        dir.join("new.cls"),
        new.replace("name='Notify'", "name='NotifyV2'"),
    )
    .unwrap();
    let p = support::fixture_plan(&dir, &fx);
    std::fs::remove_dir_all(&dir).unwrap();
    support::create_plan_tables(&fx, &p);
    assert!(
        bplmigrate::sql::revert_blockers(&p).is_empty(),
        "invertible"
    );
    fx.seed(1, &[row("S11", 3)]);
    let m = Migration::from_plan(p).unwrap();
    fx.apply_plan(&m).unwrap();
    let ids = fx.seed(1, &[row("S13", 3)]);
    fx.add_pending(1, ids[0], "NotifyV2");
    let before = fx.snapshot();
    let e = fx.revert_plan(&m).unwrap_err();
    let t = refused(&e);
    assert!(
        t.len() == 1 && t[0].contains("\"NotifyV2\"") && t[0].contains("1 row"),
        "{t:?}"
    );
    assert_eq!(fx.snapshot(), before, "a refused revert changed rows");
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Thread1__PendingResponses""#,
        fx.schema
    ));
    fx.revert_plan(&m).unwrap();
    assert!(
        fx.states(1).iter().all(|s| s.0 == "S11"),
        "{:?}",
        fx.states(1)
    );
}

/// D2, the undo-based revert (handlers merged: not invertible) guards the same: a response
/// pending under a renamed call's new name refuses (exit 3, nothing changed).
#[test]
fn undo_revert_refuses_a_response_pending_under_a_renamed_calls_new_name() {
    let Some(fx) = Fixture::new("UndoRename", 1) else {
        return;
    };
    let ids = fx.seed(1, &[row("S5", 3)]);
    fx.add_context(&[("A", "OnResponse1"), ("B", "OnResponse2")]);
    let mut p = plan(
        &fx,
        "merge",
        &[(1, vec![st("S5", Some("S5"))])],
        &[
            ("OnResponse1", Some("OnResponse3"), "A"),
            ("OnResponse2", Some("OnResponse3"), "B"),
        ],
    );
    p.preconditions.push(Precondition::NoPendingResponse {
        table: fx.table(1),
        call: "A".into(),
        reason: "the call was renamed".into(),
        new_call: Some("A2".into()),
    });
    p.plan_id = bplmigrate::plan::plan_id(&p).unwrap();
    assert!(
        !bplmigrate::sql::revert_blockers(&p).is_empty(),
        "undo-based"
    );
    let m = Migration::from_plan(p).unwrap();
    fx.apply_plan(&m).unwrap();
    fx.add_pending(1, ids[0], "A2");
    let before = fx.snapshot();
    let e = fx.revert_plan(&m).unwrap_err();
    let t = refused(&e);
    assert!(t.len() == 1 && t[0].contains("\"A2\""), "{t:?}");
    assert_eq!(fx.snapshot(), before);
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Thread1__PendingResponses""#,
        fx.schema
    ));
    fx.revert_plan(&m).unwrap();
    assert_eq!(
        fx.handlers(),
        vec![
            ("A".to_string(), "OnResponse1".to_string()),
            ("B".to_string(), "OnResponse2".to_string())
        ]
    );
}

/// Review 10, D5: the undo-based revert counts only rows whose value it changes. The stale
/// `Adjudicate → OnResponse1` entries are recorded unchanged (Old = New): the revert's dry run
/// (what the prompt shows) and the revert itself count the rows the apply changed, no more.
#[test]
fn undo_revert_counts_only_rows_it_changes() {
    let Some(fx) = Fixture::new("UndoCount", 1) else {
        return;
    };
    let p = support::fixture_plan(
        std::path::Path::new("fixtures/changes/removed_async_call_stale_entries"),
        &fx,
    );
    support::create_plan_tables(&fx, &p);
    assert!(
        !bplmigrate::sql::revert_blockers(&p).is_empty(),
        "undo-based"
    );
    let ids = fx.seed(1, &[row("S4", 3), row("S6", 3)]);
    for _ in &ids {
        fx.add_context(&[("Adjudicate", "OnResponse1"), ("Review", "OnResponse2")]);
    }
    let handlers0 = fx.handlers();
    let m = Migration::from_plan(p).unwrap();
    let applied = fx.apply_plan(&m).unwrap().rows_changed();
    assert_eq!(applied, 2, "Review's entry of each context");
    let recorded = support::scalar(
        &fx.conn,
        &format!(
            r#"SELECT COUNT(*) FROM "BplMigrate"."Undo" WHERE "BplClass" = {}"#,
            lit(&fx.class)
        ),
    );
    assert!(recorded > applied, "{recorded}: stale entries recorded too");
    let dry = fx
        .apply(
            &m,
            &apply::ApplyOptions {
                direction: apply::Direction::Revert,
                dry_run: true,
                ..apply::ApplyOptions::default()
            },
        )
        .unwrap();
    assert_eq!(dry.rows_changed(), applied);
    let rep = fx.revert_plan(&m).unwrap();
    assert_eq!(rep.rows_changed(), applied);
    assert_eq!(fx.handlers(), handlers0);
}

/// Review 13, D3: a census with more groups than `RowCounts` holds (200 wait states, rows in
/// four statuses each: 800 groups) is recorded as per-table totals with a note saying so, so
/// the migration applies and reverts; `changed` is kept. The dry run writes the history row
/// too (rolled back), so it fails where the apply would.
#[test]
fn a_census_too_large_for_row_counts_is_summarized_and_the_dry_run_writes_it_too() {
    let Some(fx) = Fixture::new("BigCensus", 1) else {
        return;
    };
    let names: Vec<(String, String)> = (1..=200)
        .map(|i| (format!("S{}", 2 * i), format!("S{}", 2 * i + 1)))
        .collect();
    let specs = names.iter().map(|(o, n)| st(o, Some(n))).collect();
    let m = Migration::from_plan(plan(&fx, "a", &[(1, specs)], &[])).unwrap();
    fx.exec(&format!(
        r#"INSERT INTO "{}"."Thread1" ("%NextState", "%Status", "%Process")
           SELECT 'S' || (2 * i), s, i FROM generate_series(1, 200) i, generate_series(1, 4) s"#,
        fx.schema
    ));
    let dry = fx.dry_run(&m).unwrap();
    assert_eq!((dry.rows_changed(), dry.history_seq), (800, None));
    let r = fx.apply_plan(&m).unwrap();
    assert_eq!((r.rows_changed(), r.history_seq), (800, Some(1)));
    let counts = |seq: i64| -> serde_json::Value {
        let text = support::rows(
            &fx.conn,
            &format!(
                r#"SELECT "RowCounts" FROM "BplMigrate"."History" WHERE "BplClass" = {} AND "Seq" = {seq}"#,
                lit(&fx.class)
            ),
        )[0][0]
            .clone()
            .unwrap();
        assert!(
            text.chars().count() <= apply::ROW_COUNTS_MAX,
            "{}",
            text.len()
        );
        serde_json::from_str(&text).unwrap()
    };
    let c = counts(1);
    assert_eq!(c["changed"], 800);
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("800 groups before and 800 after"),
        "{c}"
    );
    let table = fx.table(1).to_string();
    assert_eq!(
        c["before"],
        serde_json::json!([{ "table": table, "rows": 800 }])
    );
    assert_eq!(c["after"], c["before"]);
    // The history reads back (info, the revert): the plan is applied, and reverts.
    let back = fx.revert_plan(&m).unwrap();
    assert_eq!((back.rows_changed(), back.history_seq), (800, Some(2)));
    assert_eq!(counts(2)["changed"], 800);
    // The dry run writes the history row: a history that refuses it fails the dry run as it
    // fails the apply (a trigger stands in for a row the column cannot hold).
    fx.exec(
        "CREATE OR REPLACE FUNCTION bigcensus_refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$BEGIN RAISE EXCEPTION 'history refused' USING ERRCODE = '22001'; END$$",
    );
    fx.exec(&format!(
        r#"CREATE TRIGGER bigcensus_refuse BEFORE INSERT ON "BplMigrate"."History" FOR EACH ROW
           WHEN (NEW."BplClass" = {}) EXECUTE FUNCTION bigcensus_refuse()"#,
        lit(&fx.class)
    ));
    let e = fx.dry_run(&m).unwrap_err();
    fx.exec(r#"DROP TRIGGER bigcensus_refuse ON "BplMigrate"."History""#);
    assert!(
        e.to_string().contains("write history") && e.to_string().contains("history refused"),
        "{e}"
    );
    assert_eq!(fx.history().len(), 2);
}

/// Review 13, D6: a plan that fills a context default (`new_context_property`: Region = 'EU')
/// on a Context table without that column — the new class is not compiled yet — is refused
/// with a hint that says so, not one blaming the old class; with the column it applies.
#[test]
fn a_missing_new_context_column_says_the_new_class_must_be_compiled_first() {
    let Some(fx) = Fixture::new("NewColumn", 1) else {
        return;
    };
    let p = support::fixture_plan(
        std::path::Path::new("fixtures/changes/new_context_property"),
        &fx,
    );
    support::create_plan_tables(&fx, &p);
    fx.exec(&format!(
        r#"ALTER TABLE "{}"."Context" DROP COLUMN "Region""#,
        fx.schema
    ));
    fx.seed(1, &[row("S2", 3)]);
    fx.add_context(&[("Credit", "OnResponse1")]);
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let t = refused(&fx.apply_plan(&m).unwrap_err());
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(
        t[0].contains("has no column Region: Region is a context property only the new BPL has")
            && t[0].contains("the new class must be compiled first")
            && !t[0].contains("compiled as the plan's old BPL"),
        "{t:?}"
    );
    assert_eq!(fx.snapshot(), before);
    // status words it the same way.
    let st = status(&fx, &m);
    let texts_now = texts(&st.plan.as_ref().unwrap().refusals);
    assert!(
        texts_now
            .iter()
            .any(|x| x.contains("the new class must be compiled first")),
        "{texts_now:?}"
    );
    fx.exec(&format!(
        r#"ALTER TABLE "{}"."Context" ADD COLUMN "Region" varchar(200)"#,
        fx.schema
    ));
    fx.apply_plan(&m).unwrap();
}
