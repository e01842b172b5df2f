//! Human-readable renderings of plans and diffs (returned as text; the CLI prints them).

use super::model::*;
use crate::diff::{
    ActivityChangeKind, Aspect, ContextChangeKind, DeltaKind, MatchIssue, ProcessDiff,
};
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

/// Align rows into columns (two spaces apart), each line indented. The one table helper of
/// human output (`states`, `status`, the plan and the diff): every cell is escaped with
/// [`crate::input::printable_cell`] (a name holding a newline cannot split its row) and
/// measured in terminal columns ([`crate::input::display_width`]: wide CJK characters,
/// combining accents), so the columns line up whatever the names hold.
pub fn table(rows: &[Vec<String>], indent: &str) -> String {
    use crate::input::{display_width, printable_cell};
    let cells: Vec<Vec<(std::borrow::Cow<'_, str>, usize)>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| {
                    let text = printable_cell(c);
                    let w = display_width(&text);
                    (text, w)
                })
                .collect()
        })
        .collect();
    let cols = cells.iter().map(Vec::len).max().unwrap_or(0);
    let mut width = vec![0; cols];
    for r in &cells {
        for (i, (_, w)) in r.iter().enumerate() {
            width[i] = width[i].max(*w);
        }
    }
    let line_len = indent.len() + width.iter().map(|w| w + 2).sum::<usize>();
    let mut out = String::with_capacity(rows.len() * (line_len + 1));
    for r in &cells {
        let start = out.len();
        out.push_str(indent);
        for (i, (c, w)) in r.iter().enumerate() {
            out.push_str(c);
            if i + 1 < r.len() {
                out.extend(std::iter::repeat_n(' ', width[i] - w + 2));
            }
        }
        // Trailing blanks of the line (empty last cells) are dropped.
        let kept = start + out[start..].trim_end().len();
        out.truncate(kept);
        out.push('\n');
    }
    out
}

/// A titled section of aligned rows, as both the plan and the diff print them: a blank
/// line, the title, then the rows two spaces in.
fn section(out: &mut String, title: &str, rows: &[Vec<String>]) {
    let _ = writeln!(out, "\n{title}");
    out.push_str(&table(rows, "  "));
}

/// A row of fixed words (a table's header).
fn words(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

/// The flags of a state every table shows: where instances rest, and the state's note.
fn rest_flags(wait: bool, join: bool) -> Vec<String> {
    [(wait, "wait"), (join, "join")]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, w)| w.to_string())
        .collect()
}

/// A response handler row: old → new, its call, what changed.
fn handler_row(old: Option<&str>, new: Option<&str>, call: String, change: String) -> Vec<String> {
    vec![
        old.unwrap_or("-").to_string(),
        "→".into(),
        new.unwrap_or("-").to_string(),
        call,
        change,
    ]
}

