//! `review.html`: one self-contained review report of a plan (inline CSS and SVG, no
//! scripts): verdict, state table, findings, preconditions, the picture and the exact SQL.
//! Written as well-formed XHTML-compatible markup so it can be checked by an XML parser.

use super::change::severity_word;
use super::svg::esc;
use crate::plan::MigrationPlan;
use std::fmt::Write as _;

/// A file shown verbatim in the report (e.g. `apply.sql`).
pub struct Listing<'a> {
    pub name: &'a str,
    pub text: &'a str,
}

const CSS: &str = "
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1400px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
code,pre,td.m{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:12px}
pre{background:#f6f8fa;border:1px solid #ddd;padding:10px;overflow:auto;max-height:600px}
table{border-collapse:collapse;margin:6px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}.verdict{display:inline-block;padding:3px 10px;border-radius:4px;font-weight:bold;color:#fff}
.v-identical,.v-compatible{background:#2e8b57}.v-migratable{background:#1f5fbf}.v-drain{background:#d97a00}.v-blocked{background:#c0392b}
.sev-error{color:#c0392b;font-weight:bold}.sev-warning{color:#b36200;font-weight:bold}.sev-info{color:#1f5fbf}
tr.f-removed td{background:#ffd0d0}tr.f-drained td{background:#ffe8c7}tr.f-renumbered td{background:#dcebff}
tr.f-overridden td{background:#eadcff}tr.alarm td{background:#ffb0b0;font-weight:bold}
.alarm-box{border:3px solid #c0392b;background:#ffe0e0;padding:8px 12px;font-weight:bold;color:#c0392b;margin:10px 0}
.picture{overflow:auto;border:1px solid #ddd;max-height:1200px}.meta td{border:none;padding:1px 8px 1px 0}
";

/// The report for `plan`; `view` is its [`from_plan`](super::view::from_plan) view and `svg`
/// the change picture drawn from it.
pub fn review_html(
    plan: &MigrationPlan,
    view: &super::view::ChangeView,
    svg: &str,
    listings: &[Listing],
) -> String {
    let mut o = String::with_capacity(svg.len() + 16384);
    let verdict = plan.verdict.as_str();
    o.push_str("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    let _ = writeln!(
        o,
        "<title>bplmigrate review: {} ({})</title>",
        esc(&plan.old.class),
        esc(&plan.plan_id)
    );
    let _ = writeln!(o, "<style>{CSS}</style>\n</head>\n<body>");
    let _ = writeln!(
        o,
        "<h1>{} <span class=\"verdict v-{}\">{}</span></h1>",
        esc(&plan.old.class),
        esc(verdict),
        esc(&verdict.to_uppercase())
    );
    o.push_str("<table class=\"meta\">\n");
    let mut meta = |k: &str, v: String| {
        let _ = writeln!(
            o,
            "<tr><td>{}</td><td><code>{}</code></td></tr>",
            esc(k),
            esc(&v)
        );
    };
    meta("plan id", plan.plan_id.clone());
    meta(
        "old",
        format!("{} (sha256 {})", view.old_label, plan.old.sha256),
    );
    meta(
        "new",
        format!("{} (sha256 {})", view.new_label, plan.new.sha256),
    );
    meta("compiler", plan.compiler.clone());
    meta("tool", format!("bplmigrate {}", plan.tool_version));
    o.push_str("</table>\n");
    // The summary line of the human plan (verdict and what it asks for), from its one renderer.
    let human =
        crate::plan::render::plan_human(plan, crate::plan::render::RenderOptions::default());
    let _ = writeln!(
        o,
        "<p><strong>{}</strong></p>",
        esc(human.lines().next().unwrap_or(""))
    );

    let removed = view.removed_rest_states();
    if !removed.is_empty() {
        let list: Vec<String> = removed
            .iter()
            .map(|(t, s)| format!("Thread{t}:{s}"))
            .collect();
        let _ = writeln!(
            o,
            "<div class=\"alarm-box\">⚠ {} removed wait state{}: {}. Instances resting there have no state to resume in.</div>",
            removed.len(),
            if removed.len() == 1 { "" } else { "s" },
            esc(&list.join(", "))
        );
    }

    // Findings.
    let _ = writeln!(o, "<h2>Findings ({})</h2>", plan.findings.len());
    if plan.findings.is_empty() {
        o.push_str("<p>None.</p>\n");
    } else {
        o.push_str("<table>\n<tr><th>#</th><th>severity</th><th>code</th><th>finding</th><th>states</th></tr>\n");
        for (i, f) in plan.findings.iter().enumerate() {
            let sev = severity_word(f.severity);
            let name = f.code.name();
            let _ = writeln!(
                o,
                "<tr><td>{}</td><td class=\"sev-{sev}\">{sev}{}</td><td><code>{}</code><br/>{}</td><td>{}</td><td class=\"m\">{}</td></tr>",
                i + 1,
                if f.acknowledged { " (acknowledged)" } else { "" },
                esc(f.code.as_str()),
                esc(name),
                esc(&f.message),
                esc(&f.states.join(", "))
            );
        }
        o.push_str("</table>\n");
    }

    // Preconditions.
    let _ = writeln!(o, "<h2>Preconditions ({})</h2>", plan.preconditions.len());
    o.push_str("<ul>\n");
    for p in &plan.preconditions {
        let _ = writeln!(o, "<li>{}</li>", esc(&p.to_string()));
    }
    o.push_str("</ul>\n");

    // State tables.
    o.push_str("<h2>State mapping</h2>\n");
    for (t, pair) in plan.threads.iter().zip(&view.pairs) {
        let _ = writeln!(
            o,
            "<h3>{} → {}</h3>",
            esc(&t.old_class),
            esc(t.new_class.as_deref().unwrap_or("(no counterpart)"))
        );
        o.push_str("<table>\n<tr><th>old</th><th>new</th><th>role</th><th>activity</th><th>new activity</th><th>fate</th><th>via</th><th>rest</th><th>note</th></tr>\n");
        for (s, f) in t.states.iter().zip(&pair.states) {
            let rest = if s.join {
                "join"
            } else if s.wait {
                "wait"
            } else {
                ""
            };
            let class = if !rest.is_empty() && s.new.is_none() {
                "alarm".to_string()
            } else {
                format!("f-{}", f.fate.as_str())
            };
            let _ = writeln!(
                o,
                "<tr class=\"{class}\"><td class=\"m\">{}</td><td class=\"m\">{}</td><td class=\"m\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{rest}</td><td>{}</td></tr>",
                s.old,
                crate::states::name_or(s.new, "—"),
                esc(&s.role.to_string()),
                esc(&s.old_activity.label()),
                esc(&s.new_activity.as_ref().map(|a| a.label()).unwrap_or_default()),
                esc(f.fate.as_str()),
                esc(&s.via),
                esc(s.note.as_deref().unwrap_or(""))
            );
        }
        o.push_str("</table>\n");
    }
    if !plan.response_handlers.is_empty() {
        o.push_str(
            "<h3>Response handlers</h3>\n<table>\n<tr><th>old</th><th>new</th><th>call</th></tr>\n",
        );
        for h in &plan.response_handlers {
            let _ = writeln!(
                o,
                "<tr><td class=\"m\">{}</td><td class=\"m\">{}</td><td>{}</td></tr>",
                esc(&h.old),
                esc(h.new.as_deref().unwrap_or("—")),
                esc(&h.call)
            );
        }
        o.push_str("</table>\n");
    }

    o.push_str("<h2>Picture</h2>\n<div class=\"picture\">\n");
    // The SVG is a complete document of its own; inline it without its own prolog.
    o.push_str(svg.trim_start_matches(|c: char| c != '<'));
    o.push_str("</div>\n");

    for l in listings {
        let _ = writeln!(o, "<h2>{}</h2>\n<pre>{}</pre>", esc(l.name), esc(l.text));
    }
    o.push_str("</body>\n</html>\n");
    o
}
