//! The one snapshot mechanism of the tests: rendered text compared with a reviewed file.
//!
//! `BLESS=1 cargo test …` rewrites every snapshot a test checks (and creates missing ones);
//! review each changed line before committing it — a snapshot is a claim about what users
//! see, not a record of whatever the tool printed. Without `BLESS` a test collects every
//! difference (shown as a line diff on standard error) and fails once at the end, naming
//! the files. Reviewed files may have CRLF line ends (a Windows checkout); they compare as LF.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Snapshots checked by one test.
#[derive(Default)]
pub struct Snapshots {
    bless: bool,
    checked: usize,
    differ: Vec<String>,
}

impl Snapshots {
    pub fn new() -> Self {
        Snapshots {
            bless: std::env::var_os("BLESS").is_some_and(|v| !v.is_empty() && v != "0"),
            ..Snapshots::default()
        }
    }

    /// Compare `actual` with the reviewed file at `path` (rewrite it under `BLESS=1`).
    pub fn check(&mut self, path: impl AsRef<Path>, actual: &str) {
        let path = path.as_ref();
        self.checked += 1;
        if self.bless {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).unwrap();
            }
            std::fs::write(path, actual)
                .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
            return;
        }
        match std::fs::read_to_string(path) {
            Ok(expected) if expected.replace("\r\n", "\n") == actual => {}
            Ok(expected) => {
                eprintln!(
                    "\n=== {} differs (left: reviewed, right: rendered) ===\n{}",
                    path.display(),
                    pretty_assertions::StrComparison::new(&expected.replace("\r\n", "\n"), actual)
                );
                self.differ.push(path.display().to_string());
            }
            Err(_) => self
                .differ
                .push(format!("{} is missing (BLESS=1 writes it)", path.display())),
        }
    }

    /// How many snapshots were checked so far.
    pub fn checked(&self) -> usize {
        self.checked
    }

    /// Fail naming every snapshot that differs.
    pub fn finish(self) {
        assert!(
            self.differ.is_empty(),
            "snapshots differ (BLESS=1 rewrites them; review the diff):\n  {}",
            self.differ.join("\n  ")
        );
    }
}

/// Check one snapshot.
pub fn assert_snapshot(path: impl AsRef<Path>, actual: &str) {
    let mut s = Snapshots::new();
    s.check(path, actual);
    s.finish();
}

/// A path below the crate root.
pub fn crate_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}
