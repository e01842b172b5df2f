//! Checked reads: the one place where bplmigrate reads an input file (a BPL, an exported thread
//! class, an overrides file, a migration folder file) from disk or from git.
//!
//! Every read is checked before the first byte is read:
//! - only a regular file is read (also through a symlink): a directory, FIFO, socket or device
//!   is refused with a message naming what it is, so `/dev/zero` or a named pipe can neither
//!   hang the tool nor fill its memory;
//! - its size must not exceed the cap of its [`Kind`] (see [`Kind::default_cap`]); the bytes
//!   are then read through a bounded reader, so a file that grows while it is read cannot
//!   exceed the cap either. `--max-input-size` ([`set_max_size`]) raises (or lowers) the cap of
//!   every kind for the rare giant;
//! - `REV:path` asks git for the blob's size (`git cat-file -s`) before reading it.
//!
//! Also here: [`sniff_encoding`] (naming a non-UTF-8 encoding right) and [`printable`]
//! (values echoed in messages: truncated, control characters escaped).

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

/// What an input file is; each kind has its own size cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A BPL source (UDL class, Studio export, bare `<process>` document).
    Bpl,
    /// A class file exported from IRIS (the generated thread and context classes).
    ThreadClass,
    /// An overrides file (TOML).
    Overrides,
    /// A file of a migration folder (`plan.json`, `apply.sql`, the checksum file, …).
    PlanFolder,
}

const MIB: u64 = 1024 * 1024;

impl Kind {
    /// The documented default cap in bytes. Real sources are far smaller: the largest BPL
    /// classes seen are a few hundred KiB, and their generated thread classes a few MiB.
    pub const fn default_cap(self) -> u64 {
        match self {
            Kind::Bpl => 16 * MIB,
            Kind::ThreadClass => 64 * MIB,
            Kind::Overrides => 16 * MIB,
            Kind::PlanFolder => 64 * MIB,
        }
    }

    /// How messages name the kind.
    pub const fn noun(self) -> &'static str {
        match self {
            Kind::Bpl => "a BPL source",
            Kind::ThreadClass => "an exported class file",
            Kind::Overrides => "an overrides file",
            Kind::PlanFolder => "a migration folder file",
        }
    }
}

/// 0: no override (each kind uses its default cap).
static MAX_SIZE: AtomicU64 = AtomicU64::new(0);

/// Set one cap for every kind (`--max-input-size`); `None` restores the defaults.
pub fn set_max_size(bytes: Option<u64>) {
    MAX_SIZE.store(bytes.unwrap_or(0), Ordering::Relaxed);
}

/// The cap in force for `kind`.
pub fn cap(kind: Kind) -> u64 {
    match MAX_SIZE.load(Ordering::Relaxed) {
        0 => kind.default_cap(),
        n => n,
    }
}

/// A size like `16M`, `512K`, `2G` or `1000` (bytes); K/M/G are powers of 1024 (`KiB`,
/// `MiB`, `GiB` and a trailing `B` are accepted too).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let body = upper.strip_suffix("IB").or_else(|| upper.strip_suffix('B'));
    let body = body.unwrap_or(&upper);
    let (digits, mult) = match body.chars().last() {
        Some('K') => (&body[..body.len() - 1], 1024u64),
        Some('M') => (&body[..body.len() - 1], MIB),
        Some('G') => (&body[..body.len() - 1], 1024 * MIB),
        _ => (body, 1),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{:?} is not a size (write e.g. 64M, 512K, 2G)", t))?;
    match n.checked_mul(mult) {
        Some(0) | None => Err(format!("{t:?} is not a usable size")),
        Some(v) => Ok(v),
    }
}

/// Human size: `16 MiB`, `1.5 KiB`, `12 bytes`.
pub fn human_size(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1024 * MIB), ("MiB", MIB), ("KiB", 1024)];
    for (unit, size) in UNITS {
        if n >= size {
            return if n % size == 0 {
                format!("{} {unit}", n / size)
            } else {
                format!("{:.1} {unit}", n as f64 / size as f64)
            };
        }
    }
    format!("{n} bytes")
}

/// Why an input could not be read. The message names the path (or `REV:path`).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {}: {}", path.display(), lower_first(&source.to_string()))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: it is {what}, not a regular file", path.display())]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("{} is {}, more than the {} limit for {}; pass --max-input-size {} to read it anyway", path.display(), human_size(*size), human_size(*cap), kind.noun(), suggest(*size))]
    TooLarge {
        path: PathBuf,
        size: u64,
        cap: u64,
        kind: Kind,
    },
    /// Git could not be run or refused (`message` says why).
    #[error("{message}")]
    Git { message: String },
}

