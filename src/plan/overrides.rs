//! The reviewed overrides file (TOML) that steers a plan where the analysis cannot decide.
//!
//! ```toml
//! # Optional: the sources this file was written for. When present they must match the
//! # SHA-256 of the old/new BPL files (as printed by `bplmigrate plan`), so a file written for
//! # another change is refused instead of silently applied.
//! old_sha256 = "3f1c…"
//! new_sha256 = "9ab2…"
//!
//! # Map a state to a chosen new state (same thread class: rows cannot change class).
//! # Typical use: a removed wait state whose instances should resume somewhere else.
//! [[map]]
//! thread = "Thread1"        # Thread<k>, or the full class name
//! old = "S6"
//! new = "S4"
//! reason = "the approval step was merged into the review step"   # optional, recorded
//!
//! # Fix an activity match the matcher got wrong or could not decide. Activities are named
//! # by `element "name"`, by a unique name alone, or by position `element@LINE:COLUMN`
//! # (also `@LINE:COLUMN`). `new = ""` means "this old activity has no counterpart".
//! [[pin]]
//! old = 'call "Lookup"'
//! new = 'call "LookupV2"'
//!
//! # A value for a new context property in in-flight rows (new instances use the
//! # property's initialexpression). SQL literal text: a number, or a quoted string.
//! [[default]]
//! property = "Priority"
//! value = "0"               # or value = 0; strings: value = "'normal'"
//!
//! # Acknowledge a finding after review: an acknowledged error no longer blocks the plan
//! # (an unacknowledged one blocks, unless its remedy is a drain and nothing is rewritten).
//! # `thread`/`state` narrow it to the findings naming that state (old version).
//! [[ack]]
//! code = "BPM0101"          # or the rule name, e.g. "removed-wait-state"
//! thread = "Thread1"        # optional
//! state = "S6"              # optional
//! reason = "no instance can be waiting there: the call was never deployed"   # optional
//! ```
//!
//! Every entry must apply: an unknown thread, state, activity, property or a finding that
//! does not occur is an error naming the line, as is a stale hash.

use crate::bpl::parse::LineIndex;
use crate::input::{printable, printable_max};
use serde::Deserialize;
use std::fmt;
use toml::Spanned;

/// An overrides file problem: `file:line: message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct OverridesError {
    pub file: String,
    /// 1-based line; 0 when the problem is not tied to a line.
    pub line: u32,
    pub message: String,
}

impl fmt::Display for OverridesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

