//! The git plumbing `check --git-base` needs: find the repository, resolve revisions safely,
//! list changed files, read blobs.
//!
//! Every revision a user gives is refused when it starts with `-` (git would read it as an
//! option: `--output=FILE` writes a file) and is then resolved to a commit id with
//! `git rev-parse --verify --end-of-options REV^{commit}`; only that id is passed on to other
//! git commands. Paths are repository-relative and `/`-separated, whatever the current
//! directory. File names are read with `-z` and kept as the bytes git stores (a name need not
//! be UTF-8): git is given those bytes back, and messages and reports show [`display`].

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    #[error("{dir} is not inside a git repository (--git-base compares git revisions: run it in a checkout)")]
    NotARepo { dir: String },
    #[error("cannot run git: {reason}")]
    Spawn { reason: String },
    #[error("revision '{rev}' starts with '-': refused (git would read it as an option)")]
    HostileRevision { rev: String },
    #[error("revision '{rev}' is not usable: {why}")]
    BadRevision { rev: String, why: String },
    #[error("unknown revision '{rev}' (not a commit in this repository{hint})")]
    UnknownRevision { rev: String, hint: String },
    #[error("no common ancestor of {base} and {head}{hint}")]
    NoMergeBase {
        base: String,
        head: String,
        hint: String,
    },
    #[error("git {command} failed: {reason}")]
    Failed { command: String, reason: String },
}

/// Refuse a revision git could mistake for an option, or that holds characters no revision
/// has. Used for `--git-base`/`--git-head` and for the `REV` of every `REV:path`.
pub fn check_revision(rev: &str) -> Result<(), GitError> {
    if rev.starts_with('-') {
        return Err(GitError::HostileRevision {
            rev: rev.to_string(),
        });
    }
    if rev.is_empty() {
        return Err(GitError::BadRevision {
            rev: rev.to_string(),
            why: "it is empty".into(),
        });
    }
    if rev.chars().any(|c| c.is_control()) {
        return Err(GitError::BadRevision {
            rev: rev.escape_debug().to_string(),
            why: "it holds a control character".into(),
        });
    }
    Ok(())
}

/// A git repository seen from a directory inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repo {
    /// The top of the working tree.
    pub top: PathBuf,
    /// The starting directory relative to `top` (`/`-separated, empty at the top, else with a
    /// trailing `/`).
    pub prefix: String,
}

/// A file read with a size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limited {
    Whole(Vec<u8>),
    /// Over the limit: its first bytes and its size.
    Head {
        prefix: Vec<u8>,
        size: u64,
    },
}

/// [`Limited`] for a file on disk.
pub fn read_limited(path: &Path, limit: u64, head: u64) -> std::io::Result<Limited> {
    use std::io::Read as _;
    let meta = std::fs::metadata(path)?;
    // A FIFO or device reports size 0 and would be read forever.
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "it is {}, not a regular file",
                crate::input::what_is(&meta.file_type())
            ),
        ));
    }
    let size = meta.len();
    if size <= limit {
        return std::fs::read(path).map(Limited::Whole);
    }
    let mut prefix = Vec::new();
    std::fs::File::open(path)?
        .take(head)
        .read_to_end(&mut prefix)?;
    Ok(Limited::Head { prefix, size })
}

/// One changed file between two trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    /// `A`dded, `D`eleted, `M`odified, `T`ype changed (git's letters; `?` for untracked).
    pub status: char,
    /// The repository-relative name as git stores it.
    pub path: Vec<u8>,
}

/// A file name git printed, as messages and reports show it: UTF-8 as it is, any byte that is
/// not UTF-8 as `\xNN` (a Latin-1 `é` is `\xE9`).
pub fn display(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// A file name git printed, as an argument for git (or a path below the working tree).
#[cfg(unix)]
pub fn os_name(name: &[u8]) -> Result<&OsStr, GitError> {
    use std::os::unix::ffi::OsStrExt as _;
    Ok(OsStr::from_bytes(name))
}

/// A file name git printed, as an argument for git (or a path below the working tree): only
/// UTF-8 names can be passed on here.
#[cfg(not(unix))]
pub fn os_name(name: &[u8]) -> Result<&OsStr, GitError> {
    std::str::from_utf8(name)
        .map(OsStr::new)
        .map_err(|_| GitError::Failed {
            command: "ls-files".into(),
            reason: format!(
                "the file name {} is not UTF-8, which this system cannot pass back to git: rename it",
                display(name)
            ),
        })
}

/// `COMMIT:name`, the blob spec of a file at a commit.
fn blob_spec(commit: &str, name: &[u8]) -> Result<OsString, GitError> {
    let mut spec = OsString::from(format!("{commit}:"));
    spec.push(os_name(name)?);
    Ok(spec)
}

fn run<A: AsRef<OsStr>>(dir: &Path, args: &[A]) -> Result<std::process::Output, GitError> {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("LC_ALL", "C")
        .env_remove("GIT_EXTERNAL_DIFF")
        .output()
        .map_err(|e| GitError::Spawn {
            reason: e.to_string(),
        })
}

fn first_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("no message");
    line.strip_prefix("fatal: ")
        .unwrap_or(line)
        .trim_end_matches('.')
        .to_string()
}

