//! The ObjectScript runner (`plan --emit objectscript`): for every change fixture pair,
//! `migrate.cls` and `migrate.script` must parse with InterSystems' ObjectScript/UDL grammar
//! without an ERROR or MISSING node, and every SQL statement the runner executes must parse
//! back as IRIS SQL. One `migrate.cls` is a reviewed golden snapshot
//! (`fixtures/changes/new_context_property/migrate.cls`; `BLESS=1` rewrites it — review every
//! changed line).

use bplmigrate::bpl::{self, LoadOptions, Pos};
use bplmigrate::plan::{self, MigrationPlan, Overrides, Verdict};
use bplmigrate::sql::{self, objectscript_class_name, render_objectscript, render_session_script};
use bplmigrate::states::{self, Compiler};
use bplmigrate::udl;
use std::path::{Path, PathBuf};

#[path = "support/snap.rs"]
mod snap;

fn cases() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("fixtures/changes")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("old.cls").exists() && p.join("new.cls").exists())
        .collect();
    v.sort();
    v
}

fn plan_of(dir: &Path) -> MigrationPlan {
    let path = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let old = bpl::load(&path("old.cls"), &LoadOptions::default()).unwrap();
    let new = bpl::load(&path("new.cls"), &LoadOptions::default()).unwrap();
    let oc = states::compile(&old, Compiler::Current).unwrap();
    let nc = states::compile(&new, Compiler::Current).unwrap();
    let ov = dir.join("overrides.toml");
    let ov = ov.exists().then(|| {
        Overrides::parse(
            &path("overrides.toml"),
            &std::fs::read_to_string(&ov).unwrap(),
        )
        .unwrap()
    });
    plan::build(&old, &new, &oc, &nc, ov.as_ref()).unwrap()
}

/// The class must parse cleanly: no structure error, no syntax error in any method's code.
fn assert_grammar_clean(what: &str, cls: &str) -> udl::UdlClass {
    let class = udl::read_class(what, cls)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("{what}: not read as a UDL class"));
    if let Some(e) = &class.structure_error {
        panic!("{e}");
    }
    for m in &class.members {
        if let Some(e) = &m.code_error {
            panic!("{what}: method {}: {e}", m.name);
        }
    }
    class
}

