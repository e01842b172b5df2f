//! Every input a fuzz target once crashed on (`fuzz/regressions/<target>/`), run through the
//! same library calls as that target (`fuzz/fuzz_targets/`) in the normal test suite: none may
//! panic.

use bplmigrate::bpl::{load_bytes, LoadOptions};
use bplmigrate::plan::Overrides;
use bplmigrate::states::{compile, graph, Compiler};
use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut v: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v.into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn bpl_reader() {
    for (_, data) in inputs("bpl_reader") {
        let Ok(bpl) = load_bytes("fuzz.cls", &data, &LoadOptions::default()) else {
            continue;
        };
        for compiler in [Compiler::Current, Compiler::Legacy] {
            let Ok(c) = compile(&bpl, compiler) else {
                continue;
            };
            for t in &c.threads {
                let _ = graph(t);
            }
            let _ = bplmigrate::plan::build(&bpl, &bpl, &c, &c, None);
        }
    }
}

#[test]
fn thread_class_reader() {
    let all = inputs("thread_class_reader");
    assert!(!all.is_empty(), "the first fuzz crash is kept here");
    for (_, data) in all {
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = bplmigrate::states::import::parse_generated("fuzz.cls", text);
        }
    }
}

#[test]
fn overrides_parser() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let old = std::fs::read(root.join("fixtures/changes/removed_wait_state/old.cls")).unwrap();
    let new = std::fs::read(root.join("fixtures/changes/removed_wait_state/new.cls")).unwrap();
    let o = load_bytes("old.cls", &old, &LoadOptions::default()).unwrap();
    let n = load_bytes("new.cls", &new, &LoadOptions::default()).unwrap();
    let oc = compile(&o, Compiler::Current).unwrap();
    let nc = compile(&n, Compiler::Current).unwrap();
    for (_, data) in inputs("overrides_parser") {
        let Ok(ov) = Overrides::parse_bytes("fuzz.toml", &data) else {
            continue;
        };
        if let Ok(p) = bplmigrate::plan::build(&o, &n, &oc, &nc, Some(&ov)) {
            for d in [
                bplmigrate::sql::Dialect::Iris,
                bplmigrate::sql::Dialect::Postgres,
            ] {
                let _ = bplmigrate::sql::render(&p, d);
                let _ = bplmigrate::sql::render_revert(&p, d);
            }
        }
    }
}

#[test]
fn plan_folder_reader() {
    use bplmigrate::apply::Migration;
    use bplmigrate::sql::{normalized_sha256, Dialect, Direction, CHECKSUM_FILE};
    for (_, data) in inputs("plan_folder_reader") {
        let Some((&mode, body)) = data.split_first() else {
            continue;
        };
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        if mode % 2 == 0 {
            std::fs::write(d.join("plan.json"), b"{}").unwrap();
            std::fs::write(d.join(CHECKSUM_FILE), body).unwrap();
        } else {
            std::fs::write(d.join("plan.json"), body).unwrap();
            let sums = format!("{}  plan.json\n", normalized_sha256(body));
            std::fs::write(d.join(CHECKSUM_FILE), sums).unwrap();
        }
        let _ = bplmigrate::sql::verify_migration_folder(d);
        let _ = Migration::load(d);
        if let Ok(mut plan) = serde_json::from_slice::<bplmigrate::plan::MigrationPlan>(body) {
            if let Ok(id) = bplmigrate::plan::plan_id(&plan) {
                plan.plan_id = id;
            }
            if let Ok(m) = Migration::from_plan(plan) {
                for dialect in [Dialect::Iris, Dialect::Postgres] {
                    for direction in [Direction::Apply, Direction::Revert] {
                        let _ = m.script(dialect, direction);
                    }
                }
            }
        }
    }
}
