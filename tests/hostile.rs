//! The hostile corpus through the real binary, each run under a deadline and an address-space
//! limit: every run must end by itself within the limits with an exit code in the documented
//! set, never panic, and a refusal must be located (name the input) and printable (no raw
//! control characters, no endless line).
//!
//! Inputs: `fixtures/hostile/` (made by `scripts/gen-hostile.sh`: truncations, byte flips,
//! entity bombs, DOCTYPE/XXE, nesting, encodings, hostile names, broken overrides, edited
//! migration folders, `REV:path` sources) plus what is made here at test time: special files
//! (FIFO, socket, device, directory, symlinks to them), odd file names, oversized files, and
//! the big inputs whose cost must stay linear (100k overrides entries, 100k context
//! properties, 100k attributes on one element, a one-line minified BPL, 20k reordered
//! siblings, 100k nesting levels). No timing assertion: a superlinear regression shows up as
//! a run killed at the deadline.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Generous for a debug build on a shared machine: a linear run takes well under a tenth.
const DEADLINE: Duration = Duration::from_secs(120);
/// Address-space limit of every run.
const MEMORY: u64 = 3 << 30;
/// The documented exit codes a command may end with on any input.
const STATES: &[i32] = &[0, 2];
const VERIFY: &[i32] = &[0, 1, 2];
/// `plan`: 1 when the plan is blocked.
const PLAN: &[i32] = &[0, 1, 2];

const OLD: &str = "fixtures/changes/removed_wait_state/old.cls";
const NEW: &str = "fixtures/changes/removed_wait_state/new.cls";
const GEN_BPL: &str = "fixtures/generated/ex02_sync_call/process.cls";

struct Case {
    name: String,
    args: Vec<OsString>,
    cwd: PathBuf,
    codes: &'static [i32],
    /// What a refusal must name (the input's path or source).
    origin: String,
    /// The exit code this case must end with, when it is known.
    expect: Option<i32>,
    /// A text the refusal must contain, when it is known.
    says: Option<&'static str>,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn case(
    name: impl Into<String>,
    args: &[&dyn AsRef<std::ffi::OsStr>],
    codes: &'static [i32],
    origin: impl Into<String>,
) -> Case {
    Case {
        name: name.into(),
        args: args.iter().map(|a| a.as_ref().to_os_string()).collect(),
        cwd: root(),
        codes,
        origin: origin.into(),
        expect: None,
        says: None,
    }
}

impl Case {
    fn expect(mut self, code: i32, says: Option<&'static str>) -> Self {
        self.expect = Some(code);
        self.says = says;
        self
    }
    fn cwd(mut self, dir: &Path) -> Self {
        self.cwd = dir.to_path_buf();
        self
    }
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    timed_out: bool,
}

fn run(c: &Case, scratch: &Path) -> Outcome {
    let out = std::fs::File::create(scratch.join("out")).unwrap();
    let err_path = scratch.join("err");
    let err = std::fs::File::create(&err_path).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bplmigrate"));
    cmd.args(&c.args)
        .current_dir(&c.cwd)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env_remove("RUST_BACKTRACE")
        .env_remove("BPLMIGRATE_CONNECT");
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: MEMORY,
                rlim_max: MEMORY,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    let (status, timed_out) = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break (Some(s), false);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break (None, true);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Outcome {
        code: status.and_then(|s| s.code()),
        stderr: String::from_utf8_lossy(&std::fs::read(&err_path).unwrap()).into_owned(),
        timed_out,
    }
}

fn judge(c: &Case, o: &Outcome) -> Result<(), String> {
    if o.timed_out {
        return Err(format!("did not end within {DEADLINE:?}"));
    }
    let Some(code) = o.code else {
        return Err(format!(
            "killed by a signal (memory limit {MEMORY} bytes?); stderr: {}",
            o.stderr
        ));
    };
    if o.stderr.contains("panicked") || o.stderr.contains("RUST_BACKTRACE") {
        return Err(format!("panicked: {}", o.stderr));
    }
    if !c.codes.contains(&code) {
        return Err(format!(
            "exit code {code} not in {:?}; stderr: {}",
            c.codes, o.stderr
        ));
    }
    if let Some(e) = c.expect {
        if code != e {
            return Err(format!(
                "exit code {code}, expected {e}; stderr: {}",
                o.stderr
            ));
        }
    }
    if code == 2 {
        let first = o.stderr.lines().next().unwrap_or("");
        if !first.starts_with("error: ") {
            return Err(format!("refusal without `error: `: {:?}", o.stderr));
        }
        let origin = escaped_prefix(&c.origin);
        if !first.contains(&origin) {
            return Err(format!("refusal does not name {origin:?}: {first:?}"));
        }
        if let Some(s) = c.says {
            if !o.stderr.contains(s) {
                return Err(format!("refusal does not say {s:?}: {first:?}"));
            }
        }
        if o.stderr.chars().any(|ch| ch.is_control() && ch != '\n') {
            return Err(format!("raw control character in {:?}", o.stderr));
        }
        if o.stderr.len() > 8192 {
            return Err(format!("a {}-byte message", o.stderr.len()));
        }
    }
    Ok(())
}

