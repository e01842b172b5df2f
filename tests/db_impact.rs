//! `status --plan` as the operator's console on a real database: the impact per live group
//! (fate, role, activity, status name, the findings that concern those rows), preconditions
//! with live counts and the one-line answer; `--watch --until-ready` reaching ready while a
//! second connection drains rows; the timeout; the wrong target.

mod support;

use bplmigrate::apply::{self, Fate, Migration, Silent, StatusSubject};
use bplmigrate::plan::findings::Code;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::{create_plan_tables, fixture_plan, row, Fixture};

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bplmigrate"));
    c.env_remove("BPLMIGRATE_CONNECT").stdin(Stdio::null());
    c
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run bplmigrate")
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn case(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/changes")
        .join(name)
}

/// A fixture holding the tables of change fixture `case`'s plan, and the plan's folder.
fn setup(
    name: &str,
    case_name: &str,
) -> Option<(
    Fixture,
    bplmigrate::plan::MigrationPlan,
    tempfile::TempDir,
    PathBuf,
)> {
    let fx = Fixture::new(name, 1)?;
    let p = fixture_plan(&case(case_name), &fx);
    create_plan_tables(&fx, &p);
    let (tmp, dir) = fx.folder(&p);
    Some((fx, p, tmp, dir))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn impact_names_each_group_its_fate_and_the_findings_on_those_rows() {
    let Some((fx, p, _tmp, dir)) = setup("ImpactInsert", "insert_middle") else {
        return;
    };
    let waiting: Vec<_> = (0..37).map(|_| row("S11", 3)).collect();
    fx.seed(1, &waiting);
    fx.seed(1, &[row("S2", 3), row("S2", 4), row("Stop", 2)]);
    fx.set_enabled(true);
    let m = Migration::from_plan(p).unwrap();
    let db = apply::Db::connect(&fx.connect).unwrap();
    let report = apply::status(&db, StatusSubject::Plan(&m), &Silent).unwrap();
    let i = apply::impact(&m, &report).unwrap();
    let g = i
        .groups
        .iter()
        .find(|g| g.state.as_deref() == Some("S11"))
        .unwrap();
    assert_eq!(g.rows, 37);
    assert_eq!(g.fate, Fate::Resume);
    assert_eq!(g.new_state.as_deref(), Some("S13"));
    assert_eq!(g.status_name, "waiting");
    assert_eq!(g.role.as_deref(), Some("SYNC_WAIT"));
    assert_eq!(g.activity.as_deref(), Some("call \"Notify\""));
    assert!(
        g.summary.starts_with(
            "37 instances waiting at Thread1:S11 (call \"Notify\") will resume at S13"
        ) && g.summary.ends_with("and skip delay \"Settle\""),
        "{}",
        g.summary
    );
    assert!(g.findings.iter().any(|f| f.code == Code::SkippedActivities));
    // S2 is unchanged: no finding of S11 leaks onto it; waiting and errored rows are two groups.
    let s2: Vec<_> = i
        .groups
        .iter()
        .filter(|g| g.state.as_deref() == Some("S2"))
        .collect();
    assert_eq!(
        s2.iter()
            .map(|g| g.status_name.as_str())
            .collect::<Vec<_>>(),
        ["waiting", "errored"]
    );
    assert!(s2
        .iter()
        .all(|g| g.fate == Fate::Stay && g.findings.is_empty()));
    let stop = i
        .groups
        .iter()
        .find(|g| g.state.as_deref() == Some("Stop"))
        .unwrap();
    assert_eq!(stop.fate, Fate::Finished);
    // The host runs: the rows are ready, apply is not.
    assert!(i.drained && !i.can_apply, "{i:?}");
    assert!(i.answer.contains("is enabled"), "{}", i.answer);
    let host = &i.preconditions[0];
    assert!(
        !host.ok && host.count == 1 && host.unit == "enabled items",
        "{host:?}"
    );

    // Through the binary, human and JSON; once the host is disabled: can apply now.
    fx.set_enabled(false);
    let o = run(&["status", "--plan", s(&dir), "--connect", &fx.connect]);
    let (text, err) = out(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        text.contains("37 instances waiting at Thread1:S11 (call \"Notify\") will resume at S13"),
        "{text}"
    );
    assert!(text.contains("warning BPM0201"), "{text}");
    assert!(
        text.trim_end().ends_with(&format!(
            "can apply now: every precondition holds and no host of {} runs",
            fx.class
        )),
        "{text}"
    );
    let o = run(&[
        "status",
        "--plan",
        s(&dir),
        "--connect",
        &fx.connect,
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out(&o).0).expect("json");
    assert_eq!(v["data"]["impact"]["can_apply"], true);
    let groups = v["data"]["impact"]["groups"].as_array().unwrap();
    assert!(groups
        .iter()
        .any(|g| g["state"] == "S11" && g["fate"] == "resume" && g["rows"] == 37));
}

#[test]
fn rows_at_a_removed_wait_state_block_with_their_live_count() {
    let Some((fx, p, _tmp, _dir)) = setup("ImpactRemoved", "removed_wait_state") else {
        return;
    };
    fx.seed(1, &[row("S9", 3), row("S9", 3), row("S11", 3)]);
    let m = Migration::from_plan(p).unwrap();
    let db = apply::Db::connect(&fx.connect).unwrap();
    let report = apply::status(&db, StatusSubject::Plan(&m), &Silent).unwrap();
    let i = apply::impact(&m, &report).unwrap();
    let g = i
        .groups
        .iter()
        .find(|g| g.state.as_deref() == Some("S9"))
        .unwrap();
    assert_eq!(g.fate, Fate::Drain);
    assert_eq!(g.new_state, None);
    assert!(
        g.summary.contains("must finish before apply"),
        "{}",
        g.summary
    );
    assert!(g.findings.iter().any(|f| f.code == Code::RemovedWaitState));
    let failing: Vec<_> = i.preconditions.iter().filter(|c| !c.ok).collect();
    assert_eq!(failing.len(), 1, "{failing:?}");
    assert_eq!((failing[0].count, failing[0].unit.as_str()), (2, "rows"));
    assert!(!i.drained && !i.can_apply);
    assert!(
        i.answer.starts_with("cannot apply now: 1 blocker"),
        "{}",
        i.answer
    );
}

/// Lines of a child's stderr, as they come.
fn lines_of(child: &mut std::process::Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line containing `what` (panics after a generous wait: a hung child fails the test).
fn wait_for(rx: &mpsc::Receiver<String>, what: &str) -> String {
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) if l.contains(what) => return l,
            Ok(_) => {}
            Err(e) => panic!("no line with {what:?}: {e}"),
        }
    }
}

