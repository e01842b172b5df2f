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

/// A write error on standard output other than a closed pipe (a full disk) is an error with
/// exit 2 for every command that prints, not a silent success.
#[test]
fn a_full_standard_output_is_exit_2_for_every_printing_command() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let (old, new) = (fx("removed_call", "old.cls"), fx("removed_call", "new.cls"));
    for args in [
        vec!["diff", old.as_str(), new.as_str()],
        vec!["plan", old.as_str(), new.as_str()],
        vec!["states", old.as_str()],
        vec!["completions", "bash"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = bin().args(&args).stdout(full).output().unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot write to standard output"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

/// The `<process>` element of a change fixture, as a bare document.
fn bare_process(case: &str, file: &str) -> String {
    let text = std::fs::read_to_string(fx(case, file)).unwrap();
    let start = text.find("<process").unwrap();
    let end = text.find("</process>").unwrap() + "</process>".len();
    format!("{}\n", &text[start..end])
}

/// Bare `<process>` documents name no class: a name taken from the file name (`old.xml`,
/// `new.xml`) is no evidence of two classes. `plan`, `diff` and `check` give both versions
/// one name and say where it came from (BPM0407, info) instead of BPM0404; the SQL of
/// `plan --out` names the tables of the class the other input names, or of `--class`, and a
/// pick between two disagreeing file names is refused there. BPM0404 stays for two files
/// that name different classes.
#[test]
fn bare_documents_take_their_class_name_from_the_other_input_or_one_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.xml"), dir.path().join("new.xml"));
    std::fs::write(&old, bare_process("insert_middle", "old.cls")).unwrap();
    std::fs::write(&new, bare_process("insert_middle", "new.cls")).unwrap();
    let (old, new) = (old.to_str().unwrap(), new.to_str().unwrap());

    let o = run(&["plan", old, new]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.starts_with("old: migratable"), "{out}");
    assert!(!out.contains("BPM0404"), "{out}");
    assert!(
        out.contains(&format!("info    BPM0407 class-name-from-file-name: neither {old} nor {new} names its class (bare <process> documents): the class name old was taken from the file name of {old}; --class sets it")),
        "{out}"
    );

    let o = run(&["diff", old, new]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with(&format!("old: {old} → {new}\n")),
        "{}",
        stdout(&o)
    );

    let o = run(&["check", old, new]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "migratable: {out}");
    assert!(!out.contains("BPM0404") && out.contains("BPM0407"), "{out}");
    assert!(out.contains("verdict: migratable"), "{out}");

    // The migration names the class's tables: not from a pick between two file names.
    let folder = dir.path().join("out");
    let o = run(&["plan", old, new, "--out", folder.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("their file names disagree (old and new)")
            && stderr(&o).contains("pass --class NAME"),
        "{}",
        stderr(&o)
    );
    assert!(!folder.exists());
    let o = run(&["plan", old, new, "--emit", "objectscript"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));

    // --class names both.
    let o = run(&[
        "plan",
        old,
        new,
        "--class",
        "Demo.Bare.Loan",
        "--out",
        folder.to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        !out.contains("BPM0407") && !out.contains("BPM0404"),
        "{out}"
    );
    let sql = apply_sql(&folder, "0001_Demo.Bare.Loan_");
    assert!(
        sql.contains("UPDATE \"Demo_Bare_Loan\".\"Thread1\""),
        "{sql}"
    );

    // A UDL class on the other side names it.
    let udl = fx("insert_middle", "old.cls");
    let folder = dir.path().join("out2");
    let o = run(&["plan", &udl, new, "--out", folder.to_str().unwrap()]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.starts_with("Demo.Change.Loan: migratable"), "{out}");
    assert!(
        out.contains(&format!("BPM0407 class-name-from-file-name: {new} does not name its class (a bare <process> document): the class name Demo.Change.Loan was taken from the class {udl} names; --class sets it")),
        "{out}"
    );
    let sql = apply_sql(&folder, "0001_Demo.Change.Loan_");
    assert!(
        sql.contains("UPDATE \"Demo_Change_Loan\".\"Thread1\""),
        "{sql}"
    );
    assert!(!sql.contains("\"new\"") && !sql.contains("'new'"), "{sql}");

    // Two files that name different classes are still two classes.
    let o = run(&[
        "plan",
        &fx("class_changed", "old.cls"),
        &fx("class_changed", "new.cls"),
    ]);
    assert!(
        stdout(&o).contains("error   BPM0404 class-changed"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("BPM0407"), "{}", stdout(&o));
}

/// The `apply.sql` of the one migration folder under `dir` whose name starts with `prefix`.
fn apply_sql(dir: &Path, prefix: &str) -> String {
    let sub: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(sub.len(), 1, "{sub:?}");
    std::fs::read_to_string(sub[0].join("apply.sql")).unwrap()
}
