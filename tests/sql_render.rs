//! `sql` stage: rendered scripts (snapshots in `fixtures/sql/`, `BLESS=1` rewrites them),
//! swap safety, parse-back, injection attempts, revert, migration folders.

use bplmigrate::bpl::ActivityId;
use bplmigrate::plan::{
    ContextPropertyChange, Finding, HandlerMapping, MigrationPlan, PlanSource, Precondition,
    PropertyChange, Severity, StateChange, StateMapping, ThreadMapping, Verdict,
    PLAN_SCHEMA_VERSION,
};
use bplmigrate::sql::{
    self, parse, predict_after, render, render_objectscript, render_revert,
    verify_migration_folder, write_migration_folder, Dialect, Direction, FolderOptions, GuardKind,
    SqlError, SqlScript, CHECKSUM_FILE,
};
use bplmigrate::states::{ActivityRef, Role, SqlTable, StateName, StateNames};
use sqlparser::ast::{Expr, Statement, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[path = "support/snap.rs"]
mod snap;

// ---------------------------------------------------------------------------------------
// Hand-built plans

fn act(id: u32, element: &str, name: Option<&str>) -> ActivityRef {
    ActivityRef {
        id: ActivityId(id),
        element: bplmigrate::bpl::Element::from_name(element).expect("a BPL element"),
        name: name.map(Into::into),
        line: 10 + id,
        column: 5,
    }
}

fn table(class: &str) -> SqlTable {
    SqlTable::for_class(class)
}

/// Built through JSON so fields added to the plan contract later (all optional in JSON) do
/// not break the builder.
fn st(old: &str, new: Option<&str>) -> StateMapping {
    let n: u32 = old[1..].parse().unwrap_or(0);
    let change = match new {
        None => StateChange::Removed,
        Some(x) if x == old => StateChange::Unchanged,
        Some(_) => StateChange::Renumbered,
    };
    serde_json::from_value(serde_json::json!({
        "old": old,
        "new": new,
        "role": Role::Entry,
        "old_activity": act(n, "assign", Some(&format!("A{n}"))),
        "new_activity": new.map(|_| act(n, "assign", Some(&format!("A{n}")))),
        "wait": false,
        "change": change,
        "via": "exact",
    }))
    .unwrap()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn names(v: &[&str]) -> StateNames {
    v.iter().map(|s| s.parse::<StateName>().unwrap()).collect()
}

fn thread(class: &str, k: u32, new_k: Option<u32>, states: Vec<StateMapping>) -> ThreadMapping {
    let old_class = format!("{class}.Thread{k}");
    let new_class = new_k.map(|n| format!("{class}.Thread{n}"));
    ThreadMapping {
        old_table: table(&old_class),
        new_table: new_class.as_deref().map(table),
        old_class,
        new_class,
        states,
    }
}

fn base(class: &str) -> MigrationPlan {
    MigrationPlan {
        schema_version: PLAN_SCHEMA_VERSION,
        plan_id: "0123456789abcdef".into(),
        tool_version: "0.1.0".into(),
        compiler: "current".into(),
        old: PlanSource {
            origin: "old.cls".into(),
            sha256: "a".repeat(64),
            class: class.into(),
            package: class.into(),
            version: None,
        },
        new: PlanSource {
            origin: "new.cls".into(),
            sha256: "b".repeat(64),
            class: class.into(),
            package: class.into(),
            version: None,
        },
        verdict: Verdict::Migratable,
        threads: vec![],
        response_handlers: vec![],
        response_handler_table: table(&format!("{class}.Context")).child("%ResponseHandlers"),
        context_table: table(&format!("{class}.Context")),
        context_properties: vec![],
        preconditions: vec![],
        findings: vec![],
        suggestions: vec![],
        no_suggestions: vec![],
        default_suggestions: vec![],
        overrides: vec![],
    }
}

/// S5 ↔ S7 swap in Thread1 (S1…S8), OnResponse1 ↔ OnResponse2.
fn swap_plan() -> MigrationPlan {
    let mut p = base("Demo.BP");
    let states = (1..=8)
        .map(|i| {
            let old = format!("S{i}");
            let new = match i {
                5 => "S7".to_string(),
                7 => "S5".to_string(),
                _ => old.clone(),
            };
            st(&old, Some(&new))
        })
        .collect();
    p.threads = vec![thread("Demo.BP", 1, Some(1), states)];
    p.response_handlers = vec![
        HandlerMapping {
            old: "OnResponse1".into(),
            new: Some("OnResponse2".into()),
            call: "BankUS".into(),
            new_call: None,
            body_changed: false,
        },
        HandlerMapping {
            old: "OnResponse2".into(),
            new: Some("OnResponse1".into()),
            call: "BankSoprano".into(),
            new_call: None,
            body_changed: false,
        },
    ];
    p
}

/// A cycle S3 → S4 → S5 → S3 inside a scope whose fault state moved (S2 → S6): the handler
/// stack of every state in the scope changes, plus a compensation return on S8.
fn cycle_plan() -> MigrationPlan {
    let mut p = base("Demo.Loan.BankUS");
    let mut s = vec![
        st("S1", Some("S1")),
        st("S2", Some("S6")),
        st("S3", Some("S4")),
        st("S4", Some("S5")),
        st("S5", Some("S3")),
        st("S6", Some("S2")),
        st("S7", Some("S7")),
        st("S8", Some("S8")),
    ];
    for m in &mut s[2..=4] {
        m.old_handler_stack = names(&["S2"]);
        m.new_handler_stack = names(&["S6"]);
    }
    // S7: entered a new scope (no stack before).
    s[6].new_handler_stack = names(&["S6"]);
    // S8: inside a compensation handler; its return state was renumbered.
    s[7].old_subroutine_stack = names(&["S5"]);
    s[7].new_subroutine_stack = names(&["S3"]);
    p.threads = vec![thread("Demo.Loan.BankUS", 1, Some(1), s)];
    p
}

/// Everything that blocks a revert: a removed state, a flow thread renumbered, a removed
/// handler, a renamed call; plus a new context property with a default.
fn blocked_plan() -> MigrationPlan {
    let mut p = base("Demo.Loan.BankUS");
    let t1 = thread(
        "Demo.Loan.BankUS",
        1,
        Some(1),
        vec![
            st("S1", Some("S1")),
            st("S2", Some("S3")),
            st("S3", Some("S4")),
            st("S4", None),
            st("S5", Some("S6")),
        ],
    );
    let t2 = thread(
        "Demo.Loan.BankUS",
        2,
        Some(3),
        vec![st("S1", Some("S1")), st("S2", Some("S2"))],
    );
    let t3 = thread("Demo.Loan.BankUS", 3, Some(2), vec![st("S1", Some("S1"))]);
    p.threads = vec![t1, t2, t3];
    p.response_handlers = vec![
        HandlerMapping {
            old: "OnResponse1".into(),
            new: None,
            call: "Credit".into(),
            new_call: None,
            body_changed: false,
        },
        HandlerMapping {
            old: "OnResponse2".into(),
            new: Some("OnResponse1".into()),
            call: "BankUS".into(),
            new_call: None,
            body_changed: false,
        },
    ];
    let t1 = table("Demo.Loan.BankUS.Thread1");
    p.preconditions = vec![
        Precondition::NoRowsAtState {
            table: t1.clone(),
            state: "S4".into(),
            reason: "call \"Credit\" was removed".into(),
        },
        Precondition::NoPendingResponse {
            table: t1,
            call: "Credit".into(),
            reason: "call \"Credit\" was removed".into(),
            new_call: None,
        },
        Precondition::HostDisabled {
            class: "Demo.Loan.BankUS".into(),
        },
    ];
    p.context_properties = vec![
        ContextPropertyChange {
            name: "RiskScore".into(),
            change: PropertyChange::Added,
            old_type: None,
            new_type: Some("%Integer".into()),
            default: Some("0".into()),
        },
        ContextPropertyChange {
            name: "Note".into(),
            change: PropertyChange::Added,
            old_type: None,
            new_type: Some("%String".into()),
            default: Some("'n/a'".into()),
        },
        ContextPropertyChange {
            name: "Unused".into(),
            change: PropertyChange::Added,
            old_type: None,
            new_type: Some("%String".into()),
            default: None,
        },
    ];
    p.findings = vec![serde_json::from_value::<Finding>(serde_json::json!({
        "code": "BPM0103",
        "severity": Severity::Error,
        "message": "call \"Credit\" that in-flight instances wait on was removed",
        "states": ["Thread1:S4"],
        "activities": [act(4, "call", Some("Credit"))],
    }))
    .unwrap()];
    p.verdict = Verdict::Blocked;
    p
}

fn identical_plan() -> MigrationPlan {
    let mut p = base("Demo.BP");
    p.threads = vec![thread(
        "Demo.BP",
        1,
        Some(1),
        vec![st("S1", Some("S1")), st("S2", Some("S2"))],
    )];
    p.verdict = Verdict::Identical;
    p
}

// ---------------------------------------------------------------------------------------
// Snapshots

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sql")
}

fn snapshot(name: &str, actual: &str) {
    snap::assert_snapshot(fixture_dir().join(name), actual);
}

fn dialect_name(d: Dialect) -> &'static str {
    match d {
        Dialect::Iris => "iris",
        Dialect::Postgres => "postgres",
    }
}