fn label(a: &Option<ActivityRef>) -> String {
    a.as_ref().map(|a| a.label()).unwrap_or_else(|| "-".into())
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
                rest.push(format!("{table} holds no unfinished row"))
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
        let nc = t.new_class.as_deref().unwrap_or("(none)");
        let mut rows = vec![words(&[
            "old",
            "new",
            "role",
            "activity",
            "new activity",
            "change",
            "via",
            "",
        ])];
        let mut state_map = None;
        for s in &t.states {
            let mut flags = rest_flags(s.wait, s.join);
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
                // A return state without counterpart is not rewritten: rows holding it are
                // refused (BPM0110), which "[S14]→[S14]" would hide.
                let map = state_map.get_or_insert_with(|| t.state_map());
                match ThreadMapping::map_stack(map, &s.old_subroutine_stack) {
                    Err(gone) if s.new.is_some() => flags.push(format!(
                        "sstack [{}]→refused ({} has no counterpart)",
                        s.old_subroutine_stack.join(","),
                        crate::states::join_names(&gone, ",")
                    )),
                    _ => flags.push(format!(
                        "sstack [{}]→[{}]",
                        s.old_subroutine_stack.join(","),
                        s.new_subroutine_stack.join(",")
                    )),
                }
                // The other values rows can hold here, each mapped element-wise.
                for a in s.other_subroutine_stacks.iter() {
                    let old = a.old.join(",");
                    match (&a.new, ThreadMapping::map_stack(map, &a.old)) {
                        (_, Err(gone)) if s.new.is_some() => flags.push(format!(
                            "or [{old}]→refused ({} has no counterpart)",
                            crate::states::join_names(&gone, ",")
                        )),
                        (Some(n), _) => flags.push(format!("or [{old}]→[{}]", n.join(","))),
                        (None, _) => flags.push(format!("or [{old}]")),
                    }
                }
            }
            if let Some(n) = &s.note {
                flags.push(format!("({n})"));
            }
            if let Some(m) = &s.modified {
                flags.push(format!("(modified: {m})"));
            }
            let old_act = s.old_activity.label();
            let new_act = match &s.new_activity {
                Some(a) => {
                    let l = a.label();
                    if l != old_act || s.change == StateChange::Overridden {
                        l
                    } else {
                        "=".into()
                    }
                }
                None => "-".into(),
            };
            rows.push(vec![
                s.old.to_string(),
                crate::states::name_or(s.new, "-"),
                s.role.to_string(),
                old_act,
                new_act,
                match &s.modified {
                    Some(_) if s.change != StateChange::Overridden => {
                        format!("{}, modified", s.change.as_str())
                    }
                    _ => s.change.as_str().into(),
                },
                s.via.to_string(),
                flags.join(" "),
            ]);
        }
        section(&mut out, &format!("{} → {nc}", t.old_class), &rows);
    }
    if !p.response_handlers.is_empty() {
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
                let change = match (h.body_changed, change.as_str()) {
                    (false, _) => change,
                    (true, "unchanged") => "modified (its <response> code)".to_string(),
                    (true, _) => format!("{change}, modified (its <response> code)"),
                };
                handler_row(Some(&h.old), h.new.as_deref(), call, change)
            })
            .collect();
        section(
            &mut out,
            &format!("response handlers ({})", p.response_handler_table),
            &rows,
        );
    }
    if !p.context_properties.is_empty() {
        let rows: Vec<Vec<String>> = p
            .context_properties
            .iter()
            .map(|c| {
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
                vec![c.name.clone(), c.change.as_str().into(), types, default]
            })
            .collect();
        section(
            &mut out,
            &format!("context properties ({})", p.context_table),
            &rows,
        );
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
            let _ = writeln!(out, "  - {}", p.preconditions[i]);
            i += 1;
        }
    }
    let _ = writeln!(out, "\nfindings");
    if p.findings.is_empty() {
        let _ = writeln!(out, "  none");
    }
    out.push_str(&findings_human(&p.findings));
    if !p.suggestions.is_empty()
        || !p.no_suggestions.is_empty()
        || !p.default_suggestions.is_empty()
    {
        let _ = writeln!(
            out,
            "\nsuggested overrides (review each; a plan never applies them on its own)"
        );
        // One list in state order: a map to review, or why there is none.
        let mut items: Vec<(&str, &str, Option<&Suggestion>, &str)> = p
            .suggestions
            .iter()
            .map(|sg| {
                (
                    sg.thread.as_str(),
                    sg.old.as_str(),
                    Some(sg),
                    sg.reason.as_str(),
                )
            })
            .chain(p.no_suggestions.iter().map(|ns| {
                (
                    ns.thread.as_str(),
                    ns.old.as_str(),
                    None,
                    ns.reason.as_str(),
                )
            }))
            .collect();
        items.sort_by_cached_key(|(t, s, _, _)| (t.to_string(), state_key(s)));
        for (thread, old, sg, reason) in items {
            match sg {
                None => {
                    let _ = writeln!(out, "  # {thread}:{old}: no suggestion: {reason}");
                }
                Some(sg) => {
                    let _ = writeln!(out, "  # {thread}:{old}: {reason}");
                    let _ = writeln!(out, "  [[map]]");
                    let _ = writeln!(out, "  thread = {:?}", sg.thread);
                    let _ = writeln!(out, "  old = {:?}", sg.old);
                    let _ = writeln!(out, "  new = {:?}", sg.new);
                    let _ = writeln!(out, "  reason = {:?}", sg.reason);
                }
            }
        }
        for d in &p.default_suggestions {
            let _ = writeln!(out, "  # {} ({}): {}", d.property, d.type_name, d.reason);
            let _ = writeln!(out, "  [[default]]");
            let _ = writeln!(out, "  property = {:?}", d.property);
            match &d.value {
                Some(v) => {
                    let _ = writeln!(out, "  value = {v:?}");
                }
                None => {
                    let _ = writeln!(out, "  # value = \"\"");
                }
            }
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
        let name = f.code.name();
        let ack = if f.acknowledged {
            " (acknowledged)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "  {:<7} {} {name}{ack}: {}",
            f.severity.as_str(),
            f.code,
            f.message
        );
        if !f.states.is_empty() {
            let _ = writeln!(out, "          states: {}", f.states.join(", "));
        }
    }
    out
}

/// A precondition as a sentence.
impl std::fmt::Display for Precondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&match self {
            Precondition::NoRowsAtState {
                table,
                state,
                reason,
            } => format!("no row of {table} rests at {state}: {reason}"),
            Precondition::NoRowsInTable { table, reason } => {
                format!("{table} holds no unfinished row (every row at Stop): {reason}")
            }
            Precondition::NoPendingResponse {
                table,
                call,
                reason,
                ..
            } => format!("no thread of {table} has a pending response for {call:?}: {reason}"),
            Precondition::HostDisabled { class } => {
                format!("every production item running {class} is disabled")
            }
            Precondition::NoLiveJob { class } => {
                format!("no live job runs a config item of {class}")
            }
        })
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
                        .map(|x| x.as_str())
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
        rows.push(words(&["no change"]));
    }
    section(
        &mut out,
        &format!("activities ({unchanged} unchanged)"),
        &rows,
    );
    for t in &d.threads {
        let title = format!(
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
        let mut rows = vec![words(&["old", "new", "role", "activity", "change", ""])];
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
            let mut flags = rest_flags(s.wait, s.join);
            if let Some(n) = &s.note {
                flags.push(format!("({n})"));
            }
            rows.push(vec![
                crate::states::name_or(s.old, "-"),
                crate::states::name_or(s.new, "-"),
                role,
                act,
                s.change.as_str().into(),
                flags.join(" "),
            ]);
        }
        section(&mut out, &title, &rows);
    }
    if !d.handlers.is_empty() {
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
                handler_row(
                    h.old.as_deref(),
                    h.new.as_deref(),
                    call,
                    h.change.as_str().into(),
                )
            })
            .collect();
        section(&mut out, "response handlers", &rows);
    }
    if !d.context.is_empty() {
        let _ = writeln!(out, "\ncontext properties");
        for c in &d.context {
            let (old, new) = match c.change {
                ContextChangeKind::InitialChanged => (
                    c.old_initial_expression.as_deref(),
                    c.initial_expression.as_deref(),
                ),
                _ => (c.old_type.as_deref(), c.new_type.as_deref()),
            };
            let _ = writeln!(
                out,
                "  {} {} ({} → {})",
                c.name,
                c.change.as_str(),
                old.unwrap_or("-"),
                new.unwrap_or("-")
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
