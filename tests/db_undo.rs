//! Exact undo on a real database (PostgreSQL through unixODBC + psqlODBC): a plan whose mapping
//! cannot be inverted records every rewritten row's previous values in `BplMigrate.Undo` in
//! its own transaction, and `apply --revert` puts back exactly those rows — or refuses,
//! changing nothing, when any of them changed since.

mod support;

use bplmigrate::apply::{ApplyError, ErrorClass, Migration, Refusal};
use bplmigrate::plan::MigrationPlan;
use support::{lit, plan, refusals, row, rows, scalar, st, Fixture, Row};

/// Undo rows of the fixture's class (0 when the table does not exist yet).
fn undo_rows(fx: &Fixture) -> i64 {
    if scalar(
        &fx.conn,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'BplMigrate' AND table_name = 'Undo'",
    ) == 0
    {
        return 0;
    }
    scalar(
        &fx.conn,
        &format!(
            r#"SELECT COUNT(*) FROM "BplMigrate"."Undo" WHERE "BplClass" = {}"#,
            lit(&fx.class)
        ),
    )
}

/// S3 and S4 merge into S5 (S3's rows also get a new handler stack), S5 moves to S6, S1 stays;
/// handlers OnResponse1 and OnResponse2 merge into OnResponse3. Not invertible twice over.
fn merged_plan(fx: &Fixture) -> MigrationPlan {
    plan(
        fx,
        "merge",
        &[(
            1,
            vec![
                st("S1", Some("S1")),
                st("S3", Some("S5")).handler_stack(&["S2"], &["S2", "S9"]),
                st("S4", Some("S5")),
                st("S5", Some("S6")),
            ],
        )],
        &[
            ("OnResponse1", Some("OnResponse3"), "A"),
            ("OnResponse2", Some("OnResponse3"), "B"),
        ],
    )
}

/// Rows at every old state (one S3 row with its handler stack), finished rows, two context
/// rows naming the merged handlers.
fn seed_merged(fx: &Fixture) -> Vec<i64> {
    let ids = fx.seed(
        1,
        &[
            Row {
                state: "S3",
                status: 3,
                handler_stack: &["S2"],
                subroutine_stack: &[],
            },
            row("S4", 3),
            row("S4", 1),
            row("S5", 3),
            row("S1", 1),
            row("Stop", 2),
        ],
    );
    fx.add_context(&[("A", "OnResponse1"), ("B", "OnResponse2")]);
    fx.add_context(&[("B", "OnResponse2")]);
    ids
}

#[test]
fn revert_of_a_merged_mapping_restores_every_rows_previous_state() {
    let Some(fx) = Fixture::new("UndoMerge", 1) else {
        return;
    };
    seed_merged(&fx);
    let before = fx.snapshot();
    let m = Migration::from_plan(merged_plan(&fx)).unwrap();
    let applied = fx.apply_plan(&m).unwrap();
    // Four thread rows and three handler rows changed; each has an undo row.
    assert_eq!(applied.rows_changed(), 7);
    assert_eq!(undo_rows(&fx), 7);
    let states: Vec<String> = fx.states(1).into_iter().map(|r| r.0).collect();
    assert_eq!(states, ["S5", "S5", "S5", "S6", "S1", "Stop"]);
    // The merged rows can no longer be told apart by their state: only the undo rows can.
    let r = fx.revert_plan(&m).unwrap();
    assert_eq!(r.rows_changed(), 7);
    let after = fx.snapshot();
    let n = after.len() - 1;
    assert_eq!(
        after[..n],
        before[..n],
        "every row, stacks and handlers included, is as before"
    );
    let h = fx.history();
    let dirs: Vec<String> = h.iter().map(|r| r[2].clone().unwrap_or_default()).collect();
    assert_eq!(dirs, ["apply", "revert"]);
    // Reverting twice is refused; applying again records a new entry's undo rows.
    let r = refusals(fx.revert_plan(&m));
    assert!(
        r.iter().any(|r| matches!(r, Refusal::NotApplied { .. })),
        "{r:?}"
    );
    fx.apply_plan(&m).unwrap();
    assert_eq!(undo_rows(&fx), 14);
    fx.revert_plan(&m).unwrap();
    assert_eq!(fx.snapshot()[..n], before[..n]);
}

