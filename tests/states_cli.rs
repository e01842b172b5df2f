//! `bplmigrate states`: the real binary, its formats, exit codes and messages.

use bplmigrate::bpl;
use bplmigrate::states::{self, CompiledProcess, Compiler};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BPL: &str = "<process request='Ens.Request' response='Ens.Response'>
<sequence>
  <call name='Lookup' target='Lookup Operation' async='false'>
    <request type='Ens.Request'/>
    <response type='Ens.Response'><assign property='context.r' value='1'/></response>
  </call>
  <while condition='1'>
    <if condition='context.stop'><true><break/></true></if>
    <delay name='nap' duration='\"PT1S\"'/>
  </while>
</sequence>
</process>
";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bplmigrate"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn library(path: &Path, class: &str, compiler: Compiler) -> CompiledProcess {
    let text = std::fs::read_to_string(path).unwrap();
    states::compile(
        &bpl::parse_bare(path.to_str().unwrap(), &text, class).unwrap(),
        compiler,
    )
    .unwrap()
}

#[test]
fn human_output_names_class_context_and_compiler_then_tables() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "Demo.Loan.xml", BPL);
    let o = run(&["states", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("process  Demo.Loan\n"), "{out}");
    assert!(out.contains("compiler current (IRIS 2022.1+"), "{out}");
    assert!(
        out.contains("context  Demo.Loan.Context (table Demo_Loan.Context)"),
        "{out}"
    );
    assert!(
        out.contains("thread 1  Demo.Loan.Thread1  table Demo_Loan.Thread1"),
        "{out}"
    );
    let header = out
        .lines()
        .find(|l| l.trim_start().starts_with("State"))
        .unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        [
            "State",
            "Role",
            "Activity",
            "Line:Col",
            "Successors",
            "Flags"
        ]
    );
    let s2 = out
        .lines()
        .find(|l| l.trim_start().starts_with("S2 "))
        .unwrap();
    assert_eq!(
        s2.split_whitespace().collect::<Vec<_>>(),
        [
            "S2",
            "SYNC_WAIT",
            "call",
            "\"Lookup\"",
            "3:3",
            "S2",
            "S3",
            "wait"
        ]
    );
    // Columns line up: every row starts the Role column at the same offset.
    let role_col: Vec<usize> = out
        .lines()
        .filter(|l| l.starts_with("  S"))
        .map(|l| l.find(char::is_uppercase).unwrap())
        .collect();
    assert!(role_col.windows(2).all(|w| w[0] == w[1]));
    assert!(out.contains("OnResponse1"), "{out}");
    assert!(
        out.contains("note: call \"Lookup\" at 3:3 has async=\"false\""),
        "{out}"
    );
}

#[test]
fn compiler_flag_switches_the_async_rule_and_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "p.xml", BPL);
    let legacy = run(&[
        "states",
        f.to_str().unwrap(),
        "--compiler",
        "legacy",
        "--format",
        "listing",
    ]);
    let current = run(&["states", f.to_str().unwrap(), "--format", "listing"]);
    assert_eq!(legacy.status.code(), Some(0));
    assert!(stdout(&legacy).starts_with("process p compiler=legacy\n"));
    assert!(stdout(&current).starts_with("process p compiler=current\n"));
    // async="false": no wait state for legacy, two states more for current.
    assert_eq!(
        stdout(&current).lines().count(),
        stdout(&legacy).lines().count() + 2
    );
    let human = stdout(&run(&[
        "states",
        f.to_str().unwrap(),
        "--compiler",
        "legacy",
    ]));
    assert!(
        human.contains("compiler legacy (Ensemble / IRIS up to 2021.x"),
        "{human}"
    );
}

