//! What the code of a generated state method says about numbering, read from the grammar's
//! tree (so comments and strings never count): `Set ..%NextState="X"` literals, the same `Set`
//! raising `..%Wait=1`, `StartThread("…")` and `GoSub("…")` literal first arguments, and the
//! `#; --- Begin Call <name> ---` markers with the `"OnResponse<n>"` literal inside them.

use super::{diagnose, first_error, leaves, parse_tree, BplError};
use crate::bpl::parse::LineIndex;
use crate::bpl::Pos;
use tree_sitter::Node;

/// What one method body says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeFacts {
    /// Every literal `..%NextState` value and `GoSub` target, in code order.
    pub successors: Vec<String>,
    /// `%NextState` values set by a `Set` that also sets `..%Wait=1`.
    pub wait_targets: Vec<String>,
    /// `StartThread("…")` first arguments, in code order.
    pub starts: Vec<String>,
    pub calls: Vec<CallMarker>,
}

/// A `#; --- Begin Call <name> ---` marker and the response handler passed inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallMarker {
    pub name: String,
    pub handler: Option<String>,
    pub pos: Pos,
}

/// The facts of a method's code node (`method_definition`), positions through `pos`.
pub(super) fn facts(text: &str, idx: &LineIndex, holder: Node) -> CodeFacts {
    facts_with(text, &|o| idx.pos(o), holder)
}

fn facts_with(text: &str, pos: &dyn Fn(usize) -> Pos, holder: Node) -> CodeFacts {
    let mut f = CodeFacts::default();
    let mut open_call: Option<usize> = None;
    let mut c = holder.walk();
    'outer: loop {
        let n = c.node();
        let mut descend = true;
        match n.kind() {
            "line_comment_2" => {
                let line_start = text[..n.start_byte()].rfind('\n').map_or(0, |i| i + 1);
                let at_line_start = text[line_start..n.start_byte()].trim().is_empty();
                let rest = text[n.byte_range()].trim_start_matches("#;").trim();
                if at_line_start {
                    if let Some(name) = marker(rest, "Begin Call") {
                        f.calls.push(CallMarker {
                            name,
                            handler: None,
                            pos: pos(n.start_byte()),
                        });
                        open_call = Some(f.calls.len() - 1);
                    } else if marker(rest, "End Call").is_some() {
                        open_call = None;
                    }
                }
                descend = false;
            }
            "command_set" => set_command(text, n, &mut f),
            "string_literal" => {
                let s = unquote(&text[n.byte_range()]);
                if let Some(call) = open_call.and_then(|i| f.calls.get_mut(i)) {
                    if s.strip_prefix("OnResponse")
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
                    {
                        call.handler.get_or_insert(s);
                    }
                }
                descend = false;
            }
            "method_args" => {
                // The named node before it, found with the cursor (`prev_named_sibling` asks
                // tree-sitter for the parent, which it finds by descending from the root).
                let name = prev_named(&mut c)
                    .filter(|p| p.kind() == "method_name")
                    .map(|p| text[p.byte_range()].to_ascii_lowercase());
                if let Some(name) = name {
                    let first = first_string_arg(text, n);
                    if name.ends_with("startthread") {
                        f.starts.extend(first);
                    } else if name.ends_with("gosub") {
                        f.successors.extend(first);
                    }
                }
            }
            _ => {}
        }
        if descend && c.goto_first_child() {
            continue;
        }
        loop {
            if c.goto_next_sibling() {
                continue 'outer;
            }
            if !c.goto_parent() || c.node() == holder {
                break 'outer;
            }
        }
    }
    f
}

/// The named sibling before the cursor's node; the cursor is left where it was.
fn prev_named<'t>(c: &mut tree_sitter::TreeCursor<'t>) -> Option<Node<'t>> {
    let mut back = 0;
    let mut found = None;
    while c.goto_previous_sibling() {
        back += 1;
        if c.node().is_named() {
            found = Some(c.node());
            break;
        }
    }
    for _ in 0..back {
        c.goto_next_sibling();
    }
    found
}

/// `--- Begin Call Lookup ---` → `Lookup`.
fn marker(comment: &str, what: &str) -> Option<String> {
    let s = comment.trim_start_matches('-').trim_start();
    let s = s.strip_prefix(what)?;
    Some(s.trim().trim_end_matches('-').trim().to_string())
}

/// `"a""b"` → `a"b`.
fn unquote(lit: &str) -> String {
    let inner = lit
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(lit);
    inner.replace("\"\"", "\"")
}

/// The literal an expression node is, when it is nothing but one string literal.
fn string_value(text: &str, expr: Node) -> Option<String> {
    let mut n = expr;
    while n.kind() == "expression" && n.named_child_count() == 1 {
        n = n.named_child(0)?;
    }
    (n.kind() == "string_literal").then(|| unquote(&text[n.byte_range()]))
}

fn first_string_arg(text: &str, args: Node) -> Option<String> {
    let arg = args.named_child(0).filter(|a| a.kind() == "method_arg")?;
    let expr = arg.named_child(0).filter(|e| e.kind() == "expression")?;
    if arg.named_child_count() != 1 {
        return None;
    }
    string_value(text, expr)
}

