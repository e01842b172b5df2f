//! Speed and memory of the analysis pipeline on synthetic BPLs of growing size.
//!
//! `cargo bench --bench pipeline` measures 100, 1,000 and 10,000 activities (a median of
//! several runs per stage) and prints a Markdown table; see `benches/README.md`.
//! `BPLMIGRATE_BENCH_SIZES=100,20000` picks other sizes.
//!
//! A measurement, never a test: nothing here asserts a time. Under `cargo test --all-targets`
//! (no `--bench` argument) it runs one tiny size once, as a smoke test of the stages.
//!
//! Stages, each timed on its own with the outputs of the previous one as input:
//! - `load`: `bpl::load_bytes` of a UDL class file held in memory (format detection, XML
//!   parse, activity tree, SHA-256);
//! - `compile`: `states::compile` of the old version (the compiler emulation);
//! - `diff`: `diff::diff` of the old version against the new one, which has one `<delay>`
//!   inserted in the middle of the top-level sequence (every later state is renumbered);
//! - `plan`: `plan::build` (the diff again, then the plan, safety analysis and plan id);
//! - `render`: `sql::render` of that plan for IRIS (statements are parse-checked).
//!
//! "peak heap" is the highest number of heap bytes live during one run of the stage, above
//! what was live when it started (a counting global allocator); "VmHWM" at the end is the
//! peak resident set of the whole process.

use bplmigrate::bpl::{self, Bpl, LoadOptions};
use bplmigrate::diff::MatchIssue;
use bplmigrate::plan::{self, Verdict};
use bplmigrate::sql::{self, Dialect};
use bplmigrate::states::{self, Compiler};
mod common;

