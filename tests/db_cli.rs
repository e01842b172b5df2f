//! The `status` and `apply` commands (the real binary) against a real database: exit codes,
//! output formats, confirmation, passwords.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{plan, row, st, Fixture};

fn bplmigrate(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bplmigrate"));
    c.args(args)
        .env_remove("BPLMIGRATE_CONNECT")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run bplmigrate")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn swap_fixture(name: &str) -> Option<(Fixture, tempfile::TempDir, std::path::PathBuf)> {
    let fx = Fixture::new(name, 1)?;
    fx.seed(1, &[row("S5", 3), row("S7", 3), row("S5", 3)]);
    let p = plan(
        &fx,
        "a",
        &[(1, vec![st("S5", Some("S7")), st("S7", Some("S5"))])],
        &[],
    );
    let (tmp, dir) = fx.folder(&p);
    Some((fx, tmp, dir))
}

fn p(dir: &Path) -> &str {
    dir.to_str().expect("utf-8 path")
}

#[test]
fn apply_without_yes_and_without_a_terminal_refuses_with_exit_2() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliNoYes") else {
        return;
    };
    let before = fx.snapshot();
    let o = bplmigrate(&["apply", p(&dir), "--connect", &fx.connect], &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn apply_yes_json_then_again_is_refused_with_exit_3() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliApply") else {
        return;
    };
    let o = bplmigrate(
        &["apply", p(&dir), "--yes", "--format", "json"],
        &[("BPLMIGRATE_CONNECT", &fx.connect)],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["type"], "apply");
    assert_eq!(v["data"]["dry_run"], false);
    assert_eq!(v["data"]["statements"][0]["rows"], 3);
    assert_eq!(
        fx.states(1).into_iter().map(|r| r.0).collect::<Vec<_>>(),
        ["S7", "S5", "S7"]
    );
    let o = bplmigrate(&["apply", p(&dir), "--yes", "--connect", &fx.connect], &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("already applied"), "{err}");
}

#[test]
fn dry_run_prints_the_moves_and_changes_nothing() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliDry") else {
        return;
    };
    let before = fx.snapshot();
    let o = bplmigrate(
        &["apply", p(&dir), "--dry-run", "--connect", &fx.connect],
        &[],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.contains("dry run of plan"), "{out}");
    assert!(out.contains("3 rows would change"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("S5") && l.contains("S7") && l.contains("rewrite")),
        "{out}"
    );
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn a_refused_apply_exits_3_and_names_the_host() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliHostOn") else {
        return;
    };
    fx.set_enabled(true);
    let before = fx.snapshot();
    let o = bplmigrate(&["apply", p(&dir), "--yes", "--connect", &fx.connect], &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains(&fx.host()) && err.contains("enabled"), "{err}");
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn a_failed_connection_exits_4_without_printing_the_password() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliBadPwd") else {
        return;
    };
    let secret = "Wr0ngSecret-77";
    let bad: String = fx
        .connect
        .split(';')
        .filter(|p| !p.trim().is_empty() && !p.to_ascii_lowercase().starts_with("pwd="))
        .map(|p| format!("{p};"))
        .collect::<String>()
        + &format!("PWD={secret};");
    for args in [
        vec!["apply", p(&dir), "--yes", "--connect", &bad],
        vec!["status", "--plan", p(&dir), "--connect", &bad],
    ] {
        let o = bplmigrate(&args, &[]);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(4), "{err}");
        assert!(!out.contains(secret) && !err.contains(secret), "{err}");
    }
}

#[test]
fn an_edited_folder_exits_2() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliEdited") else {
        return;
    };
    std::fs::write(dir.join("extra.sql"), "UPDATE x SET y = 1;\n").unwrap();
    let o = bplmigrate(&["apply", p(&dir), "--yes", "--connect", &fx.connect], &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("extra.sql"), "{err}");
}

#[test]
fn status_human_and_json() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliStatus") else {
        return;
    };
    let o = bplmigrate(
        &["status", "--plan", p(&dir), "--connect", &fx.connect],
        &[],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.contains("live groups and their fate"), "{out}");
    assert!(out.contains("not applied"), "{out}");
    assert!(out.contains("can apply now"), "{out}");
    let o = bplmigrate(
        &["status", "--plan", p(&dir), "--format", "json"],
        &[("BPLMIGRATE_CONNECT", &fx.connect)],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["type"], "status");
    assert_eq!(v["data"]["class"], fx.class.as_str());
    assert_eq!(
        v["data"]["plan"]["refusals"].as_array().map(Vec::len),
        Some(0)
    );
}

#[test]
fn status_of_the_running_bpl() {
    let Some(fx) = Fixture::new("CliStatusOld", 1) else {
        return;
    };
    fx.seed(1, &[row("S2", 3)]);
    let tmp = tempfile::tempdir().unwrap();
    // A bare <process> document: its class is the file stem.
    let file = tmp.path().join(format!("{}.xml", fx.class));
    std::fs::write(
        &file,
        r#"<process request="Ens.Request" response="Ens.Response"><sequence><assign property="context.A" value="1"/></sequence></process>"#,
    )
    .unwrap();
    let o = bplmigrate(&["status", p(&file), "--connect", &fx.connect], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.contains(&format!("{}.Thread1", fx.schema)), "{out}");
}

#[test]
fn apply_then_revert_through_the_binary() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliRevert") else {
        return;
    };
    let before = fx.states(1);
    let o = bplmigrate(&["apply", p(&dir), "--yes", "--connect", &fx.connect], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    assert_ne!(fx.states(1), before);
    let o = bplmigrate(
        &[
            "apply",
            p(&dir),
            "--revert",
            "--yes",
            "--connect",
            &fx.connect,
        ],
        &[],
    );
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(out.starts_with("reverted plan"), "{out}");
    assert_eq!(fx.states(1), before);
}

/// Another session writing the thread table holds a lock `apply` needs: apply waits at most
/// `--lock-timeout`, says on stderr who holds it while it waits, then refuses with exit 3.
#[test]
fn a_held_lock_is_waited_for_reported_and_refused_with_exit_3() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliLock") else {
        return;
    };
    let before = fx.snapshot();
    let writer = support::raw_connect(&fx.connect);
    writer.set_autocommit(false).unwrap();
    support::exec(
        &writer,
        &format!(
            r#"UPDATE "{}"."Thread1" SET "%Status" = "%Status" WHERE FALSE"#,
            fx.schema
        ),
    );
    let pid = support::scalar(&writer, "SELECT pg_backend_pid()");
    let o = bplmigrate(
        &[
            "apply",
            p(&dir),
            "--connect",
            &fx.connect,
            "--yes",
            "--lock-timeout",
            "1.5",
        ],
        &[],
    );
    writer.rollback().unwrap();
    let (_, err) = text(&o);
    println!("{err}");
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "waiting for an exclusive lock on {}.Thread1",
            fx.schema
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "held by session {pid} (RowExclusiveLock) on {}.Thread1",
            fx.schema
        )),
        "{err}"
    );
    assert!(
        err.contains("could not lock") && err.contains("within 1.5 s"),
        "{err}"
    );
    assert_eq!(fx.snapshot(), before);
}
