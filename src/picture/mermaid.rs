//! The side-by-side change as a Mermaid flowchart, for CI systems that render Markdown.

use super::draw::thread_title;
use super::layout::{error_runs, row_of, EdgeKind};
use super::view::{ChangeView, Fate};
use crate::states::{CompiledProcess, ThreadClass};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    s.replace('&', "#38;")
        .replace('"', "#quot;")
        .replace('<', "#60;")
        .replace('>', "#62;")
        .replace(['\n', '\r'], " ")
}

/// One thread's states and edges inside a subgraph; `extra` adds text to a state's label.
fn thread(
    o: &mut String,
    id: &str,
    caption: &str,
    t: &ThreadClass,
    extra: &dyn Fn(&str) -> String,
) {
    let _ = writeln!(o, "    subgraph {id}[\"{}\"]", esc(caption));
    o.push_str("      direction TB\n");
    for s in &t.states {
        let _ = writeln!(
            o,
            "      {id}_{}[\"{} {}<br/>{}{}\"]",
            s.name,
            s.name,
            s.role,
            esc(&s.activity.label()),
            extra(&s.name.to_string())
        );
    }
    let _ = writeln!(o, "      {id}_Stop((Stop))");
    let name = |r: usize| {
        t.states
            .get(r)
            .map_or("Stop".to_string(), |s| s.name.to_string())
    };
    for (i, s) in t.states.iter().enumerate() {
        for n in &s.successors {
            let Some(j) = row_of(t, n) else { continue };
            let arrow = if s.dead_successors().contains(n) {
                "-. dead .->"
            } else {
                "-->"
            };
            let _ = writeln!(o, "      {id}_{} {arrow} {id}_{}", s.name, name(j));
        }
        for n in s.return_successors() {
            if row_of(t, n).is_some() {
                let _ = writeln!(o, "      {id}_{} -. return .-> {id}_{n}", s.name);
            }
        }
        let _ = i;
    }
    for (from, to, kind) in error_runs(t) {
        if let EdgeKind::Error { run_end } = kind {
            let span = if run_end > from {
                format!("error S{}–S{}", from + 1, run_end + 1)
            } else {
                "error".into()
            };
            let _ = writeln!(
                o,
                "      {id}_{} -. {span} .-> {id}_{}",
                name(from),
                name(to)
            );
        }
    }
    o.push_str("    end\n");
}

/// Mermaid flowchart of the change: per thread class an old and a new subgraph, mapping edges
/// between them, old states classed by fate, findings numbered in the labels.
pub fn to_mermaid(v: &ChangeView, old: &CompiledProcess, new: &CompiledProcess) -> String {
    let mut o = String::from("flowchart LR\n");
    let _ = writeln!(o, "  %% {}: {}", esc(&v.class), esc(&v.headline));
    let mut classes: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let marks = super::change::skip_marks(v, new);
    let fx = v.finding_index();
    for (b, pair) in v.pairs.iter().enumerate() {
        let ot = pair.old.and_then(|n| old.thread(n));
        let nt = pair.new.and_then(|n| new.thread(n));
        let caption = ot.or(nt).map(thread_title).unwrap_or_default();
        let _ = writeln!(o, "  subgraph B{b}[\"{}\"]", esc(&caption));
        o.push_str("    direction LR\n");
        if let Some(t) = ot {
            let fates: BTreeMap<&str, (Fate, bool)> = pair
                .states
                .iter()
                .map(|s| (s.old.as_str(), (s.fate, s.rest)))
                .collect();
            let extra = |name: &str| {
                let mut x = String::new();
                if let Some((f, rest)) = fates.get(name) {
                    if *rest
                        && matches!(f, Fate::Removed | Fate::Drained)
                        && pair.states.iter().any(|s| s.old == name && s.new.is_none())
                    {
                        x.push_str("<br/>✖ REMOVED WAIT STATE");
                    }
                }
                for (i, f) in fx.at(false, t.number, Some(name)) {
                    let _ = write!(x, "<br/>#{i} {}", f.code);
                }
                x
            };
            thread(
                &mut o,
                &format!("O{b}"),
                &format!("old {}", t.class),
                t,
                &extra,
            );
            for s in &pair.states {
                let class = if s.rest && s.new.is_none() {
                    "removedwait"
                } else {
                    s.fate.as_str()
                };
                classes
                    .entry(class)
                    .or_default()
                    .push(format!("O{b}_{}", s.old));
            }
        }
        if let Some(t) = nt {
            let targeted: HashSet<&str> = pair
                .states
                .iter()
                .filter_map(|s| s.new.as_deref())
                .collect();
            let extra = |name: &str| {
                let mut x = String::new();
                if let Some(ms) = marks.get(&(t.number, name.to_string())) {
                    for (k, what) in ms {
                        let _ = write!(x, "<br/>{what} #{k}");
                    }
                }
                for (i, f) in fx.at(true, t.number, Some(name)) {
                    let _ = write!(x, "<br/>#{i} {}", f.code);
                }
                x
            };
            thread(
                &mut o,
                &format!("N{b}"),
                &format!("new {}", t.class),
                t,
                &extra,
            );
            for s in &t.states {
                let id = format!("N{b}_{}", s.name);
                let name = s.name.to_string();
                if marks.contains_key(&(t.number, name.clone())) {
                    classes.entry("skipped").or_default().push(id);
                } else if pair.old.is_some() && !targeted.contains(name.as_str()) {
                    classes.entry("added").or_default().push(id);
                } else if s.wait {
                    classes.entry("wait").or_default().push(id);
                }
            }
        }
        if ot.is_some() && nt.is_some() {
            for s in &pair.states {
                let Some(n) = &s.new else { continue };
                let arrow = match s.fate {
                    Fate::Unchanged => "-.->".to_string(),
                    Fate::Renumbered => "== renumbered ==>".to_string(),
                    Fate::Overridden => "== override ==>".to_string(),
                    f => format!("-. {} .->", f.as_str()),
                };
                let _ = writeln!(o, "    O{b}_{} {arrow} N{b}_{n}", s.old);
            }
        }
        o.push_str("  end\n");
    }
    for (class, style) in [
        ("unchanged", "fill:#eaf6ea,stroke:#4f8f4f"),
        ("renumbered", "fill:#dcebff,stroke:#1f5fbf,stroke-width:2px"),
        ("overridden", "fill:#eadcff,stroke:#7a3fc0,stroke-width:2px"),
        ("drained", "fill:#ffe8c7,stroke:#d97a00,stroke-width:2px"),
        ("removed", "fill:#ffd0d0,stroke:#c0392b,stroke-width:2px"),
        (
            "removedwait",
            "fill:#ffb0b0,stroke:#c0392b,stroke-width:4px",
        ),
        ("added", "fill:#e4f8e4,stroke:#2e8b57,stroke-width:2px"),
        (
            "skipped",
            "fill:#fff3e0,stroke:#d97a00,stroke-width:2px,stroke-dasharray:4 3",
        ),
        ("wait", "fill:#ffe9a8,stroke:#b8860b,stroke-width:2px"),
    ] {
        if let Some(ids) = classes.get(class) {
            let _ = writeln!(o, "  classDef {class} {style}");
            let _ = writeln!(o, "  class {} {class}", ids.join(","));
        }
    }
    for (i, f) in v.findings.iter().enumerate() {
        let _ = writeln!(o, "  %% #{} {} {}", i + 1, f.code, esc(&f.message));
    }
    o
}
