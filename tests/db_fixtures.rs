//! The full upgrade story for every change fixture (`fixtures/changes/<case>/`), on a real
//! database: plan the change, seed a row at every old state (with its stacks), a context
//! row naming every old response handler and a pending response to every call; apply with
//! the host enabled (refused, nothing changed); disable; apply (refused while rows rest
//! where the plan forbids or hold a return state without counterpart, BPM0110; exit 3, nothing
//! changed; then drained); apply; check every row (plus the stale stack entries a case seeds,
//! `stale_rows`); revert where the plan allows and check that every row is back.
//!
//! The fixtures' tables are moved into a namespace of their own per case (`Demo.TFx<Case>.BP`,
//! schema `Demo_TFx<Case>_BP[...]`) by renaming the class in the plan, so the cases run in
//! parallel with the other tests.

mod support;

use bplmigrate::apply::{ApplyError, Migration, Refusal};
use bplmigrate::plan::{MigrationPlan, Precondition};
use bplmigrate::states::SqlTable;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use support::{
    create_plan_tables, fixture_plan, lit, refusals, stack_sql, thread_rows, Fixture, Row,
};

fn camel(case: &str) -> String {
    case.split('_')
        .map(|w| w[..1].to_ascii_uppercase() + &w[1..])
        .collect()
}

/// What a seeded row should look like after the apply.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expect {
    state: String,
    handler_stack: Vec<String>,
    subroutine_stack: Vec<String>,
}

