//! What the operator is told and what the write paths do about it, on a real database: a dirty
//! entry's one procedure (`bplmigrate repair`) and a revert that does not call it "not
//! applied"; a confirmation bound to the counts it showed; a blocked plan that applies once its
//! rows drained and one that never does; a revert refusal that names the right reason; and
//! `status --plan` listing every precondition with its live result.

mod support;

use bplmigrate::apply::{
    self, ApplyError, ApplyOptions, Confirmed, Direction, ErrorClass, Event, Migration, Progress,
    Refusal, Resolution, Silent, StatusSubject,
};
use std::path::Path;
use std::process::{Command, Stdio};
use support::{
    create_plan_tables, exec, fixture_plan, plan, raw_connect, refusals, row, st, swap_s5_s7,
    Fixture,
};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bplmigrate"));
    c.env_remove("BPLMIGRATE_CONNECT").stdin(Stdio::null());
    c
}

fn states(fx: &Fixture) -> Vec<String> {
    fx.states(1).into_iter().map(|r| r.0).collect()
}

/// Runs `f` at the step named `at` of an apply (through its progress events).
struct At<F: Fn()> {
    at: &'static str,
    f: F,
}

impl<F: Fn()> Progress for At<F> {
    fn event(&self, e: &Event<'_>) {
        if matches!(e, Event::Step(s) if *s == self.at) {
            (self.f)();
        }
    }
}

/// Item 1: after an exit-5 dirty entry every path names the same procedure (`bplmigrate
/// repair`, as `info` does), `apply --revert` does not claim "not applied" while the rows are
/// migrated, and following the advice works: repaired as applied, the revert puts the rows back.
#[test]
fn a_dirty_entry_names_repair_everywhere_and_a_revert_waits_for_it() {
    let Some((fx, p)) = swap_s5_s7("OpsDirty") else {
        return;
    };
    // Two rows at S5, one at S7: the counts after the rewrite tell it committed.
    fx.seed(1, &[row("S5", 3)]);
    let m = Migration::from_plan(p).unwrap();
    let other = raw_connect(&fx.connect);
    let class = fx.class.clone();
    // A trigger-like loss: the history row of the apply vanishes after its commit.
    let lose = At {
        at: "reading back",
        f: || {
            exec(
                &other,
                &format!(r#"DELETE FROM "BplMigrate"."History" WHERE "BplClass" = '{class}'"#),
            )
        },
    };
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    let e = apply::apply(
        &mut db,
        &m,
        &ApplyOptions {
            applied_by: "test".into(),
            ..ApplyOptions::default()
        },
        &lose,
    )
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::CommittedUnverified, "{e}");
    let msg = e.to_string();
    // The entry it wrote is gone: the message does not say it "says applied".
    assert!(!msg.contains("says applied"), "{msg}");
    assert!(
        msg.contains(&format!(
            "history entry 1 marks the class dirty: check the rows, then record what you found: `bplmigrate repair --class {class} --entry 1 --applied"
        )),
        "{msg}"
    );
    assert_eq!(states(&fx), ["S7", "S5", "S7"], "the rows are migrated");
    let migrated = fx.snapshot();

    // apply again: refused with the repair procedure, never "set its Outcome to 'resolved'".
    let r = refusals(fx.apply_plan(&m));
    assert!(
        matches!(&r[..], [Refusal::DirtyHistory { seq: 1, .. }]),
        "{r:?}"
    );
    let text = r[0].to_string();
    assert!(text.contains("bplmigrate repair --class"), "{text}");
    assert!(!text.contains("resolved"), "{text}");

    // revert: refused by the dirty entry alone — not "not applied" (the rows ARE migrated).
    let r = refusals(fx.revert_plan(&m));
    assert!(
        matches!(&r[..], [Refusal::DirtyHistory { seq: 1, .. }]),
        "{r:?}"
    );
    let st = apply::status(
        &apply::Db::connect(&fx.connect).unwrap(),
        StatusSubject::Plan(&m),
        &Silent,
    )
    .unwrap();
    let ps = st.plan.unwrap();
    assert!(ps
        .refusals
        .iter()
        .any(|r| matches!(r, Refusal::DirtyHistory { .. })));
    // Not "not applied": undecided.
    assert_eq!(ps.state, apply::PlanState::Dirty);
    assert_eq!(fx.snapshot(), migrated, "refusals change nothing");

    // `info` gives the same procedure.
    let o = bin()
        .args(["info", "--connect", &fx.connect, "--class", &fx.class])
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&o.stdout);
    assert!(
        info.contains(&format!(
            "is dirty: check the rows, then record what you found: `bplmigrate repair --class {class} --entry 1 --applied"
        )),
        "{info}"
    );

    // Following it: the rows are as the plan leaves them → repair --applied; the revert then
    // puts them back, and the plan may be applied again.
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    apply::repair(
        &mut db,
        &fx.class,
        1,
        Resolution::Applied,
        "test",
        "rows checked: S7, S5",
    )
    .unwrap();
    fx.revert_plan(&m).unwrap();
    assert_eq!(states(&fx), ["S5", "S7", "S5"]);
    fx.apply_plan(&m).unwrap();
    assert_eq!(states(&fx), ["S7", "S5", "S7"]);
}

