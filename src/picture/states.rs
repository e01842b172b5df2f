//! The state graphs of one compiled version as one SVG picture: one column per thread class,
//! titled, a flow child's column beside its parent and level with the state that starts it.

use super::draw::{self, plain_style, Place, BOX_W, FONT};
use super::layout::{layout, row_of, Column, Side, Sides};
use super::legend::{self, Item};
use super::svg::{char_w, clip, Font, Stroke, Svg, BLUE, GRAY, INK, PURPLE, RED};
use crate::states::{CompiledProcess, ThreadClass};
use std::collections::HashMap;

const MARGIN: f64 = 20.0;
const GAP: f64 = 70.0;
/// Room above a column for its two title lines.
const TITLE_H: f64 = 40.0;

/// `Demo.Loan — version 3 — compiler current`.
pub fn process_title(cp: &CompiledProcess) -> String {
    format!(
        "{} — {} — compiler {}",
        cp.class,
        match cp.version {
            Some(v) => format!("version {v}"),
            None => "unversioned".to_string(),
        },
        cp.compiler.as_str()
    )
}

/// The legend items of a state picture.
pub fn state_legend() -> Vec<Item> {
    let mut join = legend_state(false);
    join.join = true;
    vec![
        Item::Box(plain_style(&legend_state(false)), "state"),
        Item::Box(
            plain_style(&legend_state(true)),
            "wait state (instances rest here)",
        ),
        Item::Box(plain_style(&join), "flow join"),
        Item::Line(line(INK, None), "next state"),
        Item::Line(line(GRAY, Some("5 4")), "dead edge (never taken)"),
        Item::Line(line(RED, Some("2 3")), "on error → fault state"),
        Item::Line(line(PURPLE, Some("2 3")), "compensation return"),
        Item::Line(line(BLUE, Some("3 3")), "flow start / join"),
    ]
}

pub fn line(color: &'static str, dash: Option<&'static str>) -> Stroke {
    Stroke {
        color,
        width: 1.4,
        dash,
        arrow: true,
    }
}

/// A state for legend samples only.
pub fn legend_state(wait: bool) -> crate::states::State {
    let mut s = crate::states::State::new(
        crate::states::StateName::s(1),
        crate::states::Role::Entry,
        crate::states::ActivityRef {
            id: crate::bpl::ActivityId(0),
            element: crate::bpl::Element::Empty,
            name: None,
            line: 0,
            column: 0,
        },
    );
    s.wait = wait;
    s
}

/// A flow child's place relative to its parent: (parent number, starting row, join row).
fn starts(cp: &CompiledProcess) -> HashMap<u32, (u32, usize, Option<usize>)> {
    let by_class: HashMap<&str, &ThreadClass> =
        cp.threads.iter().map(|t| (t.class.as_str(), t)).collect();
    let mut m = HashMap::new();
    for t in &cp.threads {
        for (i, s) in t.states.iter().enumerate() {
            for c in s.starts_threads() {
                let Some(child) = by_class.get(c.as_str()) else {
                    continue;
                };
                let flow = child.parent.as_ref().map(|p| p.flow.id);
                let join = s.successors.iter().filter_map(|n| row_of(t, n)).find(|&j| {
                    t.states
                        .get(j)
                        .is_some_and(|x| x.join && Some(x.activity.id) == flow)
                });
                m.entry(child.number).or_insert((t.number, i, join));
            }
        }
    }
    m
}

