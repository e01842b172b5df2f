//! One folder check for `apply` and `plan --verify` (the real binary): every hand edit —
//! checksums recomputed or not, whatever header dialect — is refused by both, with exit 2
//! and the same message; an intact folder of either dialect passes both.

mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{plan, row, st, Fixture};

fn bplmigrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
        .args(args)
        .env_remove("BPLMIGRATE_CONNECT")
        .stdin(Stdio::null())
        .output()
        .expect("run bplmigrate")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Rewrites the checksum line of `file` to its current content (what a careless editor does).
fn recompute(dir: &Path, file: &str) {
    let sums = dir.join("CHECKSUMS.sha256");
    let body = fs::read(dir.join(file)).unwrap();
    let hash = bplmigrate::bpl::sha256_hex(&body);
    let text: String = fs::read_to_string(&sums)
        .unwrap()
        .lines()
        .map(|l| {
            if l.ends_with(&format!("  {file}")) {
                format!("{hash}  {file}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    fs::write(sums, text).unwrap();
}

fn edit(dir: &Path, file: &str, f: impl Fn(String) -> String) {
    let p = dir.join(file);
    let s = fs::read_to_string(&p).unwrap();
    fs::write(&p, f(s)).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn apply_and_plan_verify_refuse_exactly_the_same_edited_folders() {
    let Some(fx) = Fixture::new("FolderCheck", 1) else {
        return;
    };
    fx.seed(1, &[row("S5", 3), row("S7", 3)]);
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S7")), st("S7", Some("S5"))])],
        &[],
    );
    let (tmp, good) = fx.folder(&p);
    type Edit = (&'static str, Box<dyn Fn(&Path)>, &'static str);
    let cases: Vec<Edit> = vec![
        (
            "a DROP TABLE appended to apply.sql, checksum recomputed",
            Box::new(|d| {
                edit(d, "apply.sql", |s| {
                    s + "DROP TABLE \"BplMigrate\".\"History\";\n"
                });
                recompute(d, "apply.sql");
            }),
            "apply.sql does not belong to plan.json",
        ),
        (
            "apply.sql's header claims iris, checksum recomputed",
            Box::new(|d| {
                edit(d, "apply.sql", |s| {
                    s.replace(", dialect postgres (test stand-in)", ", dialect iris")
                });
                recompute(d, "apply.sql");
            }),
            "apply.sql does not belong to plan.json",
        ),
        (
            "apply.sql's header names no dialect, checksum recomputed",
            Box::new(|d| {
                edit(d, "apply.sql", |s| {
                    s.replace(", dialect postgres (test stand-in)", "")
                });
                recompute(d, "apply.sql");
            }),
            "names no dialect",
        ),
        (
            "apply.sql removed with its checksum line",
            Box::new(|d| {
                fs::remove_file(d.join("apply.sql")).unwrap();
                edit(d, "CHECKSUMS.sha256", |s| {
                    s.lines()
                        .filter(|l| !l.ends_with("  apply.sql"))
                        .map(|l| format!("{l}\n"))
                        .collect()
                });
            }),
            "apply.sql is missing",
        ),
        (
            "revert.sql edited, checksum recomputed",
            Box::new(|d| {
                edit(d, "revert.sql", |s| s.replace("'S5'", "'S6'"));
                recompute(d, "revert.sql");
            }),
            "revert.sql does not belong to plan.json",
        ),
        (
            "plan.json mapping edited, checksum recomputed",
            Box::new(|d| {
                edit(d, "plan.json", |s| {
                    s.replacen("\"new\": \"S7\"", "\"new\": \"S8\"", 1)
                });
                recompute(d, "plan.json");
            }),
            "does not match the plan's content",
        ),
        (
            "plan.json state renamed to no state name, checksum recomputed",
            Box::new(|d| {
                edit(d, "plan.json", |s| {
                    s.replacen("\"new\": \"S7\"", "\"new\": \"S07\"", 1)
                });
                recompute(d, "plan.json");
            }),
            // Refused by the plan's own types, where the value is.
            "\"S07\" is not a state name (S<n> or Stop) at line",
        ),
        (
            "plan.json schema_version edited, checksum recomputed",
            Box::new(|d| {
                edit(d, "plan.json", |s| {
                    s.replacen("\"schema_version\": 1", "\"schema_version\": 9", 1)
                });
                recompute(d, "plan.json");
            }),
            "schema version 9",
        ),
        (
            "apply.sql edited, checksum not recomputed",
            Box::new(|d| edit(d, "apply.sql", |s| s + "\n")),
            "apply.sql was edited",
        ),
    ];
    for (what, change, expected) in &cases {
        let dir = tmp.path().join(format!("case{}", what.len()));
        let _ = fs::remove_dir_all(&dir);
        copy_dir(&good, &dir);
        change(&dir);
        let d = dir.to_str().unwrap();
        let verify = bplmigrate(&["plan", "--verify", d]);
        let apply = bplmigrate(&["apply", d, "--connect", &fx.connect, "--yes"]);
        assert_eq!(verify.status.code(), Some(2), "{what}: {}", stderr(&verify));
        assert_eq!(apply.status.code(), Some(2), "{what}: {}", stderr(&apply));
        assert!(
            stderr(&verify).contains(expected),
            "{what}: {}",
            stderr(&verify)
        );
        assert_eq!(
            stderr(&verify),
            stderr(&apply),
            "{what}: the same check, the same words"
        );
    }
    assert_eq!(
        fx.states(1).into_iter().map(|r| r.0).collect::<Vec<_>>(),
        ["S5", "S7"]
    );

    // An intact folder passes both, whichever dialect it was written for.
    let iris_root = tmp.path().join("iris");
    let iris = bplmigrate::sql::write_migration_folder(
        &p,
        &iris_root,
        &bplmigrate::sql::FolderOptions::default(),
    )
    .unwrap();
    for dir in [&good, &iris] {
        let v = bplmigrate(&["plan", "--verify", dir.to_str().unwrap()]);
        assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
        assert!(String::from_utf8_lossy(&v.stdout).contains("intact"));
    }
    let a = bplmigrate(&[
        "apply",
        iris.to_str().unwrap(),
        "--connect",
        &fx.connect,
        "--yes",
    ]);
    assert_eq!(a.status.code(), Some(0), "{}", stderr(&a));
    assert_eq!(
        fx.states(1).into_iter().map(|r| r.0).collect::<Vec<_>>(),
        ["S7", "S5"]
    );
}
