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
use bplmigrate::plan::{self, Verdict};
use bplmigrate::sql::{self, Dialect};
use bplmigrate::states::{self, Compiler};
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

/// Peak resident set size of this process (`VmHWM`), Linux only.
fn vm_hwm() -> Option<String> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line["VmHWM:".len()..].trim().to_string())
}

// ---- synthetic BPLs ---------------------------------------------------------------------------

/// xorshift64*: deterministic, so every run measures the same documents.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Emits activities until `left` is used up: a wide top-level sequence of blocks, each a leaf
/// or a construct nested up to `MAX_DEPTH` levels (calls, ifs, switches, loops, scopes with
/// fault handlers, flows).
struct Gen {
    rng: Rng,
    /// Activities emitted so far (every activity element, containers and branches included).
    n: usize,
    left: usize,
}

const MAX_DEPTH: u32 = 4;

impl Gen {
    fn id(&mut self) -> usize {
        self.n += 1;
        self.left = self.left.saturating_sub(1);
        self.n
    }

    /// One to `max` activities (always at least one: bodies are never empty).
    fn list(&mut self, depth: u32, max: u64, out: &mut String, ind: &str) {
        let k = 1 + self.rng.below(max);
        for j in 0..k {
            if j > 0 && self.left == 0 {
                break;
            }
            self.activity(depth, out, ind);
        }
    }

    fn activity(&mut self, depth: u32, out: &mut String, ind: &str) {
        let leaf = depth >= MAX_DEPTH || self.left < 4;
        // Weights out of 100: leaves 60, if 12, switch 8, while 5, foreach 3, scope 7, flow 5.
        let r = self.rng.below(if leaf { 60 } else { 100 });
        let i = self.id();
        let inner = format!("{ind}  ");
        match r {
            0..=11 => out.push_str(&format!(
                "{ind}<assign name='A{i}' property='context.P{}' value='{i}'/>\n",
                i % 5
            )),
            12..=17 => out.push_str(&format!("{ind}<trace name='T{i}' value='\"t{i}\"'/>\n")),
            18..=35 => {
                self.id(); // the <assign> in the response
                out.push_str(&format!(
                    "{ind}<call name='C{i}' target='Op{}' async='0'><request type='Ens.Request'/><response type='Ens.Response'><assign property='context.P0' value='{i}'/></response></call>\n",
                    i % 7
                ));
            }
            36..=43 => out.push_str(&format!(
                "{ind}<call name='C{i}' target='Op{}' async='1'><request type='Ens.Request'/></call>\n",
                i % 7
            )),
            44..=51 => out.push_str(&format!("{ind}<delay name='D{i}' duration='\"PT{i}S\"'/>\n")),
            52..=59 => out.push_str(&format!("{ind}<empty name='E{i}'/>\n")),
            60..=71 => {
                out.push_str(&format!("{ind}<if name='I{i}' condition='context.P1={i}'>\n"));
                let (t, f) = match self.rng.below(3) {
                    0 => (true, false),
                    1 => (false, true),
                    _ => (true, true),
                };
                for (has, tag) in [(t, "true"), (f, "false")] {
                    if has {
                        out.push_str(&format!("{inner}<{tag}>\n"));
                        self.list(depth + 1, 3, out, &format!("{inner}  "));
                        out.push_str(&format!("{inner}</{tag}>\n"));
                    }
                }
                out.push_str(&format!("{ind}</if>\n"));
            }
            72..=79 => {
                out.push_str(&format!("{ind}<switch name='SW{i}'>\n"));
                for c in 0..1 + self.rng.below(3) {
                    out.push_str(&format!("{inner}<case condition='context.P1={c}'>\n"));
                    self.list(depth + 1, 3, out, &format!("{inner}  "));
                    out.push_str(&format!("{inner}</case>\n"));
                }
                out.push_str(&format!("{inner}<default>\n"));
                self.list(depth + 1, 2, out, &format!("{inner}  "));
                out.push_str(&format!("{inner}</default>\n"));
                out.push_str(&format!("{ind}</switch>\n"));
            }
            80..=84 => {
                out.push_str(&format!(
                    "{ind}<while name='W{i}' condition='context.P2&lt;{i}'>\n"
                ));
                self.list(depth + 1, 3, out, &inner);
                out.push_str(&format!("{ind}</while>\n"));
            }
            85..=87 => {
                out.push_str(&format!(
                    "{ind}<foreach name='FE{i}' property='context.L' key='context.K'>\n"
                ));
                self.list(depth + 1, 3, out, &inner);
                out.push_str(&format!("{ind}</foreach>\n"));
            }
            88..=94 => {
                out.push_str(&format!("{ind}<scope name='SC{i}'>\n"));
                self.list(depth + 1, 3, out, &inner);
                out.push_str(&format!("{inner}<faulthandlers>\n"));
                for c in 0..self.rng.below(3) {
                    // <flow> may not sit directly in a <catch>: wrap the body.
                    let s = self.id();
                    out.push_str(&format!(
                        "{inner}  <catch fault='\"F{c}\"'>\n{inner}    <sequence name='CS{s}'>\n"
                    ));
                    self.list(depth + 2, 2, out, &format!("{inner}      "));
                    out.push_str(&format!("{inner}    </sequence>\n{inner}  </catch>\n"));
                }
                self.id();
                out.push_str(&format!(
                    "{inner}  <catchall><trace value='\"all\"'/></catchall>\n"
                ));
                out.push_str(&format!("{inner}</faulthandlers>\n"));
                out.push_str(&format!("{ind}</scope>\n"));
            }
            _ => {
                out.push_str(&format!("{ind}<flow name='FL{i}'>\n"));
                for b in 0..2 + self.rng.below(2) {
                    self.id();
                    out.push_str(&format!("{inner}<sequence name='B{i}_{b}'>\n"));
                    self.list(depth + 1, 3, out, &format!("{inner}  "));
                    out.push_str(&format!("{inner}</sequence>\n"));
                }
                out.push_str(&format!("{ind}</flow>\n"));
            }
        }
    }
}