fn revert_text(p: &MigrationPlan, d: Dialect) -> String {
    match render_revert(p, d) {
        Ok(s) => s.to_sql_text(),
        Err(e) => format!("-- {e}\n"),
    }
}

#[test]
fn snapshots_of_rendered_scripts() {
    let cases = [
        ("swap", swap_plan()),
        ("cycle", cycle_plan()),
        ("blocked", blocked_plan()),
        ("identical", identical_plan()),
    ];
    for (name, plan) in &cases {
        for d in [Dialect::Iris, Dialect::Postgres] {
            let dn = dialect_name(d);
            snapshot(
                &format!("{name}.apply.{dn}.sql"),
                &render(plan, d).unwrap().to_sql_text(),
            );
            snapshot(&format!("{name}.revert.{dn}.sql"), &revert_text(plan, d));
        }
    }
    snapshot(
        "swap.objectscript.cls",
        &render_objectscript(&swap_plan()).unwrap(),
    );
    snapshot(
        "blocked.objectscript.cls",
        &render_objectscript(&blocked_plan()).unwrap(),
    );
}

// ---------------------------------------------------------------------------------------
// Every statement: one statement, parses, round-trips

fn all_statements(s: &SqlScript) -> Vec<String> {
    let mut v: Vec<String> = s
        .guards
        .iter()
        .map(|g| g.sql.as_str().to_string())
        .collect();
    v.extend(s.census.iter().map(|c| c.sql.as_str().to_string()));
    v.extend(s.writes().iter().map(|(_, q)| q.as_str().to_string()));
    v
}