impl InputError {
    /// The message without the path prefix `Io`/`NotRegular` carry (for callers that put the
    /// origin in front themselves).
    pub fn reason(&self) -> String {
        match self {
            InputError::Io { source, .. } => {
                format!("cannot read the file: {}", lower_first(&source.to_string()))
            }
            InputError::NotRegular { what, .. } => {
                format!("cannot read the file: it is {what}, not a regular file")
            }
            InputError::TooLarge {
                size, cap, kind, ..
            } => format!(
                "the file is {}, more than the {} limit for {}; pass --max-input-size {} to read it anyway",
                human_size(*size),
                human_size(*cap),
                kind.noun(),
                suggest(*size)
            ),
            InputError::Git { message } => message.clone(),
        }
    }
}

/// A `--max-input-size` value that admits `size`: the next whole MiB above it.
fn suggest(size: u64) -> String {
    format!("{}M", size / MIB + 1)
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// What a file that is not a regular file is, for messages: `a directory`, `a FIFO (named
/// pipe)`, `a socket`, `a character device`, ….
pub fn what_is(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_socket() {
            return "a socket";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
    }
    "not a regular file"
}

/// Read `path` as an input of `kind` (see the module documentation).
pub fn read(path: &Path, kind: Kind) -> Result<Vec<u8>, InputError> {
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    // `metadata` follows symlinks: a link to a FIFO is a FIFO.
    let meta = std::fs::metadata(path).map_err(io)?;
    check_meta(path, &meta, kind)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        // Never block in open(): the path may have been swapped for a FIFO since the check.
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(io)?;
    // Check the opened file itself (the path may have changed between the two looks).
    let meta = file.metadata().map_err(io)?;
    check_meta(path, &meta, kind)?;
    let cap = cap(kind);
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    let got = bytes.len() as u64;
    if got > cap {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            size: got.max(meta.len()),
            cap,
            kind,
        });
    }
    Ok(bytes)
}

fn check_meta(path: &Path, meta: &std::fs::Metadata, kind: Kind) -> Result<(), InputError> {
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(InputError::NotRegular {
            path: path.to_path_buf(),
            what: what_is(&ft),
        });
    }
    let cap = cap(kind);
    if meta.len() > cap {
        return Err(InputError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            cap,
            kind,
        });
    }
    Ok(())
}

/// Read the blob `rev:path` from the git repository around `dir`, checking its type and size
/// first. Messages name the source as `origin`.
pub fn read_git(dir: &Path, rev: &str, path: &str, kind: Kind) -> Result<Vec<u8>, InputError> {
    let spec = format!("{rev}:{path}");
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| InputError::Git {
                message: format!(
                    "cannot run git to read revision '{}': {}",
                    printable(rev),
                    lower_first(&e.to_string())
                ),
            })
    };
    let refused = |stderr: &[u8]| {
        let stderr = String::from_utf8_lossy(stderr);
        let reason = stderr
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("git failed");
        let reason = reason
            .strip_prefix("fatal: ")
            .unwrap_or(reason)
            .trim_end_matches('.');
        let hint = if path.starts_with("./") || path.starts_with("../") {
            String::new()
        } else {
            format!(
                " (the path is relative to the repository root; write {}:./{} for one relative to the current directory)",
                printable(rev),
                printable(path)
            )
        };
        InputError::Git {
            message: format!(
                "git cannot read path '{}' at revision '{}': {}{hint}",
                printable(path),
                printable(rev),
                printable(reason)
            ),
        }
    };
    // `--` would end options; a revision starting with `-` must not be read as one.
    if rev.starts_with('-') {
        return Err(InputError::Git {
            message: format!(
                "revision '{}' starts with '-': refused (git would read it as an option)",
                printable(rev)
            ),
        });
    }
    let t = git(&["cat-file", "-t", "--end-of-options", &spec])?;
    if !t.status.success() {
        return Err(refused(&t.stderr));
    }
    let ty = String::from_utf8_lossy(&t.stdout).trim().to_string();
    if ty != "blob" {
        return Err(InputError::Git {
            message: format!(
                "git cannot read path '{}' at revision '{}': it is a {}, not a file",
                printable(path),
                printable(rev),
                printable(&ty)
            ),
        });
    }
    let s = git(&["cat-file", "-s", "--end-of-options", &spec])?;
    if !s.status.success() {
        return Err(refused(&s.stderr));
    }
    let size: u64 = String::from_utf8_lossy(&s.stdout)
        .trim()
        .parse()
        .map_err(|_| refused(b"git printed no size"))?;
    let cap = cap(kind);
    if size > cap {
        return Err(InputError::TooLarge {
            path: PathBuf::from(&spec),
            size,
            cap,
            kind,
        });
    }
    let mut child = Command::new("git")
        .args(["cat-file", "blob", "--end-of-options", &spec])
        .current_dir(dir)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| InputError::Git {
            message: format!(
                "cannot run git to read revision '{}': {}",
                printable(rev),
                lower_first(&e.to_string())
            ),
        })?;
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let read = match child.stdout.take() {
        Some(out) => out.take(cap.saturating_add(1)).read_to_end(&mut bytes),
        None => Ok(0),
    };
    if bytes.len() as u64 > cap {
        let _ = child.kill();
    }
    let out = child.wait_with_output().map_err(|e| InputError::Git {
        message: format!("git failed: {}", lower_first(&e.to_string())),
    })?;
    read.map_err(|e| InputError::Git {
        message: format!("cannot read git's output: {}", lower_first(&e.to_string())),
    })?;
    if bytes.len() as u64 > cap {
        return Err(InputError::TooLarge {
            path: PathBuf::from(&spec),
            size: bytes.len() as u64,
            cap,
            kind,
        });
    }
    if !out.status.success() {
        return Err(refused(&out.stderr));
    }
    Ok(bytes)
}

