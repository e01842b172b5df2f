//! The change side by side: per thread class the old graph (left) and the new graph (right),
//! a mapping edge from each old state to its counterpart, each old state coloured by its fate,
//! findings attached where they apply, removed wait states impossible to miss.

use super::draw::{self, plain_style, BoxStyle, Place, BOX_W, FONT};
use super::layout::{layout, Column, Side, Sides};
use super::legend::{self, Item};
use super::states::{curve, line};
use super::svg::{
    char_w, clip, Font, Paint, Stroke, Svg, BLUE, GRAY, GREEN, INK, ORANGE, PURPLE, RED,
};
use super::view::{ChangeView, Fate};
use crate::plan::{Finding, Severity};
use crate::states::{CompiledProcess, State, ThreadClass};
use std::collections::{HashMap, HashSet};

const MARGIN: f64 = 20.0;
const GUTTER: f64 = 330.0;
const BLOCK_HEAD: f64 = 64.0;
const BLOCK_GAP: f64 = 36.0;
/// Findings panel: characters per line.
const PANEL_FONT: f64 = 11.0;

/// The look of an old state: coloured by fate; a rest state without a counterpart
/// (`removed_rest`) gets a heavy, doubled red outline.
pub fn fate_style(f: Fate, rest: bool, removed_rest: bool) -> BoxStyle {
    let (fill, stroke, width) = match f {
        Fate::Unchanged => ("#eaf6ea", "#4f8f4f", 1.0),
        Fate::Renumbered => ("#dcebff", BLUE, 1.6),
        Fate::Overridden => ("#eadcff", PURPLE, 1.8),
        Fate::Drained => ("#ffe8c7", ORANGE, 2.0),
        Fate::Removed => ("#ffd0d0", RED, 2.2),
    };
    BoxStyle {
        fill: if removed_rest && f == Fate::Removed {
            "#ffb0b0"
        } else {
            fill
        },
        stroke,
        width: if removed_rest { 3.5 } else { width },
        double: false,
        dashed: removed_rest,
        tag: Some((
            if rest {
                format!("WAIT {}", f.as_str().to_uppercase())
            } else {
                f.as_str().to_uppercase()
            },
            stroke,
        )),
    }
}

fn added_style(s: &State) -> BoxStyle {
    let mut st = plain_style(s);
    st.stroke = GREEN;
    st.width = st.width.max(1.6);
    st.tag = Some((
        if s.wait {
            "WAIT NEW".into()
        } else {
            "NEW".into()
        },
        GREEN,
    ));
    st
}

fn severity_color(s: Severity) -> &'static str {
    match s {
        Severity::Error => RED,
        Severity::Warning => ORANGE,
        Severity::Info => BLUE,
    }
}

/// Legend items of a change picture.
pub fn change_legend() -> Vec<Item> {
    let mut v: Vec<Item> = [
        Fate::Unchanged,
        Fate::Renumbered,
        Fate::Overridden,
        Fate::Drained,
        Fate::Removed,
    ]
    .into_iter()
    .map(|f| {
        Item::Box(
            fate_style(f, false, false),
            match f {
                Fate::Unchanged => "unchanged",
                Fate::Renumbered => "renumbered (rewritten)",
                Fate::Overridden => "mapped by override",
                Fate::Drained => "drained: no row may rest here",
                Fate::Removed => "removed",
            },
        )
    })
    .collect();
    v.push(Item::Box(
        fate_style(Fate::Removed, true, true),
        "REMOVED WAIT STATE",
    ));
    v.push(Item::Box(
        BoxStyle {
            tag: None,
            ..added_style(&super::states::legend_state(false))
        },
        "new state (no old state maps here)",
    ));
    v.push(Item::Box(
        BoxStyle {
            fill: "#fff3e0",
            stroke: ORANGE,
            width: 2.0,
            double: false,
            dashed: true,
            tag: None,
        },
        "skipped / re-run on resume",
    ));
    v.push(Item::Line(line(GREEN, None), "old → new state"));
    v.push(Item::Line(line(RED, Some("2 3")), "on error → fault state"));
    v.push(Item::Line(line(GRAY, Some("5 4")), "dead edge"));
    v
}