/// Item 1, the other decision: the rows were put back by hand → repair --not-applied; the
/// revert then says "not applied" (true now) and the plan applies again.
#[test]
fn a_dirty_entry_repaired_as_not_applied_applies_again() {
    let Some((fx, p)) = swap_s5_s7("OpsDirtyBack") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    let other = raw_connect(&fx.connect);
    let class = fx.class.clone();
    let lose = At {
        at: "reading back",
        f: || {
            exec(
                &other,
                &format!(r#"DELETE FROM "BplMigrate"."History" WHERE "BplClass" = '{class}'"#),
            )
        },
    };
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    let e = apply::apply(&mut db, &m, &ApplyOptions::default(), &lose).unwrap_err();
    // One row at S5, one at S7: the counts cannot tell; said as it is (no connection was lost).
    assert_eq!(e.class(), ErrorClass::OutcomeUnknown, "{e}");
    let msg = e.to_string();
    assert!(!msg.contains("connection was lost"), "{msg}");
    assert!(
        msg.contains("row counts cannot tell") && msg.contains("bplmigrate repair --class"),
        "{msg}"
    );
    // Put back by hand.
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%NextState" = CASE "%NextState" WHEN 'S5' THEN 'S7' ELSE 'S5' END"#,
        fx.schema
    ));
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    apply::repair(
        &mut db,
        &fx.class,
        1,
        Resolution::NotApplied,
        "test",
        "rows put back",
    )
    .unwrap();
    let r = refusals(fx.revert_plan(&m));
    assert!(matches!(&r[..], [Refusal::NotApplied { .. }]), "{r:?}");
    fx.apply_plan(&m).unwrap();
    assert_eq!(states(&fx), ["S7", "S5"]);
}

