//! The state graph of a thread class (spec 4.4) as a petgraph, the property checks of spec
//! Appendix B over it, and the dot / mermaid renderings used by `bplmigrate states`.

use super::model::*;
use crate::bpl::{ActivityKind, Bpl};
use petgraph::graph::{Graph, NodeIndex};
use petgraph::visit::Dfs;
use std::collections::{BTreeMap, BTreeSet};

/// A node of a thread's state graph: a state method or the literal `Stop`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    State(String),
    Stop,
}

/// Edge kinds of spec 4.4 (cross-thread edges live between graphs, see [`to_dot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// A literal `%NextState` assignment (kinds 1, 2, 4 `GoSub`, 5 transfer), reachable code.
    Code,
    /// A code edge after break/continue/throw/transfer: generated, never taken.
    Dead,
    /// The dynamic `Return()` of a compensation handler to a return state (kind 4).
    Return,
    /// Error edge to the innermost protecting F (kind 3).
    Error,
}

/// A thread's state graph with its node lookup.
#[derive(Debug, Clone)]
pub struct StateGraph {
    pub graph: Graph<Node, EdgeKind>,
    /// `S<n>` → node.
    pub nodes: BTreeMap<String, NodeIndex>,
    pub stop: NodeIndex,
}

impl StateGraph {
    pub fn node(&self, name: &str) -> Option<NodeIndex> {
        if name == "Stop" {
            Some(self.stop)
        } else {
            self.nodes.get(name).copied()
        }
    }
}

/// Build the state graph of one thread class. Edges to names that do not exist in the
/// thread are left out; [`check_invariants`] reports them.
pub fn graph(t: &ThreadClass) -> StateGraph {
    let mut graph = Graph::new();
    let nodes: BTreeMap<String, NodeIndex> = t
        .states
        .iter()
        .map(|s| {
            (
                s.name.to_string(),
                graph.add_node(Node::State(s.name.to_string())),
            )
        })
        .collect();
    let stop = graph.add_node(Node::Stop);
    let lookup = |n: &str| {
        if n == "Stop" {
            Some(stop)
        } else {
            nodes.get(n).copied()
        }
    };
    for s in &t.states {
        let Some(from) = lookup(&s.name.to_string()) else {
            continue;
        };
        for to in &s.successors {
            let kind = if s.dead_successors().contains(to) {
                EdgeKind::Dead
            } else {
                EdgeKind::Code
            };
            if let Some(to) = lookup(&to.to_string()) {
                graph.add_edge(from, to, kind);
            }
        }
        for to in s.return_successors() {
            if let Some(to) = lookup(&to.to_string()) {
                graph.add_edge(from, to, EdgeKind::Return);
            }
        }
        if let Some(to) = s.error_target.and_then(|e| lookup(&e.to_string())) {
            graph.add_edge(from, to, EdgeKind::Error);
        }
    }
    StateGraph { graph, nodes, stop }
}