#[test]
fn watch_until_ready_follows_the_rows_draining_from_another_connection() {
    let Some((fx, _p, _tmp, dir)) = setup("WatchDrain", "removed_wait_state") else {
        return;
    };
    let ids = fx.seed(1, &[row("S9", 3), row("S9", 3), row("S9", 3), row("S2", 3)]);
    fx.set_enabled(true); // draining needs the process running
    let mut child = bin()
        .args([
            "status",
            "--plan",
            s(&dir),
            "--connect",
            &fx.connect,
            "--watch",
            "--until-ready",
            "--interval",
            "0.1",
            "--timeout",
            "2m",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let rx = lines_of(&mut child);
    // Each instance finishing (as the running process would do) shows as a falling count.
    let first = wait_for(&rx, "not ready: 3 rows to drain");
    assert!(first.contains("S9"), "{first}");
    let finish = |id: i64| {
        fx.exec(&format!(
            r#"UPDATE "{}"."Thread1" SET "%NextState" = 'Stop', "%Status" = 2 WHERE "ID" = {id}"#,
            fx.schema
        ))
    };
    finish(ids[0]);
    wait_for(&rx, "not ready: 2 rows to drain");
    finish(ids[1]);
    wait_for(&rx, "not ready: 1 row to drain");
    finish(ids[2]);
    wait_for(&rx, "ready: the rows are ready");
    let o = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(text.contains("the rows are ready"), "{text}");
    // Then: disable the host, and apply runs.
    fx.set_enabled(false);
    let o = run(&["apply", s(&dir), "--yes", "--connect", &fx.connect]);
    assert_eq!(o.status.code(), Some(0), "{:?}", out(&o));
}

#[test]
fn watch_times_out_with_exit_3_and_stops_at_once_when_draining_cannot_help() {
    let Some((fx, p, _tmp, dir)) = setup("WatchTimeout", "removed_wait_state") else {
        return;
    };
    fx.seed(1, &[row("S9", 3)]);
    let o = run(&[
        "status",
        "--plan",
        s(&dir),
        "--connect",
        &fx.connect,
        "--watch",
        "--until-ready",
        "--interval",
        "0.1",
        "--timeout",
        "1s",
    ]);
    let (text, err) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("timed out after 1s: cannot apply now"),
        "{err}"
    );
    // The host is disabled, so the instances cannot finish: the watch says so.
    assert!(
        err.contains("cannot finish while the process is disabled"),
        "{err}"
    );
    assert!(text.contains("Preconditions (live counts)"), "{text}");

    // Already applied: no draining makes it ready; the watch stops at once.
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%NextState" = 'Stop', "%Status" = 2"#,
        fx.schema
    ));
    fx.apply_plan(&Migration::from_plan(p).unwrap()).unwrap();
    let o = run(&[
        "status",
        "--plan",
        s(&dir),
        "--connect",
        &fx.connect,
        "--watch",
        "--until-ready",
        "--interval",
        "0.1",
    ]);
    let (_, err) = out(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("cannot become ready by draining") && err.contains("already applied"),
        "{err}"
    );
    // Review 10, D7: the progress line does not offer draining either.
    assert!(
        err.contains("not ready, and draining cannot help") && !err.contains("to drain"),
        "{err}"
    );
}