fn ok<A: AsRef<OsStr>>(dir: &Path, args: &[A]) -> Result<Vec<u8>, GitError> {
    let out = run(dir, args)?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(GitError::Failed {
            command: args
                .first()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .unwrap_or_default(),
            reason: crate::input::printable(&first_line(&out.stderr)),
        })
    }
}

impl Repo {
    /// The repository around `dir`; outside one, [`GitError::NotARepo`].
    pub fn discover(dir: &Path) -> Result<Repo, GitError> {
        let out = run(dir, &["rev-parse", "--show-toplevel", "--show-prefix"])?;
        if !out.status.success() {
            let reason = first_line(&out.stderr);
            if reason.contains("not a git repository") {
                return Err(GitError::NotARepo {
                    dir: dir
                        .canonicalize()
                        .unwrap_or_else(|_| dir.to_path_buf())
                        .display()
                        .to_string(),
                });
            }
            return Err(GitError::Failed {
                command: "rev-parse".into(),
                reason,
            });
        }
        // The top is kept as the bytes git printed: a working tree under a folder whose name
        // is not UTF-8 still finds its files.
        let mut lines = out
            .stdout
            .split(|b| *b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let top = lines.next().unwrap_or_default();
        let prefix = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
        if top.is_empty() {
            // A bare repository or the .git directory itself: no working tree.
            return Err(GitError::NotARepo {
                dir: dir.display().to_string(),
            });
        }
        Ok(Repo {
            top: PathBuf::from(os_name(top)?),
            prefix,
        })
    }

    /// The commit id `rev` names.
    pub fn resolve(&self, rev: &str) -> Result<String, GitError> {
        check_revision(rev)?;
        let spec = format!("{rev}^{{commit}}");
        let out = run(
            &self.top,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                "--end-of-options",
                &spec,
            ],
        )?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() || id.is_empty() {
            let shallow = ok(&self.top, &["rev-parse", "--is-shallow-repository"])
                .is_ok_and(|o| o.starts_with(b"true"));
            let hint = if shallow {
                "; this clone is shallow: fetch the base (GitLab: GIT_DEPTH: 0; GitHub: fetch-depth: 0)"
            } else {
                ""
            };
            return Err(GitError::UnknownRevision {
                rev: rev.to_string(),
                hint: hint.into(),
            });
        }
        Ok(id)
    }

    /// The best common ancestor of two commit ids.
    pub fn merge_base(&self, base: &str, head: &str) -> Result<String, GitError> {
        let out = run(&self.top, &["merge-base", "--end-of-options", base, head])?;
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !id.is_empty() {
            return Ok(id);
        }
        let shallow = ok(&self.top, &["rev-parse", "--is-shallow-repository"])
            .is_ok_and(|o| o.starts_with(b"true"));
        Err(GitError::NoMergeBase {
            base: base.to_string(),
            head: head.to_string(),
            hint: if shallow {
                ": this clone is shallow, fetch more history (GitLab: GIT_DEPTH: 0; GitHub: fetch-depth: 0)".into()
            } else {
                String::new()
            },
        })
    }

