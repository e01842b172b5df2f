//! Writes the whole-process scale benchmark's inputs: for each size, `old-<n>.cls` (the
//! `scale` shape of `benches/common`: nesting up to seven levels, wide sequences, many flows and
//! scopes) and `new-<n>.cls` (the same with 40 edits spread over it: inserted delays and
//! synchronous calls, deleted blocks, changed values).
//!
//! `scripts/bench-scale.sh` runs `cargo bench --bench scale -- --write DIR` and then times the
//! release binary on those files with `/usr/bin/time -v`; see README "Performance".
//! `BPLMIGRATE_SCALE_SIZES=1000,10000,100000` (the default) picks the sizes,
//! `BPLMIGRATE_SCALE_EDITS=40` the number of edits. `BPLMIGRATE_SCALE_FLAT_SIZES=40000` (the
//! default; empty for none) also writes `flat-old-<n>.cls`/`flat-new-<n>.cls`: the `flat` shape (one
//! top-level sequence of leaves, every state in `Thread1`, the longest sibling lists) with the
//! same edits, where a per-sibling linear scan shows up as quadratic time.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it generates one small pair and runs
//! it through load, compile and plan, as a smoke test of the generator.

use bplmigrate::bpl::{self, LoadOptions};
use bplmigrate::plan;
use bplmigrate::states::{self, Compiler};
mod common;

use common::{blocks, class_file, edited, env_list, Shape};
use std::path::PathBuf;

const CLASS: &str = "Bench.Scale.Process";

/// The old and the edited class text of about `size` activities, and the activity count.
fn pair(shape: Shape, size: usize, edits: usize) -> (String, String, usize) {
    let (b, n) = blocks(shape, size);
    (class_file(CLASS, &b), edited(CLASS, &b, edits), n)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let edits = env_list("BPLMIGRATE_SCALE_EDITS")
        .and_then(|v: Vec<usize>| v.first().copied())
        .unwrap_or(40);
    let Some(i) = args.iter().position(|a| a == "--write") else {
        println!("scale bench: smoke run (scripts/bench-scale.sh measures)");
        let (old, new, n) = pair(Shape::Scale, 300, edits);
        let load = |o: &str, t: &str| {
            bpl::load_bytes(o, t.as_bytes(), &LoadOptions::default())
                .unwrap_or_else(|e| panic!("{o}: {e}"))
        };
        let (ob, nb) = (load("old.cls", &old), load("new.cls", &new));
        let c = |b| states::compile(b, Compiler::Current).unwrap_or_else(|e| panic!("{e}"));
        let (oc, nc) = (c(&ob), c(&nb));
        assert!(oc.threads.len() > 1, "the scale shape has flows");
        let planned = plan::build(&ob, &nb, &oc, &nc, None).unwrap_or_else(|e| panic!("{e}"));
        println!(
            "{n} activities, {} threads, verdict {:?}",
            oc.threads.len(),
            planned.verdict
        );
        return;
    };
    let dir = PathBuf::from(args.get(i + 1).expect("--write DIR"));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let sizes = env_list("BPLMIGRATE_SCALE_SIZES").unwrap_or(vec![1_000, 10_000, 100_000]);
    let flat = env_list("BPLMIGRATE_SCALE_FLAT_SIZES").unwrap_or(vec![40_000]);
    let runs = sizes.into_iter().map(|s| (Shape::Scale, "", s));
    for (shape, prefix, size) in runs.chain(flat.into_iter().map(|s| (Shape::Flat, "flat-", s))) {
        let (old, new, n) = pair(shape, size, edits);
        for (name, text) in [("old", &old), ("new", &new)] {
            let p = dir.join(format!("{prefix}{name}-{size}.cls"));
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        }
        // One line per size for the script: shape, size, activities, bytes of the old class.
        println!("{} {size} {n} {}", shape.name(), old.len());
    }
}
