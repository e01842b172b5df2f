//! Matcher and state-mapping behaviour, one test per behaviour.

use super::*;
use crate::bpl::parse_bare;
use crate::states::{compile, Compiler};

fn doc(body: &str) -> String {
    format!("<process request='Ens.Request' response='Ens.Response'><sequence>{body}</sequence></process>")
}

fn run(old: &str, new: &str, pins: &[Pin]) -> ProcessDiff {
    run_with(old, new, pins, &MatchLimits::default())
}

fn run_with(old: &str, new: &str, pins: &[Pin], limits: &MatchLimits) -> ProcessDiff {
    let (o, n) = (
        parse_bare("old.xml", &doc(old), "Demo.T").unwrap(),
        parse_bare("new.xml", &doc(new), "Demo.T").unwrap(),
    );
    let (oc, nc) = (
        compile(&o, Compiler::Current).unwrap(),
        compile(&n, Compiler::Current).unwrap(),
    );
    diff_with_limits(&o, &n, &oc, &nc, pins, limits).unwrap()
}

fn change_of<'d>(d: &'d ProcessDiff, label: &str) -> &'d ActivityChange {
    d.activities
        .iter()
        .find(|a| {
            a.old.as_ref().map(|r| r.label()) == Some(label.to_string())
                || (a.old.is_none() && a.new.as_ref().map(|r| r.label()) == Some(label.to_string()))
        })
        .unwrap_or_else(|| panic!("no activity {label}"))
}

/// old state → new state of Thread1.
fn states(d: &ProcessDiff) -> Vec<(Option<String>, Option<String>)> {
    d.threads[0]
        .states
        .iter()
        .map(|s| (s.old.map(|n| n.to_string()), s.new.map(|n| n.to_string())))
        .collect()
}

const CALL_A: &str = "<call name='A' target='OpA' async='0'><request type='Ens.Request'/></call>";
const CALL_B: &str = "<call name='B' target='OpB' async='0'><request type='Ens.Request'/></call>";

#[test]
fn identical_trees_match_exactly() {
    let body = format!("{CALL_A}<delay duration='\"PT1M\"'/>{CALL_B}");
    let d = run(&body, &body, &[]);
    assert!(d.identical);
    assert!(d.issues.is_empty());
    assert!(d
        .activities
        .iter()
        .all(|a| a.change == ActivityChangeKind::Unchanged));
}

#[test]
fn moves_between_branches_are_recognised() {
    let old = format!("<if condition='1'><true>{CALL_A}</true><false>{CALL_B}</false></if>");
    let new = format!("<if condition='1'><true>{CALL_B}</true><false>{CALL_A}</false></if>");
    let d = run(&old, &new, &[]);
    assert_eq!(change_of(&d, "call \"A\"").aspects, vec![Aspect::Moved]);
    assert_eq!(change_of(&d, "call \"B\"").aspects, vec![Aspect::Moved]);
    // if: S2 post, S3 true, S4 W(A) S5 C(A), S6 false, S7 W(B), S8 C(B). A and B swapped
    // places, but rows at them chose their branch: not mapped into the other one (removed,
    // the note says why).
    let s = states(&d);
    for old in ["S4", "S5", "S7", "S8"] {
        assert!(s.contains(&(Some(old.into()), None)), "{old}: {s:?}");
    }
    let note = d.threads[0]
        .states
        .iter()
        .find(|x| x.old == Some(crate::states::StateName::s(4)))
        .and_then(|x| x.note.clone())
        .unwrap_or_default();
    assert!(
        note.contains("moved from <true> to <false> of if@1:"),
        "{note}"
    );
    // The branches themselves and what stayed in place keep their states.
    assert!(s.contains(&(Some("S3".into()), Some("S3".into()))), "{s:?}");
    assert!(s.contains(&(Some("S6".into()), Some("S6".into()))), "{s:?}");
}

#[test]
fn a_pinned_move_between_branches_is_mapped() {
    let old_xml = doc(&format!(
        "<if condition='1'><true>{CALL_A}</true><false>{CALL_B}</false></if>"
    ));
    let new_xml = doc(&format!(
        "<if condition='1'><true>{CALL_B}</true><false>{CALL_A}</false></if>"
    ));
    let (o, n) = (
        parse_bare("old.xml", &old_xml, "Demo.T").unwrap(),
        parse_bare("new.xml", &new_xml, "Demo.T").unwrap(),
    );
    let (oc, nc) = (
        compile(&o, Compiler::Current).unwrap(),
        compile(&n, Compiler::Current).unwrap(),
    );
    let (to, tn) = (Tree::new(&o), Tree::new(&n));
    let call = |t: &Tree, name: &str| {
        (0..t.len())
            .find(|&p| t.nodes[p].name.as_deref() == Some(name))
            .unwrap()
    };
    let pin = Pin {
        old: to.id(call(&to, "A")),
        new: Some(tn.id(call(&tn, "A"))),
        line: None,
    };
    let d = diff(&o, &n, &oc, &nc, &[pin]).unwrap();
    let s = states(&d);
    // The pinned A maps (the engineer said so); the unpinned B does not.
    assert!(s.contains(&(Some("S4".into()), Some("S7".into()))), "{s:?}");
    assert!(s.contains(&(Some("S7".into()), None)), "{s:?}");
}

