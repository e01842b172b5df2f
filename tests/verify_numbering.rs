//! `verify-numbering`: exported generated thread classes against the emulation.
//!
//! The thread classes under fixtures/generated/ were written by hand from
//! spec/state-numbering.md (sections 7 and 8.1), not produced by the emulator:
//! `ex02_sync_call` (UDL), `ex05_switch_delay` (UDL, CRLF, `Language = cache`),
//! `ex07_scope_compensation` (UDL, plus the Context class, which is skipped),
//! `ex08_flow_threads` (one XML export with five thread classes and the Context class),
//! `ex12_nested_scopes` (XML export, CRLF) and `ex05_wrong` (S4's successor changed, S9 missing).

use bplmigrate::bpl::{self, LoadOptions};
use bplmigrate::states::import::{
    self, compare, parse_generated, ImportedThread, NumberingDifference,
};
use bplmigrate::states::{self, CompiledProcess, Compiler};
use pretty_assertions::assert_eq;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MATCHING: [&str; 5] = [
    "ex02_sync_call",
    "ex05_switch_delay",
    "ex07_scope_compensation",
    "ex08_flow_threads",
    "ex12_nested_scopes",
];

fn case_dir(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join("generated")
        .join(case)
}

/// The BPL and the exported class files of a case.
fn case_files(case: &str) -> (PathBuf, Vec<PathBuf>) {
    let dir = case_dir(case);
    let mut exports: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n != "process.cls"))
        .collect();
    exports.sort();
    (dir.join("process.cls"), exports)
}

