//! Human-readable renderings of plans and diffs (returned as text; the CLI prints them).

use super::findings::lookup;
use super::model::*;
use crate::diff::{ActivityChangeKind, Aspect, DeltaKind, MatchIssue, ProcessDiff};
use crate::states::ActivityRef;
use std::fmt::Write;

/// What to include besides the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Plan id, tool version and source hashes (left out of review snapshots, which must not
    /// change when only the tool version does).
    pub header: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions { header: true }
    }
}

/// Align rows into columns (two spaces apart), each line indented.
pub fn table(rows: &[Vec<String>], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0; cols];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let mut line = String::from(indent);
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.extend(std::iter::repeat_n(' ', width[i] - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn label(a: &Option<ActivityRef>) -> String {
    a.as_ref().map(|a| a.label()).unwrap_or_else(|| "-".into())
}

pub fn severity_str(s: Severity) -> &'static str {
    match s {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Error => "error",
    }
}

fn verdict_help(p: &MigrationPlan) -> String {
    match p.verdict {
        Verdict::Identical => "same states, same meaning: nothing to do".into(),
        Verdict::Compatible => "no persisted identifier changes meaning: deploy without migrating".into(),
        Verdict::Drain => format!("nothing to rewrite: deploy once {}", drain_conditions(p)),
        Verdict::Migratable => "in-flight rows must be rewritten (plan --out writes the migration)".into(),
        Verdict::Blocked => "resolve the errors below (overrides, or let instances drain) before a migration can apply".into(),
    }
}

/// What must be empty before a `drain` plan may be deployed: states grouped per thread
/// table (sorted numerically), emptied tables and pending responses.
pub fn drain_conditions(p: &MigrationPlan) -> String {
    let mut states: Vec<(String, Vec<String>)> = Vec::new();
    let mut rest = Vec::new();
    for pc in &p.preconditions {
        match pc {
            Precondition::NoRowsAtState { table, state, .. } => {
                let t = p
                    .threads
                    .iter()
                    .find(|t| &t.old_table == table)
                    .map(|t| super::safety::short(&t.old_class).to_string())
                    .unwrap_or_else(|| table.to_string());
                match states.iter_mut().find(|(x, _)| *x == t) {
                    Some((_, v)) => v.push(state.clone()),
                    None => states.push((t, vec![state.clone()])),
                }
            }
            Precondition::NoRowsInTable { table, .. } => {
                rest.push(format!("{table} holds no row of a running instance"))
            }
            Precondition::NoPendingResponse { call, .. } => {
                rest.push(format!("no response is pending for call {call:?}"))
            }
            _ => {}
        }
    }
    let mut parts: Vec<String> = states
        .into_iter()
        .map(|(t, mut v)| {
            sort_states(&mut v);
            v.dedup();
            format!("no instance rests at {t}:{}", v.join(", "))
        })
        .collect();
    rest.dedup();
    parts.extend(rest);
    parts.join(" and ")
}

/// `S2, S4, S11`, not `S11, S2, S4`.
pub fn sort_states(v: &mut [String]) {
    v.sort_by_key(|s| state_key(s));
}

/// Sort key of a state reference (`S11`, `Thread1:S11`, `new:Thread2:S3`): prefix, then the
/// numbers in it compared as numbers.
pub fn state_key(s: &str) -> (String, Vec<u64>) {
    let letters: String = s.chars().filter(|c| !c.is_ascii_digit()).collect();
    let nums = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|x| !x.is_empty())
        .map(|x| x.parse().unwrap_or(u64::MAX))
        .collect();
    (letters, nums)
}

