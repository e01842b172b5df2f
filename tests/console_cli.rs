//! Operator mistakes get messages that say what is wrong and how to fix it (no database).

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
        .args(args)
        .env_remove("BPLMIGRATE_CONNECT")
        .stdin(Stdio::null())
        .output()
        .expect("run bplmigrate")
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn pair() -> (String, String) {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/changes/insert_middle");
    (
        d.join("old.cls").to_string_lossy().into_owned(),
        d.join("new.cls").to_string_lossy().into_owned(),
    )
}

#[test]
fn plan_out_over_an_edited_folder_says_what_changed_and_how_to_regenerate() {
    let (old, new) = pair();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    let o = run(&["plan", &old, &new, "--out", out]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let folder = std::fs::read_dir(tmp.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let readme = folder.join("README.md");
    let mut body = std::fs::read_to_string(&readme).unwrap();
    body.push_str("\nlocal note\n");
    std::fs::write(&readme, &body).unwrap();

    let o = run(&["plan", &old, &new, "--out", out]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("README.md was edited") && e.contains("--force"),
        "{e}"
    );
    // The folder is untouched by the refusal…
    assert_eq!(std::fs::read_to_string(&readme).unwrap(), body);
    // …and --force writes it again, intact.
    let o = run(&["plan", &old, &new, "--out", out, "--force"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = run(&["plan", "--verify", folder.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(!std::fs::read_to_string(&readme)
        .unwrap()
        .contains("local note"));
}

#[test]
fn verify_names_a_parent_folder_and_a_missing_path() {
    let (old, new) = pair();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().to_str().unwrap();
    assert_eq!(
        run(&["plan", &old, &new, "--out", out]).status.code(),
        Some(0)
    );
    let o = run(&["plan", "--verify", out]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("is a directory of migration folders") && e.contains("0001_"),
        "{e}"
    );
    let missing = tmp.path().join("nope");
    let o = run(&["plan", "--verify", missing.to_str().unwrap()]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("does not exist"), "{e}");
}

#[test]
fn apply_json_reports_an_unusable_folder_on_stdout_too() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("0001_missing");
    let o = run(&[
        "apply",
        missing.to_str().unwrap(),
        "--yes",
        "--format",
        "json",
        "--connect",
        "Driver=x;Pwd=s3cret",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", err(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json on stdout");
    assert_eq!(v["type"], "error");
    assert_eq!(v["data"]["error_class"], "input");
    assert!(
        v["data"]["message"]
            .as_str()
            .unwrap()
            .ends_with("0001_missing: does not exist"),
        "{v}"
    );
    assert!(err(&o).contains("does not exist"));
}

/// Review 13, D4: a folder whose plan.json was edited on purpose — a mapping changed to a state
/// the new BPL does not have (S11 → S99), `plan_id`, the scripts and every checksum recomputed
/// (here: the edited plan written by the library, its folder renamed to the original's name) —
/// passes the checksum and plan-id checks. Its name still says the original plan: `plan
/// --verify` and `apply` refuse it (exit 2, before connecting). Copied under another name, the
/// folder check alone cannot tell; `plan --verify DIR OLD NEW` plans again and refuses it,
/// while the genuine folder passes that check.
#[test]
fn a_forged_plan_is_refused_by_its_folder_name_and_by_verify_against_the_sources() {
    let (old, new) = pair();
    let tmp = tempfile::tempdir().unwrap();
    let good_root = tmp.path().join("good");
    let o = run(&["plan", &old, &new, "--out", good_root.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let good = std::fs::read_dir(&good_root)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(good.join("plan.json")).unwrap();
    let mut p: bplmigrate::plan::MigrationPlan = serde_json::from_str(&text).unwrap();
    let s = p.threads[0]
        .states
        .iter_mut()
        .find(|s| s.old == bplmigrate::states::StateName::parse("S11").unwrap())
        .unwrap();
    assert_eq!(s.new.map(|n| n.to_string()).as_deref(), Some("S13"));
    s.new = Some(bplmigrate::states::StateName::parse("S99").unwrap());
    p.plan_id = bplmigrate::plan::plan_id(&p).unwrap();
    let forged_root = tmp.path().join("forged");
    let written = bplmigrate::sql::write_migration_folder(
        &p,
        &forged_root,
        &bplmigrate::sql::FolderOptions::default(),
    )
    .unwrap();
    // Internally consistent: it verifies under the name `plan --out` gives it.
    let o = run(&["plan", "--verify", written.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    // Under the original's name: refused by name, by verify and by apply alike.
    let forged = forged_root.join(good.file_name().unwrap());
    std::fs::rename(&written, &forged).unwrap();
    let f = forged.to_str().unwrap();
    for args in [
        vec!["plan", "--verify", f],
        vec!["apply", f, "--yes", "--connect", "Driver={nowhere}"],
    ] {
        let o = run(&args);
        let e = err(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(
            e.contains("the folder name 0001_Demo.Change.Loan_eef014eb says plan eef014eb")
                && e.contains(&format!("plan.json is plan {}", p.plan_id)),
            "{args:?}: {e}"
        );
    }
    // Under any other name only planning again from the sources tells.
    let copy = tmp.path().join("copy");
    std::fs::rename(&forged, &copy).unwrap();
    let c = copy.to_str().unwrap();
    let o = run(&["plan", "--verify", c]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let o = run(&["plan", "--verify", c, &old, &new]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains(&format!("plan.json is plan {}", p.plan_id))
            && e.contains("give plan eef014ebc7366125"),
        "{e}"
    );
    let o = run(&["plan", "--verify", good.to_str().unwrap(), &old, &new]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("it is the plan"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // The sources swapped: named as the wrong source, not as an edit.
    let o = run(&["plan", "--verify", good.to_str().unwrap(), &new, &new]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("is not the old BPL its plan was made from"),
        "{e}"
    );
}

/// Review 13, D8: an emptied checksum file is named as such (not every file "added"), and a
/// broken plan.json is named inside its folder once.
#[test]
fn an_empty_checksum_file_and_a_broken_plan_are_named_plainly() {
    let (old, new) = pair();
    let tmp = tempfile::tempdir().unwrap();
    let o = run(&["plan", &old, &new, "--out", tmp.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let folder = std::fs::read_dir(tmp.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let d = folder.to_str().unwrap();
    let sums = folder.join("CHECKSUMS.sha256");
    let kept = std::fs::read_to_string(&sums).unwrap();
    std::fs::write(&sums, "").unwrap();
    let o = run(&["plan", "--verify", d]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("CHECKSUMS.sha256 lists no file") && !e.contains("was added"),
        "{e}"
    );
    // plan.json cut short, its checksum line recomputed.
    let plan = folder.join("plan.json");
    let body = std::fs::read_to_string(&plan).unwrap();
    std::fs::write(&plan, &body[..body.len() / 2]).unwrap();
    let hash = bplmigrate::sql::normalized_sha256(&std::fs::read(&plan).unwrap());
    let sums_text: String = kept
        .lines()
        .map(|l| {
            if l.ends_with("  plan.json") {
                format!("{hash}  plan.json\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(&sums, sums_text).unwrap();
    let o = run(&["plan", "--verify", d]);
    let e = err(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("plan.json is not a valid plan"), "{e}");
    assert_eq!(e.matches(d).count(), 1, "the folder is named once: {e}");
}
