//! The ObjectScript runner's SQL on a real database (PostgreSQL through unixODBC + psqlODBC).
//! The runner itself needs IRIS; what can run here does: its history statements, its forward
//! guard, and the exactly-once contract across both paths — a run the runner records is seen
//! by `bplmigrate apply` (already applied / dirty), and a run `apply` records is what the
//! runner's history read returns, in the column order its `CheckHistory` reads.

mod support;

use bplmigrate::apply::{Migration, Refusal, MIGRATIONS};
use bplmigrate::sql::runner_statements;
use odbc_api::IntoParameter;
use support::{chain, plan, refusals, row, rows, scalar, st, swap_s5_s7, Fixture};

/// The runner's statement for `what` (the labels `runner_statements` gives).
fn stmt(stmts: &[(String, String)], what: &str) -> String {
    stmts
        .iter()
        .find(|(w, _)| w == what)
        .unwrap_or_else(|| panic!("no {what}"))
        .1
        .clone()
}

/// `BplMigrate.History` exists (created like the ODBC path's first apply, under its lock).
fn ensure_history(fx: &Fixture) {
    fx.conn.set_autocommit(false).unwrap();
    fx.exec("SELECT pg_advisory_xact_lock(7093288628515766273)");
    fx.exec(r#"CREATE SCHEMA IF NOT EXISTS "BplMigrate""#);
    let n = scalar(
        &fx.conn,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'BplMigrate' AND table_name = 'History'",
    );
    if n == 0 {
        let ddl: String = (MIGRATIONS[0].ddl)(bplmigrate::sql::Dialect::Postgres)
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        fx.exec(ddl.trim().trim_end_matches(';'));
    }
    fx.conn.commit().unwrap();
    fx.conn.set_autocommit(true).unwrap();
}

/// Run `sql` with text parameters, as `%SQL.Statement.%ExecDirect(.s, sql, args…)` binds them.
fn exec_with(fx: &Fixture, sql: &str, params: &[&str]) {
    let p: Vec<_> = params.iter().map(|s| s.into_parameter()).collect();
    if let Err(e) = fx.conn.execute(sql, &p[..], None) {
        panic!("{sql}\nfailed: {e}");
    }
}

fn query_with(fx: &Fixture, sql: &str, param: &str) -> Vec<Vec<Option<String>>> {
    // The history reads bind one value (the class); inline it for the text-reading helper.
    rows(&fx.conn, &sql.replacen('?', &support::lit(param), 1))
}

/// What the runner's `WriteHistory` binds, in `HISTORY_COLUMNS` order.
fn runner_insert(fx: &Fixture, stmts: &[(String, String)], m: &Migration, outcome: &str) {
    runner_insert_counts(fx, stmts, m, outcome, r#"{"runner":"objectscript"}"#);
}

fn runner_insert_counts(
    fx: &Fixture,
    stmts: &[(String, String)],
    m: &Migration,
    outcome: &str,
    counts: &str,
) {
    let next = query_with(fx, &stmt(stmts, "next history entry"), &fx.class);
    let seq = 1 + next[0][0]
        .as_deref()
        .map_or(0, |s| s.trim().parse::<i64>().unwrap());
    let p = &m.plan;
    exec_with(
        fx,
        &stmt(stmts, "write history"),
        &[
            &seq.to_string(),
            &p.plan_id,
            &m.plan_sha256,
            &p.old.class,
            &p.old.sha256,
            &p.new.sha256,
            "apply",
            "2026-11-30 08:00:00",
            "_SYSTEM@iris",
            outcome,
            "0.1.0",
            counts,
            "ObjectScript runner",
        ],
    );
}

#[test]
fn a_run_recorded_by_the_runner_is_seen_by_apply() {
    let Some((fx, p)) = swap_s5_s7("RunnerSeen") else {
        return;
    };
    ensure_history(&fx);
    let stmts = runner_statements(&p).unwrap();
    // The probe runs once the table exists; the class has no history yet.
    support::exec(&fx.conn, &stmt(&stmts, "history table exists"));
    assert!(query_with(&fx, &stmt(&stmts, "read history"), &fx.class).is_empty());
    let m = Migration::from_plan(p).unwrap();
    runner_insert(&fx, &stmts, &m, "applied");
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    assert!(
        matches!(&r[..], [Refusal::AlreadyApplied { seq: 1, .. }]),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), before, "nothing changed");
}

#[test]
fn a_dirty_entry_written_with_the_runners_insert_refuses_apply() {
    let Some((fx, p)) = swap_s5_s7("RunnerDirty") else {
        return;
    };
    ensure_history(&fx);
    let stmts = runner_statements(&p).unwrap();
    let m = Migration::from_plan(p.clone()).unwrap();
    runner_insert(&fx, &stmts, &m, "dirty");
    let next = Migration::from_plan(chain(
        &p,
        plan(&fx, "b", &[(1, vec![st("S5", Some("S7"))])], &[]),
    ))
    .unwrap();
    let r = refusals(fx.apply_plan(&next));
    assert!(
        r.iter()
            .any(|x| matches!(x, Refusal::DirtyHistory { seq: 1, .. })),
        "{r:?}"
    );
}

#[test]
fn the_runners_history_read_returns_what_apply_recorded_in_check_history_order() {
    let Some((fx, p)) = swap_s5_s7("RunnerRead") else {
        return;
    };
    let stmts = runner_statements(&p).unwrap();
    let m = Migration::from_plan(p.clone()).unwrap();
    fx.apply_plan(&m).unwrap();
    let got = query_with(&fx, &stmt(&stmts, "read history"), &fx.class);
    assert_eq!(got.len(), 1);
    // CheckHistory reads these columns at their positions in the one history column list,
    // and migrate.cls says so.
    let cls = bplmigrate::sql::render_objectscript(&p).unwrap();
    for (name, want) in [
        ("Seq", "1"),
        ("PlanId", p.plan_id.as_str()),
        ("Direction", "apply"),
        ("Outcome", "applied"),
        ("OldSha256", p.old.sha256.as_str()),
        ("NewSha256", p.new.sha256.as_str()),
    ] {
        let pos = bplmigrate::sql::history_column(name).unwrap();
        assert_eq!(got[0][pos - 1].as_deref(), Some(want), "{name}");
        assert!(cls.contains(&format!("%GetData({pos})")), "{name} at {pos}");
    }
    let next = query_with(&fx, &stmt(&stmts, "next history entry"), &fx.class);
    assert_eq!(next, vec![vec![Some("1".to_string())]]);
}

#[test]
fn the_forward_guard_counts_rows_at_states_the_old_bpl_lacks() {
    let Some((fx, p)) = swap_s5_s7("RunnerFwd") else {
        return;
    };
    let stmts = runner_statements(&p).unwrap();
    let guard = stmt(&stmts, "forward guard");
    assert_eq!(scalar(&fx.conn, &guard), 0);
    fx.seed(1, &[row("S99", 3), row("Stop", 1)]);
    assert_eq!(
        scalar(&fx.conn, &guard),
        1,
        "S99 is not a state of the old BPL; Stop is"
    );
}

#[test]
fn the_post_rewrite_stack_checks_pass_after_a_rewrite_and_catch_a_wrong_stack() {
    use bplmigrate::sql::{runner_stack_checks, Dialect};
    use support::Row;
    let Some(fx) = Fixture::new("RunnerStacks", 1) else {
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
                st("S5", Some("S6"))
                    .handler_stack(&["S3"], &["S4", "S11"])
                    .subroutine_stack(&["S8"], &["S10"]),
                // The return state in S5's stack, mapped with its state (BPM0110 otherwise).
                st("S8", Some("S10")),
                st("S9", Some("S12")).handler_stack(&[], &["S2"]),
            ],
        )],
        &[],
    );
    // One check per rewritten stack column: a stale value is legitimate at any state, so the
    // check is on the values the rewrite can write, not per state.
    let checks = runner_stack_checks(&p, Dialect::Postgres).unwrap();
    assert_eq!(checks.len(), 2, "{checks:?}");
    // The IRIS variants are the ones in migrate.cls.
    let iris = runner_statements(&p).unwrap();
    assert_eq!(
        iris.iter()
            .filter(|(w, _)| w == "stack check after the rewrite")
            .count(),
        2
    );
    fx.apply_plan(&Migration::from_plan(p).unwrap()).unwrap();
    for (what, sql) in &checks {
        assert_eq!(scalar(&fx.conn, sql), 0, "{what}");
    }
    // A row at S6 whose handler stack was not rewritten is caught.
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%HandlerStack" = {} WHERE "ID" = {}"#,
        fx.schema,
        support::stack_sql(&["S3"]),
        ids[0]
    ));
    let caught: i64 = checks.iter().map(|(_, sql)| scalar(&fx.conn, sql)).sum();
    assert_eq!(caught, 1);
}

