//! `bplmigrate check --git-base` in throwaway git repositories: classes followed across
//! renames and moves, deletions, additions, covering and stale migration folders,
//! `--fail-on`, broken pipes, hostile revisions, reports validated against the GitLab Code
//! Quality and SARIF 2.1.0 schemas (tests/schemas/).

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
}

fn fixture(case: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/changes")
        .join(case)
        .join(file)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A throwaway repository; git never looks above it.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let r = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        r.git(&["init", "-q", "-b", "main"]);
        r.git(&["config", "user.email", "t@example.com"]);
        r.git(&["config", "user.name", "t"]);
        r
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
    fn git(&self, args: &[&str]) -> String {
        let o = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_CEILING_DIRECTORIES", self.path().parent().unwrap())
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
        stdout(&o)
    }
    /// Write fixture `case/file` to `to`, its class renamed to `class`.
    fn put(&self, case: &str, file: &str, to: &str, class: &str) {
        let text = std::fs::read_to_string(fixture(case, file)).unwrap();
        let p = self.path().join(to);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text.replace("Demo.Change.Loan", class)).unwrap();
    }
    fn commit(&self, msg: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-qm", msg]);
    }
    fn check_in(&self, sub: &str, args: &[&str]) -> Output {
        bin()
            .arg("check")
            .args(args)
            .current_dir(self.path().join(sub))
            .env("GIT_CEILING_DIRECTORIES", self.path().parent().unwrap())
            .env_remove("GITHUB_ACTIONS")
            .output()
            .unwrap()
    }
    fn check(&self, args: &[&str]) -> Output {
        self.check_in("", args)
    }
    fn check_json(&self, args: &[&str]) -> (i32, Value) {
        let mut a = args.to_vec();
        a.extend(["--format", "json"]);
        let o = self.check(&a);
        let v = serde_json::from_str(&stdout(&o))
            .unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&o), stderr(&o)));
        (o.status.code().unwrap(), v)
    }
}

fn result<'a>(v: &'a Value, class: &str) -> &'a Value {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["class"] == class)
        .unwrap_or_else(|| panic!("no result for {class}: {v:#}"))
}

#[test]
fn a_renamed_file_with_a_removed_wait_state_is_the_same_class_and_blocked() {
    let r = Repo::new();
    r.put("removed_wait_state", "old.cls", "src/Loan.cls", "Demo.Loan");
    r.commit("base");
    r.git(&["mv", "src/Loan.cls", "src/LoanProcess.cls"]);
    r.put(
        "removed_wait_state",
        "new.cls",
        "src/LoanProcess.cls",
        "Demo.Loan",
    );
    let (code, v) = r.check_json(&["--git-base", "HEAD"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["verdict"], "blocked");
    let loan = result(&v, "Demo.Loan");
    assert_eq!(loan["path"], "src/LoanProcess.cls");
    assert_eq!(loan["old_path"], "src/Loan.cls");
    assert_eq!(loan["outcome"], "blocked");
    assert_eq!(loan["old"], "HEAD:src/Loan.cls");
    assert!(loan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["code"] == "BPM0101"));
    // The same change committed, compared commit to commit.
    r.commit("rename");
    let (code, v) = r.check_json(&["--git-base", "HEAD~1", "--git-head", "HEAD"]);
    assert_eq!(code, 1);
    assert_eq!(result(&v, "Demo.Loan")["outcome"], "blocked");
}

