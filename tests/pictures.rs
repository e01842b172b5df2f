//! Pictures: every states fixture and every change pair draws; every SVG is well-formed XML
//! and renders to pixels with resvg; the review report is well-formed and complete; a
//! 2,000-state process lays out (generous timeout, no timing assertion).

use bplmigrate::bpl::{self, Bpl, LoadOptions};
use bplmigrate::picture::{self, Fate};
use bplmigrate::plan::Overrides;
use bplmigrate::states::{self, CompiledProcess, Compiler};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[path = "support/planned.rs"]
mod planned;

fn load(path: &Path) -> Bpl {
    bpl::load(&path.to_string_lossy(), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn compile(b: &Bpl) -> CompiledProcess {
    states::compile(b, Compiler::Current).unwrap_or_else(|e| panic!("{e}"))
}

fn fontdb_options() -> &'static resvg::usvg::Options<'static> {
    static OPT: OnceLock<resvg::usvg::Options<'static>> = OnceLock::new();
    OPT.get_or_init(|| {
        let mut o = resvg::usvg::Options::default();
        o.fontdb_mut().load_system_fonts();
        o
    })
}

/// Well-formed XML, renders with resvg, and the pixels are not all white.
fn check_svg(what: &str, svg: &str) {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{what}: not XML: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg", "{what}");
    let tree = resvg::usvg::Tree::from_str(svg, fontdb_options())
        .unwrap_or_else(|e| panic!("{what}: resvg cannot read it: {e}"));
    let size = tree.size().to_int_size();
    // Render at a scale that keeps tall pictures cheap.
    let scale = (2000.0 / size.height() as f32).min(1.0);
    let (w, h) = (
        ((size.width() as f32 * scale).ceil() as u32).max(1),
        ((size.height() as f32 * scale).ceil() as u32).max(1),
    );
    let mut pixmap = resvg::tiny_skia::Pixmap::new(w, h).expect("pixmap");
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    let inked = pixmap
        .pixels()
        .iter()
        .filter(|p| p.red() < 200 || p.green() < 200 || p.blue() < 200)
        .count();
    assert!(
        inked > 500,
        "{what}: rendered almost nothing ({inked} dark pixels)"
    );
}

fn state_fixtures() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for root in ["fixtures/states", "fixtures/generated"] {
        for e in std::fs::read_dir(root).unwrap() {
            let dir = e.unwrap().path();
            if let Some(p) = ["process.cls", "process.xml"]
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.exists())
            {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

struct Pair {
    dir: PathBuf,
    planned: planned::Planned,
    oc: CompiledProcess,
    nc: CompiledProcess,
}

fn change_pairs() -> Vec<Pair> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("fixtures/changes")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("old.cls").exists() && p.join("new.cls").exists())
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|dir| {
            let (o, n) = (load(&dir.join("old.cls")), load(&dir.join("new.cls")));
            let (oc, nc) = (compile(&o), compile(&n));
            let ovf = dir.join("overrides.toml");
            let ov = ovf.exists().then(|| {
                Overrides::parse("overrides.toml", &std::fs::read_to_string(&ovf).unwrap()).unwrap()
            });
            let planned = planned::build(&o, &n, &oc, &nc, ov.as_ref())
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            Pair {
                dir,
                planned,
                oc,
                nc,
            }
        })
        .collect()
}

#[test]
fn every_states_fixture_draws_valid_svg_that_renders() {
    let fixtures = state_fixtures();
    assert!(fixtures.len() >= 30, "only {} fixtures", fixtures.len());
    for f in fixtures {
        let cp = compile(&load(&f));
        let svg = picture::states_svg(&cp);
        let what = f.display().to_string();
        check_svg(&what, &svg);
        // Titled: class, version, compiler; every thread class; every state.
        assert!(
            svg.contains(&bplmigrate::picture::xml_escape(&cp.class)),
            "{what}"
        );
        assert!(svg.contains("compiler current"), "{what}");
        for t in &cp.threads {
            assert!(
                svg.contains(&format!("Thread{} — ", t.number)),
                "{what}: Thread{} untitled",
                t.number
            );
            for s in &t.states {
                assert!(
                    svg.contains(&format!(">{} {}", s.name, s.role)),
                    "{what}: {} {}",
                    t.class,
                    s.name
                );
            }
        }
    }
}

#[test]
fn flow_threads_are_titled_by_flow_and_branch() {
    let cp = compile(&load(Path::new(
        "fixtures/generated/ex08_flow_threads/process.cls",
    )));
    let svg = picture::states_svg(&cp);
    assert!(
        svg.contains("Thread2 — flow &quot;FL&quot;, branch 1"),
        "{svg}"
    );
    assert!(svg.contains("Thread5 — flow &quot;FL&quot;, branch 2"));
    assert!(svg.contains("JOIN"));
}

#[test]
fn every_change_pair_draws_valid_pictures_that_render() {
    let pairs = change_pairs();
    assert!(pairs.len() >= 15);
    for p in &pairs {
        let what = p.dir.display().to_string();
        let view = picture::from_plan(&p.planned.plan, &p.oc, &p.nc);
        let svg = picture::change_svg(&view, &p.oc, &p.nc);
        check_svg(&format!("{what} plan"), &svg);
        for (i, f) in p.planned.plan.findings.iter().enumerate() {
            let sev = f.severity.as_str();
            assert!(
                svg.contains(&format!("#{} {sev} {} ", i + 1, f.code)),
                "{what}: finding {} not listed",
                f.code
            );
        }
        let dview = picture::from_diff(&p.planned.diff, &p.oc, &p.nc);
        check_svg(
            &format!("{what} diff"),
            &picture::change_svg(&dview, &p.oc, &p.nc),
        );
        for v in [&view, &dview] {
            let m = picture::change_mermaid(v, &p.oc, &p.nc);
            assert!(m.starts_with("flowchart LR\n"), "{what}");
            for (b, pair) in v.pairs.iter().enumerate() {
                for s in &pair.states {
                    assert!(
                        m.contains(&format!("O{b}_{}[", s.old)),
                        "{what}: {} missing in mermaid",
                        s.old
                    );
                    if let (Some(n), Some(_)) = (&s.new, pair.new) {
                        assert!(
                            m.contains(&format!("O{b}_{} ", s.old))
                                && m.contains(&format!("N{b}_{n}")),
                            "{what}: mapping {} → {n} missing in mermaid",
                            s.old
                        );
                    }
                }
            }
        }
        // Every old state of every old thread has exactly one fate.
        for (tm, pair) in p.planned.plan.threads.iter().zip(&view.pairs) {
            assert_eq!(tm.states.len(), pair.states.len(), "{what}");
        }
    }
}

#[test]
fn removed_wait_state_is_impossible_to_miss_and_fates_follow_the_plan() {
    let pairs = change_pairs();
    let p = pairs
        .iter()
        .find(|p| p.dir.ends_with("removed_wait_state"))
        .unwrap();
    let view = picture::from_plan(&p.planned.plan, &p.oc, &p.nc);
    let fate = |s: &str| {
        view.pairs[0]
            .states
            .iter()
            .find(|x| x.old == s)
            .unwrap()
            .fate
    };
    // S9/S10 (the delay's states) are named by an open error: removed; S11/S12 moved down:
    // renumbered.
    assert_eq!(fate("S9"), Fate::Removed);
    assert_eq!(fate("S10"), Fate::Removed);
    assert_eq!(fate("S11"), Fate::Renumbered);
    assert_eq!(fate("S1"), Fate::Unchanged);
    assert_eq!(view.removed_rest_states(), vec![(1, "S9")]);
    let svg = picture::change_svg(&view, &p.oc, &p.nc);
    assert!(svg.contains("1 removed wait state (Thread1:S9)"));
    assert!(svg.contains("✖ REMOVED WAIT STATE"));
    let m = picture::change_mermaid(&view, &p.oc, &p.nc);
    assert!(m.contains("class O0_S9 removedwait"), "{m}");
    assert!(m.contains("O0_S11 == renumbered ==> N0_S9"), "{m}");

    // A plan whose only requirement is that states drain: every removed state is drained.
    let p = pairs
        .iter()
        .find(|p| p.dir.ends_with("drain_only"))
        .unwrap();
    let view = picture::from_plan(&p.planned.plan, &p.oc, &p.nc);
    let removed: Vec<_> = view
        .pairs
        .iter()
        .flat_map(|t| &t.states)
        .filter(|s| s.new.is_none())
        .collect();
    assert!(!removed.is_empty());
    assert!(
        removed.iter().all(|s| s.fate == Fate::Drained),
        "{removed:?}"
    );

    // The mapped variant: the override turns the wait state into an overridden mapping.
    let p = pairs
        .iter()
        .find(|p| p.dir.ends_with("removed_wait_state_mapped"))
        .unwrap();
    let view = picture::from_plan(&p.planned.plan, &p.oc, &p.nc);
    assert!(view.pairs[0]
        .states
        .iter()
        .any(|s| s.fate == Fate::Overridden));
}

#[test]
fn skipped_activities_are_marked_on_the_new_path() {
    let pairs = change_pairs();
    let mut marked = 0;
    for p in &pairs {
        let Some((i, f)) = p.planned.plan.findings.iter().enumerate().find(|(_, f)| {
            f.code == bplmigrate::plan::findings::Code::SkippedActivities
                && !f.new_activities.is_empty()
        }) else {
            continue;
        };
        // Marked where a new state owns or sends a skipped activity (an assign runs inside
        // some state's code, which the compiled states do not record).
        let runs = p.nc.threads.iter().flat_map(|t| &t.states).any(|s| {
            f.new_activities.iter().any(|a| {
                a.id == s.activity.id
                    || (a.element == "call"
                        && a.name
                            .as_ref()
                            .is_some_and(|n| s.sends().iter().any(|x| x == n)))
            })
        });
        if !runs {
            continue;
        }
        let view = picture::from_plan(&p.planned.plan, &p.oc, &p.nc);
        let svg = picture::change_svg(&view, &p.oc, &p.nc);
        assert!(
            svg.contains(&format!("skipped #{}", i + 1)),
            "{}: {}",
            p.dir.display(),
            f.message
        );
        marked += 1;
    }
    assert!(marked > 0, "no fixture has a skip finding");
}

#[test]
fn review_html_is_well_formed_and_complete() {
    for p in change_pairs() {
        let plan = &p.planned.plan;
        let view = picture::from_plan(plan, &p.oc, &p.nc);
        let svg = picture::change_svg(&view, &p.oc, &p.nc);
        let sql = "-- a <script>alert(1)</script> & \"quotes\"\nSELECT 1;\n";
        let html = picture::review_html(
            plan,
            &view,
            &svg,
            &[picture::Listing {
                name: "apply.sql",
                text: sql,
            }],
        );
        let what = p.dir.display().to_string();
        let doc = roxmltree::Document::parse_with_options(
            &html,
            roxmltree::ParsingOptions {
                allow_dtd: true,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("{what}: review.html is not well-formed: {e}"));
        assert!(doc
            .descendants()
            .any(|n| n.has_tag_name(("http://www.w3.org/2000/svg", "svg"))));
        assert!(
            !doc.descendants().any(|n| n.tag_name().name() == "script"),
            "{what}: a script element"
        );
        assert!(html.contains(&plan.plan_id), "{what}");
        assert!(html.contains(plan.verdict.as_str()), "{what}");
        for f in &plan.findings {
            assert!(html.contains(f.code.as_str()), "{what}: {}", f.code);
        }
        assert!(
            html.contains("-- a &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;")
        );
        for t in &plan.threads {
            for s in &t.states {
                assert!(
                    html.contains(&format!("<td class=\"m\">{}</td>", s.old)),
                    "{what}: {}",
                    s.old
                );
            }
        }
    }
}

/// `plan --out` writes review.html with the folder's exact apply.sql, checksummed, and the
/// folder still verifies.
#[test]
fn plan_out_writes_review_html_into_a_verified_folder() {
    let bin = env!("CARGO_BIN_EXE_bplmigrate");
    let dir = tempfile::tempdir().unwrap();
    let f = "fixtures/changes/insert_middle";
    let o = Command::new(bin)
        .args([
            "plan",
            &format!("{f}/old.cls"),
            &format!("{f}/new.cls"),
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let folder = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let html = std::fs::read_to_string(folder.join("review.html")).unwrap();
    let apply = std::fs::read_to_string(folder.join("apply.sql")).unwrap();
    assert!(
        html.contains(&bplmigrate::picture::xml_escape(&apply)),
        "review.html must show the exact apply.sql"
    );
    let sums = std::fs::read_to_string(folder.join("CHECKSUMS.sha256")).unwrap();
    assert!(sums.contains("  review.html\n"));
    let v = Command::new(bin)
        .args(["plan", "--verify"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    // Writing the same plan again finds the same folder (review.html is deterministic).
    let again = Command::new(bin)
        .args([
            "plan",
            &format!("{f}/old.cls"),
            &format!("{f}/new.cls"),
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    // An edited report is caught like any other file.
    std::fs::write(folder.join("review.html"), html.replace("<h2>", "<h2>x")).unwrap();
    let v = Command::new(bin)
        .args(["plan", "--verify"])
        .arg(&folder)
        .output()
        .unwrap();
    assert_eq!(v.status.code(), Some(2));
}

#[test]
fn cli_draws_plan_and_diff_as_svg_and_mermaid() {
    let bin = env!("CARGO_BIN_EXE_bplmigrate");
    let f = "fixtures/changes/removed_wait_state";
    for cmd in ["plan", "diff"] {
        for (format, head) in [("svg", "<svg"), ("mermaid", "flowchart LR")] {
            let o = Command::new(bin)
                .args([
                    cmd,
                    &format!("{f}/old.cls"),
                    &format!("{f}/new.cls"),
                    "--format",
                    format,
                ])
                .output()
                .unwrap();
            // A blocked plan exits 1 (like `check`) whatever it prints; diff exits 0.
            let want = if cmd == "plan" { 1 } else { 0 };
            assert_eq!(
                o.status.code(),
                Some(want),
                "{cmd} {format}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(
                String::from_utf8_lossy(&o.stdout).starts_with(head),
                "{cmd} {format}"
            );
        }
    }
    let o = Command::new(bin)
        .args(["plan", "--verify", "nowhere", "--format", "svg"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "plan --verify draws no picture");
    assert!(String::from_utf8_lossy(&o.stderr).contains("draws no picture"));
}

/// N sequential waits and nested if/while/scope blocks, about 2,000 states each: laid out
/// and drawn (a timeout far above the measured time guards against a regression to an
/// exponential layout; speed itself is measured by scripts/bench-pictures.sh).
#[test]
fn two_thousand_states_lay_out() {
    let mut seq = String::from("<process request='Ens.Request' response='Ens.Response'><sequence>");
    for i in 0..1000 {
        seq.push_str(&format!(
            "<call name='C{i}' target='Op' async='0'><request type='Ens.Request'/></call>"
        ));
    }
    seq.push_str("</sequence></process>");
    let mut mixed = String::from("<process request='Ens.Request' response='Ens.Response'><context><property name='n' type='%Integer'/></context><sequence>");
    for i in 0..105 {
        mixed.push_str(&format!(
            "<if name='If{i}' condition='context.n&gt;1'><true><call name='A{i}' target='Op' async='0'><request type='Ens.Request'/></call></true>\
             <false><delay name='D{i}' duration='\"PT1S\"'/></false></if>\
             <while name='W{i}' condition='context.n&lt;2'><call name='B{i}' target='Op' async='0'><request type='Ens.Request'/></call></while>\
             <scope name='Sc{i}'><call name='E{i}' target='Op' async='0'><request type='Ens.Request'/></call>\
             <faulthandlers><catchall><assign property='context.n' value='0'/></catchall></faulthandlers></scope>"
        ));
    }
    mixed.push_str("</sequence></process>");
    for (name, text) in [("sequential", seq), ("mixed", mixed)] {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let b = bpl::parse_bare("big.xml", &text, "Big.Process").unwrap();
            let cp = states::compile(&b, Compiler::Current).unwrap();
            let svg = picture::states_svg(&cp);
            let _ = tx.send((cp.threads[0].states.len(), svg));
        });
        let (n, svg) = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("{name}: no picture within 120 s"));
        assert!(n >= 1900, "{name}: only {n} states");
        roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(svg.contains(&format!(">S{n} ")), "{name}");
    }
    // The change picture of 1,000 → 999 sequential waits (one removed in the middle).
    let calls = |skip: usize| {
        let mut t =
            String::from("<process request='Ens.Request' response='Ens.Response'><sequence>");
        for i in (0..1000).filter(|&i| i != skip) {
            t.push_str(&format!(
                "<call name='C{i}' target='Op' async='0'><request type='Ens.Request'/></call>"
            ));
        }
        t.push_str("</sequence></process>");
        t
    };
    let (old, new) = (calls(usize::MAX), calls(500));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let o = bpl::parse_bare("old.xml", &old, "Big.Process").unwrap();
        let n = bpl::parse_bare("new.xml", &new, "Big.Process").unwrap();
        let (oc, nc) = (compile(&o), compile(&n));
        let planned = planned::build(&o, &n, &oc, &nc, None).unwrap();
        let view = picture::from_plan(&planned.plan, &oc, &nc);
        let svg = picture::change_svg(&view, &oc, &nc);
        let mermaid = picture::change_mermaid(&view, &oc, &nc);
        let _ = tx.send((view.removed_rest_states().len(), svg, mermaid));
    });
    let (removed, svg, mermaid) = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("no change picture within 120 s");
    assert_eq!(removed, 1, "the removed call's wait state");
    roxmltree::Document::parse(&svg).unwrap();
    assert!(mermaid.contains("removedwait"));
}
