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