#[test]
fn every_statement_parses_back_and_round_trips() {
    for plan in [swap_plan(), cycle_plan(), blocked_plan(), identical_plan()] {
        for d in [Dialect::Iris, Dialect::Postgres] {
            let mut scripts = vec![render(&plan, d).unwrap()];
            if let Ok(r) = render_revert(&plan, d) {
                scripts.push(r);
            }
            for s in &scripts {
                for sql in all_statements(s) {
                    let stmts = parse(&sql, d).unwrap_or_else(|e| panic!("{e}: {sql}"));
                    assert_eq!(stmts.len(), 1, "{sql}");
                    let printed = stmts[0].to_string();
                    let again = parse(&printed, d).unwrap();
                    assert_eq!(again, stmts, "round trip changed the tree of {sql}");
                    assert!(!sql.contains(';'), "{sql}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Swap safety, by evaluating the parsed UPDATE on rows in memory

#[derive(Debug, Clone, PartialEq)]
enum V {
    Null,
    S(String),
    List(Vec<String>),
}

fn eval(e: &Expr, row: &BTreeMap<String, V>) -> V {
    match e {
        Expr::Identifier(i) => row.get(&i.value).cloned().unwrap_or(V::Null),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => V::S(s.clone()),
            Value::Null => V::Null,
            other => panic!("unexpected literal {other}"),
        },
        // Simple CASE: the first WHEN equal to the operand (a NULL operand equals nothing);
        // searched CASE: the first WHEN whose condition is true (not false, not unknown).
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let x = operand.as_ref().map(|op| eval(op, row));
            for c in conditions {
                let hit = match &x {
                    Some(x) => sql_eq(&eval(&c.condition, row), x),
                    None => truth(&c.condition, row),
                };
                if hit == Some(true) {
                    return eval(&c.result, row);
                }
            }
            else_result
                .as_ref()
                .map(|e| eval(e, row))
                .unwrap_or(V::Null)
        }
        Expr::Function(f) => {
            let sqlparser::ast::FunctionArguments::List(l) = &f.args else {
                panic!()
            };
            V::List(
                l.args
                    .iter()
                    .map(|a| match a {
                        sqlparser::ast::FunctionArg::Unnamed(
                            sqlparser::ast::FunctionArgExpr::Expr(x),
                        ) => match eval(x, row) {
                            V::S(s) => s,
                            other => panic!("{other:?}"),
                        },
                        _ => panic!(),
                    })
                    .collect(),
            )
        }
        other => panic!("unexpected expression {other}"),
    }
}

/// SQL `=`: unknown (None) when either side is NULL.
fn sql_eq(a: &V, b: &V) -> Option<bool> {
    match (a, b) {
        (V::Null, _) | (_, V::Null) => None,
        _ => Some(a == b),
    }
}

/// A condition in SQL's three-valued logic (None: unknown).
fn truth(e: &Expr, row: &BTreeMap<String, V>) -> Option<bool> {
    use sqlparser::ast::BinaryOperator as B;
    match e {
        Expr::Nested(x) => truth(x, row),
        Expr::IsNull(x) => Some(eval(x, row) == V::Null),
        Expr::IsNotNull(x) => Some(eval(x, row) != V::Null),
        Expr::BinaryOp { left, op, right } => match op {
            B::Eq => sql_eq(&eval(left, row), &eval(right, row)),
            B::NotEq => sql_eq(&eval(left, row), &eval(right, row)).map(|b| !b),
            B::And => match (truth(left, row), truth(right, row)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            B::Or => match (truth(left, row), truth(right, row)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            other => panic!("unexpected operator {other}"),
        },
        other => panic!("unexpected condition {other}"),
    }
}

/// Apply a rendered UPDATE to rows: WHERE key IN (…), every SET computed from the old row.
fn run_update(sql: &str, d: Dialect, rows: &mut [BTreeMap<String, V>]) -> usize {
    let stmts = parse(sql, d).unwrap();
    let Statement::Update(u) = &stmts[0] else {
        panic!("not an update: {sql}")
    };
    let Some(Expr::InList {
        expr,
        list,
        negated: false,
    }) = &u.selection
    else {
        panic!()
    };
    let mut touched = 0;
    for row in rows.iter_mut() {
        let k = eval(expr, row);
        if !list.iter().any(|x| eval(x, row) == k) {
            continue;
        }
        touched += 1;
        let old = row.clone();
        for a in &u.assignments {
            let sqlparser::ast::AssignmentTarget::ColumnName(n) = &a.target else {
                panic!()
            };
            let col = n.0[0].as_ident().unwrap().value.clone();
            row.insert(col, eval(&a.value, &old));
        }
    }
    touched
}

fn row(state: &str, handler: &[&str], sub: &[&str]) -> BTreeMap<String, V> {
    let list = |v: &[&str]| {
        if v.is_empty() {
            V::Null
        } else {
            V::List(strs(v))
        }
    };
    BTreeMap::from([
        ("%NextState".to_string(), V::S(state.into())),
        ("%HandlerStack".to_string(), list(handler)),
        ("%SubroutineStack".to_string(), list(sub)),
    ])
}

#[test]
fn swap_s5_s7_moves_each_row_exactly_once() {
    for d in [Dialect::Iris, Dialect::Postgres] {
        let s = render(&swap_plan(), d).unwrap();
        let thread = s
            .rewrites
            .iter()
            .find(|r| r.key_column == "%NextState")
            .unwrap();
        assert_eq!(
            thread.mapping,
            vec![
                ("S5".to_string(), "S7".to_string()),
                ("S7".to_string(), "S5".to_string())
            ]
        );
        let mut rows = vec![
            row("S5", &[], &[]),
            row("S7", &[], &[]),
            row("S3", &[], &[]),
            row("S7", &[], &[]),
        ];
        assert_eq!(run_update(thread.sql.as_str(), d, &mut rows), 3);
        let states: Vec<V> = rows.iter().map(|r| r["%NextState"].clone()).collect();
        assert_eq!(
            states,
            vec![
                V::S("S7".into()),
                V::S("S5".into()),
                V::S("S3".into()),
                V::S("S5".into())
            ]
        );
        // One UPDATE per table: the thread table and the handler table.
        assert_eq!(s.rewrites.len(), 2);
        let h = &s.rewrites[1];
        assert_eq!(h.key_column, "_ResponseHandlers");
        let mut hrows = vec![
            BTreeMap::from([("_ResponseHandlers".to_string(), V::S("OnResponse1".into()))]),
            BTreeMap::from([("_ResponseHandlers".to_string(), V::S("OnResponse2".into()))]),
        ];
        run_update(h.sql.as_str(), d, &mut hrows);
        assert_eq!(hrows[0]["_ResponseHandlers"], V::S("OnResponse2".into()));
        assert_eq!(hrows[1]["_ResponseHandlers"], V::S("OnResponse1".into()));
    }
}

#[test]
fn cycle_with_stacks_keys_every_column_on_the_old_state() {
    for d in [Dialect::Iris, Dialect::Postgres] {
        let s = render(&cycle_plan(), d).unwrap();
        assert_eq!(s.rewrites.len(), 1);
        let rw = &s.rewrites[0];
        assert_eq!(
            rw.columns,
            strs(&["%NextState", "%HandlerStack", "%SubroutineStack"])
        );
        let mut rows = vec![
            row("S3", &["S2"], &[]),
            row("S4", &["S2"], &[]),
            row("S5", &["S2"], &[]),
            row("S2", &[], &[]),
            row("S6", &[], &[]),
            row("S7", &[], &[]),
            row("S8", &[], &["S5"]),
            row("S1", &[], &[]),
            // Stale entries (spec 4.3: a <break>/<continue> out of the scope, a compensation
            // handler left early): mapped like any other state name, whatever the state.
            row("S1", &["S2"], &[]),
            row("S6", &["S2"], &["S5"]),
            // A deeper stale stack no state predicts: not the plan's to map (the unmapped
            // guard refuses it); the UPDATE leaves it as it is.
            row("S1", &["S2", "S2"], &[]),
            // Finished rows are not selected.
            row("Stop", &["S2"], &[]),
        ];
        // Every state of the thread is selected (the value maps apply at every state).
        assert_eq!(run_update(rw.sql.as_str(), d, &mut rows), 11);
        assert_eq!(rows[0], row("S4", &["S6"], &[]));
        assert_eq!(rows[1], row("S5", &["S6"], &[]));
        assert_eq!(rows[2], row("S3", &["S6"], &[]));
        assert_eq!(rows[3], row("S6", &[], &[]));
        assert_eq!(rows[4], row("S2", &[], &[]));
        assert_eq!(rows[5], row("S7", &["S6"], &[]));
        assert_eq!(rows[6], row("S8", &[], &["S3"]));
        assert_eq!(rows[7], row("S1", &[], &[]));
        assert_eq!(rows[8], row("S1", &["S6"], &[]));
        assert_eq!(rows[9], row("S2", &["S6"], &["S3"]));
        assert_eq!(rows[10], row("S1", &["S2", "S2"], &[]));
        assert_eq!(rows[11], row("Stop", &["S2"], &[]));
        // Identity pairs for states only the stacks change at: the keys are exactly the IN list.
        for st in ["S1", "S7", "S8"] {
            assert!(rw.mapping.contains(&(st.into(), st.into())), "{st}");
        }
        assert_eq!(rw.mapping.len(), 8);
        // Only the state nested differently (S7 entered a scope) is guarded against another
        // stack than the predicted one: elsewhere a stale value is legitimate and mapped.
        let mismatch: Vec<&str> = s
            .guards
            .iter()
            .filter(|g| g.kind == GuardKind::StackMismatch)
            .map(|g| g.sql.as_str())
            .collect();
        assert_eq!(mismatch.len(), 1, "{mismatch:?}");
        assert!(
            mismatch[0].contains("\"%NextState\" = 'S7' AND \"%HandlerStack\" IS NOT NULL"),
            "{}",
            mismatch[0]
        );
        // Values no old state predicts ([S2,S2] above) are refused by the unmapped guard.
        let lb = match d {
            Dialect::Iris => "$LISTBUILD",
            Dialect::Postgres => "bplm_listbuild",
        };
        assert!(s.guards.iter().any(|g| g.kind == GuardKind::Unmapped
            && g.sql
                .as_str()
                .contains(&format!("\"%HandlerStack\" NOT IN ({lb}('S2'))"))
            && g.description.contains("value the plan cannot map")));
    }
}

#[test]
fn cycle_is_rendered_as_a_single_statement_per_table() {
    let text = render(&cycle_plan(), Dialect::Iris).unwrap().to_sql_text();
    assert_eq!(text.matches("UPDATE ").count(), 1, "{text}");
    assert!(text.contains("WHEN 'S3' THEN 'S4'") && text.contains("WHEN 'S5' THEN 'S3'"));
    // The handler stack: S7's new nesting keyed on the state and the value it holds, then
    // the value map at every state.
    assert!(text.contains(
        "\"%HandlerStack\" = CASE\n        WHEN \"%NextState\" = 'S7' AND (\"%HandlerStack\" IS NULL OR \"%HandlerStack\" = '') THEN $LISTBUILD('S6')\n        WHEN \"%HandlerStack\" = $LISTBUILD('S2') THEN $LISTBUILD('S6')"
    ), "{text}");
    // The subroutine stack changes only by value: a simple CASE on it.
    assert!(text.contains(
        "\"%SubroutineStack\" = CASE \"%SubroutineStack\"\n        WHEN $LISTBUILD('S5') THEN $LISTBUILD('S3')"
    ), "{text}");
    assert!(text.contains("$LISTBUILD('S6')"));
    let pg = render(&cycle_plan(), Dialect::Postgres)
        .unwrap()
        .to_sql_text();
    assert!(pg.contains("bplm_listbuild('S6')") && !pg.contains("$LISTBUILD"));
}

#[test]
fn predict_after_follows_the_mapping() {
    let s = render(&cycle_plan(), Dialect::Iris).unwrap();
    let before: BTreeMap<String, u64> = [("S3", 2), ("S4", 5), ("S5", 1), ("S1", 7), ("Stop", 3)]
        .iter()
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
    let after = s.predict(&s.census[0], &before);
    let want: BTreeMap<String, u64> = [("S4", 2), ("S5", 5), ("S3", 1), ("S1", 7), ("Stop", 3)]
        .iter()
        .map(|(k, n)| (k.to_string(), *n))
        .collect();
    assert_eq!(after, want);
    // Rows at every state of the thread are selected (the stack value maps apply whatever the
    // state): S3, S4, S5 and S1; not the finished ones at Stop.
    assert_eq!(s.expected_rows(&s.census[0].table, &before), 15);
    // Two states merged into one add up.
    let merged = predict_after(
        &before,
        &[("S3".into(), "S9".into()), ("S4".into(), "S9".into())],
    );
    assert_eq!(merged["S9"], 7);
}

#[test]
fn identity_mapping_writes_nothing() {
    let s = render(&identical_plan(), Dialect::Postgres).unwrap();
    assert!(s.rewrites.is_empty() && s.defaults.is_empty());
    assert_eq!(s.census.len(), 1);
    assert!(s.to_sql_text().contains("Nothing to rewrite"));
}

// ---------------------------------------------------------------------------------------
// Guards

#[test]
fn guards_cover_host_jobs_preconditions_and_implied_ones() {
    let s = render(&blocked_plan(), Dialect::Iris).unwrap();
    let sqls: Vec<&str> = s.guards.iter().map(|g| g.sql.as_str()).collect();
    assert!(sqls.contains(&"SELECT COUNT(*) FROM \"Ens_Config\".\"Item\" WHERE \"ClassName\" = 'Demo.Loan.BankUS' AND (\"PoolSize\" IS NULL OR (\"PoolSize\" <> 0 AND (\"Enabled\" IS NULL OR \"Enabled\" <> 0)))"));
    assert!(sqls.iter().any(|q| q.starts_with(
        "SELECT COUNT(*) FROM Ens.Job_Enumerate() WHERE (\"State\" IS NULL OR \"State\" <> 'Dead')"
    )));
    assert!(sqls.contains(
        &"SELECT COUNT(*) FROM \"Demo_Loan_BankUS\".\"Thread1\" WHERE \"%NextState\" = 'S4'"
    ));
    // Renumbered flow threads: both old tables must hold no unfinished row (rows at Stop are
    // kept until the purge and never resume).
    for t in ["Thread2", "Thread3"] {
        let q = format!(
            "SELECT COUNT(*) FROM \"Demo_Loan_BankUS\".\"{t}\" WHERE \"%NextState\" IS NULL OR \"%NextState\" <> 'Stop'"
        );
        assert!(sqls.contains(&q.as_str()), "{q}");
    }
    assert!(sqls
        .iter()
        .any(|q| q.contains("\"Thread1__PendingResponses\"") && q.contains("'Credit'")));
    // The entries naming the removed handler OnResponse1 are no guard (spec 5.2: they are
    // never removed, completed instances keep them): the pending-response guard above covers
    // what can read them; the handler rewrite's undo capture records them unchanged.
    assert!(sqls
        .iter()
        .all(|q| !q.contains("\"_ResponseHandlers\" = 'OnResponse1'")));
    let handlers = s
        .rewrites
        .iter()
        .find(|r| r.key_column == "_ResponseHandlers")
        .unwrap();
    assert_eq!(handlers.recorded, ["OnResponse1"]);
    assert!(!handlers.sql.as_str().contains("WHEN 'OnResponse1'"));
    assert!(handlers
        .undo
        .as_str()
        .contains("IN ('OnResponse2', 'OnResponse1')"));
    // HostDisabled from the plan is the same statement as the built-in one: listed once.
    assert_eq!(
        s.guards
            .iter()
            .filter(|g| g.kind == GuardKind::HostEnabled)
            .count(),
        1
    );
    // No rewrite for the renumbered flow threads.
    assert!(s
        .rewrites
        .iter()
        .all(|r| r.table.table == "Thread1" || r.key_column == "_ResponseHandlers"));
    let pg = render(&blocked_plan(), Dialect::Postgres).unwrap();
    assert!(pg.guards.iter().any(|g| g
        .sql
        .as_str()
        .starts_with("SELECT COUNT(*) FROM \"Ens\".\"Job_Enumerate\"()")));
}

#[test]
fn defaults_fill_only_null_rows_with_a_checked_literal() {
    let s = render(&blocked_plan(), Dialect::Postgres).unwrap();
    let sqls: Vec<&str> = s.defaults.iter().map(|d| d.sql.as_str()).collect();
    assert_eq!(
        sqls,
        vec![
            "UPDATE \"Demo_Loan_BankUS\".\"Context\" SET \"RiskScore\" = 0 WHERE \"RiskScore\" IS NULL",
            "UPDATE \"Demo_Loan_BankUS\".\"Context\" SET \"Note\" = 'n/a' WHERE \"Note\" IS NULL",
        ]
    );
    let mut p = blocked_plan();
    p.context_properties[0].default =
        Some("0; DELETE FROM \"Demo_Loan_BankUS\".\"Context\"".into());
    assert!(matches!(
        render(&p, Dialect::Iris),
        Err(SqlError::InvalidDefault { .. })
    ));
    p.context_properties[0].default = Some("(SELECT MAX(\"ID\") FROM x)".into());
    assert!(matches!(
        render(&p, Dialect::Iris),
        Err(SqlError::InvalidDefault { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Hostile names

#[test]
fn malicious_names_never_make_a_second_statement() {
    // Identifiers: refused.
    let mut p = swap_plan();
    p.threads[0].old_table.schema = "Demo\"; DROP TABLE x; --".into();
    p.threads[0].new_table = Some(p.threads[0].old_table.clone());
    assert!(matches!(
        render(&p, Dialect::Iris),
        Err(SqlError::InvalidIdentifier { .. })
    ));
    let mut p = blocked_plan();
    p.context_properties[0].name = "Risk\"Score".into();
    assert!(matches!(
        render(&p, Dialect::Postgres),
        Err(SqlError::InvalidIdentifier { .. })
    ));
    let mut p = blocked_plan();
    p.context_properties[0].name = "Risk/*x*/".into();
    assert!(render(&p, Dialect::Postgres).is_err());
    // State names are not free text: a plan.json naming anything else does not load, and
    // says where.
    let json = serde_json::to_string_pretty(&swap_plan()).unwrap();
    for (field, evil) in [
        ("new", "S7'; DELETE FROM t; --"),
        ("old", "S01"),
        ("new", "s7"),
        ("old", "S99999999999"),
    ] {
        let from = format!("\"{field}\": \"S5\"");
        assert!(json.contains(&from), "{json}");
        let edited = json.replacen(&from, &format!("\"{field}\": \"{evil}\""), 1);
        let e = serde_json::from_str::<MigrationPlan>(&edited).unwrap_err();
        let line = edited[..edited.find(evil).unwrap()].lines().count();
        assert_eq!(e.line(), line, "{e}");
        assert!(
            e.to_string().contains("is not a state name (S<n> or Stop)"),
            "{e}"
        );
    }
    // Stack entries too.
    let json = serde_json::to_string_pretty(&cycle_plan()).unwrap();
    let from = "\"new_handler_stack\": [";
    assert!(json.contains(from), "{json}");
    let edited = json.replacen(from, "\"new_handler_stack\": [\"S0\", ", 1);
    let e = serde_json::from_str::<MigrationPlan>(&edited).unwrap_err();
    assert!(e.to_string().contains("\"S0\" is not a state name"), "{e}");
    // Literals (call names, class names): escaped, and still one statement.
    let mut p = blocked_plan();
    let evil = "Cr'edit'); DELETE FROM \"Ens_Config\".\"Item\"; --";
    p.preconditions[1] = Precondition::NoPendingResponse {
        table: table("Demo.Loan.BankUS.Thread1"),
        call: evil.into(),
        reason: "x\nDROP TABLE y".into(),
        new_call: None,
    };
    p.old.class = "Demo.Loan'; DELETE FROM x; --".into();
    p.old.origin = "evil\nDROP TABLE z;".into();
    for d in [Dialect::Iris, Dialect::Postgres] {
        let s = render(&p, d).unwrap();
        for sql in all_statements(&s) {
            assert_eq!(parse(&sql, d).unwrap().len(), 1, "{sql}");
        }
        let g = s
            .guards
            .iter()
            .find(|g| g.sql.as_str().contains("PendingResponses"))
            .unwrap();
        assert!(
            g.sql
                .as_str()
                .contains("'Cr''edit''); DELETE FROM \"Ens_Config\".\"Item\"; --'"),
            "{}",
            g.sql.as_str()
        );
        // Comments in the file cannot be broken out of.
        let text = s.to_sql_text();
        for line in text.lines() {
            assert!(!line.starts_with("DROP"), "{line}");
        }
    }
    // A control character in a literal is refused outright.
    let mut p = blocked_plan();
    p.preconditions[1] = Precondition::NoPendingResponse {
        table: table("Demo.Loan.BankUS.Thread1"),
        call: "a\nb".into(),
        reason: String::new(),
        new_call: None,
    };
    assert!(matches!(
        render(&p, Dialect::Iris),
        Err(SqlError::InvalidLiteral { .. })
    ));
    // A backslash is refused in postgres (standard_conforming_strings might be off).
    let mut p = blocked_plan();
    p.preconditions[1] = Precondition::NoPendingResponse {
        table: table("Demo.Loan.BankUS.Thread1"),
        call: "a\\".into(),
        reason: String::new(),
        new_call: None,
    };
    assert!(render(&p, Dialect::Postgres).is_err());
    assert!(render(&p, Dialect::Iris).is_ok());
}

#[test]
fn history_insert_binds_every_value() {
    let t = SqlTable {
        schema: "BplMigrate".into(),
        table: "History".into(),
    };
    let q = sql::history_insert(Dialect::Postgres, &t, &["PlanId", "Outcome"]).unwrap();
    assert_eq!(
        q.as_str(),
        "INSERT INTO \"BplMigrate\".\"History\" (\"PlanId\", \"Outcome\") VALUES (?, ?)"
    );
    assert!(sql::history_insert(Dialect::Iris, &t, &["Plan\"Id"]).is_err());
}

// ---------------------------------------------------------------------------------------
// Revert

#[test]
fn swap_reverts_to_the_original_rows() {
    for d in [Dialect::Iris, Dialect::Postgres] {
        let fwd = render(&cycle_plan(), d).unwrap();
        let back = render_revert(&cycle_plan(), d).unwrap();
        assert_eq!(back.direction, Direction::Revert);
        let original = vec![
            row("S3", &["S2"], &[]),
            row("S5", &["S2"], &[]),
            row("S7", &[], &[]),
            row("S8", &[], &["S5"]),
            // Stale entries at states outside the scope map there and back too.
            row("S1", &["S2"], &["S5"]),
            row("S6", &["S2"], &[]),
        ];
        let mut rows = original.clone();
        run_update(fwd.rewrites[0].sql.as_str(), d, &mut rows);
        assert_ne!(rows, original);
        run_update(back.rewrites[0].sql.as_str(), d, &mut rows);
        assert_eq!(rows, original);
        // Rows at states that only exist in the new version block the revert.
        assert!(back.guards.iter().any(|g| g.kind == GuardKind::Unmapped
            && g.sql
                .as_str()
                .contains("NOT IN ('S1', 'S6', 'S4', 'S5', 'S3', 'S2', 'S7', 'S8', 'Stop')")));
    }
}

#[test]
fn non_invertible_plans_say_why() {
    let Err(SqlError::NotInvertible { reasons, .. }) =
        render_revert(&blocked_plan(), Dialect::Iris)
    else {
        panic!("blocked plan reverted")
    };
    let all = reasons.join("\n");
    assert!(
        all.contains("state S4 of Demo.Loan.BankUS.Thread1 was removed"),
        "{all}"
    );
    assert!(
        all.contains("Thread2 became Demo.Loan.BankUS.Thread3"),
        "{all}"
    );
    assert!(all.contains("OnResponse1"), "{all}");
    let mut merged = swap_plan();
    merged.threads[0].states[4].new = Some(StateName::s(5));
    let Err(SqlError::NotInvertible { reasons, .. }) = render_revert(&merged, Dialect::Iris) else {
        panic!()
    };
    assert!(
        reasons[0].contains("states S5, S7 of Demo.BP.Thread1 all map to S5"),
        "{reasons:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Migration folders

#[test]
fn folder_is_written_verified_and_tamper_evident() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = FolderOptions {
        dialect: Dialect::Iris,
        objectscript: true,
    };
    let dir = write_migration_folder(&swap_plan(), tmp.path(), &opts).unwrap();
    assert_eq!(
        dir.file_name().unwrap().to_str().unwrap(),
        "0001_Demo.BP_01234567"
    );
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        strs(&[
            CHECKSUM_FILE,
            "README.md",
            "apply.sql",
            "migrate.cls",
            "migrate.script",
            "plan.json",
            "revert.sql"
        ])
    );
    let check = verify_migration_folder(&dir).unwrap();
    assert_eq!(check.plan, swap_plan());
    assert_eq!(
        check.files,
        strs(&[
            "README.md",
            "apply.sql",
            "migrate.cls",
            "migrate.script",
            "plan.json",
            "revert.sql"
        ])
    );

    // Same plan again: the same folder, untouched.
    assert_eq!(
        write_migration_folder(&swap_plan(), tmp.path(), &opts).unwrap(),
        dir
    );
    // Another plan: the next number.
    let mut other = cycle_plan();
    other.plan_id = "fedcba9876543210".into();
    let dir2 = write_migration_folder(&other, tmp.path(), &opts).unwrap();
    assert_eq!(
        dir2.file_name().unwrap().to_str().unwrap(),
        "0002_Demo.Loan.BankUS_fedcba98"
    );

    // CRLF and a BOM do not count as edits.
    let apply = dir.join("apply.sql");
    let body = std::fs::read_to_string(&apply).unwrap();
    std::fs::write(&apply, format!("\u{feff}{}", body.replace('\n', "\r\n"))).unwrap();
    verify_migration_folder(&dir).unwrap();

    // An edit is named.
    std::fs::write(&apply, body.replace("'S7'", "'S8'")).unwrap();
    assert!(
        matches!(verify_migration_folder(&dir), Err(SqlError::Edited { file }) if file == "apply.sql")
    );
    std::fs::write(&apply, &body).unwrap();
    verify_migration_folder(&dir).unwrap();

    // An added file is named.
    std::fs::write(dir.join("extra.sql"), "DELETE FROM x;\n").unwrap();
    assert!(
        matches!(verify_migration_folder(&dir), Err(SqlError::Added { file }) if file == "extra.sql")
    );
    std::fs::remove_file(dir.join("extra.sql")).unwrap();

    // A removed file is named.
    let readme = std::fs::read(dir.join("README.md")).unwrap();
    std::fs::remove_file(dir.join("README.md")).unwrap();
    assert!(
        matches!(verify_migration_folder(&dir), Err(SqlError::Removed { file }) if file == "README.md")
    );
    std::fs::write(dir.join("README.md"), readme).unwrap();

    // An edited plan.json is caught before it is read.
    let pj = dir.join("plan.json");
    let plan_text = std::fs::read_to_string(&pj).unwrap();
    std::fs::write(&pj, plan_text.replace("\"S7\"", "\"S8\"")).unwrap();
    assert!(
        matches!(verify_migration_folder(&dir), Err(SqlError::Edited { file }) if file == "plan.json")
    );
    std::fs::write(&pj, &plan_text).unwrap();

    // The checksum file itself missing.
    let sums = std::fs::read(dir.join(CHECKSUM_FILE)).unwrap();
    std::fs::remove_file(dir.join(CHECKSUM_FILE)).unwrap();
    assert!(
        matches!(verify_migration_folder(&dir), Err(SqlError::Removed { file }) if file == CHECKSUM_FILE)
    );
    std::fs::write(dir.join(CHECKSUM_FILE), sums).unwrap();
    verify_migration_folder(&dir).unwrap();

    // A changed folder for the same plan id is not overwritten.
    std::fs::write(&apply, "-- mine\n").unwrap();
    assert!(matches!(
        write_migration_folder(&swap_plan(), tmp.path(), &opts),
        Err(SqlError::FolderExists { .. })
    ));
}

#[test]
fn folder_contents_are_deterministic_and_explained() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let opts = FolderOptions::default();
    let da = write_migration_folder(&blocked_plan(), a.path(), &opts).unwrap();
    let db = write_migration_folder(&blocked_plan(), b.path(), &opts).unwrap();
    for f in [
        "plan.json",
        "apply.sql",
        "revert.sql",
        "README.md",
        CHECKSUM_FILE,
    ] {
        assert_eq!(
            std::fs::read(da.join(f)).unwrap(),
            std::fs::read(db.join(f)).unwrap(),
            "{f}"
        );
    }
    let revert = std::fs::read_to_string(da.join("revert.sql")).unwrap();
    assert!(
        revert.starts_with("-- bplmigrate: no revert script"),
        "{revert}"
    );
    assert!(revert.contains("state S4 of Demo.Loan.BankUS.Thread1 was removed"));
    snapshot(
        "blocked.README.md",
        &std::fs::read_to_string(da.join("README.md")).unwrap(),
    );
    snapshot(
        "blocked.CHECKSUMS.sha256",
        &std::fs::read_to_string(da.join(CHECKSUM_FILE)).unwrap(),
    );
    let readme = std::fs::read_to_string(da.join("README.md")).unwrap();
    for step in [
        "EnableConfigItem(\"NAME\", 0, 1)",
        "bplmigrate status --plan",
        "--dry-run",
        "Compile and deploy",
        "EnableConfigItem(\"NAME\", 1, 1)",
    ] {
        assert!(readme.contains(step), "README lacks {step}");
    }
}

#[test]
fn objectscript_runs_the_checked_statements() {
    let cls = render_objectscript(&swap_plan()).unwrap();
    assert!(cls.starts_with("/// bplmigrate migration for Demo.BP"));
    assert!(cls.contains("Class BplMigrate.Plan.P0123456789abcdef Extends %RegisteredObject"));
    assert!(cls.contains("TSTART") && cls.contains("TCOMMIT") && cls.contains("TROLLBACK 1"));
    // Items are recorded before they are disabled, then the production is updated once.
    assert!(cls.contains(
        "Set pDisabled = pDisabled + 1, pDisabled(pDisabled) = tName\n\t\tSet tSC1 = ##class(Ens.Director).EnableConfigItem(tName, 0, 0)"
    ));
    assert!(cls.contains("##class(Ens.Director).UpdateProduction(pTimeout)"));
    // The UPDATE is on one line with its quotes doubled.
    assert!(cls.contains(
        "Set tSC = ..Exec(\"UPDATE \"\"Demo_BP\"\".\"\"Thread1\"\" SET \"\"%NextState\"\" = CASE \"\"%NextState\"\" WHEN 'S5' THEN 'S7' WHEN 'S7' THEN 'S5' ELSE \"\"%NextState\"\" END WHERE \"\"%NextState\"\" IN ('S5', 'S7')\", .tRows)"
    ), "{cls}");
    let mut bad = swap_plan();
    bad.plan_id = "x\"y".into();
    assert!(render_objectscript(&bad).is_err());
}

// ---------------------------------------------------------------------------------------
// End to end: two BPL versions → plan::build → render

mod end_to_end {
    use super::*;
    use bplmigrate::bpl;
    use bplmigrate::states::{self, Compiler};

    fn plan_for(old: &str, new: &str) -> MigrationPlan {
        let wrap = |body: &str| {
            format!(
                "<process request='Ens.Request' response='Ens.Response'>\n<context>\n\
                 <property name='Rate' type='%Numeric'/>\n</context>\n<sequence>\n{}\n</sequence>\n</process>\n",
                body.trim()
            )
        };
        let o = bpl::parse_bare("old.xml", &wrap(old), "Demo.Loan.BankUS").unwrap();
        let n = bpl::parse_bare("new.xml", &wrap(new), "Demo.Loan.BankUS").unwrap();
        let oc = states::compile(&o, Compiler::Current).unwrap();
        let nc = states::compile(&n, Compiler::Current).unwrap();
        bplmigrate::plan::build(&o, &n, &oc, &nc, None).unwrap()
    }

    const BANK_US: &str = "<call name='BankUS' target='BankUS' async='0'>\
        <request type='Ens.Request'/><response type='Ens.Response'>\
        <assign property='context.Rate' value='1'/></response></call>";
    const BANK_EU: &str = "<call name='BankEU' target='BankEU' async='0'>\
        <request type='Ens.Request'/><response type='Ens.Response'>\
        <assign property='context.Rate' value='2'/></response></call>";

    fn check_all(plan: &MigrationPlan) {
        for d in [Dialect::Iris, Dialect::Postgres] {
            let s = render(plan, d)
                .unwrap_or_else(|e| panic!("{e}\n{}", serde_json::to_string_pretty(plan).unwrap()));
            for sql in all_statements(&s) {
                assert_eq!(parse(&sql, d).unwrap().len(), 1, "{sql}");
            }
            if let Ok(r) = render_revert(plan, d) {
                for sql in all_statements(&r) {
                    assert_eq!(parse(&sql, d).unwrap().len(), 1, "{sql}");
                }
            }
        }
        render_objectscript(plan).unwrap();
    }

    #[test]
    fn inserted_call_renumbers_states_and_handlers() {
        let old = format!("<assign property='context.Rate' value='0'/>{BANK_US}<assign property='context.Rate' value='3'/>");
        let new = format!("<assign property='context.Rate' value='0'/>{BANK_EU}{BANK_US}<assign property='context.Rate' value='3'/>");
        let plan = plan_for(&old, &new);
        check_all(&plan);
        let s = render(&plan, Dialect::Postgres).unwrap();
        // Every renamed state of the plan is in the one thread UPDATE, and nothing else is.
        let renamed: Vec<(String, String)> = plan.threads[0]
            .states
            .iter()
            .filter_map(|m| {
                m.new
                    .as_ref()
                    .filter(|n| **n != m.old)
                    .map(|n| (m.old.to_string(), n.to_string()))
            })
            .collect();
        assert!(
            !renamed.is_empty(),
            "{}",
            serde_json::to_string_pretty(&plan).unwrap()
        );
        let thread = s
            .rewrites
            .iter()
            .find(|r| r.key_column == "%NextState")
            .expect("thread rewrite");
        assert_eq!(thread.mapping, renamed);
        // OnResponse1 (BankUS) became OnResponse2.
        let h = s
            .rewrites
            .iter()
            .find(|r| r.key_column == "_ResponseHandlers")
            .expect("handler rewrite");
        assert_eq!(
            h.mapping,
            vec![("OnResponse1".to_string(), "OnResponse2".to_string())]
        );
        // Renumbering only, nothing removed: the revert exists.
        render_revert(&plan, Dialect::Iris).unwrap();
        snapshot(
            "e2e-inserted-call.apply.iris.sql",
            &render(&plan, Dialect::Iris).unwrap().to_sql_text(),
        );
    }

    #[test]
    fn removed_call_is_guarded_and_not_revertible() {
        let old = format!("{BANK_EU}{BANK_US}");
        let new = BANK_US.to_string();
        let plan = plan_for(&old, &new);
        check_all(&plan);
        let s = render(&plan, Dialect::Iris).unwrap();
        let removed: Vec<String> = plan.threads[0]
            .states
            .iter()
            .filter(|m| m.new.is_none())
            .map(|m| m.old.to_string())
            .collect();
        assert!(!removed.is_empty());
        for st in removed {
            let want = format!("WHERE \"%NextState\" = '{st}'");
            assert!(
                s.guards.iter().any(|g| g.sql.as_str().ends_with(&want)),
                "no guard for {st}"
            );
        }
        assert!(matches!(
            render_revert(&plan, Dialect::Iris),
            Err(SqlError::NotInvertible { .. })
        ));
    }

    #[test]
    fn new_scope_rewrites_the_handler_stack() {
        let old = format!("{BANK_US}<assign property='context.Rate' value='3'/>");
        let new = format!(
            "<scope name='Try'>{BANK_US}<assign property='context.Rate' value='3'/>\
             <faulthandlers><catchall><assign property='context.Rate' value='9'/></catchall></faulthandlers></scope>"
        );
        let plan = plan_for(&old, &new);
        check_all(&plan);
        let s = render(&plan, Dialect::Iris).unwrap();
        let stacked = plan.threads[0]
            .states
            .iter()
            .any(|m| m.new.is_some() && m.old_handler_stack != m.new_handler_stack);
        if stacked {
            let rw = s
                .rewrites
                .iter()
                .find(|r| r.key_column == "%NextState")
                .unwrap();
            assert!(
                rw.columns.contains(&"%HandlerStack".to_string()),
                "{}",
                rw.sql.as_str()
            );
            assert!(s.guards.iter().any(|g| g.kind == GuardKind::StackMismatch));
        }
        snapshot("e2e-new-scope.apply.iris.sql", &s.to_sql_text());
    }

    #[test]
    fn folder_round_trip_with_a_built_plan() {
        let old = format!("{BANK_US}<assign property='context.Rate' value='3'/>");
        let new = format!("{BANK_EU}{BANK_US}<assign property='context.Rate' value='3'/>");
        let plan = plan_for(&old, &new);
        let tmp = tempfile::tempdir().unwrap();
        let dir = write_migration_folder(
            &plan,
            tmp.path(),
            &FolderOptions {
                dialect: Dialect::Postgres,
                objectscript: true,
            },
        )
        .unwrap();
        assert_eq!(verify_migration_folder(&dir).unwrap().plan, plan);
    }
}

/// Review 13, D1: the `%ResponseHandlers` guard matches (call name, handler) pairs with flat
/// lists, so a process with tens of thousands of response handlers renders, parses back and
/// runs as IRIS SQL in the runner (a chain of one OR per call nested too deep: a stack
/// overflow). Call names holding spaces cannot be confused with another pair's split.
#[test]
fn the_handler_pair_guard_stays_flat_for_many_handlers() {
    let mut p = base("Demo.Many");
    p.threads = vec![thread("Demo.Many", 1, Some(1), vec![st("S1", Some("S2"))])];
    p.response_handlers = (1..=30_000)
        .map(|i| HandlerMapping {
            old: format!("OnResponse{i}"),
            new: Some(format!("OnResponse{}", i + 1)),
            call: if i == 7 {
                "A B".into()
            } else {
                format!("C{i}")
            },
            new_call: None,
            body_changed: false,
        })
        .collect();
    for d in [Dialect::Iris, Dialect::Postgres] {
        let s = render(&p, d).unwrap();
        let g = s
            .guards
            .iter()
            .find(|g| g.sql.as_str().contains("element_key"))
            .unwrap();
        assert!(
            g.sql.as_str().contains("'OnResponse7 A B'") && g.sql.as_str().contains("||"),
            "{}",
            &g.sql.as_str()[..300]
        );
        parse(g.sql.as_str(), d).unwrap();
    }
    bplmigrate::sql::runner_statements(&p).unwrap();
}
