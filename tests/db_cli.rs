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

/// `apply DIR --yes --format json` against the fixture's database.
fn apply_json(fx: &Fixture, dir: &Path) -> Output {
    bplmigrate(
        &[
            "apply",
            p(dir),
            "--yes",
            "--format",
            "json",
            "--connect",
            &fx.connect,
        ],
        &[],
    )
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
fn apply_yes_json_then_again_says_already_applied_with_exit_0() {
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
    // Again: nothing is pending, so it is not a failure (exit 0), and it says so.
    let before = fx.snapshot();
    let o = bplmigrate(&["apply", p(&dir), "--yes", "--connect", &fx.connect], &[]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        out.contains("is already applied to") && out.contains("(history entry 1); nothing to do"),
        "{out}"
    );
    let o = apply_json(&fx, &dir);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&text(&o).0).expect("json");
    assert_eq!(v["type"], "already_applied");
    assert_eq!(v["data"]["seq"], 1);
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn a_dirty_history_beside_already_applied_still_refuses() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliDirtyAgain") else {
        return;
    };
    let o = bplmigrate(&["apply", p(&dir), "--yes", "--connect", &fx.connect], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    // A later entry of the class is dirty: that needs a human, "already applied" or not.
    fx.exec(&format!(
        r#"INSERT INTO "BplMigrate"."History" SELECT 2, "PlanId", "PlanSha256", "BplClass", "OldSha256", "NewSha256",
           "Direction", "AppliedAt", "AppliedBy", "ToolVersion", "RowCounts", 'dirty', "Note"
           FROM "BplMigrate"."History" WHERE "BplClass" = '{}' AND "Seq" = 1"#,
        fx.class
    ));
    let o = bplmigrate(&["apply", p(&dir), "--yes", "--connect", &fx.connect], &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("is dirty"), "{err}");
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
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains(&fx.host()) && err.contains("enabled"), "{err}");
    // One refusal per line, as written (not an escaped `\n`).
    assert!(
        err.starts_with("error: refused, nothing was changed:\n  - host "),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
    // With --format json the refusal is on stdout too, as data, with the same exit code.
    let o = apply_json(&fx, &dir);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json on stdout");
    assert_eq!(v["type"], "refused");
    assert_eq!(v["data"]["exit_code"], 3);
    assert_eq!(v["data"]["error_class"], "refused");
    assert_eq!(v["data"]["refusals"][0]["kind"], "host_enabled");
    assert_eq!(v["data"]["refusals"][0]["item"], fx.host().as_str());
    assert_eq!(fx.snapshot(), before);
}

#[test]
fn the_confirmation_names_the_database_and_the_history_user_has_a_fallback() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliWho") else {
        return;
    };
    // Without a terminal and without --yes: refused, naming where it would have written
    // (never the password).
    let o = bplmigrate(&["apply", p(&dir), "--connect", &fx.connect], &[]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("changes rows of {} on server ", fx.class))
            && err.contains(", database "),
        "{err}"
    );
    let pwd = fx
        .connect
        .split(';')
        .find_map(|p| p.strip_prefix("Pwd=").or_else(|| p.strip_prefix("PWD=")))
        .unwrap_or("no password");
    assert!(!err.contains(pwd), "{err}");
    // No USER, USERNAME or LOGNAME (cron, containers): the account of the process's uid.
    let mut c = Command::new(env!("CARGO_BIN_EXE_bplmigrate"));
    c.args(["apply", p(&dir), "--yes", "--connect", &fx.connect])
        .env_remove("BPLMIGRATE_CONNECT")
        .env_remove("USER")
        .env_remove("USERNAME")
        .env_remove("LOGNAME")
        .stdin(Stdio::null());
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o).1);
    let by = support::rows(
        &fx.conn,
        &format!(
            r#"SELECT "AppliedBy" FROM "BplMigrate"."History" WHERE "BplClass" = '{}'"#,
            fx.class
        ),
    );
    let by = by[0][0].clone().unwrap_or_default();
    let me = String::from_utf8_lossy(&Command::new("id").arg("-un").output().unwrap().stdout)
        .trim()
        .to_string();
    assert!(by.starts_with(&format!("{me}@")), "{by} (account {me})");
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

/// The prompt on a terminal (a pseudo-terminal from util-linux `script`): it names the
/// database, the class and the rows a dry run counted, and "n" changes nothing.
#[test]
fn the_prompt_says_what_it_touches_and_no_changes_nothing() {
    let Some((fx, _tmp, dir)) = swap_fixture("CliPrompt") else {
        return;
    };
    let before = fx.snapshot();
    let cmd = format!(
        "{} apply {} --connect \"$BPLM_CONNECT\"",
        env!("CARGO_BIN_EXE_bplmigrate"),
        p(&dir)
    );
    let mut c = Command::new("script");
    c.args(["-qec", &cmd, "/dev/null"])
        .env("BPLM_CONNECT", &fx.connect)
        .env_remove("BPLMIGRATE_CONNECT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .expect("util-linux `script` (bsdutils) is needed for this test");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(b"n\n");
    }
    let o = child.wait_with_output().unwrap();
    let all = format!("{}{}", text(&o).0, text(&o).1);
    assert!(
        all.contains(&format!(
            "About to apply plan {} to the rows of {} on server ",
            fx_plan_id(&dir),
            fx.class
        )),
        "{all}"
    );
    assert!(
        all.contains(", database ") && all.contains("(PostgreSQL)"),
        "{all}"
    );
    assert!(all.contains(": S5 -> S7, S7 -> S5: 3 rows"), "{all}");
    assert!(all.contains("3 rows will change"), "{all}");
    assert!(all.contains("not confirmed; nothing was changed"), "{all}");
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert_eq!(fx.snapshot(), before);
}

fn fx_plan_id(dir: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("plan.json")).unwrap()).unwrap();
    v["plan_id"].as_str().unwrap().to_string()
}
