//! The BPL reader (`bpl::load`): formats, positions, git sources and located errors.
//!
//! `fixtures/malformed/<name>` holds one malformed input per rule; `<name>.expected` holds the
//! exact error line a user sees. `fixtures/formats/` holds the same valid BPL as a UDL class,
//! a Studio export (CDATA and entity-escaped), a bare `<process>` document and a BOM+CRLF
//! class file.

use bplmigrate::bpl::{
    load, load_bytes, load_in, ActivityKind, Bpl, LoadOptions, Pos, Process, SourceFormat,
};
use pretty_assertions::assert_eq;
use std::path::{Path, PathBuf};
use std::process::Command;

const FORMATS: &str = "fixtures/formats";
const MALFORMED: &str = "fixtures/malformed";

fn opts() -> LoadOptions {
    LoadOptions::default()
}

fn class(name: &str) -> LoadOptions {
    LoadOptions {
        class: Some(name.to_string()),
    }
}

fn ok(source: &str) -> Bpl {
    load(source, &opts()).unwrap_or_else(|e| panic!("{source} should load: {e}"))
}

fn without_positions(p: &Process) -> Process {
    let mut p = p.clone();
    p.map_positions(&mut |_| Pos::default());
    p
}

/// The byte offset of a 1-based line/column in `text` (lines end at `\n`, columns count chars).
fn offset_of(text: &str, pos: Pos) -> usize {
    let mut start = 0;
    for _ in 1..pos.line {
        start += text[start..].find('\n').expect("line exists") + 1;
    }
    start
        + text[start..]
            .char_indices()
            .nth(pos.column as usize - 1)
            .map(|(i, _)| i)
            .expect("column exists")
}

fn text_without_bom(path: &str) -> String {
    let bytes = std::fs::read(path).unwrap();
    String::from_utf8(
        bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&bytes)
            .to_vec(),
    )
    .unwrap()
}

fn malformed_inputs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(MALFORMED)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            !name.starts_with('.') && !name.ends_with(".expected")
        })
        .collect();
    v.sort();
    v
}