/// Drains what the plan's preconditions forbid (as instances finishing would).
fn drain(fx: &Fixture, p: &MigrationPlan) {
    for pre in &p.preconditions {
        match pre {
            Precondition::NoRowsAtState { table, state, .. } => fx.exec(&format!(
                r#"UPDATE "{}"."{}" SET "%NextState" = 'Stop', "%Status" = 2, "%HandlerStack" = NULL,
                   "%SubroutineStack" = NULL WHERE "%NextState" = {}"#,
                table.schema,
                table.table,
                lit(state)
            )),
            Precondition::NoRowsInTable { table, .. } => {
                fx.exec(&format!(r#"DELETE FROM "{}"."{}""#, table.schema, table.table))
            }
            Precondition::NoPendingResponse { table, call, .. } => {
                // An `@expr` call's key is a runtime value: every pending response counts.
                let which = if call.starts_with('@') {
                    r#""element_key" IS NOT NULL"#.to_string()
                } else {
                    format!(r#""element_key" = {}"#, lit(call))
                };
                fx.exec(&format!(
                    r#"DELETE FROM "{}"."{}__PendingResponses" WHERE {which}"#,
                    table.schema, table.table,
                ));
                // The response arrived. Its `%ResponseHandlers` entry stays: entries are never
                // removed during an instance's life (spec 5.2), so the apply meets it.
            }
            _ => {}
        }
    }
    for (table, value) in dead_return_states(p) {
        let v: Vec<&str> = value.iter().map(String::as_str).collect();
        fx.exec(&format!(
            r#"UPDATE "{}"."{}" SET "%NextState" = 'Stop', "%Status" = 2, "%HandlerStack" = NULL,
               "%SubroutineStack" = NULL WHERE "%SubroutineStack" = {}"#,
            table.schema,
            table.table,
            stack_sql(&v)
        ));
    }
}

/// Rows IRIS leaves that no state predicts, seeded besides the one row per state: stale
/// `%HandlerStack` entries (spec 4.3: a `<break>`/`<continue>` out of a scope, a no-catchall
/// default transferring to the enclosing F). (state, handler stack, subroutine stack) before →
/// what the apply must make of it, written out by hand (not computed by the code under test).
type Seed = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
);
fn stale_rows(case: &str) -> &'static [(Seed, Seed)] {
    match case {
        // Settle's wait after a <break> left scope "Try" (F S6 → S8).
        "break_out_of_scope" => &[(("S16", &["S6"], &[]), ("S18", &["S8"], &[]))],
        // Inner's default transferred to Outer's F (S3 → S5) without popping it: its catchall
        // (OuterAlert) and Done hold it stale.
        "transfer_default_stale_stack" => &[
            (("S21", &["S3"], &[]), ("S23", &["S5"], &[])),
            (("S23", &["S3"], &[]), ("S25", &["S5"], &[])),
        ],
        _ => &[],
    }
}

/// Per thread table, the `%SubroutineStack` values naming a state without counterpart that
/// rows at kept states hold (BPM0110): the apply refuses while a row holds one.
fn dead_return_states(p: &MigrationPlan) -> Vec<(SqlTable, Vec<String>)> {
    let mut out = Vec::new();
    for t in &p.threads {
        for v in t.stack_values(true) {
            let held = t
                .states
                .iter()
                .any(|s| s.new.is_some() && s.old_subroutine_stacks().any(|x| *x == v.old));
            if v.new.is_none() && held {
                out.push((t.old_table.clone(), v.old.to_strings()));
            }
        }
    }
    out
}

fn story(dir: &Path) -> String {
    let case = dir.file_name().unwrap().to_string_lossy().into_owned();
    let Some(fx) = Fixture::new(&format!("Fx{}", camel(&case)), 1) else {
        return String::new();
    };
    let p = fixture_plan(dir, &fx);
    create_plan_tables(&fx, &p);
    if p.old.class != p.new.class {
        // Different classes live in different tables: nothing to migrate, and a migration of
        // such a plan is refused before anything touches the database.
        return match Migration::from_plan(p.clone()) {
            Ok(_) => panic!("{case}: a class-changed plan must be refused"),
            Err(e) => format!("{case}: refused: {e}"),
        };
    }
    let m = Migration::from_plan(p.clone()).unwrap();

    // Seed: one row at every old state with its stacks (one per %SubroutineStack value the
    // state can hold); the first row of each thread table
    // waits on every call; one context row names every old handler.
    let mut expect: BTreeMap<SqlTable, Vec<Expect>> = BTreeMap::new();
    for t in &p.threads {
        let mut first = None;
        for s in &t.states {
            let (hs, ss) = (
                s.old_handler_stack.to_strings(),
                s.old_subroutine_stack.to_strings(),
            );
            let hs: Vec<&str> = hs.iter().map(String::as_str).collect();
            let ss: Vec<&str> = ss.iter().map(String::as_str).collect();
            fx.exec(&format!(
                r#"INSERT INTO "{}"."{}" ("%NextState", "%Status", "%Process", "%HandlerStack", "%SubroutineStack")
                   VALUES ({}, 3, 1, {}, {})"#,
                t.old_table.schema,
                t.old_table.table,
                lit(&s.old.to_string()),
                stack_sql(&hs),
                stack_sql(&ss)
            ));
            first.get_or_insert(());
            let same_table = t.new_table.as_ref() == Some(&t.old_table);
            let e = match (&s.new, same_table) {
                (Some(n), true) => Expect {
                    state: n.to_string(),
                    handler_stack: s.new_handler_stack.to_strings(),
                    subroutine_stack: s.new_subroutine_stack.to_strings(),
                },
                _ => Expect {
                    state: s.old.to_string(),
                    handler_stack: s.old_handler_stack.to_strings(),
                    subroutine_stack: s.old_subroutine_stack.to_strings(),
                },
            };
            expect.entry(t.old_table.clone()).or_default().push(e);
            // A row for every other %SubroutineStack value rows can hold here (a handler run
            // by several <compensate>s): the rewrite maps it element-wise, like the first.
            for a in s.other_subroutine_stacks.iter() {
                let ss = a.old.to_strings();
                let ss: Vec<&str> = ss.iter().map(String::as_str).collect();
                fx.exec(&format!(
                    r#"INSERT INTO "{}"."{}" ("%NextState", "%Status", "%Process", "%HandlerStack", "%SubroutineStack")
                       VALUES ({}, 3, 1, {}, {})"#,
                    t.old_table.schema,
                    t.old_table.table,
                    lit(&s.old.to_string()),
                    stack_sql(&hs),
                    stack_sql(&ss)
                ));
                let e = match (&s.new, &a.new, same_table) {
                    (Some(n), Some(ns), true) => Expect {
                        state: n.to_string(),
                        handler_stack: s.new_handler_stack.to_strings(),
                        subroutine_stack: ns.to_strings(),
                    },
                    _ => Expect {
                        state: s.old.to_string(),
                        handler_stack: s.old_handler_stack.to_strings(),
                        subroutine_stack: a.old.to_strings(),
                    },
                };
                expect.entry(t.old_table.clone()).or_default().push(e);
            }
        }
        if t.old_class.ends_with(".Thread1") {
            for ((state, hs, ss), (to, nhs, nss)) in stale_rows(&case) {
                fx.exec(&format!(
                    r#"INSERT INTO "{}"."{}" ("%NextState", "%Status", "%Process", "%HandlerStack", "%SubroutineStack")
                       VALUES ({}, 3, 1, {}, {})"#,
                    t.old_table.schema,
                    t.old_table.table,
                    lit(state),
                    stack_sql(hs),
                    stack_sql(ss)
                ));
                let owned = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
                expect.entry(t.old_table.clone()).or_default().push(Expect {
                    state: to.to_string(),
                    handler_stack: owned(nhs),
                    subroutine_stack: owned(nss),
                });
            }
        }
        // Every call with a handler, and every call a precondition says may be awaited
        // (an awaited call needs no handler of its own).
        let mut calls: Vec<&str> = p
            .response_handlers
            .iter()
            .map(|h| h.call.as_str())
            .collect();
        for pre in &p.preconditions {
            if let Precondition::NoPendingResponse { table, call, .. } = pre {
                if *table == t.old_table {
                    calls.push(call);
                }
            }
        }
        calls.sort_unstable();
        calls.dedup();
        for call in calls {
            fx.exec(&format!(
                r#"INSERT INTO "{}"."{}__PendingResponses" ("{}", "element_key") VALUES (1, {})"#,
                t.old_table.schema,
                t.old_table.table,
                t.old_table.table,
                lit(call)
            ));
        }
    }
    let hts = &p.response_handler_table;
    // A context holds one entry per key: of the handlers of calls that share a name (two
    // cases' `Send`), the one its call registered last; the first stands for it here.
    let mut keys: Vec<&str> = Vec::new();
    let entries: Vec<_> = p
        .response_handlers
        .iter()
        .filter(|h| {
            let new = !keys.contains(&h.call.as_str());
            keys.push(&h.call);
            new
        })
        .collect();
    for h in &entries {
        fx.exec(&format!(
            r#"INSERT INTO "{}"."{}" ("Context", "element_key", "_ResponseHandlers") VALUES (1, {}, {})"#,
            hts.schema,
            hts.table,
            lit(&h.call),
            lit(&h.old)
        ));
    }
    let c = &p.context_table;
    fx.exec(&format!(
        r#"INSERT INTO "{}"."{}" ("%Process") VALUES (1)"#,
        c.schema, c.table
    ));

    let tables: Vec<SqlTable> = expect.keys().cloned().collect();
    let all_rows = |fx: &Fixture| {
        tables
            .iter()
            .map(|t| thread_rows(fx, t))
            .collect::<Vec<_>>()
    };

    // Blocked by more than rows that must drain (an ambiguous match, a changed class): no
    // path applies it (the runner's Blocked() and `check` say the same); refused, exit 3,
    // nothing changed, even with every row drained.
    if !p.blocked_for_good().is_empty() {
        fx.set_enabled(false);
        drain(&fx, &p);
        let drained = all_rows(&fx);
        let e = fx.apply_plan(&m).unwrap_err();
        assert!(
            matches!(e.refusals(), [Refusal::PlanBlocked { .. }]),
            "{case}: {e}"
        );
        assert_eq!(bplmigrate::cli::Exit::from(e.class()).code(), 3, "{case}");
        assert!(
            e.to_string().contains("draining does not resolve"),
            "{case}: {e}"
        );
        assert_eq!(
            all_rows(&fx),
            drained,
            "{case}: a refused apply changed rows"
        );
        assert!(
            fx.history().is_empty(),
            "{case}: a refused apply wrote history"
        );
        return format!("{case}: {:?}, refused: blocked for good", p.verdict);
    }

    // Host enabled: refused, nothing changed.
    fx.set_enabled(true);
    let seeded = all_rows(&fx);
    let e = fx.apply_plan(&m).unwrap_err();
    assert!(
        e.refusals()
            .iter()
            .any(|r| matches!(r, Refusal::HostEnabled { .. })),
        "{case}: expected the enabled host to refuse: {e}"
    );
    assert_eq!(
        all_rows(&fx),
        seeded,
        "{case}: a refused apply changed rows"
    );
    fx.set_enabled(false);

    // Refused while rows rest where the plan forbids; drain them (update the expectations).
    let dead = dead_return_states(&p);
    let forbids_rows = !dead.is_empty()
        || p.preconditions.iter().any(|pre| {
            matches!(
                pre,
                Precondition::NoRowsAtState { .. }
                    | Precondition::NoRowsInTable { .. }
                    | Precondition::NoPendingResponse { .. }
            )
        });
    if forbids_rows {
        match fx.apply_plan(&m) {
            Err(e @ ApplyError::Refused { .. }) => {
                let refusals = e.refusals();
                assert!(
                    refusals
                        .iter()
                        .all(|r| matches!(r, Refusal::Precondition { .. })),
                    "{case}: {refusals:?}"
                );
                assert_eq!(
                    bplmigrate::cli::Exit::from(e.class()).code(),
                    3,
                    "{case}: a refusal exits 3"
                );
                // Rows holding the return state of a <compensate> without counterpart: refused
                // by their own guard (BPM0110), never rewritten to another compensate's.
                for (table, value) in &dead {
                    assert!(
                        refusals.iter().any(|r| {
                            let t = r.to_string();
                            t.contains("BPM0110")
                                && t.contains(&format!("%SubroutineStack [{}]", value.join(",")))
                        }),
                        "{case}: {table}: no BPM0110 refusal for {value:?}: {refusals:?}"
                    );
                }
            }
            other => panic!("{case}: rows at forbidden places must refuse, got {other:?}"),
        }
        assert_eq!(
            all_rows(&fx),
            seeded,
            "{case}: a refused apply changed rows"
        );
        drain(&fx, &p);
    }
    let before: Vec<_> = all_rows(&fx);

    let report = fx
        .apply_plan(&m)
        .unwrap_or_else(|e| panic!("{case}: apply failed: {e}"));

    // Every row: where the plan sends it (drained rows stay drained, deleted ones are gone).
    for (t, rows_before) in tables.iter().zip(&before) {
        let now = thread_rows(&fx, t);
        assert_eq!(
            now.len(),
            rows_before.len(),
            "{case}: {t} lost or gained rows"
        );
        let seeded_ids: Vec<i64> = seeded[tables.iter().position(|x| x == t).unwrap()]
            .iter()
            .map(|r| r.0)
            .collect();
        for (b, a) in rows_before.iter().zip(&now) {
            assert_eq!(b.0, a.0);
            let want = if b.1 == "Stop" {
                Expect {
                    state: "Stop".into(),
                    handler_stack: Vec::new(),
                    subroutine_stack: Vec::new(),
                }
            } else {
                let i = seeded_ids.iter().position(|id| *id == b.0).unwrap();
                expect[t][i].clone()
            };
            let got = Expect {
                state: a.1.clone(),
                handler_stack: a.3.clone(),
                subroutine_stack: a.4.clone(),
            };
            assert_eq!(got, want, "{case}: {t} row {} (was {})", a.0, b.1);
            assert_eq!(a.2, b.2, "{case}: %Status changed");
        }
    }
    for h in &entries {
        let got = support::rows(
            &fx.conn,
            &format!(
                r#"SELECT "_ResponseHandlers" FROM "{}"."{}" WHERE "element_key" = {}"#,
                hts.schema,
                hts.table,
                lit(&h.call)
            ),
        );
        // Every entry stays; one naming a handler without counterpart keeps its name (read by
        // nothing once no response is pending under its key, see `plan::stale_handlers`).
        let want = h.new.clone().unwrap_or_else(|| h.old.clone());
        assert_eq!(
            got[0][0].as_deref(),
            Some(want.as_str()),
            "{case}: handler of call {}",
            h.call
        );
    }
    for prop in p.context_properties.iter().filter(|c| c.default.is_some()) {
        let v = support::rows(
            &fx.conn,
            &format!(
                r#"SELECT "{}" FROM "{}"."{}""#,
                prop.name, c.schema, c.table
            ),
        );
        assert!(
            v.iter().all(|r| r[0].is_some()),
            "{case}: {} not filled",
            prop.name
        );
    }

    // Revert where the plan can be inverted: every thread row exactly as before the apply.
    let mut reverted = "no revert";
    if bplmigrate::sql::revert_blockers(&p).is_empty() && (!report.statements.is_empty()) {
        fx.revert_plan(&m)
            .unwrap_or_else(|e| panic!("{case}: revert failed: {e}"));
        let handler_rewrites = p
            .response_handlers
            .iter()
            .any(|h| h.new.as_ref() != Some(&h.old));
        assert_eq!(
            all_rows(&fx),
            before,
            "{case}: revert did not restore the rows"
        );
        if handler_rewrites {
            for h in &entries {
                let got = support::rows(
                    &fx.conn,
                    &format!(
                        r#"SELECT "_ResponseHandlers" FROM "{}"."{}" WHERE "element_key" = {}"#,
                        hts.schema,
                        hts.table,
                        lit(&h.call)
                    ),
                );
                assert_eq!(
                    got[0][0].as_deref(),
                    Some(h.old.as_str()),
                    "{case}: reverted handler of {}",
                    h.call
                );
            }
        }
        reverted = "reverted";
    }
    format!(
        "{case}: {:?}, {} rows changed, {} statements, {reverted}",
        p.verdict,
        report.rows_changed(),
        report.statements.len()
    )
}

/// Review 7 item 3: handler Undo (its wait Revert) is run by the catch's and the catchall's
/// `<compensate>`; the inserted delay renumbers both return states (S12 → S14, S14 → S16).
/// Rows waiting at Revert hold either `%SubroutineStack`: the apply maps both element-wise (it
/// used to rewrite only the first and refuse the others), the undo puts both back; a value no
/// `<compensate>` leaves is still refused. Expected values written out by hand.
#[test]
fn every_subroutine_stack_a_handler_can_hold_is_migrated_and_restored() {
    let Some(fx) = Fixture::new("TwoCompensates", 1) else {
        return;
    };
    let p = fixture_plan(
        Path::new("fixtures/changes/compensated_twice_renumbered"),
        &fx,
    );
    create_plan_tables(&fx, &p);
    let at_revert = |ss: &'static [&'static str]| Row {
        state: "S5",
        status: 3,
        handler_stack: &[],
        subroutine_stack: ss,
    };
    let at_work = Row {
        state: "S7",
        status: 3,
        handler_stack: &["S3"],
        subroutine_stack: &[],
    };
    fx.seed(1, &[at_revert(&["S12"]), at_revert(&["S14"]), at_work]);
    let owned = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let row = |state: &str, status: i64, hs: &[&str], ss: &[&str]| {
        (state.to_string(), status, owned(hs), owned(ss))
    };
    let before = fx.states(1);
    assert_eq!(
        before,
        [
            row("S5", 3, &[], &["S12"]),
            row("S5", 3, &[], &["S14"]),
            row("S7", 3, &["S3"], &[]),
        ]
    );
    let m = Migration::from_plan(p.clone()).unwrap();
    fx.apply_plan(&m).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        fx.states(1),
        [
            row("S5", 3, &[], &["S14"]),
            row("S5", 3, &[], &["S16"]),
            row("S9", 3, &["S3"], &[]),
        ]
    );
    fx.revert_plan(&m).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fx.states(1), before);

    // A value no <compensate> of Undo leaves (S13 is the catchall's entry): refused, nothing
    // changed.
    fx.seed(1, &[at_revert(&["S13"])]);
    let seeded = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    assert!(
        r.iter().any(|x| x
            .to_string()
            .contains("%SubroutineStack value the plan cannot map")),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), seeded);
}