#[test]
fn revert_refuses_after_a_row_changed_and_changes_nothing() {
    let Some(fx) = Fixture::new("UndoChanged", 1) else {
        return;
    };
    let ids = seed_merged(&fx);
    let m = Migration::from_plan(merged_plan(&fx)).unwrap();
    fx.apply_plan(&m).unwrap();
    // One merged row moved on (the new version ran it), one was deleted.
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%NextState" = 'S6' WHERE "ID" = {}"#,
        fx.schema, ids[1]
    ));
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Thread1" WHERE "ID" = {}"#,
        fx.schema, ids[2]
    ));
    let changed = fx.snapshot();
    let e = fx.revert_plan(&m).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Refused, "{e}");
    let r = e.refusals().to_vec();
    assert!(
        r.iter().any(|r| matches!(
            r,
            Refusal::UndoChanged {
                changed: 2,
                recorded: 4,
                ..
            }
        )),
        "{r:?}"
    );
    assert!(e.to_string().contains("2 of the 4 rows of"), "{e}");
    assert_eq!(fx.snapshot(), changed, "a refused revert changes nothing");

    // A stack changed by hand is a change too.
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%NextState" = 'S5' WHERE "ID" = {}"#,
        fx.schema, ids[1]
    ));
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%HandlerStack" = NULL WHERE "ID" = {}"#,
        fx.schema, ids[0]
    ));
    let r = refusals(fx.revert_plan(&m));
    assert!(
        r.iter()
            .any(|r| matches!(r, Refusal::UndoChanged { changed: 2, .. })),
        "{r:?}"
    );
}

#[test]
fn rows_the_apply_did_not_write_at_a_merged_state_refuse_the_revert() {
    let Some(fx) = Fixture::new("UndoStranger", 1) else {
        return;
    };
    seed_merged(&fx);
    let m = Migration::from_plan(merged_plan(&fx)).unwrap();
    fx.apply_plan(&m).unwrap();
    // A new instance reached S5 after the apply: S3 or S4 before? Nobody can tell. Rows at
    // S1 (kept as it is) and finished rows are fine.
    let late = fx.seed(1, &[row("S5", 3), row("S1", 3), row("Stop", 2)]);
    let before = fx.snapshot();
    let r = refusals(fx.revert_plan(&m));
    assert!(
        r.iter()
            .any(|r| matches!(r, Refusal::UndoStrangers { rows: 1, .. })),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), before);
    // Once it has drained, the revert runs and leaves the late S1/Stop rows alone.
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Thread1" WHERE "ID" = {}"#,
        fx.schema, late[0]
    ));
    fx.revert_plan(&m).unwrap();
    let states: Vec<String> = fx.states(1).into_iter().map(|r| r.0).collect();
    assert_eq!(states, ["S3", "S4", "S4", "S5", "S1", "Stop", "S1", "Stop"]);
}