/// Item 2: the counts a prompt showed are the ones written, or nothing is: rows arriving
/// between the dry run and the apply refuse it (exit 3, nothing changed, the difference named);
/// unchanged counts apply.
#[test]
fn a_confirmation_binds_the_counts_it_showed() {
    let Some((fx, p)) = swap_s5_s7("OpsConfirm") else {
        return;
    };
    let m = Migration::from_plan(p).unwrap();
    let preview = fx.dry_run(&m).unwrap();
    assert_eq!(preview.rows_changed(), 2);
    let confirmed = ApplyOptions {
        applied_by: "test".into(),
        confirmed: Some(Confirmed::of(&preview)),
        ..ApplyOptions::default()
    };
    // 50 rows arrive at S5 between the prompt and the answer.
    for _ in 0..50 {
        fx.seed(1, &[row("S5", 3)]);
    }
    let before = fx.snapshot();
    let e = fx.apply(&m, &confirmed).unwrap_err();
    assert_eq!(bplmigrate::cli::Exit::from(e.class()).code(), 3, "{e}");
    let r = e.refusals();
    assert!(
        matches!(r, [Refusal::ConfirmedCountsChanged { .. }]),
        "{r:?}"
    );
    let text = e.to_string();
    assert!(text.starts_with("refused, nothing was changed"), "{text}");
    assert!(text.contains("expected 1 row, found 51"), "{text}");
    assert!(text.contains("run `apply` again"), "{text}");
    assert!(text.contains("S5 -> S7") || text.contains("S5"), "{text}");
    assert_eq!(fx.snapshot(), before);
    assert!(fx.history().is_empty());
    // Confirmed again with the new counts: applied, exactly those rows.
    let preview = fx.dry_run(&m).unwrap();
    assert_eq!(preview.rows_changed(), 52);
    let r = fx
        .apply(
            &m,
            &ApplyOptions {
                confirmed: Some(Confirmed::of(&preview)),
                ..confirmed
            },
        )
        .unwrap();
    assert_eq!(r.rows_changed(), 52);
    // A row leaving is a change too (the other direction).
    let preview = fx
        .apply(
            &m,
            &ApplyOptions {
                dry_run: true,
                direction: Direction::Revert,
                ..ApplyOptions::default()
            },
        )
        .unwrap();
    fx.exec(&format!(
        r#"DELETE FROM "{}"."Thread1" WHERE "ID" = (SELECT MIN("ID") FROM "{}"."Thread1")"#,
        fx.schema, fx.schema
    ));
    let e = fx
        .apply(
            &m,
            &ApplyOptions {
                direction: Direction::Revert,
                confirmed: Some(Confirmed::of(&preview)),
                ..ApplyOptions::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(e.refusals(), [Refusal::ConfirmedCountsChanged { .. }]),
        "{e}"
    );
}

fn case(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/changes")
        .join(name)
}

/// Item 3: a plan blocked only by rows at a removed wait state applies once they drained (its
/// precondition refuses until then, nothing changed); a plan blocked by an ambiguous match is
/// refused by apply, its dry run and status alike, drained or not.
#[test]
fn a_blocked_plan_applies_once_drained_only_when_draining_is_what_blocks_it() {
    let Some(fx) = Fixture::new("OpsBlocked", 1) else {
        return;
    };
    let p = fixture_plan(&case("removed_wait_state"), &fx);
    assert_eq!(p.verdict, bplmigrate::plan::Verdict::Blocked);
    assert!(p.blocked_for_good().is_empty());
    create_plan_tables(&fx, &p);
    fx.seed(1, &[row("S9", 3), row("S11", 3), row("S12", 1)]);
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    let r = refusals(fx.apply_plan(&m));
    assert!(
        r.iter()
            .all(|x| matches!(x, Refusal::Precondition { .. }) && x.to_string().contains("S9")),
        "{r:?}"
    );
    assert_eq!(fx.snapshot(), before);
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%NextState" = 'Stop', "%Status" = 2 WHERE "%NextState" = 'S9'"#,
        fx.schema
    ));
    let rep = fx.apply_plan(&m).unwrap();
    assert!(rep.rows_changed() > 0);

    let Some(fx) = Fixture::new("OpsBlockedHard", 1) else {
        return;
    };
    let p = fixture_plan(&case("ambiguous_twin_delay"), &fx);
    assert!(!p.blocked_for_good().is_empty());
    create_plan_tables(&fx, &p);
    let m = Migration::from_plan(p).unwrap();
    let before = fx.snapshot();
    for r in [fx.dry_run(&m), fx.apply_plan(&m)] {
        let r = refusals(r);
        assert!(matches!(&r[..], [Refusal::PlanBlocked { .. }]), "{r:?}");
        assert!(r[0].to_string().contains("BPM0301"), "{}", r[0]);
    }
    assert_eq!(fx.snapshot(), before);
    let st = apply::status(
        &apply::Db::connect(&fx.connect).unwrap(),
        StatusSubject::Plan(&m),
        &Silent,
    )
    .unwrap();
    assert!(st
        .plan
        .unwrap()
        .refusals
        .iter()
        .any(|r| matches!(r, Refusal::PlanBlocked { .. })));

    // Review 10, D4: the verdict edited to "migratable" (plan id recomputed, as a folder whose
    // checksums were recomputed would verify) changes nothing: "blocked for good" is derived
    // from the open findings, not from the stored verdict.
    let mut edited = m.plan.clone();
    edited.verdict = bplmigrate::plan::Verdict::Migratable;
    edited.plan_id = bplmigrate::plan::plan_id(&edited).unwrap();
    assert_eq!(edited.blocked_for_good(), m.plan.blocked_for_good());
    fx.seed(1, &[row("S9", 3), row("S11", 3)]);
    let m = Migration::from_plan(edited).unwrap();
    let before = fx.snapshot();
    for r in [fx.dry_run(&m), fx.apply_plan(&m)] {
        let r = refusals(r);
        assert!(matches!(&r[..], [Refusal::PlanBlocked { .. }]), "{r:?}");
        assert!(r[0].to_string().contains("BPM0301"), "{}", r[0]);
    }
    assert_eq!(fx.snapshot(), before);
}

