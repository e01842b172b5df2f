//! Is the process quiet? Every production item running the BPL class disabled, and no live job
//! of such an item; an item in the actor pool (`PoolSize = 0`) cannot be disabled on its own
//! and is quiet only when the production is stopped (no live job at all); an unknown (NULL)
//! `Enabled` or `PoolSize` is not quiet (spec/iris-runtime.md "Quiescing").

use super::conn::{text, Db, Value};
use super::error::{DbFailure, Refusal};
use crate::sql;
use serde::Serialize;

/// A production item (`Ens_Config.Item`) whose `ClassName` is the BPL class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostItem {
    pub production: String,
    pub name: String,
    /// None: NULL (unknown, refused).
    pub pool_size: Option<i64>,
    /// None: NULL (unknown, refused). Only `0` (or false) reads as disabled.
    pub enabled: Option<bool>,
}

impl HostItem {
    /// Runs in the shared actor pool (`PoolSize = 0`): cannot be disabled on its own.
    pub fn actor_pool(&self) -> bool {
        self.pool_size == Some(0)
    }
}

/// A live job of `Ens.Job_Enumerate()`: one that runs one of the items, or — when an item
/// runs in the actor pool — any job of the production.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct LiveJob {
    pub job: String,
    pub config_name: String,
    /// None: NULL (unknown, counted as live).
    pub state: Option<String>,
}

/// The one definition of a live job, shared with the script's SQL guard (`State IS NULL OR
/// State <> 'Dead'`): every job whose `State` is not exactly `Dead` — `Alive`, `Starting`,
/// `Busy`, `Quiescent`, NULL or anything unknown.
pub fn is_live(state: Option<&str>) -> bool {
    state != Some("Dead")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Quiet {
    pub items: Vec<HostItem>,
    pub live_jobs: Vec<LiveJob>,
}

impl Quiet {
    /// Refusals: items not known to be disabled (enabled, or Enabled / PoolSize unknown),
    /// actor-pool items of a running production, live jobs of the items.
    pub fn refusals(&self) -> Vec<Refusal> {
        let mut out = Vec::new();
        for i in &self.items {
            let unknown = |field: &str| Refusal::HostUnknown {
                production: i.production.clone(),
                item: i.name.clone(),
                field: field.to_string(),
            };
            match (i.pool_size, i.enabled) {
                (None, _) => out.push(unknown("PoolSize")),
                // Quiet when the production is stopped (no live job at all); Enabled does not
                // matter.
                (Some(0), _) => {
                    if !self.live_jobs.is_empty() {
                        out.push(Refusal::ActorPool {
                            production: i.production.clone(),
                            item: i.name.clone(),
                            live_jobs: self.live_jobs.len(),
                        });
                    }
                }
                (Some(_), None) => out.push(unknown("Enabled")),
                (Some(_), Some(true)) => out.push(Refusal::HostEnabled {
                    production: i.production.clone(),
                    item: i.name.clone(),
                }),
                (Some(_), Some(false)) => {}
            }
        }
        let pool = self.items.iter().any(HostItem::actor_pool);
        for j in &self.live_jobs {
            // With an actor-pool item every live job blocks; the ActorPool refusal says why
            // for jobs of other items.
            if pool && !self.items.iter().any(|i| i.name == j.config_name) {
                continue;
            }
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

/// Reads the items running `class` and their live jobs ([`is_live`]; with an actor-pool item,
/// every live job of the production).
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
            enabled: r.get(3).and_then(enabled_flag),
        })
        .collect();
    items.sort_by(|a, b| (&a.production, &a.name).cmp(&(&b.production, &b.name)));
    let mut live_jobs = Vec::new();
    // An item in the actor pool runs in the production's shared jobs: any live job counts.
    let pool = items.iter().any(HostItem::actor_pool);
    if !items.is_empty() {
        let step = "read Ens.Job_Enumerate()";
        let jobs_sql = sql::job_rows(db.dialect(), JOB_COLUMNS)
            .map_err(|e| DbFailure::refused_sql(step, &e))?;
        for r in db.query(step, jobs_sql.as_str(), &[])? {
            let job = LiveJob {
                job: text(r.first()),
                config_name: text(r.get(1)),
                // Untrimmed: the SQL guard compares the value as it is.
                state: r.get(2).and_then(Value::text).map(str::to_string),
            };
            let ours = pool || items.iter().any(|i| i.name == job.config_name);
            if ours && is_live(job.state.as_deref()) {
                live_jobs.push(job);
            }
        }
    }
    live_jobs.sort_by(|a, b| (&a.config_name, &a.job).cmp(&(&b.config_name, &b.job)));
    Ok(Quiet { items, live_jobs })
}

/// `Enabled`: NULL is unknown (None); `0` / false is disabled; any other value is enabled
/// (the SQL guard counts `Enabled <> 0` too).
fn enabled_flag(v: &Value) -> Option<bool> {
    let s = v.text()?.trim().to_ascii_lowercase();
    let off = matches!(s.as_str(), "false" | "f" | "no" | "n")
        || s.parse::<f64>().is_ok_and(|f| f == 0.0);
    Some(!off)
}
