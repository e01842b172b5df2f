//! Change fixtures (`fixtures/changes/<case>/{old.cls,new.cls[,overrides.toml]}`) against their
//! reviewed plan snapshots (`expected-plan.txt`), plus property tests over generated BPLs.
//!
//! `BLESS=1 cargo test --test plan_fixtures` rewrites the snapshots. Review every diff by
//! reasoning from the spec before committing it: a snapshot is a claim about IRIS, not a
//! record of whatever the tool printed.

use bplmigrate::bpl::{self, Bpl, LoadOptions};
use bplmigrate::diff::{self, ActivityChangeKind};
use bplmigrate::plan::findings::Code;
use bplmigrate::plan::render::{plan_human, RenderOptions};
use bplmigrate::plan::{self, MigrationPlan, Overrides, StateChange, Verdict};
use bplmigrate::states::{self, CompiledProcess, Compiler};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[path = "support/planned.rs"]
mod planned;
#[path = "support/snap.rs"]
mod snap;

fn compile(b: &Bpl) -> CompiledProcess {
    states::compile(b, Compiler::Current)
        .unwrap_or_else(|e| panic!("compile {}: {e}", b.source.origin))
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new("fixtures/changes");
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .expect("fixtures/changes")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("old.cls").exists() && p.join("new.cls").exists())
        .collect();
    v.sort();
    v
}

