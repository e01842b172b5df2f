//! Is the process quiet? Every production item running the BPL class disabled (and not in the
//! actor pool), and no live job of such an item (spec/iris-runtime.md "Quiescing").

use super::conn::{text, Db, Value};
use super::error::{DbFailure, Refusal};
use crate::sql;
use serde::Serialize;

/// A production item (`Ens_Config.Item`) whose `ClassName` is the BPL class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostItem {
    pub production: String,
    pub name: String,
    pub pool_size: Option<i64>,
    pub enabled: bool,
}

/// A job of `Ens.Job_Enumerate()` that runs one of the items.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveJob {
    pub job: String,
    pub config_name: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Quiet {
    pub items: Vec<HostItem>,
    pub live_jobs: Vec<LiveJob>,
}

impl Quiet {
    /// Refusals: enabled items, actor-pool items, live jobs.
    pub fn refusals(&self) -> Vec<Refusal> {
        let mut out = Vec::new();
        for i in &self.items {
            if i.pool_size == Some(0) {
                out.push(Refusal::ActorPool {
                    production: i.production.clone(),
                    item: i.name.clone(),
                });
            } else if i.enabled {
                out.push(Refusal::HostEnabled {
                    production: i.production.clone(),
                    item: i.name.clone(),
                });
            }
        }
        for j in &self.live_jobs {
            out.push(Refusal::LiveJob {
                job: j.job.clone(),
                config_name: j.config_name.clone(),
                state: j.state.clone(),
            });
        }
        out
    }
}

/// The `Ens_Config.Item` columns read per item, in the order of [`HostItem`], and the column
/// that names the class.
const ITEM_COLUMNS: &[&str] = &["Production", "Name", "PoolSize", "Enabled"];
const ITEM_CLASS: &str = "ClassName";
/// The job enumeration's columns, in the order of [`LiveJob`]: IRIS's class query or the
/// PostgreSQL stand-in function of the test schema (same name, same columns).
const JOB_COLUMNS: &[&str] = &["Job", "ConfigName", "State"];

/// Reads the items running `class` and their live jobs (`Alive` or `Starting`).
pub fn check(db: &Db, class: &str) -> Result<Quiet, DbFailure> {
    let step = "read Ens_Config.Item";
    let items_sql = sql::read_rows(
        db.dialect(),
        &sql::config_item_table(),
        ITEM_COLUMNS,
        Some(ITEM_CLASS),
        None,
    )
    .map_err(|e| DbFailure::refused_sql(step, &e))?;
    let rows = db.query(step, items_sql.as_str(), &[class])?;
    let mut items: Vec<HostItem> = rows
        .iter()
        .map(|r| HostItem {
            production: text(r.first()),
            name: text(r.get(1)),
            pool_size: r.get(2).and_then(Value::int),
            enabled: r.get(3).and_then(Value::flag).unwrap_or(false),
        })
        .collect();
    items.sort_by(|a, b| (&a.production, &a.name).cmp(&(&b.production, &b.name)));
    let mut live_jobs = Vec::new();
    if !items.is_empty() {
        let step = "read Ens.Job_Enumerate()";
        let jobs_sql = sql::job_rows(db.dialect(), JOB_COLUMNS)
            .map_err(|e| DbFailure::refused_sql(step, &e))?;
        for r in db.query(step, jobs_sql.as_str(), &[])? {
            let job = LiveJob {
                job: text(r.first()),
                config_name: text(r.get(1)),
                state: text(r.get(2)),
            };
            let live = matches!(
                job.state.to_ascii_lowercase().as_str(),
                "alive" | "starting"
            );
            if live && items.iter().any(|i| i.name == job.config_name) {
                live_jobs.push(job);
            }
        }
    }
    live_jobs.sort_by(|a, b| (&a.config_name, &a.job).cmp(&(&b.config_name, &b.job)));
    Ok(Quiet { items, live_jobs })
}
