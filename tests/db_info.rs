//! `info` and `repair` on a real database: applied / pending / dirty / edited / missing folder,
//! the documented exit codes, read-only on a database without history, and what a repaired
//! entry means for the next apply.

mod support;

use bplmigrate::apply::{self, InfoOptions, InfoState, Refusal, Resolution};
use bplmigrate::plan::MigrationPlan;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{chain, plan, refusals, row, st, Fixture};

fn bplmigrate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
        .args(args)
        .env_remove("BPLMIGRATE_CONNECT")
        .stdin(Stdio::null())
        .output()
        .expect("run bplmigrate")
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn write(plan: &MigrationPlan, dir: &Path) -> PathBuf {
    let opts = bplmigrate::sql::FolderOptions {
        dialect: bplmigrate::sql::Dialect::Postgres,
        objectscript: false,
    };
    bplmigrate::sql::write_migration_folder(plan, dir, &opts).expect("write folder")
}

/// Plan "a" swaps S5/S7; plan "b", chained after it, swaps them back. Both written into one
/// migrations directory.
fn two_plans(name: &str) -> Option<(Fixture, MigrationPlan, MigrationPlan, tempfile::TempDir)> {
    let fx = Fixture::new(name, 1)?;
    fx.seed(1, &[row("S5", 3), row("S7", 3), row("S5", 3)]);
    let specs = || vec![(1, vec![st("S5", Some("S7")), st("S7", Some("S5"))])];
    let a = plan(&fx, "a", &specs(), &[]);
    let b = chain(&a, plan(&fx, "b", &specs(), &[]));
    let tmp = tempfile::tempdir().expect("tempdir");
    write(&a, tmp.path());
    write(&b, tmp.path());
    Some((fx, a, b, tmp))
}

fn info(fx: &Fixture, dir: Option<&Path>) -> apply::InfoReport {
    let db = apply::Db::connect(&fx.connect).unwrap();
    apply::info(
        &db,
        &InfoOptions {
            migrations: dir.map(Path::to_path_buf),
            class: Some(fx.class.clone()),
        },
    )
    .unwrap()
}

fn states(r: &apply::InfoReport) -> Vec<(Option<i64>, InfoState)> {
    r.lines
        .iter()
        .map(|l| (l.entry.as_ref().map(|e| e.seq), l.state))
        .collect()
}

fn set_outcome(fx: &Fixture, seq: i64, outcome: &str) {
    fx.exec(&format!(
        r#"UPDATE "BplMigrate"."History" SET "Outcome" = '{outcome}' WHERE "BplClass" = '{}' AND "Seq" = {seq}"#,
        fx.class
    ));
}