#[test]
fn the_wrong_namespace_is_an_error_naming_what_was_looked_for() {
    let Some((fx, _p, _tmp, dir)) = setup("WrongTarget", "insert_middle") else {
        return;
    };
    // The class is not configured in any production here.
    fx.exec(&format!(
        r#"DELETE FROM "Ens_Config"."Item" WHERE "ClassName" = '{}'"#,
        fx.class
    ));
    let o = run(&["status", "--plan", s(&dir), "--connect", &fx.connect]);
    let (_, err) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("is not configured in any production")
            && err.contains(&format!("ClassName = '{}'", fx.class)),
        "{err}"
    );
    // No table of the class at all.
    fx.exec(&format!(r#"DROP SCHEMA "{}" CASCADE"#, fx.schema));
    let o = run(&["status", "--plan", s(&dir), "--connect", &fx.connect]);
    let (out_text, err) = out(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("no table of {} in this namespace", fx.class))
            && err.contains(&format!("{}.Thread1", fx.schema)),
        "{err}"
    );
    assert!(!out_text.contains("none"), "{out_text}");
}

#[test]
fn a_namespace_without_interoperability_tables_is_the_wrong_target() {
    let Some((fx, _p, _tmp, dir)) = setup("WrongNamespace", "insert_middle") else {
        return;
    };
    // A database where neither the class's tables nor Ens_Config.Item exist.
    let name = "bplmigrate_wrong_namespace";
    let connect = support::fresh_database(&fx.connect, name);
    let o = run(&["status", "--plan", s(&dir), "--connect", &connect]);
    let (_, err) = out(&o);
    support::drop_database(&fx.connect, name);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("wrong target: cannot read Ens_Config.Item"),
        "{err}"
    );
}