/// The encoding of text that is not UTF-8, when its byte-order mark or its NUL pattern tells:
/// `UTF-32LE`, `UTF-32BE`, `UTF-16LE`, `UTF-16BE`. UTF-32 is told apart from UTF-16 (its
/// little-endian BOM starts with UTF-16LE's).
pub fn sniff_encoding(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xFE, 0, 0]) {
        return Some("UTF-32LE");
    }
    if bytes.starts_with(&[0, 0, 0xFE, 0xFF]) {
        return Some("UTF-32BE");
    }
    if bytes.starts_with(&[0xFF, 0xFE]) {
        return Some("UTF-16LE");
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        return Some("UTF-16BE");
    }
    // No BOM: ASCII text in these encodings has a fixed NUL pattern in its first bytes.
    match bytes {
        [a, 0, 0, 0, ..] if *a != 0 => Some("UTF-32LE"),
        [0, 0, 0, b, ..] if *b != 0 => Some("UTF-32BE"),
        [a, 0, b, 0, ..] if *a != 0 && *b != 0 => Some("UTF-16LE"),
        [0, a, 0, b, ..] if *a != 0 && *b != 0 => Some("UTF-16BE"),
        _ => None,
    }
}

/// The message for a file in `encoding`: bplmigrate reads UTF-8 only.
pub fn encoding_message(encoding: &str) -> String {
    let lower = encoding.to_ascii_lowercase();
    format!(
        "the file is {encoding} encoded; bplmigrate reads UTF-8 only: convert it (e.g. iconv -f {lower} -t utf-8)"
    )
}

/// The longest value echoed in a message, in characters.
pub const ECHO_MAX: usize = 200;

/// A value echoed in a message: control characters escaped (`\n`, `\u{1b}`), cut after
/// [`ECHO_MAX`] characters with `…` and the total length.
pub fn printable(value: &str) -> String {
    printable_max(value, ECHO_MAX)
}