#[test]
fn info_shows_applied_pending_edited_dirty_and_missing_with_exit_codes() {
    let Some((fx, a, _b, tmp)) = two_plans("InfoAll") else {
        return;
    };
    let dir = tmp.path().to_str().unwrap().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["info", "--connect", &fx.connect, "--class", &fx.class]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let v = args(extra);
        bplmigrate(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };

    // Nothing applied yet: both folders pending (exit 1).
    let r = info(&fx, Some(tmp.path()));
    assert_eq!(
        states(&r),
        [(None, InfoState::Pending), (None, InfoState::Pending)]
    );
    let o = run(&["--migrations", &dir]);
    assert_eq!(o.status.code(), Some(1), "{:?}", out(&o));

    // Apply "a": it shows applied, with when, by whom and the rows it changed; "b" pending.
    let m = apply::Migration::from_plan(a.clone()).unwrap();
    fx.apply_plan(&m).unwrap();
    let r = info(&fx, Some(tmp.path()));
    assert_eq!(
        states(&r),
        [(Some(1), InfoState::Applied), (None, InfoState::Pending)]
    );
    let e = r.lines[0].entry.as_ref().unwrap();
    assert_eq!(e.applied_by, "test InfoAll");
    assert_eq!(e.rows_changed, Some(3));
    assert_eq!(e.plan_id, a.plan_id);
    assert!(r.lines[0].folder.as_deref().unwrap().starts_with("0001_"));
    let (text, err) = out(&run(&["--migrations", &dir]));
    assert!(
        text.contains("applied") && text.contains("pending"),
        "{text}{err}"
    );
    assert!(text.contains("1 pending"), "{text}");

    // Everything applied (only "a"'s folder given): exit 0.
    let a_dir = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("0001_")
        })
        .unwrap();
    let o = run(&["--migrations", a_dir.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));

    // Edit "b"'s folder: shown as edited, exit 2.
    let b_dir = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("0002_")
        })
        .unwrap();
    let readme = b_dir.join("README.md");
    let mut body = std::fs::read_to_string(&readme).unwrap();
    body.push_str("\nedited by hand\n");
    std::fs::write(&readme, body).unwrap();
    let r = info(&fx, Some(tmp.path()));
    assert_eq!(
        states(&r),
        [(Some(1), InfoState::Applied), (None, InfoState::Edited)]
    );
    assert!(
        r.lines[1]
            .folder_problem
            .as_deref()
            .unwrap()
            .contains("README.md"),
        "{:?}",
        r.lines[1]
    );
    let o = run(&["--migrations", &dir]);
    assert_eq!(o.status.code(), Some(2), "{:?}", out(&o));

    // A dirty entry wins over everything: exit 3, and the repair command is named.
    set_outcome(&fx, 1, "dirty");
    let o = run(&["--migrations", &dir]);
    let (text, _) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{text}");
    assert!(
        text.contains("dirty") && text.contains("bplmigrate repair"),
        "{text}"
    );

    // Without --migrations nothing is pending or missing; with an empty directory the entry's
    // folder is missing.
    set_outcome(&fx, 1, "applied");
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
    let empty = tempfile::tempdir().unwrap();
    let r = info(&fx, Some(empty.path()));
    assert_eq!(r.missing_folders, 1);
    assert_eq!(r.lines[0].folder_problem.as_deref(), Some("missing"));

    // JSON carries the same.
    let (text, _) = out(&run(&["--migrations", &dir, "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(v["type"], "info");
    assert_eq!(v["data"]["lines"][0]["state"], "applied");
    assert_eq!(v["data"]["lines"][0]["entry"]["rows_changed"], 3);
    assert_eq!(v["data"]["edited"], 1);
}

#[test]
fn info_on_a_database_where_nothing_ran_never_creates_the_history() {
    let Some(base) = support::connect_string("info_fresh") else {
        return;
    };
    let name = "bplmigrate_info_fresh";
    let connect = support::fresh_database(&base, name);
    let o = bplmigrate(&["info", "--connect", &connect]);
    let (text, err) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(text.contains("nothing was ever applied here"), "{text}");
    let conn = support::raw_connect(&connect);
    let n = support::scalar(
        &conn,
        "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'BplMigrate'",
    );
    assert_eq!(n, 0, "info created the history table");
    drop(conn);
    support::drop_database(&base, name);
}

#[test]
fn repair_as_applied_keeps_the_plan_applied_and_revertible() {
    let Some((fx, a, _b, tmp)) = two_plans("RepairApplied") else {
        return;
    };
    let m = apply::Migration::from_plan(a).unwrap();
    fx.apply_plan(&m).unwrap();
    set_outcome(&fx, 1, "dirty");
    // Dirty: every apply and revert refuses.
    let r = refusals(fx.revert_plan(&m));
    assert!(
        r.iter()
            .any(|r| matches!(r, Refusal::DirtyHistory { seq: 1, .. })),
        "{r:?}"
    );
    // Not dirty: repair refuses (exit 2) and changes nothing.
    let o = bplmigrate(&[
        "repair",
        "--connect",
        &fx.connect,
        "--class",
        &fx.class,
        "--entry",
        "7",
        "--applied",
        "--reason",
        "x",
    ]);
    let (_, err) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no history entry 7"), "{err}");

    let o = bplmigrate(&[
        "repair",
        "--connect",
        &fx.connect,
        "--class",
        &fx.class,
        "--entry",
        "1",
        "--applied",
        "--reason",
        "rows checked by hand: all at the new states",
    ]);
    let (text, err) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(text.contains("is now applied"), "{text}");
    let h = fx.history();
    assert_eq!(h.len(), 1, "repair never adds or deletes entries");
    assert_eq!(h[0][3].as_deref(), Some("applied"));
    let e = &info(&fx, None).lines[0];
    assert_eq!(e.state, InfoState::Applied);
    let note = &e.entry.as_ref().unwrap().note;
    assert!(
        note.contains("rows checked by hand") && note.contains("repaired"),
        "{note}"
    );
    // Applied means applied: a second apply is refused, a revert runs.
    let r = refusals(fx.apply_plan(&m));
    assert!(
        matches!(r[..], [Refusal::AlreadyApplied { seq: 1, .. }]),
        "{r:?}"
    );
    fx.revert_plan(&m).unwrap();
    assert_eq!(
        fx.states(1).into_iter().map(|r| r.0).collect::<Vec<_>>(),
        ["S5", "S7", "S5"]
    );
    // Reverted: the history shows both entries, and the plan's folder is pending again.
    let r = info(&fx, Some(tmp.path()));
    assert_eq!(
        states(&r),
        [
            (Some(1), InfoState::Applied),
            (Some(2), InfoState::Reverted),
            (None, InfoState::Pending),
            (None, InfoState::Pending)
        ]
    );
    assert_eq!(r.lines[2].plan_id, m.plan.plan_id);
    // A second repair of the same entry: not dirty any more.
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    let e = apply::repair(&mut db, &fx.class, 1, Resolution::Applied, "t", "again").unwrap_err();
    assert!(e.to_string().contains("not dirty"), "{e}");
}

#[test]
fn repair_as_not_applied_lets_the_plan_run_again() {
    let Some((fx, a, _b, _tmp)) = two_plans("RepairNotApplied") else {
        return;
    };
    let m = apply::Migration::from_plan(a).unwrap();
    fx.apply_plan(&m).unwrap();
    set_outcome(&fx, 1, "dirty");
    // The human puts the rows back where the plan starts…
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%NextState" = CASE "%NextState" WHEN 'S5' THEN 'S7' ELSE 'S5' END"#,
        fx.schema
    ));
    let before = fx.snapshot();
    // …a repair without a reason is refused and changes nothing…
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    let e = apply::repair(&mut db, &fx.class, 1, Resolution::NotApplied, "t", " ").unwrap_err();
    assert!(e.to_string().contains("reason"), "{e}");
    assert_eq!(fx.snapshot(), before);
    // …so is one the history note cannot hold whole (it would be cut without a word)…
    let long = "x".repeat(2000);
    let e = apply::repair(&mut db, &fx.class, 1, Resolution::NotApplied, "t", &long).unwrap_err();
    assert!(e.to_string().contains("shorten it"), "{e}");
    assert_eq!(fx.snapshot(), before);
    // …then records the decision.
    let r = apply::repair(
        &mut db,
        &fx.class,
        1,
        Resolution::NotApplied,
        "ops@host",
        "restored the old states",
    )
    .unwrap();
    assert_eq!(r.outcome, bplmigrate::apply::Outcome::Resolved);
    let l = &info(&fx, None).lines[0];
    assert_eq!(l.state, InfoState::Resolved);
    assert!(l.entry.as_ref().unwrap().note.contains("ops@host"));
    // Resolved does not count as applied: the plan applies again, as entry 2.
    let rep = fx.apply_plan(&m).unwrap();
    assert_eq!(rep.history_seq, Some(2));
    assert_eq!(
        fx.states(1).into_iter().map(|r| r.0).collect::<Vec<_>>(),
        ["S7", "S5", "S7"]
    );
    let r = info(&fx, None);
    assert_eq!(
        states(&r),
        [
            (Some(1), InfoState::Resolved),
            (Some(2), InfoState::Applied)
        ]
    );
}

