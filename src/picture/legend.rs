//! Legends: sample boxes and lines with their meaning, wrapped to a width.

use super::draw::{BoxStyle, FONT};
use super::svg::{char_w, Font, Paint, Stroke, Svg, INK};

pub enum Item {
    Box(BoxStyle, &'static str),
    Line(Stroke, &'static str),
}

const SAMPLE_W: f64 = 34.0;
const ROW: f64 = 22.0;

fn item_width(label: &str) -> f64 {
    SAMPLE_W + 8.0 + label.chars().count() as f64 * char_w(FONT) + 22.0
}

/// Height the legend takes at `width`.
pub fn height(items: &[Item], width: f64) -> f64 {
    rows(items, width) as f64 * ROW + 6.0
}

fn rows(items: &[Item], width: f64) -> usize {
    let mut x = 0.0;
    let mut rows = 1;
    for it in items {
        let w = item_width(label(it));
        if x > 0.0 && x + w > width {
            rows += 1;
            x = 0.0;
        }
        x += w;
    }
    rows
}

fn label(it: &Item) -> &'static str {
    match it {
        Item::Box(_, l) | Item::Line(_, l) => l,
    }
}

/// Draw the legend at (x, y) (top left), wrapping at `width`.
pub fn draw(svg: &mut Svg, items: &[Item], x0: f64, y0: f64, width: f64) {
    let (mut x, mut y) = (x0, y0);
    for it in items {
        let w = item_width(label(it));
        if x > x0 && x + w > x0 + width {
            x = x0;
            y += ROW;
        }
        match it {
            Item::Box(st, l) => {
                svg.rect(
                    (x, y + 2.0, SAMPLE_W, 14.0),
                    Paint {
                        rx: 3.0,
                        fill: st.fill,
                        stroke: st.stroke,
                        width: st.width,
                    },
                );
                if st.double {
                    svg.rect(
                        (x + 2.0, y + 4.0, SAMPLE_W - 4.0, 10.0),
                        Paint {
                            rx: 2.0,
                            fill: "none",
                            stroke: st.stroke,
                            width: 0.8,
                        },
                    );
                }
                if st.dashed {
                    svg.rect_dashed(x - 2.0, y, SAMPLE_W + 4.0, 18.0, st.stroke, "4 3");
                }
                svg.text(x + SAMPLE_W + 8.0, y + 13.0, Font::normal(FONT, INK), l);
            }
            Item::Line(s, l) => {
                svg.path(
                    &format!("M{:.1},{:.1} H{:.1}", x, y + 9.0, x + SAMPLE_W),
                    *s,
                );
                svg.text(x + SAMPLE_W + 8.0, y + 13.0, Font::normal(FONT, INK), l);
            }
        }
        x += w;
    }
}