/// The plan for people: every old state → new state with activity labels, handlers,
/// context, preconditions, findings.
pub fn plan_human(p: &MigrationPlan, opts: RenderOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} ({})",
        p.old.class,
        p.verdict.as_str(),
        verdict_help(p)
    );
    if opts.header {
        let _ = writeln!(
            out,
            "plan {} (bplmigrate {}, compiler {})",
            p.plan_id, p.tool_version, p.compiler
        );
        let _ = writeln!(out, "old  {}  sha256 {}", p.old.origin, p.old.sha256);
        let _ = writeln!(out, "new  {}  sha256 {}", p.new.origin, p.new.sha256);
    } else {
        let _ = writeln!(out, "compiler {}", p.compiler);
    }
    if p.old.package != p.new.package {
        let _ = writeln!(out, "package {} → {}", p.old.package, p.new.package);
    }
    for t in &p.threads {
        let _ = writeln!(out);
        let nc = t.new_class.as_deref().unwrap_or("(none)");
        let _ = writeln!(out, "{} → {}", t.old_class, nc);
        let mut rows = vec![vec![
            "old".into(),
            "new".into(),
            "role".into(),
            "activity".into(),
            "new activity".into(),
            "change".into(),
            "via".into(),
            "".into(),
        ]];
        for s in &t.states {
            let mut flags = Vec::new();
            if s.wait {
                flags.push("wait".to_string());
            }
            if s.join {
                flags.push("join".to_string());
            }
            if !s.old_handler_stack.is_empty() || !s.new_handler_stack.is_empty() {
                if s.old_handler_stack != s.new_handler_stack {
                    flags.push(format!(
                        "hstack [{}]→[{}]",
                        s.old_handler_stack.join(","),
                        s.new_handler_stack.join(",")
                    ));
                } else {
                    flags.push(format!("hstack [{}]", s.old_handler_stack.join(",")));
                }
            }
            if !s.old_subroutine_stack.is_empty() || !s.new_subroutine_stack.is_empty() {
                flags.push(format!(
                    "sstack [{}]→[{}]",
                    s.old_subroutine_stack.join(","),
                    s.new_subroutine_stack.join(",")
                ));
            }
            if let Some(n) = &s.note {
                flags.push(format!("({n})"));
            }
            if let Some(m) = &s.modified {
                flags.push(format!("(modified: {m})"));
            }
            let new_act = match &s.new_activity {
                Some(a)
                    if a.label() != s.old_activity.label()
                        || s.change == StateChange::Overridden =>
                {
                    a.label()
                }
                Some(_) => "=".into(),
                None => "-".into(),
            };
            rows.push(vec![
                s.old.clone(),
                s.new.clone().unwrap_or_else(|| "-".into()),
                s.role.to_string(),
                s.old_activity.label(),
                new_act,
                match &s.modified {
                    Some(_) if s.change != StateChange::Overridden => {
                        format!("{}, modified", change_str(s.change))
                    }
                    _ => change_str(s.change).into(),
                },
                s.via.clone(),
                flags.join(" "),
            ]);
        }
        out.push_str(&table(&rows, "  "));
    }
    if !p.response_handlers.is_empty() {
        let _ = writeln!(out, "\nresponse handlers ({})", p.response_handler_table);
        let rows: Vec<Vec<String>> = p
            .response_handlers
            .iter()
            .map(|h| {
                let change = match &h.new {
                    None => "removed",
                    Some(n) if *n == h.old => "unchanged",
                    Some(_) => "renumbered",
                };
                let (call, change) = match (&h.new, &h.new_call) {
                    (Some(_), Some(n)) => (
                        format!("call {:?} → call {n:?}", h.call),
                        format!("{change}, call renamed"),
                    ),
                    (None, Some(n)) => (
                        format!("call {:?}", h.call),
                        format!("removed; {} now belongs to call {n:?}", h.old),
                    ),
                    _ => (format!("call {:?}", h.call), change.to_string()),
                };
                vec![
                    h.old.clone(),
                    "→".into(),
                    h.new.clone().unwrap_or_else(|| "-".into()),
                    call,
                    change,
                ]
            })
            .collect();
        out.push_str(&table(&rows, "  "));
    }
    if !p.context_properties.is_empty() {
        let _ = writeln!(out, "\ncontext properties ({})", p.context_table);
        let rows: Vec<Vec<String>> = p
            .context_properties
            .iter()
            .map(|c| {
                let change = match c.change {
                    PropertyChange::Added => "added",
                    PropertyChange::Removed => "removed",
                    PropertyChange::Retyped => "retyped",
                };
                let types = format!(
                    "{} → {}",
                    c.old_type.as_deref().unwrap_or("-"),
                    c.new_type.as_deref().unwrap_or("-")
                );
                let default = c
                    .default
                    .as_ref()
                    .map(|d| format!("default for in-flight rows: {d}"))
                    .unwrap_or_default();
                vec![c.name.clone(), change.into(), types, default]
            })
            .collect();
        out.push_str(&table(&rows, "  "));
    }
    if !p.preconditions.is_empty() {
        let _ = writeln!(
            out,
            "\npreconditions (checked on the live rows before {})",
            if p.verdict == Verdict::Drain {
                "deploying; `apply` and `status --plan` check them"
            } else {
                "the rewrite"
            }
        );
        // States of one table with the same reason (one removed activity) on one line.
        let mut i = 0;
        while i < p.preconditions.len() {
            if let Precondition::NoRowsAtState {
                table,
                state,
                reason,
            } = &p.preconditions[i]
            {
                let mut states = vec![state.clone()];
                let mut j = i + 1;
                while let Some(Precondition::NoRowsAtState {
                    table: t2,
                    state: s2,
                    reason: r2,
                }) = p.preconditions.get(j)
                {
                    if t2 != table || r2 != reason {
                        break;
                    }
                    states.push(s2.clone());
                    j += 1;
                }
                let _ = writeln!(
                    out,
                    "  - no row of {table} rests at {}: {reason}",
                    states.join(", ")
                );
                i = j;
                continue;
            }
            let _ = writeln!(out, "  - {}", precondition_str(&p.preconditions[i]));
            i += 1;
        }
    }
    let _ = writeln!(out, "\nfindings");
    if p.findings.is_empty() {
        let _ = writeln!(out, "  none");
    }
    out.push_str(&findings_human(&p.findings));
    if !p.suggestions.is_empty() {
        let _ = writeln!(
            out,
            "\nsuggested overrides (review each; a plan never applies them on its own)"
        );
        for sg in &p.suggestions {
            let _ = writeln!(out, "  # {}:{}: {}", sg.thread, sg.old, sg.reason);
            let _ = writeln!(out, "  [[map]]");
            let _ = writeln!(out, "  thread = {:?}", sg.thread);
            let _ = writeln!(out, "  old = {:?}", sg.old);
            let _ = writeln!(out, "  new = {:?}", sg.new);
            let _ = writeln!(out, "  reason = {:?}", sg.reason);
        }
    }
    if !p.overrides.is_empty() {
        let _ = writeln!(out, "\noverrides applied");
        for o in &p.overrides {
            let _ = writeln!(out, "  {o}");
        }
    }
    out
}

