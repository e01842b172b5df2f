//! The layout of one thread class: a column of states in allocation order, `Stop` last.
//!
//! The compiler allocates states in document order, so a thread's states are nearly
//! sequential: most successor edges go to the next state and are drawn straight down. Every
//! other edge (forward jumps over a branch, loop back edges, `Return()` edges, error edges to
//! a scope's fault state) becomes an arc in a lane beside the column; lanes are assigned
//! greedily, shortest arc first, so nested arcs nest. The work is O(E · L · log E) for E
//! edges and at most [`MAX_LANES`] lanes per side, so any process lays out in linear-ish time
//! (unlike a general layered graph layout, whose crossing minimisation grew exponentially with
//! the number of wait states).

use crate::states::{State, ThreadClass};
use std::collections::BTreeMap;

/// Lanes per side; further arcs share the outermost lane.
pub const MAX_LANES: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

/// Where arcs go: forward jumps right and backward arcs left, or all on one side (the outer
/// side of a column drawn next to another one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sides {
    Split,
    All(Side),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// A live successor edge.
    Next,
    /// A dead successor edge (present in the generated code, never taken).
    Dead,
    /// A compensation handler's `Return()` to a return state.
    Return,
    /// States `from..=run_end` jump to the fault state `to` on an error.
    Error { run_end: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// From a row to the next one, straight down.
    Down,
    /// A wait state's self-loop (waiting for its responses).
    SelfLoop,
    /// An arc in lane `lane` (0 = next to the column) on `side`.
    Lane { side: Side, lane: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    /// Row of the source (state index; `Stop` is the last row).
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
    pub route: Route,
}

/// One thread class laid out: rows `0..states` are `S1…`, row `states` is `Stop`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub states: usize,
    pub edges: Vec<Edge>,
    pub lanes_left: usize,
    pub lanes_right: usize,
}

impl Column {
    /// Rows including `Stop`.
    pub fn rows(&self) -> usize {
        self.states + 1
    }
}

/// Row of a state name in `t` (`Stop` is the last row); None for a name that is not there.
pub fn row_of<N: crate::states::AsStateName + ?Sized>(t: &ThreadClass, name: &N) -> Option<usize> {
    let name = name.state_name()?;
    if name.is_stop() {
        return Some(t.states.len());
    }
    let i = (name.number()? as usize).checked_sub(1)?;
    (t.states.get(i)?.name == name).then_some(i)
}

/// Lay out `t`.
pub fn layout(t: &ThreadClass, sides: Sides) -> Column {
    let mut raw: Vec<(usize, usize, EdgeKind)> = Vec::new();
    for (i, s) in t.states.iter().enumerate() {
        for n in &s.successors {
            let Some(j) = row_of(t, n) else { continue };
            let kind = if s.dead_successors().contains(n) {
                EdgeKind::Dead
            } else {
                EdgeKind::Next
            };
            raw.push((i, j, kind));
        }
        for n in s.return_successors() {
            if let Some(j) = row_of(t, n) {
                raw.push((i, j, EdgeKind::Return));
            }
        }
    }
    raw.extend(error_runs(t));

    let mut lanes = [Lanes::default(), Lanes::default()];
    let mut edges: Vec<Edge> = Vec::with_capacity(raw.len());
    let mut arcs: Vec<(usize, Side)> = Vec::new(); // index into edges, side
    for (from, to, kind) in raw {
        let route = if from == to {
            Route::SelfLoop
        } else if to == from + 1 && !matches!(kind, EdgeKind::Error { .. } | EdgeKind::Return) {
            Route::Down
        } else {
            let backward = to <= from || matches!(kind, EdgeKind::Error { .. } | EdgeKind::Return);
            let side = match sides {
                Sides::All(s) => s,
                Sides::Split if backward => Side::Left,
                Sides::Split => Side::Right,
            };
            arcs.push((edges.len(), side));
            Route::Lane { side, lane: 0 }
        };
        edges.push(Edge {
            from,
            to,
            kind,
            route,
        });
    }
    // Shortest arcs first, so that longer arcs enclose shorter ones.
    arcs.sort_by_key(|&(i, _)| {
        let (a, b) = span(&edges[i]);
        (b - a, a)
    });
    for (i, side) in arcs {
        let (a, b) = span(&edges[i]);
        let lane = lanes[side as usize].place(a, b);
        edges[i].route = Route::Lane { side, lane };
    }
    Column {
        states: t.states.len(),
        edges,
        lanes_left: lanes[Side::Left as usize].used,
        lanes_right: lanes[Side::Right as usize].used,
    }
}

/// The rows an edge's arc spans (an error edge spans its whole run and its target).
fn span(e: &Edge) -> (usize, usize) {
    let end = match e.kind {
        EdgeKind::Error { run_end } => run_end,
        _ => e.from,
    };
    (e.from.min(e.to), end.max(e.to))
}

/// Runs of consecutive states with the same error target, as one edge each.
pub(crate) fn error_runs(t: &ThreadClass) -> Vec<(usize, usize, EdgeKind)> {
    let mut out = Vec::new();
    let target = |s: &State| s.error_target.and_then(|f| row_of(t, &f));
    let mut i = 0;
    while i < t.states.len() {
        let Some(f) = target(&t.states[i]) else {
            i += 1;
            continue;
        };
        let mut j = i;
        while j + 1 < t.states.len() && target(&t.states[j + 1]) == Some(f) && j + 1 != f {
            j += 1;
        }
        out.push((i, f, EdgeKind::Error { run_end: j }));
        i = j + 1;
    }
    out
}

/// The occupied row intervals of each lane on one side.
#[derive(Default)]
struct Lanes {
    /// Per lane: start → end of the arcs in it (disjoint, so also sorted by end).
    taken: Vec<BTreeMap<usize, usize>>,
    used: usize,
}

impl Lanes {
    /// The innermost lane where `[a, b]` overlaps no arc (touching ends are fine: one arc
    /// leaves a row below its middle, the other enters above it).
    fn place(&mut self, a: usize, b: usize) -> usize {
        let free =
            |m: &BTreeMap<usize, usize>| m.range(..b).next_back().is_none_or(|(_, &end)| end <= a);
        let lane = (0..MAX_LANES)
            .find(|&l| self.taken.get(l).is_none_or(free))
            .unwrap_or(MAX_LANES - 1);
        while self.taken.len() <= lane {
            self.taken.push(BTreeMap::new());
        }
        // The outermost lane may hold overlapping arcs when every lane is full; keep the
        // longer end for the look-up.
        let e = self.taken[lane].entry(a).or_insert(b);
        *e = (*e).max(b);
        self.used = self.used.max(lane + 1);
        lane
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_nest_and_reuse() {
        let mut l = Lanes::default();
        assert_eq!(l.place(2, 4), 0);
        assert_eq!(l.place(4, 6), 0, "touching ends share a lane");
        assert_eq!(l.place(1, 7), 1, "an enclosing arc goes outside");
        assert_eq!(l.place(8, 9), 0);
        assert_eq!(l.place(3, 5), 2);
        assert_eq!(l.used, 3);
    }

    #[test]
    fn lanes_are_capped() {
        let mut l = Lanes::default();
        for _ in 0..(MAX_LANES + 5) {
            assert!(l.place(0, 10) < MAX_LANES);
        }
        assert_eq!(l.used, MAX_LANES);
    }
}