/// Item 12: rows that reached new-only states after the apply refuse the revert with the
/// right reason — no old state became those states — not "the new version does not have".
#[test]
fn a_revert_refusal_names_states_no_old_state_became() {
    let Some(fx) = Fixture::new("OpsRevertWhy", 1) else {
        return;
    };
    let p = fixture_plan(&case("insert_middle"), &fx);
    create_plan_tables(&fx, &p);
    fx.seed(1, &[row("S11", 3)]);
    let m = Migration::from_plan(p.clone()).unwrap();
    fx.apply_plan(&m).unwrap();
    // New S11 / S12 (the inserted delay) have no old counterpart.
    let news: Vec<String> = p.threads[0]
        .states
        .iter()
        .filter_map(|s| s.new.map(String::from))
        .collect();
    assert!(!news.iter().any(|n| n == "S11" || n == "S12"), "{news:?}");
    fx.seed(1, &[row("S11", 3), row("S12", 1)]);
    let before = fx.snapshot();
    let r = refusals(fx.revert_plan(&m));
    let text: Vec<String> = r.iter().map(|x| x.to_string()).collect();
    let unmapped = text
        .iter()
        .find(|t| t.contains("rest at states"))
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(
        unmapped.contains(&format!(
            "rest at states no state of the old {} became",
            fx.class
        )),
        "{unmapped}"
    );
    assert!(
        unmapped.contains("[S11 (1 row), S12 (1 row)]"),
        "{unmapped}"
    );
    assert!(
        !unmapped.contains("does not have [") && !unmapped.contains("new Demo"),
        "{unmapped}"
    );
    assert_eq!(fx.snapshot(), before);
}