#[test]
fn a_catch_widened_to_the_catchall_keeps_its_rows() {
    let scope = |handlers: &str| {
        format!("<scope name='S'>{CALL_A}<faulthandlers>{handlers}</faulthandlers></scope>{CALL_B}")
    };
    let body = "<delay name='Cool' duration='\"PT1M\"'/>";
    let catch = |f: &str| format!("<catch fault='\"{f}\"'>{body}</catch>");
    let all = format!("<catchall>{body}</catchall>");
    let delay_state = |d: &ProcessDiff| {
        d.threads[0]
            .states
            .iter()
            .find(|x| {
                x.old_activity.as_ref().and_then(|a| a.name.as_deref()) == Some("Cool") && x.wait
            })
            .map(|x| x.new)
            .unwrap()
    };
    // Its only catch widened: the Timeout rows are in the handler the fault now reaches.
    let d = run(&scope(&catch("Timeout")), &scope(&all), &[]);
    let widened = |d: &ProcessDiff| -> Vec<String> {
        d.activities
            .iter()
            .filter(|a| a.via == Some(MatchVia::Widened))
            .filter_map(|a| a.old.as_ref().map(|r| r.element.to_string()))
            .collect()
    };
    assert_eq!(widened(&d), ["catch"]);
    assert!(delay_state(&d).is_some(), "{:?}", states(&d));
    // A catch of Timeout stays (another body): Timeout does not reach the catchall, so the
    // rows at Cool have no counterpart; the Auth catch, whose fault no catch takes any
    // more, is the one widened.
    let (t, a) = ("<trace value='\"t\"'/>", "<trace value='\"a\"'/>");
    let d = run(
        &scope(&format!(
            "{}<catch fault='\"Auth\"'>{a}</catch>",
            catch("Timeout")
        )),
        &scope(&format!("<catch fault='\"Timeout\"'>{t}</catch>{all}")),
        &[],
    );
    assert_eq!(widened(&d), ["catch"]);
    assert_eq!(delay_state(&d), None, "{:?}", states(&d));
    // A catchall narrowed to a catch: rows in it may have come from any fault.
    let d = run(&scope(&all), &scope(&catch("Timeout")), &[]);
    assert!(delay_state(&d).is_none(), "{:?}", states(&d));
}

#[test]
fn reorders_are_recognised() {
    let d = run(
        &format!("{CALL_A}{CALL_B}"),
        &format!("{CALL_B}{CALL_A}"),
        &[],
    );
    let reordered = d
        .activities
        .iter()
        .filter(|a| a.aspects.contains(&Aspect::Reordered))
        .count();
    assert_eq!(reordered, 1, "one of the two moved relative to the other");
}

#[test]
fn renamed_container_is_matched_by_its_children() {
    let old = format!(
        "<scope name='Try'>{CALL_A}{CALL_B}<faulthandlers><catchall/></faulthandlers></scope>"
    );
    let new = format!("<assign property='context.x' value='1'/><scope name='Guard'>{CALL_A}{CALL_B}<faulthandlers><catchall/></faulthandlers></scope>");
    let d = run(&old, &new, &[]);
    let c = change_of(&d, "scope \"Try\"");
    assert_eq!(c.new.as_ref().unwrap().name.as_deref(), Some("Guard"));
    assert!(c.aspects.contains(&Aspect::Renamed));
}

#[test]
fn duplicate_candidates_are_reported_not_guessed_silently() {
    let old = format!("<delay duration='\"PT1M\"'/>{CALL_A}");
    let new = format!("<delay duration='\"PT1M\"'/><delay duration='\"PT1M\"'/>{CALL_A}");
    let d = run(&old, &new, &[]);
    assert!(
        d.issues
            .iter()
            .any(|i| matches!(i, MatchIssue::Ambiguous { new, .. } if new.len() == 2)),
        "{:?}",
        d.issues
    );
}

