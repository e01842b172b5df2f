//! Demo helper for the operator runbook (`scripts/demo.sh`): builds an IRIS-shaped schema in
//! a PostgreSQL test database for a BPL and seeds in-flight rows, so `status` and `apply`
//! have something real to work on. Not part of the tool: IRIS already has these tables.
//!
//! ```text
//! cargo run --example demo_db -- seed BPL_FILE      # tables + 3 waiting rows per wait state
//! cargo run --example demo_db -- enable CLASS 0|1   # flip Ens_Config.Item.Enabled
//! cargo run --example demo_db -- bench-seed DIR ROWS  # the apply bench's data (scripts/bench-apply.sh)
//! cargo run --example demo_db -- finish BPL_FILE S9 # one instance at S9 of Thread1 finishes
//! ```
//!
//! `bench-seed` reads a migration folder's `plan.json` and creates its old thread tables with
//! ROWS rows in the first one: half at wait states the plan renumbers, half at wait states it
//! keeps (or finished at `Stop` when it keeps none), one pending response per waiting row, and
//! one context row with a response handler per four rows.
//! The connection string comes from `BPLMIGRATE_CONNECT`.

use anyhow::{bail, Context, Result};
use bplmigrate::bpl::{self, LoadOptions};
use bplmigrate::sql::POSTGRES_TEST_SUPPORT_DDL;
use bplmigrate::states::{self, Compiler, SqlTable};
use odbc_api::{ConnectionOptions, Environment};

