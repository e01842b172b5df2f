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
    plan::build(&old, &new, &oc, &nc, ov.as_ref()).unwrap().plan
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
        assert!(script.contains("Terminate(, 1)") || cls.contains("Terminate(, 1)"));
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

#[test]
fn a_blocked_plan_runs_nothing() {
    for dir in cases() {
        let p = plan_of(&dir);
        let cls = render_objectscript(&p).unwrap();
        let blocked = cls.contains("the plan is blocked");
        assert_eq!(blocked, p.verdict == Verdict::Blocked, "{}", dir.display());
    }
}

#[test]
fn the_reviewed_golden_runner() {
    let dir = Path::new("fixtures/changes/new_context_property");
    let actual = render_objectscript(&plan_of(dir)).unwrap();
    let path = dir.join("migrate.cls");
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).expect("golden migrate.cls (BLESS=1 writes it)");
    pretty_assertions::assert_eq!(expected, actual);
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
