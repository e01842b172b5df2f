//! `apply` on a real database (PostgreSQL through unixODBC + psqlODBC): rewrites, guards,
//! history, revert. Each test owns the class `Demo.T<name>.BP` / schema `Demo_T<name>_BP`.

mod support;

use bplmigrate::apply::{encode_list, ApplyError, ErrorClass, Migration, Refusal};
use support::{chain, plan, refusals, row, st, swap_s5_s7, Fixture, Row};

fn hex(items: &[&str]) -> Option<String> {
    if items.is_empty() {
        None
    } else {
        Some(
            encode_list(items)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        )
    }
}

fn states_of(fx: &Fixture, k: u32) -> Vec<String> {
    fx.states(k).into_iter().map(|r| r.0).collect()
}

#[test]
fn swap_s5_s7_moves_each_row_exactly_once() {
    let Some(fx) = Fixture::new("Swap57", 1) else {
        return;
    };
    let ids = fx.seed(
        1,
        &[
            row("S5", 3),
            row("S7", 3),
            row("S5", 3),
            row("S2", 1),
            row("S7", 3),
            row("Stop", 2),
        ],
    );
    let p = plan(
        &fx,
        "a",
        &[(
            1,
            vec![
                st("S2", Some("S2")),
                st("S5", Some("S7")),
                st("S7", Some("S5")),
            ],
        )],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    let report = fx.apply_plan(&m).unwrap();
    assert_eq!(ids.len(), 6);
    assert_eq!(states_of(&fx, 1), ["S7", "S5", "S7", "S2", "S5", "Stop"]);
    assert_eq!(report.rows_changed(), 4);
    assert_eq!(report.statements.len(), 1);
    assert_eq!(report.statements[0].rows, Some(4));
    assert!(report.history_seq.is_some());
    let h = fx.history();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0][2].as_deref(), Some("apply"));
    assert_eq!(h[0][3].as_deref(), Some("applied"));
}