/// Render the state graphs of every thread class of `cp` as one SVG document.
pub fn to_svg(cp: &CompiledProcess) -> String {
    let title = process_title(cp);
    let state_count: usize = cp.threads.iter().map(|t| t.states.len()).sum();
    let sub = format!(
        "{} thread class{}, {} states · context {} · {}",
        cp.threads.len(),
        if cp.threads.len() == 1 { "" } else { "es" },
        state_count,
        cp.context_class,
        cp.compiler.describe()
    );
    let columns: Vec<Column> = cp.threads.iter().map(|t| layout(t, Sides::Split)).collect();
    let starts = starts(cp);
    let items = state_legend();

    // Columns left to right; a flow child level with the state that starts it.
    let mut width = MARGIN;
    let mut xs = Vec::new();
    for c in &columns {
        let x = width + draw::lanes_width(c, Side::Left);
        xs.push(x);
        width = x + BOX_W + draw::lanes_width(c, Side::Right) + GAP;
    }
    width = (width - GAP + MARGIN).max(900.0);
    let legend_h = legend::height(&items, width - 2.0 * MARGIN);
    let top = MARGIN + 44.0 + legend_h + TITLE_H;
    let mut places: HashMap<u32, Place> = HashMap::new();
    let mut height: f64 = 0.0;
    for ((t, c), &x) in cp.threads.iter().zip(&columns).zip(&xs) {
        let y = match starts.get(&t.number) {
            Some((parent, row, _)) => places.get(parent).map_or(top, |p| p.row_top(*row).max(top)),
            None => top,
        };
        let p = Place { x, y };
        places.insert(t.number, p);
        height = height.max(y + draw::column_height(c));
    }
    let height = height + MARGIN;

    let mut svg = Svg::new();
    svg.text(MARGIN, MARGIN + 16.0, Font::bold(17.0, INK), &title);
    svg.text(MARGIN, MARGIN + 34.0, Font::normal(FONT, "#555555"), &sub);
    legend::draw(
        &mut svg,
        &items,
        MARGIN,
        MARGIN + 44.0,
        width - 2.0 * MARGIN,
    );

    for (t, c) in cp.threads.iter().zip(&columns) {
        let p = places[&t.number];
        let chars = ((BOX_W + 60.0) / char_w(FONT + 1.0)) as usize;
        svg.text(
            p.x,
            p.y - 22.0,
            Font::bold(FONT + 1.0, INK),
            &clip(&draw::thread_title(t), chars),
        );
        svg.text(
            p.x,
            p.y - 8.0,
            Font::normal(FONT - 1.0, "#555555"),
            &clip(&format!("{} · table {}", t.class, t.table), chars + 6),
        );
        draw::column(&mut svg, t, c, p, &|s| plain_style(s));
    }
    // Flow starts and joins between columns, routed through the gaps between rows (every
    // column's rows sit on the same grid, so a line in a gap crosses no box).
    let flow = line(BLUE, Some("3 3"));
    let gap = (draw::ROW_H - draw::BOX_H) / 2.0;
    let by_number: HashMap<u32, &Column> =
        cp.threads.iter().map(|t| t.number).zip(&columns).collect();
    for (k, t) in cp.threads.iter().enumerate() {
        let Some((parent, row, join)) = starts.get(&t.number) else {
            continue;
        };
        let (Some(pp), Some(cp_), Some(pc)) = (
            places.get(parent),
            places.get(&t.number),
            by_number.get(parent),
        ) else {
            continue;
        };
        let y = pp.row_top(*row) - 3.0;
        let (x1, x2) = (pp.right(), cp_.left());
        let d = format!(
            "M{x1:.1},{:.1} H{:.1} V{y:.1} H{:.1} V{:.1} H{x2:.1}",
            pp.row_mid(*row) - 8.0,
            x1 + 8.0,
            x2 - 10.0,
            cp_.row_mid(0)
        );
        svg.path(&d, flow);
        if let Some(j) = join {
            // Below the child's Stop, back to beyond the parent's lanes, up to the join.
            let stop = t.states.len();
            let yb = cp_.row_top(stop) + draw::BOX_H + gap - 3.0 + (k % 3) as f64 * 3.0;
            let xr = pp.right() + draw::lanes_width(pc, Side::Right) + 4.0 + (k % 6) as f64 * 4.0;
            let d = format!(
                "M{:.1},{:.1} V{yb:.1} H{xr:.1} V{:.1} H{:.1}",
                cp_.left() + BOX_W / 2.0 - 20.0,
                cp_.row_top(stop) + draw::BOX_H,
                pp.row_mid(*j) + 8.0,
                pp.right()
            );
            svg.path(&d, flow);
        }
    }
    svg.finish(width, height, &title)
}

/// A horizontal S-curve from (x1, y1) to (x2, y2).
pub fn curve(x1: f64, y1: f64, x2: f64, y2: f64) -> String {
    let dx = ((x2 - x1).abs() / 2.0).max(30.0);
    let (c1, c2) = if x2 >= x1 {
        (x1 + dx, x2 - dx)
    } else {
        (x1 - dx, x2 + dx)
    };
    format!("M{x1:.1},{y1:.1} C{c1:.1},{y1:.1} {c2:.1},{y2:.1} {x2:.1},{y2:.1}")
}