/// One `Set`: its `..%NextState="X"` literals, and whether it also sets `..%Wait=1`.
fn set_command(text: &str, set: Node, f: &mut CodeFacts) {
    let mut next = Vec::new();
    let mut wait = false;
    let mut c = set.walk();
    for arg in set.named_children(&mut c) {
        if arg.kind() != "set_argument" {
            continue;
        }
        let target = arg.named_child(0).filter(|t| t.kind() == "set_target");
        let expr = arg
            .named_child(arg.named_child_count().saturating_sub(1) as u32)
            .filter(|e| e.kind() == "expression");
        let (Some(target), Some(expr)) = (target, expr) else {
            continue;
        };
        let lhs: String = text[target.byte_range()]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        if lhs == "..%nextstate" {
            next.extend(string_value(text, expr));
        } else if lhs == "..%wait" && text[expr.byte_range()].trim() == "1" {
            wait = true;
        }
    }
    if wait {
        f.wait_targets.extend(next.iter().cloned());
    }
    f.successors.extend(next);
}

/// Read the facts of a method body held outside UDL (the `<Implementation>` of an XML export):
/// the body is parsed inside a synthetic class and method, and every position is mapped back
/// so that the first character of `body` is at `body_pos`.
pub fn read_code(file: &str, body: &str, body_pos: Pos) -> Result<CodeFacts, BplError> {
    const PREFIX: &str = "Class BplMigrate.Synthetic\n{\nMethod M()\n{\n";
    let wrapped = format!("{PREFIX}{body}\n}}\n}}\n");
    let body_idx = LineIndex::new(body);
    let pos = |o: usize| {
        let p = body_idx.pos(o.saturating_sub(PREFIX.len()).min(body.len()));
        if p.line == 1 {
            Pos {
                line: body_pos.line,
                column: body_pos.column + p.column - 1,
            }
        } else {
            Pos {
                line: body_pos.line + p.line - 1,
                column: p.column,
            }
        }
    };
    let tree = parse_tree(&wrapped).map_err(|g| g.error(file, pos(g.offset), "this method"))?;
    let root = tree.root_node();
    if let Some(e) = first_error(root, |_, _| true) {
        return Err(diagnose(file, &wrapped, &pos, root, e, ""));
    }
    let holder = leaves(root)
        .into_iter()
        .find(|l| l.kind() == "keyword_method")
        .and_then(|k| k.next_named_sibling())
        .filter(|d| d.kind() == "method_definition");
    match holder {
        Some(h) => Ok(facts_with(&wrapped, &pos, h)),
        None => Err(BplError::at(
            file,
            body_pos,
            "the method body does not parse as ObjectScript code",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(body: &str) -> CodeFacts {
        read_code("t", body, Pos { line: 1, column: 1 }).expect("parses")
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v.dedup();
        v
    }

    #[test]
    fn set_forms_and_wait_markers() {
        let f = facts(
            " Set ..%NextState=\"S3\"\n s ..%NextState = \"S2\",..%Wait=1\n SET:x=1 ..%NextState=\"Stop\"\n If a { Set ..%NextState=\"S9\" } Else { Set ..%Wait=1,..%NextState=\"S4\" Quit }\n",
        );
        assert_eq!(sorted(f.successors), ["S2", "S3", "S4", "S9", "Stop"]);
        assert_eq!(sorted(f.wait_targets), ["S2", "S4"]);
    }

    #[test]
    fn comments_strings_and_comparisons_do_not_count() {
        let f = facts(
            " // Set ..%NextState=\"S1\"\n #; Set ..%NextState=\"S2\"\n Set x=\"Set ..%NextState=\"\"S3\"\"\" ; Set ..%NextState=\"S4\"\n If ..%NextState=\"S5\" Quit\n /* Set ..%NextState=\"S6\"\n */ Set status=..ManageStatus(status,\"S7\")\n",
        );
        assert!(f.successors.is_empty(), "{:?}", f.successors);
    }

    #[test]
    fn start_thread_calls_and_handlers() {
        let f = facts(
            " #; --- Begin Call Lookup ---\n Set status=..MakeAsyncCall(\"OnResponse2\",\"Op\",callrequest,\"Lookup\",1,0,\"Lookup\",0)\n #; --- End Call Lookup ---\n #; --- Begin Call Fire ---\n Set status=..MakeAsyncCall(\"\",\"Op\",callrequest,\"Fire\",0,0,\"Fire\",0)\n #; --- End Call Fire ---\n Set status=..StartThread(\"Demo.BP.Thread10\") Quit:$$$ISERR(status)\n Set status=..StartThread(\"Demo.BP.Thread2\")\n Do ..GoSub(\"S7\",\"S8\")\n",
        );
        assert_eq!(f.starts, ["Demo.BP.Thread10", "Demo.BP.Thread2"]);
        assert_eq!(f.successors, ["S7"]);
        let calls: Vec<(&str, Option<&str>)> = f
            .calls
            .iter()
            .map(|c| (c.name.as_str(), c.handler.as_deref()))
            .collect();
        assert_eq!(calls, [("Lookup", Some("OnResponse2")), ("Fire", None)]);
        assert_eq!(f.calls[1].pos, Pos { line: 4, column: 2 });
    }

    #[test]
    fn positions_map_back_to_the_body() {
        let e = read_code(
            "f.cls",
            " Set a=1\n Set b=\"oops\n",
            Pos {
                line: 10,
                column: 3,
            },
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "f.cls:11:8: unterminated string literal");
        let f = read_code(
            "f",
            " #; --- Begin Call A ---\n",
            Pos { line: 5, column: 4 },
        )
        .unwrap();
        assert_eq!(f.calls[0].pos, Pos { line: 5, column: 5 });
    }
}
