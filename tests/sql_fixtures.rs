//! The rendered SQL of every change fixture pair (`fixtures/changes/<case>/`), in both
//! dialects, as reviewed snapshots beside the pair: `apply.iris.sql`, `apply.postgres.sql`,
//! `revert.iris.sql`, `revert.postgres.sql`. `BLESS=1` rewrites them; review every changed line
//! (the database tests in `db_fixtures.rs` run the postgres scripts' statements on real rows).

use bplmigrate::bpl::{self, LoadOptions};
use bplmigrate::plan::{self, MigrationPlan, Overrides};
use bplmigrate::sql::{render, render_revert, Dialect};
use bplmigrate::states::{self, Compiler};
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

/// The plan as `bplmigrate plan old.cls new.cls [--overrides overrides.toml]` builds it, with
/// the relative paths a user in the repository root would type.
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

#[test]
fn every_change_fixture_renders_its_reviewed_sql() {
    let mut snaps = snap::Snapshots::new();
    for dir in cases() {
        let p = plan_of(&dir);
        for (dialect, name) in [(Dialect::Iris, "iris"), (Dialect::Postgres, "postgres")] {
            let apply = render(&p, dialect).unwrap().to_sql_text();
            let revert = match render_revert(&p, dialect) {
                Ok(s) => s.to_sql_text(),
                Err(e) => format!("-- no revert script: {e}\n"),
            };
            for (file, actual) in [
                (format!("apply.{name}.sql"), apply),
                (format!("revert.{name}.sql"), revert),
            ] {
                snaps.check(dir.join(&file), &actual);
            }
        }
    }
    assert!(
        snaps.checked() >= 60,
        "only {} scripts checked",
        snaps.checked()
    );
    snaps.finish();
}