#[test]
fn malformed_fixtures_report_the_exact_located_error() {
    let inputs = malformed_inputs();
    assert!(
        inputs.len() >= 25,
        "expected at least 25 malformed fixtures, found {}",
        inputs.len()
    );
    let mut failures = Vec::new();
    for input in &inputs {
        let source = format!(
            "{MALFORMED}/{}",
            input.file_name().unwrap().to_string_lossy()
        );
        let expected_path = format!("{source}.expected");
        let Ok(expected) = std::fs::read_to_string(&expected_path) else {
            failures.push(format!("{expected_path} is missing"));
            continue;
        };
        let expected = expected.trim_end_matches(['\n', '\r']);
        match load(&source, &opts()) {
            Ok(b) => failures.push(format!(
                "{source} loaded as {} but should fail with:\n  {expected}",
                b.class_name
            )),
            Err(e) => {
                let actual = e.to_string();
                if actual != expected {
                    failures.push(format!(
                        "{source}\n  expected: {expected}\n  actual:   {actual}"
                    ));
                }
                if e.pos.is_none() {
                    failures.push(format!("{source}: the error has no position"));
                }
                let message = &e.message;
                // Lowercase prose: a leading class name (`Demo.X …`) or `XData` is fine, a
                // capitalized English word (`Cannot …`) is not.
                let first = message.split(' ').next().unwrap_or("");
                let capitalized_word = first.len() > 1
                    && first.starts_with(|c: char| c.is_ascii_uppercase())
                    && first[1..].chars().all(|c| c.is_ascii_lowercase());
                if message.ends_with('.') || capitalized_word {
                    failures.push(format!(
                        "{source}: message must be lowercase without a trailing period: {message}"
                    ));
                }
            }
        }
    }
    // Every .expected file belongs to an input.
    for e in std::fs::read_dir(MALFORMED).unwrap() {
        let p = e.unwrap().path();
        let name = p.to_string_lossy().to_string();
        if let Some(input) = name.strip_suffix(".expected") {
            if !Path::new(input).exists() {
                failures.push(format!("{name} has no input file"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} malformed fixtures failed:\n{}",
        failures.len(),
        inputs.len(),
        failures.join("\n")
    );
}

#[test]
fn the_same_bpl_in_every_format_gives_the_same_tree() {
    let udl = ok(&format!("{FORMATS}/loan.cls"));
    let cases = [
        ("loan.xml", SourceFormat::Export),
        ("loan-escaped.xml", SourceFormat::Export),
        ("Demo.Loan.Approval.xml", SourceFormat::Bare),
        ("loan-crlf-bom.cls", SourceFormat::Udl),
    ];
    assert_eq!(udl.source.format, SourceFormat::Udl);
    assert_eq!(udl.class_name, "Demo.Loan.Approval");
    assert!(
        udl.process.flat.len() > 25,
        "the sample should exercise many activities"
    );
    for (file, format) in cases {
        let other = ok(&format!("{FORMATS}/{file}"));
        assert_eq!(other.source.format, format, "{file}");
        assert_eq!(other.class_name, udl.class_name, "{file}");
        assert_eq!(
            without_positions(&other.process),
            without_positions(&udl.process),
            "{file}"
        );
    }
}

#[test]
fn every_position_points_at_its_element_in_the_original_file() {
    for file in [
        "loan.cls",
        "loan.xml",
        "loan-escaped.xml",
        "Demo.Loan.Approval.xml",
        "loan-crlf-bom.cls",
        "versioned.cls",
        "versioned.xml",
    ] {
        let path = format!("{FORMATS}/{file}");
        let bpl = ok(&path);
        let text = text_without_bom(&path);
        let lt = if file.contains("escaped") {
            "&lt;"
        } else {
            "<"
        };
        let at = |pos: Pos, element: &str, what: &str| {
            let here = &text[offset_of(&text, pos)..];
            assert!(
                here.starts_with(&format!("{lt}{element}")),
                "{file}: {what} at {pos} points at {:?}",
                &here[..here.len().min(30)]
            );
        };
        at(bpl.process.pos, "process", "the process");
        for c in &bpl.process.context {
            at(c.pos, "property", &c.name);
        }
        for a in bpl.process.activities() {
            at(a.pos, &a.element, &a.label());
            match &a.kind {
                ActivityKind::If {
                    true_branch,
                    false_branch,
                } => {
                    true_branch.iter().for_each(|b| at(b.pos, "true", "<true>"));
                    false_branch
                        .iter()
                        .for_each(|b| at(b.pos, "false", "<false>"));
                }
                ActivityKind::Switch { cases, default } => {
                    cases.iter().for_each(|c| at(c.pos, "case", "<case>"));
                    default
                        .iter()
                        .for_each(|c| at(c.pos, "default", "<default>"));
                }
                ActivityKind::Call {
                    request, response, ..
                } => {
                    request
                        .iter()
                        .for_each(|m| at(m.pos, "request", "<request>"));
                    response
                        .iter()
                        .for_each(|m| at(m.pos, "response", "<response>"));
                }
                _ => {}
            }
        }
    }
}

#[test]
fn crlf_and_bom_do_not_shift_lines_or_columns() {
    let lf = ok(&format!("{FORMATS}/loan.cls"));
    let crlf = ok(&format!("{FORMATS}/loan-crlf-bom.cls"));
    assert!(std::fs::read(format!("{FORMATS}/loan-crlf-bom.cls"))
        .unwrap()
        .starts_with(b"\xEF\xBB\xBFInclude Ensemble\r\n"));
    assert_eq!(crlf.process, lf.process);
    let call = crlf
        .process
        .activities()
        .into_iter()
        .find(|a| a.name.as_deref() == Some("BankUS"))
        .unwrap();
    assert_eq!(
        call.pos,
        Pos {
            line: 34,
            column: 1
        }
    );
    // The hash covers the raw bytes, BOM and CRLF included.
    assert_ne!(crlf.source.sha256, lf.source.sha256);

    // CR-only line breaks (classic Mac) read the same, every position included, in every
    // format the reader takes.
    for file in [
        "loan.cls",
        "loan.xml",
        "loan-escaped.xml",
        "Demo.Loan.Approval.xml",
    ] {
        let text = std::fs::read_to_string(format!("{FORMATS}/{file}")).unwrap();
        let lf = load_bytes(file, text.as_bytes(), &opts()).unwrap();
        let cr = load_bytes(file, text.replace('\n', "\r").as_bytes(), &opts()).unwrap();
        assert_eq!(cr.process, lf.process, "{file}");
        assert_eq!(cr.class_name, lf.class_name, "{file}");
    }

    // The same holds for text built in memory, with the error on a later line.
    let text =
        "\u{FEFF}<process>\r\n<sequence>\r\n  <assign value='1'/>\r\n</sequence>\r\n</process>\r\n";
    let e = load_bytes("mem.xml", text.as_bytes(), &opts()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "mem.xml:3:3: <assign> is missing the required attribute 'property'"
    );
}

#[test]
fn udl_ignores_braces_and_end_tags_inside_code() {
    let bpl = ok(&format!("{FORMATS}/loan.cls"));
    let acts = bpl.process.activities();
    assert!(acts
        .iter()
        .any(|a| a.element == "code" && a.name.as_deref() == Some("Log")));
    // Everything after the tricky <code> block was read.
    assert_eq!(acts.last().map(|a| a.element.as_str()), Some("reply"));
    assert_eq!(bpl.process.context.len(), 2);
    let assign = acts
        .iter()
        .find(|a| a.name.as_deref() == Some("Init"))
        .unwrap();
    assert_eq!(
        assign.attrs.get("value"),
        Some("\"none\" & more"),
        "entity references are decoded"
    );
    assert!(
        !assign.attrs.contains_key("xpos"),
        "layout attributes are dropped"
    );
}

#[test]
fn class_names_come_from_the_header_the_export_or_the_file_stem() {
    assert_eq!(
        ok(&format!("{FORMATS}/loan.cls")).class_name,
        "Demo.Loan.Approval"
    );
    // The export also holds Demo.Loan.Request, which has no XData BPL.
    assert_eq!(
        ok(&format!("{FORMATS}/loan.xml")).class_name,
        "Demo.Loan.Approval"
    );
    assert_eq!(
        ok(&format!("{FORMATS}/versioned.xml")).class_name,
        "Demo.Versioned"
    );
    // Bare document: the file stem, unless a class is given.
    let bare = format!("{FORMATS}/Demo.Loan.Approval.xml");
    assert_eq!(ok(&bare).class_name, "Demo.Loan.Approval");
    assert_eq!(
        load(&bare, &class("Other.Name")).unwrap().class_name,
        "Other.Name"
    );
    // A matching class option is accepted; a different one is refused.
    assert_eq!(
        load(&format!("{FORMATS}/loan.cls"), &class("Demo.Loan.Approval"))
            .unwrap()
            .class_name,
        "Demo.Loan.Approval"
    );
    let e = load(&format!("{FORMATS}/loan.cls"), &class("Demo.Other")).unwrap_err();
    assert_eq!(e.to_string(), "fixtures/formats/loan.cls:5:7: this file defines class Demo.Loan.Approval, not the requested class Demo.Other");

    // Comments, Include lines and keyword lists before the body.
    let udl = "/* header */\r\nInclude (Ensemble, EnsUtil)\r\n/// doc\r\nClass %Z.Demo.P Extends (Ens.BusinessProcessBPL, Z.Mixin) [ ClassType = persistent, DependsOn = \"A{\" ]\r\n{\r\nXData BPL\r\n{\r\n<process><sequence/></process>\r\n}\r\n}\r\n";
    let b = load_bytes("p.cls", udl.as_bytes(), &opts()).unwrap();
    assert_eq!(
        (b.class_name.as_str(), b.source.format),
        ("%Z.Demo.P", SourceFormat::Udl)
    );
    assert_eq!(
        b.process.sequence.pos,
        Pos {
            line: 8,
            column: 10
        }
    );
}

#[test]
fn an_export_with_several_bpl_classes_needs_a_class() {
    let file = format!("{MALFORMED}/export-two-bpl-classes.xml");
    let first = load(&file, &class("Demo.First")).unwrap();
    assert_eq!(first.class_name, "Demo.First");
    let second = load(&file, &class("Demo.Second")).unwrap();
    assert_eq!(second.class_name, "Demo.Second");
    assert_ne!(first.process.pos, second.process.pos);
    let e = load(&file, &class("Demo.Third")).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{file}:2:1: the export has no class Demo.Third; it holds Demo.First, Demo.Second")
    );
    let e = load(&format!("{FORMATS}/loan.xml"), &class("Demo.Loan.Request")).unwrap_err();
    assert_eq!(
        e.message,
        "Demo.Loan.Request has no XData BPL block; is this a business-process class?"
    );
}

#[test]
fn versioned_process_keeps_only_the_last_top_level_sequence() {
    for file in ["versioned.cls", "versioned.xml"] {
        let bpl = ok(&format!("{FORMATS}/{file}"));
        let p = &bpl.process;
        assert_eq!(p.version.as_deref(), Some("3"), "{file}");
        assert_eq!(p.top_level_sequences, 2, "{file}");
        assert_eq!(p.sequence.name.as_deref(), Some("Compiled"), "{file}");
        let ActivityKind::Sequence { children } = &p.sequence.kind else {
            panic!("top level is a sequence")
        };
        let elements: Vec<&str> = children.iter().map(|a| a.element.as_str()).collect();
        assert_eq!(elements, ["call", "until"], "{file}");
        assert!(p
            .activities()
            .iter()
            .all(|a| a.name.as_deref() != Some("Ignored")));
        assert_eq!(
            p.flat.len(),
            5,
            "{file}: sequence, call, until, foreach, continue"
        );
    }
}

#[test]
fn an_unreadable_path_is_a_file_error_without_position() {
    let e = load("fixtures/formats/no-such-file.cls", &opts()).unwrap_err();
    assert_eq!(e.pos, None);
    assert_eq!(e.to_string(), "fixtures/formats/no-such-file.cls: cannot read the file: no such file or directory (os error 2)");
}

fn git(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .args([
            "-c",
            "user.name=bplmigrate",
            "-c",
            "user.email=bplmigrate@example.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn rev_path_reads_the_committed_file_from_git() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path();
    if !git(repo, &["init", "-q"]) {
        eprintln!("git is not available; skipping");
        return;
    }
    std::fs::create_dir(repo.join("src")).unwrap();
    let committed = std::fs::read(format!("{FORMATS}/loan.cls")).unwrap();
    std::fs::write(repo.join("src/Loan.cls"), &committed).unwrap();
    assert!(git(repo, &["add", "."]));
    assert!(git(repo, &["commit", "-q", "-m", "loan"]));
    // The working copy changes after the commit; HEAD still has the committed bytes.
    std::fs::write(repo.join("src/Loan.cls"), b"garbage").unwrap();

    let bpl = load_in(repo, "HEAD:src/Loan.cls", &opts()).unwrap();
    assert_eq!(bpl.source.origin, "HEAD:src/Loan.cls");
    assert_eq!(bpl.source.sha256, bplmigrate::bpl::sha256_hex(&committed));
    assert_eq!(bpl.class_name, "Demo.Loan.Approval");
    assert_eq!(bpl.process, ok(&format!("{FORMATS}/loan.cls")).process);

    // `./path` is relative to the directory git runs in, as in git itself.
    let from_src = load_in(&repo.join("src"), "HEAD:./Loan.cls", &opts()).unwrap();
    assert_eq!(from_src.process, bpl.process);

    let e = load_in(repo, "nope:src/Loan.cls", &opts()).unwrap_err();
    assert_eq!(e.file, "nope:src/Loan.cls");
    assert_eq!(e.pos, None);
    assert!(
        e.message
            .starts_with("git cannot read path 'src/Loan.cls' at revision 'nope': "),
        "{}",
        e.message
    );

    let e = load_in(repo, "HEAD:src/Missing.cls", &opts()).unwrap_err();
    assert!(
        e.message.contains("'src/Missing.cls'")
            && e.message.contains("relative to the repository root"),
        "{}",
        e.message
    );

    let e = load_in(repo, "HEAD:src", &opts()).unwrap_err();
    assert!(
        e.message.starts_with("git cannot read path 'src'"),
        "a directory is not a BPL: {}",
        e.message
    );
}

/// Cut every sample at every byte and flip bytes deterministically: the reader returns
/// `Ok` or a located `Err`, never panics.
#[test]
fn no_input_makes_the_reader_panic() {
    let mut failures = Vec::new();
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for file in [
        "loan.cls",
        "loan.xml",
        "loan-escaped.xml",
        "Demo.Loan.Approval.xml",
        "loan-crlf-bom.cls",
        "versioned.xml",
    ] {
        let bytes = std::fs::read(format!("{FORMATS}/{file}")).unwrap();
        let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
        for cut in 0..bytes.len() {
            inputs.push((format!("{file} cut at {cut}"), bytes[..cut].to_vec()));
        }
        for round in 0..300 {
            let mut b = bytes.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let i = (seed as usize) % b.len();
                b[i] = b"<>/&;\"'{}]![-?x\r\n\0\xC3\xFF"[(seed >> 32) as usize % 20];
            }
            inputs.push((format!("{file} mutation {round}"), b));
        }
        for (what, input) in inputs {
            let r = std::panic::catch_unwind(|| {
                load_bytes("fuzz.cls", &input, &LoadOptions::default())
            });
            match r {
                Err(_) => failures.push(what),
                Ok(Err(e)) if e.pos.is_none() => {
                    failures.push(format!("{what}: error without position: {e}"))
                }
                Ok(_) => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} inputs failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