/// A value in a table cell or a line of human output: control characters, line and paragraph
/// separators and bidirectional overrides escaped exactly as [`printable`] does, never cut (a
/// cell must stay on its row, and the same value reads the same in every table).
pub fn printable_cell(value: &str) -> std::borrow::Cow<'_, str> {
    let special = |c: char| {
        c.is_control()
            || c == '\u{2028}'
            || c == '\u{2029}'
            || c == '\u{feff}'
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if value.chars().any(special) {
        std::borrow::Cow::Owned(printable_max(value, usize::MAX))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

/// How many terminal columns `text` takes: a CJK character two, a combining mark none.
pub fn display_width(text: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(text)
}

/// [`printable`] with its own limit.
pub fn printable_max(value: &str, max: usize) -> String {
    // Most values (every name of a large plan's tables) are short printable ASCII: as they are.
    if value.len() <= max && value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return value.to_string();
    }
    let mut out = String::new();
    for (n, c) in value.chars().enumerate() {
        if n == max {
            out.push_str(&format!("… ({} characters)", value.chars().count()));
            return out;
        }
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' || c == '\u{feff}' {
            out.extend(c.escape_debug());
        } else if ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// A whole message made printable, the last line of defence behind [`printable`] at the
/// places that echo a value: control characters are escaped, and any run of more than
/// [`ECHO_MAX`] characters without a space (a value no reader could use in full) is cut.
pub fn printable_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(64 * 1024));
    let mut run = 0usize;
    let mut cut = false;
    for c in message.chars() {
        if c == ' ' {
            if cut {
                out.push_str("…(cut)");
            }
            run = 0;
            cut = false;
        } else {
            run += 1;
        }
        if run > ECHO_MAX {
            cut = true;
            continue;
        }
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' || c == '\u{feff}' {
            out.extend(c.escape_debug());
        } else if ('\u{202a}'..='\u{202e}').contains(&c) || ('\u{2066}'..='\u{2069}').contains(&c) {
            // Bidirectional overrides could make a message read differently than it is.
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    if cut {
        out.push_str("…(cut)");
    }
    out
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.noun())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("16M"), Ok(16 * MIB));
        assert_eq!(parse_size("512k"), Ok(512 * 1024));
        assert_eq!(parse_size("2GiB"), Ok(2048 * MIB));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999G").is_err());
        assert!(parse_size("é").is_err());
    }

    #[test]
    fn special_files_are_refused_by_what_they_are() {
        let e = read(Path::new("/"), Kind::Bpl).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let e = read(Path::new("/dev/zero"), Kind::Bpl).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("p");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let link = dir.path().join("link.cls");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        for p in [&fifo, &link] {
            let e = read(p, Kind::Bpl).unwrap_err();
            assert!(e.to_string().contains("FIFO"), "{e}");
        }
    }

    #[test]
    fn the_cap_is_enforced_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.toml");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(Kind::Overrides.default_cap() + 1).unwrap();
        let e = read(&p, Kind::Overrides).unwrap_err();
        assert!(
            matches!(e, InputError::TooLarge { .. })
                && e.to_string().contains("--max-input-size 17M"),
            "{e}"
        );
        std::fs::write(&p, "x").unwrap();
        assert_eq!(read(&p, Kind::Overrides).unwrap(), b"x");
    }

    #[test]
    fn encodings_are_named_right() {
        assert_eq!(sniff_encoding(b"\xFF\xFE\0\0<\0\0\0"), Some("UTF-32LE"));
        assert_eq!(sniff_encoding(b"\xFF\xFE<\0"), Some("UTF-16LE"));
        assert_eq!(sniff_encoding(b"\0\0\xFE\xFF"), Some("UTF-32BE"));
        assert_eq!(sniff_encoding(b"\xFE\xFF\0<"), Some("UTF-16BE"));
        assert_eq!(sniff_encoding(b"<\0p\0"), Some("UTF-16LE"));
        assert_eq!(sniff_encoding(b"<\0\0\0"), Some("UTF-32LE"));
        assert_eq!(sniff_encoding(b"<process"), None);
    }

    #[test]
    fn messages_are_made_printable() {
        let m = printable_message(&format!(
            "a.cls:1:2: name {} is bad\u{1b}[2J",
            "x".repeat(5000)
        ));
        assert_eq!(
            m,
            format!(
                "a.cls:1:2: name {}…(cut) is bad\\u{{1b}}[2J",
                "x".repeat(200)
            )
        );
        assert_eq!(printable_message("\u{202e}abc"), "\\u{202e}abc");
    }

    #[test]
    fn cells_are_escaped_never_cut_and_measured_in_columns() {
        assert_eq!(printable_cell("plain"), "plain");
        assert_eq!(printable_cell("a\nb\rc\u{202e}"), "a\\nb\\rc\\u{202e}");
        let long = "x".repeat(500);
        assert_eq!(printable_cell(&long), long);
        assert_eq!(display_width("審査"), 4);
        assert_eq!(display_width("e\u{301}"), 1);
        assert_eq!(display_width("abc"), 3);
    }

    #[test]
    fn echoed_values_are_cut_and_escaped() {
        assert_eq!(printable("a\nb\u{1b}"), "a\\nb\\u{1b}");
        let long = "é".repeat(500);
        let p = printable(&long);
        assert!(p.starts_with(&"é".repeat(200)));
        assert!(p.ends_with("… (500 characters)"), "{p}");
    }
}