/// A parsed overrides file. Every entry keeps its line for messages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overrides {
    pub file: String,
    pub old_sha256: Option<(u32, String)>,
    pub new_sha256: Option<(u32, String)>,
    pub maps: Vec<MapOverride>,
    pub pins: Vec<PinOverride>,
    pub defaults: Vec<DefaultOverride>,
    pub acks: Vec<AckOverride>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapOverride {
    pub line: u32,
    pub thread: String,
    pub old: String,
    pub new: String,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinOverride {
    pub line: u32,
    pub old: String,
    /// None: the old activity has no counterpart.
    pub new: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultOverride {
    pub line: u32,
    pub property: String,
    /// SQL literal text.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckOverride {
    pub line: u32,
    pub code: String,
    pub thread: Option<String>,
    pub state: Option<String>,
    pub reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    old_sha256: Option<Spanned<String>>,
    new_sha256: Option<Spanned<String>>,
    #[serde(default)]
    map: Vec<Spanned<RawMap>>,
    #[serde(default)]
    pin: Vec<Spanned<RawPin>>,
    #[serde(default)]
    default: Vec<Spanned<RawDefault>>,
    #[serde(default)]
    ack: Vec<Spanned<RawAck>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMap {
    thread: String,
    old: String,
    new: String,
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPin {
    old: String,
    new: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefault {
    property: String,
    value: toml::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAck {
    code: String,
    thread: Option<String>,
    state: Option<String>,
    reason: Option<String>,
}

impl Overrides {
    /// Parse an overrides file from its bytes: UTF-8 (a byte-order mark is dropped); another
    /// encoding or invalid UTF-8 is an error naming the line.
    pub fn parse_bytes(file: &str, bytes: &[u8]) -> Result<Overrides, OverridesError> {
        let err = |line: u32, message: String| OverridesError {
            file: file.to_string(),
            line,
            message,
        };
        if let Some(encoding) = crate::input::sniff_encoding(bytes) {
            return Err(err(1, crate::input::encoding_message(encoding)));
        }
        let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let text = std::str::from_utf8(body).map_err(|e| {
            let good = e.valid_up_to();
            let line = body[..good].iter().filter(|&&b| b == b'\n').count() + 1;
            err(
                u32::try_from(line).unwrap_or(u32::MAX),
                format!(
                    "invalid UTF-8 (byte 0x{:02X}); the overrides file must be UTF-8",
                    body.get(good).copied().unwrap_or(0)
                ),
            )
        })?;
        Self::parse(file, text)
    }

    /// Parse an overrides file. `file` names it in messages.
    pub fn parse(file: &str, text: &str) -> Result<Overrides, OverridesError> {
        let err = |line: u32, message: String| OverridesError {
            file: file.to_string(),
            line,
            message,
        };
        // Lines come from one index (binary search), never from rescanning the text per entry.
        let index = LineIndex::new(text);
        let line_of = |offset: usize| index.line(offset);
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(s.start)).unwrap_or(0);
            err(line, printable_max(e.message().trim(), 1000))
        })?;
        let line = |s: &std::ops::Range<usize>| line_of(s.start);
        let hash = |h: Option<Spanned<String>>| -> Result<Option<(u32, String)>, OverridesError> {
            match h {
                None => Ok(None),
                Some(h) => {
                    let l = line(&h.span());
                    let v = h.into_inner().trim().to_ascii_lowercase();
                    if v.len() != 64 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(err(
                            l,
                            format!("\"{}\" is not a SHA-256 (64 hex digits)", printable(&v)),
                        ));
                    }
                    Ok(Some((l, v)))
                }
            }
        };
        let mut out = Overrides {
            file: file.to_string(),
            old_sha256: hash(raw.old_sha256)?,
            new_sha256: hash(raw.new_sha256)?,
            ..Default::default()
        };
        for m in raw.map {
            let l = line(&m.span());
            let m = m.into_inner();
            out.maps.push(MapOverride {
                line: l,
                thread: m.thread.trim().to_string(),
                old: m.old.trim().to_string(),
                new: m.new.trim().to_string(),
                reason: m.reason,
            });
        }
        for p in raw.pin {
            let l = line(&p.span());
            let p = p.into_inner();
            let new = p.new.trim();
            out.pins.push(PinOverride {
                line: l,
                old: p.old.trim().to_string(),
                new: (!new.is_empty()).then(|| new.to_string()),
            });
        }
        for d in raw.default {
            let l = line(&d.span());
            let d = d.into_inner();
            let value = match d.value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => if b { "1" } else { "0" }.to_string(),
                other => {
                    return Err(err(
                        l,
                        format!(
                            "default for {} must be a number or a string, not {}",
                            printable(&d.property),
                            other.type_str()
                        ),
                    ))
                }
            };
            out.defaults.push(DefaultOverride {
                line: l,
                property: d.property.trim().to_string(),
                value,
            });
        }
        for a in raw.ack {
            let l = line(&a.span());
            let a = a.into_inner();
            out.acks.push(AckOverride {
                line: l,
                code: a.code.trim().to_string(),
                thread: a.thread,
                state: a.state,
                reason: a.reason,
            });
        }
        Ok(out)
    }

    pub fn error(&self, line: u32, message: impl Into<String>) -> OverridesError {
        OverridesError {
            file: self.file.clone(),
            line,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_section_with_lines() {
        let text = r#"old_sha256 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

[[map]]
thread = "Thread1"
old = "S6"
new = "S4"

[[pin]]
old = 'call "A"'
new = ""

[[default]]
property = "P"
value = 0

[[ack]]
code = "BPM0101"
state = "S6"
"#;
        let o = Overrides::parse("o.toml", text).unwrap();
        assert_eq!(o.old_sha256, Some((1, "a".repeat(64))));
        assert_eq!(
            o.maps[0],
            MapOverride {
                line: 3,
                thread: "Thread1".into(),
                old: "S6".into(),
                new: "S4".into(),
                reason: None
            }
        );
        assert_eq!(o.pins[0].new, None);
        assert_eq!(o.defaults[0].value, "0");
        assert_eq!(o.acks[0].state.as_deref(), Some("S6"));
        assert!(o.acks[0].line >= 16);
    }

    #[test]
    fn unknown_key_names_the_line() {
        let e = Overrides::parse(
            "o.toml",
            "[[map]]\nthread = \"Thread1\"\nold = \"S1\"\nnew = \"S2\"\nbogus = 1\n",
        )
        .unwrap_err();
        assert!(e.line >= 1, "{e}");
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn bad_hash_is_refused() {
        let e = Overrides::parse("o.toml", "\nnew_sha256 = \"xyz\"\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