#[test]
fn a_pin_settles_an_ambiguity() {
    let old_xml = doc(&format!("<delay duration='\"PT1M\"'/>{CALL_A}"));
    let new_xml = doc(&format!(
        "<delay duration='\"PT1M\"'/><delay duration='\"PT1M\"'/>{CALL_A}"
    ));
    let (o, n) = (
        parse_bare("old.xml", &old_xml, "Demo.T").unwrap(),
        parse_bare("new.xml", &new_xml, "Demo.T").unwrap(),
    );
    let (oc, nc) = (
        compile(&o, Compiler::Current).unwrap(),
        compile(&n, Compiler::Current).unwrap(),
    );
    let second = Tree::new(&n)
        .select(&format!(
            "delay@1:{}",
            new_xml.find("<delay").unwrap() + 1 + "<delay duration='\"PT1M\"'/>".len()
        ))
        .unwrap();
    let pin = Pin {
        old: ActivityId(1),
        new: Some(Tree::new(&n).id(second)),
        line: None,
    };
    let d = diff(&o, &n, &oc, &nc, &[pin]).unwrap();
    assert!(
        d.issues
            .iter()
            .all(|i| !matches!(i, MatchIssue::Ambiguous { .. })),
        "{:?}",
        d.issues
    );
    assert_eq!(
        change_of(
            &d,
            &format!("delay@1:{}", old_xml.find("<delay").unwrap() + 1)
        )
        .via,
        Some(MatchVia::Pinned)
    );
    // Old delay wait S2 → the second new delay's wait S4.
    assert_eq!(states(&d)[1], (Some("S2".into()), Some("S4".into())));
}

#[test]
fn catch_states_follow_the_matched_catch_not_the_index() {
    let scope = |catches: &str| {
        format!(
            "<scope name='S'>{CALL_A}<faulthandlers>{catches}<catchall/></faulthandlers></scope>"
        )
    };
    let x = "<catch fault='\"X\"'><trace value='\"x\"'/></catch>";
    let y = "<catch fault='\"Y\"'><trace value='\"y\"'/></catch>";
    let d = run(&scope(y), &scope(&format!("{x}{y}")), &[]);
    let catch_y = d.threads[0]
        .states
        .iter()
        .find(|s| s.role == crate::states::Role::Catch(1) && s.old.is_some())
        .unwrap();
    assert_eq!(
        catch_y.new_role,
        Some(crate::states::Role::Catch(2)),
        "{catch_y:?}"
    );
    assert!(catch_y.new.is_some());
}

#[test]
fn switch_cases_follow_the_matched_case() {
    let sw = |cases: &str| format!("<switch name='W'>{cases}</switch>");
    let c1 = format!("<case condition='context.k=1'>{CALL_A}</case>");
    let c2 = format!("<case condition='context.k=2'>{CALL_B}</case>");
    let d = run(&sw(&c2), &sw(&format!("{c1}{c2}")), &[]);
    assert_eq!(d.cases.len(), 1);
    assert_eq!((d.cases[0].old_case, d.cases[0].new_case), (1, 2));
    let case = d.threads[0]
        .states
        .iter()
        .find(|s| s.role == crate::states::Role::SwitchCase(1) && s.old.is_some())
        .unwrap();
    assert_eq!(case.new_role, Some(crate::states::Role::SwitchCase(2)));
}

#[test]
fn a_state_whose_owner_moved_to_another_thread_is_removed_with_a_note() {
    let old = format!("{CALL_A}<flow><sequence name='L'>{CALL_B}</sequence></flow>");
    let new = format!("<flow><sequence name='L'>{CALL_B}{CALL_A}</sequence></flow>");
    let d = run(&old, &new, &[]);
    let w = &d.threads[0].states[1];
    assert_eq!(w.old.map(|n| n.to_string()).as_deref(), Some("S2"));
    assert_eq!(w.new, None);
    assert!(w.note.as_deref().unwrap_or("").contains("Thread2"), "{w:?}");
}

#[test]
fn flow_children_follow_their_sequences() {
    let old = "<flow><sequence name='L'><delay duration='\"PT1S\"'/></sequence><sequence name='R'><delay duration='\"PT2S\"'/></sequence></flow>";
    let new = "<flow><sequence name='R'><delay duration='\"PT2S\"'/></sequence><sequence name='L'><delay duration='\"PT1S\"'/></sequence></flow>";
    let d = run(old, new, &[]);
    let t: Vec<(Option<u32>, Option<u32>)> = d.threads.iter().map(|t| (t.old, t.new)).collect();
    assert_eq!(
        t,
        vec![(Some(1), Some(1)), (Some(2), Some(3)), (Some(3), Some(2))]
    );
}

