//! `--emit objectscript`: the migration as an ObjectScript class (`migrate.cls`) and a session
//! script (`migrate.script`) that run it inside IRIS, for sites without ODBC and for container
//! upgrades.
//!
//! The fixed ObjectScript lives in `runner.cls` and `migrate.script` (templates next to this
//! file); this module fills in the plan: its parameters, the checked IRIS statements (the same
//! guards, census, rewrites and default fills as `apply.sql`, plus the runner's own reads of
//! `BplMigrate.History`, built and parse-checked by this stage's query builders), the forward
//! guard, the preflight probes and the post-rewrite checks. What the runner does, in order:
//! blocked plan refused → new class compiled (preflight) → history (dirty / already applied /
//! chain) → disable the class's items (recorded first; actor-pool items are left to the job
//! guard, as on the ODBC path) → `TSTART`, `LOCK TABLE … IN EXCLUSIVE MODE WAIT n` on every
//! table the ODBC apply locks (`sql::tables_to_lock`) and then the history → history again →
//! guards → census → rewrite with row counts → census, stacks and defaults verified → the
//! host and job guards again (`Ens_Config.Item` is locked in share mode with the tables, a job
//! cannot be) → history row → `TCOMMIT`; the locks are released on every path (IRIS table locks outlive the
//! transaction); any failure before the commit rolls back and enables exactly the items it
//! disabled; a failure after it (enabling the items) is exit 5 of `migrate.script`.

use super::queries::{
    history_column, history_insert, history_table, max_of, null_count, probe_table, read_rows,
    HISTORY_COLUMNS, HISTORY_DDL,
};
use super::render::{
    config_item_table, listbuild_function, render, revert_blockers, HANDLER_STACK, SUBROUTINE_STACK,
};
use super::text::{comment_text, objectscript_string, quote_ident, quote_literal, quote_table};
use super::undo::{undo_ddl, undo_table};
use super::{check, Dialect, GuardKind, SqlError};
use crate::plan::{MigrationPlan, PropertyChange, Verdict};
use crate::states::{SqlTable, StateNames};

const RUNNER: &str = include_str!("runner.cls");
/// Seconds each `LOCK TABLE` of the runner waits (SQLCODE -110 after that: refused).
const LOCK_WAIT_SECONDS: u32 = 10;
const SCRIPT: &str = include_str!("migrate.script");
/// `BplMigrate.Plan.P<plan id>`.
pub fn objectscript_class_name(plan: &MigrationPlan) -> Result<String, SqlError> {
    if plan.plan_id.is_empty() || !plan.plan_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SqlError::Plan {
            reason: format!("plan id {:?} is not a hex digest", plan.plan_id),
        });
    }
    Ok(format!("BplMigrate.Plan.P{}", plan.plan_id))
}

/// One statement on one line, as an ObjectScript string literal. The generated SQL only
/// breaks lines between tokens (a literal never holds a control character), so joining the
/// trimmed lines with a space keeps its meaning.
fn sql_string(sql: &str) -> Result<String, SqlError> {
    let one_line: Vec<&str> = sql
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("--"))
        .collect();
    objectscript_string(one_line.join(" ").trim_end_matches(';'))
}

/// Every SQL statement the runner executes, in the order it appears in `migrate.cls`, with
/// what it is for. Tests parse each back; the IRIS-only `LOCK TABLE` / `UNLOCK TABLE` and the
/// history DDL are listed separately by [`runner_statements`].
pub fn runner_statements(plan: &MigrationPlan) -> Result<Vec<(String, String)>, SqlError> {
    Ok(build(plan)?.1)
}

#[derive(Default)]
struct Runner {
    /// (what, SQL) for every checked statement.
    statements: Vec<(String, String)>,
}

impl Runner {
    /// Remember a checked statement and return it as an ObjectScript literal.
    fn sql(&mut self, what: &str, sql: &str) -> Result<String, SqlError> {
        self.statements.push((what.to_string(), sql.to_string()));
        sql_string(sql)
    }
}