/// The properties every compile must have (spec Appendix B, plus consistency of the model).
/// Returns one message per violation; empty means all hold. With `bpl`, a wait state without a
/// self-loop is accepted only for a `<sync type="any">`.
pub fn check_invariants(cp: &CompiledProcess, bpl: Option<&Bpl>) -> Vec<String> {
    let mut v = Vec::new();
    let any_syncs: BTreeSet<u32> = bpl
        .map(|b| {
            b.process
                .activities()
                .into_iter()
                .filter(|a| matches!(a.kind, ActivityKind::Sync { any: true }))
                .map(|a| a.id.0)
                .collect()
        })
        .unwrap_or_default();
    let thread_classes: BTreeMap<&str, &ThreadClass> =
        cp.threads.iter().map(|t| (t.class.as_str(), t)).collect();
    let mut started: BTreeMap<u32, u32> = BTreeMap::new();

    for (i, t) in cp.threads.iter().enumerate() {
        let k = i as u32 + 1;
        if t.number != k {
            v.push(format!(
                "thread numbers are not contiguous: position {k} holds Thread{}",
                t.number
            ));
        }
        if t.class != format!("{}.Thread{}", cp.package, t.number) {
            v.push(format!("thread {} is named {}", t.number, t.class));
        }
        if t.table != SqlTable::for_class(&t.class) {
            v.push(format!(
                "{}: table {} does not project the class name",
                t.class, t.table
            ));
        }
        if t.states.is_empty() {
            v.push(format!("{}: no states", t.class));
            continue;
        }
        if t.states[0].role != Role::Entry {
            v.push(format!("{}: S1 is not the entry state", t.class));
        }
        let g = graph(t);
        let exists = |n: &str| g.node(n).is_some() && n != "Stop";
        for (j, s) in t.states.iter().enumerate() {
            let at = format!("{}.{}", t.class, s.name);
            if s.name.number() != Some(j as u32 + 1) {
                v.push(format!(
                    "{}: state {} is out of sequence (expected S{})",
                    t.class,
                    s.name,
                    j + 1
                ));
            }
            for n in &s.successors {
                if !n.is_stop() && !exists(&n.to_string()) {
                    v.push(format!("{at}: successor {n} does not exist"));
                }
            }
            let order: Vec<u32> = s
                .successors
                .iter()
                .map(|n| n.number().unwrap_or(u32::MAX))
                .collect();
            if order.windows(2).any(|w| w[0] >= w[1]) {
                v.push(format!(
                    "{at}: successors {:?} are not sorted by number with Stop last",
                    s.successors
                ));
            }
            for n in s.dead_successors() {
                if !s.successors.contains(n) {
                    v.push(format!("{at}: dead successor {n} is not a successor"));
                }
            }
            let mut referenced: Vec<StateName> = s
                .return_successors()
                .iter()
                .chain(s.handler_stack())
                .chain(s.subroutine_stack())
                .copied()
                .collect();
            referenced.extend(s.subroutine_stack_alternatives().iter().flatten());
            referenced.extend(s.error_target.iter().chain(&s.pushes_handler));
            if let Some((h, r)) = s.gosub_states() {
                referenced.extend(h);
                referenced.push(r);
            }
            for n in referenced {
                if !exists(&n.to_string()) {
                    v.push(format!("{at}: refers to {n}, which does not exist"));
                }
            }
            if s.wait && !s.successors.contains(&s.name) {
                let any = match bpl {
                    Some(_) => any_syncs.contains(&s.activity.id.0),
                    None => s.activity.element == "sync",
                };
                if !any {
                    v.push(format!(
                        "{at}: wait state without a self-loop (only <sync type=\"any\"> has none)"
                    ));
                }
            }
            if s.wait && s.join {
                v.push(format!("{at}: both a wait and a join state"));
            }
            let sorted = {
                let mut x = s.starts_threads().to_vec();
                x.sort();
                x
            };
            if sorted != s.starts_threads() {
                v.push(format!(
                    "{at}: threads are not started in string order (Q-9)"
                ));
            }
            for c in s.starts_threads() {
                match thread_classes.get(c.as_str()) {
                    Some(child) if child.parent.as_ref().is_some_and(|p| p.thread == t.number) => {
                        *started.entry(child.number).or_default() += 1;
                    }
                    Some(_) => v.push(format!("{at}: starts {c}, which is not its child thread")),
                    None => v.push(format!("{at}: starts {c}, which does not exist")),
                }
            }
        }
        // Stop and every state are reachable over all edge kinds from S1, from a compensation
        // handler (entered by GoSub) or from the return state of an unresolved compensate.
        let mut roots = vec![g.node("S1")];
        for s in &t.states {
            let unresolved_return = s.role == Role::CompensateReturn
                && t.states.iter().any(|x| {
                    x.gosub_states()
                        .is_some_and(|(h, r)| h.is_none() && r == s.name)
                });
            if matches!(s.role, Role::CompHandler(_)) || unresolved_return {
                roots.push(g.node(&s.name.to_string()));
            }
        }
        let mut dfs = Dfs::empty(&g.graph);
        let mut seen = BTreeSet::new();
        for r in roots.into_iter().flatten() {
            dfs.move_to(r);
            while let Some(n) = dfs.next(&g.graph) {
                seen.insert(n);
            }
        }
        for s in &t.states {
            if g.node(&s.name.to_string())
                .is_some_and(|n| !seen.contains(&n))
            {
                v.push(format!("{}.{}: unreachable", t.class, s.name));
            }
        }
        if !seen.contains(&g.stop) {
            v.push(format!("{}: Stop is unreachable", t.class));
        }
    }
    for t in cp.threads.iter().skip(1) {
        if started.get(&t.number).copied().unwrap_or(0) != 1 {
            v.push(format!(
                "{} is started {} times by its parent",
                t.class,
                started.get(&t.number).copied().unwrap_or(0)
            ));
        }
    }
    for (i, h) in cp.response_handlers.iter().enumerate() {
        if h.name != format!("OnResponse{}", i + 1) {
            v.push(format!(
                "response handler {} at position {} (expected OnResponse{})",
                h.name,
                i + 1,
                i + 1
            ));
        }
        if cp.thread(h.thread).is_none() {
            v.push(format!(
                "{} names thread {}, which does not exist",
                h.name, h.thread
            ));
        }
    }
    v
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// An edge of the dot / mermaid pictures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// A live successor edge.
    Next,
    /// A dead successor edge.
    Dead,
    /// A `Return()` edge of a compensation handler.
    Return,
    /// Cross-thread: the flow state that starts a child thread → the child's `S1`.
    Start,
    /// Cross-thread: the child's `Stop` → the parent's join state.
    Join,
}