fn run(args: &[&Path], extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
        .arg("verify-numbering")
        .args(args)
        .args(extra)
        .output()
        .expect("run bplmigrate")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn compiled(case: &str) -> CompiledProcess {
    let (bpl_path, _) = case_files(case);
    let bpl =
        bpl::load(&bpl_path.to_string_lossy(), &LoadOptions::default()).expect("fixture BPL loads");
    states::compile(&bpl, Compiler::Current).expect("fixture BPL compiles")
}

fn imported(case: &str) -> Vec<ImportedThread> {
    let (_, exports) = case_files(case);
    exports
        .iter()
        .flat_map(|p| {
            import::load_generated(&p.to_string_lossy())
                .expect("export parses")
                .threads
        })
        .collect()
}

fn read(case: &str, file: &str) -> String {
    std::fs::read_to_string(case_dir(case).join(file)).expect("fixture file")
}

#[test]
fn hand_written_exports_match_the_emulation() {
    for case in MATCHING {
        let differences = compare(&compiled(case), &imported(case));
        assert_eq!(differences, vec![], "{case}");
    }
}

#[test]
fn binary_exits_0_with_a_summary_when_everything_matches() {
    for case in MATCHING {
        let (bpl, exports) = case_files(case);
        let mut args: Vec<&Path> = vec![&bpl];
        args.extend(exports.iter().map(PathBuf::as_path));
        let o = run(&args, &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{case}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        let out = stdout(&o);
        assert_eq!(
            out.lines().count(),
            1,
            "{case}: one summary line expected, got {out}"
        );
        assert!(out.contains("all match"), "{case}: {out}");
    }
    let (bpl, exports) = case_files("ex08_flow_threads");
    let o = run(&[&bpl, &exports[0]], &[]);
    assert_eq!(stdout(&o), "Demo.Gen.Ex08 (5 thread classes, 15 states, current compiler): all match the exported classes\n");
}

#[test]
fn wrong_export_reports_the_changed_successor_and_the_missing_state() {
    let differences = compare(&compiled("ex05_wrong"), &imported("ex05_wrong"));
    let class = "Demo.Gen.Ex05.Thread1".to_string();
    assert_eq!(
        differences,
        vec![
            NumberingDifference::Successors {
                class: class.clone(),
                state: "S4".into(),
                emulated: vec!["S5".into(), "S6".into()],
                exported: vec!["S5".into(), "S7".into()],
            },
            NumberingDifference::MissingState {
                class,
                state: "S9".into()
            },
        ]
    );
}

#[test]
fn binary_exits_1_and_lists_differences_for_the_wrong_export() {
    let (bpl, exports) = case_files("ex05_wrong");
    let o = run(&[&bpl, &exports[0]], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "Demo.Gen.Ex05.Thread1 S4: successors differ: emulated S5 S6, exported S5 S7\n\
         Demo.Gen.Ex05.Thread1 S9: the emulation has this state, the export has no method S9\n\
         Demo.Gen.Ex05 (1 thread class, 9 states, current compiler): 2 differences found\n"
    );

    let o = run(&[&bpl, &exports[0]], &["--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json output");
    assert_eq!(doc["identical"], false);
    assert_eq!(doc["thread_classes"], 1);
    assert_eq!(doc["states"], 9);
    assert_eq!(doc["compiler"], "current");
    assert_eq!(doc["differences"][0]["kind"], "successors");
    assert_eq!(doc["differences"][0]["state"], "S4");
    assert_eq!(
        doc["differences"][0]["exported"],
        serde_json::json!(["S5", "S7"])
    );
    assert_eq!(
        doc["differences"][1],
        serde_json::json!({"kind": "missing_state", "class": "Demo.Gen.Ex05.Thread1", "state": "S9"})
    );
}

#[test]
fn json_for_a_match() {
    let (bpl, exports) = case_files("ex12_nested_scopes");
    let o = run(
        &[&bpl, &exports[0]],
        &["--format", "json", "--compiler", "legacy"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("json output");
    assert_eq!(doc["identical"], true);
    assert_eq!(doc["compiler"], "legacy");
    assert_eq!(doc["differences"], serde_json::json!([]));
}

#[test]
fn classes_of_another_process_are_missing_and_extra() {
    let (bpl07, _) = case_files("ex07_scope_compensation");
    let (_, exports02) = case_files("ex02_sync_call");
    let o = run(&[&bpl07, &exports02[0]], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Demo.Gen.Ex07.Thread1: the emulation generates this thread class, but no export of it was given"), "{out}");
    assert!(out.contains("Demo.Gen.Ex02.Thread1 ("), "{out}");
    assert!(
        out.contains("exported thread class that the emulation does not generate"),
        "{out}"
    );
}

#[test]
fn wait_start_and_handler_differences_are_reported() {
    let cp = compiled("ex08_flow_threads");
    let text = read("ex08_flow_threads", "Demo.Gen.Ex08.export.xml");
    // Thread2 S2 no longer parks; Thread1 starts Thread5 before Thread2; R1 passes OnResponse4.
    let t2_start = text
        .find("<Class name=\"Demo.Gen.Ex08.Thread2\">")
        .expect("Thread2 in export");
    let t3_start = text
        .find("<Class name=\"Demo.Gen.Ex08.Thread3\">")
        .expect("Thread3 in export");
    let t2 = text[t2_start..t3_start].replace(
        "Set ..%NextState=\"S2\",..%Wait=1",
        "Set ..%NextState=\"S2\"",
    );
    let changed = format!("{}{}{}", &text[..t2_start], t2, &text[t3_start..])
        .replacen(
            "StartThread(\"Demo.Gen.Ex08.Thread2\")",
            "StartThread(\"Demo.Gen.Ex08.ThreadX\")",
            1,
        )
        .replacen(
            "StartThread(\"Demo.Gen.Ex08.Thread5\")",
            "StartThread(\"Demo.Gen.Ex08.Thread2\")",
            1,
        )
        .replacen(
            "StartThread(\"Demo.Gen.Ex08.ThreadX\")",
            "StartThread(\"Demo.Gen.Ex08.Thread5\")",
            1,
        )
        .replace("\"OnResponse3\"", "\"OnResponse4\"");
    let file = parse_generated("changed.xml", &changed).expect("still parses");
    let differences = compare(&cp, &file.threads);
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        differences,
        vec![
            NumberingDifference::StartThreads {
                class: "Demo.Gen.Ex08.Thread1".into(),
                state: "S1".into(),
                emulated: s(&["Demo.Gen.Ex08.Thread2", "Demo.Gen.Ex08.Thread5"]),
                exported: s(&["Demo.Gen.Ex08.Thread5", "Demo.Gen.Ex08.Thread2"]),
            },
            NumberingDifference::Wait {
                class: "Demo.Gen.Ex08.Thread2".into(),
                state: "S2".into(),
                emulated: true,
                exported: false
            },
            NumberingDifference::ResponseHandler {
                class: "Demo.Gen.Ex08.Thread5".into(),
                call: "R1".into(),
                emulated: s(&["OnResponse3"]),
                exported: s(&["OnResponse4"]),
            },
        ]
    );
    assert_eq!(file.skipped, vec!["Demo.Gen.Ex08.Context".to_string()]);
}

#[test]
fn line_ends_and_method_order_do_not_matter() {
    let crlf = read("ex05_switch_delay", "Demo.Gen.Ex05.Thread1.cls");
    assert!(crlf.contains("\r\n"), "fixture is meant to be CRLF");
    let lf = crlf.replace("\r\n", "\n");
    let cr = lf.replace('\n', "\r");
    let a = parse_generated("x.cls", &crlf).expect("CRLF parses");
    let b = parse_generated("x.cls", &lf).expect("LF parses");
    let c = parse_generated("x.cls", &cr).expect("CR-only parses");
    assert_eq!(a, b);
    assert_eq!(
        c, b,
        "CR-only line breaks read the same, positions included"
    );
    // A multibyte character before `Class` is fine (it used to panic).
    let mb = format!("// caf\u{e9} \u{263A}\n{lf}");
    let d = parse_generated("x.cls", &mb).expect("parses");
    assert_eq!(
        d.threads[0].states,
        b.threads[0]
            .states
            .iter()
            .map(|s| {
                let mut s = s.clone();
                s.pos.line += 1;
                for c in &mut s.calls {
                    c.pos.line += 1;
                }
                s
            })
            .collect::<Vec<_>>()
    );
    let names: Vec<&str> = a.threads[0]
        .states
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["S1", "S2", "S3", "S4", "S5", "S6", "S7", "S8", "S9"]
    );
    // The file lists methods in string order (S1, S10, …), as IRIS exports them.
    let ex07 = read("ex07_scope_compensation", "Demo.Gen.Ex07.Thread1.cls");
    assert!(ex07.find("Method S10(") < ex07.find("Method S2("));
}

#[test]
fn what_is_read_from_a_state_method() {
    let file = import::load_generated(
        &case_dir("ex07_scope_compensation")
            .join("Demo.Gen.Ex07.Thread1.cls")
            .to_string_lossy(),
    )
    .expect("parses");
    let t = &file.threads[0];
    assert_eq!(t.class, "Demo.Gen.Ex07.Thread1");
    let s = |name: &str| t.state(name).expect("state present");
    assert_eq!(s("S2").successors, ["S7", "S8"]);
    assert_eq!(s("S2").wait_targets, ["S7"]);
    assert_eq!(s("S2").calls.len(), 1);
    assert_eq!(s("S2").calls[0].name, "Debit");
    assert_eq!(s("S2").calls[0].handler.as_deref(), Some("OnResponse2"));
    // Dynamic Return() of the compensation handler: no literal successor.
    assert!(s("S6").successors.is_empty());
    // Dead code after a throw still counts.
    assert_eq!(s("S8").successors, ["S9"]);
    assert_eq!(s("S11").successors, ["S4"]);
    assert_eq!(
        t.wait_states().into_iter().collect::<Vec<_>>(),
        ["S5", "S7"]
    );
    assert_eq!((s("S2").pos.line, s("S2").pos.column), (62, 1));
}

#[test]
fn malformed_exports_are_located() {
    let base = read("ex02_sync_call", "Demo.Gen.Ex02.Thread1.cls");
    // An unterminated string literal inside S2's body.
    let broken = base.replacen(
        "Set ..%NextState=\"S3\"\n } while",
        "Set ..%NextState=\"S3\n } while",
        1,
    );
    assert_ne!(broken, base);
    let e = parse_generated("T.cls", &broken).expect_err("must fail");
    let line = broken
        .lines()
        .position(|l| l.contains("Set ..%NextState=\"S3") && !l.contains("S3\""))
        .expect("line") as u32
        + 1;
    assert_eq!(
        e.to_string(),
        format!("T.cls:{line}:19: unterminated string literal")
    );

    // A class that never closes.
    let unclosed = base.trim_end().trim_end_matches('}').to_string();
    let e = parse_generated("T.cls", &unclosed).expect_err("must fail");
    assert!(e.to_string().starts_with("T.cls:"), "{e}");
    assert!(e.to_string().contains("not closed"), "{e}");

    // The same method twice.
    let twice = base.replacen("Method S2(", "Method S1(", 1);
    let e = parse_generated("T.cls", &twice).expect_err("must fail");
    assert!(
        e.to_string()
            .contains("method S1 of Demo.Gen.Ex02.Thread1 is defined twice"),
        "{e}"
    );

    // Malformed XML.
    let xml = read("ex12_nested_scopes", "Demo.Gen.Ex12.Thread1.xml").replacen(
        "</Method>",
        "</Methd>",
        1,
    );
    let e = parse_generated("T.xml", &xml).expect_err("must fail");
    assert!(
        e.to_string().starts_with("T.xml:") && e.to_string().contains("malformed XML"),
        "{e}"
    );

    // Not a class at all.
    let e = parse_generated("T.cls", "just some text\n").expect_err("must fail");
    assert!(e.to_string().starts_with("T.cls:1:1: "), "{e}");
}

#[test]
fn bad_input_exits_2() {
    let (bpl, exports) = case_files("ex02_sync_call");
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("Broken.cls");
    std::fs::write(
        &broken,
        read("ex02_sync_call", "Demo.Gen.Ex02.Thread1.cls").replacen("\"S3\"", "\"S3", 1),
    )
    .expect("write");
    let missing = dir.path().join("Missing.cls");
    let context_only = case_dir("ex07_scope_compensation").join("Demo.Gen.Ex07.Context.cls");
    let bad_bpl = dir.path().join("Bad.cls");
    std::fs::write(&bad_bpl, "Class Demo.Bad Extends Ens.BusinessProcessBPL\n{\nXData BPL\n{\n<process><sequence>\n</process>\n}\n}\n").expect("write");

    for (args, what) in [
        (vec![bpl.as_path(), broken.as_path()], "Broken.cls:"),
        (vec![bpl.as_path(), missing.as_path()], "Missing.cls"),
        (
            vec![bpl.as_path(), context_only.as_path()],
            "no generated thread class",
        ),
        (
            vec![bpl.as_path(), exports[0].as_path(), exports[0].as_path()],
            "is given twice",
        ),
        (vec![bad_bpl.as_path(), exports[0].as_path()], "Bad.cls:"),
    ] {
        let o = run(&args, &[]);
        assert_eq!(
            o.status.code(),
            Some(2),
            "{what}: {}{}",
            stdout(&o),
            stderr(&o)
        );
        assert!(stderr(&o).contains(what), "{what}: {}", stderr(&o));
        assert!(stdout(&o).is_empty());
    }
    // No thread class argument at all is a usage error.
    let o = Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
        .args(["verify-numbering", &bpl.to_string_lossy()])
        .output()
        .expect("run");
    assert_eq!(o.status.code(), Some(2));
}

/// Cut an export at every character: the reader returns `Ok` or a located `Err`, never panics.
#[test]
fn no_cut_of_an_export_makes_the_reader_panic() {
    let text = read("ex02_sync_call", "Demo.Gen.Ex02.Thread1.cls");
    let mut failures = Vec::new();
    for (cut, _) in text.char_indices().step_by(3) {
        let r = std::panic::catch_unwind(|| parse_generated("cut.cls", &text[..cut]));
        match r {
            Err(_) => failures.push(format!("panic at {cut}")),
            Ok(Err(e)) if e.pos.is_none() => failures.push(format!("{cut}: unlocated {e}")),
            Ok(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