/// `status --plan DIR --watch --until-ready --interval 0.1 --timeout T` on a connection whose
/// server session is named `app` (psqlODBC passes libpq options through `pqopt`), so another
/// connection can end exactly that session; stderr comes line by line.
fn spawn_named_watch(
    fx: &Fixture,
    dir: &Path,
    app: &str,
    timeout: &str,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let connect = format!(
        "{};pqopt={{application_name={app}}};",
        fx.connect.trim_end_matches(';')
    );
    let mut child = bin()
        .args([
            "status",
            "--plan",
            s(dir),
            "--connect",
            &connect,
            "--watch",
            "--until-ready",
            "--interval",
            "0.1",
            "--timeout",
            timeout,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let rx = lines_of(&mut child);
    (child, rx)
}

/// Ends the server session named `app` from `conn`; how many there were.
fn end_session(conn: &odbc_api::Connection<'_>, app: &str) -> i64 {
    support::scalar(
        conn,
        &format!(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '{app}'"
        ),
    )
}

/// The watch's server session is ended from another connection (as a server restart or an
/// administrator would): the watch says so, connects again and still reaches ready.
#[test]
fn watch_survives_a_dropped_connection_and_still_reaches_ready() {
    let Some((fx, _p, _tmp, dir)) = setup("WatchDrop", "removed_wait_state") else {
        return;
    };
    let ids = fx.seed(1, &[row("S9", 3), row("S2", 3)]);
    fx.set_enabled(true);
    let app = format!("bplm_watch_{}", fx.name.to_lowercase());
    let (child, rx) = spawn_named_watch(&fx, &dir, &app, "2m");
    wait_for(&rx, "not ready: 1 row to drain");
    assert_eq!(end_session(&fx.conn, &app), 1, "the watch's session");
    let lost = wait_for(&rx, "connection lost");
    assert!(lost.contains("reconnecting"), "{lost}");
    wait_for(&rx, "reconnected (attempt 1)");
    fx.exec(&format!(
        r#"UPDATE "{}"."Thread1" SET "%NextState" = 'Stop', "%Status" = 2 WHERE "ID" = {}"#,
        fx.schema, ids[0]
    ));
    wait_for(&rx, "ready: the rows are ready");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// While the server cannot be reached, the attempts are said and bounded by --timeout: exit 4.
#[test]
fn a_watch_that_cannot_reconnect_stops_at_the_timeout_with_exit_4() {
    let Some(base) = support::connect_string("WatchGone") else {
        return;
    };
    // Its own database, which is then closed to new connections (a stand-in for a server
    // that is gone) without disturbing the other tests.
    let db_name = "bplm_watch_gone";
    let fresh = support::fresh_database(&base, db_name);
    let fx = Fixture::new_in("WatchGone", 1, fresh);
    let p = fixture_plan(&case("removed_wait_state"), &fx);
    create_plan_tables(&fx, &p);
    let (_tmp, dir) = fx.folder(&p);
    fx.seed(1, &[row("S9", 3)]);
    fx.set_enabled(true);
    let app = "bplm_watch_gone";
    let (child, rx) = spawn_named_watch(&fx, &dir, app, "4s");
    wait_for(&rx, "not ready: 1 row to drain");
    let admin = support::raw_connect(&base);
    support::exec(
        &admin,
        &format!(r#"ALTER DATABASE "{db_name}" WITH ALLOW_CONNECTIONS false"#),
    );
    end_session(&admin, app);
    wait_for(&rx, "connection lost");
    let failed = wait_for(&rx, "reconnect attempt 1 failed");
    assert!(failed.contains("next in 2 s"), "{failed}");
    let last = wait_for(&rx, "could not be re-established before --timeout");
    let o = child.wait_with_output().expect("wait");
    drop(fx);
    support::drop_database(&base, db_name);
    assert_eq!(o.status.code(), Some(4), "{last}");
}