/// Item 12, the undo path: rows the apply did not record are named per state, with why each
/// state is not kept; "ambiguous" only for a state several old states became.
#[test]
fn undo_strangers_are_named_per_state_and_ambiguous_only_when_merged() {
    let Some(fx) = Fixture::new("OpsStrangers", 1) else {
        return;
    };
    let p = plan(
        &fx,
        "strangers",
        &[(
            1,
            vec![
                st("S1", Some("S1")),
                st("S3", Some("S5")),
                st("S4", Some("S5")),
                st("S11", Some("S9")),
            ],
        )],
        &[],
    );
    fx.seed(
        1,
        &[row("S3", 3), row("S4", 3), row("S11", 3), row("S1", 3)],
    );
    let m = Migration::from_plan(p).unwrap();
    let applied = fx.apply_plan(&m).unwrap();
    assert_eq!(applied.rows_changed(), 3);
    // Arrived after the apply: one at the merged S5, two at the renumbered S9, one at S12
    // (no old state became it), one at the kept S1 (fine).
    fx.seed(
        1,
        &[
            row("S5", 3),
            row("S9", 3),
            row("S9", 1),
            row("S12", 3),
            row("S1", 3),
        ],
    );
    let before = fx.snapshot();
    let r = refusals(fx.revert_plan(&m));
    let s = r
        .iter()
        .find_map(|x| match x {
            Refusal::UndoStrangers { rows, states, .. } => Some((*rows, states.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{r:?}"));
    assert_eq!(s.0, 4);
    assert_eq!(
        s.1,
        [
            "S5 (1 row; old S3, S4 all became it: which one such a row came from is ambiguous)",
            "S9 (2 rows; old S11 became it)",
            "S12 (1 row; no old value became it: the new version added it, or does not have it)",
        ]
    );
    let text = r
        .iter()
        .find(|x| matches!(x, Refusal::UndoStrangers { .. }))
        .unwrap()
        .to_string();
    assert_eq!(text.matches("ambiguous").count(), 1, "{text}");
    assert!(text.starts_with("4 rows of "), "{text}");
    assert_eq!(fx.snapshot(), before);
}

/// Item 19: `status --plan` lists every precondition with its live result — a failing forward
/// guard (a NULL %NextState) stays listed as FAIL with its count, worded as what must hold
/// (never "ok rows … rest at states …"), and is refused once.
#[test]
fn status_lists_failing_preconditions_in_non_inverted_words() {
    let Some((fx, p)) = swap_s5_s7("OpsStatusChecks") else {
        return;
    };
    let (_tmp, dir) = fx.folder(&p);
    let m = Migration::load(&dir).unwrap();
    let status = || {
        apply::status(
            &apply::Db::connect(&fx.connect).unwrap(),
            StatusSubject::Plan(&m),
            &Silent,
        )
        .unwrap()
        .plan
        .unwrap()
    };
    let forward = |ps: &apply::PlanStatus| {
        ps.checks
            .iter()
            .find(|c| {
                c.description.starts_with(&format!(
                    "every row of {}.Thread1 rests at a state the old",
                    fx.class
                ))
            })
            .cloned()
            .unwrap_or_else(|| panic!("{:?}", ps.checks))
    };
    let ok = status();
    let c = forward(&ok);
    assert!(c.ok && c.rows == 0, "{c:?}");
    assert!(
        ok.checks
            .iter()
            .all(|c| !c.description.starts_with("rows ")),
        "{:?}",
        ok.checks
    );
    let text = |extra: &[&str]| {
        let mut a = vec![
            "status",
            "--plan",
            dir.to_str().unwrap(),
            "--connect",
            &fx.connect,
        ];
        a.extend(extra);
        let o = bin().args(&a).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let out = text(&[]);
    assert!(out.contains("  ok   every row of"), "{out}");

    fx.exec(&format!(
        r#"INSERT INTO "{}"."Thread1" ("%NextState", "%Status") VALUES (NULL, 3), ('', 3)"#,
        fx.schema
    ));
    let bad = status();
    let c = forward(&bad);
    assert!(!c.ok && c.rows == 2, "{c:?}");
    // The unknown rows are refused once, in status's words; not again as a precondition.
    let unknown = bad
        .refusals
        .iter()
        .filter(|r| matches!(r, Refusal::UnknownRows { .. }))
        .count();
    assert!(unknown >= 1, "{:?}", bad.refusals);
    assert!(
        !bad.refusals
            .iter()
            .any(|r| matches!(r, Refusal::Precondition { description, .. } if description.starts_with("every row of"))),
        "{:?}",
        bad.refusals
    );
    let out = text(&[]);
    let line = out
        .lines()
        .find(|l| l.contains("every row of") && l.contains("rests at a state the old"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(line.trim_start().starts_with("FAIL"), "{line}");
    assert!(line.contains("(2 rows)"), "{line}");
    // Apply agrees: refused, nothing changed.
    let e: ApplyError = fx.apply_plan(&m).unwrap_err();
    assert_eq!(e.class(), ErrorClass::Refused);
}

/// Item 2 through the binary on a terminal (`script` gives it one): rows arrive while the
/// prompt waits; after "y" the apply refuses (exit 3), nothing changed.
#[test]
fn the_terminal_prompt_refuses_when_rows_arrive_before_the_answer() {
    use std::io::{Read, Write};
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("no `script` here: skipped");
        return;
    }
    let Some((fx, p)) = swap_s5_s7("OpsPrompt") else {
        return;
    };
    let (_tmp, dir) = fx.folder(&p);
    let cmd = format!(
        "{} apply {} --connect '{}'",
        env!("CARGO_BIN_EXE_bplmigrate"),
        dir.display(),
        fx.connect
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_remove("BPLMIGRATE_CONNECT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&seen).contains("now? [y/N]") {
        let n = out.read(&mut buf).unwrap();
        assert!(n > 0, "no prompt: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        String::from_utf8_lossy(&seen).contains("2 rows will change"),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    for _ in 0..50 {
        fx.seed(1, &[row("S5", 3)]);
    }
    let before = fx.snapshot();
    child.stdin.as_mut().unwrap().write_all(b"y\n").unwrap();
    out.read_to_end(&mut seen).unwrap();
    let status = child.wait().unwrap();
    let text = String::from_utf8_lossy(&seen);
    assert_eq!(status.code(), Some(3), "{text}");
    assert!(
        text.contains("the rows changed after you confirmed their counts"),
        "{text}"
    );
    assert!(!text.contains("rows changed;"), "{text}");
    assert_eq!(fx.snapshot(), before);
    assert!(fx.history().is_empty());
}

/// Review 10, D3: a dirty entry of a plan that cannot be inverted (stale handler entries,
/// recorded unchanged in the undo rows): the history row the run wrote is lost after its
/// commit, so the entry never got its undo-row count, but BplMigrate.Undo holds the rows under
/// its entry number. Repaired as applied, `apply --revert` restores from them (it refused
/// before, claiming the run recorded none) and every row is as it was.
#[test]
fn a_repaired_dirty_entry_reverts_from_the_undo_rows_its_run_wrote() {
    let Some(fx) = Fixture::new("OpsDirtyUndo", 1) else {
        return;
    };
    let p = fixture_plan(&case("removed_async_call_stale_entries"), &fx);
    assert!(
        !bplmigrate::sql::revert_blockers(&p).is_empty(),
        "undo-based"
    );
    create_plan_tables(&fx, &p);
    let ids = fx.seed(1, &[row("S4", 3), row("S6", 3)]);
    for _ in &ids {
        fx.add_context(&[("Adjudicate", "OnResponse1"), ("Review", "OnResponse2")]);
    }
    let (states0, handlers0) = (fx.states(1), fx.handlers());
    let m = Migration::from_plan(p).unwrap();
    let other = raw_connect(&fx.connect);
    let class = fx.class.clone();
    let lose = At {
        at: "reading back",
        f: || {
            exec(
                &other,
                &format!(r#"DELETE FROM "BplMigrate"."History" WHERE "BplClass" = '{class}'"#),
            )
        },
    };
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    let e = apply::apply(
        &mut db,
        &m,
        &ApplyOptions {
            applied_by: "test".into(),
            ..ApplyOptions::default()
        },
        &lose,
    )
    .unwrap_err();
    assert_eq!(e.class(), ErrorClass::CommittedUnverified, "{e}");
    assert_ne!(fx.handlers(), handlers0, "the rows are migrated");
    let mut db = apply::Db::connect(&fx.connect).unwrap();
    apply::repair(
        &mut db,
        &fx.class,
        1,
        Resolution::Applied,
        "test",
        "rows checked",
    )
    .unwrap();
    fx.revert_plan(&m).unwrap();
    assert_eq!((fx.states(1), fx.handlers()), (states0, handlers0));
}