/// The forward guard: rows resting at a state the old BPL does not have cannot be mapped
/// (they were written by another version); the plan must not touch such a table.
fn forward_guards(plan: &MigrationPlan) -> Result<Vec<(String, String)>, SqlError> {
    let d = Dialect::Iris;
    let mut out = Vec::new();
    for t in &plan.threads {
        let mut known: Vec<String> = t.states.iter().map(|s| s.old.to_string()).collect();
        known.push("Stop".to_string());
        let list = known
            .iter()
            .map(|s| quote_literal(s, d))
            .collect::<Result<Vec<_>, _>>()?
            .join(", ");
        let ns = quote_ident("%NextState", d)?;
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE ({ns} IS NULL OR {ns} NOT IN ({list}))",
            quote_table(&t.old_table, d)?,
        );
        let checked = check::check(
            &sql,
            d,
            &check::Expect {
                shape: check::Shape::Count,
                tables: vec![t.old_table.clone()],
                columns: vec!["%NextState".into()],
                functions: vec!["COUNT".into()],
                params: 0,
            },
        )?;
        out.push((
            format!(
                "rows of {} rest at a state the old BPL does not have: they were written by another version, which this plan does not describe",
                t.old_class
            ),
            checked.as_str().to_string(),
        ));
    }
    Ok(out)
}

/// After the rewrite: in every table whose `%HandlerStack` / `%SubroutineStack` the plan
/// rewrites, no row holds a value the rewrite cannot have written: a stack some new state
/// predicts or the element-wise image of a value the old version leaves (stale entries of a
/// `<break>`/`<continue>` are mapped at any state, so the value at one state is not fixed).
/// Only tables rewritten in place (as the rewrite itself). The runner uses the IRIS dialect;
/// the postgres one lets the tests run the same checks on the rig.
pub fn runner_stack_checks(
    plan: &MigrationPlan,
    d: Dialect,
) -> Result<Vec<(String, String)>, SqlError> {
    let mut out = Vec::new();
    for t in &plan.threads {
        if t.new_table.as_ref() != Some(&t.old_table) {
            continue;
        }
        for (subroutine, column) in [(false, HANDLER_STACK), (true, SUBROUTINE_STACK)] {
            let values = t.stack_values(subroutine);
            fn pick(s: &crate::plan::StateMapping, subroutine: bool) -> (&StateNames, &StateNames) {
                if subroutine {
                    (&s.old_subroutine_stack, &s.new_subroutine_stack)
                } else {
                    (&s.old_handler_stack, &s.new_handler_stack)
                }
            }
            let stack = |s| pick(s, subroutine);
            let rewritten = values
                .iter()
                .any(|v| v.new.as_ref().is_some_and(|n| n != &v.old))
                || t.states.iter().any(|s| {
                    s.new.is_some() && {
                        let (o, n) = stack(s);
                        o != n
                    }
                });
            if !rewritten {
                continue;
            }
            // Spelled out: the lists follow the order of their spelling.
            let mut allowed: std::collections::BTreeSet<Vec<String>> = values
                .into_iter()
                .filter_map(|v| Some(v.new?.to_strings()))
                .collect();
            allowed.extend(
                t.states
                    .iter()
                    .filter(|s| s.new.is_some())
                    .map(|s| stack(s).1.to_strings()),
            );
            let col = quote_ident(column, d)?;
            let mut lists = Vec::new();
            for v in allowed.iter().filter(|v| !v.is_empty()) {
                let items = v
                    .iter()
                    .map(|e| quote_literal(e, d))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(", ");
                lists.push(format!("{}({items})", listbuild_function(d)));
            }
            let mut cond = format!("{col} IS NOT NULL AND {col} <> ''");
            if !lists.is_empty() {
                cond.push_str(&format!(" AND {col} NOT IN ({})", lists.join(", ")));
            }
            let sql = format!(
                "SELECT COUNT(*) FROM {} WHERE {cond}",
                quote_table(&t.old_table, d)?
            );
            let checked = check::check(
                &sql,
                d,
                &check::Expect {
                    shape: check::Shape::Count,
                    tables: vec![t.old_table.clone()],
                    columns: vec![column.into()],
                    functions: vec!["COUNT".into(), listbuild_function(d).into()],
                    params: 0,
                },
            )?;
            out.push((
                format!(
                    "rows of {} hold a {column} the rewrite cannot have written",
                    t.old_class
                ),
                checked.as_str().to_string(),
            ));
        }
    }
    Ok(out)
}

/// Render `migrate.cls` for `plan` (IRIS dialect statements).
pub fn render_objectscript(plan: &MigrationPlan) -> Result<String, SqlError> {
    Ok(build(plan)?.0)
}