#[test]
fn handlers_follow_their_calls() {
    let resp = |n: &str| {
        format!("<call name='{n}' target='Op{n}' async='1'><request type='Ens.Request'/><response type='Ens.Response'><trace value='\"{n}\"'/></response></call>")
    };
    let d = run(
        &format!("{}{}", resp("A"), resp("B")),
        &format!("{}{}{}", resp("Z"), resp("A"), resp("B")),
        &[],
    );
    let h: Vec<(Option<&str>, Option<&str>)> = d
        .handlers
        .iter()
        .map(|h| (h.old.as_deref(), h.new.as_deref()))
        .collect();
    assert_eq!(
        h,
        vec![
            (Some("OnResponse1"), Some("OnResponse2")),
            (Some("OnResponse2"), Some("OnResponse3")),
            (None, Some("OnResponse1"))
        ]
    );
}

#[test]
fn the_alignment_limit_falls_back_and_says_so() {
    let n = 1001;
    let many = |k: usize| "<assign property='context.a' value='1'/>".repeat(k);
    let d = run(&many(n), &many(n + 1), &[]);
    assert!(
        d.issues
            .iter()
            .any(|i| matches!(i, MatchIssue::LimitHit { .. })),
        "{:?}",
        d.issues.len()
    );
    let matched = d
        .activities
        .iter()
        .filter(|a| a.old.is_some() && a.new.is_some())
        .count();
    assert_eq!(matched, n + 1, "root plus every old assign");
}

#[test]
fn positional_guess_is_reported() {
    let old = format!("{CALL_A}<delay name='D' duration='\"PT1M\"'/>{CALL_B}");
    let new = format!("{CALL_A}<delay name='E' duration='\"PT5M\"'/>{CALL_B}");
    let d = run(&old, &new, &[]);
    assert!(
        d.issues
            .iter()
            .any(|i| matches!(i, MatchIssue::Positional { .. })),
        "{:?}",
        d.issues
    );
    assert_eq!(states(&d)[3], (Some("S4".into()), Some("S4".into())));
}

#[test]
fn a_call_with_new_name_and_target_is_another_call() {
    let old = format!("{CALL_A}<call name='X' target='OpX' async='0'><request type='Ens.Request'/></call>{CALL_B}");
    let new = format!("{CALL_A}<call name='Y' target='OpY' async='0'><request type='Ens.Request'/></call>{CALL_B}");
    let d = run(&old, &new, &[]);
    assert_eq!(
        change_of(&d, "call \"X\"").change,
        ActivityChangeKind::Removed
    );
}

#[test]
fn compensation_handler_states_follow_a_renamed_handler() {
    let scope = |h: &str| {
        format!(
            "<scope name='SC'>{CALL_A}<compensationhandlers><compensationhandler name='{h}'>{CALL_B}</compensationhandler></compensationhandlers>\
             <faulthandlers><catch fault='\"F\"'><compensate target='{h}'/></catch><catchall/></faulthandlers></scope>"
        )
    };
    let d = run(&scope("Undo"), &scope("Revert"), &[]);
    let h = d.threads[0]
        .states
        .iter()
        .find(|s| s.role == crate::states::Role::CompHandler("Undo".into()))
        .unwrap();
    assert_eq!(
        h.new_role,
        Some(crate::states::Role::CompHandler("Revert".into())),
        "{h:?}"
    );
    assert_eq!(h.new, h.old);
    assert!(
        d.threads[0].states.iter().all(|s| s.new == s.old),
        "{:?}",
        states(&d)
    );
}

/// The limits hit by a diff, in order.
fn limits_hit(d: &ProcessDiff) -> Vec<Limit> {
    d.issues
        .iter()
        .filter_map(|i| match i {
            MatchIssue::LimitHit {
                limit, fallback, ..
            } => {
                assert_eq!(fallback, limit.fallback());
                Some(*limit)
            }
            _ => None,
        })
        .collect()
}

fn tiny(f: impl FnOnce(&mut MatchLimits)) -> MatchLimits {
    let mut l = MatchLimits::default();
    f(&mut l);
    l
}

#[test]
fn a_tiny_alignment_limit_pairs_equal_keys_in_order_and_says_so() {
    let body = format!("{CALL_A}<delay duration='\"PT1M\"'/>{CALL_B}");
    let new = format!("{CALL_A}<delay duration='\"PT2M\"'/>{CALL_B}");
    assert!(limits_hit(&run(&body, &new, &[])).is_empty());
    let d = run_with(&body, &new, &[], &tiny(|l| l.align_cells = 1));
    assert_eq!(
        limits_hit(&d),
        [Limit::AlignCells {
            max: 1,
            old: 3,
            new: 3
        }]
    );
    assert_eq!(
        d.issues
            .iter()
            .find_map(|i| match i {
                MatchIssue::LimitHit { limit, .. } => Some(limit.to_string()),
                _ => None,
            })
            .unwrap(),
        "ALIGN_MAX_CELLS = 1 (3 × 3 siblings)"
    );
    // The calls keep their keys and are still paired; the changed delay is not.
    assert_eq!(
        change_of(&d, "call \"A\"").change,
        ActivityChangeKind::Unchanged
    );
    assert_eq!(
        change_of(&d, "call \"B\"").change,
        ActivityChangeKind::Unchanged
    );
}