/// One block per finding: severity, code, rule name, message, involved states.
pub fn findings_human(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let name = lookup(&f.code).map(|c| c.rule().name).unwrap_or("");
        let ack = if f.acknowledged {
            " (acknowledged)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {:<7} {} {name}{ack}: {}",
            severity_str(f.severity),
            f.code,
            f.message
        );
        if !f.states.is_empty() {
            let _ = writeln!(out, "          states: {}", f.states.join(", "));
        }
    }
    out
}

pub fn precondition_str(p: &Precondition) -> String {
    match p {
        Precondition::NoRowsAtState {
            table,
            state,
            reason,
        } => format!("no row of {table} rests at {state}: {reason}"),
        Precondition::NoRowsInTable { table, reason } => format!("{table} holds no row: {reason}"),
        Precondition::NoPendingResponse {
            table,
            call,
            reason,
        } => format!("no thread of {table} has a pending response for {call:?}: {reason}"),
        Precondition::HostDisabled { class } => {
            format!("every production item running {class} is disabled")
        }
        Precondition::NoLiveJob { class } => format!("no live job runs a config item of {class}"),
    }
}

fn change_str(c: StateChange) -> &'static str {
    match c {
        StateChange::Unchanged => "unchanged",
        StateChange::Renumbered => "renumbered",
        StateChange::Removed => "removed",
        StateChange::Overridden => "overridden",
    }
}

fn delta_str(c: DeltaKind) -> &'static str {
    match c {
        DeltaKind::Unchanged => "unchanged",
        DeltaKind::Renumbered => "renumbered",
        DeltaKind::Removed => "removed",
        DeltaKind::Added => "added",
    }
}

fn aspect_str(a: Aspect) -> &'static str {
    match a {
        Aspect::Moved => "moved",
        Aspect::Reordered => "reordered",
        Aspect::Renamed => "renamed",
        Aspect::Modified => "modified",
        Aspect::Enabled => "enabled",
        Aspect::Disabled => "disabled",
        Aspect::Contents => "contents",
    }
}

