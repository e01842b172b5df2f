//! Drawing one laid-out thread column: state boxes, `Stop`, and every edge of the layout.
//! Shared by the one-version picture and the side-by-side change picture.

use super::layout::{Column, EdgeKind, Route, Side};
use super::svg::{char_w, clip, Font, Paint, Stroke, Svg, BLUE, GRAY, INK, PURPLE, RED};
use crate::states::{State, ThreadClass};

pub const BOX_W: f64 = 280.0;
pub const BOX_H: f64 = 34.0;
pub const ROW_H: f64 = 50.0;
pub const LANE_W: f64 = 9.0;
/// Room between a box and its innermost lane (a wait state's self-loop lives there).
pub const LANE_PAD: f64 = 22.0;
pub const FONT: f64 = 11.0;

/// How one box is filled and outlined, and an optional short tag right-aligned in it.
#[derive(Debug, Clone)]
pub struct BoxStyle {
    pub fill: &'static str,
    pub stroke: &'static str,
    pub width: f64,
    /// A second, inner outline (join states).
    pub double: bool,
    pub dashed: bool,
    pub tag: Option<(String, &'static str)>,
}

/// The standard look of a state: wait states yellow and bold, joins blue and doubled.
pub fn plain_style(s: &State) -> BoxStyle {
    if s.wait {
        BoxStyle {
            fill: "#ffe9a8",
            stroke: "#b8860b",
            width: 2.5,
            double: false,
            dashed: false,
            tag: Some(("WAIT".into(), "#8a6500")),
        }
    } else if s.join {
        BoxStyle {
            fill: "#cfe3ff",
            stroke: BLUE,
            width: 1.5,
            double: true,
            dashed: false,
            tag: Some(("JOIN".into(), BLUE)),
        }
    } else {
        BoxStyle {
            fill: "#f7f7f7",
            stroke: "#666666",
            width: 1.0,
            double: false,
            dashed: false,
            tag: None,
        }
    }
}

/// Where a column is drawn: `x` is the left edge of its boxes, `y` the top of row 0.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub x: f64,
    pub y: f64,
}

impl Place {
    pub fn row_top(&self, r: usize) -> f64 {
        self.y + r as f64 * ROW_H
    }
    pub fn row_mid(&self, r: usize) -> f64 {
        self.row_top(r) + BOX_H / 2.0
    }
    pub fn left(&self) -> f64 {
        self.x
    }
    pub fn right(&self) -> f64 {
        self.x + BOX_W
    }
    fn lane_x(&self, side: Side, lane: usize) -> f64 {
        match side {
            Side::Left => self.x - LANE_PAD - lane as f64 * LANE_W,
            Side::Right => self.x + BOX_W + LANE_PAD + lane as f64 * LANE_W,
        }
    }
}

/// Width the lanes of `side` take beside the boxes.
pub fn lanes_width(c: &Column, side: Side) -> f64 {
    let n = match side {
        Side::Left => c.lanes_left,
        Side::Right => c.lanes_right,
    };
    LANE_PAD + n as f64 * LANE_W + 4.0
}

/// Height of a column (all rows).
pub fn column_height(c: &Column) -> f64 {
    c.rows() as f64 * ROW_H - (ROW_H - BOX_H)
}

/// Characters that fit on a box line.
pub fn box_chars() -> usize {
    ((BOX_W - 14.0) / char_w(FONT)) as usize
}

fn stroke_of(kind: EdgeKind) -> Stroke {
    match kind {
        EdgeKind::Next => Stroke {
            color: INK,
            width: 1.2,
            dash: None,
            arrow: true,
        },
        EdgeKind::Dead => Stroke {
            color: GRAY,
            width: 1.0,
            dash: Some("5 4"),
            arrow: true,
        },
        EdgeKind::Return => Stroke {
            color: PURPLE,
            width: 1.2,
            dash: Some("2 3"),
            arrow: true,
        },
        EdgeKind::Error { .. } => Stroke {
            color: RED,
            width: 1.0,
            dash: Some("2 3"),
            arrow: true,
        },
    }
}

