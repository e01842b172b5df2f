//! A minimal SVG writer: escaped text, boxes, paths and markers. Every picture of this module
//! is written through it, so escaping happens in one place.

use std::fmt::Write as _;

/// Escape text for XML/HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            // Characters XML 1.0 forbids (BPL text is XML already, but a `.cls` may hold any).
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    o
}

/// Approximate width of one character of the monospace font at `size` px.
pub fn char_w(size: f64) -> f64 {
    size * 0.61
}

/// `s` cut to at most `max` characters, with `…` when cut.
pub fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut o: String = s.chars().take(max.saturating_sub(1)).collect();
        o.push('…');
        o
    }
}

/// The SVG document being written.
pub struct Svg {
    body: String,
}

/// How a rectangle is filled and outlined.
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    /// Corner radius.
    pub rx: f64,
    pub fill: &'static str,
    pub stroke: &'static str,
    pub width: f64,
}

/// How text is set: size in px, `normal`/`bold`, colour, `start`/`middle`/`end` anchor.
#[derive(Debug, Clone, Copy)]
pub struct Font {
    pub size: f64,
    pub weight: &'static str,
    pub color: &'static str,
    pub anchor: &'static str,
}

impl Font {
    pub fn normal(size: f64, color: &'static str) -> Font {
        Font {
            size,
            weight: "normal",
            color,
            anchor: "start",
        }
    }
    pub fn bold(size: f64, color: &'static str) -> Font {
        Font {
            weight: "bold",
            ..Font::normal(size, color)
        }
    }
    /// Anchored at `middle` or `end` instead of `start`.
    pub fn at(self, anchor: &'static str) -> Font {
        Font { anchor, ..self }
    }
}

/// How a line is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Stroke {
    pub color: &'static str,
    pub width: f64,
    /// `stroke-dasharray`, e.g. `"6 4"`.
    pub dash: Option<&'static str>,
    /// Marker id of the arrow head at the end (see [`Svg::finish`]).
    pub arrow: bool,
}

impl Svg {
    pub fn new() -> Svg {
        Svg {
            body: String::new(),
        }
    }

    /// A rectangle `(x, y, width, height)`.
    pub fn rect(&mut self, (x, y, w, h): (f64, f64, f64, f64), p: Paint) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="{:.1}" fill="{}" stroke="{}" stroke-width="{:.1}"/>"#,
            p.rx, p.fill, p.stroke, p.width
        );
    }

    pub fn rect_dashed(&mut self, x: f64, y: f64, w: f64, h: f64, stroke: &str, dash: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" rx="6" fill="none" stroke="{stroke}" stroke-width="1" stroke-dasharray="{dash}"/>"#
        );
    }

    /// Text with its baseline at (x, y).
    pub fn text(&mut self, x: f64, y: f64, f: Font, s: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{}" font-weight="{}" fill="{}" text-anchor="{}">{}</text>"#,
            f.size,
            f.weight,
            f.color,
            f.anchor,
            esc(s)
        );
    }

    /// A path (`d` in SVG path syntax).
    pub fn path(&mut self, d: &str, s: Stroke) {
        let dash = s
            .dash
            .map(|d| format!(r#" stroke-dasharray="{d}""#))
            .unwrap_or_default();
        let arrow = if s.arrow {
            format!(r#" marker-end="url(#{})""#, marker_id(s.color))
        } else {
            String::new()
        };
        let _ = writeln!(
            self.body,
            r#"<path d="{d}" fill="none" stroke="{}" stroke-width="{:.1}"{dash}{arrow}/>"#,
            s.color, s.width
        );
    }

    /// A `<title>`-carrying group start (tooltips in browsers); close with [`end_group`].
    pub fn group(&mut self, title: &str) {
        let _ = writeln!(self.body, "<g><title>{}</title>", esc(title));
    }

    pub fn end_group(&mut self) {
        self.body.push_str("</g>\n");
    }

    /// The whole document, `w`×`h` px, white background, arrow markers for every colour used.
    pub fn finish(self, w: f64, h: f64, title: &str) -> String {
        let mut o = String::with_capacity(self.body.len() + 2048);
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="DejaVu Sans Mono, Menlo, Consolas, monospace">"#
        );
        let _ = writeln!(o, "<title>{}</title>", esc(title));
        o.push_str("<defs>\n");
        for c in ARROW_COLORS {
            let _ = writeln!(
                o,
                r#"<marker id="{}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{c}"/></marker>"#,
                marker_id(c)
            );
        }
        o.push_str("</defs>\n");
        let _ = writeln!(
            o,
            r#"<rect x="0" y="0" width="{w:.0}" height="{h:.0}" fill="white"/>"#
        );
        o.push_str(&self.body);
        o.push_str("</svg>\n");
        o
    }
}

impl Default for Svg {
    fn default() -> Self {
        Svg::new()
    }
}

/// Colours lines may use (each gets an arrow-head marker).
pub const ARROW_COLORS: &[&str] = &[INK, GRAY, RED, BLUE, PURPLE, GREEN, ORANGE, DARKBLUE, TEAL];
pub const INK: &str = "#333333";
pub const GRAY: &str = "#9a9a9a";
pub const RED: &str = "#c0392b";
pub const BLUE: &str = "#1f5fbf";
pub const PURPLE: &str = "#7a3fc0";
pub const GREEN: &str = "#2e8b57";
pub const ORANGE: &str = "#d97a00";
pub const DARKBLUE: &str = "#34495e";
pub const TEAL: &str = "#138d90";

fn marker_id(color: &str) -> String {
    format!("arrow{}", color.trim_start_matches('#'))
}