#[test]
fn json_and_listing_match_the_library() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "x.xml", BPL);
    let o = run(&[
        "states",
        f.to_str().unwrap(),
        "--format",
        "json",
        "--class",
        "Demo.BP",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cp: CompiledProcess = serde_json::from_str(&stdout(&o)).unwrap();
    let want = library(&f, "Demo.BP", Compiler::Current);
    assert_eq!(cp.threads, want.threads);
    assert_eq!(cp.response_handlers, want.response_handlers);
    assert_eq!(cp.class, "Demo.BP");
    // Stable: the same input gives byte-identical JSON.
    let again = run(&[
        "states",
        f.to_str().unwrap(),
        "--format",
        "json",
        "--class",
        "Demo.BP",
    ]);
    assert_eq!(o.stdout, again.stdout);
    let listing = run(&[
        "states",
        f.to_str().unwrap(),
        "--format",
        "listing",
        "--class",
        "Demo.BP",
    ]);
    assert_eq!(stdout(&listing), states::listing(&want));
}

#[test]
fn dot_and_mermaid_draw_the_state_graph() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "g.xml", BPL);
    let dot = stdout(&run(&["states", f.to_str().unwrap(), "--format", "dot"]));
    assert!(dot.starts_with("digraph \"g\" {"), "{dot}");
    assert!(
        dot.contains("\"T1_Stop\" [label=\"Stop\", shape=doublecircle]"),
        "{dot}"
    );
    assert!(
        dot.contains("style=dashed"),
        "the break leaves a dead edge: {dot}"
    );
    assert!(
        dot.contains("fillcolor=\"#ffe9a8\""),
        "wait states are highlighted: {dot}"
    );
    assert!(dot.trim_end().ends_with('}'));
    let mermaid = stdout(&run(&[
        "states",
        f.to_str().unwrap(),
        "--format",
        "mermaid",
    ]));
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    assert!(mermaid.contains("T1_Stop((Stop))"));
    assert!(mermaid.contains("-. dead .->"));
    assert!(mermaid.contains("class T1_S2,"), "{mermaid}");
}

#[test]
fn flow_threads_are_drawn_with_start_and_join_edges() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "f.xml",
        "<process><sequence><flow name='F'><sequence name='a'><delay duration='1'/></sequence><sequence name='b'/></flow></sequence></process>",
    );
    let dot = stdout(&run(&["states", f.to_str().unwrap(), "--format", "dot"]));
    assert!(
        dot.contains("\"T1_S1\" -> \"T2_S1\" [style=dotted, color=blue, label=\"start\"]"),
        "{dot}"
    );
    assert!(
        dot.contains("\"T3_Stop\" -> \"T1_S2\" [style=dotted, color=blue, label=\"join\"]"),
        "{dot}"
    );
    let human = stdout(&run(&["states", f.to_str().unwrap()]));
    assert!(
        human.contains(
            "thread 2  f.Thread2  table f.Thread2  (flow child 1 of flow \"F\" in Thread1)"
        ),
        "{human}"
    );
}

