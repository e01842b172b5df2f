//! CI reports from plan findings: GitLab Code Quality JSON and SARIF 2.1.0.
//!
//! Fingerprints are SHA-256 (hex) over the class, the finding code and the states involved
//! (the activity labels when no state is), so they survive unrelated edits and tool
//! upgrades and never depend on a process-local hasher.

use super::findings::RULES;
use super::model::{Finding, MigrationPlan, Severity};
use serde_json::{json, Value};

/// One checked BPL class: its findings and the file (repository-relative) they point at.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a> {
    pub class: &'a str,
    /// The path as messages, GitLab and annotations show it.
    pub path: &'a str,
    /// The path as the file system (git) names it: the SARIF uri is made from these bytes,
    /// so a name that is not UTF-8 is still exact there.
    pub path_bytes: &'a [u8],
    pub findings: &'a [Finding],
    /// Where a finding without a new-version activity points (the `<process>` element).
    pub fallback: (u32, u32),
    /// The reviewed migration folder that covers this change, if any: its findings are
    /// reported as info (GitLab) or suppressed (SARIF).
    pub covered_by: Option<&'a str>,
}

impl<'a> Checked<'a> {
    /// A class with a plan, pointing at `path`.
    pub fn of_plan(plan: &'a MigrationPlan, path: &'a str) -> Self {
        Checked {
            class: &plan.new.class,
            path,
            path_bytes: path.as_bytes(),
            findings: &plan.findings,
            fallback: (1, 1),
            covered_by: None,
        }
    }

    /// Where `f` points in the file: its first new-version activity, else the fallback.
    pub fn location(&self, f: &Finding) -> (u32, u32) {
        f.new_activities
            .first()
            .map(|a| (a.line.max(1), a.column.max(1)))
            .unwrap_or((self.fallback.0.max(1), self.fallback.1.max(1)))
    }
}

/// Stable fingerprint of a finding of `class`.
pub fn fingerprint(class: &str, f: &Finding) -> String {
    let mut s = format!("{class}\n{}\n", f.code);
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

/// GitLab Code Quality report (a JSON array).
pub fn gitlab(checked: &[Checked]) -> Value {
    let mut out = Vec::new();
    for c in checked {
        for f in c.findings {
            let severity = match (f.severity, f.acknowledged || c.covered_by.is_some()) {
                (_, true) | (Severity::Info, _) => "info",
                (Severity::Warning, _) => "major",
                (Severity::Error, _) => "critical",
            };
            let (line, _) = c.location(f);
            let covered = c
                .covered_by
                .map(|d| format!(" (covered by {d})"))
                .unwrap_or_default();
            out.push(json!({
                "description": format!("{} {}: {}{covered}", f.code, c.class, f.message),
                "check_name": format!("{} {}", f.code, f.code.name()),
                "fingerprint": fingerprint(c.class, f),
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
        for f in c.findings {
            let (line, column) = c.location(f);
            let mut r = json!({
                "ruleId": f.code,
                "level": level(f.severity),
                "message": { "text": format!("{}: {}", c.class, f.message) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": uri(c.path_bytes) },
                        "region": { "startLine": line, "startColumn": column },
                    }
                }],
                "partialFingerprints": { "bplmigrate/v1": fingerprint(c.class, f) },
            });
            r["ruleIndex"] = json!(f.code as usize);
            let mut suppressions = Vec::new();
            if f.acknowledged {
                suppressions.push(json!({ "kind": "external", "justification": "acknowledged in the overrides file" }));
            }
            if let Some(d) = c.covered_by {
                suppressions.push(json!({ "kind": "external", "justification": format!("covered by the reviewed migration folder {d}") }));
            }
            if !suppressions.is_empty() {
                r["suppressions"] = Value::Array(suppressions);
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

/// Characters of a relative path kept as they are in a SARIF `artifactLocation.uri`: RFC 3986
/// unreserved characters and the `/` between segments. Everything else is percent-encoded
/// byte by byte (a space is `%20`, `#` `%23`, `%` `%25`, a UTF-8 `é` `%C3%A9`), so the
/// reference never reads as a scheme, a query or a fragment.
const URI_PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// A repository-relative path as an RFC 3986 relative reference.
pub fn uri(path: &[u8]) -> String {
    percent_encoding::percent_encode(path, URI_PATH).to_string()
}

fn level(s: Severity) -> &'static str {
    match s {
        Severity::Info => "note",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

/// Whether `bytes` are a GitLab Code Quality report (a JSON array of issues, possibly empty):
/// `--report-gitlab` overwrites only such a file (or an empty one).
pub fn is_gitlab_report(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) => items.iter().all(|i| {
            i.get("description").is_some_and(Value::is_string)
                && i.get("fingerprint").is_some_and(Value::is_string)
                && i.get("location").is_some_and(Value::is_object)
        }),
        _ => false,
    }
}

/// Whether `bytes` are a SARIF 2.1.0 log: `--report-sarif` overwrites only such a file (or
/// an empty one).
pub fn is_sarif_report(bytes: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => {
            v.get("version") == Some(&json!("2.1.0")) && v.get("runs").is_some_and(Value::is_array)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::uri;

    #[test]
    fn sarif_uris_are_percent_encoded_per_rfc_3986() {
        assert_eq!(uri(b"src/b/R e#n%.cls"), "src/b/R%20e%23n%25.cls");
        assert_eq!(uri(b"src/Loan-v2_x.~cls"), "src/Loan-v2_x.~cls");
        // A first segment with `:` would read as a scheme; `?` as a query.
        assert_eq!(uri(b"a:b/c?d[1]"), "a%3Ab/c%3Fd%5B1%5D");
        // UTF-8 byte by byte; a Latin-1 byte as it is.
        assert_eq!(uri("src/é.cls".as_bytes()), "src/%C3%A9.cls");
        assert_eq!(uri(b"src/caf\xe9.cls"), "src/caf%E9.cls");
    }
}
