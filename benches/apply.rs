//! `apply` end to end on a seeded table: a measurement, never a test (no timing assertion).
//!
//! Needs the test database: `eval "$(bash scripts/pg.sh start)"`, then
//! `cargo bench --bench apply`. Without `BPLMIGRATE_TEST_CONNECT` it prints a SKIP and
//! succeeds (unless `CI` / `BPLMIGRATE_REQUIRE_DB` demand a database, like the database tests).
//!
//! A synthetic BPL (a flat sequence of about 200 activities, one thread) and its version with
//! a `<delay>` inserted in the middle are planned; the thread table of the fixture schema is
//! seeded with `BPLMIGRATE_BENCH_ROWS` rows (default 100,000) spread evenly over every old
//! state, so about half of them move. Timed: seeding, `Migration::from_plan` (render +
//! parse-check), a dry run and the real apply (census, guards, UPDATE, re-census, history,
//! commit, read-back). Under `cargo test --all-targets` (no `--bench`) it seeds 2,000 rows.
//!
//! Schema: `Demo_TBenchApply_BP` (class `Demo.TBenchApply.BP`), dropped and re-created on
//! every run, so it never collides with the database tests.

mod common;
#[path = "../tests/support/mod.rs"]
mod support;

use bplmigrate::apply::Migration;
use bplmigrate::bpl::{self, LoadOptions};
use bplmigrate::plan::{self, Verdict};
use bplmigrate::states::{self, Compiler};
use common::{versions, vm_hwm, Shape};
use std::time::Instant;
use support::{create_plan_tables, Fixture};

fn main() {
    let benching = std::env::args().skip(1).any(|a| a == "--bench");
    let Some(fx) = Fixture::new("BenchApply", 1) else {
        return;
    };
    let total: i64 = match std::env::var("BPLMIGRATE_BENCH_ROWS") {
        Ok(s) if benching => s
            .trim()
            .parse()
            .expect("BPLMIGRATE_BENCH_ROWS: a row count"),
        _ if benching => 100_000,
        _ => 2_000,
    };

    let (old_text, new_text, activities) = versions(&fx.class, Shape::Flat, 200);
    let load = |origin: &str, text: &str| {
        bpl::load_bytes(origin, text.as_bytes(), &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (old, new) = (load("old.cls", &old_text), load("new.cls", &new_text));
    let compile = |b| states::compile(b, Compiler::Current).unwrap_or_else(|e| panic!("{e}"));
    let (oc, nc) = (compile(&old), compile(&new));
    let t = Instant::now();
    let p = plan::build(&old, &new, &oc, &nc, None).unwrap_or_else(|e| panic!("{e}"));
    let plan_time = t.elapsed();
    assert_eq!(p.verdict, Verdict::Migratable);
    let [thread] = &p.threads[..] else {
        panic!("expected one thread class, got {}", p.threads.len());
    };
    assert_eq!(thread.old_table, fx.table(1), "the fixture's thread table");
    create_plan_tables(&fx, &p);

    // Seed: the same number of rows at every old state of the thread.
    let per_state = (total / thread.states.len() as i64).max(1);
    let names: Vec<String> = thread.states.iter().map(|s| s.old.to_string()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let moving = thread
        .states
        .iter()
        .filter(|s| s.new != Some(s.old))
        .count() as i64;
    let t = Instant::now();
    fx.seed_bulk(1, &names, per_state);
    fx.exec(&format!(r#"ANALYZE "{}"."Thread1""#, fx.schema));
    let seed_time = t.elapsed();

    let t = Instant::now();
    let m = Migration::from_plan(p.clone()).unwrap_or_else(|e| panic!("{e}"));
    let render_time = t.elapsed();
    let t = Instant::now();
    let dry = fx.dry_run(&m).unwrap_or_else(|e| panic!("{e}"));
    let dry_time = t.elapsed();
    let t = Instant::now();
    let report = fx.apply_plan(&m).unwrap_or_else(|e| panic!("{e}"));
    let apply_time = t.elapsed();
    // Not timing checks: the apply must have done the work being measured.
    assert_eq!(dry.thread_rows_moved(), moving * per_state);
    assert_eq!(report.thread_rows_moved(), moving * per_state);

    let s = |d: std::time::Duration| format!("{:.3}", d.as_secs_f64());
    if !benching {
        println!("apply bench: smoke run (use `cargo bench --bench apply` to measure)");
    }
    println!(
        "| rows | states | rows moved | statements | plan s | seed s | from_plan s | dry run s | apply s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
        per_state * names.len() as i64,
        names.len(),
        report.thread_rows_moved(),
        report.statements.len(),
        s(plan_time),
        s(seed_time),
        s(render_time),
        s(dry_time),
        s(apply_time)
    );
    println!(
        "\n{activities} activities; VmHWM (peak resident set of the process): {}",
        vm_hwm().unwrap_or_else(|| "n/a".to_string())
    );
}