use common::{env_list, versions, vm_hwm, Shape};
use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---- heap accounting ------------------------------------------------------------------------

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grow(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                grow(new_size - layout.size());
            } else {
                LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

fn grow(by: usize) {
    let now = LIVE.fetch_add(by, Ordering::Relaxed) + by;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Run `f` once and return its result and the peak heap bytes above the starting level.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

// ---- measuring ----------------------------------------------------------------------------

struct Sample {
    median: Duration,
    min: Duration,
    peak: usize,
}

/// Run `f` `runs` times; the median and the fastest time, and the largest heap peak.
fn measure<T>(runs: usize, mut f: impl FnMut() -> T) -> Sample {
    let mut times = Vec::with_capacity(runs);
    let mut peak = 0;
    for _ in 0..runs {
        let ((), p) = peak_of(|| {
            let t = Instant::now();
            let out = f();
            times.push(t.elapsed());
            drop(black_box(out));
        });
        peak = peak.max(p);
    }
    times.sort();
    Sample {
        median: times[times.len() / 2],
        min: times[0],
        peak,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn mib(bytes: usize) -> String {
    format!("{:.2}", bytes as f64 / (1024.0 * 1024.0))
}

fn load(origin: &str, text: &str) -> Bpl {
    bpl::load_bytes(origin, text.as_bytes(), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

const STAGES: [&str; 6] = ["load", "compile", "json", "diff", "plan", "render"];

/// The measurements of one document.
struct Case {
    shape: Shape,
    activities: usize,
    bytes: usize,
    states: usize,
    threads: usize,
    /// Size limits of the matcher that were hit (it then uses its documented fallback).
    limit_hits: usize,
    runs: usize,
    stages: Vec<Sample>,
}

fn run(shape: Shape, size: usize, runs: usize) -> Case {
    let (old_text, new_text, n) = versions("Bench.Synthetic", shape, size);
    let old = load("old.cls", &old_text);
    let new = load("new.cls", &new_text);
    let compile = |b: &Bpl| states::compile(b, Compiler::Current).unwrap_or_else(|e| panic!("{e}"));
    let (oc, nc) = (compile(&old), compile(&new));
    let build = || plan::build(&old, &new, &oc, &nc, None).unwrap_or_else(|e| panic!("{e}"));
    let planned = build();
    // Not timing checks: the stages must do the work being measured.
    assert_eq!(
        planned.verdict,
        Verdict::Migratable,
        "{size}: an inserted delay renumbers later states"
    );
    let script = sql::render(&planned, Dialect::Iris).unwrap_or_else(|e| panic!("{e}"));
    assert!(!script.rewrites.is_empty(), "{size}: nothing to rewrite");

    let stages = vec![
        measure(runs, || load("old.cls", &old_text)),
        measure(runs, || compile(&old)),
        // `states --format json`'s serialisation, into a sink.
        measure(runs, || {
            serde_json::to_writer_pretty(std::io::sink(), &oc).unwrap_or_else(|e| panic!("{e}"))
        }),
        measure(runs, || {
            bplmigrate::diff::diff(&old, &new, &oc, &nc, &[]).unwrap_or_else(|e| panic!("{e}"))
        }),
        measure(runs, build),
        measure(runs, || {
            sql::render(&planned, Dialect::Iris).unwrap_or_else(|e| panic!("{e}"))
        }),
    ];
    Case {
        shape,
        activities: n,
        bytes: old_text.len(),
        states: oc.threads.iter().map(|t| t.states.len()).sum(),
        threads: oc.threads.len(),
        limit_hits: bplmigrate::diff::diff(&old, &new, &oc, &nc, &[])
            .unwrap_or_else(|e| panic!("{e}"))
            .issues
            .iter()
            .filter(|i| matches!(i, MatchIssue::LimitHit { .. }))
            .count(),
        runs,
        stages,
    }
}

fn print_tables(cases: &[Case]) {
    let doc = |c: &Case| {
        format!(
            "| {} | {} | {:.0} | {} | {} |",
            c.shape.name(),
            c.activities,
            c.bytes as f64 / 1024.0,
            c.states,
            c.threads
        )
    };
    let head = "| shape | activities | KiB | states | threads |";
    let rule = "|---|---:|---:|---:|---:|";
    println!("Median time per stage, ms (fastest run in brackets):\n");
    println!(
        "{head} runs | limits hit | {} | total |",
        STAGES.join(" | ")
    );
    println!("{rule}---:|---:|{}---:|", "---:|".repeat(STAGES.len()));
    for c in cases {
        let cells: Vec<String> = c
            .stages
            .iter()
            .map(|s| format!("{} ({})", ms(s.median), ms(s.min)))
            .collect();
        let total: Duration = c.stages.iter().map(|s| s.median).sum();
        println!(
            "{} {} | {} | {} | {} |",
            doc(c),
            c.runs,
            c.limit_hits,
            cells.join(" | "),
            ms(total)
        );
    }
    println!("\nPeak heap above the stage's starting level, MiB:\n");
    println!("{head} {} |", STAGES.join(" | "));
    println!("{rule}{}", "---:|".repeat(STAGES.len()));
    for c in cases {
        let cells: Vec<String> = c.stages.iter().map(|s| mib(s.peak)).collect();
        println!("{} {} |", doc(c), cells.join(" | "));
    }
}

fn main() {
    let benching = std::env::args().skip(1).any(|a| a == "--bench");
    let mut cases: Vec<(Shape, usize)> = Vec::new();
    if benching {
        let nested = env_list("BPLMIGRATE_BENCH_SIZES").unwrap_or(vec![100, 1_000, 10_000]);
        let flat = env_list("BPLMIGRATE_BENCH_FLAT_SIZES").unwrap_or(vec![1_000, 3_000, 10_000]);
        let scale = env_list("BPLMIGRATE_BENCH_SCALE_SIZES").unwrap_or_default();
        cases.extend(nested.into_iter().map(|n| (Shape::Nested, n)));
        cases.extend(flat.into_iter().map(|n| (Shape::Flat, n)));
        cases.extend(scale.into_iter().map(|n| (Shape::Scale, n)));
    } else {
        // `cargo test --all-targets`: two small documents, once each.
        println!("pipeline bench: smoke run (use `cargo bench --bench pipeline` to measure)");
        cases = vec![(Shape::Nested, 60), (Shape::Flat, 30)];
    }
    let mut done = Vec::new();
    for (shape, size) in cases {
        // Fewer runs for big documents, at least 3 so the median means something.
        let runs = if benching {
            (20_000 / size.max(1)).clamp(3, 31)
        } else {
            1
        };
        done.push(run(shape, size, runs));
    }
    print_tables(&done);
    println!(
        "\nVmHWM (peak resident set of the process): {}",
        vm_hwm().unwrap_or_else(|| "n/a".to_string())
    );
}
