//! `bplmigrate diff`, `plan` and `check` through the real binary: outputs, reports, exit codes.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run bplmigrate")
}

fn fx(case: &str, file: &str) -> String {
    format!("fixtures/changes/{case}/{file}")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn check_exit(case: &str) -> i32 {
    let o = run(&["check", &fx(case, "old.cls"), &fx(case, "new.cls")]);
    o.status.code().unwrap_or(-1)
}

#[test]
fn check_exits_0_for_identical_and_compatible_1_for_migratable_and_blocked() {
    assert_eq!(check_exit("layout_only"), 0);
    assert_eq!(check_exit("append_end"), 0);
    assert_eq!(check_exit("versioned"), 0);
    assert_eq!(check_exit("insert_middle"), 1);
    assert_eq!(check_exit("removed_wait_state"), 1);
}

#[test]
fn check_treats_drain_as_needing_action_and_names_the_states() {
    assert_eq!(check_exit("drain_only"), 1);
    assert_eq!(check_exit("one_state_compatible"), 0);
    assert_eq!(check_exit("unawaited_async_rename"), 0);
    let o = run(&[
        "check",
        &fx("drain_only", "old.cls"),
        &fx("drain_only", "new.cls"),
    ]);
    let out = stdout(&o);
    assert!(out.contains("verdict: drain"), "{out}");
    let o = run(&[
        "plan",
        &fx("drain_only", "old.cls"),
        &fx("drain_only", "new.cls"),
    ]);
    let first = stdout(&o).lines().next().unwrap_or("").to_string();
    assert!(
        first.starts_with("Demo.Change.Loan: drain (nothing to rewrite: deploy once no instance rests at Thread1:S11, S12"),
        "{first}"
    );
}

#[test]
fn check_exits_2_for_bad_input() {
    let o = run(&[
        "check",
        "fixtures/changes/does-not-exist.cls",
        &fx("append_end", "new.cls"),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    let o = run(&["check", &fx("append_end", "old.cls")]);
    assert_eq!(o.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<process><sequence><call name='x'/></sequence></process>",
    )
    .unwrap();
    let o = run(&["check", bad.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("bad.xml:1:"),
        "errors name file and line: {}",
        stderr(&o)
    );
}

#[test]
fn check_human_output_lists_findings_and_verdict() {
    let o = run(&[
        "check",
        &fx("removed_wait_state", "old.cls"),
        &fx("removed_wait_state", "new.cls"),
    ]);
    let out = stdout(&o);
    assert!(
        out.contains("Demo.Change.Loan (fixtures/changes/removed_wait_state/new.cls, was fixtures/changes/removed_wait_state/old.cls): blocked\n"),
        "{out}"
    );
    // Each finding with file:line:col, then a summary count.
    assert!(
        out.contains(
            "  fixtures/changes/removed_wait_state/new.cls:7:1: error BPM0101 removed-wait-state: "
        ),
        "{out}"
    );
    assert!(
        out.contains("\n1 class checked: 1 blocked; 3 findings (1 error, 0 warnings, 2 info)\n"),
        "{out}"
    );
    assert!(
        out.trim_end()
            .ends_with("verdict: blocked (fails --fail-on drain)"),
        "{out}"
    );
}

#[test]
fn check_writes_gitlab_and_sarif_reports_with_stable_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let (gl, sa) = (dir.path().join("gl.json"), dir.path().join("sarif.json"));
    let args = |gl: &Path, sa: &Path| {
        vec![
            "check".to_string(),
            fx("reorder_siblings", "old.cls"),
            fx("reorder_siblings", "new.cls"),
            "--gitlab".into(),
            gl.display().to_string(),
            "--sarif".into(),
            sa.display().to_string(),
            "--format".into(),
            "json".into(),
        ]
    };
    let o = bin().args(args(&gl, &sa)).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["verdict"], "migratable");
    assert_eq!(report["results"][0]["plan"]["verdict"], "migratable");

    let gitlab: Value = serde_json::from_str(&std::fs::read_to_string(&gl).unwrap()).unwrap();
    let issues = gitlab.as_array().unwrap();
    assert!(!issues.is_empty());
    for i in issues {
        assert_eq!(
            i["location"]["path"],
            "fixtures/changes/reorder_siblings/new.cls"
        );
        assert!(i["location"]["lines"]["begin"].as_u64().unwrap() >= 1);
        assert_eq!(i["fingerprint"].as_str().unwrap().len(), 64);
        assert!(["info", "minor", "major", "critical", "blocker"]
            .contains(&i["severity"].as_str().unwrap()));
    }
    let skipped = issues
        .iter()
        .find(|i| i["check_name"].as_str().unwrap().starts_with("BPM0201"))
        .expect("skipped-activities issue");
    assert_eq!(skipped["severity"], "major");
    // The skipped Notify call is at line 26 of new.cls.
    assert_eq!(skipped["location"]["lines"]["begin"], 26);

    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(&sa).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run0 = &sarif["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "bplmigrate");
    let rules = run0["tool"]["driver"]["rules"].as_array().unwrap();
    assert!(rules.iter().any(|r| r["id"] == "BPM0101"));
    let results = run0["results"].as_array().unwrap();
    assert_eq!(results.len(), issues.len());
    for r in results {
        let idx = r["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[idx]["id"], r["ruleId"]);
        assert!(["note", "warning", "error"].contains(&r["level"].as_str().unwrap()));
        assert_eq!(
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "fixtures/changes/reorder_siblings/new.cls"
        );
    }

    // Fingerprints are the same on the next run (no process-local hashing).
    let (gl2, sa2) = (dir.path().join("gl2.json"), dir.path().join("sarif2.json"));
    bin().args(args(&gl2, &sa2)).output().unwrap();
    assert_eq!(std::fs::read(&gl).unwrap(), std::fs::read(&gl2).unwrap());
    assert_eq!(std::fs::read(&sa).unwrap(), std::fs::read(&sa2).unwrap());
}

#[test]
fn diff_human_and_json() {
    let o = run(&[
        "diff",
        &fx("reorder_siblings", "old.cls"),
        &fx("reorder_siblings", "new.cls"),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("delay \"Cool\""), "{out}");
    assert!(out.contains("reordered"), "{out}");
    assert!(
        out.contains("S9   S11  SYNC_WAIT   delay \"Cool\""),
        "{out}"
    );

    let o = run(&[
        "diff",
        &fx("rename_call", "old.cls"),
        &fx("rename_call", "new.cls"),
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let d: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(d["identical"], false);
    let renamed = d["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["old"]["name"] == "Notify")
        .unwrap();
    assert_eq!(renamed["new"]["name"], "NotifyCustomer");
    assert_eq!(renamed["aspects"][0], "renamed");
    assert_eq!(d["threads"][0]["states"][10]["old"], "S11");
    assert_eq!(d["threads"][0]["states"][10]["new"], "S11");
}

#[test]
fn diff_of_a_file_with_itself_is_identical() {
    let f = fx("flow_renumbering", "new.cls");
    let o = run(&["diff", &f, &f, "--format", "json"]);
    let d: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(d["identical"], true);
}

#[test]
fn plan_json_with_overrides_and_compiler_choice() {
    let c = "removed_wait_state_mapped";
    let o = run(&[
        "plan",
        &fx(c, "old.cls"),
        &fx(c, "new.cls"),
        "--overrides",
        &fx(c, "overrides.toml"),
        "--format",
        "json",
        "--compiler",
        "legacy",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p["schema_version"], 1);
    assert_eq!(p["compiler"], "legacy");
    assert_eq!(p["verdict"], "migratable");
    assert_eq!(p["plan_id"].as_str().unwrap().len(), 16);
    let s9 = p["threads"][0]["states"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["old"] == "S9")
        .unwrap();
    assert_eq!(s9["new"], "S4");
    assert_eq!(s9["change"], "overridden");
    assert_eq!(p["overrides"].as_array().unwrap().len(), 2);
    // Deterministic: the same command gives the same bytes.
    let again = run(&[
        "plan",
        &fx(c, "old.cls"),
        &fx(c, "new.cls"),
        "--overrides",
        &fx(c, "overrides.toml"),
        "--format",
        "json",
        "--compiler",
        "legacy",
    ]);
    assert_eq!(o.stdout, again.stdout);
}

#[test]
fn plan_refuses_overrides_for_other_sources() {
    // The mapped fixture's overrides pin the hashes of its own files.
    let o = run(&[
        "plan",
        &fx("reorder_siblings", "old.cls"),
        &fx("reorder_siblings", "new.cls"),
        "--overrides",
        &fx("removed_wait_state_mapped", "overrides.toml"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = stderr(&o);
    assert!(
        e.contains("overrides.toml:4:") && e.contains("new_sha256"),
        "{e}"
    );
}

#[test]
fn plan_human_shows_every_state_with_labels() {
    let o = run(&[
        "plan",
        &fx("insert_middle", "old.cls"),
        &fx("insert_middle", "new.cls"),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.starts_with("Demo.Change.Loan: migratable"), "{out}");
    assert!(
        out.contains("S11  S13  SYNC_WAIT   call \"Notify\""),
        "{out}"
    );
    assert!(out.contains("sha256 "), "{out}");
}

#[test]
fn plan_out_writes_a_migration_folder() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(&[
        "plan",
        &fx("insert_middle", "old.cls"),
        &fx("insert_middle", "new.cls"),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let written: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    assert!(written[0].join("plan.json").exists());
}