/// How a message shows the start of `origin`: control characters escaped, at most 40
/// characters (a longer run may be cut).
fn escaped_prefix(origin: &str) -> String {
    let mut s = String::new();
    for ch in origin.chars().take(40) {
        if ch.is_control() {
            s.extend(ch.escape_debug());
        } else {
            s.push(ch);
        }
    }
    s
}

/// Run every case on two workers; returns the failures.
fn run_all(cases: &[Case]) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let scratch = tempfile::tempdir().unwrap();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = cases.get(i) else { break };
                    let o = run(c, scratch.path());
                    if let Err(why) = judge(c, &o) {
                        failures.lock().unwrap().push(format!("{}: {why}", c.name));
                    }
                }
            });
        }
    });
    let mut f = failures.into_inner().unwrap();
    f.sort();
    f
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn rel(p: &Path) -> String {
    p.strip_prefix(root()).unwrap_or(p).display().to_string()
}

fn check(cases: Vec<Case>, min: usize) {
    assert!(cases.len() >= min, "only {} cases", cases.len());
    let failures = run_all(&cases);
    assert!(
        failures.is_empty(),
        "{} of {} hostile runs failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn committed_corpus() {
    let mut cases = Vec::new();
    for f in files("fixtures/hostile/bpl") {
        let r = rel(&f);
        cases.push(case(format!("states {r}"), &[&"states", &r], STATES, &r));
        // The whole pipeline on the input against itself (plan(A, A)).
        cases.push(case(format!("plan {r} {r}"), &[&"plan", &r, &r], PLAN, &r));
    }
    for f in files("fixtures/hostile/thread") {
        let r = rel(&f);
        cases.push(case(
            format!("verify-numbering {r}"),
            &[&"verify-numbering", &GEN_BPL, &r],
            VERIFY,
            &r,
        ));
    }
    for f in files("fixtures/hostile/overrides") {
        let r = rel(&f);
        cases.push(case(
            format!("plan --overrides {r}"),
            &[&"plan", &OLD, &NEW, &"--overrides", &r],
            PLAN,
            &r,
        ));
    }
    for d in files("fixtures/hostile/folder") {
        let r = rel(&d);
        let c = case(
            format!("plan --verify {r}"),
            &[&"plan", &"--verify", &r],
            PLAN,
            &r,
        );
        // A BOM and CRLF line endings are normalized by design; every other edit is refused.
        let fine = ["/intact", "/plan-json-bom", "/sums-crlf"]
            .iter()
            .any(|s| r.ends_with(s));
        cases.push(if fine {
            c.expect(0, None)
        } else {
            c.expect(2, None)
        });
    }
    check(cases, 600);
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

/// `\xNN` escapes of `fixtures/hostile/rev.txt`.
fn unescape(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find("\\x") {
        out.push_str(&rest[..i]);
        match rest
            .get(i + 2..i + 4)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push_str("\\x");
                rest = &rest[i + 2..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn hostile_rev_paths() {
    let repo = tempfile::tempdir().unwrap();
    let r = repo.path();
    git(r, &["init", "-q"]);
    std::fs::copy(root().join(OLD), r.join("ok.cls")).unwrap();
    let mut big = std::fs::read_to_string(root().join(OLD)).unwrap();
    big.push_str(&"/// padding\n".repeat(1000));
    std::fs::write(r.join("big.cls"), big).unwrap();
    std::os::unix::fs::symlink("/dev/zero", r.join("link.cls")).unwrap();
    std::fs::create_dir(r.join("dir")).unwrap();
    std::fs::write(r.join("dir/x.cls"), "x").unwrap();
    git(r, &["add", "-A"]);
    git(r, &["commit", "-qm", "c"]);
    let mut cases = Vec::new();
    let text = std::fs::read_to_string(root().join("fixtures/hostile/rev.txt")).unwrap();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let src = unescape(line);
        cases.push(
            case(
                format!("states {line}"),
                &[&"states", &"--", &src],
                STATES,
                &src,
            )
            .cwd(r),
        );
    }
    cases.push(
        case(
            "big blob over the cap",
            &[&"states", &"--max-input-size", &"4K", &"HEAD:big.cls"],
            STATES,
            "HEAD:big.cls",
        )
        .cwd(r)
        .expect(2, Some("--max-input-size")),
    );
    cases.push(
        case(
            "ok blob",
            &[&"states", &"HEAD:ok.cls"],
            STATES,
            "HEAD:ok.cls",
        )
        .cwd(r)
        .expect(0, None),
    );
    cases.push(
        case("tree", &[&"states", &"HEAD:dir"], STATES, "HEAD:dir")
            .cwd(r)
            .expect(2, Some("it is a tree")),
    );
    let pwned = r.join("pwned");
    let arg = format!("--git-base=--output={}", pwned.display());
    cases.push(
        case(
            "check --git-base=--output=FILE",
            &[&"check", &arg],
            &[2],
            "revision '--output=",
        )
        .cwd(r),
    );
    check(cases, 20);
    assert!(
        !pwned.exists(),
        "a --git-base value was passed to git as an option"
    );
}

/// Special files, odd names and oversized files, for every reader.
#[test]
fn special_files_and_names() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let fifo = t.join("fifo.cls");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let _sock = std::os::unix::net::UnixListener::bind(t.join("sock.cls")).unwrap();
    std::os::unix::fs::symlink(&fifo, t.join("link-fifo.cls")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", t.join("link-zero.cls")).unwrap();
    std::os::unix::fs::symlink("/dev/urandom", t.join("link-urandom.toml")).unwrap();
    std::os::unix::fs::symlink(t.join("nowhere"), t.join("dangling.cls")).unwrap();
    std::fs::create_dir(t.join("dir.cls")).unwrap();
    let sparse = std::fs::File::create(t.join("sparse.cls")).unwrap();
    sparse.set_len(65 << 20).unwrap(); // over every default cap
    let good = std::fs::read_to_string(root().join(OLD)).unwrap();
    for name in [
        "new\nline.cls",
        "esc\u{1b}[31m.cls",
        "rtl\u{202e}slc.cls",
        " space .cls",
        "-dash.cls",
    ] {
        std::fs::write(t.join(name), &good).unwrap();
    }
    let mut cases = Vec::new();
    let specials = [
        ("fifo.cls", "FIFO"),
        ("sock.cls", "socket"),
        ("link-fifo.cls", "FIFO"),
        ("link-zero.cls", "character device"),
        ("link-urandom.toml", "character device"),
        ("dangling.cls", "no such file"),
        ("dir.cls", "directory"),
        ("sparse.cls", "--max-input-size"),
    ];
    for (name, says) in specials {
        let p = t.join(name).display().to_string();
        cases.push(
            case(format!("states {name}"), &[&"states", &p], STATES, &p).expect(2, Some(says)),
        );
        cases.push(
            case(
                format!("verify-numbering {name}"),
                &[&"verify-numbering", &GEN_BPL, &p],
                VERIFY,
                &p,
            )
            .expect(2, Some(says)),
        );
        cases.push(
            case(
                format!("--overrides {name}"),
                &[&"plan", &OLD, &NEW, &"--overrides", &p],
                PLAN,
                &p,
            )
            .expect(2, Some(says)),
        );
    }
    for name in [
        "new\nline.cls",
        "esc\u{1b}[31m.cls",
        "rtl\u{202e}slc.cls",
        " space .cls",
        "-dash.cls",
    ] {
        let p = t.join(name).display().to_string();
        cases.push(case(format!("states {name:?}"), &[&"states", &p], STATES, &p).expect(0, None));
    }
    // Migration folders whose files are special.
    let src = root().join("fixtures/hostile/folder/intact");
    for (label, file, target) in [
        ("plan.json is a FIFO", "plan.json", Some(fifo.clone())),
        (
            "checksum file is /dev/zero",
            "CHECKSUMS.sha256",
            Some(PathBuf::from("/dev/zero")),
        ),
        ("apply.sql is a directory", "apply.sql", None),
    ] {
        let d = t.join(format!("folder-{file}"));
        std::fs::create_dir(&d).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), d.join(e.file_name())).unwrap();
        }
        std::fs::remove_file(d.join(file)).unwrap();
        match target {
            Some(tgt) => std::os::unix::fs::symlink(tgt, d.join(file)).unwrap(),
            None => std::fs::create_dir(d.join(file)).unwrap(),
        }
        let p = d.display().to_string();
        cases.push(case(label, &[&"plan", &"--verify", &p], PLAN, &p).expect(2, None));
    }
    check(cases, 30);
}

fn bare(context: &str, body: &str) -> String {
    format!("<process request='Ens.Request' response='Ens.Response'>\n<context>{context}</context>\n<sequence>\n{body}\n</sequence>\n</process>\n")
}

/// The big inputs: each is linear work; a quadratic regression runs into the deadline.
#[test]
fn big_inputs_stay_linear() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let put = |name: &str, text: &str| {
        let p = t.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let call = |i: usize| {
        format!("<call name='C{i}' target='T' async='0'><request type='Ens.Request'/></call>")
    };
    let mut cases = Vec::new();

    // 100k context properties.
    let mut props = String::new();
    for i in 0..100_000 {
        let _ = write!(props, "<property name='P{i}' type='%String'/>");
    }
    let p = put("props.xml", &bare(&props, &call(0)));
    cases.push(case("100k context properties", &[&"states", &p], STATES, &p).expect(0, None));
    cases.push(
        case(
            "100k context properties, plan",
            &[&"plan", &p, &p],
            PLAN,
            &p,
        )
        .expect(0, None),
    );

    // 100k attributes on one element.
    let mut attrs = String::new();
    for i in 0..100_000 {
        let _ = write!(attrs, " a{i}='x'");
    }
    let p = put(
        "attrs.xml",
        &bare("", &format!("<trace value='1'{attrs}/>")),
    );
    cases.push(case("100k attributes", &[&"states", &p], STATES, &p));

    // A 1 MB attribute value.
    let p = put(
        "attr-1mb.xml",
        &bare(
            "",
            &format!("<trace name='{}' value='1'/>", "x".repeat(1 << 20)),
        ),
    );
    cases.push(case("1 MB attribute", &[&"states", &p], STATES, &p));

    // 100k nesting levels: refused at level 100 (kept), fast.
    let p = put(
        "deep.xml",
        &bare(
            "",
            &format!(
                "{}<trace value='1'/>{}",
                "<sequence>".repeat(100_000),
                "</sequence>".repeat(100_000)
            ),
        ),
    );
    cases.push(case("100k nesting levels", &[&"states", &p], STATES, &p).expect(2, None));

    // A minified BPL: 20k activities on one line (columns must not rescan the line).
    let body: String = (0..20_000).map(call).collect();
    let p = put("minified.xml", &bare("", &body).replace('\n', ""));
    cases.push(case("20k activities on one line", &[&"plan", &p, &p], PLAN, &p).expect(0, None));

    // 50k `XData A [` headers never closed: tree-sitter's error recovery on this shape grows
    // faster than the square of the input (>5 min for these 700 KB); the grammar gets a CPU
    // budget linear in the input (5 s + 5 s/MiB) and the file is refused where it stopped.
    let mut udl = String::from("Class Demo.X Extends Ens.BusinessProcessBPL\n{\n");
    for i in 0..50_000 {
        let _ = writeln!(udl, "XData A{i} [ ");
    }
    udl.push_str("}\n");
    let p = put("unclosed-xdata.cls", &udl);
    cases.push(
        case("50k unclosed XData headers", &[&"states", &p], STATES, &p).expect(
            2,
            Some("the ObjectScript grammar gave up on this file after 8 s"),
        ),
    );

    // A thread class of 5k state methods, each with a syntax error: one located error per
    // method, each found without walking the tree from its root.
    let mut udl = String::from("Class Demo.Gen.Ex02.Thread1 Extends Ens.BP.Thread\n{\n");
    for i in 1..=5_000 {
        let _ = writeln!(
            udl,
            "Method S{i}() As %Status\n{{\n Set x=(1\n Set ..%NextState=\"S{}\"\n}}",
            i + 1
        );
    }
    udl.push_str("}\n");
    let p = put("errors.cls", &udl);
    cases.push(
        case(
            "5k state methods with syntax errors",
            &[&"verify-numbering", &GEN_BPL, &p],
            VERIFY,
            &p,
        )
        .expect(2, None),
    );

    // Overrides with 100k entries (an error on the last one must still name its line).
    let mut ov = String::new();
    for _ in 0..100_000 {
        ov.push_str("[[ack]]\ncode = \"BPM0101\"\n");
    }
    ov.push_str("[[ack]]\ncode = \"BPM9999\"\n");
    let p = put("acks.toml", &ov);
    cases.push(
        case(
            "100k overrides entries",
            &[&"plan", &OLD, &NEW, &"--overrides", &p],
            PLAN,
            &p,
        )
        .expect(2, Some(":200001:")),
    );
    let mut ov = String::from("map = [");
    for _ in 0..100_000 {
        ov.push_str("{thread = 'Thread1', old = 'S6', new = 'S4'}, ");
    }
    ov.push_str("]\n");
    let p = put("maps-one-line.toml", &ov);
    cases.push(case(
        "100k overrides entries on one line",
        &[&"plan", &OLD, &NEW, &"--overrides", &p],
        PLAN,
        &p,
    ));
    check(cases, 10);
}

/// 20k reordered siblings in `plan`: every wait state moves, so every state has skip/re-run
/// findings. They name at most 10 activities each and count the rest, and a resume point
/// walks stretches of siblings that moved whole (a reversed list is one), so time and memory
/// stay linear: 20k takes ~10 s in a debug build; the quadratic walk it replaced took 15 s
/// at 5k (so ~4 min at 20k, past the deadline), and before findings were capped 5k ran out
/// of 3 GiB.
#[test]
fn twenty_thousand_reordered_siblings() {
    let tmp = tempfile::tempdir().unwrap();
    let call = |i: usize| {
        format!("<call name='C{i}' target='T' async='0'><request type='Ens.Request'/></call>")
    };
    let old: String = (0..20_000).map(call).collect::<Vec<_>>().join("\n");
    let new: String = (0..20_000).rev().map(call).collect::<Vec<_>>().join("\n");
    let po = tmp.path().join("old20k.xml");
    let pn = tmp.path().join("new20k.xml");
    std::fs::write(&po, bare("", &old)).unwrap();
    std::fs::write(&pn, bare("", &new)).unwrap();
    let (po, pn) = (po.display().to_string(), pn.display().to_string());
    check(
        vec![case(
            "20k reordered siblings",
            &[&"plan", &po, &pn],
            PLAN,
            &pn,
        )],
        1,
    );
}

/// Refusals of the SQL layer name the line of the overrides file the value came from.
#[test]
fn sql_refusals_are_located() {
    let tmp = tempfile::tempdir().unwrap();
    let old = "fixtures/changes/new_context_property/old.cls";
    let new = "fixtures/changes/new_context_property/new.cls";
    let mut cases = Vec::new();
    for (i, (value, dialect)) in [
        ("'a\\\\b'", "postgres"),
        ("'a\\u0001b'", "iris"),
        ("'x' || 'y'", "iris"),
    ]
    .into_iter()
    .enumerate()
    {
        let p = tmp.path().join(format!("ov{i}.toml"));
        std::fs::write(
            &p,
            format!("# defaults\n\n[[default]]\nproperty = \"Region\"\nvalue = \"{value}\"\n"),
        )
        .unwrap();
        let p = p.display().to_string();
        let out = tmp.path().join(format!("out{i}")).display().to_string();
        cases.push(
            case(
                format!("default {value} ({dialect})"),
                &[
                    &"plan",
                    &old,
                    &new,
                    &"--overrides",
                    &p,
                    &"--out",
                    &out,
                    &"--dialect",
                    &dialect,
                ],
                PLAN,
                format!("{p}:3: default"),
            )
            .expect(2, Some(".toml:3: default")),
        );
    }
    check(cases, 3);
}

/// Every flag given in (fractional) seconds or as a duration refuses NaN, infinities,
/// negative and out-of-range values with exit 2 naming the flag, before any conversion to a
/// `Duration` could panic (`--interval=nan` once did). Parsed before anything connects.
#[test]
fn duration_flags_refuse_what_no_duration_holds() {
    let watch = |flag: &'static str, value: &'static str| {
        let arg = format!("{flag}={value}");
        case(
            format!("status {arg}"),
            &[
                &"status",
                &"--connect",
                &"DSN=nowhere",
                &"--plan",
                &"nowhere",
                &"--watch",
                &arg,
            ],
            &[2],
            flag,
        )
        .expect(2, None)
    };
    let mut cases = Vec::new();
    for v in [
        "nan", "NaN", "inf", "-inf", "-1", "1e400", "1e12", "0.001", "", "5s",
    ] {
        cases.push(watch("--interval", v));
    }
    for v in ["nan", "inf", "-1", "1e12", "86401"] {
        let arg = format!("--lock-timeout={v}");
        cases.push(
            case(
                format!("apply {arg}"),
                &[&"apply", &"nowhere", &"--connect", &"DSN=nowhere", &arg],
                &[2],
                "--lock-timeout",
            )
            .expect(2, None),
        );
    }
    for v in ["500000000years", "18446744073709551615s", "nan", "-1s"] {
        cases.push(watch("--timeout", v));
    }
    check(cases, 19);
}