/// The top-level blocks of a process with about `size` activities.
fn blocks(size: usize) -> (Vec<String>, usize) {
    let mut g = Gen {
        rng: Rng((size as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        n: 0,
        left: size,
    };
    let mut v = Vec::new();
    while g.left > 0 {
        let mut b = String::new();
        g.activity(0, &mut b, "  ");
        v.push(b);
    }
    (v, g.n)
}

/// A UDL class file around the blocks.
fn class_file(blocks: &[String]) -> String {
    let mut s = String::from(
        "/// Synthetic benchmark process.\nClass Bench.Synthetic Extends Ens.BusinessProcessBPL\n{\n\nXData BPL\n{\n<process request='Ens.Request' response='Ens.Response'>\n<context>\n",
    );
    for p in 0..5 {
        s.push_str(&format!("  <property name='P{p}' type='%Integer'/>\n"));
    }
    s.push_str("  <property name='L' type='%String' collection='list'/>\n  <property name='K' type='%Integer'/>\n</context>\n<sequence>\n");
    for b in blocks {
        s.push_str(b);
    }
    s.push_str("</sequence>\n</process>\n}\n\n}\n");
    s
}

/// The old and the new version (one `<delay>` inserted in the middle of the top level).
fn versions(size: usize) -> (String, String, usize) {
    let (mut v, n) = blocks(size);
    let old = class_file(&v);
    v.insert(
        v.len() / 2,
        "  <delay name='Inserted' duration='\"PT9S\"'/>\n".to_string(),
    );
    (old, class_file(&v), n)
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

fn run(size: usize, runs: usize) {
    let (old_text, new_text, n) = versions(size);
    let old = load("old.cls", &old_text);
    let new = load("new.cls", &new_text);
    let compile = |b: &Bpl| states::compile(b, Compiler::Current).unwrap_or_else(|e| panic!("{e}"));
    let (oc, nc) = (compile(&old), compile(&new));
    let build = || plan::build(&old, &new, &oc, &nc, None).unwrap_or_else(|e| panic!("{e}"));
    let planned = build();
    // Not timing checks: the stages must do the work being measured.
    assert_eq!(
        planned.plan.verdict,
        Verdict::Migratable,
        "{size}: an inserted delay renumbers later states"
    );
    let script = sql::render(&planned.plan, Dialect::Iris).unwrap_or_else(|e| panic!("{e}"));
    assert!(!script.rewrites.is_empty(), "{size}: nothing to rewrite");
    let states: usize = oc.threads.iter().map(|t| t.states.len()).sum();

    let stages: [(&str, Sample); 5] = [
        ("load", measure(runs, || load("old.cls", &old_text))),
        ("compile", measure(runs, || compile(&old))),
        (
            "diff",
            measure(runs, || {
                bplmigrate::diff::diff(&old, &new, &oc, &nc, &[]).unwrap_or_else(|e| panic!("{e}"))
            }),
        ),
        ("plan", measure(runs, build)),
        (
            "render",
            measure(runs, || {
                sql::render(&planned.plan, Dialect::Iris).unwrap_or_else(|e| panic!("{e}"))
            }),
        ),
    ];
    for (stage, s) in &stages {
        println!(
            "| {n:>6} | {:>7} | {:>6} | {:>7} | {:>4} | {stage:<7} | {:>10} | {:>10} | {:>9} |",
            format!("{:.0}", old_text.len() as f64 / 1024.0),
            states,
            oc.threads.len(),
            runs,
            ms(s.median),
            ms(s.min),
            mib(s.peak),
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benching = args.iter().any(|a| a == "--bench");
    let sizes: Vec<usize> = match std::env::var("BPLMIGRATE_BENCH_SIZES") {
        Ok(s) if benching => s
            .split(',')
            .map(|x| {
                x.trim()
                    .parse()
                    .expect("BPLMIGRATE_BENCH_SIZES: sizes like 100,1000")
            })
            .collect(),
        _ if benching => vec![100, 1_000, 10_000],
        // `cargo test --all-targets`: one small document, once.
        _ => vec![60],
    };
    if !benching {
        println!("pipeline bench: smoke run (use `cargo bench --bench pipeline` to measure)");
    }
    println!("| activities | KiB | states | threads | runs | stage | median ms | min ms | peak heap MiB |");
    println!("|---:|---:|---:|---:|---:|---|---:|---:|---:|");
    for size in sizes {
        // Fewer runs for big documents, at least 3 so the median means something.
        let runs = if benching {
            (20_000 / size.max(1)).clamp(3, 31)
        } else {
            1
        };
        run(size, runs);
    }
    println!(
        "\nVmHWM (peak resident set of the process): {}",
        vm_hwm().unwrap_or_else(|| "n/a".to_string())
    );
}
