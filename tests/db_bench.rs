//! Apply time for a large table (a measurement, not a test: no timing assertion).
//! `cargo test --release --test db_bench -- --ignored --nocapture` with a database
//! (`eval "$(bash scripts/pg.sh start)"`). `BPLMIGRATE_BENCH_ROWS` sets the row count
//! (default 100000), spread evenly over ten states that the plan rotates S1→S2→…→S10→S1.

mod support;

use bplmigrate::apply::Migration;
use std::time::Instant;
use support::{plan, st, Fixture};

#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn apply_100k_rows() {
    let Some(fx) = Fixture::new("Bench", 1) else {
        return;
    };
    let total: i64 = std::env::var("BPLMIGRATE_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let states: Vec<String> = (1..=10).map(|i| format!("S{i}")).collect();
    let names: Vec<&str> = states.iter().map(String::as_str).collect();
    let t = Instant::now();
    fx.seed_bulk(1, &names, total / 10);
    fx.exec(&format!(r#"ANALYZE "{}"."Thread1""#, fx.schema));
    let seeded = t.elapsed();
    let mapping: Vec<_> = (1..=10)
        .map(|i| st(&format!("S{i}"), Some(&format!("S{}", i % 10 + 1))))
        .collect();
    let m = Migration::from_plan(plan(&fx, "bench", &[(1, mapping)], &[])).unwrap();
    let t = Instant::now();
    let dry = fx.dry_run(&m).unwrap();
    let dry_time = t.elapsed();
    let t = Instant::now();
    let report = fx.apply_plan(&m).unwrap();
    let apply_time = t.elapsed();
    assert_eq!(dry.rows_changed(), total / 10 * 10);
    assert_eq!(report.rows_changed(), total / 10 * 10);
    println!(
        "bench: {} rows: seed {:.2} s, dry run {:.2} s, apply {:.2} s (census, guards, UPDATE, re-census, commit, read-back)",
        report.rows_changed(),
        seeded.as_secs_f64(),
        dry_time.as_secs_f64(),
        apply_time.as_secs_f64()
    );
}

/// Exact undo at scale: ten states merged pairwise (S1,S2 → S2; S3,S4 → S4; …), so the apply
/// records every rewritten row in BplMigrate.Undo and the revert restores them from there.
#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn apply_and_revert_a_merge_from_undo_rows() {
    let Some(fx) = Fixture::new("BenchUndo", 1) else {
        return;
    };
    let total: i64 = std::env::var("BPLMIGRATE_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let states: Vec<String> = (1..=10).map(|i| format!("S{i}")).collect();
    let names: Vec<&str> = states.iter().map(String::as_str).collect();
    fx.seed_bulk(1, &names, total / 10);
    fx.exec(&format!(r#"ANALYZE "{}"."Thread1""#, fx.schema));
    // S1 → S2 and S2 → S2 (kept), S3 → S4, S4 → S4, …: half the rows move, onto a state
    // that also keeps its own rows.
    let mapping: Vec<_> = (1..=10)
        .map(|i| {
            let to = if i % 2 == 1 { i + 1 } else { i };
            st(&format!("S{i}"), Some(&format!("S{to}")))
        })
        .collect();
    let m = Migration::from_plan(plan(&fx, "undo", &[(1, mapping)], &[])).unwrap();
    let t = Instant::now();
    let applied = fx.apply_plan(&m).unwrap();
    let apply_time = t.elapsed();
    let t = Instant::now();
    let reverted = fx.revert_plan(&m).unwrap();
    let revert_time = t.elapsed();
    assert_eq!(applied.rows_changed(), total / 2);
    assert_eq!(reverted.rows_changed(), total / 2);
    println!(
        "bench: {total} rows, {} rewritten: apply with undo rows {:.2} s, revert from them {:.2} s",
        applied.rows_changed(),
        apply_time.as_secs_f64(),
        revert_time.as_secs_f64()
    );
}