#[test]
fn every_emitted_runner_parses_with_the_objectscript_grammar() {
    let mut checked = 0;
    for dir in cases() {
        let p = plan_of(&dir);
        let what = dir.display().to_string();
        let cls = render_objectscript(&p).unwrap();
        let class = assert_grammar_clean(&format!("{what}/migrate.cls"), &cls);
        assert_eq!(class.name, objectscript_class_name(&p).unwrap());
        let methods: Vec<&str> = class
            .members
            .iter()
            .filter(|m| m.is_method())
            .map(|m| m.name.as_str())
            .collect();
        for want in ["Run", "RunOrExit", "Quiesce", "Guards", "Rewrite", "Verify"] {
            assert!(methods.contains(&want), "{what}: no method {want}");
        }
        // The session script is terminal input: read each line as code of a method body.
        let script = render_session_script(&p).unwrap();
        udl::read_code(
            &format!("{what}/migrate.script"),
            &script,
            Pos { line: 1, column: 1 },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Exit 1 (nothing migrated) and 5 (committed, a later step failed) are told apart.
        assert!(
            cls.contains("Terminate(, $Select(tMigrated:5, 1:1))"),
            "{what}"
        );
        assert!(script.contains("5 the migration COMMITTED"), "{what}");
        checked += 1;
    }
    assert!(checked >= 15, "{checked} fixture pairs");
}

#[test]
fn every_runner_statement_parses_as_iris_sql() {
    let mut n = 0;
    for dir in cases() {
        let p = plan_of(&dir);
        let stmts = sql::runner_statements(&p).unwrap();
        let whats: Vec<&str> = stmts.iter().map(|(w, _)| w.as_str()).collect();
        for want in [
            "history table exists",
            "read history",
            "next history entry",
            "write history",
            "items of the class",
            "census",
        ] {
            assert!(whats.contains(&want), "{}: no {want}", dir.display());
        }
        if p.threads.iter().any(|t| !t.states.is_empty()) {
            assert!(whats.contains(&"forward guard"), "{}", dir.display());
        }
        for (what, s) in &stmts {
            let parsed = sql::parse(s, sql::Dialect::Iris)
                .unwrap_or_else(|e| panic!("{}: {what}: {e}\n{s}", dir.display()));
            assert_eq!(parsed.len(), 1, "{what}: {s}");
            n += 1;
        }
        // Each statement the class runs is one of the checked ones.
        let cls = render_objectscript(&p).unwrap();
        for (_, s) in &stmts {
            let one_line: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let lit = one_line.join(" ").replace('"', "\"\"");
            assert!(
                cls.contains(&lit),
                "{}: not in migrate.cls: {s}",
                dir.display()
            );
        }
    }
    assert!(n > 100, "{n} statements");
}

/// One rule with `apply` and `check`: a plan blocked by more than rows that must drain never
/// runs; one blocked only by such rows runs once they drained (its guards refuse until then).
#[test]
fn a_blocked_plan_runs_only_when_draining_resolves_it() {
    let (mut hard, mut drain) = (0, 0);
    for dir in cases() {
        let p = plan_of(&dir);
        let cls = render_objectscript(&p).unwrap();
        let refuses = cls.contains("the plan is blocked");
        let for_good = !p.blocked_for_good().is_empty();
        assert_eq!(refuses, for_good, "{}", dir.display());
        if p.verdict == Verdict::Blocked && !for_good {
            drain += 1;
            // Its removed states are guarded: the rows there refuse the run.
            let stmts = sql::runner_statements(&p).unwrap();
            for pre in &p.preconditions {
                if let bplmigrate::plan::Precondition::NoRowsAtState { state, .. } = pre {
                    assert!(
                        stmts
                            .iter()
                            .any(|(w, s)| w == "guard" && s.contains(&format!("'{state}'"))),
                        "{}: no guard for {state}",
                        dir.display()
                    );
                }
            }
        }
        if for_good {
            hard += 1;
        }
    }
    assert!(hard > 0 && drain > 0, "hard {hard}, drain-only {drain}");
}

/// Every table the ODBC apply locks is locked by the runner (each `LOCK TABLE` with its
/// `UNLOCK`), then the history; `Run` releases them on every path.
#[test]
fn the_runner_locks_what_the_odbc_apply_locks() {
    for dir in cases() {
        let p = plan_of(&dir);
        let cls = render_objectscript(&p).unwrap();
        let script = sql::render(&p, sql::Dialect::Iris).unwrap();
        let tables = sql::tables_to_lock(&p, &script);
        assert!(!tables.is_empty(), "{}", dir.display());
        for t in &tables {
            let q = sql::text::quote_table(t, sql::Dialect::Iris)
                .unwrap()
                .replace('"', "\"\"");
            assert!(
                cls.contains(&format!("LOCK TABLE {q} IN EXCLUSIVE MODE WAIT 10"))
                    && cls.contains(&format!("UNLOCK TABLE {q} IN EXCLUSIVE MODE")),
                "{}: {t} is not locked",
                dir.display()
            );
        }
        // The host guard's table in share mode (`sql::tables_to_share`), as the ODBC apply.
        let shared = sql::tables_to_share();
        for t in &shared {
            let q = sql::text::quote_table(t, sql::Dialect::Iris)
                .unwrap()
                .replace('"', "\"\"");
            assert!(
                cls.contains(&format!("LOCK TABLE {q} IN SHARE MODE WAIT 10"))
                    && cls.contains(&format!("UNLOCK TABLE {q} IN SHARE MODE")),
                "{}: {t} is not locked in share mode",
                dir.display()
            );
        }
        assert_eq!(
            cls.matches("Set tSC = ..LockOne(").count(),
            tables.len() + shared.len(),
            "{}",
            dir.display()
        );
        // The host and job guards run again right before TCOMMIT.
        let (again, commit) = (
            cls.find("Set tSC = ..HostGuards()")
                .expect("HostGuards() is called"),
            cls.find("\t\tTCOMMIT").expect("TCOMMIT"),
        );
        assert!(again < commit, "{}", dir.display());
        // The locks come after TSTART, and the release runs after the Try block (every path).
        let run = &cls[cls.find("ClassMethod Run(").unwrap()..];
        let run = &run[..run.find("\n}\n").unwrap()];
        let (tstart, lock, catch, unlock) = (
            run.find("TSTART").unwrap(),
            run.find("..LockTables(.tLocks)").unwrap(),
            run.find("} Catch ex {").unwrap(),
            run.find("Do ..Unlock(.tLocks)").unwrap(),
        );
        assert!(
            tstart < lock && lock < catch && catch < unlock,
            "{}",
            dir.display()
        );
        assert!(!cls.contains("tLocked"), "{}", dir.display());
    }
}

/// The host check follows the ODBC path's rule: PoolSize is read; an actor-pool item is left
/// to the job guard (not refused because the production is stopped), NULLs refuse.
#[test]
fn the_runner_host_check_honours_pool_size() {
    let p = plan_of(Path::new("fixtures/changes/insert_middle"));
    let stmts = sql::runner_statements(&p).unwrap();
    let hosts = &stmts
        .iter()
        .find(|(w, _)| w == "items of the class")
        .unwrap()
        .1;
    assert!(hosts.contains("\"PoolSize\""), "{hosts}");
    let cls = render_objectscript(&p).unwrap();
    let disable = &cls[cls.find("ClassMethod Disable(").unwrap()..];
    let disable = &disable[..disable.find("\n}\n").unwrap()];
    let pool = disable.find("Continue:+tPool=0").unwrap();
    let stopped = disable.find("(not running) is enabled").unwrap();
    assert!(disable.find("has no PoolSize (NULL)").unwrap() < pool);
    assert!(
        pool < stopped,
        "actor-pool items must be skipped before the stopped-production refusal"
    );
    assert!(disable.contains("has no Enabled (NULL)"));
}

/// After Run(0) the items it disabled are recorded, so the hint "Run(0, 1) enables them" is
/// true; a dirty entry names `bplmigrate repair`, never an edit of the Outcome by hand.
#[test]
fn the_runner_records_what_it_leaves_disabled_and_names_repair() {
    let p = plan_of(Path::new("fixtures/changes/insert_middle"));
    let cls = render_objectscript(&p).unwrap();
    let run = &cls[cls.find("ClassMethod Run(").unwrap()..];
    let run = &run[..run.find("\n}\n").unwrap()];
    let branch = run.find("} ElseIf tDisabled {").unwrap();
    let remember = branch + run[branch..].find("Do ..Remember(.tDisabled)").unwrap();
    let hint = branch + run[branch..].find("Run(0, 1) enables them").unwrap();
    assert!(remember < hint);
    assert!(cls.contains("ClassMethod Remember(ByRef pItems)"));
    assert!(cls.contains("bplmigrate repair --class"));
    assert!(!cls.contains("Outcome to 'resolved'"));
}

#[test]
fn the_reviewed_golden_runner() {
    let dir = Path::new("fixtures/changes/new_context_property");
    let actual = render_objectscript(&plan_of(dir)).unwrap();
    snap::assert_snapshot(dir.join("migrate.cls"), &actual);
}

/// The grammar check above can fail: a broken runner is caught, located.
#[test]
fn the_grammar_check_catches_a_broken_runner() {
    let p = plan_of(Path::new("fixtures/changes/insert_middle"));
    let cls = render_objectscript(&p).unwrap();
    for (from, to) in [
        (
            "Set tSC = ..Census(.tBefore)",
            "Set tSC = ..Census(.tBefore",
        ),
        (
            "Write \"bplmigrate: OK: \", tNote, !",
            "Write \"bplmigrate: OK: , tNote, !",
        ),
        ("\n}\n", "\n"),
    ] {
        let broken = cls.replacen(from, to, 1);
        assert_ne!(broken, cls);
        let class = udl::read_class("m.cls", &broken).unwrap().unwrap();
        let errors = class.structure_error.iter().count()
            + class
                .members
                .iter()
                .filter(|m| m.code_error.is_some())
                .count();
        assert!(errors > 0, "not caught: {to}");
    }
}

/// The container hook runs every migration folder in order (not only the newest) and stops
/// at the first that fails, with its exit status. `iris` is a stand-in that logs which
/// folder's script it was given and exits with the status the folder asks for.
#[test]
fn the_container_hook_runs_every_folder_in_order_and_stops_at_the_first_failure() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    let root = tmp.path().join("migrations");
    std::fs::create_dir_all(&bin).unwrap();
    let log = tmp.path().join("log");
    let iris = bin.join("iris");
    std::fs::write(
        &iris,
        format!(
            "#!/bin/bash\n[ \"$1 $2 $3 $4\" = \"session IRIS -U APP\" ] || exit 99\nread -r line\necho \"$BPLMIGRATE_DIR $line\" >> {}\nexit \"$(cat \"$BPLMIGRATE_DIR/status\")\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&iris, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |statuses: &[(&str, i32)]| -> (Option<i32>, Vec<String>) {
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_file(&log);
        for (name, status) in statuses {
            let d = root.join(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("migrate.script"), format!(" // {name}\n")).unwrap();
            std::fs::write(d.join("status"), status.to_string()).unwrap();
        }
        // Not a migration folder: skipped.
        std::fs::create_dir_all(root.join("notes")).unwrap();
        let out = std::process::Command::new("bash")
            .arg("examples/container/migrate.sh")
            .env("BPLMIGRATE_MIGRATIONS", &root)
            .env(
                "PATH",
                format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
            )
            .output()
            .unwrap();
        let ran = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (dir, line) = l.split_once(' ').unwrap();
                let name = Path::new(dir)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                assert_eq!(
                    line,
                    format!("// {name}"),
                    "each folder gets its own script"
                );
                name
            })
            .collect();
        (out.status.code(), ran)
    };
    // Two classes (0001 for A, 0002 for B) and a later plan of A: all three run, in order.
    let all = [
        ("0002_Demo.B_bbbbbbbb", 0),
        ("0001_Demo.A_aaaaaaaa", 0),
        ("0003_Demo.A_cccccccc", 0),
    ];
    let (code, ran) = run(&all);
    assert_eq!(code, Some(0));
    assert_eq!(
        ran,
        [
            "0001_Demo.A_aaaaaaaa",
            "0002_Demo.B_bbbbbbbb",
            "0003_Demo.A_cccccccc"
        ]
    );
    // The second fails after its commit (5): the hook exits 5 and the third never runs.
    let (code, ran) = run(&[all[0], all[1], ("0003_Demo.A_cccccccc", 0)]
        .map(|(n, s)| (n, if n.starts_with("0002") { 5 } else { s })));
    assert_eq!(code, Some(5));
    assert_eq!(ran, ["0001_Demo.A_aaaaaaaa", "0002_Demo.B_bbbbbbbb"]);
    // A refusal of the first (1) stops everything after it.
    let (code, ran) = run(&all.map(|(n, s)| (n, if n.starts_with("0001") { 1 } else { s })));
    assert_eq!(code, Some(1));
    assert_eq!(ran, ["0001_Demo.A_aaaaaaaa"]);
    // No folder: nothing to run.
    let (code, ran) = run(&[]);
    assert_eq!((code, ran.len()), (Some(0), 0));
}