#[test]
fn cycle_s3_s4_s5_rotates_on_real_rows() {
    let Some(fx) = Fixture::new("Cycle345", 1) else {
        return;
    };
    fx.seed(
        1,
        &[
            row("S3", 3),
            row("S4", 3),
            row("S5", 3),
            row("S3", 3),
            row("S6", 3),
        ],
    );
    let p = plan(
        &fx,
        "a",
        &[(
            1,
            vec![
                st("S3", Some("S4")),
                st("S4", Some("S5")),
                st("S5", Some("S3")),
                st("S6", Some("S6")),
            ],
        )],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    fx.apply_plan(&m).unwrap();
    assert_eq!(states_of(&fx, 1), ["S4", "S5", "S3", "S4", "S6"]);
}

#[test]
fn stack_columns_are_rewritten_with_the_right_bytes() {
    let Some(fx) = Fixture::new("Stacks", 1) else {
        return;
    };
    let ids = fx.seed(
        1,
        &[
            Row {
                state: "S5",
                status: 3,
                handler_stack: &["S3"],
                subroutine_stack: &["S8"],
            },
            Row {
                state: "S7",
                status: 3,
                handler_stack: &["S3"],
                subroutine_stack: &[],
            },
            Row {
                state: "S9",
                status: 3,
                handler_stack: &[],
                subroutine_stack: &[],
            },
        ],
    );
    let p = plan(
        &fx,
        "a",
        &[(
            1,
            vec![
                // Renumbered, both stacks renumbered too.
                st("S5", Some("S6"))
                    .handler_stack(&["S3"], &["S4", "S11"])
                    .subroutine_stack(&["S8"], &["S10"]),
                // The return state S5's stack names: a state of the thread like any other,
                // mapped with it (a return state without counterpart is refused, BPM0110).
                st("S8", Some("S10")),
                // Same state, only the handler stack changes (a scope was added around it).
                st("S7", Some("S7")).handler_stack(&["S3"], &["S4"]),
                // A state that gains a stack from nothing.
                st("S9", Some("S12")).handler_stack(&[], &["S2"]),
            ],
        )],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    fx.apply_plan(&m).unwrap();
    assert_eq!(
        fx.stack_hex(1, ids[0]),
        (hex(&["S4", "S11"]), hex(&["S10"]))
    );
    assert_eq!(fx.stack_hex(1, ids[1]), (hex(&["S4"]), None));
    assert_eq!(fx.stack_hex(1, ids[2]), (hex(&["S2"]), None));
    assert_eq!(states_of(&fx, 1), ["S6", "S7", "S12"]);
    // The exact bytes of $LISTBUILD('S4','S11').
    assert_eq!(
        hex(&["S4", "S11"]).unwrap(),
        "0401533405015331 31".replace(' ', "")
    );
}

#[test]
fn a_row_with_an_unexpected_stack_refuses_the_stack_rewrite() {
    let Some(fx) = Fixture::new("StackOdd", 1) else {
        return;
    };
    fx.seed(
        1,
        &[Row {
            state: "S5",
            status: 3,
            handler_stack: &["S99"],
            subroutine_stack: &[],
        }],
    );
    let before = fx.snapshot();
    let p = plan(
        &fx,
        "a",
        &[(
            1,
            vec![st("S5", Some("S6")).handler_stack(&["S3"], &["S4"])],
        )],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    let r = refusals(fx.apply_plan(&m));
    assert!(r.iter().any(|r| matches!(r, Refusal::Precondition { description, .. } if description.contains("%HandlerStack"))), "{r:?}");
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn response_handlers_are_renumbered_in_one_statement() {
    let Some(fx) = Fixture::new("Handlers", 1) else {
        return;
    };
    fx.seed(1, &[row("S4", 3)]);
    fx.add_context(&[("BankUS", "OnResponse1"), ("BankEU", "OnResponse2")]);
    fx.add_context(&[("BankEU", "OnResponse2"), ("Other", "OnResponse7")]);
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S4", Some("S4"))])],
        &[
            ("OnResponse1", Some("OnResponse2"), "BankUS"),
            ("OnResponse2", Some("OnResponse3"), "BankEU"),
            ("OnResponse7", Some("OnResponse7"), "Other"),
        ],
    );
    let m = Migration::from_plan(p).unwrap();
    let report = fx.apply_plan(&m).unwrap();
    assert_eq!(
        fx.handlers(),
        [
            ("BankUS".to_string(), "OnResponse2".to_string()),
            ("BankEU".into(), "OnResponse3".into()),
            ("BankEU".into(), "OnResponse3".into()),
            ("Other".into(), "OnResponse7".into()),
        ]
    );
    assert_eq!(report.statements.len(), 1);
    assert_eq!(report.statements[0].rows, Some(3));
}

#[test]
fn revert_restores_the_exact_pre_migration_rows() {
    let Some(fx) = Fixture::new("Revert", 2) else {
        return;
    };
    fx.seed(
        1,
        &[
            Row {
                state: "S5",
                status: 3,
                handler_stack: &["S3"],
                subroutine_stack: &["S8"],
            },
            row("S7", 3),
            row("S2", 1),
            row("Stop", 2),
        ],
    );
    fx.seed(2, &[row("S3", 3), row("S4", 3)]);
    fx.add_context(&[("BankUS", "OnResponse1")]);
    let before = fx.snapshot();
    let p = plan(
        &fx,
        "a",
        &[
            (
                1,
                vec![
                    st("S2", Some("S2")),
                    st("S5", Some("S7"))
                        .handler_stack(&["S3"], &["S4"])
                        .subroutine_stack(&["S8"], &["S9"]),
                    st("S7", Some("S5")),
                    // The return state in S5's stack, mapped with its state (BPM0110 otherwise).
                    st("S8", Some("S9")),
                ],
            ),
            (2, vec![st("S3", Some("S4")), st("S4", Some("S3"))]),
        ],
        &[("OnResponse1", Some("OnResponse2"), "BankUS")],
    );
    let m = Migration::from_plan(p).unwrap();
    fx.apply_plan(&m).unwrap();
    assert_ne!(fx.snapshot()[..2], before[..2]);
    let r = fx.revert_plan(&m).unwrap();
    assert!(r.history_seq.is_some());
    let after = fx.snapshot();
    // Every table of the schema is byte-for-byte what it was; the history has both entries.
    let n = after.len() - 1;
    assert_eq!(after[..n], before[..n]);
    let h = fx.history();
    assert_eq!(
        h.iter()
            .map(|r| r[2].clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["apply", "revert"]
    );
    // Reverting twice is refused; applying again works.
    let r = refusals(fx.revert_plan(&m));
    assert!(
        r.iter().any(|r| matches!(r, Refusal::NotApplied { .. })),
        "{r:?}"
    );
    fx.apply_plan(&m).unwrap();
}

#[test]
fn a_plan_that_cannot_be_inverted_is_reverted_from_its_undo_rows() {
    let Some(fx) = Fixture::new("NoRevert", 1) else {
        return;
    };
    fx.seed(1, &[row("S2", 3)]);
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S2", Some("S3")), st("S4", None)])],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    fx.apply_plan(&m).unwrap();
    assert_eq!(states_of(&fx, 1), ["S3"]);
    // A removed state makes the mapping non-invertible: the apply recorded the row it
    // rewrote, and the revert puts exactly that row back (tests/db_undo.rs has the rest).
    fx.revert_plan(&m).unwrap();
    assert_eq!(states_of(&fx, 1), ["S2"]);
}

#[test]
fn applying_twice_is_refused_and_changes_nothing() {
    let Some((fx, p)) = swap_s5_s7("Twice") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    fx.apply_plan(&m).unwrap();
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    assert!(matches!(r[..], [Refusal::AlreadyApplied { .. }]), "{r:?}");
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn plans_apply_in_order_and_out_of_order_is_refused() {
    let Some(fx) = Fixture::new("Chain", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3)]);
    let first = plan(&fx, "first", &[(1, vec![st("S5", Some("S6"))])], &[]);
    let second = chain(
        &first,
        plan(&fx, "second", &[(1, vec![st("S6", Some("S8"))])], &[]),
    );
    let unrelated = plan(&fx, "unrelated", &[(1, vec![st("S6", Some("S9"))])], &[]);
    let first = Migration::from_plan(first).unwrap();
    let second = Migration::from_plan(second).unwrap();
    let unrelated = Migration::from_plan(unrelated).unwrap();
    fx.apply_plan(&first).unwrap();
    let r = refusals(fx.apply_plan(&unrelated));
    assert!(matches!(r[..], [Refusal::SourceMismatch { .. }]), "{r:?}");
    fx.apply_plan(&second).unwrap();
    assert_eq!(states_of(&fx, 1), ["S8"]);
}

#[test]
fn an_enabled_host_refuses_and_nothing_changes() {
    let Some(fx) = Fixture::new("HostOn", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3), row("S7", 3)]);
    fx.add_item("Demo.Other", &format!("{}2", fx.host()), 2, true);
    let before = fx.snapshot();
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S7")), st("S7", Some("S5"))])],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    let r = refusals(fx.apply_plan(&m));
    assert!(
        matches!(&r[..], [Refusal::HostEnabled { production, .. }] if production == "Demo.Other"),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), before);
    // Disabled, it runs.
    fx.set_enabled(false);
    fx.apply_plan(&m).unwrap();
}