fn q(t: &SqlTable) -> String {
    format!("\"{}\".\"{}\"", t.schema, t.table)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let connect = std::env::var("BPLMIGRATE_CONNECT").context("set BPLMIGRATE_CONNECT")?;
    let env = Environment::new()?;
    let conn = env.connect_with_connection_string(&connect, ConnectionOptions::default())?;
    let exec = |sql: &str| -> Result<()> {
        conn.execute(sql, (), None)
            .with_context(|| format!("running {sql}"))?;
        Ok(())
    };
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["seed", file] => {
            let bpl = bpl::load(file, &LoadOptions::default())?;
            let compiled = states::compile(&bpl, Compiler::Current)?;
            for ddl in POSTGRES_TEST_SUPPORT_DDL {
                exec(ddl)?;
            }
            let schema = &compiled.context_table.schema;
            exec(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))?;
            exec(&format!("CREATE SCHEMA \"{schema}\""))?;
            for t in &compiled.threads {
                exec(&format!(
                    "CREATE TABLE {} (\"ID\" serial PRIMARY KEY, \"%NextState\" varchar(50), \"%Status\" integer, \
                     \"%Process\" integer, \"%HandlerStack\" bytea, \"%SubroutineStack\" bytea, \"%SyncName\" varchar(128))",
                    q(&t.table)
                ))?;
                let pending = t.table.child("%PendingResponses");
                exec(&format!(
                    "CREATE TABLE {} (\"{}\" integer, \"element_key\" varchar(128))",
                    q(&pending),
                    t.table.table
                ))?;
                // Three waiting instances at every state a thread can rest at.
                for s in t.states.iter().filter(|s| s.wait || s.join) {
                    for p in 1..=3 {
                        exec(&format!(
                            "INSERT INTO {} (\"%NextState\", \"%Status\", \"%Process\") VALUES ('{}', 3, {p})",
                            q(&t.table),
                            s.name
                        ))?;
                    }
                }
            }
            exec(&format!(
                "CREATE TABLE {} (\"ID\" serial PRIMARY KEY)",
                q(&compiled.context_table)
            ))?;
            exec(&format!(
                "CREATE TABLE {} (\"Context\" integer, \"element_key\" varchar(128), \"_ResponseHandlers\" varchar(128))",
                q(&compiled.response_handler_table)
            ))?;
            for (i, h) in compiled.response_handlers.iter().enumerate() {
                exec(&format!(
                    "INSERT INTO {} VALUES ({}, '{}', '{}')",
                    q(&compiled.response_handler_table),
                    i + 1,
                    h.call,
                    h.name
                ))?;
            }
            exec(&format!(
                "DELETE FROM \"Ens_Config\".\"Item\" WHERE \"ClassName\" = '{}'",
                bpl.class_name
            ))?;
            exec(&format!(
                "INSERT INTO \"Ens_Config\".\"Item\" VALUES ('Demo.Production', 'Loan Process', '{}', 1, 1)",
                bpl.class_name
            ))?;
            println!("seeded {} for {}", schema, bpl.class_name);
        }
        ["enable", class, flag @ ("0" | "1")] => {
            exec(&format!(
                "UPDATE \"Ens_Config\".\"Item\" SET \"Enabled\" = {flag} WHERE \"ClassName\" = '{class}'"
            ))?;
        }
        ["bench-seed", dir, rows] => {
            let rows: i64 = rows.parse().context("ROWS must be a number")?;
            let text = std::fs::read_to_string(std::path::Path::new(dir).join("plan.json"))?;
            let plan: bplmigrate::plan::MigrationPlan = serde_json::from_str(&text)?;
            for ddl in POSTGRES_TEST_SUPPORT_DDL {
                exec(ddl)?;
            }
            // The production item running the class (PoolSize 1), disabled (apply refuses a class no item
            // runs: the wrong namespace).
            let class = &plan.old.class;
            exec(&format!(
                "DELETE FROM \"Ens_Config\".\"Item\" WHERE \"ClassName\" = '{class}'"
            ))?;
            exec(&format!(
                "INSERT INTO \"Ens_Config\".\"Item\" VALUES ('Demo.Production', 'Loan Process', '{class}', 1, 0)"
            ))?;
            let schema = &plan.context_table.schema;
            exec(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))?;
            exec(&format!("CREATE SCHEMA \"{schema}\""))?;
            for t in &plan.threads {
                exec(&format!(
                    "CREATE TABLE {} (\"ID\" serial PRIMARY KEY, \"%NextState\" varchar(50), \"%Status\" integer, \
                     \"%Process\" integer, \"%HandlerStack\" bytea, \"%SubroutineStack\" bytea, \"%SyncName\" varchar(128), \
                     \"%PendingTimeout\" varchar(32))",
                    q(&t.old_table)
                ))?;
                exec(&format!(
                    "CREATE TABLE {} (\"ID\" serial PRIMARY KEY, \"{}\" integer, \"element_key\" varchar(128), \
                     \"PendingResponses\" varchar(128))",
                    q(&t.old_table.child("%PendingResponses")),
                    t.old_table.table
                ))?;
            }
            let t = plan.threads.first().context("the plan has no thread")?;
            let waits = |moved: bool| -> Vec<String> {
                t.states
                    .iter()
                    .filter(|s| {
                        s.wait
                            && s.old_handler_stack.is_empty()
                            && s.old_subroutine_stack.is_empty()
                    })
                    .filter(|s| s.new.as_ref().is_some_and(|n| (n != &s.old) == moved))
                    .map(|s| s.old.to_string())
                    .collect()
            };
            let (moved, kept) = (waits(true), waits(false));
            if moved.is_empty() {
                bail!("the plan renumbers no wait state of {}", t.old_class);
            }
            let list = |v: &[String]| {
                v.iter()
                    .map(|s| format!("'{s}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let half = rows / 2;
            exec(&format!(
                "INSERT INTO {} (\"%NextState\", \"%Status\", \"%Process\", \"%SyncName\") \
                 SELECT (ARRAY[{}])[1 + g % {}], 3, g, 'sync' FROM generate_series(1, {half}) g",
                q(&t.old_table),
                list(&moved),
                moved.len()
            ))?;
            let (kept_list, status) = if kept.is_empty() {
                ("'Stop'".to_string(), 2)
            } else {
                (list(&kept), 3)
            };
            exec(&format!(
                "INSERT INTO {} (\"%NextState\", \"%Status\", \"%Process\", \"%SyncName\") \
                 SELECT (ARRAY[{kept_list}])[1 + g % {}], {status}, g, 'sync' FROM generate_series({}, {rows}) g",
                q(&t.old_table),
                kept.len().max(1),
                half + 1
            ))?;
            exec(&format!(
                "INSERT INTO {} (\"{}\", \"element_key\", \"PendingResponses\") \
                 SELECT \"ID\", 'Call', '1' FROM {} WHERE \"%Status\" = 3",
                q(&t.old_table.child("%PendingResponses")),
                t.old_table.table,
                q(&t.old_table)
            ))?;
            exec(&format!(
                "CREATE TABLE {} (\"ID\" serial PRIMARY KEY, \"%Process\" integer)",
                q(&plan.context_table)
            ))?;
            exec(&format!(
                "CREATE TABLE {} (\"ID\" serial PRIMARY KEY, \"Context\" integer, \"element_key\" varchar(128), \
                 \"_ResponseHandlers\" varchar(128))",
                q(&plan.response_handler_table)
            ))?;
            exec(&format!(
                "INSERT INTO {} (\"%Process\") SELECT g FROM generate_series(1, {}) g",
                q(&plan.context_table),
                rows / 4
            ))?;
            if let Some(h) = plan.response_handlers.first() {
                exec(&format!(
                    "INSERT INTO {} (\"Context\", \"element_key\", \"_ResponseHandlers\") \
                     SELECT \"ID\", '{}', '{}' FROM {}",
                    q(&plan.response_handler_table),
                    h.call,
                    h.old,
                    q(&plan.context_table)
                ))?;
            }
            exec(&format!("ANALYZE {}", q(&t.old_table)))?;
            println!(
                "seeded {rows} rows of {}: {half} at {} (renumbered), the rest at {kept_list}",
                t.old_table,
                moved.join(", ")
            );
        }
        ["finish", file, state] => {
            // One instance resting at STATE of the main thread finishes, as the running
            // process would finish it (what a drain waits for).
            let bpl = bpl::load(file, &LoadOptions::default())?;
            let compiled = states::compile(&bpl, Compiler::Current)?;
            let t = q(&compiled.threads[0].table);
            if !state.starts_with('S') || !state[1..].bytes().all(|b| b.is_ascii_digit()) {
                bail!("STATE must look like S9");
            }
            exec(&format!(
                "UPDATE {t} SET \"%NextState\" = 'Stop', \"%Status\" = 2 WHERE \"ID\" = \
                 (SELECT MIN(\"ID\") FROM {t} WHERE \"%NextState\" = '{state}')"
            ))?;
        }
        _ => bail!(
            "usage: demo_db seed BPL_FILE | enable CLASS 0|1 | finish BPL_FILE STATE | bench-seed DIR ROWS"
        ),
    }
    Ok(())
}