#[test]
fn a_resolved_entry_is_skipped_by_the_source_chain_and_is_not_applied() {
    let Some((fx, a, b, _tmp)) = two_plans("ResolvedChain") else {
        return;
    };
    let specs = || vec![(1, vec![st("S5", Some("S7")), st("S7", Some("S5"))])];
    let c = chain(&b, plan(&fx, "c", &specs(), &[]));
    let (ma, mb, mc) = (
        apply::Migration::from_plan(a.clone()).unwrap(),
        apply::Migration::from_plan(b.clone()).unwrap(),
        apply::Migration::from_plan(c.clone()).unwrap(),
    );
    fx.apply_plan(&ma).unwrap();
    let after_a = fx.states(1);
    fx.apply_plan(&mb).unwrap();
    // Entry 2 (plan b) turns out dirty; the rows are put back where b starts and it is
    // repaired as not applied.
    set_outcome(&fx, 2, "dirty");
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%NextState" = CASE "%NextState" WHEN 'S5' THEN 'S7' ELSE 'S5' END"#,
        fx.schema
    ));
    assert_eq!(fx.states(1), after_a);
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    apply::repair(
        &mut db,
        &fx.class,
        2,
        Resolution::NotApplied,
        "ops",
        "put back",
    )
    .unwrap();
    // The chain continues from entry 1 (a's new source): c, which starts where b ends, is
    // refused as out of order…
    let r = refusals(fx.apply_plan(&mc));
    assert!(
        r.iter().any(
            |r| matches!(r, Refusal::SourceMismatch { expected, found, .. }
            if *expected == c.old.sha256 && *found == a.new.sha256)
        ),
        "{r:?}"
    );
    // …b is not applied, so it cannot be reverted…
    let r = refusals(fx.revert_plan(&mb));
    assert!(
        r.iter().any(|r| matches!(r, Refusal::NotApplied { .. })),
        "{r:?}"
    );
    // …and applies again, as entry 3, after which c follows.
    assert_eq!(fx.apply_plan(&mb).unwrap().history_seq, Some(3));
    assert_eq!(fx.apply_plan(&mc).unwrap().history_seq, Some(4));
}