/// The diff for people: changed activities, then every thread's states, handlers, context,
/// and the matcher's open questions.
pub fn diff_human(d: &ProcessDiff, opts: RenderOptions) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} → {}{}",
        d.old.class,
        d.old.origin,
        d.new.origin,
        if d.identical { " (identical)" } else { "" }
    );
    if opts.header {
        let _ = writeln!(
            out,
            "compiler {}; sha256 {} → {}",
            d.compiler, d.old.sha256, d.new.sha256
        );
    }
    let unchanged = d
        .activities
        .iter()
        .filter(|a| a.change == ActivityChangeKind::Unchanged)
        .count();
    let _ = writeln!(out, "\nactivities ({unchanged} unchanged)");
    let mut rows = Vec::new();
    for a in &d.activities {
        let (mark, what) = match a.change {
            ActivityChangeKind::Unchanged => continue,
            ActivityChangeKind::Changed => {
                // A container whose only change is inside: its children are listed.
                if a.aspects == [Aspect::Contents] {
                    continue;
                }
                (
                    "~",
                    a.aspects
                        .iter()
                        .map(|x| aspect_str(*x))
                        .filter(|x| *x != "contents")
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            }
            ActivityChangeKind::Removed => ("-", "removed".to_string()),
            ActivityChangeKind::Inserted => ("+", "inserted".to_string()),
        };
        let pos = |r: &Option<ActivityRef>| {
            r.as_ref()
                .map(|r| format!("{}:{}", r.line, r.column))
                .unwrap_or_else(|| "-".into())
        };
        let name = match (&a.old, &a.new) {
            (Some(o), Some(n)) if o.label() != n.label() && o.name != n.name => {
                format!("{} → {}", o.label(), n.label())
            }
            (Some(o), _) => o.label(),
            (None, n) => label(n),
        };
        rows.push(vec![
            mark.to_string(),
            name,
            format!("{} → {}", pos(&a.old), pos(&a.new)),
            what,
            a.via
                .map(|v| format!("via {}", v.as_str()))
                .unwrap_or_default(),
        ]);
    }
    if rows.is_empty() {
        let _ = writeln!(out, "  no change");
    }
    out.push_str(&table(&rows, "  "));
    for t in &d.threads {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{} → {} ({})",
            t.old_class.as_deref().unwrap_or("(none)"),
            t.new_class.as_deref().unwrap_or("(none)"),
            match t.change {
                DeltaKind::Unchanged => "same class",
                DeltaKind::Renumbered => "class renumbered",
                DeltaKind::Removed => "class removed",
                DeltaKind::Added => "class added",
            }
        );
        let mut rows = vec![vec![
            "old".into(),
            "new".into(),
            "role".into(),
            "activity".into(),
            "change".into(),
            "".into(),
        ]];
        for s in &t.states {
            let act = match (&s.old_activity, &s.new_activity) {
                (Some(o), Some(n)) if o.label() != n.label() => {
                    format!("{} → {}", o.label(), n.label())
                }
                (Some(o), _) => o.label(),
                (None, n) => label(n),
            };
            let role = match &s.new_role {
                Some(r) => format!("{} → {r}", s.role),
                None => s.role.to_string(),
            };
            let mut flags = Vec::new();
            if s.wait {
                flags.push("wait".to_string());
            }
            if s.join {
                flags.push("join".to_string());
            }
            if let Some(n) = &s.note {
                flags.push(format!("({n})"));
            }
            rows.push(vec![
                s.old.clone().unwrap_or_else(|| "-".into()),
                s.new.clone().unwrap_or_else(|| "-".into()),
                role,
                act,
                delta_str(s.change).into(),
                flags.join(" "),
            ]);
        }
        out.push_str(&table(&rows, "  "));
    }
    if !d.handlers.is_empty() {
        let _ = writeln!(out, "\nresponse handlers");
        let rows: Vec<Vec<String>> = d
            .handlers
            .iter()
            .map(|h| {
                let call = match (&h.old_call, &h.new_call) {
                    (Some(o), Some(n)) if o != n => format!("call {o:?} → {n:?}"),
                    (Some(o), _) => format!("call {o:?}"),
                    (None, Some(n)) => format!("call {n:?}"),
                    (None, None) => String::new(),
                };
                vec![
                    h.old.clone().unwrap_or_else(|| "-".into()),
                    "→".into(),
                    h.new.clone().unwrap_or_else(|| "-".into()),
                    call,
                    delta_str(h.change).into(),
                ]
            })
            .collect();
        out.push_str(&table(&rows, "  "));
    }
    if !d.context.is_empty() {
        let _ = writeln!(out, "\ncontext properties");
        for c in &d.context {
            let _ = writeln!(
                out,
                "  {} {:?} ({} → {})",
                c.name,
                c.change,
                c.old_type.as_deref().unwrap_or("-"),
                c.new_type.as_deref().unwrap_or("-")
            );
        }
    }
    if !d.issues.is_empty() {
        let _ = writeln!(out, "\nmatching issues");
        for i in &d.issues {
            let line = match i {
                MatchIssue::Ambiguous {
                    reason, old, new, ..
                } => format!(
                    "ambiguous: {reason} (old: {}; new: {})",
                    old.iter().map(|r| r.label()).collect::<Vec<_>>().join(", "),
                    new.iter().map(|r| r.label()).collect::<Vec<_>>().join(", ")
                ),
                MatchIssue::Positional { old, new } => {
                    format!("by position only: {} ↔ {}", old.label(), new.label())
                }
                MatchIssue::LimitHit {
                    limit,
                    fallback,
                    at,
                } => {
                    format!(
                        "limit {limit}{}: {fallback}",
                        at.as_ref()
                            .map(|r| format!(" in {}", r.label()))
                            .unwrap_or_default()
                    )
                }
            };
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}
