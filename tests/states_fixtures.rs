//! Oracle fixtures for the compiler emulation (fixtures/states/README.md).
//!
//! Every `fixtures/states/<case>/` holds a BPL (`process.cls` or `process.xml`) and
//! `expected.txt`, the `states::listing` derived by hand from spec/state-numbering.md with the
//! current compiler; `expected-legacy.txt`, where present, is the same for the legacy compiler.
//! The expected files were NOT produced by the emulator: a mismatch means one of the two is
//! wrong, and the spec decides which.
//!
//! `STATES_FIXTURE=<substring>` restricts the run to matching case names.

use bplmigrate::bpl::{self, LoadOptions};
use bplmigrate::states::{self, Compiler};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("states")
}

/// `(case name, case directory)` in name order, filtered by `STATES_FIXTURE`.
fn cases() -> Vec<(String, PathBuf)> {
    let filter = std::env::var("STATES_FIXTURE").unwrap_or_default();
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(fixtures_root())
        .expect("fixtures/states is readable")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .map(|p| {
            (
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                p,
            )
        })
        .filter(|(name, _)| name.contains(&filter))
        .collect();
    out.sort();
    assert!(
        filter.is_empty() || !out.is_empty(),
        "STATES_FIXTURE={filter:?} matches no fixture"
    );
    out
}

/// The BPL source of a case: `process.cls` or `process.xml`.
fn source_of(case: &str, dir: &Path) -> PathBuf {
    let found: Vec<PathBuf> = ["process.cls", "process.xml"]
        .iter()
        .map(|f| dir.join(f))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "fixture {case}: expected exactly one of process.cls / process.xml"
    );
    found.into_iter().next().unwrap_or_default()
}

/// Line ends and trailing blanks do not matter; everything else does.
fn normalize(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
    let mut s = lines.join("\n");
    while s.ends_with('\n') {
        s.pop();
    }
    s
}

/// `(expected file, compiler)` pairs present in a case directory.
fn expectations(dir: &Path) -> Vec<(PathBuf, Compiler)> {
    [
        ("expected.txt", Compiler::Current),
        ("expected-legacy.txt", Compiler::Legacy),
    ]
    .into_iter()
    .map(|(f, c)| (dir.join(f), c))
    .filter(|(p, _)| p.is_file())
    .collect()
}

fn emulated_listing(source: &Path, compiler: Compiler) -> Result<String, String> {
    let path = source.to_string_lossy();
    let bpl = bpl::load(&path, &LoadOptions::default()).map_err(|e| format!("load failed: {e}"))?;
    let compiled = states::compile(&bpl, compiler).map_err(|e| format!("compile failed: {e}"))?;
    Ok(states::listing(&compiled))
}