/// A renamed sequence moved to the other branch: only its contents tie the two together.
fn moved_renamed_sequence() -> (String, String) {
    let old = format!(
        "<if condition='1'><true><sequence name='X'>{CALL_A}<delay duration='\"PT1M\"'/></sequence></true><false>{CALL_B}</false></if>"
    );
    let new = format!(
        "<if condition='1'><true>{CALL_B}</true><false><sequence name='Y'>{CALL_A}<delay duration='\"PT1M\"'/></sequence></false></if>"
    );
    (old, new)
}

#[test]
fn a_tiny_move_pair_limit_skips_the_container_comparison_and_says_so() {
    let (old, new) = moved_renamed_sequence();
    assert!(limits_hit(&run(&old, &new, &[])).is_empty());
    let d = run_with(&old, &new, &[], &tiny(|l| l.move_pairs = 0));
    assert!(
        limits_hit(&d)
            .iter()
            .any(|l| matches!(l, Limit::MovePairs { max: 0, .. })),
        "{:?}",
        d.issues
    );
}

#[test]
fn a_move_round_limit_stops_looking_for_moves_and_says_so() {
    // Call A moved to the other branch with a new target: only the move pass pairs it (by name).
    let a2 = CALL_A.replace("OpA", "OpX");
    let old = format!("<if condition='1'><true>{CALL_A}</true><false>{CALL_B}</false></if>");
    let new = format!("<if condition='1'><true>{CALL_B}</true><false>{a2}</false></if>");
    assert!(limits_hit(&run(&old, &new, &[])).is_empty());
    let d = run_with(&old, &new, &[], &tiny(|l| l.move_rounds = 1));
    assert_eq!(limits_hit(&d), [Limit::MoveRounds { max: 1 }]);
}

/// The sorted index of `matched_pairs` finds exactly what a linear `position` scan per activity
/// found (first index of a repeated position included), on lists in and out of order.
#[test]
fn matched_pairs_are_the_linear_scan_pairs() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n) as usize
    };
    for round in 0..300 {
        let size = 1 + round % 40;
        let o2n: Vec<Option<usize>> = (0..size)
            .map(|_| (next(4) != 0).then(|| next(size as u64 + 5)))
            .collect();
        let ol: Vec<usize> = (0..next(size as u64 + 1))
            .map(|_| next(size as u64))
            .collect();
        let mut nl: Vec<usize> = (0..next(size as u64 + 6))
            .map(|_| next(size as u64 + 5))
            .collect();
        if round % 2 == 0 {
            nl.sort();
        }
        let linear: Vec<(usize, usize)> = ol
            .iter()
            .enumerate()
            .filter_map(|(i, &x)| {
                o2n[x]
                    .and_then(|y| nl.iter().position(|&z| z == y))
                    .map(|j| (i, j))
            })
            .collect();
        assert_eq!(
            matched_pairs(&o2n, &ol, &nl),
            linear,
            "{o2n:?} {ol:?} {nl:?}"
        );
    }
}

/// A flat sequence far longer than the alignment limit (6,000 siblings, so the matched pairs
/// of the list come from `matched_pairs`' index in `classify` and `sibling_gaps`): every
/// activity is matched and exactly the one moved to the front is reordered.
#[test]
fn a_long_flat_sequence_is_matched_and_reordered() {
    let n = 6000;
    let calls = |order: &mut dyn Iterator<Item = usize>| {
        order
            .map(|i| format!("<call name='C{i}' target='Op{}' async='0'><request type='Ens.Request'/></call>", i % 7))
            .collect::<String>()
    };
    let old = calls(&mut (0..n));
    let new = calls(&mut std::iter::once(n - 1).chain(0..n - 1));
    let d = run(&old, &new, &[]);
    assert!(d
        .activities
        .iter()
        .all(|a| a.old.is_some() && a.new.is_some()));
    let reordered: Vec<String> = d
        .activities
        .iter()
        .filter(|a| a.aspects.contains(&Aspect::Reordered))
        .map(|a| a.old.as_ref().unwrap().label())
        .collect();
    assert_eq!(reordered, vec![format!("call \"C{}\"", n - 1)]);
}

