//! What users see for every change fixture, snapshotted next to it: the human `diff`, the
//! human `check` and its GitLab Code Quality and SARIF reports, exactly as the binary prints
//! them (`bplmigrate diff OLD NEW`, `bplmigrate check OLD NEW [--overrides FILE]
//! --report-gitlab … --report-sarif …`). The plan itself is `expected-plan.txt`
//! (`plan_fixtures`). `BLESS=1` rewrites them (tests/support/snap.rs); review every change.
//!
//! SARIF carries the whole rule catalogue in every log: it is snapshotted once
//! (`fixtures/changes/sarif-rules.json`) and elided from the per-fixture files, and the tool
//! version is replaced by `<version>` so a release does not touch every snapshot.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "support/snap.rs"]
mod snap;

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("fixtures/changes")
        .expect("fixtures/changes")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("old.cls").exists() && p.join("new.cls").exists())
        .collect();
    v.sort();
    v
}

fn rel(p: &Path) -> String {
    p.to_string_lossy().replace('\\', "/")
}

fn run(args: &[String]) -> (String, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
        .args(args)
        .output()
        .expect("run bplmigrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("error:"),
        "bplmigrate {args:?} failed:\n{stderr}"
    );
    (
        String::from_utf8(out.stdout).expect("UTF-8 output"),
        out.status.code().unwrap_or(-1),
    )
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s
}

#[test]
fn every_change_fixture_shows_its_reviewed_diff_check_and_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let (gitlab, sarif) = (
        tmp.path().join("gitlab.json"),
        tmp.path().join("sarif.json"),
    );
    let mut snaps = snap::Snapshots::new();
    let mut rules: Option<Value> = None;
    for dir in cases() {
        let (old, new) = (rel(&dir.join("old.cls")), rel(&dir.join("new.cls")));
        let (diff, code) = run(&["diff".into(), old.clone(), new.clone()]);
        assert_eq!(code, 0, "{}: diff exits 0", dir.display());
        snaps.check(dir.join("expected-diff.txt"), &diff);

        let mut args = vec!["check".into(), old, new];
        if dir.join("overrides.toml").exists() {
            args.extend(["--overrides".into(), rel(&dir.join("overrides.toml"))]);
        }
        args.extend([
            "--report-gitlab".into(),
            rel(&gitlab),
            "--report-sarif".into(),
            rel(&sarif),
        ]);
        let (human, code) = run(&args);
        assert!(
            code == 0 || code == 1,
            "{}: check exits {code}",
            dir.display()
        );
        snaps.check(dir.join("expected-check.txt"), &human);

        let g: Value = serde_json::from_str(&std::fs::read_to_string(&gitlab).unwrap()).unwrap();
        snaps.check(dir.join("expected-gitlab.json"), &pretty(&g));

        let mut s: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
        let driver = &mut s["runs"][0]["tool"]["driver"];
        let all = driver["rules"].take();
        assert!(
            rules.as_ref().is_none_or(|r| *r == all),
            "{}: every SARIF log carries the same rules",
            dir.display()
        );
        driver["rules"] = Value::String("see fixtures/changes/sarif-rules.json".into());
        assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
        driver["version"] = Value::String("<version>".into());
        rules = Some(all);
        snaps.check(dir.join("expected-sarif.json"), &pretty(&s));
    }
    snaps.check(
        "fixtures/changes/sarif-rules.json",
        &pretty(&rules.expect("at least one fixture")),
    );
    assert!(
        snaps.checked() >= 4 * 40,
        "only {} snapshots",
        snaps.checked()
    );
    snaps.finish();
}