#[test]
fn every_fixture_matches_its_hand_derived_listing() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (case, dir) in cases() {
        let source = source_of(&case, &dir);
        for (expected_file, compiler) in expectations(&dir) {
            checked += 1;
            let label = format!(
                "{case}/{}",
                expected_file
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
            );
            let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
            match emulated_listing(&source, compiler) {
                Err(e) => failures.push(format!("{label}: {e}")),
                Ok(actual) => {
                    let (expected, actual) = (normalize(&expected), normalize(&actual));
                    if expected != actual {
                        eprintln!(
                            "\n=== fixture {label} differs (left: expected, right: emulator) ===\n{}",
                            pretty_assertions::StrComparison::new(&expected, &actual)
                        );
                        failures.push(label);
                    }
                }
            }
        }
    }
    assert!(checked > 0, "no fixture with an expected listing found");
    assert!(
        failures.is_empty(),
        "{} of {checked} fixture listings differ:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// The real binary: `bplmigrate states FIXTURE` succeeds (human tables), and
/// `bplmigrate states FIXTURE --format listing [--compiler legacy]` prints exactly the
/// hand-derived listing.
#[test]
fn states_command_prints_every_expected_listing() {
    let mut failures = Vec::new();
    for (case, dir) in cases() {
        let source = source_of(&case, &dir);
        let run = |args: &[&str]| {
            Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
                .arg("states")
                .arg(&source)
                .args(args)
                .output()
                .expect("run bplmigrate")
        };
        let out = run(&[]);
        if out.status.code() != Some(0) || out.stdout.is_empty() {
            failures.push(format!(
                "{case}: exit {:?}, {} bytes on stdout, stderr: {}",
                out.status.code(),
                out.stdout.len(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        for (expected_file, compiler) in expectations(&dir) {
            let generation = match compiler {
                Compiler::Current => "current",
                Compiler::Legacy => "legacy",
            };
            let out = run(&["--format", "listing", "--compiler", generation]);
            let expected = std::fs::read_to_string(&expected_file).unwrap_or_default();
            let printed = String::from_utf8_lossy(&out.stdout);
            if out.status.code() != Some(0) || normalize(&printed) != normalize(&expected) {
                failures.push(format!(
                    "{case} ({generation}): `states --format listing` differs from {}",
                    expected_file.display()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "`bplmigrate states` failed:\n  {}",
        failures.join("\n  ")
    );
}

/// Checks that need no emulator: the expected files are well-formed listings whose activity
/// positions point at the named element of the source.
#[test]
fn expected_listings_are_well_formed() {
    const FLAGS: [&str; 11] = [
        "wait", "join", "dead", "return", "push", "pop", "gosub", "start", "error", "hstack",
        "sstack",
    ];
    let mut problems = Vec::new();
    for (case, dir) in cases() {
        let source_text = std::fs::read_to_string(source_of(&case, &dir)).unwrap_or_default();
        let source_lines: Vec<&str> = source_text.lines().collect();
        for (expected_file, _) in expectations(&dir) {
            let text = std::fs::read_to_string(&expected_file).unwrap_or_default();
            let mut p =
                |msg: String| problems.push(format!("{case}/{}: {msg}", expected_file.display()));
            let mut lines = text.lines();
            if !lines
                .next()
                .is_some_and(|l| l.starts_with("process ") && l.contains(" compiler="))
            {
                p("first line must be `process <class> compiler=<c>`".into());
            }
            let mut threads: Vec<Vec<(String, Vec<String>)>> = Vec::new();
            for line in lines {
                if line.starts_with("thread ") {
                    threads.push(Vec::new());
                } else if line.starts_with("handler ") {
                    continue;
                } else if let Some((head, tail)) = line.split_once(" ->") {
                    let head: Vec<&str> = head.splitn(3, ' ').collect();
                    let Some(thread) = threads.last_mut() else {
                        p(format!("state before any thread: {line}"));
                        continue;
                    };
                    if head.len() != 3 {
                        p(format!("bad state line: {line}"));
                        continue;
                    }
                    if let Some((element, at)) = head[2].split_once('@') {
                        let mut lc = at.split(':').map(|n| n.parse::<usize>().unwrap_or(0));
                        let (l, c) = (lc.next().unwrap_or(0), lc.next().unwrap_or(0));
                        let here: String = source_lines
                            .get(l.wrapping_sub(1))
                            .map(|s| s.chars().skip(c.saturating_sub(1)).collect())
                            .unwrap_or_default();
                        if !here.starts_with(&format!("<{element}")) {
                            p(format!("{} does not point at <{element}", head[2]));
                        }
                    } else if !source_text.contains(&format!(
                        "name='{}'",
                        head[2].split('"').nth(1).unwrap_or("?")
                    )) && !source_text.contains(&format!(
                        "name=\"{}\"",
                        head[2].split('"').nth(1).unwrap_or("?")
                    )) {
                        p(format!("no element named as in {}", head[2]));
                    }
                    thread.push((
                        head[0].to_string(),
                        tail.split_whitespace().map(String::from).collect(),
                    ));
                } else {
                    p(format!("unrecognised line: {line}"));
                }
            }
            for states in &threads {
                let names: Vec<&str> = states.iter().map(|(n, _)| n.as_str()).collect();
                for (i, (name, tokens)) in states.iter().enumerate() {
                    if *name != format!("S{}", i + 1) {
                        p(format!("state {name} out of sequence"));
                    }
                    let succ: Vec<&String> = tokens
                        .iter()
                        .take_while(|t| !t.contains('=') && !FLAGS.contains(&t.as_str()))
                        .collect();
                    let key = |s: &str| {
                        if s == "Stop" {
                            u32::MAX
                        } else {
                            s[1..].parse().unwrap_or(0)
                        }
                    };
                    if !succ.windows(2).all(|w| key(w[0]) < key(w[1])) {
                        p(format!("{name}: successors not ascending"));
                    }
                    for s in &succ {
                        if s.as_str() != "Stop" && !names.contains(&s.as_str()) {
                            p(format!(
                                "{name}: successor {s} is not a state of the thread"
                            ));
                        }
                    }
                    let flags: Vec<&str> = tokens[succ.len()..]
                        .iter()
                        .map(|t| t.split('=').next().unwrap_or(""))
                        .collect();
                    let order: Vec<usize> = flags
                        .iter()
                        .map(|f| FLAGS.iter().position(|x| x == f).unwrap_or(usize::MAX))
                        .collect();
                    if !order.windows(2).all(|w| w[0] < w[1]) || order.contains(&usize::MAX) {
                        p(format!("{name}: flags {flags:?} unknown or out of order"));
                    }
                    for t in tokens.iter().filter_map(|t| t.strip_prefix("dead=")) {
                        for d in t.split(',') {
                            if !succ.iter().any(|s| s.as_str() == d) {
                                p(format!("{name}: dead edge {d} is not a successor"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "malformed expected listings:\n  {}",
        problems.join("\n  ")
    );
}