/// Every state, delta and response handler of one activity shares that activity's name string
/// (one allocation per activity and version, not one per reference).
#[test]
fn activity_refs_share_their_names() {
    let src = "<call name='A' target='X' async='0'><request type='Ens.Request'/><response type='Ens.Response'><assign property='context.x' value='1'/></response></call><delay name='D' duration='\"PT1S\"'/>";
    let o = parse_bare("old.xml", &doc(src), "Demo.T").unwrap();
    let oc = compile(&o, Compiler::Current).unwrap();
    let d = diff(&o, &o, &oc, &oc, &[]).unwrap();
    let ptr = |r: &crate::states::ActivityRef| r.name.as_ref().map(|n| n.as_str().as_ptr());
    let owned_by_a: Vec<_> = oc.threads[0]
        .states
        .iter()
        .filter(|s| s.activity.name.as_deref() == Some("A"))
        .map(|s| ptr(&s.activity))
        .chain(oc.response_handlers.iter().map(|h| ptr(&h.activity)))
        .chain(
            d.threads[0]
                .states
                .iter()
                .filter_map(|s| s.old_activity.as_ref())
                .filter(|r| r.name.as_deref() == Some("A"))
                .map(ptr),
        )
        .collect();
    assert!(owned_by_a.len() >= 4, "{owned_by_a:?}");
    assert!(owned_by_a
        .iter()
        .all(|p| p.is_some() && *p == owned_by_a[0]));
}

/// State of Thread1 whose old name is `old`: its new name.
fn new_of(d: &ProcessDiff, old: &str) -> Option<String> {
    d.threads[0]
        .states
        .iter()
        .find(|s| s.old.is_some_and(|o| o == old))
        .unwrap_or_else(|| panic!("no old state {old}: {:?}", states(d)))
        .new
        .map(String::from)
}

#[test]
fn an_unnamed_case_is_identified_by_its_condition_or_its_content() {
    let sw = |cond: &str, body: &str| {
        format!("<switch name='S'><case condition='context.k=1'>{CALL_A}</case><case condition='{cond}'>{body}</case></switch>")
    };
    let x = "<call name='X' target='OpX' async='0'><request type='Ens.Request'/></call>";
    let y = "<call name='Y' target='OpY' async='0'><request type='Ens.Request'/></call>";
    // S1 entry, S2 post, S3 case 1, S4/S5 A, S6 case 2, S7/S8 its call.
    // Another condition and other content: another case, whatever its place.
    let d = run(&sw("context.k=2", x), &sw("context.k=3", y), &[]);
    assert_eq!(new_of(&d, "S6"), None, "{:?}", states(&d));
    // The condition edited, the same content: the same case.
    let d = run(
        &sw("context.k=2", x),
        &sw("context.k=2||(context.k=4)", x),
        &[],
    );
    assert_eq!(new_of(&d, "S6"), Some("S6".into()), "{:?}", states(&d));
}

#[test]
fn a_loop_or_if_whose_test_changed_is_not_paired_by_place_alone() {
    let x = "<call name='X' target='OpX' async='0'><request type='Ens.Request'/></call>";
    let y = "<call name='Y' target='OpY' async='0'><request type='Ens.Request'/></call>";
    for (old, new) in [
        (
            format!("<while name='W1' condition='context.k&lt;3'>{x}</while>"),
            format!("<while name='W2' condition='context.k&lt;9'>{y}</while>"),
        ),
        (
            format!("<if condition='context.k=1'><true>{x}</true></if>"),
            format!("<if condition='context.k=2'><true>{y}</true></if>"),
        ),
    ] {
        let d = run(
            &format!("{CALL_A}{old}{CALL_B}"),
            &format!("{CALL_A}{new}{CALL_B}"),
            &[],
        );
        // S1 entry, S2/S3 A, then the loop's or if's own states.
        assert_eq!(new_of(&d, "S4"), None, "{old}: {:?}", states(&d));
        assert!(
            !d.issues
                .iter()
                .any(|i| matches!(i, MatchIssue::Positional { .. })),
            "{:?}",
            d.issues
        );
    }
    // The same test under a new name is the same loop.
    let d = run(
        &format!("<while name='W1' condition='context.k&lt;3'>{x}</while>"),
        &format!("<while name='W2' condition='context.k&lt;3'>{y}</while>"),
        &[],
    );
    assert_eq!(new_of(&d, "S2"), Some("S2".into()), "{:?}", states(&d));
}