#[test]
fn an_actor_pool_host_refuses() {
    let Some(fx) = Fixture::new("Pool0", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3)]);
    fx.add_item("Demo.Production", &format!("{}Pooled", fx.host()), 0, false);
    let before = fx.snapshot();
    let p = plan(&fx, "a", &[(1, vec![st("S5", Some("S7"))])], &[]);
    let m = Migration::from_plan(p).unwrap();
    let e = fx.apply_plan(&m).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Refused);
    assert!(e.to_string().contains("actor pool"), "{e}");
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn a_live_job_refuses_and_a_dead_one_does_not() {
    let Some(fx) = Fixture::new("LiveJob", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3)]);
    fx.add_job("4711", "Dead");
    fx.add_job("4712", "Alive");
    let before = fx.snapshot();
    let p = plan(&fx, "a", &[(1, vec![st("S5", Some("S7"))])], &[]);
    let m = Migration::from_plan(p).unwrap();
    let r = refusals(fx.apply_plan(&m));
    assert!(
        matches!(&r[..], [Refusal::LiveJob { job, .. }] if job == "4712"),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), before);
    fx.exec(&format!(
        r#"UPDATE "Ens"."Job" SET "State" = 'Dead' WHERE "ConfigName" = '{}'"#,
        fx.host()
    ));
    fx.apply_plan(&m).unwrap();
}