#[test]
fn malformed_input_and_compile_errors_exit_2_with_a_located_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.xml",
        "<process><sequence><assign property='x' value='1'></sequence></process>",
    );
    let o = run(&["states", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("bad.xml:1:"), "{}", stderr(&o));
    assert!(o.stdout.is_empty());

    let brk = write(
        dir.path(),
        "brk.xml",
        "<process>\n<sequence>\n  <break/>\n</sequence>\n</process>\n",
    );
    let o = run(&["states", brk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("brk.xml:3:3: <break> is not inside a <while>, <until> or <foreach>"),
        "{}",
        stderr(&o)
    );

    let o = run(&["states", dir.path().join("missing.xml").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));

    let o = run(&["states", bad.to_str().unwrap(), "--format", "svg"]);
    assert_eq!(o.status.code(), Some(2), "unknown format is a usage error");
}

/// Every malformed input kept as a fixture, through the real binary: exit 2, nothing on
/// stdout, and exactly the located message of its `.expected` file on stderr.
/// `fixtures/malformed/` fails in the reader, `fixtures/malformed-compile/` in the compiler
/// emulation (schema-valid input that IRIS still refuses).
#[test]
fn every_malformed_fixture_exits_2_with_its_located_message() {
    let mut checked = 0;
    for dir in ["fixtures/malformed", "fixtures/malformed-compile"] {
        let mut inputs: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                !name.starts_with('.') && !name.ends_with(".expected")
            })
            .collect();
        inputs.sort();
        for input in inputs {
            let expected_file = format!("{}.expected", input.display());
            let expected = std::fs::read_to_string(&expected_file)
                .unwrap_or_else(|e| panic!("{expected_file}: {e}"));
            let o = run(&["states", input.to_str().unwrap()]);
            assert_eq!(o.status.code(), Some(2), "{}", input.display());
            assert!(o.stdout.is_empty(), "{}: stdout not empty", input.display());
            assert_eq!(
                stderr(&o).trim_end(),
                format!("error: {}", expected.trim_end()),
                "{}",
                input.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 50, "only {checked} malformed fixtures");
}

/// `--format svg` draws every state fixture without Graphviz and without failing.
#[test]
fn every_state_fixture_draws_as_svg() {
    let mut drawn = 0;
    for entry in std::fs::read_dir("fixtures/states").unwrap() {
        let dir = entry.unwrap().path();
        let Some(input) = ["process.cls", "process.xml"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.exists())
        else {
            continue;
        };
        let o = run(&["states", input.to_str().unwrap(), "--format", "svg"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: {}",
            input.display(),
            stderr(&o)
        );
        let svg = stdout(&o);
        assert!(
            svg.contains("<svg") && svg.trim_end().ends_with("</svg>"),
            "{}",
            input.display()
        );
        assert!(
            svg.contains("S1 ENTRY"),
            "{}: state labels missing",
            input.display()
        );
        drawn += 1;
    }
    assert!(drawn >= 30, "only {drawn} fixtures drawn");
}

/// The start column (in terminal columns) of every header word after the first, and of the
/// cells of one row: equal when the table lines up.
fn columns(line: &str, cells: usize) -> Vec<usize> {
    let mut cols = Vec::new();
    let mut width = 0;
    let mut prev_space = 0;
    for ch in line.chars() {
        if ch == ' ' {
            prev_space += 1;
        } else {
            if prev_space >= 2 && cols.len() < cells {
                cols.push(width);
            }
            prev_space = 0;
        }
        width += unicode_width::UnicodeWidthChar::width(ch).unwrap_or(0);
    }
    cols
}

/// Names with wide (CJK) characters, combining accents and control characters keep the
/// `states` tables aligned, each row on one line, with control characters escaped as every
/// other table and message escapes them (`\n`, `\r`).
#[test]
fn tables_align_by_display_width_and_escape_control_characters() {
    let dir = tempfile::tempdir().unwrap();
    let text = BPL
        .replace("name='Lookup'", "name='審査クレジット'")
        .replace("name='nap'", "name='Cr&#10;FAKE S99&#13;e&#x301;dit'");
    let p = write(dir.path(), "wide.xml", &text);
    let o = run(&["states", p.to_str().unwrap(), "--class", "Demo.Wide"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains('\r'), "{out:?}");
    let lines: Vec<&str> = out.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.trim_start().starts_with("State  Role"))
        .unwrap_or_else(|| panic!("{out}"));
    let want = columns(lines[header], 4);
    assert_eq!(want.len(), 4, "{}", lines[header]);
    let mut rows = 0;
    for l in &lines[header + 1..] {
        if !l.trim_start().starts_with('S') {
            break;
        }
        assert_eq!(columns(l, 4), want, "misaligned row {l:?} in\n{out}");
        rows += 1;
    }
    assert!(rows >= 6, "{out}");
    assert!(
        out.contains("delay \"Cr\\nFAKE S99\\re\u{301}dit\""),
        "{out}"
    );
    assert!(out.contains("call \"審査クレジット\""), "{out}");
    // The response handler table too.
    let h = lines
        .iter()
        .position(|l| l.trim_start().starts_with("Handler "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(columns(lines[h + 1], 4), columns(lines[h], 4), "{out}");
}
