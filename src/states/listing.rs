//! The canonical line-oriented listing of a compile, used by fixture tests
//! (`fixtures/states/*/expected.txt`). The format is a contract shared with those files:
//!
//! ```text
//! process Demo.BP compiler=current
//! thread Demo.BP.Thread1 table=Demo_BP.Thread1
//! S1 ENTRY sequence@2:1 -> S2 S3
//! S2 SYNC_WAIT call "Lookup" -> S2 S3 wait
//! S3 SYNC_AFTER call "Lookup" -> Stop
//! handler OnResponse1 call "Lookup" thread=1
//! ```
//!
//! State lines: `<name> <ROLE> <activity> -> <successors…>` then the flags, in this order:
//! `wait`, `join`, `dead=`, `return=`, `push=`, `pop`, `gosub=H,R`, `start=`, `error=`,
//! `hstack=`, `sstack=`. Every token is separated by one space; an empty list is omitted.

use super::model::*;

/// Render `cp` in the canonical listing format (one line per item, each ending in `\n`).
pub fn listing(cp: &CompiledProcess) -> String {
    let mut out = format!("process {} compiler={}\n", cp.class, cp.compiler.as_str());
    for t in &cp.threads {
        out.push_str(&format!("thread {} table={}\n", t.class, t.table));
        for s in &t.states {
            out.push_str(&state_line(s));
            out.push('\n');
        }
    }
    for h in &cp.response_handlers {
        out.push_str(&format!(
            "handler {} call \"{}\" thread={}\n",
            h.name, h.call, h.thread
        ));
    }
    out
}

/// One state line of the listing (without the newline).
pub fn state_line(s: &State) -> String {
    let mut tokens: Vec<String> = vec![
        s.name.to_string(),
        s.role.to_string(),
        s.activity.label(),
        "->".into(),
    ];
    tokens.extend(s.successors.iter().map(|n| n.to_string()));
    tokens.extend(flags(s));
    tokens.join(" ")
}

/// The flag tokens of a state in their fixed order.
pub fn flags(s: &State) -> Vec<String> {
    let mut f = Vec::new();
    if s.wait {
        f.push("wait".to_string());
    }
    if s.join {
        f.push("join".to_string());
    }
    if !s.dead_successors().is_empty() {
        f.push(format!("dead={}", s.dead_successors().join(",")));
    }
    if !s.return_successors().is_empty() {
        f.push(format!("return={}", s.return_successors().join(",")));
    }
    if let Some(p) = &s.pushes_handler {
        f.push(format!("push={p}"));
    }
    if s.pops_handler {
        f.push("pop".to_string());
    }
    if let Some((h, r)) = s.gosub() {
        f.push(format!("gosub={h},{r}"));
    }
    if !s.starts_threads().is_empty() {
        f.push(format!("start={}", s.starts_threads().join(",")));
    }
    if let Some(e) = &s.error_target {
        f.push(format!("error={e}"));
    }
    if !s.handler_stack().is_empty() {
        f.push(format!("hstack={}", s.handler_stack().join(",")));
    }
    if !s.subroutine_stack().is_empty() {
        f.push(format!("sstack={}", s.subroutine_stack().join(",")));
    }
    f
}