#[test]
fn a_catch_of_another_fault_is_another_handler() {
    let scope = |fault: &str, body: &str| {
        format!("<scope name='SC'>{CALL_A}<faulthandlers><catch fault='\"{fault}\"'>{body}</catch><catchall/></faulthandlers></scope>{CALL_B}")
    };
    let b2 = "<call name='N' target='Ops' async='0'><request type='Ens.Request'/></call>";
    // The same content under another fault: still another handler.
    let d = run(&scope("Timeout", b2), &scope("Auth", b2), &[]);
    let c = change_of(&d, "call \"N\"");
    assert_eq!(c.change, ActivityChangeKind::Removed, "{c:?}");
    // The same fault, other content: the same handler.
    let d = run(&scope("Timeout", b2), &scope("Timeout", CALL_B), &[]);
    assert!(d.threads[0]
        .states
        .iter()
        .any(|s| matches!(s.role, crate::states::Role::Catch(1)) && s.new.is_some()));
}

#[test]
fn an_attribute_written_with_its_default_compares_equal_to_none() {
    let call = |assign: &str, sync: &str| {
        format!(
            "<call name='A' target='OpA' async='1'><request type='Ens.Request'/><response type='Ens.Response'>{assign}</response></call>{sync}"
        )
    };
    let plain = call(
        "<assign property='context.x' value='1'/>",
        "<sync calls='A'/>",
    );
    let explicit = call(
        "<assign property='context.x' value='1' action='set'/>",
        "<sync calls='A' type='all'/>",
    );
    assert!(run(&plain, &explicit, &[]).identical);
    // Another value than the default is a change.
    let append = call(
        "<assign property='context.x' value='1' action='append'/>",
        "<sync calls='A'/>",
    );
    let any = call(
        "<assign property='context.x' value='1'/>",
        "<sync calls='A' type='any'/>",
    );
    assert!(!run(&plain, &append, &[]).identical);
    assert!(!run(&plain, &any, &[]).identical);
}

/// A scope whose catch (`name`, `fault`) runs `body`, thrown `throw` (if any) in its body.
fn fault_scope(name: &str, fault: &str, body: &str, throw: Option<&str>) -> String {
    let throw = throw
        .map(|f| format!("<if name='Bad?' condition='context.k=1'><true><throw fault='\"{f}\"'/></true></if>"))
        .unwrap_or_default();
    format!("<scope name='SC'>{CALL_A}{throw}<faulthandlers><catch{name} fault='\"{fault}\"'>{body}</catch><catchall/></faulthandlers></scope>{CALL_B}")
}

const CALL_N: &str = "<call name='N' target='Ops' async='0'><request type='Ens.Request'/></call>";

/// Whether the catch's call `N` (and with it CATCH(1)) kept its counterpart.
fn catch_kept(d: &ProcessDiff) -> bool {
    let c = change_of(d, "call \"N\"");
    c.change != ActivityChangeKind::Removed
        && d.threads[0]
            .states
            .iter()
            .any(|s| matches!(s.role, crate::states::Role::Catch(1)) && s.new.is_some())
}

#[test]
fn a_fault_renamed_with_its_throws_keeps_its_catch() {
    let named = " name='OnInvalid'";
    // Named: the name tells it is the same catch (its throws renamed too, or none at all).
    for throws in [(Some("INVALID"), Some("REF.INVALID")), (None, None)] {
        let d = run(
            &fault_scope(named, "INVALID", CALL_N, throws.0),
            &fault_scope(named, "REF.INVALID", CALL_N, throws.1),
            &[],
        );
        assert!(catch_kept(&d), "{throws:?}: {:?}", states(&d));
        let c = d
            .activities
            .iter()
            .find(|a| a.old.as_ref().is_some_and(|r| r.element == "catch"))
            .unwrap();
        assert_eq!(c.via, Some(MatchVia::FaultRenamed));
        assert!(c.aspects.contains(&Aspect::Modified), "{c:?}");
    }
    // Unnamed: the same place and body, and a throw shows the rename.
    let d = run(
        &fault_scope("", "INVALID", CALL_N, Some("INVALID")),
        &fault_scope("", "REF.INVALID", CALL_N, Some("REF.INVALID")),
        &[],
    );
    assert!(catch_kept(&d), "{:?}", states(&d));
}

