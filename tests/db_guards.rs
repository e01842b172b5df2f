//! The forward-apply guard on real rows: a row the old BPL cannot have written (a `%NextState`,
//! a stack value or a response handler it does not have) is refused before anything is
//! written, by `apply` and in `status` — the database may already be on the new numbering.

mod support;

use bplmigrate::apply::{self, Migration, Refusal, StatusSubject};
use support::{plan, refusals, row, st, Fixture, Row};

fn unknown_refusals(r: &[Refusal]) -> Vec<(String, i64)> {
    r.iter()
        .filter_map(|x| match x {
            Refusal::Precondition { description, rows }
            | Refusal::UnknownRows { description, rows }
                if description.contains("is the new class already running") =>
            {
                Some((description.clone(), *rows))
            }
            _ => None,
        })
        .collect()
}

/// A database already on the new numbering (the new class ran, or the UPDATE was run by hand):
/// S11 → S13 must not be applied to rows that already are at S13.
#[test]
fn rows_at_a_state_the_old_bpl_lacks_are_refused_and_nothing_changes() {
    let Some(fx) = Fixture::new("Foreign", 1) else {
        return;
    };
    fx.seed(
        1,
        &[row("S11", 3), row("S13", 3), row("S13", 3), row("Stop", 2)],
    );
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S10", Some("S10")), st("S11", Some("S13"))])],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    let u = unknown_refusals(&r);
    assert_eq!(u.len(), 1, "{r:?}");
    assert_eq!(u[0].1, 2);
    assert!(
        u[0].0.starts_with("2 instances waiting at Thread1:S13"),
        "{}",
        u[0].0
    );
    assert!(
        u[0].0.contains("the old BPL has no state S13"),
        "{}",
        u[0].0
    );
    assert_eq!(fx.snapshot(), before, "a refused apply changed something");
    // status says the same, read-only.
    let db = apply::Db::connect(&fx.connect).unwrap();
    let s = apply::status(&db, StatusSubject::Plan(&m), &apply::Silent).unwrap();
    let p = s.plan.unwrap();
    assert_eq!(unknown_refusals(&p.refusals).len(), 1, "{:?}", p.refusals);
    assert_eq!(fx.snapshot(), before);
}

/// The same plan applied a second time by hand-running its rewrite: the re-apply is refused
/// instead of moving S7 rows (now meaning S5) again.
#[test]
fn a_migration_already_run_by_hand_is_refused() {
    let Some(fx) = Fixture::new("ByHand", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3), row("S6", 3)]);
    // S5 → S7, S6 → S8: the new BPL has two more states in front.
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S7")), st("S6", Some("S8"))])],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    let script = m
        .script(bplmigrate::sql::Dialect::Postgres, apply::Direction::Apply)
        .unwrap();
    for rw in &script.rewrites {
        fx.exec(rw.sql.as_str());
    }
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    let u = unknown_refusals(&r);
    assert_eq!(u.len(), 2, "{r:?}");
    assert!(u[0].0.contains("Thread1:S7"), "{}", u[0].0);
    assert!(u[1].0.contains("Thread1:S8"), "{}", u[1].0);
    assert_eq!(fx.snapshot(), before);
}

/// A stack value the old BPL never writes (it names a state it does not have) is refused,
/// while the stacks it does write pass.
#[test]
fn a_stack_naming_an_unknown_state_is_refused() {
    let Some(fx) = Fixture::new("ForeignStack", 1) else {
        return;
    };
    let known = Row {
        handler_stack: &["S3"],
        ..row("S4", 3)
    };
    fx.seed(1, &[known]);
    let p = plan(
        &fx,
        "a",
        &[(
            1,
            vec![
                st("S3", Some("S3")),
                st("S4", Some("S5")).handler_stack(&["S3"], &["S3"]),
            ],
        )],
        &[],
    );
    let m = Migration::from_plan(p).unwrap();
    fx.dry_run(&m).expect("known stacks pass");
    fx.seed(
        1,
        &[Row {
            handler_stack: &["S9"],
            ..row("S3", 3)
        }],
    );
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    let u = unknown_refusals(&r);
    assert_eq!(u.len(), 1, "{r:?}");
    assert!(u[0].0.contains("%HandlerStack"), "{}", u[0].0);
    assert_eq!(u[0].1, 1);
    assert_eq!(fx.snapshot(), before);
}

/// A context row naming a response handler the old BPL does not have is refused.
#[test]
fn a_response_handler_the_old_bpl_lacks_is_refused() {
    let Some(fx) = Fixture::new("ForeignHandler", 1) else {
        return;
    };
    fx.seed(1, &[row("S4", 3)]);
    fx.add_context(&[("BankUS", "OnResponse2"), ("BankEU", "OnResponse3")]);
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S4", Some("S4"))])],
        &[("OnResponse1", Some("OnResponse2"), "BankUS")],
    );
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    let u = unknown_refusals(&r);
    assert_eq!(u.len(), 1, "{r:?}");
    assert!(u[0].0.contains("response handlers"), "{}", u[0].0);
    assert_eq!(u[0].1, 2);
    assert_eq!(fx.snapshot(), before);
}