#[test]
fn a_merge_applied_by_the_runner_is_reverted_exactly_by_apply() {
    let Some(fx) = Fixture::new("RunnerUndo", 1) else {
        return;
    };
    // S3 and S4 both become S5: not invertible, so migrate.cls records undo rows.
    fx.seed(1, &[row("S3", 3), row("S4", 3), row("S4", 1), row("S1", 1)]);
    let p = plan(
        &fx,
        "a",
        &[(
            1,
            vec![
                st("S1", Some("S1")),
                st("S3", Some("S5")),
                st("S4", Some("S5")),
            ],
        )],
        &[],
    );
    let stmts = runner_statements(&p).unwrap();
    let capture = stmt(&stmts, "undo rows");
    let m = Migration::from_plan(p).unwrap();
    // Both tables exist (as the runner's EnsureHistory leaves them).
    ensure_history(&fx);
    fx.conn.set_autocommit(false).unwrap();
    fx.exec("SELECT pg_advisory_xact_lock(7093288628515766273)");
    if scalar(
        &fx.conn,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'BplMigrate' AND table_name = 'Undo'",
    ) == 0
    {
        let ddl = (MIGRATIONS[1].ddl)(bplmigrate::sql::Dialect::Postgres);
        let ddl: String = ddl
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        fx.exec(ddl.trim());
    }
    fx.conn.commit().unwrap();
    fx.conn.set_autocommit(true).unwrap();
    let before = fx.snapshot();
    // What Run(0) does: Record (class, entry), then the rewrite, then WriteHistory with the
    // number of undo rows.
    exec_with(&fx, &capture, &[&fx.class, "1"]);
    support::exec(&fx.conn, &stmt(&stmts, "rewrite"));
    runner_insert_counts(
        &fx,
        &stmts,
        &m,
        "applied",
        r#"{"runner":"objectscript","undo":3}"#,
    );
    let states: Vec<String> = fx.states(1).into_iter().map(|r| r.0).collect();
    assert_eq!(states, ["S5", "S5", "S5", "S1"]);
    fx.revert_plan(&m).unwrap();
    let after = fx.snapshot();
    let n = after.len() - 1;
    assert_eq!(after[..n], before[..n]);
}