#[test]
fn a_catch_of_a_fault_not_renamed_whole_is_another_handler() {
    let named = " name='OnInvalid'";
    // The old fault is still thrown: it now reaches the catchall, the catch is another one.
    let d = run(
        &fault_scope(named, "INVALID", CALL_N, Some("INVALID")),
        &fault_scope(named, "REF.INVALID", CALL_N, Some("INVALID")),
        &[],
    );
    assert!(!catch_kept(&d), "{:?}", states(&d));
    // The new fault was thrown under the old version already (it went to the catchall).
    let d = run(
        &fault_scope(named, "INVALID", CALL_N, Some("REF.INVALID")),
        &fault_scope(named, "REF.INVALID", CALL_N, Some("REF.INVALID")),
        &[],
    );
    assert!(!catch_kept(&d), "{:?}", states(&d));
    // Another name: another handler.
    let d = run(
        &fault_scope(named, "INVALID", CALL_N, Some("INVALID")),
        &fault_scope(" name='OnAuth'", "AUTH", CALL_N, Some("AUTH")),
        &[],
    );
    assert!(!catch_kept(&d), "{:?}", states(&d));
    // Unnamed with another body: nothing but the throw tells.
    let d = run(
        &fault_scope("", "INVALID", &format!("{CALL_N}{CALL_B}"), Some("INVALID")),
        &fault_scope("", "REF.INVALID", CALL_N, Some("REF.INVALID")),
        &[],
    );
    assert!(!catch_kept(&d), "{:?}", states(&d));
    // The old fault still caught by another catch of the scope: that one took it over.
    let two = |first: &str, second: &str| {
        format!("<scope name='SC'>{CALL_A}<faulthandlers><catch name='H' fault='\"{first}\"'>{CALL_N}</catch><catch name='K' fault='\"{second}\"'/><catchall/></faulthandlers></scope>")
    };
    let d = run(
        &two("INVALID", "OTHER"),
        &two("REF.INVALID", "INVALID"),
        &[],
    );
    assert!(!catch_kept(&d), "{:?}", states(&d));
}

/// `<if>` whose branches hold `t` and `f`, then `after`.
fn branches(t: &str, f: &str, after: &str) -> String {
    format!("{CALL_A}<if name='Adult?' condition='context.k=1'><true>{t}</true><false>{f}</false></if>{after}<trace value='\"done\"'/>")
}

#[test]
fn identical_branch_tails_hoisted_after_the_if_merge() {
    let x = "<call name='X' target='OpX' async='0'><request type='Ens.Request'/></call>";
    let y = "<call name='Y' target='OpY' async='0'><request type='Ens.Request'/></call>";
    let d = run(
        &branches(&format!("{x}{CALL_N}"), &format!("{y}{CALL_N}"), ""),
        &branches(x, y, CALL_N),
        &[],
    );
    // S1 entry, S2/S3 A, S4 IF_POST, S5 IF_TRUE, S6/S7 X, S8/S9 N, S10 IF_FALSE, S11/S12 Y,
    // S13/S14 N; new: … S8 IF_FALSE, S9/S10 Y, S11/S12 N.
    for (o, n) in [("S8", "S11"), ("S9", "S12"), ("S13", "S11"), ("S14", "S12")] {
        assert_eq!(new_of(&d, o), Some(n.into()), "{o}: {:?}", states(&d));
    }
    assert!(
        !d.issues
            .iter()
            .any(|i| matches!(i, MatchIssue::Ambiguous { .. })),
        "{:?}",
        d.issues
    );
    let merged = d.threads[0]
        .states
        .iter()
        .filter(|s| s.via == Some(MatchVia::Merged))
        .count();
    assert_eq!(merged, 4);
}

#[test]
fn branch_tails_with_work_after_or_between_do_not_merge() {
    let x = "<call name='X' target='OpX' async='0'><request type='Ens.Request'/></call>";
    let y = "<call name='Y' target='OpY' async='0'><request type='Ens.Request'/></call>";
    let z = "<call name='Z' target='OpZ' async='0'><request type='Ens.Request'/></call>";
    for (old, new) in [
        // A branch still has work after its copy.
        (
            branches(&format!("{x}{CALL_N}"), &format!("{y}{CALL_N}{z}"), ""),
            branches(x, &format!("{y}{z}"), CALL_N),
        ),
        // New work between the `if` and the hoisted call.
        (
            branches(&format!("{x}{CALL_N}"), &format!("{y}{CALL_N}"), ""),
            branches(x, y, &format!("{z}{CALL_N}")),
        ),
        // Not identical copies.
        (
            branches(
                &format!("{x}{CALL_N}"),
                &format!("{y}<call name='N' target='Ops' async='0'><request type='Ens.Request'><assign property='callrequest.K' value='1'/></request></call>"),
                "",
            ),
            branches(x, y, CALL_N),
        ),
    ] {
        let d = run(&old, &new, &[]);
        assert!(
            d.threads[0]
                .states
                .iter()
                .all(|s| s.via != Some(MatchVia::Merged)),
            "{old}: {:?}",
            states(&d)
        );
    }
}