fn plan_case(dir: &Path) -> (planned::Planned, Bpl, Bpl, CompiledProcess, CompiledProcess) {
    let s = |f: &str| dir.join(f).to_string_lossy().replace('\\', "/");
    let old = bpl::load(&s("old.cls"), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let new = bpl::load(&s("new.cls"), &LoadOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let (oc, nc) = (compile(&old), compile(&new));
    let ov = dir.join("overrides.toml");
    let ov = ov.exists().then(|| {
        Overrides::parse(&s("overrides.toml"), &std::fs::read_to_string(&ov).unwrap())
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let planned = planned::build(&old, &new, &oc, &nc, ov.as_ref())
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    (planned, old, new, oc, nc)
}

/// A broken plan invariant (its fields are read through `Debug` in the failure message).
#[derive(Debug)]
#[allow(dead_code)]
enum Violation {
    /// The plan's thread classes are not the old version's, in order.
    Threads { plan: usize, old: usize },
    /// A thread's old states are not every old state exactly once, in order.
    OldStates {
        class: String,
        plan: Vec<String>,
        old: Vec<String>,
    },
    /// A mapped (not overridden) state's new owner is not the old owner's match.
    Owner { class: String, state: String },
    /// The plan does not survive JSON, or its id is not its content hash.
    RoundTrip(String),
}

/// Every old state of every old thread class exactly once, in order.
fn every_old_state_once(p: &MigrationPlan, oc: &CompiledProcess) -> Vec<Violation> {
    if p.threads.len() != oc.threads.len() {
        return vec![Violation::Threads {
            plan: p.threads.len(),
            old: oc.threads.len(),
        }];
    }
    p.threads
        .iter()
        .zip(&oc.threads)
        .filter_map(|(tm, t)| {
            let plan: Vec<String> = tm.states.iter().map(|s| s.old.to_string()).collect();
            let old: Vec<String> = t.states.iter().map(|s| s.name.to_string()).collect();
            (tm.old_class != t.class || plan != old).then(|| Violation::OldStates {
                class: t.class.clone(),
                plan,
                old,
            })
        })
        .collect()
}

/// A mapped (not overridden) state's new owner is the old owner's match.
fn owners_correspond(p: &MigrationPlan, d: &diff::ProcessDiff) -> Vec<Violation> {
    if p.old.package != p.new.package {
        return vec![];
    }
    let m: BTreeMap<_, _> = d
        .activities
        .iter()
        .filter_map(|a| Some((a.old.as_ref()?.id, a.new.as_ref()?.id)))
        .collect();
    let mut out = Vec::new();
    for tm in &p.threads {
        for s in &tm.states {
            // A call's wait matched to a `<sync>`'s on it (or back) is a state-level match.
            let same_wait = s.via == "same_wait"
                && s.new_activity.as_ref().is_some_and(|na| {
                    let mut kinds = [s.old_activity.element.as_str(), na.element.as_str()];
                    kinds.sort();
                    kinds == ["call", "sync"]
                });
            if let (Some(na), true) = (&s.new_activity, s.change != StateChange::Overridden) {
                if !same_wait && m.get(&s.old_activity.id) != Some(&na.id) {
                    out.push(Violation::Owner {
                        class: tm.old_class.clone(),
                        state: s.old.to_string(),
                    });
                }
            }
        }
    }
    out
}

/// The plan survives JSON and its id is its content hash.
fn survives_json(p: &MigrationPlan) -> Vec<Violation> {
    let json = serde_json::to_string(p).unwrap();
    match serde_json::from_str::<MigrationPlan>(&json) {
        Ok(back) if &back != p => vec![Violation::RoundTrip("differs after JSON".into())],
        Err(e) => vec![Violation::RoundTrip(e.to_string())],
        Ok(_) if plan::plan_id(p).ok().as_ref() != Some(&p.plan_id) => {
            vec![Violation::RoundTrip(
                "plan id is not the content hash".into(),
            )]
        }
        Ok(_) => vec![],
    }
}

/// The invariant checks can fail: a plan missing a state, with a foreign owner or a stale id
/// is caught by the check for that concern.
#[test]
fn the_plan_invariants_catch_broken_plans() {
    let (planned, _, _, oc, _) = plan_case(Path::new("fixtures/changes/insert_middle"));
    let (p, d) = (&planned.plan, &planned.diff);
    assert!(every_old_state_once(p, &oc).is_empty());
    assert!(owners_correspond(p, d).is_empty());
    assert!(survives_json(p).is_empty());

    let mut missing = p.clone();
    missing.threads[0].states.pop();
    assert!(matches!(
        every_old_state_once(&missing, &oc)[..],
        [Violation::OldStates { .. }]
    ));
    let mut foreign = p.clone();
    let s = foreign.threads[0]
        .states
        .iter_mut()
        .find(|s| s.new_activity.is_some() && s.change != StateChange::Overridden)
        .unwrap();
    s.old_activity.id = bplmigrate::bpl::ActivityId(u32::MAX);
    assert!(matches!(
        owners_correspond(&foreign, d)[..],
        [Violation::Owner { .. }, ..]
    ));
    let mut stale = p.clone();
    stale.plan_id = "0000".into();
    assert!(matches!(
        survives_json(&stale)[..],
        [Violation::RoundTrip(_)]
    ));
}

/// Invariants every plan must satisfy.
fn check_invariants(p: &MigrationPlan, d: &diff::ProcessDiff, oc: &CompiledProcess) {
    let mut v = every_old_state_once(p, oc);
    v.extend(owners_correspond(p, d));
    v.extend(survives_json(p));
    assert!(v.is_empty(), "{}: {v:#?}", p.old.class);
}

#[test]
fn change_fixtures_match_their_reviewed_plans() {
    let mut snaps = snap::Snapshots::new();
    let all = cases();
    assert!(
        all.len() >= 14,
        "expected the change fixtures, found {}",
        all.len()
    );
    for dir in all {
        let (planned, _, _, oc, _) = plan_case(&dir);
        check_invariants(&planned.plan, &planned.diff, &oc);
        let got = plan_human(&planned.plan, RenderOptions { header: false });
        snaps.check(dir.join("expected-plan.txt"), &got);
        // Same inputs, same plan (ids and order included).
        let (again, ..) = plan_case(&dir);
        assert_eq!(
            again.plan,
            planned.plan,
            "{}: plan is not deterministic",
            dir.display()
        );
    }
    snaps.finish();
}

/// The verdict of every fixture, stated separately from the snapshots so a blessed snapshot
/// cannot silently flip one.
#[test]
fn change_fixture_verdicts() {
    let want = [
        ("append_end", Verdict::Compatible),
        ("arguments_reversed", Verdict::Blocked),
        ("awaited_async_rename", Verdict::Drain),
        ("async_call_made_sync", Verdict::Compatible),
        ("sync_call_made_async", Verdict::Compatible),
        ("sync_call_made_async_with_timeout", Verdict::Drain),
        ("skipped_trace_only", Verdict::Compatible),
        ("branch_switch", Verdict::Blocked),
        ("copies_into_branches", Verdict::Migratable),
        ("drain_only", Verdict::Drain),
        ("flow_renumbering", Verdict::Drain),
        ("flow_insert_after", Verdict::Migratable),
        ("flow_in_while", Verdict::Migratable),
        ("move_between_branches", Verdict::Drain),
        ("move_to_branch_start", Verdict::Blocked),
        ("moved_into_evaluated_if", Verdict::Migratable),
        ("rename_across_cases", Verdict::Blocked),
        ("case_replaced", Verdict::Migratable),
        ("case_replaced_same_call", Verdict::Drain),
        ("catch_replaced", Verdict::Drain),
        ("catch_replaced_same_call", Verdict::Blocked),
        ("catch_fault_renamed", Verdict::Compatible),
        ("catch_fault_renamed_unnamed", Verdict::Compatible),
        ("catch_fault_changed_throw_kept", Verdict::Drain),
        ("hoisted_common_tail", Verdict::Migratable),
        ("hoisted_tail_other_branch_work", Verdict::Blocked),
        ("unwrap_if", Verdict::Migratable),
        ("hoist_out_of_branch", Verdict::Migratable),
        ("unwrap_if_in_flow_branch", Verdict::Migratable),
        ("flow_branch_from_before", Verdict::Blocked),
        ("runtime_key_rename", Verdict::Drain),
        ("runtime_key_rename_new_bare_call", Verdict::Drain),
        ("if_replaced_same_call", Verdict::Drain),
        ("if_moved_condition_edited", Verdict::Migratable),
        ("if_moved_and_replaced", Verdict::Blocked),
        ("switch_moved_case_added", Verdict::Migratable),
        ("case_added_call_removed", Verdict::Blocked),
        ("conditionals_renamed_or_edited", Verdict::Compatible),
        ("unwrap_scope", Verdict::Migratable),
        ("gained_response_handler", Verdict::Migratable),
        ("handler_renumbering", Verdict::Migratable),
        ("insert_middle", Verdict::Migratable),
        ("layout_only", Verdict::Identical),
        ("explicit_defaults", Verdict::Identical),
        ("label_to_while", Verdict::Migratable),
        ("label_to_while_stamped", Verdict::Migratable),
        ("new_context_property", Verdict::Migratable),
        ("new_property_read_by_case", Verdict::Compatible),
        ("new_object_property", Verdict::Compatible),
        ("new_property_read_in_code", Verdict::Compatible),
        ("new_property_set_by_awaited_response", Verdict::Compatible),
        ("new_property_written_before_read", Verdict::Compatible),
        ("one_state_compatible", Verdict::Compatible),
        ("remove_activity", Verdict::Migratable),
        ("removed_call", Verdict::Drain),
        ("removed_wait_state", Verdict::Blocked),
        ("removed_wait_state_mapped", Verdict::Migratable),
        ("removed_delay_after_work", Verdict::Blocked),
        ("removed_delay_after_work_mapped", Verdict::Migratable),
        ("same_name_into_fault_handler", Verdict::Drain),
        ("same_name_other_branch", Verdict::Blocked),
        ("reorder_switch_cases", Verdict::Migratable),
        ("sync_attributes_changed", Verdict::Compatible),
        ("identical_copies", Verdict::Blocked),
        ("identical_copies_pinned", Verdict::Migratable),
        ("insert_in_loop", Verdict::Compatible),
        ("flow_branch_removed", Verdict::Drain),
        ("removed_sync_call_still_awaited", Verdict::Blocked),
        ("map_onto_new_call_wait", Verdict::Blocked),
        ("map_onto_other_call_wait", Verdict::Migratable),
        ("rename_call", Verdict::Drain),
        ("renamed_call_with_twin", Verdict::Drain),
        ("renamed_first_call_with_twin", Verdict::Drain),
        ("rename_into_fault_handler", Verdict::Drain),
        ("renest_into_if", Verdict::Migratable),
        ("renest_into_scope", Verdict::Migratable),
        ("reorder_siblings", Verdict::Migratable),
        ("request_class_changed", Verdict::Compatible),
        ("retargeted_awaited_call", Verdict::Compatible),
        ("same_name_other_call", Verdict::Drain),
        ("skip_by_branch", Verdict::Migratable),
        ("comp_reorder", Verdict::Migratable),
        ("compensated_twice_renumbered", Verdict::Migratable),
        ("compensate_inserted_before", Verdict::Migratable),
        ("catchall_insert_before_compensate", Verdict::Migratable),
        ("catch_insert", Verdict::Migratable),
        ("comp_handler_edit", Verdict::Migratable),
        ("comp_handler_edit_uncompensated", Verdict::Migratable),
        ("comp_handler_edit_same_name", Verdict::Migratable),
        ("catch_added", Verdict::Migratable),
        ("catch_added_uncaught", Verdict::Migratable),
        ("inner_catchall_added", Verdict::Migratable),
        ("empty_only_inserted", Verdict::Compatible),
        ("receive_only_inserted", Verdict::Compatible),
        ("flow_branch_disabled", Verdict::Drain),
        ("if_negated_branches_swapped", Verdict::Blocked),
        ("skip_inserted_in_both_branches", Verdict::Migratable),
        ("toggle_disabled", Verdict::Migratable),
        ("unawaited_async_rename", Verdict::Compatible),
        ("versioned", Verdict::Compatible),
        ("wrap_in_scope", Verdict::Migratable),
        ("ambiguous_twin_delay", Verdict::Blocked),
        ("class_changed", Verdict::Blocked),
        ("pin_takes_counterpart", Verdict::Blocked),
        ("context_property_removed", Verdict::Compatible),
        ("context_property_retyped", Verdict::Compatible),
        ("flow_removed", Verdict::Blocked),
        ("removed_awaited_async_call", Verdict::Blocked),
        ("response_handler_removed", Verdict::Migratable),
        ("unversioned_to_versioned", Verdict::Compatible),
        ("delay_duration_changed", Verdict::Compatible),
        ("delay_duration_to_until", Verdict::Compatible),
        ("context_initial_changed", Verdict::Compatible),
        ("catch_delay_removed", Verdict::Blocked),
        ("sync_call_split_rows_after", Verdict::Migratable),
        ("sync_call_timeout_split_rows_after", Verdict::Migratable),
        ("sync_call_joined_rows_after", Verdict::Compatible),
        ("body_insert_rows_in_handlers", Verdict::Migratable),
        ("split_in_scope", Verdict::Compatible),
        ("body_end_insert", Verdict::Migratable),
        ("removed_async_call_stale_entries", Verdict::Migratable),
        ("handler_removed_in_loop", Verdict::Migratable),
        ("handler_removed_after_delay", Verdict::Migratable),
        ("removed_unsynced_async_call", Verdict::Migratable),
        ("removed_unsynced_async_call_at", Verdict::Migratable),
        ("sync_timeout_changed", Verdict::Compatible),
        ("toggle_swapped", Verdict::Drain),
        ("nested_catch_compensate", Verdict::Migratable),
        ("dup_fault_catch_unreachable", Verdict::Migratable),
        ("dup_fault_catch_removed", Verdict::Migratable),
        ("catch_enabled", Verdict::Migratable),
        ("break_out_of_scope", Verdict::Migratable),
        ("transfer_default_stale_stack", Verdict::Migratable),
        ("compensate_moved_to_catch", Verdict::Blocked),
        ("call_out_of_catchall", Verdict::Blocked),
        ("catch_disabled_pending_call", Verdict::Blocked),
        ("context_property_renamed", Verdict::Compatible),
        ("wait_moved_out_of_foreach", Verdict::Compatible),
        ("wait_moved_out_of_while", Verdict::Migratable),
        ("wait_moved_before_while", Verdict::Migratable),
        ("wait_moved_before_until", Verdict::Migratable),
        ("wait_first_moved_before_until", Verdict::Migratable),
        ("call_moved_into_foreach_rows_in_body", Verdict::Compatible),
        ("call_moved_into_while_rows_in_body", Verdict::Compatible),
        (
            "call_moved_into_foreach_start_rows_in_body",
            Verdict::Migratable,
        ),
        (
            "call_inserted_into_foreach_rows_in_body",
            Verdict::Migratable,
        ),
        ("wait_moved_into_foreach", Verdict::Compatible),
        ("until_replaced_by_while", Verdict::Drain),
        ("wait_wrapped_in_while", Verdict::Migratable),
        ("sync_call_timeout_rows_after", Verdict::Drain),
        ("sync_call_any_rows_after", Verdict::Drain),
        ("sync_call_all_rows_after", Verdict::Drain),
        ("sync_split_rows_after", Verdict::Migratable),
        ("sync_split_timeout_rows_after", Verdict::Migratable),
        ("dup_fault_first_catch_removed", Verdict::Blocked),
        ("body_mid_insert", Verdict::Migratable),
        ("compensate_retargeted", Verdict::Compatible),
        ("response_assign_moved_out", Verdict::Compatible),
        ("flow_branch_wrapped_in_scope", Verdict::Migratable),
        ("foreach_key_property_new", Verdict::Compatible),
        ("comp_nested_in_handler", Verdict::Migratable),
        ("comp_in_flow_branch", Verdict::Compatible),
        ("switch_case_conditions_changed", Verdict::Drain),
        ("switch_case_switched", Verdict::Drain),
        ("condition_respaced", Verdict::Migratable),
        ("case_respaced_renamed", Verdict::Migratable),
        ("condition_tightened_renamed", Verdict::Drain),
        ("catch_widened_to_catchall", Verdict::Migratable),
        ("catchall_narrowed_to_catch", Verdict::Blocked),
        ("catch_widened_nested", Verdict::Migratable),
        ("call_moved_between_cases", Verdict::Blocked),
        ("comp_rows_call_moved_out_of_scope", Verdict::Migratable),
        ("comp_rows_body_insert", Verdict::Migratable),
        ("retarget_swapped_between_cases", Verdict::Compatible),
        ("same_name_call_moved_between_cases", Verdict::Blocked),
        ("branch_switch_mapped", Verdict::Migratable),
        ("compensate_registry_cleared", Verdict::Migratable),
        ("compensate_scope_after", Verdict::Migratable),
        ("wait_moved_into_case", Verdict::Blocked),
        ("wait_moved_into_case_mapped", Verdict::Migratable),
        ("wait_moved_out_of_branch", Verdict::Migratable),
        ("call_moved_out_of_scope_body", Verdict::Migratable),
        ("sequence_first_moved_out_of_scope", Verdict::Migratable),
        ("flow_join_new_catch", Verdict::Migratable),
    ];
    let named: std::collections::BTreeSet<&str> = want.iter().map(|(c, _)| *c).collect();
    for dir in cases() {
        let case = dir.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            named.contains(case.as_str()),
            "fixture {case} has no pinned verdict"
        );
    }
    for (case, verdict) in want {
        let (planned, ..) = plan_case(&Path::new("fixtures/changes").join(case));
        assert_eq!(planned.plan.verdict, verdict, "{case}");
    }
}

/// A wait moved out of a loop: the rows resting there leave it (a warning naming the old
/// loop), and no finding about them says "whether the loop ran": they were in it.
#[test]
fn a_wait_moved_out_of_a_loop_leaves_it() {
    for (case, state, lp) in [
        ("wait_moved_out_of_foreach", "Thread1:S5", "Each"),
        ("wait_moved_out_of_while", "Thread1:S5", "Retry"),
    ] {
        let (planned, ..) = plan_case(&Path::new("fixtures/changes").join(case));
        let about: Vec<_> = planned
            .plan
            .findings
            .iter()
            .filter(|f| f.states.iter().any(|s| s == state))
            .collect();
        let left = about
            .iter()
            .find(|f| f.code == Code::SkippedActivities && f.message.contains("resume outside"))
            .unwrap_or_else(|| panic!("{case}: no finding that rows at {state} leave the loop"));
        assert!(
            left.activities
                .iter()
                .any(|a| a.name.as_deref() == Some(lp)),
            "{case}: {left:?}"
        );
        assert!(
            about
                .iter()
                .all(|f| !f.message.contains("whether the loop ran")),
            "{case}: {about:?}"
        );
    }
}

#[test]
fn new_context_property_without_overrides_is_only_compatible_with_a_warning() {
    let dir = Path::new("fixtures/changes/new_context_property");
    let old = bpl::load(
        &dir.join("old.cls").to_string_lossy(),
        &LoadOptions::default(),
    )
    .unwrap();
    let new = bpl::load(
        &dir.join("new.cls").to_string_lossy(),
        &LoadOptions::default(),
    )
    .unwrap();
    let p = planned::build(&old, &new, &compile(&old), &compile(&new), None)
        .unwrap()
        .plan;
    assert_eq!(p.verdict, Verdict::Compatible);
    let f = p
        .findings
        .iter()
        .find(|f| f.code == Code::NewContextProperty)
        .expect("new-context-property finding");
    assert!(!f.acknowledged);
    assert!(
        f.states.contains(&"Thread1:S9".to_string()),
        "{:?}",
        f.states
    );
    assert!(
        !f.states.contains(&"Thread1:S11".to_string()),
        "the Notify request was sent before S11: {:?}",
        f.states
    );
}

#[test]
fn stale_or_inapplicable_overrides_are_errors_naming_the_line() {
    let dir = Path::new("fixtures/changes/removed_wait_state");
    let old = bpl::load(
        &dir.join("old.cls").to_string_lossy(),
        &LoadOptions::default(),
    )
    .unwrap();
    let new = bpl::load(
        &dir.join("new.cls").to_string_lossy(),
        &LoadOptions::default(),
    )
    .unwrap();
    let (oc, nc) = (compile(&old), compile(&new));
    let run = |text: &str| {
        let ov = Overrides::parse("o.toml", text).unwrap();
        planned::build(&old, &new, &oc, &nc, Some(&ov))
            .map(|p| p.plan)
            .map_err(|e| e.to_string())
    };
    let stale = format!("\n\nold_sha256 = \"{}\"\n", "0".repeat(64));
    assert!(
        run(&stale).unwrap_err().starts_with("o.toml:3:"),
        "{}",
        run(&stale).unwrap_err()
    );
    let e = run("[[map]]\nthread = \"Thread1\"\nold = \"S99\"\nnew = \"S4\"\n").unwrap_err();
    assert!(e.starts_with("o.toml:1:") && e.contains("S99"), "{e}");
    let e = run("[[map]]\nthread = \"Thread7\"\nold = \"S9\"\nnew = \"S4\"\n").unwrap_err();
    assert!(e.contains("Thread7"), "{e}");
    let e = run("\n[[map]]\nthread = \"Thread1\"\nold = \"S9\"\nnew = \"S40\"\n").unwrap_err();
    assert!(e.starts_with("o.toml:2:") && e.contains("S40"), "{e}");
    let e = run("[[ack]]\ncode = \"BPM0101\"\nstate = \"S2\"\n").unwrap_err();
    assert!(e.contains("no such finding"), "{e}");
    let e = run("[[ack]]\ncode = \"BPM9999\"\n").unwrap_err();
    assert!(e.contains("BPM9999"), "{e}");
    let e = run("[[default]]\nproperty = \"Nope\"\nvalue = 1\n").unwrap_err();
    assert!(e.contains("Nope"), "{e}");
    let e = run("[[pin]]\nold = 'delay \"Nope\"'\nnew = ''\n").unwrap_err();
    assert!(e.contains("Nope"), "{e}");
    // An acknowledgement of the blocking finding turns the verdict into migratable; the
    // precondition stays.
    let p = run("[[ack]]\ncode = \"removed-wait-state\"\nthread = \"Thread1\"\nstate = \"S9\"\n")
        .unwrap();
    assert_eq!(p.verdict, Verdict::Migratable);
    assert!(p
        .preconditions
        .iter()
        .any(|c| matches!(c, plan::Precondition::NoRowsAtState { state, .. } if state == "S9")));
    // Pinning the delay to nothing changes nothing here; pinning it to the call is honoured.
    let p = run("[[pin]]\nold = 'delay \"Cool\"'\nnew = ''\n").unwrap();
    assert_eq!(p.verdict, Verdict::Blocked);
}

// ---- property tests over generated BPLs --------------------------------------------------

/// xorshift64*: a tiny deterministic generator, so failures reproduce from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Gen {
    rng: Rng,
    n: u32,
}

impl Gen {
    fn id(&mut self) -> u32 {
        self.n += 1;
        self.n
    }

    fn list(&mut self, depth: u32, out: &mut String, indent: &str) {
        let k = 1 + self.rng.below(if depth == 0 { 6 } else { 3 });
        for _ in 0..k {
            self.activity(depth, out, indent);
        }
    }

    fn activity(&mut self, depth: u32, out: &mut String, ind: &str) {
        let leaf = depth >= 3;
        let pick = self.rng.below(if leaf { 6 } else { 13 });
        let i = self.id();
        let inner = format!("{ind}  ");
        match pick {
            0 => out.push_str(&format!("{ind}<assign property='context.P{}' value='{}'/>\n", i % 3, i)),
            1 => out.push_str(&format!("{ind}<trace name='T{i}' value='\"t{i}\"'/>\n")),
            2 => out.push_str(&format!(
                "{ind}<call name='C{i}' target='Op{}' async='0'><request type='Ens.Request'/><response type='Ens.Response'><assign property='context.P0' value='{i}'/></response></call>\n",
                i % 4
            )),
            3 => out.push_str(&format!("{ind}<call name='C{i}' target='Op{}' async='1'><request type='Ens.Request'/></call>\n", i % 4)),
            4 => out.push_str(&format!("{ind}<delay name='D{i}' duration='\"PT{i}S\"'/>\n")),
            5 => out.push_str(&format!("{ind}<empty/>\n")),
            6 | 7 => {
                out.push_str(&format!("{ind}<if name='I{i}' condition='context.P1={i}'>\n"));
                let (t, f) = match self.rng.below(3) {
                    0 => (true, false),
                    1 => (false, true),
                    _ => (true, true),
                };
                for (has, tag) in [(t, "true"), (f, "false")] {
                    if has {
                        out.push_str(&format!("{inner}<{tag}>\n"));
                        self.list(depth + 1, out, &format!("{inner}  "));
                        out.push_str(&format!("{inner}</{tag}>\n"));
                    }
                }
                out.push_str(&format!("{ind}</if>\n"));
            }
            8 => {
                out.push_str(&format!("{ind}<while name='W{i}' condition='context.P2&lt;{i}'>\n"));
                self.list(depth + 1, out, &inner);
                out.push_str(&format!("{ind}</while>\n"));
            }
            9 => {
                out.push_str(&format!("{ind}<switch name='SW{i}'>\n"));
                for c in 0..1 + self.rng.below(3) {
                    out.push_str(&format!("{inner}<case condition='context.P1={c}'>\n"));
                    if self.rng.below(4) > 0 {
                        self.list(depth + 1, out, &format!("{inner}  "));
                    }
                    out.push_str(&format!("{inner}</case>\n"));
                }
                if self.rng.below(2) == 0 {
                    out.push_str(&format!("{inner}<default>\n"));
                    self.list(depth + 1, out, &format!("{inner}  "));
                    out.push_str(&format!("{inner}</default>\n"));
                }
                out.push_str(&format!("{ind}</switch>\n"));
            }
            10 => {
                out.push_str(&format!("{ind}<scope name='SC{i}'>\n"));
                self.list(depth + 1, out, &inner);
                out.push_str(&format!("{inner}<faulthandlers>\n"));
                for c in 0..self.rng.below(3) {
                    // <flow> may not sit directly in a <catch>: wrap the body.
                    out.push_str(&format!("{inner}  <catch fault='\"F{c}\"'>\n{inner}    <sequence>\n"));
                    self.list(depth + 2, out, &format!("{inner}      "));
                    out.push_str(&format!("{inner}    </sequence>\n{inner}  </catch>\n"));
                }
                out.push_str(&format!("{inner}  <catchall><trace value='\"all\"'/></catchall>\n"));
                out.push_str(&format!("{inner}</faulthandlers>\n"));
                out.push_str(&format!("{ind}</scope>\n"));
            }
            11 => {
                out.push_str(&format!("{ind}<flow name='FL{i}'>\n"));
                for b in 0..1 + self.rng.below(3) {
                    out.push_str(&format!("{inner}<sequence name='B{i}_{b}'>\n"));
                    self.list(depth + 1, out, &format!("{inner}  "));
                    out.push_str(&format!("{inner}</sequence>\n"));
                }
                out.push_str(&format!("{ind}</flow>\n"));
            }
            _ => {
                out.push_str(&format!("{ind}<foreach name='FE{i}' property='context.L' key='context.K'>\n"));
                self.list(depth + 1, out, &inner);
                out.push_str(&format!("{ind}</foreach>\n"));
            }
        }
    }
}

fn generate(seed: u64) -> String {
    let mut g = Gen {
        rng: Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1),
        n: 0,
    };
    let mut body = String::new();
    g.list(0, &mut body, "  ");
    format!("<process request='Ens.Request' response='Ens.Response'>\n<sequence>\n{body}</sequence>\n</process>\n")
}

fn parse(text: &str, origin: &str) -> Bpl {
    bpl::parse_bare(origin, text, "Demo.Prop").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn planned(old: &str, new: &str) -> (planned::Planned, CompiledProcess) {
    let (o, n) = (parse(old, "old.xml"), parse(new, "new.xml"));
    let (oc, nc) = (compile(&o), compile(&n));
    let p = planned::build(&o, &n, &oc, &nc, None)
        .unwrap_or_else(|e| panic!("{e}\n--- old\n{old}\n--- new\n{new}"));
    (p, oc)
}

/// Seeds per property (`PROPERTY_SEEDS=5000` for a longer run; 6000 passed when written).
fn seeds() -> u64 {
    std::env::var("PROPERTY_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

#[test]
fn property_diff_with_itself_is_identical() {
    for seed in 1..=seeds() {
        let x = generate(seed);
        let (p, oc) = planned(&x, &x);
        check_invariants(&p.plan, &p.diff, &oc);
        assert!(p.diff.identical, "seed {seed}");
        assert_eq!(p.plan.verdict, Verdict::Identical, "seed {seed}\n{x}");
        assert!(
            p.plan.findings.is_empty(),
            "seed {seed}: {:?}",
            p.plan.findings
        );
        assert!(
            p.diff
                .activities
                .iter()
                .all(|a| a.change == ActivityChangeKind::Unchanged),
            "seed {seed}"
        );
    }
}

/// Rename every named activity (calls included) without touching anything else.
fn rename_all(x: &str) -> String {
    let mut out = String::new();
    for line in x.lines() {
        let mut l = line.to_string();
        if let Some(i) = l.find(" name='") {
            let start = i + " name='".len();
            if let Some(len) = l[start..].find('\'') {
                l.insert_str(start + len, "_renamed");
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// Move things on the canvas, add annotations, comments and blank lines.
fn relayout(x: &str) -> String {
    let mut out = String::new();
    for (k, line) in x.lines().enumerate() {
        let t = line.trim_start();
        let ind = &line[..line.len() - t.len()];
        let opens_activity = t.starts_with('<')
            && !t.starts_with("</")
            && !t.starts_with("<case")
            && !t.starts_with("<default")
            && !t.starts_with("<true")
            && !t.starts_with("<false")
            && !t.starts_with("<process")
            && !t.starts_with("<faulthandlers")
            && !t.starts_with("<catch")
            && !t.starts_with("<request")
            && !t.starts_with("<response");
        if opens_activity {
            let tag_end = t.find([' ', '>', '/']).unwrap_or(t.len());
            let mut l = format!(
                "{ind}{} xpos='{}' ypos='{}'{}",
                &t[..tag_end],
                100 + k,
                200 + 3 * k,
                &t[tag_end..]
            );
            if k % 3 == 0 {
                l = format!("{ind}<!-- moved -->\n\n{l}");
            }
            out.push_str(&l);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[test]
fn property_rename_only_never_moves_a_state() {
    for seed in 1..=seeds() {
        let x = generate(seed);
        let y = rename_all(&x);
        let (p, oc) = planned(&x, &y);
        check_invariants(&p.plan, &p.diff, &oc);
        for t in &p.plan.threads {
            assert_eq!(
                t.new_class.as_deref(),
                Some(t.old_class.as_str()),
                "seed {seed}"
            );
            for s in &t.states {
                assert_eq!(
                    s.new,
                    Some(s.old),
                    "seed {seed}: {} {} ({:?})\n{x}",
                    t.old_class,
                    s.old,
                    s.note
                );
            }
        }
        for h in &p.plan.response_handlers {
            assert_eq!(h.new.as_deref(), Some(h.old.as_str()), "seed {seed}");
        }
    }
}

#[test]
fn property_layout_only_is_identical() {
    for seed in 1..=seeds() {
        let x = generate(seed);
        let y = relayout(&x);
        assert_ne!(x, y);
        let (p, oc) = planned(&x, &y);
        check_invariants(&p.plan, &p.diff, &oc);
        assert_eq!(p.plan.verdict, Verdict::Identical, "seed {seed}\n{y}");
    }
}

/// Insert one delay at a random place of the top-level sequence: every old state is still
/// mapped exactly once, owners correspond, and the states of the untouched prefix keep their
/// names.
#[test]
fn property_insertion_maps_every_state_once() {
    for seed in 1..=seeds() {
        let x = generate(seed);
        let lines: Vec<&str> = x.lines().collect();
        // Top-level activity starts: lines indented by exactly two spaces, not closing tags.
        let starts: Vec<usize> = lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with("  <") && !l.starts_with("  </"))
            .map(|(i, _)| i)
            .collect();
        let at = starts[(seed as usize) % starts.len()];
        let mut y = lines[..at].join("\n");
        y.push_str("\n  <delay name='Inserted' duration='\"PT9S\"'/>\n");
        y.push_str(&lines[at..].join("\n"));
        y.push('\n');
        let (p, oc) = planned(&x, &y);
        check_invariants(&p.plan, &p.diff, &oc);
        assert_ne!(p.plan.verdict, Verdict::Identical, "seed {seed}");
        let main = &p.plan.threads[0];
        assert!(
            main.states.iter().all(|s| s.new.is_some()),
            "seed {seed}: nothing was removed\n{y}"
        );
    }
}

/// `SEED=n cargo test --test plan_fixtures dump_seed -- --ignored` writes the generated BPL
/// of one seed (and its renamed / relaid-out forms) to the temp folder, for `bplmigrate diff`.
#[test]
#[ignore]
fn dump_seed() {
    let seed: u64 = std::env::var("SEED").unwrap().parse().unwrap();
    let x = generate(seed);
    let dir = std::env::temp_dir();
    std::fs::write(dir.join("seed-old.xml"), &x).unwrap();
    std::fs::write(dir.join("seed-renamed.xml"), rename_all(&x)).unwrap();
    std::fs::write(dir.join("seed-relayout.xml"), relayout(&x)).unwrap();
}

#[test]
fn an_ambiguous_state_owner_blocks_until_pinned() {
    let head = "<process request='Ens.Request' response='Ens.Response'>\n<sequence>\n";
    let call = "<call name='A' target='OpA' async='0'><request type='Ens.Request'/></call>\n";
    let delay = "<delay duration='\"PT1M\"'/>\n";
    let old_text = format!("{head}{delay}{call}</sequence>\n</process>\n");
    let new_text = format!("{head}{delay}{delay}{call}</sequence>\n</process>\n");
    let (o, n) = (parse(&old_text, "old.xml"), parse(&new_text, "new.xml"));
    let (oc, nc) = (compile(&o), compile(&n));

    let p = planned::build(&o, &n, &oc, &nc, None).unwrap().plan;
    assert_eq!(p.verdict, Verdict::Blocked);
    let f = p
        .findings
        .iter()
        .find(|f| f.code == Code::AmbiguousMatch)
        .expect("ambiguous-match");
    assert_eq!(f.severity, plan::Severity::Error);
    assert!(
        f.states.contains(&"Thread1:S2".to_string()),
        "{:?}",
        f.states
    );

    // The reviewer says the old delay is the second one: the first is new and skipped.
    let ov = Overrides::parse("o.toml", "[[pin]]\nold = 'delay@3:1'\nnew = 'delay@4:1'\n").unwrap();
    let p = planned::build(&o, &n, &oc, &nc, Some(&ov)).unwrap().plan;
    assert_eq!(p.verdict, Verdict::Migratable, "{:#?}", p.findings);
    let s2 = &p.threads[0].states[1];
    assert_eq!(
        (
            s2.old.to_string(),
            s2.new.map(|n| n.to_string()),
            s2.via.as_ref()
        ),
        ("S2".to_string(), Some("S4".to_string()), "pinned")
    );
    let skipped = p
        .findings
        .iter()
        .find(|f| f.code == Code::SkippedActivities)
        .expect("skipped");
    assert_eq!(skipped.new_activities[0].line, 3);
}

/// Parent/children consistency: the whole body wrapped in a new `<scope>` keeps every state,
/// and every matched activity whose old parent is matched sits under that parent's match
/// (the top-level ones under the new scope).
#[test]
fn property_wrapped_body_keeps_children_with_their_parents() {
    for seed in 1..=seeds() {
        let x = generate(seed);
        let body_start = x.find("<sequence>\n").unwrap() + "<sequence>\n".len();
        let body_end = x.rfind("</sequence>").unwrap();
        let y = format!(
            "{}  <scope name='Wrapper'>\n{}  <faulthandlers><catchall name='WrapperAll'><trace value='\"x\"'/></catchall></faulthandlers>\n  </scope>\n{}",
            &x[..body_start],
            &x[body_start..body_end],
            &x[body_end..]
        );
        let (p, oc) = planned(&x, &y);
        check_invariants(&p.plan, &p.diff, &oc);
        let (o, n) = (parse(&x, "old.xml"), parse(&y, "new.xml"));
        let m: BTreeMap<u32, u32> = p
            .diff
            .activities
            .iter()
            .filter_map(|a| Some((a.old.as_ref()?.id.0, a.new.as_ref()?.id.0)))
            .collect();
        let parent = |b: &Bpl, id: u32| {
            b.process
                .flat
                .iter()
                .find(|f| f.id.0 == id)
                .and_then(|f| f.parent)
                .map(|x| x.0)
        };
        let scope = n
            .process
            .flat
            .iter()
            .find(|f| f.parent.map(|x| x.0) == Some(0))
            .map(|f| f.id.0);
        for (&a, &b) in &m {
            let Some(pa) = parent(&o, a) else { continue };
            let want = if pa == 0 { scope } else { m.get(&pa).copied() };
            if let Some(want) = want {
                assert_eq!(
                    parent(&n, b),
                    Some(want),
                    "seed {seed}: old {a} (parent {pa}) → new {b}\n{x}"
                );
            }
        }
        let main = &p.plan.threads[0];
        assert!(
            main.states.iter().all(|s| s.new.is_some()),
            "seed {seed}: a state was lost by wrapping\n{y}"
        );
    }
}

/// Skips only on reachable paths: an activity inserted at the start of an `<if>`'s `<false>`
/// branch is never "skipped" by instances resting inside its `<true>` branch, and instances
/// resting after the `<if>` are told they *may* skip it (they may have taken either branch).
#[test]
fn property_skips_only_on_paths_that_reach_the_resume_point() {
    let mut checked = 0;
    for seed in 1..=seeds() {
        let x = generate(seed);
        let lines: Vec<&str> = x.lines().collect();
        let Some(k) = lines.iter().position(|l| l.trim() == "<false>") else {
            continue;
        };
        let ind = &lines[k][..lines[k].len() - lines[k].trim_start().len()];
        let Some(if_line) = (0..k).rev().find(|&i| {
            lines[i].trim_start().starts_with("<if ")
                && lines[i].len() - lines[i].trim_start().len() + 2 == ind.len()
        }) else {
            continue;
        };
        let mut y = lines[..=k].join("\n");
        y.push_str(&format!(
            "\n{ind}  <delay name='Ins' duration='\"PT99S\"'/>\n"
        ));
        y.push_str(&lines[k + 1..].join("\n"));
        y.push('\n');
        let (p, oc) = planned(&x, &y);
        check_invariants(&p.plan, &p.diff, &oc);
        let old = parse(&x, "old.xml");
        let flat = &old.process.flat;
        let Some(if_id) = flat.iter().map(|f| f.id).find(|&id| {
            let a = activity_by_id(&old, id.0);
            a.is_some_and(|a| a.element == "if" && a.pos.line as usize == if_line + 1)
        }) else {
            continue;
        };
        // Old activities inside the <true> branch (any depth).
        let in_true = |mut id: u32| loop {
            let Some(f) = flat.iter().find(|f| f.id.0 == id) else {
                return false;
            };
            match f.parent {
                Some(par) if par == if_id => return f.slot == "true",
                Some(par) => id = par.0,
                None => return false,
            }
        };
        let owner = |r: &str| -> Option<u32> {
            let (thread, state) = r.split_once(':')?;
            let t = p
                .plan
                .threads
                .iter()
                .find(|t| t.old_class.rsplit('.').next() == Some(thread))?;
            Some(t.states.iter().find(|s| s.old == state)?.old_activity.id.0)
        };
        for f in p
            .plan
            .findings
            .iter()
            .filter(|f| f.code == Code::SkippedActivities)
        {
            if !f
                .new_activities
                .iter()
                .any(|a| a.name.as_deref() == Some("Ins"))
            {
                continue;
            }
            for r in f.states.iter().filter(|s| !s.starts_with("new:")) {
                let Some(o) = owner(r) else { continue };
                assert!(
                    !in_true(o),
                    "seed {seed}: {r} rests in the <true> branch but is told it skips Ins: {}\n{y}",
                    f.message
                );
                // Resting outside the <if>: whether it ran the <false> branch depends on data.
                let inside_if = {
                    let mut id = o;
                    loop {
                        match flat.iter().find(|f| f.id.0 == id).and_then(|f| f.parent) {
                            Some(par) if par == if_id => break true,
                            Some(par) => id = par.0,
                            None => break false,
                        }
                    }
                };
                if !inside_if && !f.message.contains("(flow join)") {
                    let may = f.message.split("may skip").nth(1).unwrap_or("");
                    assert!(
                        may.contains("delay \"Ins\""),
                        "seed {seed}: {r} rests after the <if> but is told it will skip Ins: {}\n{y}",
                        f.message
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(
        checked > 0 || seeds() < 50,
        "no case exercised the property"
    );
}

fn activity_by_id(b: &Bpl, id: u32) -> Option<&bplmigrate::bpl::Activity> {
    fn walk(a: &bplmigrate::bpl::Activity, id: u32) -> Option<&bplmigrate::bpl::Activity> {
        if a.id.0 == id {
            return Some(a);
        }
        a.child_slots()
            .into_iter()
            .flat_map(|(_, l)| l.iter())
            .find_map(|c| walk(c, id))
    }
    walk(&b.process.sequence, id)
}

/// Every catalogue code is produced by at least one fixture: the change fixtures, the change
/// fixture `insert_middle` planned with a tiny matcher limit (BPM0303), `check` over a git
/// repository where a class file was deleted (BPM0406), and two bare documents (BPM0407). A code no fixture produces is either
/// dead or untested; add the fixture that produces it.
#[test]
fn every_finding_code_is_produced_by_a_fixture() {
    use std::collections::BTreeSet;
    let mut seen: BTreeSet<Code> = BTreeSet::new();
    for dir in cases() {
        let (planned, ..) = plan_case(&dir);
        seen.extend(planned.plan.findings.iter().map(|f| f.code));
    }

    let dir = Path::new("fixtures/changes/insert_middle");
    let load =
        |f: &str| bpl::load(&dir.join(f).to_string_lossy(), &LoadOptions::default()).unwrap();
    let (old, new) = (load("old.cls"), load("new.cls"));
    let limits = diff::MatchLimits {
        align_cells: 1,
        ..Default::default()
    };
    let p = planned::build_with_limits(&old, &new, &compile(&old), &compile(&new), None, &limits)
        .unwrap()
        .plan;
    let limit = p.findings.iter().find(|f| f.code == Code::MatcherLimit);
    assert!(
        limit.is_some_and(|f| f.message.starts_with("ALIGN_MAX_CELLS = 1 (")),
        "{:#?}",
        p.findings
    );
    seen.extend(p.findings.iter().map(|f| f.code));

    seen.extend(deleted_class_check_codes());

    // A bare <process> document names no class (BPM0407).
    let bare = |f: &str| bpl::load(f, &LoadOptions::default()).unwrap();
    let (mut old, mut new) = (
        bare("fixtures/states/only_last_top_sequence/process.xml"),
        bare("fixtures/formats/Demo.Loan.Approval.xml"),
    );
    assert_eq!(
        bpl::settle_class_names(&mut old, &mut new).as_deref(),
        Some("Demo.Loan.Approval")
    );
    let p = planned::build(&old, &new, &compile(&old), &compile(&new), None)
        .unwrap()
        .plan;
    assert!(
        p.findings.iter().all(|f| f.code != Code::ClassChanged),
        "{:#?}",
        p.findings
    );
    seen.extend(p.findings.iter().map(|f| f.code));

    let missing: Vec<String> = Code::ALL
        .iter()
        .filter(|c| !seen.contains(c))
        .map(|c| format!("{c} {}", c.name()))
        .collect();
    assert!(missing.is_empty(), "no fixture produces {missing:?}");
}

/// The codes only `bplmigrate check --git-base HEAD --format json` reports, in a throwaway
/// repository with copies of `append_end/old.cls`: a committed class file deleted (BPM0406),
/// one made malformed (BPM0408), one whose malformed old version is fixed (BPM0409).
fn deleted_class_check_codes() -> Vec<Code> {
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let o = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(repo.path())
            .output()
            .expect("git");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    git(&["init", "-q"]);
    std::fs::copy(
        "fixtures/changes/append_end/old.cls",
        repo.path().join("Loan.cls"),
    )
    .unwrap();
    let text = std::fs::read_to_string("fixtures/changes/append_end/old.cls").unwrap();
    let class = |name: &str| text.replace("Demo.Change.Loan", name);
    let broken = |name: &str| class(name).replace("</sequence>", "</sequenc>");
    std::fs::write(repo.path().join("Broken.cls"), class("Demo.Broken")).unwrap();
    std::fs::write(repo.path().join("Fixed.cls"), broken("Demo.Fixed")).unwrap();
    git(&["add", "Loan.cls", "Broken.cls", "Fixed.cls"]);
    git(&["commit", "-qm", "base"]);
    git(&["rm", "-q", "Loan.cls"]);
    std::fs::write(repo.path().join("Broken.cls"), broken("Demo.Broken")).unwrap();
    std::fs::write(repo.path().join("Fixed.cls"), class("Demo.Fixed") + "\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
        .args(["check", "--git-base", "HEAD", "--format", "json"])
        .current_dir(repo.path())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    let codes: Vec<Code> = v["results"]
        .as_array()
        .expect("results")
        .iter()
        .flat_map(|r| r["findings"].as_array().cloned().unwrap_or_default())
        .map(|f| serde_json::from_value(f["code"].clone()).unwrap())
        .collect();
    for c in [
        Code::ClassRemoved,
        Code::ClassNotChecked,
        Code::OldVersionUnreadable,
    ] {
        assert!(codes.contains(&c), "{c}: {v:#}");
    }
    codes
}

/// Review 7, item 4: an entry naming a removed handler is read again only by a call sent under
/// its key without a handler of its own; the plan forbids exactly the rows that can still
/// send one (a `@` key may be any key), and nothing when every such send has a handler.
#[test]
fn stale_handler_entries_forbid_only_rows_that_can_still_send_without_a_handler() {
    let call = |name: &str, handler: bool| {
        let response = if handler {
            "<response type='Ens.Response'><assign property='context.a' value='1'/></response>"
        } else {
            ""
        };
        format!("<call name='{name}' target='Op' async='0'><request type='Ens.Request'/>{response}</call>")
    };
    let doc = |body: String| {
        format!("<process request='Ens.Request' response='Ens.Response'>\n<sequence>\n{body}</sequence>\n</process>\n")
    };
    let delay = "<delay name='D' duration='\"PT1M\"'/>";
    let old = doc(format!("{}{delay}{}", call("A", true), call("B", true)));
    let forbidden = |new: String| -> Vec<String> {
        let (p, _) = planned(&old, &new);
        p.plan
            .preconditions
            .iter()
            .filter_map(|c| match c {
                plan::Precondition::NoRowsAtState { state, reason, .. }
                    if reason.contains("without a response handler") =>
                {
                    Some(state.clone())
                }
                _ => None,
            })
            .collect()
    };
    // A kept without its handler: only S1 sends it, and a row resting there has not run it
    // yet, so its context holds no entry (spec 5.2: the call-site state writes it); rows past
    // it never send it again. Nothing is forbidden.
    assert!(forbidden(doc(format!(
        "{}{delay}{}",
        call("A", false),
        call("B", true)
    )))
    .is_empty());
    // A removed; a call with a runtime key and no handler after the delay may use key "A":
    // every row before it that ran A is forbidden (the delay's S4/S5, new S2/S3, whose S3
    // sends it; not S1, which has not sent A yet); A's own S2/S3 are removed (drained
    // anyway), B's S6/S7 are past it.
    assert_eq!(
        forbidden(doc(format!(
            "{delay}{}{}",
            call("@context.k", false),
            call("B", true)
        ))),
        ["S4", "S5"]
    );
    // The same with a handler: it registers it when sent, so the stale entry is never read.
    assert!(forbidden(doc(format!(
        "{delay}{}{}",
        call("@context.k", true),
        call("B", true)
    )))
    .is_empty());
    // A removed and nothing sent under its key: nothing forbidden (review 7, r27).
    assert!(forbidden(doc(format!("{delay}{}", call("B", true)))).is_empty());
    // A renamed A2 (its handler keeps OnResponse1); a new call under the old name "A" without
    // a handler would read the entry "A" → OnResponse1, now A2's handler: every row that can
    // still reach it, and that sent A2 already (not S1), is forbidden. Without that call
    // nothing is.
    let other = "<call name='A' target='Other' async='0'><request type='Ens.Request'/></call>";
    let renamed = |extra: &str| {
        doc(format!(
            "{}{delay}{extra}{}",
            call("A2", true),
            call("B", true)
        ))
    };
    assert_eq!(forbidden(renamed(other)), ["S2", "S3", "S4", "S5"]);
    assert!(forbidden(renamed("")).is_empty());
}

/// Review 7, item 9b: BPM0304 says that what follows a toggled activity is renumbered only
/// when the plan renumbers it. A flow branch whose call (with a handler) is disabled renumbers
/// the later handlers — unless a disabled call with a handler after the flow is enabled at
/// the same time, which makes up for it.
#[test]
fn toggle_findings_say_renumbered_only_when_it_is() {
    let h = "<response type='Ens.Response'><assign property='context.a' value='1'/></response>";
    let doc = |branch: &str, c: &str| {
        format!(
            "<process request='Ens.Request' response='Ens.Response'>\n<sequence>\n\
             <flow name='F'><sequence name='L' {branch}><call name='X' target='Op' async='0'><request type='Ens.Request'/>{h}</call></sequence>\
             <sequence name='R'><delay name='D' duration='\"PT1M\"'/></sequence></flow>\n\
             <call name='C' target='Op' async='0' {c}><request type='Ens.Request'/>{h}</call>\n\
             <call name='B' target='Op' async='0'><request type='Ens.Request'/>{h}</call>\n\
             </sequence>\n</process>\n"
        )
    };
    let old = doc("", "disabled='true'");
    let toggle = |new: &str, about: &str| -> String {
        let (p, _) = planned(&old, new);
        p.plan
            .findings
            .iter()
            .find(|f| f.code == Code::DisabledToggled && f.message.contains(about))
            .unwrap_or_else(|| panic!("no BPM0304 about {about}: {:?}", p.plan.findings))
            .message
            .clone()
    };
    let alone = toggle(&doc("disabled='true'", "disabled='true'"), "sequence \"L\"");
    assert!(
        alone.ends_with("the response handlers of the calls inside it go, so later response handlers are renumbered"),
        "{alone}"
    );
    let both = doc("disabled='true'", "");
    let l = toggle(&both, "sequence \"L\"");
    assert!(
        l.ends_with("yet no later response handler is renumbered: other changes at the same time make up for it"),
        "{l}"
    );
    // C's own states renumber B's, B's handler keeps its number.
    let c = toggle(&both, "call \"C\"");
    assert!(
        c.ends_with("so what is generated after it is renumbered, except where other changes make up for it (1 of 3 keeps its number)"),
        "{c}"
    );
}

/// Review 7, item 9a: a `<sync>` whose only change is its timeout is "modified" in the state
/// table, human and JSON, like a delay's duration; the timeout is no matching key.
#[test]
fn a_changed_sync_timeout_shows_as_modified() {
    let (planned, ..) = plan_case(Path::new("fixtures/changes/sync_timeout_changed"));
    let t = &planned.plan.threads[0];
    for s in ["S2", "S3"] {
        let m = t.states.iter().find(|x| x.old == s).unwrap();
        assert!(m.new.is_some_and(|n| n == s), "{s}: {:?}", m.new);
        assert_eq!(
            m.modified.as_deref(),
            Some("timeout \"600\" → \"1800\""),
            "{s}"
        );
    }
    let json = serde_json::to_value(&planned.plan).unwrap();
    assert_eq!(
        json["threads"][0]["states"][1]["modified"],
        "timeout \"600\" → \"1800\""
    );
    assert!(t
        .states
        .iter()
        .filter(|x| x.old != "S2" && x.old != "S3")
        .all(|x| x.modified.is_none()));
}

/// Review 7, item 3: a handler run by two `<compensate>`s. The plan carries the second
/// `%SubroutineStack` value rows in it can hold, mapped element-wise (S14 → S16) beside the
/// first (S12 → S14), in JSON (round trip) and the table; states without one carry nothing. An
/// edited plan whose image is not the element-wise one is refused by the SQL stage.
#[test]
fn every_subroutine_stack_alternative_is_mapped_element_wise() {
    let (planned, ..) = plan_case(Path::new("fixtures/changes/compensated_twice_renumbered"));
    let p = &planned.plan;
    let t = &p.threads[0];
    for s in &t.states {
        let others: Vec<(String, Option<String>)> = s
            .other_subroutine_stacks
            .iter()
            .map(|a| (a.old.join(","), a.new.as_ref().map(|n| n.join(","))))
            .collect();
        let inside = ["S4", "S5", "S6"].iter().any(|x| s.old == *x);
        if inside {
            assert_eq!(s.old_subroutine_stack.join(","), "S12", "{}", s.old);
            assert_eq!(s.new_subroutine_stack.join(","), "S14", "{}", s.old);
            assert_eq!(
                others,
                [("S14".to_string(), Some("S16".to_string()))],
                "{}",
                s.old
            );
        } else {
            assert!(others.is_empty(), "{}: {others:?}", s.old);
        }
    }
    let json = serde_json::to_string(p).unwrap();
    assert_eq!(
        json.matches(r#""other_subroutine_stacks":[{"old":["S14"],"new":["S16"]}]"#)
            .count(),
        3,
        "{json}"
    );
    let back: MigrationPlan = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, p);
    let human = plan_human(p, RenderOptions { header: false });
    assert!(
        human.contains("wait sstack [S12]→[S14] or [S14]→[S16]"),
        "{human}"
    );
    let script = bplmigrate::sql::render(p, bplmigrate::sql::Dialect::Postgres).unwrap();
    let text = script.to_sql_text();
    assert!(
        text.contains("WHEN bplm_listbuild('S14') THEN bplm_listbuild('S16')")
            && text.contains("NOT IN (bplm_listbuild('S12'), bplm_listbuild('S14'))"),
        "{text}"
    );

    let mut edited = p.clone();
    edited.threads[0].states[4].other_subroutine_stacks[0].new =
        Some(vec![states::StateName::s(15)].into());
    let e = bplmigrate::sql::render(&edited, bplmigrate::sql::Dialect::Postgres).unwrap_err();
    assert!(
        e.to_string()
            .contains("%SubroutineStack [S14] becomes [S15] in the plan, but its entries mapped through the state map give [S16]"),
        "{e}"
    );

    // The common case: no state of a plan without such a handler carries the field.
    let (plain, ..) = plan_case(Path::new("fixtures/changes/insert_middle"));
    assert!(plain
        .plan
        .threads
        .iter()
        .flat_map(|t| &t.states)
        .all(|s| s.other_subroutine_stacks.is_empty()));
    assert!(!serde_json::to_string(&plain.plan)
        .unwrap()
        .contains("other_subroutine_stacks"));
}

/// Review 10, D4/D8: "blocked for good" comes from the findings and the classes, not the
/// stored verdict, and its remedy is the one that can work: overrides for an ambiguous match,
/// none for a changed class (every path words it the same, `plan::blocked_remedy`).
#[test]
fn blocked_for_good_ignores_the_stored_verdict_and_names_a_remedy_that_works() {
    for (case, overrides) in [("ambiguous_twin_delay", true), ("class_changed", false)] {
        let (planned, ..) = plan_case(Path::new("fixtures/changes").join(case).as_path());
        let mut p = planned.plan;
        let why = p.blocked_for_good();
        assert!(!why.is_empty(), "{case}");
        p.verdict = Verdict::Migratable;
        assert_eq!(p.blocked_for_good(), why, "{case}: the verdict edited");
        let remedy = plan::blocked_remedy(&why);
        assert_eq!(
            remedy.contains("with overrides"),
            overrides,
            "{case}: {remedy}"
        );
    }
    // Not blocked: no finding that draining cannot resolve, whatever the verdict says.
    let (planned, ..) = plan_case(Path::new("fixtures/changes/removed_wait_state"));
    let mut p = planned.plan;
    assert!(p.blocked_for_good().is_empty());
    p.verdict = Verdict::Migratable;
    assert!(p.blocked_for_good().is_empty());
}