/// Draw the edges of `c` (before the boxes, so boxes sit on top of line ends).
pub fn edges(svg: &mut Svg, c: &Column, p: Place) {
    for e in &c.edges {
        let st = stroke_of(e.kind);
        let cx = p.x + BOX_W / 2.0;
        match e.route {
            Route::Down => {
                let d = format!(
                    "M{cx:.1},{:.1} V{:.1}",
                    p.row_top(e.from) + BOX_H,
                    p.row_top(e.to) - 1.0
                );
                svg.path(&d, st);
            }
            Route::SelfLoop => {
                let (x, y) = (p.right(), p.row_mid(e.from));
                let d = format!(
                    "M{x:.1},{:.1} C{:.1},{:.1} {:.1},{:.1} {x:.1},{:.1}",
                    y - 7.0,
                    x + 18.0,
                    y - 12.0,
                    x + 18.0,
                    y + 12.0,
                    y + 7.0
                );
                svg.path(&d, st);
            }
            Route::Lane { side, lane } => {
                let lx = p.lane_x(side, lane);
                let bx = match side {
                    Side::Left => p.left(),
                    Side::Right => p.right(),
                };
                if let EdgeKind::Error { run_end } = e.kind {
                    // A bracket over the protected run, then one arrow into the fault state.
                    let (top, bot) = (p.row_top(e.from) + 4.0, p.row_top(run_end) + BOX_H - 4.0);
                    let bracket = format!("M{bx:.1},{top:.1} H{lx:.1} V{bot:.1} H{bx:.1}");
                    svg.path(&bracket, Stroke { arrow: false, ..st });
                    let start = if e.to < e.from { top } else { bot };
                    let d = format!("M{lx:.1},{start:.1} V{:.1} H{bx:.1}", p.row_mid(e.to) + 6.0);
                    svg.path(&d, st);
                } else {
                    let d = format!(
                        "M{bx:.1},{:.1} H{lx:.1} V{:.1} H{bx:.1}",
                        p.row_mid(e.from) + 5.0,
                        p.row_mid(e.to) - 5.0
                    );
                    svg.path(&d, st);
                }
            }
        }
    }
}

/// Draw one state box: `S3  SYNC_WAIT` and the owning activity.
pub fn state_box(svg: &mut Svg, p: Place, row: usize, s: &State, style: &BoxStyle) {
    let (x, y) = (p.x, p.row_top(row));
    svg.group(&format!(
        "{} {} — {} (line {}, column {}){}{}",
        s.name,
        s.role,
        s.activity.label(),
        s.activity.line,
        s.activity.column,
        if s.wait { " — wait state" } else { "" },
        if s.join { " — join state" } else { "" }
    ));
    svg.rect(
        (x, y, BOX_W, BOX_H),
        Paint {
            rx: 4.0,
            fill: style.fill,
            stroke: style.stroke,
            width: style.width,
        },
    );
    if style.double {
        svg.rect(
            (x + 3.0, y + 3.0, BOX_W - 6.0, BOX_H - 6.0),
            Paint {
                rx: 3.0,
                fill: "none",
                stroke: style.stroke,
                width: 1.0,
            },
        );
    }
    if style.dashed {
        svg.rect_dashed(
            x - 3.0,
            y - 3.0,
            BOX_W + 6.0,
            BOX_H + 6.0,
            style.stroke,
            "4 3",
        );
    }
    let max = box_chars();
    let tag_len = style.tag.as_ref().map_or(0, |(t, _)| t.chars().count() + 1);
    let head = format!("{} {}", s.name, s.role);
    svg.text(
        x + 7.0,
        y + 14.0,
        Font::bold(FONT, INK),
        &clip(&head, max - tag_len),
    );
    if let Some((tag, color)) = &style.tag {
        svg.text(
            x + BOX_W - 6.0,
            y + 14.0,
            Font::bold(FONT - 1.0, color).at("end"),
            tag,
        );
    }
    svg.text(
        x + 7.0,
        y + 28.0,
        Font::normal(FONT, "#444444"),
        &clip(&s.activity.label(), max),
    );
    svg.end_group();
}

/// Draw the `Stop` pill of a column.
pub fn stop_box(svg: &mut Svg, p: Place, row: usize) {
    let y = p.row_top(row);
    let w = 90.0;
    let x = p.x + (BOX_W - w) / 2.0;
    svg.rect(
        (x, y, w, BOX_H),
        Paint {
            rx: BOX_H / 2.0,
            fill: "#e8e8e8",
            stroke: INK,
            width: 1.5,
        },
    );
    svg.text(
        x + w / 2.0,
        y + 21.0,
        Font::bold(FONT + 1.0, INK).at("middle"),
        "Stop",
    );
}

/// Draw a whole column: edges, boxes (styled by `style`) and `Stop`.
pub fn column(
    svg: &mut Svg,
    t: &ThreadClass,
    c: &Column,
    p: Place,
    style: &dyn Fn(&State) -> BoxStyle,
) {
    edges(svg, c, p);
    for (i, s) in t.states.iter().enumerate() {
        state_box(svg, p, i, s, &style(s));
    }
    stop_box(svg, p, c.states);
}

/// `Thread2 — flow "Parallel", branch 1` (`Thread1 — main`).
pub fn thread_title(t: &ThreadClass) -> String {
    match &t.parent {
        Some(par) => format!(
            "Thread{} — {}, branch {}",
            t.number,
            par.flow.label(),
            par.child_index + 1
        ),
        None => format!("Thread{} — main", t.number),
    }
}