#[test]
fn rows_at_a_removed_state_refuse_until_they_drain() {
    let Some(fx) = Fixture::new("Removed", 1) else {
        return;
    };
    let ids = fx.seed(1, &[row("S5", 3), row("S6", 3), row("S6", 3)]);
    let before = fx.snapshot();
    let p = plan(
        &fx,
        "a",
        &[(
            1,
            vec![st("S5", Some("S5")), st("S6", None), st("S7", Some("S6"))],
        )],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    let r = refusals(fx.apply_plan(&m));
    assert!(
        matches!(&r[..], [Refusal::Precondition { description, rows: 2 }] if description.contains("S6")),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), before);
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%NextState" = 'Stop', "%Status" = 2 WHERE "ID" IN ({}, {})"#,
        fx.schema, ids[1], ids[2]
    ));
    fx.apply_plan(&m).unwrap();
}

#[test]
fn a_pending_response_to_a_renamed_call_refuses() {
    let Some(fx) = Fixture::new("Pending", 1) else {
        return;
    };
    let ids = fx.seed(1, &[row("S5", 3)]);
    fx.add_pending(1, ids[0], "BankUS");
    let mut p = plan(&fx, "a", &[(1, vec![st("S5", Some("S6"))])], &[]);
    p.preconditions
        .push(bplmigrate::plan::Precondition::NoPendingResponse {
            table: fx.table(1),
            call: "BankUS".into(),
            reason: "the call was renamed".into(),
            new_call: None,
        });
    p.plan_id = bplmigrate::plan::plan_id(&p).unwrap();
    let before = fx.snapshot();
    let m = Migration::from_plan(p).unwrap();
    let r = refusals(fx.apply_plan(&m));
    assert!(
        matches!(&r[..], [Refusal::Precondition { rows: 1, .. }]),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn all_refusals_are_reported_together() {
    let Some(fx) = Fixture::new("AllRefusals", 1) else {
        return;
    };
    fx.seed(1, &[row("S6", 3)]);
    fx.set_enabled(true);
    fx.add_job("1", "Alive");
    let p = plan(&fx, "a", &[(1, vec![st("S6", None)])], &[]);
    let m = Migration::from_plan(p).unwrap();
    let r = refusals(fx.apply_plan(&m));
    assert_eq!(r.len(), 3, "{r:?}");
}

#[test]
fn a_dry_run_reports_and_changes_nothing() {
    let Some(fx) = Fixture::new("DryRun", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3), row("S7", 3), row("S7", 3)]);
    let before = fx.snapshot();
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S7")), st("S7", Some("S5"))])],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    let report = fx.dry_run(&m).unwrap();
    assert!(report.dry_run);
    assert_eq!(report.rows_changed(), 3);
    assert_eq!(report.after.rows_at(&fx.table(1), "S5"), 2);
    assert!(report.history_seq.is_none());
    assert_eq!(fx.snapshot(), before);
    // And the real apply after it still runs.
    fx.apply_plan(&m).unwrap();
}