fn build(plan: &MigrationPlan) -> Result<(String, Vec<(String, String)>), SqlError> {
    let script = render(plan, Dialect::Iris)?;
    let class = objectscript_class_name(plan)?;
    let mut r = Runner::default();
    let c = comment_text;
    let s = objectscript_string;
    let d = Dialect::Iris;

    // ----- class documentation: what, verdict, findings, the order of the steps.
    let mut doc = vec![
        format!(
            "/// bplmigrate migration for {} (plan {}), verdict <b>{}</b>.",
            c(&plan.old.class),
            c(&plan.plan_id),
            plan.verdict.as_str()
        ),
        format!(
            "/// Generated by bplmigrate {}; compiler {}.",
            c(&plan.tool_version),
            c(&plan.compiler)
        ),
        format!(
            "/// Old BPL {} sha256 {}.",
            c(&plan.old.origin),
            c(&plan.old.sha256)
        ),
        format!(
            "/// New BPL {} sha256 {}.",
            c(&plan.new.origin),
            c(&plan.new.sha256)
        ),
    ];
    if plan.findings.is_empty() {
        doc.push("/// <p>Findings: none.</p>".into());
    } else {
        doc.push("/// <p>Findings:</p><ul>".into());
        for f in &plan.findings {
            doc.push(format!(
                "/// <li>{} {:?}{}: {}</li>",
                c(f.code.as_str()),
                f.severity,
                if f.acknowledged {
                    " (acknowledged)"
                } else {
                    ""
                },
                c(&f.message)
            ));
        }
        doc.push("/// </ul>".into());
    }
    for o in &plan.overrides {
        doc.push(format!("/// <p>Override applied: {}</p>", c(o)));
    }
    // A mapping that cannot be inverted records what it overwrites, as the ODBC path does.
    let records_undo = !revert_blockers(plan).is_empty() && !script.rewrites.is_empty();
    if records_undo {
        doc.push(
            "/// <p>The mapping cannot be inverted: Run(0) copies every row it rewrites, before and after, to \
             BplMigrate.Undo under its history entry; <code>bplmigrate apply DIR --revert</code> puts exactly those \
             rows back (refusing when any of them changed since).</p>"
                .into(),
        );
    }
    for line in [
        "/// <p>Order (each step guarded):</p><ol>",
        "/// <li>quiesce: <code>do ##class(CLASS).Quiesce()</code> disables and records every enabled item of the BPL class;</li>",
        "/// <li>deploy and compile the new BPL class (Run checks it is compiled and its new tables and columns exist);</li>",
        "/// <li>migrate: <code>do ##class(CLASS).Run(1)</code> is a dry run; <code>Run(0)</code> migrates once, in one transaction, recorded in BplMigrate.History (a re-run is a no-op);</li>",
        "/// <li>enable: <code>Run(0, 1)</code> enables the recorded items (those Quiesce() and an earlier <code>Run(0)</code> disabled) after a successful migration.</li></ol>",
        "/// <p>On any failure before the commit the transaction is rolled back, the table locks are released and the items this run disabled are enabled again.",
        "/// migrate.script runs the same from <code>iris session</code>: exit status 1 on such a failure, 5 when the migration committed but enabling the items afterwards failed.</p>",
    ] {
        doc.push(line.replace("CLASS", &class));
    }

    // ----- parameters.
    let plan_json = serde_json::to_string_pretty(plan).map_err(|e| SqlError::Plan {
        reason: format!("cannot serialize the plan: {e}"),
    })? + "\n";
    let history = history_table();
    let history_q = quote_table(&history, d)?;
    let ddl: String = HISTORY_DDL
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n");
    let hosts = read_rows(
        d,
        &config_item_table(),
        &["Production", "Name", "Enabled", "PoolSize"],
        Some("ClassName"),
        None,
    )?;
    let mut params = vec![
        ("PLANID", s(&plan.plan_id)?),
        (
            "PLANSHA256",
            s(&super::folder::normalized_sha256(plan_json.as_bytes()))?,
        ),
        ("BPLCLASS", s(&plan.old.class)?),
        ("OLDSHA256", s(&plan.old.sha256)?),
        ("NEWSHA256", s(&plan.new.sha256)?),
        ("VERDICT", s(plan.verdict.as_str())?),
        ("TOOLVERSION", s(&plan.tool_version)?),
    ];
    let probe = probe_table(d, &history, &["Seq", "Outcome"])?;
    params.push((
        "SQLHISTORYPROBE",
        r.sql("history table exists", probe.as_str())?,
    ));
    let read = read_rows(d, &history, HISTORY_COLUMNS, Some("BplClass"), Some("Seq"))?;
    params.push(("SQLHISTORY", r.sql("read history", read.as_str())?));
    let next = max_of(d, &history, "Seq", Some("BplClass"))?;
    params.push(("SQLNEXTSEQ", r.sql("next history entry", next.as_str())?));
    let insert = history_insert(d, &history, HISTORY_COLUMNS)?;
    params.push(("SQLHISTORYINSERT", r.sql("write history", insert.as_str())?));
    params.push(("SQLHOSTS", r.sql("items of the class", hosts.as_str())?));
    params.push(("ROWCOUNTSMAX", super::queries::ROW_COUNTS_MAX.to_string()));
    // IRIS-only statements sqlparser does not read (as on the ODBC path): the table locks.
    params.push(("LOCKWAIT", LOCK_WAIT_SECONDS.to_string()));
    params.push((
        "SQLLOCK",
        s(&format!(
            "LOCK TABLE {history_q} IN EXCLUSIVE MODE WAIT {LOCK_WAIT_SECONDS}"
        ))?,
    ));
    params.push((
        "SQLUNLOCK",
        s(&format!("UNLOCK TABLE {history_q} IN EXCLUSIVE MODE"))?,
    ));
    params.push(("SQLCREATEHISTORY", sql_string(&ddl)?));
    let mut ensure_undo = String::new();
    if records_undo {
        let probe = probe_table(d, &undo_table(), &["Seq", "RowId"])?;
        params.push(("SQLUNDOPROBE", r.sql("undo table exists", probe.as_str())?));
        let ddl: String = undo_ddl(d)
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n");
        params.push(("SQLCREATEUNDO", sql_string(&ddl)?));
        ensure_undo =
            "\tSet tSC = ..Ensure(..#SQLUNDOPROBE, ..#SQLCREATEUNDO)\n\tQuit:$$$ISERR(tSC) tSC\n"
                .into();
    }
    // The history row's values, in the one column order (`sql::HISTORY_COLUMNS`).
    let history_values = HISTORY_COLUMNS
        .iter()
        .map(|col| {
            Ok(match *col {
                "Seq" => "pSeq",
                "PlanId" => "..#PLANID",
                "PlanSha256" => "..#PLANSHA256",
                "BplClass" => "..#BPLCLASS",
                "OldSha256" => "..#OLDSHA256",
                "NewSha256" => "..#NEWSHA256",
                "Direction" => "\"apply\"",
                "AppliedAt" => "tAt",
                "AppliedBy" => "tBy",
                "Outcome" => "\"applied\"",
                "ToolVersion" => "..#TOOLVERSION",
                "RowCounts" => "tCounts.%ToJSON()",
                "Note" => "\"ObjectScript runner \"_..%ClassName(1)",
                other => {
                    return Err(SqlError::Plan {
                        reason: format!("the runner writes no value for history column {other}"),
                    })
                }
            })
        })
        .collect::<Result<Vec<_>, SqlError>>()?
        .join(", ");
    let parameters = params
        .iter()
        .map(|(k, v)| format!("Parameter {k} = {v};"))
        .collect::<Vec<_>>()
        .join("\n\n");

    // ----- Blocked(): the one rule of every path (`MigrationPlan::blocked_for_good`).
    let hard = plan.blocked_for_good();
    let blocked = if !hard.is_empty() {
        format!(
            "\tQuit $$$ERROR($$$GeneralError, {})",
            s(&format!(
                "the plan is blocked ({}): draining does not resolve that; {}",
                c(&hard.join("; ")),
                crate::plan::blocked_remedy(&hard)
            ))?
        )
    } else if plan.verdict == Verdict::Blocked {
        "\t// Blocked only by rows that must drain (removed wait states, changed awaited calls):\n\t// the guards refuse while any such row exists, so the plan applies once they drained.\n\tQuit $$$OK".to_string()
    } else {
        "\tQuit $$$OK".to_string()
    };

    // ----- LockTables(): the tables the ODBC apply locks (`sql::tables_to_lock`), each one
    // that exists; the history lock follows in the template.
    let mut locks = Vec::new();
    for t in super::tables_to_lock(plan, &script) {
        let q = quote_table(&t, d)?;
        locks.push(format!(
            "\tSet tSC = ..LockOne({}, {}, {}, 1, .pLocks)\n\tQuit:$$$ISERR(tSC) tSC",
            s(&format!(
                "LOCK TABLE {q} IN EXCLUSIVE MODE WAIT {LOCK_WAIT_SECONDS}"
            ))?,
            s(&format!("UNLOCK TABLE {q} IN EXCLUSIVE MODE"))?,
            s(&c(&t.to_string()))?
        ));
    }

    // The host guard's table in share mode (`sql::tables_to_share`): nobody enables an item
    // of the class until the run ends.
    for t in super::tables_to_share() {
        let q = quote_table(&t, d)?;
        locks.push(format!(
            "\tSet tSC = ..LockOne({}, {}, {}, 0, .pLocks)\n\tQuit:$$$ISERR(tSC) tSC",
            s(&format!(
                "LOCK TABLE {q} IN SHARE MODE WAIT {LOCK_WAIT_SECONDS}"
            ))?,
            s(&format!("UNLOCK TABLE {q} IN SHARE MODE"))?,
            s(&c(&format!("{t} (share mode)")))?
        ));
    }

    // ----- Preflight(): the new version's tables and added columns exist.
    let mut preflight = Vec::new();
    for t in &plan.threads {
        if let Some(nt) = &t.new_table {
            let p = probe_table(d, nt, &["%NextState"])?;
            preflight.push(format!(
                "\tSet tSC = ..Probe({}, {})\n\tQuit:$$$ISERR(tSC) tSC",
                r.sql(&format!("new thread table {nt} exists"), p.as_str())?,
                s(&format!(
                    "table {nt} of {} is missing: compile the new BPL first",
                    c(t.new_class.as_deref().unwrap_or(""))
                ))?
            ));
        }
    }
    let added: Vec<&str> = plan
        .context_properties
        .iter()
        .filter(|p| p.change == PropertyChange::Added)
        .map(|p| p.name.as_str())
        .collect();
    if !added.is_empty() {
        let p = probe_table(d, &plan.context_table, &added)?;
        preflight.push(format!(
            "\tSet tSC = ..Probe({}, {})\n\tQuit:$$$ISERR(tSC) tSC",
            r.sql("new context columns exist", p.as_str())?,
            s(&format!(
                "the context table {} lacks the new properties {}: compile the new BPL first",
                plan.context_table,
                added.join(", ")
            ))?
        ));
    }

    // ----- Guards(): the forward guard first, then the script's guards.
    let mut guards = Vec::new();
    for (why, sql) in forward_guards(plan)? {
        guards.push(format!(
            "\tSet tSC = ..Guard({}, {}, 0, pDryRun)\n\tQuit:$$$ISERR(tSC) tSC",
            r.sql("forward guard", &sql)?,
            s(&c(&why))?
        ));
    }
    for g in &script.guards {
        // Enabled items and their live jobs are what Run(0) quiesces first.
        let host = u8::from(matches!(
            g.kind,
            GuardKind::HostEnabled | GuardKind::LiveJob
        ));
        guards.push(format!(
            "\tSet tSC = ..Guard({}, {}, {host}, pDryRun)\n\tQuit:$$$ISERR(tSC) tSC",
            r.sql("guard", g.sql.as_str())?,
            s(&c(&g.description))?
        ));
    }

    // ----- HostGuards(): the host and job guards again, right before TCOMMIT.
    let mut host_guards = Vec::new();
    for g in script
        .guards
        .iter()
        .filter(|g| matches!(g.kind, GuardKind::HostEnabled | GuardKind::LiveJob))
    {
        host_guards.push(format!(
            "\tSet tSC = ..Guard({}, {}, 0, 0)\n\tQuit:$$$ISERR(tSC) tSC",
            r.sql("host guard before commit", g.sql.as_str())?,
            s(&c(&format!(
                "while the run went on (counted again before TCOMMIT): {}",
                g.description
            )))?
        ));
    }

    // ----- Census(), Predict().
    let mut census = Vec::new();
    for (i, cs) in script.census.iter().enumerate() {
        census.push(format!(
            "\t// {}: {} {}\n\tSet tSC = ..Tally({}, {}, .pCount)\n\tQuit:$$$ISERR(tSC) tSC",
            i + 1,
            cs.table,
            c(&cs.key_column),
            i + 1,
            r.sql("census", cs.sql.as_str())?
        ));
    }
    let census_index = |table: &SqlTable, key: &str| {
        script
            .census
            .iter()
            .position(|c| &c.table == table && c.key_column == key)
            .map(|i| i + 1)
            .ok_or_else(|| SqlError::Plan {
                reason: format!("no census for {table}"),
            })
    };
    let mut predict = Vec::new();
    for rw in &script.rewrites {
        let idx = census_index(&rw.table, &rw.key_column)?;
        let sets: Vec<String> = rw
            .mapping
            .iter()
            .map(|(a, b)| Ok(format!("tMap({idx}, {}) = {}", s(a)?, s(b)?)))
            .collect::<Result<_, SqlError>>()?;
        predict.push(format!("\tSet {}", sets.join(", ")));
    }

    // ----- Rewrite(): each statement with its expected row count.
    let mut rewrite = Vec::new();
    if records_undo {
        rewrite.push("\tSet pUndo = 0".to_string());
    }
    for rw in &script.rewrites {
        let idx = census_index(&rw.table, &rw.key_column)?;
        let want: Vec<String> = rw
            .mapping
            .iter()
            .map(|(k, _)| s(k).map(|k| format!("$Get(pBefore({idx}, {k}))")))
            .collect::<Result<_, _>>()?;
        let record = if records_undo {
            // The capture also copies the rows the UPDATE leaves alone (`Rewrite::recorded`).
            let also: Vec<String> = rw
                .recorded
                .iter()
                .map(|k| s(k).map(|k| format!(" + $Get(pBefore({idx}, {k}))")))
                .collect::<Result<_, _>>()?;
            let expected = if also.is_empty() {
                "tWant".to_string()
            } else {
                format!("(tWant{})", also.concat())
            };
            format!(
                "\tSet tSC = ..Record({}, pSeq, .tRows)\n\tQuit:$$$ISERR(tSC) tSC\n\tIf tRows '= {expected} Quit $$$ERROR($$$GeneralError, {}_tRows_\" rows, expected \"_{expected})\n\tSet pUndo = pUndo + tRows\n",
                r.sql("undo rows", rw.undo.as_str())?,
                s(&format!("{}: undo rows recorded ", rw.table))?,
            )
        } else {
            String::new()
        };
        rewrite.push(format!(
            "\t// {}\n\tSet tWant = {}\n{record}\tSet tSC = ..Exec({}, .tRows)\n\tQuit:$$$ISERR(tSC) tSC\n\tIf tRows '= tWant Quit $$$ERROR($$$GeneralError, {}_tRows_\" rows, expected \"_tWant)",
            c(&rw.description),
            want.join(" + "),
            r.sql("rewrite", rw.sql.as_str())?,
            s(&format!("{}: updated ", rw.table))?
        ));
    }
    let mut verify = Vec::new();
    for f in &script.defaults {
        let nulls = null_count(d, &f.table, &f.column)?;
        let nulls = r.sql("rows a default fill sets", nulls.as_str())?;
        rewrite.push(format!(
            "\t// {}\n\tSet tSC = ..Count({nulls}, .tWant)\n\tQuit:$$$ISERR(tSC) tSC\n\tSet tSC = ..Exec({}, .tRows)\n\tQuit:$$$ISERR(tSC) tSC\n\tIf tRows '= tWant Quit $$$ERROR($$$GeneralError, {}_tRows_\" rows, expected \"_tWant)",
            c(&f.description),
            r.sql("default fill", f.sql.as_str())?,
            s(&format!("{}.{}: filled ", f.table, f.column))?
        ));
        verify.push(format!(
            "\tSet tSC = ..Count({nulls}, .tN)\n\tQuit:$$$ISERR(tSC) tSC\n\tIf tN Quit $$$ERROR($$$GeneralError, {}_tN_\" rows are still NULL\")",
            s(&format!(
                "after the default fill of {}.{}, ",
                f.table, f.column
            ))?
        ));
    }
    // The stacks: after the rewrite, rows at each new state whose stacks the plan changes hold
    // the new stacks.
    for (what, sql) in runner_stack_checks(plan, d)? {
        verify.push(format!(
            "\tSet tSC = ..Count({}, .tN)\n\tQuit:$$$ISERR(tSC) tSC\n\tIf tN Quit $$$ERROR($$$GeneralError, {}_tN_\" rows\")",
            r.sql("stack check after the rewrite", &sql)?,
            s(&format!("after the rewrite: {}: ", c(&what)))?
        ));
    }

    let join = |v: Vec<String>| v.join("\n");
    let text = RUNNER
        .replace("{{DOC}}", &doc.join("\n"))
        .replace("{{CLASS}}", &class)
        .replace("{{PARAMETERS}}", &parameters)
        .replace("{{BLOCKED}}", &blocked)
        .replace("{{LOCKS}}", &join(locks))
        .replace("{{PREFLIGHT}}", &join(preflight))
        .replace("{{GUARDS}}", &join(guards))
        .replace("{{HOSTGUARDS}}", &join(host_guards))
        .replace("{{CENSUS}}", &join(census))
        .replace("{{PREDICT}}", &join(predict))
        .replace("{{REWRITE}}", &join(rewrite))
        .replace("{{VERIFY}}", &join(verify))
        .replace("{{ENSUREUNDO}}", &ensure_undo)
        .replace("{{HISTORYVALUES}}", &history_values);
    // `{{H:Column}}`: the position of a history column in the rows `CheckHistory` reads.
    let mut text = text;
    while let Some(at) = text.find("{{H:") {
        let end = text[at..]
            .find("}}")
            .map(|e| at + e)
            .ok_or_else(|| SqlError::Plan {
                reason: "an unterminated history column placeholder in runner.cls".into(),
            })?;
        let name = &text[at + 4..end];
        let pos = history_column(name).ok_or_else(|| SqlError::Plan {
            reason: format!("runner.cls reads {name}, which is not a history column"),
        })?;
        text.replace_range(at..end + 2, &pos.to_string());
    }
    Ok((tidy(&text), r.statements))
}

