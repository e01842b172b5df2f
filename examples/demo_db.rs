//! Demo helper for the operator runbook (`scripts/demo.sh`): builds an IRIS-shaped schema in
//! a PostgreSQL test database for a BPL and seeds in-flight rows, so `status` and `apply`
//! have something real to work on. Not part of the tool: IRIS already has these tables.
//!
//! ```text
//! cargo run --example demo_db -- seed BPL_FILE      # tables + 3 waiting rows per wait state
//! cargo run --example demo_db -- enable CLASS 0|1   # flip Ens_Config.Item.Enabled
//! cargo run --example demo_db -- finish BPL_FILE S9 # one instance at S9 of Thread1 finishes
//! ```
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
        _ => bail!("usage: demo_db seed BPL_FILE | demo_db enable CLASS 0|1 | demo_db finish BPL_FILE STATE"),
    }
    Ok(())
}
