//! `status` on a real database: read-only, and what it tells about a plan.

mod support;

use bplmigrate::apply::{self, ErrorClass, Migration, Refusal, Silent, StatusSubject};
use support::{plan, row, scalar, st, Fixture, Row};

/// The fixture's connection string with every transaction of the session read-only: any
/// write `status` attempted would fail.
fn read_only(fx: &Fixture) -> String {
    format!(
        "{};ConnSettings={{SET default_transaction_read_only = on}};",
        fx.connect.trim_end_matches(';')
    )
}

/// Tables in the fixture's schema.
fn table_count(fx: &Fixture) -> i64 {
    scalar(
        &fx.conn,
        &format!(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{}'",
            fx.schema
        ),
    )
}

#[test]
fn status_never_writes() {
    let Some(fx) = Fixture::new("StatusRO", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3), row("S6", 3)]);
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S7")), st("S6", None)])],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let tables = table_count(&fx);
    let db = apply::Db::connect(&read_only(&fx)).unwrap();
    let report = apply::status(&db, StatusSubject::Plan(&m), &Silent).unwrap();
    assert_eq!(report.census.rows_in(&fx.table(1)), 2);
    assert_eq!(fx.snapshot(), before);
    // No table appeared in the schema; the read-only session proves that no write at all
    // was attempted anywhere (a CREATE or INSERT would have failed the command).
    assert_eq!(table_count(&fx), tables);
    // The session really is read-only: a (dry-run) apply through it fails in its UPDATE.
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Thread1" WHERE "%NextState" = 'S6'"#,
        fx.schema
    ));
    let mut db = apply::Db::connect(&read_only(&fx)).unwrap();
    let e = apply::apply(
        &mut db,
        &m,
        &apply::ApplyOptions {
            dry_run: true,
            ..Default::default()
        },
        &Silent,
    )
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Database, "{e}");
}

#[test]
fn status_shows_the_census_the_moves_and_what_would_refuse() {
    let Some(fx) = Fixture::new("StatusPlan", 2) else {
        return;
    };
    let ids = fx.seed(
        1,
        &[
            row("S5", 3),
            row("S5", 3),
            Row {
                state: "S7",
                status: 3,
                handler_stack: &["S3"],
                subroutine_stack: &[],
            },
            row("S6", 4),
            row("Stop", 2),
        ],
    );
    fx.add_pending(1, ids[0], "BankUS");
    fx.add_context(&[("BankUS", "OnResponse1")]);
    fx.set_enabled(true);
    fx.add_job("99", "Alive");
    let p = plan(
        &fx,
        "a",
        &[(
            1,
            vec![
                st("S5", Some("S7")),
                st("S6", None),
                st("S7", Some("S5")).handler_stack(&["S3"], &["S4"]),
            ],
        )],
        &[("OnResponse1", Some("OnResponse2"), "BankUS")],
    );
    let m = Migration::from_plan(p).unwrap();
    let db = apply::Db::connect(&fx.connect).unwrap();
    let r = apply::status(&db, StatusSubject::Plan(&m), &Silent).unwrap();
    assert_eq!(r.class, fx.class);
    assert_eq!(r.census.rows_at(&fx.table(1), "S5"), 2);
    assert_eq!(r.census.pending_for(&fx.table(1), "BankUS"), 1);
    assert_eq!(r.census.handlers.len(), 1);
    assert_eq!(r.quiet.items.len(), 1);
    assert_eq!(r.quiet.live_jobs.len(), 1);
    let plan_status = r.plan.expect("plan status");
    assert_eq!(plan_status.state, bplmigrate::apply::PlanState::NotApplied);
    let actions: Vec<(Option<&str>, Option<&str>, &str, i64)> = plan_status
        .moves
        .iter()
        .map(|g| {
            (
                g.from.as_deref(),
                g.to.as_deref(),
                g.action.as_str(),
                g.rows,
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            (Some("S5"), Some("S7"), "rewrite", 2),
            (Some("S6"), Some("S6"), "blocked", 1),
            (Some("S7"), Some("S5"), "rewrite", 1),
            (Some("Stop"), Some("Stop"), "keep", 1),
            (Some("OnResponse1"), Some("OnResponse2"), "rewrite", 1),
        ]
    );
    assert!(plan_status
        .checks
        .iter()
        .any(|c| !c.ok && c.description.contains("S6")));
    let kinds: Vec<&str> = plan_status
        .refusals
        .iter()
        .map(|r| match r {
            Refusal::HostEnabled { .. } => "host",
            Refusal::LiveJob { .. } => "job",
            Refusal::Precondition { .. } => "precondition",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["host", "job", "precondition"]);
}

#[test]
fn status_of_a_process_counts_its_tables_and_notes_missing_ones() {
    let Some(fx) = Fixture::new("StatusProc", 1) else {
        return;
    };
    fx.seed(1, &[row("S2", 3), row("S2", 3)]);
    let xml = r#"<process request="Ens.Request" response="Ens.Response">
  <sequence>
    <flow>
      <sequence><assign property="context.A" value="1"/></sequence>
      <sequence><assign property="context.B" value="2"/></sequence>
    </flow>
  </sequence>
</process>"#;
    let bpl = bplmigrate::bpl::parse_bare("test.xml", xml, &fx.class).unwrap();
    let process = bplmigrate::states::compile(&bpl, Default::default()).unwrap();
    assert!(process.threads.len() >= 2, "a flow makes thread classes");
    let db = apply::Db::connect(&fx.connect).unwrap();
    let r = apply::status(&db, StatusSubject::Process(&process), &Silent).unwrap();
    assert_eq!(r.census.rows_at(&fx.table(1), "S2"), 2);
    assert!(
        r.census.missing_tables.iter().any(|t| t.table == "Thread2"),
        "{:?}",
        r.census.missing_tables
    );
    assert!(r.plan.is_none());
}