#[test]
fn a_class_moved_to_another_folder_is_followed() {
    let r = Repo::new();
    r.put("insert_middle", "old.cls", "src/a/Loan.cls", "Demo.Loan");
    r.put("append_end", "old.cls", "src/a/Same.cls", "Demo.Same");
    r.commit("base");
    // Same moves unchanged; Loan moves and gains a delay.
    std::fs::create_dir_all(r.path().join("lib/b")).unwrap();
    r.git(&["mv", "src/a/Same.cls", "lib/Same.cls"]);
    r.git(&["mv", "src/a/Loan.cls", "lib/b/Loan.cls"]);
    r.put("insert_middle", "new.cls", "lib/b/Loan.cls", "Demo.Loan");
    let (code, v) = r.check_json(&["--git-base", "HEAD"]);
    assert_eq!(code, 1, "{v:#}");
    let same = result(&v, "Demo.Same");
    assert_eq!(same["outcome"], "identical");
    assert_eq!(same["old_path"], "src/a/Same.cls");
    let loan = result(&v, "Demo.Loan");
    assert_eq!(loan["outcome"], "migratable");
    assert_eq!(loan["path"], "lib/b/Loan.cls");
    assert_eq!(loan["old_path"], "src/a/Loan.cls");
    // A plain `mv` (not yet added) is followed too: untracked files are read.
    let r = Repo::new();
    r.put("append_end", "old.cls", "Same.cls", "Demo.Same");
    r.commit("base");
    std::fs::create_dir(r.path().join("moved")).unwrap();
    std::fs::rename(r.path().join("Same.cls"), r.path().join("moved/Same.cls")).unwrap();
    let (code, v) = r.check_json(&["--git-base", "HEAD"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(result(&v, "Demo.Same")["outcome"], "identical");
}

#[test]
fn a_deleted_class_is_an_error_and_a_new_class_is_fine() {
    let r = Repo::new();
    r.put("append_end", "old.cls", "src/Gone.cls", "Demo.Gone");
    std::fs::write(
        r.path().join("README.md"),
        "XData BPL talk, <process> too\n",
    )
    .unwrap();
    r.commit("base");
    r.git(&["rm", "-q", "src/Gone.cls"]);
    r.put("append_end", "new.cls", "src/Fresh.cls", "Demo.Fresh");
    std::fs::write(r.path().join("README.md"), "changed, still no BPL\n").unwrap();
    let o = r.check(&["--git-base", "HEAD"]);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("src/Gone.cls:7:1: error BPM0406 class-removed: in-flight instances of Demo.Gone would be orphaned"),
        "{out}"
    );
    assert!(
        out.contains("Demo.Fresh (src/Fresh.cls): new class, no instance can be in flight"),
        "{out}"
    );
    assert!(
        out.contains(
            "2 classes checked: 1 deleted, 1 new; 1 finding (1 error, 0 warnings, 0 info)"
        ),
        "{out}"
    );
    // Only the addition: passes.
    r.git(&["checkout", "-q", "HEAD", "--", "src/Gone.cls"]);
    let (code, v) = r.check_json(&["--git-base", "HEAD"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(result(&v, "Demo.Fresh")["outcome"], "new");
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
}

#[test]
fn two_classes_changed_in_one_commit_are_both_checked() {
    let r = Repo::new();
    r.put("insert_middle", "old.cls", "src/Loan.cls", "Demo.Loan");
    r.put(
        "removed_wait_state",
        "old.cls",
        "src/Credit.cls",
        "Demo.Credit",
    );
    r.put("append_end", "old.cls", "src/Quiet.cls", "Demo.Quiet");
    r.commit("base");
    r.put("insert_middle", "new.cls", "src/Loan.cls", "Demo.Loan");
    r.put(
        "removed_wait_state",
        "new.cls",
        "src/Credit.cls",
        "Demo.Credit",
    );
    r.commit("two classes");
    let (code, v) = r.check_json(&["--git-base", "HEAD~1", "--git-head", "HEAD"]);
    assert_eq!(code, 1);
    let classes: Vec<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["class"].as_str().unwrap())
        .collect();
    assert_eq!(classes, ["Demo.Credit", "Demo.Loan"]);
    assert_eq!(result(&v, "Demo.Credit")["outcome"], "blocked");
    assert_eq!(result(&v, "Demo.Loan")["outcome"], "migratable");
    // PATHS narrow the check (relative to the current directory).
    let o = r.check_in(
        "src",
        &["--git-base", "HEAD~1", "--git-head", "HEAD", "Loan.cls"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("1 class checked: 1 migratable"),
        "{}",
        stdout(&o)
    );
    let (code, v) = r.check_json(&[
        "--git-base",
        "HEAD~1",
        "--git-head",
        "HEAD",
        "--class",
        "Demo.Loan",
        "--fail-on",
        "blocked",
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
}

#[test]
fn a_changed_class_without_bpl_among_the_paths_selects_nothing() {
    // CI jobs pass every changed `.cls` file: one that holds no BPL must not stop the others.
    let r = Repo::new();
    r.put("insert_middle", "old.cls", "src/Loan.cls", "Demo.Loan");
    let util = "Class Demo.Util Extends %RegisteredObject\n{\n\nClassMethod One() As %Integer\n{\n  Quit 1\n}\n\n}\n";
    std::fs::write(r.path().join("src/Util.cls"), util).unwrap();
    r.commit("base");
    r.put("insert_middle", "new.cls", "src/Loan.cls", "Demo.Loan");
    std::fs::write(
        r.path().join("src/Util.cls"),
        util.replace("Quit 1", "Quit 2"),
    )
    .unwrap();
    r.commit("a BPL and a plain class changed");
    let base = ["--git-base", "HEAD~1", "--git-head", "HEAD"];
    let (code, v) = r.check_json(&[&base[..], &["src/Util.cls", "src/Loan.cls"]].concat());
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(result(&v, "Demo.Loan")["outcome"], "migratable");
    // Alone, it selects nothing; a path that names nothing is still refused.
    let o = r.check(&[&base[..], &["src/Util.cls"]].concat());
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let o = r.check(&[&base[..], &["src/Utill.cls"]].concat());
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no such file or folder"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_committed_matching_migration_folder_covers_the_change() {
    let r = Repo::new();
    r.put("insert_middle", "old.cls", "src/Loan.cls", "Demo.Loan");
    r.commit("base");
    r.put("insert_middle", "new.cls", "src/Loan.cls", "Demo.Loan");
    let o = bin()
        .current_dir(r.path())
        .args([
            "plan",
            "main:src/Loan.cls",
            "src/Loan.cls",
            "--out",
            "migrations",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let folder = r.git(&["ls-files", "--others", "migrations"]);
    let folder = folder
        .lines()
        .next()
        .unwrap()
        .rsplit_once('/')
        .unwrap()
        .0
        .to_string();

    // Not committed yet: does not cover, says why.
    let (code, v) = r.check_json(&["--git-base", "main", "--migrations", "migrations"]);
    assert_eq!(code, 1);
    let loan = result(&v, "Demo.Loan");
    assert_eq!(loan["outcome"], "migratable");
    assert_eq!(loan["not_covering"][0]["folder"], folder.as_str());
    assert!(
        loan["not_covering"][0]["why"]
            .as_str()
            .unwrap()
            .contains("not committed"),
        "{v:#}"
    );

    r.git(&["checkout", "-q", "-b", "feature"]);
    r.commit("loan: settle delay, reviewed migration");
    let o = r.check(&["--git-base", "main", "--migrations", "migrations"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "Demo.Loan (src/Loan.cls): covered by {folder} (verdict migratable)"
        )),
        "{}",
        stdout(&o)
    );
    // From a subfolder, with the migrations folder given relative to it: same answer.
    std::fs::create_dir_all(r.path().join("src/deep")).unwrap();
    let o = r.check_in(
        "src/deep",
        &[
            "--git-base",
            "main",
            "--migrations",
            "../../migrations",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["verdict"], "covered");
    assert_eq!(result(&v, "Demo.Loan")["covered_by"], folder.as_str());

    // With --git-head, the folders are read from that commit, not from the working tree.
    std::fs::rename(r.path().join("migrations"), r.path().join("moved-away")).unwrap();
    let (code, v) = r.check_json(&[
        "--git-base",
        "main",
        "--git-head",
        "feature",
        "--migrations",
        "migrations",
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(result(&v, "Demo.Loan")["covered_by"], folder.as_str());
    let (code, v) = r.check_json(&["--git-base", "main", "--migrations", "migrations"]);
    assert_eq!(code, 1, "the working tree has no folder now: {v:#}");
    std::fs::rename(r.path().join("moved-away"), r.path().join("migrations")).unwrap();

    // Stale: the BPL changed again after the folder was made.
    let text = std::fs::read_to_string(r.path().join("src/Loan.cls")).unwrap();
    std::fs::write(r.path().join("src/Loan.cls"), text + "/// one more line\n").unwrap();
    let (code, v) = r.check_json(&["--git-base", "main", "--migrations", "migrations"]);
    assert_eq!(code, 1);
    let why = result(&v, "Demo.Loan")["not_covering"][0]["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.starts_with("made for another new version"), "{why}");
    r.git(&["checkout", "-q", "--", "src/Loan.cls"]);

    // A plan.json edited with its checksums regenerated (sha256sum) is still refused.
    let plan_path = r.path().join(&folder).join("plan.json");
    let plan = std::fs::read_to_string(&plan_path).unwrap();
    let edited = plan.replacen("\"via\": \"exact\"", "\"via\": \"edited\"", 1);
    assert_ne!(plan, edited);
    std::fs::write(&plan_path, &edited).unwrap();
    let sums = Command::new("sh")
        .args([
            "-c",
            "sha256sum README.md apply.sql plan.json revert.sql review.html > CHECKSUMS.sha256",
        ])
        .current_dir(r.path().join(&folder))
        .status()
        .unwrap();
    assert!(sums.success());
    r.commit("tamper");
    let (code, v) = r.check_json(&["--git-base", "main", "--migrations", "migrations"]);
    assert_eq!(code, 1, "{v:#}");
    let why = result(&v, "Demo.Loan")["not_covering"][0]["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("plan.json was edited"), "{why}");

    // Checksums that do not hold.
    std::fs::write(r.path().join(&folder).join("apply.sql"), "-- emptied\n").unwrap();
    std::fs::write(&plan_path, &plan).unwrap();
    r.commit("edit apply.sql");
    let (code, v) = r.check_json(&["--git-base", "main", "--migrations", "migrations"]);
    assert_eq!(code, 1, "{v:#}");
    let why = result(&v, "Demo.Loan")["not_covering"][0]["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        why.contains("checksums do not hold") && why.contains("apply.sql"),
        "{why}"
    );
}

#[test]
fn a_blocked_change_is_covered_only_with_the_overrides_its_folder_was_planned_with() {
    let r = Repo::new();
    r.put("removed_wait_state", "old.cls", "Credit.cls", "Demo.Credit");
    r.commit("base");
    r.put("removed_wait_state", "new.cls", "Credit.cls", "Demo.Credit");
    std::fs::write(
        r.path().join("overrides.toml"),
        "[[ack]]\ncode = \"BPM0101\"\nreason = \"reviewed: the delay never held instances\"\n",
    )
    .unwrap();
    let o = bin()
        .current_dir(r.path())
        .args([
            "plan",
            "main:Credit.cls",
            "Credit.cls",
            "--overrides",
            "overrides.toml",
            "--out",
            "migrations",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    r.commit("reviewed");
    let (code, v) = r.check_json(&["--git-base", "HEAD~1", "--migrations", "migrations"]);
    assert_eq!(code, 1, "{v:#}");
    let why = result(&v, "Demo.Credit")["not_covering"][0]["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("pass that file with --overrides"), "{why}");
    let (code, v) = r.check_json(&[
        "--git-base",
        "HEAD~1",
        "--migrations",
        "migrations",
        "--overrides",
        "overrides.toml",
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(result(&v, "Demo.Credit")["outcome"], "covered");
}

/// One rule with `apply` and the runner: a folder whose plan is blocked only by rows that
/// must drain (a removed wait state; its precondition refuses until they did) covers the
/// change; one blocked by anything else (an ambiguous match) never does, naming why.
#[test]
fn a_folder_blocked_only_by_rows_to_drain_covers_and_a_hard_blocked_one_does_not() {
    for (case, covers) in [
        ("removed_wait_state", true),
        ("ambiguous_twin_delay", false),
    ] {
        let r = Repo::new();
        r.put(case, "old.cls", "Credit.cls", "Demo.Credit");
        r.commit("base");
        r.put(case, "new.cls", "Credit.cls", "Demo.Credit");
        let o = bin()
            .current_dir(r.path())
            .args([
                "plan",
                "main:Credit.cls",
                "Credit.cls",
                "--out",
                "migrations",
            ])
            .output()
            .unwrap();
        // `plan` says blocked (exit 1) and writes the folder all the same.
        assert_eq!(
            o.status.code(),
            Some(1),
            "{case}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        r.commit("planned");
        let (code, v) = r.check_json(&["--git-base", "HEAD~1", "--migrations", "migrations"]);
        if covers {
            assert_eq!(code, 0, "{case}: {v:#}");
            assert_eq!(result(&v, "Demo.Credit")["outcome"], "covered", "{case}");
        } else {
            assert_eq!(code, 1, "{case}: {v:#}");
            let why = result(&v, "Demo.Credit")["not_covering"][0]["why"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(
                why.contains("its plan is blocked (BPM0301") && why.contains("cannot be applied"),
                "{case}: {why}"
            );
        }
    }
}

#[test]
fn fail_on_picks_the_threshold() {
    let r = Repo::new();
    r.put("insert_middle", "old.cls", "Loan.cls", "Demo.Loan");
    r.commit("base");
    r.put("insert_middle", "new.cls", "Loan.cls", "Demo.Loan");
    let code = |extra: &[&str]| {
        let mut a = vec!["--git-base", "HEAD"];
        a.extend(extra);
        r.check(&a).status.code().unwrap()
    };
    assert_eq!(code(&[]), 1);
    assert_eq!(code(&["--fail-on", "drain"]), 1);
    assert_eq!(code(&["--fail-on", "migratable"]), 1);
    assert_eq!(code(&["--fail-on", "blocked"]), 0);
    assert_eq!(code(&["--fail-on", "BLOCKED"]), 0);
    assert_eq!(code(&["--fail-on", "sometimes"]), 2);
    // A compatible change never fails.
    r.git(&["checkout", "-q", "--", "Loan.cls"]);
    r.put("append_end", "old.cls", "Quiet.cls", "Demo.Quiet");
    r.commit("quiet");
    r.put("append_end", "new.cls", "Quiet.cls", "Demo.Quiet");
    assert_eq!(code(&["--fail-on", "drain"]), 0);
}

/// Run `check` with stdout a socket whose reading end is already closed: every write fails
/// with a broken pipe.
fn check_into_closed_pipe(r: &Repo, args: &[&str]) -> Output {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(ours);
    bin()
        .arg("check")
        .args(args)
        .current_dir(r.path())
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_keeps_the_verdicts_exit_code() {
    let r = Repo::new();
    r.put("removed_wait_state", "old.cls", "Credit.cls", "Demo.Credit");
    r.put("append_end", "old.cls", "Quiet.cls", "Demo.Quiet");
    r.commit("base");
    r.put("append_end", "new.cls", "Quiet.cls", "Demo.Quiet");
    let o = check_into_closed_pipe(&r, &["--git-base", "HEAD"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    r.put("removed_wait_state", "new.cls", "Credit.cls", "Demo.Credit");
    for format in ["human", "json", "gitlab", "sarif"] {
        let o = check_into_closed_pipe(&r, &["--git-base", "HEAD", "--format", format]);
        assert_eq!(o.status.code(), Some(1), "{format}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "a closed pipe is not reported");
    }
    // Through a shell pipe into `head -1`, as in CI logs.
    let o = Command::new("bash")
        .args([
            "-c",
            &format!(
                "set -o pipefail; '{}' check --git-base HEAD | head -1",
                env!("CARGO_BIN_EXE_bplmigrate")
            ),
        ])
        .current_dir(r.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Any other write error is an error.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let o = bin()
        .args(["check", "--git-base", "HEAD"])
        .current_dir(r.path())
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot write to standard output"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn revisions_that_look_like_options_are_refused() {
    let r = Repo::new();
    r.put("insert_middle", "old.cls", "Loan.cls", "Demo.Loan");
    r.commit("base");
    let target = r.path().join("clobbered.txt");
    std::fs::write(&target, "keep me\n").unwrap();
    let hostile = format!("--output={}", target.display());
    for args in [
        vec![format!("--git-base={hostile}")],
        vec![
            "--git-base".into(),
            "HEAD".into(),
            format!("--git-head={hostile}"),
        ],
        vec!["--git-base=-p".into()],
        // REV:path inputs get the same refusal.
        vec![
            "--".into(),
            format!("{hostile}:Loan.cls"),
            "Loan.cls".into(),
        ],
    ] {
        let o = r.check(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stdout(&o));
        assert!(
            stderr(&o).contains("starts with '-': refused"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
    }
    let o = bin()
        .current_dir(r.path())
        .args(["diff", "--", "-x:Loan.cls", "Loan.cls"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("starts with '-': refused"),
        "{}",
        stderr(&o)
    );
    // An unknown revision: one clear line.
    let o = r.check(&["--git-base", "no-such-branch"]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: unknown revision 'no-such-branch' (not a commit in this repository)\n"
    );
}

#[test]
fn outside_a_repository_check_says_so_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = bin()
        .args(["check", "--git-base", "HEAD"])
        .current_dir(dir.path())
        .env("GIT_CEILING_DIRECTORIES", dir.path().parent().unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("is not inside a git repository"), "{err}");
}

fn validate(schema_file: &str, instance: &Value) {
    let errors = schema_errors(schema_file, instance);
    assert!(
        errors.is_empty(),
        "{schema_file}: {errors:#?}\n{instance:#}"
    );
}

fn schema_errors(schema_file: &str, instance: &Value) -> Vec<String> {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/schemas")
                .join(schema_file),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn the_schemas_reject_malformed_reports() {
    use serde_json::json;
    let issue = json!({"description": "d", "check_name": "c", "fingerprint": "f", "severity": "major",
        "location": {"path": "src/A.cls", "lines": {"begin": 3}}});
    assert!(schema_errors("gitlab-code-quality.json", &json!([issue.clone()])).is_empty());
    for bad in [
        json!([{"description": "d", "check_name": "c", "fingerprint": "f", "severity": "fatal", "location": {"path": "a", "lines": {"begin": 1}}}]),
        json!([{"description": "d", "check_name": "c", "fingerprint": "f", "severity": "info", "location": {"path": "/abs/a", "lines": {"begin": 1}}}]),
        json!([{"description": "d", "check_name": "c", "severity": "info", "location": {"path": "a", "lines": {"begin": 1}}}]),
        json!([{"description": "d", "check_name": "c", "fingerprint": "f", "severity": "info", "location": {"path": "a"}}]),
        json!({"issues": []}),
    ] {
        assert!(
            !schema_errors("gitlab-code-quality.json", &bad).is_empty(),
            "{bad}"
        );
    }
    let ok =
        json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": []}]});
    assert!(schema_errors("sarif-2.1.0.json", &ok).is_empty());
    for bad in [
        json!({"version": "2.0.0", "runs": []}),
        json!({"version": "2.1.0", "runs": [{"results": []}]}),
        json!({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}, "level": "fatal"}]}]}),
    ] {
        assert!(!schema_errors("sarif-2.1.0.json", &bad).is_empty(), "{bad}");
    }
}

#[test]
fn reports_follow_the_gitlab_and_sarif_schemas_with_repository_relative_paths() {
    let r = Repo::new();
    r.put("insert_middle", "old.cls", "src/a/Loan.cls", "Demo.Loan");
    r.put(
        "removed_wait_state",
        "old.cls",
        "src/b/Credit.cls",
        "Demo.Credit",
    );
    r.put("append_end", "old.cls", "src/b/Gone.cls", "Demo.Gone");
    r.commit("base");
    r.put("insert_middle", "new.cls", "src/a/Loan.cls", "Demo.Loan");
    r.put(
        "removed_wait_state",
        "new.cls",
        "src/b/Credit.cls",
        "Demo.Credit",
    );
    r.git(&["rm", "-q", "src/b/Gone.cls"]);
    let o = bin()
        .current_dir(r.path())
        .args([
            "plan",
            "HEAD:src/a/Loan.cls",
            "src/a/Loan.cls",
            "--out",
            "migrations",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    r.commit("change");
    std::fs::create_dir_all(r.path().join("src/b/deeper")).unwrap();
    let o = r.check_in(
        "src/b/deeper",
        &[
            "--git-base",
            "HEAD~1",
            "--migrations",
            "../../../migrations",
            "--report-gitlab",
            "../../../gl-code-quality-report.json",
            "--report-sarif",
            "../../../bplmigrate.sarif",
            "--format",
            "sarif",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let gitlab: Value = serde_json::from_slice(
        &std::fs::read(r.path().join("gl-code-quality-report.json")).unwrap(),
    )
    .unwrap();
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(r.path().join("bplmigrate.sarif")).unwrap()).unwrap();
    let sarif_stdout: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(sarif, sarif_stdout);
    validate("gitlab-code-quality.json", &gitlab);
    validate("sarif-2.1.0.json", &sarif);
    let paths: std::collections::BTreeSet<&str> = gitlab
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["location"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths.into_iter().collect::<Vec<_>>(),
        ["src/a/Loan.cls", "src/b/Credit.cls", "src/b/Gone.cls"]
    );
    // The covered class's findings are info / suppressed.
    for i in gitlab.as_array().unwrap() {
        if i["location"]["path"] == "src/a/Loan.cls" {
            assert_eq!(i["severity"], "info", "{i:#}");
        }
    }
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(results
        .iter()
        .filter(
            |r| r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                == "src/a/Loan.cls"
        )
        .all(|r| r["suppressions"][0]["kind"] == "external"));
    assert!(results.iter().any(|r| r["ruleId"] == "BPM0406"));
    // GitLab report on stdout too, and JSON of an empty change.
    let o = r.check(&["--git-base", "HEAD", "--format", "GitLab"]);
    assert_eq!(o.status.code(), Some(0));
    let empty: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(empty, serde_json::json!([]));
    validate("gitlab-code-quality.json", &empty);
}

#[test]
fn report_files_overwrite_only_reports_of_their_kind() {
    let r = Repo::new();
    r.put("insert_middle", "old.cls", "Loan.cls", "Demo.Loan");
    r.commit("base");
    r.put("insert_middle", "new.cls", "Loan.cls", "Demo.Loan");
    let source = std::fs::read(r.path().join("Loan.cls")).unwrap();
    // A mistyped path pointing at a source file.
    for flag in ["--report-gitlab", "--report-sarif"] {
        let o = r.check(&["--git-base", "HEAD", flag, "Loan.cls"]);
        assert_eq!(o.status.code(), Some(2), "{flag}");
        assert!(
            stderr(&o).contains("refusing to overwrite Loan.cls"),
            "{}",
            stderr(&o)
        );
        assert_eq!(std::fs::read(r.path().join("Loan.cls")).unwrap(), source);
    }
    // A SARIF log is not a GitLab report and vice versa.
    assert_eq!(
        r.check(&["--git-base", "HEAD", "--report-sarif", "out.sarif"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        r.check(&["--git-base", "HEAD", "--report-gitlab", "out.sarif"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        r.check(&["--git-base", "HEAD", "--report-gitlab", "gl.json"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        r.check(&["--git-base", "HEAD", "--report-sarif", "gl.json"])
            .status
            .code(),
        Some(2)
    );
    // `-` is standard output.
    let o = r.check(&["--git-base", "HEAD", "--report-sarif", "-"]);
    assert_eq!(o.status.code(), Some(1));
    validate(
        "sarif-2.1.0.json",
        &serde_json::from_str(&stdout(&o)).unwrap(),
    );
    let o = r.check(&[
        "--git-base",
        "HEAD",
        "--report-gitlab",
        "-",
        "--report-sarif",
        "-",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = r.check(&[
        "--git-base",
        "HEAD",
        "--report-gitlab",
        "-",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!r.path().join("-").exists());
    // Rewriting a report of the same kind, and an empty file, are fine; the old flags still work.
    std::fs::write(r.path().join("empty.json"), "").unwrap();
    assert_eq!(
        r.check(&[
            "--git-base",
            "HEAD",
            "--gitlab",
            "gl.json",
            "--sarif",
            "out.sarif"
        ])
        .status
        .code(),
        Some(1)
    );
    assert_eq!(
        r.check(&["--git-base", "HEAD", "--report-gitlab", "empty.json"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn github_actions_get_workflow_annotations_on_stderr() {
    let r = Repo::new();
    r.put(
        "removed_wait_state",
        "old.cls",
        "src/Credit.cls",
        "Demo.Credit",
    );
    r.commit("base");
    r.put(
        "removed_wait_state",
        "new.cls",
        "src/Credit.cls",
        "Demo.Credit",
    );
    let o = bin()
        .args(["check", "--git-base", "HEAD", "--format", "json"])
        .current_dir(r.path().join("src"))
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    serde_json::from_str::<Value>(&stdout(&o)).expect("stdout stays JSON");
    let err = stderr(&o);
    assert!(
        err.lines().any(|l| l.starts_with("::error file=src/Credit.cls,line=7,col=1,title=BPM0101 removed-wait-state::Demo.Credit: ")),
        "{err}"
    );
    assert!(
        err.lines().any(|l| l.starts_with(
            "::notice file=src/Credit.cls,line=7,col=1,title=BPM0105 states-renumbered::"
        )),
        "{err}"
    );
}

#[test]
fn plan_exits_1_when_the_plan_is_blocked() {
    let o = bin()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "plan",
            "fixtures/changes/removed_wait_state/old.cls",
            "fixtures/changes/removed_wait_state/new.cls",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("blocked"));
    let o = bin()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "plan",
            "fixtures/changes/insert_middle/old.cls",
            "fixtures/changes/insert_middle/new.cls",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn help_lists_exit_codes_and_completions_and_man_pages_are_generated() {
    let o = bin().arg("--help").output().unwrap();
    let help = stdout(&o);
    for code in [
        "  0  success",
        "  1  check:",
        "  2  usage or input error",
        "  3  a guard",
        "  4  the database failed",
    ] {
        assert!(help.contains(code), "{help}");
    }
    // `status --plan --watch` ends with 4 when the connection is lost for good, as its own
    // --help and the README say.
    let o = bin().args(["status", "--help"]).output().unwrap();
    assert!(
        stdout(&o).contains("exit 4 when --timeout passes before it is back"),
        "{}",
        stdout(&o)
    );
    assert!(
        help.contains(
            "status --plan --watch: 0 ready, 3 timed out or cannot become ready by draining, 4 the connection\nwas lost and not back before --timeout."
        ),
        "{help}"
    );
    let o = bin().args(["check", "--help"]).output().unwrap();
    let help = stdout(&o);
    assert!(
        help.contains("Exit codes:") && help.contains("--fail-on <VERDICT>"),
        "{help}"
    );
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let o = bin().args(["completions", shell]).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{shell}");
        assert!(stdout(&o).contains("git-base"), "{shell}");
    }
    let o = bin().arg("man").output().unwrap();
    assert!(
        stdout(&o).starts_with(".ie \\n(.g .ds Aq"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains(".TH bplmigrate 1"), "{}", stdout(&o));
    let o = bin().args(["man", "check"]).output().unwrap();
    assert!(
        stdout(&o).contains(".TH bplmigrate-check 1"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("Exit codes"), "{}", stdout(&o));
    let o = bin().args(["man", "nope"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// The shell lines of the CI examples: GitLab `script:` items, GitHub `run: |` blocks.
fn ci_script(file: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/ci")
            .join(file),
    )
    .unwrap();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```yaml\n{text}```\n")),
        "README.md must include examples/ci/{file} verbatim"
    );
    let mut lines = Vec::new();
    let mut block: Option<(usize, bool)> = None; // (indent of the key, GitLab list)
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some((key_indent, list)) = block {
            if !line.trim().is_empty() && indent <= key_indent {
                block = None;
            } else if list {
                if let Some(cmd) = line.trim_start().strip_prefix("- ") {
                    lines.push(cmd.to_string());
                }
                continue;
            } else {
                lines.push(line.trim_start().to_string());
                continue;
            }
        }
        let t = line.trim_start();
        if t == "script:" {
            block = Some((indent, true));
        } else if t == "run: |" {
            block = Some((indent, false));
        }
    }
    assert!(!lines.is_empty(), "no script in {file}");
    lines.join("\n")
}

/// A merge request: main has Demo.Loan, the feature branch inserts a delay (migratable).
fn merge_request_repo() -> (Repo, String) {
    let r = Repo::new();
    r.put("insert_middle", "old.cls", "src/Loan.cls", "Demo.Loan");
    r.commit("base");
    let base = r.git(&["rev-parse", "HEAD"]).trim().to_string();
    r.git(&["update-ref", "refs/remotes/origin/main", &base]);
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.put("insert_middle", "new.cls", "src/Loan.cls", "Demo.Loan");
    r.commit("loan: settle delay");
    (r, base)
}

fn run_ci(r: &Repo, script: &str, env: &[(&str, &str)]) -> Output {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_bplmigrate"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("bash");
    c.args(["-e", "-c", script])
        .current_dir(r.path())
        .env("PATH", path)
        .env("GIT_CEILING_DIRECTORIES", r.path().parent().unwrap())
        .env_remove("GITHUB_ACTIONS");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Commit the reviewed migration folder of the merge request's change.
fn commit_reviewed_migration(r: &Repo, base: &str) {
    let o = bin()
        .current_dir(r.path())
        .args([
            "plan",
            &format!("{base}:src/Loan.cls"),
            "src/Loan.cls",
            "--out",
            "migrations",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    r.commit("reviewed migration");
}

#[test]
fn the_readme_gitlab_job_runs_as_written() {
    let script = ci_script("gitlab-ci.yml");
    let (r, base) = merge_request_repo();
    let env = [
        ("CI_MERGE_REQUEST_DIFF_BASE_SHA", base.as_str()),
        ("CI", "true"),
    ];
    let o = run_ci(&r, &script, &env);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("Demo.Loan (src/Loan.cls): migratable"),
        "{}",
        stdout(&o)
    );
    let report: Value = serde_json::from_slice(
        &std::fs::read(r.path().join("gl-code-quality-report.json")).unwrap(),
    )
    .unwrap();
    validate("gitlab-code-quality.json", &report);
    assert!(report
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["severity"] == "major"));

    commit_reviewed_migration(&r, &base);
    let o = run_ci(&r, &script, &env);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("covered by migrations/0001_Demo.Loan_"),
        "{}",
        stdout(&o)
    );
    let report: Value = serde_json::from_slice(
        &std::fs::read(r.path().join("gl-code-quality-report.json")).unwrap(),
    )
    .unwrap();
    validate("gitlab-code-quality.json", &report);
    assert!(report
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["severity"] == "info"));
}

#[test]
fn the_readme_github_step_runs_as_written() {
    let script = ci_script("github-workflow.yml");
    let (r, base) = merge_request_repo();
    let env = [
        ("GITHUB_BASE_REF", "main"),
        ("GITHUB_ACTIONS", "true"),
        ("CI", "true"),
    ];
    let o = run_ci(&r, &script, &env);
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o)
            .lines()
            .any(|l| l.starts_with("::warning file=src/Loan.cls,line=")),
        "{}",
        stderr(&o)
    );
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(r.path().join("bplmigrate.sarif")).unwrap()).unwrap();
    validate("sarif-2.1.0.json", &sarif);

    commit_reviewed_migration(&r, &base);
    let o = run_ci(&r, &script, &env);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o)
            .lines()
            .all(|l| !l.starts_with("::warning") && !l.starts_with("::error")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn human_output_of_a_mixed_change_from_a_subfolder() {
    let r = Repo::new();
    std::fs::create_dir_all(r.path().join("src/x")).unwrap();
    std::fs::write(r.path().join("src/x/.keep"), "").unwrap();
    r.put("append_end", "old.cls", "src/Same.cls", "Demo.Same");
    r.put("append_end", "old.cls", "src/Gone.cls", "Demo.Gone");
    r.put("append_end", "old.cls", "src/Compat.cls", "Demo.Compat");
    r.commit("base");
    std::fs::create_dir_all(r.path().join("lib")).unwrap();
    r.git(&["mv", "src/Same.cls", "lib/Same.cls"]);
    r.git(&["rm", "-q", "src/Gone.cls"]);
    r.put("append_end", "new.cls", "src/Fresh.cls", "Demo.Fresh");
    r.put("append_end", "new.cls", "src/Compat.cls", "Demo.Compat");
    let o = r.check_in("src/x", &["--git-base", "HEAD"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    pretty_assertions::assert_eq!(
        stdout(&o),
        "\
Demo.Compat (src/Compat.cls): compatible
Demo.Fresh (src/Fresh.cls): new class, no instance can be in flight
Demo.Gone (src/Gone.cls): deleted
  src/Gone.cls:7:1: error BPM0406 class-removed: in-flight instances of Demo.Gone would be orphaned: the class was deleted
Demo.Same (lib/Same.cls, was src/Same.cls): identical

4 classes checked: 1 compatible, 1 deleted, 1 identical, 1 new; 1 finding (1 error, 0 warnings, 0 info)
verdict: blocked (fails --fail-on drain)
"
    );
    // `lib` (relative to src/x) narrows the check to the moved class.
    let o = r.check_in("src/x", &["--git-base", "HEAD", "../../lib"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    pretty_assertions::assert_eq!(
        stdout(&o),
        "\
Demo.Same (lib/Same.cls, was src/Same.cls): identical

1 class checked: 1 identical; 0 findings (0 errors, 0 warnings, 0 info)
verdict: identical (passes --fail-on drain)
"
    );
    // Nothing changed under a path.
    let o = r.check_in("src/x", &["--git-base", "HEAD", "."]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("no BPL class changed\n"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn large_changed_files_are_sniffed_not_read_whole() {
    let r = Repo::new();
    r.put("append_end", "old.cls", "Quiet.cls", "Demo.Quiet");
    let big = |first: &str| {
        let mut v = first.as_bytes().to_vec();
        v.resize(33 << 20, b'x');
        v
    };
    std::fs::write(r.path().join("asset.bin"), big("\u{1}binary")).unwrap();
    r.commit("base");
    // A large non-BPL file changes: skipped.
    std::fs::write(r.path().join("asset.bin"), big("\u{2}binary")).unwrap();
    let o = r.check(&["--git-base", "HEAD"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("no BPL class changed"),
        "{}",
        stdout(&o)
    );
    // A large file that starts like a class: refused, not skipped.
    std::fs::write(
        r.path().join("Huge.cls"),
        big("Class Demo.Huge Extends Ens.BusinessProcessBPL\n{\n"),
    )
    .unwrap();
    let o = r.check(&["--git-base", "HEAD"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o).starts_with("error: Huge.cls: the file is 33 MiB, more than the 16 MiB limit for a BPL source; pass --max-input-size 34M to read it anyway"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("Demo.Huge (Huge.cls): not checked (exit 2)"),
        "{}",
        stdout(&o)
    );
    // The same cap as `check OLD NEW` and every other command: --max-input-size raises it
    // (the file is then read whole, and holds no XData BPL after all).
    let o = r.check(&["--git-base", "HEAD", "--max-input-size", "34M"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("no BPL class changed"),
        "{}",
        stdout(&o)
    );
    let o = r.check(&["HEAD:Quiet.cls", "Huge.cls"]);
    assert!(
        stderr(&o)
            .contains("Huge.cls: the file is 33 MiB, more than the 16 MiB limit for a BPL source"),
        "{}",
        stderr(&o)
    );
    // Committed on the old side too.
    std::fs::remove_file(r.path().join("Huge.cls")).unwrap();
    std::fs::write(
        r.path().join("Huge.xml"),
        big("<?xml version=\"1.0\"?>\n<Export>"),
    )
    .unwrap();
    r.commit("huge export");
    std::fs::remove_file(r.path().join("Huge.xml")).unwrap();
    let o = r.check(&["--git-base", "HEAD"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert!(
        stderr(&o)
            .starts_with("error: HEAD:Huge.xml: the file is 33 MiB, more than the 16 MiB limit"),
        "{}",
        stderr(&o)
    );
}

impl Repo {
    /// Write fixture `case/file` to `to` as `class`, with its closing `</sequence>` misspelt:
    /// malformed XML. Returns the (1-based) line of the misspelt tag.
    fn put_broken(&self, case: &str, file: &str, to: &str, class: &str) -> usize {
        self.put(case, file, to, class);
        let p = self.path().join(to);
        let text = std::fs::read_to_string(&p).unwrap();
        let line = text.lines().position(|l| l == "</sequence>").unwrap() + 1;
        std::fs::write(&p, text.replace("</sequence>", "</sequenc>")).unwrap();
        line
    }
    fn check_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut c = bin();
        c.arg("check")
            .args(args)
            .current_dir(self.path())
            .env("GIT_CEILING_DIRECTORIES", self.path().parent().unwrap())
            .env_remove("GITHUB_ACTIONS");
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }
}

fn sarif_results(v: &Value) -> Vec<(String, String, u64)> {
    v["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let loc = &r["locations"][0]["physicalLocation"];
            (
                r["ruleId"].as_str().unwrap().to_string(),
                loc["artifactLocation"]["uri"].as_str().unwrap().to_string(),
                loc["region"]["startLine"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A malformed class does not lose the other classes' results: it is a result itself
/// (BPM0408, located), every requested report is written and valid, GitHub gets an
/// annotation for it, and the exit code is 2 (an input error wins over a failing verdict).
#[test]
fn a_malformed_class_is_reported_beside_every_other_class() {
    let r = Repo::new();
    r.put(
        "removed_wait_state",
        "old.cls",
        "src/Credit.cls",
        "Demo.Credit",
    );
    r.put("append_end", "old.cls", "src/Broken.cls", "Demo.Broken");
    r.commit("base");
    r.put(
        "removed_wait_state",
        "new.cls",
        "src/Credit.cls",
        "Demo.Credit",
    );
    let line = r.put_broken("append_end", "new.cls", "src/Broken.cls", "Demo.Broken");
    let o = r.check_env(
        &[
            "--git-base",
            "HEAD",
            "--report-sarif",
            "bplmigrate.sarif",
            "--report-gitlab",
            "gl.json",
            "--format",
            "json",
        ],
        &[("GITHUB_ACTIONS", "true")],
    );
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["verdict"], "not-checked");
    assert_eq!(v["fails"], true);
    assert_eq!(result(&v, "Demo.Credit")["outcome"], "blocked", "{v:#}");
    let broken = result(&v, "Demo.Broken");
    assert_eq!(broken["outcome"], "not-checked", "{v:#}");
    assert_eq!(broken["path"], "src/Broken.cls");
    let error = broken["error"].as_str().unwrap();
    assert!(
        error.starts_with(&format!("src/Broken.cls:{line}:")),
        "{error}"
    );
    // The old version of the broken file is not reported as a deletion.
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["outcome"] != "deleted"),
        "{v:#}"
    );
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(r.path().join("bplmigrate.sarif")).unwrap()).unwrap();
    validate("sarif-2.1.0.json", &sarif);
    let results = sarif_results(&sarif);
    assert!(
        results.contains(&("BPM0408".into(), "src/Broken.cls".into(), line as u64)),
        "{results:?}"
    );
    assert!(
        results.contains(&("BPM0101".into(), "src/Credit.cls".into(), 7)),
        "{results:?}"
    );
    let gitlab: Value =
        serde_json::from_slice(&std::fs::read(r.path().join("gl.json")).unwrap()).unwrap();
    validate("gitlab-code-quality.json", &gitlab);
    assert!(
        gitlab
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["check_name"] == "BPM0408 class-not-checked"
                && i["severity"] == "critical"
                && i["location"]["lines"]["begin"] == line),
        "{gitlab:#}"
    );
    let err = stderr(&o);
    assert!(
        err.lines().any(|l| l.starts_with(&format!(
            "::error file=src/Broken.cls,line={line},col=1,title=BPM0408 class-not-checked::Demo.Broken: cannot be checked: malformed XML"
        ))),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("::error file=src/Credit.cls,line=7,col=1,title=BPM0101")),
        "{err}"
    );
    assert!(
        err.contains(&format!("error: src/Broken.cls:{line}:1: malformed XML")),
        "{err}"
    );
    // Human output: both classes, and the summary says why it fails.
    let o = r.check(&["--git-base", "HEAD"]);
    assert_eq!(o.status.code(), Some(2));
    let out = stdout(&o);
    assert!(
        out.contains("Demo.Broken (src/Broken.cls): not checked (exit 2)")
            && out.contains("Demo.Credit (src/Credit.cls): blocked")
            && out.contains("verdict: not-checked (fails --fail-on drain)"),
        "{out}"
    );
    // Only the good class asked for: the broken file is not in the way.
    let (code, v) = r.check_json(&["--git-base", "HEAD", "src/Credit.cls"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["results"].as_array().unwrap().len(), 1);
    // `check OLD NEW` with a malformed NEW: a result and a report too.
    let o = r.check(&[
        "HEAD:src/Broken.cls",
        "src/Broken.cls",
        "--report-sarif",
        "one.sarif",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let sarif: Value =
        serde_json::from_slice(&std::fs::read(r.path().join("one.sarif")).unwrap()).unwrap();
    assert_eq!(
        sarif_results(&sarif),
        [("BPM0408".into(), "src/Broken.cls".into(), line as u64)]
    );
}

/// A class whose old version does not parse: its fix is not blocked (BPM0409, a warning, exit
/// 0), a deleted broken file only warns, and an old version that is only over the size cap
/// still stops the check (it may be deployed).
#[test]
fn fixing_a_malformed_class_passes_with_a_warning() {
    let r = Repo::new();
    let line = r.put_broken("append_end", "old.cls", "src/Fixed.cls", "Demo.Fixed");
    r.put_broken("append_end", "old.cls", "src/Dropped.cls", "Demo.Dropped");
    r.put_broken("append_end", "old.cls", "src/Still.cls", "Demo.Still");
    r.commit("broken base");
    r.put("append_end", "new.cls", "src/Fixed.cls", "Demo.Fixed");
    r.git(&["rm", "-q", "src/Dropped.cls"]);
    let (code, v) = r.check_json(&["--git-base", "HEAD"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["verdict"], "old-unreadable");
    let fixed = result(&v, "Demo.Fixed");
    assert_eq!(fixed["outcome"], "old-unreadable", "{v:#}");
    assert_eq!(fixed["fails"], false);
    assert_eq!(fixed["findings"][0]["code"], "BPM0409");
    assert_eq!(fixed["findings"][0]["severity"], "warning");
    let msg = fixed["findings"][0]["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("HEAD:src/Fixed.cls:{line}:1: malformed XML")),
        "{msg}"
    );
    // The deleted broken file: named by the class its text declares.
    let dropped = result(&v, "Demo.Dropped");
    assert_eq!(dropped["outcome"], "old-unreadable", "{v:#}");
    assert_eq!(dropped["path"], "src/Dropped.cls");
    assert_eq!(v["results"].as_array().unwrap().len(), 2, "{v:#}");
    // Every threshold passes; the warning is an annotation.
    let o = r.check_env(&["--git-base", "HEAD"], &[("GITHUB_ACTIONS", "true")]);
    assert_eq!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains(
            "::warning file=src/Fixed.cls,line=7,col=1,title=BPM0409 old-version-unreadable::"
        ),
        "{}",
        stderr(&o)
    );
    // Broken on both sides: the new version's error, once, exit 2.
    std::fs::write(
        r.path().join("src/Still.cls"),
        std::fs::read_to_string(r.path().join("src/Still.cls")).unwrap() + "\n",
    )
    .unwrap();
    let (code, v) = r.check_json(&["--git-base", "HEAD", "src/Still.cls"]);
    assert_eq!(code, 2, "{v:#}");
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v:#}");
    assert_eq!(result(&v, "Demo.Still")["outcome"], "not-checked");
    // An old version over the size cap is not "never compiled": not checked, exit 2.
    let r = Repo::new();
    r.put("append_end", "old.cls", "src/Big.cls", "Demo.Big");
    r.commit("base");
    let mut text = std::fs::read_to_string(r.path().join("src/Big.cls")).unwrap();
    text.push_str(&format!("/// {}\n", "x".repeat(5000)));
    std::fs::write(r.path().join("src/Big.cls"), &text).unwrap();
    r.commit("grown");
    r.put("append_end", "new.cls", "src/Big.cls", "Demo.Big");
    let o = r.check(&["--max-input-size", "4K", "--git-base", "HEAD"]);
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("Demo.Big (src/Big.cls): not checked (exit 2)"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("more than the 4 KiB limit for a BPL source; pass --max-input-size 1M"),
        "{}",
        stderr(&o)
    );
    let o = r.check(&["--max-input-size", "64K", "--git-base", "HEAD"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
}

/// File names are what git stores: a name that is not UTF-8 is read (never dropped or
/// misnamed), shown with `\xNN` escapes, and exact in the SARIF uri; other names are
/// percent-encoded there per RFC 3986.
#[test]
fn odd_file_names_are_read_and_encoded_in_sarif() {
    use std::os::unix::ffi::OsStrExt as _;
    let r = Repo::new();
    let latin = std::ffi::OsStr::from_bytes(b"src/caf\xe9.cls");
    let put_at = |case: &str, file: &str, to: &std::ffi::OsStr, class: &str| {
        let text = std::fs::read_to_string(fixture(case, file)).unwrap();
        std::fs::create_dir_all(r.path().join("src")).unwrap();
        std::fs::write(r.path().join(to), text.replace("Demo.Change.Loan", class)).unwrap();
    };
    put_at("removed_wait_state", "old.cls", latin, "Demo.Latin");
    r.put(
        "removed_wait_state",
        "old.cls",
        "src/b/R e#n%.cls",
        "Demo.Odd",
    );
    r.commit("base");
    put_at("removed_wait_state", "new.cls", latin, "Demo.Latin");
    r.put(
        "removed_wait_state",
        "new.cls",
        "src/b/R e#n%.cls",
        "Demo.Odd",
    );
    // Untracked, not UTF-8 either: counted as new.
    put_at(
        "append_end",
        "new.cls",
        std::ffi::OsStr::from_bytes(b"src/n\xf6u.cls"),
        "Demo.Neu",
    );
    let (code, v) = r.check_json(&["--git-base", "HEAD"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(result(&v, "Demo.Latin")["outcome"], "blocked", "{v:#}");
    assert_eq!(result(&v, "Demo.Latin")["path"], "src/caf\\xE9.cls");
    assert_eq!(result(&v, "Demo.Neu")["outcome"], "new", "{v:#}");
    assert_eq!(result(&v, "Demo.Odd")["path"], "src/b/R e#n%.cls");
    let o = r.check(&["--git-base", "HEAD", "--format", "sarif"]);
    let sarif: Value = serde_json::from_str(&stdout(&o)).unwrap();
    validate("sarif-2.1.0.json", &sarif);
    let uris: std::collections::BTreeSet<String> = sarif_results(&sarif)
        .into_iter()
        .map(|(_, u, _)| u)
        .collect();
    assert_eq!(
        uris.into_iter().collect::<Vec<_>>(),
        ["src/b/R%20e%23n%25.cls", "src/caf%E9.cls"]
    );
    // A name holding a newline: one escaped line in human output.
    r.put("append_end", "new.cls", "src/a\nb.cls", "Demo.Nl");
    let o = r.check(&["--git-base", "HEAD"]);
    assert!(
        stdout(&o).contains("Demo.Nl (src/a\\nb.cls): new class, no instance can be in flight\n"),
        "{}",
        stdout(&o)
    );
    // Committed, and compared between two commits.
    r.commit("change");
    let (code, v) = r.check_json(&["--git-base", "HEAD~1", "--git-head", "HEAD"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(result(&v, "Demo.Latin")["outcome"], "blocked", "{v:#}");
    assert_eq!(result(&v, "Demo.Neu")["outcome"], "new", "{v:#}");
    // A working tree in a folder whose name is not UTF-8 still finds its changed files.
    let outer = tempfile::tempdir().unwrap();
    let top = outer.path().join(std::ffi::OsStr::from_bytes(b"d\xe9p"));
    std::fs::create_dir(&top).unwrap();
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(&top)
            .env("GIT_CEILING_DIRECTORIES", outer.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    };
    let text = std::fs::read_to_string(fixture("removed_wait_state", "old.cls")).unwrap();
    std::fs::write(top.join("Loan.cls"), &text).unwrap();
    git(&["init", "-q"]);
    git(&["add", "Loan.cls"]);
    git(&["commit", "-qm", "base"]);
    let text = std::fs::read_to_string(fixture("removed_wait_state", "new.cls")).unwrap();
    std::fs::write(top.join("Loan.cls"), &text).unwrap();
    let o = bin()
        .args(["check", "--git-base", "HEAD"])
        .current_dir(&top)
        .env("GIT_CEILING_DIRECTORIES", outer.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("Demo.Change.Loan (Loan.cls): blocked"),
        "{}",
        stdout(&o)
    );
}

/// A deleted class can be acknowledged after review (`[[ack]] code = "class-removed"`): by a
/// file without hashes when it is the only class checked, or by one naming the deleted
/// version's old_sha256. Anything else in such a file is refused with a true message.
#[test]
fn a_deleted_class_can_be_acknowledged() {
    let r = Repo::new();
    r.put("append_end", "old.cls", "src/Gone.cls", "Demo.Gone");
    r.put("insert_middle", "old.cls", "src/Loan.cls", "Demo.Loan");
    r.commit("base");
    let gone_sha = {
        use sha2::Digest as _;
        let bytes = std::fs::read(r.path().join("src/Gone.cls")).unwrap();
        format!("{:x}", sha2::Sha256::digest(bytes))
    };
    r.git(&["rm", "-q", "src/Gone.cls"]);
    let ack = r.path().join("ack.toml");
    std::fs::write(
        &ack,
        "[[ack]]\ncode = \"class-removed\"\nreason = \"retired; no instance left\"\n",
    )
    .unwrap();
    let ack = ack.to_str().unwrap();
    // Unacknowledged: fails.
    let (code, _) = r.check_json(&["--git-base", "HEAD"]);
    assert_eq!(code, 1);
    let (code, v) = r.check_json(&["--git-base", "HEAD", "--overrides", ack]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["verdict"], "deleted");
    let gone = result(&v, "Demo.Gone");
    assert_eq!(gone["outcome"], "deleted");
    assert_eq!(gone["fails"], false);
    assert_eq!(gone["findings"][0]["acknowledged"], true);
    let o = r.check(&[
        "--git-base",
        "HEAD",
        "--overrides",
        ack,
        "--format",
        "sarif",
    ]);
    let sarif: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        sarif["runs"][0]["results"][0]["suppressions"][0]["kind"],
        "external"
    );
    // A second class changed: a file without hashes is ambiguous, one naming the deleted
    // version applies to it.
    r.put("insert_middle", "new.cls", "src/Loan.cls", "Demo.Loan");
    let o = r.check(&["--git-base", "HEAD", "--overrides", ack]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o)
            .contains("names no old_sha256/new_sha256, but 2 classes changed or were deleted"),
        "{}",
        stderr(&o)
    );
    let named = r.path().join("named.toml");
    std::fs::write(
        &named,
        format!("old_sha256 = \"{gone_sha}\"\n[[ack]]\ncode = \"BPM0406\"\n"),
    )
    .unwrap();
    let (code, v) = r.check_json(&[
        "--git-base",
        "HEAD",
        "--overrides",
        named.to_str().unwrap(),
        "--fail-on",
        "blocked",
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(result(&v, "Demo.Gone")["fails"], false);
    // Another code, or a state: refused, naming the line.
    std::fs::write(
        &named,
        format!("old_sha256 = \"{gone_sha}\"\n[[ack]]\ncode = \"BPM0101\"\n"),
    )
    .unwrap();
    let o = r.check(&["--git-base", "HEAD", "--overrides", named.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("named.toml:2: [[ack]] BPM0101: no such finding for a deleted class"),
        "{}",
        stderr(&o)
    );
    // Hashes of another version: the message says so; no hashes and nothing to apply to:
    // the message says that instead.
    std::fs::write(
        &named,
        format!(
            "old_sha256 = \"{}\"\n[[ack]]\ncode = \"BPM0406\"\n",
            "0".repeat(64)
        ),
    )
    .unwrap();
    let o = r.check(&["--git-base", "HEAD", "--overrides", named.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            "applies to no class checked here (its old_sha256/new_sha256 name another change)"
        ),
        "{}",
        stderr(&o)
    );
    r.git(&[
        "checkout",
        "-q",
        "HEAD",
        "--",
        "src/Gone.cls",
        "src/Loan.cls",
    ]);
    let o = r.check(&["--git-base", "HEAD", "--overrides", ack]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("(it names no old_sha256/new_sha256, and no changed or deleted BPL class is checked here)"),
        "{}",
        stderr(&o)
    );
}