    /// Files that differ between commit `base` and commit `head` (or the working tree with
    /// untracked, not ignored files when `head` is None). Renames are not paired here: the
    /// caller pairs classes by name.
    pub fn changed(&self, base: &str, head: Option<&str>) -> Result<Vec<Changed>, GitError> {
        let mut args = vec![
            "diff",
            "--name-status",
            "-z",
            "--no-renames",
            "--no-ext-diff",
            "--no-textconv",
            "--ignore-submodules",
            "--end-of-options",
            base,
        ];
        if let Some(h) = head {
            args.push(h);
        }
        args.push("--");
        let out = ok(&self.top, &args)?;
        let mut v = Vec::new();
        let mut fields = out.split(|b| *b == 0).filter(|f| !f.is_empty());
        while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
            v.push(Changed {
                status: status.first().map(|b| *b as char).unwrap_or('M'),
                path: path.to_vec(),
            });
        }
        if head.is_none() {
            let out = ok(
                &self.top,
                &["ls-files", "-z", "--others", "--exclude-standard"],
            )?;
            for p in out.split(|b| *b == 0).filter(|f| !f.is_empty()) {
                v.push(Changed {
                    status: '?',
                    path: p.to_vec(),
                });
            }
        }
        v.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(v)
    }

    /// The committed bytes of `path` at commit id `commit`, or only its first `head` bytes
    /// when it holds more than `limit` (memory stays bounded whatever was committed).
    pub fn blob_limited(
        &self,
        commit: &str,
        path: &[u8],
        limit: u64,
        head: u64,
    ) -> Result<Limited, GitError> {
        let spec = blob_spec(commit, path)?;
        let size_text = ok(
            &self.top,
            &[OsStr::new("cat-file"), OsStr::new("-s"), &spec],
        )?;
        let size: u64 = String::from_utf8_lossy(&size_text)
            .trim()
            .parse()
            .map_err(|_| GitError::Failed {
                command: "cat-file -s".into(),
                reason: format!("unexpected size for {}", display(path)),
            })?;
        if size <= limit {
            return Ok(Limited::Whole(self.blob(commit, path)?));
        }
        let mut child = Command::new("git")
            .args([OsStr::new("cat-file"), OsStr::new("blob"), &spec])
            .current_dir(&self.top)
            .env("LC_ALL", "C")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| GitError::Spawn {
                reason: e.to_string(),
            })?;
        let mut prefix = Vec::new();
        if let Some(out) = child.stdout.take() {
            use std::io::Read as _;
            let _ = out.take(head).read_to_end(&mut prefix);
        }
        let _ = child.kill();
        let _ = child.wait();
        Ok(Limited::Head { prefix, size })
    }

    /// The committed bytes of `path` at commit id `commit`.
    pub fn blob(&self, commit: &str, path: &[u8]) -> Result<Vec<u8>, GitError> {
        let spec = blob_spec(commit, path)?;
        ok(
            &self.top,
            &[OsStr::new("cat-file"), OsStr::new("blob"), &spec],
        )
    }

    /// Every file under `dir` (repository-relative) in commit `commit`, named as git stores
    /// it.
    pub fn tree_files(&self, commit: &str, dir: &str) -> Result<Vec<Vec<u8>>, GitError> {
        let out = ok(
            &self.top,
            &[
                "ls-tree",
                "-r",
                "-z",
                "--name-only",
                "--full-tree",
                "--end-of-options",
                commit,
                "--",
                dir,
            ],
        )?;
        Ok(out
            .split(|b| *b == 0)
            .filter(|f| !f.is_empty())
            .map(<[u8]>::to_vec)
            .collect())
    }

    /// Files under `dir` (repository-relative) that are untracked, or differ from commit HEAD
    /// in the index or the working tree: a folder with any is not committed.
    pub fn uncommitted(&self, dir: &str) -> Result<Vec<String>, GitError> {
        let out = ok(
            &self.top,
            &[
                "status",
                "--porcelain",
                "-z",
                "--untracked-files=all",
                "--",
                dir,
            ],
        )?;
        Ok(out
            .split(|b| *b == 0)
            .filter(|f| f.len() > 3)
            .map(|f| display(&f[3..]))
            .collect())
    }

    /// `path` (relative to the starting directory) as a repository-relative path, `./` and
    /// `..` resolved lexically. None when it leaves the repository.
    pub fn relative(&self, path: &str) -> Option<String> {
        let joined = format!("{}{}", self.prefix, path.replace('\\', "/"));
        let mut parts: Vec<&str> = Vec::new();
        for seg in joined.split('/') {
            match seg {
                "" | "." => {}
                ".." => {
                    parts.pop()?;
                }
                s => parts.push(s),
            }
        }
        Some(parts.join("/"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_that_look_like_options_are_refused() {
        assert!(matches!(
            check_revision("--output=/tmp/x"),
            Err(GitError::HostileRevision { .. })
        ));
        assert!(matches!(
            check_revision("-p"),
            Err(GitError::HostileRevision { .. })
        ));
        assert!(check_revision("").is_err());
        assert!(check_revision("a\nb").is_err());
        assert!(check_revision("HEAD~1").is_ok());
        assert!(check_revision("origin/main").is_ok());
    }

    #[test]
    fn relative_paths_resolve_against_the_prefix() {
        let r = Repo {
            top: PathBuf::from("/r"),
            prefix: "src/pkg/".into(),
        };
        assert_eq!(r.relative("A.cls").as_deref(), Some("src/pkg/A.cls"));
        assert_eq!(r.relative("./A.cls").as_deref(), Some("src/pkg/A.cls"));
        assert_eq!(r.relative("../B.cls").as_deref(), Some("src/B.cls"));
        assert_eq!(r.relative("../../..").as_deref(), None);
        assert_eq!(r.relative(".").as_deref(), Some("src/pkg"));
    }
}