fn cases() -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir("fixtures/changes") else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("old.cls").exists() && p.join("new.cls").exists())
        .collect();
    v.sort();
    v
}

/// One test per fixture pair, so a failure names its case and the cases run in parallel.
macro_rules! stories {
    ($($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                if support::connect_string(concat!("fixture story ", stringify!($case))).is_none() {
                    return;
                }
                println!("{}", story(Path::new(concat!("fixtures/changes/", stringify!($case)))));
            }
        )*
        const LISTED: &[&str] = &[$(stringify!($case)),*];
    };
}

stories!(
    ambiguous_twin_delay,
    append_end,
    async_call_made_sync,
    arguments_reversed,
    awaited_async_rename,
    branch_switch,
    branch_switch_mapped,
    call_moved_between_cases,
    comp_rows_call_moved_out_of_scope,
    comp_rows_body_insert,
    retarget_swapped_between_cases,
    same_name_call_moved_between_cases,
    case_respaced_renamed,
    catch_widened_to_catchall,
    catch_widened_nested,
    catchall_narrowed_to_catch,
    condition_respaced,
    condition_tightened_renamed,
    break_out_of_scope,
    call_out_of_catchall,
    catch_delay_removed,
    catch_disabled_pending_call,
    catch_added,
    catch_added_uncaught,
    catch_insert,
    catchall_insert_before_compensate,
    class_changed,
    comp_reorder,
    compensated_twice_renumbered,
    comp_handler_edit,
    comp_handler_edit_same_name,
    comp_handler_edit_uncompensated,
    compensate_inserted_before,
    compensate_moved_to_catch,
    context_property_removed,
    context_property_renamed,
    context_initial_changed,
    context_property_retyped,
    copies_into_branches,
    delay_duration_changed,
    delay_duration_to_until,
    drain_only,
    empty_only_inserted,
    receive_only_inserted,
    flow_branch_disabled,
    flow_branch_removed,
    flow_in_while,
    flow_insert_after,
    flow_removed,
    flow_renumbering,
    gained_response_handler,
    handler_renumbering,
    identical_copies,
    identical_copies_pinned,
    if_negated_branches_swapped,
    inner_catchall_added,
    insert_in_loop,
    insert_middle,
    map_onto_new_call_wait,
    map_onto_other_call_wait,
    layout_only,
    move_between_branches,
    move_to_branch_start,
    moved_into_evaluated_if,
    new_context_property,
    new_object_property,
    new_property_read_by_case,
    new_property_read_in_code,
    new_property_set_by_awaited_response,
    new_property_written_before_read,
    one_state_compatible,
    pin_takes_counterpart,
    remove_activity,
    removed_awaited_async_call,
    removed_call,
    removed_delay_after_work,
    removed_delay_after_work_mapped,
    removed_sync_call_still_awaited,
    removed_wait_state,
    removed_wait_state_mapped,
    rename_across_cases,
    rename_call,
    renamed_call_with_twin,
    renamed_first_call_with_twin,
    rename_into_fault_handler,
    renest_into_if,
    renest_into_scope,
    reorder_siblings,
    reorder_switch_cases,
    request_class_changed,
    response_handler_removed,
    retargeted_awaited_call,
    same_name_into_fault_handler,
    same_name_other_branch,
    same_name_other_call,
    skip_by_branch,
    skipped_trace_only,
    skip_inserted_in_both_branches,
    sync_attributes_changed,
    sync_call_made_async,
    sync_call_made_async_with_timeout,
    toggle_disabled,
    transfer_default_stale_stack,
    unawaited_async_rename,
    until_replaced_by_while,
    unversioned_to_versioned,
    unwrap_scope,
    versioned,
    wait_moved_before_while,
    wait_moved_before_until,
    wait_first_moved_before_until,
    call_moved_into_foreach_rows_in_body,
    call_moved_into_while_rows_in_body,
    call_moved_into_foreach_start_rows_in_body,
    call_inserted_into_foreach_rows_in_body,
    wait_moved_into_foreach,
    wait_moved_out_of_foreach,
    wait_moved_out_of_while,
    wait_wrapped_in_while,
    wrap_in_scope,
    wait_moved_into_case,
    wait_moved_into_case_mapped,
    wait_moved_out_of_branch,
    call_moved_out_of_scope_body,
    sequence_first_moved_out_of_scope,
    flow_join_new_catch,
    sync_call_split_rows_after,
    sync_call_timeout_split_rows_after,
    sync_call_joined_rows_after,
    body_insert_rows_in_handlers,
    split_in_scope,
    body_end_insert,
    removed_async_call_stale_entries,
    handler_removed_in_loop,
    handler_removed_after_delay,
    removed_unsynced_async_call,
    removed_unsynced_async_call_at,
    sync_timeout_changed,
    toggle_swapped,
    nested_catch_compensate,
    dup_fault_catch_unreachable,
    dup_fault_catch_removed,
    catch_enabled,
    sync_call_timeout_rows_after,
    sync_call_any_rows_after,
    sync_call_all_rows_after,
    sync_split_rows_after,
    sync_split_timeout_rows_after,
    dup_fault_first_catch_removed,
    body_mid_insert,
    compensate_retargeted,
    response_assign_moved_out,
    flow_branch_wrapped_in_scope,
    foreach_key_property_new,
    comp_nested_in_handler,
    comp_in_flow_branch,
    switch_case_conditions_changed,
    switch_case_switched,
    compensate_registry_cleared,
    compensate_scope_after,
    case_replaced,
    case_replaced_same_call,
    catch_replaced,
    catch_replaced_same_call,
    catch_fault_renamed,
    catch_fault_renamed_unnamed,
    catch_fault_changed_throw_kept,
    hoisted_common_tail,
    hoisted_tail_other_branch_work,
    unwrap_if,
    hoist_out_of_branch,
    unwrap_if_in_flow_branch,
    flow_branch_from_before,
    runtime_key_rename,
    runtime_key_rename_new_bare_call,
    if_replaced_same_call,
    if_moved_condition_edited,
    if_moved_and_replaced,
    switch_moved_case_added,
    case_added_call_removed,
    conditionals_renamed_or_edited,
    explicit_defaults,
    label_to_while,
    label_to_while_stamped,
);

/// A new fixture folder must get its story test above.
#[test]
fn every_change_fixture_has_a_story_test() {
    let found: Vec<String> = cases()
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        !found.is_empty(),
        "no fixtures/changes/*/{{old,new}}.cls found"
    );
    let missing: Vec<&String> = found
        .iter()
        .filter(|c| !LISTED.contains(&c.as_str()))
        .collect();
    assert!(missing.is_empty(), "add these to stories!(…): {missing:?}");
}