/// Where a finding marks new states: skipped (BPM0201) or re-run (BPM0202) activities.
pub(crate) fn skip_marks(
    v: &ChangeView,
    new: &CompiledProcess,
) -> HashMap<(u32, String), Vec<(usize, &'static str)>> {
    let mut m: HashMap<(u32, String), Vec<(usize, &'static str)>> = HashMap::new();
    for (i, f) in v.findings.iter().enumerate() {
        let what = match f.code.as_str() {
            "BPM0201" => "skipped",
            "BPM0202" => "re-run",
            _ => continue,
        };
        let ids: HashSet<_> = f.new_activities.iter().map(|a| a.id).collect();
        // A call that owns no state (async) is marked at the state that sends it.
        let sent: HashSet<&str> = f
            .new_activities
            .iter()
            .filter(|a| a.element == "call")
            .filter_map(|a| a.name.as_deref())
            .collect();
        // In any thread class: activities a flow join skips run in its branches' threads.
        for t in &new.threads {
            let runs = |s: &&State| {
                ids.contains(&s.activity.id) || s.sends().iter().any(|c| sent.contains(c.as_str()))
            };
            for s in t.states.iter().filter(runs) {
                m.entry((t.number, s.name.to_string()))
                    .or_default()
                    .push((i + 1, what));
            }
        }
    }
    m
}

/// The side-by-side picture as one SVG document.
pub fn to_svg(v: &ChangeView, old: &CompiledProcess, new: &CompiledProcess) -> String {
    let title = format!("{}: {}", v.class, v.headline);
    let items = change_legend();
    struct Block<'a> {
        old: Option<(&'a ThreadClass, Column)>,
        new: Option<(&'a ThreadClass, Column)>,
        pair: usize,
    }
    let blocks: Vec<Block> = v
        .pairs
        .iter()
        .enumerate()
        .map(|(i, p)| Block {
            old: p
                .old
                .and_then(|n| old.thread(n))
                .map(|t| (t, layout(t, Sides::All(Side::Left)))),
            new: p
                .new
                .and_then(|n| new.thread(n))
                .map(|t| (t, layout(t, Sides::All(Side::Right)))),
            pair: i,
        })
        .collect();
    let left = blocks
        .iter()
        .filter_map(|b| b.old.as_ref())
        .map(|(_, c)| draw::lanes_width(c, Side::Left))
        .fold(draw::LANE_PAD, f64::max);
    let right = blocks
        .iter()
        .filter_map(|b| b.new.as_ref())
        .map(|(_, c)| draw::lanes_width(c, Side::Right))
        .fold(draw::LANE_PAD, f64::max);
    let x_old = MARGIN + left;
    let x_new = x_old + BOX_W + GUTTER;
    let width = (x_new + BOX_W + right + MARGIN).max(1100.0);
    let inner = width - 2.0 * MARGIN;
    let marks = skip_marks(v, new);
    let fx = v.finding_index();

    let mut svg = Svg::new();
    let mut y = MARGIN + 18.0;
    svg.text(MARGIN, y, Font::bold(17.0, INK), &title);
    y += 18.0;
    let chars = (inner / char_w(FONT)) as usize;
    svg.text(
        MARGIN,
        y,
        Font::normal(FONT, "#555555"),
        &clip(&format!("old: {}", v.old_label), chars),
    );
    y += 15.0;
    svg.text(
        MARGIN,
        y,
        Font::normal(FONT, "#555555"),
        &clip(&format!("new: {}", v.new_label), chars),
    );
    y += 15.0;
    svg.text(
        MARGIN,
        y,
        Font::normal(FONT, "#555555"),
        &format!("compiler {}", v.compiler),
    );
    let removed = v.removed_rest_states();
    if !removed.is_empty() {
        y += 24.0;
        let list: Vec<String> = removed
            .iter()
            .map(|(t, s)| format!("Thread{t}:{s}"))
            .collect();
        let msg = format!(
            "⚠ {} removed wait state{} ({}): instances resting there have no state to resume in",
            removed.len(),
            if removed.len() == 1 { "" } else { "s" },
            list.join(", ")
        );
        svg.rect(
            (MARGIN - 6.0, y - 17.0, inner + 12.0, 24.0),
            Paint {
                rx: 4.0,
                fill: "#ffe0e0",
                stroke: RED,
                width: 2.0,
            },
        );
        svg.text(
            MARGIN,
            y,
            Font::bold(14.0, RED),
            &clip(&msg, (inner / char_w(14.0)) as usize),
        );
    }
    y += 16.0;
    legend::draw(&mut svg, &items, MARGIN, y, inner);
    y += legend::height(&items, inner) + 12.0;

    for b in &blocks {
        let pair = &v.pairs[b.pair];
        // Block header.
        let name = |t: Option<&ThreadClass>| t.map(draw::thread_title);
        let head = match (
            name(b.old.as_ref().map(|x| x.0)),
            name(b.new.as_ref().map(|x| x.0)),
        ) {
            (Some(o), Some(n)) if o == n => o,
            (Some(o), Some(n)) => format!("{o} → now {n}"),
            (Some(o), None) => match &pair.note {
                Some(n) => format!("{o} → {n}"),
                None => o,
            },
            (None, Some(n)) => format!("{n} (new thread class)"),
            (None, None) => continue,
        };
        svg.rect(
            (MARGIN - 6.0, y, inner + 12.0, 2.0),
            Paint {
                rx: 0.0,
                fill: "#cccccc",
                stroke: "none",
                width: 0.0,
            },
        );
        svg.text(
            MARGIN,
            y + 20.0,
            Font::bold(FONT + 3.0, INK),
            &clip(&head, (inner / char_w(FONT + 3.0)) as usize),
        );
        let mut counts: Vec<(Fate, usize)> = Vec::new();
        for s in &pair.states {
            match counts.iter_mut().find(|(f, _)| *f == s.fate) {
                Some((_, n)) => *n += 1,
                None => counts.push((s.fate, 1)),
            }
        }
        let summary: Vec<String> = counts
            .iter()
            .map(|(f, n)| format!("{n} {}", f.as_str()))
            .collect();
        let mut sub = if pair.states.is_empty() {
            String::new()
        } else {
            format!("{} old states: {}", pair.states.len(), summary.join(", "))
        };
        if let Some(on) = pair.old {
            for (i, f) in fx.at(false, on, None) {
                sub.push_str(&format!("   #{i} {}", f.code));
            }
        }
        svg.text(
            MARGIN,
            y + 36.0,
            Font::normal(FONT, "#555555"),
            &clip(&sub, chars),
        );
        let top = y + BLOCK_HEAD;
        let (po, pn) = (Place { x: x_old, y: top }, Place { x: x_new, y: top });
        if let Some((t, _)) = &b.old {
            svg.text(
                x_old,
                top - 10.0,
                Font::bold(FONT - 1.0, "#555555"),
                &clip(&format!("OLD {} · {}", t.class, t.table), 56),
            );
        }
        if let Some((t, _)) = &b.new {
            svg.text(
                x_new,
                top - 10.0,
                Font::bold(FONT - 1.0, "#555555"),
                &clip(&format!("NEW {} · {}", t.class, t.table), 56),
            );
        }
        let mut h: f64 = 0.0;
        // Mapping edges first (under the boxes).
        if let (Some((_, oc)), Some((nt, nc))) = (&b.old, &b.new) {
            let mut rows = HashMap::new();
            for (i, s) in nt.states.iter().enumerate() {
                rows.insert(s.name.to_string(), i);
            }
            for (i, s) in pair.states.iter().enumerate() {
                let Some(j) = s.new.as_deref().and_then(|n| rows.get(n)) else {
                    continue;
                };
                let skip = fx
                    .at(false, pair.old.unwrap_or(0), Some(&s.old))
                    .iter()
                    .any(|(_, f)| matches!(f.code.as_str(), "BPM0201" | "BPM0202"));
                let st = match (s.fate, skip) {
                    (_, true) => Stroke {
                        color: ORANGE,
                        width: 2.2,
                        dash: None,
                        arrow: true,
                    },
                    (Fate::Unchanged, _) => Stroke {
                        color: GREEN,
                        width: 1.0,
                        dash: None,
                        arrow: true,
                    },
                    (Fate::Renumbered, _) => Stroke {
                        color: BLUE,
                        width: 1.8,
                        dash: None,
                        arrow: true,
                    },
                    (Fate::Overridden, _) => Stroke {
                        color: PURPLE,
                        width: 1.8,
                        dash: Some("6 3"),
                        arrow: true,
                    },
                    _ => Stroke {
                        color: ORANGE,
                        width: 1.2,
                        dash: Some("4 4"),
                        arrow: true,
                    },
                };
                svg.path(
                    &mapping_path(po.right(), po.row_mid(i), pn.left(), pn.row_mid(*j)),
                    st,
                );
            }
            let stop = Stroke {
                color: GRAY,
                width: 1.0,
                dash: Some("2 3"),
                arrow: true,
            };
            svg.path(
                &curve(
                    po.right() - (BOX_W - 90.0) / 2.0,
                    po.row_mid(oc.states),
                    pn.left() + (BOX_W - 90.0) / 2.0,
                    pn.row_mid(nc.states),
                ),
                stop,
            );
        }
        if let Some((ot, oc)) = &b.old {
            let fates: HashMap<&str, (Fate, bool, bool)> = pair
                .states
                .iter()
                .map(|s| (s.old.as_str(), (s.fate, s.rest, s.rest && s.new.is_none())))
                .collect();
            draw::column(&mut svg, ot, oc, po, &|s: &State| {
                // Every old state has a mapping entry; a state without one is drawn plain.
                match fates.get(s.name.to_string().as_str()) {
                    Some(&(f, rest, removed)) => fate_style(f, rest, removed),
                    None => plain_style(s),
                }
            });
            // Annotations in the gutter: removal, then findings.
            for (i, s) in pair.states.iter().enumerate() {
                let x = po.right() + 24.0;
                let badge_y = if s.new.is_none() {
                    let (txt, size) = if s.rest {
                        ("✖ REMOVED WAIT STATE", FONT + 1.0)
                    } else {
                        ("✖ no counterpart", FONT)
                    };
                    svg.text(x, po.row_mid(i) + 4.0, Font::bold(size, RED), txt);
                    po.row_mid(i) + 16.0
                } else {
                    po.row_top(i) + 11.0
                };
                let fs = fx.at(false, ot.number, Some(&s.old));
                if !fs.is_empty() {
                    let color = severity_color(
                        fs.iter()
                            .map(|(_, f)| f.severity)
                            .max()
                            .unwrap_or(Severity::Info),
                    );
                    svg.text(
                        x,
                        badge_y,
                        Font::bold(FONT - 1.0, color),
                        &clip(&badges(&fs), 24),
                    );
                }
            }
            h = h.max(draw::column_height(oc));
        }
        if let Some((nt, nc)) = &b.new {
            let targeted: HashSet<&str> = pair
                .states
                .iter()
                .filter_map(|s| s.new.as_deref())
                .collect();
            let fresh = pair.old.is_some();
            draw::column(&mut svg, nt, nc, pn, &|s: &State| {
                let name = s.name.to_string();
                let mut st = if fresh && !targeted.contains(name.as_str()) {
                    added_style(s)
                } else {
                    plain_style(s)
                };
                if marks.contains_key(&(nt.number, name)) {
                    st.fill = "#fff3e0";
                    st.stroke = ORANGE;
                    st.dashed = true;
                }
                st
            });
            for (i, s) in nt.states.iter().enumerate() {
                let mut parts: Vec<String> = Vec::new();
                let name = s.name.to_string();
                if let Some(ms) = marks.get(&(nt.number, name.clone())) {
                    parts.extend(ms.iter().map(|(k, what)| format!("{what} #{k}")));
                }
                parts.extend(
                    fx.at(true, nt.number, Some(&name))
                        .iter()
                        .map(|(k, f)| format!("#{k} {}", f.code)),
                );
                if !parts.is_empty() {
                    let txt = clip(&parts.join(" "), 26);
                    svg.text(
                        pn.left() - 24.0,
                        pn.row_top(i) + 11.0,
                        Font::bold(FONT - 1.0, ORANGE).at("end"),
                        &txt,
                    );
                }
            }
            h = h.max(draw::column_height(nc));
        } else if let (Some(_), Some(note)) = (&b.old, &pair.note) {
            let color = if pair.new.is_none() && pair.states.iter().all(|s| s.new.is_some()) {
                INK
            } else {
                RED
            };
            for (k, l) in wrap(note, 44).iter().enumerate() {
                svg.text(
                    x_new,
                    top + 20.0 + k as f64 * 16.0,
                    Font::bold(FONT + 1.0, color),
                    l,
                );
            }
        }
        y = top + h + BLOCK_GAP;
    }

    // Findings panel.
    if !v.findings.is_empty() {
        svg.rect(
            (MARGIN - 6.0, y, inner + 12.0, 2.0),
            Paint {
                rx: 0.0,
                fill: "#cccccc",
                stroke: "none",
                width: 0.0,
            },
        );
        y += 22.0;
        svg.text(MARGIN, y, Font::bold(FONT + 3.0, INK), "Findings");
        y += 6.0;
        let per_line = (inner / char_w(PANEL_FONT)) as usize;
        for (i, f) in v.findings.iter().enumerate() {
            let head = format!(
                "#{} {} {} {}{}: ",
                i + 1,
                severity_word(f.severity),
                f.code,
                f.code.name(),
                if f.acknowledged {
                    " (acknowledged)"
                } else {
                    ""
                }
            );
            let lines = wrap(&format!("{head}{}", f.message), per_line);
            for (k, l) in lines.iter().enumerate() {
                y += 15.0;
                let color = if k == 0 {
                    severity_color(f.severity)
                } else {
                    INK
                };
                svg.text(
                    MARGIN + if k == 0 { 0.0 } else { 24.0 },
                    y,
                    if k == 0 {
                        Font::bold(PANEL_FONT, color)
                    } else {
                        Font::normal(PANEL_FONT, color)
                    },
                    l,
                );
            }
            y += 4.0;
        }
        y += 10.0;
    }
    svg.finish(width, y + MARGIN, &title)
}

/// A mapping edge: straight beside both boxes (where finding badges sit above it), curved in
/// the middle of the gutter.
fn mapping_path(x1: f64, y1: f64, x2: f64, y2: f64) -> String {
    let straight = (x2 - x1) / 3.0;
    format!(
        "M{x1:.1},{y1:.1} H{:.1} {} H{x2:.1}",
        x1 + straight,
        curve(x1 + straight, y1, x2 - straight, y2).replacen('M', "L", 1)
    )
}

fn badges(fs: &[(usize, &Finding)]) -> String {
    fs.iter()
        .map(|(i, f)| format!("#{i} {}", f.code))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// Greedy word wrap at `width` characters (long words are cut).
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(10);
    let mut lines = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        let mut word = word.to_string();
        while word.chars().count() > width {
            let head: String = word.chars().take(width).collect();
            word = word.chars().skip(width).collect();
            if !cur.is_empty() {
                lines.push(std::mem::take(&mut cur));
            }
            lines.push(head);
        }
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(&word);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}