/// What a picture format writes for each step of [`draw`]'s walk. A node is named by its
/// thread number and state name (`Stop` for the thread's end).
trait Picture {
    fn open_thread(&mut self, t: &ThreadClass);
    fn state(&mut self, t: &ThreadClass, s: &State);
    fn stop(&mut self, t: &ThreadClass);
    fn edge(&mut self, from: (u32, &str), to: (u32, &str), line: Line);
    fn close_thread(&mut self);
}

/// The walk both pictures share: per thread its states, its `Stop`, then its edges (live and
/// dead successors, `Return()` edges); after all threads the flow starts and joins.
fn draw(cp: &CompiledProcess, p: &mut impl Picture) {
    for t in &cp.threads {
        p.open_thread(t);
        for s in &t.states {
            p.state(t, s);
        }
        p.stop(t);
        for s in &t.states {
            let name = s.name.to_string();
            let from = (t.number, name.as_str());
            for to in &s.successors {
                let line = if s.dead_successors().contains(to) {
                    Line::Dead
                } else {
                    Line::Next
                };
                p.edge(from, (t.number, &to.to_string()), line);
            }
            for to in s.return_successors() {
                p.edge(from, (t.number, &to.to_string()), Line::Return);
            }
        }
        p.close_thread();
    }
    for (parent, starter, child, join) in cross_thread(cp) {
        p.edge((parent, &starter), (child, "S1"), Line::Start);
        if let Some(j) = join {
            p.edge((child, "Stop"), (parent, &j), Line::Join);
        }
    }
}

/// Graphviz rendering of all threads: one cluster per thread class, wait states filled, join
/// states doubled, dead edges dashed, `Return()` edges dotted, flow starts and joins as blue
/// cross-thread edges. Error edges are left out to keep the picture readable.
pub fn to_dot(cp: &CompiledProcess) -> String {
    let mut dot = Dot(format!(
        "digraph \"{}\" {{\n  node [shape=box, fontname=\"monospace\"];\n",
        dot_escape(&cp.class)
    ));
    draw(cp, &mut dot);
    dot.0.push_str("}\n");
    dot.0
}

/// The Graphviz text being written.
struct Dot(String);

fn dot_id((t, s): (u32, &str)) -> String {
    format!("\"T{t}_{s}\"")
}

impl Picture for Dot {
    fn open_thread(&mut self, t: &ThreadClass) {
        self.0.push_str(&format!(
            "  subgraph \"cluster_T{}\" {{\n    label=\"{}\";\n",
            t.number,
            dot_escape(&t.class)
        ));
    }

    fn state(&mut self, t: &ThreadClass, s: &State) {
        let label = dot_escape(&format!("{} {}\n{}", s.name, s.role, s.activity.label()))
            .replace('\n', "\\n");
        let style = if s.wait {
            ", style=filled, fillcolor=\"#ffe9a8\", penwidth=2"
        } else if s.join {
            ", style=filled, fillcolor=\"#cfe3ff\", peripheries=2"
        } else {
            ""
        };
        self.0.push_str(&format!(
            "    {} [label=\"{label}\"{style}];\n",
            dot_id((t.number, &s.name.to_string()))
        ));
    }

    fn stop(&mut self, t: &ThreadClass) {
        self.0.push_str(&format!(
            "    {} [label=\"Stop\", shape=doublecircle];\n",
            dot_id((t.number, "Stop"))
        ));
    }