#[test]
fn a_failed_apply_leaves_no_undo_rows() {
    let Some(fx) = Fixture::new("UndoFailed", 1) else {
        return;
    };
    seed_merged(&fx);
    let m = Migration::from_plan(merged_plan(&fx)).unwrap();
    // Make sure the undo table exists (another test's first apply may not have run yet).
    {
        let other = Fixture::new("UndoFailedWarm", 1).unwrap();
        other.seed(1, &[row("S4", 3)]);
        let p = plan(
            &other,
            "warm",
            &[(1, vec![st("S3", Some("S5")), st("S4", Some("S5"))])],
            &[],
        );
        other.apply_plan(&Migration::from_plan(p).unwrap()).unwrap();
    }
    // The rewrite of Thread1 fails; the trigger first reports how many undo rows this
    // transaction had written by then (the capture runs just before the UPDATE).
    let trigger = "bplm_fail_undofailed";
    fx.exec(&format!(
        r#"CREATE OR REPLACE FUNCTION {trigger}() RETURNS trigger LANGUAGE plpgsql AS $f$
           BEGIN
             RAISE EXCEPTION 'refused by test: % undo rows written',
               (SELECT COUNT(*) FROM "BplMigrate"."Undo" WHERE "BplClass" = {});
           END $f$"#,
        lit(&fx.class)
    ));
    fx.exec(&format!(
        r#"CREATE TRIGGER {trigger} BEFORE UPDATE ON "{}"."Thread1" FOR EACH ROW EXECUTE FUNCTION {trigger}()"#,
        fx.schema
    ));
    let before = fx.snapshot();
    let e = fx.apply_plan(&m).unwrap_err();
    assert!(
        matches!(
            &e,
            ApplyError::Database {
                rolled_back: true,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("refused by test: 4 undo rows written"),
        "the undo rows were written in the apply's transaction: {e}"
    );
    assert_eq!(undo_rows(&fx), 0, "and rolled back with it");
    assert_eq!(fx.snapshot(), before);
    fx.exec(&format!(
        r#"DROP TRIGGER {trigger} ON "{}"."Thread1""#,
        fx.schema
    ));
}

#[test]
fn an_entry_without_undo_rows_cannot_be_reverted_and_says_why() {
    let Some(fx) = Fixture::new("UndoNone", 1) else {
        return;
    };
    seed_merged(&fx);
    let m = Migration::from_plan(merged_plan(&fx)).unwrap();
    fx.apply_plan(&m).unwrap();
    // Undo rows removed by hand: the count no longer matches.
    fx.exec(&format!(
        r#"UPDATE "BplMigrate"."History" SET "RowCounts" = '{{"undo":7}}' WHERE "BplClass" = {}"#,
        lit(&fx.class)
    ));
    fx.exec(&format!(
        r#"DELETE FROM "BplMigrate"."Undo" WHERE "BplClass" = {} AND "TableName" LIKE '%Handlers'"#,
        lit(&fx.class)
    ));
    let before = fx.snapshot();
    let e = fx.revert_plan(&m).unwrap_err();
    assert!(
        e.to_string()
            .contains("recorded 7 undo rows, but BplMigrate.Undo holds 4"),
        "{e}"
    );
    assert_eq!(fx.snapshot(), before);
    // As a version before undo rows wrote it: no `undo` count, and none under its entry.
    fx.exec(&format!(
        r#"UPDATE "BplMigrate"."History" SET "RowCounts" = '{{"changed":1}}' WHERE "BplClass" = {}"#,
        lit(&fx.class)
    ));
    fx.exec(&format!(
        r#"DELETE FROM "BplMigrate"."Undo" WHERE "BplClass" = {}"#,
        lit(&fx.class)
    ));
    let before = fx.snapshot();
    let e = fx.revert_plan(&m).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Refused);
    let r = refusals(Err(e));
    assert!(matches!(&r[..], [Refusal::NoUndo { .. }]), "{r:?}");
    let text = r[0].to_string();
    assert!(
        text.contains("does not say it recorded undo rows, and BplMigrate.Undo holds none")
            && text.contains("restore them from a backup")
            && !text.contains("ObjectScript runner"),
        "{text}"
    );
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn an_invertible_plan_records_no_undo_rows_and_a_dry_run_revert_changes_nothing() {
    let Some(fx) = Fixture::new("UndoDry", 1) else {
        return;
    };
    seed_merged(&fx);
    let swap = plan(
        &fx,
        "swap",
        &[(
            1,
            vec![
                st("S1", Some("S1")),
                st("S3", Some("S3")).handler_stack(&["S2"], &["S2"]),
                st("S4", Some("S5")),
                st("S5", Some("S4")),
            ],
        )],
        &[
            ("OnResponse1", Some("OnResponse1"), "A"),
            ("OnResponse2", Some("OnResponse2"), "B"),
        ],
    );
    let swap_source = swap.old.sha256.clone();
    let m = Migration::from_plan(swap).unwrap();
    fx.apply_plan(&m).unwrap();
    assert_eq!(undo_rows(&fx), 0);
    let counts = rows(
        &fx.conn,
        &format!(
            r#"SELECT "RowCounts" FROM "BplMigrate"."History" WHERE "BplClass" = {}"#,
            lit(&fx.class)
        ),
    );
    assert!(!counts[0][0].clone().unwrap_or_default().contains("undo"));
    fx.revert_plan(&m).unwrap();

    // The rows are back at the swap's source: the merge starts from there.
    let mut merged = merged_plan(&fx);
    merged.old.sha256 = swap_source;
    merged.plan_id = bplmigrate::plan::plan_id(&merged).unwrap();
    let m = Migration::from_plan(merged).unwrap();
    fx.apply_plan(&m).unwrap();
    let before = fx.snapshot();
    let r = fx
        .apply(
            &m,
            &bplmigrate::apply::ApplyOptions {
                dry_run: true,
                direction: bplmigrate::apply::Direction::Revert,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.rows_changed(), 7);
    assert_eq!(fx.snapshot(), before);
}