#[test]
fn a_parent_folder_or_a_missing_path_is_named_as_such() {
    let Some((fx, _a, _b, tmp)) = two_plans("InfoMistakes") else {
        return;
    };
    let parent = tmp.path().to_str().unwrap();
    let o = bplmigrate(&["apply", parent, "--connect", &fx.connect, "--dry-run"]);
    let (_, err) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is a directory of migration folders") && err.contains("0001_"),
        "{err}"
    );
    let missing = tmp.path().join("0009_nope");
    let m = missing.to_str().unwrap();
    for args in [
        vec!["apply", m, "--connect", &fx.connect, "--dry-run"],
        vec!["status", "--plan", m, "--connect", &fx.connect],
        vec!["info", "--migrations", m, "--connect", &fx.connect],
    ] {
        let o = bplmigrate(&args);
        let (_, err) = out(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("does not exist"), "{args:?}: {err}");
    }
}

/// Review 10, D6: reverting the first of two chained plans while the second is applied says
/// to revert the second first (the rows are where it left them), and nothing else — not
/// "apply the plans in order", nor the rows the second plan moved as "reached after the
/// migration". Nothing changes; after the second's revert, the first's revert runs.
#[test]
fn reverting_an_earlier_plan_names_the_later_one_to_revert_first() {
    let Some((fx, a, b, _tmp)) = two_plans("RevertOrder") else {
        return;
    };
    let (ma, mb) = (
        apply::Migration::from_plan(a.clone()).unwrap(),
        apply::Migration::from_plan(b.clone()).unwrap(),
    );
    let start = fx.states(1);
    fx.apply_plan(&ma).unwrap();
    fx.apply_plan(&mb).unwrap();
    let before = fx.snapshot();
    let r = refusals(fx.revert_plan(&ma));
    assert!(
        matches!(&r[..], [Refusal::SourceMismatch { later: Some(l), revert: true, .. }] if *l == b.plan_id),
        "{r:?}"
    );
    let text = r[0].to_string();
    assert!(
        text.contains(&format!("revert plan {} first", b.plan_id))
            && !text.contains("apply the plans"),
        "{text}"
    );
    assert_eq!(fx.snapshot(), before);
    fx.revert_plan(&mb).unwrap();
    fx.revert_plan(&ma).unwrap();
    assert_eq!(fx.states(1), start);
}