#[test]
fn a_missing_thread_table_refuses() {
    let Some(fx) = Fixture::new("NoTable", 1) else {
        return;
    };
    // Thread1 exists, Thread3 does not: that table is refused.
    let p = plan(
        &fx,
        "a",
        &[
            (1, vec![st("S2", Some("S2"))]),
            (3, vec![st("S5", Some("S6"))]),
        ],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    let r = refusals(fx.apply_plan(&m));
    assert!(
        matches!(&r[..], [Refusal::MissingTable { table, .. }] if table.table == "Thread3"),
        "{r:?}"
    );
}

#[test]
fn the_wrong_namespace_is_an_error_naming_what_was_looked_for() {
    let Some(fx) = Fixture::new("WrongNs", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3)]);
    // No table of the plan exists here.
    let p = plan(&fx, "a", &[(3, vec![st("S5", Some("S6"))])], &[]);
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    for e in [fx.apply_plan(&m).unwrap_err(), fx.dry_run(&m).unwrap_err()] {
        assert_eq!(e.class(), ErrorClass::Input, "{e}");
        assert!(
            e.to_string().contains(&format!(
                "no table of {} in this namespace: looked for {}.Thread3",
                fx.class, fx.schema
            )),
            "{e}"
        );
    }
    // The tables are there, but no production item runs the class.
    fx.exec(&format!(
        r#"DELETE FROM "Ens_Config"."Item" WHERE "ClassName" = '{}'"#,
        fx.class
    ));
    let p = plan(&fx, "b", &[(1, vec![st("S5", Some("S6"))])], &[]);
    let m = Migration::from_plan(p).unwrap();
    let before_items = fx.snapshot();
    for e in [
        fx.apply_plan(&m).unwrap_err(),
        fx.revert_plan(&m).unwrap_err(),
    ] {
        assert_eq!(e.class(), ErrorClass::Input, "{e}");
        assert!(
            e.to_string().contains(&format!(
                "Ens_Config.Item has no row with ClassName = '{}'",
                fx.class
            )),
            "{e}"
        );
    }
    assert_eq!(fx.snapshot(), before_items);
    assert_ne!(before, before_items);
}

#[test]
fn an_edited_migration_folder_is_refused_before_connecting() {
    let Some(fx) = Fixture::new("Edited", 1) else {
        return;
    };
    let p = plan(&fx, "a", &[(1, vec![st("S5", Some("S6"))])], &[]);
    let (_tmp, dir) = fx.folder(&p);
    let m = Migration::load(&dir).unwrap();
    assert_eq!(m.plan, p);
    let sql = dir.join("apply.sql");
    let text = std::fs::read_to_string(&sql)
        .unwrap()
        .replace("'S6'", "'S9'");
    std::fs::write(&sql, text).unwrap();
    let e = Migration::load(&dir).unwrap_err();
    assert!(matches!(e, ApplyError::Folder { .. }), "{e}");
    assert!(e.to_string().contains("apply.sql"), "{e}");
    assert_eq!(e.class(), ErrorClass::Input);
}

#[test]
fn a_folder_applies_like_the_plan_in_it() {
    let Some((fx, p)) = swap_s5_s7("Folder") else {
        return;
    };
    let (_tmp, dir) = fx.folder(&p);
    let m = Migration::load(&dir).unwrap();
    fx.apply_plan(&m).unwrap();
    assert_eq!(states_of(&fx, 1), ["S7", "S5"]);
}

/// A renumbered flow thread class must hold no row that can still run; finished child rows at
/// `Stop` (kept by IRIS until the process is purged, never resumed) do not block.
#[test]
fn finished_rows_do_not_block_an_empty_table_precondition() {
    let Some(fx) = Fixture::new("EmptyTable", 2) else {
        return;
    };
    fx.seed(1, &[row("S5", 3)]);
    fx.seed(2, &[row("Stop", 2), row("Stop", 2)]);
    let mut p = plan(&fx, "a", &[(1, vec![st("S5", Some("S7"))])], &[]);
    p.preconditions
        .push(bplmigrate::plan::Precondition::NoRowsInTable {
            table: fx.table(2),
            reason: "Thread2 became Thread3".into(),
        });
    p.plan_id = bplmigrate::plan::plan_id(&p).unwrap();
    let m = Migration::from_plan(p).unwrap();
    // An unfinished row refuses, and nothing changes.
    let waiting = fx.seed(2, &[row("S2", 3)]);
    let before = fx.snapshot();
    let r = refusals(fx.dry_run(&m));
    assert!(
        r.iter()
            .any(|x| matches!(x, Refusal::Precondition { rows: 1, .. })),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), before);
    // Once it finished, the two finished rows (and it) do not block.
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread2" SET "%NextState" = 'Stop', "%Status" = 2 WHERE "ID" = {}"#,
        fx.schema, waiting[0]
    ));
    fx.apply_plan(&m).unwrap();
}