    fn edge(&mut self, from: (u32, &str), to: (u32, &str), line: Line) {
        let (indent, attr) = match line {
            Line::Next => ("    ", ""),
            Line::Dead => ("    ", " [style=dashed, color=gray]"),
            Line::Return => ("    ", " [style=dotted, label=\"return\"]"),
            Line::Start => ("  ", " [style=dotted, color=blue, label=\"start\"]"),
            Line::Join => ("  ", " [style=dotted, color=blue, label=\"join\"]"),
        };
        self.0.push_str(&format!(
            "{indent}{} -> {}{attr};\n",
            dot_id(from),
            dot_id(to)
        ));
    }

    fn close_thread(&mut self) {
        self.0.push_str("  }\n");
    }
}

/// (parent thread, starting state, child thread, parent's join state) for every flow child.
fn cross_thread(cp: &CompiledProcess) -> Vec<(u32, String, u32, Option<String>)> {
    let mut out = Vec::new();
    // Thread classes by name: a flow per thousand activities makes a scan per branch quadratic.
    let mut by_class: std::collections::HashMap<&str, &ThreadClass> =
        std::collections::HashMap::with_capacity(cp.threads.len());
    for x in &cp.threads {
        by_class.entry(x.class.as_str()).or_insert(x);
    }
    for t in &cp.threads {
        for s in &t.states {
            for c in s.starts_threads() {
                if let Some(child) = by_class.get(c.as_str()).copied() {
                    // The join is the starting state's successor owned by the same flow.
                    let join = s
                        .successors
                        .iter()
                        .filter_map(|n| t.state(n))
                        .find(|j| {
                            j.join
                                && child
                                    .parent
                                    .as_ref()
                                    .is_some_and(|p| p.flow.id == j.activity.id)
                        })
                        .map(|j| j.name.to_string());
                    out.push((t.number, s.name.to_string(), child.number, join));
                }
            }
        }
    }
    out
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// Mermaid flowchart of all threads (same conventions as [`to_dot`]).
pub fn to_mermaid(cp: &CompiledProcess) -> String {
    let mut m = Mermaid {
        out: String::from("flowchart TD\n"),
        waits: Vec::new(),
        joins: Vec::new(),
    };
    draw(cp, &mut m);
    let mut o = m.out;
    o.push_str("  classDef wait fill:#ffe9a8,stroke:#b8860b,stroke-width:2px\n");
    o.push_str("  classDef join fill:#cfe3ff,stroke:#1f5fbf,stroke-width:2px\n");
    if !m.waits.is_empty() {
        o.push_str(&format!("  class {} wait\n", m.waits.join(",")));
    }
    if !m.joins.is_empty() {
        o.push_str(&format!("  class {} join\n", m.joins.join(",")));
    }
    o
}

/// The flowchart text being written, and the wait and join nodes to style at the end.
struct Mermaid {
    out: String,
    waits: Vec<String>,
    joins: Vec<String>,
}

fn mermaid_id((t, s): (u32, &str)) -> String {
    format!("T{t}_{s}")
}

impl Picture for Mermaid {
    fn open_thread(&mut self, t: &ThreadClass) {
        self.out.push_str(&format!(
            "  subgraph T{}[\"{}\"]\n",
            t.number,
            mermaid_escape(&t.class)
        ));
    }

    fn state(&mut self, t: &ThreadClass, s: &State) {
        let id = mermaid_id((t.number, &s.name.to_string()));
        let label = mermaid_escape(&format!("{} {}<br/>{}", s.name, s.role, s.activity.label()));
        self.out.push_str(&format!("    {id}[\"{label}\"]\n"));
        if s.wait {
            self.waits.push(id.clone());
        }
        if s.join {
            self.joins.push(id);
        }
    }

    fn stop(&mut self, t: &ThreadClass) {
        self.out
            .push_str(&format!("    {}((Stop))\n", mermaid_id((t.number, "Stop"))));
    }

    fn edge(&mut self, from: (u32, &str), to: (u32, &str), line: Line) {
        let (indent, arrow) = match line {
            Line::Next => ("    ", "-->"),
            Line::Dead => ("    ", "-. dead .->"),
            Line::Return => ("    ", "-. return .->"),
            Line::Start => ("  ", "-. start .->"),
            Line::Join => ("  ", "-. join .->"),
        };
        self.out.push_str(&format!(
            "{indent}{} {arrow} {}\n",
            mermaid_id(from),
            mermaid_id(to)
        ));
    }

    fn close_thread(&mut self) {
        self.out.push_str("  end\n");
    }
}
