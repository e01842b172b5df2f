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
    assert!(u[0].0.contains("response handler"), "{}", u[0].0);
    // BankUS → OnResponse2 names a handler the old BPL lacks; so does BankEU → OnResponse3.
    assert!(
        u[0].0
            .ends_with("[BankEU → OnResponse3 (1 row), BankUS → OnResponse2 (1 row)]"),
        "{}",
        u[0].0
    );
    assert_eq!(u[0].1, 2);
    assert_eq!(fx.snapshot(), before);
}

/// The `(call name, handler)` pairs of every context row, in row order.
fn pairs(fx: &Fixture) -> Vec<(String, String)> {
    fx.handlers()
}

fn owned(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Review 13, D1: an entry of `%ResponseHandlers` is the pair (call name, handler) a call
/// registers when it is sent. `handler_renumbering` (old: Credit → OnResponse1, Notify →
/// OnResponse2; new: Audit → OnResponse1, Credit → OnResponse2, Notify → OnResponse3): a
/// context of the new class (Audit → OnResponse1, Credit → OnResponse2) and a key no version
/// has name only handlers the old class has, but under calls that never register them. They
/// are refused, named pair by pair, nothing changed; `status` says so too. Without them the
/// old class's own entries are renumbered.
#[test]
fn response_handler_pairs_the_old_bpl_never_registers_are_refused() {
    let Some(fx) = Fixture::new("HandlerPairs", 1) else {
        return;
    };
    let p = support::fixture_plan(
        std::path::Path::new("fixtures/changes/handler_renumbering"),
        &fx,
    );
    support::create_plan_tables(&fx, &p);
    fx.seed(1, &[row("S2", 3), row("S6", 3), row("S2", 3)]);
    fx.add_context(&[("Credit", "OnResponse1")]);
    fx.add_context(&[("Credit", "OnResponse1"), ("Notify", "OnResponse2")]);
    let stranger = fx.add_context(&[
        ("Audit", "OnResponse1"),
        ("Credit", "OnResponse2"),
        ("Bogus", "OnResponse1"),
    ]);
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    let u = unknown_refusals(&r);
    assert_eq!(u.len(), 1, "{r:?}");
    assert_eq!(u[0].1, 3, "{r:?}");
    assert!(
        u[0].0.starts_with("context rows pair a call name with a response handler the old")
            && u[0].0.ends_with(
                "[Audit → OnResponse1 (1 row), Bogus → OnResponse1 (1 row), Credit → OnResponse2 (1 row)]"
            ),
        "{}",
        u[0].0
    );
    assert_eq!(fx.snapshot(), before, "a refused apply changed something");
    // status: the check fails with the same count, and the blocker names the pairs.
    let db = apply::Db::connect(&fx.connect).unwrap();
    let s = apply::status(&db, StatusSubject::Plan(&m), &apply::Silent).unwrap();
    let ps = s.plan.as_ref().unwrap();
    let check = ps
        .checks
        .iter()
        .find(|c| {
            c.description
                .starts_with("every context row pairs a call name")
        })
        .expect("the handler check is listed");
    assert!(!check.ok && check.rows == 3, "{check:?}");
    assert!(
        check.description.contains("Credit → OnResponse2 (1 row)"),
        "{check:?}"
    );
    assert_eq!(unknown_refusals(&ps.refusals).len(), 1, "{:?}", ps.refusals);
    assert_eq!(fx.snapshot(), before);
    // The old class's own entries apply once the strangers are gone.
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Context__ResponseHandlers" WHERE "Context" = {stranger}"#,
        fx.schema
    ));
    let report = fx.apply_plan(&m).unwrap();
    assert_eq!(
        report.statements.iter().filter_map(|s| s.rows).max(),
        Some(3)
    );
    assert_eq!(
        pairs(&fx),
        owned(&[
            ("Credit", "OnResponse2"),
            ("Credit", "OnResponse2"),
            ("Notify", "OnResponse3")
        ])
    );
}

/// D1 with a call named at runtime (`@context.Key` → OnResponse1 in
/// `removed_unsynced_async_call_at`): its entries may be under any key, so OnResponse1 passes
/// whatever the key; the literal call's handler (Review → OnResponse2) passes only under
/// "Review".
#[test]
fn a_runtime_call_name_accepts_its_handler_under_any_key_and_no_other() {
    let Some(fx) = Fixture::new("HandlerPairsAt", 1) else {
        return;
    };
    let p = support::fixture_plan(
        std::path::Path::new("fixtures/changes/removed_unsynced_async_call_at"),
        &fx,
    );
    support::create_plan_tables(&fx, &p);
    fx.seed(1, &[row("S4", 3)]);
    fx.add_context(&[("Loan42", "OnResponse1"), ("Review", "OnResponse2")]);
    fx.add_context(&[("Review", "OnResponse1")]);
    let odd = fx.add_context(&[("Loan42", "OnResponse2")]);
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    let u = unknown_refusals(&r);
    assert_eq!(u.len(), 1, "{r:?}");
    assert_eq!(u[0].1, 1, "{r:?}");
    assert!(
        u[0].0.ends_with("[Loan42 → OnResponse2 (1 row)]"),
        "{}",
        u[0].0
    );
    assert_eq!(fx.snapshot(), before);
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Context__ResponseHandlers" WHERE "Context" = {odd}"#,
        fx.schema
    ));
    fx.apply_plan(&m).unwrap();
    // OnResponse1 (the removed @ call's) is kept as it is; Review's becomes OnResponse1.
    assert_eq!(
        pairs(&fx),
        owned(&[
            ("Loan42", "OnResponse1"),
            ("Review", "OnResponse1"),
            ("Review", "OnResponse1")
        ])
    );
}

/// The revert checks pairs too: after `handler_renumbering` is applied, an entry Notify →
/// OnResponse2 (Credit's handler in the new class, under Notify) would be reverted to
/// Notify → OnResponse1, Credit's old handler: refused, nothing changed; the entries the
/// apply rewrote revert.
#[test]
fn a_revert_refuses_pairs_no_old_pair_became() {
    let Some(fx) = Fixture::new("HandlerPairsRev", 1) else {
        return;
    };
    let p = support::fixture_plan(
        std::path::Path::new("fixtures/changes/handler_renumbering"),
        &fx,
    );
    support::create_plan_tables(&fx, &p);
    fx.seed(1, &[row("S2", 3)]);
    fx.add_context(&[("Credit", "OnResponse1"), ("Notify", "OnResponse2")]);
    let m = Migration::from_plan(p).unwrap();
    fx.apply_plan(&m).unwrap();
    let odd = fx.add_context(&[("Notify", "OnResponse2")]);
    let before = fx.snapshot();
    let r = refusals(fx.revert_plan(&m));
    let t: Vec<String> = r.iter().map(|x| x.to_string()).collect();
    assert!(
        t.iter()
            .any(|x| x.starts_with("context rows pair a call name")
                && x.contains("[Notify → OnResponse2 (1 row)]")),
        "{t:?}"
    );
    assert_eq!(fx.snapshot(), before);
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Context__ResponseHandlers" WHERE "Context" = {odd}"#,
        fx.schema
    ));
    fx.revert_plan(&m).unwrap();
    assert_eq!(
        pairs(&fx),
        owned(&[("Credit", "OnResponse1"), ("Notify", "OnResponse2")])
    );
}