/// No blank line runs left by empty sections, no trailing blanks.
fn tidy(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.trim_end();
        if line.is_empty() && out.ends_with("\n\n") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Render `migrate.script`: `iris session IRIS -U NAMESPACE < migrate.script` loads the
/// class (from `$BPLMIGRATE_DIR` when set), runs `Run(0, 1)` and ends the session with exit
/// status 1 when the migration failed, 2 when the class could not be loaded.
pub fn render_session_script(plan: &MigrationPlan) -> Result<String, SqlError> {
    let class = objectscript_class_name(plan)?;
    Ok(SCRIPT
        .replace("{{TOOLVERSION}}", &comment_text(&plan.tool_version))
        .replace("{{PLANID}}", &plan.plan_id)
        .replace("{{BPLCLASS}}", &comment_text(&plan.old.class))
        .replace("{{CLASS}}", &class)
        .replace("{{ENABLE}}", "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_history_table_and_ddl_are_the_odbc_paths() {
        assert_eq!(history_table(), crate::apply::history_table());
        let m = &crate::apply::MIGRATIONS;
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].ddl)(Dialect::Iris), HISTORY_DDL);
        assert_eq!((m[1].table)(), undo_table());
        assert_eq!((m[1].ddl)(Dialect::Iris), undo_ddl(Dialect::Iris));
    }

    #[test]
    fn templates_have_no_unfilled_placeholder_names_left_unknown() {
        for name in [
            "DOC",
            "CLASS",
            "PARAMETERS",
            "BLOCKED",
            "LOCKS",
            "PREFLIGHT",
            "GUARDS",
            "HOSTGUARDS",
            "CENSUS",
            "PREDICT",
            "REWRITE",
            "VERIFY",
            "ENSUREUNDO",
            "HISTORYVALUES",
        ] {
            assert!(RUNNER.contains(&format!("{{{{{name}}}}}")), "{name}");
        }
        let rest = RUNNER
            .split("{{")
            .skip(1)
            .filter(|p| {
                ![
                    "DOC}}",
                    "CLASS}}",
                    "PARAMETERS}}",
                    "BLOCKED}}",
                    "LOCKS}}",
                    "PREFLIGHT}}",
                    "GUARDS}}",
                    "HOSTGUARDS}}",
                    "CENSUS}}",
                    "PREDICT}}",
                    "REWRITE}}",
                    "VERIFY}}",
                    "ENSUREUNDO}}",
                    "HISTORYVALUES}}",
                    "H:",
                ]
                .iter()
                .any(|k| p.starts_with(k))
            })
            .count();
        assert_eq!(rest, 0);
    }
}
