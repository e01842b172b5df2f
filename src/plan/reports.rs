//! CI reports from plan findings: GitLab Code Quality JSON and SARIF 2.1.0.
//!
//! Fingerprints are SHA-256 (hex) over the class, the finding code and the states involved
//! (the activity labels when no state is), so they survive unrelated edits and tool
//! upgrades and never depend on a process-local hasher.

use super::findings::{lookup, RULES};
use super::model::{Finding, MigrationPlan, Severity};
use serde_json::{json, Value};

/// One checked BPL: its plan, and the path (in the repository) findings point at.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a> {
    pub plan: &'a MigrationPlan,
    pub path: &'a str,
}

/// Stable fingerprint of a finding.
pub fn fingerprint(plan: &MigrationPlan, f: &Finding) -> String {
    let mut s = format!("{}\n{}\n", plan.new.class, f.code);
    if f.states.is_empty() {
        for a in f
            .activities
            .iter()
            .map(|a| format!("old {}", a.label()))
            .chain(
                f.new_activities
                    .iter()
                    .map(|a| format!("new {}", a.label())),
            )
        {
            s.push_str(&a);
            s.push('\n');
        }
    } else {
        s.push_str(&f.states.join("\n"));
    }
    crate::bpl::sha256_hex(s.as_bytes())
}

/// Where a finding points in the new file: its first new-version activity, else line 1.
fn location(f: &Finding) -> (u32, u32) {
    f.new_activities
        .first()
        .map(|a| (a.line.max(1), a.column.max(1)))
        .unwrap_or((1, 1))
}

fn rule_name(code: &str) -> &'static str {
    lookup(code).map(|c| c.rule().name).unwrap_or("unknown")
}

/// GitLab Code Quality report (a JSON array).
pub fn gitlab(checked: &[Checked]) -> Value {
    let mut out = Vec::new();
    for c in checked {
        for f in &c.plan.findings {
            let severity = match (f.severity, f.acknowledged) {
                (_, true) | (Severity::Info, _) => "info",
                (Severity::Warning, _) => "major",
                (Severity::Error, _) => "critical",
            };
            let (line, _) = location(f);
            out.push(json!({
                "description": format!("{} {}: {}", f.code, c.plan.new.class, f.message),
                "check_name": format!("{} {}", f.code, rule_name(&f.code)),
                "fingerprint": fingerprint(c.plan, f),
                "severity": severity,
                "location": { "path": c.path, "lines": { "begin": line } },
            }));
        }
    }
    Value::Array(out)
}

/// SARIF 2.1.0 log with one run; every catalogue rule is listed.
pub fn sarif(checked: &[Checked]) -> Value {
    let rules: Vec<Value> = RULES
        .iter()
        .map(|r| {
            json!({
                "id": r.code,
                "name": r.name,
                "shortDescription": { "text": r.name },
                "fullDescription": { "text": r.description },
                "help": { "text": r.help },
                "defaultConfiguration": { "level": level(r.severity) },
            })
        })
        .collect();
    let mut results = Vec::new();
    for c in checked {
        for f in &c.plan.findings {
            let (line, column) = location(f);
            let mut r = json!({
                "ruleId": f.code,
                "level": level(f.severity),
                "message": { "text": format!("{}: {}", c.plan.new.class, f.message) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": c.path },
                        "region": { "startLine": line, "startColumn": column },
                    }
                }],
                "partialFingerprints": { "bplmigrate/v1": fingerprint(c.plan, f) },
            });
            if let Some(i) = lookup(&f.code).map(|c| c as usize) {
                r["ruleIndex"] = json!(i);
            }
            if f.acknowledged {
                r["suppressions"] = json!([{ "kind": "external", "justification": "acknowledged in the overrides file" }]);
            }
            results.push(r);
        }
    }
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "bplmigrate",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "results": results,
        }],
    })
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Info => "note",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}