/// Review 13, D1: the runner's guards (IRIS SQL, run here as the forward guard is) hold the
/// `%ResponseHandlers` pair guard: an entry whose call name does not register its handler in
/// the old BPL counts, the old class's own entries do not.
#[test]
fn the_runners_response_handler_guard_counts_pairs_the_old_bpl_never_registers() {
    let Some(fx) = Fixture::new("RunnerPairs", 1) else {
        return;
    };
    let p = support::fixture_plan(
        std::path::Path::new("fixtures/changes/handler_renumbering"),
        &fx,
    );
    support::create_plan_tables(&fx, &p);
    let stmts = runner_statements(&p).unwrap();
    let guards: Vec<&String> = stmts
        .iter()
        .filter(|(w, s)| w == "guard" && s.contains("Context__ResponseHandlers"))
        .map(|(_, s)| s)
        .collect();
    assert_eq!(guards.len(), 1, "{stmts:?}");
    let guard = guards[0];
    assert!(guard.contains("\"element_key\""), "{guard}");
    fx.add_context(&[("Credit", "OnResponse1"), ("Notify", "OnResponse2")]);
    assert_eq!(scalar(&fx.conn, guard), 0);
    fx.add_context(&[("Audit", "OnResponse1"), ("Credit", "OnResponse2")]);
    assert_eq!(scalar(&fx.conn, guard), 2, "the new class's entries count");
}
